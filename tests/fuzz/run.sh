#!/usr/bin/env bash
# Fuzzing, both kinds (scripts/test.sh fuzz):
#  1. contract fuzzing of the HTTP API from its OpenAPI document with schemathesis: every
#     generated request against a live `imagegen serve`; any 5xx fails the run;
#  2. the libFuzzer targets (clang, ASan+UBSan) for FUZZ_SECONDS each: the request parser, the
#     AWS layer's parsers, and the image readers (seeded with one image of each format).
set -euo pipefail
cd "$(dirname "$0")/../.."
FUZZ_SECONDS="${FUZZ_SECONDS:-60}"
MAX_EXAMPLES="${MAX_EXAMPLES:-200}"

echo "== schemathesis against /openapi.json ($MAX_EXAMPLES examples per operation)"
MAX_EXAMPLES="$MAX_EXAMPLES" .venv/bin/pytest -q tests/fuzz/test_contract.py -p no:cacheprovider

echo "== libFuzzer: request parser for ${FUZZ_SECONDS}s"
CC=clang-14 CXX=clang++-14 BUILD_DIR=build-fuzz \
  IMAGEGEN_TARGETS="request_fuzz aws_parsers_fuzz http_parsers_fuzz image_decode_fuzz" \
  scripts/build.sh -DIMAGEGEN_FUZZ=ON -DIMAGEGEN_BUILD_TESTS=OFF -DIMAGEGEN_WERROR=OFF -DIMAGEGEN_ENGINE=OFF
mkdir -p build-fuzz/corpus
cp tests/fuzz/seeds/* build-fuzz/corpus/ 2>/dev/null || true
build-fuzz/request_fuzz -max_total_time="$FUZZ_SECONDS" -max_len=4096 build-fuzz/corpus

echo "== libFuzzer: AWS layer parsers for ${FUZZ_SECONDS}s"
mkdir -p build-fuzz/corpus-aws
build-fuzz/aws_parsers_fuzz -max_total_time="$FUZZ_SECONDS" -max_len=8192 build-fuzz/corpus-aws

echo "== libFuzzer: HTTP parsers (head, body coding, Range, multipart/form-data) for ${FUZZ_SECONDS}s"
mkdir -p build-fuzz/corpus-http
cp tests/fuzz/seeds/multipart.txt build-fuzz/corpus-http/
build-fuzz/http_parsers_fuzz -max_total_time="$FUZZ_SECONDS" -max_len=4096 build-fuzz/corpus-http
