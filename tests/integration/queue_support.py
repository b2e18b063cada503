"""Helpers shared by the queue, worker and jobs tests: worker processes, the SQS-compatible
endpoint (moto, JSON protocol), and reading what the workers wrote."""
import json
import pathlib
import time

import pytest
import requests

from conftest import binary_path
from procs import Child, wait_until  # noqa: F401 (wait_until: re-exported for tests)

ROOT = pathlib.Path(__file__).resolve().parents[2]
CREDS = {"AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "secret-example",
         "AWS_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}


class Worker(Child):
    """`imagegen worker` as a child process with its log in a file."""

    def __init__(self, args, cwd, env=None, name="worker"):
        self.cwd = pathlib.Path(cwd)
        super().__init__([binary_path(), "worker", *args],
                         self.cwd / f"{name}-{time.time_ns()}.log", env=env, cwd=cwd)

    def lines(self):
        return self.json_lines()

    def outcomes(self):
        return [l for l in self.lines() if l.get("msg") == "job"]


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


@pytest.fixture
def sqs_endpoint(moto_server):
    """An SQS-compatible endpoint: the session's moto_server (tests/integration/aws_peers.py)."""
    return moto_server


def sqs_client(endpoint):
    import boto3
    return boto3.client("sqs", endpoint_url=endpoint, region_name=CREDS["AWS_REGION"],
                        aws_access_key_id=CREDS["AWS_ACCESS_KEY_ID"],
                        aws_secret_access_key=CREDS["AWS_SECRET_ACCESS_KEY"])


def pngs(store_dir):
    """The images in a file store (not its hidden files, nor the listing index's entries)."""
    root = pathlib.Path(store_dir)
    return sorted(str(p.relative_to(root)) for p in root.rglob("*.png")
                  if not any(part.startswith(".") for part in p.relative_to(root).parts)
                  and p.relative_to(root).parts[0] != "index")


def job_record(store_dir, job_id):
    path = pathlib.Path(store_dir) / "jobs" / f"{job_id}.json"
    return json.loads(path.read_text()) if path.exists() else None


def metrics_text(port):
    return requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
