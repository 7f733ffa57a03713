#!/usr/bin/env bash
# Build the small images the Docker task runner is tested with, without any registry:
#   celestra/busybox:local   a shell (busybox-static)
#   celestra/python:3.11     Python 3.11 from Debian's packages, with busybox for /bin/sh
# Each is a root filesystem unpacked from Debian packages and loaded with `docker import`.
# Usage: deploy/images/build.sh   (DOCKER_HOST must point at a running engine; needs apt-get)
set -euo pipefail
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

have() { docker image inspect "$1" >/dev/null 2>&1; }
apt-cache show busybox-static python3.11-minimal >/dev/null 2>&1 || apt-get update -qq >/dev/null

busybox_rootfs() {  # $1: rootfs folder; a static busybox with its applets as /bin/*
  local rootfs="$1" deb
  (cd "$work" && apt-get download -qq busybox-static >/dev/null)
  deb="$(ls "$work"/busybox-static_*.deb | head -n 1)"
  dpkg -x "$deb" "$rootfs"
  mkdir -p "$rootfs/bin" "$rootfs/tmp" "$rootfs/etc" "$rootfs/root"
  chmod 1777 "$rootfs/tmp"
  for applet in $("$rootfs/bin/busybox" --list); do
    [ -e "$rootfs/bin/$applet" ] || ln -s busybox "$rootfs/bin/$applet"
  done
  echo "root:x:0:0:root:/root:/bin/sh" > "$rootfs/etc/passwd"
  echo "root:x:0:" > "$rootfs/etc/group"
}

if ! have celestra/busybox:local; then
  rootfs="$work/busybox"
  busybox_rootfs "$rootfs"
  tar -C "$rootfs" -c . | docker import - celestra/busybox:local >/dev/null
fi

if ! have celestra/python:3.11; then
  rootfs="$work/python"
  busybox_rootfs "$rootfs"
  # Python and the libraries it links, resolved by apt (no recommends), minus virtual packages.
  pkgs="$(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks --no-replaces \
      --no-enhances --no-pre-depends python3.11-minimal libpython3.11-stdlib libpython3.11-minimal \
    | grep -E '^[a-z0-9]' | grep -vE '^(debconf|perl-base|dpkg|tar|coreutils|bash|install-info)' | sort -u)"
  mkdir -p "$work/debs"
  (cd "$work/debs" && apt-get download -qq $pkgs >/dev/null 2>&1 || \
     for p in $pkgs; do apt-get download -qq "$p" >/dev/null 2>&1 || true; done)
  for deb in "$work"/debs/*.deb; do dpkg -x "$deb" "$rootfs"; done
  ln -sf python3.11 "$rootfs/usr/bin/python3"
  ln -sf python3.11 "$rootfs/usr/bin/python"
  tar -C "$rootfs" -c . | docker import -c 'ENV PATH=/usr/local/bin:/usr/bin:/bin' - celestra/python:3.11 >/dev/null
fi
docker image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep '^celestra/'
