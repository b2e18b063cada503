"""Job integrity through the real HTTP server: a job id names exactly one request (409 on reuse
with another request, idempotent replays, stored bytes never overwritten, a queued job's output
cannot be planted), job ids scoped per API key, records that reach a final state (dead-letter ->
failed, a crashed last attempt -> failed, a failed submission -> no record), and the listing
index (newest first, paging, images stored before the index)."""
import hashlib
import json
import os
import shutil
import signal
import time

import pytest
import requests

from queue_support import wait_until, workers  # noqa: F401


def sha(data):
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def setup(tmp_path, serve):
    """serve + the queue/store it uses; returns (server, store dir, worker args)."""
    def start(model="test", args=(), env=None, queue_options=""):
        queue = f"sqlite://{tmp_path}/queue.db{queue_options}"
        store = tmp_path / "images"
        server = serve("--model", model, "--store", f"file://{store}", *args,
                       env=dict({"IMAGEGEN_QUEUE": queue}, **(env or {})))
        worker_args = ["--queue", queue, "--store", f"file://{store}", "--model", model]
        return server, store, worker_args
    return start


def test_generate_reuse_with_another_request_is_409_and_never_overwrites(setup):
    server, store, _ = setup()
    first = requests.post(server.url + "/generate", json={"prompt": "a red circle", "job_id": "j1"})
    assert first.status_code == 200, first.text
    assert first.json()["reused"] is False
    png = requests.get(first.json()["url"])
    assert png.status_code == 200
    original = sha(png.content)

    for body in ({"prompt": "a blue square", "job_id": "j1"},
                 {"prompt": "a red circle", "job_id": "j1", "seed": 1},
                 {"prompt": "a red circle", "job_id": "j1", "steps": 3}):
        r = requests.post(server.url + "/generate", json=body)
        assert r.status_code == 409, (body, r.text)
        assert r.json()["error"]["code"] == "conflict"
        assert r.json()["error"]["field"] == "job_id"
        r = requests.post(server.url + "/jobs", json=body)
        assert r.status_code == 409, (body, r.text)
    assert sha(requests.get(first.json()["url"]).content) == original
    assert sha((store / "j1.png").read_bytes()) == original

    # The same request again: the existing result, not a second generation.
    again = requests.post(server.url + "/generate", json={"prompt": "a red circle", "job_id": "j1"})
    assert again.status_code == 200, again.text
    assert again.json()["reused"] is True
    assert again.json()["seed"] == first.json()["seed"]
    metrics = requests.get(server.url + "/metrics").text
    assert "imagegen_images_stored_total 1" in metrics
    assert sha((store / "j1.png").read_bytes()) == original


def test_a_queued_jobs_output_cannot_be_planted(setup, workers):
    server, store, worker_args = setup()
    victim = {"prompt": "the victim's prompt", "job_id": "victim-1"}
    r = requests.post(server.url + "/jobs", json=victim)
    assert r.status_code == 202, r.text
    for body in ({"prompt": "the attacker's prompt", "job_id": "victim-1"}, victim):
        r = requests.post(server.url + "/generate", json=body)
        assert r.status_code == 409, (body, r.text)
        assert r.json()["error"]["code"] == "conflict"
    assert not (store / "victim-1.png").exists()

    assert workers(*worker_args, "--wait", "0", "--drain").proc.wait(timeout=60) == 0
    job = requests.get(server.url + "/jobs/victim-1").json()
    assert job["status"] == "succeeded", job
    assert job["result"]["prompt"] == "the victim's prompt"
    listed = requests.get(server.url + "/images").json()["images"]
    assert [(i["key"], i["prompt"]) for i in listed] == [("victim-1.png", "the victim's prompt")]
    # Once stored, the same request reads it back on the synchronous door.
    r = requests.post(server.url + "/generate", json=victim)
    assert r.status_code == 200 and r.json()["reused"] is True


def test_a_dead_lettered_job_is_failed(setup, workers):
    server, _, worker_args = setup(model="test?fail=upstream_unavailable",
                                   queue_options="?max_receives=2")
    job = requests.post(server.url + "/jobs", json={"prompt": "never works"}).json()
    w = workers(*worker_args, "--max-attempts", "2", "--wait", "1")
    wait_until(lambda: requests.get(job["status_url"]).json()["status"] == "failed", timeout=30,
               what="failed")
    record = requests.get(job["status_url"]).json()
    assert record["attempts"] == 2
    assert record["error"]["code"] == "upstream_unavailable"
    w.stop()


