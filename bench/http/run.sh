#!/usr/bin/env bash
# HTTP overhead of `imagegen serve --model test` on loopback with wrk, for the binary under test
# and a baseline binary side by side in one run:
#   GET /healthz (routing + logging + metrics only) and POST /generate (parsing, validation, the
#   trivial test model, PNG encoding, an fsync'd atomic file write): requests/s, p50, p99;
#   idle RSS; RSS per 1,000 idle connections and /healthz latency while they are held.
# Usage: bench/http/run.sh [seconds] [baseline-binary]
#   IMAGEGEN_BIN (default build/imagegen) is measured; the baseline is optional (e.g. a build of
#   an older commit: git worktree add /tmp/old REF && (cd /tmp/old && scripts/build.sh
#   -DIMAGEGEN_ENGINE=OFF)).
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds="${1:-10}"
baseline="${2:-}"
idle="${IDLE_CONNECTIONS:-1000}"
bins=("$(realpath "${IMAGEGEN_BIN:-build/imagegen}")")
[ -n "$baseline" ] && bins+=("$(realpath "$baseline")")
work=$(mktemp -d)
pid=""
trap '[ -n "$pid" ] && kill $pid 2>/dev/null; rm -rf "$work"' EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

run_wrk() {  # name url extra...
  local name=$1 url=$2; shift 2
  wrk -t2 -c8 -d"${seconds}s" --latency "$@" "$url" > "$work/$name.txt"
  printf '%s %s %s' "$(awk '/Requests\/sec/{print $2}' "$work/$name.txt")" \
    "$(awk '$1=="50%"{print $2}' "$work/$name.txt")" "$(awk '$1=="99%"{print $2}' "$work/$name.txt")"
}

measure() {  # binary label
  local bin=$1 label=$2 port dir
  port=$(free_port)
  dir="$work/$label"
  mkdir -p "$dir"
  (cd "$dir" && exec "$bin" serve --model test --port "$port" --max-concurrent 4 \
    --max-waiting 256 2>/dev/null) &
  pid=$!
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
  sleep 1
  local idle_rss health generate idle_json
  idle_rss=$(awk '/VmRSS/{print $2}' /proc/$pid/status)
  health=$(run_wrk "$label-healthz" "http://127.0.0.1:$port/healthz")
  generate=$(run_wrk "$label-generate" "http://127.0.0.1:$port/generate" -s bench/http/post.lua)
  idle_json=$(python3 bench/http/idle.py "$pid" "$port" "$idle")
  kill $pid; wait $pid 2>/dev/null || true; pid=""
  echo "$label|$health|$generate|$((idle_rss / 1024))|$idle_json" >> "$work/results"
}

labels=(new baseline)
for i in "${!bins[@]}"; do measure "${bins[$i]}" "${labels[$i]}"; done

echo "| server | GET /healthz req/s | p50 | p99 | POST /generate req/s | p50 | p99 | idle RSS | RSS per 1,000 idle conns ($idle held) | /healthz p50 / max with them held |"
echo "|---|---|---|---|---|---|---|---|---|---|"
while IFS='|' read -r label health generate idle_mib idle_json; do
  read -r h_rps h50 h99 <<< "$health"
  read -r g_rps g50 g99 <<< "$generate"
  python3 - "$label" "$h_rps" "$h50" "$h99" "$g_rps" "$g50" "$g99" "$idle_mib" "$idle_json" <<'PY'
import json, sys
label, h_rps, h50, h99, g_rps, g50, g99, idle_mib, idle = sys.argv[1:]
i = json.loads(idle)
print(f"| {label} | {h_rps} | {h50} | {h99} | {g_rps} | {g50} | {g99} | {idle_mib} MiB | "
      f"{i['rss_per_1000_kb'] / 1024:.1f} MiB | {i['healthz_p50_ms']} / {i['healthz_max_ms']} ms "
      f"({i['healthz_ok']}/20 ok) |")
PY
done < "$work/results"
if [ ${#bins[@]} -eq 2 ]; then
  python3 - "$work/results" <<'PY'
import sys
rows = [line.split("|") for line in open(sys.argv[1])]
new, old = rows[0], rows[1]
h = float(new[1].split()[0]) / float(old[1].split()[0])
g = float(new[2].split()[0]) / float(old[2].split()[0])
print(f"\nnew / baseline throughput: GET /healthz {h:.2f}x, POST /generate {g:.2f}x (same run)")
PY
fi
