#!/bin/bash
#SBATCH -p gpu,debug
