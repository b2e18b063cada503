#!/usr/bin/env bash
# Reproduces the bundled model (models/local/) in two stages, then copies the EMA weights and
# config into models/local. Each stage resumes from its own ckpt/ when run again (same data,
# noise and schedule per step), so an interrupted run is finished by rerunning this script.
#
#   stage 1: 5000 steps from random weights, uniform timesteps, full captions
#   stage 2: 12000 steps from stage 1's weights, with word_context (the UNet also attends to
#            plain word embeddings), 25% of captions without the shapes' colour word, and half
#            of the timesteps drawn around the middle of the schedule
#
#   scripts/train.sh [extra imagegen-train flags for stage 2, e.g. --max-minutes 60]
#   env: BUILD (default build-engine), OUT (default $BUILD/train; stages in $OUT/stage1, stage2)
#
# 1 torch thread per run: on 2 shared cores, 2 threads were slower than 1 (other processes
# preempt one of OpenMP's threads and the other waits at every barrier). See MODEL_CARD.md.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD:-build-engine}
out=${OUT:-$build/train}
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release > /dev/null
ninja -C "$build" imagegen-train
export OPENBLAS_NUM_THREADS=1

finished() {  # finished DIR STEPS
  [[ -f "$1/ckpt/progress.json" ]] &&
    [[ "$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['step'])" \
      "$1/ckpt/progress.json")" == "$2" ]]
}

nice -n 5 "$build/imagegen-train" --out "$out/stage1" --steps 5000 --batch 32 --lr 1e-3 \
  --ema 0.999 --threads 1 --seed 1 --channels 32,64,96
finished "$out/stage1" 5000 || { echo "stage 1 stopped early; rerun to resume" >&2; exit 1; }

nice -n 5 "$build/imagegen-train" --out "$out/stage2" --init "$out/stage1" --word-context \
  --omit-colour 0.25 --t-sampling mid --steps 12000 --batch 32 --lr 6e-4 --ema 0.999 \
  --threads 1 --seed 2 --channels 32,64,96 "$@"
finished "$out/stage2" 12000 || { echo "stage 2 stopped early; rerun to resume" >&2; exit 1; }

mkdir -p models/local
cp "$out/stage2/model.safetensors" "$out/stage2/config.json" models/local/
echo "copied $out/stage2/model.safetensors and config.json to models/local/"
