"""The SD networks in C++ (src/model/sd/nets: UNet, VAE) against diffusers, through the
imagegen-sd-nets tool: diffusers builds small random UNet2DConditionModel and AutoencoderKL
components (SD 1.x-like: conv projections, 8 heads everywhere; SD 2.x-like: linear projections,
attention_head_dim per block; 9-channel inpainting with two transformer layers and the other
timestep-embedding flavour), saves them with save_pretrained(safe_serialization=True) and writes
fixed random inputs and its outputs; the tool loads the same folders and must agree.

Tolerance: 1e-4 absolute (outputs are O(1); measured differences are ~1e-6, float32 summation
order). Random init leaves norms at weight 1 / bias 0, so every 1-D parameter is perturbed
before saving: a swapped norm weight or bias then shows.

The reference runs in IMAGEGEN_REFERENCE_PYTHON (default <repo>/.venv-ref/bin/python: Debian's
torch 1.13 + diffusers 0.27.2, see /work/shared/facts/sd-reference.md).
"""
import json
import os
import pathlib
import shutil
import struct
import subprocess

import numpy as np
import pytest

from conftest import ROOT, binary_path

TOOL = pathlib.Path(os.environ.get("IMAGEGEN_SD_NETS",
                                   pathlib.Path(binary_path()).parent / "imagegen-sd-nets"))
PYTHON = os.environ.get("IMAGEGEN_REFERENCE_PYTHON", str(ROOT / ".venv-ref" / "bin" / "python"))
TOLERANCE = 1e-4

pytestmark = [
    pytest.mark.skipif(not os.access(TOOL, os.X_OK),
                       reason=f"{TOOL} is not built: it belongs to the engine "
                              "(configure with -DIMAGEGEN_ENGINE=ON)"),
    pytest.mark.skipif(not os.access(PYTHON, os.X_OK),
                       reason=f"no reference Python at {PYTHON}: set IMAGEGEN_REFERENCE_PYTHON to "
                              "a Python with torch and diffusers 0.27.2"),
]

REFERENCE = r"""
import json, os, sys
import torch, diffusers
from safetensors.torch import save_file
torch.set_num_threads(1)
spec = json.loads(sys.stdin.read())
for comp in spec["components"]:
    torch.manual_seed(comp["seed"])
    model = getattr(diffusers, comp["class"])(**comp["config"]).eval()
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 1:
                p.add_(torch.randn(p.shape) * 0.1)
    folder = os.path.join(spec["root"], comp["name"])
    model.save_pretrained(folder, safe_serialization=True)
    for case in comp["cases"]:
        g = torch.Generator().manual_seed(case["seed"])
        inputs = {k: torch.randn(shape, generator=g) * scale
                  for k, (shape, scale) in case.get("randn", {}).items()}
        inputs.update({k: torch.tensor(v, dtype=torch.float32)
                       for k, v in case.get("values", {}).items()})
        with torch.no_grad():
            if case["mode"] == "unet":
                out = model(inputs["sample"], inputs["timestep"],
                            encoder_hidden_states=inputs["context"]).sample
            elif case["mode"] == "vae-decode":
                out = model.decode(inputs["latents"]).sample
            else:
                out = model.encode(inputs["images"]).latent_dist.mean
        save_file(inputs, os.path.join(folder, case["name"] + ".in.safetensors"))
        save_file({"out": out.contiguous()}, os.path.join(folder, case["name"] + ".ref.safetensors"))
        if case.get("tiled"):  # diffusers' own tiled decode, as the yardstick for ours
            model.enable_tiling()
            with torch.no_grad():
                tiled = model.decode(inputs["latents"]).sample
            model.disable_tiling()
            save_file({"out": tiled.contiguous()},
                      os.path.join(folder, case["name"] + ".tiled.safetensors"))
    # The same cases with the network and its inputs in bfloat16: the yardstick for our bf16.
    from safetensors.torch import load_file
    model = model.to(torch.bfloat16)
    for case in comp["cases"]:
        inputs = load_file(os.path.join(folder, case["name"] + ".in.safetensors"))
        x = {k: (v if k == "timestep" else v.to(torch.bfloat16)) for k, v in inputs.items()}
        with torch.no_grad():
            if case["mode"] == "unet":
                out = model(x["sample"], x["timestep"], encoder_hidden_states=x["context"]).sample
            elif case["mode"] == "vae-decode":
                out = model.decode(x["latents"]).sample
            else:
                out = model.encode(x["images"]).latent_dist.mean
        save_file({"out": out.float().contiguous()},
                  os.path.join(folder, case["name"] + ".bf16.safetensors"))
print(json.dumps({"diffusers": diffusers.__version__, "torch": torch.__version__}))
"""

