"""Request framing (RFC 9112): every malformed or ambiguous message is answered once with a 4xx
(or the listed 5xx) and a JSON error body, the connection is closed within 2 s, and the request
written behind it in the same bytes (the would-be smuggled one) is never answered.

Each bad message is built so that a lenient server would visibly succeed instead: header-level
faults go to GET /healthz (lenient: 200), body-framing faults carry a valid POST /generate body
(lenient: 200 with an image). The well-formed controls at the end show the harness does see a
200 and a second pipelined answer when the server does give them."""
import pytest

import rawhttp

HOST = b"Host: 127.0.0.1\r\n"
BODY = b'{"prompt":"framing","width":64,"height":64}'
SMUGGLED = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Request-Id: smuggled\r\n\r\n"
BAD = (400,)
BAD_OR_501 = (400, 501)
BAD_OR_505 = (400, 505)


def chunk(data, size_text=None):
    size = size_text if size_text is not None else b"%x" % len(data)
    return size + b"\r\n" + data + b"\r\n"


CHUNKED = chunk(BODY) + b"0\r\n\r\n"


def post(framing, body):
    return (b"POST /generate HTTP/1.1\r\n" + HOST + b"Content-Type: application/json\r\n" +
            framing + b"\r\n" + body)


def get(extra=b"", line=b"GET /healthz HTTP/1.1"):
    return line + b"\r\n" + HOST + extra + b"\r\n"


def cl(value):
    return b"Content-Length: " + value + b"\r\n"


TE = b"Transfer-Encoding: chunked\r\n"
N = str(len(BODY)).encode()

BAD_CASES = [
    # Content-Length and Transfer-Encoding
    ("cl_and_te", post(cl(str(len(CHUNKED)).encode()) + TE, CHUNKED), BAD),
    ("te_and_cl", post(TE + cl(str(len(CHUNKED)).encode()), CHUNKED), BAD),
    ("two_cl_differing", post(cl(N) + cl(str(len(BODY) + 1).encode()), BODY + b" "), BAD),
    ("cl_list_differing", post(cl(N + b", " + str(len(BODY) + 1).encode()), BODY + b" "), BAD),
    ("cl_abc", post(cl(b"abc"), BODY), BAD),
    ("cl_minus_1", post(cl(b"-1"), BODY), BAD),
    ("cl_plus_sign", post(cl(b"+" + N), BODY), BAD),
    ("cl_two_numbers", post(cl(b" " + N + b" " + N), BODY), BAD),
    ("cl_hex", post(cl(b"0x%x" % len(BODY)), BODY), BAD),
    ("cl_huge", post(cl(b"99999999999999999999"), BODY), (400, 413)),
    ("cl_space_before_colon", post(b"Content-Length : " + N + b"\r\n", BODY), BAD),
    # Transfer-Encoding other than exactly chunked
    ("te_gzip_chunked", post(b"Transfer-Encoding: gzip, chunked\r\n", CHUNKED), BAD_OR_501),
    ("te_chunked_chunked", post(b"Transfer-Encoding: chunked, chunked\r\n", CHUNKED),
     BAD_OR_501),
    ("te_two_fields", post(TE + TE, CHUNKED), BAD_OR_501),
    ("te_chunked_not_last", post(b"Transfer-Encoding: chunked, gzip\r\n", CHUNKED), BAD_OR_501),
    ("te_xchunked", post(b"Transfer-Encoding: xchunked\r\n", CHUNKED), BAD_OR_501),
    ("te_identity", post(b"Transfer-Encoding: identity\r\n", BODY), BAD_OR_501),
    # chunk framing
    ("chunk_size_zz", post(TE, chunk(BODY, b"zz") + b"0\r\n\r\n"), BAD),
    ("chunk_size_negative", post(TE, chunk(BODY, b"-1") + b"0\r\n\r\n"), BAD),
    ("chunk_size_0x_prefix", post(TE, chunk(BODY, b"0x%x" % len(BODY)) + b"0\r\n\r\n"), BAD),
    ("chunk_size_17_hex_digits", post(TE, chunk(BODY, b"1" * 17) + b"0\r\n\r\n"), BAD),
    ("chunk_size_empty", post(TE, b"\r\n" + BODY + b"\r\n0\r\n\r\n"), BAD),
    ("chunk_data_without_crlf", post(TE, b"%x\r\n" % len(BODY) + BODY + b"XX0\r\n\r\n"), BAD),
    ("chunk_missing_final_crlf", post(TE, chunk(BODY) + b"0\r\n"), BAD),
    ("chunk_ext_bare_lf", post(TE, b"%x;ext=1\n" % len(BODY) + BODY + b"\r\n0\r\n\r\n"), BAD),
    ("chunk_size_bare_lf", post(TE, b"%x\n" % len(BODY) + BODY + b"\r\n0\r\n\r\n"), BAD),
    # header lines
    ("obs_fold_space", get(b"X-Folded: a\r\n b\r\n"), BAD),
    ("obs_fold_tab", get(b"X-Folded: a\r\n\tb\r\n"), BAD),
    ("space_before_colon", get(b"X-Spaced : a\r\n"), BAD),
    ("bare_lf_everywhere", b"GET /healthz HTTP/1.1\nHost: 127.0.0.1\n\n", BAD),
    ("bare_lf_one_header", get(b"X-A: a\nX-B: b\r\n"), BAD),
    ("bare_cr_in_value", get(b"X-A: a\rb\r\n"), BAD),
    ("bare_cr_in_request_line", b"GET /healthz HTTP/1.1\rX: y\r\n" + HOST + b"\r\n", BAD),
    ("nul_in_value", get(b"X-A: a\x00b\r\n"), BAD),
    ("ctl_0x01_in_value", get(b"X-A: a\x01b\r\n"), BAD),
    ("del_in_value", get(b"X-A: a\x7fb\r\n"), BAD),
    ("header_name_at_sign", get(b"X@A: 1\r\n"), BAD),
    ("header_name_parenthesis", get(b"X(A): 1\r\n"), BAD),
    ("empty_header_name", get(b": value\r\n"), BAD),
    ("header_without_colon", get(b"X-A value\r\n"), BAD),
    ("missing_host", b"GET /healthz HTTP/1.1\r\nX-A: 1\r\n\r\n", BAD),
    ("two_host", get(HOST), BAD),
    # request line
    ("invalid_method_token", get(line=b"GE(T /healthz HTTP/1.1"), BAD),
    ("method_with_space", get(line=b"G ET /healthz HTTP/1.1"), BAD),
    ("target_without_slash", get(line=b"GET healthz HTTP/1.1"), BAD),
    ("target_star_with_get", get(line=b"GET * HTTP/1.1"), BAD),
    ("target_with_space", get(line=b"GET /heal thz HTTP/1.1"), BAD),
    ("nul_in_target", get(line=b"GET /heal\x00thz HTTP/1.1"), BAD),
    ("version_2_0", get(line=b"GET /healthz HTTP/2.0"), BAD_OR_505),
    ("version_0_9", get(line=b"GET /healthz HTTP/0.9"), BAD_OR_505),
    ("version_1_1x", get(line=b"GET /healthz HTTP/1.1x"), BAD_OR_505),
    ("version_lowercase", get(line=b"GET /healthz http/1.1"), BAD_OR_505),
]


