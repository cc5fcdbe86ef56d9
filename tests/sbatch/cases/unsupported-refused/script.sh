#!/bin/bash
#SBATCH --nodes=2
#SBATCH --qos=high
