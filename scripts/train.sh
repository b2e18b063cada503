#!/usr/bin/env bash
# Reproduces the bundled model (models/local/): builds the trainer, trains from seed 1 on
# synthetic scenes rendered on the fly, then copies the EMA weights and config into models/local.
# Interrupted? Run it again: it resumes from $OUT/ckpt (same data, noise and schedule per step).
#
#   scripts/train.sh [extra imagegen-train flags, e.g. --max-minutes 60]
#   env: BUILD (default build-engine), OUT (default $BUILD/train),
#        BLAS_DIR (directory with a faster libblas.so.3, e.g. OpenBLAS; Debian's default
#        reference BLAS makes training ~2x slower; installing libopenblas0-pthread does the same)
#
# The shipped model: 5000 steps x 32 images, 1 torch thread (on 2 shared cores, 2 threads were
# slower than 1: other processes preempt one of OpenMP's threads), see models/local/MODEL_CARD.md.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD:-build-engine}
out=${OUT:-$build/train}
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release > /dev/null
ninja -C "$build" imagegen-train
if [[ -n "${BLAS_DIR:-}" ]]; then
  export LD_LIBRARY_PATH="$BLAS_DIR${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" OPENBLAS_NUM_THREADS=1
fi
nice -n 5 "$build/imagegen-train" --out "$out" --steps 5000 --batch 32 --lr 1e-3 --ema 0.999 \
  --threads 1 --seed 1 --channels 32,64,96 "$@"
if [[ "$(python3 -c "import json; print(json.load(open('$out/ckpt/progress.json'))['step'])")" == 5000 ]]; then
  mkdir -p models/local
  cp "$out/model.safetensors" "$out/config.json" models/local/
  echo "copied $out/model.safetensors and config.json to models/local/"
else
  echo "training stopped early; rerun scripts/train.sh to resume" >&2
fi
