#!/bin/bash
# Boots a genuine systemd as PID 1 of a private PID + mount namespace, over an overlay of the host's
# root, so tests can run real units without touching the host. Run it under
#   unshare --pid --fork --mount --propagation private boot-systemd.sh SCRATCH CGROUP_NAME [BIND_DIR...]
# SCRATCH gets a tmpfs holding the overlay's upper layer; each BIND_DIR appears inside at the same path.
set -euo pipefail
scratch=$1 cgroup_name=$2
shift 2

mount --make-rprivate /
mkdir -p "$scratch"
mount -t tmpfs -o mode=0700 unitwatch-test "$scratch"
mkdir -p "$scratch/upper" "$scratch/work" "$scratch/root"
mount -t overlay overlay -o "lowerdir=/,upperdir=$scratch/upper,workdir=$scratch/work" "$scratch/root"
root=$scratch/root

mount --rbind /dev "$root/dev"
mount --rbind /sys "$root/sys"
mount -t proc proc "$root/proc"
mount -t tmpfs -o mode=0755 tmpfs "$root/run"
mount -t tmpfs -o mode=1777 tmpfs "$root/tmp"
for dir in "$@"; do
  mkdir -p "$root$dir"
  mount --bind "$dir" "$root$dir"
  # Parents inside the overlay may be 0700 (mkdtemp); the service's DynamicUser must traverse them.
  parent=$(dirname "$dir")
  while [ "$parent" != / ]; do chmod o+x "$root$parent"; parent=$(dirname "$parent"); done
done

mkdir -p "$root/run/systemd/system"
cat > "$root/run/systemd/system/unitwatch-test.target" <<UNIT
[Unit]
Description=unitwatch test boot
Wants=dbus.socket dbus.service systemd-journald.socket
UNIT

# Our own cgroup subtree in every hierarchy: two instances booted side by side would otherwise share
# system.slice/NAME.service cgroups, and stopping a unit in one would kill processes of the other.
for hierarchy in /sys/fs/cgroup/*/ /sys/fs/cgroup/; do
  [ -e "${hierarchy}cgroup.procs" ] || continue
  mkdir -p "${hierarchy}$cgroup_name"
  if [ -e "${hierarchy}cpuset.cpus" ] && [ -e "${hierarchy}$cgroup_name/cpuset.cpus" ]; then
    cat "${hierarchy}cpuset.cpus" > "${hierarchy}$cgroup_name/cpuset.cpus"
    cat "${hierarchy}cpuset.mems" > "${hierarchy}$cgroup_name/cpuset.mems"
  fi
  echo $$ > "${hierarchy}$cgroup_name/cgroup.procs"
done

mkdir -p "$root/.old-root"
cd "$root"
pivot_root . .old-root
umount -l /.old-root
rmdir /.old-root
# A booted host has a shared /, but systemd skips that when `container` is set. LoadCredential= needs
# it: (sd-mkdcreds) builds the credential ramfs in a mount namespace of its own and moves it into
# /run/credentials, and only propagation carries it back to PID 1 (otherwise the directory is empty).
# These mounts are all ours (made private above), so nothing propagates to the host.
mount --make-rshared /
export container=unitwatch-test
exec /lib/systemd/systemd --system --unit=unitwatch-test.target --log-target=journal-or-kmsg
