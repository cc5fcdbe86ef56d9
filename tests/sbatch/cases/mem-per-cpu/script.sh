#!/bin/bash
#SBATCH --mem-per-cpu=2G
