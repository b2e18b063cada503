#!/usr/bin/env bash
# The main job on embedded defaults: installs what is missing, builds, then runs imagegen with
# the given arguments (default: serve on 127.0.0.1:8080 with the embedded engine, images in
# ./data/images). Examples:
#   scripts/run.sh generate "a red circle on a blue background" --out circle.png
#   scripts/run.sh serve --port 8080
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh build >&2
IMAGEGEN_TARGETS=imagegen scripts/build.sh >&2
[ $# -eq 0 ] && set -- serve
exec build/imagegen "$@"
