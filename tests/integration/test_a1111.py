"""AUTOMATIC1111's API (/sdapi/v1/...) driven by a real A1111 client library from PyPI
(webuiapi), against `imagegen serve --model test` with API keys on."""
import base64
import io
import json
import threading
import time

import pytest
import requests
import webuiapi
from PIL import Image

from procs import wait_until

KEY = "a1111-test-key"


def client(server):
    api = webuiapi.WebUIApi(baseurl=server.url + "/sdapi/v1", sampler="Euler a", steps=4)
    # webuiapi speaks HTTP basic auth only; imagegen takes its API keys as bearer tokens, which
    # the client's requests session carries on every call.
    api.session.headers["Authorization"] = f"Bearer {KEY}"
    return api


@pytest.fixture
def a1111(serve):
    server = serve("--model", "test", env={"IMAGEGEN_API_KEYS": KEY})
    return server, client(server)


def post(server, route, body, key=KEY):
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return requests.post(f"{server.url}/sdapi/v1/{route}", json=body, headers=headers, timeout=60)


def test_txt2img_answers_images_parameters_and_info_string(a1111):
    server, api = a1111
    result = api.txt2img(prompt="a red circle", negative_prompt="blue", seed=123, width=64,
                         height=64, steps=4, cfg_scale=7)
    assert len(result.images) == 1
    image = result.images[0]
    assert image.size == (64, 64) and image.format == "PNG"
    # The PNG carries A1111's own provenance chunk.
    assert image.info["parameters"].startswith("a red circle\nNegative prompt: blue\n")
    assert result.parameters["prompt"] == "a red circle" and result.parameters["seed"] == 123
    assert isinstance(result.json["info"], str)  # A1111 sends info as a JSON string
    info = result.info
    assert info["seed"] == 123 and info["all_seeds"] == [123]
    assert info["sd_model_name"] == "test" and info["width"] == 64 and info["steps"] == 4
    text = info["infotexts"][0]
    assert text.startswith("a red circle\nNegative prompt: blue\nSteps: 4, Sampler: Default, ")
    assert "CFG scale: 7.0, Seed: 123, Size: 64x64, Model: test" in text
    # webuiapi always names a sampler; the test model has none to choose, which is reported.
    assert any("sampler" in w and "no sampler choice" in w for w in info["warnings"])


def test_batch_size_and_n_iter_make_every_image_with_consecutive_seeds(a1111):
    server, api = a1111
    result = api.txt2img(prompt="dots", seed=7, width=64, height=64, batch_size=2, n_iter=2)
    assert len(result.images) == 4
    assert result.info["all_seeds"] == [7, 8, 9, 10]
    assert result.parameters["batch_size"] == 2 and result.parameters["n_iter"] == 2
    assert [t.split("Batch pos: ")[1][0] for t in result.info["infotexts"]] == ["0", "1", "0", "1"]
    assert len({img.tobytes() for img in result.images}) == 4  # four different images
    # send_images false: the generation happens, no images travel back.
    quiet = post(server, "txt2img", {"prompt": "dots", "seed": 7, "width": 64, "height": 64,
                                     "send_images": False})
    assert quiet.status_code == 200 and quiet.json()["images"] == []
    assert json.loads(quiet.json()["info"])["all_seeds"] == [7]


def test_seed_minus_one_is_random_and_a_fixed_seed_reproduces(a1111):
    server, api = a1111
    fixed = [api.txt2img(prompt="same", seed=99, width=64, height=64) for _ in range(2)]
    assert fixed[0].images[0].tobytes() == fixed[1].images[0].tobytes()
    assert fixed[0].info["seed"] == fixed[1].info["seed"] == 99
    randoms = [api.txt2img(prompt="same", seed=-1, width=64, height=64) for _ in range(2)]
    seeds = [r.info["seed"] for r in randoms]
    assert all(0 <= s <= 2147483647 for s in seeds) and seeds[0] != seeds[1]
    assert randoms[0].images[0].tobytes() != randoms[1].images[0].tobytes()
    assert randoms[0].parameters["seed"] == -1  # the request is echoed as sent
    # The random seed reported reproduces its image.
    again = api.txt2img(prompt="same", seed=seeds[0], width=64, height=64)
    assert again.images[0].tobytes() == randoms[0].images[0].tobytes()


def test_samplers_models_and_options(a1111):
    server, api = a1111
    samplers = api.get_samplers()
    assert [s["name"] for s in samplers] == ["Default"]  # the test model has no choice
    assert api.util_get_model_names() == ["test"]
    assert api.get_sd_models()[0]["model_name"] == "test"
    assert api.util_get_current_model() == "test"


def test_sampler_names_are_mapped_or_refused(a1111):
    server, _ = a1111
    unknown = post(server, "txt2img", {"prompt": "x", "width": 64, "height": 64,
                                       "sampler_name": "LMS Exotic"})
    assert unknown.status_code == 404
    body = unknown.json()
    assert body["code"] == "not_found" and "Sampler not found" in body["detail"]
    # A known A1111 name reaches the model as imagegen's name (reported, as the model has none).
    known = post(server, "txt2img", {"prompt": "x", "width": 64, "height": 64,
                                     "sampler_name": "DPM++ 2M", "scheduler": "karras"})
    assert known.status_code == 200
    warnings = json.loads(known.json()["info"])["warnings"]
    assert any('"dpmpp_2m_karras"' in w for w in warnings)


