"""Progress events: a progress line that also says what it is about.

Every command reports progress through one callback taking a line
(``progress(line)``). An :class:`Event` *is* that line (a ``str``, byte for
byte what a log or a pipe gets) and carries what a live view needs besides:
which host, which step it started, how far a transfer is, how many hosts are
done. Events with ``plain=False`` exist only for a live view (a host starts,
a transfer moved on between two of its printed lines, a fan-out begins or
ends); :func:`emit` hands them only to a callback that asks for them
(``callback.live = True``), so plain output and every test that collects
lines see exactly the lines they saw before.

Kinds (``event.kind``) and what they carry (``event.about``):

- ``fanout``: ``hosts`` (their labels), the work on them begins
- ``start``: ``host``, its work begins
- ``step``: ``host``, ``step`` (the title of what it does now)
- ``transfer``: ``image``, ``received`` (bytes the slowest host has), ``size`` (0: unknown), ``rate``
  (bytes/s), ``have``, ``of`` (hosts that have the whole image, of those receiving it)
- ``done``: ``host``, ``error`` ("" when it succeeded), ``finished``, ``total``
- ``end``: the fan-out is over
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import IO, Any


class Event(str):
    """A progress line, with what it is about."""

    kind: str
    plain: bool
    about: dict[str, Any]

    def __new__(cls, text: str = "", kind: str = "", *, plain: bool = True, **about: Any) -> Event:
        self = super().__new__(cls, text)
        self.kind, self.plain, self.about = kind, plain, about
        return self

    def get(self, key: str, default: Any = None) -> Any:
        return self.about.get(key, default)


def emit(progress: Callable[[str], None] | None, event: Event) -> None:
    """Hand ``event`` to ``progress``: a plain line always, a live-only event only to a callback that wants it."""
    if progress is not None and (event.plain or getattr(progress, "live", False)):
        progress(event)


def wants_events(progress: Callable[[str], None] | None) -> bool:
    """Does this callback take live-only events (worth computing them)?"""
    return bool(getattr(progress, "live", False))


def live_wanted(stream: IO[str], environ: Mapping[str, str]) -> bool:
    """A live view (fleet/live.py) on this stream? Only on a terminal that can redraw, and not when NO_COLOR asks
    for calm. Here, not in fleet/live.py, so that deciding against it does not import rich."""
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):
        return False
    return tty and not environ.get("NO_COLOR") and environ.get("TERM", "") not in ("", "dumb")
