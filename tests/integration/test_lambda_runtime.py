"""The real `imagegen` binary as a Lambda `bootstrap` under AWS's Runtime Interface Emulator.

Events come from AWS's own tooling (`sam local generate-event`), images go to a real
S3-compatible server (moto), and Bedrock is tests/integration/fake_bedrock.py, which checks each
request's SigV4 signature with botocore and answers with the documented response and error shapes.
Needs .tools/bin/aws-lambda-rie (scripts/setup.d/lambda.sh) and the .venv (scripts/setup.sh test).
"""
import base64
import functools
import hashlib
import json
import os
import pathlib
import subprocess
import time
import uuid

import pytest
import requests

from conftest import ROOT
from procs import Child, free_port
from fake_bedrock import FakeBedrock

RIE = ROOT / ".tools" / "bin" / "aws-lambda-rie"
SAM = ROOT / ".venv" / "bin" / "sam"
BUCKET = "imagegen-lambda-itest"
PREFIX = "candidate-42"
STABILITY = "stability.stable-image-core-v1:1"

pytestmark = pytest.mark.skipif(not RIE.exists(), reason="aws-lambda-rie missing: run scripts/setup.d/lambda.sh")


@functools.lru_cache(maxsize=None)
def generate_event(*args):
    """`sam local generate-event ARGS...` as a dict (cached: the CLI takes ~1 s to start)."""
    out = subprocess.run([str(SAM), "local", "generate-event", *args], capture_output=True, text=True,
                         check=True, env=dict(os.environ, SAM_CLI_TELEMETRY="0"), timeout=120)
    return json.loads(out.stdout)


def apigw_v1(method, path, body=None):
    args = ["apigateway", "aws-proxy", "--method", method, "--path", path.lstrip("/")]
    if body is not None:
        args += ["--body", body if isinstance(body, str) else json.dumps(body)]
    event = json.loads(json.dumps(generate_event(*args)))
    if body is None:
        event["body"], event["isBase64Encoded"] = None, False
    # The template's sample query (?foo=bar) is not part of our requests.
    event["queryStringParameters"] = event["multiValueQueryStringParameters"] = None
    return event


def apigw_v2(method, path, body=None):
    args = ["apigateway", "http-api-proxy", "--method", method, "--path", path.lstrip("/")]
    if body is not None:
        args += ["--body", body if isinstance(body, str) else json.dumps(body)]
    event = json.loads(json.dumps(generate_event(*args)))
    if body is None:
        event["body"], event["isBase64Encoded"] = None, False
    event["rawQueryString"], event["queryStringParameters"] = "", None
    return event


def sqs_batch(bodies):
    """One SQS event with a record per body, each from the tool's template with its own id.

    `sam local generate-event sqs receive-message --body` pastes the body into its JSON template
    unescaped, so a JSON body breaks it (JSONDecodeError); the record is generated with a
    plain-text body and the body (and its MD5) is set afterwards.
    """
    records = []
    template = generate_event("sqs", "receive-message", "--body", "placeholder")["Records"][0]
    for body in bodies:
        record = json.loads(json.dumps(template))
        record["messageId"] = str(uuid.uuid4())
        record["body"] = body
        record["md5OfBody"] = hashlib.md5(body.encode()).hexdigest()
        records.append(record)
    return {"Records": records}