def test_progress_reports_a_slow_generation_while_it_runs(serve):
    server = serve("--model", "test?delay_ms=4000", env={"IMAGEGEN_API_KEYS": KEY})
    api = client(server)
    idle = api.get_progress()
    assert idle["progress"] == 0 and idle["state"]["job_count"] == 0
    assert idle["current_image"] is None
    done = {}
    worker = threading.Thread(target=lambda: done.setdefault(
        "result", api.txt2img(prompt="slow", seed=1, width=64, height=64, steps=8)))
    worker.start()
    seen = []

    def moving():
        p = api.get_progress()
        seen.append(p)
        return p["state"]["job_count"] == 1 and 0 < p["progress"] < 1

    wait_until(moving, timeout=20, interval=0.1, what="progress between 0 and 1")
    during = seen[-1]
    assert during["state"]["sampling_steps"] == 8 and 1 <= during["state"]["sampling_step"] < 8
    assert during["eta_relative"] > 0 and during["textinfo"].startswith("Sampling step ")
    time.sleep(1.2)
    later = api.get_progress()
    if later["state"]["job_count"] == 1:
        assert later["progress"] >= during["progress"]
    worker.join(timeout=30)
    assert done["result"].info["seed"] == 1
    after = api.get_progress()
    assert after["state"]["job_count"] == 0 and after["progress"] == 0


def test_img2img_on_a_model_that_cannot_edit_is_a_422_naming_init_images(serve):
    # The test model edits by default; edits=0 makes it text-to-image only, as Bedrock's SDXL is.
    server = serve("--model", "test?edits=0", env={"IMAGEGEN_API_KEYS": KEY})
    api = client(server)
    source = Image.new("RGB", (64, 64), (200, 10, 10))
    with pytest.raises(RuntimeError) as raised:
        api.img2img(images=[source], prompt="make it blue", width=64, height=64,
                    denoising_strength=0.5)
    status, text = raised.value.args
    assert status == 422
    body = json.loads(text)
    assert body["code"] == "invalid_request"
    assert body["detail"][0]["loc"] == ["body", "init_images"]
    assert "cannot edit" in body["detail"][0]["msg"]
    # Without an image at all, the same field is named.
    missing = post(server, "img2img", {"prompt": "x"})
    assert missing.status_code == 422 and missing.json()["detail"][0]["loc"][1] == "init_images"


def test_validation_errors_in_fastapi_shape(a1111):
    server, _ = a1111
    cases = [({"prompt": "x", "steps": "many"}, "steps"),
             ({"prompt": "x", "width": 64, "height": 64, "batch_size": 3, "n_iter": 2},
              "batch_size"),
             ({"prompt": "x", "width": 65, "height": 64}, None),
             ({"prompt": "x", "cfg_scale": "high"}, "cfg_scale")]
    for body, field in cases:
        r = post(server, "txt2img", body)
        assert r.status_code == 422, (body, r.text)
        detail = r.json()["detail"][0]
        assert r.json()["code"] == "invalid_request" and detail["type"] == "value_error"
        assert detail["msg"]
        if field:
            assert detail["loc"] == ["body", field], r.text
    not_json = requests.post(server.url + "/sdapi/v1/txt2img", data=b"{", timeout=10,
                             headers={"Authorization": f"Bearer {KEY}",
                                      "Content-Type": "application/json"})
    assert not_json.status_code == 422 and not_json.json()["code"] == "invalid_request"


def test_api_keys_guard_the_a1111_routes(a1111):
    server, _ = a1111
    for method, route in (("POST", "txt2img"), ("GET", "progress"), ("GET", "sd-models")):
        r = requests.request(method, f"{server.url}/sdapi/v1/{route}", json={"prompt": "x"},
                             timeout=10)
        assert r.status_code == 401
        assert r.json()["code"] == "unauthorized" and "API key" in r.json()["detail"]


def test_override_settings_choose_the_format_and_unknown_members_are_tolerated(a1111):
    server, _ = a1111
    r = post(server, "txt2img", {"prompt": "x", "width": 64, "height": 64, "seed": 3,
                                 "override_settings": {"samples_format": "jpg",
                                                       "CLIP_stop_at_last_layers": 2},
                                 "enable_hr": True, "some_extension_field": {"a": 1}})
    assert r.status_code == 200, r.text
    data = base64.b64decode(r.json()["images"][0])
    assert Image.open(io.BytesIO(data)).format == "JPEG"
    warnings = json.loads(r.json()["info"])["warnings"]
    assert any("CLIP_stop_at_last_layers" in w for w in warnings)
    assert any("enable_hr" in w for w in warnings)
    assert r.json()["parameters"]["some_extension_field"] == {"a": 1}
