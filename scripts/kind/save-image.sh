#!/bin/sh
# Saves one image, for one platform, to an archive that `kind load
# image-archive` takes. `kind load docker-image` fails on Docker's containerd
# image store (the default of new Docker Desktop and Engine 29 installs): it
# saves every platform the index names, most of them absent. Saving only the
# nodes' platform works on both stores; engines older than API 1.48 (Docker 28)
# have no --platform, and their classic store holds one platform anyway.
#
#   scripts/kind/save-image.sh IMAGE ARCHIVE
#
# The platform is the nodes' (scripts/kind/node-platform.sh); PLATFORM=os/arch
# overrides it.
#
# Exit status: 0 saved, 1 failure, 2 usage.
set -eu
[ $# -eq 2 ] || { echo "usage: save-image.sh IMAGE ARCHIVE" >&2; exit 2; }
image=$1 archive=$2
platform=${PLATFORM:-}
if [ -z "$platform" ]; then
  platform=$("$(dirname "$0")/node-platform.sh") || exit 1
fi

api=$(docker version --format '{{.Server.APIVersion}}' 2>/dev/null) || {
  echo "save-image: the Docker engine does not answer (is Docker running?)" >&2
  exit 1
}
major=${api%%.*} minor=${api#*.}
minor=${minor%%.*}
case "$major$minor" in
  *[!0-9]* | "") echo "save-image: cannot read the engine's API version '$api'" >&2; exit 1 ;;
esac
mkdir -p "$(dirname "$archive")"
if [ "$major" -gt 1 ] || [ "$minor" -ge 48 ]; then
  docker image save --platform "$platform" -o "$archive" "$image"
else
  docker image save -o "$archive" "$image"
fi
echo "save-image: $image ($platform) -> $archive"