class Rie(Child):
    """aws-lambda-rie running the bootstrap on loopback ports the OS chose."""

    def __init__(self, bootstrap, env, cwd, rie=RIE, prefix=()):
        """`prefix` runs the emulator through another command (e.g. chroot ROOT, with `rie` and
        `bootstrap` as paths inside the root)."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/2015-03-31/functions/function/invocations"
        super().__init__(
            [*prefix, rie, "--runtime-interface-emulator-address", f"127.0.0.1:{self.port}",
             "--runtime-api-address", f"127.0.0.1:{free_port()}", "--log-level", "info", bootstrap],
            pathlib.Path(cwd) / f"rie-{self.port}.log", env=env, cwd=cwd, inherit_env=False)
        # Any HTTP answer means it listens.
        self.wait_ready(lambda: requests.get(f"http://127.0.0.1:{self.port}/", timeout=1) is not None,
                        "aws-lambda-rie", timeout=60)

    def invoke(self, event, timeout=60):
        r = requests.post(self.url, data=json.dumps(event), timeout=timeout)
        assert r.status_code == 200, r.text
        return r.json()


@pytest.fixture(scope="module")
def s3(moto_server):
    import boto3
    client = boto3.client("s3", endpoint_url=moto_server, region_name="us-east-1",
                          aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="secret-example")
    try:
        client.create_bucket(Bucket=BUCKET)
    except client.exceptions.BucketAlreadyOwnedByYou:
        pass
    return client


@pytest.fixture
def bedrock():
    # Bedrock is called in us-west-2 (where Stability is served) while the bucket stays in
    # us-east-1; the ARN test calls us-east-1 itself.
    fake = FakeBedrock("AKIDEXAMPLE", "secret-example", ("us-west-2", "us-east-1"),
                       legacy={"amazon.titan-image-generator-v1"}).start()
    yield fake
    fake.stop()


@pytest.fixture
def lambda_fn(imagegen_bin, aws_env, moto_server, s3, bedrock, tmp_path):
    """Factory: lambda_fn(model, **env) -> a running Rie with the function's environment."""
    started = []

    def start(model="test", **extra):
        env = dict(aws_env)
        env.update({
            "AWS_LAMBDA_FUNCTION_NAME": "imagegen-itest",
            "AWS_LAMBDA_FUNCTION_TIMEOUT": "30",
            "BUCKET_NAME": BUCKET,
            "KEY_PREFIX": PREFIX,
            "AWS_ENDPOINT_URL_S3": moto_server,
            "IMAGEGEN_S3_PATH_STYLE": "1",
            "IMAGEGEN_MODEL": model,
            "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": bedrock.url,
            "IMAGEGEN_BEDROCK_REGION": "us-west-2",
            "IMAGEGEN_BEDROCK_RETRY_BASE_MS": "50",
            "LAMBDA_TASK_ROOT": str(tmp_path),
        })
        env.update({k: str(v) for k, v in extra.items()})
        rie = Rie(imagegen_bin, env, tmp_path)
        started.append(rie)
        return rie

    yield start
    for rie in started:
        rie.stop()


def body_of(response):
    raw = response["body"]
    return base64.b64decode(raw) if response.get("isBase64Encoded") else raw.encode()


# ---------------------------------------------------------------------------------------------
# API Gateway REST (payload 1.0) and HTTP API (2.0) against moto S3


def test_rest_api_generate_stores_in_s3_and_serves_the_png(lambda_fn, s3):
    fn = lambda_fn("test")
    out = fn.invoke(apigw_v1("POST", "/generate", {"prompt": "a red circle", "width": 64, "height": 64}))
    assert out["statusCode"] == 200, out
    assert out["isBase64Encoded"] is False
    result = json.loads(out["body"])
    image = result["images"][0]
    key = image["key"]
    assert key.startswith(PREFIX + "/") and key.endswith(".png")
    assert image["uri"] == f"s3://{BUCKET}/{key}"
    assert "X-Amz-Signature=" in image["presigned_url"]
    # base_url = the API's own URL including the stage, so the link works from outside.
    # (The tool's template carries two different Host values; multiValueHeaders wins, as it
    # does in API Gateway, which fills both from the same request.)
    assert image["url"] == f"https://0123456789.execute-api.us-east-1.amazonaws.com/prod/images/{key}"
    stored = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    assert stored.startswith(b"\x89PNG") and b"a red circle" in stored  # provenance chunk
    assert out["headers"]["X-Request-Id"] == "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"

    # GET /images/{key}: a binary body travels base64 with isBase64Encoded.
    got = fn.invoke(apigw_v1("GET", "/images/" + key))
    assert got["statusCode"] == 200
    assert got["isBase64Encoded"] is True
    assert got["headers"]["Content-Type"] == "image/png"
    assert body_of(got) == stored


