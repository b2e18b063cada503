#!/usr/bin/env bash
# The emoji dataset (issue 13): pinned npm packages into .cache/emoji, dataset built there.
set -euo pipefail
exec "$(dirname "$0")/../../tools/emoji/build_dataset.sh"
