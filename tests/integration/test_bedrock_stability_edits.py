"""Image-to-image on Bedrock's Stability models (SD3.5 Large, Stable Image Ultra) through the real
doors and clients: the official `openai` SDK's images.edit against `imagegen serve`, the A1111
img2img route through webuiapi, and `imagegen generate --init-image`, all calling
tests/integration/fake_bedrock.py. The fake checks each body as Bedrock documents it (mode, image,
strength, no aspect_ratio, no unknown field) and answers with a flat colour drawn from the seed,
so the tests can tell that the stored image is the one Bedrock returned. botocore's own
bedrock-runtime client shows the fake refuses what the service refuses."""
import base64
import io
import json

import boto3
import openai
import pytest
import requests
import webuiapi
from botocore.exceptions import ClientError
from PIL import Image

from conftest import run_cli
from fake_bedrock import FakeBedrock

SD35 = "stability.sd3-5-large-v1:0"
ULTRA = "stability.stable-image-ultra-v1:1"
CORE = "stability.stable-image-core-v1:1"
KEY, SECRET = "AKIDEXAMPLE", "secret-example"
SOURCE = 64


@pytest.fixture
def fake():
    bedrock = FakeBedrock(KEY, SECRET, "us-west-2").start()
    yield bedrock
    bedrock.stop()


@pytest.fixture
def env(fake, tmp_path):
    return {"AWS_ACCESS_KEY_ID": KEY, "AWS_SECRET_ACCESS_KEY": SECRET,
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": str(tmp_path / "no-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-credentials"),
            "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": fake.url, "IMAGEGEN_BEDROCK_REGION": "us-west-2",
            "IMAGEGEN_BEDROCK_RETRY_BASE_MS": "10"}


@pytest.fixture
def sdk(serve, env):
    def start(model):
        server = serve("--model", "bedrock:" + model, "--store", "file://./images", env=env)
        return server, openai.OpenAI(base_url=server.url + "/v1", api_key="x", max_retries=0)
    return start


def source_png(path):
    """A SOURCE x SOURCE picture whose every pixel differs, so a wrong scaling shows."""
    image = Image.new("RGB", (SOURCE, SOURCE))
    image.putdata([((x * 4) % 256, (y * 4) % 256, (x * y) % 256)
                   for y in range(SOURCE) for x in range(SOURCE)])
    image.save(path)
    return image


def fake_colour(seed):
    """The flat colour fake_bedrock.png draws for `seed`."""
    return ((seed * 37) % 256, (seed * 91) % 256, (seed * 53) % 256)


def decode(data):
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def check_sent_image(b64, source, size):
    """The image Bedrock got: `source` scaled (nearest) to the requested size."""
    sent = decode(base64.b64decode(b64)).convert("RGB")
    assert sent.size == size
    sx, sy = size[0] // SOURCE, size[1] // SOURCE
    for x, y in ((0, 0), (10, 20), (40, 63), (63, 5)):
        assert sent.getpixel((x * sx, y * sy)) == source.getpixel((x, y))


def stability_calls(fake):
    return [c for c in fake.calls if c["model"] and c["model"].startswith("stability.")]


@pytest.mark.parametrize("model,mode", [(SD35, "image-to-image"), (ULTRA, None)])
def test_openai_edit_is_image_to_image_and_stores_what_bedrock_returned(
        sdk, fake, tmp_path, model, mode):
    server, client = sdk(model)
    source = source_png(tmp_path / "source.png")
    with open(tmp_path / "source.png", "rb") as image:
        r = client.images.edit(image=image, prompt="as a watercolour", size="1344x768", n=2,
                               extra_body={"strength": 0.35, "seed": 5, "negative_prompt": "dark"})
    calls = stability_calls(fake)
    assert [c["status"] for c in calls] == [200, 200]
    bodies = sorted((c["body"] for c in calls), key=lambda b: b["seed"])
    for i, body in enumerate(bodies):
        assert body.get("mode") == mode
        assert body["strength"] == pytest.approx(0.35)
        assert body["seed"] == 5 + i
        assert body["prompt"] == "as a watercolour" and body["negative_prompt"] == "dark"
        assert "aspect_ratio" not in body
        check_sent_image(body["image"], source, (1344, 768))
    assert len(r.data) == 2
    for i, item in enumerate(r.data):
        stored = requests.get(item.url, timeout=30)
        assert stored.status_code == 200
        picture = decode(stored.content).convert("RGB")
        assert picture.size == (1344, 768)
        assert picture.getpixel((0, 0)) == picture.getpixel((1343, 767)) == fake_colour(5 + i)
    assert not any("resized" in w for w in r.model_extra.get("warnings", []))