def exchange(port, raw, expect=None):
    with rawhttp.connect(port) as sock:
        rawhttp.send_all(sock, raw + SMUGGLED)
        return rawhttp.read_exchange(sock, wait=2.0, expect=expect)


def record(figures, result):
    figures.update({"status": result.first.status if result.first else None,
                    "error_code": result.first.error_code() if result.first else None,
                    "responses": len(result.responses), "closed": result.closed,
                    "reset": result.reset, "close_s": round(result.elapsed, 3)})


@pytest.mark.parametrize("raw,allowed", [pytest.param(raw, allowed, id=name)
                                         for name, raw, allowed in BAD_CASES])
def test_malformed_framing_is_rejected_and_closed(shared_server, figures, raw, allowed):
    result = exchange(shared_server.port, raw)
    record(figures, result)
    assert shared_server.alive(), "the server died on this input"
    assert result.first is not None, f"no response (closed={result.closed})"
    assert result.first.status in allowed, f"status {result.first.status}, want {allowed}"
    assert isinstance(result.first.error_code(), str), f"no JSON error: {result.first.body!r}"
    smuggled = [r for r in result.responses if r.header("x-request-id") == "smuggled"]
    assert not smuggled, "the request behind the bad one was answered (smuggling)"
    assert len(result.responses) == 1, f"{len(result.responses)} responses"
    # Inside 2 s, not at the edge of the read: a 2 s keep-alive timeout is no close-on-error.
    assert result.closed and result.elapsed < 2.0, "connection still open 2 s after the error"


def test_there_are_enough_framing_cases():
    assert len(BAD_CASES) >= 35
    assert len({name for name, _, _ in BAD_CASES}) == len(BAD_CASES)


GOOD_CASES = [
    ("content_length", post(cl(N), BODY)),
    ("chunked", post(TE, CHUNKED)),
    ("chunked_capitalised", post(b"Transfer-Encoding: Chunked\r\n", CHUNKED)),
    ("chunk_extension", post(TE, chunk(BODY, b"%x;name=value" % len(BODY)) + b"0\r\n\r\n")),
    ("two_chunks_and_trailer", post(TE, chunk(BODY[:10]) + chunk(BODY[10:]) +
                                    b"0\r\nX-Trailer: 1\r\n\r\n")),
    ("healthz", get()),
]


@pytest.mark.parametrize("raw", [pytest.param(raw, id=name) for name, raw in GOOD_CASES])
def test_well_formed_requests_are_answered_and_kept_alive(shared_server, figures, raw):
    result = exchange(shared_server.port, raw, expect=2)
    record(figures, result)
    assert result.first is not None and result.first.status == 200, result.first
    assert [r.header("x-request-id") for r in result.responses[1:]] == ["smuggled"]
    assert result.responses[1].status == 200


def test_options_star_is_not_a_framing_error(shared_server, figures):
    result = exchange(shared_server.port, b"OPTIONS * HTTP/1.1\r\n" + HOST + b"\r\n", expect=1)
    record(figures, result)
    assert result.first is not None and result.first.status != 400, result.first


def test_http_1_0_without_host_is_accepted(shared_server, figures):
    with rawhttp.connect(shared_server.port) as sock:
        rawhttp.send_all(sock, b"GET /healthz HTTP/1.0\r\n\r\n")
        result = rawhttp.read_exchange(sock, wait=2.0, expect=1)
    record(figures, result)
    assert result.first is not None and result.first.status == 200, result.first
