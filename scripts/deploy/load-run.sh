#!/bin/sh
# Run one region's loadgen Job (deploy/load/<region>) and collect its results.
#
#   scripts/deploy/load-run.sh CONTEXT REGION [single|sharded] [OUT_DIR]
#
# Applies the Job (after deleting the previous run: Jobs are immutable), polls
# its status until Complete or Failed (deadline LOAD_TIMEOUT seconds, default
# 1200), then writes each pod's JSON result to OUT_DIR/<region>-<pod>.json.
# LOAD_SLO / LOAD_DURATION override the SLOs and the run length for one run
# (scripts/deploy/load_overrides.py; `task verify:lab9` forces a failure so).
# Exit status: 0 passed, 99 an SLO failed (loadgen's own code), 1 otherwise.
set -eu

ctx=${1:?usage: load-run.sh CONTEXT REGION [single|sharded] [OUT_DIR]}
region=${2:?region (us or eu) missing}
mode=${3:-single}
out=${4:-results}
case "$mode" in
  single) job=loadgen ;;
  sharded) job=loadgen-sharded ;;
  *) echo "load-run: mode must be single or sharded, not '$mode'" >&2; exit 2 ;;
esac
[ -d "deploy/load/$region" ] || { echo "load-run: no deploy/load/$region" >&2; exit 2; }

k() { kubectl --context "$ctx" -n echo "$@"; }

mkdir -p "$out"
k delete job "$job" --ignore-not-found --wait=true
# Only the shared objects and this mode's Job: the overlay holds both Jobs.
# Rendered into a variable first: POSIX sh has no pipefail, and a failed render
# must stop here, not apply nothing.
rendered=$(kubectl kustomize "deploy/load/$region" | python3 scripts/deploy/load_overrides.py)
[ -n "$rendered" ] || { echo "load-run: deploy/load/$region rendered nothing" >&2; exit 1; }
printf '%s\n' "$rendered" | kubectl --context "$ctx" apply -l "load-mode in (shared,$mode)" -f -

deadline=$(( $(date +%s) + ${LOAD_TIMEOUT:-1200} ))
state=
while [ -z "$state" ]; do
  conditions=$(k get job "$job" \
    -o jsonpath='{range .status.conditions[?(@.status=="True")]}{.type}{" "}{end}')
  case " $conditions " in
    *" Complete "*) state=complete ;;
    *" Failed "*) state=failed ;;
    *)
      if [ "$(date +%s)" -ge "$deadline" ]; then
        echo "load-run: $ctx: job/$job not finished after ${LOAD_TIMEOUT:-1200}s" >&2
        exit 1
      fi
      sleep 5 ;;
  esac
done

status=0
for pod in $(k get pods -l "job-name=$job" -o name); do
  name=${pod##*/}
  if k logs "$pod" -c loadgen | python3 scripts/deploy/extract_json.py > "$out/$region-$name.json"; then
    echo "load-run: $ctx: $out/$region-$name.json"
  else
    rm -f "$out/$region-$name.json"
    echo "load-run: $ctx: $pod left no JSON result" >&2
    status=1
  fi
  code=$(k get "$pod" -o jsonpath='{.status.containerStatuses[?(@.name=="loadgen")].state.terminated.exitCode}')
  if [ "$code" = 99 ] && [ "$status" = 0 ]; then status=99; fi
  if [ -n "$code" ] && [ "$code" != 0 ] && [ "$code" != 99 ]; then status=1; fi
done
echo "load-run: $ctx ($region): job/$job $state, exit $status"
exit "$status"
