#!/usr/bin/env bash
# Fill .device/ (git-ignored, to be named in the device tool's `carry`) with what benchmarks/gpu.sh
# needs on a lent GPU machine that has torch and Lightning but no package index: wheels of
# hydra-core and omegaconf (and the antlr4 runtime sdist they need) and the fixed binarized MNIST.
#   ARGEN_DATA_DIR=../shared/data bash benchmarks/prepare_device.sh
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .device/wheels .device/data/binarized_mnist
pip download --quiet --dest .device/wheels "hydra-core>=1.3.8,<1.4" "omegaconf>=2.2,<2.4" \
  "antlr4-python3-runtime==4.9.3" PyYAML
cp "${ARGEN_DATA_DIR:-../shared/data}"/binarized_mnist/binarized_mnist_*.amat.gz .device/data/binarized_mnist/
du -sh .device
