#!/usr/bin/env python3
"""Print the JSON result document found in a loadgen pod's log (stdin).

The Jobs run loadgen with `--json /dev/stdout`, so the log holds the JSON
result, possibly between human-readable lines. The last top-level JSON object
that starts at the beginning of a line is taken. Exit 1 if there is none.
"""
import json
import sys

text = sys.stdin.read()
decoder = json.JSONDecoder()
found = None
pos = 0
while True:
    start = text.find("{", pos)
    if start < 0:
        break
    if start == 0 or text[start - 1] == "\n":
        try:
            obj, end = decoder.raw_decode(text, start)
            if isinstance(obj, dict):
                found = obj
            pos = end
            continue
        except json.JSONDecodeError:
            pass
    pos = start + 1
if found is None:
    sys.exit("extract_json: no JSON object at the start of a line in the log")
json.dump(found, sys.stdout)
sys.stdout.write("\n")
