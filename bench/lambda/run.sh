#!/usr/bin/env bash
# Lambda cold start and warm overhead: the C++ bootstrap vs a boto3 Python handler, same RIE,
# same endpoints, same event, same run. Writes bench/lambda/RESULTS.md.
#   bench/lambda/run.sh [--runs N] [--warm M] [--bin path/to/imagegen]
set -euo pipefail
cd "$(dirname "$0")/../.."
[ -x .tools/bin/aws-lambda-rie ] || bash scripts/setup.d/lambda.sh
[ -x .venv/bin/python ] || { echo "run scripts/setup.sh test first" >&2; exit 2; }
export IMAGEGEN_BIN="${IMAGEGEN_BIN:-$PWD/build/imagegen}"
[ -x "$IMAGEGEN_BIN" ] || { echo "$IMAGEGEN_BIN is not built (scripts/build.sh)" >&2; exit 2; }
exec .venv/bin/python bench/lambda/bench.py --bin "$IMAGEGEN_BIN" "$@"
