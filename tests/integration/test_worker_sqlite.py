"""The worker on the embedded queue (sqlite://), as separate processes sharing one queue file:
1,000 jobs through 2 workers, SIGKILL mid-job (repeatedly), poison messages, graceful SIGTERM,
metrics."""
import collections
import concurrent.futures
import random
import re
import time

import pytest
import requests

from conftest import run_cli
from queue_support import job_record, metrics_text, pngs, wait_until, workers  # noqa: F401


def submit(queue, *args):
    r = run_cli("submit", *args, "--queue", queue)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


@pytest.mark.slow
def test_1000_jobs_through_2_workers_zero_lost_zero_duplicated(tmp_path, serve, workers):
    queue = f"sqlite://{tmp_path}/queue.db"
    store = tmp_path / "images"
    env = {"IMAGEGEN_QUEUE": queue}
    server = serve("--model", "test", "--store", f"file://{store}", env=env)

    def post(i):
        r = requests.post(server.url + "/jobs",
                          json={"prompt": f"job {i}", "seed": i, "width": 64, "height": 64})
        assert r.status_code == 202, r.text
        return r.json()["job_id"]

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(post, range(1000)))
    assert len(set(ids)) == 1000

    args = ["--queue", queue, "--store", f"file://{store}", "--model", "test",
            "--concurrency", "2", "--wait", "1"]
    w1, w2 = workers(*args, name="w1"), workers(*args, name="w2")
    wait_until(lambda: len(pngs(store)) >= 1000, timeout=240, interval=0.5, what="1000 images")
    wait_until(lambda: sum(len(w.outcomes()) for w in (w1, w2)) >= 1000, timeout=60,
               what="1000 outcomes")
    time.sleep(1.0)  # anything still arriving would be a duplicate: give it the chance

    assert pngs(store) == sorted(f"{i}.png" for i in ids)
    outcomes = w1.outcomes() + w2.outcomes()
    by_job = collections.Counter(o["job_id"] for o in outcomes)
    assert set(by_job) == set(ids)
    assert max(by_job.values()) == 1, [j for j, n in by_job.items() if n > 1][:5]
    assert {o["outcome"] for o in outcomes} == {"succeeded"}
    # Both processes did real work.
    assert len(w1.outcomes()) > 100 and len(w2.outcomes()) > 100
    statuses = collections.Counter(
        requests.get(server.url + f"/jobs/{i}").json()["status"] for i in ids[:50])
    assert statuses == {"succeeded": 50}
    assert w1.stop() == 0 and w2.stop() == 0


@pytest.mark.slow
def test_sigkill_mid_job_repeatedly_every_job_completes_exactly_once(tmp_path, workers):
    queue = f"sqlite://{tmp_path}/queue.db"
    store = tmp_path / "images"
    ids = [f"kill-{i:02d}" for i in range(24)]
    for job_id in ids:
        submit(queue, f"prompt {job_id}", "--job-id", job_id, "--steps", "8", "--seed", "1")
    # 400 ms per job in 8 steps, visibility 3 s: a kill lands mid-job almost always, and the
    # job it interrupts comes back 3 s later.
    args = ["--queue", queue, "--store", f"file://{store}", "--model", "test?delay_ms=400",
            "--visibility", "3", "--wait", "1"]
    live = [workers(*args, name="k0"), workers(*args, name="k1")]
    all_workers = list(live)
    rng = random.Random(5)
    kills = 0
    deadline = time.time() + 20
    while kills < 10 and time.time() < deadline and len(pngs(store)) < len(ids):
        time.sleep(rng.uniform(0.5, 0.9))
        victim = rng.randrange(2)
        live[victim].kill()
        kills += 1
        live[victim] = workers(*args, name=f"k{kills + 1}")
        all_workers.append(live[victim])
    assert kills >= 5
    wait_until(lambda: all((job_record(store, j) or {}).get("status") == "succeeded"
                           for j in ids), timeout=120, interval=0.5, what="all jobs succeeded")
    assert pngs(store) == sorted(f"{j}.png" for j in ids)
    records = {j: job_record(store, j) for j in ids}
    # Kills interrupted jobs: some were delivered more than once, yet each has one image.
    assert max(r["attempts"] for r in records.values()) >= 2
    # No job was generated twice to completion: a redelivery either finished an interrupted
    # job or found its image (reused).
    succeeded = collections.Counter(o["job_id"] for w in all_workers for o in w.outcomes()
                                    if o["outcome"] == "succeeded")
    assert set(succeeded) <= set(ids)
    for w in live:
        assert w.stop() == 0


