"""One SD 1.5-shaped UNet step with guidance (batch 2): imagegen-sd-nets vs diffusers on the
same random weights and inputs, alternating per thread count in one run.

  IMAGEGEN_REFERENCE_PYTHON bench/sd/unet_bench.py BUILD_DIR [--compare-build DIR ...]
      [--size 256] [--threads 1 2] [--repeat 2] [--work DIR]

--compare-build adds another engine build (e.g. one against PyPI's LibTorch 2.x, build-torch2)
to the same run; each build is labelled with the LibTorch version its CMake cache records.

Random weights (diffusers' init, seed 0) are written to --work (3.4 GB, deleted afterwards
unless --keep) and never committed. Each side runs in its own process so only one copy of the
weights is in memory at a time; prints one JSON line per measurement and a markdown table.
"""
import argparse
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

SD15_UNET = dict(sample_size=64, in_channels=4, out_channels=4, layers_per_block=2,
                 block_out_channels=[320, 640, 1280, 1280], cross_attention_dim=768,
                 attention_head_dim=8, flip_sin_to_cos=True, freq_shift=0,
                 down_block_types=["CrossAttnDownBlock2D"] * 3 + ["DownBlock2D"],
                 up_block_types=["UpBlock2D"] + ["CrossAttnUpBlock2D"] * 3)

MAKE = r"""
import json, sys, torch, diffusers
from safetensors.torch import save_file
work, size, config = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
torch.manual_seed(0)
unet = diffusers.UNet2DConditionModel(**config).eval()
unet.save_pretrained(work + "/unet", safe_serialization=True)
g = torch.Generator().manual_seed(1)
save_file({"sample": torch.randn([2, 4, size // 8, size // 8], generator=g),
           "timestep": torch.tensor([500.0, 500.0]),
           "context": torch.randn([2, 77, 768], generator=g)}, work + "/inputs.safetensors")
"""

