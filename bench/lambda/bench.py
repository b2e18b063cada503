"""Cold start and warm per-invocation overhead: the C++ bootstrap vs a Python handler (boto3),
under the same Runtime Interface Emulator, against the same endpoints (moto S3 + the fake
Bedrock of tests/integration), with the same API Gateway event, in the same run. Runs are
interleaved (C++, Python, C++, ...) so that load from other processes on a shared machine hits
both alike. Writes a Markdown report.

Cold start = from the emulator handing the first event over (it starts the bootstrap lazily, on
the first invoke) to the client having the answer: process start + init + first invocation.
Warm = each later invocation's round trip through the emulator. Peak memory = VmHWM of the
bootstrap process (the emulator's own REPORT line prints the configured size, not usage)."""
import argparse
import json
import os
import pathlib
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile

import boto3
import requests

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "integration"))
from fake_bedrock import FakeBedrock  # noqa: E402

RIE = ROOT / ".tools" / "bin" / "aws-lambda-rie"
VENV = ROOT / ".venv" / "bin"
MODEL = "amazon.titan-image-generator-v1"  # the seed's model (the fake serves it)
BUCKET = "imagegen-bench"
PREFIX = "bench"
KEYS = {"AWS_ACCESS_KEY_ID": "AKIDBENCH", "AWS_SECRET_ACCESS_KEY": "bench-secret"}


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def children(pid):
    out = []
    for task in pathlib.Path(f"/proc/{pid}/task").glob("*"):
        try:
            out += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return out


