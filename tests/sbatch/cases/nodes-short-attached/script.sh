#!/bin/bash
#SBATCH -N2 -n8
