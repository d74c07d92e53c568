"""Lab 7.1's Definition of Done, run for real on the canary Rollout (echo-rollout/echo):

1. a good canary starts, `x-user-type: beta` reaches the canary's version while it is
   paused at its first step, and promoted step by step it becomes the stable version;
2. a bad canary (20 % 503s) is aborted by its success-rate analysis on its own, and
   the traffic goes back to the stable version;
3. the Rollout is left Healthy on the stable version.

A canary stuck in a pause, an analysis that never aborts, and an A/B route that does
not reach the canary each fail their check. The canaries start as `task rollouts:canary`
starts them (scripts/deploy/rollout-canary.sh). VERIFY_POLL_SECS and VERIFY_CANARY_SECS
set how often the Rollout is read and how long each phase may take (defaults: 5 s,
15 min: three 2-minute pauses and their analysis with room to spare).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Callable, Optional

ROOT = Path(__file__).resolve().parents[2]
NS = "echo-rollout"
STABLE_URL = "http://echo-stable.echo-rollout.svc.cluster.local/"
BETA = ("x-user-type: beta",)


def poll_secs() -> float:
    return float(os.environ.get("VERIFY_POLL_SECS", "5"))


def within_secs() -> float:
    return float(os.environ.get("VERIFY_CANARY_SECS", "900"))


def state(k) -> dict:
    """The Rollout's phase, step, canary weight, abort flag and template version."""
    ro = k.json("us", "get", "rollout", "echo", ns=NS) or {}
    st = ro.get("status", {})
    return {
        "found": bool(ro),
        "phase": st.get("phase", ""),
        "step": st.get("currentStepIndex"),
        "weight": ((st.get("canary") or {}).get("weights") or {}).get("canary", {}).get("weight", 0),
        "abort": bool(st.get("abort")),
        "version": ro.get("spec", {}).get("template", {}).get("metadata", {}).get("labels", {}).get("version", ""),
        "message": st.get("message", ""),
    }


def describe(s: dict) -> str:
    return (f"phase={s['phase'] or '?'} step={s['step']} canaryWeight={s['weight']} abort={s['abort']}"
            + (f" message={s['message']}" if s["message"] else ""))


def wait(k, done: Callable[[dict], bool], *, each: Optional[Callable[[dict], None]] = None,
         stop: Optional[Callable[[dict], bool]] = None) -> tuple[bool, dict]:
    """Reads the Rollout until done (True), stop or the deadline (False); `each` acts on
    every reading that is neither (a promotion, say)."""
    deadline = time.monotonic() + within_secs()
    while True:
        s = state(k)
        if done(s):
            return True, s
        if (stop and stop(s)) or time.monotonic() >= deadline:
            return False, s
        if each:
            each(s)
        time.sleep(poll_secs())


def start(k, version: str, bad: bool = False) -> subprocess.CompletedProcess:
    argv = [str(ROOT / "scripts" / "deploy" / "rollout-canary.sh"), k.ctx["us"], version]
    return subprocess.run(argv + (["--bad"] if bad else []), capture_output=True, text=True, timeout=120,
                          check=False)


def promote(k, s: dict) -> None:
    """What `task rollouts:promote` does, at each pause."""
    if s["phase"] == "Paused":
        k.run("us", "patch", "rollout", "echo", "--subresource", "status", "--type", "merge",
              "-p", json.dumps({"status": {"pauseConditions": None, "controllerPause": False}}), ns=NS)


def versions(k, n: int, headers: tuple[str, ...] = ()) -> list[str]:
    return [(body or {}).get("version", f"HTTP {code}") for code, body, _ in
            (k.curl("us", STABLE_URL, headers=headers) for _ in range(n))]


def good_canary(k, c, canary: str) -> bool:
    proc = start(k, canary)
    if not c.record(proc.returncode == 0, f"canary {canary} started (task rollouts:canary VERSION={canary})",
                    "" if proc.returncode == 0 else (proc.stderr or proc.stdout).strip()[-300:]):
        return False
    ok, s = wait(k, lambda s: s["weight"] > 0 and s["phase"] in ("Paused", "Progressing"),
                 stop=lambda s: s["abort"] or s["phase"] == "Degraded")
    if not c.record(ok, f"canary {canary} takes traffic at its first step", describe(s)):
        return False
    seen = versions(k, 5, BETA)
    c.record(seen == [canary] * 5, f"x-user-type: beta reaches the canary's version {canary}",
             f"answered by {seen}" + ("" if seen == [canary] * 5 else "; is the ab-test route in the VirtualService?"))
    ok, s = wait(k, lambda s: s["phase"] == "Healthy" and s["version"] == canary, each=lambda s: promote(k, s),
                 stop=lambda s: s["abort"] or s["phase"] == "Degraded")
    return c.record(ok, f"canary {canary} promoted to 100 % and Healthy", describe(s))


def bad_canary(k, c, stable: str) -> None:
    proc = start(k, "bad", bad=True)
    if not c.record(proc.returncode == 0, "a bad canary started (task rollouts:canary BAD=1)",
                    "" if proc.returncode == 0 else (proc.stderr or proc.stdout).strip()[-300:]):
        return
    # Nobody promotes it: the analysis must abort it on its own.
    ok, s = wait(k, lambda s: s["abort"] or s["phase"] == "Degraded", stop=lambda s: s["phase"] == "Healthy")
    detail = describe(s)
    if not ok and s["phase"] == "Healthy":
        detail = "the bad canary was promoted: " + detail
    elif not ok:
        detail = f"no abort within {within_secs():.0f}s, the analysis is stuck (task rollouts:status): " + detail
    c.record(ok, "the bad canary is aborted by its analysis", detail)
    seen = versions(k, 5)
    c.record(ok and seen == [stable] * 5, f"after the abort, traffic is back on {stable}", f"answered by {seen}")
    # Back to the stable template: the Rollout is Healthy again without a new rollout.
    start(k, stable)
    ok, s = wait(k, lambda s: s["phase"] == "Healthy" and not s["abort"])
    c.record(ok, f"the Rollout is left Healthy on {stable}", describe(s))


def run(k, c) -> None:
    s = state(k)
    if not s["found"]:
        c.skip("canary Rollout (Lab 7.1)", "no Rollout echo in echo-rollout: task rollouts:install rollouts:deploy")
        return
    if not c.record(s["phase"] == "Healthy" and not s["abort"], "Rollout echo-rollout/echo is Healthy before the test",
                    describe(s) + ("" if s["phase"] == "Healthy" else "; finish it first (task rollouts:promote or "
                                   "rollouts:abort, then task rollouts:canary VERSION=<stable>)")):
        return
    canary = "v2" if s["version"] != "v2" else "v1"
    if good_canary(k, c, canary):
        bad_canary(k, c, canary)
