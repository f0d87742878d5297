"""The installed ``fleet`` command: Fabric's own program over the task collection.

``pipx install classroom-fleet`` puts this module in site-packages as
``fleet.tasks.cli`` and makes ``fleet`` run :func:`main`, from any folder:
``fleet provision --hosts lab.yml`` is ``fab provision --hosts lab.yml`` in a
checkout, with the same tasks, options and core flags (``-l``, ``--help TASK``,
``--prompt-for-sudo-password``, ``--print-completion-script bash``), because it
is the same ``fabric.main.Fab`` program, bound to ``tasks.ns`` instead of
searching for a fabfile (Invoke's "reusing Invoke's CLI module as a distinct
binary"). Nothing here depends on the working directory: every path in an
inventory is read relative to the inventory's own folder.
"""
from __future__ import annotations

from importlib import metadata

import fabric
import invoke
import paramiko
from fabric import Config, Executor
from fabric.main import Fab

from . import common, ns

DISTRIBUTION = "classroom-fleet"  # the name on PyPI; plain `fleet` is another project's


def version() -> str:
    """The installed distribution's version (pyproject.toml is the one place it is written)."""
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return "unknown (not installed; run from a checkout)"


class Program(Fab):
    def print_version(self) -> None:
        print(f"{self.name} {self.version}")
        print(f"Fabric {fabric.__version__}")
        print(f"Invoke {invoke.__version__}")
        print(f"Paramiko {paramiko.__version__}")


def program() -> Program:
    return Program(name="fleet", version=version(), namespace=ns, executor_class=Executor, config_class=Config)


def main() -> None:
    common.COMMAND = "fleet"  # hints printed by the tasks name the command the teacher typed
    program().run()
