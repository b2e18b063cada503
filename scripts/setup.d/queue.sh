#!/usr/bin/env bash
# Test tools for the asynchronous path (queue, worker, Terraform, container). Idempotent: each
# tool is installed or built only when missing. `scripts/setup.sh test` runs it.
#   - podman, runc, debootstrap: build and run the container image (tests/container, run with
#     `scripts/test.sh container`); the base image is made with debootstrap from the apt mirror.
#   - tofu (OpenTofu, from its Go module) for `tofu fmt -check` on deploy/terraform, unless a
#     terraform or tofu binary is already on PATH (either does `fmt`). Set IMAGEGEN_SKIP_TOFU=1
#     to skip the build (it takes several minutes on two cores).
set -euo pipefail
cd "$(dirname "$0")/../.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
for pkg in podman runc debootstrap; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

TOFU_VERSION=${TOFU_VERSION:-v1.10.10}
if [ "${IMAGEGEN_SKIP_TOFU:-0}" != 1 ] && ! command -v terraform >/dev/null && \
   ! command -v tofu >/dev/null && [ ! -x .tools/bin/tofu ]; then
  GO=${GO:-go}
  command -v "$GO" >/dev/null || GO=/usr/local/go/bin/go
  mkdir -p .tools/bin
  echo "setup: building tofu ($TOFU_VERSION) from its Go module"
  # `go install tofu@version` refuses modules with replace directives, so build inside the
  # downloaded module instead (its go.mod, replace directives included, then applies).
  if dir=$("$GO" mod download -json "github.com/opentofu/opentofu@$TOFU_VERSION" \
        | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p') && [ -n "$dir" ] && \
     (cd "$dir" && GOFLAGS="-mod=readonly -trimpath" CGO_ENABLED=0 \
        "$GO" build -o "$OLDPWD/.tools/bin/tofu" ./cmd/tofu); then
    echo "setup: built .tools/bin/tofu"
  else
    echo "setup: tofu not built; tests/integration/test_terraform.py skips its fmt check"
  fi
fi
