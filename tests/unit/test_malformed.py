"""Malformed input refused with one report of every problem and no traceback: duplicate keys
and non-UTF-8 cluster files (from the inventory and from the renderer), the renderer's own
arguments, and files the connections need that are missing on the machine running pyinfra
(ssh_key, ssh_known_hosts_file; Vagrant's host keys)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from deploys import inventory, render
from deploys.settings import ClusterError, load_cluster
from tests.lab.host_packages import require_commands

ROOT = Path(__file__).resolve().parents[2]
VAGRANT_CLUSTER = ROOT / "inventory" / "cluster.yaml"
CLUSTER_DEPLOY = ROOT / "deploys" / "cluster.py"
GOOD = """\
hosts:
  - name: cp1
    address: 10.0.0.11
    roles: [control_plane]
    settings:
      time_sync: ntp
  - name: w1
    address: 10.0.0.21
    roles: [worker]
settings:
  kubernetes_version: "1.35.9"
"""


def pyinfra(cluster_file: Path, cwd: Path) -> subprocess.CompletedProcess:
    """The README's command, run from `cwd`, with the inventory and deploy of the checkout."""
    return subprocess.run(
        [sys.executable, "-m", "pyinfra", "-y", str(ROOT / "inventory.py"), str(CLUSTER_DEPLOY)],
        cwd=cwd,
        env={"CLUSTER": str(cluster_file), "PATH": "/usr/bin:/bin", "HOME": str(cwd)},
        capture_output=True,
        text=True,
        timeout=120,
    )


def assert_refused_before_connecting(result: subprocess.CompletedProcess) -> None:
    output = result.stdout + result.stderr
    assert result.returncode == inventory.REFUSED, output
    assert "Traceback" not in output
    assert "Connecting" not in output


# --- duplicate keys ------------------------------------------------------------------------


# A cluster file with keys given twice, and the problems reported (after the file's name).
DUPLICATES = {
    "two settings blocks": (
        GOOD + "settings:\n  pod_subnet: 10.32.0.0/16\n",
        ["top level: key 'settings' given twice, on lines 10 and 12"],
    ),
    "one setting twice": (
        GOOD + '  kubernetes_version: "1.34.2"\n',
        ["settings: key 'kubernetes_version' given twice, on lines 11 and 12"],
    ),
    "a host's setting twice": (
        GOOD.replace("ntp\n", "ntp\n      time_sync: chrony\n"),
        ["hosts[0].settings: key 'time_sync' given twice, on lines 6 and 7"],
    ),
    "a host's key twice": (
        GOOD.replace("[worker]\n", "[worker]\n    address: 10.0.0.22\n"),
        ["hosts[1]: key 'address' given twice, on lines 8 and 10"],
    ),
    "every duplicate in one report": (
        GOOD + '  kubernetes_version: "1.34.2"\nsettings: {}\n',
        [
            "settings: key 'kubernetes_version' given twice, on lines 11 and 12",
            "top level: key 'settings' given twice, on lines 10 and 13",
        ],
    ),
    "one key in two spellings": (
        GOOD.replace("settings:\n  kubernetes", "settings:\n  true: 1\n  yes: 2\n  kubernetes"),
        ["settings: key 'yes' given twice, on lines 11 and 12"],
    ),
    "flow mapping": (
        GOOD + "  sysctls: {vm.max_map_count: 1, vm.max_map_count: 2}\n",
        ["settings.sysctls: key 'vm.max_map_count' given twice, on line 12"],
    ),
}


@pytest.mark.parametrize(("text", "expected"), DUPLICATES.values(), ids=DUPLICATES)
def test_duplicate_keys_are_refused_naming_the_key_and_both_lines(tmp_path, text, expected):
    path = tmp_path / "site.yaml"
    path.write_text(text)
    with pytest.raises(ClusterError) as refused:
        load_cluster(path)
    lines = str(refused.value).splitlines()
    assert [line.split(" (")[0] for line in lines] == [f"{path}: {e}" for e in expected]


@pytest.mark.parametrize(
    "extra",
    [
        pytest.param("x-base: &base {time_sync: ntp}\n", id="an anchor"),
        pytest.param("loop: &loop [*loop]\n", id="an alias of itself"),
    ],
)
def test_anchors_and_aliases_are_not_duplicates(tmp_path, extra):
    path = tmp_path / "site.yaml"
    path.write_text(extra + GOOD)
    with pytest.raises(ClusterError) as refused:
        load_cluster(path)
    assert "unknown key" in str(refused.value)
    assert "twice" not in str(refused.value)


