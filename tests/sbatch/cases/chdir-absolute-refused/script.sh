#!/bin/bash
#SBATCH --chdir=/home/alice
