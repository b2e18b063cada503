"""The OpenAI Images API beyond generations, as real clients speak it, against `imagegen serve`:
streaming with partial images (the official `openai` Python SDK, curl -N), edits (multipart from
the SDK, JSON with data URLs), /v1/models, and the `openai` Node SDK for generations. Images are
decoded by Pillow; the test model's partial images and edits are transforms these tests recompute
exactly (src/model/testing/test_model.h), so a check passes only if the server really streamed
the model's previews and really edited the uploaded image under the mask."""
import base64
import io
import json
import math
import os
import pathlib
import shutil
import subprocess

import openai
import pytest
import requests
from PIL import Image

from conftest import ROOT

SIZE = 64


@pytest.fixture
def client(serve):
    def make(model="test", *args):
        server = serve("--model", model, "--store", "file://./images", *args)
        return server, openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)
    return make


def decode(b64):
    image = Image.open(io.BytesIO(base64.b64decode(b64)))
    image.load()
    return image


def fade(value, step, total):
    """The test model's preview of one channel value: towards grey 128 as step/total (C++
    integer division, which truncates towards zero)."""
    d = value - 128
    q = abs(d) * step // total
    return 128 + (q if d >= 0 else -q)


def lround(x):
    return int(math.floor(x + 0.5)) if x >= 0 else -int(math.floor(-x + 0.5))


def edited(value, strength):
    """The test model's edit of one channel value inside the repaint area."""
    return max(0, min(255, value + lround(strength * (255 - 2 * value))))


def source_png(path):
    """A SIZE x SIZE picture with every channel varying, so a wrong transform shows."""
    image = Image.new("RGB", (SIZE, SIZE))
    image.putdata([((x * 4) % 256, (y * 4) % 256, (x * y) % 256)
                   for y in range(SIZE) for x in range(SIZE)])
    image.save(path)
    return image


