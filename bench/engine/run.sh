#!/usr/bin/env bash
# Engine benchmark: the C++ engine (LibTorch) against the same network in PyTorch (Python) on
# the CPU, same weights, prompt, seeds, steps and guidance, 1 and 2 threads, in one run.
# Prints a markdown table (and appends it to bench/engine/RESULTS.md with --record).
#
#   bench/engine/run.sh [--record] [BUILD_DIR] [MODEL_DIR]
#   env: STEPS (default: the model's), IMAGES (default 4), BLAS_DIR (a directory holding an
#        alternative libblas.so.3, e.g. OpenBLAS, put first on LD_LIBRARY_PATH for both sides)
# Needs: the imagegen-engine-bench target built, Debian's python3-torch (/usr/bin/python3).
set -euo pipefail
"$(dirname "$0")/../../scripts/setup.sh" bench >&2
record=0
if [[ "${1:-}" == "--record" ]]; then record=1; shift; fi
build=${1:-build-engine}
model=${2:-models/local}
images=${IMAGES:-4}
steps=${STEPS:-0}
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if [[ -n "${BLAS_DIR:-}" ]]; then
  export LD_LIBRARY_PATH="$BLAS_DIR${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
# Parallelism comes from torch's own threads; OpenBLAS (the libblas.so.3 that scripts/setup.sh
# installs) would otherwise start its own per-core threads inside each torch thread.
export OPENBLAS_NUM_THREADS=1
blas=$(ldd "$build/imagegen-engine-bench" | awk '/libblas.so.3/ {print $3}')
blas=$(readlink -f "$blas")
for threads in 1 2; do
  "$build/imagegen-engine-bench" --model "$model" --threads "$threads" --images "$images" \
    --steps "$steps" --out "$tmp/cpp$threads.bin" > "$tmp/cpp$threads.json"
  /usr/bin/python3 "$here/torch_reference.py" "$model" --threads "$threads" --images "$images" \
    --steps "$steps" --out "$tmp/py$threads.bin" > "$tmp/py$threads.json"
done
/usr/bin/python3 - "$tmp" "$blas" "$record" "$here/RESULTS.md" <<'PY'
import json, os, platform, subprocess, sys, datetime
tmp, blas, record, results = sys.argv[1], sys.argv[2], sys.argv[3] == "1", sys.argv[4]
rows = {}
for t in (1, 2):
    rows[t] = (json.load(open(f"{tmp}/cpp{t}.json")), json.load(open(f"{tmp}/py{t}.json")))
def same(t):
    a, b = open(f"{tmp}/cpp{t}.bin", "rb").read(), open(f"{tmp}/py{t}.bin", "rb").read()
    return "identical" if a == b else f"max diff {max(abs(x - y) for x, y in zip(a, b))}"
cpu = subprocess.run(["sh", "-c", "lscpu | sed -n 's/^Model name: *//p'"], capture_output=True, text=True).stdout.strip()
c1 = rows[1][0]
mhz = float(subprocess.run(["sh", "-c", "grep -m1 'cpu MHz' /proc/cpuinfo | sed 's/.*: //'"], capture_output=True, text=True).stdout or 0)
fma_per_core = 32 * mhz / 1000
out = []
out.append(f"### {datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC, {cpu}, {os.cpu_count()} cores (shared), BLAS `{blas}`\n")
out.append(f"Native size, {c1['steps']} DDIM steps with classifier-free guidance (2 UNet passes per step), "
           f"{c1['images']} images of one request each, after a warm-up call; "
           f"{c1['gflop_per_image']:.2f} GFLOP per image (analytic count of the UNet).\n")
out.append("Times are best-of-N per image (mean in brackets): the 2 cores are shared with other "
           "work, and the minimum is the least disturbed measurement.\n")
out.append("| threads | C++ engine s/image | PyTorch (Python) s/image | C++ speed-up | C++ peak RSS | Python peak RSS | C++ GFLOP/s | matmul peak GFLOP/s | share of matmul peak | share of FMA peak | pixels C++ vs Python |")
out.append("|---|---|---|---|---|---|---|---|---|---|---|")
for t in (1, 2):
    c, p = rows[t]
    fma_peak = fma_per_core * t
    out.append(f"| {t} | {c['best_seconds_per_image']:.3f} ({c['seconds_per_image']:.3f}) | "
               f"{p['best_seconds_per_image']:.3f} ({p['seconds_per_image']:.3f}) | "
               f"{p['best_seconds_per_image'] / c['best_seconds_per_image']:.2f}x | {c['peak_rss_mb']:.0f} MB | "
               f"{p['peak_rss_mb']:.0f} MB | {c['achieved_gflops']:.1f} | {c['matmul_peak_gflops']:.1f} | "
               f"{100 * c['achieved_gflops'] / c['matmul_peak_gflops']:.0f}% | "
               f"{100 * c['achieved_gflops'] / fma_peak:.0f}% | {same(t)} |")
out.append(f"\nFMA peak: {fma_per_core:.0f} GFLOP/s per core = 32 FLOP/cycle (2 AVX2 FMA units x 8 floats x 2) "
           f"x {mhz:.0f} MHz; matmul peak: best of five 1024^3 float matrix products through the same LibTorch + BLAS.")
text = "\n".join(out) + "\n"
print(text)
if record:
    with open(results, "a") as f:
        f.write("\n" + text)
PY
