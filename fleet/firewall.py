"""The optional host firewall (``firewall: true``): SSH and the seat ports, nothing else.

ufw where the host has it or uses apt, firewalld on the RHEL and Fedora
families. The ports fleet opened are written to /etc/fleet/NAME/firewall, so
a re-run changes nothing when they still match and closes the ports of seats
that were removed, without touching rules the teacher added by hand.

Docker publishes ports through its own iptables chains, ahead of ufw's; the
proxy's (or seats') ports are open either way. What the firewall adds is
that nothing else on the host (a forgotten database, a debug server) answers.
"""
from __future__ import annotations

from fleet.facts import Facts
from fleet.inventory import Inventory
from fleet.steps import Run, Step, sh

# $1 fleet, $2 ssh port, $3 old ports (space-separated), $4... wanted ports.
UFW = r"""
fleet=$1 ssh=$2 old=$3
shift 3
ufw allow "$ssh/tcp" comment "SSH (fleet $fleet)" >/dev/null
for p in "$@"; do ufw allow "$p/tcp" comment "seat (fleet $fleet)" >/dev/null; done
for p in $old; do
  keep=no
  for q in "$@"; do [ "$p" = "$q" ] && keep=yes; done
  [ "$keep" = no ] && ufw delete allow "$p/tcp" >/dev/null
done
ufw default deny incoming >/dev/null
ufw default allow outgoing >/dev/null
ufw --force enable >/dev/null
"""

FIREWALLD = r"""
fleet=$1 ssh=$2 old=$3
shift 3
systemctl enable --now firewalld >/dev/null 2>&1 || true
firewall-cmd --permanent --add-port="$ssh/tcp" >/dev/null
for p in "$@"; do firewall-cmd --permanent --add-port="$p/tcp" >/dev/null; done
for p in $old; do
  keep=no
  for q in "$@"; do [ "$p" = "$q" ] && keep=yes; done
  [ "$keep" = no ] && firewall-cmd --permanent --remove-port="$p/tcp" >/dev/null
done
firewall-cmd --reload >/dev/null
"""

RECORD = 'mkdir -p "$(dirname "$1")" && printf "%s\n" "$2" > "$1"'


def marker(fleet: str) -> str:
    return f"/etc/fleet/{fleet}/firewall"


def steps(inventory: Inventory, facts: Facts, ports: list[int], ssh_port: int) -> list[Step]:
    """Open ``ports`` and SSH, close the fleet's old ports, deny the rest; [] when already so."""
    if not inventory.model.firewall:
        return []
    wanted = sorted(set(ports))
    if facts.firewall_ports == tuple(wanted) and facts.firewall_active:
        return []
    t = inventory.timeouts
    out: list[Step] = []
    use_ufw = facts.firewall_tool == "ufw" or (not facts.firewall_tool and facts.package_manager == "apt-get")
    if not facts.firewall_tool:
        if use_ufw:
            out.append(Run("install ufw", ("env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "-q", "-y",
                                           "-o", f"DPkg::Lock::Timeout={t.lock}", "install", "ufw"), t.install + t.lock))
        else:
            out.append(Run("install firewalld", (facts.package_manager or "dnf", "-y", "install", "firewalld"), t.install))
    old = " ".join(map(str, facts.firewall_ports))
    script = UFW if use_ufw else FIREWALLD
    tool = "ufw" if use_ufw else "firewalld"
    out.append(sh(f"firewall ({tool}): allow SSH ({ssh_port}) and ports {', '.join(map(str, wanted))}, deny the rest",
                  script, inventory.name, str(ssh_port), old, *map(str, wanted), timeout=t.command))
    out.append(sh("record the ports fleet opened", RECORD, marker(inventory.name), " ".join(map(str, wanted)),
                  timeout=t.command))
    return out
