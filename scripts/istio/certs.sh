#!/bin/sh
# The mesh's one root of trust and an intermediate CA per cluster, with openssl.
#
#   scripts/istio/certs.sh DIR REGION...        # e.g. .istio-certs us eu
#
# A multi-network mesh needs every istiod to sign workload certificates under
# the same root, or a sidecar in one cluster rejects the other's certificates
# and cross-cluster mTLS fails. Writes:
#   DIR/root-cert.pem, DIR/root-key.pem                 the root (10 years)
#   DIR/<region>/ca-cert.pem, ca-key.pem                that cluster's CA (5 years)
#   DIR/<region>/root-cert.pem, cert-chain.pem          what istiod's cacerts needs
# `task istio:install:all` loads DIR/<region> as secret cacerts in istio-system
# before istiod starts. Idempotent: an existing root is kept, and so is a
# cluster CA that still verifies against it (re-running never rotates trust
# by accident; delete DIR to start over). Keys are 0600 and DIR is ignored by
# Git and by the image build. Exit status: 0 done, 1 openssl failed or a
# chain does not verify, 2 usage.
set -eu
dir=${1:?usage: certs.sh DIR REGION...}
shift
[ $# -gt 0 ] || { echo "usage: certs.sh DIR REGION..." >&2; exit 2; }
command -v openssl >/dev/null || { echo "istio:certs: openssl is not installed" >&2; exit 1; }
umask 077
mkdir -p "$dir"
trust_domain=${TRUST_DOMAIN:-corp.local}

if [ ! -s "$dir/root-cert.pem" ] || [ ! -s "$dir/root-key.pem" ]; then
  cat > "$dir/root.cnf" <<CNF
[req]
distinguished_name = dn
prompt = no
x509_extensions = ext
[dn]
O = training-mesh
CN = training-mesh root CA
[ext]
basicConstraints = critical, CA:true
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
CNF
  openssl req -x509 -new -newkey rsa:4096 -nodes -sha256 -days 3650 \
    -config "$dir/root.cnf" -keyout "$dir/root-key.pem" -out "$dir/root-cert.pem" 2>/dev/null
  rm -f "$dir/root.cnf"
  echo "istio:certs: new root CA in $dir/root-cert.pem"
else
  echo "istio:certs: keeping the root CA in $dir/root-cert.pem"
fi

for region in "$@"; do
  out="$dir/$region"
  mkdir -p "$out"
  if [ -s "$out/ca-cert.pem" ] && [ -s "$out/ca-key.pem" ] &&
     openssl verify -CAfile "$dir/root-cert.pem" "$out/ca-cert.pem" >/dev/null 2>&1; then
    echo "istio:certs: keeping $region's CA (it verifies against the root)"
  else
    cat > "$out/ca.cnf" <<CNF
[req]
distinguished_name = dn
prompt = no
[dn]
O = training-mesh
CN = training-mesh $region intermediate CA
L = $region
[ext]
basicConstraints = critical, CA:true, pathlen:0
keyUsage = critical, digitalSignature, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
subjectAltName = URI:spiffe://$trust_domain/ns/istio-system/sa/istiod-service-account, DNS:istiod.istio-system.svc
CNF
    openssl req -new -newkey rsa:4096 -nodes -sha256 -config "$out/ca.cnf" \
      -keyout "$out/ca-key.pem" -out "$out/ca.csr" 2>/dev/null
    openssl x509 -req -sha256 -days 1825 -in "$out/ca.csr" \
      -CA "$dir/root-cert.pem" -CAkey "$dir/root-key.pem" -set_serial "0x$(openssl rand -hex 16)" \
      -extfile "$out/ca.cnf" -extensions ext -out "$out/ca-cert.pem" 2>/dev/null
    rm -f "$out/ca.csr" "$out/ca.cnf"
    echo "istio:certs: new CA for $region in $out"
  fi
  cp "$dir/root-cert.pem" "$out/root-cert.pem"
  cat "$out/ca-cert.pem" "$dir/root-cert.pem" > "$out/cert-chain.pem"
  chmod 600 "$out"/*-key.pem
  openssl verify -CAfile "$dir/root-cert.pem" "$out/ca-cert.pem" >/dev/null \
    || { echo "istio:certs: $region's CA does not verify against the root" >&2; exit 1; }
done
chmod 600 "$dir/root-key.pem"
