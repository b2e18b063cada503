"""Stable Diffusion checkpoints (src/model/sd/checkpoint) and the CLIP text encoder
(src/model/sd/nets/clip_text) against diffusers/transformers, through imagegen-sd-inspect.

Tiny random pipelines of each family come from sd_reference.py (diffusers builds them, saves a
folder, and our writer rewrites them as a single-file ldm checkpoint that diffusers'
from_single_file reads back exactly). The checks:
- family, prediction type and inpainting detected from a folder and from a single file;
- the weights loaded from the folder, from the single file, and diffusers' own state_dict are
  identical (float32, bit for bit); the fp16 variant loads as float32(float16(w));
- the text encoder's hidden states equal transformers' CLIPTextModel within 1e-5 absolute
  (clip_skip 1 and 2), long prompts in A1111 chunks;
- pickled, truncated, corrupt, SDXL refiner, mismatched, incomplete and unknown-layout checkpoints are
  refused with the reason in the message.
"""
import json
import os
import pathlib
import shutil
import struct
import subprocess

import numpy as np
import pytest

import sd_reference
from conftest import binary_path

BUILD = pathlib.Path(binary_path()).parent
TOOL = pathlib.Path(os.environ.get("IMAGEGEN_SD_INSPECT", BUILD / "imagegen-sd-inspect"))
TOKENIZE = pathlib.Path(os.environ.get("IMAGEGEN_CLIP_TOKENIZE", BUILD / "imagegen-clip-tokenize"))
# The measured agreement is ~1e-6; transformers and LibTorch call the same kernels in a
# different order (fused vs separate bias adds), so allow an order of magnitude more.
TEXT_TOLERANCE = 1e-5

pytestmark = [
    pytest.mark.skipif(not os.access(TOOL, os.X_OK),
                       reason=f"{TOOL} is not built: it belongs to the engine "
                              "(-DIMAGEGEN_ENGINE=ON, then ninja imagegen-sd-inspect)"),
    pytest.mark.skipif(sd_reference.missing_reference() is not None,
                       reason=str(sd_reference.missing_reference())),
]

EXPECTED = {  # family -> (single-file name that carries the hint, prediction type)
    "sd1": ("tiny-sd15.safetensors", "epsilon"),
    "sd2": ("tiny-sd21-base.safetensors", "epsilon"),
    "sd2-v": ("tiny-sd21-768-v.safetensors", "v_prediction"),
    "sd-turbo": ("tiny-sd-turbo.safetensors", "epsilon"),
    "sdxl": ("tiny-sdxl-base.safetensors", "epsilon"),
}


@pytest.fixture(scope="session")
def pipelines(tmp_path_factory):
    # IMAGEGEN_SD_PIPELINES keeps them between runs (delete it when sd_reference.py changes).
    cached = os.environ.get("IMAGEGEN_SD_PIPELINES")
    root = pathlib.Path(cached) if cached else tmp_path_factory.mktemp("sd-pipelines")
    made = {}
    for family in sd_reference.FAMILIES:
        made[family] = sd_reference.make_pipeline(family, root / family)
    return made


def single_file(paths, tmp_path, name=None):
    """The pipeline's single file under its family's name, with its tokenizer/ (and SDXL's
    tokenizer_2/) beside it."""
    family = paths["family"]
    target = tmp_path / (name or EXPECTED[family][0])
    shutil.copyfile(paths["single_file"], target)
    for folder in ("tokenizer", "tokenizer_2"):
        if paths.get(folder) and not (tmp_path / folder).exists():
            shutil.copytree(paths[folder], tmp_path / folder)
    return target


def inspect(*args, expect_ok=True):
    proc = subprocess.run([str(TOOL), *map(str, args)], capture_output=True, text=True,
                          timeout=300)
    answer = json.loads(proc.stdout.strip().splitlines()[-1]) if proc.stdout.strip() else {}
    if expect_ok:
        assert proc.returncode == 0, (proc.returncode, proc.stdout, proc.stderr)
        assert "error" not in answer
    return proc.returncode, answer


