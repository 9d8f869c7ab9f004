"""The API load balancer on real nodes: haproxy and keepalived are the release's own
packages and run in the lab's nodes; the API servers are stand-ins (test doubles,
tests/lab/stand_in_api_server.py: TLS on each control plane's API port, answering
/livez), because kube-apiserver cannot run in the lab. What only a real cluster shows:
kubelets, kube-proxy and kubeadm going through the endpoint (the rehearsal checks that
they are given it).

The session's lab as it is (3 nodes: bookworm, trixie, sid), first 2 control planes and a
worker, then all 3 control planes. In order:
- local: on every node a request to the loopback endpoint reaches a control plane; with
  one stand-in API server stopped requests still succeed and haproxy's stats show that
  backend DOWN; a second run changes nothing; a third control plane in the cluster file
  reaches every node's haproxy with exactly one reload (no restart) per node;
- vip: preflight refuses a VIP that already answers (this machine takes it on the lab's
  bridge); then keepalived gives the VIP to one control plane, which answers through it;
  that node is powered off and the time until the VIP answers from another control plane
  is measured (printed, and bounded here). The fixture boots it again afterwards, in the
  session's lab, which the next modules use.

Each node's /etc/kubernetes/kubelet.conf is created as on a node in a cluster: the
stand-in API server holds the API port, which preflight checks only on nodes not in one.
"""

from __future__ import annotations

import copy
import os
import re
import ssl
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from deploys.context import API_NAME
from deploys.loadbalancer.model import HAPROXY_SOCKET
from deploys.settings import Settings
from tests.lab import config, stand_in_api_server
from tests.lab.api import Lab
from tests.lab.fixture import LAB_NODES
from tests.lab.runs import Run, pyinfra

pytestmark = pytest.mark.lab

NODES = LAB_NODES
CONTROL_PLANES = NODES[:2]
ADDED = NODES[2]  # a worker first, then a control plane
DEPLOY = "tests/lab/deploys/load_balancer.py"
VIP = str(config.NETWORK[100])
PORT = Settings().api_load_balancer_port
API_PORT = Settings().api_port
CLUSTER_FILE = config.STATE_DIR / "load-balancer.yaml"
# The longest failover accepted: keepalived's master-down interval with advert_int 1 is
# 3 adverts plus skew (RFC 5798), then gratuitous ARP.
FAILOVER_LIMIT = 10.0
_SCRIPT = Path(stand_in_api_server.__file__)
_REMOTE = f"{stand_in_api_server.DIRECTORY}/stand_in_api_server.py"
_CLEAN = (
    f"systemctl stop {stand_in_api_server.UNIT} 2>/dev/null;"
    " apt-mark unhold haproxy keepalived >/dev/null 2>&1;"
    " DEBIAN_FRONTEND=noninteractive apt-get purge -y -q haproxy keepalived >/dev/null 2>&1;"
    " rm -rf /etc/haproxy /etc/keepalived /etc/kubernetes /var/lib/pyinfra-kubeadm-stand-in"
)


