#!/bin/bash
#SBATCH --output=/tmp/x.out
