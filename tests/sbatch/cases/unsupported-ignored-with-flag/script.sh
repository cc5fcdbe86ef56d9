#!/bin/bash
#SBATCH --nodes=2
#SBATCH --qos=high
#SBATCH -w node1 -n 2
