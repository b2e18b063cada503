#!/usr/bin/env python3
"""The local model re-implemented in PyTorch (Python), for the engine benchmark.

Reads the same config.json + model.safetensors as the C++ engine, uses the same tokenizer,
initial noise (SplitMix64 + Box-Muller), DDIM sampler and classifier-free guidance, so the
two implementations can be timed on identical work and their outputs compared.

Usage: torch_reference.py MODEL_DIR --prompt P --seed S --steps N --images K --threads T
       [--out pixels.bin]   (raw RGB bytes of all images, for comparison with the C++ engine)
Prints one JSON line: seconds per image, peak RSS.
"""
import argparse
import json
import math
import os
import re
import resource
import struct
import time

import torch
import torch.nn.functional as F

MASK64 = (1 << 64) - 1


class Rng:
    """SplitMix64, as in src/model/local/synth.cc."""

    def __init__(self, seed):
        self.state = seed & MASK64

    def next(self):
        self.state = (self.state + 0x9E3779B97F4A7C15) & MASK64
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
        return z ^ (z >> 31)

    def uniform_real(self):
        return (self.next() >> 11) * (2.0 ** -53)

    def normal(self):
        u1 = max(self.uniform_real(), 1e-300)
        u2 = self.uniform_real()
        return math.sqrt(-2.0 * math.log(u1)) * math.cos(6.283185307179586 * u2)


def load_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    base = 8 + n
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        assert e["dtype"] == "F32"
        b, end = e["data_offsets"]
        t = torch.frombuffer(bytearray(data[base + b:base + end]), dtype=torch.float32)
        out[name] = t.reshape(e["shape"])
    return out


def tokenize(cfg, text):
    ids = [0] * cfg["max_tokens"]
    ids[0] = 1
    n = 1
    vocab = {w: i + 2 for i, w in enumerate(cfg["vocab"])}
    for word in re.findall(r"[a-z0-9]+", text.lower()):
        if word in vocab and n < len(ids):
            ids[n] = vocab[word]
            n += 1
    return ids