def test_a_crash_on_the_last_attempt_ends_failed(setup, workers):
    server, _, worker_args = setup(model="test?delay_ms=20000", queue_options="?max_receives=1")
    job = requests.post(server.url + "/jobs", json={"prompt": "crashes", "steps": 20}).json()
    w = workers(*worker_args, "--max-attempts", "1", "--job-timeout", "2", "--wait", "1")
    wait_until(lambda: requests.get(job["status_url"]).json()["status"] == "running", timeout=30,
               what="running")
    os.kill(w.proc.pid, signal.SIGKILL)
    w.proc.wait(timeout=10)
    assert requests.get(job["status_url"]).json()["status"] == "running"  # within its lease
    # The lease is the job's deadline (2 s) plus a grace of 5 s.
    wait_until(lambda: requests.get(job["status_url"]).json()["status"] == "failed", timeout=20,
               interval=0.5, what="failed after the lease")
    record = requests.get(job["status_url"]).json()
    assert "dead-lettered" in record["error"]["message"]
    listed = requests.get(server.url + "/jobs").json()["jobs"]
    assert [(j["job_id"], j["status"]) for j in listed] == [(job["job_id"], "failed")]


def test_a_failed_submission_leaves_no_record(tmp_path, serve):
    # Nothing listens on port 1: every SendMessage fails to connect.
    env = {"IMAGEGEN_QUEUE": "http://127.0.0.1:1/000000000000/jobs",
           "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "secret",
           "AWS_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true",
           "AWS_MAX_ATTEMPTS": "1"}
    store = tmp_path / "images"
    server = serve("--model", "test", "--store", f"file://{store}", env=env)
    for body in ({"prompt": "lost", "job_id": "lost-1"}, {"prompt": "lost too"}):
        r = requests.post(server.url + "/jobs", json=body)
        assert r.status_code in (502, 503), r.text
    assert requests.get(server.url + "/jobs/lost-1").status_code == 404
    assert requests.get(server.url + "/jobs").json()["jobs"] == []
    # Nothing under jobs/ but the listing index's marker (written by the GET /jobs above): no
    # record, no index entry.
    left = [p.relative_to(store).as_posix() for p in (store / "jobs").rglob("*") if p.is_file()]
    assert left in ([], ["jobs/_index.v1"]), left
    # The id was not taken: a synchronous generation under it with another request works.
    r = requests.post(server.url + "/generate", json={"prompt": "something else", "job_id": "lost-1"})
    assert r.status_code == 200, r.text


def test_job_ids_are_scoped_to_the_callers_key(setup, tmp_path, workers):
    keys = tmp_path / "keys.txt"
    keys.write_text("key-alice\nkey-bob\n")
    server, store, worker_args = setup(args=("--api-keys-file", str(keys)))
    alice = {"X-Api-Key": "key-alice"}
    bob = {"Authorization": "Bearer key-bob"}

    r = requests.post(server.url + "/jobs", json={"prompt": "alice's", "job_id": "mine"},
                      headers=alice)
    assert r.status_code == 202, r.text
    assert requests.get(server.url + "/jobs/mine", headers=bob).status_code == 404
    assert requests.delete(server.url + "/jobs/mine", headers=bob).status_code == 404
    assert requests.get(server.url + "/jobs", headers=bob).json()["jobs"] == []
    # Bob's "mine" is another job: no collision, no conflict, no reuse.
    r = requests.post(server.url + "/jobs", json={"prompt": "bob's", "job_id": "mine"}, headers=bob)
    assert r.status_code == 202, r.text
    assert requests.get(server.url + "/jobs/mine", headers=alice).json()["request"]["prompt"] == \
        "alice's"
    assert requests.get(server.url + "/jobs/mine", headers=bob).json()["request"]["prompt"] == "bob's"
    assert [j["job_id"] for j in requests.get(server.url + "/jobs", headers=alice).json()["jobs"]] \
        == ["mine"]

    assert workers(*worker_args, "--wait", "0", "--drain").proc.wait(timeout=60) == 0
    a = requests.get(server.url + "/jobs/mine", headers=alice).json()
    b = requests.get(server.url + "/jobs/mine", headers=bob).json()
    assert a["status"] == b["status"] == "succeeded", (a, b)
    assert a["result"]["key"] != b["result"]["key"]
    assert a["result"]["prompt"] == "alice's" and b["result"]["prompt"] == "bob's"
    # The synchronous door shares the namespaces.
    g1 = requests.post(server.url + "/generate", json={"prompt": "x", "job_id": "g"}, headers=alice)
    g2 = requests.post(server.url + "/generate", json={"prompt": "y", "job_id": "g"}, headers=bob)
    assert g1.status_code == g2.status_code == 200, (g1.text, g2.text)
    assert g1.json()["key"] != g2.json()["key"]
    r = requests.post(server.url + "/generate", json={"prompt": "z", "job_id": "g"}, headers=bob)
    assert r.status_code == 409


