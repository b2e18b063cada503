#!/usr/bin/env bash
# The Stable Diffusion parity tests' reference and vocabulary (tests/integration/sd_reference.py).
# Idempotent; `scripts/setup.sh test` runs it.
#   - .venv-ref: diffusers on Debian's python3-torch (--system-site-packages), pinned by
#     tests/requirements-reference.txt (+ requirements-reference-nodeps.txt, without their
#     dependencies), re-installed only when those files change;
#   - .tools/clip-vocab: OpenAI CLIP's tokenizer files (vocab.json, merges.txt; 49,408 ids),
#     made from the BPE file the open_clip_torch wheel ships (never committed).
set -euo pipefail
cd "$(dirname "$0")/../.."

PY=/usr/bin/python3
stamp=.venv-ref/.requirements.sha256
want=$(cat tests/requirements-reference.txt tests/requirements-reference-nodeps.txt | sha256sum | cut -d' ' -f1)
if [ ! -x .venv-ref/bin/python ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: creating .venv-ref (diffusers on Debian's torch)"
  [ -x .venv-ref/bin/python ] || "$PY" -m venv --system-site-packages .venv-ref
  .venv-ref/bin/pip install -q -r tests/requirements-reference.txt
  .venv-ref/bin/pip install -q --no-deps -r tests/requirements-reference-nodeps.txt
  echo "$want" > "$stamp"
fi

OPEN_CLIP_VERSION=${OPEN_CLIP_VERSION:-2.24.0}
vocab=.tools/clip-vocab
if [ ! -s "$vocab/vocab.json" ] || [ ! -s "$vocab/merges.txt" ]; then
  echo "setup: fetching CLIP's vocabulary (open_clip_torch $OPEN_CLIP_VERSION wheel)"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  .venv-ref/bin/pip download -q --no-deps "open_clip_torch==$OPEN_CLIP_VERSION" -d "$tmp"
  "$PY" tests/integration/sd_reference.py vocab "$tmp"/open_clip_torch-*.whl "$vocab"
fi
