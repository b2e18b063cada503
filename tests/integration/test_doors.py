"""Every door serves the same system: `imagegen serve` over HTTP and the Lambda bootstrap under
AWS's Runtime Interface Emulator (API Gateway REST and HTTP API events, made by `sam local
generate-event`) answer every route of /openapi.json, and the jobs routes the same way.

Both doors run on one configuration (test model, one file store, one SQLite queue), so a job
submitted through one door is visible through the others.
"""
import json
import re
import time

import pytest
import requests

from test_lambda_runtime import RIE, Rie, apigw_v1, apigw_v2

pytestmark = pytest.mark.skipif(not RIE.exists(), reason="aws-lambda-rie missing: run scripts/setup.d/lambda.sh")


@pytest.fixture
def doors(serve, imagegen_bin, aws_env, tmp_path):
    """{"serve": call, "rest": call, "http": call}: call(method, path, body) -> (status, json)."""
    shared = {
        "IMAGEGEN_MODEL": "test",
        "IMAGEGEN_STORE": f"file://{tmp_path / 'images'}",
        "IMAGEGEN_QUEUE": f"sqlite://{tmp_path / 'queue.db'}",
    }
    server = serve(env=dict(aws_env, **shared))
    rie = Rie(imagegen_bin, dict(aws_env, AWS_LAMBDA_FUNCTION_NAME="imagegen-doors",
                                 AWS_LAMBDA_FUNCTION_TIMEOUT="30", LAMBDA_TASK_ROOT=str(tmp_path),
                                 **shared), tmp_path)

    def over_http(method, path, body=None):
        r = requests.request(method, server.url + path, timeout=30,
                             data=None if body is None else json.dumps(body),
                             headers={"Content-Type": "application/json"} if body is not None else {})
        return r.status_code, _json(r.text)

    over_http.raw = lambda method, path: (lambda r: (r.status_code, r.text, r.headers))(
        requests.request(method, server.url + path, timeout=30))

    def over_lambda(make_event):
        def call(method, path, body=None):
            path, _, query = path.partition("?")
            event = make_event(method, path, body)
            if query:
                params = dict(pair.split("=", 1) for pair in query.split("&"))
                event["queryStringParameters"] = params
                if "rawQueryString" in event:
                    event["rawQueryString"] = query
                else:
                    event["multiValueQueryStringParameters"] = {k: [v] for k, v in params.items()}
            out = rie.invoke(event)
            return out["statusCode"], _json(out.get("body") or "")

        def raw(method, path):  # the body as text (a stream's, say), and the headers
            out = rie.invoke(make_event(method, path, None))
            return out["statusCode"], out.get("body") or "", out.get("headers") or {}
        call.raw = raw
        return call

    yield {"serve": over_http, "rest": over_lambda(apigw_v1), "http": over_lambda(apigw_v2)}
    rie.stop()


def _json(text):
    try:
        return json.loads(text)
    except ValueError:
        return None


def _comparable(job):
    """A job as the doors must agree on it (URLs differ by door: host and stage)."""
    return {k: v for k, v in job.items() if k not in ("status_url", "created_ms", "updated_ms")}


def test_jobs_routes_answer_the_same_through_every_door(doors):
    for name, call in doors.items():
        job_id = f"doors-{name}"
        status, submitted = call("POST", "/jobs", {"prompt": "a red circle", "job_id": job_id,
                                                   "width": 64, "height": 64, "seed": 3})
        assert status == 202, (name, submitted)
        assert submitted["job_id"] == job_id and submitted["status"] == "queued"
        assert submitted["status_url"].endswith(f"/jobs/{job_id}")

        # Every door reads the record that this door wrote, identically.
        seen = {other: c("GET", f"/jobs/{job_id}") for other, c in doors.items()}
        assert {s for s, _ in seen.values()} == {200}, seen
        assert len({json.dumps(_comparable(j), sort_keys=True) for _, j in seen.values()}) == 1, seen

        # A replay of the same submission is the same job, not a second one.
        status, replay = call("POST", "/jobs", {"prompt": "a red circle", "job_id": job_id,
                                                "width": 64, "height": 64, "seed": 3})
        assert status == 202 and replay["job_id"] == job_id

        status, cancelled = call("DELETE", f"/jobs/{job_id}")
        assert status == 200 and cancelled["status"] == "cancelled", cancelled
        missing = {other: c("GET", "/jobs/no-such-job") for other, c in doors.items()}
        assert {s for s, _ in missing.values()} == {404}
        assert {j["error"]["code"] for _, j in missing.values()} == {"not_found"}

    # The listing agrees too.
    listings = {name: call("GET", "/jobs?limit=10") for name, call in doors.items()}
    ids = {name: sorted(j["job_id"] for j in body["jobs"]) for name, (_, body) in listings.items()}
    assert ids["serve"] == ids["rest"] == ids["http"] == ["doors-http", "doors-rest", "doors-serve"]


