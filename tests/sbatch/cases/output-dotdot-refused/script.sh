#!/bin/bash
#SBATCH -o ../x.out
