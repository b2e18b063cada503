"""SDXL against diffusers: `imagegen generate --model sd:DIR` against diffusers'
StableDiffusionXLPipeline on the tiny random SDXL checkpoint sd_reference.py builds (two text
encoders, the pooled text and the size ids in the UNet's added embedding), per sampler, with a
negative prompt and without one (diffusers then conditions on zeros, force_zeros_for_empty_prompt);
image-to-image and 4-channel inpainting against StableDiffusionXLImg2ImgPipeline / InpaintPipeline;
the single file our writer makes, read back by diffusers' from_single_file, equal to the folder;
the single file's image equal to the folder's; SDXL-Turbo's one step without guidance; a prompt
longer than CLIP's 77 tokens; SDXL checkpoints without their second text encoder refused.

Images are compared as test_sd_pipeline.py compares them: diffusers' float image
(output_type="np") times 255, rounded as its numpy_to_pil rounds, against our PNG's bytes: at
most TOLERANCE 8-bit levels apart anywhere and MEAN_TOLERANCE on average.

Skipped, saying why, where the reference Python (IMAGEGEN_REFERENCE_PYTHON) or CLIP's
vocabulary (IMAGEGEN_CLIP_VOCAB) is missing, or (all but the read-back) where the binary has no
engine.
"""
import json
import os
import pathlib
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

import sd_reference
from conftest import binary_path, run_cli

HERE = pathlib.Path(__file__).resolve().parent
TOLERANCE = 1
MEAN_TOLERANCE = 0.01
SIZE = 64  # the tiny VAE has 2 levels: 32x32 latents


def _engine_missing():
    if not os.access(binary_path(), os.X_OK):
        return f"{binary_path()} is not built"
    out = run_cli("generate", "x", "--model", "sd:/nonexistent")
    if "unknown model" in out.stderr:
        return "this imagegen has no sd engine (configure with -DIMAGEGEN_ENGINE=ON)"
    return None


ENGINE_MISSING = _engine_missing()
pytestmark = pytest.mark.skipif(sd_reference.missing_reference() is not None,
                                reason=str(sd_reference.missing_reference()))
needs_engine = pytest.mark.skipif(bool(ENGINE_MISSING), reason=str(ENGINE_MISSING))

REFERENCE = r"""
import json, sys
import numpy as np, torch, diffusers
from PIL import Image

from sd_reference import scheduler_for as scheduler

case = json.loads(sys.stdin.read())
mode = case.get("mode", "txt2img")
kind = {"txt2img": diffusers.StableDiffusionXLPipeline,
        "img2img": diffusers.StableDiffusionXLImg2ImgPipeline,
        "inpaint": diffusers.StableDiffusionXLInpaintPipeline}[mode]
pipe = kind.from_pretrained(case["folder"], local_files_only=True, add_watermarker=False)
pipe.scheduler = scheduler(pipe.scheduler.config, case["sampler"])
pipe.set_progress_bar_config(disable=True)
args = dict(prompt=case["prompt"], negative_prompt=case["negative"] or None,
            num_inference_steps=case["steps"], guidance_scale=case["guidance"],
            generator=torch.Generator().manual_seed(case["seed"]), output_type="np")
if mode == "txt2img":
    args.update(height=case["height"], width=case["width"])
else:
    args.update(image=Image.open(case["init_image"]).convert("RGB"), strength=case["strength"])
if mode == "inpaint":
    args.update(mask_image=Image.open(case["mask"]).convert("RGB"), height=case["height"],
                width=case["width"])
with torch.no_grad():
    image = pipe(**args).images[0]
np.save(case["out"], image.astype(np.float32))
print(json.dumps({"shape": list(image.shape)}))
"""


@pytest.fixture(scope="module")
def sdxl(tmp_path_factory):
    # IMAGEGEN_SD_PIPELINES keeps the built checkpoint between runs, as in test_sd_pipeline.py.
    cached = os.environ.get("IMAGEGEN_SD_PIPELINES")
    root = pathlib.Path(cached) if cached else tmp_path_factory.mktemp("sdxl")
    return sd_reference.make_pipeline("sdxl", root / "sdxl")


def reference(case):
    env = dict(os.environ, PYTHONPATH=str(HERE), OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1",
               TRANSFORMERS_OFFLINE="1")
    proc = subprocess.run([str(sd_reference.reference_python()), "-c", REFERENCE],
                          input=json.dumps(case), capture_output=True, text=True, timeout=900,
                          env=env)
    assert proc.returncode == 0, proc.stderr[-6000:]
    return np.load(case["out"]) * 255.0


