"""GET /jobs/{id}/events (Server-Sent Events) through the real server: the order of events, a
worker in another process (imagegen worker + imagegen serve on one sqlite queue), resuming with
Last-Event-ID (header and query), failed and unknown jobs, another key's job, curl -N, previews,
and the bounds (streams at once, a stream's lifetime, heartbeats, a draining server)."""
import base64
import io
import json
import signal
import subprocess
import threading
import time

import pytest
import requests

from queue_support import wait_until, workers  # noqa: F401


class SseReader:
    """A minimal EventSource of our own: reads a text/event-stream response as it arrives and
    records each event (id, event, data, arrival time) and each comment line."""

    def __init__(self, url, headers=None, timeout=60):
        self.response = requests.get(url, headers=headers or {}, stream=True, timeout=timeout)
        self.events, self.comments, self.retry = [], [], None
        # One line iterator for the whole response (a second one would lose what the first had
        # buffered); byte by byte, so that each event is seen the moment it arrives.
        self._lines = self.response.iter_lines(chunk_size=1, decode_unicode=True)

    def read(self, until=None):
        """Reads until the server ends the stream, or until until(event) is true."""
        fields = {}
        for raw in self._lines:
            if raw == "":
                if "data" in fields:
                    event = {"id": fields.get("id"), "event": fields.get("event", "message"),
                             "data": json.loads(fields["data"]), "t": time.monotonic()}
                    self.events.append(event)
                    if until and until(event):
                        return self
                fields = {}
            elif raw.startswith(":"):
                self.comments.append((raw, time.monotonic()))
            else:
                name, _, value = raw.partition(":")
                value = value[1:] if value.startswith(" ") else value
                if name == "retry":
                    self.retry = int(value)
                else:
                    fields[name] = value
        return self

    def close(self):
        self.response.close()


def event_key(event_id):
    return tuple(int(part) for part in event_id.split("."))


@pytest.fixture
def setup(tmp_path, serve):
    """serve on a sqlite queue (no in-process worker unless env says so) + the worker args."""
    def start(model="test", env=None, args=()):
        queue = f"sqlite://{tmp_path}/queue.db"
        store = tmp_path / "images"
        server = serve("--model", model, "--store", f"file://{store}", *args,
                       env=dict({"IMAGEGEN_QUEUE": queue}, **(env or {})))
        worker_args = ["--queue", queue, "--store", f"file://{store}", "--model", model,
                       "--wait", "1"]
        return server, worker_args
    return start


def submit(server, body, headers=None):
    r = requests.post(server.url + "/jobs", json=body, headers=headers or {})
    assert r.status_code == 202, r.text
    return r.json()["job_id"]


def assert_well_ordered(events):
    ids = [event_key(e["id"]) for e in events]
    assert ids == sorted(ids) and len(set(ids)) == len(ids), ids
    order = {"queued": 0, "running": 1, "succeeded": 2, "failed": 2, "cancelled": 2}
    phases = [order[e["event"]] for e in events]
    assert phases == sorted(phases), [e["event"] for e in events]


def test_events_from_a_worker_in_another_process(setup, workers):
    """queued while no worker runs; then `imagegen worker` (another process) takes the job and
    its progress reaches the server's stream through the job record; succeeded ends it."""
    server, worker_args = setup(model="test?delay_ms=4000")
    job_id = submit(server, {"prompt": "a blue square", "seed": 3, "steps": 16})
    stream = SseReader(f"{server.url}/jobs/{job_id}/events")
    assert stream.response.status_code == 200
    assert stream.response.headers["Content-Type"].startswith("text/event-stream")
    assert stream.response.headers["Cache-Control"] == "no-cache"
    stream.read(until=lambda e: e["event"] == "queued")
    assert stream.events[0]["data"] == {"job_id": job_id, "status": "queued", "attempt": 1}
    assert stream.retry == 1000

    workers(*worker_args, name="remote")
    stream.read()  # to the end: the server closes the stream after the final event
    events = stream.events
    assert_well_ordered(events)
    assert events[-1]["event"] == "succeeded"
    running = [e for e in events if e["event"] == "running"]
    steps = [e["data"]["step"] for e in running]
    assert len(set(steps)) > 1, steps  # progress moved, seen from another process
    assert all(e["data"]["total"] in (0, 16) for e in running)
    assert all(0 <= s <= 16 for s in steps)
    # The final event is the job as GET /jobs/{id} answers it.
    final = events[-1]["data"]
    assert final == requests.get(f"{server.url}/jobs/{job_id}").json()
    assert final["status"] == "succeeded" and final["result"]["key"] == f"{job_id}.png"
    assert "preview" not in final


