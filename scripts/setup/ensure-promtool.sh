#!/usr/bin/env bash
# promtool (checks and unit-tests the alert rules, `make test-alerts`) without a Prometheus server:
# Debian's `prometheus` package is fetched with `apt-get download` into build/promtool/ and only
# /usr/bin/promtool is taken out of it (`dpkg-deb -x`). Installing the package would start a server.
# Reruns are no-ops once .tools/bin/promtool answers. Elsewhere than Debian/Ubuntu: a promtool on PATH.
set -o errexit -o pipefail -o nounset
cd "$(dirname "$0")/../.."

BIN=$PWD/.tools/bin
DIR=$PWD/build/promtool
if [ -x "$BIN/promtool" ] && "$BIN/promtool" --version >/dev/null 2>&1; then
    exit 0
fi
if ! command -v apt-get >/dev/null; then
    command -v promtool >/dev/null && exit 0
    echo "ERROR: promtool is missing: install Prometheus' promtool and put it on PATH" >&2
    exit 1
fi
mkdir -p "$BIN" "$DIR"
rm -rf "$DIR/root" "$DIR"/prometheus_*.deb
echo "==> fetching Debian's prometheus package for its promtool (not installed: no server starts)"
# A fresh machine may have no package lists yet: refresh them once when the first try finds nothing.
# apt-get download runs in the target directory; as root it warns that _apt cannot write there (harmless).
if ! (cd "$DIR" && apt-get download -qq prometheus 2>/dev/null); then
    apt-get update -qq
    (cd "$DIR" && apt-get download -qq prometheus)
fi
dpkg-deb -x "$DIR"/prometheus_*.deb "$DIR/root"
ln -sf "$DIR/root/usr/bin/promtool" "$BIN/promtool"
"$BIN/promtool" --version | head -1