def generate(prompt, model, tmp_path, out, *extra, width=SIZE, height=SIZE):
    """`imagegen generate` of one PNG on one thread; the CompletedProcess."""
    return run_cli("generate", prompt, "--model", f"sd:{model}", "--size", f"{width}x{height}",
                   "--format", "png", "--out", str(out), "--store", f"file://{tmp_path}/images",
                   "--threads", "1", *extra, cwd=tmp_path, timeout=900)


def ours(case, tmp_path):
    out = tmp_path / "ours.png"
    args = ["--seed", str(case["seed"]), "--sampler", case["sampler"],
            "--steps", str(case["steps"]), "--guidance", str(case["guidance"])]
    if case["negative"]:
        args += ["--negative", case["negative"]]
    if case.get("mode", "txt2img") != "txt2img":
        args += ["--init-image", case["init_image"], "--strength", str(case["strength"])]
    if case.get("mode") == "inpaint":
        args += ["--mask", case["mask"]]
    r = generate(case["prompt"], case["folder"], tmp_path, out, *args, width=case["width"],
                 height=case["height"])
    assert r.returncode == 0, r.stderr[-3000:]
    image = np.asarray(Image.open(out).convert("RGB"), dtype=np.float64)
    return image, json.loads(r.stdout)


def compare(case, tmp_path):
    case = dict(case, out=str(tmp_path / "reference.npy"))
    want = reference(case)
    got, result = ours(case, tmp_path)
    assert got.shape == want.shape
    diff = np.abs(got - np.round(want))
    print(f"\nsdxl {case.get('mode', 'txt2img')} {case['sampler']} {case['width']}x"
          f"{case['height']} negative "
          f"{case['negative']!r}: max {diff.max():.3f} mean {diff.mean():.4f} (8-bit levels); "
          f"image std {want.std():.2f}")
    assert diff.max() <= TOLERANCE and diff.mean() <= MEAN_TOLERANCE, \
        f"max {diff.max():.3f}, mean {diff.mean():.4f} levels from diffusers"
    return result


BASE = dict(prompt="a photograph of an astronaut riding a horse", negative="blurry",
            seed=1234, steps=4, guidance=7.5, width=SIZE, height=SIZE)


def test_single_file_reads_back_in_diffusers_as_the_folder(sdxl):
    """Our writer's SDXL layout (sgm's names, OpenCLIP's second encoder) is what diffusers'
    from_single_file understands: every weight of the four networks, bit for bit."""
    report = sd_reference.run_reference("roundtrip", pathlib.Path(sdxl["folder"]).parent)
    assert set(report) == {"text_encoder", "text_encoder_2", "unet", "vae"}
    for name, r in report.items():
        assert r["keys"] > 0 and r["missing"] == [] and r["extra"] == [], (name, r)
        assert r["max_abs_diff"] == 0.0, (name, r)


@needs_engine
@pytest.mark.parametrize("sampler", ["euler", "euler_a", "dpmpp_2m_karras", "ddim"])
def test_sdxl_txt2img_equals_diffusers(sdxl, tmp_path, sampler):
    result = compare(dict(BASE, folder=sdxl["folder"], sampler=sampler), tmp_path)
    assert result["model"] == "sd:folder"
    assert result["seed"] == BASE["seed"]


@needs_engine
def test_size_ids_are_height_then_width(sdxl, tmp_path):
    """add_time_ids are (height, width) twice with a (0, 0) crop: a wide image tells the order."""
    compare(dict(BASE, folder=sdxl["folder"], sampler="euler", width=2 * SIZE), tmp_path)


@needs_engine
def test_no_negative_prompt_conditions_on_zeros_as_diffusers(sdxl, tmp_path):
    """No --negative: diffusers' SDXL (force_zeros_for_empty_prompt) guides from zero text
    embeddings and a zero pooled vector, not from the empty prompt's."""
    compare(dict(BASE, folder=sdxl["folder"], sampler="euler", negative=""), tmp_path)


@needs_engine
def test_turbo_one_step_without_guidance_equals_diffusers(sdxl, tmp_path):
    """The same weights saved as SDXL-Turbo ships them (Euler ancestral, trailing spacing)."""
    folder = tmp_path / "sdxl-turbo"
    shutil.copytree(sdxl["folder"], folder)
    config_path = folder / "scheduler" / "scheduler_config.json"
    config = json.loads(config_path.read_text())
    config.update(_class_name="EulerAncestralDiscreteScheduler", timestep_spacing="trailing")
    config_path.write_text(json.dumps(config))
    compare(dict(BASE, folder=str(folder), sampler="turbo", steps=1, guidance=0.0, negative=""),
            tmp_path)


