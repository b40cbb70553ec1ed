# Shell environment for every lab entry point: source it, do not execute it.
# shellcheck shell=bash
SIPWAVE_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export SIPWAVE_ROOT
export CONTAINERS_CONF="$SIPWAVE_ROOT/lab/containers.conf"
# systemd in the Debian unstable image needs cgroup v2: on a hybrid host the unified
# hierarchy lives at /sys/fs/cgroup/unified, on a pure v2 host at /sys/fs/cgroup itself.
if [ "$(stat -fc %T /sys/fs/cgroup 2>/dev/null)" = "cgroup2fs" ]; then
  SIPWAVE_CGROUP_SOURCE=/sys/fs/cgroup
else
  SIPWAVE_CGROUP_SOURCE=/sys/fs/cgroup/unified
fi
export SIPWAVE_CGROUP_SOURCE
