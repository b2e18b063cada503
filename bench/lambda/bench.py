"""Cold start (init) and warm per-invocation overhead of the PACKAGED imagegen bootstrap (the zip
`make -C deploy/sam zip` / `sam build` makes, unzipped and run as Lambda runs it), side by side in
one run with two baselines under the same Runtime Interface Emulator:
  - Rust: AWS's `lambda_runtime` crate, a hello world answering an API Gateway event with a small
    JSON (bench/lambda/rust_hello) - the floor of a custom runtime;
  - Python: a seed-style boto3 handler (bench/lambda/python_handler) under awslambdaric, which
    plays the python3.x managed runtime.
imagegen and Python talk to the same endpoints (moto S3 + the SigV4-checking fake Bedrock of
tests/integration), with the same API Gateway REST events. Runs are interleaved (imagegen, Rust,
Python, imagegen, ...) so that load from other processes on a shared machine hits all alike.

Per cold start (a fresh emulator, which starts the bootstrap lazily, on the first invoke):
  init     = the emulator's own INIT REPORT durationMs (microsecond resolution): from the start
             of the runtime's init phase (just before it execs the bootstrap) to the bootstrap's
             first GET /runtime/invocation/next, i.e. process start + the runtime's own init
             (for Python: the interpreter, awslambdaric, importing boto3, making two clients).
             Same method for all three.
  cold     = client side: the first invoke's round trip (init + one cheap invocation).
  first generate = the first /generate after that (lazy connections, first signing, ...).
Warm, per cold start, M invocations each of:
  cheap    = the cheapest answer each runtime gives: imagegen GET /healthz, Rust's hello (to the
             same GET /healthz event), Python's refused request (no prompt -> 400; the handler has
             no health route). What is left is the runtime's own per-invocation cost.
  refused  = POST /generate without a prompt -> 400 (imagegen and Python).
  generate = POST /generate, 512x512: one InvokeModel, one PutObject, one presign (imagegen and
             Python; real work against the local fakes).
Peak memory = VmHWM of the bootstrap process after all of that (the emulator's REPORT line
prints the configured size, not usage). Zip size = the deployable zip of each."""
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
DEFAULT_ZIP = ROOT / "build-sam-x86_64" / "imagegen-lambda-x86_64.zip"
RUST_DIR = ROOT / "bench" / "lambda" / "rust_hello"

IMAGEGEN, RUST, PYTHON = "imagegen (packaged zip)", "Rust (lambda_runtime hello)", "Python (boto3 handler)"
GOALS = {"init_vs_rust": 1.5, "python_vs_init": 20.0, "zip_mb": 5.0}


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
    try:
        for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
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


def event(method, path, body=None):
    cmd = [str(VENV / "sam"), "local", "generate-event", "apigateway", "aws-proxy",
           "--method", method, "--path", path]
    if body is not None:
        cmd += ["--body", json.dumps(body)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True,
                         env=dict(os.environ, SAM_CLI_TELEMETRY="0"))
    e = json.loads(out.stdout)
    if body is None:  # generate-event fills a sample body in; a GET carries none
        e["body"] = None
        e["isBase64Encoded"] = False
    return e


