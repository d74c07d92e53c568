#!/bin/sh
# Create one kind cluster for a course region, idempotently.
#
#   scripts/kind/up.sh NAME CONTEXT CONFIG NODE_IMAGE
#
# * creates kind cluster NAME from CONFIG (deploy/kind/<region>.yaml) unless it
#   exists; every kind cluster joins Docker's shared "kind" network, which is
#   what lets the two clusters reach each other's load balancer addresses;
# * renames kind's context kind-NAME to CONTEXT (prod-us-east-1, ...), the name
#   every task and the course use;
# * waits for the nodes and checks each carries the region and zone labels of
#   CONFIG (Istio's locality), labelling any that lost them.
# Exit status: 0 ready, 1 on any failure (with the reason).
set -eu
name=${1:?usage: up.sh NAME CONTEXT CONFIG NODE_IMAGE}
ctx=${2:?context missing}
config=${3:?kind config missing}
image=${4:?node image missing}

for tool in kind kubectl docker; do
  command -v "$tool" >/dev/null || { echo "kind:up: $tool is not installed (deploy/README.md, Prerequisites)" >&2; exit 1; }
done

if kind get clusters 2>/dev/null | grep -qx "$name"; then
  echo "kind:up: cluster $name exists"
else
  kind create cluster --name "$name" --config "$config" --image "$image" --wait 120s
fi

if kubectl config get-contexts -o name | grep -qx "kind-$name"; then
  kubectl config delete-context "$ctx" >/dev/null 2>&1 || true
  kubectl config rename-context "kind-$name" "$ctx"
fi
kubectl config get-contexts -o name | grep -qx "$ctx" \
  || { echo "kind:up: no context $ctx after creating cluster $name" >&2; exit 1; }

kubectl --context "$ctx" wait --for=condition=Ready nodes --all --timeout=180s

# The labels each node should have, in CONFIG's order; kind names nodes
# NAME-control-plane, NAME-worker, NAME-worker2, ... CONFIG is ours
# (deploy/kind/*.yaml): `- role:` items, each with a `labels:` map.
labels=$(mktemp)
awk -v name="$name" '
  /^[[:space:]]*- role:/ {
    role = $NF; inlabels = 0
    if (role == "control-plane") node = name "-control-plane"
    else { workers++; node = name "-worker" (workers == 1 ? "" : workers) }
    next
  }
  /^[[:space:]]*labels:[[:space:]]*$/ { inlabels = 1; next }
  inlabels && /^[[:space:]]+[A-Za-z0-9.\/_-]+:[[:space:]]/ {
    key = $1; sub(/:$/, "", key); print node, key "=" $2; next
  }
  { inlabels = 0 }
' "$config" > "$labels"
while read -r node label; do
  key=${label%%=*} want=${label#*=}
  escaped=$(printf '%s' "$key" | sed 's/\./\\./g')
  have=$(kubectl --context "$ctx" get node "$node" -o "jsonpath={.metadata.labels['$escaped']}")
  if [ "$have" != "$want" ]; then
    kubectl --context "$ctx" label node "$node" "$label" --overwrite
  fi
done < "$labels"
rm -f "$labels"
kubectl --context "$ctx" get nodes -L topology.kubernetes.io/region -L topology.kubernetes.io/zone
