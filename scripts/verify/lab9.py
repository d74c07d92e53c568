"""Lab 9's Definition of Done: the loadgen Job passes its SLOs in both clusters, its
latency compares in-region with cross-region (p95, p99), and a forced SLO failure fails
the Job once, with its JSON collected.

The rate follows the platform (`task verify:lab9 PLATFORM=...`): the course's 5000 rps per
cluster on real clusters, and a laptop's few hundred on kind, where six nodes also carry
Istio, two Prometheus stacks, Kiali, Argo CD and Chaos Mesh. LOAD_RPS overrides either.
When loadgen reports that it, not the service, limited the run (its pool, its CPU: on a
laptop, the laptop), the check says that, not that the mesh failed.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RATES = {"kind": 300, "eks": 5000}


def latency_by_target(doc: dict) -> dict[str, tuple[int, int, int]]:
    """Per target, (answers, p95 µs, p99 µs) of its busiest 2xx group: the version that
    took most of the traffic (v1 at 90/10), so the two targets compare like for like."""
    best: dict[str, tuple[int, int, int]] = {}
    for g in doc.get("groups", []):
        if g.get("status_class") != "2xx":
            continue
        s = g.get("corrected", {})
        row = (s.get("count", 0), s.get("p95", 0), s.get("p99", 0))
        if row[0] > best.get(g["target"], (0, 0, 0))[0]:
            best[g["target"]] = row
    return best


def compare_regions(c, doc: dict, region: str, label: str) -> None:
    other = "eu" if region == "us" else "us"
    lat = latency_by_target(doc)
    here, there = lat.get(region), lat.get(other)
    ms = lambda us: f"{us / 1000:.1f}ms"  # noqa: E731
    detail = "; ".join(f"{name} ({'in-region' if name == region else 'cross-region'}) p95 {ms(v[1])} "
                       f"p99 {ms(v[2])} over {v[0]}" for name, v in ((region, here), (other, there)) if v)
    c.record(bool(here and there), f"{label}: in-region vs cross-region latency", detail or "no 2xx answers")


def generator_limit(c, doc: dict, label: str, rate: int) -> bool:
    """Records whether loadgen limited the run itself; True when it did."""
    limits = doc.get("limits") or []
    if not doc.get("generator_limited") and not limits:
        c.record(True, f"{label}: the generator kept up ({rate} rps); the latency is the mesh's")
        return False
    why = "; ".join(f"{x.get('target')}: {', '.join(x.get('reasons', []))} ({x.get('advice', '')})" for x in limits)
    c.record(False, f"{label}: loadgen (this machine), not the mesh, limited the run at {rate} rps",
             f"{why or 'generator_limited'}; lower the rate (LOAD_RPS) or give the nodes more CPU")
    return True


def judge_result(c, path: Path, want_exit: int, label: str, region: str | None = None, rate: int = 0) -> None:
    try:
        doc = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        c.record(False, f"{label}: JSON result collected", str(err))
        return
    c.record(doc.get("format") == "loadgen-report-v1", f"{label}: JSON result collected", path.name)
    slos = doc.get("slos", [])
    failed = [s["slo"] for s in slos if not s.get("pass")]
    limited = want_exit == 0 and generator_limit(c, doc, label, rate)
    # A run loadgen itself limited says nothing of the mesh's SLOs.
    mesh_failed = [s for s in failed if not s.startswith("generator_limited")]
    if not limited:
        c.record(doc.get("exit_code") == want_exit and (bool(failed) == (want_exit == 99)),
                 f"{label}: exit {doc.get('exit_code')}, SLOs " + ("all passed" if not failed else
                                                                  f"failed: {', '.join(mesh_failed or failed)}"))
    if want_exit == 0:
        regions = {g.get("region") for g in doc.get("groups", [])}
        c.record({"us", "eu"} <= regions, f"{label}: both regions answered (in-region and cross-region)",
                 f"regions seen: {sorted(r for r in regions if r)}")
        if region:
            compare_regions(c, doc, region, label)


def run(k, c, args) -> None:
    out = Path(args.results)
    out.mkdir(parents=True, exist_ok=True)
    rate = int(os.environ.get("LOAD_RPS") or RATES[args.platform])
    print(f"lab9: {rate} rps per cluster (PLATFORM={args.platform}"
          + (", LOAD_RPS" if os.environ.get("LOAD_RPS") else "")
          + ("; a laptop's rate: PLATFORM=eks runs the course's 5000" if args.platform == "kind" else "") + ")",
          flush=True)
    env = dict(os.environ, LOAD_RPS=str(rate))
    runner = str(ROOT / "scripts" / "deploy" / "load-run.sh")
    runs = {r: subprocess.Popen([runner, k.ctx[r], r, "single", str(out / "pass")], cwd=ROOT, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            for r in ("us", "eu")}
    for region, proc in runs.items():
        log, _ = proc.communicate(timeout=1500)
        files = sorted((out / "pass").glob(f"{region}-*.json"))
        c.record(proc.returncode == 0 or bool(files), f"{k.ctx[region]}: loadgen Job ran to the end",
                 f"exit {proc.returncode}: {log.strip().splitlines()[-1] if log.strip() else ''}")
        if c.record(bool(files), f"{k.ctx[region]}: result collected", str(files[0]) if files else "none"):
            judge_result(c, files[0], 0, k.ctx[region], region, rate)
    forced_failure(k, c, out, env)


def forced_failure(k, c, out: Path, env: dict) -> None:
    """A forced SLO failure: the Job must fail at once (no retry) and its JSON must still
    be collected."""
    fail_dir = out / "forced-fail"
    env = dict(env, LOAD_SLO="p99<1us", LOAD_DURATION="10s")
    runner = str(ROOT / "scripts" / "deploy" / "load-run.sh")
    proc = subprocess.run([runner, k.ctx["us"], "us", "single", str(fail_dir)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=1500)
    c.record(proc.returncode == 99, "forced SLO failure (p99<1us): load-run exits 99", f"exit {proc.returncode}")
    job = k.json("us", "get", "job", "loadgen", ns="echo") or {}
    status = job.get("status", {})
    reasons = {x.get("reason") for x in status.get("conditions", [])
               if x.get("type") == "Failed" and x.get("status") == "True"}
    c.record("PodFailurePolicy" in reasons, "the Job failed by its podFailurePolicy (exit 99)",
             f"reasons {sorted(r for r in reasons if r)}")
    pods = (k.json("us", "get", "pods", "-l", "job-name=loadgen", ns="echo") or {}).get("items", [])
    c.record(status.get("failed") == 1 and len(pods) == 1, "no retry: one pod ran",
             f"failed={status.get('failed')} pods={len(pods)}")
    files = sorted(fail_dir.glob("us-*.json"))
    if c.record(bool(files), "the failed run's JSON was collected", str(files[0]) if files else "none"):
        judge_result(c, files[0], 99, "forced failure")
