"""Detection from real os-release files (sources in os-release/README)."""
from __future__ import annotations

from pathlib import Path

import pytest

from fleet.distro import Distro, detect, parse_os_release
from fleet.errors import UnsupportedOS

FIXTURES = Path(__file__).parent / "os-release"

# file: (id, family, repo_os, version, codename, major)
EXPECTED = {
    "ubuntu-20.04": ("ubuntu", "debian", "ubuntu", "20.04", "focal", 20),
    "ubuntu-22.04": ("ubuntu", "debian", "ubuntu", "22.04", "jammy", 22),
    "ubuntu-24.04": ("ubuntu", "debian", "ubuntu", "24.04", "noble", 24),
    "debian-11": ("debian", "debian", "debian", "11", "bullseye", 11),
    "debian-12": ("debian", "debian", "debian", "12", "bookworm", 12),
    "debian-13": ("debian", "debian", "debian", "13", "trixie", 13),
    "linuxmint-21.2": ("linuxmint", "debian", "ubuntu", "21.2", "jammy", 21),
    "pop-22.04": ("pop", "debian", "ubuntu", "22.04", "jammy", 22),
    "centos-7": ("centos", "rhel", "centos", "7", "", 7),
    "centos-stream-9": ("centos", "rhel", "centos", "9", "", 9),
    "rhel-9": ("rhel", "rhel", "rhel", "9.6", "", 9),
    "rocky-9": ("rocky", "rhel", "centos", "9.3", "", 9),
    "almalinux-9.1": ("almalinux", "rhel", "centos", "9.1", "", 9),
    "oracle-9.3": ("ol", "rhel", "centos", "9.3", "", 9),
    "fedora-39": ("fedora", "fedora", "fedora", "39", "", 39),
    "fedora-42": ("fedora", "fedora", "fedora", "42", "", 42),
    "amazon-2": ("amzn", "amazon", None, "2", "", 2),
    "amazon-2023": ("amzn", "amazon", None, "2023", "", 2023),
}
UNSUPPORTED = {"alpine-3.23": "Alpine Linux v3.23 (ID=alpine)", "opensuse-leap-15.4": "openSUSE Leap 15.4"}


def load(name: str) -> Distro:
    return detect(parse_os_release((FIXTURES / name).read_text()))


def test_every_fixture_is_checked():
    files = {p.name for p in FIXTURES.iterdir()} - {"README"}
    assert files == set(EXPECTED) | set(UNSUPPORTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_detects_real_os_release(name):
    d = load(name)
    assert (d.id, d.family, d.repo_os, d.version, d.codename, d.major) == EXPECTED[name]
    assert d.pretty


@pytest.mark.parametrize("name", sorted(UNSUPPORTED))
def test_unsupported_is_refused_in_one_line(name):
    with pytest.raises(UnsupportedOS) as err:
        load(name)
    message = str(err.value)
    assert UNSUPPORTED[name] in message
    assert "supported: Debian, Ubuntu" in message and "Amazon Linux" in message
    assert "\n" not in message


def test_amazon_linux_2_is_not_taken_for_centos():
    # Its ID_LIKE is "centos rhel fedora": ID must win over ID_LIKE.
    assert load("amazon-2").family == "amazon"


def test_id_like_is_read_in_order():
    assert detect({"ID": "zorin", "ID_LIKE": "ubuntu debian", "UBUNTU_CODENAME": "jammy"}).repo_os == "ubuntu"
    assert detect({"ID": "lmde", "ID_LIKE": "debian", "VERSION_CODENAME": "faye",
                   "DEBIAN_CODENAME": "bookworm"}).codename == "bookworm"
    assert detect({"ID": "eurolinux", "ID_LIKE": "rhel fedora centos"}).repo_os == "centos"


def test_rebuild_that_only_says_fedora_is_rhel_family():
    d = detect({"ID": "someel", "ID_LIKE": "fedora", "PLATFORM_ID": "platform:el9", "VERSION_ID": "9.4"})
    assert (d.family, d.repo_os, d.major) == ("rhel", "centos", 9)


def test_raspbian_uses_dockers_raspbian_repo():
    d = detect({"ID": "raspbian", "ID_LIKE": "debian", "VERSION_ID": "12", "VERSION_CODENAME": "bookworm"})
    assert (d.family, d.repo_os, d.codename) == ("debian", "raspbian", "bookworm")


def test_missing_fields_have_defaults():
    with pytest.raises(UnsupportedOS, match=r"^Linux \(ID=linux\) is not supported"):
        detect({})
    assert detect({"ID": "debian"}).major == 0


def test_parse_quoting_escapes_comments_and_blank_lines():
    text = "\n".join([
        "# a comment",
        "",
        "   ",
        'PRETTY_NAME="Foo \\"Bar\\" \\$HOME \\\\ \\` \\n"',
        "NAME='single $quoted \\ literal'",
        "ID=plain",
        'VERSION_CODENAME=""',
        "ESCAPED=a\\ b",
        "TRAILING=word # not part of it",
        "MIXED=\"ab\"'cd'ef",
        "not an assignment",
        "1BAD=x",
        "  INDENTED = no",
    ])
    assert parse_os_release(text) == {
        "PRETTY_NAME": 'Foo "Bar" $HOME \\ ` \\n',
        "NAME": "single $quoted \\ literal",
        "ID": "plain",
        "VERSION_CODENAME": "",
        "ESCAPED": "a b",
        "TRAILING": "word",
        "MIXED": "abcdef",
    }


def test_parse_tolerates_unterminated_quotes_and_crlf():
    assert parse_os_release('ID="ubuntu\r\nVERSION_ID=\'22.04\r\n') == {"ID": "ubuntu", "VERSION_ID": "22.04"}
