#!/bin/bash
# Build the tier 2 guest image into OUT, in a mount namespace of its own (the chroot's mounts
# vanish with it, even on failure). OUT gets: root.img (raw ext4), vmlinuz, initrd.img and
# kernel-version. Debian 12 with systemd, sshd and a salt-minion in /opt/salt; no Docker and
# no NFS packages: the product's own states install those through the bed's apt proxy.
#   build.sh OUT MIRROR HOST_PIP REQUIREMENTS
set -euo pipefail
[ -n "${AGBED_BUILD_NS:-}" ] || exec env AGBED_BUILD_NS=1 unshare --mount --propagation private "$0" "$@"
OUT=$1 MIRROR=$2 HOST_PIP=$3 REQUIREMENTS=$4
HERE=$(cd "$(dirname "$0")" && pwd)
R=$OUT/root W=$OUT/wheels
SIZE=${AGBED_VM_DISK_SIZE:-20G}
mkdir -p "$OUT"

echo "== debootstrap bookworm from $MIRROR"
debootstrap --variant=minbase \
  --include=linux-image-amd64,systemd-sysv,udev,kmod,iproute2,ca-certificates,procps,dbus \
  bookworm "$R" "$MIRROR"

echo "== sshd and python in the chroot (no daemon may start here)"
printf '#!/bin/sh\nexit 101\n' > "$R/usr/sbin/policy-rc.d"
chmod +x "$R/usr/sbin/policy-rc.d"
mount -t proc proc "$R/proc"
mount -t sysfs sysfs "$R/sys"
mount --bind /dev "$R/dev"
chroot "$R" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
  openssh-server python3 python3-venv >/dev/null

echo "== salt-minion venv (wheels built on the host, which reaches PyPI; same pins as the host venv)"
pins=$(grep -E '^(salt|docker)==' "$REQUIREMENTS")
mkdir -p "$W"
"$HOST_PIP" freeze > "$W/constraints.txt"
"$HOST_PIP" wheel -q --disable-pip-version-check -w "$W" -c "$W/constraints.txt" $pins
mkdir -p "$R/tmp/wheels"
mount --bind "$W" "$R/tmp/wheels"
chroot "$R" python3 -m venv /opt/salt
chroot "$R" /opt/salt/bin/pip install -q --disable-pip-version-check --no-index \
  --find-links /tmp/wheels $pins
umount "$R/tmp/wheels"
rmdir "$R/tmp/wheels"
for tool in salt-minion salt-call; do ln -sf /opt/salt/bin/$tool "$R/usr/bin/$tool"; done

echo "== the bed's files, units, clean-up"
cp -a "$HERE/rootfs/." "$R/"
rm -f "$R/etc/apt/sources.list"
systemctl --root="$R" enable systemd-networkd.service agbed-guest.service salt-minion.service
# no unattended apt runs holding the dpkg lock while Salt installs packages, no fs scrubbing
systemctl --root="$R" mask apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer \
  e2scrub_reap.service
# the small initrd (conf.d/agbed.conf); the host passes it to qemu, so packages installed in
# the guest later need not rebuild it (slow in emulation)
chroot "$R" update-initramfs -u -k all
sed -i 's/^update_initramfs=.*/update_initramfs=no/' "$R/etc/initramfs-tools/update-initramfs.conf"
umount "$R/proc" "$R/sys" "$R/dev"
rm -f "$R/usr/sbin/policy-rc.d" "$R"/etc/ssh/ssh_host_* "$R/etc/hostname" "$R/var/lib/dbus/machine-id"
: > "$R/etc/machine-id"   # every guest makes its own at first boot
rm -rf "$R"/var/lib/apt/lists/* "$R"/var/cache/apt/*.bin "$R"/var/cache/apt/archives/*.deb

echo "== kernel, initrd and a $SIZE ext4 image"
kver=$(ls "$R/lib/modules")
[ "$(echo "$kver" | wc -w)" = 1 ] || { echo "expected one kernel in the image, found: $kver" >&2; exit 1; }
cp "$R/boot/vmlinuz-$kver" "$OUT/vmlinuz"
cp "$R/boot/initrd.img-$kver" "$OUT/initrd.img"
echo "$kver" > "$OUT/kernel-version"
mkfs.ext4 -q -F -L agbed-root -d "$R" "$OUT/root.img" "$SIZE"
rm -rf "$R" "$W"
echo "== image done: kernel $kver"