def test_http_api_routes_share_the_handlers(lambda_fn):
    fn = lambda_fn("test")
    out = fn.invoke(apigw_v2("POST", "/generate", {"prompt": "two blue squares", "width": 64, "height": 64}))
    assert out["statusCode"] == 200, out
    assert "multiValueHeaders" not in out
    result = json.loads(out["body"])
    assert result["images"][0]["key"].startswith(PREFIX + "/")
    # $default stage: no stage in the URL.
    assert result["images"][0]["url"].startswith("https://") and "/$default/" not in result["images"][0]["url"]

    health = fn.invoke(apigw_v2("GET", "/healthz"))
    assert health["statusCode"] == 200 and json.loads(health["body"]) == {"status": "ok"}
    openai = fn.invoke(apigw_v2("POST", "/v1/images/generations",
                                {"prompt": "a green triangle", "size": "64x64", "response_format": "b64_json"}))
    assert openai["statusCode"] == 200, openai
    data = json.loads(openai["body"])["data"][0]
    assert base64.b64decode(data["b64_json"]).startswith(b"\x89PNG")
    listing = fn.invoke(apigw_v2("GET", "/images"))
    assert listing["statusCode"] == 200
    assert len(json.loads(listing["body"])["images"]) >= 1


def test_error_contract_is_the_http_services(lambda_fn):
    fn = lambda_fn("test")
    bad = fn.invoke(apigw_v1("POST", "/generate", {"prompt": "x", "negative_promt": "typo"}))
    assert bad["statusCode"] == 400
    err = json.loads(bad["body"])["error"]
    assert err["code"] == "invalid_request" and "negative_promt" in err["message"]
    missing = fn.invoke(apigw_v2("GET", "/nope"))
    assert missing["statusCode"] == 404
    assert json.loads(missing["body"])["error"]["code"] == "not_found"
    wrong = fn.invoke(apigw_v1("DELETE", "/generate"))
    assert wrong["statusCode"] == 405
    # EMF: errors by code, namespace imagegen, low-cardinality dimensions.
    emf = [l for l in fn.json_lines() if "_aws" in l and "Errors" in l]
    assert {l["Code"] for l in emf} >= {"invalid_request", "not_found", "method_not_allowed"}
    directive = emf[0]["_aws"]["CloudWatchMetrics"][0]
    assert directive["Namespace"] == "imagegen"
    assert directive["Dimensions"] == [["Model", "Code"], ["Model"]]


def test_bad_event_does_not_kill_the_process(lambda_fn):
    fn = lambda_fn("test")
    out = fn.invoke({"hello": "world"})
    assert out["errorType"] == "imagegen.UnsupportedEvent"
    broken = apigw_v1("POST", "/generate", {"prompt": "x"})
    broken["body"] = "%%% not base64 %%%"
    out = fn.invoke(broken)
    assert out["statusCode"] == 400
    ok = fn.invoke(apigw_v1("GET", "/healthz"))
    assert ok["statusCode"] == 200
    assert fn.logs().count("lambda runtime ready") == 1  # same process, initialised once


def test_direct_invoke_with_a_generation_request(lambda_fn):
    fn = lambda_fn("test")
    out = fn.invoke({"prompt": "a yellow star", "width": 64, "height": 64, "job_id": "direct-1"})
    assert out["images"][0]["key"] == f"{PREFIX}/direct-1.png"
    err = fn.invoke({"prompt": "", "width": 64, "height": 64})
    assert err["errorType"] == "invalid_request"


def test_deadline_answers_504_before_lambda_kills_the_function(lambda_fn):
    # 50 steps of 100 ms: 5 s of work for a 3 s function; the model checks its deadline per step.
    fn = lambda_fn("test?delay_ms=5000", AWS_LAMBDA_FUNCTION_TIMEOUT=3)
    fn.invoke(apigw_v1("GET", "/healthz"))  # init (lazy under the RIE) is not part of the timing
    event = apigw_v1("POST", "/generate", {"prompt": "slow", "width": 64, "height": 64, "steps": 50})
    start = time.time()
    out = fn.invoke(event)
    elapsed = time.time() - start
    assert out["statusCode"] == 504, out
    assert json.loads(out["body"])["error"]["code"] == "deadline_exceeded"
    assert elapsed < 3.0, elapsed
    # Still the same process, still serving.
    again = fn.invoke(apigw_v2("GET", "/healthz"))
    assert again["statusCode"] == 200
    assert fn.logs().count("lambda runtime ready") == 1
    assert "Task timed out" not in fn.logs()


