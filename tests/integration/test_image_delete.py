"""DELETE /images/{key} through the real HTTP server: 204, then 410 gone for GET/HEAD and a second
DELETE, hidden from GET /images, never written again by a replay of its /generate request, a
redelivered job message (embedded SQLite queue, and SQS + S3 on moto) or a job run that finds
it gone; API keys scope it to the caller's own images; unknown keys 404, malformed keys 400."""
import http.client
import json
import uuid

import requests

from conftest import run_cli
from queue_support import CREDS, pngs, sqs_client, sqs_endpoint, wait_until, workers  # noqa: F401

RED = {"prompt": "a red circle", "seed": 5, "width": 64, "height": 64}


def listed(server, headers=None):
    r = requests.get(server.url + "/images", params={"limit": 100}, headers=headers)
    assert r.status_code == 200, r.text
    return [i["key"] for i in r.json()["images"]]


def raw(server, method, path, headers=None):
    """A request with the path exactly as given (no client-side normalisation)."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    conn.request(method, path, headers=headers or {})
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    return resp.status, body


def error_code(response):
    return response.json()["error"]["code"]


def test_delete_then_gone_unlisted_and_never_generated_again(serve, tmp_path):
    store = tmp_path / "images"
    server = serve("--model", "test", "--store", f"file://{store}")
    made = requests.post(server.url + "/generate", json=dict(RED, job_id="del-a"))
    assert made.status_code == 200, made.text
    key = made.json()["key"]
    other = requests.post(server.url + "/generate", json=dict(RED, seed=6)).json()["key"]
    assert key == "del-a.png" and set(listed(server)) == {key, other}

    r = requests.delete(f"{server.url}/images/{key}")
    assert r.status_code == 204 and r.content == b""
    got = requests.get(f"{server.url}/images/{key}")
    assert got.status_code == 410 and error_code(got) == "gone" and key in got.json()["error"]["message"]
    assert requests.head(f"{server.url}/images/{key}").status_code == 410
    assert listed(server) == [other]
    again = requests.delete(f"{server.url}/images/{key}")
    assert again.status_code == 410 and error_code(again) == "gone"
    assert pngs(store) == [other]
    assert (store / "_deleted" / f"{key}.json").is_file()
    assert not list((store / "index").rglob(f"*{key}"))  # its listing entry went too

    # The identical request (and the same one without its seed) answers gone, stores nothing.
    for body in (dict(RED, job_id="del-a"), {k: v for k, v in dict(RED, job_id="del-a").items()
                                              if k != "seed"}):
        replay = requests.post(server.url + "/generate", json=body)
        assert replay.status_code == 410 and error_code(replay) == "gone", replay.text
    assert key not in pngs(store) and key not in listed(server)
    # Another request under the id is still a conflict; a brand-new one is unaffected.
    conflict = requests.post(server.url + "/generate", json=dict(RED, job_id="del-a", prompt="a cat"))
    assert conflict.status_code == 409
    fresh = requests.post(server.url + "/generate", json=RED)
    assert fresh.status_code == 200 and fresh.json()["key"] in listed(server)
    assert requests.get(f"{server.url}/images/{other}").status_code == 200


def test_unknown_internal_and_malformed_keys(serve, tmp_path):
    store = tmp_path / "images"
    server = serve("--model", "test", "--store", f"file://{store}")
    made = requests.post(server.url + "/generate", json=dict(RED, job_id="keep")).json()
    missing = requests.delete(server.url + "/images/no-such-image.png")
    assert missing.status_code == 404 and error_code(missing) == "not_found"
    for internal in ("ids/keep", "index/images.v1", "jobs/keep.json", "_deleted/keep.png.json"):
        r = requests.delete(f"{server.url}/images/{internal}")
        assert r.status_code == 404 and error_code(r) == "not_found", (internal, r.text)
    for path in ("/images/.meta/keep.png.json", "/images/a//keep.png", "/images/a/../keep.png"):
        status, body = raw(server, "DELETE", path)
        assert 400 <= status < 500, (path, status, body)
        assert json.loads(body)["error"]["code"] in ("invalid_request", "not_found"), body
    assert requests.get(f"{server.url}/images/{made['key']}").status_code == 200
    assert (store / "ids" / "keep").is_file() and not (store / "_deleted").exists()
    # DELETE on the listing: not a route of its own.
    assert requests.delete(server.url + "/images").status_code == 405


def test_api_keys_scope_deletion_to_the_callers_own_images(serve, tmp_path):
    store = tmp_path / "images"
    server = serve("--model", "test", "--store", f"file://{store}",
                   env={"IMAGEGEN_API_KEYS": "key-a,key-b"})
    a = {"Authorization": "Bearer key-a"}
    b = {"x-api-key": "key-b"}
    made = requests.post(server.url + "/generate", json=dict(RED, job_id="mine"), headers=a)
    assert made.status_code == 200, made.text
    key = made.json()["key"]
    assert key.endswith("/mine.png") and key in listed(server, a)
    anonymous = requests.delete(f"{server.url}/images/{key}")
    assert anonymous.status_code == 401 and error_code(anonymous) == "unauthorized"
    wrong = requests.delete(f"{server.url}/images/{key}", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    foreign = requests.delete(f"{server.url}/images/{key}", headers=b)
    assert foreign.status_code == 404 and error_code(foreign) == "not_found"
    assert requests.get(f"{server.url}/images/{key}", headers=a).status_code == 200
    assert requests.delete(f"{server.url}/images/{key}", headers=a).status_code == 204
    assert requests.get(f"{server.url}/images/{key}", headers=a).status_code == 410
    replay = requests.post(server.url + "/generate", json=dict(RED, job_id="mine"), headers=a)
    assert replay.status_code == 410
    # key-b's own "mine" is another name in another namespace: unaffected.
    theirs = requests.post(server.url + "/generate", json=dict(RED, job_id="mine"), headers=b)
    assert theirs.status_code == 200 and theirs.json()["key"] != key


def test_sqlite_jobs_redelivered_or_rerun_after_the_delete_do_not_recreate(serve, tmp_path,
                                                                           workers):
    store = tmp_path / "images"
    queue = f"sqlite://{tmp_path}/queue.db"
    server = serve("--model", "test", "--store", f"file://{store}", env={"IMAGEGEN_QUEUE": queue})
    worker_args = ["--queue", queue, "--store", f"file://{store}", "--model", "test",
                   "--wait", "0", "--drain"]
    submit_args = ["submit", "--queue", queue, "a red circle", "--seed", "5", "--size", "64x64"]

    # A job that succeeded, its image deleted, then its message delivered again.
    job = requests.post(server.url + "/jobs", json=dict(RED, job_id="lite"))
    assert job.status_code == 202, job.text
    workers(*worker_args).proc.wait(timeout=60)
    done = requests.get(server.url + "/jobs/lite").json()
    assert done["status"] == "succeeded" and done["result"]["key"] == "lite.png"
    assert requests.delete(server.url + "/images/lite.png").status_code == 204
    sent = run_cli(*submit_args, "--job-id", "lite")
    assert sent.returncode == 0, sent.stderr
    w = workers(*worker_args)
    w.proc.wait(timeout=60)
    assert [o["outcome"] for o in w.outcomes()] == ["duplicate"], w.logs()
    after = requests.get(server.url + "/jobs/lite").json()
    assert after["status"] == "succeeded" and after["result"]["deleted"] is True
    assert after["result"]["images"][0]["deleted"] is True
    # Its idempotent replay returns the same job, without queueing it again.
    replay = requests.post(server.url + "/jobs", json=dict(RED, job_id="lite"))
    assert replay.json()["job_id"] == "lite" and replay.json()["status"] == "succeeded"
    assert "lite.png" not in pngs(store)

    # An image made directly, deleted, then a job run under its id (no record yet): it ends
    # failed "gone", acknowledged, and generates nothing.
    direct = requests.post(server.url + "/generate", json=dict(RED, job_id="direct-1"))
    assert direct.status_code == 200
    assert requests.delete(server.url + "/images/direct-1.png").status_code == 204
    assert run_cli(*submit_args, "--job-id", "direct-1").returncode == 0
    w = workers(*worker_args)
    w.proc.wait(timeout=60)
    outcomes = w.outcomes()
    assert [o["outcome"] for o in outcomes] == ["failed"], w.logs()
    record = requests.get(server.url + "/jobs/direct-1").json()
    assert record["status"] == "failed" and record["error"]["code"] == "gone", record
    assert pngs(store) == []
    stats = requests.get(server.url + "/metrics").text
    assert "imagegen_images_deleted_total 2" in stats


def test_s3_store_and_sqs_redelivery_on_moto(serve, tmp_path, sqs_endpoint, workers):
    """The same over S3 (moto): the tombstone is an object under the prefix, the image and its
    listing entry are removed, and the job's very message sent again is a duplicate."""
    import boto3
    s3 = boto3.client("s3", endpoint_url=sqs_endpoint, region_name="us-east-1",
                      aws_access_key_id=CREDS["AWS_ACCESS_KEY_ID"],
                      aws_secret_access_key=CREDS["AWS_SECRET_ACCESS_KEY"])
    bucket = "del-" + uuid.uuid4().hex[:10]
    s3.create_bucket(Bucket=bucket)
    sqs = sqs_client(sqs_endpoint)
    url = sqs.create_queue(QueueName="del-" + uuid.uuid4().hex[:10])["QueueUrl"]
    env = dict(CREDS, AWS_ENDPOINT_URL_S3=sqs_endpoint, BUCKET_NAME=bucket, KEY_PREFIX="team-a",
               IMAGEGEN_QUEUE=url, AWS_CONFIG_FILE=str(tmp_path / "none"),
               AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"))
    server = serve("--model", "test", env=env)

    def keys(prefix="team-a/"):
        return {o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])}

    job = requests.post(server.url + "/jobs", json=dict(RED, job_id="s3-del"))
    assert job.status_code == 202, job.text
    # The job's message as the queue holds it, left visible again for the worker.
    held = sqs.receive_message(QueueUrl=url, VisibilityTimeout=0, WaitTimeSeconds=2)["Messages"]
    body = held[0]["Body"]
    worker_args = ["--queue", url, "--model", "test", "--wait", "1", "--drain"]
    workers(*worker_args, env=env).proc.wait(timeout=60)
    record = requests.get(server.url + "/jobs/s3-del").json()
    assert record["status"] == "succeeded", record
    key = record["result"]["key"]
    assert key == "team-a/s3-del.png" and key in keys() and key in listed(server)
    assert any(k.endswith("-s3-del.png") for k in keys("team-a/index/images/"))

    assert requests.delete(f"{server.url}/images/{key}").status_code == 204
    assert key not in keys()
    assert "team-a/_deleted/s3-del.png.json" in keys()
    assert not any(k.endswith("-s3-del.png") for k in keys("team-a/index/images/"))
    assert requests.get(f"{server.url}/images/{key}").status_code == 410
    assert key not in listed(server)

    sqs.send_message(QueueUrl=url, MessageBody=body)  # at-least-once: the same message again
    w = workers(*worker_args, env=env)
    w.proc.wait(timeout=60)
    assert [o["outcome"] for o in w.outcomes()] == ["duplicate"], w.logs()
    replay = requests.post(server.url + "/generate", json=dict(RED, job_id="s3-del"))
    assert replay.status_code == 410 and error_code(replay) == "gone"
    assert key not in keys()
    after = requests.get(server.url + "/jobs/s3-del").json()
    assert after["status"] == "succeeded" and after["result"]["deleted"] is True
    assert requests.delete(f"{server.url}/images/{key}").status_code == 410
