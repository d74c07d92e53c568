#!/bin/sh
# Register the eu cluster with the Argo CD running in us, declaratively: a
# Secret labelled argocd.argoproj.io/secret-type=cluster and region=eu, with a
# ServiceAccount token (deploy/argocd/remote, applied to eu first) and the
# address of eu's API server as seen from a pod in us. The us cluster's own
# Secret (deploy/argocd/clusters/in-cluster.yaml) comes with `apply -k deploy/argocd`.
#
#   scripts/deploy/argocd-clusters.sh CTX_US CTX_EU [KIND_EU]
#
# The address: EU_API_SERVER if set (a real cluster's endpoint); else, for
# kind, the eu control plane's address on Docker's kind network, port 6443
# (kind's kubeconfig says 127.0.0.1, which a pod in us cannot reach; the API
# server's certificate covers this address, it is the node's own).
# The token never touches the disk or Git: it goes from eu to us through a pipe,
# and is applied server-side, so no last-applied-configuration annotation
# (readable by anyone who may read the Secret's metadata) carries a copy.
# Exit status: 0 registered, 1 failure.
set -eu
cd "$(dirname "$0")/../.."
ctx_us=${1:?usage: argocd-clusters.sh CTX_US CTX_EU [KIND_EU]}
ctx_eu=${2:?usage: argocd-clusters.sh CTX_US CTX_EU [KIND_EU]}
kind_eu=${3:-eu}

token=
for _ in $(seq 1 30); do
  token=$(kubectl --context "$ctx_eu" -n kube-system get secret argocd-manager-token -o jsonpath='{.data.token}' 2>/dev/null || true)
  [ -n "$token" ] && break
  sleep 2
done
[ -n "$token" ] || { echo "argocd:clusters: $ctx_eu issued no token in kube-system/argocd-manager-token" >&2; exit 1; }
ca=$(kubectl --context "$ctx_eu" -n kube-system get secret argocd-manager-token -o jsonpath='{.data.ca\.crt}')

server=${EU_API_SERVER:-}
if [ -z "$server" ]; then
  ip=$(docker inspect -f '{{with index .NetworkSettings.Networks "kind"}}{{.IPAddress}}{{end}}' \
        "$kind_eu-control-plane" 2>/dev/null || true)
  [ -n "$ip" ] || { echo "argocd:clusters: no kind node $kind_eu-control-plane; set EU_API_SERVER=https://<eu API server>" >&2; exit 1; }
  server="https://$ip:6443"
fi

python3 - "$server" "$token" "$ca" <<'PY' \
  | kubectl --context "$ctx_us" -n argocd apply --server-side --force-conflicts --field-manager=argocd-clusters -f -
import base64, json, sys
server, token_b64, ca_b64 = sys.argv[1:4]
config = {"bearerToken": base64.b64decode(token_b64).decode(),
          "tlsClientConfig": {"insecure": False, "caData": ca_b64}}
secret = {
    "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
    "metadata": {"name": "cluster-prod-eu-west-1",
                 "labels": {"argocd.argoproj.io/secret-type": "cluster", "region": "eu"}},
    "stringData": {"name": "prod-eu-west-1", "server": server, "config": json.dumps(config)},
}
print(json.dumps(secret))
PY
echo "argocd:clusters: prod-eu-west-1 registered at $server (label region=eu)"
