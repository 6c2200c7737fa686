#!/usr/bin/env bash
# Build the local Debian 13 (trixie) base image for offline builds: debootstrap + docker import.
# Used where `docker pull` cannot work (air-gapped sites, our CI). Idempotent: skips when the image exists
# and was made by this version of the script (label blueprint.recipe = hash of this file), so a change
# here rebuilds the base (and, through the layer cache, every image FROM it) once.
#   BASE_IMAGE   name:tag to produce (default blueprint/debian:$DEBIAN_SUITE)
#   DEBIAN_SUITE trixie (default, Debian 13) or forky (Debian's testing suite: Python 3.14, for
#                BASE_PYTHON=3.14; the mirror's copy may carry an expired Release file, so apt in that
#                image does not check Valid-Until)
#   DEBIAN_MIRROR  apt mirror URI (default: the first URI in this machine's apt sources)
set -o errexit -o pipefail -o nounset
SUITE=${DEBIAN_SUITE:-trixie}
case "$SUITE" in trixie | forky) ;; *) echo "ERROR: DEBIAN_SUITE must be trixie or forky (got '$SUITE')" >&2; exit 1 ;; esac
BASE_IMAGE=${BASE_IMAGE:-blueprint/debian:$SUITE}
RECIPE=$(sha256sum "$0" | cut -c1-16)
if [ "$(docker image inspect -f '{{index .Config.Labels "blueprint.recipe"}}' "$BASE_IMAGE" 2>/dev/null)" = "$RECIPE" ]; then
  exit 0
fi
[ "$(id -u)" = 0 ] || { echo "ERROR: building $BASE_IMAGE with debootstrap needs root" >&2; exit 1; }
command -v debootstrap >/dev/null || "$(dirname "$0")/../../../scripts/setup/apt-install.sh" "builds $BASE_IMAGE" debootstrap
MIRROR=${DEBIAN_MIRROR:-$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)}
[ -n "$MIRROR" ] || MIRROR=$(awk '/^deb /{print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
[ -n "$MIRROR" ] || { echo "ERROR: set DEBIAN_MIRROR (no apt mirror found in this machine's sources)" >&2; exit 1; }
ROOTFS=$(mktemp -d)
LOG=$(mktemp)
trap 'rm -rf "$ROOTFS" "$LOG"' EXIT
# debootstrap knows a suite by its script; an older debootstrap lacks forky's, which is sid's.
script=/usr/share/debootstrap/scripts/$SUITE
[ -e "$script" ] || script=/usr/share/debootstrap/scripts/sid
echo "==> debootstrap $SUITE into a temporary rootfs (about 40 s)"
debootstrap --variant=minbase --include=ca-certificates "$SUITE" "$ROOTFS" "$MIRROR" "$script" >"$LOG" 2>&1 \
  || { tail -20 "$LOG" >&2; exit 1; }
if [ "$SUITE" = forky ]; then
  # The testing suite is the only one in this image; its Release file may be past Valid-Until here.
  echo 'Acquire::Check-Valid-Until "false";' >"$ROOTFS/etc/apt/apt.conf.d/91blueprint-testing"
fi
# Keep images small and apt quiet, as the official debian images do: no recommends, and no binary
# package caches (pkgcache.bin + srcpkgcache.bin are ~95 MB after an `apt-get update` on trixie and
# would otherwise stay in every layer that installs a package).
printf '%s\n' 'APT::Install-Recommends "false";' 'APT::Install-Suggests "false";' \
  'Dir::Cache::pkgcache "";' 'Dir::Cache::srcpkgcache "";' \
  'DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb || true"; };' \
  >"$ROOTFS/etc/apt/apt.conf.d/90blueprint"
# Documentation, manual pages and message catalogues are never read in a container (about 45 MB):
# excluded for packages installed later, and removed from the ones debootstrap already unpacked.
# Copyright notices stay (licence terms).
printf '%s\n' 'path-exclude /usr/share/doc/*' 'path-include /usr/share/doc/*/copyright' \
  'path-exclude /usr/share/man/*' 'path-exclude /usr/share/info/*' 'path-exclude /usr/share/locale/*' \
  'path-include /usr/share/locale/locale.alias' 'path-exclude /usr/share/lintian/*' \
  >"$ROOTFS/etc/dpkg/dpkg.cfg.d/90blueprint"
find "$ROOTFS/usr/share/doc" -mindepth 1 ! -type d ! -name copyright -delete
find "$ROOTFS/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
rm -rf "$ROOTFS"/usr/share/man/* "$ROOTFS"/usr/share/info/* "$ROOTFS"/usr/share/lintian/*
rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/cache/apt/*.bin "$ROOTFS"/var/lib/apt/lists/* \
  "$ROOTFS"/var/log/*.log "$ROOTFS"/var/log/apt/*
echo "==> docker import $BASE_IMAGE"
tar -C "$ROOTFS" -c . | docker import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change "LABEL blueprint.recipe=$RECIPE" \
  --change 'CMD ["bash"]' - "$BASE_IMAGE" >/dev/null
