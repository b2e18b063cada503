"""The `openai:BASE_URL` model provider: imagegen A (`--model openai:http://B`) in front of
imagegen B (`--model test`, with an API key), directly and through the fault proxy; and, when
the peer is built, stable-diffusion.cpp's own sd-server as the upstream (marker `peer`)."""
import base64
import io
import json
import os
import re
import subprocess
import threading
import time

import openai
import pytest
import requests
from PIL import Image

import make_sd1_checkpoint
import sd_reference
from fault_proxy import FaultProxy
from procs import Child, free_port, wait_until

B_KEY = "upstream-key"
ROUTE = "/v1/images/generations"


@pytest.fixture
def upstream(serve):
    return serve("--model", "test", env={"IMAGEGEN_API_KEYS": B_KEY})


def front(serve, base_url, key=B_KEY, args=(), **env):
    settings = {"OPENAI_API_KEY": key, "IMAGEGEN_OPENAI_SIZES": "64x64,128x128",
                "IMAGEGEN_OPENAI_RETRY_BASE_MS": "50"}
    settings.update(env)
    return serve("--model", f"openai:{base_url}", *args, env=settings)


def generate(server, body, key=None, timeout=60):
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return requests.post(server.url + "/generate", json=body, headers=headers, timeout=timeout)


def pixels(server, image_key, headers=None):
    r = requests.get(f"{server.url}/images/{image_key}", headers=headers or {}, timeout=30)
    assert r.status_code == 200, r.text
    image = Image.open(io.BytesIO(r.content))
    return image.size, image.convert("RGB").tobytes()


def test_images_equal_the_upstreams_for_the_same_seed(serve, upstream):
    a = front(serve, upstream.url)
    body = {"prompt": "a green square", "negative_prompt": "red", "seed": 42, "width": 64,
            "height": 64, "count": 2}
    via_a = generate(a, body)
    assert via_a.status_code == 200, via_a.text
    result = via_a.json()
    assert result["model"] == f"openai:{upstream.url}"
    assert [img["seed"] for img in result["images"]] == [42, 43]  # B's seeds, as B reported
    direct = generate(upstream, body, key=B_KEY).json()
    auth = {"Authorization": f"Bearer {B_KEY}"}
    for mine, theirs in zip(result["images"], direct["images"]):
        assert pixels(a, mine["key"]) == pixels(upstream, theirs["key"], auth)
    # Another seed is another image: the seed did travel.
    other = generate(a, {**body, "seed": 1000, "count": 1}).json()
    assert pixels(a, other["images"][0]["key"]) != pixels(a, result["images"][0]["key"])


def test_the_openai_route_of_a_works_in_front_of_b(serve, upstream):
    # The flags win over the environment: the upstream model's name, and A's sizes (its default
    # first), which "size": "auto" picks.
    a = front(serve, upstream.url, args=("--openai-model", "b-model", "--openai-sizes",
                                         "128x128,64x64"))
    r = requests.post(a.url + ROUTE, json={"prompt": "a dot", "size": "auto", "seed": 5,
                                           "response_format": "b64_json"}, timeout=60)
    assert r.status_code == 200, r.text
    assert r.json()["model"] == f"openai:{upstream.url}#b-model"
    image = Image.open(io.BytesIO(base64.b64decode(r.json()["data"][0]["b64_json"])))
    assert image.size == (128, 128)
    refused = requests.post(a.url + ROUTE, json={"prompt": "a dot", "size": "256x256"}, timeout=30)
    assert refused.status_code == 400 and refused.json()["error"]["param"] == "size"


def test_an_upstream_refusal_is_a_400_with_the_upstreams_message(serve, upstream):
    a = front(serve, upstream.url)
    long_prompt = "word " * 200  # 1000 characters: A allows 32000, B's test model 512
    body = {"prompt": long_prompt, "width": 64, "height": 64}
    theirs = requests.post(upstream.url + ROUTE, json={"prompt": long_prompt, "size": "64x64"},
                           headers={"Authorization": f"Bearer {B_KEY}"}, timeout=30)
    assert theirs.status_code == 400
    mine = generate(a, body)
    assert mine.status_code == 400, mine.text
    assert mine.json()["error"]["code"] == "invalid_request"
    assert mine.json()["error"]["message"] == theirs.json()["error"]["message"]
    assert mine.json()["error"]["field"] == "prompt"


