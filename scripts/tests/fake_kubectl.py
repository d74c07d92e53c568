#!/usr/bin/env python3
"""A stand-in for kubectl that replays answers from a tape (tests only).

FAKE_KUBECTL_TAPE names a JSON list of rules, tried in order:
  {"match": REGEX, "stdout": TEXT, "stderr": TEXT, "rc": N, "env": {VAR: VALUE}}
or, for an answer that changes between calls, "stdouts": [FIRST, SECOND, ...]
(the n-th matching call gets the n-th, the last one after that), and
"after": [REGEX, N] for an answer that holds only once N earlier calls matched
REGEX (their arguments and stdin, joined by spaces): a cluster's state after the
commands that changed it.
The first rule whose REGEX matches the call's arguments (joined by spaces) and
whose env entries all equal the caller's environment answers. A call no rule
matches exits 97, so a check that asks something unexpected fails loudly.
`kubectl kustomize ...` runs the real kubectl (REAL_KUBECTL). Every call is
appended to FAKE_KUBECTL_LOG as one JSON line, with what it read from stdin.
"""
import json
import os
import re
import sys

args = sys.argv[1:]
if args and args[0] == "kustomize":
    os.execv(os.environ["REAL_KUBECTL"], ["kubectl", *args])
stdin = ""
if "-" in args and not sys.stdin.isatty():
    stdin = sys.stdin.read()
line = " ".join(args)
log_path = os.environ["FAKE_KUBECTL_LOG"]
try:
    logged = [json.loads(x) for x in open(log_path)]
except FileNotFoundError:
    logged = []
earlier = [" ".join(x["args"]) for x in logged]
earlier_in = [" ".join(x["args"]) + " " + x.get("stdin", "") for x in logged]
with open(log_path, "a") as log:
    log.write(json.dumps({"args": args, "stdin": stdin}) + "\n")
for rule in json.load(open(os.environ["FAKE_KUBECTL_TAPE"])):
    after_ok = True
    if "after" in rule:
        pattern, count = rule["after"]
        after_ok = sum(1 for e in earlier_in if re.search(pattern, e, re.S)) >= count
    if after_ok and re.search(rule["match"], line, re.S) and \
            all(os.environ.get(k) == v for k, v in rule.get("env", {}).items()):
        if "stdouts" in rule:
            n = sum(1 for e in earlier if re.search(rule["match"], e, re.S))
            sys.stdout.write(rule["stdouts"][min(n, len(rule["stdouts"]) - 1)])
        sys.stdout.write(rule.get("stdout", ""))
        sys.stderr.write(rule.get("stderr", ""))
        sys.exit(rule.get("rc", 0))
sys.stderr.write(f"fake kubectl: no answer recorded for: kubectl {line}\n")
sys.exit(97)
