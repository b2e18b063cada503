#!/usr/bin/env python3
"""Trains the concept checker on augmented renderings of the emoji sprites and validates it.

Each step renders a fresh batch in torch from the sprites of --train-styles: a random concept,
scale 0.55-1.05, rotation +-12 degrees, offset, on a light background (the dataset's palette or
a random light colour), brightness/contrast/saturation jitter, blur and noise. The generator is
seeded by --seed, so a run is reproducible (1 thread).
Validation, written to config.json's "validation":
  cross_style   clean renderings of every style *not* trained on (one style -> the other),
                beside raw-pixel nearest neighbour (16x16) from the trained style's clean ones
  held_out_aug  each trained style rendered by emoji_data.render with backgrounds and
                placements the training never draws (HELD_OUT_BACKGROUNDS, another seed)
  dataset       the dataset's own images of the trained styles (clean + augmented), if built

  tools/emoji/train_checker.py --train-styles google --steps 3000 --out /tmp/g2t
  tools/emoji/train_checker.py --train-styles google,twitter --out models/checker
"""
import argparse
import json
import math
import pathlib
import random
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import checker_net as cn  # noqa: E402
import emoji_data as ed  # noqa: E402


def load_sprites(concepts, sources, style):
    """[C, 4, 64, 64] float in [0, 1], alpha premultiplied."""
    arr = np.stack([np.asarray(ed.source_image(sources, style, c), dtype=np.float32) / 255.0
                    for c in concepts])
    t = torch.from_numpy(arr).permute(0, 3, 1, 2).contiguous()
    t[:, :3] *= t[:, 3:4]
    return t


def _backgrounds(n, gen):
    palette = torch.tensor(ed.BACKGROUNDS, dtype=torch.float32) / 255.0
    pick = palette[torch.randint(len(palette), (n,), generator=gen)]
    light = 0.8 + 0.2 * torch.rand(n, 3, generator=gen)
    use_light = torch.rand(n, 1, generator=gen) < 0.4
    return torch.where(use_light, light, pick)


def _affine(n, gen):
    scale = 0.55 + 0.5 * torch.rand(n, generator=gen)
    angle = (torch.rand(n, generator=gen) * 2 - 1) * math.radians(12)
    room = (1 - scale).clamp(min=0.05)
    tx = (torch.rand(n, generator=gen) * 2 - 1) * room
    ty = (torch.rand(n, generator=gen) * 2 - 1) * room
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    # affine_grid maps output coordinates to input ones: the inverse of scale-rotate-shift.
    theta = torch.stack([torch.stack([cos, -sin, -(cos * tx - sin * ty)], 1),
                         torch.stack([sin, cos, -(sin * tx + cos * ty)], 1)], 1)
    return theta


def _blur(x):
    k = torch.tensor([1.0, 2.0, 1.0])
    k = (k[:, None] * k[None, :]) / 16
    k = k.expand(3, 1, 3, 3)
    return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), k, groups=3)


def augment(sprites, gen):
    """A batch of sprites [N, 4, 64, 64] -> augmented [N, 3, 32, 32] in [0, 1]."""
    n = sprites.shape[0]
    grid = F.affine_grid(_affine(n, gen), list(sprites.shape), align_corners=False)
    moved = F.grid_sample(sprites, grid, mode="bilinear", padding_mode="zeros",
                          align_corners=False)
    bg = _backgrounds(n, gen)[:, :, None, None]
    x = moved[:, :3] + bg * (1 - moved[:, 3:4])
    x = F.avg_pool2d(x, 2)
    gray = x.mean(dim=1, keepdim=True)
    sat = 0.7 + 0.6 * torch.rand(n, 1, 1, 1, generator=gen)
    x = gray + (x - gray) * sat
    contrast = 0.8 + 0.3 * torch.rand(n, 1, 1, 1, generator=gen)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = mean + (x - mean) * contrast
    x = x * (0.9 + 0.2 * torch.rand(n, 1, 1, 1, generator=gen))
    blur = torch.rand(n, 1, 1, 1, generator=gen) < 0.3
    x = torch.where(blur, _blur(x), x)
    x = x + torch.randn(x.shape, generator=gen) * 0.04 * torch.rand(n, 1, 1, 1, generator=gen)
    return x.clamp(0, 1)


def accuracy(model, batch, labels, chunk=512):
    """(top-1, top-5) as fractions."""
    hits1 = hits5 = 0
    for i in range(0, len(batch), chunk):
        idx, _ = cn.top_k(model, batch[i:i + chunk])
        want = labels[i:i + chunk, None]
        hits1 += (idx[:, :1] == want).sum().item()
        hits5 += (idx == want).any(dim=1).sum().item()
    return hits1 / len(batch), hits5 / len(batch)


