"""The S3 store through the real doors (CLI and HTTP) against a real S3-compatible server (moto),
with boto3 as the independent client that reads back what imagegen wrote."""
import json
import uuid

import boto3
import pytest
import requests

from conftest import run_cli

CREDS = {"AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "secret-example",
         "AWS_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}


@pytest.fixture
def bucket(moto_server):
    s3 = boto3.client("s3", endpoint_url=moto_server, region_name="us-east-1",
                      aws_access_key_id=CREDS["AWS_ACCESS_KEY_ID"],
                      aws_secret_access_key=CREDS["AWS_SECRET_ACCESS_KEY"])
    name = "imagegen-" + uuid.uuid4().hex[:12]
    s3.create_bucket(Bucket=name)
    return s3, name


@pytest.mark.parametrize("prefix", ["candidate-42", "owner with space", "équipe+1~%"])
def test_http_generate_into_s3_with_owner_prefix(serve, moto_server, bucket, prefix):
    s3, name = bucket
    env = dict(CREDS, AWS_ENDPOINT_URL_S3=moto_server, BUCKET_NAME=name, KEY_PREFIX=prefix)
    server = serve("--model", "test", env=env)
    r = requests.post(server.url + "/generate", json={"prompt": "A croissant", "seed": 3})
    assert r.status_code == 200, r.text
    result = r.json()
    key = f"{prefix}/{result['job_id']}.png"
    assert result["key"] == key
    assert result["s3_uri"] == f"s3://{name}/{key}"
    # The object, read back by an independent client, is our PNG with its metadata.
    obj = s3.get_object(Bucket=name, Key=key)
    body = obj["Body"].read()
    assert body[:8] == b"\x89PNG\r\n\x1a\n"
    assert obj["ContentType"] == "image/png"
    assert obj["Metadata"]["seed"] == "3"
    # The presigned URL works without credentials; the server URL serves the same bytes.
    assert requests.get(result["presigned_url"]).content == body
    assert requests.get(result["url"]).content == body
    # The gallery lists it with its prompt.
    listing = requests.get(server.url + "/images").json()["images"]
    assert [(i["key"], i["prompt"]) for i in listing] == [(key, "A croissant")]


def test_cli_generate_to_s3_url_with_prefix(tmp_path, moto_server, bucket):
    s3, name = bucket
    r = run_cli("generate", "a red circle", "--model", "test", "--seed", "9", "--job-id", "j-1",
                "--store", f"s3://{name}/images/v1", "--s3-endpoint", moto_server,
                env=CREDS, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    assert result["s3_uri"] == f"s3://{name}/images/v1/j-1.png"
    head = s3.head_object(Bucket=name, Key="images/v1/j-1.png")
    assert head["Metadata"]["prompt"] == "a red circle"
    # Re-running the same job finds the stored object instead of writing a second one.
    again = json.loads(run_cli("generate", "a red circle", "--model", "test", "--job-id", "j-1",
                               "--store", f"s3://{name}/images/v1", "--s3-endpoint", moto_server,
                               env=CREDS, cwd=tmp_path).stdout)
    assert again["reused"] is True and again["seed"] == 9
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=name)["Contents"]]
    assert [k for k in keys if not k.startswith("images/v1/index/")] == [
        "images/v1/ids/j-1", "images/v1/j-1.png"]  # the image and its job id's claim
    assert len([k for k in keys if k.startswith("images/v1/index/images/")]) == 1


def test_missing_bucket_is_a_clear_error(tmp_path, moto_server):
    r = run_cli("generate", "x", "--model", "test", "--store", "s3://no-such-bucket-xyz",
                "--s3-endpoint", moto_server, env=CREDS, cwd=tmp_path)
    assert r.returncode != 0
    assert r.stderr.count("\n") == 1
    assert "no-such-bucket-xyz" in r.stderr or "NoSuchBucket" in r.stderr
