"""One SD 1.5-shaped (or SDXL-shaped) UNet step with guidance: imagegen-sd-nets vs diffusers on
the same torch (batch 2), and stable-diffusion.cpp's CLI on the same weights, in one run, per
thread count.

  IMAGEGEN_REFERENCE_PYTHON=.venv-ref/bin/python .venv-ref/bin/python bench/sd/unet_bench.py
      BUILD_DIR [--compare-build DIR ...] [--size 256] [--threads 1 2] [--repeat 2] [--work DIR]
      [--sdcpp PATH/sd-cli] [--sdcpp-types f32 f16 q8_0] [--precisions f32 bf16]
      [--family sd15|sdxl|sd-turbo]

--family sdxl measures SDXL base's UNet instead (2.57 G parameters: channels 320/640/1280,
transformer depths 1/2/10, 2048-wide context, the text_time added embedding; the same UNet as
SDXL-Turbo's), diffusers' init under manual_seed(0), float32 (10.3 GB in --work), with the
pooled text [2, 1280] and the size ids of a --size square; no sd.cpp column (it reads the
SD 1.5 checkpoint only). --family sd-turbo measures SD-Turbo's UNet (SD 2.1's: heads of 64
channels, 1024-wide OpenCLIP context, linear projections; 866 M parameters), diffusers' init under
manual_seed(0), with batch 1: SD-Turbo samples without guidance, so a step is one pass.

--precisions runs imagegen (--precision) and diffusers (torch_dtype, inputs cast) at each
compute precision; every output is compared with diffusers' float32 one.

--compare-build adds another engine build (e.g. one against PyPI's LibTorch 2.x, build-torch2)
to the same run; each build is labelled with the LibTorch version its CMake cache records.

The weights are tests/integration/make_sd1_checkpoint.py's random SD 1.5 (diffusers' init, seed
0): its cached float16 single file (.cache/, 2.1 GB, made once) for sd.cpp, and the same UNet,
rounded through float16 so the values are the checkpoint's, as a float32 diffusers folder for
diffusers and imagegen (--work, 3.4 GB, deleted afterwards unless --keep; never committed).
Each side runs in its own process so only one copy of the weights is in memory at a time.

sd.cpp has no UNet-only mode: it runs txt2img at --size with 1 and with 2 Euler steps (guidance
7, so each step is a conditional and an unconditional UNet pass); the difference of its own
"sampling completed" times is one step with guidance (the UNet's lazy load falls out of it).
Its text-encoder and VAE-decode times come from its log; f32 is `--type f32` on load, f16 the
file as it is, q8_0 a .gguf written by `-M convert --type q8_0` (timed). Peak RSS is each
process's own (wait4). Prints one JSON line per measurement and markdown tables.
"""
import argparse
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = pathlib.Path(__file__).resolve()
sys.path.insert(0, str(HERE.parents[2] / "tests" / "integration"))
import make_sd1_checkpoint  # noqa: E402  (test side: no torch)

MAKE = r"""
import sys, diffusers, torch
sys.path.insert(0, sys.argv[3])
from make_sd1_checkpoint import sd15_unet
from safetensors.torch import save_file
work, size, family = sys.argv[1], int(sys.argv[2]), sys.argv[4]
SDXL_UNET = dict(sample_size=128, in_channels=4, out_channels=4, layers_per_block=2,
                 block_out_channels=[320, 640, 1280], cross_attention_dim=2048,
                 attention_head_dim=[5, 10, 20], transformer_layers_per_block=[1, 2, 10],
                 use_linear_projection=True, addition_embed_type="text_time",
                 addition_time_embed_dim=256, projection_class_embeddings_input_dim=2816,
                 down_block_types=["DownBlock2D"] + ["CrossAttnDownBlock2D"] * 2,
                 up_block_types=["CrossAttnUpBlock2D"] * 2 + ["UpBlock2D"])
SD_TURBO_UNET = dict(sample_size=64, in_channels=4, out_channels=4, layers_per_block=2,
                     block_out_channels=[320, 640, 1280, 1280], cross_attention_dim=1024,
                     attention_head_dim=[5, 10, 20, 20], use_linear_projection=True,
                     flip_sin_to_cos=True, freq_shift=0,
                     down_block_types=["CrossAttnDownBlock2D"] * 3 + ["DownBlock2D"],
                     up_block_types=["UpBlock2D"] + ["CrossAttnUpBlock2D"] * 3)
if family in ("sdxl", "sd-turbo"):
    torch.manual_seed(0)
    unet = diffusers.UNet2DConditionModel(
        **(SDXL_UNET if family == "sdxl" else SD_TURBO_UNET)).eval()
else:
    unet = sd15_unet(0).half().float()  # the checkpoint's float16 values, in float32
unet.save_pretrained(work + "/unet", safe_serialization=True)
g = torch.Generator().manual_seed(1)
batch = 1 if family == "sd-turbo" else 2  # SD-Turbo samples without guidance: one pass a step
inputs = {"sample": torch.randn([batch, 4, size // 8, size // 8], generator=g),
          "timestep": torch.tensor([500.0] * batch),
          "context": torch.randn([batch, 77, unet.config.cross_attention_dim], generator=g)}
if family == "sdxl":
    inputs["text_embeds"] = torch.randn([2, 1280], generator=g)
    inputs["time_ids"] = torch.tensor([[size, size, 0, 0, size, size]] * 2, dtype=torch.float32)
save_file(inputs, work + "/inputs.safetensors")
"""

