#!/usr/bin/env bash
# Generate the dataset in parallel, train on CUDA for a bounded time, export ONNX.
# Run from the repo root:  OUT=/some/dir bash models/train/gpu_train.sh
# XH_TINY=1 runs the same steps with tiny sizes (for a CPU check of the logic).
# XH_TOTAL_S bounds the whole run (default 500 s); training gets what generation left.
set -euo pipefail
START=$(date +%s)
OUT=${OUT:-/tmp/xh-out}
PY=${PYTHON:-python3}
export PYTHONPATH=.
export PYTHONUNBUFFERED=1
export PYTHONWARNINGS=ignore::DeprecationWarning
mkdir -p "$OUT"
DATA=${XH_DATA:-/tmp/xh-data}
RUN=${XH_RUN:-/tmp/xh-run}
WORKERS=$(nproc)
if [[ "${XH_TINY:-0}" == "1" ]]; then
  N_TRAIN=${XH_TRAIN:-48}; N_VAL=${XH_VAL:-16}; TOTAL=${XH_TOTAL_S:-90}; EPOCHS=2; EXTRA="--batch 8"
else
  N_TRAIN=${XH_TRAIN:-14000}; N_VAL=${XH_VAL:-1000}; TOTAL=${XH_TOTAL_S:-500}; EPOCHS=400; EXTRA="--eval-every 5"
fi
echo "== xiuhua detector: $N_TRAIN train / $N_VAL val, $WORKERS workers, budget ${TOTAL}s" | tee "$OUT/run.log"
$PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())" 2>&1 | tee -a "$OUT/run.log"
rm -rf "$DATA" "$RUN"
$PY models/train/dataset.py "$DATA" --train "$N_TRAIN" --val "$N_VAL" --workers "$WORKERS" 2>&1 \
  | tee -a "$OUT/run.log"
GEN_DONE=$(date +%s)
# keep ~40 s for loading, final validation, export and copying
TRAIN_S=$(( TOTAL - (GEN_DONE - START) - 40 ))
if (( TRAIN_S < 20 )); then TRAIN_S=20; fi
MINUTES=$($PY -c "print($TRAIN_S / 60)")
echo "== generated in $((GEN_DONE - START))s; training for ${TRAIN_S}s" | tee -a "$OUT/run.log"
$PY models/train/train.py --data "$DATA" --out "$RUN" --max-minutes "$MINUTES" \
  --epochs "$EPOCHS" $EXTRA 2>&1 | tee -a "$OUT/run.log"
cp "$RUN/model.onnx" "$RUN/train_log.json" "$OUT/"
if [[ -f "$RUN/best.pt" ]] && (( $(stat -c %s "$RUN/best.pt") < 16000000 )); then cp "$RUN/best.pt" "$OUT/"; fi
$PY - "$OUT/model.onnx" <<'PYEOF' 2>&1 | tee -a "$OUT/run.log"
import sys, numpy as np, onnxruntime as ort
s = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
o = s.run(None, {s.get_inputs()[0].name: np.zeros((1, 3, 320, 320), np.float32)})[0]
print("onnx output", o.shape)
assert o.shape == (1, 15, 2100), o.shape
PYEOF
echo "== total $(( $(date +%s) - START ))s" | tee -a "$OUT/run.log"
