"""The share of this CPU's measured matrix-multiply peak that one SD 1.5 UNet step reaches.

Measures the peak: the best of several large square matrix products (torch.mm, 2048^3) in
float32 and bfloat16 at each thread count. Counts the work of one UNet forward at --size with
guidance (batch 2): multiply-adds of every convolution and linear layer (forward hooks on the
diffusers modules) plus the two attention products (q k^T and scores v) of every attention
module, as 2 FLOPs each. Prints JSON lines and, given the seconds per step that
unet_bench.py measured (--step NAME=SECONDS ...), the share of the peak each one reaches.

  .venv-ref/bin/python bench/sd/matmul_peak.py --size 256 --threads 1 \\
      --step "imagegen f32=4.93" --step "imagegen bf16=2.25"

One thread count per run: Debian's torch sends float32 products to OpenBLAS, whose pool size
is fixed when the process starts, so the script re-runs itself with OPENBLAS_NUM_THREADS and
OMP_NUM_THREADS set to --threads.
"""
import argparse
import json
import os
import pathlib
import sys
import time

import torch

HERE = pathlib.Path(__file__).resolve()
sys.path.insert(0, str(HERE.parents[2] / "tests" / "integration"))


def peak_gflops(dtype, threads, n=2048, repeat=5):
    torch.set_num_threads(threads)
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    torch.mm(a, b)
    best = min(_timed(lambda: torch.mm(a, b)) for _ in range(repeat))
    return 2 * n ** 3 / best / 1e9


def _timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def unet_gflop(size):
    """GFLOP of one guided UNet step (batch 2) of the random SD 1.5 UNet at size x size."""
    from make_sd1_checkpoint import sd15_unet
    unet = sd15_unet(0).eval()
    total = [0]

    def conv(module, inputs, output):
        k = module.kernel_size[0] * module.kernel_size[1]
        total[0] += 2 * output.numel() * module.in_channels // module.groups * k

    def linear(module, inputs, output):
        total[0] += 2 * output.numel() * module.in_features

    # Attention's inputs come as keywords, which forward hooks do not see: its q and k
    # projections (Linear modules, whose input is positional) give the token counts instead.
    tokens = {}

    def projection(name):
        def hook(module, inputs, output):
            tokens[name] = (output.shape[0], output.shape[1], module.out_features)
        return hook

    for name, m in unet.named_modules():
        if isinstance(m, torch.nn.Conv2d):
            m.register_forward_hook(conv)
        elif isinstance(m, torch.nn.Linear):
            m.register_forward_hook(linear)
            if name.endswith((".to_q", ".to_k")):
                m.register_forward_hook(projection(name))
    latent = size // 8
    with torch.no_grad():
        unet(torch.randn(2, 4, latent, latent), torch.tensor([500.0, 500.0]),
             encoder_hidden_states=torch.randn(2, 77, 768))
    for name, (batch, queries, inner) in tokens.items():
        if name.endswith(".to_q"):
            keys = tokens[name[:-len("to_q")] + "to_k"][1]
            total[0] += 2 * 2 * batch * queries * keys * inner  # q k^T and scores v, all heads
    return total[0] / 1e9


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--step", action="append", default=[],
                    help="NAME=SECONDS: a step measured at --threads (the name says f32 or bf16)")
    args = ap.parse_args()
    pools = {"OPENBLAS_NUM_THREADS": str(args.threads), "OMP_NUM_THREADS": str(args.threads)}
    if any(os.environ.get(k) != v for k, v in pools.items()):
        os.execve(sys.executable, [sys.executable, *sys.argv], dict(os.environ, **pools))
    peaks = {}
    for name, dtype in (("f32", torch.float32), ("bf16", torch.bfloat16)):
        peaks[name] = peak_gflops(dtype, args.threads)
        print(json.dumps({"peak": name, "threads": args.threads,
                          "gflops": round(peaks[name], 1)}), flush=True)
    work = unet_gflop(args.size)
    print(json.dumps({"unet_step_gflop": round(work, 1), "size": args.size}), flush=True)
    for item in args.step:
        name, seconds = item.rsplit("=", 1)
        peak = peaks["bf16" if "bf16" in name else "f32"]
        achieved = work / float(seconds)
        print(json.dumps({"step": name, "threads": args.threads, "seconds": float(seconds),
                          "gflops": round(achieved, 1), "peak_gflops": round(peak, 1),
                          "share_of_peak": round(achieved / peak, 3)}))


if __name__ == "__main__":
    main()
