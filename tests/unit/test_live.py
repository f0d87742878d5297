"""The live view: events in, a line per working host, the transfers and the overall bar out; plain lines unchanged."""
from __future__ import annotations

import io

from rich.console import Console

from fleet.events import Event, emit
from fleet.events import live_wanted as wanted
from fleet.live import LiveView, safe
from fleet.runner import fan_out


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def view() -> tuple[LiveView, io.StringIO, Clock]:
    out, clock = io.StringIO(), Clock()
    console = Console(file=out, force_terminal=True, width=120, height=30, color_system=None, highlight=False)
    return LiveView(console, clock=clock), out, clock


def frame(v: LiveView) -> str:
    console = Console(file=io.StringIO(), width=120, color_system=None)
    with console.capture() as cap:
        console.print(v.render())
    return cap.get()


def test_a_line_per_working_host_with_its_step_and_time_on_it():
    v, out, clock = view()
    v(Event(kind="fanout", plain=False, hosts=["192.0.2.10", "192.0.2.11"]))
    v(Event(kind="start", plain=False, host="192.0.2.10"))
    v(Event("  192.0.2.10: install Docker (apt)", "step", host="192.0.2.10", step="install Docker (apt)"))
    v(Event(kind="start", plain=False, host="192.0.2.11"))
    clock.now += 42
    v("  192.0.2.11: waiting up to 300s for the apt/dpkg lock")  # a plain line about a working host
    clock.now += 3
    shown = frame(v)
    assert "192.0.2.10" in shown and "install Docker (apt)" in shown and "45s" in shown
    assert "waiting up to 300s for the apt/dpkg lock" in shown and "3s" in shown
    assert "0/2" in shown  # hosts done of all
    v(Event("[1/2] 192.0.2.10: ok", "done", host="192.0.2.10", error="", finished=1, total=2))
    shown = frame(v)
    assert "install Docker" not in shown and "1/2" in shown
    v(Event(kind="end", plain=False))
    assert v.display is None
    text = out.getvalue()
    assert "[1/2] 192.0.2.10: ok" in text  # done lines stay above the view
    assert "  192.0.2.10: install Docker (apt)" not in text  # step lines are only drawn, not logged


def test_a_transfer_shows_bytes_rate_and_what_is_left():
    v, _, _ = view()
    v(Event(kind="fanout", plain=False, hosts=["a", "b"]))
    v(Event("", "transfer", plain=False, image="fleet-jupyter:test", received=120_000_000, size=481_000_000,
            rate=12e6, have=0, of=2))
    shown = frame(v)
    assert "image fleet-jupyter:test: 0 of 2 hosts have it" in shown
    assert "120.0/481.0 MB" in shown
    v(Event("", "transfer", plain=False, image="fleet-jupyter:test", received=481_000_000, size=481_000_000,
            rate=12e6, have=2, of=2))
    assert "481.0/481.0 MB" in frame(v)
    v.close()


def test_hostile_text_is_escaped_never_markup():
    v, out, _ = view()
    v(Event(kind="fanout", plain=False, hosts=["h"]))
    v(Event(kind="start", plain=False, host="h"))
    v(Event("", "step", host="h", step="\x1b]0;pwned\x07[bold red]x[/] \x1b[2J"))
    shown = frame(v)
    assert "\x1b" not in shown and "\\x1b]0;pwned\\x07" in shown and "[bold red]x[/]" in shown
    v("WARNING: \x1b[31mred\u2028")
    v.close()
    assert "\\x1b[31mred\\u2028" in out.getvalue()
    assert safe("ok\tmore") == "ok\\tmore"


def test_wanted_only_on_a_terminal_without_no_color():
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert wanted(Tty(), {"TERM": "xterm"})
    assert not wanted(Tty(), {"TERM": "xterm", "NO_COLOR": "1"})
    assert not wanted(Tty(), {"TERM": "dumb"})
    assert not wanted(io.StringIO(), {"TERM": "xterm"})


def test_plain_callbacks_get_exactly_the_lines_they_got_before():
    lines: list[str] = []
    fan_out(range(3), lambda n: n, parallel=2, progress=lines.append)
    assert len(lines) == 3 and all(isinstance(line, str) and line.startswith("[") for line in lines)
    emit(lines.append, Event("not for logs", "step", plain=False))
    assert len(lines) == 3


def test_a_live_callback_gets_the_fan_out_as_events():
    got: list[Event] = []

    class Live:
        live = True

        def __call__(self, line: str) -> None:
            got.append(line)

    fan_out(["a", "b"], lambda h: h, parallel=1, progress=Live())
    kinds = [e.kind for e in got]
    assert kinds[0] == "fanout" and kinds[-1] == "end" and kinds.count("start") == 2 and kinds.count("done") == 2
    assert got[0].get("hosts") == ["a", "b"]
    done = [e for e in got if e.kind == "done"]
    assert [str(e) for e in done] == ["[1/2] a: ok", "[2/2] b: ok"] and done[-1].get("finished") == 2


def test_the_task_progress_prints_plain_events_byte_for_byte(capsys):
    from tasks.common import progress

    assert not progress.live
    progress(Event("  h: install Docker", "step", host="h", step="install Docker"))
    progress(Event(kind="start", plain=False, host="h"))
    assert capsys.readouterr().err == "  h: install Docker\n"
