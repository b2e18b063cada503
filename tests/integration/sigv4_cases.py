"""Randomised SigV4 cases signed by botocore, the independent reference implementation.

`generate(n, seed)` returns a list of dicts (JSON-serialisable) that src/aws/sigv4_crosscheck_itest.cc
re-signs with imagegen's signer and compares byte for byte."""
import base64
import datetime
import random
from unittest import mock
from urllib.parse import parse_qsl, quote, urlsplit

import botocore.auth
from botocore.auth import S3SigV4Auth, S3SigV4QueryAuth, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

SEGMENT_CHARS = list("abcXYZ019-_.~ +%=&@!$'()*,;:") + ["ü", "中", "é", "😀", "\u00a0"]
VALUE_CHARS = SEGMENT_CHARS + ["/", "?", "#", "[", "]"]
HOSTS = ["examplebucket.s3.us-east-1.amazonaws.com", "s3.eu-west-1.amazonaws.com",
         "sqs.eu-central-1.amazonaws.com", "bedrock-runtime.us-west-2.amazonaws.com",
         "127.0.0.1:9000", "localhost:4566", "Mixed.Case.Host:443", "host.example:80"]
SERVICES = ["s3", "sqs", "bedrock"]
REGIONS = ["us-east-1", "eu-west-1", "ap-southeast-2", "cn-north-1"]
METHODS = ["GET", "PUT", "POST", "DELETE", "HEAD"]


class _S3Config:
    def __init__(self, sign_payload):
        self.s3 = {"payload_signing_enabled": sign_payload}


def _text(rng, chars, lo, hi):
    return "".join(rng.choice(chars) for _ in range(rng.randint(lo, hi)))


def _path(rng, service):
    segments = []
    for _ in range(rng.randint(0, 4)):
        r = rng.random()
        if service != "s3" and r < 0.1:
            segments.append(rng.choice([".", "..", ""]))  # exercises normalisation
        else:
            segments.append(_text(rng, SEGMENT_CHARS, 1, 8))
    path = "/" + "/".join(segments)
    if rng.random() < 0.2:
        path += "/"
    return path


def _headers(rng):
    headers = {}
    for _ in range(rng.randint(0, 4)):
        name = rng.choice(["X-Amz-Meta-", "x-custom-", "Content-Type", "X-Amz-Target", "Range",
                           "User-Agent", "Content-MD5"])
        if name.endswith("-"):
            name += _text(rng, list("abcdefXYZ0123"), 1, 6)
        # Whitespace runs (spaces and tabs only) exercise Trimall; values stay ASCII as HTTP wants.
        value = _text(rng, list("abc XYZ  012\t=/+;,\"-"), 0, 20)
        headers[name] = value
    return headers


def _timestamp(rng):
    return datetime.datetime(2015, 8, 30, 12, 36, 0) + datetime.timedelta(
        seconds=rng.randint(0, 10 * 365 * 86400))


def _case(rng, i):
    service = rng.choice(SERVICES)
    kind = "presign" if service == "s3" and rng.random() < 0.3 else "header"
    scheme = rng.choice(["http", "https"])
    host = rng.choice(HOSTS)
    raw_path = _path(rng, service)
    wire_path = quote(raw_path, safe="/~")
    # A URI label that may hold '/' (a Bedrock model ARN) is encoded by the caller, '/' included,
    # as botocore's serializer does for non-greedy labels.
    path_encoded = kind == "header" and service != "s3" and rng.random() < 0.25
    if path_encoded:
        label = _text(rng, VALUE_CHARS, 1, 12)
        wire_path = "/model/" + quote(label, safe="-_.~") + "/invoke"
        raw_path = wire_path
    url = f"{scheme}://{host}{wire_path}"
    params = {}
    for _ in range(rng.randint(0, 4)):
        params[_text(rng, VALUE_CHARS, 1, 6)] = _text(rng, VALUE_CHARS, 0, 8)
    headers = _headers(rng) if kind == "header" or rng.random() < 0.3 else {}
    method = rng.choice(METHODS) if kind == "header" else "GET"
    body = bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 64))) if rng.random() < 0.6 else b""
    if kind == "presign":
        body = b""
    token = _text(rng, list("ABCdef0123/+="), 10, 40) if rng.random() < 0.5 else None
    region = rng.choice(REGIONS)
    access_key = "AKID" + _text(rng, list("ABCDEFGHIJKLMNOP0123456789"), 12, 16)
    secret = _text(rng, list("abcdefABCDEF0123456789/+"), 40, 40)
    unsigned = kind == "header" and scheme == "https" and rng.random() < 0.2
    ts = _timestamp(rng)
    expires = rng.choice([1, 60, 900, 3600, 86400, 604800])

    creds = Credentials(access_key, secret, token)
    request = AWSRequest(method=method, url=url, headers=dict(headers), data=body, params=dict(params))
    if kind == "presign":
        signer = S3SigV4QueryAuth(creds, service, region, expires=expires)
    elif service == "s3":
        signer = S3SigV4Auth(creds, service, region)
        if unsigned:
            request.context["client_config"] = _S3Config(False)
    else:
        signer = SigV4Auth(creds, service, region)
        if unsigned:
            request.context["payload_signing_enabled"] = False
    with mock.patch.object(botocore.auth, "get_current_datetime", return_value=ts):
        signer.add_auth(request)

    case = {
        "name": f"case{i}-{kind}-{service}",
        "kind": kind,
        "service": service,
        "s3": service == "s3",
        "region": region,
        "method": method,
        "url": url,
        "raw_path": raw_path,
        "wire_path": wire_path,
        "path_encoded": path_encoded,
        "query": [[k, v] for k, v in params.items()],
        "headers": [[k, v] for k, v in headers.items()],
        "body_b64": base64.b64encode(body).decode(),
        "unsigned_payload": unsigned,
        "time_s": int(ts.replace(tzinfo=datetime.timezone.utc).timestamp()),
        "access_key": access_key,
        "secret_key": secret,
        "session_token": token or "",
        "expires_s": expires,
    }
    if kind == "presign":
        query = urlsplit(request.url).query
        pairs = parse_qsl(query, keep_blank_values=True)
        case["expected_signature"] = dict(pairs)["X-Amz-Signature"]
        case["expected_query"] = sorted([k, v] for k, v in pairs)
    else:
        expected = {}
        for name in ("Authorization", "X-Amz-Date", "X-Amz-Security-Token", "X-Amz-Content-SHA256"):
            if name in request.headers:
                value = request.headers[name]
                expected[name.lower()] = value.decode() if isinstance(value, bytes) else value
        case["expected_headers"] = expected
    return case


def generate(n=400, seed=20261125):
    rng = random.Random(seed)
    return [_case(rng, i) for i in range(n)]


if __name__ == "__main__":
    import json
    import sys
    json.dump(generate(int(sys.argv[1]) if len(sys.argv) > 1 else 400), sys.stdout, indent=1,
              ensure_ascii=False)
