#!/usr/bin/env bash
# Test tools for the serverless door (Lambda runtime, SAM stack, workflows), into ./.tools/bin
# and ./.venv. Idempotent: each tool is built or installed only when missing.
#   - aws-lambda-rie: AWS's official Runtime Interface Emulator, built from its Go module
#     (github.com/aws/aws-lambda-runtime-interface-emulator since v1.29; go.amzn.com before).
#   - actionlint: the GitHub Actions workflow linter.
#   - awslambdaric: AWS's Python runtime interface client, for the Python baseline in
#     bench/lambda (it plays the role of the python3.x managed runtime under the same RIE).
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p .tools/bin
GO=${GO:-go}
command -v "$GO" >/dev/null || GO=/usr/local/go/bin/go
export GOBIN="$PWD/.tools/bin"
export GOFLAGS="${GOFLAGS:--trimpath}"

RIE_VERSION=${RIE_VERSION:-latest}
ACTIONLINT_VERSION=${ACTIONLINT_VERSION:-latest}

# `lambda.sh arm64`: also the arm64 RIE (.tools/bin/linux_arm64/), which the package test runs
# inside an arm64 root under qemu-user-static.
if [ "${1:-}" = arm64 ] && [ ! -x .tools/bin/linux_arm64/aws-lambda-rie ]; then
  echo "setup: building aws-lambda-rie ($RIE_VERSION) for arm64"
  # `go install` refuses cross-compiled installs into GOBIN; without it they go to GOPATH/bin/linux_arm64.
  gopath=$(mktemp -d)
  GOBIN= GOPATH="$gopath" GOMODCACHE="$("$GO" env GOMODCACHE)" GOARCH=arm64 CGO_ENABLED=0 "$GO" install \
    "github.com/aws/aws-lambda-runtime-interface-emulator/cmd/aws-lambda-rie@$RIE_VERSION"
  mkdir -p .tools/bin/linux_arm64
  mv "$gopath/bin/linux_arm64/aws-lambda-rie" .tools/bin/linux_arm64/
  chmod -R u+w "$gopath" && rm -rf "$gopath"
fi

if [ ! -x .tools/bin/aws-lambda-rie ]; then
  echo "setup: building aws-lambda-rie ($RIE_VERSION) from its Go module"
  # CGO off: a static binary, as AWS ships it.
  CGO_ENABLED=0 "$GO" install \
    "github.com/aws/aws-lambda-runtime-interface-emulator/cmd/aws-lambda-rie@$RIE_VERSION"
fi

if [ ! -x .tools/bin/actionlint ]; then
  echo "setup: building actionlint ($ACTIONLINT_VERSION)"
  CGO_ENABLED=0 "$GO" install "github.com/rhysd/actionlint/cmd/actionlint@$ACTIONLINT_VERSION"
fi

if [ -x .venv/bin/pip ] && ! .venv/bin/python -c 'import awslambdaric' 2>/dev/null; then
  echo "setup: installing awslambdaric into .venv"
  .venv/bin/pip install -q 'awslambdaric>=2.2,<4' || \
    echo "setup: awslambdaric not installed (only the Python baseline of bench/lambda needs it)"
fi
