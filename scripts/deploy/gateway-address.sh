#!/bin/sh
# Print the address of a cluster's east-west gateway: its LoadBalancer IP, or
# host name where the cloud gives one (AWS NLBs), alone on one line.
#
#   scripts/deploy/gateway-address.sh CONTEXT [--wait SECONDS]
#
# With --wait, polls until the address exists or the deadline passes; without,
# answers at once. Exit status: 0 printed, 1 no address (with the likely cause).
set -eu
ctx=${1:?usage: gateway-address.sh CONTEXT [--wait SECONDS]}
wait_s=0
if [ "${2:-}" = --wait ]; then wait_s=${3:?--wait needs seconds}; fi

deadline=$(( $(date +%s) + wait_s ))
while :; do
  addr=$(kubectl --context "$ctx" -n istio-system get svc istio-eastwestgateway \
    -o jsonpath='{.status.loadBalancer.ingress[0].ip}{" "}{.status.loadBalancer.ingress[0].hostname}' 2>/dev/null || true)
  addr=$(echo "$addr" | awk '{print $1}')
  if [ -n "$addr" ]; then echo "$addr"; exit 0; fi
  [ "$(date +%s)" -lt "$deadline" ] || break
  sleep 3
done
echo "gateway-address: $ctx: service istio-system/istio-eastwestgateway has no LoadBalancer address" \
     "(on kind, MetalLB gives it one: task lb:install:all)" >&2
exit 1