def test_keys_from_merges_may_be_overridden(tmp_path):
    path = tmp_path / "site.yaml"
    path.write_text(
        "x-roles: &cp {roles: [control_plane]}\n"
        "x-ssh: &ssh {settings: {ssh_user: ops}}\n"
        "hosts:\n"
        "  - {<<: *cp, name: cp1, address: 10.0.0.11}\n"
        "  - {<<: *cp, <<: *ssh, name: cp2, address: 10.0.0.12, roles: [worker]}\n"
    )
    with pytest.raises(ClusterError) as refused:
        load_cluster(path)
    assert f"{path}: unknown key 'x-roles'" in refused.value.problems  # parsed, then checked
    assert not [problem for problem in refused.value.problems if "twice" in problem]


# --- files that are not UTF-8 --------------------------------------------------------------

NOT_UTF8 = [
    pytest.param(GOOD.replace("ntp", "ntp # caf\xe9").encode("latin-1"), 6, id="latin-1"),
    pytest.param(GOOD.encode("utf-16"), 1, id="utf-16"),
    pytest.param(b"\xff\xfe\x00" + GOOD.encode(), 1, id="binary"),
]


@pytest.mark.parametrize(("content", "line"), NOT_UTF8)
def test_a_file_that_is_not_utf8_is_refused_naming_it(tmp_path, content, line):
    path = tmp_path / "site.yaml"
    path.write_bytes(content)
    with pytest.raises(ClusterError) as refused:
        load_cluster(path)
    assert str(refused.value).startswith(f"{path}: not UTF-8 text (line {line}: byte 0x")


def test_the_inventory_refuses_a_file_that_is_not_utf8(tmp_path):
    path = tmp_path / "site.yaml"
    path.write_bytes(GOOD.encode("utf-16"))
    result = pyinfra(path, tmp_path)
    assert_refused_before_connecting(result)
    assert f"refused: {path}: not UTF-8 text" in result.stderr


def test_the_renderer_refuses_a_file_that_is_not_utf8(tmp_path, capsys):
    path = tmp_path / "site.yaml"
    path.write_bytes(GOOD.encode("utf-16"))
    assert render.main([str(path), str(tmp_path / "out")]) == inventory.REFUSED
    assert capsys.readouterr().err.startswith(f"refused: {path}: not UTF-8 text")
    assert not (tmp_path / "out").exists()


# --- the renderer's arguments --------------------------------------------------------------


def a_file(tmp_path: Path) -> str:
    (tmp_path / "notes.txt").write_text("mine\n")
    return str(tmp_path / "notes.txt")


def a_foreign_directory(tmp_path: Path) -> str:
    a_file(tmp_path)
    return str(tmp_path)


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        pytest.param(
            lambda tmp: [a_file(tmp)], "OUT_DIR {tmp}/notes.txt: not a directory", id="out-file"
        ),
        pytest.param(
            lambda tmp: [a_file(tmp) + "/out"],
            "OUT_DIR {tmp}/notes.txt/out: not a directory ({tmp}/notes.txt is a file)",
            id="out-below-a-file",
        ),
        pytest.param(
            lambda tmp: [a_foreign_directory(tmp)],
            "OUT_DIR {tmp}: not empty and not written by the renderer",
            id="out-foreign",
        ),
    ],
)
def test_the_renderer_refuses_a_bad_out_dir(tmp_path, capsys, arguments, expected):
    argv = [str(VAGRANT_CLUSTER), *arguments(tmp_path)]
    assert render.main(argv) == inventory.REFUSED
    assert capsys.readouterr().err.startswith(f"refused: {expected.format(tmp=tmp_path)}")
    assert (tmp_path / "notes.txt").read_text() == "mine\n"


