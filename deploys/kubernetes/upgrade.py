"""Upgrades: a changed `kubernetes_version` on a running cluster, converged the way kubeadm
documents it ("Upgrading kubeadm clusters", kubernetes.io/docs/tasks/administer-cluster/
kubeadm/kubeadm-upgrade/), one minor at a time.

The decision is pure (`plan`, `refusal`) and tested in tests/unit/test_upgrade.py; the
deploy reads every version from the nodes, never from the cluster file:

- the control plane's version on each control plane: the kube-apiserver image tag of its
  static pod manifest (ControlPlaneVersion);
- each node's kubeadm, kubelet and kubectl: the installed packages;
- the package version of an intermediate minor: the newest patch in that minor's
  repository (RepositoryVersions: pkgs.k8s.io keeps one repository per minor,
  <base>/v1.NN/deb/, whose flat `Packages` index lists every kubeadm of the minor), or the
  cluster file's `upgrade_path`.

kubeadm refuses to skip a minor ("Skipping MINOR versions when upgrading is unsupported",
the page above; `kubeadm upgrade apply` checks the target against its own version and
the cluster's), so 1.33 -> 1.35 walks 1.34 first. Per step, on the control planes one at a
time (a serial operation, the first control plane first): kubeadm of the step installed
from its minor's repository (unhold, pin, hold), then `kubeadm upgrade plan` and `kubeadm
upgrade apply -y vX` on the first control plane, `kubeadm upgrade node` on the others.
The kubelets follow once, to the target, through deploys/kubernetes/drain.roll (drain,
kubelet and kubectl unhold-pin-hold, restart, Ready at the new version, uncordon; workers
also run `kubeadm upgrade node`, which rewrites their kubelet configuration): the skew
policy lets a kubelet be up to three minors older than the API server (kubernetes.io/
releases/version-skew-policy, from 1.28), so a walk of up to three minors never breaks
it; a longer walk is refused.

What the new release needs of the nodes follows in the same run, before these steps: the
runtime concern renders containerd's sandbox image with the new minor's pause tag
(versions.PAUSE_TAGS; the guard unit with it), and kubeadm's files on disk are rendered for
the new release (its kubeadm.k8s.io API version included). The cluster's own stored
configuration (the kubeadm-config ConfigMap) is kubeadm's: each `kubeadm upgrade apply`
reads its predecessor's and stores it in its own API version, which is why one minor at a
time keeps it readable. containerd 1.x under 1.36 or later is refused by preflight, on
every host before any change, as for a new cluster.

Before the first `kubeadm upgrade apply` an etcd snapshot is saved on the first control
plane with the etcdctl of the running etcd container, in a root-only directory that keeps
the last three.
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass

from pyinfra.api import FactBase, QuoteString, StringCommand

from deploys import versions
from deploys.distro import apt
from deploys.kubernetes.kubeadm_config import APISERVER_MANIFEST

PACKAGES = ("kubeadm", "kubelet", "kubectl")
# The skew policy: a kubelet may be up to three minors older than kube-apiserver (1.28+).
MAX_MINORS = 3
SNAPSHOT_DIR = "/var/lib/pyinfra-kubeadm/etcd-snapshots"
SNAPSHOTS_KEPT = 3
_PACKAGE_VERSION = re.compile(r"^(\d+\.\d+\.\d+)-[0-9A-Za-z.+~]+$")


class UpgradeRefused(ValueError):
    """An upgrade that must not start: the message says why and what to do."""


@dataclass(frozen=True)
class Step:
    version: str  # "1.34.3"
    package: str  # the apt version pinned, "1.34.3-1.1"


def key(version: str) -> tuple[int, int, int]:
    return versions.parse_version(version)


def package_release(package_version: str) -> str:
    """ "1.34.3" of the apt version "1.34.3-1.1"; "" for anything else."""
    match = _PACKAGE_VERSION.match(package_version or "")
    return match[1] if match else ""


def newest_patch(package_versions, minor: int) -> str:
    """The newest apt version of Kubernetes 1.<minor> among `package_versions`; ""."""
    found = [v for v in package_versions if package_release(v)]
    found = [v for v in found if key(package_release(v))[:2] == (1, minor)]
    return max(found, key=lambda v: key(package_release(v)), default="")


def plan(
    current: str,
    target: str,
    revision: str,
    upgrade_path: list[str] | tuple[str, ...] = (),
    repository: dict[int, list[str]] | None = None,
) -> tuple[Step, ...]:
    """The control-plane versions to apply, in order, from `current` (the oldest control
    plane) to `target`: () when nothing is to do; one step for a patch or the next minor;
    one per minor for several, each intermediate from `upgrade_path` or else the newest
    patch in `repository` ({minor: [apt versions of kubeadm]}). UpgradeRefused for a
    downgrade, an unsupported release, more minors than the skew policy allows, or an
    intermediate minor whose version is unknown."""
    now, wanted = key(current), key(target)
    if wanted == now:
        return ()
    if wanted < now:
        raise UpgradeRefused(
            f"the cluster runs Kubernetes {current} and the cluster file asks for {target}: "
            "a downgrade, which kubeadm does not do. Set kubernetes_version to "
            f"{current} or later."
        )
    for version, what in ((current, "the cluster runs"), (target, "the target is")):
        try:
            versions.check_kubernetes_version(version)
        except ValueError as exc:
            raise UpgradeRefused(f"{what} {version}: {exc}") from None
    minors = wanted[1] - now[1]
    if minors > MAX_MINORS:
        raise UpgradeRefused(
            f"{current} -> {target} crosses {minors} minors; the kubelets follow once the "
            f"control plane is upgraded, and may be at most {MAX_MINORS} minors older than "
            f"it (the version skew policy). Upgrade to 1.{now[1] + MAX_MINORS} first."
        )
    by_minor = {key(v)[1]: v for v in upgrade_path}
    steps = []
    for minor in range(now[1] + 1, wanted[1]):
        if minor in by_minor:
            steps.append(Step(by_minor[minor], f"{by_minor[minor]}-{revision}"))
            continue
        package = newest_patch((repository or {}).get(minor, []), minor)
        if not package:
            raise UpgradeRefused(
                f"{current} -> {target} goes through Kubernetes 1.{minor} (kubeadm upgrades "
                f"one minor at a time), and its repository lists no kubeadm 1.{minor}: set "
                f"upgrade_path to the 1.{minor} release to use, e.g. ['1.{minor}.0']."
            )
        steps.append(Step(package_release(package), package))
    return (*steps, Step(target, f"{target}-{revision}"))


def path_problems(upgrade_path: list, target: str) -> list[str]:
    """What is wrong with an `upgrade_path` setting: versions, one per minor, each below
    the target's minor."""
    problems, minors = [], set()
    for version in upgrade_path:
        try:
            _, minor, _ = versions.check_kubernetes_version(str(version))
        except ValueError as exc:
            problems.append(str(exc))
            continue
        if minor in minors:
            problems.append(f"two versions of 1.{minor}: give one per minor")
        if minor >= key(target)[1]:
            problems.append(f"{version} is not below kubernetes_version's minor ({target})")
        minors.add(minor)
    return problems


