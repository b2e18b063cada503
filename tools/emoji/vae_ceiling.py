#!/usr/bin/env python3
"""How much of each concept the emoji model's VAE keeps: every clean training sprite (white,
full size, both styles) is encoded and decoded by the VAE of a train_sd.py run, and the checker
reads the reconstructions. A generator over this VAE cannot score above what this prints
(top-1/top-5 over the concepts, JSON), so it separates what the VAE loses from what the UNet
has not learnt.

  .venv-ref/bin/python tools/emoji/vae_ceiling.py --work .cache/emoji/train
"""
import argparse
import json
import pathlib
import sys

import torch

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import checker_net as cn  # noqa: E402
import train_sd  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", default=".cache/emoji/train")
    ap.add_argument("--dataset", default=".cache/emoji/dataset")
    ap.add_argument("--model-dir", type=pathlib.Path, default=cn.DEFAULT_DIR)
    args = ap.parse_args()
    torch.set_num_threads(1)
    from diffusers import AutoencoderKL
    from PIL import Image
    state = torch.load(pathlib.Path(args.work) / "state.pt", map_location="cpu")
    vae = AutoencoderKL(**train_sd.VAE).eval()
    vae.load_state_dict(state["vae"])
    rows = [r for r in train_sd.load_rows(args.dataset, 0, clean_only=True)
            if r["concept"] != "shapes"]
    images, _ = train_sd.load_images(args.dataset, rows)
    concept_of = {r["image"]: r["concept"] for r in rows}
    truth = [concept_of[p] for p in sorted(concept_of)]  # load_images' order
    model, config = cn.load(args.model_dir)
    index = {c["hexcode"]: i for i, c in enumerate(config["concepts"])}
    top1 = top5 = 0
    with torch.no_grad():
        for i in range(0, len(images), 64):
            recon = vae.decode(vae.encode(images[i:i + 64]).latent_dist.mean).sample
            pixels = ((recon.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1)
            pil = [Image.fromarray(p.numpy()) for p in pixels]
            idx, _ = cn.top_k(model, cn.to_input(pil), 5)
            for want, got in zip(truth[i:i + 64], idx.tolist()):
                top1 += got[0] == index[want]
                top5 += index[want] in got
    n = len(truth)
    print(json.dumps({"images": n, "vae_step": state.get("vae_step"),
                      "top1": round(top1 / n, 4), "top5": round(top5 / n, 4)}))


if __name__ == "__main__":
    main()
