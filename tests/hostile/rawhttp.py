"""HTTP/1.1 over raw sockets, for the hostile-client suite: exact bytes out, and the responses
read back byte by byte so that what the server did with the connection (answered once, answered
twice, closed, reset, kept open) is visible to the test. No HTTP library is involved: a library
would normalise exactly the malformed input these tests are about."""
import dataclasses
import socket
import time


@dataclasses.dataclass
class Response:
    status: int
    reason: str
    headers: list  # [(lower-case name, value)] in order
    body: bytes

    def header(self, name, default=None):
        for key, value in self.headers:
            if key == name.lower():
                return value
        return default

    def error_code(self):
        """The taxonomy code of a {"error":{"code":...}} body, or None."""
        import json
        try:
            return json.loads(self.body)["error"]["code"]
        except (ValueError, KeyError, TypeError):
            return None


@dataclasses.dataclass
class Exchange:
    """What came back on one connection before it closed or the wait ran out."""
    responses: list
    closed: bool      # the server closed (FIN or reset) before the wait ran out
    reset: bool       # ... with a reset
    elapsed: float    # seconds from the start of the read to close (or to the end of the wait)
    leftover: bytes   # bytes that did not parse as a complete response
    received: int = 0  # bytes read off the socket in all

    @property
    def first(self):
        return self.responses[0] if self.responses else None


def connect(port, timeout=5.0):
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def send_all(sock, data):
    """Sends what the server lets us send; returns False if it closed on us first."""
    try:
        sock.sendall(data)
        return True
    except (BrokenPipeError, ConnectionResetError):
        return False


class _Parser:
    """Incremental parser of HTTP/1.1 responses (Content-Length, chunked, or read-to-close)."""

    def __init__(self, head_request=False):
        self.buf = b""
        self.responses = []
        self.head_request = head_request

    def feed(self, data):
        self.buf += data
        while True:
            parsed = self._one()
            if parsed is None:
                return
            self.responses.append(parsed)

    def _one(self):
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return None
        head = self.buf[:end].decode("latin-1").split("\r\n")
        status_line = head[0].split(" ", 2)
        if len(status_line) < 2 or not status_line[0].startswith("HTTP/"):
            raise ValueError(f"not an HTTP response: {head[0]!r}")
        status = int(status_line[1])
        headers = []
        for line in head[1:]:
            name, _, value = line.partition(":")
            headers.append((name.strip().lower(), value.strip()))
        names = dict(headers)
        rest = self.buf[end + 4:]
        no_body = self.head_request or status in (204, 304) or 100 <= status < 200
        if no_body:
            body, used = b"", 0
        elif "chunked" in names.get("transfer-encoding", "").lower():
            decoded = _dechunk(rest)
            if decoded is None:
                return None
            body, used = decoded
        elif "content-length" in names:
            length = int(names["content-length"])
            if len(rest) < length:
                return None
            body, used = rest[:length], length
        else:
            return None  # read to close: finished by close()
        self.buf = rest[used:]
        return Response(status, status_line[2] if len(status_line) > 2 else "", headers, body)

    def close(self):
        """At connection close a response without length ends here."""
        end = self.buf.find(b"\r\n\r\n")
        if end >= 0 and self.buf.startswith(b"HTTP/"):
            head = self.buf[:end].decode("latin-1").split("\r\n")
            names = {l.partition(":")[0].strip().lower() for l in head[1:]}
            if "content-length" not in names and "transfer-encoding" not in names:
                status_line = head[0].split(" ", 2)
                headers = [(l.partition(":")[0].strip().lower(), l.partition(":")[2].strip())
                           for l in head[1:]]
                self.responses.append(Response(int(status_line[1]), status_line[-1], headers,
                                               self.buf[end + 4:]))
                self.buf = b""


def _dechunk(data):
    body, pos = b"", 0
    while True:
        line_end = data.find(b"\r\n", pos)
        if line_end < 0:
            return None
        size = int(data[pos:line_end].split(b";")[0], 16)
        pos = line_end + 2
        if size == 0:
            trailer_end = data.find(b"\r\n\r\n", pos - 2)
            if trailer_end < 0:
                return None
            return body, trailer_end + 4
        if len(data) < pos + size + 2:
            return None
        body += data[pos:pos + size]
        pos += size + 2


def read_exchange(sock, wait=2.0, expect=None, head_request=False):
    """Reads responses until the server closes, `wait` seconds pass, or (if `expect` is given)
    that many responses have arrived. Never raises for what the server does."""
    parser = _Parser(head_request)
    start = time.monotonic()
    deadline = start + wait
    closed = reset = False
    received = 0
    while True:
        if expect is not None and len(parser.responses) >= expect:
            break
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        sock.settimeout(remaining)
        try:
            data = sock.recv(65536)
        except socket.timeout:
            break
        except ConnectionResetError:
            closed = reset = True
            break
        if not data:
            closed = True
            break
        received += len(data)
        try:
            parser.feed(data)
        except ValueError:
            break
    if closed:
        parser.close()
    return Exchange(parser.responses, closed, reset, time.monotonic() - start, parser.buf,
                    received)


def wait_closed(sock, wait):
    """Seconds until the server closes the connection (data is read and dropped), or None."""
    start = time.monotonic()
    deadline = start + wait
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        sock.settimeout(remaining)
        try:
            if not sock.recv(65536):
                return time.monotonic() - start
        except socket.timeout:
            return None
        except ConnectionResetError:
            return time.monotonic() - start


def request(port, method, path, headers=(), body=b"", wait=10.0):
    """One well-formed request on a fresh connection; returns the first Response (or None)."""
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in headers]
    if body or method in ("POST", "PUT"):
        lines.append(f"Content-Length: {len(body)}")
    raw = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
    with connect(port, timeout=wait) as sock:
        send_all(sock, raw)
        return read_exchange(sock, wait=wait, expect=1, head_request=method == "HEAD").first
