"""The pure parts of the image relay: one-time keys, authorized_keys lines, argv."""
from __future__ import annotations

import io
import socket

import paramiko
import pytest

from fleet import relayhost
from fleet.inventory import Host


def test_one_time_key_is_a_working_ed25519_pair_that_stays_out_of_repr():
    key = relayhost.new_key()
    loaded = paramiko.Ed25519Key.from_private_key(io.StringIO(key.private.decode()))
    assert key.public == f"ssh-ed25519 {loaded.get_base64()}"
    assert key.private.startswith(b"-----BEGIN OPENSSH PRIVATE KEY-----")
    assert "PRIVATE" not in repr(key) and key.private.decode() not in repr(key)
    assert relayhost.new_key().public != key.public


def test_forced_command_only_streams_the_relay_file_through_passwordless_sudo_for_non_root():
    path = relayhost.relay_file("lab", "fleet-jupyter:test")
    assert path.startswith("/var/tmp/fleet-relay-lab/") and path.endswith(".tar")
    assert path != relayhost.relay_file("lab", "fleet-jupyter:v2") and path != relayhost.relay_file("lab2", "fleet-jupyter:test")
    assert relayhost.follow_command(path, "root") == ("sh", "-c", relayhost.FOLLOW, "sh", path)
    assert relayhost.follow_command(path, "teacher") == ("sudo", "-n", "--", "sh", "-c", relayhost.FOLLOW, "sh", path)
    assert "\n" not in relayhost.FOLLOW  # an authorized_keys line is one line
    assert "--pid=" in relayhost.FOLLOW and "tail -c +1 -f" in relayhost.FOLLOW


def test_authorized_line_restricts_source_command_and_channels():
    line = relayhost.authorized_line("ssh-ed25519 AAAAC3Nz", ["192.0.2.11", "192.0.2.12"],
                                 ("sudo", "-n", "--", "docker", "save", "img:1"), "fleet-relay-lab-0011aabb")
    assert line == ('from="192.0.2.11,192.0.2.12",command="sudo -n -- docker save img:1",'
                    "no-agent-forwarding,no-port-forwarding,no-pty,no-user-rc,no-X11-forwarding "
                    "ssh-ed25519 AAAAC3Nz fleet-relay-lab-0011aabb")


def test_authorized_line_escapes_quotes_in_the_forced_command():
    line = relayhost.authorized_line("ssh-ed25519 K", ["2001:db8::1"], ("echo", 'a"b'), "c")
    assert 'command="echo \'a\\"b\'"' in line
    assert line.startswith('from="2001:db8::1",')


@pytest.mark.parametrize("sources", [[], [""], ["192.0.2.1,0.0.0.0/0"], ['1.2.3.4"'], ["a b"]])
def test_authorized_line_refuses_bad_sources(sources):
    with pytest.raises(ValueError):
        relayhost.authorized_line("ssh-ed25519 K", sources, ("true",), "c")


def test_authorized_line_refuses_a_comment_with_spaces():
    with pytest.raises(ValueError):
        relayhost.authorized_line("ssh-ed25519 K", ["192.0.2.1"], ("true",), "two words")


def test_marker_names_the_fleet_and_its_prefix_finds_every_run():
    assert relayhost.marker("lab", "ab12") == "fleet-relay-lab-ab12"
    assert relayhost.marker("lab", "ab12").startswith(relayhost.marker("lab"))
    assert not relayhost.marker("lab2", "x").startswith(relayhost.marker("lab"))


def test_known_hosts_line_uses_the_bracketed_form_off_port_22():
    assert relayhost.known_hosts_line(Host("192.0.2.10", "root", 22, None), "ssh-ed25519", "AAA") == \
        "192.0.2.10 ssh-ed25519 AAA"
    assert relayhost.known_hosts_line(Host("192.0.2.10", "root", 2222, None), "ssh-ed25519", "AAA") == \
        "[192.0.2.10]:2222 ssh-ed25519 AAA"


def test_receive_argv_passes_every_value_as_a_positional_argument_and_no_key():
    before = Host("192.0.2.10", "teacher", 2200, None)
    path = relayhost.relay_file("lab", "img:1")
    argv = relayhost.receive_argv(path, "img:1", before, "[192.0.2.10]:2200 ssh-ed25519 AAA", docker_wait=60)
    assert argv[:2] == ("sh", "-c") and argv[2] == relayhost.RECEIVE
    assert argv[3:] == ("sh", "teacher@192.0.2.10", "2200", "[192.0.2.10]:2200 ssh-ed25519 AAA", path, "img:1", "60")
    assert relayhost.receive_argv(path, "img:1")[3:6] == ("sh", "-", "")  # from this computer, on stdin
    assert "StrictHostKeyChecking=yes" in relayhost.RECEIVE and "StrictHostKeyChecking=no" not in relayhost.RECEIVE
    assert "rm -rf \"$d\"" in relayhost.RECEIVE and 'cat <&3 > "$d/key"' in relayhost.RECEIVE  # the key comes on stdin, goes


def test_install_and_remove_argv():
    assert relayhost.install_argv("root", "LINE", "fleet-relay-lab-", "fleet-relay-lab-0a1b-") == (
        "sh", "-c", relayhost.INSTALL_KEY, "sh", "root", "LINE", "fleet-relay-lab-", "fleet-relay-lab-0a1b-")
    with pytest.raises(ValueError):  # this run's lines must be told apart from an earlier run's
        relayhost.install_argv("root", "LINE", "fleet-relay-lab-", "fleet-relay-lab-")
    assert relayhost.remove_argv("teacher", "fleet-relay-lab-", "lab") == (
        "sh", "-c", relayhost.REMOVE_KEY, "sh", "teacher", "fleet-relay-lab-", "/var/tmp/fleet-relay-lab")


def test_eta_of_the_slowest_host():
    assert relayhost.eta(500_000_000, 100_000_000, 10_000_000) == ", about 40 s left"
    assert relayhost.eta(0, 1, 1) == "" and relayhost.eta(10, 10, 1) == "" and relayhost.eta(10, 1, 0) == ""


def test_source_addresses_keeps_ips_and_resolves_names_once_each():
    def resolve(name, port, type):  # noqa: A002 - getaddrinfo's keyword
        assert type == socket.SOCK_STREAM
        if name == "lab1.example.org":
            return [(socket.AF_INET, type, 6, "", ("192.0.2.21", 0)), (socket.AF_INET6, type, 6, "", ("2001:db8::21", 0, 0, 0))]
        raise socket.gaierror("no such name")

    hosts = [Host("192.0.2.11", "root", 22, None), Host("lab1.example.org", "root", 22, None),
             Host("gone.example.org", "root", 22, None), Host("192.0.2.11", "teacher", 2222, None)]
    assert relayhost.source_addresses(hosts, resolve) == ["192.0.2.11", "192.0.2.21", "2001:db8::21"]