def test_resume_with_last_event_id_repeats_nothing(setup):
    server, _ = setup(model="test?delay_ms=4000", env={"IMAGEGEN_SERVE_WORKERS": "1"})
    job_id = submit(server, {"prompt": "resume me", "steps": 16})
    first = SseReader(f"{server.url}/jobs/{job_id}/events")
    first.read(until=lambda e: e["event"] == "running" and e["data"]["step"] > 0)
    first.close()
    seen = first.events[-1]["id"]

    # EventSource's way: the Last-Event-ID header.
    second = SseReader(f"{server.url}/jobs/{job_id}/events", headers={"Last-Event-ID": seen})
    second.read(until=lambda e: e["event"] == "running")
    second.close()
    assert event_key(second.events[0]["id"]) > event_key(seen)
    # Without EventSource: ?last_event_id=, read to the end.
    third = SseReader(f"{server.url}/jobs/{job_id}/events?last_event_id={second.events[-1]['id']}")
    third.read()
    assert_well_ordered(first.events + second.events + third.events)
    assert third.events[-1]["event"] == "succeeded"

    # Everything seen: 204, which tells an EventSource to stop reconnecting.
    r = requests.get(f"{server.url}/jobs/{job_id}/events",
                     headers={"Last-Event-ID": third.events[-1]["id"]})
    assert r.status_code == 204 and r.content == b""
    # An id from before the end: only the final event, then the end.
    again = SseReader(f"{server.url}/jobs/{job_id}/events", headers={"Last-Event-ID": seen}).read()
    assert [e["event"] for e in again.events] == ["succeeded"]


def test_failed_job_ends_with_its_error(setup):
    server, _ = setup(model="test?fail=content_rejected", env={"IMAGEGEN_SERVE_WORKERS": "1"})
    job_id = submit(server, {"prompt": "refused"})
    stream = SseReader(f"{server.url}/jobs/{job_id}/events").read()
    assert stream.events[-1]["event"] == "failed"
    error = stream.events[-1]["data"]["error"]
    assert error["code"] == "content_rejected" and error["message"]
    assert_well_ordered(stream.events)


def test_unknown_job_other_keys_job_and_bad_last_event_id(setup):
    server, _ = setup(env={"IMAGEGEN_API_KEYS": "key-a,key-b"})
    a = {"Authorization": "Bearer key-a"}
    b = {"Authorization": "Bearer key-b"}
    job_id = submit(server, {"prompt": "mine"}, headers=a)

    r = requests.get(f"{server.url}/jobs/nope-123/events", headers=a)
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    r = requests.get(f"{server.url}/jobs/{job_id}/events", headers=b)  # another key's job
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    assert requests.get(f"{server.url}/jobs/{job_id}", headers=b).status_code == 404
    r = requests.get(f"{server.url}/jobs/{job_id}/events")
    assert r.status_code == 401
    for bad in ["x", "1.2", "1.3.0", "-1.0.0", "1.0.0.0", "99999999999.0.0"]:
        r = requests.get(f"{server.url}/jobs/{job_id}/events", headers=dict(a, **{"Last-Event-ID": bad}))
        assert r.status_code == 400, bad
        assert r.json()["error"]["code"] == "invalid_request"
        assert r.json()["error"]["field"] == "Last-Event-ID"
    stream = SseReader(f"{server.url}/jobs/{job_id}/events", headers=a)
    stream.read(until=lambda e: True)
    stream.close()
    assert stream.events[0]["event"] == "queued"


