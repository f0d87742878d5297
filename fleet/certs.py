"""Certificates from an ACME CA: what the proxy's storage holds, ordering one, and what the answer means.

Pure decisions and a fixed script, like fleet/ready.py; the backend runs the
script over the host's open session.

- :func:`stored` reads the certificates the probe found in the proxy's data
  volume (Caddy's storage): for which names, from which CA, until when.
  A host whose certificate is there and valid orders nothing: a re-run, or
  a proxy replaced for another reason, uses it.
- :data:`SCRIPT` waits, bounded, for Caddy's word on an order: obtained, or
  the CA's reason for refusing it (a challenge that could not reach ports
  80/443, a rate limit, the CA down). Under ``tls: auto`` it first starts an
  *order-only* proxy beside the running one (same image, storage and
  Caddyfile, only ports 80 and 443 published) and removes it after: the
  seats keep being served while the CA is asked, and a refusal changes
  nothing on the host. Under ``tls: acme`` the proxy itself orders.
"""
from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass

from cryptography import x509
from cryptography.x509.oid import ExtensionOID, NameOID

from fleet import proxy

RENEW_MARGIN = dt.timedelta(hours=1)  # a stored certificate closer than this to its end is ordered again
WARN_WITHIN = dt.timedelta(hours=24)  # status warns about a CA's certificate this close to its end
REASON_CHARS = 300

# $1 "order" (start the order-only proxy given after --, then watch it and remove it) | "watch" (the proxy
#    itself) | "restart" (restart the proxy, then watch it), $2 the container, $3 seconds to wait at most,
# $4 the proxy's data volume, $5 where in it the certificate will be (words: one per CA that counts).
# Prints "obtained" (Caddy said so, or the certificate appeared in its storage) or "failed" and Caddy's log
# line, "stopped STATE" and its last log lines, or "silent" (nothing decided in time) and its last error line.
SCRIPT = r"""
set -u
mode=$1 c=$2 limit=$3 volume=$4 files=$5
shift 6
since=
mark=$(mktemp) || exit 1
trap 'rm -f "$mark"' EXIT
mount=$(timeout 20 docker volume inspect --format '{{.Mountpoint}}' "$volume" 2>/dev/null)
case $mode in
  order)
    timeout 60 docker rm -f "$c" >/dev/null 2>&1
    trap 'rm -f "$mark"; timeout 60 docker rm -f "$c" >/dev/null 2>&1' EXIT
    trap 'exit 130' INT TERM HUP
    if ! err=$(timeout 120 "$@" 2>&1 >/dev/null); then
      echo "stopped could-not-start"; printf '%s\n' "$err" | tail -n 2; exit 0
    fi ;;
  restart)
    since=$(date +%s)
    timeout 120 docker restart -t 5 "$c" >/dev/null 2>&1 || { echo "stopped could-not-restart"; exit 0; } ;;
esac
end=$(( $(date +%s) + limit ))
while :; do
  out=$(timeout 20 docker logs ${since:+--since "$since"} "$c" 2>&1)
  ok=$(printf '%s\n' "$out" | grep -E '"certificate (obtained|renewed) successfully"' | grep -v '"issuer":"local"' \
    | tail -n 1)
  if [ -n "$ok" ]; then echo obtained; printf '%s\n' "$ok"; exit 0; fi
  for f in $files; do
    [ -n "$mount" ] && [ -s "$mount/$f" ] && [ "$mount/$f" -nt "$mark" ] && { echo obtained; echo "$f"; exit 0; }
  done
  bad=$(printf '%s\n' "$out" | grep -F '"could not get certificate from issuer"' | tail -n 1)
  if [ -n "$bad" ]; then echo failed; printf '%s\n' "$bad"; exit 0; fi
  state=$(timeout 20 docker inspect --format '{{.State.Status}}' "$c" 2>/dev/null)
  if [ "$state" != running ]; then echo "stopped ${state:-missing}"; printf '%s\n' "$out" | tail -n 2; exit 0; fi
  if [ "$(date +%s)" -ge "$end" ]; then echo silent; printf '%s\n' "$out" | grep -F '"level":"error"' | tail -n 1; exit 0; fi
  sleep 0.5
done
"""


@dataclass(frozen=True)
class Stored:
    """One certificate in the proxy's storage (its first, leaf, certificate)."""

    path: str  # inside the data volume: caddy/certificates/ISSUER/NAME/NAME.crt
    names: tuple[str, ...]  # its DNS names and IP addresses
    issuer: str  # the issuing CA's common name
    not_after: dt.datetime  # UTC

    @property
    def internal(self) -> bool:
        """Issued by the proxy's own authority (Caddy keeps those under certificates/local/)."""
        return self.path.split("/")[2:3] == ["local"]


