#!/usr/bin/env bash
# Image format benchmark: encode time, decode time, size and PSNR per format at 512x512 (PNG vs
# JPEG q75/q90 vs WebP q75/q90/lossless) through image/codec.h, on
#   * an image of the embedded engine (model "local"), when ENGINE_BIN names a binary built with
#     the engine (default: build/imagegen, used if it can run --model local);
#   * the test model's 512x512 gradient;
#   * a synthetic texture (gradient + per-pixel noise), photograph-like detail.
# Writes bench/formats/RESULTS.md.
#   bench/formats/run.sh [REPS]   (encodes per case, default 20)
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD_DIR=${BUILD_DIR:-build}
ENGINE_BIN=${ENGINE_BIN:-$BUILD_DIR/imagegen}
REPS=${1:-20}
[ -f "$BUILD_DIR/libimagegen_image.a" ] || ninja -C "$BUILD_DIR" imagegen
work=$(mktemp -d /tmp/imagegen-formats-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
c++ -std=c++20 -O2 -Isrc bench/formats/formats_bench.cc "$BUILD_DIR/libimagegen_image.a" \
  "$BUILD_DIR/libimagegen_core.a" $(pkg-config --libs libpng libjpeg libwebp) -o "$work/bench"
prompt="a red circle on a blue background"
inputs=()
if "$ENGINE_BIN" generate "$prompt" --model local --size 512x512 --seed 7 --out "$work/local.png" \
     --store "file://$work/store" >/dev/null 2>&1; then
  inputs+=("embedded engine (local)=$work/local.png")
fi
"$BUILD_DIR/imagegen" generate "$prompt" --model test --size 512x512 --seed 7 \
  --out "$work/test.png" --store "file://$work/store" >/dev/null
inputs+=("test model=$work/test.png")
{
  echo "# Output formats at 512x512"
  echo
  echo "$(date -u +%Y-%m-%d), $(nproc) CPU cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')),"
  echo "shared with other work while measured. libjpeg-turbo $(pkg-config --modversion libjpeg), libwebp $(pkg-config --modversion libwebp), libpng $(pkg-config --modversion libpng)."
  echo "Command: \`bench/formats/run.sh $REPS\`$( [ "$ENGINE_BIN" != "$BUILD_DIR/imagegen" ] && echo " with ENGINE_BIN=$ENGINE_BIN")."
  echo "Sizes include the provenance (PNG iTXt; EXIF + XMP in JPEG and WebP, ~1 KB)."
  echo
  "$work/bench" "${inputs[@]}" --texture --reps "$REPS"
} | tee bench/formats/RESULTS.md.tmp
mv bench/formats/RESULTS.md.tmp bench/formats/RESULTS.md
