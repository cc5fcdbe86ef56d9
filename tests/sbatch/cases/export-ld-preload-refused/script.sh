#!/bin/bash
#SBATCH --export=ALL,LD_PRELOAD=/tmp/x.so
