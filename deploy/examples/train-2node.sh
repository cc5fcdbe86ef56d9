#!/bin/bash
#SBATCH --job-name=demo-2node
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=2
#SBATCH --cpus-per-task=2
#SBATCH --time=00:10:00
# A toy data-parallel run over two nodes: each task (one per node) fits its half of the data and
# prints where it ran; Antenna holds and charges 2 nodes x 2 GPUs = 4 GPUs for its time.
echo "job ${SLURM_JOB_ID:-?}: ${SLURM_JOB_NUM_NODES:-?} nodes (${SLURM_JOB_NODELIST:-?}), ${SLURM_NTASKS:-?} tasks"
srun bash -c 'echo "task $SLURM_PROCID on node $SLURMD_NODENAME: gpus ${CUDA_VISIBLE_DEVICES:-none}"
awk -v rank="$SLURM_PROCID" "BEGIN { w = 0; for (e = 1; e <= 5; e++) { w += (3 - w) / 2; printf \"task %d epoch %d  w %.3f\\n\", rank, e, w; system(\"sleep 1\") } }"'
echo "training done on ${SLURM_JOB_NUM_NODES:-?} nodes"
