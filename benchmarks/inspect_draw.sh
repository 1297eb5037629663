#!/usr/bin/env bash
# Draw results/inspect/ (one folder per model, and dependency_comparison.png) from the latest run
# of each model that benchmarks/inspect_train.sh trained; then regenerate the results page:
#   ARGEN_DATA_DIR=/path/to/data bash benchmarks/inspect_draw.sh
#   python -m argen.compare results/ --out results/
set -euo pipefail
export OMP_NUM_THREADS=1
RUNS=${ARGEN_LOG_DIR:-logs/inspect}/runs
MODELS=(fvsbn nade made pixelcnn gated_pixelcnn row_lstm diagonal_bilstm pixelsnail image_transformer
        char_rnn char_transformer)
checkpoints=()
for model in "${MODELS[@]}"; do
  data=binarized_mnist
  [[ $model == char_* ]] && data=tinyshakespeare
  # <date>_<time>_<model>_<data>_<id>: the fixed-width time stamp keeps pixelcnn from matching
  # gated_pixelcnn
  run=$(find "$RUNS" -maxdepth 1 -name "????-??-??_??-??-??_${model}_${data}_*" | sort | tail -1)
  if [[ -z $run ]]; then
    echo "no $model run under $RUNS (train it: bash benchmarks/inspect_train.sh $model)" >&2
    continue
  fi
  checkpoints+=("$(find "$run/checkpoints" -name 'best-*.ckpt' | sort | tail -1)")
done
find results/inspect -mindepth 1 -maxdepth 1 -type d -exec rm -r {} +
rm -f results/inspect/dependency_comparison.png
python -m argen.inspect "${checkpoints[@]}" --out results/inspect --images 4
