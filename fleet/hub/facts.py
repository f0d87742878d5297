"""What a node is, Swarm-wise, in one round trip beside the fact probe; parsed purely.

- ``swarm``: the node's state (inactive | pending | active | error), whether it
  is a manager, its node id;
- ``services`` (manager): the fleet's students' servers, ``SERVICE LOGIN``;
- ``passwords``: the sha256 of the hash file fleet last wrote on this host, so
  a re-run uploads it only when an account changed.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from fleet.facts import sections
from fleet.steps import Run

# $1 fleet name, $2 the hash file's path, $3 the overlay network's name.
PROBE = r"""
fleet=$1 hashes=$2 network=$3
t() { timeout 20 "$@"; }
echo '--- swarm'; t docker info --format '{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}} {{.Swarm.NodeID}}' 2>/dev/null
echo '--- services'
if [ "$(t docker info --format '{{.Swarm.ControlAvailable}}' 2>/dev/null)" = true ]; then
  ids=$(t docker service ls -q --filter "label=fleet.name=$fleet" 2>/dev/null)
  # shellcheck disable=SC2086 # one word per id
  [ -n "$ids" ] && t docker service inspect --format '{{.Spec.Name}} {{index .Spec.Labels "fleet.hub.user"}}' $ids
fi
echo '--- passwords'; [ -f "$hashes" ] && sha256sum < "$hashes" | cut -d' ' -f1
echo '--- network'; t docker network inspect --format '{{.Name}}' "$network" 2>/dev/null
echo '--- end'
"""


@dataclass(frozen=True)
class SwarmFacts:
    state: str = "inactive"  # inactive | pending | active | locked | error
    manager: bool = False
    node_id: str = ""
    services: dict[str, str] = field(default_factory=dict)  # the fleet's student services: name → login
    passwords: str = ""  # sha256 of the hash file on this host ("" when there is none)
    network: bool = False  # the fleet's overlay network exists (on the manager)

    @property
    def active(self) -> bool:
        return self.state == "active"


def probe(fleet: str, hash_file: str, network: str, timeout: int = 60) -> Run:
    return Run("look at the node's swarm", ("sh", "-c", PROBE, "sh", fleet, hash_file, network), timeout)


def parse(text: str) -> SwarmFacts:
    s = sections(text)
    if "end" not in s:
        raise ValueError("the swarm probe's output was cut short")
    swarm = (next((x for x in s.get("swarm", []) if x.strip()), "").split() + ["", "", ""])[:3]
    services = {}
    for line in s.get("services", []):
        name, _, login = line.strip().partition(" ")
        if name:
            services[name] = login.strip()
    digest = next((x.strip() for x in s.get("passwords", []) if x.strip()), "")
    network = any(x.strip() for x in s.get("network", []))
    return SwarmFacts(swarm[0] or "inactive", swarm[1] == "true", swarm[2], services, digest, network)
