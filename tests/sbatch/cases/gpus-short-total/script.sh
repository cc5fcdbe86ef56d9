#!/bin/bash
#SBATCH -G 8 -N 2
