"""Kuboard v3 agent: connects the cluster to a Kuboard server ("add cluster", agent mode).

On the first control plane a root-only curl config holds the URL of the server's
`installAgentToKubernetes` endpoint, token included. When the run executes, the agent
manifest is fetched with that config, its images are moved to the configured mirror by
`rewrite_images`, and the result is written root-only; it is applied only when it changed,
then the run waits for the agent. The token and the manifest are never printed.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from urllib.parse import quote

import yaml
from pyinfra import host
from pyinfra.api import OperationError, QuoteString, StringCommand, deploy, operation
from pyinfra.operations import server

from deploys import secret
from deploys.addons.kubectl import ADDONS_DIR, apply, kubectl
from deploys.context import NodeContext
from deploys.failure import fail
from deploys.kuboard import server_url
from deploys.settings import IMAGE_REPOSITORY, SERVER_URL, Settings

FETCH_CONFIG = f"{ADDONS_DIR}/kuboard-agent.curlrc"
MANIFEST = f"{ADDONS_DIR}/kuboard-agent.yaml"
NAMESPACE = "kuboard"

# An image reference: [registry[:port]/][path/]name[:tag][@digest], e.g.
# swr.cn-east-2.myhuaweicloud.com/kuboard/kuboard-agent:v3 or localhost:5000/a@sha256:...
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REGISTRY = r"(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:]+\])(?::[0-9]+)?"
_IMAGE = re.compile(
    rf"(?:{_REGISTRY}/)?(?:{_COMPONENT}/)*"
    rf"(?P<name>{_COMPONENT}(?::[A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}})?"
    r"(?:@[a-z0-9]+(?:[+._-][a-z0-9]+)*:[0-9a-fA-F]{32,})?)"
)
# What the cluster name and token may hold: they are parts of the agent manifest's URL.
_URL_WORD = re.compile(r"[A-Za-z0-9._~-]+")
# curl's errors for a server certificate it does not trust (exit codes 60 and 35).
_CERTIFICATE_ERROR = re.compile(r"curl: \((60|35)\)|SSL certificate problem|certificate verify")
_UNTRUSTED = (
    " (the Kuboard server's certificate is not trusted by this host: give the server a "
    "certificate from a CA the host trusts, or set kuboard_tls_verify: false to skip the "
    "check for this fetch)"
)
# Where a Kubernetes object keeps container lists (pods, and the pod templates of workloads).
_CONTAINER_LISTS = ("initContainers", "containers", "ephemeralContainers")


def check_settings(s: Settings) -> Iterator[tuple[str, str]]:
    """(setting, problem) for every Kuboard setting that must be refused."""
    repository = s.kuboard_image_repository
    if repository and not IMAGE_REPOSITORY.fullmatch(repository):
        yield (
            "kuboard_image_repository",
            f"{repository!r} is not a registry prefix like 'ghcr.io/flannel-io'",
        )
    if s.kuboard_server and not SERVER_URL.fullmatch(s.kuboard_server):
        yield "kuboard_server", f"{s.kuboard_server!r} is not like 'http://10.0.0.5:80'"
    if s.kuboard_server and not s.kuboard_agent_token:  # a managed server: see deploys/kuboard
        yield "kuboard_agent_token", "required when kuboard_server is set"
    elif s.kuboard_agent_token and not _URL_WORD.fullmatch(s.kuboard_agent_token):
        yield "kuboard_agent_token", "may hold only letters, digits and . _ ~ -"
    name = s.kuboard_cluster_name
    if (s.kuboard_server or name) and not _URL_WORD.fullmatch(name):
        yield (
            "kuboard_cluster_name",
            f"{name!r}: required with kuboard_server; letters, digits and . _ ~ - only",
        )


def agent_manifest_url(settings: Settings) -> str:
    """The URL Kuboard's "add cluster" page shows for `curl ... > kuboard-agent.yaml`."""
    name = quote(settings.kuboard_cluster_name, safe="")
    token = quote(settings.kuboard_agent_token, safe="")
    return (
        f"{settings.kuboard_server.rstrip('/')}/kuboard-api/cluster/{name}"
        f"/kind/KubernetesCluster/{name}/resource/installAgentToKubernetes?token={token}"
    )


def agent_settings(ctx: NodeContext) -> Settings | None:
    """The settings the agent is imported with: kuboard_server is the managed server's URL
    where a host has the role `kuboard` (deploys/kuboard). None while there is nothing to
    import: no Kuboard server, or a managed one without kuboard_agent_token yet (the
    summary then prints how to get it)."""
    url = server_url(ctx.nodes, ctx.settings)
    if not (url and ctx.settings.kuboard_agent_token):
        return None
    return dataclasses.replace(ctx.settings, kuboard_server=url)