SMALL_UNET = dict(sample_size=16, block_out_channels=[32, 64, 64], layers_per_block=2,
                  down_block_types=["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
                  up_block_types=["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
                  norm_num_groups=8, cross_attention_dim=32, attention_head_dim=8)
SD2_UNET = dict(SMALL_UNET, cross_attention_dim=48, attention_head_dim=[2, 4, 4],
                use_linear_projection=True, upcast_attention=True)
INPAINT_UNET = dict(SMALL_UNET, in_channels=9, layers_per_block=1, flip_sin_to_cos=False,
                    freq_shift=1, transformer_layers_per_block=2)
SMALL_VAE = dict(block_out_channels=[16, 32, 32], layers_per_block=2, norm_num_groups=8,
                 latent_channels=4, sample_size=32,
                 down_block_types=["DownEncoderBlock2D"] * 3, up_block_types=["UpDecoderBlock2D"] * 3)


def unet_case(name, seed, batch, channels, size, tokens, dim, timesteps):
    return dict(name=name, mode="unet", seed=seed, values={"timestep": timesteps},
                randn={"sample": [[batch, channels, *size], 1.0],
                       "context": [[batch, tokens, dim], 1.0]})


COMPONENTS = [
    dict(name="unet_sd1", cls="UNet2DConditionModel", seed=1, config=SMALL_UNET, cases=[
        unet_case("square", 10, 2, 4, [16, 16], 77, 32, [999.0, 1.5]),
        # 10x14 is no multiple of 4: the up path must upsample to the skip sizes (5x7, 10x14);
        # 154 context tokens as two prompt chunks.
        unet_case("odd", 11, 1, 4, [10, 14], 154, 32, [250.25]),
    ]),
    dict(name="unet_sd2", cls="UNet2DConditionModel", seed=2, config=SD2_UNET, cases=[
        unet_case("square", 12, 2, 4, [16, 16], 77, 48, [501.0, 20.0]),
    ]),
    dict(name="unet_inpaint", cls="UNet2DConditionModel", seed=3, config=INPAINT_UNET, cases=[
        unet_case("square", 13, 2, 9, [16, 16], 77, 32, [700.0, 3.0]),
    ]),
    dict(name="vae", cls="AutoencoderKL", seed=4, config=SMALL_VAE, cases=[
        dict(name="decode", mode="vae-decode", seed=14, randn={"latents": [[2, 4, 8, 8], 1.0]}),
        dict(name="decode_odd", mode="vae-decode", seed=15, randn={"latents": [[1, 4, 6, 10], 1.0]}),
        dict(name="decode_large", mode="vae-decode", seed=16, tiled=True,
             randn={"latents": [[1, 4, 24, 20], 1.0]}),
        dict(name="encode", mode="vae-encode", seed=17, randn={"images": [[2, 3, 32, 32], 0.5]}),
    ]),
]


def read_safetensors(path):
    raw = pathlib.Path(path).read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    header.pop("__metadata__", None)
    data = raw[8 + n:]
    out = {}
    for name, info in header.items():
        assert info["dtype"] == "F32", info
        begin, end = info["data_offsets"]
        out[name] = np.frombuffer(data[begin:end], dtype="<f4").reshape(info["shape"])
    return out


def write_safetensors(path, tensors):
    header, blobs, offset = {}, [], 0
    for name, array in tensors.items():
        blob = np.ascontiguousarray(array, dtype="<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(array.shape),
                        "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    pathlib.Path(path).write_bytes(struct.pack("<Q", len(text)) + text + b"".join(blobs))


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    root = tmp_path_factory.mktemp("sd_nets")
    spec = {"root": str(root), "components": [
        dict(name=c["name"], seed=c["seed"], config=c["config"], cases=c["cases"],
             **{"class": c["cls"]}) for c in COMPONENTS]}
    done = subprocess.run([PYTHON, "-c", REFERENCE], input=json.dumps(spec), text=True,
                          capture_output=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return root


def run_tool(mode, component, inputs, out, *extra):
    return subprocess.run([str(TOOL), mode, "--component", str(component), "--inputs",
                           str(inputs), "--out", str(out), "--threads", "1", *extra],
                          capture_output=True, text=True, timeout=600)


def run_case(reference, component, case, mode, *extra):
    folder = reference / component
    out = folder / f"{case}.imagegen{'-'.join(extra)}.safetensors"
    done = run_tool(mode, folder, folder / f"{case}.in.safetensors", out, *extra)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    ours = read_safetensors(out)["out"]
    theirs = read_safetensors(folder / f"{case}.ref.safetensors")["out"]
    assert list(ours.shape) == list(theirs.shape) == report["shape"]
    return ours, theirs


PARITY = [(c["name"], case["name"], case["mode"]) for c in COMPONENTS for case in c["cases"]]


@pytest.mark.parametrize("component,case,mode", PARITY, ids=[f"{c}-{k}" for c, k, _ in PARITY])
def test_matches_diffusers(reference, component, case, mode):
    ours, theirs = run_case(reference, component, case, mode)
    diff = float(np.abs(ours - theirs).max())
    scale = float(np.abs(theirs).max())
    print(f"{component}/{case}: max |diff| {diff:.3g} (output max {scale:.3g})")
    assert scale > 0.05  # the output is not degenerate, so agreement means something
    assert diff <= TOLERANCE


@pytest.mark.parametrize("component,case,mode", PARITY, ids=[f"{c}-{k}" for c, k, _ in PARITY])
def test_bf16_is_as_close_to_float32_as_diffusers_bf16(reference, component, case, mode):
    """--precision bf16 against diffusers' float32 output, measured by how far diffusers' own
    bfloat16 run (network and inputs cast, same torch) lands from it: bf16 rounding differs
    with the order of operations, so ours may not match theirs bit for bit, but it must not be
    materially less accurate."""
    ours, exact = run_case(reference, component, case, mode, "--precision", "bf16")
    theirs = read_safetensors(reference / component / f"{case}.bf16.safetensors")["out"]
    ours_err, theirs_err = np.abs(ours - exact), np.abs(theirs - exact)
    print(f"{component}/{case} bf16 vs f32 (output std {exact.std():.3g}): imagegen mean "
          f"{ours_err.mean():.3g} max {ours_err.max():.3g}; diffusers bf16 mean "
          f"{theirs_err.mean():.3g} max {theirs_err.max():.3g}")
    assert theirs_err.mean() > TOLERANCE  # bf16 really ran on both sides
    assert ours_err.mean() > TOLERANCE
    assert ours_err.mean() <= 1.5 * theirs_err.mean()
    assert ours_err.max() <= 2.0 * theirs_err.max()


def test_tiled_decode_is_as_close_to_whole_decode_as_diffusers_tiling(reference):
    """24x20 latents in tiles of 8 sharing 2 (diffusers' tiling of this VAE: sample_size 32 ->
    8-latent tiles, 25% blended) against the untiled decode. Each tile's group norms see only
    that tile, so no tiling is exact; ours must be no further off than diffusers' own."""
    ours, whole = run_case(reference, "vae", "decode_large", "vae-decode",
                           "--tile", "8", "--overlap", "2")
    theirs = read_safetensors(reference / "vae" / "decode_large.tiled.safetensors")["out"]
    ours_err, theirs_err = np.abs(ours - whole), np.abs(theirs - whole)
    print(f"tiled decode vs whole (output std {whole.std():.3g}): imagegen max {ours_err.max():.3g}"
          f" mean {ours_err.mean():.3g}; diffusers tiling max {theirs_err.max():.3g}"
          f" mean {theirs_err.mean():.3g}")
    assert ours_err.mean() <= theirs_err.mean()
    assert ours_err.max() <= theirs_err.max()
    # Larger tiles are closer, and a tile covering the whole image is the untiled decode.
    larger, _ = run_case(reference, "vae", "decode_large", "vae-decode", "--tile", "16",
                         "--overlap", "4")
    assert np.abs(larger - whole).mean() < ours_err.mean()
    covering, _ = run_case(reference, "vae", "decode_large", "vae-decode", "--tile", "24")
    assert float(np.abs(covering - whole).max()) <= TOLERANCE


def copy_component(reference, tmp_path, name="unet_sd1"):
    target = tmp_path / name
    shutil.copytree(reference / name, target)
    return target


def weights_of(folder):
    return read_safetensors(folder / "diffusion_pytorch_model.safetensors")


def expect_refused(folder, *needles, mode="unet", case="square", inputs=None):
    out = folder / "refused.safetensors"
    done = run_tool(mode, folder, inputs or folder / f"{case}.in.safetensors", out)
    assert done.returncode == 2, (done.returncode, done.stderr)
    assert "invalid_request" in done.stderr
    for needle in needles:
        assert needle in done.stderr, done.stderr
    assert not out.exists()


def test_missing_weight_is_refused_by_name(reference, tmp_path):
    folder = copy_component(reference, tmp_path)
    weights = dict(weights_of(folder))
    key = "down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.weight"
    del weights[key]
    write_safetensors(folder / "diffusion_pytorch_model.safetensors", weights)
    expect_refused(folder, "missing weight " + key)


def test_misshaped_weight_is_refused_by_name(reference, tmp_path):
    folder = copy_component(reference, tmp_path)
    weights = dict(weights_of(folder))
    key = "up_blocks.1.resnets.2.conv1.weight"
    weights[key] = weights[key][:, :-1]
    write_safetensors(folder / "diffusion_pytorch_model.safetensors", weights)
    expect_refused(folder, "weight " + key + " has shape", "expected")


def test_unexpected_weight_is_refused(reference, tmp_path):
    """A tensor no layer asks for means the config describes another network (here: a third
    resnet in a block of two)."""
    folder = copy_component(reference, tmp_path)
    weights = dict(weights_of(folder))
    weights["down_blocks.0.resnets.2.conv1.bias"] = np.zeros(32, dtype="<f4")
    write_safetensors(folder / "diffusion_pytorch_model.safetensors", weights)
    expect_refused(folder, "unexpected weight down_blocks.0.resnets.2.conv1.bias")


def test_config_and_weights_disagreeing_is_refused(reference, tmp_path):
    folder = copy_component(reference, tmp_path)
    config = json.loads((folder / "config.json").read_text())
    config["layers_per_block"] = 1
    (folder / "config.json").write_text(json.dumps(config))
    expect_refused(folder, "weight")


# "text" is Kandinsky's added embedding (SDXL's "text_time" is implemented; without its two
# widths it is refused by name too).
@pytest.mark.parametrize("field,value", [("addition_embed_type", "text"),
                                         ("addition_embed_type", "text_time"),
                                         ("class_embed_type", "timestep"),
                                         ("time_cond_proj_dim", 256)])
def test_unsupported_unet_variants_are_refused_by_field(reference, tmp_path, field, value):
    folder = copy_component(reference, tmp_path)
    config = json.loads((folder / "config.json").read_text())
    config[field] = value
    (folder / "config.json").write_text(json.dumps(config))
    expect_refused(folder, field)


def test_unknown_block_type_is_refused(reference, tmp_path):
    folder = copy_component(reference, tmp_path)
    config = json.loads((folder / "config.json").read_text())
    config["down_block_types"][2] = "AttnDownBlock2D"
    (folder / "config.json").write_text(json.dumps(config))
    expect_refused(folder, "down_block_types", "AttnDownBlock2D")


def test_vae_with_other_block_types_is_refused(reference, tmp_path):
    folder = copy_component(reference, tmp_path, "vae")
    config = json.loads((folder / "config.json").read_text())
    config["up_block_types"] = ["AttnUpDecoderBlock2D"] * 3
    (folder / "config.json").write_text(json.dumps(config))
    expect_refused(folder, "up_block_types", mode="vae-decode", case="decode")


def test_context_of_the_wrong_width_is_refused(reference, tmp_path):
    folder = reference / "unet_sd1"
    inputs = read_safetensors(folder / "square.in.safetensors")
    inputs["context"] = np.zeros((2, 77, 40), dtype="<f4")
    path = tmp_path / "wide.in.safetensors"
    write_safetensors(path, inputs)
    done = run_tool("unet", folder, path, tmp_path / "out.safetensors")
    assert done.returncode == 2, done.stderr
    assert "invalid_request" in done.stderr
