"""The HTTP service on a loopback port, driven like a user would (seed contract first)."""
import base64
import concurrent.futures
import json
import subprocess
import threading
import time

import requests


def test_seed_contract_curl(serve):
    server = serve("--model", "test")
    out = subprocess.run(["curl", "-s", "-X", "POST", server.url + "/generate", "-H",
                          "Content-Type: application/json", "-d", '{"prompt": "A croissant"}'],
                         capture_output=True, text=True, timeout=30)
    result = json.loads(out.stdout)
    for field in ("key", "url", "seed", "model", "timings"):
        assert field in result
    image = requests.get(result["url"])
    assert image.status_code == 200
    assert image.headers["Content-Type"] == "image/png"
    assert image.content[:8] == b"\x89PNG\r\n\x1a\n"
    assert image.headers["ETag"]
    assert requests.get(result["url"], headers={"If-None-Match": image.headers["ETag"]}).status_code == 304


def test_request_id_header_and_one_json_log_line_per_request(serve):
    server = serve("--model", "test")
    r = requests.get(server.url + "/healthz", headers={"X-Request-Id": "abc-123"})
    assert r.headers["X-Request-Id"] == "abc-123"
    generated = requests.post(server.url + "/generate", json={"prompt": "x"})
    rid = generated.headers["X-Request-Id"]
    time.sleep(0.2)
    lines = [l for l in server.json_lines() if l.get("msg") == "request"]
    assert [l["request_id"] for l in lines].count(rid) == 1
    entry = next(l for l in lines if l["request_id"] == rid)
    assert entry["status"] == 200 and entry["route"] == "/generate" and entry["duration_ms"] > 0


def test_errors_have_codes_and_statuses(serve):
    server = serve("--model", "test", "--max-body", "1000")
    post = lambda body, **kw: requests.post(server.url + "/generate", data=body, **kw)
    json_type = {"Content-Type": "application/json"}
    cases = [
        (post("{not json", headers=json_type), 400, "invalid_request"),
        (post('{"prompt": "x"}', headers={"Content-Type": "text/plain"}), 415, "unsupported_media_type"),
        (post('{}', headers=json_type), 400, "invalid_request"),
        (post('{"prompt": ""}', headers=json_type), 400, "invalid_request"),
        (post('{"prompt": "x", "seed": 3000000000}', headers=json_type), 400, "invalid_request"),
        (post('{"prompt": "x", "colour": "red"}', headers=json_type), 400, "invalid_request"),
        (post(json.dumps({"prompt": "x" * 5000}), headers=json_type), 413, "payload_too_large"),
        (requests.get(server.url + "/nope"), 404, "not_found"),
        (requests.delete(server.url + "/generate"), 405, "method_not_allowed"),
    ]
    for response, status, code in cases:
        assert response.status_code == status, response.text
        body = response.json()
        assert body["error"]["code"] == code
        assert body["error"]["message"]
    assert "seed" in cases[4][0].json()["error"]["message"]
    assert "2147483647" in cases[4][0].json()["error"]["message"]


def test_openai_compatible_route(serve):
    server = serve("--model", "test")
    r = requests.post(server.url + "/v1/images/generations",
                      json={"prompt": "x", "n": 2, "size": "128x128", "seed": 7})
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    assert len(data) == 2
    assert requests.get(data[1]["url"]).status_code == 200
    r = requests.post(server.url + "/v1/images/generations",
                      json={"prompt": "x", "response_format": "b64_json", "negative_prompt": "blur"})
    png = base64.b64decode(r.json()["data"][0]["b64_json"])
    assert png[:4] == b"\x89PNG"
    err = requests.post(server.url + "/v1/images/generations", json={"prompt": "x", "size": "3x3"})
    assert err.status_code == 400
    assert err.json()["error"]["type"] == "invalid_request_error"
    assert err.json()["error"]["param"] == "size"


