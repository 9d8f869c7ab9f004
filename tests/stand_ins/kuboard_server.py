"""A stand-in for a Kuboard v3 server: a small HTTP server (on 127.0.0.1 unless told) that
serves an agent manifest from the `installAgentToKubernetes` endpoint, the way Kuboard's
"add cluster, agent mode" page tells users to fetch it:

    curl 'http://SERVER/kuboard-api/cluster/NAME/kind/KubernetesCluster/NAME/resource/
          installAgentToKubernetes?token=TOKEN' > kuboard-agent.yaml

With `tls=True` (`--tls` for the lab) it serves https with a self-signed certificate made
when it starts, as a Kuboard server whose certificate the hosts do not trust.

It answers 401 for a wrong token and 404 for any other path, and records every request.
The manifest it serves has the shape of a real one (namespace, service accounts, role
bindings, two agent deployments) and carries credentials of its own, so tests can check
that neither they nor the token are ever printed.

The lab runs it as a service on its bridge (the token read from a root-only file):

    python3 kuboard_server.py --listen 10.213.47.1:8090 --cluster-name lab --token-file F
"""

from __future__ import annotations

import argparse
import datetime
import ipaddress
import ssl
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

AGENT_KEY = "stand-in-agent-key-9f8e7d6c5b4a"  # a credential inside the served manifest

AGENT_MANIFEST = f"""\
---
apiVersion: v1
kind: Namespace
metadata:
  name: kuboard
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: kuboard-admin
  namespace: kuboard
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: kuboard-admin-crb
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: cluster-admin
subjects:
  - kind: ServiceAccount
    name: kuboard-admin
    namespace: kuboard
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: kuboard-viewer
  namespace: kuboard
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: kuboard-viewer-crb
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: view
subjects:
  - kind: ServiceAccount
    name: kuboard-viewer
    namespace: kuboard
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: kuboard-agent-{{name}}
  namespace: kuboard
  labels:
    k8s.kuboard.cn/name: kuboard-agent-{{name}}
spec:
  replicas: 1
  selector:
    matchLabels:
      k8s.kuboard.cn/name: kuboard-agent-{{name}}
  template:
    metadata:
      labels:
        k8s.kuboard.cn/name: kuboard-agent-{{name}}
    spec:
      serviceAccountName: kuboard-admin
      containers:
        - name: kuboard-agent
          # image: eipwork/kuboard-agent:v3 (the default when the server has no mirror)
          image: 'eipwork/kuboard-agent:v3'
          imagePullPolicy: IfNotPresent
          env:
            - name: KUBOARD_ENDPOINT
              value: "http://127.0.0.1:80"
            - name: KUBOARD_AGENT_KEY
              value: "{AGENT_KEY}"
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: kuboard-agent-{{name}}-2
  namespace: kuboard
  labels:
    k8s.kuboard.cn/name: kuboard-agent-{{name}}-2
spec:
  replicas: 1
  selector:
    matchLabels:
      k8s.kuboard.cn/name: kuboard-agent-{{name}}-2
  template:
    metadata:
      labels:
        k8s.kuboard.cn/name: kuboard-agent-{{name}}-2
    spec:
      serviceAccountName: kuboard-viewer
      containers:
        - name: kuboard-agent
          image: "eipwork/kuboard-agent:v3"
          env:
            - name: KUBOARD_AGENT_KEY
              value: "{AGENT_KEY}"
"""


class KuboardServerStandIn:
    """Serve `AGENT_MANIFEST` for one cluster name and token; use as a context manager.

    `url` is the server's base URL (the kuboard_server setting), `requests` the paths
    (with query) it was asked for.
    """

    def __init__(
        self,
        cluster_name: str,
        token: str,
        manifest: str | None = None,
        address: tuple[str, int] = ("127.0.0.1", 0),
        tls: bool = False,
    ):
        self.cluster_name = cluster_name
        self.token = token
        self.manifest = AGENT_MANIFEST.replace("{name}", cluster_name.lower())
        if manifest is not None:
            self.manifest = manifest
        self.requests: list[str] = []
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                stand_in.requests.append(self.path)
                status, body = stand_in.answer(self.path)
                self.send_response(status)
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format, *args):  # keep test output quiet
                pass

        self._server = ThreadingHTTPServer(address, Handler)
        self.scheme = "https" if tls else "http"
        if tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            with tempfile.TemporaryDirectory() as directory:
                cert, key = self_signed_certificate(Path(directory), address[0])
                context.load_cert_chain(cert, key)
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"{self.scheme}://{host}:{port}"

    def answer(self, path: str) -> tuple[int, bytes]:
        parts = urlsplit(path)
        name = self.cluster_name
        expected = (
            f"/kuboard-api/cluster/{name}/kind/KubernetesCluster/{name}"
            "/resource/installAgentToKubernetes"
        )
        if parts.path != expected:
            return 404, b"not found\n"
        if parse_qs(parts.query).get("token") != [self.token]:
            return 401, b"invalid token\n"
        return 200, self.manifest.encode()

    def __enter__(self) -> KuboardServerStandIn:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


def self_signed_certificate(directory: Path, address: str) -> tuple[Path, Path]:
    """A certificate for `address` signed by its own key, as PEM files in `directory`."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "stand-in Kuboard server")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(address))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert, key_file = directory / "server.crt", directory / "server.key"
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert, key_file


def main() -> None:
    parser = argparse.ArgumentParser(description="stand-in Kuboard v3 server (test double)")
    parser.add_argument("--listen", required=True, help="address:port")
    parser.add_argument("--cluster-name", required=True)
    parser.add_argument("--token-file", required=True, help="file holding the agent token")
    parser.add_argument("--tls", action="store_true", help="https, self-signed certificate")
    args = parser.parse_args()
    address, port = args.listen.rsplit(":", 1)
    with open(args.token_file, encoding="utf-8") as handle:
        token = handle.read().strip()
    stand_in = KuboardServerStandIn(
        args.cluster_name, token, address=(address, int(port)), tls=args.tls
    )
    print(f"stand-in Kuboard server on {stand_in.url}", flush=True)
    stand_in._server.serve_forever()


if __name__ == "__main__":
    main()
