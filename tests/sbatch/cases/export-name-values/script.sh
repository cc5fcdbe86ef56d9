#!/bin/bash
#SBATCH --export=NONE,EPOCHS=10,LR=0.001
