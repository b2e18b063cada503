"""The shipped emoji model (models/emoji-64: a Stable-Diffusion-family folder trained by
tools/emoji/train_sd.py on 64 concepts, models/emoji/CARD.md) as users run it: diffusers and
`imagegen generate --model sd:models/emoji-64` draw the same pixels from it; the seed's own
prompt, "A croissant", through the CLI and through `POST /generate` (the seed's curl body) on the
default model (`bundled`: the shapes model and this one behind a router), is read as a croissant
by the concept checker (models/checker) for MOST of five seeds, while the shapes world's prompts
still go to the shapes model.

Needs an engine build and the reference Python (.venv-ref: torch for the checker and diffusers);
skipped saying which is missing.
"""
import json
import pathlib
import subprocess

import pytest
import requests

import sd_reference
import test_sd_pipeline as sdp

ROOT = pathlib.Path(__file__).resolve().parents[2]
MODEL = ROOT / "models" / "emoji-64"
CROISSANT = "1F950"
SEEDS = [1, 2, 3, 4, 5]
# Seeds of five read as a croissant (top-1): issue 13's "most seeds". The shipped checkpoint
# (step 8,156: 3,000 steps on from 5,156 with a cosine rate and an EMA of the weights) reaches
# 3 of 5; its predecessor had 1, the bundled shapes model 0 (models/emoji/CARD.md).
MOST = 3

def _missing():
    if not (MODEL / "model_index.json").exists():
        return f"no model at {MODEL}"
    return sdp._engine_missing()


pytestmark = pytest.mark.skipif(bool(_missing()), reason=str(_missing()))

CHECK = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
import check, checker_net as cn
model, config = cn.load()
print(json.dumps([r["top"][0]["hexcode"] for r in check.check_images(model, config, sys.argv[2:], 1)]))
"""


def top1(paths):
    """The checker's best concept for each image (hexcodes)."""
    proc = subprocess.run([str(sd_reference.reference_python()), "-c", CHECK,
                           str(ROOT / "tools" / "emoji"), *map(str, paths)],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


def test_imagegen_draws_what_diffusers_draws_from_the_shipped_weights(tmp_path):
    case = dict(sdp.BASE, prompt="a croissant", negative="", family="emoji", folder=str(MODEL),
                sampler="euler", steps=8, size=64, guidance=5.0)
    result = sdp.compare(case, tmp_path)
    assert result["model"] == "sd:emoji-64" and result["width"] == 64


def test_a_croissant_from_the_cli_is_a_croissant(tmp_path):
    outs = []
    for seed in SEEDS:
        out = tmp_path / f"croissant-{seed}.png"
        r = sdp.run_cli("generate", "A croissant", "--seed", str(seed),  # the default model
                        "--store", f"file://{tmp_path}/images", "--out", str(out), cwd=tmp_path,
                        timeout=300)
        assert r.returncode == 0, r.stderr
        answer = json.loads(r.stdout)
        assert answer["model"] == "sd:emoji-64" and answer["warnings"] == []
        outs.append(out)
    read = top1(outs)
    print(f"\nA croissant, seeds {SEEDS}: checker top-1 {read}")
    assert read.count(CROISSANT) >= MOST, read


def test_the_seeds_curl_through_serve_gives_a_croissant(serve, tmp_path):
    server = serve("--store", f"file://{tmp_path}/images")  # the default model
    seeds_curl = requests.post(server.url + "/generate", json={"prompt": "A croissant"},
                               timeout=300)
    assert seeds_curl.status_code == 200, seeds_curl.text
    assert seeds_curl.json()["model"] == "sd:emoji-64" and seeds_curl.json()["warnings"] == []
    outs = []
    for seed in SEEDS:
        r = requests.post(server.url + "/generate", json={"prompt": "A croissant", "seed": seed},
                          timeout=300)
        assert r.status_code == 200, r.text
        image = requests.get(r.json()["url"], timeout=60)
        assert image.status_code == 200 and image.headers["Content-Type"] == "image/png"
        out = tmp_path / f"served-{seed}.png"
        out.write_bytes(image.content)
        outs.append(out)
    read = top1(outs)
    print(f"\nPOST /generate A croissant, seeds {SEEDS}: checker top-1 {read}")
    assert read.count(CROISSANT) >= MOST, read


def test_words_it_never_learnt_are_reported_and_an_image_is_still_made(tmp_path):
    out = tmp_path / "mars.png"
    r = sdp.run_cli("generate", "A croissant on Mars", "--model", f"sd:{MODEL}", "--steps", "4",
                    "--store", f"file://{tmp_path}/images", "--out", str(out), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    warnings = json.loads(r.stdout)["warnings"]
    assert 'unknown word: "mars"' in warnings and 'unknown word: "croissant"' not in warnings
    assert out.stat().st_size > 0


def test_the_default_sends_the_shapes_worlds_prompts_to_the_shapes_model(serve, tmp_path):
    server = serve("--store", f"file://{tmp_path}/images")
    shapes = requests.post(server.url + "/generate", timeout=300, json={
        "prompt": "two small yellow squares at the top", "seed": 7})
    assert shapes.status_code == 200, shapes.text
    assert shapes.json()["model"] == "local" and shapes.json()["warnings"] == []
    assert shapes.json()["width"] == 32  # the shapes model's own default size
    # A request may name the member it wants: the croissant from the shapes model, unknown there.
    forced = requests.post(server.url + "/generate", timeout=300, json={
        "prompt": "A croissant", "seed": 1, "model": "local"})
    assert forced.status_code == 200, forced.text
    assert forced.json()["model"] == "local"
    assert forced.json()["warnings"] == ['unknown word: "croissant"']
    wrong = requests.post(server.url + "/generate", timeout=60, json={
        "prompt": "A croissant", "model": "dall-e-9"})
    assert wrong.status_code == 400, wrong.text
    message = wrong.json()["error"]["message"]
    assert '"bundled", "local", "sd:emoji-64"' in message, message
    croissant = requests.post(server.url + "/generate", timeout=300, json={
        "prompt": "A croissant", "seed": 2, "steps": 4})
    assert croissant.status_code == 200 and croissant.json()["model"] == "sd:emoji-64"
    assert croissant.json()["width"] == 64
    stored = requests.get(shapes.json()["url"], timeout=60)
    assert stored.status_code == 200
    listed = requests.get(server.url + "/images?limit=10", timeout=60).json()["images"]
    assert sorted(image["model"] for image in listed) == ["local", "local", "sd:emoji-64"]
