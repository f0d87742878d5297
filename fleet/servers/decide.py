"""Pure decisions about rented servers: their names, what to keep, create and destroy, batches, the price."""
from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from fleet.cloud import Server, Size


def tag_for(fleet: str) -> str:
    """The tag every server of the fleet carries: ``fleet:NAME`` (clouds allow letters, digits, : - _)."""
    return f"fleet:{fleet}"


def server_name(fleet: str, number: int) -> str:
    """``NAME-01`` ... ``NAME-99``, ``NAME-100``: sorted as a teacher counts."""
    return f"{fleet}-{number:02d}"


def number_of(fleet: str, name: str) -> int | None:
    m = re.fullmatch(rf"{re.escape(fleet)}-(\d+)", name)
    return int(m.group(1)) if m else None


@dataclass(frozen=True)
class Reconciled:
    keep: tuple[Server, ...]
    create: tuple[str, ...]
    remove: tuple[Server, ...]  # highest-numbered first


def reconcile(fleet: str, count: int, existing: Iterable[Server]) -> Reconciled:
    """Which servers to keep, which names to create and which servers to destroy for ``count``.

    Wanted are ``NAME-01`` .. ``NAME-count``. Of two servers with one name
    (a lost create answer, retried elsewhere) the older, lower id stays.
    Everything else carrying the fleet's tag goes: higher numbers after the
    count shrank, duplicates, and foreign names (the tag says fleet owns them;
    the teacher sees them listed before confirming).
    """
    wanted = [server_name(fleet, n) for n in range(1, count + 1)]
    first: dict[str, Server] = {}
    for d in sorted(existing, key=lambda d: d.id):
        first.setdefault(d.name, d)
    keep = tuple(first[n] for n in wanted if n in first)
    kept = {d.id for d in keep}
    remove = sorted((d for d in existing if d.id not in kept),
                    key=lambda d: (-(number_of(fleet, d.name) or 0), d.name, -d.id))
    return Reconciled(keep=keep, create=tuple(n for n in wanted if n not in first), remove=tuple(remove))


def batches(names: Sequence[str], size: int) -> list[tuple[str, ...]]:
    return [tuple(names[i:i + size]) for i in range(0, len(names), size)]


def pick_size(sizes: Iterable[Size], slug: str, region: str, label: str) -> Size | str:
    """The size, or why it cannot be used (unknown, not offered in the region, unavailable)."""
    sizes = list(sizes)
    found = next((s for s in sizes if s.slug == slug), None)
    if found is None:
        here = sorted(s.slug for s in sizes if region in s.regions and s.available)
        return f"{slug!r} is not a {label} size; sizes in {region}: {', '.join(here[:12]) or 'none'}"
    if region not in found.regions:
        return f"size {slug!r} is not offered in region {region!r}; it is in {', '.join(found.regions) or 'no region'}"
    if not found.available:
        return f"size {slug!r} is not available at the moment; pick another"
    return found


def money(amount: float, places: int = 2) -> str:
    return f"${amount:,.{places}f}"


def quote(fleet: str, settings: Any, size: Size, plan: Reconciled, *, label: str, noun: str,
          teardown: str = "fab teardown") -> str:
    """What provision will do to the servers, and what they cost: shown before the teacher confirms."""
    def names(ds: Iterable[str]) -> str:
        return ", ".join(ds)

    total = len(plan.keep) + len(plan.create)
    lines = [f"{label}, fleet {fleet!r} (tag {tag_for(fleet)}): {size.slug} ({size.vcpus} vCPU, "
             f"{size.memory // 1024 if size.memory >= 1024 else size.memory} {'GB' if size.memory >= 1024 else 'MB'}) "
             f"in {settings.region}, image {settings.image}"]
    if plan.create:
        lines.append(f"  create  {len(plan.create)}: {names(plan.create)}")
    if plan.remove:
        doomed = (f"{d.name} (id {d.id}{', ' + d.public_ipv4 if d.public_ipv4 else ''})" for d in plan.remove)
        lines.append(f"  DESTROY {len(plan.remove)}: {names(doomed)}; everything on them is lost")
    if plan.keep:
        lines.append(f"  keep    {len(plan.keep)}: {names(d.name for d in plan.keep)}")
    hourly = size.price_hourly * total
    lines.append(f"  price: {money(size.price_hourly, 4)} an hour each; {total} {noun}{'s' * (total != 1)}: "
                 f"{money(hourly, 4)} an hour, {money(hourly * 24)} for 24 hours. Billed until `{teardown}` destroys them")
    return "\n".join(lines)


def status_line(noun: str, names: dict[int, str], seen: dict[int, Server], ready: set[int]) -> str:
    """One progress line while waiting: how many are ready and what the others are doing."""
    waiting = [f"{names[i]} {why(seen.get(i))}" for i in sorted(names, key=names.get) if i not in ready]
    return f"{noun}s: {len(ready)}/{len(names)} ready" + (f" (waiting: {', '.join(waiting)})" if waiting else "")


def why(d: Server | None) -> str:
    """What a server still lacks, as the API shows it."""
    if d is None:
        return "not listed yet"
    if d.status != "active":
        return d.status
    return "active, no public IPv4 yet" if d.public_ipv4 is None else "active"