def stored(files: tuple[tuple[str, str], ...] | list[tuple[str, str]]) -> list[Stored]:
    """The probe's certificate files (path, PEM of the leaf) as :class:`Stored`; unreadable ones are skipped."""
    out = []
    for path, pem in files:
        try:
            c = x509.load_pem_x509_certificate(pem.encode())
        except ValueError:
            continue
        names: list[str] = []
        try:
            san = c.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME).value
            names = [*san.get_values_for_type(x509.DNSName), *(str(i) for i in san.get_values_for_type(x509.IPAddress))]
        except x509.ExtensionNotFound:
            pass
        cn = c.issuer.get_attributes_for_oid(NameOID.COMMON_NAME)
        out.append(Stored(path, tuple(names), str(cn[0].value) if cn else c.issuer.rfc4514_string(),
                          c.not_valid_after_utc))
    return out


def _same_name(a: str, b: str) -> bool:
    try:
        import ipaddress

        return ipaddress.ip_address(a) == ipaddress.ip_address(b)
    except ValueError:
        return a.lower().rstrip(".") == b.lower().rstrip(".")


def find(certificates: list[Stored], cert: proxy.Certificate) -> Stored | None:
    """The stored certificate this host serves under ``cert`` (the latest-ending one), or None."""
    if cert.mode == "acme":
        paths = {proxy.stored_certificate(ca, cert.name) for ca in cert.issuers()}
        mine = [s for s in certificates if s.path in paths]
    elif cert.mode == "internal":
        mine = [s for s in certificates if s.internal and any(_same_name(n, cert.name) for n in s.names)]
    else:
        return None
    return max(mine, key=lambda s: s.not_after, default=None)


def usable(certificates: list[Stored], cert: proxy.Certificate, now: dt.datetime) -> Stored | None:
    """A CA's certificate for ``cert`` that is in storage and stays valid beyond the renewal margin, or None."""
    found = find(certificates, cert) if cert.mode == "acme" else None
    return found if found is not None and found.not_after - now > RENEW_MARGIN else None


def order_container(fleet: str) -> str:
    """The order-only proxy started beside the running one (tls: auto), removed when the CA has answered."""
    return f"{fleet}-proxy-acme"


def argv(mode: str, container: str, limit: int, cert: proxy.Certificate, fleet: str,
         run: tuple[str, ...] = ()) -> tuple[str, ...]:
    """The command that waits (at most ``limit`` seconds) for ``container`` to have ``cert`` from the CA."""
    files = " ".join(proxy.stored_certificate(ca, cert.name) for ca in cert.issuers())
    return ("sh", "-c", SCRIPT, "sh", mode, container, str(limit), proxy.data_volume(fleet), files, "--", *run)


@dataclass(frozen=True)
class Answer:
    obtained: bool
    reason: str = ""  # why not: the CA's answer, or what happened instead (one line)


def parse(text: str, limit: int) -> Answer:
    """The script's output as an Answer with a one-line reason (the CA's own words when it refused)."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        return Answer(False, "the certificate check ended without a word")
    head, rest = lines[0].split(" ", 1)[0], lines[1:]
    detail = _error(rest[-1]) if rest else ""
    if head == "obtained":
        return Answer(True)
    if head == "failed":
        return Answer(False, _short(detail or "refused, without a reason"))
    if head == "stopped":
        state = lines[0].split(" ", 1)[1] if " " in lines[0] else "missing"
        return Answer(False, _short(f"the proxy stopped ({state}) while ordering" + (f": {detail}" if detail else "")))
    return Answer(False, _short(f"no answer within {limit} s (timeouts.certificate)"
                                + (f"; last error: {detail}" if detail else "")))


def _error(line: str) -> str:
    """The error of one of Caddy's JSON log lines (or the line itself), without ACME's URN prefix."""
    try:
        entry = json.loads(line)
        problem = entry.get("problem") if isinstance(entry.get("problem"), dict) else {}
        text = str(entry.get("error") or problem.get("detail") or entry.get("msg") or line)
    except (ValueError, AttributeError):
        text = line
    text = re.sub(r"urn:ietf:params:acme:error:", "", text)
    return re.sub(r"(/\.well-known/acme-challenge/)[A-Za-z0-9_-]+", r"\1…", text).strip()


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= REASON_CHARS else text[: REASON_CHARS - 1] + "…"


def describe(found: Stored | None, now: dt.datetime) -> tuple[str, bool]:
    """For status: (issuer and expiry, whether a CA's certificate is within WARN_WITHIN of its end)."""
    if found is None:
        return "none yet", False
    left = found.not_after - now
    when = found.not_after.strftime("%Y-%m-%d %H:%M UTC")
    if left.total_seconds() <= 0:
        return f"{found.issuer}, EXPIRED {when}", not found.internal
    hours = left.total_seconds() / 3600
    span = f"{hours:.0f} h" if hours < 48 else f"{hours / 24:.0f} days"
    own = " (the proxy's own authority, renewed by itself)" if found.internal else ""
    return f"{found.issuer}{own}, expires {when} (in {span})", not found.internal and left < WARN_WITHIN
