"""The one fan-out: a bounded pool over hosts, fail-slow, a result per host.

Fabric's ThreadingGroup starts a thread per host with no cap and no timeout;
this pool runs at most ``parallel`` hosts at once, turns every failure into
that host's result (one host never stops the others) and reports progress as
each host finishes.
"""
from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Generic, TypeVar

from fleet.errors import FleetError

T = TypeVar("T")
R = TypeVar("R")


@dataclass
class Outcome(Generic[T, R]):
    item: T
    value: R | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def fan_out(
    items: Iterable[T],
    work: Callable[[T], R],
    *,
    parallel: int,
    label: Callable[[T], str] = str,
    progress: Callable[[str], None] | None = None,
) -> list[Outcome[T, R]]:
    """Run ``work`` on every item, at most ``parallel`` at a time; results in input order."""
    items = list(items)
    if progress is None:
        progress = _stderr
    outcomes: dict[int, Outcome[T, R]] = {}
    pool = ThreadPoolExecutor(max_workers=max(1, min(parallel, len(items) or 1)))
    try:
        futures = {pool.submit(work, item): i for i, item in enumerate(items)}
        for done, future in enumerate(as_completed(futures), 1):
            i = futures[future]
            try:
                outcomes[i] = Outcome(items[i], value=future.result())
            except FleetError as e:
                outcomes[i] = Outcome(items[i], error=str(e))
            except Exception as e:  # a bug must not stop the other hosts; say what it was
                outcomes[i] = Outcome(items[i], error=f"internal error: {type(e).__name__}: {e}")
            o = outcomes[i]
            progress(f"[{done}/{len(items)}] {label(items[i])}: {'ok' if o.ok else o.error}")
    except KeyboardInterrupt:
        # Hosts not started yet are not started; a step already running on a
        # host finishes (each is bounded by its timeout) rather than being cut
        # off half-applied.
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()
    return [outcomes[i] for i in range(len(items))]


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
