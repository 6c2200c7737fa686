#!/usr/bin/env bash
# Build the local Debian 13 (trixie) base image for offline builds: debootstrap + docker import.
# Used where `docker pull` cannot work (air-gapped sites, our CI). Idempotent: skips when the image exists.
#   BASE_IMAGE   name:tag to produce (default blueprint/debian:trixie)
#   DEBIAN_MIRROR  apt mirror URI (default: the first URI in this machine's apt sources)
set -o errexit -o pipefail -o nounset
BASE_IMAGE=${BASE_IMAGE:-blueprint/debian:trixie}
if docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then exit 0; fi
[ "$(id -u)" = 0 ] || { echo "ERROR: building $BASE_IMAGE with debootstrap needs root" >&2; exit 1; }
command -v debootstrap >/dev/null || "$(dirname "$0")/apt-install.sh" "builds $BASE_IMAGE" debootstrap
MIRROR=${DEBIAN_MIRROR:-$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)}
[ -n "$MIRROR" ] || MIRROR=$(awk '/^deb /{print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
[ -n "$MIRROR" ] || { echo "ERROR: set DEBIAN_MIRROR (no apt mirror found in this machine's sources)" >&2; exit 1; }
ROOTFS=$(mktemp -d)
trap 'rm -rf "$ROOTFS"' EXIT
echo "==> debootstrap trixie into a temporary rootfs (about 40 s)"
debootstrap --variant=minbase --include=ca-certificates trixie "$ROOTFS" "$MIRROR" >/tmp/debootstrap-trixie.log 2>&1 \
  || { tail -20 /tmp/debootstrap-trixie.log >&2; exit 1; }
# Keep images small and apt quiet, as the official debian images do.
printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' >"$ROOTFS/etc/apt/apt.conf.d/90blueprint"
printf 'path-exclude /usr/share/doc/*\npath-exclude /usr/share/man/*\npath-exclude /usr/share/locale/*\n' >"$ROOTFS/etc/dpkg/dpkg.cfg.d/90blueprint"
rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/*
echo "==> docker import $BASE_IMAGE"
tar -C "$ROOTFS" -c . | docker import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'CMD ["bash"]' - "$BASE_IMAGE" >/dev/null
