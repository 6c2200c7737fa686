#!/usr/bin/env bash
# `make release`: publish the images the last `make images` built and the chart into REGISTRY, write an
# SBOM per image, sign everything with COSIGN_KEY (when set), and print the helm install line.
# The record and the SBOMs land in OUT (default build/release/<VERSION>): release.json, sbom/*.cdx.json.
# Usage: scripts/release/release.sh REGISTRY [OUT]   (REGISTRY = host[:port]/namespace)
set -o errexit -o pipefail -o nounset
cd "$(dirname "$0")/../.."
[ $# -ge 1 ] && [ -n "$1" ] || { echo "usage: make release REGISTRY=host[:port]/namespace [COSIGN_KEY=cosign.key]" >&2; exit 2; }
out=${2:-build/release/$(cat VERSION)}
record=$out/release.json
py=${PYTHON:-.venv/bin/python}
"$py" scripts/release/publish.py "$1" --out "$record"
echo "==> SBOMs (CycloneDX) beside the record"
"$py" scripts/release/sbom.py "$record"
if [ -n "${COSIGN_KEY:-}" ]; then
  echo "==> signing the images, their SBOMs and the chart with $COSIGN_KEY"
  "$py" scripts/release/cosign-release.py sign "$record" --key "$COSIGN_KEY"
else
  echo "==> NOT signed: set COSIGN_KEY (a cosign key; COSIGN_PASSWORD for its password) to sign the release"
fi
echo "==> release $(cat VERSION) in $1: $record"
echo "==> install it with (plus your values, see helm/django-celery/README.md):"
"$py" -c 'import json, sys; print("    " + json.load(open(sys.argv[1]))["install"])' "$record"
