#!/bin/sh
# Link the two clusters: write each cluster's east-west gateway address into
# the other region's overlay (deploy/overlays/<region>/remote-gateway.yaml),
# then show the change. Argo CD deploys what is in Git, so the change only
# takes effect once committed and pushed; self-heal would undo an edit made
# in the cluster instead.
#
#   scripts/deploy/link-mesh.sh CTX_US CTX_EU
#
# Exit status: 0 linked (or already linked), 1 a gateway has no address.
set -eu
cd "$(dirname "$0")/../.."
ctx_us=${1:?usage: link-mesh.sh CTX_US CTX_EU}
ctx_eu=${2:?usage: link-mesh.sh CTX_US CTX_EU}

us=$(scripts/deploy/gateway-address.sh "$ctx_us")
eu=$(scripts/deploy/gateway-address.sh "$ctx_eu")
# us callers reach eu through eu's gateway, and the other way round.
python3 scripts/deploy/course_config.py set-remote us "$eu"
python3 scripts/deploy/course_config.py set-remote eu "$us"
if git diff --quiet -- deploy/overlays/us/remote-gateway.yaml deploy/overlays/eu/remote-gateway.yaml; then
  echo "mesh:link: already linked (us -> $eu, eu -> $us); nothing to commit"
else
  git --no-pager diff -- deploy/overlays/us/remote-gateway.yaml deploy/overlays/eu/remote-gateway.yaml
  echo
  echo "mesh:link: commit and push this so Argo CD applies it:"
  echo "  git commit -m 'mesh: link us and eu gateways' deploy/overlays/*/remote-gateway.yaml && git push"
fi
