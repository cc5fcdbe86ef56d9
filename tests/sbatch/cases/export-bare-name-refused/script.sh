#!/bin/bash
#SBATCH --export=HF_TOKEN
