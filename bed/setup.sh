#!/bin/bash
# Install what the bed and the tests need on a fresh Debian/Ubuntu machine (run as root):
# host packages, then the project's venv from requirements.txt. Quick when already done.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
ROOT=${AG_BED_ROOT:-/var/tmp/agbed}
# chromium: the real-stack session's browser (tests/integration/browser.py)
PACKAGES="docker.io busybox-static docker-registry iptables socat rpcbind nfs-ganesha chromium
  nfs-ganesha-vfs libnfs-utils debootstrap qemu-system-x86 qemu-utils apt-cacher-ng
  openssh-client git curl e2fsprogs iproute2 procps python3 python3-venv dnsmasq-base"
missing=$(dpkg-query -W -f='${Package} ${db:Status-Status}\n' $PACKAGES 2>/dev/null | awk '$2!="installed"{print $1}' || true)
[ "$(dpkg-query -W -f='${Package}\n' $PACKAGES 2>/dev/null | wc -l)" -eq "$(echo $PACKAGES | wc -w)" ] || missing="$PACKAGES"
if [ -n "$missing" ]; then
  echo "[setup] installing host packages:" $missing >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $PACKAGES >/dev/null
  # tier 2 runs an apt proxy per bed on the bed's bridge address; the package's own daemon
  # would hold port 3142 on every address
  if [ -d /run/systemd/system ]; then systemctl disable --now apt-cacher-ng >/dev/null 2>&1 || true; fi
fi
mkdir -p "$ROOT"
stamp="$ROOT/venv/.requirements"
if ! cmp -s "$REPO/requirements.txt" "$stamp"; then
  echo "[setup] building the venv in $ROOT/venv" >&2
  python3 -m venv "$ROOT/venv"
  "$ROOT/venv/bin/pip" install -q --disable-pip-version-check -r "$REPO/requirements.txt"
  cp "$REPO/requirements.txt" "$stamp"
fi
