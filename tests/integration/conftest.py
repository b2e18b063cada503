"""Shared fixtures: the imagegen binary, free ports, and an `imagegen serve` process."""
import json
import os
import pathlib
import signal
import socket
import subprocess
import time

import pytest
import requests

ROOT = pathlib.Path(__file__).resolve().parents[2]
_here = pathlib.Path(__file__).parent
pytest_plugins = [p for p in ("aws_peers",) if (_here / f"{p}.py").exists()]


def binary_path():
    return os.environ.get("IMAGEGEN_BIN", str(ROOT / "build" / "imagegen"))


@pytest.fixture(scope="session")
def imagegen_bin():
    path = binary_path()
    assert os.access(path, os.X_OK), f"{path} is not built; run scripts/test.sh"
    return path


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def port():
    return free_port()


def run_cli(*args, env=None, cwd=None, timeout=120, input=None):
    """Runs build/imagegen with args; returns CompletedProcess (text mode)."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run([binary_path(), *args], capture_output=True, text=True, env=full_env,
                          cwd=cwd, timeout=timeout, input=input)


class Server:
    """`imagegen serve` on a free loopback port, stopped with SIGTERM at the end."""

    def __init__(self, args, env, cwd):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        full_env = dict(os.environ)
        full_env.update(env or {})
        self.log_path = pathlib.Path(cwd) / f"serve-{self.port}.log"
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [binary_path(), "serve", "--host", "127.0.0.1", "--port", str(self.port), *args],
            stdout=self.log, stderr=subprocess.STDOUT, env=full_env, cwd=cwd)
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"serve exited {self.proc.returncode}: {self.log_path.read_text()}")
            try:
                if requests.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except requests.ConnectionError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("serve did not become healthy: " + self.log_path.read_text())

    def logs(self):
        self.log.flush()
        return self.log_path.read_text()

    def log_lines(self):
        lines = []
        for line in self.logs().splitlines():
            try:
                lines.append(json.loads(line))
            except ValueError:
                pass
        return lines

    def stop(self, timeout=30):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode


@pytest.fixture
def serve(tmp_path, imagegen_bin):
    """Factory: serve(*args, env={...}) starts a server in tmp_path; all are stopped after."""
    servers = []

    def start(*args, env=None):
        server = Server(list(args), env, tmp_path)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
