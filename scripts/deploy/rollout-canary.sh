#!/bin/sh
# Start a canary of the Lab 7.1 Rollout: give its pod template a new version
# label (echo reports it as APP_VERSION) and, with --bad, server-wide faults
# that make 20% of answers 503 (echo's DEFAULT_FAULTS), which the analysis
# must catch and abort on. Env entries are matched by name, so starting
# canaries again and again never piles up duplicates.
#
#   scripts/deploy/rollout-canary.sh CONTEXT VERSION [--bad]
#
# Exit status: 0 started, 1 failure, 2 usage.
set -eu
ctx=${1:?usage: rollout-canary.sh CONTEXT VERSION [--bad]}
version=${2:?usage: rollout-canary.sh CONTEXT VERSION [--bad]}
faults=
case "${3:-}" in
  "") ;;
  --bad) faults=status=503:20 ;;
  *) echo "rollout-canary: unknown argument '$3'" >&2; exit 2 ;;
esac
printf '%s\n' "$version" | grep -Eq '^[a-z0-9]([a-z0-9.-]{0,30}[a-z0-9])?$' \
  || { echo "rollout-canary: '$version' is not a label value" >&2; exit 2; }

# POSIX sh has no pipefail: the Rollout is read into a variable first, so a
# failed read stops here instead of replacing the Rollout with nothing.
current=$(kubectl --context "$ctx" -n echo-rollout get rollout echo -o json)
printf '%s\n' "$current" \
  | python3 -c '
import json, sys
version, faults = sys.argv[1], sys.argv[2]
ro = json.load(sys.stdin)
tmpl = ro["spec"]["template"]
tmpl["metadata"]["labels"]["version"] = version
container = tmpl["spec"]["containers"][0]
env = [e for e in container.get("env", []) if e["name"] != "DEFAULT_FAULTS"]
if faults:
    env.append({"name": "DEFAULT_FAULTS", "value": faults})
container["env"] = env
json.dump(ro, sys.stdout)
' "$version" "$faults" \
  | kubectl --context "$ctx" replace -f -
echo "rollouts:canary: echo-rollout/echo -> version $version${faults:+ with faults $faults}; watch: task rollouts:status"