def test_openai_edit_without_strength_sends_the_models_default(sdk, fake, tmp_path):
    _, client = sdk(SD35)
    source_png(tmp_path / "source.png")
    with open(tmp_path / "source.png", "rb") as image:
        r = client.images.edit(image=image, prompt="x", response_format="b64_json")
    body = stability_calls(fake)[-1]["body"]
    assert body["mode"] == "image-to-image" and body["strength"] == pytest.approx(0.8)
    assert decode(base64.b64decode(r.data[0].b64_json)).size == (1024, 1024)


def mask_png(path):
    mask = Image.new("RGBA", (SOURCE, SOURCE), (0, 0, 0, 255))
    mask.putpixel((3, 3), (0, 0, 0, 0))
    mask.save(path)


@pytest.mark.parametrize("model", [SD35, ULTRA])
def test_openai_edit_with_a_mask_is_refused_before_any_call(sdk, fake, tmp_path, model):
    _, client = sdk(model)
    source_png(tmp_path / "source.png")
    mask_png(tmp_path / "mask.png")
    with open(tmp_path / "source.png", "rb") as image, open(tmp_path / "mask.png", "rb") as mask:
        with pytest.raises(openai.BadRequestError) as raised:
            client.images.edit(image=image, mask=mask, prompt="x")
    assert raised.value.status_code == 400
    assert raised.value.body["param"] == "mask"
    assert raised.value.body["code"] == "invalid_request"
    assert "image-to-image only" in raised.value.body["message"]
    assert stability_calls(fake) == []


def test_core_still_cannot_edit(sdk, fake, tmp_path):
    _, client = sdk(CORE)
    source_png(tmp_path / "source.png")
    with open(tmp_path / "source.png", "rb") as image:
        with pytest.raises(openai.BadRequestError) as raised:
            client.images.edit(image=image, prompt="x")
    assert raised.value.body["param"] == "image" and stability_calls(fake) == []


def test_a1111_img2img_sends_denoising_strength_as_strength(serve, env, fake, tmp_path):
    server = serve("--model", "bedrock:" + SD35, "--store", "file://./images", env=env)
    api = webuiapi.WebUIApi(baseurl=server.url + "/sdapi/v1")
    source = source_png(tmp_path / "source.png")
    result = api.img2img(images=[source], prompt="make it blue", width=1216, height=832,
                         denoising_strength=0.6, seed=9)
    body = stability_calls(fake)[-1]["body"]
    assert body["mode"] == "image-to-image" and body["strength"] == pytest.approx(0.6)
    assert body["seed"] == 9 and "aspect_ratio" not in body
    check_sent_image(body["image"], source, (1216, 832))
    assert result.image.size == (1216, 832)
    assert result.image.convert("RGB").getpixel((7, 7)) == fake_colour(9)
    masked = requests.post(server.url + "/sdapi/v1/img2img", timeout=60, json={
        "prompt": "x", "init_images": [base64.b64encode(open(tmp_path / "source.png", "rb")
                                                        .read()).decode()],
        "mask": base64.b64encode(open(tmp_path / "source.png", "rb").read()).decode()})
    assert masked.status_code in (400, 422), masked.text
    assert "mask" in masked.text and len(stability_calls(fake)) == 1