SAMPLE_PARAMS = {"id": "no-such-job", "key": "no-such-image.png"}


def test_every_documented_route_is_routed_by_every_door(doors):
    status, document = doors["serve"]("GET", "/openapi.json")
    assert status == 200
    operations = [(method.upper(), path) for path, ops in document["paths"].items()
                  for method in ops if method in ("get", "post", "put", "delete", "patch")]
    assert ("POST", "/jobs") in operations and ("POST", "/generate") in operations
    for name, call in doors.items():
        _, door_document = call("GET", "/openapi.json")
        assert door_document == document, f"{name} serves another document"
        for method, path in operations:
            concrete = re.sub(r"\{(\w+)\}", lambda m: SAMPLE_PARAMS.get(m.group(1), "x"), path)
            body = {"prompt": "a blue square", "width": 64, "height": 64} if method == "POST" else None
            status, answer = call(method, concrete, body)
            message = (answer or {}).get("error", {}).get("message", "") if isinstance(answer, dict) else ""
            assert status != 405 and not message.startswith("no route"), \
                f"{name}: {method} {path} is documented but not routed ({status} {message})"


def test_job_events_through_every_door(doors):
    """GET /jobs/{id}/events on every door; the Lambda doors buffer the stream and send it whole
    (for a finished job at once: its final event, then the end)."""
    status, _ = doors["serve"]("POST", "/jobs", {"prompt": "a red circle", "job_id": "doors-events",
                                                 "width": 64, "height": 64})
    assert status == 202
    status, cancelled = doors["serve"]("DELETE", "/jobs/doors-events")
    assert status == 200 and cancelled["status"] == "cancelled"
    for name, call in doors.items():
        status, body, headers = call.raw("GET", "/jobs/doors-events/events")
        assert status == 200, (name, body)
        content_type = {k.lower(): v for k, v in headers.items()}["content-type"]
        assert content_type.startswith("text/event-stream"), (name, content_type)
        blocks = [b for b in body.split("\n\n") if b.startswith("id: ")]
        assert len(blocks) == 1 and "\nevent: cancelled\n" in blocks[0], (name, body)
        final = json.loads(blocks[0].split("\ndata: ", 1)[1])
        assert final["job_id"] == "doors-events" and final["status"] == "cancelled"
        status, missing = call("GET", "/jobs/no-such-job/events")
        assert status == 404 and missing["error"]["code"] == "not_found", (name, missing)

    # An unfinished job through a buffering door: a long poll, ended by its first new event
    # rather than held to the invocation's deadline; resuming from it waits for the next one.
    status, _ = doors["serve"]("POST", "/jobs", {"prompt": "a red circle", "job_id": "doors-poll",
                                                 "width": 64, "height": 64})
    assert status == 202
    for name in ("rest", "http"):
        start = time.monotonic()
        status, body, _ = doors[name].raw("GET", "/jobs/doors-poll/events")
        assert status == 200 and time.monotonic() - start < 10, (name, body)
        blocks = [b for b in body.split("\n\n") if b.startswith("id: ")]
        assert len(blocks) == 1 and "\nevent: queued\n" in blocks[0], (name, body)