def fetch_config(settings: Settings) -> str:
    """curl's config file for fetching the agent manifest; secret: it holds the token.
    With kuboard_tls_verify false the server's certificate is not verified (curl's
    `insecure`, the -k of Kuboard's own import command), for this fetch only."""
    url = agent_manifest_url(settings)
    if not url.isprintable() or '"' in url or "\\" in url:
        raise ValueError(f"kuboard_server {settings.kuboard_server!r} is not a plain URL")
    return (
        "# curl config: fetch this cluster's Kuboard agent manifest (written by pyinfra-kubeadm).\n"
        "# Root only: the URL carries the agent token.\n"
        f'url = "{url}"\n' + ("" if settings.kuboard_tls_verify else "insecure\n") + "fail\n"
        "silent\n"
        "show-error\n"
        "connect-timeout = 10\n"
        "max-time = 60\n"
    )


def fetch_command(config: str = FETCH_CONFIG) -> StringCommand:
    """The command that prints the agent manifest; the URL and token come from `config`."""
    return StringCommand("curl", "--config", QuoteString(config))


def rendered_files(ctx: NodeContext) -> dict[str, str]:
    """{remote path: content} the Kuboard agent writes before fetching: its fetch config,
    on the first control plane when there is an agent to import."""
    settings = agent_settings(ctx) if ctx.is_first_control_plane else None
    return {FETCH_CONFIG: fetch_config(settings)} if settings else {}


def mirror_image(image: str, repository: str) -> str:
    """`image` moved under `repository`, keeping its name, tag and digest:
    eipwork/kuboard-agent:v3 -> REPOSITORY/kuboard-agent:v3. Empty repository: unchanged."""
    match = _IMAGE.fullmatch(image)
    if not match:
        raise ValueError(f"{image!r} is not an image reference")
    return f"{repository}/{match['name']}" if repository else image


def _containers(node):
    """Every container mapping anywhere below `node` (a parsed Kubernetes object)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in _CONTAINER_LISTS and isinstance(value, list):
                yield from (c for c in value if isinstance(c, dict) and "image" in c)
            yield from _containers(value)
    elif isinstance(node, list):
        for item in node:
            yield from _containers(item)


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data):
        return True


def _str(dumper: yaml.SafeDumper, value: str):
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def rewrite_images(manifest: str, repository: str) -> str:
    """The manifest with every container image moved under `repository` (see mirror_image).

    The YAML is parsed, not edited as text: an `image:` in a comment or inside a ConfigMap's
    text is left alone, quoting does not matter. Raises ValueError when the text is not a
    list of Kubernetes objects (e.g. an error page served with status 200); the message
    never quotes the text, which may hold credentials.
    """
    try:
        documents = [d for d in yaml.safe_load_all(manifest) if d is not None]
    except yaml.YAMLError:
        raise ValueError("the Kuboard agent manifest is not valid YAML") from None
    if not documents:
        raise ValueError("the Kuboard agent manifest is empty")
    for number, document in enumerate(documents, 1):
        if not (isinstance(document, dict) and "kind" in document and "apiVersion" in document):
            raise ValueError(f"document {number} of the Kuboard agent manifest is not an object")
        for container in _containers(document):
            if not isinstance(container["image"], str):
                raise ValueError(f"document {number}: a container's image is not a string")
            container["image"] = mirror_image(container["image"], repository)
    return yaml.dump_all(documents, Dumper=_Dumper, sort_keys=False, explicit_start=True)


@operation()
def agent_manifest(image_repository: str):
    """Fetch the agent manifest with the fetch config, rewrite its images for the mirror and
    converge the root-only manifest file to the result.

    The manifest is fetched when the run executes (the fetch config is written by the
    operation before this one); while the run is only being planned there is nothing to do.

    + image_repository: registry prefix for the agent's images; empty: unchanged
    """
    if not host.state.is_executing:
        host.noop("the Kuboard agent manifest is fetched when the run executes")
        return
    try:
        fetched = secret.output(fetch_command(), "fetching the Kuboard agent manifest")
    except OperationError as exc:
        yield fail(str(exc) + (_UNTRUSTED if _CERTIFICATE_ERROR.search(str(exc)) else ""))
        return
    try:
        manifest = rewrite_images(fetched, image_repository)
    except ValueError as exc:
        yield fail(f"{exc} (fetched from kuboard_server)")
        return
    yield from secret.put._inner(dest=MANIFEST, content=manifest)


def fetch_agent(s: Settings):
    """Write the fetch config, then fetch the agent manifest into MANIFEST (root only); the
    fetch operation, which changed when the manifest did."""
    secret.put(name="kuboard: write agent fetch config", dest=FETCH_CONFIG, content=fetch_config(s))
    return agent_manifest(
        name="kuboard: fetch agent manifest", image_repository=s.kuboard_image_repository
    )


@deploy("Kuboard agent")
def converge_kuboard_agent(s: Settings):
    """Import the cluster into the Kuboard server: `s` from agent_settings."""
    written = fetch_agent(s)
    applied = server.shell(
        name="kuboard: apply agent manifest", commands=[apply(MANIFEST)], _if=written.did_change
    )
    server.shell(
        name="kuboard: wait for agent",
        commands=[
            kubectl(
                "-n",
                NAMESPACE,
                "wait",
                "--for=condition=Available",
                "deployment",
                "--all",
                f"--timeout={s.ready_timeout}s",
            )
        ],
        _if=applied.did_change,
    )
