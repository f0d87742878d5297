"""The live view of a long command on a terminal: a line per host, the transfers, an overall bar.

While hosts are worked on (between a fan-out's ``fanout`` and ``end``
events, fleet/events.py), a terminal shows, redrawn a few times a second by
rich's Live display:

- one line per host still working: its current step and how long it has
  been on it (hosts that are done leave the view; their ``[i/n] host: ok``
  line is printed above it, as are warnings and every other line);
- each image transfer: a bar of the slowest host's bytes, the rate, the time
  left and how many hosts have the whole image;
- the hosts done of all, and the time since the start.

Everything it shows comes from events, never from parsing lines, except a
``"  HOST: what"`` line of a producer that sends plain text only (a wait for
a package lock, say), which becomes that host's current step. Text from
hosts and inventories is shown with control characters escaped and never
read as markup. Off a terminal, with NO_COLOR set, or with ``--plain``, this
module is not used and the plain lines are printed as they are
(tasks/common.py decides).
"""
from __future__ import annotations

import re
import threading
import time

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Column, Table
from rich.text import Text

from fleet.events import Event

HOST_LINE = re.compile(r"^  (\S+): (.+)$")
REFRESH = 4  # redraws a second


def safe(text: str) -> str:
    """Control characters and broken Unicode escaped (as in every error fleet prints)."""
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)


def seconds(n: float) -> str:
    n = int(n)
    return f"{n}s" if n < 60 else f"{n // 60}m{n % 60:02d}s"


class LiveView:
    """Takes every progress line and event of one command; draws while hosts are worked on.

    Thread-safe: the hosts' threads call it at once. ``live`` tells the
    producers that it wants live-only events (fleet.events.emit).
    """

    live = True

    def __init__(self, console: Console, *, clock=time.monotonic):  # noqa: ANN001
        self.console = console
        self.clock = clock
        self.lock = threading.RLock()
        self.hosts: dict[str, tuple[str, float]] = {}  # working host → (its step, since when)
        self.display: Live | None = None
        whole = Column(no_wrap=True)  # a narrow terminal cuts the description short, never the numbers
        self.transfers = Progress(
            TextColumn("  {task.description}", table_column=Column(no_wrap=True, overflow="ellipsis", ratio=1)),
            BarColumn(bar_width=20), DownloadColumn(table_column=whole), TransferSpeedColumn(table_column=whole),
            TimeRemainingColumn(table_column=whole), console=console, expand=True)
        self.images: dict[str, TaskID] = {}
        self.overall = Progress(TextColumn("  hosts done"), BarColumn(bar_width=None), MofNCompleteColumn(),
                                TimeElapsedColumn(), console=console, expand=True)
        self.bar: TaskID | None = None

    # --- events in ---------------------------------------------------------------

    def __call__(self, line: str) -> None:
        kind = line.kind if isinstance(line, Event) else ""
        show = str(line) if (not isinstance(line, Event) or line.plain) and kind not in ("step", "transfer") else ""
        with self.lock:
            if kind == "fanout":
                self._begin(line.get("hosts", []))
            elif kind == "start":
                self.hosts[line.get("host", "")] = ("connect", self.clock())
            elif kind == "step":
                self.hosts[line.get("host", "")] = (line.get("step", ""), self.clock())
            elif kind == "transfer":
                self._transfer(line)
            elif kind == "done":
                self.hosts.pop(line.get("host", ""), None)
                if self.bar is not None:
                    self.overall.update(self.bar, completed=line.get("finished", 0), total=line.get("total", 0))
            elif not kind and self.display is not None and (m := HOST_LINE.match(show)) and m[1] in self.hosts:
                self.hosts[m[1]] = (m[2], self.clock())  # a plain line about a working host: what it does now
                show = ""
            stopping = kind == "end" and self.display is not None
            starting = None
            if kind == "fanout" and self.display is None:
                # stderr written by anything else meanwhile goes above the view; stdout (the table) is not touched
                starting = self.display = Live(console=self.console, get_renderable=self.render,
                                               refresh_per_second=REFRESH, transient=False, redirect_stdout=False,
                                               redirect_stderr=True)
        if starting is not None:
            starting.start()  # draws at once: outside the lock, which drawing takes
        if show:
            self._print(show, error=kind == "done" and bool(line.get("error")))
        if stopping:
            self.close()

    def _begin(self, hosts: list[str]) -> None:
        self.hosts.clear()
        for task in self.overall.task_ids:
            self.overall.remove_task(task)
        for task in self.transfers.task_ids:
            self.transfers.remove_task(task)
        self.images.clear()
        self.bar = self.overall.add_task("hosts", total=len(hosts))

    def _transfer(self, event: Event) -> None:
        image = event.get("image", "")
        size = event.get("size", 0) or None
        text = f"image {safe(image)}: {event.get('have', 0)} of {event.get('of', 0)} hosts have it"
        if image not in self.images:
            self.images[image] = self.transfers.add_task(text, total=size)
        task = self.images[image]
        done = event.get("of", 0) and event.get("have", 0) == event.get("of", 0)
        self.transfers.update(task, description=text, completed=size if done and size else event.get("received", 0),
                              total=size)

    def _print(self, text: str, *, error: bool = False) -> None:
        """A line that stays: above the live view while it draws, else as a plain line."""
        self.console.print(Text(safe(text), style="red" if error else ""), soft_wrap=True, highlight=False)

    # --- drawing ---------------------------------------------------------------------

    def render(self) -> RenderableType:
        with self.lock:
            now = self.clock()
            working = list(self.hosts.items())
            room = max(3, self.console.size.height - 4 - len(self.images))
            grid = Table.grid(padding=(0, 2), expand=True)
            grid.add_column(no_wrap=True)
            grid.add_column(no_wrap=True, overflow="ellipsis", ratio=1)
            grid.add_column(no_wrap=True, justify="right")
            for host, (step, since) in working[:room]:
                grid.add_row(Text(safe(host), style="bold"), Text(safe(step)), Text(seconds(now - since), style="cyan"))
            if len(working) > room:
                grid.add_row(Text(f"... and {len(working) - room} more hosts working"), Text(""), Text(""))
            parts: list[RenderableType] = [grid]
            if self.images:
                parts.append(self.transfers)
            parts.append(self.overall)
            return Group(*parts)

    def close(self) -> None:
        """Stop drawing (the last frame stays on the screen); lines from now on print plainly."""
        with self.lock:
            display, self.display = self.display, None
        if display is not None:
            display.refresh()
            display.stop()