def test_gallery_listing_newest_first_and_paginated(serve):
    server = serve("--model", "test")
    prompts = [f"prompt {i}" for i in range(5)]
    for i, p in enumerate(prompts):
        requests.post(server.url + "/generate", json={"prompt": p, "seed": i}).raise_for_status()
        time.sleep(0.002)
    page = requests.get(server.url + "/images", params={"limit": 2}).json()
    assert [i["prompt"] for i in page["images"]] == ["prompt 4", "prompt 3"]
    assert page["images"][0]["seed"] == 4
    seen = [i["prompt"] for i in page["images"]]
    while page["next_cursor"]:
        page = requests.get(server.url + "/images", params={"limit": 2, "cursor": page["next_cursor"]}).json()
        seen += [i["prompt"] for i in page["images"]]
    assert seen == list(reversed(prompts))


def test_metrics(serve):
    server = serve("--model", "test")
    requests.post(server.url + "/generate", json={"prompt": "x"}).raise_for_status()
    requests.post(server.url + "/generate", json={"prompt": ""})
    text = requests.get(server.url + "/metrics").text
    assert 'imagegen_http_requests_total{route="/generate",method="POST",status="200"} 1' in text
    assert 'imagegen_generation_seconds_count{model="test"} 1' in text
    assert "imagegen_images_stored_total 1" in text
    assert 'imagegen_errors_total{code="invalid_request"} 1' in text
    assert "imagegen_generations_in_flight 0" in text


def test_api_keys_and_cors(serve, tmp_path):
    keys = tmp_path / "keys"
    keys.write_text("# team keys\nk-file-1\n")
    server = serve("--model", "test", "--api-keys-file", str(keys), "--cors-origin", "https://ok.example",
                   env={"IMAGEGEN_API_KEYS": "k-env-1"})
    assert requests.get(server.url + "/healthz").status_code == 200
    denied = requests.post(server.url + "/generate", json={"prompt": "x"})
    assert denied.status_code == 401 and denied.json()["error"]["code"] == "unauthorized"
    wrong = requests.post(server.url + "/generate", json={"prompt": "x"}, headers={"x-api-key": "k-file-"})
    assert wrong.status_code == 401 and wrong.text == denied.text.replace(denied.headers["X-Request-Id"], wrong.headers["X-Request-Id"])
    for headers in ({"Authorization": "Bearer k-env-1"}, {"x-api-key": "k-file-1"}):
        assert requests.post(server.url + "/generate", json={"prompt": "x"}, headers=headers).status_code == 200
    pre = requests.options(server.url + "/generate", headers={"Origin": "https://ok.example",
                                                              "Access-Control-Request-Method": "POST"})
    assert pre.status_code == 204
    assert pre.headers["Access-Control-Allow-Origin"] == "https://ok.example"
    evil = requests.get(server.url + "/healthz", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in evil.headers
    # Nothing echoes configuration: the keys appear in no public response.
    for path in ("/", "/healthz", "/readyz", "/openapi.json"):
        body = requests.get(server.url + path).text
        assert "k-env-1" not in body and "k-file-1" not in body


def test_saturation_503_with_retry_after(serve):
    server = serve("--model", "test?delay_ms=1500", "--max-concurrent", "1", "--max-waiting", "0")
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(requests.post, server.url + "/generate", json={"prompt": str(i)})
                   for i in range(4)]
        responses = [f.result() for f in futures]
    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(200) >= 1 and statuses.count(503) >= 1, statuses
    busy = next(r for r in responses if r.status_code == 503)
    assert int(busy.headers["Retry-After"]) > 0
    assert busy.json()["error"]["code"] == "overloaded"


def test_sigterm_finishes_in_flight_request(serve, tmp_path):
    server = serve("--model", "test?delay_ms=1500")
    result = {}
    t = threading.Thread(target=lambda: result.update(r=requests.post(server.url + "/generate", json={"prompt": "x"})))
    t.start()
    time.sleep(0.5)
    assert server.stop() == 0
    t.join()
    assert result["r"].status_code == 200
    assert (tmp_path / "data" / "images" / result["r"].json()["key"]).exists()


def test_readyz_and_webpage(serve):
    server = serve("--model", "test")
    assert requests.get(server.url + "/readyz").json()["status"] == "ready"
    page = requests.get(server.url + "/")
    assert page.headers["Content-Type"].startswith("text/html")
    assert "<form" in page.text


