#!/usr/bin/env bash
# Fetches the build dependencies Amazon Linux 2023 does not package into DIR (a CMake prefix):
# nlohmann/json, CLI11 and cpp-httplib (header-only, from their release archives) and, unless
# IMAGEGEN_ENGINE=OFF, LibTorch (from the PyPI torch wheel, which has one for x86_64 and
# aarch64). Run by `make deps-al2023` inside public.ecr.aws/sam/build-provided.al2023, after the
# image's compiler and -devel packages are installed (install-build-tools.sh native).
#
#   deps-al2023.sh DIR
#
# Pitfalls of that image handled here:
#   * CMake is 3.22 (AL2023's package); when CMakeLists.txt asks for more, CMake from PyPI is
#     installed (`pip3 install 'cmake>=X.Y'`).
#   * `dnf` there is microdnf, which rejects -q: this script installs no system packages; where it
#     must, it calls `dnf install -y` / `microdnf install -y` without -q.
#   * cpp-httplib's CMake install writes a CMake package but no cpp-httplib.pc, while
#     CMakeLists.txt looks for cpp-httplib with pkg-config first: the .pc is written here.
# Not exercised by this repository's tests (they run on Debian without Docker); see README.md.
set -euo pipefail
[ $# -eq 1 ] || { echo "usage: $0 PREFIX" >&2; exit 2; }
prefix=$(mkdir -p "$1" && cd "$1" && pwd)
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
NLOHMANN_JSON_VERSION=${NLOHMANN_JSON_VERSION:-3.11.3}
CLI11_VERSION=${CLI11_VERSION:-2.4.2}
# The version Debian 12 packages (what the code is built and tested with elsewhere).
HTTPLIB_VERSION=${HTTPLIB_VERSION:-0.11.4}
TORCH_VERSION=${TORCH_VERSION:-2.5.1}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

fetch() { curl -fsSL --retry 3 -o "$2" "$1"; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# A package manager install that works with dnf and with microdnf (no -q: microdnf rejects it).
pkg_install() {
  local dnf
  dnf=$(command -v dnf || command -v microdnf) || { echo "deps-al2023: no dnf/microdnf to install $*" >&2; return 1; }
  as_root "$dnf" install -y "$@"
}

version_ge() { # version_ge A B: A >= B (dotted numbers)
  [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n1)" = "$2" ]
}

# CMake: at least what CMakeLists.txt requires.
need_cmake=$(sed -n 's/^cmake_minimum_required(VERSION \([0-9.]*\).*/\1/p' "$repo/CMakeLists.txt" | head -n1)
need_cmake=${need_cmake:-3.22}
have_cmake=$(cmake --version 2>/dev/null | awk 'NR==1 {print $3}')
if [ -z "$have_cmake" ] || ! version_ge "$have_cmake" "$need_cmake"; then
  echo "deps-al2023: CMake ${have_cmake:-missing} < $need_cmake; installing CMake from PyPI"
  command -v pip3 >/dev/null || python3 -m pip --version >/dev/null 2>&1 || pkg_install python3-pip
  if command -v pip3 >/dev/null; then pip3 install --quiet "cmake>=$need_cmake"
  else python3 -m pip install --quiet "cmake>=$need_cmake"; fi
  hash -r
  cmake --version | head -n1
fi

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

httplib_pc="$prefix/lib/pkgconfig/cpp-httplib.pc"
if [ ! -f "$prefix/include/httplib.h" ]; then
  fetch "https://github.com/yhirose/cpp-httplib/archive/refs/tags/v$HTTPLIB_VERSION.tar.gz" "$work/httplib.tgz"
  tar -xzf "$work/httplib.tgz" -C "$work"
  # Header-only, plain HTTP: imagegen serves HTTP (TLS ends at API Gateway or a proxy) and makes
  # its outbound HTTPS calls with libcurl, so no OpenSSL/zlib/brotli support is compiled in.
  cmake -S "$work/cpp-httplib-$HTTPLIB_VERSION" -B "$work/httplib-build" \
    -DHTTPLIB_USE_OPENSSL_IF_AVAILABLE=OFF -DHTTPLIB_USE_ZLIB_IF_AVAILABLE=OFF \
    -DHTTPLIB_USE_BROTLI_IF_AVAILABLE=OFF -DCMAKE_INSTALL_PREFIX="$prefix" >/dev/null
  cmake --install "$work/httplib-build" >/dev/null
  rm -f "$httplib_pc"
fi
if [ ! -f "$httplib_pc" ]; then
  # cpp-httplib's CMake install writes no pkg-config file (only its meson build does).
  mkdir -p "$(dirname "$httplib_pc")"
  cat >"$httplib_pc" <<EOF
prefix=$prefix
includedir=\${prefix}/include

Name: cpp-httplib
Description: A C++ header-only HTTP server and client library (plain HTTP; written by deps-al2023.sh)
URL: https://github.com/yhirose/cpp-httplib
Version: $HTTPLIB_VERSION
Cflags: -I\${includedir}
Libs: -pthread
EOF
fi
if command -v pkg-config >/dev/null; then
  PKG_CONFIG_PATH="$prefix/lib/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}" \
    pkg-config --exists --print-errors cpp-httplib
fi

if [ "${IMAGEGEN_ENGINE:-ON}" != OFF ] && [ ! -d "$prefix/torch" ]; then
  python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$work/wheel" \
    --index-url https://download.pytorch.org/whl/cpu "torch==$TORCH_VERSION"
  python3 -m zipfile -e "$work"/wheel/torch-*.whl "$work/torch-wheel"
  mv "$work/torch-wheel/torch" "$prefix/torch"
  echo "deps-al2023: LibTorch in $prefix/torch (Torch_DIR=$prefix/torch/share/cmake/Torch)"
fi
echo "deps-al2023: dependencies in $prefix (pkg-config: PKG_CONFIG_PATH=$prefix/lib/pkgconfig)"
