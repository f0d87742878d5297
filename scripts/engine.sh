#!/usr/bin/env bash
# Make sure a Docker engine answers on this machine (idempotent).
#
# As root: raise the inotify limits (every systemd in a test host takes several
# inotify instances, counted against root), install docker.io, openssh-client and
# debootstrap if missing, and start dockerd in the background if no engine answers.
# Not root and no engine: say what to install and exit 1.
set -u

log() { printf 'engine: %s\n' "$*" >&2; }

is_root=0
[ "$(id -u)" -eq 0 ] && is_root=1

if [ "$is_root" -eq 1 ]; then
  sysctl -q -w fs.inotify.max_user_instances=8192 fs.inotify.max_user_watches=1048576 \
    >/dev/null 2>&1 || log "could not raise inotify limits (continuing)"
fi

engine_up() { timeout 20 docker info >/dev/null 2>&1; }

if command -v docker >/dev/null 2>&1 && engine_up; then
  exit 0
fi

if [ "$is_root" -ne 1 ]; then
  cat >&2 <<'MSG'
engine: no Docker engine answers and this script is not running as root.
  Install and start Docker first, e.g. on Debian/Ubuntu:
    sudo apt-get install -y docker.io openssh-client debootstrap
    sudo systemctl enable --now docker        (or: sudo dockerd &)
  and make sure your user may talk to it (e.g. member of the "docker" group).
  On macOS/Windows: install and start Docker Desktop.
MSG
  exit 1
fi

missing=()
command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
command -v docker >/dev/null 2>&1 || missing+=(docker.io)
command -v ssh >/dev/null 2>&1 || missing+=(openssh-client)
command -v ssh-keygen >/dev/null 2>&1 || missing+=(openssh-client)
command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
if [ "${#missing[@]}" -gt 0 ]; then
  pkgs=$(printf '%s\n' "${missing[@]}" | sort -u | tr '\n' ' ')
  log "installing: $pkgs"
  export DEBIAN_FRONTEND=noninteractive
  timeout 300 apt-get update -q >/dev/null || { log "apt-get update failed"; exit 1; }
  # shellcheck disable=SC2086
  timeout 600 apt-get install -y -q --no-install-recommends $pkgs >/dev/null \
    || { log "apt-get install $pkgs failed"; exit 1; }
fi

if ! pgrep -x dockerd >/dev/null 2>&1; then
  log "starting dockerd (log: /var/log/dockerd.log)"
  nohup dockerd >>/var/log/dockerd.log 2>&1 </dev/null &
fi

for _ in $(seq 1 60); do
  if engine_up; then
    log "engine ready"
    exit 0
  fi
  sleep 1
done
log "dockerd did not answer within 60 s; see /var/log/dockerd.log"
exit 1