def held_out_renderings(concepts, sources, style, seed):
    rng = random.Random(f"held-out/{seed}/{style}")
    images = [ed.render(ed.source_image(sources, style, c),
                        ed.random_placement(rng, ed.HELD_OUT_BACKGROUNDS)) for c in concepts]
    return cn.to_input(images)


def dataset_images(dataset, styles, index):
    """The dataset's own images of these styles: (batch, labels), or None if not built."""
    images = sorted(p for s in styles for p in (dataset / "images" / s).glob("*.png"))
    images = [p for p in images if p.name.split("_")[0] in index]
    if not images:
        return None
    from PIL import Image
    batch = cn.to_input([Image.open(p) for p in images])
    labels = torch.tensor([index[p.name.split("_")[0]] for p in images])
    return batch, labels


def nearest_neighbour_baseline(concepts, sources, train_style, test_style):
    """(top-1, top-5) of raw-pixel nearest neighbour at 16x16 from one style's clean renderings
    to the other's: the baseline the checker has to beat."""
    def pixels(style):
        batch = cn.to_input([ed.render(ed.source_image(sources, style, c), ed.CLEAN)
                             for c in concepts])
        return F.avg_pool2d(batch, 2).flatten(1)
    ref, query = pixels(train_style), pixels(test_style)
    order = torch.cdist(query, ref).argsort(dim=1)[:, :5]
    want = torch.arange(len(concepts))[:, None]
    return (order[:, :1] == want).float().mean().item(), (order == want).any(1).float().mean().item()


def validate(model, concepts, sources, styles, dataset, seed):
    model.eval()
    labels = torch.arange(len(concepts))
    index = {c.hexcode: i for i, c in enumerate(concepts)}
    report = {}
    for style in ed.STYLES:
        if style not in styles:
            clean = cn.to_input([ed.render(ed.source_image(sources, style, c), ed.CLEAN)
                                 for c in concepts])
            report[f"cross_style_{style}"] = accuracy(model, clean, labels)
            report[f"cross_style_{style}_pixel_nn"] = nearest_neighbour_baseline(
                concepts, sources, styles[0], style)
        else:
            report[f"held_out_aug_{style}"] = accuracy(
                model, held_out_renderings(concepts, sources, style, seed), labels)
    own = dataset_images(dataset, styles, index) if dataset else None
    if own is not None:
        report["dataset"] = accuracy(model, *own)
    return {k: {"top1": round(v[0], 4), "top5": round(v[1], 4)} for k, v in report.items()}


def train(model, sprites, args, gen):
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.05)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=args.steps,
                                                pct_start=0.1)
    classes = sprites[0].shape[0]
    model.train()
    bar = tqdm(range(args.steps), desc="checker", unit="step", mininterval=5)
    for _ in bar:
        labels = torch.randint(classes, (args.batch,), generator=gen)
        style = torch.randint(len(sprites), (args.batch,), generator=gen)
        picked = torch.stack([sprites[s][c] for s, c in zip(style.tolist(), labels.tolist())])
        loss = F.cross_entropy(model(augment(picked, gen)), labels, label_smoothing=0.1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sources", type=pathlib.Path, default=ed.DEFAULT_SOURCES)
    ap.add_argument("--dataset", type=pathlib.Path, default=ed.ROOT / ".cache/emoji/dataset")
    ap.add_argument("--train-styles", default="google,twitter")
    ap.add_argument("--steps", type=int, default=900)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=pathlib.Path, default=cn.DEFAULT_DIR)
    ap.add_argument("--init", type=pathlib.Path,
                    help="start from these weights (a checker directory) instead of random ones")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    styles = args.train_styles.split(",")
    concepts = ed.load_concepts(args.sources)
    sprites = [load_sprites(concepts, args.sources, s) for s in styles]
    model = cn.Checker(len(concepts))
    if args.init:
        model, init_config = cn.load(args.init)
        assert [c["hexcode"] for c in init_config["concepts"]] == [c.hexcode for c in concepts]
    start = time.time()
    train(model, sprites, args, gen)
    seconds = round(time.time() - start, 1)
    validation = validate(model, concepts, args.sources, styles, args.dataset, args.seed)
    config = {
        "widths": list(cn.WIDTHS), "input": cn.INPUT,
        "concepts": [{"hexcode": c.hexcode, "en_label": c.en_label, "nb_label": c.nb_label}
                     for c in concepts],
        "training": {"styles": styles, "steps": args.steps, "batch": args.batch,
                     "lr": args.lr, "seed": args.seed, "threads": args.threads,
                     "seconds": seconds, "init": str(args.init) if args.init else None,
                     "images_per_second": round(args.steps * args.batch / seconds, 1),
                     "command": " ".join(["tools/emoji/train_checker.py"] + sys.argv[1:])},
        "validation": validation,
    }
    cn.save(model, config, args.out)
    print(json.dumps({"training": config["training"], "validation": validation}, indent=1))


if __name__ == "__main__":
    main()