def test_a_wrong_key_is_forbidden_and_never_echoed(serve, upstream):
    a = front(serve, upstream.url, key="not-the-key")
    r = generate(a, {"prompt": "x", "width": 64, "height": 64})
    assert r.status_code == 403
    error = r.json()["error"]
    assert error["code"] == "forbidden" and "OPENAI_API_KEY" in error["message"]
    assert "not-the-key" not in r.text and "not-the-key" not in a.logs()


def test_upstream_down_is_unavailable_after_bounded_retries(serve):
    closed = free_port()  # nothing listens there
    a = front(serve, f"http://127.0.0.1:{closed}")
    start = time.monotonic()
    r = generate(a, {"prompt": "x", "width": 64, "height": 64})
    elapsed = time.monotonic() - start
    # upstream_unavailable is the taxonomy's 502 (Bad Gateway) with a Retry-After hint.
    assert r.status_code == 502, r.text
    assert r.json()["error"]["code"] == "upstream_unavailable"
    assert "after 4 attempts" in r.json()["error"]["message"]
    assert r.headers["Retry-After"] == "5"
    # 4 attempts, three jittered backoffs of at most 50, 100 and 200 ms: well under 3 s.
    assert elapsed < 3, elapsed


def test_a_slow_upstream_is_cut_at_the_requests_deadline(serve):
    slow = serve("--model", "test?delay_ms=20000", env={"IMAGEGEN_API_KEYS": B_KEY})
    a = front(serve, slow.url, args=("--timeout", "2"))
    start = time.monotonic()
    r = generate(a, {"prompt": "x", "width": 64, "height": 64})
    elapsed = time.monotonic() - start
    assert r.status_code == 504, r.text
    assert r.json()["error"]["code"] in ("upstream_timeout", "deadline_exceeded")
    assert elapsed < 5, elapsed  # the 2 s deadline, not B's 20 s


def test_429_and_503_are_retried_honouring_retry_after(serve, upstream):
    proxy = FaultProxy(upstream.url, {ROUTE: ["429", "503"]})
    try:
        a = front(serve, proxy.url)
        r = generate(a, {"prompt": "x", "seed": 9, "width": 64, "height": 64})
        assert r.status_code == 200, r.text
        assert proxy.seen[ROUTE] == 3 and proxy.injected == [(ROUTE, "429"), (ROUTE, "503")]
        times = proxy.times[ROUTE]
        assert times[1] - times[0] >= 0.95  # Retry-After: 1, longer than the 50 ms backoff
        assert times[2] - times[1] < 0.9  # no Retry-After: the short backoff
    finally:
        proxy.close()


def test_persistent_throttling_is_rate_limited_after_max_attempts(serve, upstream):
    proxy = FaultProxy(upstream.url, {ROUTE: ["429"] * 10})
    try:
        a = front(serve, proxy.url)
        r = generate(a, {"prompt": "x", "width": 64, "height": 64})
        assert r.status_code == 429, r.text
        assert r.json()["error"]["code"] == "rate_limited"
        assert "injected: slow down" in r.json()["error"]["message"]
        assert int(r.headers["Retry-After"]) >= 1
        assert proxy.seen[ROUTE] == 4
    finally:
        proxy.close()


def test_bad_specs_are_refused_at_start(imagegen_bin, tmp_path):
    for spec, words in (("openai:", "base URL"), ("openai:ftp://host", "base URL"),
                        ("openai:http://user:secret@host:1", "credentials")):
        r = subprocess.run([imagegen_bin, "generate", "--model", spec, "--store",
                            f"file://{tmp_path}", "x"], capture_output=True, text=True,
                           timeout=60)
        assert r.returncode == 2, (spec, r.stderr)
        assert words in r.stderr and "secret" not in r.stderr


