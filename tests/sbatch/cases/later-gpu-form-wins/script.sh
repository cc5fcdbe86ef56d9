#!/bin/bash
#SBATCH --gpus-per-node=4
#SBATCH --gpus-per-task=1
