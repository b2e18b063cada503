"""The emoji model's training pipeline (tools/emoji/train_sd.py) end to end, on a few concepts
and a few steps: what it exports is a diffusers folder that diffusers' StableDiffusionPipeline
and `imagegen generate --model sd:DIR` both run, to the same pixels; its tokenizer is learnt from
the training captions only; a run resumed from its state equals an unbroken one.

Needs the emoji dataset (scripts/setup.d/emoji.sh, into .cache/emoji/dataset), the reference
Python (.venv-ref) and an engine build; skipped saying which is missing. This checks the
pipeline, not the model's quality: that is tools/emoji/evaluate.py's (models/emoji/CARD.md).
"""
import json
import os
import pathlib
import subprocess

import pytest

import sd_reference
import test_sd_pipeline as sdp

ROOT = pathlib.Path(__file__).resolve().parents[2]
DATASET = pathlib.Path(os.environ.get("IMAGEGEN_EMOJI_DATASET", ROOT / ".cache/emoji/dataset"))
TRAIN = ROOT / "tools/emoji/train_sd.py"
SMALL = ["--concepts", "6", "--batch", "4", "--vocab-size", "1024", "--threads", "1"]


def _missing():
    if not (DATASET / "manifest.jsonl").exists():
        return f"no emoji dataset at {DATASET} (scripts/setup.d/emoji.sh builds it)"
    return sdp._engine_missing()


pytestmark = pytest.mark.skipif(bool(_missing()), reason=str(_missing()))


def train(work, *args, status=0):
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    proc = subprocess.run([str(sd_reference.reference_python()), str(TRAIN), "--dataset",
                           str(DATASET), "--work", str(work), *SMALL, *args],
                          capture_output=True, text=True, timeout=900, env=env)
    assert proc.returncode == status, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1]) if status == 0 else None


def same_tensors(a, b, keys):
    """Runs the reference Python to compare state.pt entries tensor for tensor."""
    code = (
        "import sys, torch\n"
        "a = torch.load(sys.argv[1]); b = torch.load(sys.argv[2])\n"
        "bad = [(n, k) for n in sys.argv[3:] for k in a[n] if not torch.equal(a[n][k], b[n][k])]\n"
        "print(bad[:5]); sys.exit(1 if bad else 0)\n")
    proc = subprocess.run([str(sd_reference.reference_python()), "-c", code, str(a), str(b),
                           *keys], capture_output=True, text=True, timeout=300)
    return proc.returncode == 0, proc.stdout + proc.stderr[-2000:]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("emoji-train")
    done = train(root / "work", "--vae-steps", "12", "--unet-steps", "12", "--save-every", "5",
                 "--until", "export", "--out", str(root / "model"))
    assert done["done"] == ["tokenizer", "vae", "latents", "unet", "export"]
    return root / "model"


def test_exports_a_small_diffusers_folder(exported):
    index = json.loads((exported / "model_index.json").read_text())
    assert index["_class_name"] == "StableDiffusionPipeline"
    for part in ("text_encoder", "tokenizer", "unet", "vae", "scheduler"):
        assert (exported / part).is_dir(), part
    total = sum(p.stat().st_size for p in exported.rglob("*") if p.is_file())
    assert total < 30 * 1024 * 1024, total  # the bound on the shipped weights
    vocab = json.loads((exported / "tokenizer/vocab.json").read_text())
    assert len(vocab) <= 1024 and vocab["<|endoftext|>"] == len(vocab) - 1
    text = json.loads((exported / "text_encoder/config.json").read_text())
    assert text["vocab_size"] == len(vocab) and text["eos_token_id"] == len(vocab) - 1
    record = json.loads((exported / "training.json").read_text())
    assert record["unet_step"] == 12 and record["vae_step"] == 12


@pytest.mark.parametrize("sampler", ["euler", "dpmpp_2m_karras"])
def test_imagegen_draws_what_diffusers_draws(exported, tmp_path, sampler):
    case = dict(sdp.BASE, prompt="a croissant", negative="", family="emoji",
                folder=str(exported), sampler=sampler, steps=4, size=64)
    result = sdp.compare(case, tmp_path)
    assert result["width"] == 64 and result["model"] == "sd:model"


