#!/bin/sh
# Print MetalLB's IPAddressPool and L2Advertisement for one region, carved from
# Docker's "kind" network, so LoadBalancer Services (the east-west gateways)
# get an address every node of both clusters can reach.
#
#   scripts/kind/metallb-pool.sh REGION | kubectl --context CTX apply -f -
#
# The kind network's IPv4 subnet (e.g. 172.18.0.0/16) is read from
# `docker network inspect kind`, or taken from KIND_SUBNET. The pools come
# from the top of the subnet, far from the addresses Docker gives containers
# (it counts up from the bottom): us gets .255.200-.255.224, eu .255.225-.255.250
# of the last /24. Exit status: 0 printed, 1 no usable subnet, 2 bad region.
set -eu
region=${1:?usage: metallb-pool.sh us|eu}
case "$region" in
  us) first=200 last=224 ;;
  eu) first=225 last=250 ;;
  *) echo "metallb-pool: region must be us or eu, not '$region'" >&2; exit 2 ;;
esac
subnet=${KIND_SUBNET:-$(docker network inspect kind \
  -f '{{range .IPAM.Config}}{{.Subnet}}{{"\n"}}{{end}}' 2>/dev/null | grep -m1 -E '^[0-9.]+/[0-9]+$' || true)}
[ -n "$subnet" ] || { echo "metallb-pool: no IPv4 subnet on Docker network 'kind' (is a kind cluster up?)" >&2; exit 1; }
base=$(python3 - "$subnet" <<'PY'
import ipaddress, sys
net = ipaddress.ip_network(sys.argv[1], strict=False)
if net.version != 4 or net.prefixlen > 24:
    sys.exit(f"metallb-pool: subnet {net} must be IPv4 and /24 or larger")
top = net.broadcast_address  # x.y.255.255 for a /16
print(".".join(str(top).split(".")[:3]))
PY
) || exit 1
cat <<YAML
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata:
  name: kind-$region
  namespace: metallb-system
spec:
  addresses:
    - $base.$first-$base.$last
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata:
  name: kind-$region
  namespace: metallb-system
spec:
  ipAddressPools:
    - kind-$region
YAML
