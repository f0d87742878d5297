"""The state's record of rented servers: ids the moment the API gives them, addresses once known.

The record lives in the state under the provider's name (``"digitalocean":
{"droplets": {ID: {name, address, ready}}, "ssh_key": ...}``), so a fleet
whose inventory lost its cloud block is still torn down completely.
"""
from __future__ import annotations

from collections.abc import Iterable

from fleet.cloud import Server, settings_of
from fleet.hostkeys import HostKeys, known_hosts_name
from fleet.inventory import Host, Inventory
from fleet.servers.decide import number_of
from fleet.state import State

SSH_PORT = 22
PROVIDERS = ("digitalocean",)  # state sections fleet knows how to tear down
RECORDS = {"digitalocean": "droplets"}  # each section's word for its servers, as the state file has always said


def section(state_data: dict, provider: str) -> dict:
    return state_data.setdefault(provider, {RECORDS[provider]: {}, "ssh_key": None})


def records(state_data: dict, provider: str) -> dict[str, dict]:
    return (state_data.get(provider) or {}).get(RECORDS[provider]) or {}


def known(state_data: dict) -> list[str]:
    """The providers the state holds servers of."""
    return [p for p in PROVIDERS if records(state_data, p)]


def has_servers(inventory: Inventory, state_data: dict) -> bool:
    """Whether teardown must look at a cloud: the inventory rents servers or the state knows some."""
    return settings_of(inventory) is not None or bool(known(state_data))


def hosts_from_state(inventory: Inventory, state_data: dict) -> tuple[Host, ...]:
    """The rented servers the state knows an address of, as hosts (log in as the block's user with its key)."""
    found = settings_of(inventory)
    user = found[1].user if found else "root"
    key = str(inventory.droplet_key[1]) if inventory.droplet_key else None
    out: list[Host] = []
    for provider in PROVIDERS:
        recs = sorted(records(state_data, provider).values(),
                      key=lambda r: (number_of(inventory.name, r["name"]) or 0, r["name"]))
        out += [Host(address=r["address"], user=user, port=SSH_PORT, key=key) for r in recs if r.get("address")]
    return tuple(out)


def remember(state: State, keys: HostKeys, provider: str, servers: Iterable[Server]) -> None:
    """Write server ids to the state file now (atomic), before anything else can go wrong.

    The first time a server's address is learnt, any host key pinned for that
    address belonged to an older machine (clouds reuse addresses): it is
    dropped, so the new server's key is pinned on first contact.
    """
    new_addresses = []
    with state.lock:
        recs = section(state.data, provider)[RECORDS[provider]]
        for d in servers:
            rec = recs.setdefault(str(d.id), {"name": d.name, "address": None, "ready": False})
            if d.public_ipv4 and rec.get("address") != d.public_ipv4:
                new_addresses.append(d.public_ipv4)
                rec["address"], rec["ready"] = d.public_ipv4, False
        state.save()
    unpin(state, keys, new_addresses)


def forget(state: State, keys: HostKeys, provider: str, server_ids: Iterable[int]) -> None:
    """Drop destroyed servers from the state, with their seats' credentials and host key pins."""
    gone_addresses = []
    with state.lock:
        recs = section(state.data, provider)[RECORDS[provider]]
        for i in server_ids:
            rec = recs.pop(str(i), None)
            if rec and rec.get("address"):
                gone_addresses.append(rec["address"])
                state.forget_host(rec["address"])
        state.save()
    unpin(state, keys, gone_addresses)


def unpin(state: State, keys: HostKeys, addresses: list[str]) -> None:
    """Drop the host keys pinned for these addresses (locks taken keys first, as the session does)."""
    if not addresses:
        return
    names = {known_hosts_name(Host(address=a, user="root", port=SSH_PORT, key=None)) for a in addresses}
    with keys.lock, state.lock:
        for name in names:
            keys.pinned.pop(name, None)
            state.data["host_keys"].pop(name, None)
        state.save()


def mark_ready(state: State, provider: str, server_id: int) -> None:
    with state.lock:
        rec = section(state.data, provider)[RECORDS[provider]].get(str(server_id))
        if rec is not None:
            rec["ready"] = True
        state.save()


def was_ready(state_data: dict, provider: str, server_id: int) -> bool:
    return bool(records(state_data, provider).get(str(server_id), {}).get("ready"))
