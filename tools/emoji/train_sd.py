#!/usr/bin/env python3
"""Trains the emoji model: a small Stable-Diffusion-family pipeline in the diffusers layout.

Stages, each resumable from --work (state.pt: weights, optimiser, step, RNG), time-boxed by
--minutes and run in order until --until:
  tokenizer  a CLIP-format BPE vocabulary learnt from the training captions (bpe_vocab.py)
  vae        AutoencoderKL 64x64x3 <-> 16x16x4 on the dataset's images (reconstruction + KL)
  latents    every training image encoded once (posterior mean and std); the scaling factor
  unet       UNet2DConditionModel + CLIPTextModel from scratch, epsilon prediction on DDPM noise,
             10% empty captions (classifier-free guidance)
  export     the diffusers folder (model_index.json, tokenizer/, text_encoder/, unet/, vae/,
             scheduler/), loadable by StableDiffusionPipeline and by `imagegen --model sd:DIR`

Only the training split's captions are used (held-out phrasings never train). Reproducible
from --seed on one device and thread count; a tqdm bar per stage.

  .venv-ref/bin/python tools/emoji/train_sd.py --work .cache/emoji/train --minutes 60
  .venv-ref/bin/python tools/emoji/train_sd.py --work .cache/emoji/train --until export \
      --out models/emoji/model
"""
import argparse
import hashlib
import json
import math
import pathlib
import random
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from tqdm import tqdm

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import bpe_vocab  # noqa: E402

STAGES = ("tokenizer", "vae", "latents", "unet", "export")
CROISSANT = "1F950"
TEXT = dict(hidden_size=128, intermediate_size=512, num_hidden_layers=2, num_attention_heads=4,
            max_position_embeddings=77, hidden_act="quick_gelu", projection_dim=128)
UNET = dict(sample_size=16, in_channels=4, out_channels=4, layers_per_block=1,
            block_out_channels=[32, 64, 96], attention_head_dim=8, cross_attention_dim=128,
            down_block_types=["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
            up_block_types=["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
            norm_num_groups=32)
VAE = dict(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=[32, 64, 64],
           down_block_types=["DownEncoderBlock2D"] * 3, up_block_types=["UpDecoderBlock2D"] * 3,
           layers_per_block=1, norm_num_groups=32, sample_size=64)
SCHEDULE = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012,
                beta_schedule="scaled_linear", prediction_type="epsilon")


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", default=".cache/emoji/dataset")
    p.add_argument("--work", default=".cache/emoji/train")
    p.add_argument("--out", default=None, help="the diffusers folder written by 'export'")
    p.add_argument("--init", default=None,
                   help="start a new --work from an exported folder (its tokenizer, VAE, text "
                        "encoder and UNet, and their step counts; the optimiser starts afresh): "
                        "how a run continues on another machine from the committed weights")
    p.add_argument("--export-dtype", choices=["f32", "f16"], default="f32",
                   help="weights of the exported folder (f16 halves its size)")
    p.add_argument("--until", choices=STAGES, default="unet")
    p.add_argument("--minutes", type=float, default=30.0, help="wall-clock budget of this run")
    p.add_argument("--vae-steps", type=int, default=6000)
    p.add_argument("--vae-crop", type=int, default=32,
                   help="train the VAE on random crops of this size (64: whole images); the "
                        "last tenth of its steps always sees whole images")
    p.add_argument("--unet-steps", type=int, default=200000)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--lr-schedule", choices=["constant", "cosine"], default="constant",
                   help="cosine: the UNet's rate falls from --lr to --lr/20 between the step this "
                        "schedule started at (kept in the state) and --unet-steps")
    p.add_argument("--stop-at", type=int, default=0,
                   help="end this run at this UNet step, leaving --unet-steps (the schedule's "
                        "end) as it is: for device time that comes in pieces")
    p.add_argument("--ema", type=float, default=0.0,
                   help="decay of an exponential moving average of the UNet and text weights "
                        "(e.g. 0.998); export writes the average. 0: off")
    p.add_argument("--vocab-size", type=int, default=8192)
    p.add_argument("--concepts", type=int, default=0,
                   help="train on this many concepts only: the croissant and a hash-chosen sample")
    p.add_argument("--vae-from", default=None,
                   help="a new run takes its VAE (weights and steps) from this state.pt")
    p.add_argument("--clean-only", action="store_true",
                   help="the UNet trains on each sprite's clean rendering only (white, full size, "
                        "centred: one picture per concept and style), not the augmented ones; "
                        "fewer modes to learn on a small budget")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--save-every", type=int, default=500)
    return p.parse_args(argv)


