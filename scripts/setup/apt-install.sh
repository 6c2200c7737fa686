#!/usr/bin/env bash
# Install Debian packages that a target needs and the machine lacks: as root on Debian/Ubuntu with
# apt-get (lists refreshed first: a fresh machine may have none); anywhere else, name what to install
# and fail. Callers decide what is missing; this is the one place that installs it.
# Usage: apt-install.sh [--no-recommends] "WHY" PACKAGE...
set -o errexit -o pipefail -o nounset
opts=()
if [ "${1:-}" = --no-recommends ]; then opts+=(--no-install-recommends); shift; fi
why=$1; shift
[ $# -gt 0 ] || exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "==> installing $* ($why)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq "${opts[@]}" "$@" >/dev/null
else
  echo "ERROR: missing $* ($why): install them (Debian/Ubuntu: sudo apt-get install $*)" >&2
  exit 1
fi
