#!/bin/bash
#SBATCH -n 4
#SBATCH --gpus-per-task=h100:1
#SBATCH --cpus-per-gpu=8
#SBATCH --mem-per-gpu=40G
