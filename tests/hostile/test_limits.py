"""Size limits: header section (16 KiB, 100 fields) -> 431; body over --max-body (65536 here),
whether announced by Content-Length, streamed chunked, or only reached after gzip decoding ->
413, with the server's memory bounded while the attack runs (sampled RSS); unknown
Content-Encoding -> 415; a body without framing is no body (RFC 9112); a small gzip body is accepted."""
import functools
import gzip
import json
import select
import socket

import pytest

import rawhttp
from conftest import MAX_BODY
from measure import RssSampler

HEAD_LIMIT = 16 * 1024
BODY = b'{"prompt":"limits","width":64,"height":64}'
HEADER_BOMB_LINES = 20_000
HEADER_BOMB_RSS_MB = 5.0   # "a few MB"
BODY_BOMB_RSS_MB = 50.0


def post_head(framing, extra=b""):
    return (b"POST /generate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            + extra + framing + b"\r\n")


@functools.lru_cache(maxsize=None)
def zero_bomb(decoded_mib):
    return gzip.compress(b"\0" * (decoded_mib << 20), 9)


def push(sock, head, pieces, send_timeout=2.0):
    """Sends head then pieces until done, the server answers, or it stops reading/closes.
    Returns the number of body bytes sent."""
    sent = 0
    if not rawhttp.send_all(sock, head):
        return sent
    sock.settimeout(send_timeout)
    for piece in pieces:
        readable, _, _ = select.select([sock], [], [], 0)
        if readable:
            break
        try:
            sock.sendall(piece)
        except (socket.timeout, BrokenPipeError, ConnectionResetError):
            break
        sent += len(piece)
    return sent


def chunked_pieces(total, size=16 * 1024):
    piece = b"%x\r\n" % size + b"a" * size + b"\r\n"
    for _ in range(total // size):
        yield piece
    yield b"0\r\n\r\n"


def slices(data, size=16 * 1024):
    for start in range(0, len(data), size):
        yield data[start:start + size]


def warm(server):
    assert rawhttp.request(server.port, "GET", "/healthz").status == 200


def attack(server, figures, head, pieces):
    """Runs one body/header attack on a fresh connection with RSS sampled; returns Exchange."""
    warm(server)
    with RssSampler(server.pid) as rss:
        with rawhttp.connect(server.port) as sock:
            figures["bytes_sent_after_head"] = push(sock, head, pieces)
            result = rawhttp.read_exchange(sock, wait=5.0, expect=1)
    figures.update(rss.figures())
    figures["status"] = result.first.status if result.first else None
    figures["error_code"] = result.first.error_code() if result.first else None
    assert server.alive(), "the server died"
    return result


def assert_error(result, status, code):
    assert result.first is not None, f"no response (closed={result.closed})"
    assert result.first.status == status, (result.first.status, result.first.body[:200])
    assert result.first.error_code() == code, result.first.body[:200]


# --- header section -----------------------------------------------------------------------


def test_header_section_over_16_kib_gets_431(shared_server, figures):
    raw = (b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * (HEAD_LIMIT + 512) +
           b"\r\n\r\n")
    with rawhttp.connect(shared_server.port) as sock:
        rawhttp.send_all(sock, raw)
        result = rawhttp.read_exchange(sock, wait=2.0)
    figures.update(status=result.first and result.first.status, closed=result.closed)
    assert_error(result, 431, "headers_too_large")
    assert result.closed


def header_fields(count):
    """A GET /healthz with `count` header fields in all (Host included)."""
    lines = [b"X-Field-%d: %d" % (i, i) for i in range(count - 1)]
    return b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n" + b"".join(
        line + b"\r\n" for line in lines) + b"\r\n"


def test_more_than_100_header_fields_get_431(shared_server, figures):
    with rawhttp.connect(shared_server.port) as sock:
        rawhttp.send_all(sock, header_fields(101))
        result = rawhttp.read_exchange(sock, wait=2.0)
    figures.update(status=result.first and result.first.status, closed=result.closed)
    assert_error(result, 431, "headers_too_large")
    assert result.closed


def test_exactly_100_header_fields_are_accepted(shared_server, figures):
    with rawhttp.connect(shared_server.port) as sock:
        rawhttp.send_all(sock, header_fields(100))
        result = rawhttp.read_exchange(sock, wait=2.0, expect=1)
    figures.update(status=result.first and result.first.status)
    assert result.first is not None and result.first.status == 200


def test_twenty_thousand_header_lines_keep_rss_flat(start_server, figures):
    server = start_server()
    lines = (b"X-Header-%05d: %s\r\n" % (i, b"v" * 48) for i in range(HEADER_BOMB_LINES))
    head = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    result = attack(server, figures, head, lines)
    figures["lines"] = HEADER_BOMB_LINES
    assert rss_growth(figures) < HEADER_BOMB_RSS_MB, f"RSS grew {rss_growth(figures)} MB"
    assert result.first is not None, "no answer to 20,000 header lines within 5 s"
    assert result.first.status == 431, result.first.status


def rss_growth(figures):
    return figures["rss_growth_mb"]


# --- body size ----------------------------------------------------------------------------


def test_content_length_over_limit_gets_413_before_the_body(shared_server, figures):
    with rawhttp.connect(shared_server.port) as sock:
        rawhttp.send_all(sock, post_head(b"Content-Length: %d\r\n" % (MAX_BODY * 16)))
        result = rawhttp.read_exchange(sock, wait=2.0, expect=1)
    figures.update(status=result.first and result.first.status,
                   answer_s=round(result.elapsed, 3))
    assert_error(result, 413, "payload_too_large")


def test_chunked_body_over_limit_gets_413_with_rss_bounded(start_server, figures):
    server = start_server()
    total = 200 << 20
    result = attack(server, figures, post_head(b"Transfer-Encoding: chunked\r\n"),
                    chunked_pieces(total))
    figures["offered_mib"] = total >> 20
    assert rss_growth(figures) < BODY_BOMB_RSS_MB, f"RSS grew {rss_growth(figures)} MB"
    assert_error(result, 413, "payload_too_large")


def test_body_at_the_limit_is_read(shared_server, figures):
    """The limit is the limit: a JSON body of exactly --max-body bytes reaches the handler."""
    padded = BODY[:-1] + b',"negative_prompt":"' + b"n" * 100 + b'"}'
    body = padded + b" " * (MAX_BODY - len(padded))
    response = rawhttp.request(shared_server.port, "POST", "/generate",
                               [("Content-Type", "application/json")], body)
    figures["status"] = response and response.status
    assert response is not None and response.status == 200, response


@pytest.mark.parametrize("decoded_mib", [60, 200])
def test_gzip_bomb_gets_413_with_rss_bounded(start_server, figures, decoded_mib):
    """60 MiB of zeros compress under the 64 KiB wire limit: only the decoded size can trip the
    limit. The 200 MiB one is over the wire limit as well."""
    bomb = zero_bomb(decoded_mib)
    figures.update(compressed_bytes=len(bomb), decoded_mib=decoded_mib)
    if decoded_mib == 60:
        assert len(bomb) < MAX_BODY, "the test needs a bomb smaller than the wire limit"
    server = start_server()
    head = post_head(b"Content-Length: %d\r\n" % len(bomb), b"Content-Encoding: gzip\r\n")
    result = attack(server, figures, head, slices(bomb))
    assert rss_growth(figures) < BODY_BOMB_RSS_MB, f"RSS grew {rss_growth(figures)} MB"
    assert_error(result, 413, "payload_too_large")


def test_gzip_bomb_without_api_key_keeps_rss_bounded(start_server, tmp_path, figures):
    keys = tmp_path / "keys.txt"
    keys.write_text("hostile-test-key\n")
    server = start_server("--api-keys-file", str(keys))
    bomb = zero_bomb(60)
    head = post_head(b"Content-Length: %d\r\n" % len(bomb), b"Content-Encoding: gzip\r\n")
    result = attack(server, figures, head, slices(bomb))
    assert rss_growth(figures) < BODY_BOMB_RSS_MB, f"RSS grew {rss_growth(figures)} MB"
    assert result.first is not None, "no answer to the bomb within 5 s"
    assert result.first.status in (401, 413), result.first.status


def test_unknown_content_encoding_gets_415(shared_server, figures):
    response = rawhttp.request(shared_server.port, "POST", "/generate",
                               [("Content-Type", "application/json"),
                                ("Content-Encoding", "x-hostile")], BODY)
    figures["status"] = response and response.status
    assert response is not None and response.status == 415, response
    assert response.error_code() == "unsupported_media_type"


def test_small_gzip_json_body_is_accepted(shared_server, figures):
    response = rawhttp.request(shared_server.port, "POST", "/generate",
                               [("Content-Type", "application/json"),
                                ("Content-Encoding", "gzip")], gzip.compress(BODY))
    figures["status"] = response and response.status
    assert response is not None and response.status == 200, response
    assert json.loads(response.body)["images"], response.body[:200]


def test_body_without_length_is_never_read_as_a_body(shared_server, figures):
    """RFC 9112 section 6.3: a request with neither Content-Length nor Transfer-Encoding has no
    body. The request is answered as bodiless (400: no JSON), the bytes after it are parsed as
    the next request and refused (400), and the connection is closed: nothing is read to the
    end, nothing is generated."""
    with rawhttp.connect(shared_server.port) as sock:
        rawhttp.send_all(sock, post_head(b"") + BODY)
        result = rawhttp.read_exchange(sock, wait=2.0)
    statuses = [r.status for r in result.responses]
    figures.update(statuses=statuses, closed=result.closed)
    assert statuses == [400, 400], statuses
    assert result.closed
