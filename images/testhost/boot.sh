#!/bin/sh
# PID 1 of a practice server. Docker mounts the cgroup v1 controllers read-only
# into a non-privileged container; remount them writable so a Docker engine can
# run inside, then become systemd. On cgroup v2 nothing is mounted per
# controller, so the loop does nothing.
for s in blkio cpu cpuacct cpuset devices freezer memory pids net_cls net_prio perf_event hugetlb; do
  if mountpoint -q /sys/fs/cgroup/$s 2>/dev/null; then
    umount /sys/fs/cgroup/$s && mount -t cgroup -o $s cgroup /sys/fs/cgroup/$s
  fi
done
# The name=systemd hierarchy too: without it runc inside cannot create its
# cgroup there, and `docker exec` into an inner container fails with
# "openat2 /sys/fs/cgroup/systemd/docker/<id>/cgroup.procs: no such file".
if mountpoint -q /sys/fs/cgroup/systemd 2>/dev/null; then
  umount /sys/fs/cgroup/systemd && mount -t cgroup -o none,name=systemd cgroup /sys/fs/cgroup/systemd
fi
exec /sbin/init "$@"
