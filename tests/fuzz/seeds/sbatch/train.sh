#!/bin/bash
#SBATCH --job-name=demo-train
#SBATCH --gres=gpu:h100:2
#SBATCH --cpus-per-task=4
#SBATCH --mem=4G
#SBATCH --time=00:10:00
# A toy "training" run: fits y = 3x + 2 by gradient descent, printing the loss per epoch.
# It shows where it runs: account, node, and the GPUs Slurm gave it.
echo "job ${SLURM_JOB_ID:-?} on $(hostname -s) as $(id -un) (uid $(id -u))"
echo "gpus: ${CUDA_VISIBLE_DEVICES:-none} (SLURM_GPUS_ON_NODE=${SLURM_GPUS_ON_NODE:-0})"
echo "cpus: ${SLURM_CPUS_PER_TASK:-1}"
awk 'BEGIN {
  srand(42); w = 0; b = 0; lr = 0.05; n = 64
  for (i = 0; i < n; i++) { x[i] = i / n * 4 - 2; y[i] = 3 * x[i] + 2 + (rand() - 0.5) * 0.1 }
  for (epoch = 1; epoch <= 10; epoch++) {
    for (step = 0; step < 20; step++) {
      gw = 0; gb = 0; loss = 0
      for (i = 0; i < n; i++) { e = w * x[i] + b - y[i]; gw += 2 * e * x[i] / n; gb += 2 * e / n; loss += e * e / n }
      w -= lr * gw; b -= lr * gb
    }
    printf "epoch %2d  loss %.5f  w %.3f  b %.3f\n", epoch, loss, w, b
    system("sleep 1")
  }
}'
echo "training done"