DIFFUSERS = r"""
import json, resource, sys, time, torch, diffusers
from safetensors.torch import load_file, save_file
work, threads, repeat, precision, out_name = sys.argv[1:6]
threads, repeat = int(threads), int(repeat)
dtype = {"f32": torch.float32, "bf16": torch.bfloat16}[precision]
torch.set_num_threads(threads)
start = time.perf_counter()
unet = diffusers.UNet2DConditionModel.from_pretrained(work + "/unet", local_files_only=True,
                                                      torch_dtype=dtype).eval()
load = time.perf_counter() - start
x = {k: v if k == "timestep" else v.to(dtype) for k, v in load_file(work + "/inputs.safetensors").items()}
added = {k: x[k] for k in ("text_embeds", "time_ids") if k in x} or None  # SDXL
seconds, cpu_seconds = [], []
with torch.inference_mode():
    for _ in range(repeat):
        start, cpu_start = time.perf_counter(), time.process_time()
        out = unet(x["sample"], x["timestep"], encoder_hidden_states=x["context"],
                   added_cond_kwargs=added).sample
        seconds.append(time.perf_counter() - start)
        cpu_seconds.append(time.process_time() - cpu_start)
save_file({"out": out.float().contiguous()}, work + "/" + out_name)
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


def thread_env(threads):
    """Every BLAS and OpenMP pool at the measured thread count: Debian's torch sends float32
    matrix products to OpenBLAS, whose own pool otherwise takes every core whatever
    torch.set_num_threads says."""
    return dict(os.environ, OPENBLAS_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads))


def run_imagegen(tool, work, out, threads, repeat, precision):
    child = subprocess.Popen(
        [str(tool), "unet", "--component", f"{work}/unet", "--inputs",
         f"{work}/inputs.safetensors", "--out", out, "--precision", precision,
         "--threads", str(threads), "--repeat", str(repeat)], stdout=subprocess.PIPE, text=True,
        env=thread_env(threads))
    stdout = child.stdout.read()
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise SystemExit(f"imagegen-sd-nets failed ({child.returncode})")
    row = json.loads(stdout)
    row["peak_rss_mb"] = usage.ru_maxrss / 1024  # KiB on Linux
    return row


# sd.cpp's own log lines (stable-diffusion.cpp 97d29908), seconds.
SDCPP_TIMES = {"text_s": r"get_learned_condition completed, taking ([\d.]+)s",
               "sampling_s": r"sampling completed, taking ([\d.]+)s",
               "decode_s": r"decode_first_stage completed, taking ([\d.]+)s",
               "generate_s": r"generate_image completed in ([\d.]+)s"}
SDCPP_LOADS = r"loading tensors completed, taking ([\d.]+)s"


def timed(argv, log_path):
    """Runs argv with its output in log_path; (wall seconds, peak RSS MB, log text)."""
    with open(log_path, "w") as log:
        start = time.perf_counter()
        child = subprocess.Popen([str(a) for a in argv], stdout=log, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - start
    text = pathlib.Path(log_path).read_text(errors="replace")
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{argv[0]} failed:\n{text[-3000:]}")
    return wall, usage.ru_maxrss / 1024, text


def sdcpp_models(cli, checkpoint, work, types):
    """{type: (model path, extra sd-cli args)}; q8_0 converted here, timed."""
    models = {}
    for kind in types:
        if kind == "q8_0":
            gguf = f"{work}/sd15-q8_0.gguf"
            wall, rss, _ = timed([cli, "-M", "convert", "-m", checkpoint, "-o", gguf, "--type",
                                  "q8_0"], f"{work}/sdcpp-convert.log")
            print(json.dumps({"side": "sd.cpp", "convert": "q8_0", "seconds": wall,
                              "peak_rss_mb": rss, "gguf_mb": os.path.getsize(gguf) / 2**20}),
                  flush=True)
            models[kind] = (gguf, [])
        elif kind == "f16":
            models[kind] = (checkpoint, [])  # the file's own type
        else:
            models[kind] = (checkpoint, ["--type", kind])
    return models


def run_sdcpp(cli, model, extra, work, size, steps, threads, tag):
    argv = [cli, "-M", "img_gen", "-m", model, *extra, "-p", "a photograph of a cat", "-W",
            size, "-H", size, "--steps", steps, "--cfg-scale", "7", "--sampling-method", "euler",
            "--seed", "42", "-t", threads, "-o", f"{work}/sdcpp.png"]
    wall, rss, text = timed(argv, f"{work}/sdcpp-{tag}-t{threads}-{steps}steps.log")
    row = {"wall_s": wall, "peak_rss_mb": rss,
           "load_s": sum(float(x) for x in re.findall(SDCPP_LOADS, text))}
    for key, pattern in SDCPP_TIMES.items():
        found = re.findall(pattern, text)
        if not found:
            raise SystemExit(f"no {pattern!r} in sd-cli's log:\n{text[-3000:]}")
        row[key] = float(found[-1])
    return row


def sdcpp_rows(cli, models, work, size, threads):
    rows = []
    for kind, (model, extra) in models.items():
        one, two = (run_sdcpp(cli, model, extra, work, size, steps, threads, kind)
                    for steps in (1, 2))
        row = {"side": "sd.cpp", "type": kind, "threads": threads, "size": size,
               "step_s": two["sampling_s"] - one["sampling_s"], "steps1": one, "steps2": two,
               "peak_rss_mb": max(one["peak_rss_mb"], two["peak_rss_mb"])}
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


def uptime():
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def print_torch_table(rows, args):
    batch = 1 if args.family == "sd-turbo" else 2
    print(f"\n| {args.size}², batch {batch} | threads | wall s per UNet forward (best of "
          f"{args.repeat}) | all runs | CPU s (best) | load s | peak RSS MB |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        runs = ", ".join(f"{s:.2f}" for s in r["seconds"])
        print(f"| {r['side']} | {r['threads']} | {r['best']:.2f} | {runs} | "
              f"{r['best_cpu']:.2f} | {r['load_seconds']:.1f} | {r['peak_rss_mb']:.0f} |")


def print_sdcpp_table(rows, size):
    print(f"\n| sd.cpp {size}² | threads | UNet step with guidance s (sampling 2 − 1 step) | "
          "sampling 1 / 2 steps s | text encoder s | VAE decode s | weights load s | "
          "generate 2 steps s | process wall s | peak RSS MB |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        one, two = r["steps1"], r["steps2"]
        print(f"| {r['type']} | {r['threads']} | {r['step_s']:.2f} | {one['sampling_s']:.2f} / "
              f"{two['sampling_s']:.2f} | {two['text_s']:.2f} | {two['decode_s']:.2f} | "
              f"{two['load_s']:.2f} | {two['generate_s']:.2f} | {two['wall_s']:.1f} | "
              f"{r['peak_rss_mb']:.0f} |")


def print_speedups(rows, threads_list, reference, imagegens, precisions):
    """Each imagegen side against diffusers at the same precision, and against diffusers'
    float32 (the reference's numbers)."""
    for t in threads_list:
        for p in precisions:
            d = next(r for r in rows if r["side"] == f"{reference} {p}" and r["threads"] == t)
            d32 = next(r for r in rows if r["side"] == f"{reference} f32" and r["threads"] == t)
            for side in imagegens:
                i = next(r for r in rows if r["side"] == f"{side} {p}" and r["threads"] == t)
                print(f"threads {t}: diffusers {p} / {side} {p} = {d['best'] / i['best']:.2f} "
                      f"(wall), {d['best_cpu'] / i['best_cpu']:.2f} (CPU); diffusers f32 / "
                      f"{side} {p} = {d32['best'] / i['best']:.2f} (wall)")


def print_ratios(torch_rows, sdcpp_rows_, threads_list, reference, imagegen):
    kinds = list(dict.fromkeys(r["type"] for r in sdcpp_rows_))
    head = "".join(f" sd.cpp {k} s |" for k in kinds)
    ratio = "".join(f" sd.cpp {k} / diffusers |" for k in kinds)
    print(f"\n| threads | diffusers s | imagegen s |{head} imagegen / diffusers |{ratio}")
    print("|---" * (4 + 2 * len(kinds)) + "|")
    for t in threads_list:
        d = next(r for r in torch_rows if r["side"] == reference and r["threads"] == t)
        i = next(r for r in torch_rows if r["side"] == imagegen and r["threads"] == t)
        steps = {r["type"]: r["step_s"] for r in sdcpp_rows_ if r["threads"] == t}
        cells = "".join(f" {steps[k]:.2f} |" for k in kinds)
        ratios = "".join(f" {steps[k] / d['best']:.2f} |" for k in kinds)
        print(f"| {t} | {d['best']:.2f} | {i['best']:.2f} |{cells} "
              f"{i['best'] / d['best']:.2f} |{ratios}")


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
    parser.add_argument("--sdcpp", help="stable-diffusion.cpp's sd-cli: add its column")
    parser.add_argument("--sdcpp-types", nargs="+", default=["f32", "f16", "q8_0"])
    parser.add_argument("--precisions", nargs="+", default=["f32", "bf16"],
                        choices=["f32", "bf16"], help="imagegen and diffusers at each")
    parser.add_argument("--family", choices=["sd15", "sdxl", "sd-turbo"], default="sd15")
    args = parser.parse_args()
    if args.family != "sd15" and args.sdcpp:
        raise SystemExit(f"--sdcpp runs the SD 1.5 checkpoint only; leave it out for {args.family}")
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
    print(f"start: {uptime()}", flush=True)
    try:
        if not (pathlib.Path(work) / "unet").exists():
            subprocess.run([python, "-c", MAKE, work, str(args.size),
                            str(HERE.parents[2] / "tests" / "integration"), args.family],
                           check=True, env=thread_env(2))
        models = {}
        if args.sdcpp:
            checkpoint = make_sd1_checkpoint.cached_checkpoint()
            models = sdcpp_models(args.sdcpp, checkpoint, work, args.sdcpp_types)
        rows, sd_rows = [], []
        for threads in args.threads:
            for precision in args.precisions:
                for side in [reference, *imagegens]:
                    if side == reference:
                        out = subprocess.run([python, "-c", DIFFUSERS, work, str(threads),
                                              str(args.repeat), precision,
                                              f"diffusers-{precision}.safetensors"],
                                             stdout=subprocess.PIPE, text=True, check=True,
                                             env=thread_env(threads))
                        row = json.loads(out.stdout.strip().splitlines()[-1])
                    else:
                        build, out = imagegens[side]
                        row = run_imagegen(pathlib.Path(build) / "imagegen-sd-nets", work,
                                           f"{work}/{precision}-{out}", threads, args.repeat,
                                           precision)
                    row.update(side=f"{side} {precision}", threads=threads, size=args.size,
                               best=min(row["seconds"]), best_cpu=min(row["cpu_seconds"]))
                    print(json.dumps(row), flush=True)
                    rows.append(row)
            sd_rows += sdcpp_rows(args.sdcpp, models, work, args.size, threads) if models else []
        print(f"end: {uptime()}", flush=True)
        print()
        exact = f"{work}/diffusers-f32.safetensors"
        outputs = [(f"diffusers {p}", f"{work}/diffusers-{p}.safetensors") for p in args.precisions]
        outputs += [(f"{side} {p}", f"{work}/{p}-{out}") for side, (_, out) in imagegens.items()
                    for p in args.precisions]
        for label, path in outputs:
            if path == exact or not os.path.exists(exact):
                continue
            diff = subprocess.run([python, "-c", COMPARE, path, exact], capture_output=True,
                                  text=True, check=True).stdout.split()
            print(f"max |{label} - diffusers f32| = {float(diff[0]):.3g} "
                  f"(output max {float(diff[1]):.3g})")
        print_torch_table(rows, args)
        print_speedups(rows, args.threads, reference, imagegens, args.precisions)
        if sd_rows and "f32" in args.precisions:
            print_sdcpp_table(sd_rows, args.size)
            print_ratios(rows, sd_rows, args.threads, reference + " f32",
                         next(iter(imagegens)) + " f32")
    finally:
        if not args.keep and not args.work:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
