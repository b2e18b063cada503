"""The default model `bundled` (the shapes model and emoji-64 behind a router) against each
member run alone, on the prompt each member is routed: `imagegen generate` one process per
image, as a first request (the models load each time).

  python3 bench/models/bundled.py [--bin build/imagegen] [--seeds 1 2 3] [--threads 1 2]

For each (prompt, threads): the median of `generate_ms` over the seeds, the median wall time
(loading included) and the largest peak RSS (wait4's ru_maxrss), bundled and the member alone,
and bundled / member: what routing costs (both models are loaded, one draws).
"""
import argparse
import json
import os
import statistics
import tempfile
import time

CASES = [("A croissant", "sd:models/emoji-64"),
         ("two small yellow squares at the top", "local")]


def measure(binary, model, prompt, seeds, threads, work):
    """(served model, median generate ms, median wall s, peak RSS MiB) over the seeds."""
    gens, walls, rss, served = [], [], 0.0, None
    for seed in seeds:
        served, gen_ms, peak, wall = run_with_rss(binary, model, prompt, seed, threads, work)
        gens.append(gen_ms)
        walls.append(wall)
        rss = max(rss, peak)
    return served, statistics.median(gens), statistics.median(walls), rss


def run_with_rss(binary, model, prompt, seed, threads, work):
    argv = [binary, "generate", prompt, "--seed", str(seed), "--threads", str(threads),
            "--store", f"file://{work}/store", "--out", f"{work}/out.png"]
    if model:
        argv += ["--model", model]
    start = time.monotonic()
    with open(f"{work}/stdout", "wb") as out, open(f"{work}/stderr", "wb") as err:
        pid = os.posix_spawn(binary, argv, os.environ, file_actions=[
            (os.POSIX_SPAWN_DUP2, out.fileno(), 1), (os.POSIX_SPAWN_DUP2, err.fileno(), 2)])
        _, status, usage = os.wait4(pid, 0)
    wall = time.monotonic() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{argv} failed: {open(f'{work}/stderr').read()[-2000:]}")
    answer = json.loads(open(f"{work}/stdout").read())
    return answer["model"], answer["timings"]["generate_ms"], usage.ru_maxrss / 1024, wall


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bin", default="build/imagegen")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    binary = os.path.abspath(args.bin)
    print("| prompt | threads | model | served by | generate ms (median) | wall s (median) "
          "| peak RSS MiB | bundled / alone: generate, wall, RSS |")
    print("|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as work:
        for prompt, member in CASES:
            for threads in args.threads:
                rows = [measure(binary, model, prompt, args.seeds, threads, work)
                        for model in ("", member)]
                (served, gen, wall, rss), (alone_served, agen, awall, arss) = rows
                assert served == alone_served, (served, alone_served)
                ratio = f"{gen / agen:.2f}, {wall / awall:.2f}, {rss / arss:.2f}"
                print(f"| {prompt} | {threads} | bundled | {served} | {gen:.0f} | {wall:.2f} "
                      f"| {rss:.0f} | {ratio} |")
                print(f"| {prompt} | {threads} | {member} | {alone_served} | {agen:.0f} "
                      f"| {awall:.2f} | {arss:.0f} | |")


if __name__ == "__main__":
    main()