def run_once(command, env, cwd, first, phases, log_dir, trace=None):
    """One cold start: a fresh emulator, `first` = (event, status) as the cold invoke, then each
    phase (name, event, status, n) n times warm. Returns the timings and the peak RSS. With
    `trace` (a file), the bootstrap runs under strace (execve and connect only) instead."""
    port = free_port()
    runtime_api_port = free_port()
    log_path = pathlib.Path(log_dir) / f"rie-{port}.log"
    out = {"runtime_api_port": runtime_api_port}
    if trace:
        command = ["strace", "-f", "--seccomp-bpf", "-e", "trace=execve,connect", "-ttt", "-o", str(trace),
                   *command]
    with open(log_path, "w") as log:
        rie = subprocess.Popen([str(RIE), "--runtime-interface-emulator-address", f"127.0.0.1:{port}",
                                "--runtime-api-address", f"127.0.0.1:{runtime_api_port}", *command],
                               stdout=log, stderr=subprocess.STDOUT, env=env, cwd=cwd)
        try:
            url = f"http://127.0.0.1:{port}/2015-03-31/functions/function/invocations"
            for _ in range(500):
                try:
                    requests.get(f"http://127.0.0.1:{port}/", timeout=1)
                    break
                except requests.ConnectionError:
                    time.sleep(0.02)
            session = requests.Session()

            def invoke(the_event, status):
                data = json.dumps(the_event)
                t = time.perf_counter()
                r = session.post(url, data=data, timeout=120)
                ms = (time.perf_counter() - t) * 1000
                answer = r.json()
                assert answer.get("statusCode") == status, (command, r.text[:500])
                return ms, answer

            out["cold_ms"], _ = invoke(*first)
            stages = []
            for name, the_event, status, n in phases:
                times = []
                for i in range(n + (1 if name == "generate" else 0)):
                    ms, answer = invoke(the_event, status)
                    if name == "generate" and i == 0:
                        out["first_generate_ms"] = ms  # the first real call after init
                        continue
                    times.append(ms)
                    if name == "generate":
                        timings = json.loads(answer["body"]).get("timings")
                        if timings:
                            stages.append(timings)
                out[name] = times
            out["stages"] = stages
            out["peak_kb"] = max((vm_hwm_kb(k) for k in children(rie.pid)), default=0)
        finally:
            rie.terminate()
            try:
                rie.wait(timeout=10)
            except subprocess.TimeoutExpired:
                rie.kill()
                rie.wait()
    out["init_ms"] = None
    for line in log_path.read_text().splitlines():
        if "INIT REPORT(" in line and "durationMs:" in line:
            out["init_ms"] = float(line.split("durationMs:")[1].split(",")[0].split(")")[0])
    if out["init_ms"] is None:
        raise SystemExit(f"no INIT REPORT in {log_path}:\n{log_path.read_text()[-2000:]}")
    return out


def trace_init(trace, s3_port, runtime_api_port):
    """From an strace -ttt log: ms from the bootstrap's execve to its first connect to the S3
    endpoint and to its first connect to the Runtime API (= asking for the first event)."""
    import re
    t0 = s3 = rapi = None
    for line in pathlib.Path(trace).read_text().splitlines():
        m = re.match(r"\d+\s+([\d.]+) (execve|connect)\(", line)
        if not m:
            continue
        t = float(m.group(1))
        if m.group(2) == "execve" and t0 is None:
            t0 = t
        elif m.group(2) == "connect" and t0 is not None:
            if f"htons({s3_port})" in line and s3 is None:
                s3 = (t - t0) * 1000
            if f"htons({runtime_api_port})" in line and rapi is None:
                rapi = (t - t0) * 1000
    return s3, rapi


def pct(values, q):
    v = sorted(values)
    return v[int(q * (len(v) - 1))] if v else float("nan")


def med(values):
    values = list(values)
    return statistics.median(values) if values else float("nan")


def summarize(runs):
    flat = lambda key: [w for r in runs for w in r.get(key, [])]  # noqa: E731
    init = [r["init_ms"] for r in runs]
    return {
        "init_median_ms": med(init),
        "init_min_ms": min(init),
        "init_p90_ms": pct(init, 0.9),
        "cold_median_ms": med(r["cold_ms"] for r in runs),
        "first_generate_median_ms": med(r["first_generate_ms"] for r in runs if "first_generate_ms" in r),
        "cheap_median_ms": med(flat("cheap")),
        "cheap_p90_ms": pct(flat("cheap"), 0.9),
        "refused_median_ms": med(flat("refused")),
        "generate_median_ms": med(flat("generate")),
        "generate_p90_ms": pct(flat("generate"), 0.9),
        "peak_mb": max(r["peak_kb"] for r in runs) / 1024,
    }


def unzip(zip_path, dest):
    with zipfile.ZipFile(zip_path) as z:
        for info in z.infolist():
            z.extract(info, dest)
            mode = info.external_attr >> 16
            if mode:
                os.chmod(dest / info.filename, mode & 0o7777)
    return sum(f.stat().st_size for f in dest.rglob("*") if f.is_file())


