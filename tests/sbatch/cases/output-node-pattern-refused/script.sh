#!/bin/bash
#SBATCH --error=err-%N.log
