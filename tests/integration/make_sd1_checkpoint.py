"""Writes a small SD1-layout single-file safetensors with random weights, for
stable-diffusion.cpp's sd-server as a test upstream (test_openai_provider.py, marker `peer`).

Run with the reference Python (diffusers 0.27, torch): python make_sd1_checkpoint.py OUT.safetensors

stable-diffusion.cpp reads the UNet's width (model_channels) and context size from the weights but
fixes the rest of SD1's shape (channel multipliers 1,2,4,4, two res blocks per level, 8 heads) and
builds CLIP ViT-L/14 and the SD VAE at their real sizes. So the UNet is narrow (32 channels), and
the text encoder and VAE are full-size (about 200 M parameters, 400 MB in f16). Tensor names are
diffusers' under the unet./vae./text_encoder. prefixes, which stable-diffusion.cpp converts."""
import sys

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from safetensors.torch import save_file
from transformers import CLIPTextConfig, CLIPTextModel


def main(out):
    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, layers_per_block=2,
        block_out_channels=(32, 64, 128, 128),
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
        cross_attention_dim=768, attention_head_dim=8, norm_num_groups=32)
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, layers_per_block=2,
        block_out_channels=(128, 256, 512, 512),
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4)
    text = CLIPTextModel(CLIPTextConfig(
        vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
        num_attention_heads=12, max_position_embeddings=77, hidden_act="quick_gelu"))
    tensors = {}
    for prefix, module in (("unet.", unet), ("vae.", vae), ("text_encoder.", text)):
        for name, value in module.state_dict().items():
            if name.endswith("position_ids"):
                continue  # a buffer, not a weight
            tensors[prefix + name] = value.detach().to(torch.float16).contiguous()
    save_file(tensors, out)
    print(f"{out}: {len(tensors)} tensors")


if __name__ == "__main__":
    main(sys.argv[1])
