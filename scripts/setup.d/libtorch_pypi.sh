#!/usr/bin/env bash
# LibTorch 2.x from PyPI's torch wheel, for an engine build against it (issue 12; BENCHMARKS.md):
#   cmake -S . -B build-torch2 -DIMAGEGEN_ENGINE=ON \
#     -DCMAKE_PREFIX_PATH=$PWD/.tools/libtorch-pypi/torch/share/cmake   (cmake/torch.cmake)
# Opt-in: `scripts/setup.sh test` runs every setup.d script without arguments, and this one does
# nothing then; `scripts/setup.d/libtorch_pypi.sh fetch` (or IMAGEGEN_LIBTORCH=pypi) installs.
#
# The wheel is a CUDA build. CPU inference links only libtorch_cpu.so + libc10.so, but
# libtorch_cpu.so NEEDs libcudart.so.13 and libcupti.so.13 (readelf -d) and finds them through its
# RPATH $ORIGIN/../../nvidia/cu13/lib. Of the wheel's CUDA dependencies (cuDNN, cuBLAS, NCCL, ...)
# only those two wheels are fetched (versions pinned by torch's Requires-Dist
# cuda-toolkit[cudart,cupti]==13.2.2), and only those two libraries are kept.
# Download: torch 539 MB + nvidia-cuda-runtime 2.3 MB + nvidia-cuda-cupti 12 MB (4 s to 2 min
# here, with the unpacking); kept: 506 MB in .tools/libtorch-pypi (gitignored) — include/,
# share/cmake, the CPU libraries (libtorch_cpu.so 448 MB) and the two CUDA runtime libraries.
# Idempotent: a stamp file holds the versions; a second run with the same pins does nothing.
set -euo pipefail
cd "$(dirname "$0")/../.."

if [ "${1:-}" != fetch ] && [ "${IMAGEGEN_LIBTORCH:-}" != pypi ]; then
  exit 0
fi

TORCH_VERSION=2.15.0
CUDA_VERSION=13.2.86  # cuda-toolkit 13.2.2's nvidia-cuda-runtime / nvidia-cuda-cupti
dest=.tools/libtorch-pypi
stamp=$dest/.versions
want="torch==$TORCH_VERSION nvidia-cuda-runtime==$CUDA_VERSION nvidia-cuda-cupti==$CUDA_VERSION"
if [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
  exit 0
fi

PIP=pip  # only downloads: any pip will do; the test venv's when setup.sh has made it
[ -x .venv/bin/pip ] && PIP=.venv/bin/pip
echo "setup: fetching LibTorch $TORCH_VERSION from PyPI's torch wheel (~550 MB) into $dest"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# The host's Python need not be 3.11: ask for the cp311 manylinux wheel explicitly (the C++
# libraries are the same in every cp3xx wheel).
"$PIP" download -q --no-deps --only-binary=:all: --python-version 3.11 \
  --platform manylinux_2_28_x86_64 "torch==$TORCH_VERSION" -d "$tmp"
"$PIP" download -q --no-deps --only-binary=:all: --python-version 3.11 \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_25_x86_64 \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  "nvidia-cuda-runtime==$CUDA_VERSION" "nvidia-cuda-cupti==$CUDA_VERSION" -d "$tmp"

# extract WHEEL DEST PREFIX...: the wheel's members under those prefixes (Python's zipfile: unzip
# is not among scripts/setup.sh's packages).
extract() {
  python3 - "$@" <<'EOF'
import sys, zipfile
wheel, dest, prefixes = sys.argv[1], sys.argv[2], tuple(sys.argv[3:])
with zipfile.ZipFile(wheel) as z:
    z.extractall(dest, [m for m in z.namelist() if m.startswith(prefixes)])
EOF
}
rm -rf "$dest"
mkdir -p "$dest"
extract "$tmp"/torch-"$TORCH_VERSION"-*.whl "$dest" torch/include/ torch/share/ torch/lib/
# The GPU side and the Python bindings: never loaded by a CPU engine (libtorch_cpu.so does not
# NEED them), 540 MB.
rm -f "$dest"/torch/lib/libtorch_cuda*.so "$dest"/torch/lib/libc10_cuda.so \
  "$dest"/torch/lib/libtorch_nvshmem.so "$dest"/torch/lib/libcaffe2_nvrtc.so \
  "$dest"/torch/lib/libtorch_python.so
extract "$tmp"/nvidia_cuda_runtime-"$CUDA_VERSION"-*.whl "$dest" nvidia/cu13/lib/libcudart.so.13
extract "$tmp"/nvidia_cuda_cupti-"$CUDA_VERSION"-*.whl "$dest" nvidia/cu13/lib/libcupti.so.13
echo "$want" > "$stamp"
