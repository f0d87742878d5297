"""Several Steps in one round trip: the fixed script they become, and its stdin.

The SSH edge (Remote.apply_batch) runs it; this is where each step's argv is
quoted (``shlex.join``) into the script, and where the uploads' contents go to
stdin, one after another, each read back by its exact length: no secret is
ever in the script.
"""
from __future__ import annotations

import shlex

from fleet.steps import Run, Upload

# The head of a batch (Remote.apply_batch): `run N SECONDS ARGV...` runs one command with no stdin;
# `put N SECONDS LENGTH PATH MODE` writes the next LENGTH bytes of stdin to PATH as WRITE_FILE does. The first
# that fails prints "fleet-batch-failed N STATUS" and its output on stderr, and the batch stops.
BATCH_HEAD = r"""
set -u
d=$(mktemp -d) || exit 1
trap 'rm -rf "$d"' EXIT
failed() { echo "fleet-batch-failed $1 $2" >&2; tail -n 20 "$d/err" >&2; exit 1; }
run() { n=$1 t=$2; shift 2; timeout "$t" "$@" </dev/null >/dev/null 2>"$d/err" || failed "$n" $?; }
put() {
  n=$1 t=$2 size=$3 path=$4 mode=$5
  { umask 077 && mkdir -p "$(dirname "$path")" && head -c "$size" > "$path.tmp" && chmod "$mode" "$path.tmp" \
    && [ "$(wc -c < "$path.tmp")" -eq "$size" ] && mv -f "$path.tmp" "$path"; } 2>"$d/err" || failed "$n" $?
}
"""



def batch_command(steps: list[Run | Upload]) -> tuple[tuple[str, ...], bytes]:
    """One script for several steps, and its stdin (the uploads' contents, one after another)."""
    lines, stdin = [BATCH_HEAD], bytearray()
    for n, step in enumerate(steps):
        if isinstance(step, Upload):
            lines.append(f"put {n} {step.timeout} {len(step.content)} {shlex.quote(step.path)} {step.mode:o}")
            stdin += step.content
        else:
            lines.append(f"run {n} {step.timeout} {shlex.join(step.argv)}")
    return ("sh", "-c", "\n".join(lines)), bytes(stdin)
