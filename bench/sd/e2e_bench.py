"""A whole txt2img generation, imagegen vs stable-diffusion.cpp, on the same SD 1.5-shaped
random checkpoint file, in one run: each side's load, per-step and fixed costs, and peak RSS.

  .venv-ref/bin/python bench/sd/e2e_bench.py BUILD_DIR --sdcpp PATH/sd-cli [--size 256]
      [--threads 1] [--precisions f32 bf16] [--sdcpp-types f32 f16 q8_0] [--gguf] [--work DIR]

The checkpoint is tests/integration/make_sd1_checkpoint.py's cached float16 single file (2.1 GB,
.cache/, never committed); imagegen reads it as `--model sd:FILE` with CLIP's vocabulary from
.tools/clip-vocab/ in a tokenizer/ folder beside a link to it (the documented place for a single
file's tokenizer). Both sides run the same request: "a photograph of a cat", Euler, guidance 7,
seed 42, at --size, once with 1 step and once with 2, one process per run (so each loads the
weights: that is a first request). From the pair:

  step   one UNet step with guidance = (2-step time) - (1-step time), imagegen's generate_ms,
         sd.cpp's own "sampling completed" times;
  fixed  the 1-step generation less that step (text encoder + VAE decode + PNG);
  20     what 20 steps take after loading: fixed + 20 steps (computed from the pair, not run);
  rss    the larger peak RSS of the two processes (wait4), in MiB.

stable-diffusion.cpp: f32 is `--type f32` on load, f16 the file as it is, q8_0 a .gguf written
by `-M convert` (as unet_bench.py does). imagegen: --precision f32 and bf16; with --gguf also
on a q8_0 GGUF of the same file (rows "q8_0 f32", "q8_0 bf16"): sd.cpp's own conversion when it
runs q8_0 here, else one written by tests/integration/gguf_reference.py (llama.cpp's gguf
package with sd.cpp's quantisation rule).
"""
import argparse
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

HERE = pathlib.Path(__file__).resolve()
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parents[2] / "tests" / "integration"))
import make_sd1_checkpoint  # noqa: E402
import unet_bench  # noqa: E402  (its sd.cpp runner and timer)

PROMPT = "a photograph of a cat"


def model_dir(work, checkpoint):
    """A folder with a link to the checkpoint and CLIP's tokenizer beside it."""
    folder = pathlib.Path(work) / "sd15"
    (folder / "tokenizer").mkdir(parents=True, exist_ok=True)
    for name in ("vocab.json", "merges.txt"):
        shutil.copy(HERE.parents[2] / ".tools" / "clip-vocab" / name, folder / "tokenizer" / name)
    link = folder / "sd15.safetensors"
    if not link.exists():
        link.symlink_to(pathlib.Path(checkpoint).resolve())
    return link


def gguf_beside(model, sdcpp_models):
    """A q8_0 GGUF of the checkpoint beside `model` (so the same tokenizer/ folder serves it)."""
    out = model.parent / "sd15-q8_0.gguf"
    if out.exists():
        return out
    if "q8_0" in sdcpp_models:
        out.symlink_to(pathlib.Path(sdcpp_models["q8_0"][0]).resolve())
        return out
    start = time.monotonic()
    subprocess.run([sys.executable, str(HERE.parents[2] / "tests" / "integration" /
                                        "gguf_reference.py"), "write", str(model), str(out), "-"],
                   check=True, stdout=subprocess.DEVNULL)
    print(json.dumps({"side": "gguf_reference.py", "convert": "q8_0",
                      "seconds": time.monotonic() - start,
                      "gguf_mb": os.path.getsize(out) / 2**20}), flush=True)
    return out


