"""Acknowledging SQS messages when the network loses calls or answers (issue 11: a message left
in flight after every job had finished). A fault proxy between `imagegen worker` and moto fails
DeleteMessage and ReceiveMessage calls; each job must still run once and its message be gone
long before the visibility timeout would have returned it."""
import json
import time

import pytest

from fault_proxy import FaultProxy
from queue_support import (CREDS, job_record, pngs, sqs_client, sqs_endpoint,  # noqa: F401
                           wait_until, workers)
from test_queue_sqs import depth, make_queue


@pytest.fixture
def env(tmp_path):
    return dict(CREDS, AWS_CONFIG_FILE=str(tmp_path / "none"),
                AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"))


@pytest.fixture
def proxy(sqs_endpoint):
    made = []

    def start(plan):
        made.append(FaultProxy(sqs_endpoint, plan))
        return made[-1]

    yield start
    for p in made:
        p.close()


def send_jobs(sqs, url, ids):
    for n, job_id in enumerate(ids):
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps(
            {"prompt": job_id, "job_id": job_id, "seed": n}))


def test_lost_and_failed_deletes_are_retried_until_the_message_is_gone(
        tmp_path, sqs_endpoint, env, workers, proxy):
    sqs = sqs_client(sqs_endpoint)
    url, _ = make_queue(sqs, visibility=120)
    ids = [f"ack-{i}" for i in range(3)]
    send_jobs(sqs, url, ids)
    # Four 500s in a row, more than the client's default three attempts, then an answer lost
    # after the server deleted (the retry deletes an already deleted message, which succeeds).
    # (libcurl itself resends once when a reused connection closes without an answer, so the
    # proxy may see more calls than the client makes attempts.)
    plan = ["500", "500", "500", "500", "drop"]
    p = proxy({"DeleteMessage": list(plan)})
    store = tmp_path / "images"
    w = workers("--queue", p.queue_url(url), "--store", f"file://{store}", "--model", "test",
                "--concurrency", "1", "--wait", "1", "--visibility", "120", env=env)
    wait_until(lambda: len(w.outcomes()) >= 3, timeout=90, what="3 outcomes")
    # Gone now, not after the 120 s visibility timeout.
    wait_until(lambda: depth(sqs, url) == (0, 0), timeout=30, what="queue empty")
    assert p.injected == [("DeleteMessage", f) for f in plan]
    assert p.seen["DeleteMessage"] >= 3 + len(plan)
    outcomes = w.outcomes()
    assert sorted(o["job_id"] for o in outcomes) == ids
    assert {o["outcome"] for o in outcomes} == {"succeeded"}
    assert not [l for l in w.lines() if l.get("msg") == "delete failed"]
    assert pngs(store) == sorted(f"{i}.png" for i in ids)
    assert all(job_record(store, i)["attempts"] == 1 for i in ids)
    assert w.stop() == 0


def test_a_lost_receive_answer_redelivers_and_a_finished_job_is_only_deleted(
        tmp_path, sqs_endpoint, env, workers, proxy):
    sqs = sqs_client(sqs_endpoint)
    url, _ = make_queue(sqs, visibility=3)
    # The first receive is answered to nobody: moto marks the message in flight, we never see
    # it. It must come back after its visibility timeout and run then, once.
    p = proxy({"ReceiveMessage": ["drop"]})
    store = tmp_path / "images"
    send_jobs(sqs, url, ["lost-1"])
    w = workers("--queue", p.queue_url(url), "--store", f"file://{store}", "--model", "test",
                "--wait", "1", "--visibility", "3", env=env)
    wait_until(lambda: len(w.outcomes()) >= 1, timeout=60, what="the redelivered job")
    first = w.outcomes()[0]
    assert first["job_id"] == "lost-1" and first["outcome"] == "succeeded"
    assert first["attempt"] == 2  # the lost delivery counted; the job ran on the second
    image = (store / "lost-1.png").stat()
    # A message for a job whose record is final (a redelivery, a duplicate send) is deleted
    # without running the job again.
    send_jobs(sqs, url, ["lost-1"])
    wait_until(lambda: len(w.outcomes()) >= 2, timeout=30, what="the duplicate")
    assert w.outcomes()[1]["outcome"] == "duplicate"
    assert (store / "lost-1.png").stat().st_mtime_ns == image.st_mtime_ns
    wait_until(lambda: depth(sqs, url) == (0, 0), timeout=15, what="queue empty")
    assert job_record(store, "lost-1")["status"] == "succeeded"
    assert w.stop() == 0