def refused(*args):
    code, answer = inspect(*args, expect_ok=False)
    assert code == 2, (code, answer)
    assert answer["error"]["code"] == "invalid_request"
    return answer["error"]["message"]


def load_tensors(path):
    from safetensors.numpy import load_file
    return load_file(str(path))


ARCHITECTURE = {
    "text_encoder": ["hidden_size", "intermediate_size", "num_attention_heads",
                     "num_hidden_layers", "max_position_embeddings", "vocab_size", "hidden_act"],
    "unet": ["in_channels", "out_channels", "block_out_channels", "layers_per_block",
             "down_block_types", "up_block_types", "cross_attention_dim", "attention_head_dim",
             "use_linear_projection"],
    "vae": ["in_channels", "out_channels", "latent_channels", "block_out_channels",
            "layers_per_block", "down_block_types", "up_block_types", "scaling_factor"],
}
SDXL_ARCHITECTURE = {  # besides the above
    "text_encoder_2": ARCHITECTURE["text_encoder"] + ["projection_dim"],
    "unet": ["transformer_layers_per_block", "addition_embed_type", "addition_time_embed_dim",
             "projection_class_embeddings_input_dim"],
}


def normalised(value):
    return list(value) if isinstance(value, (list, tuple)) else value


@pytest.mark.parametrize("family", sd_reference.FAMILIES)
def test_family_from_folder_and_single_file(pipelines, family, tmp_path):
    paths = pipelines[family]
    _, folder = inspect(paths["folder"])
    _, single = inspect(single_file(paths, tmp_path))
    prediction = EXPECTED[family][1]
    for answer, fmt in ((folder, "diffusers"), (single, "single-file")):
        assert (answer["family"], answer["prediction_type"], answer["format"]) == \
            (family, prediction, fmt)
        assert answer["inpainting"] is False
        assert answer["unknown_keys"] == []
        assert answer["scheduler_config"]["prediction_type"] == prediction
    # The configs a single file's shapes imply are the folder's, field by field.
    checks = list(ARCHITECTURE.items())
    if family == "sdxl":
        checks += list(SDXL_ARCHITECTURE.items())
        assert single["force_zeros_for_empty_prompt"] and folder["force_zeros_for_empty_prompt"]
    for component, fields in checks:
        a = folder["components"][component]
        b = single["components"][component]
        assert (a["tensors"], a["parameters"]) == (b["tensors"], b["parameters"]), component
        for field in fields:
            assert normalised(a["config"][field]) == normalised(b["config"][field]), \
                (component, field)
    if family == "sd-turbo":
        assert single["scheduler_config"]["timestep_spacing"] == "trailing"
    if family in ("sd2", "sd2-v", "sd-turbo"):
        # the 24th OpenCLIP layer of the file is not used; text_projection/logit_scale neither
        assert single["components"]["text_encoder"]["config"]["num_hidden_layers"] == 23
        assert single["ignored_keys"] == 12 + 2


@pytest.mark.parametrize("family", ["sd1", "sd2"])
def test_weights_identical_folder_single_file_and_diffusers(pipelines, family, tmp_path):
    paths = pipelines[family]
    inspect(paths["folder"], "--dump-weights", tmp_path / "folder.safetensors")
    inspect(single_file(paths, tmp_path), "--dump-weights", tmp_path / "single.safetensors")
    sd_reference.run_reference("dump", pathlib.Path(paths["folder"]).parent,
                               tmp_path / "diffusers.safetensors")
    ours_folder = load_tensors(tmp_path / "folder.safetensors")
    ours_single = load_tensors(tmp_path / "single.safetensors")
    theirs = load_tensors(tmp_path / "diffusers.safetensors")
    assert set(ours_folder) == set(theirs) == set(ours_single)
    for key, value in theirs.items():
        assert ours_folder[key].shape == value.shape, key
        assert np.array_equal(ours_folder[key], value), key
        assert np.array_equal(ours_single[key], value), key


