"""fleet: science servers for a classroom. Every task takes --hosts INVENTORY.yml."""
from invoke import Collection

from tasks.check import check
from tasks.classroom import collect, distribute, logs, reset, upgrade
from tasks.handout import handout
from tasks.plan import plan_
from tasks.provision import provision
from tasks.status import status
from tasks.teardown import teardown

ns = Collection(provision, plan_, check, status, handout, teardown, reset, distribute, collect, logs, upgrade)