def lines(
    current: str, steps: tuple[Step, ...], first: str, others, rolled, snapshot: str = ""
) -> list[str]:
    """The plan as printed before the upgrade starts (and by --dry): every step, every
    node in order; `snapshot`: the etcd snapshot's path, if one is taken."""
    if not steps:
        return []
    out = [f"upgrade plan: Kubernetes {current} -> {steps[-1].version}"]
    if snapshot:
        out.append(f"  etcd snapshot on {first}: {snapshot} (the last {SNAPSHOTS_KEPT} kept)")
    for step in steps:
        out.append(f"  {step.version}: kubeadm {step.package}; on {first} kubeadm upgrade apply")
        for name in others:
            out.append(f"  {step.version}: on {name} kubeadm upgrade node")
    for group in rolled:
        out.append(
            f"  {', '.join(group)}: drain, kubelet and kubectl {steps[-1].package}, restart, "
            "Ready, uncordon"
        )
    return out


class ControlPlaneVersion(FactBase):
    """The Kubernetes version of this control plane's API server ("1.35.9"), from its static
    pod manifest's image tag; "" where there is none."""

    def command(self) -> str:
        return (
            f"grep -o 'kube-apiserver:v[0-9][0-9.]*' {APISERVER_MANIFEST} 2>/dev/null "
            "| head -n1 || true"
        )

    def process(self, output):
        text = "".join(output).strip()
        return text.split(":v", 1)[1] if ":v" in text else ""