def test_single_file_prediction_hint_and_override(pipelines, tmp_path):
    paths = pipelines["sd2"]
    plain = single_file(paths, tmp_path, "tiny-sd21.safetensors")
    _, answer = inspect(plain)
    assert (answer["family"], answer["prediction_type"]) == ("sd2", "epsilon")
    _, answer = inspect(plain, "--prediction", "v_prediction")
    assert (answer["family"], answer["prediction_type"]) == ("sd2-v", "v_prediction")
    assert "prediction type" in refused(plain, "--prediction", "x0")


def test_fp16_variant_upcast_once(pipelines, tmp_path):
    source = pipelines["sd1"]
    work = tmp_path / "sd1"
    shutil.copytree(pathlib.Path(source["folder"]).parent, work)
    paths = dict(source, folder=str(work / "folder"))
    (work / "pipeline.json").write_text(json.dumps(paths))
    sd_reference.run_reference("fp16", work)
    inspect(work / "folder", "--dump-weights", tmp_path / "full.safetensors")
    inspect(work / "folder", "--variant", "fp16", "--dump-weights", tmp_path / "half.safetensors")
    full = load_tensors(tmp_path / "full.safetensors")
    half = load_tensors(tmp_path / "half.safetensors")
    assert set(full) == set(half)
    for key, value in full.items():
        assert half[key].dtype == np.float32
        assert np.array_equal(half[key], value.astype(np.float16).astype(np.float32)), key
    # A folder that ships only the variant files loads them without being asked.
    for component in ("text_encoder", "unet", "vae"):
        for f in (work / "folder" / component).glob("*.safetensors"):
            if ".fp16." not in f.name:
                f.unlink()
    inspect(work / "folder", "--dump-weights", tmp_path / "only.safetensors")
    only = load_tensors(tmp_path / "only.safetensors")
    assert all(np.array_equal(only[k], half[k]) for k in half)


def random_ids(rng, rows, eos, pad):
    out = []
    for _ in range(rows):
        n = int(rng.integers(1, 76))
        body = rng.integers(0, 49406, size=n).tolist()
        out.append(([49406] + body + [eos] + [pad] * 77)[:77])
    return out


@pytest.mark.parametrize("family,clip_skip", [("sd1", 1), ("sd1", 2), ("sd2", 1), ("sd2", 3)])
def test_text_encoder_matches_transformers(pipelines, family, clip_skip, tmp_path):
    paths = pipelines[family]
    rng = np.random.default_rng(7 + clip_skip)
    pad = 49407 if family == "sd1" else 0  # SD 2.x pads with "!" (id 0)
    ids = random_ids(rng, 3, 49407, pad)
    inspect(paths["folder"], "--ids", json.dumps(ids), "--clip-skip", clip_skip,
            "--out", tmp_path / "ours.safetensors")
    inspect(single_file(paths, tmp_path), "--ids", json.dumps(ids), "--clip-skip", clip_skip,
            "--out", tmp_path / "ours_single.safetensors")
    sd_reference.run_reference("encode", pathlib.Path(paths["folder"]).parent, json.dumps(ids),
                               clip_skip, tmp_path / "theirs.safetensors")
    ours = load_tensors(tmp_path / "ours.safetensors")["hidden"]
    single = load_tensors(tmp_path / "ours_single.safetensors")["hidden"]
    theirs = load_tensors(tmp_path / "theirs.safetensors")["hidden"]
    assert ours.shape == theirs.shape == (3, 77, 64)
    diff = float(np.abs(ours - theirs).max())
    print(f"{family} clip_skip {clip_skip}: max |ours - transformers| = {diff:.3g}")
    assert diff <= TEXT_TOLERANCE
    assert np.array_equal(ours, single)
    assert float(np.abs(theirs).max()) > 0.1  # not a degenerate all-zero output


