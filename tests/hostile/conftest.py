"""Fixtures of the hostile-client suite: real `imagegen serve` processes, a per-test deadline
(a hang fails the test instead of blocking the suite), RSS readings of the server, and the
machine-readable report (one entry per test: outcome and measured figures)."""
import datetime
import json
import os
import pathlib
import resource
import signal
import sys
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "integration"))
sys.path.insert(0, str(pathlib.Path(__file__).parent))

import rawhttp  # noqa: E402
from measure import proc_status_mb  # noqa: E402
from procs import Child, free_port  # noqa: E402

MAX_BODY = 65536
DEFAULT_DEADLINE_S = 30
_results = {}  # nodeid -> report entry


def binary_path():
    return os.environ.get("IMAGEGEN_BIN", str(ROOT / "build" / "imagegen"))


def _raise_nofile_limit():
    """Many-connection tests need thousands of sockets: soft limit up to the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def pytest_configure(config):
    config.addinivalue_line("markers", "deadline(seconds): fail the test after this long")
    _raise_nofile_limit()


# --- servers -------------------------------------------------------------------------------


class Server(Child):
    """One `imagegen serve` on a free loopback port with its store and queue in `workdir`."""

    def __init__(self, workdir, *args, model="test", max_body=MAX_BODY, env=None):
        workdir = pathlib.Path(workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.store_dir = workdir / "images"
        self.queue_url = f"sqlite://{workdir}/queue.db"
        self.model = model
        argv = [binary_path(), "serve", "--host", "127.0.0.1", "--port", str(self.port),
                "--model", model, "--store", f"file://{self.store_dir}",
                "--queue", self.queue_url, "--max-body", str(max_body), *args]
        super().__init__(argv, workdir / f"serve-{self.port}.log", env=env, cwd=workdir)
        self.wait_ready(self._healthy, "imagegen serve", timeout=30)

    def _healthy(self):
        response = rawhttp.request(self.port, "GET", "/healthz", wait=1.0)
        return response is not None and response.status == 200

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc.poll() is None

    def rss_mb(self):
        return proc_status_mb(self.pid, "VmRSS")

    def peak_rss_mb(self):
        return proc_status_mb(self.pid, "VmHWM")

    def stop(self, timeout=10):
        return super().stop(timeout=timeout)


@pytest.fixture(scope="session")
def imagegen_bin():
    path = binary_path()
    assert os.access(path, os.X_OK), f"{path} is not built; run scripts/test.sh hostile"
    return path


@pytest.fixture
def start_server(tmp_path, imagegen_bin):
    """Factory: start_server(*extra_args, model=..., max_body=..., env=...) -> Server."""
    servers = []

    def start(*args, **kwargs):
        server = Server(tmp_path / f"srv{len(servers)}", *args, **kwargs)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory, imagegen_bin):
    """One server for a module's quick cases; tests check it is still alive afterwards."""
    server = Server(tmp_path_factory.mktemp("shared"))
    yield server
    server.stop()


# --- deadlines -----------------------------------------------------------------------------


class DeadlineExceeded(Exception):
    pass


@pytest.fixture(autouse=True)
def _deadline(request):
    """SIGALRM after the test's deadline (marker `deadline`, else DEFAULT_DEADLINE_S)."""
    marker = request.node.get_closest_marker("deadline")
    seconds = marker.args[0] if marker else DEFAULT_DEADLINE_S

    def on_alarm(signum, frame):
        raise DeadlineExceeded(f"test ran past its {seconds} s deadline")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    yield
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, previous)


# --- the report ----------------------------------------------------------------------------


@pytest.fixture
def figures(request):
    """A dict the test fills with what it measured; it goes into the report even on failure."""
    entry = _results.setdefault(request.node.nodeid, {"figures": {}})
    return entry["figures"]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    entry = _results.setdefault(item.nodeid, {"figures": {}})
    if report.when == "call" or (report.when == "setup" and not report.passed):
        entry["outcome"] = "skipped" if report.skipped else ("passed" if report.passed
                                                             else "failed")
        entry["duration_s"] = round(report.duration, 3)
        if report.failed:
            message = str(call.excinfo.value) if call.excinfo else report.longreprtext
            entry["failure"] = message.strip().splitlines()[0][:400] if message.strip() else ""
    elif report.when == "teardown" and report.failed and entry.get("outcome") == "passed":
        entry["outcome"] = "failed"
        entry["failure"] = "teardown: " + report.longreprtext.strip().splitlines()[-1][:400]


def pytest_sessionfinish(session, exitstatus):
    path = pathlib.Path(os.environ.get("HOSTILE_REPORT", ROOT / "artifacts/hostile/report.json"))
    path.parent.mkdir(parents=True, exist_ok=True)
    tests = [{"test": nodeid, **entry} for nodeid, entry in _results.items()]
    counts = {}
    for test in tests:
        counts[test.get("outcome", "unknown")] = counts.get(test.get("outcome", "unknown"), 0) + 1
    report = {
        "binary": binary_path(),
        "finished": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "nofile_limit": list(resource.getrlimit(resource.RLIMIT_NOFILE)),
        "counts": counts,
        "tests": tests,
    }
    path.write_text(json.dumps(report, indent=1) + "\n")


def elapsed_since(start):
    return round(time.monotonic() - start, 3)
