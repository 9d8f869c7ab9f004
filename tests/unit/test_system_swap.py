"""Swap: which units get masked, and the fstab regex as grep -E and sed -E really apply it."""

import subprocess

import pytest

from deploys.system.facts import FSTAB_SWAP_LINE
from deploys.system.swap import own_swaps, units_to_mask


@pytest.mark.parametrize(
    "swap_units, expected",
    [
        ({}, ["swap.target"]),
        ({"swap.target": "static"}, ["swap.target"]),
        ({"swap.target": "static", "swap.img.swap": "generated"}, ["swap.img.swap", "swap.target"]),
        ({"swap.target": "masked", "swap.img.swap": "masked"}, []),
        ({"swap.target": "masked", "swap.img.swap": "generated"}, ["swap.img.swap"]),
        (
            {r"dev-disk-by\x2duuid-0a5b.swap": "generated", "swap.target": "static"},
            [r"dev-disk-by\x2duuid-0a5b.swap", "swap.target"],
        ),
    ],
)
def test_units_to_mask(swap_units, expected):
    assert units_to_mask(swap_units) == expected


ACTIVE = [
    "/swap.img\tnone\tswap\tsw\t0\t0",
    "UUID=0a5b3c9e-8f0d none            swap    sw              0       0",
    "  /dev/sdb2 swap swap defaults",
    "LABEL=swap none swap",
    "/swapfile none swap sw,pri=5 0 0",
]
NOT_SWAP = [
    "# /etc/fstab: static file system information.",
    "# swap was on /dev/sda5 during installation",
    "#/swap.img\tnone\tswap\tsw\t0\t0",
    "# UUID=0a5b3c9e-8f0d none swap sw 0 0",
    "UUID=abc / ext4 errors=remount-ro 0 1",
    "/dev/sdc1 /mnt/swap ext4 defaults 0 2",
    "/dev/sdd1 /srv/swapfiles xfs defaults 0 0",
    "tmpfs /tmp tmpfs swapfile 0 0",
    "",
]


def _grep(lines):
    result = subprocess.run(
        ["grep", "-E", f"^{FSTAB_SWAP_LINE}$"],
        input="\n".join(lines) + "\n",
        capture_output=True,
        text=True,
    )
    return result.stdout.splitlines()


def _sed(lines):
    result = subprocess.run(
        ["sed", "-E", rf"s/^({FSTAB_SWAP_LINE})$/# \1/"],
        input="\n".join(lines) + "\n",
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.splitlines()


@pytest.mark.parametrize("line", ACTIVE)
def test_active_swap_line_is_found(line):
    assert _grep([line]) == [line]


@pytest.mark.parametrize("line", NOT_SWAP)
def test_other_lines_are_not_found(line):
    assert _grep([line]) == []


@pytest.mark.parametrize("line", ACTIVE)
def test_active_swap_line_is_commented_out_not_deleted(line):
    assert _sed([line]) == [f"# {line}"]


@pytest.mark.parametrize("line", NOT_SWAP)
def test_other_lines_are_left_alone(line):
    assert _sed([line]) == [line]


def test_commenting_out_is_idempotent():
    once = _sed(ACTIVE + NOT_SWAP)
    assert _sed(once) == once
    assert _grep(once) == []


@pytest.mark.parametrize(
    "swaps, container, own",
    [
        (["/swap.img"], "none", ["/swap.img"]),
        ([], "none", []),
        (["/dev/sda2"], "systemd-nspawn", []),  # the container host's swap
        (["/dev/sda2"], "lxc", []),
    ],
)
def test_own_swaps(swaps, container, own):
    assert own_swaps({"swaps": swaps, "container": container}) == own
