#!/bin/bash
#SBATCH -D run1/logs
