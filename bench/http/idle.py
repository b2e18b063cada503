#!/usr/bin/env python3
"""Holds N idle connections (connected, nothing sent) to a server and reports its RSS growth and
the latency of a fresh GET /healthz meanwhile. Usage: idle.py PID PORT N"""
import json
import resource
import socket
import sys
import time


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def healthz_ms(port, timeout=30.0):
    start = time.monotonic()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        ok = data.startswith(b"HTTP/1.1 200")
    except OSError:
        ok = False
    return (time.monotonic() - start) * 1000, ok


def main():
    pid, port, count = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    before = rss_kb(pid)
    sockets = []
    for _ in range(count):
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", port))
        sockets.append(s)
    time.sleep(2)
    after = rss_kb(pid)
    latencies = [healthz_ms(port) for _ in range(20)]
    for s in sockets:
        s.close()
    ms = sorted(l for l, _ in latencies)
    print(json.dumps({
        "idle_connections": count,
        "rss_before_kb": before,
        "rss_after_kb": after,
        "rss_per_1000_kb": round((after - before) * 1000 / count),
        "healthz_p50_ms": round(ms[len(ms) // 2], 2),
        "healthz_max_ms": round(ms[-1], 2),
        "healthz_ok": sum(ok for _, ok in latencies),
    }))


if __name__ == "__main__":
    main()
