"""Who sits where: the fleet's seats in the order students fill them, the roster placed on them, their cards.

The workflow side of the handout: it reads and updates the state (the
roster's placements, credentials reissued to released seats); rendering the
cards is fleet/handout.py's, from the plain :class:`~fleet.handout.Card`
data made here. fleet/roster.py decides placements; this module stores them,
so `fab handout` and `fab provision` agree on who sits where.
"""
from __future__ import annotations

from collections.abc import Mapping

from fleet import local, proxy, roster
from fleet.errors import InputError
from fleet.handout import Card
from fleet.hub.plan import manager_of
from fleet.inventory import Host, Inventory
from fleet.seats import Seat, expand, new_secret
from fleet.servers import records
from fleet.state import State


def seats_in_order(inventory: Inventory, state: State | None = None) -> list[tuple[Host, Seat]]:
    """Every seat of the fleet in the order students fill them: host by host, then as expand() lists them;
    the spares (``spares:``) after every other seat, host by host, so adding spares renumbers no seat.

    The hosts are the inventory's, then the rented servers the state knows (fleet/servers/).
    """
    seats = expand(inventory)
    hosts = inventory.hosts + (records.hosts_from_state(inventory, state.data) if state else ())
    return ([(host, seat) for host in hosts for seat in seats if not seat.spare]
            + [(host, seat) for host in hosts for seat in seats if seat.spare])


def assign_students(inventory: Inventory, state: State, *, release: bool = False) -> roster.Assignment | None:
    """Place the roster's students on seats, keeping earlier placements, and store the result in the state.

    With ``release``, seats held for students who left the roster get a new
    credential in the state, so provision replaces the container: the new
    student never sees the old one's files and the old password stops
    working. Only provision may release, because only it brings the hosts in
    line with the state straight away.
    """
    if inventory.roster is None or inventory.model.mode == "hub":  # the hub has accounts, not seats
        return None
    order = seats_in_order(inventory, state)
    keys = [roster.SeatKey(host.id, seat.container) for host, seat in order if not seat.spare]
    spares = [roster.SeatKey(host.id, seat.container) for host, seat in order if seat.spare]
    pending = max(0, inventory.seat_count - len(keys))  # droplets not created yet
    with state.lock:
        previous = roster.previous_from(state.data.get("roster", {}))
        vacated = roster.vacated_from(state.data.get("vacated", []))
        try:
            result = roster.assign(inventory.roster.names, keys, previous, release=release, pending=pending,
                                   spares=spares, vacated=vacated)
        except roster.SeatShortage as e:
            raise InputError(str(e), file=inventory.roster.source, field="roster") from None
        for seat in result.released:
            state.reissue(seat.host, seat.container, new_secret)
        record, left = result.record(), result.vacated_record()
        if record != state.data.get("roster") or left != state.data.get("vacated", []) or result.released:
            state.data["roster"] = record
            if left or "vacated" in state.data:
                state.data["vacated"] = left
            state.save()
    return result


def cards(inventory: Inventory, state: State, students: Mapping[roster.SeatKey, str] | None = None) -> list[Card]:
    """One card a seat that has credentials in the state, with its student if one is placed there (a spare only
    when a student was moved there).

    In ``mode: hub``, one card a student: the class address, their login and password.
    """
    if inventory.model.mode == "hub":
        return hub_cards(inventory, state)
    out = []
    secrets = state.data["secrets"]
    students = students or {}
    occupied = {(v["host"], v["container"]) for v in state.data.get("roster", {}).values()}
    for host, seat in seats_in_order(inventory, state):
        secret = secrets.get(host.id, {}).get(seat.container)
        if secret is None or (seat.spare and (host.id, seat.container) not in occupied):
            continue  # a spare gets a card once a student was moved there (fab move)
        site = state.site(host.id)
        svc, name = seat.service, proxy.public_name(inventory, host, site.get("address") or offline_address(host))
        out.append(Card(
            student=students.get(roster.SeatKey(host.id, seat.container)), host=host.id, service=svc.name,
            kind=svc.kind, seat=seat.number, url=seat.url(name), user=svc.login_user,
            secret=secret, login_url=seat.url(name, secret), container=seat.container,
            trusted=site.get("tls") == "acme",
        ))
    return out


def hub_cards(inventory: Inventory, state: State) -> list[Card]:
    """A card per student of the roster who has an account (made by provision), and one for the teacher."""
    hub = state.data.get("hub") or {}
    logins, accounts = hub.get("logins", {}), hub.get("accounts", {})
    hosts = inventory.hosts + records.hosts_from_state(inventory, state.data)
    if not hosts or not accounts:
        return []
    manager = manager_of(inventory, hosts)
    site = state.site(manager.id)
    name = proxy.public_name(inventory, manager, site.get("address") or offline_address(manager))
    scheme = "http" if inventory.model.tls.mode == "off" else "https"
    url = f"{scheme}://{f'[{name}]' if ':' in name else name}:{inventory.model.hub.port}/"
    people = [(n, logins.get(n)) for n in (inventory.roster.names if inventory.roster else [])]
    if inventory.model.hub.admin:
        people.append((None, inventory.model.hub.admin))
    out = []
    for number, (student, login) in enumerate(people, 1):
        account = accounts.get(login or "")
        if account is None:
            continue
        out.append(Card(student=student, host=manager.id, service="hub", kind="hub", seat=number, url=url,
                        user=login, secret=account["password"], login_url=url, container=login,
                        trusted=site.get("tls") == "acme"))
    return out


def offline_address(host: Host) -> str:
    """Where students reach a host provision has not yet reached: the HostName ~/.ssh/config gives its address
    (an IP address or a DNS name), else the address itself. Provision keeps the one it found in the state."""
    hostname = local.config_hostname(host.address)
    return hostname if proxy.is_ip(hostname) or "." in hostname else host.address
