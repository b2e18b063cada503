"""Range requests on GET /images/{key}: single and suffix ranges are served as 206; thousands of
overlapping ranges are not amplified (at most the image once, or 416); unsatisfiable -> 416."""
import json

import pytest

import rawhttp


@pytest.fixture(scope="module")
def image(shared_server):
    body = b'{"prompt":"ranges","width":64,"height":64,"seed":3}'
    response = rawhttp.request(shared_server.port, "POST", "/generate",
                               [("Content-Type", "application/json")], body)
    assert response is not None and response.status == 200, response
    key = json.loads(response.body)["images"][0]["key"]
    whole = rawhttp.request(shared_server.port, "GET", f"/images/{key}")
    assert whole.status == 200 and whole.body.startswith(b"\x89PNG")
    return key, whole.body


def get_range(server, key, value):
    raw = (f"GET /images/{key} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
           f"Range: {value}\r\n\r\n").encode()
    with rawhttp.connect(server.port) as sock:
        rawhttp.send_all(sock, raw)
        return rawhttp.read_exchange(sock, wait=5.0, expect=1)


def test_first_ten_bytes(shared_server, image, figures):
    key, whole = image
    result = get_range(shared_server, key, "bytes=0-9")
    response = result.first
    figures.update(status=response and response.status, image_bytes=len(whole))
    assert response is not None and response.status == 206, response
    assert response.body == whole[:10]
    assert response.header("content-range") == f"bytes 0-9/{len(whole)}"


def test_suffix_range(shared_server, image, figures):
    key, whole = image
    result = get_range(shared_server, key, "bytes=-5")
    response = result.first
    figures.update(status=response and response.status)
    assert response is not None and response.status == 206, response
    assert response.body == whole[-5:]
    n = len(whole)
    assert response.header("content-range") == f"bytes {n - 5}-{n - 1}/{n}"


def test_overlapping_ranges_are_not_amplified(shared_server, image, figures):
    key, whole = image
    ranges = "bytes=" + ",".join(["0-"] * 2700)
    result = get_range(shared_server, key, ranges)
    response = result.first
    figures.update(status=response and response.status, response_bytes=result.received,
                   image_bytes=len(whole), header_bytes=len(ranges))
    assert response is not None, f"no response ({result.received} bytes received)"
    assert response.status in (200, 416), response.status
    assert result.received <= len(whole) + 1024, f"{result.received} bytes for a {len(whole)} image"
    if response.status == 200:
        assert response.body == whole


def test_unsatisfiable_range_gets_416(shared_server, image, figures):
    key, whole = image
    result = get_range(shared_server, key, "bytes=999999-")
    figures.update(status=result.first and result.first.status)
    assert result.first is not None and result.first.status == 416, result.first
