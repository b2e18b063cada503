#!/usr/bin/env bash
# Installs what imagegen needs on Debian 12. Idempotent: a second run does (almost) nothing.
#   scripts/setup.sh         build dependencies (enough to build and run imagegen)
#   scripts/setup.sh bench   + benchmark baselines (Debian's python3-torch for bench/engine)
#   scripts/setup.sh test    + test dependencies: Python venv with the test peers, browser,
#                            and the tools installed by scripts/setup.d/*.sh
set -euo pipefail
cd "$(dirname "$0")/.."
mode="${1:-build}"

BUILD_PACKAGES=(build-essential cmake ninja-build pkg-config git ca-certificates
  libtorch-dev libcurl4-openssl-dev libssl-dev libsqlite3-dev libpng-dev libjpeg62-turbo-dev
  libwebp-dev nlohmann-json3-dev libboost1.81-dev zlib1g-dev libcpp-httplib-dev libcli11-dev
  libgtest-dev libicu-dev clang-format
  libopenblas0-pthread)  # LibTorch's BLAS: 2.3-2.5x faster than the reference BLAS, same pixels
TEST_PACKAGES=(python3 python3-venv chromium curl wrk
  libclang-rt-14-dev  # libFuzzer and the sanitizers' runtime for clang (tests/fuzz/run.sh)
  python3-torch)  # the Stable Diffusion reference's torch (.venv-ref, scripts/setup.d/sd_reference.sh)

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

install_packages() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
}

install_packages "${BUILD_PACKAGES[@]}"
[ "$mode" = build ] && exit 0
if [ "$mode" = bench ]; then
  install_packages python3-torch wrk
  exit 0
fi

install_packages "${TEST_PACKAGES[@]}"

# Python test peers (moto, botocore, schemathesis, SAM CLI, linters) in ./.venv, re-installed
# only when tests/requirements.txt changes.
PY=python3
command -v /usr/bin/python3 >/dev/null && PY=/usr/bin/python3
stamp=.venv/.requirements.sha256
want=$(sha256sum tests/requirements.txt | cut -d' ' -f1)
if [ ! -x .venv/bin/python ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: creating .venv"
  [ -x .venv/bin/python ] || "$PY" -m venv .venv
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -r tests/requirements.txt
  echo "$want" > "$stamp"
fi

# Everything else a part of the project needs for its tests (each script is idempotent).
for script in scripts/setup.d/*.sh; do
  [ -e "$script" ] || continue
  bash "$script"
done
