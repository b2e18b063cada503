#!/usr/bin/env bash
# Embedded queue benchmark: enqueue throughput (1 and 4 producers, synchronous FULL / NORMAL) and
# end-to-end job overhead with the test model (Send -> stored: p50/p99, and a batch through two
# `imagegen worker` processes). Writes bench/queue/RESULTS.md.
#   bench/queue/run.sh [N]     (N messages per enqueue run, default 2000)
# Needs a dev build with the test model: BUILD_DIR (default build/) must hold imagegen and
# libimagegen_lib.a (scripts/build.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD_DIR=${BUILD_DIR:-build}
N=${1:-2000}
[ -x "$BUILD_DIR/imagegen" ] || scripts/build.sh
work=$(mktemp -d /tmp/imagegen-queue-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
# A small program linked against the library (its only dependencies here: sqlite3 and core/ids).
c++ -std=c++20 -O2 -Isrc bench/queue/queue_bench.cc "$BUILD_DIR/libimagegen_lib.a" \
  -lsqlite3 -lpthread -o "$work/queue_bench"
{
  echo "# Embedded job queue (sqlite://) benchmark"
  echo
  echo "$(date -u +%Y-%m-%d), $(nproc) CPU cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')),"
  echo "shared with other work while measured; file system: $(df -T /tmp | awk 'NR==2{print $2}') (/tmp). Command: \`bench/queue/run.sh $N\`."
  echo
  "$work/queue_bench" "$BUILD_DIR/imagegen" "$work" "$N"
} | tee bench/queue/RESULTS.md.tmp
mv bench/queue/RESULTS.md.tmp bench/queue/RESULTS.md
