#!/usr/bin/env python3
"""Runs a command and samples its memory every few milliseconds, so a peak RSS can be placed:
which phase (load, text encoder, steps, decode) reaches it, and whether it is anonymous memory
(tensors, allocator) or file pages (a mapped checkpoint). /usr/bin/time -v gives the peak only.

  python3 bench/sd/rss_trace.py [--every-ms 20] [--trace out.tsv] -- CMD ARGS...

Prints one JSON line: the peak (kB) of VmRSS with its RssAnon/RssFile split at that moment,
the second it happened, the wall time, the exit status, and the kernel's own VmHWM. With
--trace, every sample as "seconds<TAB>rss_kB<TAB>anon_kB<TAB>file_kB" and the command's stderr
lines interleaved as "seconds<TAB>#<TAB>line", to read against the engine's progress messages.
"""
import argparse
import json
import subprocess
import sys
import threading
import time


def memory(pid):
    fields = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "RssAnon", "RssFile", "VmHWM"):
                fields[key] = int(value.split()[0])
    return fields


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--every-ms", type=float, default=20.0)
    p.add_argument("--trace", default=None)
    p.add_argument("command", nargs=argparse.REMAINDER)
    args = p.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        p.error("give the command after --")
    start = time.monotonic()
    proc = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    lines = []

    def read_stderr():
        for line in proc.stderr:
            lines.append((time.monotonic() - start, line.rstrip("\n")))
            sys.stderr.write(line)

    reader = threading.Thread(target=read_stderr, daemon=True)
    reader.start()
    samples, hwm = [], 0
    while proc.poll() is None:
        try:
            m = memory(proc.pid)
        except (FileNotFoundError, ProcessLookupError, ValueError):
            break
        hwm = max(hwm, m.get("VmHWM", 0))
        samples.append((time.monotonic() - start, m.get("VmRSS", 0), m.get("RssAnon", 0),
                        m.get("RssFile", 0)))
        time.sleep(args.every_ms / 1000)
    status = proc.wait()
    reader.join(timeout=5)
    wall = time.monotonic() - start
    peak = max(samples, key=lambda s: s[1]) if samples else (0, 0, 0, 0)
    if args.trace:
        rows = [f"{t:.3f}\t{r}\t{a}\t{f}" for t, r, a, f in samples]
        rows += [f"{t:.3f}\t#\t{line}" for t, line in lines]
        with open(args.trace, "w") as out:
            out.write("\n".join(sorted(rows, key=lambda r: float(r.split("\t")[0]))) + "\n")
    print(json.dumps({"peak_rss_kb": peak[1], "anon_kb": peak[2], "file_kb": peak[3],
                      "peak_at_s": round(peak[0], 2), "wall_s": round(wall, 2),
                      "vm_hwm_kb": hwm, "status": status, "samples": len(samples)}))
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