@pytest.mark.parametrize(
    ("option", "value", "expected"),
    [
        ("--arch", "sparc", "not one of amd64, arm64, ppc64el, s390x"),
        ("--os", "centos-9", "not one of ubuntu-20.04, ubuntu-22.04, ubuntu-24.04, debian-11"),
        ("--containerd-version", "1.4.13", "containerd 1.4.13 is not supported"),
        ("--containerd-version", "latest", "no containerd version in 'latest'"),
    ],
)
def test_the_renderer_refuses_bad_options(tmp_path, capsys, option, value, expected):
    argv = [str(VAGRANT_CLUSTER), str(tmp_path / "out"), option, value]
    assert render.main(argv) == inventory.REFUSED
    assert capsys.readouterr().err.startswith(f"refused: {option} {value!r}: {expected}")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(["a", "b", "c"], id="too many paths"),
        pytest.param([], id="no OUT_DIR"),
        pytest.param(["out", "--no-such-option"], id="unknown option"),
    ],
)
def test_usage_errors_exit_with_the_same_code(argv, capsys):
    with pytest.raises(SystemExit) as stopped:
        render.main(argv)
    assert stopped.value.code == inventory.REFUSED
    assert "usage:" in capsys.readouterr().err


def test_the_renderer_reports_every_problem_at_once(tmp_path, capsys):
    site = tmp_path / "site.yaml"
    site.write_text(GOOD + "settings: {}\n")
    argv = [str(site), a_file(tmp_path), "--arch", "sparc", "--os", "centos-9"]
    assert render.main(argv) == inventory.REFUSED
    lines = capsys.readouterr().err.splitlines()
    assert [line.split(":")[1].split()[0] for line in lines] == [
        "OUT_DIR", "--os", "--arch", str(site)
    ]  # fmt: skip
    assert all(line.startswith("refused: ") for line in lines)


def test_a_pinned_containerd_it_cannot_render_for_is_refused_naming_the_file(tmp_path, capsys):
    site = tmp_path / "site.yaml"
    site.write_text(GOOD + '  containerd_version: "1.4.13~ds1-1"\n')
    assert render.main([str(site), str(tmp_path / "out")]) == inventory.REFUSED
    lines = capsys.readouterr().err.splitlines()
    assert lines and all(line.startswith(f"refused: {site}: ") for line in lines)
    assert all("1.4.13" in line for line in lines)
    assert not (tmp_path / "out").exists()


def test_a_directory_that_cannot_be_written_is_refused(tmp_path, capsys, monkeypatch):
    def unwritable(path, flags, mode=0o777):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(render.os, "open", unwritable)
    assert render.main([str(VAGRANT_CLUSTER), str(tmp_path / "out")]) == inventory.REFUSED
    err = capsys.readouterr().err
    assert err.startswith(f"refused: OUT_DIR {tmp_path / 'out'}: cannot write ")
    assert "Permission denied" in err


# --- files on the machine running pyinfra ---------------------------------------------------


def test_missing_vagrant_files_stop_before_connecting_naming_host_and_path(tmp_path):
    result = pyinfra(VAGRANT_CLUSTER, tmp_path)
    assert_refused_before_connecting(result)
    cluster = load_cluster(VAGRANT_CLUSTER)
    expected = []
    for node in cluster.nodes:
        key = f".vagrant/machines/{node.name}/virtualbox/private_key"
        expected += [
            f"refused: {VAGRANT_CLUSTER}: host '{node.name}': ssh_key: {key}: no such file "
            f"(Vagrant's key for machine {node.name} with the virtualbox provider: run "
            "`vagrant up` first)",
            f"refused: {VAGRANT_CLUSTER}: host '{node.name}': ssh_known_hosts_file: "
            ".vagrant/known_hosts: no such file (Vagrant writes it: run `vagrant up` first)",
        ]
    assert result.stderr.splitlines()[-len(expected) :] == expected


def vagrant_files(root: Path, names, provider: str = "virtualbox") -> None:
    for name in names:
        key = root / ".vagrant" / "machines" / name / provider / "private_key"
        key.parent.mkdir(parents=True)
        key.write_text("key\n")
    (root / ".vagrant" / "known_hosts").write_text("")


def test_nothing_missing_once_vagrant_wrote_its_files(tmp_path, monkeypatch):
    cluster = load_cluster(VAGRANT_CLUSTER)
    vagrant_files(tmp_path, [n.name for n in cluster.nodes])
    monkeypatch.chdir(tmp_path)
    assert inventory.missing_local_files(cluster) == []


def test_a_key_of_another_provider_is_pointed_at(tmp_path, monkeypatch):
    cluster = load_cluster(VAGRANT_CLUSTER)
    vagrant_files(tmp_path, [n.name for n in cluster.nodes], provider="libvirt")
    monkeypatch.chdir(tmp_path)
    problems = inventory.missing_local_files(cluster)
    assert len(problems) == len(cluster.nodes)
    assert all(p.endswith("; the machine has a key for provider libvirt)") for p in problems)


