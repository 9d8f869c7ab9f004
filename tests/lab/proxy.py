"""An HTTP forward proxy for apt in the lab's nodes that reaches only the host's apt sources.

Standard library only, so it runs as a plain script:

    python proxy.py --listen 10.213.47.1:3142 --allow HOST:80 [--allow HOST:443 ...]

Plain ``GET``/``HEAD`` requests in absolute form are forwarded when their ``host:port`` is
allowed; ``CONNECT`` (https sources) is tunnelled under the same rule. Everything else gets
403 and a "refused" line in the log, so nodes cannot use the proxy to reach anything but the
package mirrors.
"""

from __future__ import annotations

import argparse
import http.client
import selectors
import socket
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

# Headers that describe one connection, not the resource; never passed on.
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
_CHUNK = 64 * 1024
_IDLE_SECONDS = 300


class AllowListProxy(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = _IDLE_SECONDS
    allowed: frozenset[str] = frozenset()

    def setup(self) -> None:
        super().setup()
        self.upstreams: dict[str, http.client.HTTPConnection] = {}

    def finish(self) -> None:
        for connection in self.upstreams.values():
            connection.close()
        super().finish()

    def refuse(self, target: str) -> None:
        self.log_message("refused %s %s", self.command, target)
        self.send_error(403, "Not an apt source of the lab host")

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.scheme != "http" or not url.hostname:
            self.refuse(self.path)
            return
        endpoint = f"{url.hostname}:{url.port or 80}"
        if endpoint not in self.allowed:
            self.refuse(self.path)
            return
        path = url.path or "/"
        if url.query:
            path += "?" + url.query
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
        headers["Host"] = url.netloc
        try:
            response = self.fetch(endpoint, path, headers)
        except (OSError, http.client.HTTPException) as exc:
            self.log_message("upstream %s failed: %s", endpoint, exc)
            self.send_error(502, f"upstream {endpoint} failed")
            return
        self.relay_response(response)

    do_HEAD = do_GET

    def fetch(self, endpoint: str, path: str, headers: dict) -> http.client.HTTPResponse:
        """The upstream response, on this client's kept-alive connection to ``endpoint``."""
        reused = endpoint in self.upstreams
        if not reused:
            host, port = endpoint.rsplit(":", 1)
            self.upstreams[endpoint] = http.client.HTTPConnection(host, int(port), timeout=60)
        connection = self.upstreams[endpoint]
        try:
            connection.request(self.command, path, headers=headers)
            return connection.getresponse()
        except (OSError, http.client.HTTPException):
            connection.close()
            del self.upstreams[endpoint]
            if not reused:
                raise
            # The server closed the kept-alive connection meanwhile: once more, afresh.
            return self.fetch(endpoint, path, headers)

    def relay_response(self, response: http.client.HTTPResponse) -> None:
        self.send_response(response.status, response.reason)
        has_body = self.command != "HEAD" and response.status not in (204, 304)
        length = response.getheader("Content-Length")
        chunked = has_body and (length is None or response.chunked)
        for name, value in response.getheaders():
            lowered = name.lower()
            if lowered in _HOP_BY_HOP or (chunked and lowered == "content-length"):
                continue
            self.send_header(name, value)
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        if not has_body:
            return
        while data := response.read(_CHUNK):
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data) if chunked else data)
        if chunked:
            self.wfile.write(b"0\r\n\r\n")

    def do_CONNECT(self) -> None:
        if self.path not in self.allowed:
            self.refuse(self.path)
            return
        host, port = self.path.rsplit(":", 1)
        try:
            upstream = socket.create_connection((host, int(port)), timeout=60)
        except OSError as exc:
            self.log_message("upstream %s failed: %s", self.path, exc)
            self.send_error(502, f"upstream {self.path} failed")
            return
        self.send_response(200, "Connection established")
        self.end_headers()
        with upstream:
            tunnel(self.connection, upstream)
        self.close_connection = True


def tunnel(client: socket.socket, upstream: socket.socket) -> None:
    """Copy bytes both ways until one side closes or both stay idle too long."""
    with selectors.DefaultSelector() as selector:
        selector.register(client, selectors.EVENT_READ, upstream)
        selector.register(upstream, selectors.EVENT_READ, client)
        while events := selector.select(timeout=_IDLE_SECONDS):
            for key, _ in events:
                data = key.fileobj.recv(_CHUNK)
                if not data:
                    return
                key.data.sendall(data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", required=True, help="ADDRESS:PORT to listen on")
    parser.add_argument("--allow", action="append", default=[], help="HOST:PORT to forward to")
    args = parser.parse_args()
    address, port = args.listen.rsplit(":", 1)
    handler = type("Handler", (AllowListProxy,), {"allowed": frozenset(args.allow)})
    server = ThreadingHTTPServer((address, int(port)), handler)
    server.daemon_threads = True
    print(f"apt proxy on {args.listen}, allowed: {' '.join(sorted(args.allow))}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
