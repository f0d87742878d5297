"""What the hosts know that the state may not: the seats' credentials.

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
"""
from __future__ import annotations

from collections.abc import Callable

from fleet.facts import Facts, sections
from fleet.ssh import Remote
from fleet.state import State

# $@: env file paths. Prints each file under a header line; a missing file prints nothing.
READ_ENV_FILES = r"""
for f; do printf -- '--- %s\n' "$f"; cat -- "$f" 2>/dev/null; echo; done
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
