"""A full-size SD 1.5-shaped single-file checkpoint with random weights, made once and cached:
stable-diffusion.cpp's sd-server as a test upstream (test_openai_provider.py, marker `peer`) and
the sd.cpp column of bench/sd/unet_bench.py read it.

stable-diffusion.cpp tells the SD family from the tensors' names and shapes (a narrow or shallow
UNet is taken for SDXS or a "tiny" UNet), so the checkpoint has the released shapes (860 M UNet
parameters, CLIP ViT-L/14, the SD VAE; /work/shared/facts/sd-reference.md lists them), diffusers'
default init under torch.manual_seed(seed), the UNet built first, stored as float16 (2.1 GB)
under the original (ldm) names by sd_reference.original_layout.

Two halves, as in sd_reference.py:
- test side (no torch): `cached_checkpoint()` returns <repo>/.cache/sd15-random-<hash>.safetensors,
  making it first under the reference Python if it is missing; <hash> is of this file and
  sd_reference.py, so a change to either makes a new one (and deletes the old ones);
- reference side: `python make_sd1_checkpoint.py OUT.safetensors [--seed N]` writes it;
  `sd15_unet(seed)` is the same UNet in float32 (what unet_bench.py gives diffusers and imagegen).
"""
import hashlib
import os
import pathlib
import subprocess
import sys

HERE = pathlib.Path(__file__).resolve()
REPO = HERE.parents[2]
sys.path.insert(0, str(HERE.parent))
import sd_reference  # noqa: E402

SD15_UNET = dict(sample_size=64, in_channels=4, out_channels=4, layers_per_block=2,
                 block_out_channels=[320, 640, 1280, 1280], cross_attention_dim=768,
                 attention_head_dim=8, flip_sin_to_cos=True, freq_shift=0,
                 down_block_types=["CrossAttnDownBlock2D"] * 3 + ["DownBlock2D"],
                 up_block_types=["UpBlock2D"] + ["CrossAttnUpBlock2D"] * 3)
SD_VAE = dict(in_channels=3, out_channels=3, latent_channels=4, layers_per_block=2,
              block_out_channels=[128, 256, 512, 512], norm_num_groups=32, sample_size=512,
              down_block_types=["DownEncoderBlock2D"] * 4,
              up_block_types=["UpDecoderBlock2D"] * 4, scaling_factor=0.18215)
CLIP_VIT_L = dict(vocab_size=49408, hidden_size=768, intermediate_size=3072,
                  num_hidden_layers=12, num_attention_heads=12, max_position_embeddings=77,
                  hidden_act="quick_gelu", projection_dim=768, bos_token_id=49406,
                  eos_token_id=49407, pad_token_id=1)


# ---------------------------------------------------------------------------------------------
# Test side: no torch here.

def content_key():
    digest = hashlib.sha256()
    for path in (HERE, HERE.with_name("sd_reference.py")):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def cached_checkpoint(cache_dir=None, timeout=3600):
    """The cached checkpoint's path (a str), made first if missing (a few minutes, 2.1 GB)."""
    cache_dir = pathlib.Path(cache_dir or REPO / ".cache")
    out = cache_dir / f"sd15-random-{content_key()}.safetensors"
    if out.is_file():
        return str(out)
    cache_dir.mkdir(parents=True, exist_ok=True)
    for stale in cache_dir.glob("sd15-random-*.safetensors"):
        stale.unlink()  # made by an older maker: 2.1 GB each
    partial = out.with_suffix(".partial")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    subprocess.run([str(sd_reference.reference_python()), str(HERE), str(partial)], check=True,
                   timeout=timeout, env=env)
    partial.rename(out)  # whole or absent: an interrupted make is not taken for a checkpoint
    return str(out)


# ---------------------------------------------------------------------------------------------
# Reference side: runs under the reference Python (torch, diffusers, transformers).

def sd15_unet(seed=0):
    """The checkpoint's UNet in float32: the first module built after manual_seed(seed)."""
    import diffusers
    import torch
    torch.manual_seed(seed)
    return diffusers.UNet2DConditionModel(**SD15_UNET).eval()


def sd15_modules(seed=0):
    """unet, vae, text_encoder (float16) as original_layout reads them off a pipeline."""
    import types

    import diffusers
    import torch
    from transformers import CLIPTextConfig, CLIPTextModel
    unet = sd15_unet(seed).half()  # halved one by one: one float32 module in memory at a time
    vae = diffusers.AutoencoderKL(**SD_VAE).eval().half()
    text_encoder = CLIPTextModel(CLIPTextConfig(**CLIP_VIT_L)).eval().half()
    return types.SimpleNamespace(unet=unet, vae=vae, text_encoder=text_encoder)


def write_checkpoint(out, seed=0):
    import torch
    from safetensors.torch import save_file
    torch.set_num_threads(1)
    with torch.no_grad():
        state = sd_reference.original_layout(sd15_modules(seed), "sd1", seed)
    save_file(state, str(out), metadata={"format": "pt"})
    params = sum(v.numel() for v in state.values())
    print(f"{out}: {len(state)} tensors, {params / 1e6:.0f} M parameters, float16")


def main(argv):
    import argparse
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    write_checkpoint(args.out, args.seed)


if __name__ == "__main__":
    main(sys.argv[1:])
