"""Registry mirrors and credentials: one /etc/containerd/certs.d/<registry>/hosts.toml per
registry (containerd's docs/hosts.md), read per pull by the CRI (config.toml's config_path)
and by the sandbox image guard (`ctr images pull --hosts-dir`); no restart needed.

Each mirror is a [host."<url>"] entry with capabilities pull and resolve, tried in order,
with `server` = the upstream registry as the fallback.

Credentials (settings.registry_auth, per registry or mirror host) go into the hosts.toml of
that host as an `Authorization: Basic` header. hosts.toml has no username/password fields in
containerd 1.6 to 2.2 (only a header table), and the CRI's registry.configs auth in
config.toml is deprecated, is not used by containerd 2.x for the sandbox image it pulls
itself, and is invisible to `ctr`, which could only take them on its command line. A
header is sent only to its own host, works the same for the CRI and `ctr` on every
supported containerd, and needs no restart when a password changes; it suits registries
that accept HTTP Basic on the v2 API (distribution's htpasswd, Harbor, Nexus,
Artifactory). The files are root-only (0600) and written without being printed.
"""

from __future__ import annotations

import base64
from urllib.parse import urlsplit

from deploys.runtime import toml_text
from deploys.runtime.config import CERTS_DIR
from deploys.settings import Settings

# Docker Hub's registry name and the host that serves its API.
DOCKER_HUB = "docker.io"
DOCKER_HUB_SERVER = "https://registry-1.docker.io"
# What a mirror may do: kubelet and the guard only pull.
MIRROR_CAPABILITIES = ["pull", "resolve"]

_HEADER = "# Written by pyinfra-kubeadm (deploys/runtime/registries.py) from the cluster file.\n"


def upstream(registry: str) -> str:
    """The URL of a registry's own API server, the fallback after its mirrors."""
    return DOCKER_HUB_SERVER if registry == DOCKER_HUB else f"https://{registry}"


def hosts_path(registry: str) -> str:
    return f"{CERTS_DIR}/{registry}/hosts.toml"


def basic_authorization(auth: dict) -> str:
    """The `Authorization` header value for {username: ..., password: ...}."""
    pair = f"{auth['username']}:{auth['password']}".encode()
    return "Basic " + base64.b64encode(pair).decode()


def hosts_toml(registry: str, mirrors: list[str], registry_auth: dict) -> str:
    """The hosts.toml of `registry`: its mirrors in order, then the registry itself."""

    def credentials(*names: str) -> dict:
        auth = next((registry_auth[n] for n in names if n in registry_auth), None)
        return {"header": {"Authorization": [basic_authorization(auth)]}} if auth else {}

    server = upstream(registry)
    server_credentials = credentials(registry, urlsplit(server).netloc)
    hosts = {
        url: {"capabilities": MIRROR_CAPABILITIES, **credentials(urlsplit(url).netloc)}
        for url in mirrors
    }
    # A file without any [host] table is rejected by containerd 1.6's hosts.toml parser, and
    # its server credentials ignored with it: a registry without mirrors lists itself.
    own = {server: {"capabilities": MIRROR_CAPABILITIES, **server_credentials}}
    doc = {"server": server, **server_credentials, "host": hosts or own}
    return _HEADER + "\n" + toml_text.dumps(doc)


def registry_files(settings: Settings) -> dict[str, str]:
    """{remote path: content} of every hosts.toml: one per registry with mirrors, and one
    per registry with credentials that is pulled from directly (not a mirror)."""
    mirrors = {r: [m.rstrip("/") for m in urls] for r, urls in settings.registry_mirrors.items()}
    mirror_hosts = {urlsplit(url).netloc for urls in mirrors.values() for url in urls}
    for host in settings.registry_auth:
        if host not in mirror_hosts and host not in mirrors:
            mirrors.setdefault(host, [])
    return {
        hosts_path(registry): hosts_toml(registry, urls, settings.registry_auth)
        for registry, urls in mirrors.items()
    }
