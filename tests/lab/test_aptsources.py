"""Reading the host's apt sources: the nodes' mirror and the proxy's allow-list."""

from __future__ import annotations

import pytest

from tests.lab import aptsources
from tests.lab.aptsources import AptSource

DEB822 = """\
Types: deb deb-src
# a comment inside a paragraph
URIs: http://mirror.test/debian
Suites: bookworm bookworm-updates
Components: main
 contrib
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://security.test/debian-security
Suites: bookworm-security
Components: main

Types: deb
URIs: https://disabled.test/debian
Suites: bookworm
Components: main
Enabled: no

Types: deb-src
URIs: http://sources-only.test/debian
Suites: bookworm
Components: main
"""

ONE_LINE = """\
# deb http://commented.test/debian bookworm main
deb [arch=amd64 signed-by=/usr/share/keyrings/x.gpg] https://vendor.test:8443/apt stable main
deb-src http://sources-only.test/debian bookworm main
deb http://mirror.test/debian bookworm main  # trailing comment
"""

MIRRORS = aptsources.DebianMirrors(
    archive=AptSource("http://mirror.test/debian", ("bookworm",), ("main",)),
    security=AptSource("http://security.test/debian-security", ("bookworm-security",), ("main",)),
)


def test_deb822_keeps_enabled_binary_sources_with_folded_fields():
    assert aptsources.parse_deb822(DEB822) == [
        AptSource(
            "http://mirror.test/debian", ("bookworm", "bookworm-updates"), ("main", "contrib")
        ),
        AptSource("http://security.test/debian-security", ("bookworm-security",), ("main",)),
    ]


def test_one_line_keeps_binary_sources_and_skips_options_and_comments():
    assert aptsources.parse_one_line(ONE_LINE) == [
        AptSource("https://vendor.test:8443/apt", ("stable",), ("main",)),
        AptSource("http://mirror.test/debian", ("bookworm",), ("main",)),
    ]


def test_host_sources_reads_both_formats_and_ignores_other_files(tmp_path):
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list").write_text(ONE_LINE)
    (tmp_path / "sources.list.d" / "debian.sources").write_text(DEB822)
    (tmp_path / "sources.list.d" / "old.list.disabled").write_text("deb http://off.test/ x main\n")
    endpoints = aptsources.allowed_endpoints(aptsources.host_sources(tmp_path))
    assert endpoints == ["mirror.test:80", "security.test:80", "vendor.test:8443"]


def test_mirrors_are_the_sources_of_the_host_suite_and_its_security():
    sources = aptsources.parse_deb822(DEB822) + aptsources.parse_one_line(ONE_LINE)
    mirrors = aptsources.debian_mirrors(sources, "bookworm")
    assert mirrors.archive.uri == "http://mirror.test/debian"
    assert mirrors.security.uri == "http://security.test/debian-security"


def test_mirrors_refuse_a_host_without_its_own_suite():
    with pytest.raises(RuntimeError, match="trixie"):
        aptsources.debian_mirrors(aptsources.parse_deb822(DEB822), "trixie")


@pytest.mark.parametrize(
    ("suite", "expected"),
    [
        (
            "trixie",
            "deb http://mirror.test/debian trixie main\n"
            "deb http://mirror.test/debian trixie-updates main\n"
            "deb http://security.test/debian-security trixie-security main\n",
        ),
        ("sid", "deb http://mirror.test/debian sid main\n"),
    ],
)
def test_node_sources_list_per_suite(suite, expected):
    assert aptsources.node_sources_list(suite, MIRRORS) == expected


def test_host_codename_reads_os_release(tmp_path):
    os_release = tmp_path / "os-release"
    os_release.write_text('NAME="Debian GNU/Linux"\nVERSION_CODENAME="bookworm"\n')
    assert aptsources.host_codename(os_release) == "bookworm"
