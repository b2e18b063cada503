"""Job webhooks through the real server and worker: deliveries to a local receiver (Python
http.server) verified with the `standardwebhooks` package (an independent implementation of the
signature scheme), the event filter, retries with backoff while the receiver is down, a delivery
that survives a SIGKILLed server with the same webhook-id, the SSRF guard at submission and at
delivery, and redirects left unfollowed."""
import base64
import http.server
import json
import os
import pathlib
import threading
import time

import pytest
import requests
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from conftest import Server
from procs import free_port, wait_until
from queue_support import Worker

SECRET = "whsec_" + base64.b64encode(b"imagegen-webhook-test-secret-32b").decode()


class Receiver:
    """An HTTP server on 127.0.0.1 recording every POST. `answers` is a list of statuses given
    to the first requests in turn (then 200); `redirect_to` answers 302 with that Location."""

    def __init__(self, port=None, answers=(), redirect_to=None):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self.received = []  # (monotonic time, headers dict lower-cased, body bytes, status)
        self.answers = list(answers)
        self.redirect_to = redirect_to
        self.lock = threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver.lock:
                    status = receiver.answers.pop(0) if receiver.answers else 200
                    if receiver.redirect_to:
                        status = 302
                    receiver.received.append(
                        (time.monotonic(), {k.lower(): v for k, v in self.headers.items()},
                         body, status))
                self.send_response(status)
                if status == 302:
                    self.send_header("Location", receiver.redirect_to)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def events(self, status=200):
        """Verified deliveries answered with `status`, as (headers, parsed body)."""
        out = []
        with self.lock:
            received = list(self.received)
        for _, headers, body, answered in received:
            if answered != status:
                continue
            Webhook(SECRET).verify(body, headers)  # raises unless the signature is ours
            out.append((headers, json.loads(body)))
        return out

    def of_event(self, name, status=200):
        return [(h, b) for h, b in self.events(status) if b["event"] == name]


@pytest.fixture
def receivers():
    started = []

    def start(**kwargs):
        r = Receiver(**kwargs)
        started.append(r)
        return r

    yield start
    for r in started:
        r.stop()


@pytest.fixture
def hooks(tmp_path, imagegen_bin):
    """serve(...) with webhooks on (secret, fast retries, an in-process worker), on one store and
    queue in tmp_path; stopped afterwards."""
    started = []
    store = tmp_path / "images"

    def env_for(extra):
        env = {"IMAGEGEN_QUEUE": f"sqlite://{tmp_path}/queue.db",
               "IMAGEGEN_WEBHOOK_SECRET": SECRET, "IMAGEGEN_WEBHOOK_RETRY_BASE_MS": "200",
               "IMAGEGEN_SERVE_WORKERS": "1"}
        env.update(extra or {})
        return env

    def serve(*args, env=None, model="test?delay_ms=300"):
        server = Server(["--model", model, "--store", f"file://{store}", *args], env_for(env),
                        tmp_path)
        started.append(server)
        return server

    serve.store = store
    serve.env_for = env_for
    yield serve
    for s in started:
        s.stop()


def submit(server, webhook, **fields):
    body = {"prompt": "a red circle", "steps": 4, "webhook": webhook, **fields}
    return requests.post(server.url + "/jobs", json=body, timeout=30)


def outbox(store, kind="outbox"):
    folder = pathlib.Path(store) / "webhooks" / kind
    if not folder.exists():
        return []
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]


