"""What the hosts know that the state may not: seats' credentials, and seats that keep crashing.

Credentials. Every seat's credential lives in two places: the state file on
this computer and the seat's env file on its host (root only, mode 0600).
When the state was lost or damaged, a new credential would be generated and
every running seat replaced, so every student's password would change in the
middle of a class. Instead, for each seat whose container was made with a
credential other than the one in the state (its ``fleet.spec`` label says so),
the env file is read back over SSH (as root, in one round trip) and its
credential adopted, unless the state's credential was reissued on purpose
(a roster seat released to a new student: State.reissue). Nothing read is
ever printed or logged.

Crash loops. A container that exits at once is "running" for a moment after
``docker run``; Docker then restarts it with a growing delay. After seats were
started, provision waits :data:`SETTLE` seconds and probes again; a seat that
is not running, or has restarted meanwhile, fails its host with the reason: the
exit code and the last line of its log (with the seat's own credential
blanked out, since servers like Jupyter print their login link).
"""
from __future__ import annotations

from collections.abc import Callable

from fleet.facts import Facts, sections
from fleet.runner import STOP
from fleet.ssh import Remote
from fleet.state import State
from fleet.steps import Run

SETTLE = 5  # seconds a new seat must stay up before provision calls it running

# $@: env file paths. Prints each file under a header line; a missing file prints nothing.
READ_ENV_FILES = r"""
for f; do printf -- '--- %s\n' "$f"; cat -- "$f" 2>/dev/null; echo; done
"""

# $@: container names. For each: a header, "exit code|error|restarts", then its last log lines.
# While Docker has the container running again its exit code reads 0, so look again (for up to
# 3 s) for a moment between two restarts.
WHY_STOPPED = r"""
FORMAT='{{.State.Running}}|{{.State.ExitCode}}|{{.State.Error}}|{{.RestartCount}}'
for c; do
  printf -- '--- %s\n' "$c"
  i=0
  while :; do
    s=$(timeout 20 docker inspect --format "$FORMAT" "$c" 2>&1 | head -n 1)
    case $s in true\|*) if [ "$i" -lt 6 ]; then i=$((i + 1)); sleep 0.5; continue; fi ;; esac
    break
  done
  printf '%s\n' "${s#*|}"
  timeout 20 docker logs --tail 5 "$c" 2>&1 | tail -n 5
done
"""


def adopt_credentials(state: State, remote: Remote, host_id: str, facts: Facts, wanted: list, timeout: int,
                      progress: Callable[[str], None]) -> bool:
    """Take back the credentials of running seats whose spec the state cannot explain; True if any changed.

    ``wanted`` are fleet.desired.Wanted; only seats (not the proxy) have credentials.
    """
    stale = [w for w in wanted if w.seat is not None and w.name in facts.containers
             and facts.containers[w.name].labels.get("fleet.spec") != w.spec]
    if not stale:
        return False
    paths = [w.seat.env_path for w in stale]
    result = remote.run(("sh", "-c", READ_ENV_FILES, "sh", *paths), timeout=timeout, check=False,
                        title="read the seats' env files back")
    files = sections(result.stdout)
    adopted = 0
    for w in stale:
        key = w.seat.service.login_secret_env + "="
        found = [line[len(key):] for line in files.get(w.seat.env_path, []) if line.startswith(key)]
        current = state.data["secrets"].get(host_id, {}).get(w.name)
        if found and found[-1] and found[-1] != current and not state.reissued(host_id, w.name):
            state.adopt(host_id, w.name, found[-1])
            adopted += 1
    if adopted:
        state.save()
        progress(f"  {host_id}: kept the credentials of {adopted} running seat(s), read back from the host "
                 "(the state file did not have them)")
    return adopted > 0


def settle() -> None:
    """Give new seats time to crash, if they are going to (an interrupt cuts it short)."""
    STOP.requested.wait(SETTLE)


def started_seats(steps: list) -> bool:
    """Did these steps run or start a container?"""
    return any(isinstance(s, Run) and s.argv[:2] in (("docker", "run"), ("docker", "start")) for s in steps)


def crashed(before: Facts, after: Facts, names: list[str]) -> list[str]:
    """Containers (of ``names``) that are not running, or restarted between the two probes."""
    out = []
    for name in names:
        c = after.containers.get(name)
        if c is None:
            continue  # reported as missing by the caller
        was = before.containers.get(name)
        same = was is not None and was.image_id == c.image_id and was.labels.get("fleet.spec") == c.labels.get("fleet.spec")
        restarts_before = was.restarts if same else 0  # a replaced container counts from 0
        if c.state != "running" or c.restarts > restarts_before:
            out.append(name)
    return out


def why(remote: Remote, names: list[str], secrets: list[str], timeout: int) -> str:
    """One line: why these containers stopped (exit code, restarts, last log line), alike ones together."""
    result = remote.run(("sh", "-c", WHY_STOPPED, "sh", *names), timeout=timeout, check=False,
                        title="ask Docker why seats stopped")
    parts = sections(result.stdout)
    groups: dict[tuple[str, str], list[int]] = {}
    members: dict[tuple[str, str], list[str]] = {}
    for name in names:
        lines = [line.strip() for line in parts.get(name, []) if line.strip()]
        head = lines[0].split("|") if lines else []
        reason, restarts = [], 0
        if len(head) == 3:
            code, error, count = head
            restarts = int(count) if count.isdigit() else 0
            if error:
                reason.append(error)
            if code not in ("0", ""):  # Docker resets it to 0 each time it starts the container again
                reason.append(f"exit code {code}")
        said = lines[-1] if len(lines) > 1 else ""
        for secret in secrets:
            if secret:
                said = said.replace(secret, "…")
        key = (", ".join(reason), said[:200])
        groups.setdefault(key, []).append(restarts)
        members.setdefault(key, []).append(name)
    parts = []
    for (reason, said), counts in groups.items():
        low, high = min(counts), max(counts)
        detail = [reason] if reason else []
        if high:
            detail.append(f"restarted {low if low == high else f'{low}-{high}'} times")
        who = members[(reason, said)]
        parts.append(f"{', '.join(who)} {'keeps' if len(who) == 1 else 'keep'} stopping"
                     + (f" ({', '.join(detail)})" if detail else "") + (f": {said}" if said else ""))
    return "; ".join(parts)