def vm_hwm_kb(pid):
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def start_moto(log_dir):
    port = free_port()
    log = open(log_dir / "moto.log", "w")
    proc = subprocess.Popen([str(VENV / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                            stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ, **KEYS))
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            requests.get(url + "/moto-api/", timeout=1)
            break
        except requests.RequestException:
            time.sleep(0.1)
    return proc, url


def event(body):
    out = subprocess.run([str(VENV / "sam"), "local", "generate-event", "apigateway", "aws-proxy",
                          "--method", "POST", "--path", "generate", "--body", json.dumps(body)],
                         capture_output=True, text=True, check=True,
                         env=dict(os.environ, SAM_CLI_TELEMETRY="0"))
    return json.loads(out.stdout)


def run_once(command, env, cwd, the_event, warm_n, noop_event=None, log_dir=None):
    port = free_port()
    log_path = pathlib.Path(log_dir or cwd) / f"rie-{port}.log"
    with open(log_path, "w") as log:
        rie = subprocess.Popen([str(RIE), "--runtime-interface-emulator-address", f"127.0.0.1:{port}",
                                "--runtime-api-address", f"127.0.0.1:{free_port()}", *command],
                               stdout=log, stderr=subprocess.STDOUT, env=env, cwd=cwd)
        try:
            url = f"http://127.0.0.1:{port}/2015-03-31/functions/function/invocations"
            for _ in range(300):
                try:
                    requests.get(f"http://127.0.0.1:{port}/", timeout=1)
                    break
                except requests.ConnectionError:
                    time.sleep(0.02)
            data = json.dumps(the_event)
            session = requests.Session()
            t0 = time.perf_counter()
            first = session.post(url, data=data, timeout=120)
            cold_ms = (time.perf_counter() - t0) * 1000
            answer = first.json()
            assert answer.get("statusCode") == 200, answer
            warm, stages = [], []
            for _ in range(warm_n):
                t = time.perf_counter()
                r = session.post(url, data=data, timeout=120)
                warm.append((time.perf_counter() - t) * 1000)
                assert r.json().get("statusCode") == 200, r.text
                timings = json.loads(r.json()["body"]).get("timings")
                if timings:
                    stages.append(timings)
            # The same runtime answering a request it refuses at once (no prompt -> 400): what is
            # left is the runtime's own per-invocation cost (event in, JSON out, two Runtime API
            # exchanges), without the endpoints.
            noop = []
            if noop_event is not None:
                noop_data = json.dumps(noop_event)
                for _ in range(warm_n):
                    t = time.perf_counter()
                    r = session.post(url, data=noop_data, timeout=120)
                    noop.append((time.perf_counter() - t) * 1000)
                    assert r.json().get("statusCode") == 400, r.text
            kids = children(rie.pid)
            peak_kb = max((vm_hwm_kb(k) for k in kids), default=0)
        finally:
            rie.terminate()
            try:
                rie.wait(timeout=10)
            except subprocess.TimeoutExpired:
                rie.kill()
                rie.wait()
    init_ms = None
    for line in log_path.read_text().splitlines():
        if "INIT REPORT(durationMs:" in line:
            init_ms = float(line.split("durationMs:")[1].split(")")[0])
    return {"cold_ms": cold_ms, "init_ms": init_ms, "warm_ms": warm, "peak_kb": peak_kb, "stages": stages,
            "noop_ms": noop}


def zip_size(directory):
    with tempfile.TemporaryDirectory() as tmp:
        return os.path.getsize(shutil.make_archive(os.path.join(tmp, "f"), "zip", directory))


def summarize(runs):
    cold = [r["cold_ms"] for r in runs]
    init = [r["init_ms"] for r in runs if r["init_ms"] is not None]
    warm = sorted(w for r in runs for w in r["warm_ms"])
    return {
        "cold_median_ms": statistics.median(cold),
        "cold_min_ms": min(cold),
        "init_median_ms": statistics.median(init) if init else float("nan"),
        "warm_median_ms": statistics.median(warm),
        "warm_p90_ms": warm[int(0.9 * (len(warm) - 1))],
        "noop_median_ms": statistics.median(w for r in runs for w in r["noop_ms"]),
        "peak_mb": max(r["peak_kb"] for r in runs) / 1024,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.environ.get("IMAGEGEN_BIN", str(ROOT / "build" / "imagegen")))
    ap.add_argument("--extra-bin", action="append", default=[], metavar="LABEL=PATH",
                    help="another imagegen build to measure alongside (e.g. one without the engine)")
    ap.add_argument("--runs", type=int, default=5, help="cold starts per runtime")
    ap.add_argument("--warm", type=int, default=30, help="warm invocations per cold start")
    ap.add_argument("--out", default=str(ROOT / "bench" / "lambda" / "RESULTS.md"))
    args = ap.parse_args()

    work = pathlib.Path(tempfile.mkdtemp(prefix="bench-lambda-"))
    moto, moto_url = start_moto(work)
    fake = FakeBedrock(KEYS["AWS_ACCESS_KEY_ID"], KEYS["AWS_SECRET_ACCESS_KEY"], "us-east-1").start()
    try:
        boto3.client("s3", endpoint_url=moto_url, region_name="us-east-1", **{
            "aws_access_key_id": KEYS["AWS_ACCESS_KEY_ID"],
            "aws_secret_access_key": KEYS["AWS_SECRET_ACCESS_KEY"]}).create_bucket(Bucket=BUCKET)
        base = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        base.update(KEYS)
        base.update({"AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1",
                     "AWS_EC2_METADATA_DISABLED": "true",
                     "AWS_CONFIG_FILE": str(work / "none"), "AWS_SHARED_CREDENTIALS_FILE": str(work / "none"),
                     "AWS_ENDPOINT_URL_S3": moto_url, "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": fake.url,
                     "BUCKET_NAME": BUCKET, "KEY_PREFIX": PREFIX, "MODEL_ID": MODEL,
                     "AWS_LAMBDA_FUNCTION_TIMEOUT": "60", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1024",
                     "AWS_LAMBDA_FUNCTION_NAME": "imagegen-bench"})
        cpp_env = dict(base, IMAGEGEN_S3_PATH_STYLE="1", LAMBDA_TASK_ROOT=str(work))
        py_dir = ROOT / "bench" / "lambda" / "python_handler"
        py_env = dict(base, LAMBDA_TASK_ROOT=str(py_dir), PYTHONPATH=str(py_dir))
        the_event = event({"prompt": "a croissant on a plate", "width": 512, "height": 512})
        noop_event = event({})
        commands = {
            "C++ (imagegen bootstrap)": ([args.bin], cpp_env),
            "Python (boto3 handler)": ([str(VENV / "python"), "-m", "awslambdaric", "app.handler"], py_env),
        }
        for extra in args.extra_bin:
            label, path = extra.split("=", 1)
            commands[f"C++ ({label})"] = ([path], cpp_env)
        results = {name: [] for name in commands}
        for i in range(args.runs):
            for name, (command, env) in commands.items():
                results[name].append(run_once(command, env, py_dir if "Python" in name else work,
                                              the_event, args.warm, noop_event, log_dir=work))
                print(f"run {i + 1}/{args.runs} {name}: cold {results[name][-1]['cold_ms']:.1f} ms", flush=True)
        summary = {name: summarize(runs) for name, runs in results.items()}

        # Zip sizes: what `sam build` would package.
        art = work / "artifacts"
        subprocess.run(["make", "-s", "-f", str(ROOT / "deploy" / "sam" / "Makefile"), "build-ImagegenFunction",
                        f"ARTIFACTS_DIR={art}", f"IMAGEGEN_PREBUILT={args.bin}", "BUNDLE_LIBS=0"],
                       check=True, cwd=work, capture_output=True)
        cpp_zip = zip_size(art)
        py_pkg = work / "python-package"
        py_pkg.mkdir()
        shutil.copy(py_dir / "app.py", py_pkg / "app.py")
        py_zip = zip_size(py_pkg)
        libs = subprocess.run(["bash", "-c", f"ldd {args.bin} | awk '/=> \\//{{print $3}}' | xargs -r du -cLb | tail -1"],
                              capture_output=True, text=True).stdout.split()[0]
    finally:
        fake.stop()
        moto.terminate()
        moto.wait()

    names = list(summary)
    py_name = "Python (boto3 handler)"
    cpp_names = [n for n in names if n != py_name]
    lines = [
        "# Lambda: C++ bootstrap vs Python handler (bench/lambda/run.sh)",
        "",
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {platform.machine()}, "
        f"{os.cpu_count()} CPUs shared with other work (loopback only). Same run, interleaved: "
        f"{args.runs} cold starts x {args.warm} warm invocations per runtime, under aws-lambda-rie, "
        f"against moto S3 and the SigV4-checking fake Bedrock ({MODEL}, 512x512), with one API "
        "Gateway REST event from `sam local generate-event`.",
        "",
        "| | " + " | ".join(names) + " | " + " | ".join(f"Python / {n}" for n in cpp_names) + " |",
        "|---" * (1 + len(names) + len(cpp_names)) + "|",
    ]

    def row(label, key):
        cells = [f"{summary[n][key]:.1f}" for n in names]
        ratios = [f"{summary[py_name][key] / summary[n][key]:.2f}x" for n in cpp_names]
        lines.append(f"| {label} | " + " | ".join(cells + ratios) + " |")

    row("cold start, median (ms): process start -> first answer", "cold_median_ms")
    row("cold start, best (ms)", "cold_min_ms")
    row("init only, median (ms) (RIE INIT REPORT)", "init_median_ms")
    row("warm invocation, median (ms)", "warm_median_ms")
    row("warm invocation, p90 (ms)", "warm_p90_ms")
    row("warm refused request (400), median (ms): runtime overhead alone", "noop_median_ms")
    row("peak RSS of the runtime process (MB)", "peak_mb")
    for n in cpp_names:
        stages = [st for r in results[n] for st in r["stages"]]
        if stages:
            med = {k: statistics.median(st[k] for st in stages) for k in stages[0]}
            lines.append("")
            lines.append(f"{n}, inside the pipeline (median ms): " +
                         ", ".join(f"{k.replace('_ms', '')} {v:.1f}" for k, v in med.items()))
    lines += [
        "",
        f"Zip: C++ {cpp_zip / 1e6:.2f} MB (`bootstrap` only, stripped, from `deploy/sam/Makefile` with "
        f"`IMAGEGEN_PREBUILT`, `BUNDLE_LIBS=0`); its shared libraries as linked on this machine add "
        f"{int(libs) / 1e6:.0f} MB unzipped (mostly Debian's LibTorch and what it pulls in), over Lambda's "
        f"250 MB limit - see deploy/sam/README.md. Python: {py_zip / 1e3:.1f} kB (handler only; boto3 comes "
        "with the managed runtime).",
        "",
        "Notes:",
        "- Both sides do the same calls (one InvokeModel, one PutObject, one presign); the C++ side also "
        "decodes Bedrock's PNG and re-encodes it with its provenance text chunks, and validates the "
        "request against the model's limits.",
        "- The fakes answer at once, so warm numbers are per-invocation overhead, not generation "
        "time; but both peers are Python processes on the same 2 shared cores, and their own time "
        "(the fake Bedrock's base64 + JSON, moto's PUT) dominates the warm round trip for both "
        "runtimes ('generate' above is the fake's answer time). The refused-request row isolates "
        "the runtimes' own cost.",
        "- Cold start under the emulator includes starting the process and loading shared libraries; "
        "published Lambda figures (maxday/lambda-perf, Aug 2026: C++ provided.al2 ~18 ms, python3.12 "
        "~80 ms init) are for hello-world functions without LibTorch.",
        "",
        "Raw per-run numbers (ms): " + json.dumps({n: [round(r['cold_ms'], 1) for r in rs] for n, rs in results.items()}),
    ]
    pathlib.Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
