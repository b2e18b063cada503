#!/usr/bin/env python3
"""SSE overhead of POST /v1/images/generations with stream: true, against `imagegen serve --model
test` (the deterministic test model: no model time, so what is measured is the door's own cost).

  bench/sse/run.py [--reps N] [--size 512] [--format png|jpeg|webp] [--bin build/imagegen]

For each size it times, N times each (median and min reported):
  - the plain JSON answer (response_format b64_json), the baseline;
  - the stream with partial_images 0 (the completed event only) and 3;
  - per partial image: (stream with 3 - stream with 0) / 3, i.e. what one event costs from the
    model's preview to its bytes on the socket (resize, encode in the output format, base64,
    one chunk), and the gaps between events as the client reads them.
Prints one Markdown table; BENCHMARKS.md keeps the numbers of a run.
"""
import argparse
import json
import os
import pathlib
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import requests

ROOT = pathlib.Path(__file__).resolve().parents[2]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(binary, workdir):
    port = free_port()
    log = open(pathlib.Path(workdir) / "serve.log", "w")
    proc = subprocess.Popen([str(pathlib.Path(binary).resolve()), "serve", "--model", "test", "--host", "127.0.0.1",
                             "--port", str(port), "--store", "file://./images"],
                            cwd=workdir, stdout=log, stderr=subprocess.STDOUT,
                            env=os.environ)
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            if requests.get(url + "/healthz", timeout=1).status_code == 200:
                return proc, url
        except requests.RequestException:
            time.sleep(0.05)
    proc.kill()
    sys.exit("imagegen serve did not start; see " + log.name)


def plain(session, url, body):
    start = time.perf_counter()
    r = session.post(url + "/v1/images/generations", json={**body, "response_format": "b64_json"})
    r.raise_for_status()
    assert r.json()["data"][0]["b64_json"]
    return time.perf_counter() - start, []


def streamed(session, url, body, partial_images):
    start = time.perf_counter()
    arrivals = []
    with session.post(url + "/v1/images/generations", stream=True,
                      json={**body, "stream": True, "partial_images": partial_images}) as r:
        r.raise_for_status()
        for line in r.iter_lines():
            if line.startswith(b"event: "):
                arrivals.append(time.perf_counter() - start)
    assert len(arrivals) == partial_images + 1, arrivals
    return time.perf_counter() - start, arrivals


def measure(fn, reps):
    totals, gaps = [], []
    for _ in range(reps):
        total, arrivals = fn()
        totals.append(total * 1000)
        gaps += [(b - a) * 1000 for a, b in zip(arrivals, arrivals[1:])]
    return totals, gaps


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=20)
    parser.add_argument("--size", type=int, action="append")
    parser.add_argument("--format", default="png", choices=["png", "jpeg", "webp"])
    parser.add_argument("--bin", default=os.environ.get("IMAGEGEN_BIN",
                                                        str(ROOT / "build" / "imagegen")))
    args = parser.parse_args()
    sizes = args.size or [64, 512]
    with tempfile.TemporaryDirectory() as workdir:
        proc, url = start_server(args.bin, workdir)
        session = requests.Session()
        try:
            print(f"output_format {args.format}, {args.reps} runs each\n")
            print("| size | request | median ms | min ms | gap between events, median ms |")
            print("|---|---|---:|---:|---:|")
            for size in sizes:
                body = {"prompt": "a red circle", "size": f"{size}x{size}", "steps": 8,
                        "seed": 1, "output_format": args.format}
                plain(session, url, body)  # warm up
                rows = [("JSON (b64_json)", lambda: plain(session, url, body)),
                        ("stream, partial_images 0", lambda: streamed(session, url, body, 0)),
                        ("stream, partial_images 3", lambda: streamed(session, url, body, 3))]
                medians = {}
                for name, fn in rows:
                    totals, gaps = measure(fn, args.reps)
                    medians[name] = statistics.median(totals)
                    gap = f"{statistics.median(gaps):.2f}" if gaps else "-"
                    print(f"| {size}x{size} | {name} | {medians[name]:.2f} | {min(totals):.2f} | "
                          f"{gap} |")
                per_event = (medians["stream, partial_images 3"] -
                             medians["stream, partial_images 0"]) / 3
                print(f"| {size}x{size} | per partial image (3 vs 0) / 3 | {per_event:.2f} | | |")
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    print(json.dumps({"reps": args.reps, "sizes": sizes}), file=sys.stderr)


if __name__ == "__main__":
    main()
