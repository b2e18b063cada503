"""Real AWS-compatible peers for the integration tests (a pytest plugin: conftest.py lists it in
`pytest_plugins`). Everything listens on loopback ports chosen by the OS and is stopped at the end.

Fixtures
  moto_server       session: `moto_server` (S3, SQS, ... in one process); yields its endpoint URL.
                    It does not check signatures: any keys work.
  moto_server_iam   session: a second moto with IAM authentication switched on after setup, so every
                    request must carry a valid SigV4 signature made with the IAM user's key (moto
                    recomputes it server-side with botocore). Yields an AwsPeer.
  aws_env           a clean environment for child processes: dummy keys, region, IMDS off, and no
                    shared config files from the developer's home.
Helpers
  itest_binary(name)          path of a built `<dir>_itest` GoogleTest executable (fails if absent)
  run_itest(name, env, gtest_filter)  runs it; returns CompletedProcess
"""
import dataclasses
import json
import os
import pathlib
import subprocess

import pytest
import requests

from procs import Child, free_port

ROOT = pathlib.Path(__file__).resolve().parents[2]
MOTO_SERVER = ROOT / ".venv" / "bin" / "moto_server"
REGION = "us-east-1"
DUMMY_KEYS = {"AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "secret-example"}


@dataclasses.dataclass
class AwsPeer:
    endpoint: str
    access_key: str
    secret_key: str

    def env(self, base):
        """`base` with this peer's keys."""
        return dict(base, AWS_ACCESS_KEY_ID=self.access_key, AWS_SECRET_ACCESS_KEY=self.secret_key)

    def boto3(self, service):
        import boto3
        return boto3.client(service, endpoint_url=self.endpoint, region_name=REGION,
                            aws_access_key_id=self.access_key, aws_secret_access_key=self.secret_key)


class _Moto(Child):
    def __init__(self, log_dir):
        assert MOTO_SERVER.exists(), f"{MOTO_SERVER} missing: run scripts/setup.sh test"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        super().__init__([MOTO_SERVER, "-H", "127.0.0.1", "-p", str(self.port)],
                         pathlib.Path(log_dir) / f"moto-{self.port}.log",
                         env=dict(DUMMY_KEYS, AWS_DEFAULT_REGION=REGION))
        self.wait_ready(lambda: requests.get(self.url + "/moto-api/", timeout=1).status_code < 500,
                        "moto_server")


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory):
    server = _Moto(tmp_path_factory.mktemp("moto"))
    yield server.url
    server.stop()


@pytest.fixture(scope="session")
def moto_server_iam(tmp_path_factory):
    server = _Moto(tmp_path_factory.mktemp("moto-iam"))
    try:
        setup = AwsPeer(server.url, DUMMY_KEYS["AWS_ACCESS_KEY_ID"], DUMMY_KEYS["AWS_SECRET_ACCESS_KEY"])
        iam = setup.boto3("iam")
        iam.create_user(UserName="imagegen-itest")
        key = iam.create_access_key(UserName="imagegen-itest")["AccessKey"]
        iam.put_user_policy(UserName="imagegen-itest", PolicyName="all", PolicyDocument=json.dumps(
            {"Version": "2012-10-17",
             "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
        # From here on every request is authenticated (moto counts from 0 after this call).
        r = requests.post(server.url + "/moto-api/reset-auth", data=b"0", timeout=10)
        r.raise_for_status()
        yield AwsPeer(server.url, key["AccessKeyId"], key["SecretAccessKey"])
    finally:
        server.stop()


@pytest.fixture
def aws_env(tmp_path):
    env = dict(os.environ)
    for name in list(env):
        if name.startswith("AWS_"):
            del env[name]
    env.update(DUMMY_KEYS)
    env.update({
        "AWS_REGION": REGION,
        "AWS_EC2_METADATA_DISABLED": "true",
        # Never read the developer's ~/.aws.
        "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"),
    })
    return env


def itest_binary(name):
    """The `<name>` executable from $IMAGEGEN_ITEST_DIR, else beside $IMAGEGEN_BIN, else build/."""
    candidates = []
    if os.environ.get("IMAGEGEN_ITEST_DIR"):
        candidates.append(pathlib.Path(os.environ["IMAGEGEN_ITEST_DIR"]))
    if os.environ.get("IMAGEGEN_BIN"):
        candidates.append(pathlib.Path(os.environ["IMAGEGEN_BIN"]).parent)
    candidates.append(ROOT / "build")
    for directory in candidates:
        path = directory / name
        if os.access(path, os.X_OK):
            return str(path)
    pytest.fail(f"{name} is not built (looked in {', '.join(map(str, candidates))}); "
                f"run scripts/build.sh or set IMAGEGEN_ITEST_DIR")


def run_itest(name, env, gtest_filter=None, timeout=300):
    args = [itest_binary(name), "--gtest_color=no"]
    if gtest_filter:
        args.append(f"--gtest_filter={gtest_filter}")
    return subprocess.run(args, capture_output=True, text=True, env=env, timeout=timeout)


def assert_itest_passed(proc):
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-8000:]
    assert "[  PASSED  ]" in output, output[-8000:]
    return output
