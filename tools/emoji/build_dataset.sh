#!/usr/bin/env bash
# Installs the pinned emoji packages (tools/emoji/package.json + package-lock.json) into
# .cache/emoji (gitignored: the images are never committed) and builds the dataset into
# .cache/emoji/dataset (see build_dataset.py). Idempotent: npm runs only when the lock changes,
# the dataset is rebuilt only when its inputs change.
#   tools/emoji/build_dataset.sh [extra build_dataset.py flags]
#   env: PYTHON (default .venv/bin/python: needs Pillow), SHAPES_BIN (default
#        build/imagegen-dataset when built: adds the shapes world), EMOJI_CACHE
set -euo pipefail
cd "$(dirname "$0")/../.."
cache=${EMOJI_CACHE:-.cache/emoji}
python=${PYTHON:-.venv/bin/python}
shapes_bin=${SHAPES_BIN:-build/imagegen-dataset}
mkdir -p "$cache"
if ! cmp -s tools/emoji/package-lock.json "$cache/package-lock.json" ||
  [ ! -d "$cache/node_modules/emojibase-data" ]; then
  cp tools/emoji/package.json tools/emoji/package-lock.json "$cache/"
  (cd "$cache" && npm ci --no-audit --no-fund --silent)
fi
args=(--sources "$cache/node_modules" --out "$cache/dataset" "$@")
if [ -x "$shapes_bin" ]; then
  args+=(--shapes-bin "$shapes_bin")
else
  echo "build_dataset: $shapes_bin not built; the dataset has no shapes world" \
    "(build it: ninja -C build imagegen-dataset)" >&2
fi
stamp="$cache/dataset/.inputs.sha256"
want=$( (cat tools/emoji/package-lock.json tools/emoji/emoji_data.py tools/emoji/build_dataset.py
  echo "${args[*]}"; if [ -x "$shapes_bin" ]; then sha256sum < "$shapes_bin"; fi) |
  sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
  echo "build_dataset: $cache/dataset is up to date" >&2
  exit 0
fi
"$python" tools/emoji/build_dataset.py "${args[@]}"
echo "$want" > "$stamp"