def source_images(tmp_path):
    """A smooth colour source and a mask repainting its right half (test_sd_pipeline.py's)."""
    y, x = np.mgrid[0:SIZE, 0:SIZE]
    rgb = np.stack([x, y, (x + y) // 2], axis=2).astype(np.uint8)
    Image.fromarray(rgb).save(tmp_path / "init.png")
    mask = np.zeros((SIZE, SIZE, 3), np.uint8)
    mask[:, SIZE // 2:] = 255
    Image.fromarray(mask).save(tmp_path / "mask.png")
    return str(tmp_path / "init.png"), str(tmp_path / "mask.png")


@needs_engine
@pytest.mark.parametrize("sampler", ["euler_a", "dpmpp_2m_karras"])
def test_sdxl_img2img_equals_diffusers(sdxl, tmp_path, sampler):
    """StableDiffusionXLImg2ImgPipeline (no aesthetic score: the base model's size ids)."""
    init, _ = source_images(tmp_path)
    compare(dict(BASE, folder=sdxl["folder"], sampler=sampler, mode="img2img", init_image=init,
                 strength=0.6, steps=5), tmp_path)


@needs_engine
def test_sdxl_inpainting_equals_diffusers(sdxl, tmp_path):
    """StableDiffusionXLInpaintPipeline's 4-channel path: the known half blended back."""
    init, mask = source_images(tmp_path)
    compare(dict(BASE, folder=sdxl["folder"], sampler="euler", mode="inpaint", init_image=init,
                 mask=mask, strength=1.0, steps=4), tmp_path)


@needs_engine
def test_single_file_gives_the_folders_image(sdxl, tmp_path):
    images = []
    for model in (sdxl["folder"], sdxl["single_file"]):  # tokenizer/, tokenizer_2/ beside it
        out = tmp_path / f"{len(images)}.png"
        r = generate("a cat", model, tmp_path, out, "--seed", "7", "--steps", "2",
                     "--sampler", "euler", "--negative", "blurry")
        assert r.returncode == 0, r.stderr[-3000:]
        images.append(np.asarray(Image.open(out).convert("RGB"), dtype=np.int16))
    assert np.abs(images[0] - images[1]).max() <= 1


@needs_engine
def test_prompt_longer_than_77_tokens_is_drawn(sdxl, tmp_path):
    """Both encoders take A1111's 75-token chunks; diffusers would truncate, so no comparison."""
    prompt = ", ".join(f"a red cube number {i} on a blue table" for i in range(14))
    out = tmp_path / "long.png"
    r = generate(prompt, sdxl["folder"], tmp_path, out, "--seed", "3", "--steps", "1",
                 "--sampler", "euler", "--negative", prompt)
    assert r.returncode == 0, r.stderr[-3000:]
    assert Image.open(out).size == (SIZE, SIZE)


def refusal(model, tmp_path):
    r = generate("x", model, tmp_path, tmp_path / "refused.png", "--steps", "1")
    assert r.returncode == 2, (r.returncode, r.stderr[-3000:])
    assert r.stderr.count("\n") == 1, r.stderr
    assert "not supported yet" not in r.stderr, r.stderr  # the old engine's blanket refusal
    return r.stderr


@needs_engine
def test_folder_without_text_encoder_2_is_refused(sdxl, tmp_path):
    folder = tmp_path / "folder"
    shutil.copytree(sdxl["folder"], folder)
    shutil.rmtree(folder / "text_encoder_2")
    assert "text_encoder_2" in refusal(folder, tmp_path)


@needs_engine
def test_single_file_without_its_second_text_encoder_is_refused(sdxl, tmp_path):
    from safetensors.numpy import load_file, save_file
    tensors = load_file(sdxl["single_file"])
    kept = {k: v for k, v in tensors.items() if not k.startswith("conditioner.embedders.1.")}
    assert len(kept) < len(tensors)
    save_file(kept, str(tmp_path / "model.safetensors"))
    for tokenizer in ("tokenizer", "tokenizer_2"):
        shutil.copytree(sdxl[tokenizer], tmp_path / tokenizer)
    message = refusal(tmp_path / "model.safetensors", tmp_path)
    assert "conditioner.embedders.1" in message or "text_encoder_2" in message, message
