"""Ready means answering: each seat asked, from its own host, the way a student's browser asks it.

One command per host, in the SSH session already open: a fixed POSIX sh
script polls every seat of the host with curl through the host's TLS proxy
(``--connect-to`` the loopback, so the request carries the public name and
port a student types, and the certificate is verified: against the proxy's
own authority under ``internal``; under ``acme`` against the issuer chain the
CA returned with the host's certificate, as Caddy stored it, so a seat counts
only when it serves the CA's certificate for its name, unexpired), every half
second, until each seat is decided:

- ``ready``: it answered as its kind says (Jupyter: ``/api/status`` with its
  token gives 200; RStudio: the sign-in page; generic: ``health:`` or any
  answer at all);
- ``stopped``: its container exited or restarted (as Docker reports it in
  the same round), known within half a second, not after a fixed wait;
- ``silent``: still running but no answer within the seat's ``ready_timeout``.

For seats that were not ready the script adds, in the same round trip, the
exit code and last log lines; the controller blanks the seats' secrets out of
those before anyone sees them. Secrets reach the host only on the command's
stdin, as curl config files in a 0700 directory removed when it ends.

``status`` runs the same script once (one try per seat, no waiting) for its
HEALTH column; provision (and so reset and upgrade) waits with it.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from fleet import proxy
from fleet.desired import Wanted
from fleet.facts import sections
from fleet.inventory import Host, Inventory

POLL = 0.5  # seconds between rounds
WHY_GRACE = 60  # seconds for the last round and the logs after the longest ready_timeout

# $1 "wait" or "once", $2 the proxy's data volume, $3 what to trust (fleet.proxy.trust: words "root=PATH" or
# "chain=PATH", PATH inside the volume unless absolute; a chain's issuers are trusted, not its first certificate;
# "" for the system's trust store).
# stdin: blocks "seat N NAME EXPECT TIMEOUT RESTARTS" followed by that seat's curl config lines,
# and lines "watch NAME RESTARTS" (the proxy: when it stops, no seat can answer).
# Prints "ready NAME CODE SECONDS", "silent NAME CODE" or "stopped NAME STATE RESTARTS" per seat,
# "lost NAME STATE RESTARTS" for a watched container that stopped, then with "wait" a "--- NAME"
# section per container that failed: "exit code|error|restarts" and its last log lines.
SCRIPT = r"""
set -u
mode=$1 volume=$2 trust=${3:-}
umask 077
d=$(mktemp -d) || exit 1
trap 'rm -rf "$d"' EXIT
trap 'exit 130' INT TERM HUP
: > "$d/pending"; : > "$d/watch"; : > "$d/bad"; : > "$d/stopped"
cfg=/dev/null
while IFS= read -r line; do
  case $line in
    "seat "*) set -- $line; cfg=$d/$2.cfg; : > "$cfg"; echo "$2 $3 $4 $5 $6" >> "$d/pending" ;;
    "watch "*) echo "${line#watch }" >> "$d/watch" ;;
    *) printf '%s\n' "$line" >> "$cfg" ;;
  esac
done
start=$(date +%s)
mount= trusted= ev= first=1
[ -n "$volume" ] && [ -n "$trust" ] && mount=$(timeout 20 docker volume inspect --format '{{.Mountpoint}}' "$volume" 2>/dev/null)
if [ "$mode" = wait ]; then  # a container that dies from now on is named here at once: no polling of Docker
  set --
  for n in $(cut -d' ' -f2 "$d/pending") $(cut -d' ' -f1 "$d/watch"); do set -- "$@" --filter "container=$n"; done
  timeout 7200 docker events --filter event=die "$@" --format '{{.Actor.Attributes.name}}' >> "$d/died" 2>/dev/null &
  ev=$!
  trap 'kill $ev 2>/dev/null; rm -rf "$d"' EXIT
