#!/usr/bin/env bash
# Everything argen wants from a lent GPU, as one command that ends by itself within 10 minutes:
#   1. throughput (benchmarks/throughput.py): MADE and Gated PixelCNN, argen vs the plain loop,
#      fp32 eager, bf16-mixed eager and bf16-mixed compiled; cached vs naive sampling on the GPU;
#   2. the paper set-ups on fixed binarized MNIST with the data on the device and bf16-mixed, each
#      for a fixed slice of the remaining time: Gated PixelCNN, PixelCNN, Row LSTM, then MADE's
#      released single-mask set-up (experiment=made_paper), NADE, and MADE's 32-mask,
#      2 x 8000 connectivity-agnostic set-up (experiment=made_paper_32_masks, mixture NLL).
# Every run's summary.json, CSV metrics and log land under OUT_DIR (default logs/benchmarks/gpu);
# OUT_DIR/summary.txt collects the headline numbers.
#
#   bash benchmarks/prepare_device.sh          # here: wheels + binarized MNIST into .device/
#   bash benchmarks/gpu.sh "$OUT"              # there: installs from .device/ if needed, runs
#   GPU_SH_SMOKE=1 bash benchmarks/gpu.sh /tmp/gpu_smoke   # on a CPU, tiny limits: catches typos
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-logs/benchmarks/gpu}"
mkdir -p "$out"
smoke="${GPU_SH_SMOKE:-0}"
start=$(date +%s)

# The lent machine has torch and Lightning but not Hydra/OmegaConf/W&B and no package index.
if ! python -c "import hydra, omegaconf" 2>/dev/null && [ -d .device/wheels ]; then
  pip install --quiet --no-index --no-build-isolation --find-links .device/wheels hydra-core omegaconf
fi
if [ -z "${ARGEN_DATA_DIR:-}" ] && [ -d .device/data ]; then
  export ARGEN_DATA_DIR="$PWD/.device/data"
fi

if [ "$smoke" = 1 ]; then
  # One step of two examples per model and generous timeouts: this checks the commands, not speed.
  accel=cpu; precision=32-true; steps=2; train_time="00:00:05:00"; timeout_s=600
  limit="trainer.max_epochs=1 +trainer.limit_train_batches=1 +trainer.limit_val_batches=1 data.datamodule.max_examples=8 data.datamodule.batch_size=2 data.datamodule.eval_batch_size=4"
  sampling_rows="1 1"; device=cpu
else
  accel=gpu; precision=bf16-mixed; steps=100; train_time=""; timeout_s=""; limit=""
  sampling_rows="4 2"; device=cuda
fi

# 1. Throughput: ~2.5 minutes on an H100-class GPU.
for setting in "32-true false" "$precision false" "$precision true"; do
  set -- $setting
  timeout "${timeout_s:-150}" python benchmarks/throughput.py --accelerator "$accel" --models made gated_pixelcnn \
    --repeats 1 --steps "$steps" --warmup 2 trainer.precision="$1" compile="$2" \
    | tee "$out/throughput_$1_compile_$2.txt" || echo "throughput $1 compile=$2: did not finish" | tee -a "$out/summary.txt"
done
timeout "${timeout_s:-90}" python benchmarks/sampling_speed.py --device "$device" --batch-sizes 16 64 \
  --naive-rows $sampling_rows --json-out "$out/sampling.json" | tee "$out/sampling.txt" \
  || echo "sampling: did not finish" | tee -a "$out/summary.txt"

# 2. Paper set-ups. Each gets a share of what is left of 9.5 minutes (Lightning's max_time stops
#    training; testing the best checkpoint and timing samples follow within the same timeout).
experiments=(gated_pixelcnn_binarized_mnist pixelcnn_binarized_mnist row_lstm_binarized_mnist made_paper nade_binarized_mnist made_paper_32_masks)
shares=(25 15 15 20 10 15)   # percent of the remaining time
left=$(( 570 - ($(date +%s) - start) ))
for i in "${!experiments[@]}"; do
  experiment="${experiments[$i]}"
  seconds=$(( left * ${shares[$i]} / 100 ))
  seconds="${timeout_s:-$seconds}"
  [ "$seconds" -lt 30 ] && { echo "$experiment: skipped, no time left" | tee -a "$out/summary.txt"; continue; }
  budget="${train_time:-00:00:$(printf '%02d:%02d' $(( (seconds - 25) / 60 )) $(( (seconds - 25) % 60 )))}"
  timeout "$seconds" python train.py experiment="$experiment" trainer.accelerator="$accel" \
    trainer.precision="$precision" trainer.max_time="$budget" logger=csv \
    callbacks.rich_progress_bar=null summary.num_samples=4 paths.log_dir="$out/runs/$experiment" \
    $limit > "$out/$experiment.log" 2>&1 \
    && tail -n 1 "$out/$experiment.log" | tee -a "$out/summary.txt" \
    || echo "$experiment: stopped by the time limit or failed (see $out/$experiment.log)" | tee -a "$out/summary.txt"
done
# 3. MADE at batch 100 with every training step one CUDA graph (model.module.cuda_graph=true): argen's
#    default path, argen with the option and the plain loop, in one throughput run (~1 minute).
left=$(( 590 - ($(date +%s) - start) ))
if [ "$smoke" = 1 ] || [ "$left" -ge 45 ]; then
  timeout "${timeout_s:-$left}" python benchmarks/throughput.py --accelerator "$accel" --models made \
    --repeats 1 --steps "$(( smoke == 1 ? 2 : 2000 ))" --warmup 64 \
    --variant cuda_graph=model.module.cuda_graph=true \
    | tee "$out/throughput_made_cuda_graph.txt" \
    || echo "made cuda_graph: did not finish" | tee -a "$out/summary.txt"
else
  echo "made cuda_graph: skipped, $left s left" | tee -a "$out/summary.txt"
fi
echo "gpu.sh: done in $(( $(date +%s) - start )) s; summaries under $out/runs" | tee -a "$out/summary.txt"
