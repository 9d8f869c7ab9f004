"""Kernel modules: which ones, and the modules-load.d file listing them."""

import pytest

from deploys.settings import Settings
from deploys.system.facts import MODULES
from deploys.system.kernel import kernel_modules, modules_file, nftables_kernel_refusal


@pytest.mark.parametrize(
    "mode, modules",
    [
        ("iptables", ("overlay", "br_netfilter")),
        # nf_tables: loaded by the kernel when kube-proxy creates its table
        ("nftables", ("overlay", "br_netfilter")),
        (
            "ipvs",
            (
                "overlay",
                "br_netfilter",
                "ip_vs",
                "ip_vs_rr",
                "ip_vs_wrr",
                "ip_vs_sh",
                "nf_conntrack",
            ),
        ),
    ],
)
def test_kernel_modules(mode, modules):
    settings = Settings(kube_proxy_mode=mode)
    assert kernel_modules(settings) == modules
    assert [
        line for line in modules_file(settings).splitlines() if not line.startswith("#")
    ] == list(modules)


@pytest.mark.parametrize("mode", ["iptables", "nftables", "ipvs"])
def test_the_fact_reads_every_module_that_can_be_wanted(mode):
    assert set(kernel_modules(Settings(kube_proxy_mode=mode))) <= set(MODULES)


@pytest.mark.parametrize(
    "kernel",
    ["5.13.0-52-generic", "5.15.0-153-generic", "6.1.0-40-amd64", "6.12.48+deb13-amd64", "10.0"],
)
def test_kernels_from_5_13_run_kube_proxy_in_nftables_mode(kernel):
    assert nftables_kernel_refusal("cp1", kernel) is None


@pytest.mark.parametrize(
    "kernel", ["5.4.0-216-generic", "5.10.0-35-amd64", "5.12.19", "4.19.0-27-amd64", "", None, "x"]
)
def test_older_or_unreadable_kernels_are_refused_by_node_and_release(kernel):
    refusal = nftables_kernel_refusal("w1", kernel)
    assert refusal.startswith(f"w1 runs kernel {kernel or '(unknown)'}, ")
    assert "needs 5.13 or later" in refusal
    assert "linux-generic-hwe-20.04" in refusal
    assert "kube_proxy_mode to 'iptables'" in refusal