def test_listing_is_newest_first_pages_and_finds_images_from_before_the_index(setup):
    server, store, _ = setup()
    # Two images as an older version stored them: a PNG and its sidecar, no index entry.
    first = requests.post(server.url + "/generate", json={"prompt": "made to copy"}).json()
    png = (store / first["key"]).read_bytes()
    sidecar = json.loads((store / ".meta" / (first["key"] + ".json")).read_text())
    for name, ms in (("old-a.png", 1_600_000_000_000), ("old-b.png", 1_600_000_001_000)):
        (store / name).write_bytes(png)
        meta = dict(sidecar, metadata=dict(sidecar["metadata"], **{"created-ms": str(ms)}))
        del meta["metadata"]["request-hash"]
        (store / ".meta" / (name + ".json")).write_text(json.dumps(meta))
    shutil.rmtree(store / "index")  # a store from before the index
    os.remove(store / first["key"])
    os.remove(store / ".meta" / (first["key"] + ".json"))

    keys = []
    for i in range(5):
        r = requests.post(server.url + "/generate", json={"prompt": f"p{i}", "job_id": f"n{i}"})
        assert r.status_code == 200, r.text
        keys.append(r.json()["key"])
        time.sleep(0.01)
    # This server lists for the first time now: it indexes the two old images once (by their
    # created-ms), then lists everything newest first.
    seen, cursor = [], None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = requests.get(server.url + "/images", params=params).json()
        assert len(page["images"]) <= 2
        seen += [i["key"] for i in page["images"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == list(reversed(keys)) + ["old-b.png", "old-a.png"]
    assert requests.get(server.url + "/images", params={"cursor": "../x"}).status_code == 400
    # An image that failed to store after its entry was written is skipped, not listed.
    os.remove(store / "n4.png")
    assert requests.get(server.url + "/images", params={"limit": 1}).json()["images"][0]["key"] \
        == "n3.png"


def test_the_output_format_is_part_of_the_request_under_a_job_id(setup):
    server, store, _ = setup()
    jpeg = {"prompt": "a green field", "job_id": "fmt-1", "format": "jpeg", "quality": 70}
    first = requests.post(server.url + "/generate", json=jpeg)
    assert first.status_code == 200, first.text
    assert first.json()["key"] == "fmt-1.jpg"
    original = sha((store / "fmt-1.jpg").read_bytes())
    # Another format, quality or background changes the stored bytes: another request.
    for change in ({"format": "png"}, {"format": "webp"}, {"quality": 71},
                   {"background": "opaque"}):
        body = dict(jpeg, **change)
        r = requests.post(server.url + "/generate", json=body)
        assert r.status_code == 409, (change, r.text)
        assert r.json()["error"]["code"] == "conflict"
        assert requests.post(server.url + "/jobs", json=body).status_code == 409, change
    assert not (store / "fmt-1.png").exists() and not (store / "fmt-1.webp").exists()
    again = requests.post(server.url + "/generate", json=jpeg)
    assert again.status_code == 200, again.text
    assert again.json()["reused"] is True and again.json()["key"] == "fmt-1.jpg"
    assert sha((store / "fmt-1.jpg").read_bytes()) == original
    # PNG is lossless: a quality given with it is the same request as none.
    png = {"prompt": "a lossless one", "job_id": "fmt-2", "format": "png"}
    assert requests.post(server.url + "/generate", json=png).status_code == 200
    r = requests.post(server.url + "/generate", json=dict(png, quality=10))
    assert r.status_code == 200, r.text
    assert r.json()["reused"] is True


def test_listing_shows_every_format_newest_first(setup):
    server, store, _ = setup()
    keys = []
    for i, fmt in enumerate(("png", "jpeg", "webp", "jpeg", "png", "webp")):
        r = requests.post(server.url + "/generate", json={"prompt": f"f{i}", "format": fmt})
        assert r.status_code == 200, r.text
        keys.append(r.json()["key"])
        time.sleep(0.01)
    assert {k.rsplit(".", 1)[1] for k in keys} == {"png", "jpg", "webp"}
    seen, cursor = [], None
    while True:
        params = {"limit": 4, **({"cursor": cursor} if cursor else {})}
        page = requests.get(server.url + "/images", params=params).json()
        seen += [i["key"] for i in page["images"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == list(reversed(keys))
    entries = sorted(p.name for p in (store / "index" / "images").rglob("*") if p.is_file())
    assert len(entries) == len(keys)


@pytest.fixture
def sqs_setup(tmp_path, serve, moto_server):
    """serve on an SQS queue (moto) with a redrive policy; returns (server, worker args, dlq)."""
    from queue_support import CREDS, sqs_client
    from test_queue_sqs import make_queue

    def start(model, max_receives):
        sqs = sqs_client(moto_server)
        url, dlq = make_queue(sqs, visibility=30, max_receives=max_receives)
        env = dict(CREDS, AWS_ENDPOINT_URL=moto_server, AWS_CONFIG_FILE=str(tmp_path / "none"),
                   AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"))
        store = f"file://{tmp_path}/images"
        server = serve("--model", model, "--store", store, env=dict(env, IMAGEGEN_QUEUE=url))
        args = ["--queue", url, "--store", store, "--model", model,
                "--max-attempts", str(max_receives)]
        dlq_depth = lambda: int(sqs.get_queue_attributes(  # noqa: E731
            QueueUrl=dlq, AttributeNames=["ApproximateNumberOfMessages"])["Attributes"][
            "ApproximateNumberOfMessages"])
        return server, args, env, dlq_depth
    return start


def test_sqs_dead_letter_after_max_attempts_is_failed(sqs_setup, workers):
    server, args, env, dlq_depth = sqs_setup("test?fail=upstream_unavailable", 2)
    job = requests.post(server.url + "/jobs", json={"prompt": "never works"})
    assert job.status_code == 202, job.text
    w = workers(*args, "--wait", "1", env=env)
    status_url = job.json()["status_url"]
    wait_until(lambda: requests.get(status_url).json()["status"] == "failed", timeout=40,
               what="failed")
    # The worker released the final failure; SQS's redrive policy moves it on its next receive.
    wait_until(lambda: dlq_depth() == 1, timeout=30, what="dead-lettered by SQS")
    time.sleep(1.5)
    record = requests.get(status_url).json()
    assert record["status"] == "failed" and record["attempts"] == 2, record
    assert [o["outcome"] for o in w.outcomes()] == ["retried", "failed"]


def test_sqs_crash_on_the_last_attempt_ends_failed(sqs_setup, workers):
    server, args, env, dlq_depth = sqs_setup("test?delay_ms=20000", 1)
    job = requests.post(server.url + "/jobs", json={"prompt": "crashes", "steps": 20}).json()
    w = workers(*args, "--job-timeout", "2", "--wait", "1", "--visibility", "3", env=env)
    wait_until(lambda: requests.get(job["status_url"]).json()["status"] == "running", timeout=30,
               what="running")
    os.kill(w.proc.pid, signal.SIGKILL)
    w.proc.wait(timeout=10)
    wait_until(lambda: requests.get(job["status_url"]).json()["status"] == "failed", timeout=20,
               interval=0.5, what="failed after the lease")
    # A healthy worker never runs it again: SQS moves it to the dead-letter queue on receive.
    w2 = workers(*args, "--wait", "1", env=env)
    wait_until(lambda: dlq_depth() == 1, timeout=30, what="dead-lettered by SQS")
    assert w2.outcomes() == []
    assert requests.get(job["status_url"]).json()["status"] == "failed"
