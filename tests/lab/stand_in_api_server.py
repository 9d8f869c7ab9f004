#!/usr/bin/python3
"""Stand-in API server (a test double, NOT kube-apiserver) of the pyinfra-kubeadm lab.

Listens on a control plane's API port over TLS (a self-signed certificate) and answers
GET /livez with 200 "ok", as kube-apiserver answers anonymous health checks, and names
its node in the X-Stand-In-Node header so that a test sees which control plane a request
through the load balancer reached. Everything else: 404. Connections stay open between
requests (HTTP/1.1), so a test can hold one across a reload of the load balancer.

The lab's tests start it on a node (tests/lab/test_api_load_balancer.py: `start`), with
python3 and openssl, which every lab node has:

    python3 stand_in_api_server.py --port 6443 --cert CERT --key KEY
"""

import argparse
import socket
import ssl
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

UNIT = "stand-in-api-server"
DIRECTORY = "/var/lib/pyinfra-kubeadm-stand-in/api-server"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # connections kept open between requests, as clients do

    def do_GET(self):
        found = self.path.split("?")[0] == "/livez"
        body = b"ok" if found else b"not found"
        self.send_response(200 if found else 404)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Stand-In-Node", socket.gethostname())
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class Server(ThreadingHTTPServer):
    address_family = socket.AF_INET
    daemon_threads = True


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    args = parser.parse_args()
    server = Server(("0.0.0.0", args.port), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(args.cert, args.key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    print(f"stand-in API server (test double) on port {args.port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