def write_cluster(base: dict, control_planes, **settings) -> None:
    doc = copy.deepcopy(base)
    for entry in doc["hosts"]:
        entry["roles"] = ["control_plane" if entry["name"] in control_planes else "worker"]
    doc["settings"].pop("control_plane_endpoint", None)
    doc["settings"].update(settings)
    descriptor = os.open(CLUSTER_FILE, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        yaml.safe_dump(doc, handle)


def run() -> Run:
    return pyinfra(DEPLOY, CLUSTER_FILE, timeout=900)


def start_stand_in(lab: Lab, name: str) -> None:
    """Put the stand-in API server on `name` (once) and start it unless it runs."""
    directory = stand_in_api_server.DIRECTORY
    lab.ssh(
        name,
        f"mkdir -p {directory} /etc/kubernetes && touch /etc/kubernetes/kubelet.conf"
        f" && printf '%s' {_quote(_SCRIPT.read_text())} > {_REMOTE}"
        f" && (test -s {directory}/key.pem || openssl req -x509 -newkey rsa:2048 -nodes"
        f" -keyout {directory}/key.pem -out {directory}/cert.pem -days 2 -subj /CN={name}"
        " >/dev/null 2>&1)"
        f" && (systemctl is-active -q {stand_in_api_server.UNIT} || systemd-run -q"
        f" --unit={stand_in_api_server.UNIT} python3 {_REMOTE} --port {API_PORT}"
        f" --cert {directory}/cert.pem --key {directory}/key.pem)",
    )


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def through(lab: Lab, name: str, url: str) -> str:
    """The stand-in node that answered `url` from `name` ("" when nothing answered)."""
    result = lab.ssh(
        name,
        f"curl -sk --noproxy '*' --max-time 3 -D - -o /dev/null {url}",
        check=False,
    )
    match = re.search(r"^X-Stand-In-Node: (\S+)", result.stdout, re.M | re.I)
    return match.group(1) if match and " 200 " in result.stdout.splitlines()[0] else ""


def answers(lab: Lab, name: str, count: int = 4) -> list[str]:
    return [through(lab, name, f"https://{API_NAME}:{PORT}/livez") for _ in range(count)]


def backends(lab: Lab, name: str) -> dict[str, str]:
    """haproxy's stats on `name`: {server: status} of the API servers' backend."""
    out = lab.ssh(name, f"echo 'show stat' | socat stdio {HAPROXY_SOCKET}").stdout
    rows = [line.split(",") for line in out.splitlines() if line.startswith("kube-apiserver,")]
    return {row[1]: row[17] for row in rows if row[1] not in ("FRONTEND", "BACKEND")}


def reloads(lab: Lab, name: str) -> tuple[int, str]:
    """(systemd's "Reloaded" lines for haproxy, haproxy's main PID) on `name`."""
    out = lab.ssh(
        name,
        "journalctl -q -u haproxy.service -o cat | grep -c '^Reloaded' || true;"
        " systemctl show -p MainPID --value haproxy.service",
    ).stdout.split()
    return int(out[0]), out[1]


def wait_for(condition, seconds: float, step: float = 0.5):
    deadline = time.monotonic() + seconds
    while True:
        value = condition()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(step)


def vip_holders(lab: Lab, names) -> list[str]:
    return [n for n in names if f" {VIP}/" in lab.ssh(n, "ip -o -4 addr show", check=False).stdout]


def vip_answers() -> bool:
    """Whether https://VIP:PORT/livez answers from this machine (the lab's bridge)."""
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context)
    )
    try:
        with opener.open(f"https://{VIP}:{PORT}/livez", timeout=0.5) as answer:
            return answer.status == 200
    except OSError:
        return False


@pytest.fixture(scope="module")
def lb(lab):
    try:
        for name in NODES:
            lab.ssh(name, _CLEAN, check=False)
            start_stand_in(lab, name)
        base = yaml.safe_load(lab.inventory_path.read_text())
        write_cluster(base, CONTROL_PLANES)
        yield lab, base
    finally:
        for node in lab.nodes:  # the one powered off, booted again in the session's lab
            if not node.running:
                lab.restart(node.name)
        for name in NODES:
            lab.ssh(name, _CLEAN, check=False)
        CLUSTER_FILE.unlink(missing_ok=True)


@pytest.fixture(scope="module")
def local(lb):
    lab, base = lb
    first = run()
    assert first.result.returncode == 0, first.failure()
    return lab, base, first


def test_local_every_node_reaches_a_control_plane_through_the_loopback_name(local):
    lab, _, _ = local
    for name in NODES:
        seen = wait_for(lambda n=name: all(answers(lab, n)) and answers(lab, n), 15)
        assert seen and set(seen) <= set(CONTROL_PLANES), (name, seen)
        hosts = lab.ssh(name, f"getent hosts {API_NAME}").stdout.split()
        assert hosts == ["127.0.0.1", API_NAME]


def test_local_a_stopped_api_server_is_taken_out_and_requests_still_succeed(local):
    lab, _, _ = local
    down = CONTROL_PLANES[0]
    lab.ssh(down, f"systemctl stop {stand_in_api_server.UNIT}")
    try:
        for name in NODES:
            stats = wait_for(
                lambda n=name: (s := backends(lab, n))[down].startswith("DOWN") and s, 15
            )
            assert stats and stats[down].startswith("DOWN"), (name, backends(lab, name))
            assert all(v == "UP" for k, v in stats.items() if k != down), stats
            assert answers(lab, name) == [CONTROL_PLANES[1]] * 4, name
    finally:
        start_stand_in(lab, down)


def test_local_second_run_changes_nothing(local):
    again = run()
    assert again.result.returncode == 0, again.failure()
    assert again.totals()["success"] == 0, again.output[-5000:]


