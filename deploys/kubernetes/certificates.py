"""Control-plane certificates: their earliest expiry in the summary, renewal within
`cert_renew_days`, and an optional monthly systemd timer that does the same without a run.

kubeadm's client and serving certificates last one year ("Certificate Management with
kubeadm", kubernetes/website content/en/docs/tasks/administer-cluster/kubeadm/
kubeadm-certs.md): `kubeadm certs check-expiration` lists them (CERTIFICATE, EXPIRES like
"Dec 30, 2020 23:36 UTC", RESIDUAL TIME, ...; then the CAs, which last ten years and are
not renewed here), `kubeadm certs renew all` renews every one from the CA, and the
control-plane components only read them at start: "you must restart the control plane
Pods ... temporarily remove their manifest files from /etc/kubernetes/manifests/ and wait
20 seconds" (reconfigure.restart_static_pod). One control plane at a time, each waited for.
"""

from __future__ import annotations

import datetime
import io
import re

from pyinfra import host
from pyinfra.api import FactBase, StringCommand
from pyinfra.facts.files import File
from pyinfra.operations import files, server, systemd

from deploys.context import NodeContext
from deploys.kubernetes import reconfigure
from deploys.settings import Settings

STATIC_PODS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "etcd")
_EXPIRES = re.compile(r"^(\S+)\s+([A-Z][a-z]{2} \d{1,2}, \d{4} \d{2}:\d{2} UTC)\s")
_FORMAT = "%b %d, %Y %H:%M UTC"
RENEW_SCRIPT = "/usr/local/sbin/kubeadm-certs-renew"
RENEW_UNIT = "kubeadm-certs-renew"
SYSTEMD_DIR = "/etc/systemd/system"
MAX_RENEW_DAYS = 364  # a renewed certificate lasts 365 days: more would renew every run


class CertificateExpiry(FactBase):
    """On a control plane: {certificate: expiry, ISO 8601 UTC} of the certificates kubeadm
    renews (not the CAs), from `kubeadm certs check-expiration`; None where kubeadm or its
    certificates are not there."""

    def command(self) -> str:
        return "kubeadm certs check-expiration 2>/dev/null || true"

    def process(self, output):
        return parse_expiry(output)


def parse_expiry(lines) -> dict[str, str] | None:
    found = {}
    for line in lines:
        if line.startswith("CERTIFICATE AUTHORITY"):
            break  # the CAs' table: kubeadm does not renew them
        match = _EXPIRES.match(line)
        if match:
            moment = datetime.datetime.strptime(match[2], _FORMAT)
            found[match[1]] = moment.replace(tzinfo=datetime.UTC).isoformat()
    return found or None


def earliest(expiry: dict | None) -> tuple[str, datetime.datetime] | None:
    if not expiry:
        return None
    name = min(expiry, key=lambda n: datetime.datetime.fromisoformat(expiry[n]))
    return name, datetime.datetime.fromisoformat(expiry[name])


def renewal_due(expiry: dict | None, days: int, now: datetime.datetime) -> bool:
    """Whether the earliest certificate expires within `days` of `now`."""
    first = earliest(expiry)
    return first is not None and first[1] - now <= datetime.timedelta(days=days)


def expiry_line(node: str, expiry: dict | None, now: datetime.datetime) -> str:
    first = earliest(expiry)
    if first is None:
        return f"{node}: certificates unknown (kubeadm certs check-expiration did not answer)"
    name, moment = first
    left = (moment - now).days
    return f"{node}: earliest certificate expiry {moment:%Y-%m-%d %H:%M} UTC ({name}, {left} days)"


def renew_commands(ctx: NodeContext) -> list[StringCommand]:
    """Renew every certificate, restart the control-plane pods, wait for them."""
    return [
        StringCommand("kubeadm certs renew all"),
        *(reconfigure.restart_static_pod(pod) for pod in STATIC_PODS),
        reconfigure.wait_control_plane(ctx.node.name, ctx.settings.ready_timeout),
    ]


def check_settings(s: Settings):
    """(setting, problem) for the certificate settings."""
    if not 1 <= s.cert_renew_days <= MAX_RENEW_DAYS:
        yield (
            "cert_renew_days",
            f"{s.cert_renew_days} is not 1..{MAX_RENEW_DAYS}: renewed certificates last 365 "
            "days, so a longer window would renew them on every run",
        )


# --- the timer --------------------------------------------------------------------------


