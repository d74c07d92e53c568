"""Our Helm values, rendered by the real charts at the versions the Taskfile pins.

`helm template` of istio/base, istio/istiod (each region), istio/gateway (each
region, and with the EKS values) and kiali/kiali-server, asserted on what the
course depends on. The charts are read from target/charts/<chart>-<version>
(`task charts:pull` puts them there from the charts' repositories; CHARTS
names another folder). Where they are absent (no chart repository reachable),
the tests say so and skip: nothing else here can stand in for a chart.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import ROOT

VALUES = ROOT / "deploy" / "istio" / "values"


def pinned(var: str) -> str:
    """A version the Taskfile pins (`VAR: 1.2.3` or `VAR: '{{.VAR | default "1.2.3"}}'`)."""
    text = (ROOT / "Taskfile.yml").read_text()
    m = re.search(rf"^  {var}: (?:'{{{{\.{var} \| default \"([^\"]+)\"}}}}'|(\S+))$", text, re.M)
    assert m, f"{var} is not pinned in Taskfile.yml"
    return m.group(1) or m.group(2)


def chart(name: str, var: str) -> Path:
    base = Path(os.environ.get("CHARTS", ROOT / "target" / "charts"))
    path = base / f"{name}-{pinned(var)}"
    if not (path / "Chart.yaml").is_file():
        pytest.skip(f"{path} is absent: `task charts:pull` fetches the pinned charts")
    return path


def template(release: str, chart_dir: Path, ns: str, *values: Path) -> list[dict]:
    helm = shutil.which("helm")
    assert helm, "helm is not installed (scripts/install-tools.sh)"
    args = [helm, "template", release, str(chart_dir), "-n", ns]
    for v in values:
        args += ["-f", str(v)]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


def find(docs: list[dict], kind: str, name: str | None = None) -> dict:
    hits = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert hits, f"no {kind} {name or ''} rendered"
    return hits[0]


def test_istio_base_renders_the_crds():
    docs = template("istio-base", chart("base", "ISTIO_VERSION"), "istio-system")
    crds = {d["metadata"]["name"] for d in docs if d["kind"] == "CustomResourceDefinition"}
    assert {"virtualservices.networking.istio.io", "serviceentries.networking.istio.io",
            "peerauthentications.security.istio.io"} <= crds, sorted(crds)


@pytest.mark.parametrize("region", ["us", "eu"])
def test_istiod_joins_one_mesh_on_its_own_network(region):
    docs = template("istiod", chart("istiod", "ISTIO_VERSION"), "istio-system",
                    VALUES / "istiod-common.yaml", VALUES / f"istiod-{region}.yaml")
    mesh = yaml.safe_load(find(docs, "ConfigMap", "istio")["data"]["mesh"])
    assert mesh["trustDomain"] == "corp.local"
    proxy = mesh["defaultConfig"]["proxyMetadata"]
    assert proxy["ISTIO_META_DNS_CAPTURE"] == "true"
    # Deprecated since Istio's own allocator (on by default) took over.
    assert "ISTIO_META_DNS_AUTO_ALLOCATE" not in proxy
    values = json.loads(find(docs, "ConfigMap", "istio-sidecar-injector")["data"]["values"])
    assert values["global"]["meshID"] == "training-mesh"
    assert values["global"]["network"] == f"{region}-net"
    assert values["global"]["multiCluster"]["clusterName"] == {"us": "prod-us-east-1", "eu": "prod-eu-west-1"}[region]
    env = {e["name"]: e.get("value") for e in find(docs, "Deployment", "istiod")["spec"]["template"]["spec"]
           ["containers"][0]["env"]}
    assert env["ENABLE_NATIVE_SIDECARS"] == "true"


@pytest.mark.parametrize("region", ["us", "eu"])
def test_the_east_west_gateway_is_a_network_gateway_on_15443(region):
    docs = template("istio-eastwestgateway", chart("gateway", "ISTIO_VERSION"), "istio-system",
                    VALUES / f"eastwest-{region}.yaml")
    svc = find(docs, "Service", "istio-eastwestgateway")
    assert svc["spec"]["type"] == "LoadBalancer"
    assert 15443 in [p["port"] for p in svc["spec"]["ports"]]
    # What the comment in eastwest-<region>.yaml says networkGateway renders.
    assert svc["metadata"]["labels"]["topology.istio.io/network"] == f"{region}-net"
    pod = find(docs, "Deployment", "istio-eastwestgateway")["spec"]["template"]
    assert pod["metadata"]["labels"]["topology.istio.io/network"] == f"{region}-net"
    assert pod["metadata"]["labels"]["istio"] == "eastwestgateway"
    env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0].get("env", [])}
    assert env.get("ISTIO_META_REQUESTED_NETWORK_VIEW") == f"{region}-net"
    # On kind nothing asks AWS for anything.
    assert not any("aws-load-balancer" in k for k in (svc["metadata"].get("annotations") or {}))


def test_on_eks_the_gateway_asks_for_an_internet_facing_nlb():
    docs = template("istio-eastwestgateway", chart("gateway", "ISTIO_VERSION"), "istio-system",
                    VALUES / "eastwest-us.yaml", VALUES / "eastwest-eks.yaml")
    notes = find(docs, "Service", "istio-eastwestgateway")["metadata"]["annotations"]
    assert notes["service.beta.kubernetes.io/aws-load-balancer-scheme"] == "internet-facing"
    assert notes["service.beta.kubernetes.io/aws-load-balancer-type"] == "external"
    assert notes["service.beta.kubernetes.io/aws-load-balancer-nlb-target-type"] == "ip"


def test_the_eks_values_reach_the_gateway_only_with_platform_eks():
    task = shutil.which("task")
    assert task, "go-task is not installed"
    env = dict(os.environ, NO_COLOR="1")
    for platform, present in (("kind", False), ("eks", True)):
        proc = subprocess.run([task, "--dry", "istio:gw:all", f"PLATFORM={platform}"], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        assert ("eastwest-eks.yaml" in proc.stdout + proc.stderr) is present, platform


def test_kiali_reads_the_mesh_config_from_istio_system():
    docs = template("kiali-server", chart("kiali-server", "KIALI_CHART_VERSION"), "observability",
                    ROOT / "deploy" / "observability" / "kiali-values.yaml")
    config = yaml.safe_load(find(docs, "ConfigMap", "kiali")["data"]["config.yaml"])
    istio = config["external_services"]["istio"]
    assert istio["root_namespace"] == "istio-system"
    assert config["istio_namespace"] == "istio-system"
    assert config["external_services"]["prometheus"]["url"].startswith(
        "http://kube-prometheus-stack-prometheus.observability.svc")
    assert config["auth"]["strategy"] == "anonymous"
