"""The fab tasks: parse arguments, call fleet, print. One module per task.

``ns`` is the task collection. ``fab`` loads it through fabfile.py in a
checkout, where this package is ``tasks``; the installed ``fleet`` command
(tasks/cli.py) runs the same collection, shipped in the wheel as
``fleet.tasks``. The modules import each other relatively so that both names
work.
"""
from invoke import Collection

from .check import check
from .classroom import collect, distribute, logs, move, reset, upgrade
from .handout import handout
from .init import init
from .plan import plan_
from .provision import provision
from .status import status
from .teardown import teardown

ns = Collection(init, provision, plan_, check, status, handout, teardown, reset, distribute, collect, logs, upgrade,
                move)