class Net:
    """Functional forward pass over the named weights (same names as the C++ modules)."""

    def __init__(self, cfg, w):
        self.c, self.w = cfg, w

    def lin(self, x, p):
        return F.linear(x, self.w[p + ".weight"], self.w[p + ".bias"])

    def conv(self, x, p, stride=1):
        wt = self.w[p + ".weight"]
        return F.conv2d(x, wt, self.w[p + ".bias"], stride=stride, padding=wt.shape[-1] // 2)

    def gn(self, x, p):
        return F.group_norm(x, self.c["groups"], self.w[p + ".weight"], self.w[p + ".bias"], 1e-5)

    def ln(self, x, p):
        return F.layer_norm(x, (x.shape[-1],), self.w[p + ".weight"], self.w[p + ".bias"], 1e-5)

    @staticmethod
    def attend(q, k, v, mask, heads):
        b, lq, c = q.shape
        lk = k.shape[1]
        hd = c // heads
        q = q.view(b, lq, heads, hd).transpose(1, 2)
        k = k.view(b, lk, heads, hd).transpose(1, 2)
        v = v.view(b, lk, heads, hd).transpose(1, 2)
        s = torch.matmul(q, k.transpose(-2, -1)) * (1.0 / math.sqrt(hd))
        s = s.masked_fill(~mask.view(b, 1, 1, lk), float("-inf"))
        return torch.matmul(torch.softmax(s, -1), v).transpose(1, 2).reshape(b, lq, c)

    def text(self, tokens):
        mask = tokens.ne(0)
        h = F.embedding(tokens, self.w["text.tok_emb.weight"]) + self.w["text.pos_emb"][: tokens.shape[1]]
        for i in range(self.c["text_layers"]):
            p = f"text.layers.{i}."
            q, k, v = self.lin(self.ln(h, p + "ln1"), p + "qkv").chunk(3, -1)
            h = h + self.lin(self.attend(q, k, v, mask, self.c["text_heads"]), p + "proj")
            h = h + self.lin(F.gelu(self.lin(self.ln(h, p + "ln2"), p + "fc1")), p + "fc2")
        ctx = self.ln(h, "text.ln_f")
        if self.c.get("word_context", False):
            words = self.ln(F.embedding(tokens, self.w["text.tok_emb.weight"]), "text.ln_f")
            return torch.cat([ctx, words], 1), torch.cat([mask, mask], 1)
        return ctx, mask

    def res(self, x, t, p):
        h = self.conv(F.silu(self.gn(x, p + ".norm1")), p + ".conv1") + self.lin(t, p + ".temb")[:, :, None, None]
        h = self.conv(F.silu(self.gn(h, p + ".norm2")), p + ".conv2")
        skip = self.conv(x, p + ".skip") if (p + ".skip.weight") in self.w else x
        return skip + h

    def xattn(self, x, ctx, mask, p):
        b, c, hh, ww = x.shape
        seq = self.gn(x, p + ".norm").flatten(2).transpose(1, 2)
        a = self.lin(self.attend(self.lin(seq, p + ".q"), self.lin(ctx, p + ".k"), self.lin(ctx, p + ".v"),
                                 mask, self.c["attn_heads"]), p + ".out")
        return x + a.transpose(1, 2).reshape(b, c, hh, ww)

    def unet(self, x, t, ctx, mask):
        half = self.c["time_dim"] // 2
        freqs = torch.exp(torch.arange(half, dtype=torch.float32) * (-math.log(10000.0) / half))
        args = t.float()[:, None] * freqs[None]
        temb = F.silu(self.lin(F.silu(self.lin(torch.cat([args.sin(), args.cos()], 1), "unet.time1")), "unet.time2"))
        up = lambda v: F.interpolate(v, scale_factor=2.0, mode="nearest")
        h0 = self.res(self.conv(x, "unet.conv_in"), temb, "unet.res0")
        h1 = self.xattn(self.res(self.conv(h0, "unet.down0", 2), temb, "unet.res1"), ctx, mask, "unet.attn1")
        m = self.res(self.xattn(self.res(self.conv(h1, "unet.down1", 2), temb, "unet.mid0"), ctx, mask,
                                "unet.attn_mid"), temb, "unet.mid1")
        u1 = self.xattn(self.res(torch.cat([self.conv(up(m), "unet.up1"), h1], 1), temb, "unet.dec1"), ctx, mask,
                        "unet.attn_dec1")
        u0 = self.res(torch.cat([self.conv(up(u1), "unet.up0"), h0], 1), temb, "unet.dec0")
        return self.conv(F.silu(self.gn(u0, "unet.norm_out")), "unet.conv_out")


def alpha_bar(T):
    s = 0.008
    f = lambda t: math.cos((t / T + s) / (1 + s) * math.pi / 2) ** 2
    return [min(max(f(t + 1) / f(0), 1e-5), 0.99999) for t in range(T)]


def generate(net, cfg, prompt, seed, steps, guidance, count):
    s = cfg["native_size"]
    noise = []
    for i in range(count):
        r = Rng(seed + i)
        noise.extend(r.normal() for _ in range(3 * s * s))
    x = torch.tensor(noise, dtype=torch.float32).view(count, 3, s, s)
    tok_c = torch.tensor(tokenize(cfg, prompt)).view(1, -1).expand(count, -1)
    tok_u = torch.tensor(tokenize(cfg, "")).view(1, -1).expand(count, -1)
    tokens = torch.cat([tok_c, tok_u], 0)
    ctx, mask = net.text(tokens)
    ab = alpha_bar(cfg["timesteps"])
    T = cfg["timesteps"]
    ts = [(steps - i) * T // steps - 1 for i in range(steps)]
    for i, t in enumerate(ts):
        a = ab[t]
        a_prev = ab[ts[i + 1]] if i + 1 < steps else 1.0
        v = net.unet(torch.cat([x, x], 0), torch.full((2 * count,), float(t)), ctx, mask)
        vc, vu = v.chunk(2, 0)
        v = vu + guidance * (vc - vu)
        x0 = (math.sqrt(a) * x - math.sqrt(1 - a) * v).clamp(-1, 1)
        eps = (x - math.sqrt(a) * x0) / math.sqrt(1 - a)
        x = math.sqrt(a_prev) * x0 + math.sqrt(1 - a_prev) * eps
    return ((x.clamp(-1, 1) + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--prompt", default="a red circle on a blue background")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--steps", type=int, default=0)
    ap.add_argument("--guidance", type=float, default=-1)
    ap.add_argument("--images", type=int, default=4)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    cfg = json.load(open(os.path.join(a.model, "config.json")))
    net = Net(cfg, load_safetensors(os.path.join(a.model, "model.safetensors")))
    steps = a.steps or cfg["default_steps"]
    guidance = a.guidance if a.guidance >= 0 else cfg["default_guidance"]
    with torch.inference_mode():
        generate(net, cfg, a.prompt, a.seed, 2, guidance, 1)  # warm-up, as the C++ bench does
        pixels = []
        start = time.perf_counter()
        best = float("inf")
        for i in range(a.images):  # one image per call, as a service request with count 1
            ti = time.perf_counter()
            pixels.append(generate(net, cfg, a.prompt, a.seed + i, steps, guidance, 1))
            best = min(best, time.perf_counter() - ti)
        secs = time.perf_counter() - start
    if a.out:
        with open(a.out, "wb") as f:
            for p in pixels:
                f.write(p.numpy().tobytes())
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(json.dumps({"impl": "pytorch-python", "threads": a.threads, "steps": steps, "images": a.images,
                      "seconds_per_image": secs / a.images,
                      "best_seconds_per_image": best, "peak_rss_mb": rss_mb}))


if __name__ == "__main__":
    main()
