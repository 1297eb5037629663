#!/usr/bin/env bash
# Train the small models whose pictures are under results/inspect/ (one CPU thread, minutes each).
# The checkpoints land in logs/inspect/runs/<time>_<model>_<data>_<id>/checkpoints/ (git-ignored);
# benchmarks/inspect_draw.sh then draws every view from the latest run of each model.
#   ARGEN_DATA_DIR=/path/to/data bash benchmarks/inspect_train.sh [model ...]
set -euo pipefail
export OMP_NUM_THREADS=1
export ARGEN_LOG_DIR=${ARGEN_LOG_DIR:-logs/inspect}
COMMON=(logger=none callbacks.rich_progress_bar=null callbacks.image_logger=null summary.num_samples=0 trainer.limit_val_batches=5
        +trainer.limit_test_batches=5 trainer.num_sanity_val_steps=0 "trainer.max_time=00:00:03:00")
IMAGE=(data.datamodule.eval_batch_size=100)

train() { echo "== $*"; python train.py "$@" "${COMMON[@]}"; }

declare -A RUNS=(
  [fvsbn]="experiment=fvsbn_binarized_mnist trainer.max_epochs=2 ${IMAGE[*]}"
  [nade]="experiment=nade_binarized_mnist trainer.max_epochs=3 ${IMAGE[*]}"
  [made]="experiment=made_binarized_mnist trainer.max_epochs=5 ${IMAGE[*]}"
  [pixelcnn]="experiment=pixelcnn_binarized_mnist trainer.max_epochs=1 model.module.net.hidden_channels=32 model.module.net.num_layers=6 ${IMAGE[*]}"
  [gated_pixelcnn]="experiment=gated_pixelcnn_binarized_mnist trainer.max_epochs=1 model.module.net.hidden_channels=32 model.module.net.num_layers=6 ${IMAGE[*]}"
  [row_lstm]="experiment=row_lstm_binarized_mnist trainer.max_epochs=1 model.module.net.hidden_channels=16 model.module.net.num_layers=2 ${IMAGE[*]}"
  [diagonal_bilstm]="experiment=diagonal_bilstm_binarized_mnist trainer.max_epochs=1 model.module.net.hidden_channels=16 model.module.net.num_layers=2 ${IMAGE[*]}"
  [pixelsnail]="experiment=pixelsnail_binarized_mnist trainer.max_epochs=1 model.module.net.hidden_channels=32 model.module.net.num_blocks=2 model.module.net.num_res_blocks=1 model.module.net.value_channels=16 ${IMAGE[*]}"
  [image_transformer]="experiment=image_transformer_binarized_mnist trainer.max_epochs=1 model.module.net.dim=64 model.module.net.num_layers=2 model.module.net.num_heads=2 ${IMAGE[*]}"
  [char_rnn]="experiment=char_rnn_tinyshakespeare trainer.max_epochs=1 model.module.net.hidden_size=128 model.module.net.num_layers=1 trainer.val_check_interval=null"
  [char_transformer]="experiment=char_transformer_tinyshakespeare trainer.max_epochs=1 model.module.net.dim=64 model.module.net.num_layers=2 model.module.net.num_heads=2 data.datamodule.seq_len=64"
)
ORDER=(fvsbn nade made pixelcnn gated_pixelcnn row_lstm diagonal_bilstm pixelsnail image_transformer char_rnn char_transformer)
for name in "${@:-${ORDER[@]}}"; do
  # shellcheck disable=SC2086
  train ${RUNS[$name]}
done
