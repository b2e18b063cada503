"""Deadlines and availability: a header section must be complete within 10 s of its first byte
and the whole request within 30 s; idle keep-alive connections are closed after ~15 s; a
thousand slowloris clients plus ten thousand idle connections do not slow /healthz down;
pipelined requests are answered in order."""
import asyncio
import threading
import time

import pytest

import rawhttp
from measure import percentile

HEAD = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n"


def assert_timeout_answer(result):
    """A server-side deadline may answer 408 before closing, or just close."""
    if result.first is not None:
        assert result.first.status == 408, (result.first.status, result.first.body[:200])
        assert result.first.error_code() == "request_timeout"
        assert result.first.header("x-request-id"), "408 without X-Request-Id"
        assert result.first.header("x-content-type-options") == "nosniff"


def trickle(sock, pieces, interval, limit_s):
    """Sends one piece every `interval` s until the server closes or answers, or `limit_s`
    passes. Returns (Exchange or None, seconds from the first byte)."""
    start = time.monotonic()
    for piece in pieces:
        if not rawhttp.send_all(sock, piece):  # closed on us: collect what it said first
            result = rawhttp.read_exchange(sock, wait=0.5)
            result.closed = True
            return result, time.monotonic() - start
        result = rawhttp.read_exchange(sock, wait=interval, expect=1)
        if result.closed or result.responses:
            seconds = time.monotonic() - start
            if not result.closed:  # answered: the close must follow within 2 s
                result.closed = rawhttp.wait_closed(sock, 2.0) is not None
            return result, seconds
        if time.monotonic() - start > limit_s:
            break
    return None, time.monotonic() - start


@pytest.mark.deadline(30)
def test_slow_header_lines_are_cut_off_by_the_header_deadline(shared_server, figures):
    lines = [HEAD] + [b"X-Slow-%d: 1\r\n" % i for i in range(20)]
    with rawhttp.connect(shared_server.port) as sock:
        result, seconds = trickle(sock, lines, interval=2.0, limit_s=15.0)
    figures.update(cut_off_s=round(seconds, 2), answered=bool(result and result.first),
                   status=result.first.status if result and result.first else None)
    assert result is not None, f"still reading header lines after {seconds:.1f} s"
    assert seconds <= 15.0, f"cut off only after {seconds:.1f} s"
    assert result.closed, "answered but did not close"
    assert_timeout_answer(result)


@pytest.mark.deadline(50)
def test_slow_body_is_cut_off_by_the_request_deadline(shared_server, figures):
    head = (b"POST /generate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: 1000\r\n\r\n")
    with rawhttp.connect(shared_server.port) as sock:
        result, seconds = trickle(sock, [head] + [b" "] * 60, interval=1.0, limit_s=35.0)
    figures.update(cut_off_s=round(seconds, 2),
                   status=result.first.status if result and result.first else None)
    assert result is not None, f"still reading the body after {seconds:.1f} s"
    assert seconds <= 35.0
    assert result.closed
    assert_timeout_answer(result)


@pytest.mark.deadline(30)
def test_idle_keep_alive_connection_is_closed(shared_server, figures):
    with rawhttp.connect(shared_server.port) as sock:
        rawhttp.send_all(sock, HEAD + b"\r\n")
        first = rawhttp.read_exchange(sock, wait=2.0, expect=1)
        assert first.first is not None and first.first.status == 200
        assert not first.closed, "closed right after the response (no keep-alive at all)"
        seconds = rawhttp.wait_closed(sock, 22.0)
    figures["closed_after_idle_s"] = seconds and round(seconds, 2)
    assert seconds is not None and seconds <= 20.0, f"idle connection open after {seconds} s"


def test_ten_pipelined_requests_are_answered_in_order(shared_server, figures):
    ids = [f"pipe-{i}" for i in range(10)]
    raw = b"".join(HEAD + b"X-Request-Id: " + i.encode() + b"\r\n\r\n" for i in ids)
    with rawhttp.connect(shared_server.port) as sock:
        rawhttp.send_all(sock, raw)
        result = rawhttp.read_exchange(sock, wait=5.0, expect=10)
    echoed = [r.header("x-request-id") for r in result.responses]
    figures.update(responses=len(result.responses), echoed=echoed)
    assert echoed == ids
    assert all(r.status == 200 for r in result.responses)