# stable-diffusion.cpp's sd-server as the upstream (marker `peer`), one command:
#   SDCPP_SERVER=/path/to/sd-server scripts/test.sh peer
# sd-server is built outside the repository by `scripts/peers/sdcpp.sh SRC_DIR` from a checkout of
# github:leejet/stable-diffusion.cpp (checked at 97d29908, ggml at the commit its submodule names;
# CPU only: -DSD_WEBP=OFF -DSD_WEBM=OFF -DSD_SERVER_BUILD_FRONTEND=OFF, target sd-server). The
# model is SDCPP_MODEL, or a random full-size SD 1.5-shaped checkpoint made once by the reference
# Python (make_sd1_checkpoint.py, 2.1 GB under .cache/, about half a minute; sd.cpp takes a
# narrower UNet for another family). 64x64 and 2 steps: the test takes about a minute.
@pytest.fixture(scope="session")
def sdcpp_server():
    server_bin = os.environ.get("SDCPP_SERVER", "")
    if not (server_bin and os.access(server_bin, os.X_OK)):
        pytest.skip("set SDCPP_SERVER to a built stable-diffusion.cpp sd-server")
    return server_bin


@pytest.fixture(scope="session")
def sd1_checkpoint(sdcpp_server):
    given = os.environ.get("SDCPP_MODEL", "")
    if given:
        return given
    python = sd_reference.reference_python()
    if not os.access(python, os.X_OK):
        pytest.skip(f"no SDCPP_MODEL and no reference Python at {python} to make one")
    return make_sd1_checkpoint.cached_checkpoint()


def sdcpp_seed_lines(peer):
    """sd-server logs one "generating image: 1/1 - seed N" line per image it makes."""
    return re.findall(r"generating image: \d+/\d+ - seed (\d+)", peer.logs())


def decoded_rgb(b64):
    image = Image.open(io.BytesIO(base64.b64decode(b64)))
    return image.size, image.convert("RGB").tobytes()


@pytest.mark.peer
def test_stable_diffusion_cpp_server_as_upstream(serve, tmp_path, sdcpp_server, sd1_checkpoint):
    port = free_port()
    peer = Child([sdcpp_server, "-m", sd1_checkpoint, "--listen-ip", "127.0.0.1", "--listen-port",
                  str(port), "-t", "2"], tmp_path / "sd-server.log")
    peer_url = f"http://127.0.0.1:{port}"
    try:
        peer.wait_ready(lambda: requests.get(peer_url + "/v1/models", timeout=1).ok, "sd-server",
                        timeout=600)
        a = front(serve, peer_url, key="", IMAGEGEN_OPENAI_SIZES="64x64",
                  IMAGEGEN_OPENAI_EXTRAS="sdcpp")
        sdk = openai.OpenAI(base_url=a.url + "/v1", api_key="unused", max_retries=0, timeout=600)
        extras = {"seed": 3, "steps": 2, "guidance_scale": 5.0, "negative_prompt": "blurry"}
        result = sdk.images.generate(prompt="a cat", size="64x64", response_format="b64_json",
                                     extra_body=extras)
        assert result.model == f"openai:{peer_url}"
        size, mine = decoded_rgb(result.data[0].b64_json)
        assert size == (64, 64)
        assert sdcpp_seed_lines(peer) == ["3"]  # the one request reached sd-server, seed and all
        # sd-server asked directly with the parameters imagegen forwards (inside the prompt, as
        # sd_cpp_extra_args) answers the same pixels: the image is sd-server's, made with them.
        args = {"seed": 3, "negative_prompt": "blurry",
                "sample_params": {"sample_steps": 2, "guidance": {"txt_cfg": 5.0}}}
        direct = requests.post(peer_url + ROUTE, timeout=600, json={
            "prompt": f"a cat<sd_cpp_extra_args>{json.dumps(args)}</sd_cpp_extra_args>",
            "size": "64x64", "response_format": "b64_json"})
        assert direct.status_code == 200, direct.text
        assert decoded_rgb(direct.json()["data"][0]["b64_json"]) == (size, mine)
        assert sdcpp_seed_lines(peer) == ["3", "3"]
        # The peer dies in the middle of a generation: a 502 with the taxonomy's code.
        outcome = {}

        def call():
            try:
                outcome["result"] = sdk.images.generate(prompt="a dog", size="64x64",
                                                        extra_body={**extras, "seed": 7})
            except openai.APIStatusError as e:
                outcome["error"] = e

        caller = threading.Thread(target=call)
        caller.start()
        wait_until(lambda: "7" in sdcpp_seed_lines(peer), timeout=120, what="sd-server at work")
        peer.kill()
        caller.join(timeout=120)
        assert "error" in outcome, outcome
        error = outcome["error"]
        assert error.status_code == 502, error
        assert error.body["code"] == "upstream_unavailable", error.body
        assert "connection failed" in error.body["message"], error.body
    finally:
        peer.stop()
