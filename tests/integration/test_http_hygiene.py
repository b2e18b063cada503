"""What every answer of `imagegen serve` may and may not carry (issue 11, "smaller"): security
headers, no server filesystem paths (results, 500s, jobs, listings), an honest /readyz, and a
given guidance_scale of 0 kept as 0."""
import json
import os
import shutil
import time

import requests

from conftest import run_cli
from queue_support import wait_until


def test_security_headers_on_every_answer(serve):
    server = serve("--model", "test")
    answers = {
        "page": requests.get(server.url + "/"),
        "healthz": requests.get(server.url + "/healthz"),
        "openapi": requests.get(server.url + "/openapi.json"),
        "404": requests.get(server.url + "/no/such/route"),
        "400": requests.post(server.url + "/generate", json={"prompt": ""}),
        "generate": requests.post(server.url + "/generate", json={"prompt": "x"}),
    }
    answers["png"] = requests.get(answers["generate"].json()["url"])
    for name, r in answers.items():
        assert r.headers.get("X-Content-Type-Options") == "nosniff", (name, r.headers)
    page = answers["page"]
    assert page.headers["Content-Type"].startswith("text/html")
    policy = page.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in policy and "default-src 'self'" in policy, policy
    assert page.headers["X-Frame-Options"] == "DENY"
    assert "X-Frame-Options" not in answers["healthz"].headers  # only pages can be framed


def test_no_server_paths_in_results_listings_or_jobs(tmp_path, serve):
    store = tmp_path / "images"
    server = serve("--model", "test", "--store", f"file://{store}",
                   env={"IMAGEGEN_QUEUE": f"sqlite://{tmp_path}/queue.db",
                        "IMAGEGEN_SERVE_WORKERS": "1"})
    bodies = []
    r = requests.post(server.url + "/generate", json={"prompt": "x", "count": 2})
    assert r.status_code == 200, r.text
    assert r.json()["uri"] == "file:" + r.json()["key"]
    assert [i["uri"] for i in r.json()["images"]] == ["file:" + i["key"] for i in r.json()["images"]]
    bodies.append(r.text)
    r = requests.post(server.url + "/v1/images/generations", json={"prompt": "y"})
    assert r.status_code == 200, r.text
    bodies.append(r.text)
    job = requests.post(server.url + "/jobs", json={"prompt": "z"}).json()
    wait_until(lambda: requests.get(job["status_url"]).json()["status"] == "succeeded",
               timeout=30, what="job done")
    done = requests.get(job["status_url"])
    assert done.json()["result"]["uri"] == "file:" + done.json()["result"]["key"]
    bodies += [done.text, requests.get(server.url + "/jobs").text,
               requests.get(server.url + "/images").text]
    for body in bodies:
        assert str(tmp_path) not in body and "file:///" not in body, body


def test_a_500_names_no_temp_path_and_the_log_keeps_the_detail(tmp_path, serve):
    store = tmp_path / "images"
    server = serve("--model", "test", "--store", f"file://{store}")
    assert requests.post(server.url + "/generate", json={"prompt": "x"}).status_code == 200
    # Sidecars can no longer be written (works as root too, where chmod would not deny).
    shutil.rmtree(store / ".meta")
    (store / ".meta").write_text("not a directory")
    for path, shape in (("/generate", "ours"), ("/v1/images/generations", "openai")):
        r = requests.post(server.url + path, json={"prompt": "x"})
        assert r.status_code == 500, r.text
        rid = r.headers["X-Request-Id"]
        error = r.json()["error"]
        assert error["message"] == f"internal error; request id {rid}", (shape, error)
        assert str(tmp_path) not in r.text and ".tmp-" not in r.text
        time.sleep(0.2)
        logged = [l for l in server.json_lines()
                  if l.get("msg") == "internal error" and l.get("request_id") == rid]
        assert len(logged) == 1 and "metadata of" in logged[0]["error"], logged


def deny_writes(store):
    """Makes `store` refuse writes while its probe object stays readable."""
    if os.geteuid() != 0:
        for d in (store, store / ".meta"):
            d.chmod(0o555)
        return
    # root ignores permission bits: break the sidecar directory instead (ENOTDIR on write).
    shutil.move(store / ".meta", store.parent / "meta-aside")
    (store / ".meta").write_text("not a directory")


def allow_writes(store):
    if os.geteuid() != 0:
        for d in (store, store / ".meta"):
            d.chmod(0o755)
        return
    (store / ".meta").unlink()
    shutil.move(store.parent / "meta-aside", store / ".meta")


def test_readyz_probes_a_write_and_says_why_it_is_not_ready(tmp_path, serve):
    store = tmp_path / "images"
    server = serve("--model", "test", "--store", f"file://{store}")
    ready = requests.get(server.url + "/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready", ready.text
    assert (store / "readyz.probe").read_bytes() == b"ready\n"
    deny_writes(store)
    try:
        # The verdict is cached for a few seconds (a polling balancer is not a write load).
        assert requests.get(server.url + "/readyz").status_code == 200
        wait_until(lambda: requests.get(server.url + "/readyz").status_code == 503, timeout=10,
                   interval=0.5, what="503 once the probe write fails")
        body = requests.get(server.url + "/readyz").json()
        assert body["status"] == "unavailable" and body["reason"], body
        assert str(tmp_path) not in json.dumps(body)
    finally:
        allow_writes(store)
    wait_until(lambda: requests.get(server.url + "/readyz").status_code == 200, timeout=10,
               interval=0.5, what="ready again")


def test_guidance_scale_zero_means_zero(tmp_path, serve):
    server = serve("--model", "test", "--store", f"file://{tmp_path}/images")
    r = requests.post(server.url + "/generate", json={"prompt": "x", "guidance_scale": 0})
    assert r.status_code == 200, r.text
    assert r.json()["guidance_scale"] == 0
    png = tmp_path / "zero.png"
    png.write_bytes(requests.get(r.json()["url"]).content)
    provenance = json.loads(run_cli("inspect", str(png)).stdout)["text"]
    assert provenance["guidance"] == "0" and "CFG scale: 0," in provenance["parameters"]
    default = requests.post(server.url + "/generate", json={"prompt": "x"}).json()
    assert default["guidance_scale"] == 7.5
    for body, field in (({"prompt": "x", "steps": 0}, "steps"), ({"prompt": "x", "width": 0}, "size"),
                        ({"prompt": "x", "guidance_scale": -1}, "guidance_scale")):
        r = requests.post(server.url + "/generate", json=body)
        assert r.status_code == 400 and r.json()["error"]["field"] == field, r.text
        assert "between" in r.json()["error"]["message"] or "allowed" in r.json()["error"]["message"]
