#!/bin/bash
#SBATCH -N 2
#SBATCH --gpus-per-node=4
#SBATCH -p gpu