class Run:
    """The resumable state of one training: what is done, the weights, the optimisers."""

    def __init__(self, args):
        self.args = args
        self.work = pathlib.Path(args.work)
        self.work.mkdir(parents=True, exist_ok=True)
        self.deadline = time.time() + args.minutes * 60
        self.device = torch.device(args.device)
        path = self.work / "state.pt"
        self.state = torch.load(path, map_location="cpu") if path.exists() else {}

    def save(self):
        tmp = self.work / "state.pt.tmp"
        torch.save(self.state, tmp)
        tmp.replace(self.work / "state.pt")  # a kill mid-save keeps the previous state

    def out_of_time(self):
        return time.time() >= self.deadline

    def rng(self, stage, step):
        """A generator per (seed, stage, step): a resumed run draws what an unbroken one would."""
        g = torch.Generator(device="cpu")
        g.manual_seed(self.args.seed * 1_000_003 + STAGES.index(stage) * 10_000_019 + step)
        return g


def load_rows(dataset, concepts, clean_only=False):
    rows = [json.loads(line) for line in (pathlib.Path(dataset) / "manifest.jsonl").open()]
    rows = [r for r in rows if r["split"] == "train"]
    if clean_only:
        rows = [r for r in rows if r["concept"] == "shapes" or r["image"].endswith("_0.png")]
    if concepts:
        keep = set(subset(rows, concepts))
        rows = [r for r in rows if r["concept"] in keep]
    return rows


def subset(rows, count):
    """The croissant (the seed's demo prompt) and count - 1 other concepts in a stable order
    that does not follow the hexcodes (the first hexcodes are all keycaps and symbols)."""
    import emoji_data
    names = sorted({r["concept"] for r in rows if r["concept"] != "shapes"})
    first = [CROISSANT] if CROISSANT in names else []
    others = sorted((n for n in names if n != CROISSANT),
                    key=lambda n: emoji_data.stable_fraction("train-subset", n))
    return sorted(first + others[:count - len(first)])


def load_images(dataset, rows):
    """The distinct images, [N, 3, 64, 64] in [-1, 1], and each image's training captions."""
    paths = sorted({r["image"] for r in rows})
    index = {p: i for i, p in enumerate(paths)}
    captions = [[] for _ in paths]
    for r in rows:
        captions[index[r["image"]]].append(r["caption"])
    root = pathlib.Path(dataset)
    arrays = [np.asarray(Image.open(root / p).convert("RGB").resize((64, 64)), dtype=np.float32)
              for p in paths]
    images = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2) / 127.5 - 1.0
    return images.contiguous(), captions


def stage_tokenizer(run, rows):
    captions = sorted({r["caption"] for r in rows})
    size = bpe_vocab.write_tokenizer(captions, run.args.vocab_size, run.work / "tokenizer")
    run.state["vocab_size"] = size
    run.state["tokenizer_of"] = captions_key(rows)
    return True


def adamw(params, lr):
    return torch.optim.AdamW(params, lr=lr, weight_decay=1e-2)


def stage_vae(run, images):
    from diffusers import AutoencoderKL
    torch.manual_seed(run.args.seed)
    vae = AutoencoderKL(**VAE).to(run.device)
    opt = adamw(vae.parameters(), run.args.lr)
    if "vae" in run.state:
        vae.load_state_dict(run.state["vae"])
        if "vae_opt" in run.state:  # absent after --init
            opt.load_state_dict(run.state["vae_opt"])
    step = run.state.get("vae_step", 0)
    bar = tqdm(total=run.args.vae_steps, initial=step, desc="vae", unit="step")
    while step < run.args.vae_steps and not run.out_of_time():
        g = run.rng("vae", step)
        batch = images[torch.randint(len(images), (run.args.batch,), generator=g)]
        batch = _crop(batch, _vae_crop(run.args, step), g).to(run.device)
        posterior = vae.encode(batch).latent_dist
        z = posterior.mean + posterior.std * torch.randn(posterior.mean.shape, generator=g).to(
            run.device)
        recon = vae.decode(z).sample
        kl = posterior.kl().mean() / z[0].numel()
        loss = F.mse_loss(recon, batch) + 0.5 * F.l1_loss(recon, batch) + 1e-4 * kl
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        bar.update(1)
        bar.set_postfix(loss=f"{loss.item():.4f}")
        if step % run.args.save_every == 0:
            run.state.update(vae=vae.state_dict(), vae_opt=opt.state_dict(), vae_step=step)
            run.save()
    bar.close()
    run.state.update(vae=vae.state_dict(), vae_opt=opt.state_dict(), vae_step=step)
    return step >= run.args.vae_steps


