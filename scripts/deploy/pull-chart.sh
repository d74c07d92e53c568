#!/bin/sh
# Download one chart at one version into DIR/<chart>-<version>, the layout the
# render tests read (scripts/tests/test_helm_charts.py).
#
#   scripts/deploy/pull-chart.sh REPO/CHART:VERSION DIR
#
# Exit status: 0 pulled (or already there), 1 helm failed, 2 usage.
set -eu
[ $# -eq 2 ] || { echo "usage: pull-chart.sh REPO/CHART:VERSION DIR" >&2; exit 2; }
ref=${1%:*} version=${1##*:} dir=$2
chart=${ref#*/}
out="$dir/$chart-$version"
if [ -f "$out/Chart.yaml" ]; then
  echo "charts:pull: $out is there"
  exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
helm pull "$ref" --version "$version" --untar --untardir "$tmp"
mkdir -p "$dir"
mv "$tmp/$chart" "$out"
echo "charts:pull: $ref $version -> $out"
