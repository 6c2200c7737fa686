#!/usr/bin/env bash
# Build IMAGE from the Dockerfile on standard input (`ARG BASE_IMAGE`, `FROM ${BASE_IMAGE}`, its steps)
# unless this recipe built it on this base already: label blueprint.recipe = the hash of RECIPE_FILE
# (the calling script, which holds the Dockerfile) and the base image's id, so a change to either
# rebuilds it once, and a rebuilt base reaches every image derived from it.
#   usage: build-derived.sh IMAGE BASE_IMAGE RECIPE_FILE <Dockerfile
set -o errexit -o pipefail -o nounset
IMAGE=$1 BASE_IMAGE=$2
RECIPE="$(sha256sum "$3" | cut -c1-16)-$(docker image inspect -f '{{.Id}}' "$BASE_IMAGE" | cut -c8-23)"
if [ "$(docker image inspect -f '{{index .Config.Labels "blueprint.recipe"}}' "$IMAGE" 2>/dev/null)" = "$RECIPE" ]; then
  exit 0
fi
echo "==> building $IMAGE"
{ cat; printf '%s\n' 'ARG RECIPE' 'LABEL blueprint.recipe=${RECIPE}'; } |
  docker build -q -t "$IMAGE" --build-arg BASE_IMAGE="$BASE_IMAGE" --build-arg RECIPE="$RECIPE" - >/dev/null
