#!/bin/bash
#SBATCH --ntasks 16 --cpus-per-task 2
