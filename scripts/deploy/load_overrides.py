#!/usr/bin/env python3
"""Apply one-off overrides to the rendered loadgen Job manifests (stdin -> stdout).

  LOAD_SLO='p99<1us'    replaces the SLO file (ConfigMap loadgen-slo-*) with these
                        SLOs, ';'-separated: how `task verify:lab9` forces a failure
  LOAD_DURATION=10s     replaces the Jobs' --duration value
  LOAD_RPS=300          replaces the Jobs' --rps value (a laptop's rate: `PLATFORM=kind`)

Without either variable the manifests pass through unchanged. Exit 1 when an
override finds nothing to apply to (a renamed ConfigMap or flag would otherwise
make the override silently do nothing).
"""
import os
import sys

import yaml

slo = os.environ.get("LOAD_SLO")
flags = {"--duration": os.environ.get("LOAD_DURATION"), "--rps": os.environ.get("LOAD_RPS")}
docs = [d for d in yaml.safe_load_all(sys.stdin) if d is not None]
hit_slo = False
hit = {flag: False for flag in flags}
for doc in docs:
    kind, name = doc.get("kind"), doc.get("metadata", {}).get("name", "")
    if slo and kind == "ConfigMap" and name.startswith("loadgen-slo"):
        doc["data"]["slo.txt"] = "".join(f"{s.strip()}\n" for s in slo.split(";") if s.strip())
        hit_slo = True
    if kind == "Job":
        for c in doc["spec"]["template"]["spec"]["containers"]:
            args = c.get("args", [])
            for i, a in enumerate(args[:-1]):
                if flags.get(a):
                    args[i + 1] = flags[a]
                    hit[a] = True
missing = [f for f, v in flags.items() if v and not hit[f]]
if (slo and not hit_slo) or missing:
    sys.exit("load_overrides: LOAD_SLO needs a ConfigMap loadgen-slo-*, LOAD_DURATION and LOAD_RPS a Job "
             f"with --duration and --rps (not found: {', '.join(missing) or 'the ConfigMap'})")
yaml.safe_dump_all(docs, sys.stdout, sort_keys=False)
