"""A tiny real HTTP server sending canned bytes, for what the simulator cannot send: a
Content-Length that lies, a gzip bomb, an undecodable body, a redirect, a body that stalls or is
cut short, a status line that is not HTTP. Each reply is chosen by the first path segment (`/<case>/...`); every request's path
is recorded, so a test can tell a redirect was not followed."""

from __future__ import annotations

import gzip
import socketserver
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

JSON_OK = (
    b'{"id":"chatcmpl-raw","object":"chat.completion","model":"test-model","choices":[{"index":0,'
    b'"message":{"role":"assistant","content":"raw hello"},"finish_reason":"stop"}],'
    b'"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}'
)
BOMB = gzip.compress(b"\0" * 5_000_000)  # ~5 kB on the wire, 5 MB decoded


def _head(status: str, *headers: str) -> bytes:
    lines = [f"HTTP/1.1 {status}", *headers, "connection: close", "", ""]
    return "\r\n".join(lines).encode()


def _stall(write: Callable[[bytes], None]) -> None:
    write(_head("200 OK", "content-type: application/json", "content-length: 500") + b"{")
    time.sleep(3)  # longer than the test's timeout_s: no byte arrives in time


CASES: dict[str, Callable[[Callable[[bytes], None]], None]] = {
    "ok_gzip": lambda w: w(
        _head("200 OK", "content-type: application/json", "content-encoding: gzip")
        + gzip.compress(JSON_OK)
    ),
    "declared_huge": lambda w: w(
        _head("200 OK", "content-type: application/json", "content-length: 400000000") + b"{"
    ),
    "gzip_bomb": lambda w: w(
        _head("200 OK", "content-type: application/json", "content-encoding: gzip") + BOMB
    ),
    "bad_gzip": lambda w: w(
        _head("200 OK", "content-type: application/json", "content-encoding: gzip") + b"not gz"
    ),
    "redirect": lambda w: w(
        _head("302 Found", "location: /landing/chat/completions", "content-length: 0")
    ),
    "redirect_307": lambda w: w(
        _head("307 Temporary Redirect", "location: /landing/x", "content-length: 0")
    ),
    "truncated": lambda w: w(
        _head("200 OK", "content-type: application/json", "content-length: 1000") + b'{"id":'
    ),
    "stall": _stall,
    "bad_http": lambda w: w(b"HTTP/1.1 two hundred\r\nthis is not a header\r\n\r\n"),
    "landing": lambda w: w(_head("200 OK", "content-type: application/json") + JSON_OK),
}


class _Handler(socketserver.StreamRequestHandler):
    server: _Server

    def handle(self) -> None:
        request_line = self.rfile.readline().decode("latin-1")
        length = 0
        while (line := self.rfile.readline()) not in (b"\r\n", b"\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        self.rfile.read(length)
        path = request_line.split(" ")[1] if " " in request_line else "/"
        self.server.paths.append(path)
        case = CASES.get(path.strip("/").split("/")[0])
        try:
            if case is None:
                self.wfile.write(_head("404 Not Found", "content-length: 0"))
            else:
                case(self.wfile.write)
            self.wfile.flush()
        except OSError:
            pass  # the client gave up first, as it may


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.paths: list[str] = []

    def base(self, case: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/{case}"


@contextmanager
def raw_server() -> Iterator[_Server]:
    server = _Server()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