def test_cli_generate_init_image_stores_bedrocks_image(env, fake, tmp_path):
    source = source_png(tmp_path / "source.png")
    r = run_cli("generate", "a calmer sea", "--model", "bedrock:" + SD35, "--seed", "11",
                "--init-image", str(tmp_path / "source.png"), "--strength", "0.25",
                "--size", "832x1216", "--store", f"file://{tmp_path}/store", env=env,
                cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    body = stability_calls(fake)[-1]["body"]
    assert body["mode"] == "image-to-image" and body["strength"] == pytest.approx(0.25)
    assert body["seed"] == 11 and "aspect_ratio" not in body
    check_sent_image(body["image"], source, (832, 1216))
    result = json.loads(r.stdout)
    assert len(result["images"]) == 1 and result["images"][0]["seed"] == 11
    picture = Image.open(tmp_path / "store" / result["key"]).convert("RGB")
    assert picture.size == (832, 1216) and picture.getpixel((100, 100)) == fake_colour(11)
    assert result["warnings"] == []


def test_cli_generate_with_a_mask_exits_2_naming_the_mask(env, fake, tmp_path):
    source_png(tmp_path / "source.png")
    Image.new("RGB", (SOURCE, SOURCE), (255, 255, 255)).save(tmp_path / "mask.png")
    r = run_cli("generate", "x", "--model", "bedrock:" + SD35, "--init-image",
                str(tmp_path / "source.png"), "--mask", str(tmp_path / "mask.png"), env=env,
                cwd=tmp_path)
    assert r.returncode == 2 and "mask" in r.stderr, (r.returncode, r.stderr)
    assert stability_calls(fake) == []


# -- the fake refuses what Bedrock refuses (driven by botocore's own client) ------------------

def invoke(fake, model, body):
    client = boto3.client("bedrock-runtime", endpoint_url=fake.url, region_name="us-west-2",
                          aws_access_key_id=KEY, aws_secret_access_key=SECRET)
    response = client.invoke_model(modelId=model, body=json.dumps(body))
    return json.loads(response["body"].read())


def png_b64(width, height):
    out = io.BytesIO()
    Image.new("RGB", (width, height), (1, 2, 3)).save(out, format="PNG")
    return base64.b64encode(out.getvalue()).decode()


def webp_b64(width, height):
    out = io.BytesIO()
    Image.new("RGB", (width, height), (1, 2, 3)).save(out, format="WEBP")
    return base64.b64encode(out.getvalue()).decode()


def test_fake_answers_image_to_image_with_the_inputs_size(fake):
    good = {"prompt": "p", "mode": "image-to-image", "image": webp_b64(640, 480), "strength": 0.5,
            "seed": 3}
    answer = invoke(fake, SD35, good)
    assert answer["finish_reasons"] == [None] and answer["seeds"] == [3]
    assert decode(base64.b64decode(answer["images"][0])).size == (640, 480)
    ultra = invoke(fake, ULTRA, {"prompt": "p", "image": png_b64(96, 128), "strength": 1})
    assert decode(base64.b64decode(ultra["images"][0])).size == (96, 128)


@pytest.mark.parametrize("model,body,said", [
    (SD35, {"prompt": "p", "mode": "image-to-image", "image": "IMG"}, "strength"),
    (SD35, {"prompt": "p", "mode": "image-to-image", "strength": 0.5}, "image"),
    (SD35, {"prompt": "p", "mode": "image-to-image", "image": "IMG", "strength": 1.5}, "strength"),
    (SD35, {"prompt": "p", "mode": "image-to-image", "image": "IMG", "strength": 0.5,
            "aspect_ratio": "1:1"}, "aspect_ratio"),
    (SD35, {"prompt": "p", "image": "IMG", "strength": 0.5}, "image-to-image"),
    (SD35, {"prompt": "p", "mode": "image-to-image", "image": "aGVsbG8=", "strength": 0.5},
     "image"),
    (SD35, {"prompt": "p", "mode": "image-to-image", "image": "SMALL", "strength": 0.5}, "64"),
    (SD35, {"prompt": "p", "mode": "image-to-image", "image": "CUT", "strength": 0.5},
     "decoded"),
    (SD35, {"prompt": "p", "cfg_scale": 7}, "extraneous key [cfg_scale]"),
    (SD35, {"prompt": "p", "mode": "inpaint"}, "mode"),
    (ULTRA, {"prompt": "p", "image": "IMG"}, "strength"),
    (ULTRA, {"prompt": "p", "mode": "image-to-image"}, "extraneous key [mode]"),
    (CORE, {"prompt": "p", "image": "IMG", "strength": 0.5}, "extraneous key [image]"),
    (CORE, {"prompt": "p", "seed": 4294967295}, "seed"),
    (CORE, {"negative_prompt": "n"}, "prompt"),
])
def test_fake_refuses_what_bedrock_refuses(fake, model, body, said):
    cut = base64.b64encode(base64.b64decode(png_b64(64, 64))[:60]).decode()  # header, no data
    images = {"IMG": png_b64(64, 64), "SMALL": png_b64(63, 200), "CUT": cut}
    body = {k: images.get(v, v) if isinstance(v, str) else v for k, v in body.items()}
    with pytest.raises(ClientError) as raised:
        invoke(fake, model, body)
    error = raised.value.response["Error"]
    assert error["Code"] == "ValidationException"
    assert said in error["Message"], error["Message"]
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