class RepositoryVersions(FactBase):
    """The kubeadm apt versions a per-minor repository lists (its flat `Packages` index),
    read from this host; [] when it cannot be read."""

    def command(self, url: str) -> str:
        index = QuoteString(f"{url}Packages")
        return str(
            StringCommand(
                "curl -fsSL",
                index,
                '2>/dev/null | awk \'/^Package:/ {p = $2} /^Version:/ && p == "kubeadm" '
                "{print $2}' || true",
            ).get_raw_value()
        )

    def process(self, output):
        return [line.strip() for line in output if line.strip()]


def kubeadm_commands(step: Step, source: str, source_path: str) -> list[StringCommand]:
    """Install the step's kubeadm from its minor's repository: the apt source (`source`,
    byte for byte what "kubernetes: write apt source" writes for that minor), an index
    update, unhold, pinned install, hold."""
    return [
        StringCommand("printf '%s'", QuoteString(source), ">", QuoteString(source_path)),
        StringCommand("apt-get update -qq"),
        StringCommand("apt-mark unhold kubeadm"),
        StringCommand(
            "DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --allow-downgrades",
            apt.REPLACE_HELD,
            QuoteString(apt.spec("kubeadm", step.package)),
        ),
        StringCommand(apt.hold_command(["kubeadm"])),
    ]


def apply_commands(version: str) -> list[StringCommand]:
    """On the first control plane: what kubeadm plans, then the upgrade itself."""
    return [
        StringCommand("kubeadm upgrade plan", QuoteString(f"v{version}")),
        StringCommand("kubeadm upgrade apply -y", QuoteString(f"v{version}")),
    ]


def node_command() -> StringCommand:
    return StringCommand("kubeadm upgrade node")


def kubelet_commands(package: str) -> list[StringCommand]:
    """kubelet and kubectl unheld, pinned, held again; the kubelet restarted."""
    pins = [QuoteString(apt.spec(p, package)) for p in ("kubelet", "kubectl")]
    return [
        StringCommand("apt-mark unhold kubelet kubectl"),
        StringCommand(
            "DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --allow-downgrades",
            apt.REPLACE_HELD,
            *pins,
        ),
        StringCommand(apt.hold_command(["kubelet", "kubectl"])),
        StringCommand("systemctl daemon-reload && systemctl restart kubelet"),
    ]


def snapshot_path(version: str, moment: datetime.datetime) -> str:
    """Where the snapshot taken before upgrading to `version` at `moment` (UTC) goes."""
    return f"{SNAPSHOT_DIR}/etcd-before-v{version}-{moment:%Y%m%dT%H%M%SZ}.db"


def snapshot_command(path: str) -> StringCommand:
    """An etcd snapshot with the etcdctl of the running etcd container (its data directory
    /var/lib/etcd is mounted from the host), moved into the root-only SNAPSHOT_DIR, the
    oldest beyond the last SNAPSHOTS_KEPT removed. The certificates are kubeadm's etcd
    server pair, as its etcd static pod uses them."""
    inside = "/var/lib/etcd/pyinfra-kubeadm-snapshot.db"
    etcdctl = (
        "etcdctl --endpoints=https://127.0.0.1:2379 --cacert=/etc/kubernetes/pki/etcd/ca.crt "
        "--cert=/etc/kubernetes/pki/etcd/server.crt --key=/etc/kubernetes/pki/etcd/server.key "
        f"snapshot save {inside}"
    )
    return StringCommand(
        f"install -d -m 700 {SNAPSHOT_DIR}",
        f"&& crictl exec \"$(crictl ps --name '^etcd$' -q | head -n1)\" {etcdctl}",
        f"&& mv {inside} {path} && chmod 600 {path}",
        f"&& ls -1t {SNAPSHOT_DIR}/*.db | tail -n +{SNAPSHOTS_KEPT + 1} | xargs -r rm -f",
    )


def _release(installed: dict, package: str) -> str:
    return max((package_release(v) for v in installed.get(package, [])), key=_sort, default="")


def _sort(version: str):
    return key(version) if version else (0, 0, 0)