def test_deliveries_are_signed_for_standard_webhooks_and_carry_the_job(hooks, receivers):
    receiver = receivers()
    server = hooks("--webhook-allow", "127.0.0.1/32")
    r = submit(server, receiver.url)
    assert r.status_code == 202, r.text
    job = r.json()
    assert job["webhook"] == receiver.url and "webhook_events_filter" not in job

    completed = wait_until(lambda: receiver.of_event("completed"), timeout=30, what="completed")
    headers, body = completed[0]
    assert body["job_id"] == job["job_id"] and body["status"] == "succeeded"
    assert body["result"]["url"].startswith(server.url + "/images/")
    assert body["status_url"] == f"{server.url}/jobs/{job['job_id']}"
    assert headers["webhook-id"].startswith("msg_")
    assert abs(int(headers["webhook-timestamp"]) - time.time()) < 60
    assert headers["webhook-signature"].startswith("v1,")
    assert headers["content-type"] == "application/json"
    events = [b["event"] for _, b in receiver.events()]
    assert "start" in events and "output" in events, events
    start = receiver.of_event("start")[0][1]
    assert start["status"] == "running"
    # Every delivery has an id of its own.
    ids = [h["webhook-id"] for h, _ in receiver.events()]
    assert len(ids) == len(set(ids))
    # The verification above is real: a changed body or another secret fails it.
    _, raw_headers, raw_body, _ = receiver.received[0]
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(raw_body + b" ", raw_headers)
    other = "whsec_" + base64.b64encode(b"another-secret-of-32-bytes-long!").decode()
    with pytest.raises(WebhookVerificationError):
        Webhook(other).verify(raw_body, raw_headers)
    wait_until(lambda: not outbox(hooks.store), timeout=10, what="an empty outbox")


def test_event_filter_is_honoured(hooks, receivers):
    only_completed, only_start = receivers(), receivers()
    server = hooks("--webhook-allow", "127.0.0.1")
    a = submit(server, only_completed.url, webhook_events_filter=["completed"])
    b = submit(server, only_start.url, webhook_events_filter=["start"])
    assert a.status_code == b.status_code == 202, (a.text, b.text)
    assert a.json()["webhook_events_filter"] == ["completed"]
    wait_until(lambda: only_completed.of_event("completed"), timeout=30, what="completed")
    wait_until(lambda: only_start.of_event("start"), timeout=30, what="start")
    for job_id in (a.json()["job_id"], b.json()["job_id"]):
        wait_until(lambda: requests.get(f"{server.url}/jobs/{job_id}").json()["status"]
                   == "succeeded", timeout=30, what="both jobs done")
    wait_until(lambda: not outbox(hooks.store), timeout=10, what="an empty outbox")
    assert [b["event"] for _, b in only_completed.events()] == ["completed"]
    assert [b["event"] for _, b in only_start.events()] == ["start"]
    bad = submit(server, only_start.url, webhook_events_filter=["finished"])
    assert bad.status_code == 400 and bad.json()["error"]["field"] == "webhook_events_filter"


def test_receiver_down_is_retried_with_backoff_until_it_answers(hooks, receivers):
    port = free_port()  # nothing listens here yet: connection refused
    url = f"http://127.0.0.1:{port}/hook"
    server = hooks("--webhook-allow", "127.0.0.1", env={"IMAGEGEN_WEBHOOK_RETRY_BASE_MS": "300"})
    r = submit(server, url, webhook_events_filter=["completed"])
    assert r.status_code == 202, r.text
    pending = wait_until(lambda: [e for e in outbox(hooks.store) if e["attempts"] >= 2],
                         timeout=30, what="two failed attempts")
    assert "connect" in pending[0]["last_error"].lower() or "refused" in \
        pending[0]["last_error"].lower(), pending[0]
    # The receiver comes back answering 503 three more times, then 200.
    receiver = receivers(port=port, answers=[503, 503, 503])
    delivered = wait_until(lambda: receiver.of_event("completed"), timeout=60, what="delivery")
    times = [t for t, _, _, _ in receiver.received]
    assert [s for _, _, _, s in receiver.received] == [503, 503, 503, 200]
    ids = {h["webhook-id"] for _, h, _, _ in receiver.received}
    assert ids == {delivered[0][0]["webhook-id"]}  # one delivery, retried under one id
    gaps = [b - a for a, b in zip(times, times[1:])]
    # Exponential with equal jitter: after n failed attempts the wait is between half and all
    # of base * 2^(n-1). With at least 2 failures before the receiver came back, the first gap
    # here is at least 0.6 s, the last at least 2.4 s and more than the first's maximum.
    assert gaps[0] >= 0.55 and gaps[-1] >= 2.3 and gaps[-1] > gaps[0], gaps
    wait_until(lambda: not outbox(hooks.store), timeout=10, what="an empty outbox")