@pytest.mark.parametrize("family", ["sd1", "sd2"])
def test_bf16_text_encoder_is_as_close_to_float32_as_transformers_bf16(pipelines, family,
                                                                        tmp_path):
    """--precision bf16 against transformers' float32 hidden states, measured by how far
    transformers' own bfloat16 run lands from them (the same yardstick as the UNet's and
    VAE's, test_sd_nets.py): bf16 rounding depends on the order of operations."""
    paths = pipelines[family]
    ids = random_ids(np.random.default_rng(11), 3, 49407, 49407 if family == "sd1" else 0)
    inspect(single_file(paths, tmp_path), "--ids", json.dumps(ids), "--precision", "bf16",
            "--out", tmp_path / "ours.safetensors")
    folder = pathlib.Path(paths["folder"]).parent
    for dtype in ("f32", "bf16"):
        sd_reference.run_reference("encode", folder, json.dumps(ids), 1,
                                   tmp_path / f"{dtype}.safetensors", "--dtype", dtype)
    exact = load_tensors(tmp_path / "f32.safetensors")["hidden"]
    ours = np.abs(load_tensors(tmp_path / "ours.safetensors")["hidden"] - exact)
    theirs = np.abs(load_tensors(tmp_path / "bf16.safetensors")["hidden"] - exact)
    print(f"{family} bf16 text encoder vs f32: imagegen mean {ours.mean():.3g} max "
          f"{ours.max():.3g}; transformers bf16 mean {theirs.mean():.3g} max {theirs.max():.3g}")
    assert theirs.mean() > TEXT_TOLERANCE and ours.mean() > TEXT_TOLERANCE  # bf16 ran
    assert ours.mean() <= 1.5 * theirs.mean()
    assert ours.max() <= 2.0 * theirs.max()


def test_long_prompt_in_chunks(pipelines, tmp_path):
    if not os.access(TOKENIZE, os.X_OK):
        pytest.skip(f"{TOKENIZE} is not built")
    paths = pipelines["sd1"]
    prompt = ", ".join(f"a red cube number {i} on a blue table" for i in range(14))
    inspect(paths["folder"], "--prompt", prompt, "--out", tmp_path / "ours.safetensors")
    tokenized = subprocess.run([str(TOKENIZE), "--tokenizer", pathlib.Path(paths["folder"]) /
                                "tokenizer"], input=json.dumps(prompt) + "\n",
                               capture_output=True, text=True, check=True, timeout=60)
    chunks = json.loads(tokenized.stdout)["chunks"]
    assert len(chunks) >= 2
    sd_reference.run_reference("encode", pathlib.Path(paths["folder"]).parent,
                               json.dumps(chunks), 1, tmp_path / "theirs.safetensors")
    ours = load_tensors(tmp_path / "ours.safetensors")["prompt_embeds"]
    theirs = load_tensors(tmp_path / "theirs.safetensors")["hidden"]
    assert ours.shape == (1, 77 * len(chunks), 64)
    assert float(np.abs(ours - theirs.reshape(1, -1, 64)).max()) <= TEXT_TOLERANCE


# --- refusals ---------------------------------------------------------------------------------

def read_safetensors(path):
    raw = pathlib.Path(path).read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    return json.loads(raw[8:8 + n]), raw[8 + n:]


def write_safetensors(path, header, data):
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    pathlib.Path(path).write_bytes(struct.pack("<Q", len(text)) + text + data)


def renamed(path, out, rename):
    header, data = read_safetensors(path)
    write_safetensors(out, {rename(k): v for k, v in header.items()}, data)
    return out


def test_refuses_pickled_checkpoints(pipelines, tmp_path):
    for name in ("model.ckpt", "model.pt", "model.bin"):
        (tmp_path / name).write_bytes(b"\x80\x02}q\x00.")  # a pickle; never unpickled
        message = refused(tmp_path / name)
        assert "pickled checkpoints can run code" in message and "safetensors" in message
    folder = tmp_path / "folder"
    shutil.copytree(pipelines["sd1"]["folder"], folder)
    weights = folder / "unet" / "diffusion_pytorch_model.safetensors"
    weights.rename(folder / "unet" / "diffusion_pytorch_model.bin")
    assert "pickled" in refused(folder)


