"""The credentials chain's role sources through the real binary against moto: `imagegen generate`
into S3 with no keys in the environment, only a web identity token (EKS IRSA), a profile with
role_arn + source_profile, or a profile with credential_process. moto's own record of the roles it
handed out (/moto-api/data.json) shows that STS was asked, with the session name we configured."""
import json
import uuid

import boto3
import pytest
import requests

from conftest import run_cli

ROLE_ARN = "arn:aws:iam::123456789012:role/imagegen-irsa"


@pytest.fixture
def bucket(moto_server):
    s3 = boto3.client("s3", endpoint_url=moto_server, region_name="us-east-1",
                      aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="secret-example")
    name = "imagegen-creds-" + uuid.uuid4().hex[:10]
    s3.create_bucket(Bucket=name)
    return s3, name


@pytest.fixture
def keyless_env(tmp_path, moto_server):
    """No keys anywhere: empty AWS_ACCESS_KEY_ID (overrides the runner's), no IMDS, no ~/.aws."""
    return {
        "AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "AWS_SESSION_TOKEN": "",
        "AWS_PROFILE": "", "AWS_WEB_IDENTITY_TOKEN_FILE": "", "AWS_ROLE_ARN": "",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI": "", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "",
        "AWS_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": str(tmp_path / "no-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-credentials"),
        "HOME": str(tmp_path),
        "AWS_ENDPOINT_URL": moto_server,  # STS and S3
    }


def _generate(name, env, cwd, job):
    return run_cli("generate", "a blue square", "--model", "test", "--seed", "1", "--job-id", job,
                   "--store", f"s3://{name}/creds", env=env, cwd=cwd)


def _assumed_sessions(moto_server):
    data = requests.get(moto_server + "/moto-api/data.json", timeout=10).json()
    return {(r["role_arn"], r["session_name"]) for r in data.get("sts", {}).get("AssumedRole", [])}


def test_without_any_source_the_binary_says_what_it_tried(tmp_path, bucket, keyless_env):
    _, name = bucket
    r = _generate(name, keyless_env, tmp_path, "none")
    assert r.returncode != 0
    assert "no AWS credentials found" in r.stderr
    assert "web identity" in r.stderr


def test_web_identity_from_environment(tmp_path, moto_server, bucket, keyless_env):
    s3, name = bucket
    token = tmp_path / "token"
    token.write_text("eyJhbGciOiJSUzI1NiJ9.payload.signature\n")
    session = "itest-" + uuid.uuid4().hex[:8]
    env = dict(keyless_env, AWS_WEB_IDENTITY_TOKEN_FILE=str(token), AWS_ROLE_ARN=ROLE_ARN,
               AWS_ROLE_SESSION_NAME=session)
    r = _generate(name, env, tmp_path, "irsa")
    assert r.returncode == 0, r.stderr
    assert s3.head_object(Bucket=name, Key="creds/irsa.png")["ContentType"] == "image/png"
    assert (ROLE_ARN, session) in _assumed_sessions(moto_server)

    # A token file that is gone is an error naming it, not a fall-through to other sources.
    token.unlink()
    r = _generate(name, env, tmp_path, "irsa-gone")
    assert r.returncode != 0
    assert str(token) in r.stderr


def test_profile_role_with_source_profile(tmp_path, moto_server, bucket, keyless_env):
    s3, name = bucket
    session = "itest-" + uuid.uuid4().hex[:8]
    role = "arn:aws:iam::123456789012:role/imagegen-deployer"
    (tmp_path / "config").write_text(
        f"[profile deploy]\nrole_arn = {role}\nsource_profile = base\n"
        f"role_session_name = {session}\n")
    (tmp_path / "credentials").write_text(
        "[base]\naws_access_key_id = AKIDEXAMPLE\naws_secret_access_key = secret-example\n")
    env = dict(keyless_env, AWS_PROFILE="deploy", AWS_CONFIG_FILE=str(tmp_path / "config"),
               AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "credentials"))
    r = _generate(name, env, tmp_path, "role")
    assert r.returncode == 0, r.stderr
    s3.head_object(Bucket=name, Key="creds/role.png")
    assert (role, session) in _assumed_sessions(moto_server)


def test_profile_credential_process(tmp_path, bucket, keyless_env):
    s3, name = bucket
    helper = tmp_path / "creds helper.sh"  # a space: the command line is a shell command line
    helper.write_text("#!/bin/sh\n" + "echo '" + json.dumps(
        {"Version": 1, "AccessKeyId": "AKIDPROCESS", "SecretAccessKey": "process-secret",
         "SessionToken": "tok", "Expiration": "2099-01-01T00:00:00Z"}) + "'\n")
    helper.chmod(0o755)
    failing = tmp_path / "failing.sh"
    failing.write_text("#!/bin/sh\necho 'helper: not logged in' >&2\nexit 3\n")
    failing.chmod(0o755)
    (tmp_path / "config").write_text(
        f"[profile tool]\ncredential_process = '{helper}' --account 1\n"
        f"[profile broken]\ncredential_process = {failing}\n")
    env = dict(keyless_env, AWS_PROFILE="tool", AWS_CONFIG_FILE=str(tmp_path / "config"))
    r = _generate(name, env, tmp_path, "process")
    assert r.returncode == 0, r.stderr
    s3.head_object(Bucket=name, Key="creds/process.png")

    r = _generate(name, dict(env, AWS_PROFILE="broken"), tmp_path, "process-broken")
    assert r.returncode != 0
    assert "credential_process exited with status 3: helper: not logged in" in r.stderr
