"""The project's error types.

Two kinds matter to a user: bad input (exit status 2, nothing touched) and a
host that failed (reported in the table, the other hosts go on).
"""
from __future__ import annotations


class FleetError(Exception):
    """Any failure the tool explains itself; never shown as a traceback."""

    exit_code = 1


class InputError(FleetError):
    """Bad input: the message names the file, line and field, and what is valid."""

    exit_code = 2

    def __init__(self, message: str, *, file: str = "", line: int | None = None, field: str = ""):
        self.file = file
        self.line = line
        self.field = field
        self.detail = message
        where = file
        if line is not None:
            where = f"{where}:{line}" if where else f"line {line}"
        prefix = ": ".join(p for p in (where, field) if p)
        super().__init__(f"{prefix}: {message}" if prefix else message)


class InputErrors(InputError):
    """Several problems of one input at once (an inventory's), in the order to read them.

    It reads as its first problem (``file``, ``line``, ``field``, ``detail``),
    so a caller that wants one gets one; ``problems`` holds them all and str()
    is one line each, at most :data:`SHOWN` of them.
    """

    SHOWN = 20

    def __init__(self, problems: list[InputError]):
        first = problems[0]
        super().__init__(first.detail, file=first.file, line=first.line, field=first.field)
        self.problems = list(problems)
        self.args = ("\n".join(self.lines()),)

    def lines(self) -> list[str]:
        """One line per problem, the first SHOWN; then how many more there are."""
        shown = [str(p) for p in self.problems[: self.SHOWN]]
        more = len(self.problems) - self.SHOWN
        if more > 0:
            shown.append(f"{self.problems[0].file}: and {more} more problem{'s' * (more > 1)}; fix these first")
        return shown


class HostError(FleetError):
    """One host cannot be brought to the wanted state; the message is one line."""


class UnsupportedOS(HostError):
    """The host's Linux is not one the fleet knows how to put Docker on."""
