"""The server's life around hostile or departing clients: a client that hangs up cancels its
generation; SIGTERM drains (in-flight work completes, new connections are refused, exit 0 within
15 s, trickling clients notwithstanding); a second server on a taken port fails fast and leaves
the first one serving."""
import json
import signal
import socket
import subprocess
import threading
import time

import pytest

import rawhttp
from conftest import binary_path


def generate_raw(prompt, steps=20):
    body = json.dumps({"prompt": prompt, "width": 64, "height": 64, "steps": steps}).encode()
    return (b"POST /generate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body) + body)


def stored_pngs(server):
    """The stored images (not the listing index's entries, whose names end with the key)."""
    if not server.store_dir.exists():
        return []
    return sorted(p.name for p in server.store_dir.rglob("*.png")
                  if p.relative_to(server.store_dir).parts[0] != "index")


@pytest.mark.deadline(40)
def test_disconnect_cancels_the_generation(start_server, figures):
    # 20 steps of 200 ms: the test model looks at the cancel flag before every step.
    server = start_server("--max-concurrent", "1", "--max-waiting", "0",
                          model="test?delay_ms=4000")
    abandoned = rawhttp.connect(server.port)
    rawhttp.send_all(abandoned, generate_raw("abandoned"))
    time.sleep(0.3)
    abandoned.close()
    closed_at = time.monotonic()
    statuses, answer = [], None
    while time.monotonic() - closed_at < 1.5:
        sent_at = time.monotonic() - closed_at
        with rawhttp.connect(server.port) as sock:
            rawhttp.send_all(sock, generate_raw("kept"))
            answer = rawhttp.read_exchange(sock, wait=10.0, expect=1).first
        statuses.append(answer.status if answer else None)
        if answer is not None and answer.status == 200:
            figures["admitted_after_close_s"] = round(sent_at, 3)
            break
        time.sleep(0.1)
    figures.update(statuses=statuses, stored=stored_pngs(server))
    assert answer is not None and answer.status == 200, f"statuses within 1.5 s: {statuses}"
    assert len(stored_pngs(server)) == 1, "the abandoned generation was stored anyway"


class Tricklers:
    """`count` connections sending a header byte every `interval` s from one thread."""

    def __init__(self, port, count, interval=0.5):
        self.socks = [rawhttp.connect(port) for _ in range(count)]
        for sock in self.socks:
            rawhttp.send_all(sock, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Drip: ")
        self.stop = threading.Event()
        self.interval = interval
        self.thread = threading.Thread(target=self._drip, daemon=True)
        self.thread.start()

    def _drip(self):
        while not self.stop.wait(self.interval):
            for sock in self.socks:
                rawhttp.send_all(sock, b"a")

    def close(self):
        self.stop.set()
        self.thread.join()
        for sock in self.socks:
            sock.close()


def try_connect(port):
    """'refused', or 'accepted' (the listener still took the connection)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0):
            return "accepted"
    except ConnectionRefusedError:
        return "refused"
    except OSError as e:
        return f"error: {e}"


@pytest.mark.deadline(45)
def test_sigterm_drains_in_flight_work_and_exits_0(start_server, figures):
    server = start_server(model="test?delay_ms=2000")
    answer = {}

    def in_flight():
        with rawhttp.connect(server.port) as sock:
            rawhttp.send_all(sock, generate_raw("in flight", steps=4))
            answer["result"] = rawhttp.read_exchange(sock, wait=20.0, expect=1)

    worker = threading.Thread(target=in_flight, daemon=True)
    worker.start()
    tricklers = Tricklers(server.port, 50)
    try:
        time.sleep(0.5)
        server.proc.send_signal(signal.SIGTERM)
        term_at = time.monotonic()
        time.sleep(0.5)
        figures["new_connection"] = try_connect(server.port)
        try:
            code = server.proc.wait(timeout=15.0)
        except subprocess.TimeoutExpired:
            code = None
        figures.update(exit_code=code, drain_s=round(time.monotonic() - term_at, 3))
        worker.join(timeout=5.0)
    finally:
        tricklers.close()
    result = answer.get("result")
    figures["in_flight_status"] = result.first.status if result and result.first else None
    assert result is not None and result.first is not None, "the in-flight request got nothing"
    assert result.first.status == 200, result.first.body[:200]
    assert json.loads(result.first.body)["images"], "incomplete in-flight response"
    assert figures["new_connection"] == "refused"
    assert code == 0, f"exit code {code} (None: still running 15 s after SIGTERM)"


@pytest.mark.deadline(30)
def test_second_server_on_a_taken_port_fails_fast(start_server, tmp_path, figures):
    first = start_server()
    argv = [binary_path(), "serve", "--host", "127.0.0.1", "--port", str(first.port),
            "--model", "test", "--store", f"file://{tmp_path}/second-images",
            "--queue", f"sqlite://{tmp_path}/second-queue.db"]
    start = time.monotonic()
    second = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        code = second.wait(timeout=5.0)
    except subprocess.TimeoutExpired:
        second.kill()
        code = None
    _, stderr = second.communicate()
    lines = [line for line in stderr.decode(errors="replace").splitlines() if line.strip()]
    naming_port = [line for line in lines if str(first.port) in line]
    figures.update(exit_code=code, exit_s=round(time.monotonic() - start, 3),
                   stderr_lines=len(lines), stderr=lines[-3:])
    answered = sum(1 for _ in range(50)
                   if (r := rawhttp.request(first.port, "GET", "/healthz", wait=2.0))
                   and r.status == 200)
    figures["first_server_answered_of_50"] = answered
    assert code is not None, "the second server was still running after 5 s"
    assert code != 0
    assert len(naming_port) == 1, f"stderr: {lines}"
    assert answered == 50
