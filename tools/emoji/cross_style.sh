#!/usr/bin/env bash
# The checker's cross-style validation: trains it on one style (with augmentations), tests it on
# the other style's clean renderings, both ways, and writes models/checker/cross_style.json
# (top-1/top-5 beside raw-pixel nearest neighbour, steps, seconds). The two runs' weights stay
# in .cache/emoji/checker-<style>/ (not shipped: the shipped checker trains on both styles).
#   tools/emoji/cross_style.sh [STEPS]     (default 500; env PYTHON: the reference Python)
# The two runs are independent and use one thread each, so they run side by side (one per core
# of a 2-core machine); each writes its log to .cache/emoji/checker-<style>.log.
set -euo pipefail
cd "$(dirname "$0")/../.."
python=${PYTHON:-${IMAGEGEN_REFERENCE_PYTHON:-.venv-ref/bin/python}}
steps=${1:-500}
export OPENBLAS_NUM_THREADS=1
mkdir -p .cache/emoji
pids=()
for style in google twitter; do
  "$python" tools/emoji/train_checker.py --train-styles "$style" --steps "$steps" \
    --out ".cache/emoji/checker-$style" > ".cache/emoji/checker-$style.log" 2>&1 &
  pids+=($!)
done
for pid in "${pids[@]}"; do
  wait "$pid" || { echo "cross_style: a training run failed (see .cache/emoji/checker-*.log)" >&2; exit 1; }
done
"$python" - <<'PY'
import json
out = {}
for train, test in (("google", "twitter"), ("twitter", "google")):
    config = json.load(open(f".cache/emoji/checker-{train}/config.json"))
    v = config["validation"]
    out[f"{train}->{test}"] = {**v[f"cross_style_{test}"],
                               "pixel_nn": v[f"cross_style_{test}_pixel_nn"],
                               "held_out_aug_same_style": v[f"held_out_aug_{train}"],
                               "training": config["training"]}
json.dump(out, open("models/checker/cross_style.json", "w"), indent=1)
print(json.dumps({k: {m: v[m] for m in ("top1", "top5", "pixel_nn")} for k, v in out.items()}))
PY