def upgrade_cluster(ctx, member: bool) -> None:
    """The upgrade of a running cluster to ctx.settings.kubernetes_version (see the module's
    docstring); nothing on a cluster at that version, or one not built yet. Every host runs
    it in the same place: the serial steps on the control planes, then drain.roll."""
    from pyinfra import host
    from pyinfra.api import OperationError
    from pyinfra.operations import python, server

    from deploys.kubernetes import drain, packages

    s, inventory = ctx.settings, host.inventory
    first = ctx.first_control_plane.name
    target = s.kubernetes_version
    at = {
        n.name: inventory.get_host(n.name).get_fact(ControlPlaneVersion) for n in ctx.control_planes
    }
    running = [v for v in at.values() if v]
    if not running:
        return  # no control plane runs yet: the bootstrap builds the cluster at the target
    current = min(running, key=key)
    installed = {p: v for p, v in host.get_fact(apt.InstalledPackages).items() if p in PACKAGES}
    ahead = [
        f"{p} {_release(installed, p)} on {ctx.node.name}"
        for p in PACKAGES
        if member and _release(installed, p) and key(_release(installed, p)) > key(target)
    ]
    ahead += [f"the API server {v} on {n}" for n, v in at.items() if v and key(v) > key(target)]
    if ahead:
        raise OperationError(
            f"{', '.join(ahead)} is newer than kubernetes_version {target}: a downgrade, "
            "which kubeadm does not do. Set kubernetes_version to the release running."
        )
    repository = {}
    given = {key(v)[1] for v in s.upgrade_path}
    for minor in range(key(current)[1] + 1, key(target)[1]):
        if minor not in given and key(target)[1] - key(current)[1] <= MAX_MINORS:
            url = versions.kubernetes_apt_url(s.kubernetes_apt_repo, f"1.{minor}.0")
            repository[minor] = inventory.get_host(first).get_fact(RepositoryVersions, url=url)
    try:
        steps = plan(current, target, s.kubernetes_package_revision, s.upgrade_path, repository)
    except UpgradeRefused as exc:
        raise OperationError(f"upgrade refused: {exc}") from None
    wanted = packages.package_version(s)
    states = inventory.get_host(first).get_fact(drain.NodeStates) or {}
    reported = states.get(ctx.node.name, {}).get("kubelet", "")
    pending = member and (
        any(wanted not in installed.get(p, []) for p in PACKAGES)
        or bool(reported and reported != f"v{target}")
    )
    order = drain.batches(ctx.members, s.upgrade_batch)
    snapshot = ""
    if ctx.is_first_control_plane and key(at[first] or target) < key(target):
        snapshot = snapshot_path(target, datetime.datetime.now(datetime.UTC))
    if ctx.is_first_control_plane and (steps or pending):
        others = [n.name for n in ctx.control_planes if n.name != first]
        planned = steps or (Step(target, wanted),)
        for line in lines(current, planned, first, others, order, snapshot):
            host.log(line)
    source = packages.apt_source(s)
    if steps:
        saved = server.shell(
            name="kubernetes: save etcd snapshot",
            commands=[snapshot_command(snapshot)] if snapshot else [],
        )
        python.call(
            name="kubernetes: report etcd snapshot",
            function=lambda: host.log(f"etcd snapshot saved: {snapshot}"),
            _if=saved.did_change,
        )
    mine = at.get(ctx.node.name, "")
    for step in host.loop(steps):
        commands = []
        if mine and key(mine) < key(step.version):
            step_source = apt.source_line(
                versions.kubernetes_apt_url(s.kubernetes_apt_repo, step.version),
                "/",
                packages.KEYRING,
            )
            commands = kubeadm_commands(step, step_source, packages.SOURCE)
            commands += (
                apply_commands(step.version) if ctx.is_first_control_plane else [node_command()]
            )
        server.shell(name="kubeadm: upgrade control plane", commands=commands, _serial=True)

    def touch() -> list:
        commands = []
        if not ctx.node.is_control_plane:
            commands = kubeadm_commands(Step(target, wanted), source, packages.SOURCE)
            commands.append(node_command())
        else:
            commands.append(StringCommand("apt-get update -qq"))
        return commands + kubelet_commands(wanted)

    drain.roll(
        ctx,
        reason=f"upgrade to {target}",
        pending=pending,
        touch=touch,
        batch=s.upgrade_batch,
        version=target,
    )
