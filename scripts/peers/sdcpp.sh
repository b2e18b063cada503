#!/usr/bin/env bash
# Configures and builds stable-diffusion.cpp (a peer, never part of this repository) from a
# source checkout, CPU only, for `scripts/test.sh peer` and bench/sd/unet_bench.py --sdcpp:
#   git clone https://github.com/leejet/stable-diffusion.cpp SRC_DIR    # checked at 97d29908
#   scripts/peers/sdcpp.sh SRC_DIR [BUILD_DIR]        # BUILD_DIR defaults to SRC_DIR/build
#   SDCPP_SERVER=BUILD_DIR/bin/sd-server scripts/test.sh peer
# WebP/WebM output and the server's web frontend are off: they need more submodules (and npm)
# and neither the test nor the benchmark uses them. GGML_NATIVE (ggml's default) tunes the
# kernels for this machine's CPU.
set -euo pipefail
if [ $# -lt 1 ] || [ ! -f "$1/CMakeLists.txt" ]; then
  echo "usage: scripts/peers/sdcpp.sh SRC_DIR [BUILD_DIR]  (SRC_DIR: a stable-diffusion.cpp checkout)" >&2
  exit 2
fi
src="$(cd "$1" && pwd)"
build="${2:-$src/build}"
if [ ! -f "$src/ggml/CMakeLists.txt" ]; then
  git -C "$src" submodule update --init --depth 1 ggml
fi
cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=Release -DSD_WEBP=OFF -DSD_WEBM=OFF \
  -DSD_SERVER_BUILD_FRONTEND=OFF
cmake --build "$build" --target sd-server sd-cli -j "${JOBS:-$(nproc)}"
echo "built: $build/bin/sd-server $build/bin/sd-cli"
