"""Shared fixtures: the imagegen binary, free ports, and an `imagegen serve` process."""
import os
import pathlib
import subprocess

import pytest
import requests

from procs import Child, free_port  # noqa: F401 (free_port: re-exported for tests)

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


@pytest.fixture
def port():
    return free_port()


def run_cli(*args, env=None, cwd=None, timeout=120, input=None):
    """Runs build/imagegen with args; returns CompletedProcess (text mode)."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run([binary_path(), *args], capture_output=True, text=True, env=full_env,
                          cwd=cwd, timeout=timeout, input=input)


class Server(Child):
    """`imagegen serve` on a free loopback port, stopped with SIGTERM at the end."""

    def __init__(self, args, env, cwd):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        super().__init__(
            [binary_path(), "serve", "--host", "127.0.0.1", "--port", str(self.port), *args],
            pathlib.Path(cwd) / f"serve-{self.port}.log", env=env, cwd=cwd)
        self.wait_ready(lambda: requests.get(self.url + "/healthz", timeout=1).status_code == 200,
                        "imagegen serve")


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
