"""Every response carries X-Request-Id and X-Content-Type-Options: nosniff, the ones the server
writes on its own (400, 413, 431) as much as the handlers' (200, 404, 405). (408 is checked
where it is provoked, in test_deadlines.py.)"""
import pytest

import rawhttp
from conftest import MAX_BODY

HOST = b"Host: 127.0.0.1\r\n"
POST = b"POST /generate HTTP/1.1\r\n" + HOST + b"Content-Type: application/json\r\n"

CASES = [
    ("ok_200", b"GET /healthz HTTP/1.1\r\n" + HOST + b"\r\n", 200),
    ("not_found_404", b"GET /no/such/route HTTP/1.1\r\n" + HOST + b"\r\n", 404),
    ("method_405", b"DELETE /healthz HTTP/1.1\r\n" + HOST + b"\r\n", 405),
    ("malformed_400", b"GET /healthz HTTP/1.1\r\n" + HOST + b"X-Bad : 1\r\n\r\n", 400),
    # No framing: per RFC 9112 the body is empty (the handler's 400), the bytes after it are
    # read as the next request (a malformed one).
    ("unframed_body_400", POST + b"\r\n" + b'{"prompt":"x"}', 400),
    ("too_large_413", POST + b"Content-Length: %d\r\n\r\n" % (MAX_BODY * 4), 413),
    ("headers_too_large_431",
     b"GET /healthz HTTP/1.1\r\n" + HOST + b"X-Big: " + b"a" * 20000 + b"\r\n\r\n", 431),
]


@pytest.mark.parametrize("raw,status", [pytest.param(raw, status, id=name)
                                        for name, raw, status in CASES])
def test_response_has_request_id_and_nosniff(shared_server, figures, raw, status):
    with rawhttp.connect(shared_server.port) as sock:
        rawhttp.send_all(sock, raw)
        result = rawhttp.read_exchange(sock, wait=3.0, expect=1)
    response = result.first
    figures.update(status=response and response.status,
                   x_request_id=response and response.header("x-request-id"),
                   nosniff=response and response.header("x-content-type-options"))
    assert response is not None, "no response"
    assert response.status == status, response.status
    assert response.header("x-request-id"), "no X-Request-Id"
    assert response.header("x-content-type-options") == "nosniff"


def test_client_request_id_is_echoed(shared_server):
    response = rawhttp.request(shared_server.port, "GET", "/healthz",
                               [("X-Request-Id", "hostile-echo-1")])
    assert response.header("x-request-id") == "hostile-echo-1"
