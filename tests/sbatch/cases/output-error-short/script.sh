#!/bin/bash
#SBATCH -o out-%j.log -e err-%j.log
