#!/usr/bin/env bash
# Configures and builds imagegen into ./build (or $BUILD_DIR). Extra arguments go to CMake.
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir="${BUILD_DIR:-build}"
jobs="${IMAGEGEN_BUILD_JOBS:-$(nproc)}"
if [ ! -f "$build_dir/build.ninja" ] || [ $# -gt 0 ]; then
  cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE="${CMAKE_BUILD_TYPE:-RelWithDebInfo}" "$@" >/dev/null
fi
ninja -C "$build_dir" -j "$jobs" ${IMAGEGEN_TARGETS:-}
