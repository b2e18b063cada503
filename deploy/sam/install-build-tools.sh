#!/usr/bin/env bash
# Installs the tools deploy/sam/Makefile needs, with the host's package manager.
#   install-build-tools.sh          the sysroot route: clang, lld, make, patch, Python 3, CMake
#   install-build-tools.sh native   the AL2023 route: the image's compiler and -devel libraries
# Debian/Ubuntu use apt-get; Amazon Linux 2023 uses dnf, which is microdnf in AWS's Lambda build
# images (no -q there). CMake older than 3.22 is replaced by CMake from PyPI.
set -euo pipefail
mode=${1:-sysroot}
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

if command -v apt-get >/dev/null; then
  pkgs=(clang lld make patch python3 cmake ninja-build pkg-config ca-certificates)
  missing=()
  for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
else
  dnf=$(command -v dnf || command -v microdnf)
  pkgs=(clang lld make patch python3 python3-pip tar gzip xz)
  [ "$mode" = native ] && pkgs+=(gcc-c++ git pkgconf-pkg-config libcurl-devel openssl-devel
    sqlite-devel libpng-devel libjpeg-turbo-devel libwebp-devel zlib-devel boost-devel binutils
    findutils which unzip)
  as_root "$dnf" install -y "${pkgs[@]}"
fi

# CMakeLists.txt needs CMake 3.22 (Amazon Linux 2023 ships 3.22).
if ! cmake --version 2>/dev/null | awk 'NR==1 {split($3, v, "."); exit !(v[1] > 3 || (v[1] == 3 && v[2] >= 22))}'; then
  python3 -m pip install --quiet 'cmake>=3.22,<4'
fi
