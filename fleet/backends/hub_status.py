"""fab status in ``mode: hub``: the nodes, and per student whether they are in and where their server runs.

Every host is asked for its load, memory, disk and the CPU and memory of the
students' servers running on it (one usage round trip, as in seats mode).
The manager also tells, in one more round trip: the swarm's nodes (state,
availability, role, CPUs, memory), each student's server and the node it runs
on (from Swarm), and each student's last activity (read from the hub's own
database inside the hub container: no token needed).
"""
from __future__ import annotations

import json
import time
from dataclasses import replace

from fleet import usage
from fleet.facts import sections
from fleet.hub.config import escaped
from fleet.hub.plan import manager_of
from fleet.inventory import Host
from fleet.report import HostReport, SeatReport
from fleet.runner import Outcome
from fleet.session import Session
from fleet.steps import Run

# $1 the fleet. Nodes, the students' servers (service, login, node, state), and the hub database's users.
MANAGER = r"""
fleet=$1
t() { timeout 20 "$@"; }
echo '--- nodes'
node='{{.Description.Hostname}} {{.Status.Addr}} {{.Status.State}} {{.Spec.Availability}} {{.Spec.Role}}'
size='{{.Description.Resources.NanoCPUs}} {{.Description.Resources.MemoryBytes}}'
for id in $(t docker node ls -q 2>/dev/null); do t docker node inspect --format "$node $size" "$id"; done
echo '--- servers'
for s in $(t docker service ls -q --filter "label=fleet.name=$fleet" 2>/dev/null); do
  login=$(t docker service inspect --format '{{index .Spec.Labels "fleet.hub.user"}}' "$s")
  task="$login {{.Name}} {{.Node}} {{.CurrentState}}"
  t docker service ps --no-trunc --filter desired-state=running --format "$task" "$s" | head -n 1
done
echo '--- users'
t docker exec "$fleet-hub" python3 -c '
import json, sqlite3
db = sqlite3.connect("file:/data/jupyterhub.sqlite?mode=ro", uri=True)
for name, last in db.execute("select name, last_activity from users"):
    print(json.dumps([name, last]))
' 2>/dev/null
echo '--- end'
"""


def status(session: Session) -> list[Outcome[Host, HostReport]]:
    inv = session.inventory
    hosts = session.hosts
    manager = manager_of(inv, hosts)
    prefix = f"{inv.name}-user-"
    found: dict[str, dict] = {}

    def work(host: Host) -> HostReport:
        with session.connect(host) as remote:
            facts = session.gather(remote, [], version=True)
            measured = usage.parse(remote.apply(usage.command(inv.name, inv.timeouts.command, prefix)).stdout)
            report = HostReport(host, os=facts.os_name, docker=facts.docker_state, usage=measured.summary())
            if host == manager and facts.docker_running:
                out = remote.apply(Run("ask the swarm and the hub", ("sh", "-c", MANAGER, "sh", inv.name),
                                       inv.timeouts.command)).stdout
                found["manager"] = parse(out)
            found[host.id] = {"usage": measured}
            report.round_trips = remote.round_trips
        return report

    outcomes = session.fan_out(work, (manager, *[h for h in hosts if h != manager]))
    seen = found.get("manager", {"nodes": {}, "servers": {}, "users": {}})
    by_address = {h.address: h for h in hosts}
    logins = session.state.data.get("hub", {}).get("logins", {})
    names = {login: name for name, login in logins.items()}
    url = f"https://{manager.address}:{inv.model.hub.port}/"
    rows: dict[str, list[SeatReport]] = {h.id: [] for h in hosts}
    for login in sorted(set(logins.values())):
        server = seen["servers"].get(login)
        last = seen["users"].get(login)
        where = None
        if server:
            node = seen["nodes"].get(server["node"], {})
            where = by_address.get(node.get("addr", ""))
        host_id = where.id if where else manager.id
        stats = found.get(host_id, {}).get("usage")
        row = SeatReport(login, names.get(login, login), 0, url,
                         f"server on {server['node']} ({server['state']})" if server else "no server",
                         health=_activity(last))
        if server and stats:
            u = next((v for k, v in stats.seats.items() if k.startswith(f"{inv.name}-user-{escaped(login)}.")), None)
            if u:
                row.cpu = f"{u.cpu_percent:.1f}%"
                row.memory = f"{usage.human(u.memory)} / {usage.human(u.limit)}"
        rows[host_id].append(row)
    out = []
    for o in outcomes:
        if o.ok:
            node = next((n for n in seen["nodes"].values() if n["addr"] == o.item.address), None)
            extra = (f"node {node['state']}, {node['availability']}, {node['role']}, {node['cpus']:g} CPUs, "
                     f"{usage.human(node['memory'])}; " if node else "node: not in the swarm; ")
            o = replace(o, value=replace(o.value, seats=rows.get(o.item.id, []), usage=extra + o.value.usage))
        out.append(o)
    return out


def _activity(last: str | None) -> str:
    if not last:
        return "never logged in"
    try:
        then = time.mktime(time.strptime(last.split(".")[0], "%Y-%m-%d %H:%M:%S")) - time.timezone
    except ValueError:
        return f"active {last}"
    minutes = max(0, int((time.time() - then) // 60))
    return "active now" if minutes < 2 else f"active {minutes} min ago"


def parse(text: str) -> dict:
    """The manager's answer: nodes by hostname, servers by login, last activity by login."""
    s = sections(text)
    nodes = {}
    for line in s.get("nodes", []):
        p = line.split()
        if len(p) == 7:
            nodes[p[0]] = {"addr": p[1], "state": p[2], "availability": p[3], "role": p[4],
                           "cpus": int(p[5]) / 1e9 if p[5].isdigit() else 0.0, "memory": int(p[6]) if p[6].isdigit() else 0}
    servers = {}
    for line in s.get("servers", []):
        p = line.split(None, 3)
        if len(p) >= 3:
            servers[p[0]] = {"task": p[1], "node": p[2], "state": p[3] if len(p) > 3 else ""}
    users = {}
    for line in s.get("users", []):
        try:
            name, last = json.loads(line)
        except (ValueError, TypeError):
            continue
        users[name] = last
    return {"nodes": nodes, "servers": servers, "users": users}