def test_sigkilled_server_delivers_the_pending_delivery_after_restart(hooks, receivers):
    receiver = receivers(answers=[500] * 1000)
    server = hooks("--webhook-allow", "127.0.0.1")
    r = submit(server, receiver.url, webhook_events_filter=["completed"])
    assert r.status_code == 202, r.text
    wait_until(lambda: receiver.received, timeout=30, what="a first (refused) attempt")
    first_id = receiver.received[0][1]["webhook-id"]
    server.kill()
    assert len(outbox(hooks.store)) == 1
    with receiver.lock:
        receiver.answers.clear()  # from now on the receiver accepts
    restarted = hooks("--webhook-allow", "127.0.0.1")
    delivered = wait_until(lambda: receiver.of_event("completed"), timeout=60,
                           what="delivery after restart")
    assert delivered[0][0]["webhook-id"] == first_id
    assert delivered[0][1]["job_id"] == r.json()["job_id"]
    assert delivered[0][1]["status"] == "succeeded"
    wait_until(lambda: not outbox(hooks.store), timeout=10, what="an empty outbox")
    restarted.stop()


@pytest.mark.parametrize("target", [
    "http://127.0.0.1:{port}/hook",        # loopback
    "http://localhost:{port}/hook",        # a name that resolves to loopback
    "http://[::1]:{port}/hook",            # IPv6 loopback
    "http://169.254.169.254/latest/meta-data/",  # the cloud metadata endpoint
    "http://10.1.2.3/hook", "http://192.168.0.10/hook", "http://172.16.5.4/hook",  # RFC 1918
    "http://100.64.0.1/hook",              # CGNAT
    "http://[fd00::1]/hook",               # ULA
    "http://[::ffff:127.0.0.1]:{port}/",   # IPv4-mapped loopback
    "http://0.0.0.0:{port}/",
])
def test_disallowed_targets_are_refused_at_submission(hooks, target):
    server = hooks()
    url = target.format(port=free_port())
    r = submit(server, url)
    assert r.status_code == 400, (url, r.text)
    error = r.json()["error"]
    assert error["code"] == "invalid_request" and error["field"] == "webhook", error
    assert "--webhook-allow" in error["message"]
    assert requests.get(server.url + "/jobs").json()["jobs"] == []  # nothing was queued


@pytest.mark.parametrize("target,message", [
    ("ftp://example.com/hook", "http or https"),
    ("file:///etc/passwd", "http or https"),
    ("http://user:pw@127.0.0.1/hook", "user info"),
    ("not a url", "URL"),
])
def test_malformed_webhooks_are_refused(hooks, target, message):
    server = hooks()
    r = submit(server, target)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["field"] == "webhook" and message in r.json()["error"]["message"]


def test_loopback_is_allowed_with_the_flag_and_checked_again_at_delivery(
        hooks, receivers, tmp_path):
    receiver = receivers()
    # The server (submission) allows loopback; its job runs and delivers in a worker that does
    # not (the server is gone by then): the delivery-time check refuses the address and never
    # connects.
    server = hooks("--webhook-allow", "127.0.0.0/8", env={"IMAGEGEN_SERVE_WORKERS": "0"})
    r = submit(server, receiver.url, webhook_events_filter=["completed"])
    assert r.status_code == 202, r.text
    server.stop()
    worker = Worker(["--model", "test", "--store", f"file://{hooks.store}", "--wait", "0"],
                    tmp_path, env=hooks.env_for({}))
    try:
        pending = wait_until(lambda: [e for e in outbox(hooks.store) if e["attempts"] >= 1],
                             timeout=30, what="a refused attempt")
        assert "127.0.0.1" in pending[0]["last_error"], pending[0]
    finally:
        worker.stop()
    assert receiver.received == []
    # Restarted with the allowance, the server's deliverer sends it.
    hooks("--webhook-allow", "127.0.0.0/8", env={"IMAGEGEN_SERVE_WORKERS": "0"})
    wait_until(lambda: receiver.of_event("completed"), timeout=30, what="delivery")


