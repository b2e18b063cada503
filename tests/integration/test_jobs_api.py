"""POST/GET/DELETE /jobs through the real HTTP server (`imagegen serve`), with real workers on the
embedded queue: status URL and Location, progress, results with URLs, Idempotency-Key and
client job ids, cancellation of queued and running jobs, pagination, retention."""
import concurrent.futures
import json
import time

import pytest
import requests

from queue_support import pngs, wait_until, workers  # noqa: F401


@pytest.fixture
def setup(tmp_path, serve):
    """serve + the queue/store it uses; call with extra env for the server."""
    def start(model="test", env=None):
        queue = f"sqlite://{tmp_path}/queue.db"
        store = tmp_path / "images"
        server = serve("--model", model, "--store", f"file://{store}",
                       env=dict({"IMAGEGEN_QUEUE": queue}, **(env or {})))
        worker_args = ["--queue", queue, "--store", f"file://{store}", "--model", model]
        return server, store, worker_args
    return start


def get(server, job_id):
    return requests.get(f"{server.url}/jobs/{job_id}")


def test_submit_poll_and_fetch_the_image(setup, workers):
    server, store, worker_args = setup()
    r = requests.post(server.url + "/jobs", json={"prompt": "a red circle", "seed": 5})
    assert r.status_code == 202, r.text
    job = r.json()
    job_id = job["job_id"]
    assert job["status"] == "queued"
    assert job["status_url"] == f"{server.url}/jobs/{job_id}"
    assert r.headers["Location"] == f"/jobs/{job_id}"
    assert job["request"]["prompt"] == "a red circle" and job["request"]["seed"] == 5
    assert get(server, job_id).json()["status"] == "queued"

    workers(*worker_args, "--wait", "0", "--drain").proc.wait(timeout=60)
    done = get(server, job_id).json()
    assert done["status"] == "succeeded", done
    assert done["attempts"] == 1
    assert done["progress"]["step"] == done["progress"]["total_steps"] > 0
    result = done["result"]
    assert result["key"] == f"{job_id}.png" and result["seed"] == 5
    png = requests.get(result["url"])
    assert png.status_code == 200 and png.content[:8] == b"\x89PNG\r\n\x1a\n"
    assert result["images"][0]["url"] == result["url"]