def renew_script(settings: Settings) -> str:
    """What the timer runs: the renewal when the earliest certificate is due, then the
    restarts (the same decision and commands as a run, in shell)."""
    restarts = "\n".join(reconfigure.restart_static_pod(pod).get_raw_value() for pod in STATIC_PODS)
    return (
        "#!/bin/sh\n"
        "# Renews kubeadm's certificates when the earliest expires within cert_renew_days.\n"
        "# Written by pyinfra-kubeadm (cert_auto_renew).\n"
        "set -eu\n"
        f"days={settings.cert_renew_days}\n"
        "limit=$(( $(date -u +%s) + days * 86400 ))\n"
        "due=no\n"
        "for when in $(kubeadm certs check-expiration | sed -n '/^CERTIFICATE AUTHORITY/q;"
        "s/^[^ ]*  *\\([A-Z][a-z][a-z] [0-9]*, [0-9]* [0-9:]* UTC\\).*/\\1/p' "
        "| tr ' ' '_'); do\n"
        '  if [ "$(date -u -d "$(echo "$when" | tr _ " ")" +%s)" -le "$limit" ]; then '
        "due=yes; fi\n"
        "done\n"
        '[ "$due" = yes ] || exit 0\n'
        "kubeadm certs renew all\n"
        f"{restarts}\n"
    )


def unit_files(settings: Settings) -> dict[str, str]:
    return {
        f"{SYSTEMD_DIR}/{RENEW_UNIT}.service": (
            "[Unit]\nDescription=Renew kubeadm's certificates when they are due "
            "(pyinfra-kubeadm)\nAfter=kubelet.service\n\n[Service]\nType=oneshot\n"
            f"ExecStart={RENEW_SCRIPT}\n"
        ),
        f"{SYSTEMD_DIR}/{RENEW_UNIT}.timer": (
            "[Unit]\nDescription=Monthly check of kubeadm's certificates (pyinfra-kubeadm)\n\n"
            "[Timer]\nOnCalendar=monthly\nRandomizedDelaySec=1h\nPersistent=true\n\n"
            "[Install]\nWantedBy=timers.target\n"
        ),
    }


def rendered_files(ctx: NodeContext) -> dict[str, str]:
    """The timer's files, on control planes where cert_auto_renew is on."""
    if not (ctx.node.is_control_plane and ctx.settings.cert_auto_renew):
        return {}
    return {RENEW_SCRIPT: renew_script(ctx.settings), **unit_files(ctx.settings)}


def converge_certificates(ctx: NodeContext, member: bool, now=None) -> None:
    """Renew a member control plane's certificates when due (one control plane at a
    time), and keep the timer where cert_auto_renew asks for it, absent elsewhere."""
    now = now or datetime.datetime.now(datetime.UTC)
    s, node = ctx.settings, ctx.node
    due = False
    if member and node.is_control_plane:
        due = renewal_due(host.get_fact(CertificateExpiry), s.cert_renew_days, now)
    server.shell(
        name="kubeadm: renew certificates",
        commands=renew_commands(ctx) if due else [],
        _serial=True,
    )
    timer = node.is_control_plane and s.cert_auto_renew
    wanted = rendered_files(ctx)
    service, unit = (f"{SYSTEMD_DIR}/{RENEW_UNIT}.{kind}" for kind in ("service", "timer"))
    server.shell(
        name="kubeadm: stop certificate renewal timer",
        commands=[StringCommand(f"systemctl disable --now {RENEW_UNIT}.timer")]
        if not timer and host.get_fact(File, path=unit)
        else [],
    )
    written = [
        _converge_file(RENEW_SCRIPT, wanted.get(RENEW_SCRIPT), "755"),
        _converge_file(service, wanted.get(service), "644"),
        _converge_file(unit, wanted.get(unit), "644"),
    ]
    server.shell(
        name="kubeadm: reload systemd units",
        commands=["systemctl daemon-reload"],
        _if=lambda: any(op.did_change() for op in written),
    )
    if timer:
        systemd.service(
            name="kubeadm: enable certificate renewal timer",
            service=f"{RENEW_UNIT}.timer",
            running=True,
            enabled=True,
        )


def _converge_file(path: str, text: str | None, mode: str):
    name = f"kubeadm: write {path.rsplit('/', 1)[-1]}"
    if text is None:
        return files.file(name=name, path=path, present=False)
    return files.put(
        name=name, src=io.StringIO(text), dest=path, mode=mode, user="root", group="root"
    )
