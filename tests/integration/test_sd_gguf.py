"""GGUF checkpoints (stable-diffusion.cpp's format) as users have them: the tiny pipelines of
each family, rewritten as single-file GGUF by llama.cpp's `gguf` package with
stable-diffusion.cpp's q8_0 rule (gguf_reference.py), run by `imagegen generate --model
sd:FILE.gguf`. imagegen draws exactly the image of the same weights dequantised by `gguf` and
saved as safetensors, and that image equals diffusers' from_single_file on those weights within
the parity tests' tolerance. Truncated, corrupt and unsupported (Q4_0) files are refused in one
line. With the peer built (marker `peer`), stable-diffusion.cpp's own q8_0 conversion of a
full-size SD 1.5-shaped checkpoint runs too.
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
import test_sd_pipeline as sdp
import test_sd_checkpoint
import test_sd_lora
from test_openai_provider import sd1_checkpoint, sdcpp_server  # noqa: F401 (peer fixtures)
from test_sd_lora import loras  # noqa: F401 (the fixture)
from test_sd_pipeline import pipelines  # noqa: F401 (the fixture)

pytestmark = pytest.mark.skipif(bool(sdp._engine_missing()), reason=str(sdp._engine_missing()))

REFERENCE = r"""
import json, sys
import numpy as np, torch
import sd_reference

case = json.loads(sys.stdin.read())
pipe = sd_reference.load_single_file(case["paths"])
pipe.scheduler = sd_reference.scheduler_for(pipe.scheduler.config, case["sampler"])
pipe.set_progress_bar_config(disable=True)
with torch.no_grad():
    image = pipe(prompt=case["prompt"], negative_prompt=case["negative"] or None,
                 num_inference_steps=case["steps"], guidance_scale=case["guidance"],
                 generator=torch.Generator().manual_seed(case["seed"]), height=case["size"],
                 width=case["size"], output_type="np").images[0]