def test_init_failure_is_reported_to_the_init_error_endpoint(lambda_fn):
    fn = lambda_fn("no-such-model")
    r = requests.post(fn.url, data=json.dumps(apigw_v1("GET", "/healthz")), timeout=60)
    assert "imagegen.InitError.invalid_request" in r.text + fn.logs()
    assert "no-such-model" in r.text + fn.logs()


def test_trace_id_and_emf_generation_metrics(lambda_fn):
    fn = lambda_fn("test")
    fn.invoke(apigw_v1("POST", "/generate", {"prompt": "metrics", "width": 64, "height": 64, "count": 2}))
    lines = [l for l in fn.json_lines() if "_aws" in l and "ImagesGenerated" in l]
    assert lines, fn.logs()
    assert lines[-1]["ImagesGenerated"] == 2 and lines[-1]["Model"] == "test"
    assert lines[-1]["GenerationLatency"] >= 0
    assert lines[-1]["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["Model"]]


# ---------------------------------------------------------------------------------------------
# SQS: partial batch failures


def test_sqs_batch_reports_exactly_the_failed_records(lambda_fn, s3, bedrock):
    fn = lambda_fn("bedrock:" + STABILITY)
    event = sqs_batch([
        json.dumps({"prompt": "a red circle", "width": 1024, "height": 1024}),   # good
        "a croissant on a plate",                                                 # good, plain text
        json.dumps({"prompt": "x", "bogus": 1}),                                  # invalid: DLQ
        json.dumps({"prompt": "[content-filter] nope"}),                          # rejected: DLQ
        json.dumps({"prompt": "[throttle-always] later"}),                        # retryable
        json.dumps({"prompt": "a square", "width": 123, "height": 45}),           # invalid size: DLQ
    ])
    ids = [r["messageId"] for r in event["Records"]]
    out = fn.invoke(event, timeout=120)
    failed = [f["itemIdentifier"] for f in out["batchItemFailures"]]
    assert failed == [ids[2], ids[3], ids[4], ids[5]], (out, fn.logs())
    # Good records are stored under keys named by their message ids (redelivery-safe).
    for message_id in ids[:2]:
        head = s3.head_object(Bucket=BUCKET, Key=f"{PREFIX}/{message_id}.png")
        assert head["ContentLength"] > 0
    logs = fn.json_lines()
    rejected = [l for l in logs if l.get("msg") in ("job rejected", "job failed")]
    by_id = {l["message_id"]: l for l in rejected}
    assert by_id[ids[2]]["disposition"] == "dead-letter" and "bogus" in by_id[ids[2]]["error"]
    assert by_id[ids[3]]["error_code"] == "content_rejected"
    assert by_id[ids[4]]["disposition"] == "retry" and by_id[ids[4]]["error_code"] == "rate_limited"
    # Job records, the same the worker writes: GET /jobs/{id} reads them whoever ran the job.
    record = lambda i: json.loads(
        s3.get_object(Bucket=BUCKET, Key=f"{PREFIX}/jobs/{ids[i]}.json")["Body"].read())
    for i in (0, 1):
        assert record(i)["status"] == "succeeded", record(i)
        assert record(i)["result"]["images"][0]["key"] == f"{PREFIX}/{ids[i]}.png"
    assert record(2)["status"] == "failed" and record(2)["error"]["code"] == "invalid_request"
    assert record(3)["status"] == "failed" and record(3)["error"]["code"] == "content_rejected"
    assert record(4)["status"] == "queued" and record(4)["error"]["code"] == "rate_limited"
    # A redelivered good message finds its image instead of generating a second one.
    calls = len(bedrock.calls)
    again = fn.invoke({"Records": [event["Records"][0]]})
    assert again == {"batchItemFailures": []}
    assert len(bedrock.calls) == calls
    # The last allowed receive of a retryable failure is final: recorded failed, dead-lettered.
    last = json.loads(json.dumps(event["Records"][4]))
    last["attributes"]["ApproximateReceiveCount"] = "5"
    out = fn.invoke({"Records": [last]}, timeout=120)
    assert [f["itemIdentifier"] for f in out["batchItemFailures"]] == [ids[4]]
    assert record(4)["status"] == "failed" and record(4)["attempts"] == 5
    final = [l for l in fn.json_lines() if l.get("message_id") == ids[4]][-1]
    assert final["disposition"] == "dead-letter", final


# ---------------------------------------------------------------------------------------------
# Bedrock through the function


def test_bedrock_stability_success_signed_with_double_encoded_model_id(lambda_fn, bedrock, s3):
    fn = lambda_fn("bedrock:" + STABILITY)
    out = fn.invoke(apigw_v2("POST", "/generate", {"prompt": "a lighthouse", "width": 1344, "height": 768,
                                                     "negative_prompt": "fog", "seed": 5}))
    assert out["statusCode"] == 200, (out, fn.logs())
    result = json.loads(out["body"])
    assert result["model"] == "bedrock:" + STABILITY
    call = bedrock.calls[-1]
    assert call["verified"] is True
    assert call["path"] == "/model/stability.stable-image-core-v1%3A1/invoke"
    assert call["body"] == {"prompt": "a lighthouse", "negative_prompt": "fog", "seed": 5,
                            "aspect_ratio": "16:9", "output_format": "png"}
    stored = s3.get_object(Bucket=BUCKET, Key=result["images"][0]["key"])["Body"].read()
    assert stored.startswith(b"\x89PNG") and b"a lighthouse" in stored


def test_bedrock_model_arn_travels_as_one_encoded_segment(lambda_fn, bedrock):
    """A model ARN holds '/', which must go as %2F inside the one path segment (and %252F in the
    canonical request); botocore's signer, in the fake, must agree with ours."""
    arn = "arn:aws:bedrock:us-east-1::foundation-model/amazon.nova-canvas-v1:0"
    fn = lambda_fn("bedrock:" + arn, IMAGEGEN_BEDROCK_REGION="us-east-1")
    out = fn.invoke(apigw_v1("POST", "/generate", {"prompt": "a kite", "width": 1024, "height": 1024}))
    assert out["statusCode"] == 200, (out, fn.logs())
    call = bedrock.calls[-1]
    assert call["verified"] is True and call["model"] == arn
    assert call["path"] == ("/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A%3Afoundation-model"
                            "%2Famazon.nova-canvas-v1%3A0/invoke")


@pytest.mark.parametrize("model,size,check", [
    ("amazon.titan-image-generator-v2:0", (1152, 768),
     lambda b: b["taskType"] == "TEXT_IMAGE" and b["imageGenerationConfig"]["width"] == 1152
     and b["imageGenerationConfig"]["cfgScale"] == 8.0),
    ("amazon.nova-canvas-v1:0", (1280, 720),
     lambda b: b["imageGenerationConfig"]["height"] == 720 and b["imageGenerationConfig"]["cfgScale"] == 6.5),
])
def test_bedrock_titan_and_nova_shapes(lambda_fn, bedrock, model, size, check):
    fn = lambda_fn("bedrock:" + model)
    out = fn.invoke(apigw_v1("POST", "/generate", {"prompt": "a boat", "width": size[0], "height": size[1]}))
    assert out["statusCode"] == 200, (out, fn.logs())
    assert bedrock.calls[-1]["verified"] and check(bedrock.calls[-1]["body"])
    bad = fn.invoke(apigw_v1("POST", "/generate", {"prompt": "a boat", "width": 1000, "height": 1000}))
    assert bad["statusCode"] == 400 and json.loads(bad["body"])["error"]["field"] == "size"


def error_of(out):
    return out["statusCode"], json.loads(out["body"])["error"]


def test_bedrock_errors_map_onto_the_taxonomy(lambda_fn, bedrock):
    fn = lambda_fn("bedrock:" + STABILITY)
    gen = lambda prompt: fn.invoke(apigw_v1("POST", "/generate", {"prompt": prompt}))

    before = len(bedrock.calls)
    out = gen("[throttle-once] a cat")
    assert out["statusCode"] == 200, out  # retried with backoff
    assert [c["status"] for c in bedrock.calls[before:]] == [429, 200]

    status, err = error_of(gen("[content-filter] something"))
    assert (status, err["code"]) == (400, "content_rejected")
    assert "blocked by our content filters" in err["message"]  # Bedrock's own words

    status, err = error_of(gen("[throttle-always] a dog"))
    assert (status, err["code"]) == (429, "rate_limited")

    status, err = error_of(gen("[access-denied] a fox"))
    assert (status, err["code"]) == (403, "forbidden")
    assert "bedrock:InvokeModel" in err["message"]
    assert "arn:aws:bedrock:us-west-2::foundation-model/" + STABILITY in err["message"]
    # The console's Model access page is retired: Stability needs the Marketplace subscription.
    assert "aws-marketplace:Subscribe" in err["message"]
    assert "AllowMarketplaceSubscription=true" in err["message"]
    assert "allow_marketplace_subscription=true" in err["message"]

    status, err = error_of(gen("[model-timeout] an owl"))
    assert (status, err["code"]) == (504, "upstream_timeout")

    status, err = error_of(gen("[output-blocked] a bat"))
    assert (status, err["code"]) == (400, "content_rejected")


def test_bedrock_legacy_model_names_the_alternatives(lambda_fn, bedrock):
    fn = lambda_fn("bedrock:amazon.titan-image-generator-v1")
    out = fn.invoke(apigw_v1("POST", "/generate", {"prompt": "a croissant"}))
    status, err = error_of(out)
    assert (status, err["code"]) == (404, "not_found")
    assert "Legacy" in err["message"] and STABILITY in err["message"]


def test_bedrock_bad_signature_is_forbidden(lambda_fn, bedrock):
    fn = lambda_fn("bedrock:" + STABILITY, AWS_SECRET_ACCESS_KEY="wrong-secret")
    status, err = error_of(fn.invoke(apigw_v1("POST", "/generate", {"prompt": "a cat"})))
    assert (status, err["code"]) == (403, "forbidden")
    assert bedrock.calls[-1]["verified"] is False


def test_bedrock_call_is_bounded_by_the_invocation_deadline(lambda_fn, bedrock):
    fn = lambda_fn("bedrock:" + STABILITY, AWS_LAMBDA_FUNCTION_TIMEOUT=3)
    fn.invoke(apigw_v1("GET", "/healthz"))
    event = apigw_v1("POST", "/generate", {"prompt": "[slow:8000] a snail"})
    start = time.time()
    status, err = error_of(fn.invoke(event))
    assert (status, err["code"]) == (504, "deadline_exceeded")
    assert time.time() - start < 3.0
    assert fn.invoke(apigw_v1("GET", "/healthz"))["statusCode"] == 200


def test_function_url_event(lambda_fn):
    """Function URLs send the 2.0 shape with stage $default on their own domain."""
    fn = lambda_fn("test")
    event = apigw_v2("POST", "/generate", {"prompt": "a kite", "width": 64, "height": 64})
    domain = "abcdefghijklmnopqrstuvwxyz012345.lambda-url.us-east-1.on.aws"
    event["requestContext"]["domainName"] = domain
    event["headers"]["host"] = domain
    event["routeKey"] = "$default"
    out = fn.invoke(event)
    assert out["statusCode"] == 200, out
    key = json.loads(out["body"])["images"][0]["key"]
    assert json.loads(out["body"])["images"][0]["url"] == f"https://{domain}/images/{key}"


# ---------------------------------------------------------------------------------------------
# Regions: the bucket and the model may live apart; a wrong region is refused before a paid call


def test_bedrock_region_that_does_not_serve_the_model_fails_init(lambda_fn, bedrock):
    """Stability is served in us-west-2 only: with AWS's own endpoint (no local override) a
    function in us-east-1 fails its init naming the setting, and no call is made."""
    fn = lambda_fn("bedrock:" + STABILITY, IMAGEGEN_BEDROCK_REGION="us-east-1",
                   AWS_ENDPOINT_URL_BEDROCK_RUNTIME="")
    r = requests.post(fn.url, data=json.dumps(apigw_v1("GET", "/healthz")), timeout=60)
    text = r.text + fn.logs()
    assert "imagegen.InitError.invalid_request" in text
    assert "IMAGEGEN_BEDROCK_REGION=us-west-2" in text
    assert bedrock.calls == []


def test_bad_region_setting_names_the_variable(lambda_fn):
    """With an S3-compatible endpoint any region name is allowed (such servers use "auto",
    "local"...), so a wrong one is found by the bucket's location check, which runs before the
    first generation (not at init: a cold start does not pay a HeadBucket) and names the
    setting."""
    fn = lambda_fn("test", IMAGEGEN_S3_REGION="us-west-2a")
    out = fn.invoke(apigw_v1("POST", "/generate", {"prompt": "a cat", "width": 64, "height": 64}))
    assert out["statusCode"] == 400, out
    error = json.loads(out["body"])["error"]
    assert error["code"] == "invalid_request" and "IMAGEGEN_S3_REGION" in error["message"], error
    # Without an endpoint override the name itself is refused when the function starts.
    fn = lambda_fn("test", IMAGEGEN_S3_REGION="us-west-2a", AWS_ENDPOINT_URL_S3="")
    r = requests.post(fn.url, data=json.dumps(apigw_v1("GET", "/healthz")), timeout=60)
    text = r.text + fn.logs()
    assert "imagegen.InitError.invalid_request" in text and "IMAGEGEN_S3_REGION" in text


def test_bucket_in_another_region_is_refused_before_any_generation(lambda_fn, s3, bedrock):
    """The bucket lives in eu-central-1 but the function is told (AWS_REGION) us-east-1: the
    check before the first generation sees S3's x-amz-bucket-region and names the region and the
    setting; nothing reaches Bedrock. With IMAGEGEN_S3_REGION set right, the same function generates."""
    bucket = "imagegen-itest-eu"
    try:
        s3.create_bucket(Bucket=bucket,
                         CreateBucketConfiguration={"LocationConstraint": "eu-central-1"})
    except s3.exceptions.BucketAlreadyOwnedByYou:
        pass
    fn = lambda_fn("bedrock:" + STABILITY, BUCKET_NAME=bucket)
    r = requests.post(fn.url, data=json.dumps(apigw_v1("POST", "/generate", {"prompt": "a cat"})),
                      timeout=60)
    text = r.text + fn.logs()
    assert "IMAGEGEN_S3_REGION=eu-central-1" in text, text
    assert bedrock.calls == []

    fn = lambda_fn("bedrock:" + STABILITY, BUCKET_NAME=bucket, IMAGEGEN_S3_REGION="eu-central-1")
    out = fn.invoke(apigw_v1("POST", "/generate", {"prompt": "a cat"}))
    assert out["statusCode"] == 200, (out, fn.logs())
    key = json.loads(out["body"])["images"][0]["key"]
    assert s3.head_object(Bucket=bucket, Key=key)["ContentLength"] > 0
    assert bedrock.calls[-1]["verified"]  # signed for us-west-2, the Bedrock region


def test_stability_count_runs_concurrently_and_records_the_models_seeds(lambda_fn, bedrock, s3):
    """count 3 of a model that makes one image per call: three 1.5 s calls answer in well
    under 4.5 s (API Gateway gives up at 29 s). Seed 0 asks Stability for random seeds; the
    seeds it reports are the ones recorded, in the result and in each stored image."""
    fn = lambda_fn("bedrock:" + STABILITY)
    fn.invoke(apigw_v1("GET", "/healthz"))
    start = time.time()
    out = fn.invoke(apigw_v1("POST", "/generate", {"prompt": "[slow:1500] three boats", "count": 3,
                                                     "seed": 0}))
    elapsed = time.time() - start
    assert out["statusCode"] == 200, (out, fn.logs())
    assert elapsed < 3.5, elapsed
    result = json.loads(out["body"])
    calls = [c for c in bedrock.calls if c["status"] == 200][-3:]
    assert sorted(c["body"]["seed"] for c in calls) == [0, 1, 2]
    for image in result["images"]:
        head = s3.head_object(Bucket=BUCKET, Key=image["key"])
        assert head["Metadata"]["seed"] == str(image["seed"])
    # The first call had seed 0 (random): its recorded seed is the model's, not 0.
    assert result["seed"] == result["images"][0]["seed"] != 0
    assert [i["seed"] for i in result["images"]][1:] == [1, 2]


def test_readyz_probes_inside_the_key_prefix(lambda_fn, s3):
    """A role scoped to BUCKET/PREFIX/* cannot touch the bucket root, so the readiness probe
    stays under the prefix: it writes (once) and reads PREFIX/readyz.probe, nothing else."""
    fn = lambda_fn("test")
    for _ in range(2):
        out = fn.invoke(apigw_v1("GET", "/readyz"))
        assert out["statusCode"] == 200, (out, fn.logs())
        assert json.loads(out["body"])["status"] == "ready"
    assert s3.get_object(Bucket=BUCKET, Key=f"{PREFIX}/readyz.probe")["Body"].read() == b"ready\n"
    root = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])
            if "/" not in o["Key"]]
    assert root == [], root