DIFFUSERS = r"""
import json, resource, sys, time, torch, diffusers
from safetensors.torch import load_file, save_file
work, threads, repeat = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
torch.set_num_threads(threads)
start = time.perf_counter()
unet = diffusers.UNet2DConditionModel.from_pretrained(work + "/unet", local_files_only=True).eval()
load = time.perf_counter() - start
x = load_file(work + "/inputs.safetensors")
seconds, cpu_seconds = [], []
with torch.inference_mode():
    for _ in range(repeat):
        start, cpu_start = time.perf_counter(), time.process_time()
        out = unet(x["sample"], x["timestep"], encoder_hidden_states=x["context"]).sample
        seconds.append(time.perf_counter() - start)
        cpu_seconds.append(time.process_time() - cpu_start)
save_file({"out": out.contiguous()}, work + "/diffusers.safetensors")
print(json.dumps({"load_seconds": load, "seconds": seconds, "cpu_seconds": cpu_seconds,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

COMPARE = r"""
import sys, torch
from safetensors.torch import load_file
a = load_file(sys.argv[1])["out"]; b = load_file(sys.argv[2])["out"]
print(float((a - b).abs().max()), float(b.abs().max()))
"""


def torch_version(build):
    """The LibTorch version cmake/torch.cmake recorded in BUILD's cache, else that of the
    TorchConfig a build dir configured before it found ("?" if neither)."""
    cache = pathlib.Path(build) / "CMakeCache.txt"
    entries = dict(line.split("=", 1) for line in
                   (cache.read_text().splitlines() if cache.exists() else []) if "=" in line)
    if "IMAGEGEN_TORCH_VERSION:INTERNAL" in entries:
        return entries["IMAGEGEN_TORCH_VERSION:INTERNAL"]
    version_file = pathlib.Path(entries.get("Torch_DIR:PATH", "/nonexistent"),
                                "TorchConfigVersion.cmake")
    if version_file.exists():
        for line in version_file.read_text().splitlines():
            if line.startswith("set(PACKAGE_VERSION "):
                return line.split('"')[1]
    return "?"


def run_imagegen(tool, work, out, threads, repeat):
    child = subprocess.Popen(
        [str(tool), "unet", "--component", f"{work}/unet", "--inputs",
         f"{work}/inputs.safetensors", "--out", out,
         "--threads", str(threads), "--repeat", str(repeat)], stdout=subprocess.PIPE, text=True)
    stdout = child.stdout.read()
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise SystemExit(f"imagegen-sd-nets failed ({child.returncode})")
    row = json.loads(stdout)
    row["peak_rss_mb"] = usage.ru_maxrss / 1024  # KiB on Linux
    return row


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("build")
    parser.add_argument("--compare-build", action="append", default=[],
                        help="another build dir to measure in the same run")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--work")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    python = os.environ.get("IMAGEGEN_REFERENCE_PYTHON", sys.executable)
    builds = [args.build] + args.compare_build
    for build in builds:
        if not os.access(pathlib.Path(build) / "imagegen-sd-nets", os.X_OK):
            raise SystemExit(f"{build}/imagegen-sd-nets is not built")
    # side label -> (build dir, output file name in the work dir)
    imagegens = {}
    for n, build in enumerate(builds):
        label = f"imagegen (torch {torch_version(build)}, {pathlib.Path(build).name})"
        imagegens[label] = (build, f"imagegen{n}.safetensors")
    python_torch = subprocess.run([python, "-c", "import torch; print(torch.__version__)"],
                                  capture_output=True, text=True, check=True).stdout.strip()
    reference = f"diffusers (torch {python_torch})"
    work = args.work or tempfile.mkdtemp(prefix="sd-unet-bench-")
    try:
        if not (pathlib.Path(work) / "unet").exists():
            subprocess.run([python, "-c", MAKE, work, str(args.size), json.dumps(SD15_UNET)],
                           check=True)
        rows = []
        for threads in args.threads:
            for side in [reference, *imagegens]:
                if side == reference:
                    out = subprocess.run([python, "-c", DIFFUSERS, work, str(threads),
                                          str(args.repeat)], stdout=subprocess.PIPE,
                                         text=True, check=True)
                    row = json.loads(out.stdout.strip().splitlines()[-1])
                else:
                    build, out = imagegens[side]
                    row = run_imagegen(pathlib.Path(build) / "imagegen-sd-nets", work,
                                       f"{work}/{out}", threads, args.repeat)
                row.update(side=side, threads=threads, size=args.size, best=min(row["seconds"]),
                           best_cpu=min(row["cpu_seconds"]))
                print(json.dumps(row), flush=True)
                rows.append(row)
        print()
        for side, (_, out) in imagegens.items():
            diff = subprocess.run([python, "-c", COMPARE, f"{work}/{out}",
                                   f"{work}/diffusers.safetensors"], capture_output=True,
                                  text=True, check=True).stdout.split()
            print(f"max |{side} - diffusers| = {float(diff[0]):.3g} "
                  f"(output max {float(diff[1]):.3g})")
        print(f"\n| {args.size}², batch 2 | threads | wall s per UNet forward (best of "
              f"{args.repeat}) | all runs | CPU s (best) | load s | peak RSS MB |")
        print("|---|---|---|---|---|---|---|")
        for r in rows:
            runs = ", ".join(f"{s:.2f}" for s in r["seconds"])
            print(f"| {r['side']} | {r['threads']} | {r['best']:.2f} | {runs} | "
                  f"{r['best_cpu']:.2f} | {r['load_seconds']:.1f} | {r['peak_rss_mb']:.0f} |")
        for threads in args.threads:
            d = next(r for r in rows if r["side"] == reference and r["threads"] == threads)
            for side in imagegens:
                i = next(r for r in rows if r["side"] == side and r["threads"] == threads)
                print(f"threads {threads}: {reference} / {side} = {d['best'] / i['best']:.2f} "
                      f"(wall), {d['best_cpu'] / i['best_cpu']:.2f} (CPU)")
    finally:
        if not args.keep and not args.work:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
