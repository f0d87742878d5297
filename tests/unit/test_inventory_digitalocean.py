"""The inventory's digitalocean block: errors name the file, line and field; a token is never accepted."""
from __future__ import annotations

import pytest

from fleet import inventory
from fleet.errors import InputError
from tests.unit.conftest import load_error

TOKEN = "dop_v1_" + "0123456789abcdef" * 4

DROPLETS = """\
name: lab
digitalocean:
  count: 3
  region: ams3
  size: s-2vcpu-4gb
  image: ubuntu-24-04-x64
  ssh_key: keys/id_ed25519.pub
docker: {source: distro}
services:
  - {name: nb, image: fleet-jupyter:test, publish: 8000, seats: 2}
"""


error = load_error


def test_droplets_only_inventory(write, tmp_path):
    inv = inventory.load(write(DROPLETS))
    do = inv.model.digitalocean
    assert (do.count, do.region, do.size, do.image, do.user) == (3, "ams3", "s-2vcpu-4gb", "ubuntu-24-04-x64", "root")
    assert inv.hosts == ()
    assert inv.server_count == 3 and inv.seat_count == 6
    assert inv.droplet_key == (tmp_path / "keys" / "id_ed25519.pub", tmp_path / "keys" / "id_ed25519")


def test_hosts_and_droplets_together(write):
    inv = inventory.load(write(DROPLETS.replace("docker:", "hosts: [192.0.2.10]\ndocker:")))
    assert [h.address for h in inv.hosts] == ["192.0.2.10"] and inv.server_count == 4


def test_neither_hosts_nor_droplets(write):
    e = error(write, "name: lab\nservices: [{name: nb, image: x, publish: 8000}]\n")
    assert e.field == "hosts" and "or add a `digitalocean:` block" in str(e)


@pytest.mark.parametrize("key", ["token", "access_token", "api_token", "API_KEY"])
def test_a_token_field_is_refused_without_echoing_it(write, key):
    e = error(write, DROPLETS.replace("  count: 3\n", f"  count: 3\n  {key}: {TOKEN}\n"))
    assert (e.line, e.field) == (4, f"digitalocean.{key}")
    assert "DIGITALOCEAN_ACCESS_TOKEN" in str(e) and TOKEN not in str(e)


def test_a_token_shaped_value_anywhere_is_refused(write):
    e = error(write, DROPLETS + f"roster: [{TOKEN}]\n")
    assert e.field == "roster[0]" and TOKEN not in str(e) and "looks like a DigitalOcean API token" in str(e)


@pytest.mark.parametrize("old, new, line, field, words", [
    ("count: 3", "count: 0", 3, "digitalocean.count", "greater than or equal to 1"),
    ("count: 3", "count: '3'", 3, "digitalocean.count", "whole number"),
    ("region: ams3", "region: Amsterdam", 4, "digitalocean.region", "not a DigitalOcean slug"),
    ("image: ubuntu-24-04-x64", "image: 'Ubuntu 24'", 6, "digitalocean.image", "image slug"),
    ("ssh_key: keys/id_ed25519.pub", "ssh_key: keys/id_ed25519", 7, "digitalocean.ssh_key", "name the public key file"),
    ("ssh_key: keys/id_ed25519.pub", "ssh_key: keys/nope.pub", 7, "digitalocean.ssh_key", "does not exist"),
    ("  count: 3\n", "  count: 3\n  colour: blue\n", 4, "digitalocean.colour", "unknown field"),
    ("publish: 8000, seats: 2", "publish: 21, seats: 2", 10, "services[0].publish", "the SSH port (22)"),
])
def test_block_errors_name_line_and_field(write, old, new, line, field, words):
    e = error(write, DROPLETS.replace(old, new, 1))
    assert (e.line, e.field) == (line, field), str(e)
    assert words in str(e)


def test_private_key_must_sit_beside_the_public_one(write, tmp_path):
    path = write(DROPLETS)
    (tmp_path / "keys" / "id_ed25519").unlink()
    with pytest.raises(InputError) as e:
        inventory.load(path)
    assert e.value.field == "digitalocean.ssh_key" and "private key" in str(e.value)


def test_public_key_file_must_hold_a_public_key(write, tmp_path):
    path = write(DROPLETS)
    (tmp_path / "keys" / "id_ed25519.pub").write_text("-----BEGIN OPENSSH PRIVATE KEY-----\n")
    with pytest.raises(InputError) as e:
        inventory.load(path)
    assert "not an OpenSSH public key" in str(e.value)


def test_an_empty_block_is_an_error_not_an_absence(write):
    e = error(write, "name: lab\ndigitalocean:\nservices: [{name: nb, image: x, publish: 8000}]\n")
    assert e.field == "digitalocean" and "empty block" in str(e)


def test_line_of_finds_fields_for_errors_found_later(write):
    inv = inventory.load(write(DROPLETS))
    assert inventory.line_of(inv, "digitalocean", "size") == 5
