"""Secret files and secret command output (deploys/secret.py) on recorded hosts."""

import hashlib

import pytest
from pyinfra import host
from pyinfra.api import StringCommand, deploy, operation

from deploys import secret
from tests.deploy import harness

DEST = "/etc/example/token.conf"
CONTENT = "token = s3cr3t-value\n"
WRITE = f"umask 077 && cat > {DEST}.part && chown root:root {DEST}.part && mv -f {DEST}.part {DEST}"


@deploy("Secret sample")
def write_secret(content=CONTENT):
    secret.put(name="sample: write token", dest=DEST, content=content)


def on_host(content=CONTENT, mode=600, user="root", group="root") -> dict:
    return {
        f"files.File(path={DEST})": {"mode": mode, "user": user, "group": group, "size": 1},
        f"files.Sha1File(path={DEST})": hashlib.sha1(content.encode()).hexdigest(),
    }


def test_a_missing_file_is_written_from_stdin():
    run = harness.run(write_secret)
    assert run.commands("cp1") == [WRITE]
    assert run.stdin["cp1"] == [(WRITE, CONTENT)]
    assert run.uploads["cp1"] == {}


def test_the_content_never_reaches_a_command_or_the_log():
    run = harness.run(write_secret)
    assert "s3cr3t" not in "\n".join(run.commands("cp1"))
    assert "s3cr3t" not in run.log


def test_a_final_newline_is_added():
    run = harness.run(write_secret, deploy_args=("no newline",))
    assert run.stdin["cp1"] == [(WRITE, "no newline\n")]


def test_an_identical_root_only_file_is_left_alone():
    run = harness.run(write_secret, facts=on_host())
    assert run.changed("cp1") == []
    assert "noop: /etc/example/token.conf is up to date" in run.log


@pytest.mark.parametrize(
    "drift",
    [
        {"content": "token = old\n"},
        {"mode": 644},
        {"mode": 640},
        {"user": "ubuntu"},
        {"group": "adm"},
    ],
    ids=["content", "world-readable", "group-readable", "owner", "group"],
)
def test_any_drift_rewrites_the_whole_file(drift):
    run = harness.run(write_secret, facts=on_host(**drift))
    assert run.commands("cp1") == [WRITE]
    assert run.stdin["cp1"] == [(WRITE, CONTENT)]


def test_something_else_than_a_file_at_the_path_is_refused():
    run = harness.run(write_secret, facts={f"files.File(path={DEST})": False})
    (failed,) = run.failed("cp1")
    assert "token.conf exists and is not a file" in failed.error
    assert "token.conf exists and is not a file" in run.log
    assert run.failed("w1")  # every host has one: each fails on its own


@operation()
def read_secret():
    if not host.state.is_executing:
        return
    text = secret.output(StringCommand("cat", "/etc/example/token.conf"), "reading the token")
    yield StringCommand("echo", str(len(text)))


@deploy("Secret read sample")
def read_sample():
    read_secret(name="sample: read token")


def test_output_returns_stdout_and_uses_the_operations_sudo(monkeypatch):
    seen = []
    original = harness.RecordedConnector.run_shell_command

    def recording(self, command, print_output=False, print_input=False, **kwargs):
        seen.append((command.get_raw_value(), print_output, print_input, kwargs.get("_sudo")))
        return original(self, command, print_output, print_input, **kwargs)

    monkeypatch.setattr(harness.RecordedConnector, "run_shell_command", recording)
    doc = {**harness.DEFAULT_CLUSTER, "settings": {"ssh_user": "ops", "sudo": True}}
    run = harness.run(read_sample, cluster=doc, responses=[("^cat ", 0, "s3cr3t-value")])
    assert run.op("cp1", "sample: read token").commands == ["echo 12"]
    assert ("cat /etc/example/token.conf", False, False, True) in seen
    assert "s3cr3t" not in run.log


def test_output_failure_names_the_step_and_shows_stderr():
    run = harness.run(read_sample, responses=[("^cat ", 1, "cat: token.conf: Permission denied")])
    (failed,) = run.failed("cp1")
    assert failed.error == (
        "OperationError: reading the token on cp1 failed: cat: token.conf: Permission denied"
    )
