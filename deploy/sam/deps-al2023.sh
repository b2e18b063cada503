#!/usr/bin/env bash
# Fetches the build dependencies Amazon Linux 2023 does not package into DIR (a CMake prefix):
# nlohmann/json, CLI11 and cpp-httplib (header-only, from their release archives) and, unless
# IMAGEGEN_ENGINE=OFF, LibTorch (from the PyPI torch wheel, which has one for x86_64 and
# aarch64). Run by `make deps-al2023` inside public.ecr.aws/sam/build-provided.al2023.
# Not exercised by this repository's tests (they run on Debian without Docker); see README.md.
set -euo pipefail
prefix=$(mkdir -p "$1" && cd "$1" && pwd)
NLOHMANN_JSON_VERSION=${NLOHMANN_JSON_VERSION:-3.11.3}
CLI11_VERSION=${CLI11_VERSION:-2.4.2}
HTTPLIB_VERSION=${HTTPLIB_VERSION:-0.18.7}
TORCH_VERSION=${TORCH_VERSION:-2.5.1}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

fetch() { curl -fsSL --retry 3 -o "$2" "$1"; }

if [ ! -f "$prefix/share/cmake/nlohmann_json/nlohmann_jsonConfig.cmake" ]; then
  fetch "https://github.com/nlohmann/json/archive/refs/tags/v$NLOHMANN_JSON_VERSION.tar.gz" "$work/json.tgz"
  tar -xzf "$work/json.tgz" -C "$work"
  cmake -S "$work/json-$NLOHMANN_JSON_VERSION" -B "$work/json-build" -DJSON_BuildTests=OFF \
    -DCMAKE_INSTALL_PREFIX="$prefix" >/dev/null
  cmake --install "$work/json-build" >/dev/null
fi
if [ ! -f "$prefix/share/cmake/CLI11/CLI11Config.cmake" ] && [ ! -d "$prefix/lib/cmake/CLI11" ]; then
  fetch "https://github.com/CLIUtils/CLI11/archive/refs/tags/v$CLI11_VERSION.tar.gz" "$work/cli11.tgz"
  tar -xzf "$work/cli11.tgz" -C "$work"
  cmake -S "$work/CLI11-$CLI11_VERSION" -B "$work/cli11-build" -DCLI11_BUILD_TESTS=OFF \
    -DCLI11_BUILD_EXAMPLES=OFF -DCLI11_BUILD_DOCS=OFF -DCMAKE_INSTALL_PREFIX="$prefix" >/dev/null
  cmake --install "$work/cli11-build" >/dev/null
fi
if [ ! -f "$prefix/lib/pkgconfig/cpp-httplib.pc" ] && [ ! -f "$prefix/lib64/pkgconfig/cpp-httplib.pc" ]; then
  fetch "https://github.com/yhirose/cpp-httplib/archive/refs/tags/v$HTTPLIB_VERSION.tar.gz" "$work/httplib.tgz"
  tar -xzf "$work/httplib.tgz" -C "$work"
  cmake -S "$work/cpp-httplib-$HTTPLIB_VERSION" -B "$work/httplib-build" \
    -DHTTPLIB_REQUIRE_OPENSSL=ON -DCMAKE_INSTALL_PREFIX="$prefix" >/dev/null
  cmake --install "$work/httplib-build" >/dev/null
fi
if [ "${IMAGEGEN_ENGINE:-ON}" != OFF ] && [ ! -d "$prefix/torch" ]; then
  python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$work/wheel" \
    --index-url https://download.pytorch.org/whl/cpu "torch==$TORCH_VERSION"
  python3 -m zipfile -e "$work"/wheel/torch-*.whl "$work/torch-wheel"
  mv "$work/torch-wheel/torch" "$prefix/torch"
  echo "deps-al2023: LibTorch in $prefix/torch (Torch_DIR=$prefix/torch/share/cmake/Torch)"
fi
echo "deps-al2023: dependencies in $prefix"
