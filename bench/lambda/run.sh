#!/usr/bin/env bash
# Lambda cold start (init) and warm overhead of the PACKAGED imagegen bootstrap (the zip that
# `make -C deploy/sam zip` / `sam build` makes), side by side in one run with a Rust
# `lambda_runtime` hello world (bench/lambda/rust_hello) and a boto3 Python handler, all under
# aws-lambda-rie. Writes bench/lambda/RESULTS.md.
#   bench/lambda/run.sh [--runs N] [--warm M] [--zip path/to/imagegen-lambda-x86_64.zip]
#                       [--bin LABEL=path/to/imagegen]   (also measure an unpackaged build)
# The zip is made when missing (make -C deploy/sam zip ARCH=x86_64, minutes); the Rust
# bootstrap is built with cargo (CARGO_JOBS, default 1: the bench machine is small and shared).
set -euo pipefail
cd "$(dirname "$0")/../.."
[ -x .tools/bin/aws-lambda-rie ] || bash scripts/setup.d/lambda.sh
[ -x .venv/bin/python ] || { echo "run scripts/setup.sh test first" >&2; exit 2; }
.venv/bin/python -c "import awslambdaric" 2>/dev/null || bash scripts/setup.d/lambda.sh
zip=build-sam-x86_64/imagegen-lambda-x86_64.zip
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  case "${args[i]}" in
    --zip) zip="${args[i + 1]}" ;;
    --zip=*) zip="${args[i]#--zip=}" ;;
  esac
done
if [ ! -f "$zip" ]; then
  [ "$zip" = build-sam-x86_64/imagegen-lambda-x86_64.zip ] || { echo "$zip: no such file" >&2; exit 2; }
  echo "bench: $zip is missing; making it (make -C deploy/sam zip ARCH=x86_64)" >&2
  make -C deploy/sam zip ARCH=x86_64
fi
command -v cargo >/dev/null || { echo "cargo is needed for the Rust baseline (bench/lambda/rust_hello)" >&2; exit 2; }
cargo build --release --locked -j "${CARGO_JOBS:-1}" --manifest-path bench/lambda/rust_hello/Cargo.toml
exec .venv/bin/python bench/lambda/bench.py --zip "$zip" --command "bench/lambda/run.sh${*:+ $*}" "$@"