def test_bucket_name_wins_over_a_baked_default_store(serve, moto_server, tmp_path):
    """Images (the container image, say) bake their store as IMAGEGEN_DEFAULT_STORE; a
    BUCKET_NAME given at run time must win, and without it the baked default applies."""
    import uuid
    import boto3
    creds = {"AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "secret-example",
             "AWS_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}
    s3 = boto3.client("s3", endpoint_url=moto_server, region_name="us-east-1",
                      aws_access_key_id=creds["AWS_ACCESS_KEY_ID"],
                      aws_secret_access_key=creds["AWS_SECRET_ACCESS_KEY"])
    name = "imagegen-" + uuid.uuid4().hex[:12]
    s3.create_bucket(Bucket=name)
    baked = tmp_path / "baked"
    env = dict(creds, IMAGEGEN_DEFAULT_STORE=f"file://{baked}", IMAGEGEN_STORE="",
               AWS_ENDPOINT_URL_S3=moto_server, BUCKET_NAME=name)
    server = serve("--model", "test", env=env)
    r = requests.post(server.url + "/generate", json={"prompt": "a red circle", "width": 64, "height": 64})
    assert r.status_code == 200, r.text
    assert r.json()["images"][0]["uri"] == f"s3://{name}/{r.json()['key']}"
    assert s3.head_object(Bucket=name, Key=r.json()["key"])["ContentLength"] > 0
    assert not (baked / r.json()["key"]).exists()

    server = serve("--model", "test", env=dict(env, BUCKET_NAME=""))
    r = requests.post(server.url + "/generate", json={"prompt": "a red circle", "width": 64, "height": 64})
    assert r.status_code == 200, r.text
    assert (baked / r.json()["key"]).exists()


def test_an_invalid_environment_variable_is_named(tmp_path):
    from conftest import run_cli
    for name, value in (("IMAGEGEN_BEDROCK_REGION", "us-west-2a"), ("IMAGEGEN_THREADS", "four"),
                        ("IMAGEGEN_S3_REGION", "EU-WEST-1")):
        r = run_cli("generate", "x", "--model", "test", env={name: value}, cwd=tmp_path)
        assert r.returncode == 2, (name, r.stderr)
        assert name in r.stderr and value in r.stderr and r.stderr.count("\n") == 1, r.stderr


def test_links_do_not_take_a_clients_host(serve):
    """Absolute links come from --public-url, or from Host only when it names this server by
    address and port; X-Forwarded-* only with --trust-proxy."""
    body = {"prompt": "a red circle"}
    plain = serve("--model", "test")
    hostile = requests.post(plain.url + "/generate", json=body,
                            headers={"Host": "evil.example", "X-Forwarded-Proto": "https",
                                     "X-Forwarded-Host": "evil.example"}).json()
    assert hostile["url"].startswith(plain.url + "/images/"), hostile["url"]
    own = requests.post(plain.url + "/generate", json=body).json()
    assert own["url"].startswith(plain.url + "/images/")

    public = serve("--model", "test", "--public-url", "https://images.example.com/")
    named = requests.post(public.url + "/generate", json=body, headers={"Host": "evil.example"})
    assert named.json()["url"].startswith("https://images.example.com/images/"), named.text

    proxied = serve("--model", "test", "--trust-proxy")
    forwarded = requests.post(proxied.url + "/generate", json=body,
                              headers={"X-Forwarded-Proto": "https",
                                       "X-Forwarded-Host": "images.example.com"}).json()
    assert forwarded["url"].startswith("https://images.example.com/images/"), forwarded["url"]


def test_serve_refuses_a_negative_or_huge_max_body(imagegen_bin, tmp_path):
    for value in ("-1", str(1 << 31)):
        r = subprocess.run([imagegen_bin, "serve", "--max-body", value, "--port", "0"],
                           capture_output=True, text=True, timeout=30, cwd=tmp_path)
        assert r.returncode == 2, (value, r.stderr)
        assert r.stderr.strip().count("\n") == 0 and "max-body" in r.stderr, r.stderr