def _vae_crop(args, step):
    """Convolutions are translation-equivariant, so crops teach most of what whole images do at
    a quarter of the cost (32 of 64); whole images at the end fit the norms' statistics."""
    return 64 if step >= 0.9 * args.vae_steps else min(args.vae_crop, 64)


def _crop(batch, size, g):
    if size >= batch.shape[-1]:
        return batch
    y, x = (int(v) for v in torch.randint(batch.shape[-1] - size + 1, (2,), generator=g))
    return batch[:, :, y:y + size, x:x + size]


@torch.no_grad()
def stage_latents(run, images):
    from diffusers import AutoencoderKL
    vae = AutoencoderKL(**VAE).to(run.device).eval()
    vae.load_state_dict(run.state["vae"])
    means, stds = [], []
    for i in tqdm(range(0, len(images), 64), desc="latents", unit="batch"):
        d = vae.encode(images[i:i + 64].to(run.device)).latent_dist
        means.append(d.mean.cpu())
        stds.append(d.std.cpu())
    mean, std = torch.cat(means), torch.cat(stds)
    # As SD's 0.18215: scale the latents to unit variance for the diffusion.
    run.state["scaling_factor"] = float(1.0 / mean.std())
    run.state["latent_mean"], run.state["latent_std"] = mean, std
    run.state["latents_of"] = latents_key(run.state, images)
    return True


def text_encoder(run):
    from transformers import CLIPTextConfig, CLIPTextModel
    size = run.state["vocab_size"]
    config = CLIPTextConfig(vocab_size=size, bos_token_id=size - 2, eos_token_id=size - 1,
                            pad_token_id=size - 1, **TEXT)
    return CLIPTextModel(config)


def tokenize(tokenizer, captions, device):
    ids = tokenizer(captions, padding="max_length", max_length=77, truncation=True,
                    return_tensors="pt").input_ids
    return ids.to(device)


