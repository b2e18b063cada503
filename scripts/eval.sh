#!/usr/bin/env bash
# Produces the held-out prompt-adherence table of the model card: first validates the
# rule-based checker on the dataset's own images, then generates every held-out prompt with
# several seeds and checks each image.
#
#   scripts/eval.sh [MODEL_DIR]        (default models/local)
#   env: BUILD (default build-engine), SEEDS (4), PROMPTS (8 per held-out colour x shape pair),
#        THREADS (1), SAVE (a directory to keep the generated images, optional)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD:-build-engine}
model=${1:-models/local}
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release > /dev/null
ninja -C "$build" imagegen-eval > /dev/null
"$build/imagegen-eval" --ground-truth 3000
echo
"$build/imagegen-eval" --model "$model" --seeds "${SEEDS:-4}" --prompts-per-pair "${PROMPTS:-8}" \
  --threads "${THREADS:-1}" ${SAVE:+--save "$SAVE"}
echo
"$build/imagegen-eval" --model "$model" --seeds "${SEEDS:-4}" --prompts-per-pair "${PROMPTS:-8}" \
  --threads "${THREADS:-1}" --train-split