def test_a_job_abandoned_on_its_last_attempt_sends_completed_failed(hooks, receivers, tmp_path):
    # The worker is SIGKILLed on the job's only attempt: no runner is left to write the outcome.
    # The store settles the record as failed once the lease is over, and the webhook is told.
    receiver = receivers()
    queue = f"sqlite://{tmp_path}/queue.db?max_receives=1"
    server = hooks("--webhook-allow", "127.0.0.1",
                   env={"IMAGEGEN_SERVE_WORKERS": "0", "IMAGEGEN_QUEUE": queue})
    r = submit(server, receiver.url, webhook_events_filter=["completed"], steps=20)
    assert r.status_code == 202, r.text
    status_url = r.json()["status_url"]
    worker = Worker(["--model", "test?delay_ms=20000", "--store", f"file://{hooks.store}",
                     "--max-attempts", "1", "--job-timeout", "2", "--wait", "1"],
                    tmp_path, env=hooks.env_for({"IMAGEGEN_QUEUE": queue}))
    wait_until(lambda: requests.get(status_url).json()["status"] == "running", timeout=30,
               what="running")
    worker.kill()
    worker.stop()
    wait_until(lambda: requests.get(status_url).json()["status"] == "failed", timeout=20,
               interval=0.5, what="failed after the lease")
    delivered = wait_until(lambda: receiver.of_event("completed"), timeout=20, what="delivery")
    assert delivered[0][1]["status"] == "failed"
    assert "dead-lettered" in delivered[0][1]["error"]["message"]
    assert len(receiver.received) == 1  # later reads settle it again, but it is one delivery


def test_redirects_are_not_followed(hooks, receivers):
    final = receivers()
    redirecting = receivers(redirect_to=final.url)
    server = hooks("--webhook-allow", "127.0.0.1",
                   env={"IMAGEGEN_WEBHOOK_MAX_ATTEMPTS": "2"})
    r = submit(server, redirecting.url, webhook_events_filter=["completed"])
    assert r.status_code == 202, r.text
    failed = wait_until(lambda: outbox(hooks.store, "failed"), timeout=30, what="giving up")
    assert failed[0]["attempts"] == 2 and "302" in failed[0]["last_error"], failed[0]
    assert "gave_up_ms" in failed[0]
    assert len(redirecting.received) == 2
    assert final.received == []
    assert outbox(hooks.store) == []


def test_webhooks_are_refused_without_a_secret(tmp_path, serve, receivers):
    receiver = receivers()
    server = serve("--model", "test", "--store", f"file://{tmp_path}/images",
                   "--webhook-allow", "127.0.0.1",
                   env={"IMAGEGEN_QUEUE": f"sqlite://{tmp_path}/q.db"})
    r = submit(server, receiver.url)
    assert r.status_code == 400 and "IMAGEGEN_WEBHOOK_SECRET" in r.json()["error"]["message"]


@pytest.mark.parametrize("args,env,named", [
    ([], {"IMAGEGEN_WEBHOOK_SECRET": "whsec_c2hvcnQ="}, "IMAGEGEN_WEBHOOK_SECRET"),  # 5 bytes
    ([], {"IMAGEGEN_WEBHOOK_SECRET": "not base64!"}, "IMAGEGEN_WEBHOOK_SECRET"),
    (["--webhook-allow", "10.0.0.0/33"], {}, "IMAGEGEN_WEBHOOK_ALLOW"),
    ([], {"IMAGEGEN_WEBHOOK_ALLOW": "localhost"}, "IMAGEGEN_WEBHOOK_ALLOW"),
])
def test_bad_webhook_settings_stop_the_server_with_one_line(tmp_path, args, env, named):
    from conftest import run_cli
    proc = run_cli("serve", "--model", "test", "--port", "0", *args, env=env, cwd=tmp_path,
                   timeout=30)
    assert proc.returncode == 2, proc.stderr
    assert named in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
