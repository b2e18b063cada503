"""GGUF checkpoints (stable-diffusion.cpp's format) as users have them: the tiny pipelines of
each family, rewritten as single-file GGUF by llama.cpp's `gguf` package with
stable-diffusion.cpp's q8_0 rule (gguf_reference.py), run by `imagegen generate --model
sd:FILE.gguf`. imagegen draws exactly the image of the same weights dequantised by `gguf` and
saved as safetensors, and that image equals diffusers' from_single_file on those weights within
the parity tests' tolerance. Truncated, corrupt and unsupported (Q4_0) files are refused in one
line.
"""
import json
import os
import subprocess

import numpy as np
import pytest
from PIL import Image

import sd_reference
import test_sd_pipeline as sdp
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
