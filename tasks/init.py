from __future__ import annotations

import os
from pathlib import Path

from fabric import task

from fleet import starter
from fleet.errors import InputError

from .common import cli, command


@task(help={"hosts": "the inventory file to write (default lab.yml); an existing file is never overwritten"})
@cli
def init(c, hosts="lab.yml"):
    """Write a commented starter inventory: every option, its default and why.

    Replace the two server addresses in it and `fab check --hosts lab.yml`
    passes. Never overwrites a file (exit status 2 if it exists).
    """
    path = Path(hosts)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)  # O_EXCL: never over an existing file
    except FileExistsError:
        raise InputError("exists already; init never overwrites a file: give another name with --hosts",
                         file=hosts) from None
    except OSError as e:
        raise InputError(f"cannot write: {e.strerror}", file=hosts) from None
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(starter.text(path.stem))
    print(f"Wrote {hosts}: replace the two addresses under `hosts:`, then {command('check --hosts ' + hosts)}")
