"""The deploy-level harness itself: it must see changes, failures and uploads."""

import io

import pytest
from pyinfra import host
from pyinfra.api import deploy
from pyinfra.facts.server import LinuxDistribution
from pyinfra.operations import files, python, server

from deploys.distro import RELEASES, Release
from tests.deploy import harness


@deploy("Harness sample")
def sample():
    conf = files.put(
        name="sample: write conf", src=io.StringIO("a=1\n"), dest="/etc/sample/x.conf", mode="600"
    )
    server.shell(name="sample: restart", commands=["systemctl restart sample"], _if=conf.did_change)

    def read_token():
        ok, output = host.run_shell_command("kubeadm token create", print_output=False)
        if not ok or output.stdout != "abc":
            raise RuntimeError("unexpected token output")

    python.call(name="sample: read token", function=read_token, _if=conf.did_change)


@pytest.mark.parametrize("os_release", harness.OS_RELEASES)
def test_recorded_identity_of_each_release(os_release):
    facts = harness.load_facts(os_release)
    distro = facts["server.LinuxDistribution"]
    assert os_release.startswith(distro["name"].lower())
    assert os_release.endswith(str(distro["major"]) + (".04" if distro["minor"] else ""))


def test_every_supported_release_is_recorded_and_nothing_else():
    """deploys/distro RELEASES is the one list: the harness's hosts are exactly those."""
    recorded = sorted(path.name for path in harness.FACTS_DIR.iterdir() if path.is_dir())
    assert recorded == sorted(RELEASES)


@pytest.mark.parametrize("os_release", harness.OS_RELEASES)
@pytest.mark.parametrize(
    "fact", ["deploys.system.facts.SystemState", "deploys.runtime.facts.ContainerdState"]
)
def test_the_recorded_host_reports_its_release_as_the_table_names_it(os_release, fact):
    reported = harness.load_facts(os_release)[fact]["release"]
    release = Release.parse(reported["id"], reported["version"], reported.get("codename", ""))
    assert release.name == os_release
    assert release.codename in ("", RELEASES[os_release].codename)
    assert release.family is RELEASES[os_release].family


def test_fresh_host_runs_everything():
    run = harness.run(sample, responses=[("token create", 0, "abc")])
    assert run.changed("cp1") == ["sample: write conf", "sample: restart", "sample: read token"]
    assert run.uploads["w1"]["/etc/sample/x.conf"] == "a=1\n"
    assert "chmod 600 /etc/sample/x.conf" in run.commands("w2")


def test_converged_host_changes_nothing():
    run = harness.run(sample, converged=True)
    assert run.changed("cp1") == []
    assert run.op_names("cp1") == ["sample: write conf", "sample: restart", "sample: read token"]


def test_failed_command_stops_the_host():
    run = harness.run(sample, responses=[("restart sample", 1, "unit not found")])
    assert [op.name for op in run.failed("cp1")] == ["sample: restart"]
    assert "unit not found" in run.failed("cp1")[0].error
    assert run.op_names("cp1") == ["sample: write conf", "sample: restart"]


def test_python_call_sees_recorded_output():
    run = harness.run(sample, responses=[("token create", 0, "wrong")])
    assert "unexpected token output" in run.failed("w1")[0].error


def test_fact_overrides_and_missing_facts():
    @deploy("Reads a fact")
    def reads():
        distro = host.get_fact(LinuxDistribution)
        server.shell(name="echo: distro", commands=[f"echo {distro['name']}"])

    run = harness.run(
        reads, os="debian-12", host_facts={"w1": {"server.LinuxDistribution": {"name": "X"}}}
    )
    assert run.commands("cp1") == ["echo Debian"]
    assert run.commands("w1") == ["echo X"]
    assert run.missing_facts == {}


def test_operations_reached_by_some_hosts_line_up_by_their_place_in_the_code():
    @deploy("Branches")
    def branches():
        if host.name == "cp1":
            server.shell(name="only: first", commands=["echo first"])
        server.shell(name="all: every host", commands=["echo all"])

    run = harness.run(branches)
    assert run.op_names("cp1") == ["only: first", "all: every host"]
    assert run.op_names("w1") == ["all: every host"]
