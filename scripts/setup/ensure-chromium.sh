#!/usr/bin/env bash
# The browser smoke test drives Debian's chromium (headless) with Playwright's Python package; it never
# downloads a browser of its own (`playwright install` is not used). Install the package when missing.
set -o errexit -o pipefail -o nounset
CHROMIUM=${SMOKE_CHROMIUM:-/usr/bin/chromium}
[ -x "$CHROMIUM" ] && exit 0
"$(dirname "$0")/apt-install.sh" --no-recommends "the browser smoke test; or set SMOKE_CHROMIUM" chromium
