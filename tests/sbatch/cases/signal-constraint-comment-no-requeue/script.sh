#!/bin/bash
#SBATCH --signal=B:USR1@120
#SBATCH -C "a100&ib"
#SBATCH --comment="sweep 3"
#SBATCH --no-requeue
