"""Per-key limits through the real server: a token bucket per API key on the generation routes
(burst, then 429 rate_limited with Retry-After in the route's error shape, recovery after the
wait, keys independent of each other) and a concurrent-job quota per key with slow jobs."""
import time

import requests

from procs import wait_until

KEYS = {"IMAGEGEN_API_KEYS": "key-a,key-b"}


def post(server, path, key, body=None):
    return requests.post(server.url + path, json=body or {"prompt": "a red circle", "steps": 2},
                         headers={"Authorization": f"Bearer {key}"}, timeout=30)


def test_burst_then_429_with_retry_after_then_recovery(serve, tmp_path):
    server = serve("--model", "test", "--store", f"file://{tmp_path}/images",
                   "--rate-limit", "0.5", "--rate-burst", "3", env=KEYS)
    for _ in range(3):
        r = post(server, "/generate", "key-a")
        assert r.status_code == 200, r.text
    limited = post(server, "/generate", "key-a")
    assert limited.status_code == 429, limited.text
    assert limited.json()["error"]["code"] == "rate_limited"
    retry_after = int(limited.headers["Retry-After"])
    assert 1 <= retry_after <= 2  # one token at 0.5/s: at most 2 s away
    # Every generation door shares the key's bucket, each in its own error shape.
    openai = post(server, "/v1/images/generations", "key-a", {"prompt": "x"})
    assert openai.status_code == 429 and openai.headers["Retry-After"]
    assert openai.json()["error"]["type"] == "rate_limit_error"
    assert openai.json()["error"]["code"] == "rate_limited"
    assert post(server, "/jobs", "key-a").status_code == 429
    # Reads are not limited.
    assert requests.get(server.url + "/images",
                        headers={"Authorization": "Bearer key-a"}).status_code == 200
    # Another key has a bucket of its own.
    for _ in range(3):
        assert post(server, "/generate", "key-b").status_code == 200
    # After the wait the key may generate again (one token back, not a whole burst).
    time.sleep(retry_after + 0.1)
    assert post(server, "/generate", "key-a").status_code == 200
    assert post(server, "/generate", "key-a").status_code == 429


def test_without_keys_the_limit_is_per_client_address(serve, tmp_path):
    server = serve("--model", "test", "--store", f"file://{tmp_path}/images",
                   env={"IMAGEGEN_RATE_LIMIT": "0.2", "IMAGEGEN_RATE_BURST": "1"})
    assert requests.post(server.url + "/generate", json={"prompt": "x", "steps": 2}).ok
    r = requests.post(server.url + "/generate", json={"prompt": "x", "steps": 2})
    assert r.status_code == 429 and 1 <= int(r.headers["Retry-After"]) <= 5


def test_limits_are_off_by_default(serve, tmp_path):
    server = serve("--model", "test", "--store", f"file://{tmp_path}/images", env=KEYS)
    for _ in range(10):
        assert post(server, "/generate", "key-a").status_code == 200


def test_concurrent_job_quota_per_key_with_slow_jobs(serve, tmp_path):
    env = dict(KEYS, IMAGEGEN_QUEUE=f"sqlite://{tmp_path}/queue.db", IMAGEGEN_SERVE_WORKERS="1")
    server = serve("--model", "test?delay_ms=1500", "--store", f"file://{tmp_path}/images",
                   "--max-jobs-per-key", "2", env=env)
    first = post(server, "/jobs", "key-a")
    second = post(server, "/jobs", "key-a")
    assert first.status_code == second.status_code == 202, (first.text, second.text)
    over = post(server, "/jobs", "key-a")
    assert over.status_code == 429, over.text
    assert over.json()["error"]["code"] == "rate_limited"
    assert int(over.headers["Retry-After"]) >= 1
    # Another key's quota is its own.
    assert post(server, "/jobs", "key-b").status_code == 202
    # Once a job of key-a is done, key-a may submit again (one place, not two).
    job_id = first.json()["job_id"]
    wait_until(lambda: requests.get(f"{server.url}/jobs/{job_id}",
                                    headers={"Authorization": "Bearer key-a"}).json()["status"]
               == "succeeded", timeout=30, what="the first job")
    assert post(server, "/jobs", "key-a").status_code == 202
    assert post(server, "/jobs", "key-a").status_code == 429
