#!/usr/bin/env bash
# Runs the tests, installing and building whatever is missing first.
#   scripts/test.sh            the default suite: unit tests (CTest) + integration and browser
#                              tests (pytest) against real peers started by the tests
#   scripts/test.sh unit       unit tests only
#   scripts/test.sh fuzz       contract fuzzing of the HTTP API (schemathesis) + libFuzzer targets
#   scripts/test.sh container  build the container image with podman and drive it over HTTP
#   scripts/test.sh asan       unit tests built with AddressSanitizer + UBSan (build-asan/)
#   scripts/test.sh package    the Lambda zip as `sam build` makes it, for x86_64 and arm64, run
#                              under the RIE inside a Debian 11 root (arm64 under qemu); slow the
#                              first time (sysroots, cross builds, debootstrap)
#   scripts/test.sh peer       tests against peers built outside the repository (marker `peer`):
#                              stable-diffusion.cpp's sd-server as the openai: upstream, given
#                              SDCPP_SERVER=/path/to/sd-server (scripts/peers/sdcpp.sh SRC_DIR
#                              builds it; see test_openai_provider.py)
#   scripts/test.sh hostile    hostile clients against `imagegen serve` over raw sockets (framing,
#                              limits, deadlines, slowloris, drain); HOSTILE_BIN=PATH tests another
#                              binary; the JSON report goes to $HOSTILE_REPORT or
#                              artifacts/hostile/report.json
set -euo pipefail
cd "$(dirname "$0")/.."
suite="${1:-default}"
scripts/setup.sh test
export IMAGEGEN_BIN="$PWD/build/imagegen"
export PATH="$PWD/.tools/bin:$PATH"

case "$suite" in
  default|unit)
    scripts/build.sh
    ctest --test-dir build --output-on-failure -j 2
    if [ "$suite" = default ]; then
      .venv/bin/pytest -q tests/integration tests/fuzz/test_contract.py -p no:cacheprovider \
        -m "not package and not peer"
    fi
    ;;
  asan)
    # The engine is left out: LibTorch itself is not built with ASan, and its own tests run in
    # the default suite.
    BUILD_DIR=build-asan scripts/build.sh -DIMAGEGEN_SANITIZE=ON -DIMAGEGEN_ENGINE=OFF
    ASAN_OPTIONS=detect_leaks=0 ctest --test-dir build-asan --output-on-failure -j 2
    ;;
  fuzz)
    scripts/build.sh
    bash tests/fuzz/run.sh
    ;;
  package)
    .venv/bin/pytest -q tests/integration -m package -p no:cacheprovider
    ;;
  peer)
    .venv/bin/pytest -q tests/integration -m peer -p no:cacheprovider
    ;;
  container)
    .venv/bin/pytest -q tests/container -p no:cacheprovider
    ;;
  hostile)
    if [ -z "${HOSTILE_BIN:-}" ]; then IMAGEGEN_TARGETS=imagegen scripts/build.sh; fi
    IMAGEGEN_BIN="${HOSTILE_BIN:-$IMAGEGEN_BIN}" .venv/bin/pytest -q tests/hostile -p no:cacheprovider
    ;;
  *)
    echo "usage: scripts/test.sh [default|unit|asan|fuzz|container|package|hostile]" >&2
    exit 2
    ;;
esac
