"""Image formats (PNG, JPEG, WebP) on every door, and the OpenAI Images API as the official
`openai` Python SDK speaks it, against `imagegen serve --model test`. Every image is decoded by an
independent reader (Pillow); the provenance is read back from PNG text chunks, EXIF UserComment
(what A1111 writes) and XMP, and by `imagegen inspect`."""
import base64
import io
import json

import openai
import pytest
import requests
from PIL import Image

from conftest import run_cli
from queue_support import wait_until, workers  # noqa: F401

PIL_FORMAT = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}
EXTENSION = {"png": ".png", "jpeg": ".jpg", "webp": ".webp"}
USER_COMMENT, EXIF_IFD = 0x9286, 0x8769


def provenance(image):
    """The A1111 "parameters" text as Pillow finds it: a PNG text chunk, or EXIF UserComment
    ("UNICODE\\0" + UTF-16) in JPEG and WebP."""
    if image.format == "PNG":
        return image.info["parameters"]
    comment = image.getexif().get_ifd(EXIF_IFD)[USER_COMMENT]
    assert comment[:8] == b"UNICODE\0"
    return comment[8:].decode("utf-16-be")


def xmp_of(image):
    xmp = image.info.get("xmp")
    return xmp.decode("utf-8") if isinstance(xmp, bytes) else xmp


@pytest.fixture
def client(serve):
    def make(model="test", **kwargs):
        server = serve("--model", model, "--store", "file://./images", **kwargs)
        return server, openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)
    return make


@pytest.mark.parametrize("output_format", ["png", "jpeg", "webp"])
@pytest.mark.parametrize("response_format", ["b64_json", "url"])
def test_sdk_generates_every_format(client, output_format, response_format):
    server, sdk = client()
    prompt = "a red circle on a blue square"
    result = sdk.images.generate(prompt=prompt, size="256x256", output_format=output_format,
                                 response_format=response_format, extra_body={"seed": 11})
    assert result.output_format == output_format
    assert result.size == "256x256"
    assert result.background == "opaque"
    assert result.quality == "medium"
    assert isinstance(result.created, int) and result.created > 0
    assert result.usage.input_tokens == 7 and result.usage.output_tokens == 0
    assert result.usage.total_tokens == 7
    assert result.usage.input_tokens_details.text_tokens == 7
    assert len(result.data) == 1
    item = result.data[0]
    if response_format == "b64_json":
        assert item.url is None
        raw = base64.b64decode(item.b64_json)
    else:
        assert item.b64_json is None
        assert item.url.endswith(EXTENSION[output_format])
        fetched = requests.get(item.url)
        assert fetched.status_code == 200
        assert fetched.headers["Content-Type"] == f"image/{output_format}"
        raw = fetched.content
    image = Image.open(io.BytesIO(raw))
    assert image.format == PIL_FORMAT[output_format]
    assert image.size == (256, 256)
    assert image.mode == "RGB"
    parameters = provenance(image)
    assert parameters.startswith(prompt + "\n")
    assert "Seed: 11" in parameters and "Model: test" in parameters
    if output_format != "png":
        xmp = xmp_of(image)
        assert 'imagegen:seed="11"' in xmp and f'imagegen:prompt="{prompt}"' in xmp


def test_output_compression_is_the_lossy_quality(client):
    _, sdk = client()

    def fetch(fmt, compression=None):
        extra = {} if compression is None else {"output_compression": compression}
        r = sdk.images.generate(prompt="detail", size="512x512", output_format=fmt,
                                response_format="b64_json", extra_body={"seed": 3}, **extra)
        raw = base64.b64decode(r.data[0].b64_json)
        image = Image.open(io.BytesIO(raw))
        assert image.format == PIL_FORMAT[fmt]
        return raw, image.convert("RGB").tobytes()

    low, low_pixels = fetch("jpeg", 5)
    high, high_pixels = fetch("jpeg", 95)
    _, reference = fetch("png")  # lossless: the model's own pixels
    assert len(low) < len(high)

    def error(pixels):
        return sum(abs(a - b) for a, b in zip(pixels, reference)) / len(reference)

    assert error(high_pixels) < error(low_pixels)
    lossless, lossless_pixels = fetch("webp", 100)
    assert b"VP8L" in lossless[:64] and lossless_pixels == reference  # 100: lossless WebP
    lossy, lossy_pixels = fetch("webp", 50)
    assert b"VP8 " in lossy[:64] and lossy_pixels != reference


@pytest.mark.parametrize("output_format", ["png", "webp"])
def test_transparent_background(client, output_format):
    _, sdk = client()
    r = sdk.images.generate(prompt="a disc", size="128x128", background="transparent",
                            output_format=output_format, response_format="b64_json")
    assert r.background == "transparent"
    image = Image.open(io.BytesIO(base64.b64decode(r.data[0].b64_json)))
    assert image.mode == "RGBA"
    assert image.getpixel((0, 0))[3] == 0        # corner: transparent
    assert image.getpixel((64, 64))[3] == 255    # centre of the disc: opaque
    opaque = sdk.images.generate(prompt="a disc", size="128x128", background="opaque",
                                 output_format=output_format, response_format="b64_json")
    assert opaque.background == "opaque"
    assert Image.open(io.BytesIO(base64.b64decode(opaque.data[0].b64_json))).mode == "RGB"


