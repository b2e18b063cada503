#!/usr/bin/env bash
# HTTP overhead of `imagegen serve` with the fast test model, on loopback, with wrk:
# GET /healthz (routing + logging + metrics only) is the baseline; POST /generate adds parsing,
# validation, the (trivial) test model, PNG encoding and an fsync'd atomic file write.
# Also the RSS of an idle server. Usage: bench/http/run.sh [seconds]   (default 10)
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds="${1:-10}"
bin="${IMAGEGEN_BIN:-build/imagegen}"
work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
(cd "$work" && exec "$OLDPWD/$bin" serve --model test --port "$port" --max-concurrent 4 --max-waiting 256 2>/dev/null) &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
sleep 1
idle_rss_kb=$(awk '/VmRSS/{print $2}' /proc/$pid/status)

run_wrk() {  # name, extra args...
  local name=$1; shift
  wrk -t2 -c8 -d"${seconds}s" --latency "$@" > "$work/$name.txt"
  local rps p50 p99
  rps=$(awk '/Requests\/sec/{print $2}' "$work/$name.txt")
  p50=$(awk '$1=="50%"{print $2}' "$work/$name.txt")
  p99=$(awk '$1=="99%"{print $2}' "$work/$name.txt")
  echo "$name $rps $p50 $p99"
}
health=$(run_wrk healthz "http://127.0.0.1:$port/healthz")
generate=$(run_wrk generate -s bench/http/post.lua "http://127.0.0.1:$port/generate")
peak_rss_kb=$(awk '/VmHWM/{print $2}' /proc/$pid/status)

echo "| route | requests/s | p50 | p99 |"
echo "|---|---|---|---|"
for line in "$health" "$generate"; do
  set -- $line
  echo "| $1 | $2 | $3 | $4 |"
done
h_rps=$(echo "$health" | cut -d' ' -f2); g_rps=$(echo "$generate" | cut -d' ' -f2)
echo
echo "POST /generate throughput = $(python3 -c "print(f'{$g_rps/$h_rps:.3f}')") x GET /healthz (same run)"
echo "idle RSS: $((idle_rss_kb / 1024)) MiB; peak RSS under load: $((peak_rss_kb / 1024)) MiB"