def make_zip(files, zip_path):
    """A deployable zip the way `sam build` / `cargo lambda` make one (deflate, modes kept)."""
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        for arcname, path in files.items():
            info = zipfile.ZipInfo(arcname, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = (os.stat(path).st_mode & 0o7777 | 0o100000) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, pathlib.Path(path).read_bytes())
    return zip_path


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--zip", default=str(DEFAULT_ZIP),
                    help="the imagegen Lambda zip (make -C deploy/sam zip ARCH=x86_64)")
    ap.add_argument("--rust-bootstrap", default=str(RUST_DIR / "target" / "release" / "bootstrap"),
                    help="the Rust hello-world bootstrap (cargo build --release in bench/lambda/rust_hello)")
    ap.add_argument("--bin", action="append", default=[], metavar="LABEL=PATH",
                    help="also measure an unpackaged imagegen binary (e.g. build/imagegen) as a column")
    ap.add_argument("--runs", type=int, default=20, help="cold starts per runtime")
    ap.add_argument("--warm", type=int, default=20, help="warm invocations per phase per cold start")
    ap.add_argument("--trace-runs", type=int, default=10,
                    help="extra cold starts of imagegen and Rust under strace, to show where init goes "
                         "(not in the main numbers; 0: none; skipped without strace)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "lambda" / "RESULTS.md"))
    ap.add_argument("--command", default="bench/lambda/run.sh",
                    help="the command line to print in the report")
    args = ap.parse_args()

    work = pathlib.Path(tempfile.mkdtemp(prefix="bench-lambda-"))
    moto, moto_url = start_moto(work)
    fake = FakeBedrock(KEYS["AWS_ACCESS_KEY_ID"], KEYS["AWS_SECRET_ACCESS_KEY"], "us-east-1").start()
    started = time.time()
    try:
        boto3.client("s3", endpoint_url=moto_url, region_name="us-east-1", **{
            "aws_access_key_id": KEYS["AWS_ACCESS_KEY_ID"],
            "aws_secret_access_key": KEYS["AWS_SECRET_ACCESS_KEY"]}).create_bucket(Bucket=BUCKET)

        # The packages, unzipped as Lambda unzips them into /var/task.
        zips = {IMAGEGEN: pathlib.Path(args.zip)}
        zips[RUST] = make_zip({"bootstrap": args.rust_bootstrap}, work / "rust-hello.zip")
        py_dir = ROOT / "bench" / "lambda" / "python_handler"
        zips[PYTHON] = make_zip({"app.py": py_dir / "app.py"}, work / "python-handler.zip")
        task, unzipped = {}, {}
        for name, z in zips.items():
            task[name] = work / ("task-" + name.split()[0].lower().strip("+"))
            task[name].mkdir()
            unzipped[name] = unzip(z, task[name])

        base = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        base.update(KEYS)
        base.update({"AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1",
                     "AWS_EC2_METADATA_DISABLED": "true",
                     "AWS_CONFIG_FILE": str(work / "none"), "AWS_SHARED_CREDENTIALS_FILE": str(work / "none"),
                     "AWS_ENDPOINT_URL_S3": moto_url, "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": fake.url,
                     "BUCKET_NAME": BUCKET, "KEY_PREFIX": PREFIX, "MODEL_ID": MODEL,
                     "AWS_LAMBDA_FUNCTION_TIMEOUT": "60", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1024",
                     "AWS_LAMBDA_FUNCTION_NAME": "imagegen-bench"})
        generate = event("POST", "generate", {"prompt": "a croissant on a plate", "width": 512, "height": 512})
        refused = event("POST", "generate", {})
        healthz = event("GET", "healthz")
        n = args.warm
        full = [("cheap", healthz, 200, n), ("refused", refused, 400, n), ("generate", generate, 200, n)]
        runtimes = {
            IMAGEGEN: ([str(task[IMAGEGEN] / "bootstrap")],
                       dict(base, IMAGEGEN_S3_PATH_STYLE="1", LAMBDA_TASK_ROOT=str(task[IMAGEGEN])),
                       task[IMAGEGEN], (healthz, 200), full),
            RUST: ([str(task[RUST] / "bootstrap")], dict(base, LAMBDA_TASK_ROOT=str(task[RUST])),
                   task[RUST], (healthz, 200), [("cheap", healthz, 200, n)]),
            PYTHON: ([str(VENV / "python"), "-m", "awslambdaric", "app.handler"],
                     dict(base, LAMBDA_TASK_ROOT=str(task[PYTHON]), PYTHONPATH=str(task[PYTHON])),
                     task[PYTHON], (refused, 400),
                     [("cheap", refused, 400, n), ("refused", refused, 400, n), ("generate", generate, 200, n)]),
        }
        for spec in args.bin:
            label, path = spec.split("=", 1)
            runtimes[f"imagegen ({label})"] = ([path], dict(base, IMAGEGEN_S3_PATH_STYLE="1",
                                                            LAMBDA_TASK_ROOT=str(work)),
                                               work, (healthz, 200), full)
        results = {name: [] for name in runtimes}
        for i in range(args.runs):
            for name, (command, env, cwd, first, phases) in runtimes.items():
                r = run_once(command, env, cwd, first, phases, work)
                results[name].append(r)
                print(f"run {i + 1}/{args.runs} {name}: init {r['init_ms']:.2f} ms, cold {r['cold_ms']:.1f} ms",
                      flush=True)
        summary = {name: summarize(runs) for name, runs in results.items()}

        # Where init goes: separate cold starts under strace (which slows each syscall it stops
        # at, so these add up to more than the emulator's init above).
        traced = {IMAGEGEN: [], RUST: []}
        s3_port = int(moto_url.rsplit(":", 1)[1])
        if args.trace_runs and shutil.which("strace"):
            for i in range(args.trace_runs):
                for name in traced:
                    command, env, cwd, first, _ = runtimes[name]
                    trace = work / f"strace-{i}.txt"
                    r = run_once(command, env, cwd, first, [], work, trace=trace)
                    traced[name].append(trace_init(trace, s3_port, r["runtime_api_port"]))
    finally:
        fake.stop()
        moto.terminate()
        moto.wait()
    elapsed = time.time() - started

    import hashlib
    zip_sha = hashlib.sha256(zips[IMAGEGEN].read_bytes()).hexdigest()
    git_head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True).stdout.strip() or "?"
    names = list(summary)
    s = summary
    ratio_init_rust = s[IMAGEGEN]["init_median_ms"] / s[RUST]["init_median_ms"]
    ratio_py_init = s[PYTHON]["init_median_ms"] / s[IMAGEGEN]["init_median_ms"]
    zip_mb = {n: zips[n].stat().st_size / 1e6 for n in zips}

    def ok(cond):
        return "**met**" if cond else "**NOT met**"

    lines = [
        "# Lambda: packaged imagegen bootstrap vs Rust `lambda_runtime` hello vs Python boto3 handler",
        "",
        f"Command: `{args.command}` (bench/lambda/bench.py --runs {args.runs} --warm {args.warm}; "
        f"took {elapsed / 60:.1f} min).",
        "",
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {platform.machine()}, "
        f"{os.cpu_count()} CPUs shared with other work (loopback only). One run, interleaved: "
        f"{args.runs} cold starts per runtime, each followed by {args.warm} warm invocations per phase, "
        f"under aws-lambda-rie, against moto S3 and the SigV4-checking fake Bedrock ({MODEL}, 512x512), "
        "with API Gateway REST events from `sam local generate-event`. Each runtime runs from its "
        "unzipped deployment zip (imagegen: `" + os.path.relpath(args.zip, ROOT) + "`, sha256 "
        + zip_sha[:12] + ", written " + time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(zips[IMAGEGEN].stat().st_mtime))
        + "; repository HEAD at bench time: " + git_head + ").",
        "",
        "## Goals",
        "",
        "| goal | measured | |",
        "|---|---|---|",
        f"| imagegen init within 1.5x of the Rust hello world | {ratio_init_rust:.2f}x "
        f"({s[IMAGEGEN]['init_median_ms']:.2f} vs {s[RUST]['init_median_ms']:.2f} ms, medians) "
        f"| {ok(ratio_init_rust <= GOALS['init_vs_rust'])} |",
        f"| imagegen init >= 20x faster than Python | {ratio_py_init:.1f}x "
        f"({s[PYTHON]['init_median_ms']:.1f} vs {s[IMAGEGEN]['init_median_ms']:.2f} ms) "
        f"| {ok(ratio_py_init >= GOALS['python_vs_init'])} |",
        f"| imagegen zip <= 5 MB | {zip_mb[IMAGEGEN]:.2f} MB ({zips[IMAGEGEN].stat().st_size} bytes) "
        f"| {ok(zip_mb[IMAGEGEN] <= GOALS['zip_mb'])} |",
        "",
        "## Numbers",
        "",
        "| | " + " | ".join(names) + f" | {IMAGEGEN.split()[0]} / Rust | Python / {IMAGEGEN.split()[0]} |",
        "|---" * (3 + len(names)) + "|",
    ]

    def row(label, key, fmt="{:.1f}", ratios=True):
        cells = []
        for n in names:
            v = s[n][key]
            cells.append("n/a" if v != v else fmt.format(v))
        a, r, p = s[IMAGEGEN][key], s[RUST][key], s[PYTHON][key]
        cells.append(f"{a / r:.2f}x" if ratios and a == a and r == r else "")
        cells.append(f"{p / a:.2f}x" if ratios and a == a and p == p else "")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")

    row("**init, median (ms)** (RIE INIT REPORT)", "init_median_ms", "{:.2f}")
    row("init, best (ms)", "init_min_ms", "{:.2f}")
    row("init, p90 (ms)", "init_p90_ms", "{:.2f}")
    row("cold start to first answer, median (ms): init + one cheap invocation", "cold_median_ms")
    row("first /generate after the cold start, median (ms)", "first_generate_median_ms")
    row("**warm overhead, median (ms)**: cheapest answer (imagegen /healthz, Rust hello, Python 400)",
        "cheap_median_ms", "{:.2f}")
    row("warm overhead, p90 (ms)", "cheap_p90_ms", "{:.2f}")
    row("warm refused request (400), median (ms)", "refused_median_ms", "{:.2f}")
    row("warm /generate, median (ms)", "generate_median_ms")
    row("warm /generate, p90 (ms)", "generate_p90_ms")
    row("peak RSS of the runtime process (MB)", "peak_mb")
    def mb(size):
        return f"{size / 1e6:.2f}" if size >= 1e5 else f"{size / 1e6:.4f}"

    zip_cells = [mb(zips[n].stat().st_size) if n in zips else "n/a" for n in names]
    lines.append("| deployment zip (MB) | " + " | ".join(zip_cells) +
                 f" | {zip_mb[IMAGEGEN] / zip_mb[RUST]:.2f}x | |")
    un_cells = [mb(unzipped[n]) if n in unzipped else "n/a" for n in names]
    lines.append("| unzipped (MB) | " + " | ".join(un_cells) +
                 f" | {unzipped[IMAGEGEN] / unzipped[RUST]:.2f}x | |")
    if traced[IMAGEGEN]:
        i_s3 = med(t[0] for t in traced[IMAGEGEN] if t[0] is not None)
        i_rapi = med(t[1] for t in traced[IMAGEGEN] if t[1] is not None)
        r_rapi = med(t[1] for t in traced[RUST] if t[1] is not None)
        lines += [
            "",
            f"### Where imagegen's init goes ({len(traced[IMAGEGEN])} more cold starts each under "
            "`strace -e trace=execve,connect`, medians; not in the numbers above)",
            "",
            "| from the bootstrap's execve to | imagegen (packaged zip) | Rust (lambda_runtime hello) |",
            "|---|---|---|",
            f"| its first connect to S3 (HeadBucket: the store's region check, made during init) "
            f"| {i_s3:.2f} ms | - |",
            f"| its first connect to the Runtime API (asks for the first event: end of init) "
            f"| {i_rapi:.2f} ms | {r_rapi:.2f} ms |",
            "",
            f"So about {i_rapi - i_s3:.1f} of imagegen's {i_rapi:.1f} ms (traced) is the HeadBucket "
            "round trip to moto plus what init builds after it; the Rust hello world makes no AWS "
            "call at all before asking for its first event, and neither does the Python handler "
            "(boto3 clients connect lazily, on the first call). Against real S3 that round trip is a "
            "TCP + TLS handshake and a request in-region, more than against loopback moto.",
        ]
    for n in names:
        stages = [st for r in results[n] for st in r["stages"]]
        if stages:
            m = {k: statistics.median(st[k] for st in stages) for k in stages[0]}
            lines.append("")
            lines.append(f"{n}, inside the pipeline, warm /generate (median ms): " +
                         ", ".join(f"{k.replace('_ms', '')} {v:.1f}" for k, v in m.items()))
    lines += [
        "",
        "## Method",
        "",
        "- **init** is the emulator's own `INIT REPORT(durationMs: ...)` (microsecond resolution), the "
        "same for all three: from the start of the runtime init phase (just before the emulator execs "
        "the bootstrap - it does so lazily, on the first invoke) to the bootstrap's first "
        "`GET /runtime/invocation/next`. It covers exec, dynamic loading (both the imagegen and the "
        "Rust bootstrap link only glibc dynamically - libc, libm, libpthread, libdl for imagegen, "
        "libc, libm, libgcc_s for Rust - everything else is static; Python loads the interpreter, awslambdaric and "
        "boto3) and the runtime's own init (imagegen: configuration, model registry, AWS clients; "
        "Python: two boto3 clients at module load, as AWS recommends and the seed does). "
        "**cold start to first answer** is client-side: the first invoke's round trip.",
        "- The Rust baseline is `bench/lambda/rust_hello` (lambda_runtime 1.5.0, aws_lambda_events "
        "1.2.1 `ApiGatewayProxyRequest` in, an `ApiGatewayProxyResponse` with a small JSON body out, "
        "tokio current-thread), `cargo build --release --locked` on this machine, stripped, zipped as "
        "`bootstrap`. It is the floor of a custom runtime: it does no work.",
        "- **Warm overhead** compares like with like: each runtime's cheapest answer. imagegen answers "
        "GET /healthz through its full API router (API Gateway event parsed, routed, JSON response "
        "built); Rust answers the same event with its hello; the Python handler has no health route, "
        "so its cheapest answer is the refused request (no prompt -> 400, before any boto3 call). "
        "Every warm round trip also includes the emulator's two Runtime API exchanges and the "
        "client's HTTP call, which is most of what is measured at this scale.",
        "- **/generate** is real work against local fakes: one InvokeModel (fake Bedrock), one "
        "PutObject (moto), one presign, for imagegen and Python; imagegen also decodes the PNG, "
        "re-encodes it with its provenance text chunks and validates the request against the "
        "model's limits. Both fakes are Python processes on the same 2 shared cores, and their own "
        "time dominates this row ('generate' above is the fake's answer time).",
        "- **Peak RSS** is VmHWM of the bootstrap process (the emulator's child), read after all the "
        "warm invocations of a cold start; the max over cold starts.",
        "- **Zip sizes**: imagegen's is the file `make -C deploy/sam zip ARCH=x86_64` wrote (a static, "
        "hermetic `bootstrap`; what `sam build` packages); Rust's and Python's are zipped here "
        "(deflate -9). Python's is the handler only: boto3 and the interpreter come with the managed "
        "runtime, so its zip size is not comparable and its init includes what the managed runtime "
        "would load from its own image.",
        "- The machine is shared with other work (builds, tests); interleaving spreads that load "
        "over all runtimes alike, but single cold starts can be slowed by it - compare medians.",
        "- Published figures on real Lambda (maxday/lambda-perf: Rust on provided.al2023 and "
        "python3.x hello worlds) are a different setting (Firecracker, cold page cache, a managed "
        "runtime image); this bench compares the three under one emulator on one machine.",
        "",
        "Raw init per cold start (ms): " +
        json.dumps({n: [round(r["init_ms"], 2) for r in rs] for n, rs in results.items()}),
        "",
        "Raw cold start to first answer (ms): " +
        json.dumps({n: [round(r["cold_ms"], 1) for r in rs] for n, rs in results.items()}),
    ]
    pathlib.Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