def left_half_transparent_mask(path):
    """OpenAI's mask: fully transparent where the image is to be edited (the left half)."""
    mask = Image.new("RGBA", (SIZE, SIZE), (0, 0, 0, 255))
    for y in range(SIZE):
        for x in range(SIZE // 2):
            mask.putpixel((x, y), (0, 0, 0, 0))
    mask.save(path)


def check_left_half_edited(result, source, strength):
    assert result.size == (SIZE, SIZE)
    out, src = result.convert("RGB").load(), source.load()
    for y in range(0, SIZE, 3):
        for x in range(SIZE):
            want = src[x, y]
            if x < SIZE // 2:
                want = tuple(edited(v, strength) for v in want)
            assert out[x, y] == want, (x, y)


def test_sdk_streams_partial_images_then_the_completed_image(client):
    _, sdk = client()
    events = list(sdk.images.generate(prompt="a red circle", size=f"{SIZE}x{SIZE}", stream=True,
                                      partial_images=2, extra_body={"seed": 5, "steps": 6}))
    assert [e.type for e in events] == ["image_generation.partial_image"] * 2 + [
        "image_generation.completed"]
    partials, completed = events[:2], events[2]
    assert [p.partial_image_index for p in partials] == [0, 1]
    for event in events:
        assert event.size == f"{SIZE}x{SIZE}" and event.output_format == "png"
        assert event.quality == "medium" and isinstance(event.created_at, int)
    assert partials[0].background == "auto" and completed.background == "opaque"
    assert completed.usage.input_tokens == 3 and completed.usage.total_tokens == 3
    final = decode(completed.b64_json)
    # The same request without stream makes the same image: the stream is the same generation.
    plain = sdk.images.generate(prompt="a red circle", size=f"{SIZE}x{SIZE}",
                                response_format="b64_json", extra_body={"seed": 5, "steps": 6})
    assert decode(plain.data[0].b64_json).tobytes() == final.tobytes()
    # 6 steps, 2 partial images: previews every 6 // 3 = 2 steps, at steps 2 and 4.
    pixels = list(final.convert("RGB").getdata())
    for partial, step in zip(partials, (2, 4)):
        image = decode(partial.b64_json)
        assert image.format == "PNG" and image.size == (SIZE, SIZE)
        want = [tuple(fade(v, step, 6) for v in p) for p in pixels]
        assert list(image.convert("RGB").getdata()) == want


def test_stream_in_another_format_and_quality(client):
    _, sdk = client()
    events = list(sdk.images.generate(prompt="blue", size=f"{SIZE}x{SIZE}", stream=True,
                                      partial_images=1, output_format="webp", quality="high"))
    assert [e.type for e in events] == ["image_generation.partial_image",
                                        "image_generation.completed"]
    for event in events:
        assert event.output_format == "webp" and event.quality == "high"
        assert decode(event.b64_json).format == "WEBP"


def test_curl_reads_the_event_stream_as_it_comes(client, tmp_path):
    curl = shutil.which("curl")
    if curl is None:
        pytest.skip("curl is not installed")
    server, _ = client()
    body = json.dumps({"prompt": "x", "size": f"{SIZE}x{SIZE}", "stream": True,
                       "partial_images": 3, "steps": 8})
    out = subprocess.run([curl, "-N", "-sS", "-D", str(tmp_path / "head"), "-H",
                          "Content-Type: application/json", "-d", body,
                          server.url + "/v1/images/generations"],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    head = (tmp_path / "head").read_text().lower()
    assert "content-type: text/event-stream" in head and "transfer-encoding: chunked" in head
    assert "cache-control: no-cache" in head
    blocks = [b for b in out.split("\n\n") if b.strip()]
    names = [b.splitlines()[0] for b in blocks]
    assert names == ["event: image_generation.partial_image"] * 3 + [
        "event: image_generation.completed"]
    for block in blocks:
        lines = block.splitlines()
        assert len(lines) == 2 and lines[1].startswith("data: ")
        data = json.loads(lines[1][len("data: "):])
        assert data["type"] == lines[0][len("event: "):]
    assert [json.loads(b.splitlines()[1][6:])["partial_image_index"] for b in blocks[:3]] == [
        0, 1, 2]


def test_failure_after_the_stream_began_is_an_error_event(client):
    server, sdk = client("test?fail=upstream_timeout")
    with pytest.raises(openai.APIError) as raised:
        for _ in sdk.images.generate(prompt="x", size=f"{SIZE}x{SIZE}", stream=True,
                                     partial_images=1):
            pass
    assert "told to fail" in raised.value.message
    r = requests.post(server.url + "/v1/images/generations",
                      json={"prompt": "x", "stream": True}, stream=True)
    assert r.status_code == 200 and r.headers["content-type"] == "text/event-stream"
    text = r.text
    assert text.startswith("event: error\ndata: ")
    error = json.loads(text.split("data: ", 1)[1])["error"]
    assert error["code"] == "upstream_timeout" and error["type"] == "server_error"


def test_stream_refusals_come_before_the_stream(client):
    server, sdk = client()
    with pytest.raises(openai.BadRequestError) as raised:
        sdk.images.generate(prompt="x", n=2, stream=True)
    assert raised.value.body["param"] == "n"
    r = requests.post(server.url + "/v1/images/generations",
                      json={"prompt": "x", "stream": True, "size": "3x3"})
    assert r.status_code == 400 and r.headers["content-type"] == "application/json"
    assert r.json()["error"]["param"] == "size"
    r = requests.post(server.url + "/v1/images/generations",
                      json={"prompt": "x", "stream": True, "partial_images": 4})
    assert r.status_code == 400 and r.json()["error"]["param"] == "partial_images"


def test_model_without_previews_sends_the_completed_event_and_says_why(client):
    _, sdk = client("test?previews=0")
    events = list(sdk.images.generate(prompt="x", size=f"{SIZE}x{SIZE}", stream=True,
                                      partial_images=2))
    assert [e.type for e in events] == ["image_generation.completed"]
    warnings = " | ".join(events[0].model_extra["warnings"])
    assert "partial_images: 2 asked, 0 sent" in warnings and "no intermediate images" in warnings


def test_partial_images_without_stream_is_a_warning(client):
    _, sdk = client()
    r = sdk.images.generate(prompt="x", size=f"{SIZE}x{SIZE}", partial_images=2)
    assert "partial_images has no effect without stream" in r.model_extra["warnings"]


def test_sdk_edits_the_image_under_the_mask(client, tmp_path):
    _, sdk = client()
    source = source_png(tmp_path / "source.png")
    left_half_transparent_mask(tmp_path / "mask.png")
    with open(tmp_path / "source.png", "rb") as image, open(tmp_path / "mask.png", "rb") as mask:
        r = sdk.images.edit(image=image, mask=mask, prompt="paint the left half",
                            size=f"{SIZE}x{SIZE}", response_format="b64_json",
                            extra_body={"strength": 0.25})
    assert r.size == f"{SIZE}x{SIZE}" and len(r.data) == 1
    check_left_half_edited(decode(r.data[0].b64_json), source, 0.25)


def test_sdk_edit_without_mask_edits_everything_and_several_images_warn(client, tmp_path):
    server, sdk = client()
    source = source_png(tmp_path / "source.png")
    Image.new("RGB", (SIZE, SIZE), (1, 2, 3)).save(tmp_path / "other.png")
    with open(tmp_path / "source.png", "rb") as a, open(tmp_path / "other.png", "rb") as b:
        r = sdk.images.edit(image=[a, b], prompt="invert", size=f"{SIZE}x{SIZE}", n=2,
                            extra_body={"strength": 1.0})
    assert len(r.data) == 2
    assert "2 images given: imagegen edits the first" in " | ".join(r.model_extra["warnings"])
    png = requests.get(r.data[1].url).content  # response_format url: served by us
    out = Image.open(io.BytesIO(png)).convert("RGB").load()
    src = source.load()
    for x, y in ((0, 0), (5, 9), (63, 63), (31, 40)):
        assert out[x, y] == tuple(255 - v for v in src[x, y])


def test_sdk_streams_an_edit(client, tmp_path):
    _, sdk = client()
    source = source_png(tmp_path / "source.png")
    left_half_transparent_mask(tmp_path / "mask.png")
    with open(tmp_path / "source.png", "rb") as image, open(tmp_path / "mask.png", "rb") as mask:
        events = list(sdk.images.edit(image=image, mask=mask, prompt="x", size=f"{SIZE}x{SIZE}",
                                      stream=True, partial_images=1,
                                      extra_body={"strength": 0.25, "steps": 4}))
    assert [e.type for e in events] == ["image_edit.partial_image", "image_edit.completed"]
    check_left_half_edited(decode(events[1].b64_json), source, 0.25)


def test_model_that_cannot_edit_is_a_400_on_param_image(client, tmp_path):
    _, sdk = client("test?edits=0")
    source_png(tmp_path / "source.png")
    with open(tmp_path / "source.png", "rb") as image:
        with pytest.raises(openai.BadRequestError) as raised:
            sdk.images.edit(image=image, prompt="x", size=f"{SIZE}x{SIZE}")
    assert raised.value.body["param"] == "image"
    assert raised.value.body["type"] == "invalid_request_error"
    assert "cannot edit" in raised.value.body["message"]


def test_bad_masks_are_400s_on_param_mask(client, tmp_path):
    server, _ = client()
    source_png(tmp_path / "source.png")
    image = (tmp_path / "source.png").read_bytes()
    opaque = io.BytesIO()
    Image.new("RGB", (SIZE, SIZE)).save(opaque, format="PNG")
    small = io.BytesIO()
    Image.new("RGBA", (SIZE // 2, SIZE // 2)).save(small, format="PNG")
    for mask, words in ((opaque.getvalue(), "alpha channel"), (small.getvalue(), "must match"),
                        (b"not an image", "not a PNG")):
        r = requests.post(server.url + "/v1/images/edits",
                          files={"image": ("a.png", image, "image/png"),
                                 "mask": ("m.png", mask, "image/png")},
                          data={"prompt": "x", "size": f"{SIZE}x{SIZE}"})
        assert r.status_code == 400, r.text
        assert r.json()["error"]["param"] == "mask" and words in r.json()["error"]["message"]


def test_edit_as_json_with_data_urls(client, tmp_path):
    server, _ = client()
    source = source_png(tmp_path / "source.png")
    left_half_transparent_mask(tmp_path / "mask.png")

    def data_url(path):
        return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()
    body = {"prompt": "x", "size": f"{SIZE}x{SIZE}", "response_format": "b64_json",
            "strength": 0.25, "images": [{"image_url": data_url(tmp_path / "source.png")}],
            "mask": {"image_url": data_url(tmp_path / "mask.png")}}
    r = requests.post(server.url + "/v1/images/edits", json=body)
    assert r.status_code == 200, r.text
    check_left_half_edited(decode(r.json()["data"][0]["b64_json"]), source, 0.25)
    for images, words in (([{"image_url": "https://example.com/a.png"}], "fetches no URLs"),
                          ([{"file_id": "file-1"}], "file_id"), ([], "required")):
        r = requests.post(server.url + "/v1/images/edits", json={**body, "images": images})
        assert r.status_code == 400 and words in r.json()["error"]["message"], r.text
        assert r.json()["error"]["param"] in ("images", "image")


def test_malformed_and_oversized_multipart(client):
    server, _ = client("test", "--max-body", "100000")
    url = server.url + "/v1/images/edits"
    r = requests.post(url, data=b"--b\r\nno headers", headers={
        "Content-Type": "multipart/form-data; boundary=b"})
    assert r.status_code == 400
    assert r.json()["error"]["param"] == "body" and r.json()["error"]["code"] == "invalid_request"
    r = requests.post(url, data=b"x", headers={"Content-Type": "multipart/form-data"})
    assert r.status_code == 400 and "boundary" in r.json()["error"]["message"]
    r = requests.post(url, data=b"x", headers={"Content-Type": "text/plain"})
    assert r.status_code == 415 and set(r.json()["error"]) == {"message", "type", "param", "code"}
    r = requests.post(url, files={"image": ("a.png", b"\0" * 200_000, "image/png")},
                      data={"prompt": "x"})
    assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"
    r = requests.post(url, files={"image": ("a.png", b"\0" * 10, "image/png")},
                      data={"prompt": "x", "colour": "red"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "colour"
    r = requests.post(url, files={"image": ("a.png", b"\0" * 10, "image/png")},
                      data={"prompt": "x", "n": "two"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "n"


def test_models_list_and_retrieve(client):
    server, sdk = client()
    models = sdk.models.list()
    assert [m.id for m in models.data] == ["test"]
    assert models.data[0].object == "model" and models.data[0].owned_by == "imagegen"
    assert models.data[0].created > 1_700_000_000
    assert sdk.models.retrieve("test").id == "test"
    with pytest.raises(openai.NotFoundError) as raised:
        sdk.models.retrieve("dall-e-3")
    assert "does not exist" in raised.value.body["message"]
    assert requests.get(server.url + "/v1/models").json()["object"] == "list"


NODE_SCRIPT = ROOT / "tests" / "e2e" / "openai_node.mjs"


def test_node_sdk_generates_b64_and_url(client):
    node = shutil.which("node")
    modules = ROOT / "tests" / "e2e" / "node_modules" / "openai"
    if node is None or not modules.exists():
        pytest.skip("node or the openai npm package is missing (cd tests/e2e && npm ci)")
    server, _ = client()
    out = subprocess.run([node, str(NODE_SCRIPT), server.url + "/v1"], capture_output=True,
                         text=True, timeout=120, cwd=NODE_SCRIPT.parent)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    b64 = decode(report["b64"]["b64_json"])
    assert b64.size == (SIZE, SIZE) and b64.format == "PNG"
    assert report["b64"]["output_format"] == "png" and report["b64"]["usage"]["input_tokens"] == 3
    png = requests.get(report["url"]["url"])
    assert png.status_code == 200 and Image.open(io.BytesIO(png.content)).size == (SIZE, SIZE)
    # The same seed through both: the same picture.
    assert Image.open(io.BytesIO(png.content)).tobytes() == b64.tobytes()
    assert report["models"] == ["test"]
    assert report["stream"] == ["image_generation.partial_image", "image_generation.completed"]
    assert report["bad_request"] == {"status": 400, "param": "size"}


@pytest.fixture
def bedrock_server(serve, tmp_path):
    from fake_bedrock import FakeBedrock
    fake = FakeBedrock("AKIDEXAMPLE", "secret-example", "us-west-2").start()
    env = {"AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "secret-example",
           "AWS_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true",
           "AWS_CONFIG_FILE": str(tmp_path / "no-config"),
           "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-credentials"),
           "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": fake.url, "IMAGEGEN_BEDROCK_REGION": "us-west-2",
           "IMAGEGEN_BEDROCK_RETRY_BASE_MS": "10"}

    def start(model):
        server = serve("--model", "bedrock:" + model, "--store", "file://./images", env=env)
        return server, openai.OpenAI(base_url=server.url + "/v1", api_key="x", max_retries=0)
    yield fake, start
    fake.stop()


def sent_image(b64):
    return Image.open(io.BytesIO(base64.b64decode(b64))).convert("RGB")


@pytest.mark.parametrize("model", ["amazon.nova-canvas-v1:0", "amazon.titan-image-generator-v2:0"])
def test_bedrock_inpainting_gets_the_image_and_its_mask_in_aws_convention(
        bedrock_server, tmp_path, model):
    fake, start = bedrock_server
    _, sdk = start(model)
    source = source_png(tmp_path / "source.png")
    left_half_transparent_mask(tmp_path / "mask.png")
    with open(tmp_path / "source.png", "rb") as image, open(tmp_path / "mask.png", "rb") as mask:
        r = sdk.images.edit(image=image, mask=mask, prompt="a boat", size="512x512",
                            response_format="b64_json", extra_body={"seed": 3})
    assert decode(r.data[0].b64_json).size == (512, 512)
    body = fake.calls[-1]["body"]
    assert fake.calls[-1]["status"] == 200 and body["taskType"] == "INPAINTING"
    params = body["inPaintingParams"]
    assert params["text"] == "a boat" and body["imageGenerationConfig"]["seed"] == 3
    sent, mask = sent_image(params["image"]), sent_image(params["maskImage"])
    assert sent.size == mask.size == (512, 512)
    scale = 512 // SIZE
    for x, y in ((0, 0), (10, 20), (40, 63), (63, 5)):
        assert sent.getpixel((x * scale, y * scale)) == source.getpixel((x, y))
        # Bedrock's masks: black where the image may change (OpenAI's transparent left half).
        assert mask.getpixel((x * scale, y * scale)) == ((0, 0, 0) if x < SIZE // 2 else
                                                         (255, 255, 255))


def test_bedrock_edit_without_mask_is_an_image_variation(bedrock_server, tmp_path):
    fake, start = bedrock_server
    _, sdk = start("amazon.nova-canvas-v1:0")
    source_png(tmp_path / "source.png")
    with open(tmp_path / "source.png", "rb") as image:
        r = sdk.images.edit(image=image, prompt="like this", size="512x512",
                            extra_body={"strength": 0.3})
    assert len(r.data) == 1
    body = fake.calls[-1]["body"]
    assert body["taskType"] == "IMAGE_VARIATION"
    assert body["imageVariationParams"]["similarityStrength"] == pytest.approx(0.7)
    assert len(body["imageVariationParams"]["images"]) == 1
    cfg = body["imageGenerationConfig"]
    assert (cfg["width"], cfg["height"]) == (512, 512)
    with open(tmp_path / "source.png", "rb") as image:
        r = sdk.images.edit(image=image, prompt="far from this", size="512x512",
                            extra_body={"strength": 0.95})
    assert fake.calls[-1]["body"]["imageVariationParams"]["similarityStrength"] == 0.2
    assert any("similarityStrength" in w for w in r.model_extra["warnings"])


def test_bedrock_stability_cannot_edit_and_streams_without_partials(bedrock_server, tmp_path):
    fake, start = bedrock_server
    _, sdk = start("stability.stable-image-core-v1:1")
    source_png(tmp_path / "source.png")
    calls = len(fake.calls)
    with open(tmp_path / "source.png", "rb") as image:
        with pytest.raises(openai.BadRequestError) as raised:
            sdk.images.edit(image=image, prompt="x")
    assert raised.value.body["param"] == "image" and len(fake.calls) == calls
    events = list(sdk.images.generate(prompt="x", stream=True, partial_images=2))
    assert [e.type for e in events] == ["image_generation.completed"]
    assert any("0 sent" in w for w in events[0].model_extra["warnings"])
