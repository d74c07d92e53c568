#!/bin/sh
# Prints the platform kind's nodes run on (linux/amd64 or linux/arm64): the
# Docker engine's own architecture, since kind nodes are containers of it.
# Exit status: 0 printed, 1 no engine answered or an architecture kind lacks.
set -eu
arch=$(docker version --format '{{.Server.Arch}}' 2>/dev/null) || {
  echo "node-platform: the Docker engine does not answer (is Docker running?)" >&2
  exit 1
}
case "$arch" in
  amd64 | x86_64) echo linux/amd64 ;;
  arm64 | aarch64) echo linux/arm64 ;;
  *) echo "node-platform: kind has no node image for '$arch'" >&2; exit 1 ;;
esac
