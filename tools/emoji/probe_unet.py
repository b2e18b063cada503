#!/usr/bin/env python3
"""Measures training throughput (images/s) of candidate emoji models, for the training plan in
models/emoji/CARD.md: a diffusers UNet2DConditionModel on a latent (16x16x4 or 8x8x4, what a
tiny VAE with 4x or 8x downsampling gives at 64x64) conditioned on a small CLIPTextModel over the
caption vocabulary, and the tiny VAE's encoder+decoder on 64x64 pixels. Random weights, random
inputs: only the step time matters here. Each candidate trains for --seconds (after a warm-up
step) at --threads; prints one JSON object per candidate.

  .venv-ref/bin/python tools/emoji/probe_unet.py --seconds 40
"""
import argparse
import json
import time

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel

VOCAB = 8192  # the captions' word pieces fit in this (about 4,300 English words + Norwegian)
TOKENS = 16


def text_encoder(width):
    return CLIPTextModel(CLIPTextConfig(vocab_size=VOCAB, hidden_size=width,
                                        intermediate_size=2 * width, num_hidden_layers=2,
                                        num_attention_heads=4, max_position_embeddings=TOKENS))


def unet(latent, channels, width):
    down = ("DownBlock2D",) + ("CrossAttnDownBlock2D",) * (len(channels) - 1)
    up = ("CrossAttnUpBlock2D",) * (len(channels) - 1) + ("UpBlock2D",)
    return UNet2DConditionModel(sample_size=latent, in_channels=4, out_channels=4,
                                block_out_channels=channels, layers_per_block=1,
                                down_block_types=down, up_block_types=up,
                                cross_attention_dim=width, attention_head_dim=4,
                                norm_num_groups=16)


def params(*modules):
    return sum(p.numel() for m in modules for p in m.parameters())


def timed(step, seconds):
    step()  # warm-up: oneDNN picks its kernels on the first call
    n, start = 0, time.time()
    while time.time() - start < seconds:
        step()
        n += 1
    return n, time.time() - start


def probe_unet(latent, channels, width, batch, seconds):
    te, net = text_encoder(width), unet(latent, channels, width)
    opt = torch.optim.AdamW(list(te.parameters()) + list(net.parameters()), lr=1e-4)
    ids = torch.randint(VOCAB, (batch, TOKENS))
    x = torch.randn(batch, 4, latent, latent)

    def step():
        t = torch.randint(1000, (batch,))
        pred = net(x, t, encoder_hidden_states=te(ids).last_hidden_state).sample
        loss = torch.nn.functional.mse_loss(pred, x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    n, s = timed(step, seconds)
    return {"candidate": f"unet {latent}x{latent}x4 {channels}", "unet_params": params(net),
            "text_params": params(te), "batch": batch, "steps": n, "seconds": round(s, 1),
            "images_per_second": round(n * batch / s, 1)}


def probe_vae(channels, batch, seconds):
    vae = AutoencoderKL(in_channels=3, out_channels=3,
                        down_block_types=("DownEncoderBlock2D",) * len(channels),
                        up_block_types=("UpDecoderBlock2D",) * len(channels),
                        block_out_channels=channels, latent_channels=4, layers_per_block=1,
                        norm_num_groups=16, sample_size=64)
    opt = torch.optim.AdamW(vae.parameters(), lr=1e-4)
    x = torch.rand(batch, 3, 64, 64) * 2 - 1

    def step():
        out = vae(x).sample
        loss = torch.nn.functional.mse_loss(out, x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    n, s = timed(step, seconds)
    factor = 2 ** (len(channels) - 1)
    return {"candidate": f"vae 64x64 -> {64 // factor}x{64 // factor}x4 {channels}",
            "vae_params": params(vae), "batch": batch, "steps": n, "seconds": round(s, 1),
            "images_per_second": round(n * batch / s, 1)}


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=40)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=32)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    # one UNet (2.8 M parameters) on both latent sizes: the step cost is all in the resolution
    runs = [lambda: probe_unet(16, (32, 64, 96), 128, args.batch, args.seconds),
            lambda: probe_unet(8, (32, 64, 96), 128, args.batch, args.seconds),
            lambda: probe_vae((32, 64, 64), args.batch, args.seconds)]
    for run in runs:
        print(json.dumps({**run(), "threads": args.threads}), flush=True)


if __name__ == "__main__":
    main()
