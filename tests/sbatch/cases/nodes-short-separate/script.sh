#!/bin/bash
#SBATCH -N 3