def stage_unet(run, captions):
    from diffusers import DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTokenizer
    torch.manual_seed(run.args.seed + 1)
    unet = UNet2DConditionModel(**UNET).to(run.device)
    text = text_encoder(run).to(run.device)
    params = list(unet.parameters()) + list(text.parameters())
    opt = adamw(params, run.args.lr)
    if "unet" in run.state:
        unet.load_state_dict(run.state["unet"])
        text.load_state_dict(run.state["text"])
        if "unet_opt" in run.state:  # absent after --init
            opt.load_state_dict(run.state["unet_opt"])
    tokenizer = CLIPTokenizer.from_pretrained(run.work / "tokenizer")
    noise_schedule = DDPMScheduler(**SCHEDULE)
    mean, std = run.state["latent_mean"], run.state["latent_std"]
    scale = run.state["scaling_factor"]
    step = run.state.get("unet_step", 0)
    if run.args.lr_schedule == "cosine":
        run.state.setdefault("lr_from", step)
    ema = Ema(run, unet, text)
    bar = tqdm(total=run.args.unet_steps, initial=step, desc="unet", unit="step")
    stop = min(run.args.unet_steps, run.args.stop_at or run.args.unet_steps)
    while step < stop and not run.out_of_time():
        set_lr(opt, unet_lr(run.args, run.state.get("lr_from", 0), step))
        g = run.rng("unet", step)
        pick = torch.randint(len(mean), (run.args.batch,), generator=g)
        z0 = (mean[pick] + std[pick] * torch.randn(mean[pick].shape, generator=g)) * scale
        texts = [_caption(captions[i], g) for i in pick.tolist()]
        noise = torch.randn(z0.shape, generator=g)
        t = torch.randint(0, SCHEDULE["num_train_timesteps"], (len(pick),), generator=g)
        noisy = noise_schedule.add_noise(z0, noise, t)
        context = text(tokenize(tokenizer, texts, run.device))[0]
        pred = unet(noisy.to(run.device), t.to(run.device), context).sample
        loss = F.mse_loss(pred, noise.to(run.device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        ema.update()
        step += 1
        bar.update(1)
        bar.set_postfix(loss=f"{loss.item():.4f}")
        if step % run.args.save_every == 0:
            run.state.update(unet=unet.state_dict(), text=text.state_dict(),
                             unet_opt=opt.state_dict(), unet_step=step, **ema.state())
            run.save()
    bar.close()
    run.state.update(unet=unet.state_dict(), text=text.state_dict(), unet_opt=opt.state_dict(),
                     unet_step=step, **ema.state())
    return step >= run.args.unet_steps


def unet_lr(args, start, step):
    """The rate of one UNet step: constant, or a cosine from --lr down to --lr/20 over
    [start, --unet-steps), so the last checkpoints differ little (a constant rate left them
    swinging: 'A croissant' read 4 of 5 seeds at step 3,000 and 1 of 5 at 5,156)."""
    if args.lr_schedule == "constant" or args.unet_steps <= start:
        return args.lr
    done = min(1.0, (step - start) / (args.unet_steps - start))
    low = args.lr / 20
    return low + (args.lr - low) * 0.5 * (1 + math.cos(math.pi * done))


def set_lr(opt, lr):
    for group in opt.param_groups:
        group["lr"] = lr


class Ema:
    """An exponential moving average of the UNet's and text encoder's weights, kept in the
    state (so a resumed run is the unbroken one) and written by export in their place."""

    def __init__(self, run, unet, text):
        self.decay = run.args.ema
        self.modules = {"unet": unet, "text": text}
        self.average = {}
        if self.decay:
            for name, module in self.modules.items():
                kept = run.state.get(f"{name}_ema")
                self.average[name] = kept or {k: v.detach().clone().float()
                                              for k, v in module.state_dict().items()}

    @torch.no_grad()
    def update(self):
        for name, average in self.average.items():
            for key, value in self.modules[name].state_dict().items():
                if value.is_floating_point():
                    average[key].mul_(self.decay).add_(value.float(), alpha=1 - self.decay)
                else:
                    average[key].copy_(value)

    def state(self):
        if not self.decay:
            return {}
        return {f"{name}_ema": average for name, average in self.average.items()}


def _caption(options, g):
    if torch.rand((), generator=g).item() < 0.1:
        return ""  # the unconditional branch classifier-free guidance needs
    return options[int(torch.randint(len(options), (), generator=g))]


def stage_export(run):
    from diffusers import (AutoencoderKL, EulerDiscreteScheduler, StableDiffusionPipeline,
                           UNet2DConditionModel)
    from transformers import CLIPTokenizer
    if run.args.out is None:
        raise SystemExit("train_sd: export needs --out DIR")
    vae = AutoencoderKL(**VAE, scaling_factor=run.state["scaling_factor"])
    vae.load_state_dict(run.state["vae"])
    averaged = "unet_ema" in run.state
    unet = UNet2DConditionModel(**UNET)
    unet.load_state_dict(run.state["unet_ema" if averaged else "unet"])
    text = text_encoder(run)
    text.load_state_dict(run.state["text_ema" if averaged else "text"])
    pipe = StableDiffusionPipeline(
        vae=vae, text_encoder=text, tokenizer=CLIPTokenizer.from_pretrained(run.work / "tokenizer"),
        unet=unet, scheduler=EulerDiscreteScheduler(**SCHEDULE, steps_offset=1, timestep_spacing="leading"),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    if run.args.export_dtype == "f16":
        for module in (vae, unet, text):
            module.half()
    pipe.save_pretrained(run.args.out, safe_serialization=True)
    record = {k: run.state.get(k) for k in ("vae_step", "unet_step", "vocab_size",
                                            "scaling_factor", "tokenizer_of")}
    record.update(seed=run.args.seed, batch=run.args.batch, lr=run.args.lr,
                  lr_schedule=run.args.lr_schedule, lr_from=run.state.get("lr_from"),
                  ema=run.args.ema if averaged else 0.0,
                  concepts=run.args.concepts or "all", clean_only=run.args.clean_only)
    rows = load_rows(run.args.dataset, run.args.concepts, run.args.clean_only)
    if run.args.concepts:
        record["concept_list"] = sorted({r["concept"] for r in rows if r["concept"] != "shapes"})
    record["words"] = caption_words(rows)
    (pathlib.Path(run.args.out) / "training.json").write_text(json.dumps(record, indent=2) + "\n")
    return True


def caption_words(rows):
    """The words of the training captions as imagegen's tokenizer splits a prompt (letter runs
    of the NFC, lower-cased text): imagegen reports a prompt's other words as unknown."""
    import unicodedata

    import regex
    words = set()
    for caption in {r["caption"] for r in rows}:
        words.update(regex.findall(r"\p{L}+", unicodedata.normalize("NFC", caption.lower())))
    return sorted(words)


def captions_key(rows):
    return hashlib.sha256("\n".join(sorted({r["caption"] for r in rows})).encode()).hexdigest()


def latents_key(state, images):
    digest = hashlib.sha256(images.numpy().tobytes()).hexdigest()
    return f"{state.get('vae_step')}:{digest}"


def init_from(run, folder):
    """A new run's state from an exported folder: weights and step counts, no optimiser."""
    import shutil

    from diffusers import StableDiffusionPipeline
    if run.state:
        raise SystemExit(f"train_sd: --init needs a new --work; {run.work} has a state")
    folder = pathlib.Path(folder)
    record = json.loads((folder / "training.json").read_text())
    pipe = StableDiffusionPipeline.from_pretrained(folder, local_files_only=True,
                                                   torch_dtype=torch.float32)
    shutil.copytree(folder / "tokenizer", run.work / "tokenizer", dirs_exist_ok=True)
    run.state.update(
        vocab_size=record["vocab_size"], tokenizer_of=record["tokenizer_of"],
        vae={k: v.float() for k, v in pipe.vae.state_dict().items()},
        vae_step=record["vae_step"],
        unet={k: v.float() for k, v in pipe.unet.state_dict().items()},
        text={k: v.float() for k, v in pipe.text_encoder.state_dict().items()},
        unet_step=record["unet_step"])
    run.save()


def needed(state, stage, rows, images):
    """The tokenizer is learnt again when the training captions change, before the UNet trains
    on it; the latents again whenever the VAE trained on or the images changed; the training
    stages run to their (possibly raised) step targets; export always."""
    if stage == "tokenizer":
        stale = state.get("tokenizer_of") != captions_key(rows)
        if stale and "unet" in state:
            raise SystemExit("train_sd: the training captions changed after the UNet started "
                             "training on the old vocabulary; use a new --work")
        return stale
    if stage == "latents":
        return state.get("latents_of") != latents_key(state, images)
    return True


def main(argv):
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    random.seed(args.seed)
    run = Run(args)
    if args.init:
        init_from(run, args.init)
    if args.vae_from and "vae" not in run.state:
        other = torch.load(args.vae_from, map_location="cpu")
        run.state.update(vae=other["vae"], vae_step=other["vae_step"])
    rows = load_rows(args.dataset, args.concepts, args.clean_only)
    if not rows:
        raise SystemExit(f"train_sd: no training rows in {args.dataset}/manifest.jsonl")
    images, captions = load_images(args.dataset, rows)
    stages = {"tokenizer": lambda: stage_tokenizer(run, rows),
              "vae": lambda: stage_vae(run, images),
              "latents": lambda: stage_latents(run, images),
              "unet": lambda: stage_unet(run, captions), "export": lambda: stage_export(run)}
    done = []
    for stage in STAGES[:STAGES.index(args.until) + 1]:
        if not needed(run.state, stage, rows, images):
            continue
        finished = stages[stage]()
        run.save()
        if not finished:
            print(f"train_sd: stage {stage} stopped (time or --stop-at); run again to resume",
                  file=sys.stderr)
            return 3
        done.append(stage)
    print(json.dumps({"done": done, "vae_step": run.state.get("vae_step"),
                      "unet_step": run.state.get("unet_step")}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