def test_transparent_jpeg_is_a_bad_request(client):
    _, sdk = client()
    with pytest.raises(openai.BadRequestError) as raised:
        sdk.images.generate(prompt="x", background="transparent", output_format="jpeg")
    error = raised.value.body
    assert raised.value.status_code == 400
    assert error["param"] == "background" and error["type"] == "invalid_request_error"
    assert "jpeg" in error["message"]


def test_transparent_from_a_model_without_alpha_is_a_warning(client):
    _, sdk = client(model="test?alpha=0")
    r = sdk.images.generate(prompt="x", background="transparent", output_format="png",
                            response_format="b64_json")
    assert r.background == "opaque"
    assert any("cannot make alpha" in w for w in r.model_extra["warnings"])
    assert Image.open(io.BytesIO(base64.b64decode(r.data[0].b64_json))).mode == "RGB"


@pytest.mark.parametrize("kwargs, param", [
    ({"output_format": "gif"}, "output_format"),
    ({"output_compression": 101}, "output_compression"),
    ({"background": "striped"}, "background"),
    ({"quality": "ultra"}, "quality"),
    ({"moderation": "none"}, "moderation"),
    ({"partial_images": 4}, "partial_images"),
    ({"n": 9}, "n"),
    ({"size": "333x333"}, "size"),
    ({"response_format": "file"}, "response_format"),
])
def test_bad_fields_name_their_param(client, kwargs, param):
    _, sdk = client()
    with pytest.raises(openai.BadRequestError) as raised:
        sdk.images.generate(prompt="x", **kwargs)
    assert raised.value.body["param"] == param, raised.value.body


def test_quality_chooses_steps_and_size_auto_is_the_default(client):
    _, sdk = client()

    def steps(quality):
        r = sdk.images.generate(prompt="x", quality=quality, size="auto",
                                response_format="b64_json")
        image = Image.open(io.BytesIO(base64.b64decode(r.data[0].b64_json)))
        assert image.size == (64, 64) and r.size == "64x64"  # the test model's default size
        return r.quality, int(image.info["steps"])

    # The test model's default is 4 steps: low halves it, high doubles it.
    assert steps("low") == ("low", 2)
    assert steps("auto") == ("medium", 4)
    assert steps("medium") == ("medium", 4)
    assert steps("high") == ("high", 8)
    assert steps("hd") == ("hd", 8)


def test_unhonoured_fields_are_reported(client):
    _, sdk = client()
    r = sdk.images.generate(prompt="two words", n=2, user="user-1234", moderation="low",
                            style="vivid", model="gpt-image-1")
    assert len(r.data) == 2 and r.model_extra["model"] == "test"
    warnings = " | ".join(r.model_extra["warnings"])
    assert "moderation" in warnings and "style" in warnings and "user" in warnings
    assert r.usage.input_tokens == 2


