#!/usr/bin/env python3
"""GET /images?limit=10 (or /jobs) against a big file store, through the real server.

Writes N images and N job records straight into the file store's layout (what `imagegen serve`
itself writes: PNG + .meta sidecar per image, one JSON record per job, and both listing
indexes' entries), starts `imagegen serve --model test` on it, and times `--requests` sequential
`GET /images?limit=10` (after one warm-up request, which also builds the index for a store
without one). Prints one JSON line with the median and p99 in milliseconds.

  bench/listing/bench.py --bin build/imagegen --images 100000 --jobs 100000
  bench/listing/bench.py --bin build/imagegen --images 0 --jobs 100000 --route /jobs
  bench/listing/bench.py --bin OLD_BINARY --images 2000 --jobs 2000 --no-index   # older layout
"""
import argparse
import json
import pathlib
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

# The 1x1 PNG every image is (content does not matter to a listing).
PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010802000000907753de"
                    "0000000c4944415478da63f8cfc000000301010018dd8db00000000049454e44ae426082")
MAX_MS = 9999999999999


def reverse_time(created_ms):
    """store/reverse_time.h: rrrr/rrr/rrr/rrr- of 10^13-1-created_ms."""
    rev = MAX_MS - created_ms
    return (f"{rev // 10**9:04d}/{rev // 10**6 % 1000:03d}/"
            f"{rev // 1000 % 1000:03d}/{rev % 1000:03d}-")


def index_entry(created_ms, key):
    return "index/images/" + reverse_time(created_ms) + key


def write(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def populate(root, images, jobs, with_index):
    now = int(time.time() * 1000)
    # Spread over the last 30 days, as a store in use is.
    span = 30 * 86400 * 1000
    for i in range(images):
        created = now - span + i * span // max(1, images)
        job_id = f"{MAX_MS - created:013d}-{i:012x}"
        key = f"{job_id}.png"
        meta = {"content_type": "image/png", "metadata": {
            "prompt": f"prompt {i}", "negative-prompt": "", "seed": str(i), "model": "test",
            "steps": "4", "guidance": "7.5", "width": "64", "height": "64", "job-id": job_id,
            "request-hash": f"{i:064x}", "created-ms": str(created)}}
        write(root / key, PNG)
        write(root / ".meta" / (key + ".json"), json.dumps(meta).encode())
        if with_index:
            entry = index_entry(created, key)
            write(root / entry, b"")
            write(root / ".meta" / (entry + ".json"),
                  b'{"content_type":"application/x-imagegen-index","metadata":{}}')
    for i in range(jobs):
        created = now - span + i * span // max(1, jobs)
        job_id = f"{MAX_MS - created:013d}-{i + 1 << 24:012x}"
        record = {"job_id": job_id, "status": "succeeded", "created_ms": created,
                  "updated_ms": created, "finished_ms": created, "attempts": 1,
                  "request": {"prompt": f"job {i}"}}
        write(root / "jobs" / f"{job_id}.json", json.dumps(record).encode())
        write(root / ".meta" / "jobs" / f"{job_id}.json.json",
              b'{"content_type":"application/json","metadata":{"job-status":"succeeded"}}')
        if with_index:
            entry = "jobs/_index/" + reverse_time(created) + job_id
            write(root / entry, b"")
            write(root / ".meta" / (entry + ".json"),
                  b'{"content_type":"application/x-imagegen-index","metadata":{}}')
    if with_index:
        write(root / "jobs" / "_index.v1", b"1\n")
        write(root / ".meta" / "jobs" / "_index.v1.json",
              b'{"content_type":"text/plain","metadata":{}}')
        write(root / "index" / "images.v1", b"1\n")
        write(root / ".meta" / "index" / "images.v1.json",
              b'{"content_type":"text/plain","metadata":{}}')


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url, timeout=600):
    start = time.perf_counter()
    with urllib.request.urlopen(url, timeout=timeout) as r:
        body = json.loads(r.read())
    return (time.perf_counter() - start) * 1000, body


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--images", type=int, default=100000)
    ap.add_argument("--jobs", type=int, default=100000)
    ap.add_argument("--requests", type=int, default=50)
    ap.add_argument("--no-index", action="store_true", help="the layout before the index")
    ap.add_argument("--route", default="/images", choices=["/images", "/jobs"],
                    help="the listing to time (GET ROUTE?limit=10)")
    ap.add_argument("--dir", help="store directory (default: a temporary one, removed after)")
    args = ap.parse_args()

    tmp = tempfile.TemporaryDirectory(prefix="listing-bench-") if not args.dir else None
    root = pathlib.Path(args.dir or tmp.name) / "images"
    t0 = time.perf_counter()
    populate(root, args.images, args.jobs, not args.no_index)
    populate_s = time.perf_counter() - t0

    port = free_port()
    log = open(root.parent / "serve.log", "w")
    server = subprocess.Popen([args.bin, "serve", "--model", "test", "--host", "127.0.0.1",
                               "--port", str(port), "--store", f"file://{root}"],
                              stdout=log, stderr=log)
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(600):
            try:
                get(base + "/healthz", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        field = args.route.strip("/")
        first_ms, first = get(base + args.route + "?limit=10")
        assert len(first[field]) == 10, first
        times = []
        for _ in range(args.requests):
            ms, page = get(base + args.route + "?limit=10")
            assert page[field] == first[field]
            times.append(ms)
        times.sort()
        p99 = times[min(len(times) - 1, int(round(0.99 * (len(times) - 1))))]
        print(json.dumps({"route": args.route, "images": args.images, "jobs": args.jobs, "index": not args.no_index,
                          "requests": args.requests, "first_ms": round(first_ms, 2),
                          "median_ms": round(statistics.median(times), 2),
                          "p99_ms": round(p99, 2), "populate_s": round(populate_s, 1),
                          "newest": first[field][0].get("key", first[field][0].get("job_id"))}))
    finally:
        server.terminate()
        server.wait(timeout=60)
        if tmp:
            tmp.cleanup()


if __name__ == "__main__":
    sys.exit(main())
