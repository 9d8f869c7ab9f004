"""Kernel modules: which ones, and the modules-load.d file listing them."""

import pytest

from deploys.facts.system import MODULES
from deploys.settings import Settings
from deploys.system.kernel import kernel_modules, modules_file


@pytest.mark.parametrize(
    "mode, modules",
    [
        ("iptables", ("overlay", "br_netfilter")),
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


@pytest.mark.parametrize("mode", ["iptables", "ipvs"])
def test_the_fact_reads_every_module_that_can_be_wanted(mode):
    assert set(kernel_modules(Settings(kube_proxy_mode=mode))) <= set(MODULES)