fi
: >> "$d/died"
state() { grep "^/$1 " "$d/states" | head -n 1; }
while [ -s "$d/pending" ]; do
  if [ -n "$trust" ] && [ -z "$trusted" ]; then  # once the proxy has them: its own root, or the CA's chain
    : > "$d/ca.pem"; found=
    for t in $trust; do
      p=${t#*=}
      case $p in /*) ;; *) [ -n "$mount" ] || continue; p=$mount/$p ;; esac
      [ -s "$p" ] || continue
      case $t in chain=*) awk '/-----BEGIN CERTIFICATE-----/ { n++ } n > 1' "$p" >> "$d/ca.pem" ;; *) cat "$p" >> "$d/ca.pem" ;; esac
      case ${t#*=} in /*) ;; *) found=1 ;; esac
    done
    if [ -n "$found" ]; then
      for f in "$d"/*.cfg; do printf 'cacert = "%s"\n' "$d/ca.pem" >> "$f"; done
      trusted=1
    fi
  fi
  if [ -n "$first" ]; then  # Docker's view once: what stopped or restarted before the events began shows here
    # shellcheck disable=SC2046 # one word per name
    timeout 20 docker inspect --format '{{.Name}} {{.State.Status}} {{.RestartCount}}' \
      $(cut -d' ' -f2 "$d/pending") $(cut -d' ' -f1 "$d/watch") > "$d/states" 2>/dev/null
    first=
  fi
  for n in $(sort -u "$d/died"); do  # died since: stopped, whatever Docker made of it meanwhile
    sed -i "s|^/$n \([^ ]*\) |/$n died |" "$d/states"
  done
  down=
  while read -r name before; do
    set -- $(state "$name") "" "" ""
    if [ "${2:-missing}" != running ] || [ "${3:-0}" -gt "$before" ]; then
      echo "lost $name ${2:-missing} ${3:-0}"; down=$name
      echo "$name" >> "$d/bad"; echo "$name" >> "$d/stopped"
    fi
  done < "$d/watch"
  [ -n "$down" ] && : > "$d/watch"
  : > "$d/next"
  now=$(( $(date +%s) - start ))
  while read -r i name expect limit before; do
    set -- $(state "$name") "" "" ""
    if [ "${2:-missing}" != running ] || [ "${3:-0}" -gt "$before" ]; then
      echo "stopped $name ${2:-missing} ${3:-0}"; echo "$name" >> "$d/bad"; echo "$name" >> "$d/stopped"; continue
    fi
    set -- $(timeout 10 curl -K "$d/$i.cfg" </dev/null 2>/dev/null) "" ""
    code=${1:-000} ok=
    case $code in *[!0-9]*|'') code=000 ;; esac
    case $expect in
      token) [ "$code" = 200 ] && ok=1 ;;
      ok) [ "$code" -ge 200 ] && [ "$code" -lt 400 ] && ok=1 ;;
      any) [ "$code" -ge 100 ] && [ "$code" -lt 500 ] && ok=1 ;;
    esac
    if [ -n "$ok" ]; then echo "ready $name $code $now"
    elif [ "$mode" = once ] || [ -n "$down" ] || [ "$now" -ge "$limit" ]; then
      echo "silent $name $code"; echo "$name" >> "$d/bad"
    else echo "$i $name $expect $limit $before" >> "$d/next"
    fi
  done < "$d/pending"
  mv "$d/next" "$d/pending"
  [ -s "$d/pending" ] && sleep 0.5
done
[ "$mode" = wait ] || exit 0
FORMAT='{{.Id}}|{{.State.Running}}|{{.State.ExitCode}}|{{.State.Error}}|{{.RestartCount}}'
while read -r c; do
  printf -- '--- %s\n' "$c"
  s=$(timeout 20 docker inspect --format "$FORMAT" "$c" 2>/dev/null | head -n 1)
  case $s in *'|'*) ;; *) echo '||0'; continue ;; esac
  id=${s%%|*} s=${s#*|}
  running=${s%%|*} s=${s#*|}
  code=${s%%|*} s=${s#*|}
  if [ "$running" = true ] && grep -qx "$c" "$d/stopped"; then
    # Docker started it again, and shows exit code 0 meanwhile: the code it died with is in its events
    died=$(timeout 10 docker events --since 30m --until "$(( $(date +%s) + 1 ))" --filter "container=$id" --filter event=die \
      --format '{{index .Actor.Attributes "exitCode"}}' 2>/dev/null | tail -n 1)
    code=${died:-$code}
  fi
  printf '%s|%s\n' "$code" "$s"
  timeout 20 docker logs --tail 5 "$c" </dev/null 2>&1 | tail -n 5
done < "$d/bad"
"""


@dataclass(frozen=True)
class Check:
    """One seat to ask: where, what answer counts, how long it may take."""

    container: str
    url: str  # the address a student opens, with the kind's path
    expect: str  # token | ok | any (see fleet.kinds.Ready)
    timeout: int  # seconds it gets to answer
    restarts: int = 0  # Docker's restart count when this run left it (0 for a new container)
    connect: str = ""  # curl --connect-to HOST:PORT:127.0.0.1:PORT ("" = the URL's own address)
    secret: str = ""  # sent on stdin only, as an Authorization header (expect == "token")


@dataclass(frozen=True)
class Answer:
    container: str
    ready: bool
    code: str = "000"  # the last HTTP status seen ("000": none)
    seconds: int = 0  # after how long it answered
    stopped: str = ""  # the container's state when it stopped or restarted ("" while it runs)
    restarts: int = 0

    @property
    def health(self) -> str:
        """For the status table."""
        if self.ready:
            return f"up ({self.code})"
        if self.stopped:
            return f"DOWN ({self.stopped})"
        return f"DOWN ({'no answer' if self.code == '000' else self.code})"


def _quote(value: str) -> str:
    """A value for a curl config file: double quotes, with backslash and quote escaped."""
    if any(c in value for c in "\n\r\0"):
        raise ValueError("a curl config value cannot hold a line break")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def curl_config(check: Check) -> list[str]:
    """The curl config lines of one seat (pure; tested as text). The secret, if any, only here."""
    lines = [f"url = {_quote(check.url)}", 'output = "/dev/null"', 'write-out = "%{http_code}\\n"',
             "silent", "max-time = 3", "connect-timeout = 2", "globoff"]
    if check.connect:
        lines.append(f"connect-to = {_quote(check.connect)}")
    if check.expect == "token" and check.secret:
        lines.append(f"header = {_quote('Authorization: token ' + check.secret)}")
    return lines


def stdin(checks: Iterable[Check], watch: Iterable[tuple[str, int]] = ()) -> bytes:
    """What the script reads: each seat's header and curl config, then the containers to watch."""
    out: list[str] = []
    for n, c in enumerate(checks, 1):
        if not c.container or any(ch.isspace() for ch in c.container):
            raise ValueError(f"{c.container!r} is not a container name")
        out.append(f"seat {n} {c.container} {c.expect} {c.timeout} {c.restarts}")
        out += curl_config(c)
    out += [f"watch {name} {restarts}" for name, restarts in watch]
    return ("\n".join(out) + "\n").encode()


def checks(inventory: Inventory, host: Host, wanted: Iterable[Wanted], secrets: dict[str, str],
           restarts: dict[str, int] | None = None, *, timeout: int | None = None,
           address: str | None = None) -> list[Check]:
    """What to ask of each seat among ``wanted``: through the host's proxy by its public name when TLS is on.

    ``restarts``: Docker's restart count of containers this run did not replace
    (a new container starts at 0); ``timeout`` overrides every seat's ready_timeout;
    ``address``: where students reach the host (see fleet.proxy.public_name).
    """
    name = proxy.public_name(inventory, host, address)
    tls = inventory.model.tls.mode != "off"
    out = []
    for w in wanted:
        if w.seat is None:
            continue
        r, port = w.seat.service.readiness, w.seat.host_port
        path = r.path.lstrip("/")
        if tls:
            url, expect = w.seat.url(name) + path, r.expect
            connect = f"{f'[{name}]' if ':' in name else name}:{port}:127.0.0.1:{port}"
        else:
            url, expect, connect = f"http://127.0.0.1:{port}/{path}", r.expect, ""  # the seat's own published port
        out.append(Check(w.name, url, expect, timeout or r.timeout, (restarts or {}).get(w.name, 0), connect,
                         secrets.get(w.name, "")))
    return out


def trust(inventory: Inventory, cert: proxy.Certificate) -> str:
    """What the seats' certificates are checked against: the proxy's own root, or the CA's chain (fleet.proxy.trust)."""
    return " ".join(proxy.trust(cert, inventory.name, ca_root=bool(cert.ca_root)))


def trust_volume(inventory: Inventory) -> str:
    """The proxy's data volume (where its certificates and its own authority's root are), "" without TLS."""
    return proxy.data_volume(inventory.name) if inventory.model.tls.mode != "off" else ""


def argv(*, wait: bool, volume: str = "", trust: str = "") -> tuple[str, ...]:
    return ("sh", "-c", SCRIPT, "sh", "wait" if wait else "once", volume, trust)


def timeout_for(checks: Iterable[Check], *, wait: bool) -> int:
    """The command's own bound: the longest seat's time, and room for the last round and the logs."""
    longest = max((c.timeout for c in checks), default=0) if wait else 0
    return longest + WHY_GRACE


def parse(text: str) -> tuple[dict[str, Answer], list[str], dict[str, list[str]]]:
    """The script's output → (answers by container, watched containers that stopped, why-sections)."""
    answers: dict[str, Answer] = {}
    watched: list[str] = []
    head, _, _ = text.partition("\n--- ")
    for line in head.splitlines():
        parts = line.split()
        if len(parts) < 3:
            continue
        word, name = parts[0], parts[1]
        if word == "ready":
            answers[name] = Answer(name, True, parts[2], int(parts[3]) if len(parts) > 3 and parts[3].isdigit() else 0)
        elif word == "silent":
            answers[name] = Answer(name, False, parts[2])
        elif word == "stopped" and len(parts) >= 4:
            answers[name] = Answer(name, False, stopped=parts[2], restarts=int(parts[3]) if parts[3].isdigit() else 0)
        elif word == "lost":
            watched.append(name)
    why = sections("--- " + text.partition("\n--- ")[2]) if "\n--- " in text else {}
    return answers, watched, why


def explain(answers: dict[str, Answer], watched: list[str], why: dict[str, list[str]], secrets: Iterable[str],
            limits: dict[str, int]) -> str:
    """One line for a host's seats that did not answer, alike ones together, secrets blanked out.

    ``watched``: containers every seat depends on (the proxy) that stopped;
    ``limits``: each container's ready_timeout, for "did not answer within N s".
    """
    secrets = [s for s in secrets if s]
    if watched:  # no seat can answer without the proxy: that is the one thing to say
        answers = {name: Answer(name, False, stopped="stopped") for name in watched}
    groups: dict[tuple[str, str, str], list[tuple[str, int]]] = {}
    for name, answer in answers.items():
        if answer.ready:
            continue
        lines = [line.strip() for line in why.get(name, []) if line.strip()]
        head = lines[0].split("|") if lines else []
        reason, restarts = [], answer.restarts
        if len(head) == 3:
            code, error, count = head
            restarts = int(count) if count.isdigit() else restarts
            if error:
                reason.append(error)
            if code not in ("0", ""):  # Docker resets it to 0 each time it starts the container again
                reason.append(f"exit code {code}")
        said = lines[-1] if len(lines) > 1 else ""
        for secret in secrets:
            said = said.replace(secret, "…")
        if answer.stopped:
            verb = "keeps stopping" if answer.stopped != "missing" else "is missing"
        else:
            last = "no answer" if answer.code == "000" else f"HTTP {answer.code}"
            verb = f"did not answer within {limits.get(name, 0)} s (last: {last})"
        key = (verb, ", ".join(reason), said[:200])
        groups.setdefault(key, []).append((name, restarts))
    parts = []
    for (verb, reason, said), members in groups.items():
        counts = [r for _, r in members]
        low, high = min(counts), max(counts)
        detail = [reason] if reason else []
        if high and verb == "keeps stopping":
            detail.append(f"restarted {low if low == high else f'{low}-{high}'} time{'s' * (high != 1)}")
        names = ", ".join(n for n, _ in members)
        if verb == "keeps stopping" and len(members) > 1:
            verb = "keep stopping"
        parts.append(f"{names} {verb}" + (f" ({', '.join(detail)})" if detail else "") + (f": {said}" if said else ""))
    return "; ".join(parts)
