"""The suite's own reader, checked against canned server bytes: that it sees several pipelined
responses, chunked ones, a close, and a close without a response, so that a compliant server's
behaviour reads as a pass and a lenient one's as a failure."""
import socket
import threading

import rawhttp


def canned(reply, close):
    """A one-shot loopback server: reads the request, writes `reply`, closes if `close`."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve():
        conn, _ = listener.accept()
        conn.recv(65536)
        conn.sendall(reply)
        if close:
            conn.shutdown(socket.SHUT_WR)
            conn.recv(65536)
        else:
            threading.Event().wait(3.0)
        conn.close()
        listener.close()

    threading.Thread(target=serve, daemon=True).start()
    return port


def read(reply, close, **kwargs):
    with rawhttp.connect(canned(reply, close)) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        return rawhttp.read_exchange(sock, **kwargs)


def ok(request_id, body=b"{}"):
    return (b"HTTP/1.1 200 OK\r\nX-Request-Id: %s\r\nContent-Length: %d\r\n\r\n" %
            (request_id, len(body)) + body)


def test_pipelined_responses_are_all_seen_in_order():
    result = read(b"".join(ok(b"p%d" % i) for i in range(10)), close=False, wait=2.0, expect=10)
    assert [r.header("x-request-id") for r in result.responses] == [f"p{i}" for i in range(10)]
    assert not result.closed


def test_chunked_response_and_close():
    reply = (b"HTTP/1.1 400 Bad Request\r\nTransfer-Encoding: chunked\r\n\r\n"
             b"5\r\n{\"err\r\n0\r\n\r\n")
    result = read(reply, close=True, wait=2.0)
    assert result.closed and len(result.responses) == 1
    assert result.first.status == 400 and result.first.body == b'{"err'


def test_error_code_and_read_to_close_body():
    reply = b'HTTP/1.1 431 Too Large\r\nConnection: close\r\n\r\n{"error":{"code":"x"}}'
    result = read(reply, close=True, wait=2.0)
    assert result.closed and result.first.status == 431
    assert result.first.error_code() == "x"


def test_close_without_response_and_open_without_response():
    assert read(b"", close=True, wait=2.0).responses == []
    silent = read(b"", close=False, wait=0.5)
    assert not silent.closed and silent.responses == []
