#!/usr/bin/env bash
# Makes (once) a Debian 11 "bullseye" root for ARCH with debootstrap: glibc 2.31, older than
# provided.al2023's 2.34, with nothing of the build host in it. arm64 roots are finished under
# qemu-user-static (debootstrap's second stage runs the root's own dpkg).
#   old_root.sh amd64|arm64 DIR
set -euo pipefail
arch=$1 dir=$2
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
[ -f "$dir/.imagegen-root-ok" ] && exit 0
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
need=(debootstrap)
[ "$arch" = arm64 ] && need+=(qemu-user-static binfmt-support)
missing=()
for p in "${need[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
as_root rm -rf "$dir"
mkdir -p "$(dirname "$dir")"
if [ "$arch" = amd64 ]; then
  as_root debootstrap --variant=minbase --arch=amd64 bullseye "$dir" "$mirror" >"$dir.log" 2>&1
else
  as_root debootstrap --variant=minbase --arch=arm64 --foreign bullseye "$dir" "$mirror" >"$dir.log" 2>&1
  as_root cp /usr/bin/qemu-aarch64-static "$dir/usr/bin/"
  as_root chroot "$dir" /debootstrap/debootstrap --second-stage >>"$dir.log" 2>&1
  # The emulator was only needed to finish the root; the test runs it from the host.
  as_root rm -f "$dir/usr/bin/qemu-aarch64-static"
fi
as_root touch "$dir/.imagegen-root-ok"
echo "old_root: $dir ($(chroot "$dir" /usr/bin/ldd --version 2>/dev/null | head -1 || echo bullseye))"