def test_errors_have_openais_shape(client):
    server, _ = client()
    r = requests.post(server.url + "/v1/images/generations",
                      json={"prompt": "x", "partial_images": 9})
    assert r.status_code == 400
    assert set(r.json()["error"]) == {"message", "type", "param", "code"}
    r = requests.post(server.url + "/v1/images/generations", data="{", headers={
        "Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "body"


@pytest.mark.parametrize("fmt", ["jpeg", "webp"])
def test_generate_route_and_gallery(serve, tmp_path, fmt):
    server = serve("--model", "test", "--store", f"file://{tmp_path}/images")
    r = requests.post(server.url + "/generate",
                      json={"prompt": "a cat", "format": fmt, "quality": 80, "seed": 4})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["format"] == fmt and body["quality"] == 80
    assert body["key"].endswith(EXTENSION[fmt])
    served = requests.get(body["url"])
    assert served.headers["Content-Type"] == f"image/{fmt}"
    image = Image.open(io.BytesIO(served.content))
    assert image.format == PIL_FORMAT[fmt] and image.size == (64, 64)
    assert "Seed: 4" in provenance(image)
    listed = requests.get(server.url + "/images").json()["images"]
    assert [i["key"] for i in listed] == [body["key"]]
    assert listed[0]["prompt"] == "a cat"
    bad = requests.post(server.url + "/generate", json={"prompt": "x", "format": "bmp"})
    assert bad.status_code == 400 and bad.json()["error"]["field"] == "format"
    bad = requests.post(server.url + "/generate",
                        json={"prompt": "x", "format": "jpeg", "background": "transparent"})
    assert bad.status_code == 400 and bad.json()["error"]["field"] == "background"


def test_jobs_carry_format_and_quality(serve, tmp_path, workers):  # noqa: F811
    queue, store = f"sqlite://{tmp_path}/queue.db", f"file://{tmp_path}/images"
    server = serve("--model", "test", "--store", store, env={"IMAGEGEN_QUEUE": queue})
    r = requests.post(server.url + "/jobs",
                      json={"prompt": "a dog", "format": "webp", "quality": 100, "seed": 9})
    assert r.status_code == 202, r.text
    job_id = r.json()["job_id"]
    assert r.json()["request"]["format"] == "webp" and r.json()["request"]["quality"] == 100
    workers("--queue", queue, "--store", store, "--model", "test", "--wait", "0",
            "--drain").proc.wait(timeout=60)
    done = requests.get(f"{server.url}/jobs/{job_id}").json()
    assert done["status"] == "succeeded", done
    assert done["result"]["key"] == f"{job_id}.webp"
    raw = requests.get(done["result"]["url"]).content
    image = Image.open(io.BytesIO(raw))
    assert image.format == "WEBP" and b"VP8L" in raw[:64]
    assert "Seed: 9" in provenance(image)


@pytest.mark.parametrize("fmt", ["png", "jpeg", "webp"])
def test_cli_generate_and_inspect_every_format(tmp_path, fmt):
    out = tmp_path / f"x{EXTENSION[fmt]}"
    r = run_cli("generate", "un croissant doré", "--model", "test", "--seed", "42", "--format",
                fmt, "--quality", "70", "--negative", "blur\nnoise", "--out", str(out),
                "--store", f"file://{tmp_path}/images", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    assert result["key"].endswith(EXTENSION[fmt]) and result["format"] == fmt
    assert Image.open(out).format == PIL_FORMAT[fmt]
    info = json.loads(run_cli("inspect", str(out)).stdout)
    assert info["format"] == fmt and info["width"] == 64 and info["alpha"] is False
    assert info["text"]["prompt"] == "un croissant doré"
    assert info["text"]["negative_prompt"] == "blur\nnoise"
    assert info["text"]["seed"] == "42" and info["text"]["model"] == "test"
    assert "Negative prompt: blur\nnoise\n" in info["text"]["parameters"]
    assert info["text"]["Software"].startswith("imagegen ")


def test_cli_transparent_webp_and_refusals(tmp_path):
    out = tmp_path / "t.webp"
    r = run_cli("generate", "x", "--model", "test", "--format", "webp", "--background",
                "transparent", "--out", str(out), "--store", f"file://{tmp_path}/s", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert json.loads(run_cli("inspect", str(out)).stdout)["alpha"] is True
    assert Image.open(out).mode == "RGBA"
    r = run_cli("generate", "x", "--model", "test", "--format", "tiff",
                "--store", f"file://{tmp_path}/s", cwd=tmp_path)
    assert r.returncode == 2 and "format" in r.stderr


def test_inspect_refuses_hostile_files(tmp_path):
    good = tmp_path / "g.jpg"
    assert run_cli("generate", "x", "--model", "test", "--format", "jpeg", "--out", str(good),
                   "--store", f"file://{tmp_path}/s", cwd=tmp_path).returncode == 0
    data = good.read_bytes()
    cases = {
        "garbage-after-soi.jpg": data[:2] + b"\xff\xe1\xff\xff" + b"A" * 64,  # APP1 past the end
        "riff-lies.webp": b"RIFF\xff\xff\xff\x7fWEBPVP8X\xff\xff\xff\x7f" + b"\0" * 16,
        "not-an-image.bin": b"GIF89a" + b"\0" * 32,
    }
    for name, content in cases.items():
        path = tmp_path / name
        path.write_bytes(content)
        r = run_cli("inspect", str(path))
        assert r.returncode == 2, (name, r.stdout, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_unauthorized_is_openais_authentication_error(client):
    server, _ = client(env={"IMAGEGEN_API_KEYS": "right-key"})
    wrong = openai.OpenAI(base_url=server.url + "/v1", api_key="wrong-key", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as raised:
        wrong.images.generate(prompt="x")
    assert raised.value.body["type"] == "authentication_error"
    right = openai.OpenAI(base_url=server.url + "/v1", api_key="right-key", max_retries=0)
    assert right.images.generate(prompt="x", output_format="webp").output_format == "webp"


def test_submit_carries_format_to_the_worker(tmp_path, workers):  # noqa: F811
    queue, store = f"sqlite://{tmp_path}/queue.db", f"file://{tmp_path}/images"
    r = run_cli("submit", "a bird", "--format", "jpeg", "--quality", "60", "--job-id", "bird-1",
                "--queue", queue, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    workers("--queue", queue, "--store", store, "--model", "test", "--wait", "0",
            "--drain").proc.wait(timeout=60)
    stored = tmp_path / "images" / "bird-1.jpg"
    assert Image.open(stored).format == "JPEG"
    info = json.loads(run_cli("inspect", str(stored)).stdout)
    assert info["format"] == "jpeg" and info["text"]["prompt"] == "a bird"