# A client on a node that keeps one connection through haproxy open: a request, then
# (once /tmp/held.go exists) another on the same connection; /tmp/held.out says how it went.
_HOLD = f"""
import http.client, os, ssl, time
c = http.client.HTTPSConnection("{API_NAME}", {PORT}, context=ssl._create_unverified_context())
c.request("GET", "/livez"); c.getresponse().read(); mine = c.sock.getsockname()
open("/tmp/held.up", "w").close()
while not os.path.exists("/tmp/held.go"):
    time.sleep(0.1)
c.request("GET", "/livez"); status = c.getresponse().status
open("/tmp/held.out", "w").write(f"{{status}} {{c.sock.getsockname() == mine}}")
"""


def hold_connection(lab: Lab, name: str) -> None:
    lab.ssh(
        name,
        f"rm -f /tmp/held.*; printf '%s' {_quote(_HOLD)} > /tmp/held.py"
        " && systemd-run -q --unit=stand-in-held-connection python3 /tmp/held.py",
    )
    assert wait_for(lambda: lab.ssh(name, "test -e /tmp/held.up", check=False).returncode == 0, 10)


def held_connection(lab: Lab, name: str) -> str:
    lab.ssh(name, "touch /tmp/held.go")
    wait_for(lambda: lab.ssh(name, "test -s /tmp/held.out", check=False).returncode == 0, 10)
    return lab.ssh(name, "cat /tmp/held.out", check=False).stdout


def test_local_an_added_control_plane_reaches_every_haproxy_with_one_reload(local):
    """...and a connection open through haproxy during the reload carries on."""
    lab, base, _ = local
    before = {name: reloads(lab, name) for name in NODES}
    write_cluster(base, (*CONTROL_PLANES, ADDED))
    hold_connection(lab, NODES[0])
    added = run()
    assert added.result.returncode == 0, added.failure()
    assert held_connection(lab, NODES[0]) == "200 True"
    for name in NODES:
        count, pid = reloads(lab, name)
        assert (count, pid) == (before[name][0] + 1, before[name][1]), name
        stats = wait_for(lambda n=name: (s := backends(lab, n)) and all(
            v == "UP" for v in s.values()) and s, 15)  # fmt: skip
        assert sorted(stats) == sorted((*CONTROL_PLANES, ADDED)), (name, stats)


VIP_SETTINGS = {
    "api_load_balancer": "vip",
    "api_vip": VIP,
    "vrrp_password": "lab-vrrp",
    "vrrp_interface": "host0",
}


def test_vip_already_answering_is_refused_before_any_change(local):
    lab, base, _ = local
    write_cluster(base, (*CONTROL_PLANES, ADDED), **VIP_SETTINGS)
    # another machine on the network: this one, on the lab's bridge
    subprocess.run(["ip", "addr", "add", f"{VIP}/32", "dev", config.BRIDGE], check=True)
    try:
        refused = run()
    finally:
        subprocess.run(["ip", "addr", "del", f"{VIP}/32", "dev", config.BRIDGE], check=True)
    assert refused.result.returncode != 0
    assert f"api_vip {VIP} already answers on the network" in refused.output, refused.output
    assert "no host was changed" in refused.output
    assert "Traceback" not in refused.output


def test_vip_answers_from_one_control_plane_and_moves_when_it_is_powered_off(local):
    lab, _, _ = local
    control_planes = (*CONTROL_PLANES, ADDED)
    result = run()
    assert result.result.returncode == 0, result.failure()
    assert VIP_SETTINGS["vrrp_password"] not in result.output
    for name in control_planes:  # the VRRP password: root-only
        mode = lab.ssh(name, "stat -c '%a %U' /etc/keepalived/keepalived.conf").stdout.split()
        assert mode == ["600", "root"], name
    assert wait_for(vip_answers, 15)
    (holder,) = wait_for(lambda: len(h := vip_holders(lab, control_planes)) == 1 and h, 15)
    # The outage a client sees: from the last answer before the power cut (stop may wait
    # for the lock of the machine's labs) to the first answer after it.
    off = threading.Thread(target=lab.stop, args=(holder,))
    off.start()
    last = time.monotonic()
    while vip_answers() and off.is_alive():
        last = time.monotonic()
        time.sleep(0.05)
    back = wait_for(vip_answers, 30, step=0.05)
    failover = time.monotonic() - last
    off.join()
    print(f"\nVIP failover after power-off of {holder}: {failover:.2f} s", flush=True)
    assert back, f"the VIP did not answer again within 30 s of powering off {holder}"
    others = [n for n in control_planes if n != holder]
    assert wait_for(lambda: vip_holders(lab, others), 10)
    assert failover < FAILOVER_LIMIT, failover
