#!/usr/bin/env bash
# The baseline of the "classroom" scenario: what a teacher who knows Docker would script by hand.
# Every host in parallel: install Docker from Debian's packages, `docker save | ssh docker load`
# (one copy of the image per host from this computer), an env file per seat, `docker run` per seat.
# No readiness wait, no relay, no retries. Exit status: non-zero if any host failed.
#
# usage: naive.sh KEY KNOWN_HOSTS IMAGE MEMORY CPUS PREFIX TOKEN_ENV SEATS HOST...
#   SEATS: comma-separated n:port:token
set -u
key=$1 known=$2 image=$3 memory=$4 cpus=$5 prefix=$6 token_env=$7 seats=$8
shift 8
ssh_() { ssh -i "$key" -o UserKnownHostsFile="$known" -o StrictHostKeyChecking=yes -o BatchMode=yes \
  -o LogLevel=ERROR "root@$1" "${@:2}"; }

one() {
  h=$1
  ssh_ "$h" 'export DEBIAN_FRONTEND=noninteractive; apt-get update -q >/dev/null && apt-get install -y -q docker.io >/dev/null && systemctl enable --now docker' || return 1
  docker save "$image" | ssh_ "$h" docker load -q || return 1
  ssh_ "$h" "docker network create $prefix-seats >/dev/null 2>&1; mkdir -p -m 700 /etc/$prefix" || return 1
  IFS=, read -ra list <<< "$seats"
  for s in "${list[@]}"; do
    IFS=: read -r n port token <<< "$s"
    name=$prefix-nb-$n
    printf '%s=%s\n' "$token_env" "$token" | ssh_ "$h" "umask 077; cat > /etc/$prefix/$name.env" || return 1
    ssh_ "$h" docker run -d --name "$name" --restart unless-stopped --network "$prefix-seats" \
      --memory "$memory" --memory-swap "$memory" --cpus "$cpus" -p "$port:8888" \
      --env-file "/etc/$prefix/$name.env" --label "bench.tool=$prefix" "$image" >/dev/null || return 1
  done
}

pids=()
for h in "$@"; do one "$h" & pids+=($!); done
rc=0
for p in "${pids[@]}"; do wait "$p" || rc=1; done
echo "naive: done (exit $rc)"
exit $rc
