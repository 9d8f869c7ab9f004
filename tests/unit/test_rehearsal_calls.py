"""How the rehearsal's lab tests read a stand-in call: its subcommand and operands, without
options and their values (tests/lab/rehearsal.py)."""

import pytest

from tests.lab.rehearsal import Call


@pytest.mark.parametrize(
    "tool, args, words, mutating",
    [
        # kubeadm's -f is --force: the next argument is an option of its own.
        ("kubeadm", ["reset", "-f", "--cri-socket", "unix:///run/c.sock"], "reset", True),
        # kubectl's -f is --filename: the next argument is its value.
        ("kubectl", ["apply", "-f", "/etc/kubernetes/addons/x.yaml"], "apply", True),
        (
            "kubectl",
            ["--kubeconfig", "/a", "delete", "node", "w1", "--ignore-not-found"],
            "delete node w1",
            True,
        ),
        ("kubectl", ["get", "nodes", "-o", "json"], "get nodes", False),
        (
            "kubeadm",
            ["token", "create", "--ttl=1h0m0s", "--print-join-command"],
            "token create",
            True,
        ),
    ],
)
def test_words_and_mutating(tool, args, words, mutating):
    call = Call("2026-11-30T00:00:00.000000Z", "node1", tool, args)
    assert (call.words, call.mutating) == (words, mutating)