def test_invalid_submissions_are_rejected_before_queueing(setup):
    server, store, _ = setup()
    for body, field in [({"prompt": ""}, "prompt"), ({"prompt": "x", "steps": 0}, "steps"),
                        ({"prompt": "x", "colour": "red"}, "colour"),
                        ({"prompt": "x", "job_id": "../x"}, "job_id")]:
        r = requests.post(server.url + "/jobs", json=body)
        assert r.status_code == 400, (body, r.text)
        assert r.json()["error"]["field"] == field
    r = requests.post(server.url + "/jobs", data="prompt=x",
                      headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 415
    assert requests.get(server.url + "/jobs").json()["jobs"] == []


def test_idempotency_key_and_client_job_id_return_the_same_job(setup, workers):
    server, store, worker_args = setup()
    body = {"prompt": "same job", "seed": 1}
    headers = {"Idempotency-Key": "order-7"}

    def post(_):
        return requests.post(server.url + "/jobs", json=body, headers=headers)

    # Concurrent retries: one job, whatever the interleaving.
    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        responses = list(pool.map(post, range(6)))
    assert {r.status_code for r in responses} == {202}
    ids = {r.json()["job_id"] for r in responses}
    assert len(ids) == 1
    job_id = ids.pop()
    assert post(0).headers.get("Idempotent-Replayed") == "true"
    # The key with a different body is a conflict, not a second job.
    r = requests.post(server.url + "/jobs", json={"prompt": "other"}, headers=headers)
    assert r.status_code == 409 and r.json()["error"]["field"] == "Idempotency-Key"
    # Another caller's key space (another credential) is separate.
    other = requests.post(server.url + "/jobs", json=body,
                          headers={"Idempotency-Key": "order-7", "X-Api-Key": "someone-else"})
    assert other.status_code == 202 and other.json()["job_id"] != job_id

    # A client-supplied job id works the same way.
    a = requests.post(server.url + "/jobs", json={"prompt": "mine", "job_id": "client-1"})
    b = requests.post(server.url + "/jobs", json={"prompt": "mine", "job_id": "client-1"})
    assert a.status_code == b.status_code == 202
    assert a.json()["job_id"] == b.json()["job_id"] == "client-1"
    conflict = requests.post(server.url + "/jobs", json={"prompt": "not mine", "job_id": "client-1"})
    assert conflict.status_code == 409 and conflict.json()["error"]["field"] == "job_id"

    w = workers(*worker_args, "--wait", "0", "--drain")
    assert w.proc.wait(timeout=60) == 0
    # Duplicate messages from racing retries produced no second image.
    assert pngs(store) == sorted(["client-1.png", f"{job_id}.png",
                                  f"{other.json()['job_id']}.png"])
    # A retry after completion returns the finished job.
    again = post(0).json()
    assert again["job_id"] == job_id and again["status"] == "succeeded"


def test_cancel_queued_and_running_jobs_and_404_for_unknown(setup, workers):
    server, store, worker_args = setup(model="test?delay_ms=4000")
    assert requests.delete(server.url + "/jobs/no-such-job").status_code == 404
    assert requests.delete(server.url + "/jobs/bad..id").status_code == 404
    assert get(server, "no-such-job").status_code == 404

    queued = requests.post(server.url + "/jobs", json={"prompt": "never", "job_id": "q-1"}).json()
    r = requests.delete(queued["status_url"])
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    assert get(server, "q-1").json()["status"] == "cancelled"

    running = requests.post(server.url + "/jobs",
                            json={"prompt": "slow", "job_id": "r-1", "steps": 40}).json()
    w = workers(*worker_args, "--wait", "1")
    wait_until(lambda: get(server, "r-1").json()["status"] == "running", timeout=30,
               what="running")
    wait_until(lambda: get(server, "r-1").json().get("progress", {}).get("step", 0) > 0,
               timeout=10, what="progress")
    r = requests.delete(running["status_url"])
    assert r.status_code == 200 and r.json()["cancel_requested"] is True
    wait_until(lambda: get(server, "r-1").json()["status"] == "cancelled", timeout=15,
               what="cancelled")
    assert w.stop() == 0
    assert pngs(store) == []  # neither produced an image
    outcomes = {o["job_id"]: o["outcome"] for o in w.outcomes()}
    assert outcomes == {"q-1": "cancelled", "r-1": "cancelled"}
    # Cancelling a finished job changes nothing.
    assert requests.delete(running["status_url"]).json()["status"] == "cancelled"


def test_listing_is_paginated_newest_first(setup):
    server, store, _ = setup()
    ids = []
    for i in range(5):
        ids.append(requests.post(server.url + "/jobs", json={"prompt": f"p{i}"}).json()["job_id"])
        time.sleep(0.002)
    seen, cursor = [], None
    for _ in range(5):
        params = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = requests.get(server.url + "/jobs", params=params).json()
        seen += [j["job_id"] for j in page["jobs"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == list(reversed(ids))
    for bad in ["0", "101", "x"]:
        assert requests.get(server.url + "/jobs", params={"limit": bad}).status_code == 400
    assert requests.get(server.url + "/jobs", params={"cursor": "../x"}).status_code == 400


def test_finished_records_expire_after_the_retention(setup, workers):
    server, store, worker_args = setup(env={"IMAGEGEN_JOB_RETENTION": "2"})
    job_id = requests.post(server.url + "/jobs", json={"prompt": "brief"}).json()["job_id"]
    workers(*worker_args, "--wait", "0", "--drain").proc.wait(timeout=60)
    assert get(server, job_id).json()["status"] == "succeeded"
    assert [j["job_id"] for j in requests.get(server.url + "/jobs").json()["jobs"]] == [job_id]
    time.sleep(3.2)
    assert get(server, job_id).status_code == 404
    assert requests.get(server.url + "/jobs").json()["jobs"] == []
    # The image itself is not a job record: it stays.
    assert pngs(store) == [f"{job_id}.png"]


def test_serve_with_in_process_workers_completes_jobs_alone(setup):
    server, store, _ = setup(env={"IMAGEGEN_SERVE_WORKERS": "2"})
    ids = [requests.post(server.url + "/jobs", json={"prompt": f"x{i}"}).json()["job_id"]
           for i in range(4)]
    wait_until(lambda: all(get(server, i).json()["status"] == "succeeded" for i in ids),
               timeout=30, what="jobs done in-process")
    assert server.stop() == 0


def test_job_records_live_in_s3_when_the_store_is_s3(tmp_path, serve, moto_server):
    """The same routes over an S3 store (moto): records are objects under jobs/, visible to
    any worker that shares the bucket."""
    import uuid

    import boto3
    from queue_support import CREDS
    s3 = boto3.client("s3", endpoint_url=moto_server, region_name="us-east-1",
                      aws_access_key_id=CREDS["AWS_ACCESS_KEY_ID"],
                      aws_secret_access_key=CREDS["AWS_SECRET_ACCESS_KEY"])
    bucket = "jobs-" + uuid.uuid4().hex[:10]
    s3.create_bucket(Bucket=bucket)
    env = dict(CREDS, AWS_ENDPOINT_URL_S3=moto_server, BUCKET_NAME=bucket, KEY_PREFIX="team-a",
               IMAGEGEN_QUEUE=f"sqlite://{tmp_path}/queue.db", IMAGEGEN_SERVE_WORKERS="1",
               AWS_CONFIG_FILE=str(tmp_path / "none"),
               AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"))
    server = serve("--model", "test", env=env)
    headers = {"Idempotency-Key": "s3-key"}
    job = requests.post(server.url + "/jobs", json={"prompt": "in s3"}, headers=headers).json()
    wait_until(lambda: get(server, job["job_id"]).json()["status"] == "succeeded", timeout=30,
               what="succeeded")
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]}
    assert f"team-a/jobs/{job['job_id']}.json" in keys
    assert f"team-a/{job['job_id']}.png" in keys
    record = json.loads(s3.get_object(Bucket=bucket,
                                      Key=f"team-a/jobs/{job['job_id']}.json")["Body"].read())
    assert record["status"] == "succeeded"
    again = requests.post(server.url + "/jobs", json={"prompt": "in s3"}, headers=headers)
    assert again.json()["job_id"] == job["job_id"]
    assert requests.delete(server.url + "/jobs/nope").status_code == 404
    page = requests.get(server.url + "/jobs", params={"limit": 5}).json()
    assert [j["job_id"] for j in page["jobs"]] == [job["job_id"]]
    # Client-named ids out of their time order: pages follow the creation time, from the
    # index under jobs/_index/ (ListObjectsV2 start-after), not the ids' key order.
    for name in ("s3-c", "s3-a", "s3-b"):
        r = requests.post(server.url + "/jobs", json={"prompt": name, "job_id": name})
        assert r.status_code == 202, r.text
        time.sleep(0.01)
    seen, cursor = [], None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = requests.get(server.url + "/jobs", params=params).json()
        assert len(page["jobs"]) <= 2
        seen += [j["job_id"] for j in page["jobs"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == ["s3-b", "s3-a", "s3-c", job["job_id"]]
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="team-a/jobs/_index/")
            ["Contents"]}
    # team-a/jobs/_index/rrrr/rrr/rrr/rrr-<job_id>: one entry per record
    assert sorted(k[len("team-a/jobs/_index/") + 17:] for k in keys) == sorted(seen), keys
