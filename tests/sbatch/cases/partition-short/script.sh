#!/bin/bash
#SBATCH -p debug
