#!/bin/bash
#SBATCH -N 2
#SBATCH --gres=gpu:4