# --- slowloris ----------------------------------------------------------------------------

IDLE_CONNECTIONS = 10_000
TRICKLE_CONNECTIONS = 1_000
PROBES = 200
P99_LIMIT_MS = 100.0


async def open_many(port, count, concurrency=200):
    """Opens up to `count` connections; returns the writers of those that connected."""
    gate = asyncio.Semaphore(concurrency)

    async def one():
        async with gate:
            try:
                return await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 3.0)
            except (OSError, asyncio.TimeoutError):
                return None

    opened = await asyncio.gather(*(one() for _ in range(count)))
    return [pair for pair in opened if pair is not None]


async def trickle_bytes(pairs, stop):
    for _, writer in pairs:
        writer.write(HEAD + b"X-Trickle: ")
    while not stop.is_set():
        for _, writer in pairs:
            if not writer.is_closing():
                writer.write(b"a")
        try:
            await asyncio.wait_for(stop.wait(), 1.0)
        except asyncio.TimeoutError:
            pass


def probe_healthz(port, count, budget_s=30.0):
    """Latency in ms of `count` GET /healthz on fresh connections (a failure counts 2000).
    Probes not started within `budget_s` count as failures too."""
    latencies, failures = [], 0
    deadline = time.monotonic() + budget_s
    for done in range(count):
        if time.monotonic() > deadline:
            failures += count - done
            latencies += [2000.0] * (count - done)
            break
        start = time.perf_counter()
        try:
            response = rawhttp.request(port, "GET", "/healthz", wait=2.0)
        except OSError:
            response = None
        ok = response is not None and response.status == 200
        failures += not ok
        latencies.append((time.perf_counter() - start) * 1000 if ok else 2000.0)
        time.sleep(0.005)
    return latencies, failures


def still_open(pairs):
    return sum(1 for reader, writer in pairs if not reader.at_eof() and not writer.is_closing())


async def in_thread(function, *args):
    """Runs function in a daemon thread (not the loop's executor, which asyncio.run would wait
    for on the way out of a failed test)."""
    box = []
    thread = threading.Thread(target=lambda: box.append(function(*args)), daemon=True)
    thread.start()
    while thread.is_alive():
        await asyncio.sleep(0.05)
    return box[0]


async def under_siege(port, figures):
    start = time.monotonic()
    idle = await open_many(port, IDLE_CONNECTIONS)
    slow = await open_many(port, TRICKLE_CONNECTIONS)
    figures.update(idle_opened=len(idle), trickle_opened=len(slow),
                   open_phase_s=round(time.monotonic() - start, 2))
    stop = asyncio.Event()
    dripping = asyncio.create_task(trickle_bytes(slow, stop))
    try:
        await asyncio.sleep(1.0)
        latencies, failures = await in_thread(probe_healthz, port, PROBES)
        figures.update(idle_open_after=still_open(idle), trickle_open_after=still_open(slow))
    finally:
        stop.set()
        await dripping
        for _, writer in idle + slow:
            writer.transport.abort()
    return latencies, failures


@pytest.mark.deadline(120)
def test_healthz_stays_fast_under_slowloris_and_idle_connections(start_server, figures):
    server = start_server()
    calm, _ = probe_healthz(server.port, 50)
    figures.update(calm_p50_ms=round(percentile(calm, 0.5), 2),
                   calm_p99_ms=round(percentile(calm, 0.99), 2))
    latencies, failures = asyncio.run(under_siege(server.port, figures))
    figures.update(p50_ms=round(percentile(latencies, 0.5), 2),
                   p99_ms=round(percentile(latencies, 0.99), 2),
                   max_ms=round(max(latencies), 2), failures=failures)
    if figures["idle_opened"] < IDLE_CONNECTIONS:
        figures["note"] = f"only {figures['idle_opened']} idle connections could be opened"
    assert server.alive()
    assert failures == 0, f"{failures} of {PROBES} /healthz probes failed"
    assert figures["p99_ms"] < P99_LIMIT_MS, f"p99 {figures['p99_ms']} ms"
    assert figures["trickle_opened"] == TRICKLE_CONNECTIONS
