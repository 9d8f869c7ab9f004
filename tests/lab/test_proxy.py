"""The apt proxy forwards to allowed endpoints only, keeping HTTP framing intact."""

from __future__ import annotations

import http.client
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.lab.proxy import AllowListProxy

BODY = b"Package: containerd\n" * 100


class Origin(BaseHTTPRequestHandler):
    """A mirror stand-in: /sized answers with Content-Length, /unsized by closing."""

    protocol_version = "HTTP/1.1"

    def do_GET(self):
        self.send_response(200)
        if self.path == "/sized":
            self.send_header("Content-Length", str(len(BODY)))
        else:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command == "GET":
            self.wfile.write(BODY)

    do_HEAD = do_GET

    def log_message(self, *args):
        pass


def serve(server: ThreadingHTTPServer):
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture(scope="module")
def origin():
    with serve(ThreadingHTTPServer(("127.0.0.1", 0), Origin)) as server:
        yield f"127.0.0.1:{server.server_address[1]}"
        server.shutdown()


@pytest.fixture(scope="module")
def proxy(origin):
    handler = type("Handler", (AllowListProxy,), {"allowed": frozenset({origin})})
    handler.log_message = lambda *args: None
    with serve(ThreadingHTTPServer(("127.0.0.1", 0), handler)) as server:
        yield server.server_address
        server.shutdown()


def request(proxy, method: str, url: str) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection(*proxy, timeout=10)
    try:
        connection.request(method, url)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


@pytest.mark.parametrize("path", ["/sized", "/unsized"])
def test_get_to_an_allowed_endpoint_is_forwarded_whole(proxy, origin, path):
    assert request(proxy, "GET", f"http://{origin}{path}") == (200, BODY)


def test_head_is_forwarded_without_a_body(proxy, origin):
    assert request(proxy, "HEAD", f"http://{origin}/sized") == (200, b"")


def test_requests_share_one_kept_alive_client_connection(proxy, origin):
    connection = http.client.HTTPConnection(*proxy, timeout=10)
    for path in ("/sized", "/unsized", "/sized"):
        connection.request("GET", f"http://{origin}{path}")
        assert connection.getresponse().read() == BODY
    connection.close()


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:9/sized", "http://localhost:{port}/sized", "/sized"]
)
def test_anything_else_is_refused(proxy, origin, url):
    port = origin.rsplit(":", 1)[1]
    assert request(proxy, "GET", url.format(port=port))[0] == 403


def tunnel_status(proxy, target: str) -> tuple[int, socket.socket]:
    conn = socket.create_connection(proxy, timeout=10)
    conn.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += conn.recv(1)
    return int(head.split()[1]), conn


def test_connect_tunnels_to_an_allowed_endpoint(proxy, origin):
    status, conn = tunnel_status(proxy, origin)
    with conn:
        assert status == 200
        conn.sendall(b"GET /sized HTTP/1.1\r\nHost: origin\r\nConnection: close\r\n\r\n")
        answer = b""
        while data := conn.recv(65536):
            answer += data
    assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(BODY)


def test_connect_to_any_other_endpoint_is_refused(proxy):
    status, conn = tunnel_status(proxy, "127.0.0.1:9")
    conn.close()
    assert status == 403