def test_curl_sees_the_stream_as_it_comes(setup):
    server, _ = setup(model="test?delay_ms=3000", env={"IMAGEGEN_SERVE_WORKERS": "1"})
    job_id = submit(server, {"prompt": "curl", "steps": 12})
    start = time.monotonic()
    proc = subprocess.Popen(["curl", "-sN", f"{server.url}/jobs/{job_id}/events"],
                            stdout=subprocess.PIPE, text=True)
    arrivals = []
    for line in proc.stdout:
        if line.startswith("event: "):
            arrivals.append((line.split(": ", 1)[1].strip(), time.monotonic() - start))
    assert proc.wait(timeout=30) == 0  # curl ends by itself: the server ended the stream
    names = [name for name, _ in arrivals]
    assert names[-1] == "succeeded" and "running" in names, names
    running_times = [t for name, t in arrivals if name == "running"]
    # Streamed, not buffered: running events arrived well before the end.
    assert arrivals[-1][1] - running_times[0] > 1.0, arrivals


def test_previews_when_asked(setup):
    from PIL import Image
    server, _ = setup(model="test?delay_ms=4000", env={"IMAGEGEN_SERVE_WORKERS": "1"})
    job_id = submit(server, {"prompt": "preview", "steps": 16, "width": 256, "height": 256})
    plain = SseReader(f"{server.url}/jobs/{job_id}/events")
    with_preview = SseReader(f"{server.url}/jobs/{job_id}/events?preview=1")
    threads = [threading.Thread(target=s.read) for s in (plain, with_preview)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert all("preview" not in e["data"] for e in plain.events)
    previews = [e["data"]["preview"] for e in with_preview.events if "preview" in e["data"]]
    assert previews, with_preview.events
    for url in previews:
        assert url.startswith("data:image/jpeg;base64,")
        image = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
        assert image.format == "JPEG" and max(image.size) <= 128
    assert len(set(previews)) > 1  # they change with the steps
    assert "preview" not in requests.get(f"{server.url}/jobs/{job_id}").json()


def test_bounds_streams_lifetime_and_heartbeats(setup):
    server, _ = setup(env={"IMAGEGEN_EVENTS_MAX_STREAMS": "1", "IMAGEGEN_EVENTS_MAX_STREAM_S": "4",
                           "IMAGEGEN_EVENTS_HEARTBEAT_S": "1"})
    job_id = submit(server, {"prompt": "nobody runs me"})  # no worker: queued for ever
    start = time.monotonic()
    first = SseReader(f"{server.url}/jobs/{job_id}/events")
    first.read(until=lambda e: True)
    second = requests.get(f"{server.url}/jobs/{job_id}/events", timeout=10)
    assert second.status_code == 503, second.text
    assert second.json()["error"]["code"] == "overloaded" and second.headers["Retry-After"]
    first.read()  # ends at its lifetime, without a final event
    lasted = time.monotonic() - start
    assert 3.0 < lasted < 7.0, lasted
    assert [e["event"] for e in first.events] == ["queued"]
    assert len(first.comments) >= 2 and all(c == ": heartbeat" for c, _ in first.comments)
    # The slot is free again, and resuming repeats nothing (no new state: only heartbeats).
    again = wait_until(lambda: (lambda r: r if r.status_code == 200 else None)(
        requests.get(f"{server.url}/jobs/{job_id}/events", stream=True,
                     headers={"Last-Event-ID": first.events[-1]["id"]}, timeout=10)),
        timeout=5, what="a free stream slot")
    body = again.content.decode()  # ends at its lifetime
    assert "event:" not in body and ": heartbeat" in body


def test_draining_server_ends_open_streams(setup):
    server, _ = setup(args=("--drain-timeout", "20"))
    job_id = submit(server, {"prompt": "waiting"})
    stream = SseReader(f"{server.url}/jobs/{job_id}/events")
    stream.read(until=lambda e: True)
    start = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    stream.read()
    ended = time.monotonic() - start
    assert server.proc.wait(timeout=10) == 0
    # Far sooner than the 20 s drain: the stream did not hold the shutdown.
    assert ended < 5.0 and time.monotonic() - start < 8.0, ended
