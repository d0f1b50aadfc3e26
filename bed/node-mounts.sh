#!/bin/sh
# Runs inside a tier 1 node's fresh mount+uts namespace (already in its netns): give the node
# its own /etc, /run, /sys, /tmp and daemon state, and the shared checkout at the same path
# everywhere (the bed's stand-in for the NFS mount, which this kernel cannot do).
set -e
name=$1 dir=$2 shared=$3 checkout=$4
mount --make-rprivate /
hostname "$name"
mount --bind "$dir/etc" /etc
# a fresh sysfs so /sys/class/net shows this netns; keep the host's cgroup hierarchy
cg=$(mktemp -d /dev/shm/agbed-cg.XXXXXX)
mount --rbind /sys/fs/cgroup "$cg"
mount -t sysfs sysfs /sys
mount --move "$cg" /sys/fs/cgroup
rmdir "$cg"
mount -t tmpfs -o mode=755 tmpfs /run
mkdir -p /run/lock /run/user
# /var/lib/ag-deploy: the deploy's record on the manager (its override and image pins);
# /usr/local/sbin: the firewall script, whose addresses differ between beds side by side
for d in /var/lib/docker /var/lib/containerd /var/log /srv /tmp /var/lib/nfs /var/cache/salt \
    /var/lib/ag-deploy /usr/local/sbin; do
  src="$dir/fs$d"
  mkdir -p "$src" "$d"
  mount --bind "$src" "$d"
done
chmod 1777 /tmp
mkdir -p "$checkout"
mount --bind "$shared" "$checkout"
