#!/bin/bash
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=4
#SBATCH --gpus-per-node=4
#SBATCH --array=0-3%2
#SBATCH --partition=gpu
#SBATCH --output=run-%A_%a.out
#SBATCH --dependency=afterok:1
srun python train.py
