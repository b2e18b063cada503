"""A fault-injecting HTTP proxy (tests only): forwards every request to an upstream (moto, or
another imagegen) and, for the operations in its plan, fails them first in one of these ways:

  "500"   answers 500 InternalError without forwarding (the server never saw the call);
  "429"   answers 429 in OpenAI's error shape with Retry-After: 1, without forwarding;
  "503"   answers 503 in OpenAI's error shape without Retry-After, without forwarding;
  "drop"  forwards the call (the server acts on it) and then closes the connection without an
          answer: the client cannot tell whether the call happened, as when a response is lost.

An operation is the SQS JSON protocol's X-Amz-Target action, or, for other requests, the path.
FaultProxy(upstream, {"DeleteMessage": ["drop", "500"]}) fails the first two DeleteMessage
calls, then forwards them all. `seen` counts the calls per operation, `times` records when
(time.monotonic()) each arrived."""
import collections
import json
import time
import http.client
import http.server
import socketserver
import threading
import urllib.parse

from procs import free_port


def _openai_error(message, code):
    return json.dumps({"error": {"message": message, "type": "server_error", "param": None,
                                 "code": code}}).encode()


# fault -> (status, content type, body, extra headers): the answers given without forwarding.
CANNED = {
    "500": (500, "application/x-amz-json-1.0", b'{"__type":"InternalError","message":"injected"}',
            []),
    "429": (429, "application/json", _openai_error("injected: slow down", "rate_limit_exceeded"),
            [("Retry-After", "1")]),
    "503": (503, "application/json", _openai_error("injected: unavailable", "unavailable"), []),
}


class FaultProxy:
    def __init__(self, upstream, plan):
        self.upstream = urllib.parse.urlsplit(upstream)
        self.plan = {op: list(faults) for op, faults in plan.items()}
        self.seen = collections.Counter()
        self.times = collections.defaultdict(list)
        self.injected = []  # (operation, fault), in order
        self.lock = threading.Lock()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                op = self.headers.get("X-Amz-Target", "").rpartition(".")[2] or self.path
                fault = proxy.next_fault(op)
                if fault in CANNED:
                    status, content_type, payload, extra = CANNED[fault]
                    self.send_response(status)
                    self.send_header("Content-Type", content_type)
                    self.send_header("Content-Length", str(len(payload)))
                    for name, value in extra:
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                status, headers, answer = proxy.forward(self.command, self.path, self.headers, body)
                if fault == "drop":
                    self.close_connection = True
                    return  # the upstream acted; the client gets no answer
                self.send_response(status)
                for name, value in headers:
                    if name.lower() not in ("content-length", "connection", "transfer-encoding",
                                            "date", "server"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

        class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True

        self.server = Server(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def next_fault(self, op):
        with self.lock:
            self.seen[op] += 1
            self.times[op].append(time.monotonic())
            faults = self.plan.get(op)
            if not faults:
                return None
            fault = faults.pop(0)
            self.injected.append((op, fault))
            return fault

    def forward(self, method, path, headers, body):
        conn = http.client.HTTPConnection(self.upstream.hostname, self.upstream.port, timeout=60)
        try:
            forwarded = {k: v for k, v in headers.items() if k.lower() not in ("host", "connection")}
            conn.request(method, path, body=body, headers=forwarded)
            resp = conn.getresponse()
            return resp.status, resp.getheaders(), resp.read()
        finally:
            conn.close()

    def queue_url(self, moto_queue_url):
        """The same queue, reached through this proxy."""
        parts = urllib.parse.urlsplit(moto_queue_url)
        return f"{self.url}{parts.path}"

    def close(self):
        self.server.shutdown()
        self.server.server_close()