@pytest.mark.parametrize(
    ("key", "make", "reason"),
    [
        pytest.param("keys/id", None, "no such file", id="missing"),
        pytest.param("keys", "dir", "not a file", id="directory"),
        pytest.param("~/keys/id", None, "no such file", id="home"),
    ],
)
def test_any_missing_key_is_named_with_its_host(tmp_path, monkeypatch, key, make, reason):
    if make == "dir":
        (tmp_path / key).mkdir()
    site = tmp_path / "site.yaml"
    doc = yaml.safe_load(GOOD)
    doc["hosts"][1]["settings"] = {"ssh_key": key}
    site.write_text(yaml.safe_dump(doc))
    monkeypatch.chdir(tmp_path)
    problems = inventory.missing_local_files(load_cluster(site))
    assert problems == [f"{site}: host 'w1': ssh_key: {key}: {reason}"]


def test_a_key_under_home_is_found(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "id").write_text("key\n")
    site = tmp_path / "site.yaml"
    site.write_text(GOOD + '  ssh_key: "~/id"\n')
    assert inventory.missing_local_files(load_cluster(site)) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every file")
def test_an_unreadable_key_is_named(tmp_path, monkeypatch):
    (tmp_path / "id").write_text("key\n")
    (tmp_path / "id").chmod(0)
    site = tmp_path / "site.yaml"
    site.write_text(GOOD + f"  ssh_key: {tmp_path / 'id'}\n")
    problems = inventory.missing_local_files(load_cluster(site))
    assert [p.rsplit(": ", 1)[1] for p in problems] == ["not readable", "not readable"]


# --- Vagrant host keys ---------------------------------------------------------------------


def test_vagrant_host_keys_are_verified_strictly_against_what_vagrant_up_wrote():
    cluster = load_cluster(VAGRANT_CLUSTER)
    for node in cluster.nodes:
        data = inventory.host_data(cluster, node)
        assert data["ssh_known_hosts_file"] == ".vagrant/known_hosts"
        assert data["ssh_strict_host_key_checking"] == "yes"
    vagrantfile = (ROOT / "Vagrantfile").read_text()
    assert 'KNOWN_HOSTS = File.join(File.dirname(__FILE__), ".vagrant", "known_hosts")' in (
        vagrantfile
    )


# `vagrant up` of k8s-cp1 and k8s-w1, k8s-cp1 created again (new keys), `vagrant destroy`
# of k8s-w1, as the Vagrantfile's triggers call write_known_hosts (Vagrant stubbed).
RUBY_KNOWN_HOSTS = """
module Vagrant
  def self.configure(_version); end
end
load ARGV[0]
write_known_hosts("192.168.56.10", "ssh-ed25519 OLD root@k8s-cp1\\n")
write_known_hosts("192.168.56.11", "ssh-ed25519 W1 root@k8s-w1\\nssh-rsa W1RSA root@k8s-w1\\n")
write_known_hosts("192.168.56.10", "ecdsa-sha2-nistp256 NEW1\\n\\nssh-ed25519 NEW2 root@k8s-cp1\\n")
print File.read(KNOWN_HOSTS), "--\\n"
write_known_hosts("192.168.56.11", "")
print File.read(KNOWN_HOSTS)
"""


def test_vagrant_up_writes_each_machines_host_keys_and_destroy_removes_them(tmp_path):
    require_commands("ruby")
    shutil.copy(ROOT / "Vagrantfile", tmp_path / "Vagrantfile")
    (tmp_path / ".vagrant").mkdir()
    (tmp_path / "known_hosts.rb").write_text(RUBY_KNOWN_HOSTS)
    result = subprocess.run(
        ["ruby", str(tmp_path / "known_hosts.rb"), str(tmp_path / "Vagrantfile")],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    after_up, after_destroy = result.stdout.split("--\n")
    assert after_up == (
        "192.168.56.11 ssh-ed25519 W1\n"
        "192.168.56.11 ssh-rsa W1RSA\n"
        "192.168.56.10 ecdsa-sha2-nistp256 NEW1\n"
        "192.168.56.10 ssh-ed25519 NEW2\n"
    )
    assert after_destroy == (
        "192.168.56.10 ecdsa-sha2-nistp256 NEW1\n192.168.56.10 ssh-ed25519 NEW2\n"
    )
