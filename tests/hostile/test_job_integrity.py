"""A client job_id names one request: the same request again is idempotent (same key, the
stored PNG untouched), another request under that id is 409 `conflict` and changes nothing, and
the id of someone's queued job cannot be used to plant an output for it."""
import json
import struct
import subprocess

import pytest

import rawhttp
from conftest import binary_path


def post_json(server, path, payload):
    response = rawhttp.request(server.port, "POST", path, [("Content-Type", "application/json")],
                               json.dumps(payload).encode())
    assert response is not None, f"no response to POST {path}"
    return response


def image_bytes(server, key):
    response = rawhttp.request(server.port, "GET", f"/images/{key}")
    return response.status, response.body


def png_text(data):
    """The PNG's tEXt/iTXt (uncompressed) chunks as {keyword: text}."""
    out, pos = {}, 8
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        payload = data[pos + 8:pos + 8 + length]
        if kind == b"tEXt":
            key, _, value = payload.partition(b"\0")
            out[key.decode("latin-1")] = value.decode("latin-1")
        elif kind == b"iTXt":
            key, _, rest = payload.partition(b"\0")
            if rest[:1] == b"\0":  # not compressed
                _, _, rest = rest[2:].partition(b"\0")  # language tag
                _, _, text = rest.partition(b"\0")  # translated keyword
                out[key.decode("latin-1")] = text.decode("utf-8")
        pos += 12 + length
    return out


def stored_file(server, key):
    path = server.store_dir / key
    assert path.is_file(), f"{key} is not in the file store"
    return path


def request_body(prompt, job_id):
    return {"prompt": prompt, "width": 64, "height": 64, "seed": 11, "job_id": job_id}


def test_same_job_id_same_request_is_idempotent(start_server, figures):
    server = start_server()
    first = post_json(server, "/generate", request_body("a lighthouse", "hostile-same-1"))
    assert first.status == 200, first.body[:200]
    key = json.loads(first.body)["images"][0]["key"]
    path = stored_file(server, key)
    before = path.stat()
    status, png = image_bytes(server, key)
    assert status == 200
    again = post_json(server, "/generate", request_body("a lighthouse", "hostile-same-1"))
    figures.update(first_status=first.status, again_status=again.status)
    assert again.status == 200, again.body[:200]
    assert json.loads(again.body)["images"][0]["key"] == key
    after = path.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns), \
        "the stored PNG was rewritten"
    assert image_bytes(server, key) == (200, png)


def test_same_job_id_other_prompt_is_409_and_changes_nothing(start_server, figures):
    server = start_server()
    first = post_json(server, "/generate", request_body("a lighthouse", "hostile-conflict-1"))
    assert first.status == 200, first.body[:200]
    key = json.loads(first.body)["images"][0]["key"]
    _, png = image_bytes(server, key)
    other = post_json(server, "/generate", request_body("a volcano", "hostile-conflict-1"))
    figures.update(status=other.status, error_code=other.error_code())
    assert other.status == 409, f"status {other.status}: {other.body[:160]!r}"
    assert other.error_code() == "conflict"
    assert image_bytes(server, key) == (200, png)
    assert png_text(png)["prompt"] == "a lighthouse"


@pytest.mark.deadline(60)
def test_queued_job_id_cannot_be_planted_through_generate(start_server, figures):
    server = start_server()
    queued = post_json(server, "/jobs", request_body("the queued prompt", "hostile-queued-1"))
    assert queued.status == 202, queued.body[:200]
    planted = post_json(server, "/generate", request_body("a planted prompt", "hostile-queued-1"))
    figures.update(status=planted.status, error_code=planted.error_code())
    assert planted.status == 409, f"status {planted.status}: {planted.body[:160]!r}"
    assert planted.error_code() == "conflict"
    assert rawhttp.request(server.port, "GET", "/images/hostile-queued-1.png").status == 404

    # The worker then runs the queued job: its own request is what gets stored.
    subprocess.run([binary_path(), "worker", "--queue", server.queue_url,
                    "--store", f"file://{server.store_dir}", "--model", "test", "--wait", "0",
                    "--drain"], check=True, timeout=40, capture_output=True)
    record = json.loads(rawhttp.request(server.port, "GET", "/jobs/hostile-queued-1").body)
    figures["job_status"] = record.get("status")
    assert record["status"] == "succeeded", record
    key = record["result"]["key"]
    status, png = image_bytes(server, key)
    assert status == 200
    assert png_text(png)["prompt"] == "the queued prompt"