np.save(case["out"], image.astype(np.float32))
"""


def reference_python(*args, stdin=None):
    env = dict(os.environ, PYTHONPATH=str(sdp.HERE), OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1",
               TRANSFORMERS_OFFLINE="1")
    proc = subprocess.run([str(sd_reference.reference_python()), *args], input=stdin,
                          capture_output=True, text=True, timeout=900, env=env)
    assert proc.returncode == 0, proc.stderr[-6000:]
    return proc.stdout


def write_gguf(paths, qtype="q8_0"):
    """FILE.gguf and its dequantised weights beside the family's single file (its tokenizer/
    folders are there)."""
    single = paths["single_file"]
    out = single.replace(".safetensors", f".{qtype}.gguf")
    dequantised = single.replace(".safetensors", f".{qtype}-dequantised.safetensors")
    if not os.path.exists(out):
        counts = json.loads(reference_python(str(sdp.HERE / "gguf_reference.py"), "write", single,
                                             out, dequantised, "--type", qtype))
        assert counts.get(qtype, 0) > 0, counts
    return out, dequantised


def case_for(family, model, tmp_path, sampler="euler"):
    prompt = "a photograph of an astronaut riding a horse"
    return dict(sdp.BASE, family=family, folder=model, sampler=sampler, prompt=prompt,
                out=str(tmp_path / "reference.npy"))


@pytest.mark.parametrize("family", ["sd1", "sd2", "sdxl"])
def test_a_q8_0_gguf_draws_its_dequantised_weights_and_diffusers_image(pipelines, tmp_path,
                                                                       family):
    paths = pipelines(family)
    gguf_file, dequantised = write_gguf(paths)
    got, result = sdp.ours(case_for(family, gguf_file, tmp_path), tmp_path)
    assert result["model"] == "sd:model.q8_0.gguf" and result["warnings"] == []
    # The same float32 weights through the safetensors reader: the same pixels, exactly.
    same, _ = sdp.ours(case_for(family, dequantised, tmp_path), tmp_path)
    assert np.array_equal(got, same)
    # diffusers on those weights.
    case = case_for(family, gguf_file, tmp_path)
    reference_python("-c", REFERENCE, stdin=json.dumps(dict(case, paths=dict(
        paths, single_file=dequantised))))
    want = np.round(np.load(case["out"]) * 255.0)
    diff = np.abs(got - want)
    # And how far 8-bit weights move the image from the float32 checkpoint's.
    original, _ = sdp.ours(case_for(family, paths["single_file"], tmp_path), tmp_path)
    drift = np.abs(got - original)
    print(f"\n{family} q8_0 GGUF vs diffusers on its dequantised weights: max {diff.max():.0f} "
          f"mean {diff.mean():.4f} levels; vs the float32 file's image: max {drift.max():.0f} "
          f"mean {drift.mean():.3f}")
    assert diff.max() <= sdp.TOLERANCE and diff.mean() <= sdp.MEAN_TOLERANCE
    assert drift.max() > 0  # the 8-bit weights are what ran


def test_q8_0_weights_kept_8_bit_compute_what_the_dequantised_file_does_in_bf16_and_with_loras(
        pipelines, loras, tmp_path):
    """The engine keeps Q8_0 matrices 8-bit and expands them per forward pass; in bfloat16 and
    with LoRAs merged into them (then taken out again) it still draws exactly the image of the
    same weights dequantised into a safetensors file."""
    gguf_file, dequantised = write_gguf(pipelines("sd1"))
    _, kept = test_sd_checkpoint.inspect(gguf_file)
    layers = kept["components"]["text_encoder"]["config"]["num_hidden_layers"]
    counts = {name: kept["components"][name]["q8_0_matrices"] for name in ("text_encoder",
                                                                           "unet", "vae")}
    print(f"\nQ8_0 matrices kept 8-bit: {counts}")
    # Every text-encoder matrix (q, k, v, out, fc1, fc2 per layer) and the UNet's linear layers;
    # the VAE's attention is stored as 1x1 convolutions, which stay float16.
    assert counts["text_encoder"] == 6 * layers and counts["unet"] > 0 and counts["vae"] == 0
    _, dense = test_sd_checkpoint.inspect(dequantised)
    assert dense["components"]["unet"]["q8_0_matrices"] == 0
    bf16 = dict(case_for("sd1", gguf_file, tmp_path), precision="bf16")
    got, _ = sdp.ours(bf16, tmp_path)
    same, _ = sdp.ours(dict(bf16, folder=dequantised), tmp_path)
    assert np.array_equal(got, same)
    _, lora_dir = loras
    prompt = f"{test_sd_lora.PROMPT} <lora:kohya:0.8> <lora:peft:-0.5>"
    with_lora = test_sd_lora.ours(gguf_file, lora_dir, prompt, tmp_path)
    assert np.array_equal(with_lora, test_sd_lora.ours(dequantised, lora_dir, prompt, tmp_path))
    base = test_sd_lora.ours(dequantised, lora_dir, test_sd_lora.PROMPT, tmp_path, "base.png")
    assert np.abs(with_lora - base).mean() > 4, "the LoRA must change the image"


def refused(model, tmp_path):
    r = sdp.run_cli("generate", "a cat", "--model", f"sd:{model}", "--steps", "1",
                    "--store", f"file://{tmp_path}/images", "--out", str(tmp_path / "x.png"),
                    cwd=tmp_path)
    assert r.returncode == 2, (r.returncode, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    return lines[0]


def test_broken_and_unsupported_gguf_files_are_refused_in_one_line(pipelines, tmp_path):
    paths = pipelines("sd1")
    gguf_file, _ = write_gguf(paths)
    data = open(gguf_file, "rb").read()
    tokenizer = os.path.join(os.path.dirname(gguf_file), "tokenizer")
    (tmp_path / "tokenizer").symlink_to(tokenizer)
    cases = {
        "truncated": (data[: len(data) // 2], "truncated"),
        "header-only": (data[:20], "truncated"),
        "no-magic": (b"GGUX" + data[4:], "no GGUF magic"),
        "version-9": (data[:4] + (9).to_bytes(4, "little") + data[8:], "version 9"),
        "huge-count": (data[:8] + (1 << 40).to_bytes(8, "little") + data[16:], "implausible"),
    }
    for name, (content, expected) in cases.items():
        bad = tmp_path / f"{name}.gguf"
        bad.write_bytes(content)
        line = refused(bad, tmp_path)
        assert expected in line and "GGUF" in line, (name, line)
    q4, _ = write_gguf(paths, "q4_0")
    line = refused(q4, tmp_path)
    assert "Q4_0" in line and "Q8_0" in line, line


# stable-diffusion.cpp's own converter as the maker of the file (marker `peer`, one command):
#   SDCPP_SERVER=/path/to/sd-server scripts/test.sh peer
# sd-cli is taken from beside sd-server (scripts/peers/sdcpp.sh builds both). The checkpoint is
# make_sd1_checkpoint.py's random SD 1.5-shaped float16 file (2.1 GB, cached); `sd-cli -M convert
# --type q8_0` writes the GGUF (cached beside it), which imagegen runs, and
# whose image (256x256, 1 step) must stay near the float16 file's: the same network with 8-bit weights.
@pytest.mark.peer
def test_stable_diffusion_cpps_own_q8_0_conversion_runs(sdcpp_server, sd1_checkpoint, tmp_path):
    sd_cli = pathlib.Path(sdcpp_server).with_name("sd-cli")
    assert os.access(sd_cli, os.X_OK), f"no sd-cli beside {sdcpp_server}"
    folder = pathlib.Path(sd1_checkpoint).parent / "sd15-gguf"
    (folder / "tokenizer").mkdir(parents=True, exist_ok=True)
    for name in ("vocab.json", "merges.txt"):
        shutil.copy(sd_reference.REPO / ".tools" / "clip-vocab" / name, folder / "tokenizer")
    converted = folder / (pathlib.Path(sd1_checkpoint).stem + ".q8_0.gguf")
    if not converted.exists():
        partial = converted.with_suffix(".partial")
        r = subprocess.run([str(sd_cli), "-M", "convert", "-m", sd1_checkpoint, "-o",
                            str(partial), "--type", "q8_0"], capture_output=True, text=True,
                           timeout=1800)
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
        partial.rename(converted)
    original = folder / "sd15.safetensors"
    if not original.exists():
        original.symlink_to(sd1_checkpoint)
    images = {}
    for name, model in (("q8_0", converted), ("f16", original)):
        out = tmp_path / f"{name}.png"
        r = sdp.run_cli("generate", "a photograph of a cat", "--model", f"sd:{model}",
                        "--size", "256x256", "--steps", "1", "--sampler", "euler", "--seed", "42",
                        "--threads", "2", "--store", f"file://{tmp_path}/images",
                        "--out", str(out), cwd=tmp_path, timeout=1800)
        assert r.returncode == 0, r.stderr[-3000:]
        images[name] = np.asarray(Image.open(out).convert("RGB"), dtype=np.float64)
    drift = np.abs(images["q8_0"] - images["f16"])
    print(f"\nsd.cpp's q8_0 GGUF vs the float16 file, imagegen 256x256 1 step: max "
          f"{drift.max():.0f} mean {drift.mean():.3f} levels; image std {images['f16'].std():.1f}")
    assert drift.max() > 0 and drift.mean() <= 4.0


# sd.cpp's converter on the tiny SD 2.x and SDXL single files (OpenCLIP text encoders with fused
# in_proj, SDXL's two encoders): it keeps the single-file names and quantises as
# gguf_reference.py does, so imagegen draws exactly the image of gguf_reference.py's file.
@pytest.mark.peer
@pytest.mark.parametrize("family", ["sd2", "sdxl"])
def test_stable_diffusion_cpps_conversion_of_sd2_and_sdxl_draws_the_gguf_reference_image(
        sdcpp_server, pipelines, tmp_path, family):
    sd_cli = pathlib.Path(sdcpp_server).with_name("sd-cli")
    paths = pipelines(family)
    ours_file, _ = write_gguf(paths)
    converted = pathlib.Path(paths["single_file"]).with_name("sdcpp.q8_0.gguf")
    r = subprocess.run([str(sd_cli), "-M", "convert", "-m", paths["single_file"], "-o",
                        str(converted), "--type", "q8_0"], capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    _, kept = test_sd_checkpoint.inspect(converted)
    assert kept["components"]["unet"]["q8_0_matrices"] > 0
    got, result = sdp.ours(case_for(family, str(converted), tmp_path), tmp_path)
    assert result["warnings"] == []
    want, _ = sdp.ours(case_for(family, ours_file, tmp_path), tmp_path)
    assert np.array_equal(got, want)
