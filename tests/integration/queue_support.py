"""Helpers shared by the queue, worker and jobs tests: worker processes, an SQS-compatible
server (moto, JSON protocol), and waiting."""
import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time

import pytest
import requests

from conftest import binary_path, free_port

ROOT = pathlib.Path(__file__).resolve().parents[2]
CREDS = {"AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "secret-example",
         "AWS_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}


def wait_until(predicate, timeout=60, interval=0.05, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class Worker:
    """`imagegen worker` as a child process with its log in a file."""

    def __init__(self, args, cwd, env=None, name="worker"):
        self.cwd = pathlib.Path(cwd)
        full_env = dict(os.environ)
        full_env.update(env or {})
        self.log_path = self.cwd / f"{name}-{time.time_ns()}.log"
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen([binary_path(), "worker", *args], stdout=self.log,
                                     stderr=subprocess.STDOUT, env=full_env, cwd=cwd)

    def lines(self):
        if not self.log.closed:
            self.log.flush()
        out = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
        return out

    def outcomes(self):
        return [l for l in self.lines() if l.get("msg") == "job"]

    def kill(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

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
def workers(tmp_path):
    """Factory: workers(*args, env=...) starts `imagegen worker`; all are stopped afterwards."""
    started = []

    def start(*args, env=None, name="worker"):
        w = Worker(list(args), tmp_path, env, name)
        started.append(w)
        return w

    yield start
    for w in started:
        w.stop()


class MotoServer:
    def __init__(self):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        exe = pathlib.Path(sys.executable).parent / "moto_server"
        self.proc = subprocess.Popen([str(exe), "-H", "127.0.0.1", "-p", str(self.port)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("moto_server did not start")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def sqs_endpoint(request):
    """An SQS-compatible endpoint: the shared `moto_server` fixture when the suite has one,
    else a moto_server of our own on a free loopback port."""
    try:
        yield request.getfixturevalue("moto_server")
        return
    except pytest.FixtureLookupError:
        pass
    server = MotoServer()
    try:
        yield server.url
    finally:
        server.stop()


def sqs_client(endpoint):
    import boto3
    return boto3.client("sqs", endpoint_url=endpoint, region_name=CREDS["AWS_REGION"],
                        aws_access_key_id=CREDS["AWS_ACCESS_KEY_ID"],
                        aws_secret_access_key=CREDS["AWS_SECRET_ACCESS_KEY"])


def pngs(store_dir):
    root = pathlib.Path(store_dir)
    return sorted(str(p.relative_to(root)) for p in root.rglob("*.png")
                  if not any(part.startswith(".") for part in p.relative_to(root).parts))


def job_record(store_dir, job_id):
    path = pathlib.Path(store_dir) / "jobs" / f"{job_id}.json"
    return json.loads(path.read_text()) if path.exists() else None


def metrics_text(port):
    return requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
