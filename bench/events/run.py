#!/usr/bin/env python3
"""The cost of GET /jobs/{id}/events (Server-Sent Events) on `imagegen serve --model test`, with
the job run by `imagegen worker` in another process on one sqlite queue and file store:
  - latency: from the worker's write of the final record (its updated_ms) to the client reading
    the final event (the stream polls the record, backing off to 1 s);
  - bytes on the wire per stream and per event (chunk framing excluded), events per job;
  - the server's CPU while N streams wait on a queued job (each polls its record).
Usage: bench/events/run.py [jobs] [idle-streams]   (IMAGEGEN_BIN, default build/imagegen)
Prints one JSON object."""
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
BIN = os.environ.get("IMAGEGEN_BIN", str(ROOT / "build" / "imagegen"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(argv, log, env=None):
    return subprocess.Popen(argv, stdout=open(log, "w"), stderr=subprocess.STDOUT,
                            env=dict(os.environ, **(env or {})))


def wait_healthy(url):
    for _ in range(200):
        try:
            if requests.get(url + "/healthz", timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.05)
    raise RuntimeError("server did not start")


def one_job(url, index):
    job_id = requests.post(url + "/jobs", json={"prompt": f"bench {index}", "steps": 12}).json()["job_id"]
    response = requests.get(f"{url}/jobs/{job_id}/events", stream=True)
    wire, events, latency, sizes = 0, 0, None, []
    block = b""
    for line in response.iter_lines(chunk_size=1):
        wire += len(line) + 1
        block += line + b"\n"
        if line == b"":
            if b"\ndata:" in b"\n" + block:
                events += 1
                sizes.append(len(block))
            block = b""
        elif line.startswith(b"data:"):
            data = json.loads(line[5:])
            if data.get("status") == "succeeded":
                latency = time.time() * 1000 - data["updated_ms"]
    return {"latency_ms": latency, "wire_bytes": wire, "events": events, "event_bytes": sizes}


def idle_cpu(url, pid, streams, seconds=10):
    job_id = requests.post(url + "/jobs", json={"prompt": "nobody runs me"}).json()["job_id"]
    held = [requests.get(f"{url}/jobs/{job_id}/events", stream=True) for _ in range(streams)]
    refused = requests.get(f"{url}/jobs/{job_id}/events", timeout=5).status_code

    def ticks():
        fields = open(f"/proc/{pid}/stat").read().split()
        return int(fields[13]) + int(fields[14])

    time.sleep(2)
    before = ticks()
    time.sleep(seconds)
    used = (ticks() - before) / os.sysconf("SC_CLK_TCK")
    for r in held:
        r.close()
    return {"idle_streams": streams, "server_cpu_percent": round(100 * used / seconds, 2),
            "next_stream_status": refused}


def main():
    jobs = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    streams = int(sys.argv[2]) if len(sys.argv) > 2 else 16
    work = pathlib.Path(tempfile.mkdtemp())
    queue, store = f"sqlite://{work}/queue.db", f"file://{work}/images"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    model = "test?delay_ms=3000"
    env = {"IMAGEGEN_QUEUE": queue, "IMAGEGEN_EVENTS_MAX_STREAMS": str(streams)}
    server = start([BIN, "serve", "--port", str(port), "--model", model, "--store", store],
                   work / "serve.log", env)
    worker = start([BIN, "worker", "--queue", queue, "--store", store, "--model", model,
                    "--wait", "1"], work / "worker.log")
    try:
        wait_healthy(url)
        runs = [one_job(url, i) for i in range(jobs)]
        worker.terminate()
        worker.wait()
        idle = idle_cpu(url, server.pid, streams)
    finally:
        for p in (server, worker):
            if p.poll() is None:
                p.terminate()
                p.wait()
    latencies = sorted(r["latency_ms"] for r in runs if r["latency_ms"] is not None)
    running = [b for r in runs for b in r["event_bytes"][:-1]]
    print(json.dumps({
        "jobs": jobs,
        "job_seconds": 3, "steps": 12,
        "final_event_latency_ms_p50": round(statistics.median(latencies)),
        "final_event_latency_ms_max": round(latencies[-1]),
        "events_per_job_median": statistics.median(r["events"] for r in runs),
        "wire_bytes_per_stream_median": statistics.median(r["wire_bytes"] for r in runs),
        "bytes_per_progress_event_median": statistics.median(running) if running else None,
        "bytes_final_event_median": statistics.median(r["event_bytes"][-1] for r in runs),
        **idle,
    }))


if __name__ == "__main__":
    main()
