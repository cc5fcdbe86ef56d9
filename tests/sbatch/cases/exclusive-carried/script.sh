#!/bin/bash
#SBATCH --exclusive
#SBATCH --gres=gpu:1