def test_page_behind_a_rest_stage_uses_stage_relative_urls(lambda_fn):
    """API Gateway REST serves the page at /prod/ (event path "/", stage "prod"): every URL the
    page calls must be relative, or the browser would ask the host's root and miss the stage."""
    fn = lambda_fn("test")
    event = apigw_v1("GET", "/")
    assert event["requestContext"]["stage"] == "prod"
    out = fn.invoke(event)
    assert out["statusCode"] == 200, out
    # The Api's security headers reach the Lambda door too (issue 11).
    headers = {k.lower(): v for k, v in out["headers"].items()}
    assert headers["x-content-type-options"] == "nosniff" and headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    html = body_of(out).decode()
    assert 'api("generate")' in html and 'api("images' in html
    for absolute in ('fetch("/', "fetch('/", 'src="/', 'href="/', '"/generate', '"/images'):
        assert absolute not in html, absolute


def test_readyz_and_generate_with_a_role_scoped_to_the_prefix(lambda_fn, moto_server_iam):
    """The SAM stack's policy: s3:GetObject + s3:PutObject on BUCKET/PREFIX/* and nothing on the
    bucket itself. moto (with IAM enforcement) refuses the bucket root to such a user, so a
    probe there answered 503 for ever; inside the prefix /readyz is 200 and generation works
    (the region check's HeadBucket is denied, which only means S3 answered from this region)."""
    bucket = "imagegen-itest-scoped"
    s3 = moto_server_iam.boto3("s3")
    try:
        s3.create_bucket(Bucket=bucket)
    except s3.exceptions.BucketAlreadyOwnedByYou:
        pass
    iam = moto_server_iam.boto3("iam")
    user = "imagegen-scoped-" + uuid.uuid4().hex[:6]
    iam.create_user(UserName=user)
    key = iam.create_access_key(UserName=user)["AccessKey"]
    iam.put_user_policy(UserName=user, PolicyName="prefix-only", PolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject"],
                       "Resource": f"arn:aws:s3:::{bucket}/{PREFIX}/*"}]}))
    fn = lambda_fn("test", BUCKET_NAME=bucket, AWS_ENDPOINT_URL_S3=moto_server_iam.endpoint,
                   AWS_ACCESS_KEY_ID=key["AccessKeyId"], AWS_SECRET_ACCESS_KEY=key["SecretAccessKey"])
    out = fn.invoke(apigw_v1("GET", "/readyz"))
    assert out["statusCode"] == 200, (out, fn.logs())
    gen = fn.invoke(apigw_v1("POST", "/generate", {"prompt": "a red circle", "width": 64, "height": 64}))
    assert gen["statusCode"] == 200, (gen, fn.logs())
    assert json.loads(gen["body"])["images"][0]["key"].startswith(PREFIX + "/")
