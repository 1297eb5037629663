#!/usr/bin/env bash
# The GPU checks, as one prepared script for a lent GPU machine: training examples/s of MADE and
# Gated PixelCNN on binarized MNIST, argen vs the plain loop, in fp32 and bf16-mixed, eager and
# compiled (benchmarks/throughput.py), then naive vs cached sampling on the GPU.
#   ARGEN_DATA_DIR=../shared/data bash benchmarks/gpu.sh [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-logs/benchmarks/gpu}"
mkdir -p "$out"
for precision in 32-true bf16-mixed; do
  for compile in false true; do
    python benchmarks/throughput.py --accelerator gpu --models made gated_pixelcnn --repeats 1 \
      --steps 100 trainer.precision="$precision" compile="$compile" \
      | tee "$out/throughput_${precision}_compile_${compile}.txt"
  done
done
python benchmarks/sampling_speed.py --device cuda --batch-sizes 16 64 \
  --json-out "$out/sampling_gpu.json" | tee "$out/sampling_gpu.txt"
