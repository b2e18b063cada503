#!/usr/bin/env bash
# Fuzzing, both kinds (scripts/test.sh fuzz):
#  1. contract fuzzing of the HTTP API from its OpenAPI document with schemathesis: every
#     generated request against a live `imagegen serve`; any 5xx fails the run;
#  2. the libFuzzer target tests/fuzz/request_fuzz.cc (clang, ASan+UBSan) for FUZZ_SECONDS.
set -euo pipefail
cd "$(dirname "$0")/../.."
FUZZ_SECONDS="${FUZZ_SECONDS:-60}"
MAX_EXAMPLES="${MAX_EXAMPLES:-200}"

echo "== schemathesis against /openapi.json ($MAX_EXAMPLES examples per operation)"
MAX_EXAMPLES="$MAX_EXAMPLES" .venv/bin/pytest -q tests/fuzz/test_contract.py -p no:cacheprovider

echo "== libFuzzer: request parser for ${FUZZ_SECONDS}s"
CC=clang-14 CXX=clang++-14 BUILD_DIR=build-fuzz IMAGEGEN_TARGETS="request_fuzz aws_parsers_fuzz http_parsers_fuzz" \
  scripts/build.sh -DIMAGEGEN_FUZZ=ON -DIMAGEGEN_BUILD_TESTS=OFF -DIMAGEGEN_WERROR=OFF -DIMAGEGEN_ENGINE=OFF
mkdir -p build-fuzz/corpus
cp tests/fuzz/seeds/* build-fuzz/corpus/ 2>/dev/null || true
build-fuzz/request_fuzz -max_total_time="$FUZZ_SECONDS" -max_len=4096 build-fuzz/corpus

echo "== libFuzzer: AWS layer parsers for ${FUZZ_SECONDS}s"
mkdir -p build-fuzz/corpus-aws
build-fuzz/aws_parsers_fuzz -max_total_time="$FUZZ_SECONDS" -max_len=8192 build-fuzz/corpus-aws

echo "== libFuzzer: HTTP server parsers (head, gzip body, Range) for ${FUZZ_SECONDS}s"
mkdir -p build-fuzz/corpus-http
printf 'POST /generate HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\n{}' > build-fuzz/corpus-http/seed
build-fuzz/http_parsers_fuzz -max_total_time="$FUZZ_SECONDS" -max_len=8192 build-fuzz/corpus-http

# The CLIP tokenizer belongs to the engine's build (IMAGEGEN_ENGINE=ON; it compiles no LibTorch).
echo "== libFuzzer: CLIP tokenizer (hostile tokenizer files and prompts) for ${FUZZ_SECONDS}s"
CC=clang-14 CXX=clang++-14 BUILD_DIR=build-fuzz-engine IMAGEGEN_TARGETS=clip_tokenizer_fuzz \
  scripts/build.sh -DIMAGEGEN_FUZZ=ON -DIMAGEGEN_BUILD_TESTS=OFF -DIMAGEGEN_WERROR=OFF -DIMAGEGEN_ENGINE=ON
mkdir -p build-fuzz-engine/corpus-clip
build-fuzz-engine/clip_tokenizer_fuzz -max_total_time="$FUZZ_SECONDS" -max_len=8192 -rss_limit_mb=2048 \
  build-fuzz-engine/corpus-clip