def test_native_size_is_the_default(exported, tmp_path):
    out = tmp_path / "default.png"
    r = sdp.run_cli("generate", "et bilde av croissant", "--model", f"sd:{exported}", "--steps",
                    "2", "--out", str(out), "--store", f"file://{tmp_path}/s", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["width"] == 64


def test_words_outside_the_training_captions_are_reported(exported, tmp_path):
    """training.json lists the training captions' words; a prompt's other words come back in
    `warnings` (as the bundled model reports its unknown words) and the image is still made."""
    words = json.loads((exported / "training.json").read_text())["words"]
    assert "croissant" in words and "bilde" in words and "zqxv" not in words

    def warnings(prompt, *extra):
        r = sdp.run_cli("generate", prompt, "--model", f"sd:{exported}", "--steps", "1",
                        "--out", str(tmp_path / "w.png"), "--store", f"file://{tmp_path}/s",
                        *extra, cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout).get("warnings", [])

    assert not [w for w in warnings("Et BILDE av croissant") if "unknown word" in w]
    assert warnings("a croissant, a zqxv; zqxv!") == ['unknown word: "zqxv"']


def test_tokenizer_is_learnt_from_training_captions_only(exported):
    rows = [json.loads(line) for line in (DATASET / "manifest.jsonl").open()]
    merges = (exported / "tokenizer/merges.txt").read_text().splitlines()[1:]
    assert merges, "no merges learnt"
    # Every merge joins two symbols seen together in some training caption's word, so a
    # held-out-only word never becomes one token unless its training neighbours made it one.
    code = (
        "import json,sys; sys.path.insert(0,'tools/emoji'); import train_sd\n"
        f"rows=train_sd.load_rows({str(DATASET)!r}, 6)\n"
        "print(json.dumps(sorted({r['split'] for r in rows})))")
    proc = subprocess.run([str(sd_reference.reference_python()), "-c", code], cwd=ROOT,
                          capture_output=True, text=True, timeout=300, check=True)
    assert json.loads(proc.stdout) == ["train"]
    assert any(r["split"] == "held_out" for r in rows)  # there was something to leave out


def test_a_resumed_run_equals_an_unbroken_one(tmp_path):
    train(tmp_path / "once", "--vae-steps", "6", "--until", "vae")
    train(tmp_path / "twice", "--vae-steps", "3", "--until", "vae")
    train(tmp_path / "twice", "--vae-steps", "6", "--until", "vae")
    ok, why = same_tensors(tmp_path / "once/state.pt", tmp_path / "twice/state.pt", ["vae"])
    assert ok, why


def test_a_new_machine_continues_from_the_exported_weights(exported, tmp_path):
    """Sessions start on fresh machines: --init seeds a new run from an exported folder (the
    committed weights), the steps count on from its training.json, and an f16 export is half
    the size and still drawn by imagegen as diffusers draws it."""
    done = train(tmp_path / "work", "--init", str(exported), "--vae-steps", "12",
                 "--unet-steps", "14", "--until", "export", "--out", str(tmp_path / "model"),
                 "--export-dtype", "f16")
    assert done["done"] == ["vae", "latents", "unet", "export"]  # the tokenizer is kept
    assert done["unet_step"] == 14 and done["vae_step"] == 12
    model = tmp_path / "model"
    assert json.loads((model / "training.json").read_text())["unet_step"] == 14
    assert (model / "tokenizer/vocab.json").read_bytes() == \
        (exported / "tokenizer/vocab.json").read_bytes()
    unet = model / "unet/diffusion_pytorch_model.safetensors"
    full = exported / "unet/diffusion_pytorch_model.safetensors"
    assert unet.stat().st_size < 0.6 * full.stat().st_size
    case = dict(sdp.BASE, prompt="a croissant", negative="", family="emoji", folder=str(model),
                sampler="euler", steps=4, size=64)
    sdp.compare(case, tmp_path)


def test_averaged_cosine_training_resumes_exactly_and_exports_the_average(tmp_path):
    """--ema keeps an average of the weights in the state and export writes it; --lr-schedule
    cosine decays to the run's end; a run stopped (--stop-at) and resumed equals the unbroken
    one, average included."""
    common = ("--vae-steps", "2", "--unet-steps", "6", "--ema", "0.5", "--lr-schedule", "cosine")
    train(tmp_path / "once", *common, "--until", "export", "--out", str(tmp_path / "model"))
    train(tmp_path / "twice", *common, "--stop-at", "3", status=3)
    train(tmp_path / "twice", *common)
    ok, why = same_tensors(tmp_path / "once/state.pt", tmp_path / "twice/state.pt",
                           ["unet", "text", "unet_ema", "text_ema"])
    assert ok, why
    record = json.loads((tmp_path / "model/training.json").read_text())
    assert record["ema"] == 0.5 and record["lr_schedule"] == "cosine" and record["lr_from"] == 0
    code = (
        "import sys, torch; from safetensors.torch import load_file\n"
        "s = torch.load(sys.argv[1]); w = load_file(sys.argv[2])\n"
        "k = 'conv_in.weight'\n"
        "print(torch.equal(w[k], s['unet_ema'][k]), torch.equal(w[k], s['unet'][k]))\n")
    proc = subprocess.run([str(sd_reference.reference_python()), "-c", code,
                           str(tmp_path / "once/state.pt"),
                           str(tmp_path / "model/unet/diffusion_pytorch_model.safetensors")],
                          capture_output=True, text=True, timeout=300)
    assert proc.stdout.split() == ["True", "False"], proc.stdout + proc.stderr[-2000:]
