"""Every PromQL expression in deploy/ is valid (promtool), and a real Prometheus,
scraping real echo-svc processes under loadgen traffic, returns a number for each.

Expressions come from what the manifests render: the PrometheusRule's recording
rules and alerts, the Argo Rollouts AnalysisTemplate (its {{args.*}} filled with
their defaults) and the Grafana dashboard (its variables set to match all,
$__rate_interval to 1m, Grafana's label_values() turned into the count it
stands for). Prometheus labels the scraped series the way the ServiceMonitors'
podTargetLabels and Kubernetes would (job, namespace, region, version).
Envoy's istio_* metrics cannot be produced here (no sidecar); no manifest
query uses them today, and the test fails if one appears unhandled.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, free_port, loadgen_bin, start_echo, wait_http

sys.path.insert(0, str(ROOT / "scripts" / "check"))
import check_binaries  # noqa: E402  (promql_refs: the same list the binaries check reads)

SOURCES = ["deploy/overlays/us", "deploy/overlays/eu", "deploy/rollouts"]


def renders() -> dict[str, list[dict]]:
    out = {}
    for d in SOURCES:
        proc = subprocess.run(["kubectl", "kustomize", str(ROOT / d)], capture_output=True, text=True, check=True)
        out[d] = [x for x in yaml.safe_load_all(proc.stdout) if x]
    return out


def concrete(query: str, args: dict[str, str]) -> str:
    """The query as Prometheus receives it once Argo / Grafana filled it in."""
    q = re.sub(r"\{\{\s*args\.([\w-]+)\s*\}\}", lambda m: args[m.group(1)], query)
    q = q.replace("$__rate_interval", "1m").replace("$__interval", "15s")
    q = re.sub(r"\$\{?(region|version)\}?", ".*", q)
    m = re.fullmatch(r"\s*label_values\((.*),\s*(\w+)\)\s*", q, re.S)
    if m:
        q = f"count by ({m.group(2)}) ({m.group(1)})"
    return q


def expressions() -> list[tuple[str, str]]:
    rendered = renders()
    args = {}
    for docs in rendered.values():
        for d in docs:
            if d["kind"] == "AnalysisTemplate":
                args.update({a["name"]: a.get("value", "") for a in d["spec"].get("args", [])})
    seen, out = set(), []
    for where, q in check_binaries.promql_refs(rendered):
        cq = concrete(q, args)
        if cq not in seen:
            seen.add(cq)
            out.append((where, cq))
    return out


def rule_groups() -> list[dict]:
    for docs in renders().values():
        for d in docs:
            if d["kind"] == "PrometheusRule":
                return d["spec"]["groups"]
    raise AssertionError("no PrometheusRule rendered")


def promtool() -> str:
    exe = shutil.which("promtool")
    assert exe, "promtool is not installed (Debian package prometheus; scripts/install-tools.sh)"
    return exe


def test_every_expression_parses(tmp_path):
    exprs = expressions()
    assert len(exprs) >= 10
    assert not [q for _, q in exprs if "istio_" in q], "istio_* queries need an Envoy this test cannot run"
    rules = {"groups": [{"name": "manifest-queries",
                         "rules": [{"record": f"check:query_{i}", "expr": q} for i, (_, q) in enumerate(exprs)]}]}
    path = tmp_path / "queries.yml"
    path.write_text(yaml.safe_dump(rules))
    proc = subprocess.run([promtool(), "check", "rules", str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_prometheus_rule_is_valid_as_prometheus_loads_it(tmp_path):
    path = tmp_path / "echo.rules.yml"
    path.write_text(yaml.safe_dump({"groups": rule_groups()}))
    proc = subprocess.run([promtool(), "check", "rules", str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


def test_promtool_rejects_a_broken_expression(tmp_path):
    """The parse check above can fail: a typo in a query is caught."""
    path = tmp_path / "bad.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "g", "rules": [
        {"record": "x:y", "expr": 'sum by (region (rate(http_requests_total{job="echo"}[5m]))'}]}]}))
    assert subprocess.run([promtool(), "check", "rules", str(path)], capture_output=True).returncode != 0


def query(base: str, q: str) -> dict:
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": q})
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


def numbers(result: dict) -> list[float]:
    data = result.get("data", {})
    if data.get("resultType") == "vector":
        return [float(s["value"][1]) for s in data["result"]]
    if data.get("resultType") == "scalar":
        return [float(data["result"][1])]
    return []


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory):
    exe = shutil.which("prometheus")
    assert exe, "prometheus is not installed (Debian package prometheus; scripts/install-tools.sh)"
    tmp = tmp_path_factory.mktemp("prom")
    echoes = {("us", "v1"): start_echo("us", "v1"), ("eu", "v2"): start_echo("eu", "v2")}
    try:
        (tmp / "echo.rules.yml").write_text(yaml.safe_dump({"groups": rule_groups()}))
        scrape = []
        # job "echo" as the overlays' ServiceMonitor names it, and the canary
        # lab's Services (job = Service name, namespace echo-rollout).
        for job, ns in (("echo", "echo"), ("echo-canary", "echo-rollout"), ("echo-stable", "echo-rollout")):
            scrape.append({"job_name": job, "scrape_interval": "1s", "static_configs": [
                {"targets": [f"127.0.0.1:{e.port}"], "labels": {"namespace": ns, "region": r, "version": v}}
                for (r, v), e in echoes.items()]})
        cfg = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
               "rule_files": [str(tmp / "echo.rules.yml")], "scrape_configs": scrape}
        (tmp / "prometheus.yml").write_text(yaml.safe_dump(cfg))
        port = free_port()
        proc = subprocess.Popen([exe, f"--config.file={tmp / 'prometheus.yml'}", f"--storage.tsdb.path={tmp / 'data'}",
                                 f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
                                stdout=subprocess.DEVNULL, stderr=(tmp / "prom.log").open("w"))
        base = f"http://127.0.0.1:{port}"
        try:
            wait_http(f"{base}/-/ready", timeout=60)
            seed_series(base, echoes)
            # Traffic for the series to exist: a few hundred requests to each
            # region, some of them 503s so the error ratios have both sides.
            for (r, _), e in echoes.items():
                for path in ("/", "/?status=503:10"):
                    subprocess.run([str(loadgen_bin()), "--target", f"{r}=http://127.0.0.1:{e.port}{path}",
                                    "--rps", "100", "--duration", "3s", "--no-progress"],
                                   capture_output=True, timeout=60, check=False)
            yield base
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    finally:
        for e in echoes.values():
            e.stop()


def seed_series(base: str, echoes: dict) -> None:
    """One 200 and one 503 per instance, then wait until Prometheus has scraped both.

    rate() counts only increases between two scrapes of a series: a status series
    first scraped after all its requests (a scrape held up on a loaded machine)
    would read as no errors at all. Seeded first, every counted request is an
    increase Prometheus sees.
    """
    for e in echoes.values():
        for path in ("/", "/?status=503"):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{e.port}{path}", timeout=10).read()
            except urllib.error.HTTPError as err:
                assert err.code == 503, err
    want = 2 * len(echoes)
    q = 'count(http_requests_total{job="echo", route="/", status=~"200|503"})'
    got = eventually_numbers(base, q, until=lambda xs: xs == [float(want)])
    assert got == [float(want)], f"Prometheus never scraped the seeded series: {got}"


def eventually_numbers(base: str, q: str, timeout: float = 60, until=bool) -> list[float]:
    """Poll until Prometheus has scraped and evaluated enough to answer (bounded).

    `until` says when the answer is complete: the last traffic run ends just
    before the tests start, so its final scrape and the next rule evaluation
    may still be a second or two away; the last answer is returned either way.
    """
    deadline = time.monotonic() + timeout
    got: list[float] = []
    while time.monotonic() < deadline:
        result = query(base, q)
        assert result["status"] == "success", result
        got = [x for x in numbers(result) if not math.isnan(x)]
        if got and until(got):
            return got
        time.sleep(0.5)
    return got


@pytest.mark.parametrize("where,q", expressions(), ids=lambda x: x if len(x) < 60 else x[:57] + "...")
def test_real_prometheus_answers_each_query_with_a_number(prometheus, where, q):
    # An alert's expression is empty while it is not firing; what it compares
    # (the recorded series) must still be a number.
    m = re.fullmatch(r"\s*(.*?)\s*(>|<|>=|<=)\s*[0-9.]+\s*", q, re.S)
    probe = m.group(1) if m and ":" in m.group(1) else q
    got = eventually_numbers(prometheus, probe)
    assert got, f"{where}: no number for {probe}"
    assert all(math.isfinite(x) for x in got), (where, got)


def test_the_error_ratio_sees_the_injected_503s(prometheus):
    def both_regions_saw_errors(xs: list[float]) -> bool:
        return len(xs) == 2 and all(0.0 < x < 0.5 for x in xs)

    ratios = eventually_numbers(prometheus, "region:echo_request_error_ratio:5m", until=both_regions_saw_errors)
    assert len(ratios) == 2 and all(0.0 < x < 0.5 for x in ratios), ratios
