"""Docker Swarm mode: forming the swarm, its nodes, the overlay network and the students' services.

Secrets never in argv: a worker joins through Docker's API (``POST
/swarm/join`` on the local socket, with curl), the join token inside a JSON
body that fleet uploads as a root-only file and removes in the same round
trip (:func:`join_body`, :func:`join`); ``docker swarm join --token`` would
show it in every process list.
"""
from __future__ import annotations

import json

SWARM_PORT = 2377
SOCKET = "/var/run/docker.sock"


def init(advertise: str) -> tuple[str, ...]:
    """Make the manager a one-node swarm, advertising the address the other hosts reach it at."""
    return ("docker", "swarm", "init", "--advertise-addr", advertise)


def join_token() -> tuple[str, ...]:
    """On the manager: the workers' join token on stdout (a secret: kept in memory, never logged)."""
    return ("docker", "swarm", "join-token", "-q", "worker")


def join_body(token: str, manager: str, advertise: str) -> bytes:
    """The body of Docker's POST /swarm/join: the join token travels only here."""
    return json.dumps({"ListenAddr": f"0.0.0.0:{SWARM_PORT}", "AdvertiseAddr": advertise,
                       "RemoteAddrs": [f"{manager}:{SWARM_PORT}"], "JoinToken": token}).encode()


# $1 the JSON body's file (root only; removed whatever happens). Docker answers 200, or an error as {"message"}.
JOIN = r"""
set -u
body=$1
trap 'rm -f "$body"' EXIT
out=$(mktemp)
code=$(curl -sS --max-time 120 --unix-socket /var/run/docker.sock -H 'Content-Type: application/json' \
  --data-binary @"$body" -o "$out" -w '%{http_code}' http://localhost/swarm/join) || { rm -f "$out"; exit 1; }
case $code in 2*) rm -f "$out"; exit 0 ;; esac
sed 's/^{"message":"\(.*\)"}$/\1/' "$out" >&2; rm -f "$out"; exit 1
"""


def join(body_file: str) -> tuple[str, ...]:
    """On a worker: join the swarm with the body fleet uploaded to ``body_file`` (then removed)."""
    return ("sh", "-c", JOIN, "sh", body_file)


# $1 the fleet, $2 the manager's own node id, then the addresses of the fleet's hosts. Labels the nodes at those
# addresses with fleet.name; a node at another address (a host removed from the inventory) is drained, then removed.
NODES = r"""
set -u
fleet=$1 me=$2; shift 2
format='{{.ID}} {{.Status.Addr}} {{.Spec.Role}} {{index .Spec.Labels "fleet.name"}}'
docker node ls -q | while read -r id; do
  set -- $(docker node inspect --format "$format" "$id" </dev/null)
  [ "$1" = "$me" ] && continue
  if printf '%s\n' "$KEEP" | grep -qxF "$2"; then
    [ "${4:-}" = "$fleet" ] || docker node update --label-add "fleet.name=$fleet" "$1" >/dev/null </dev/null
  elif [ "$3" = worker ]; then
    echo "removing node $1 ($2): its host is no longer in the inventory"
    docker node update --availability drain "$1" >/dev/null </dev/null
    docker node rm --force "$1" >/dev/null </dev/null
  fi
done
docker node update --label-add "fleet.name=$fleet" "$me" >/dev/null
"""


def sync_nodes(fleet: str, manager_node: str, addresses: list[str]) -> tuple[str, ...]:
    """On the manager: label the fleet's nodes; drain and remove the nodes of hosts no longer listed."""
    keep = "\n".join(addresses)
    return ("env", f"KEEP={keep}", "sh", "-c", NODES, "sh", fleet, manager_node)


def leave() -> tuple[str, ...]:
    """Teardown: the node leaves the swarm (workers first, the manager last)."""
    return ("sh", "-c", 'docker swarm leave --force >/dev/null 2>&1 || true')


def overlay_create(name: str, fleet: str, subnet: str, gateway: str, ip_range: str) -> tuple[str, ...]:
    """The attachable overlay of the hub, its proxy and the students' servers, with fixed addresses kept free."""
    return ("docker", "network", "create", "--driver", "overlay", "--attachable", "--label", f"fleet.name={fleet}",
            "--subnet", subnet, "--gateway", gateway, "--ip-range", ip_range, name)


def network_connect(network: str, container: str, ip: str) -> tuple[str, ...]:
    """Put a running container on the overlay at a fixed address (published ports stay on its bridge)."""
    return ("docker", "network", "connect", "--ip", ip, network, container)


def services_rm(*names: str) -> tuple[str, ...]:
    return ("docker", "service", "rm", *names)


def services_of(fleet: str) -> tuple[str, ...]:
    """Every Swarm service of the fleet (the students' servers), removed at teardown."""
    return ("sh", "-c", 'ids=$(docker service ls -q --filter "label=fleet.name=$1"); '
            '[ -z "$ids" ] || docker service rm $ids >/dev/null', "sh", fleet)


# $1 the fleet. Student volumes carry the fleet's label (the spawner's); their servers' containers may still be
# going away after `docker service rm`: wait for those (bounded) so the volumes are free.
STUDENT_VOLUMES = r"""
fleet=$1
i=0
while [ -n "$(docker ps -aq --filter "name=^$fleet-user-")" ] && [ "$i" -lt 60 ]; do i=$((i + 1)); sleep 1; done
ids=$(docker volume ls -q --filter "label=fleet.name=$fleet")
[ -z "$ids" ] || docker volume rm --force $ids >/dev/null
"""


def student_volumes_remove(fleet: str) -> tuple[str, ...]:
    """On a node: the students' volumes of the fleet (their files), once their servers are gone."""
    return ("sh", "-c", STUDENT_VOLUMES, "sh", fleet)
