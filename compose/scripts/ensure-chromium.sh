#!/usr/bin/env bash
# The browser smoke test drives Debian's chromium (headless) with Playwright's Python package; it never
# downloads a browser of its own (`playwright install` is not used). Install the package when missing.
set -o errexit -o pipefail -o nounset
CHROMIUM=${SMOKE_CHROMIUM:-/usr/bin/chromium}
[ -x "$CHROMIUM" ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "==> installing Debian's chromium for the browser smoke test (apt-get install chromium)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium >/dev/null
else
  echo "ERROR: $CHROMIUM is missing: install Debian's chromium package (apt-get install chromium) or set SMOKE_CHROMIUM" >&2
  exit 1
fi