def run_imagegen(binary, model, work, size, steps, threads, precision):
    argv = [binary, "generate", PROMPT, "--model", f"sd:{model}", "--size", f"{size}x{size}",
            "--steps", steps, "--sampler", "euler", "--guidance", "7", "--seed", "42",
            "--threads", threads, "--precision", precision, "--store", f"file://{work}/store",
            "--out", f"{work}/imagegen.png"]
    log = f"{work}/imagegen-{pathlib.Path(model).stem}-{precision}-t{threads}-{steps}steps.log"
    wall, rss, text = unet_bench.timed([str(a) for a in argv], log)
    answer = json.loads(text.strip().splitlines()[-1])
    return {"wall_s": wall, "peak_rss_mb": rss,
            "generate_s": answer["timings"]["generate_ms"] / 1000}


def summary(side, kind, threads, one, two, step_key):
    """One row from the 1- and 2-step runs; step_key is the time that differs by one step."""
    step = two[step_key] - one[step_key]
    return {"side": side, "type": kind, "threads": threads, "step_s": step,
            "fixed_s": one["generate_s"] - step, "generate1_s": one["generate_s"],
            "steps20_s": one["generate_s"] + 19 * step, "load_s": one["wall_s"] - one["generate_s"],
            "peak_rss_mb": max(one["peak_rss_mb"], two["peak_rss_mb"]), "runs": [one, two]}


def measure(args, work, model, sdcpp_models):
    models = {"": model}
    if args.gguf:
        models["q8_0"] = gguf_beside(model, sdcpp_models)
    rows = []
    for threads in args.threads:
        os.environ.update(unet_bench.thread_env(threads))
        for file_kind, path in models.items():
            for precision in args.precisions:
                one, two = (run_imagegen(pathlib.Path(args.build) / "imagegen", path, work,
                                         args.size, steps, threads, precision)
                            for steps in (1, 2))
                kind = f"{file_kind} {precision}".strip()
                rows.append(summary("imagegen", kind, threads, one, two, "generate_s"))
                print(json.dumps(rows[-1]), flush=True)
        for kind, (path, extra) in sdcpp_models.items():
            one, two = (unet_bench.run_sdcpp(args.sdcpp, path, extra, work, args.size, steps,
                                             threads, kind) for steps in (1, 2))
            rows.append(summary("sd.cpp", kind, threads, one, two, "sampling_s"))
            print(json.dumps(rows[-1]), flush=True)
    return rows


def print_table(rows, size):
    print(f"\n| {size}², txt2img | threads | step with guidance s | fixed s (text + decode) | "
          "1 step s | 20 steps s (computed) | load + start s | peak RSS MiB |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['side']} {r['type']} | {r['threads']} | {r['step_s']:.2f} | "
              f"{r['fixed_s']:.2f} | {r['generate1_s']:.2f} | {r['steps20_s']:.1f} | "
              f"{r['load_s']:.1f} | {r['peak_rss_mb']:.0f} |")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("build")
    p.add_argument("--sdcpp", help="stable-diffusion.cpp's sd-cli (omit: imagegen only)")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--threads", type=int, nargs="+", default=[1])
    p.add_argument("--precisions", nargs="+", default=["f32", "bf16"], choices=["f32", "bf16"])
    p.add_argument("--sdcpp-types", nargs="+", default=["f32", "f16", "q8_0"])
    p.add_argument("--gguf", action="store_true", help="imagegen also on a q8_0 GGUF")
    p.add_argument("--work")
    args = p.parse_args()
    work = args.work or tempfile.mkdtemp(prefix="sd-e2e-bench-")
    print(f"start: {unet_bench.uptime()}", flush=True)
    try:
        checkpoint = make_sd1_checkpoint.cached_checkpoint()
        model = model_dir(work, checkpoint)
        sdcpp = (unet_bench.sdcpp_models(args.sdcpp, checkpoint, work, args.sdcpp_types)
                 if args.sdcpp else {})
        rows = measure(args, work, model, sdcpp)
        print(f"end: {unet_bench.uptime()}", flush=True)
        print_table(rows, args.size)
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