def test_poison_messages_reach_the_dead_letter_queue(tmp_path, workers):
    queue = f"sqlite://{tmp_path}/queue.db?max_receives=2"
    store = tmp_path / "images"
    poison = {
        '{"prompt": ""}': "prompt",
        '{"prompt": "x", "bogus": 1}': "bogus",
        '{"prompt": "x", "width": 3, "height": 3}': "width",
        '{"prompt": "x", "job_id": "../etc"}': "job_id",
    }
    poison_ids = {submit(queue, body, "--raw"): field for body, field in poison.items()}
    good = submit(queue, "a good one", "--job-id", "good-1")
    w = workers("--queue", queue, "--store", f"file://{store}", "--model", "test", "--wait", "0",
                "--drain", "--max-attempts", "2")
    assert w.proc.wait(timeout=60) == 0
    assert pngs(store) == ["good-1.png"]
    listed = run_cli("dead-letters", "--queue", queue)
    assert listed.returncode == 0, listed.stderr
    import json
    dead = [json.loads(line) for line in listed.stdout.splitlines()]
    assert {d["id"] for d in dead} == set(poison_ids)
    for d in dead:
        assert d["reason"].startswith("invalid_request: "), d
        assert d["receive_count"] == 1  # dead-lettered at once, not after retries
    # The failed jobs are recorded with their error under the message id.
    rec = job_record(store, next(i for i, f in poison_ids.items() if f == "prompt"))
    assert rec["status"] == "failed" and rec["error"]["code"] == "invalid_request"
    assert job_record(store, good)["status"] == "succeeded"

    # A retryable failure is retried, then dead-lettered after max attempts.
    queue2 = f"sqlite://{tmp_path}/queue2.db?max_receives=2"
    flaky = submit(queue2, "always times out", "--job-id", "flaky-1")
    w2 = workers("--queue", queue2, "--store", f"file://{store}", "--model",
                 "test?fail=upstream_timeout", "--wait", "1", "--max-attempts", "2")
    wait_until(lambda: (job_record(store, flaky) or {}).get("status") == "failed", timeout=30,
               what="flaky job failed")
    assert w2.stop() == 0
    dead2 = run_cli("dead-letters", "--queue", queue2).stdout
    assert "upstream_timeout" in dead2 and "after 2 attempts" in dead2
    assert [o["outcome"] for o in w2.outcomes()] == ["retried", "failed"]

    # Redrive puts it back in the queue; a healthy worker then completes it.
    moved = run_cli("dead-letters", "--queue", queue2, "--redrive")
    assert json.loads(moved.stdout) == {"redriven": 1}
    w3 = workers("--queue", queue2, "--store", f"file://{store}", "--model", "test", "--wait",
                 "0", "--drain")
    assert w3.proc.wait(timeout=60) == 0
    assert job_record(store, flaky)["status"] == "succeeded"
    assert "flaky-1.png" in pngs(store)


def test_sigterm_finishes_the_job_in_hand_and_exits_0(tmp_path, workers):
    queue = f"sqlite://{tmp_path}/queue.db"
    store = tmp_path / "images"
    submit(queue, "slow", "--job-id", "slow-1", "--steps", "10")
    w = workers("--queue", queue, "--store", f"file://{store}", "--model",
                "test?delay_ms=2500", "--wait", "1", "--metrics-port", "0")
    wait_until(lambda: (job_record(store, "slow-1") or {}).get("status") == "running",
               timeout=30, what="job running")
    # Progress is visible while it runs.
    wait_until(lambda: (job_record(store, "slow-1") or {}).get("progress", {}).get("step", 0) > 0,
               timeout=10, what="progress")
    port = next(l["metrics_port"] for l in w.lines() if l.get("msg") == "worker started")
    assert "imagegen_worker_jobs_in_flight 1" in metrics_text(port)
    started = time.time()
    assert w.stop(timeout=30) == 0
    assert time.time() - started < 15
    assert job_record(store, "slow-1")["status"] == "succeeded"
    assert pngs(store) == ["slow-1.png"]
    # Acknowledged: nothing is left for the next worker.
    w2 = workers("--queue", queue, "--store", f"file://{store}", "--model", "test", "--wait",
                 "0", "--drain")
    assert w2.proc.wait(timeout=30) == 0
    assert w2.outcomes() == []


def test_metrics_expose_depth_age_outcomes_and_latency(tmp_path, workers):
    queue = f"sqlite://{tmp_path}/queue.db"
    store = tmp_path / "images"
    for i in range(3):
        submit(queue, f"m{i}", "--job-id", f"m-{i}")
    submit(queue, '{"prompt": ""}', "--raw")
    w = workers("--queue", queue, "--store", f"file://{store}", "--model", "test", "--wait", "1",
                "--metrics-port", "0")
    wait_until(lambda: len(w.outcomes()) == 4, timeout=30, what="4 outcomes")
    port = next(l["metrics_port"] for l in w.lines() if l.get("msg") == "worker started")
    text = wait_until(lambda: (lambda t: t if 'imagegen_queue_messages{state="visible"} 0' in t
                               and "imagegen_queue_dead_letters 1" in t else None)(
        metrics_text(port)), timeout=15, interval=0.5, what="queue gauges")
    assert 'imagegen_jobs_total{outcome="succeeded"} 3' in text
    assert 'imagegen_jobs_total{outcome="failed"} 1' in text
    assert "imagegen_queue_oldest_message_age_seconds 0" in text
    assert re.search(r'imagegen_generation_seconds_count\{model="test"\} 3', text)
    assert re.search(r'imagegen_job_duration_seconds_bucket\{outcome="succeeded",le="\+Inf"\} 3',
                     text)
    assert requests.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
    # The metrics port serves nothing else.
    assert requests.post(f"http://127.0.0.1:{port}/generate", json={"prompt": "x"}).status_code \
        == 404