def test_refuses_truncated_and_corrupt_files(pipelines, tmp_path):
    source = single_file(pipelines["sd1"], tmp_path, "good.safetensors")
    raw = source.read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(raw[: len(raw) // 2])
    assert "truncated" in refused(tmp_path / "cut.safetensors")
    (tmp_path / "head.safetensors").write_bytes(raw[:100])
    assert "truncated" in refused(tmp_path / "head.safetensors")
    (tmp_path / "garbage.safetensors").write_bytes(struct.pack("<Q", 12) + b"{not json!!}")
    assert "not a JSON object" in refused(tmp_path / "garbage.safetensors")
    (tmp_path / "huge.safetensors").write_bytes(struct.pack("<Q", 1 << 40) + b"{}")
    assert "out of bounds" in refused(tmp_path / "huge.safetensors")
    header, data = read_safetensors(source)
    key = next(k for k in header if k != "__metadata__")
    header[key]["shape"] = [3, 3]
    write_safetensors(tmp_path / "shape.safetensors", header, data)
    assert "bytes but its dtype and shape need" in refused(tmp_path / "shape.safetensors")
    assert "no checkpoint" in inspect(tmp_path / "absent.safetensors",
                                      expect_ok=False)[1]["error"]["message"]


def test_refuses_sdxl_refiners_and_unknown_layouts(pipelines, tmp_path):
    source = single_file(pipelines["sd1"], tmp_path, "good.safetensors")
    # One SDXL-style encoder alone is what an SDXL refiner file holds.
    refiner = renamed(source, tmp_path / "refiner.safetensors",
                      lambda k: k.replace("cond_stage_model.transformer.",
                                          "conditioner.embedders.1.model."))
    assert "SDXL" in refused(refiner) and "refiner" in refused(refiner)
    header, data = read_safetensors(source)
    header["model.diffusion_model.input_blocks.1.0.mystery.weight"] = \
        header.pop("model.diffusion_model.input_blocks.1.0.skip_connection.weight", None) or \
        header.pop("model.diffusion_model.input_blocks.1.0.in_layers.0.weight")
    write_safetensors(tmp_path / "odd.safetensors", header, data)
    assert "not understood" in refused(tmp_path / "odd.safetensors")
    no_vae = renamed(source, tmp_path / "novae.safetensors",
                     lambda k: k.replace("first_stage_model.", "something_else."))
    assert "no first_stage_model" in refused(no_vae)
    # Keys outside every component are counted, not fatal.
    header, data = read_safetensors(source)
    header["my_extra.weight"] = header.pop("cond_stage_model.transformer.text_model."
                                           "final_layer_norm.bias")
    write_safetensors(tmp_path / "extra.safetensors", header, data)
    assert "final_layer_norm.bias" in refused(tmp_path / "extra.safetensors")


def test_unknown_extra_keys_are_counted(pipelines, tmp_path):
    source = single_file(pipelines["sd1"], tmp_path, "good.safetensors")
    header, data = read_safetensors(source)
    extra = np.arange(4, dtype=np.float32).tobytes()
    header["my_extra.weight"] = {"dtype": "F32", "shape": [4],
                                 "data_offsets": [len(data), len(data) + 16]}
    header["alphas_cumprod"] = {"dtype": "F32", "shape": [4],
                                "data_offsets": [len(data) + 16, len(data) + 32]}
    write_safetensors(tmp_path / "extra.safetensors", header, data + extra + extra)
    _, answer = inspect(tmp_path / "extra.safetensors")
    assert answer["unknown_keys"] == ["my_extra.weight"]
    assert answer["ignored_keys"] == 1


def test_refuses_mismatched_and_incomplete_folders(pipelines, tmp_path):
    folder = tmp_path / "folder"
    shutil.copytree(pipelines["sd1"]["folder"], folder)
    config_path = folder / "unet" / "config.json"
    config = json.loads(config_path.read_text())
    config["block_out_channels"] = [32, 128]
    config_path.write_text(json.dumps(config))
    assert "shape mismatch against the config" in refused(folder)
    config["block_out_channels"] = [32, 64]
    config["cross_attention_dim"] = 128
    config_path.write_text(json.dumps(config))
    assert "attn2.to_k" in refused(folder)
    config["cross_attention_dim"] = 64
    config_path.write_text(json.dumps(config))
    text_config = folder / "text_encoder" / "config.json"
    tc = json.loads(text_config.read_text())
    tc["num_hidden_layers"] = 3
    text_config.write_text(json.dumps(tc))
    assert "encoder.layers.2" in refused(folder)
    tc["num_hidden_layers"] = 2
    text_config.write_text(json.dumps(tc))
    inspect(folder)  # repaired
    shutil.rmtree(folder / "vae")
    assert "missing component vae" in refused(folder)
    assert "model_index.json" in refused(folder / "unet")


def test_single_file_needs_a_tokenizer(pipelines, tmp_path):
    alone = tmp_path / "alone"
    alone.mkdir()
    target = alone / "tiny-sd15.safetensors"
    shutil.copyfile(pipelines["sd1"]["single_file"], target)
    message = refused(target)
    assert "no tokenizer" in message and "vocab.json" in message and "--tokenizer" in message
    _, answer = inspect(target, "--tokenizer", pipelines["sd1"]["tokenizer"])
    assert answer["family"] == "sd1"


def test_inpainting_unet_detected(tmp_path_factory, tmp_path):
    cached = os.environ.get("IMAGEGEN_SD_PIPELINES")
    root = pathlib.Path(cached) if cached else tmp_path_factory.mktemp("sd-inpaint")
    paths = sd_reference.make_pipeline("sd1", root / "sd1-inpainting", inpainting=True)
    _, folder = inspect(paths["folder"])
    _, single = inspect(single_file(paths, tmp_path))
    for answer in (folder, single):
        assert answer["inpainting"] is True
        assert answer["components"]["unet"]["config"]["in_channels"] == 9


def test_sharded_folder_loads_like_one_file(pipelines, tmp_path):
    from safetensors.numpy import save_file
    folder = tmp_path / "folder"
    shutil.copytree(pipelines["sd1"]["folder"], folder)
    unet = folder / "unet" / "diffusion_pytorch_model.safetensors"
    tensors = load_tensors(unet)
    names = sorted(tensors)
    shards = {"diffusion_pytorch_model-00001-of-00002.safetensors": names[::2],
              "diffusion_pytorch_model-00002-of-00002.safetensors": names[1::2]}
    weight_map = {}
    for shard, keys in shards.items():
        save_file({k: tensors[k] for k in keys}, str(folder / "unet" / shard))
        weight_map.update({k: shard for k in keys})
    (folder / "unet" / "diffusion_pytorch_model.safetensors.index.json").write_text(
        json.dumps({"metadata": {}, "weight_map": weight_map}))
    unet.unlink()
    inspect(folder, "--dump-weights", tmp_path / "sharded.safetensors")
    inspect(pipelines["sd1"]["folder"], "--dump-weights", tmp_path / "whole.safetensors")
    sharded = load_tensors(tmp_path / "sharded.safetensors")
    whole = load_tensors(tmp_path / "whole.safetensors")
    assert set(sharded) == set(whole)
    assert all(np.array_equal(sharded[k], whole[k]) for k in whole)
    weight_map[names[0]] = "../escape.safetensors"
    (folder / "unet" / "diffusion_pytorch_model.safetensors.index.json").write_text(
        json.dumps({"weight_map": weight_map}))
    assert "outside its folder" in refused(folder)
