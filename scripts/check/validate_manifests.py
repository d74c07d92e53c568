#!/usr/bin/env python3
"""Render every kustomization under deploy/ and validate every document, offline.

* Each directory holding a kustomization.yaml is rendered with `kubectl kustomize`
  (Kustomize Components are skipped: they only render inside an overlay).
* Each rendered document is validated against a schema:
  - kinds whose API group has a directory in deploy/schemas/ (CRDs: Istio, Argo,
    Chaos Mesh, Prometheus Operator) with jsonschema's Draft 4 validator;
  - all other kinds with kubernetes-validate in strict mode (unknown fields are
    errors), against the Kubernetes version in K8S_VERSION (default 1.32).
  A kind with no schema anywhere is an error, never a skip.
* Cross-document checks that no schema can express (see `consistency_checks`).

Rendered files are written to --out (one file per kustomization, named after its
path) so later steps (checkov, the binaries check) scan exactly what was checked.

`--files F...` validates given YAML files instead of rendering; the self-test uses
it to prove that broken documents are rejected.

Exit status: 0 when everything passed, 1 when any check failed, 2 on usage errors.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

try:
    import jsonschema
    import kubernetes_validate
    import yaml
except ImportError as err:  # pragma: no cover - environment problem
    sys.exit(f"validate_manifests: missing Python package ({err}); "
             "install with: pip install kubernetes-validate jsonschema pyyaml")

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
SCHEMAS = DEPLOY / "schemas"
K8S_VERSION = os.environ.get("K8S_VERSION", "1.32.0")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "deploy"))
import course_config  # noqa: E402  (deploy/config.env and what follows from it)


class Report:
    """Collects results so a run shows every problem, not only the first."""

    def __init__(self) -> None:
        self.passed = 0
        self.errors: list[str] = []

    def ok(self) -> None:
        self.passed += 1

    def fail(self, msg: str) -> None:
        self.errors.append(msg)
        print(f"  FAIL {msg}", flush=True)


def kustomization_dirs() -> list[Path]:
    dirs = []
    for path in sorted(DEPLOY.rglob("kustomization.y*ml")):
        if SCHEMAS in path.parents:
            continue
        doc = yaml.safe_load(path.read_text()) or {}
        if doc.get("kind") == "Component":
            continue
        dirs.append(path.parent)
    return dirs


def deployable_kustomizations(dirs: list[str]) -> list[str]:
    """The kustomizations applied to clusters: those no other one includes.

    Bases (base/, base/v1, load/base, ...) are covered by the overlays that
    include them, so image pins and the security scan look at these only.
    """
    included = set()
    for d in dirs:
        doc = yaml.safe_load((ROOT / d / "kustomization.yaml").read_text()) or {}
        for entry in (doc.get("resources") or []) + (doc.get("components") or []):
            target = (ROOT / d / entry).resolve()
            if target.is_dir():
                included.add(str(target.relative_to(ROOT)))
    return [d for d in dirs if d not in included]


def render(directory: Path, out: Path, report: Report) -> list[dict] | None:
    rel = directory.relative_to(ROOT)
    proc = subprocess.run(["kubectl", "kustomize", str(directory)],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        report.fail(f"{rel}: kubectl kustomize failed: {proc.stderr.strip()}")
        return None
    report.ok()
    target = out / (str(rel).replace("/", "__") + ".yaml")
    target.write_text(proc.stdout)
    docs = [d for d in yaml.safe_load_all(proc.stdout) if d is not None]
    print(f"  ok   {rel}: rendered {len(docs)} documents -> {target.name}")
    return docs


def crd_schema(api_version: str, kind: str) -> Path | None:
    """The deploy/schemas file for a CRD kind, or None for non-CRD groups.

    A group with a schema directory but no file for this kind/version still
    returns the (missing) path, so the caller reports it as an error.
    """
    if "/" not in api_version:
        return None
    group, version = api_version.split("/", 1)
    if not (SCHEMAS / group).is_dir():
        return None
    return SCHEMAS / group / f"{kind.lower()}_{version}.json"


_SCHEMA_CACHE: dict[Path, dict] = {}


def validate_doc(doc: dict, where: str, report: Report) -> None:
    if not isinstance(doc, dict) or "apiVersion" not in doc or "kind" not in doc:
        report.fail(f"{where}: not a Kubernetes object (no apiVersion/kind)")
        return
    api_version, kind = doc["apiVersion"], doc["kind"]
    name = (doc.get("metadata") or {}).get("name", "<unnamed>")
    label = f"{where}: {kind}/{name} ({api_version})"
    schema_path = crd_schema(api_version, kind)
    if schema_path is not None:
        if not schema_path.is_file():
            report.fail(f"{label}: no schema for this kind "
                        f"(expected {schema_path.relative_to(ROOT)})")
            return
        schema = _SCHEMA_CACHE.get(schema_path)
        if schema is None:
            schema = json.loads(schema_path.read_text())
            _SCHEMA_CACHE[schema_path] = schema
        errors = sorted(jsonschema.Draft4Validator(schema).iter_errors(doc),
                        key=lambda e: list(e.absolute_path))
        if errors:
            for err in errors[:5]:
                path = ".".join(str(p) for p in err.absolute_path) or "<root>"
                report.fail(f"{label}: {path}: {err.message}")
            return
        report.ok()
        return
    try:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    except kubernetes_validate.SchemaNotFoundError:
        report.fail(f"{label}: no schema for this kind (not a Kubernetes {K8S_VERSION} "
                    f"kind, and no CRD schema under deploy/schemas/)")
        return
    except kubernetes_validate.ValidationError as err:
        path = ".".join(str(p) for p in err.path) or "<root>"
        report.fail(f"{label}: {path}: {err.message}")
        return
    report.ok()


# --- cross-document checks -------------------------------------------------------

def workspace_version() -> str:
    text = (ROOT / "Cargo.toml").read_text()
    match = re.search(r"^\[workspace\.package\][^\[]*?^version\s*=\s*\"([^\"]+)\"",
                      text, re.M | re.S)
    if not match:
        raise SystemExit("validate_manifests: no [workspace.package] version in Cargo.toml")
    return match.group(1)


def pod_specs(doc: dict):
    """(container list, pod spec) for the workload kinds we ship."""
    kind = doc.get("kind")
    spec = doc.get("spec") or {}
    if kind in ("Deployment", "Rollout", "Job", "StatefulSet", "DaemonSet"):
        pod = ((spec.get("template") or {}).get("spec")) or {}
        return pod
    return None


def duration_seconds(text: str) -> float:
    total = 0.0
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    for num, unit in re.findall(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h)", text):
        total += float(num) * units[unit]
    return total


def check_images(renders: dict[str, list[dict]], report: Report) -> None:
    """Images: ours are <IMAGE_REPO from deploy/config.env>/<name>:<the tag in
    deploy/components/images>; anyone else's are pinned to a version (never latest, never
    untagged), since pods use IfNotPresent."""
    deployable = {k: renders[k] for k in deployable_kustomizations(list(renders))}
    try:
        repo = course_config.read_env()["IMAGE_REPO"]
        tag = course_config.deployed_tag()
    except course_config.ConfigError as err:
        report.fail(str(err))
        return
    ours = {f"{repo}/echo-svc:{tag}", f"{repo}/loadgen:{tag}"}
    for where, docs in deployable.items():
        for doc in docs:
            pod = pod_specs(doc)
            if pod is None:
                continue
            for c in pod.get("containers", []) + pod.get("initContainers", []):
                image = c.get("image", "")
                name = image.rsplit("/", 1)[-1].split(":")[0]
                label = f"{where}: {doc['kind']}/{doc['metadata']['name']}: image {image!r}"
                if name in ("echo-svc", "loadgen"):
                    if image not in ours:
                        report.fail(f"{label} is not one of {sorted(ours)} (deploy/config.env and "
                                    f"deploy/components/images; every overlay must use the component)")
                        continue
                elif not re.fullmatch(r"[^:@\s]+(:[0-9][\w.-]*|@sha256:[0-9a-f]{64})", image):
                    report.fail(f"{label} is not pinned to a version tag or digest")
                    continue
                if c.get("imagePullPolicy") != "IfNotPresent":
                    report.fail(f"{label}: imagePullPolicy must be IfNotPresent (tags are immutable, "
                                f"and `kind load` images must be used)")
                    continue
                report.ok()
    for problem in course_config.disagreements():
        report.fail(f"{problem} (run `task config:apply`)")


def check_grace_periods(where: str, by_kind: dict[str, list[dict]], report: Report) -> None:
    """Grace period outlasts the drain (echo's DRAIN_DELAY + SHUTDOWN_TIMEOUT)."""
    for doc in by_kind.get("Deployment", []) + by_kind.get("Rollout", []):
        pod = pod_specs(doc) or {}
        for c in pod.get("containers", []):
            env = {e["name"]: e.get("value") for e in c.get("env", [])}
            if "DRAIN_DELAY" in env or "SHUTDOWN_TIMEOUT" in env:
                need = duration_seconds(env.get("DRAIN_DELAY") or "5s") + \
                    duration_seconds(env.get("SHUTDOWN_TIMEOUT") or "10s")
                grace = pod.get("terminationGracePeriodSeconds", 30)
                if grace <= need:
                    report.fail(f"{where}: {doc['kind']}/{doc['metadata']['name']}: "
                                f"terminationGracePeriodSeconds {grace} <= drain+shutdown {need}s")
                else:
                    report.ok()


def check_service_ports(where: str, docs: list[dict], by_kind: dict[str, list[dict]], report: Report) -> None:
    """Services' named targetPorts exist on the pods they select."""
    for svc in by_kind.get("Service", []):
        selector = (svc.get("spec") or {}).get("selector") or {}
        pods = []
        for doc in docs:
            pod = pod_specs(doc)
            labels = (((doc.get("spec") or {}).get("template") or {}).get("metadata") or {}).get("labels") or {}
            if pod is not None and all(labels.get(k) == v for k, v in selector.items()):
                pods.append(pod)
        if not pods:
            continue
        for port in svc["spec"].get("ports", []):
            tp = port.get("targetPort")
            if isinstance(tp, str):
                names = {p.get("name") for pod in pods for c in pod["containers"] for p in c.get("ports", [])}
                if tp not in names:
                    report.fail(f"{where}: Service/{svc['metadata']['name']}: targetPort {tp!r} "
                                f"is not a container port name of the selected pods {sorted(names)}")
                else:
                    report.ok()


def check_jobs(where: str, by_kind: dict[str, list[dict]], report: Report) -> None:
    """Indexed Job: the N in --shard $(...)/N equals spec.completions."""
    for job in by_kind.get("Job", []):
        spec = job["spec"]
        args = " ".join(spec["template"]["spec"]["containers"][0].get("args", []))
        match = re.search(r"--shard[ =]\S*/(\d+)", args)
        if spec.get("completionMode") == "Indexed":
            if not match or int(match.group(1)) != spec.get("completions"):
                report.fail(f"{where}: Job/{job['metadata']['name']}: --shard total "
                            f"{match.group(1) if match else 'missing'} != completions {spec.get('completions')}")
            else:
                report.ok()
        rules = ((spec.get("podFailurePolicy") or {}).get("rules")) or []
        fails_on_99 = any(r.get("action") == "FailJob" and 99 in r.get("onExitCodes", {}).get("values", [])
                          for r in rules)
        if spec.get("backoffLimit") != 0 or not fails_on_99:
            report.fail(f"{where}: Job/{job['metadata']['name']}: needs backoffLimit 0 and a "
                        f"podFailurePolicy failing the Job on exit code 99")
        else:
            report.ok()


def check_rollout_matches_deployment(renders: dict[str, list[dict]], report: Report) -> None:
    """The canary lab's Rollout runs the same pod as the v1 Deployment (rollouts/rollout.yaml
    was generated from it); only the pod-template hash key of the spread constraints differs."""
    rollout = next((d for d in renders.get("deploy/rollouts", []) if d["kind"] == "Rollout"), None)
    deployment = next((d for d in renders.get("deploy/overlays/us", []) if d["kind"] == "Deployment"
                       and d["spec"]["template"]["metadata"]["labels"].get("version") == "v1"), None)
    if rollout and deployment:
        a = json.loads(json.dumps(rollout["spec"]["template"]["spec"]))
        b = json.loads(json.dumps(deployment["spec"]["template"]["spec"]))
        for spec in (a, b):
            # A bad canary committed for Lab 7.1 (`task rollouts:canary:git BAD=1`) adds
            # its faults; that is the lab, not drift.
            for c in spec.get("containers", []):
                c["env"] = [e for e in c.get("env", []) if e.get("name") != "DEFAULT_FAULTS"]
            for t in spec.get("topologySpreadConstraints", []):
                t.pop("matchLabelKeys", None)
                t.pop("labelSelector", None)
        if a != b:
            diff = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
            report.fail(f"deploy/rollouts: the Rollout's pod spec differs from deploy/overlays/us's v1 "
                        f"Deployment in {diff}; regenerate rollouts/rollout.yaml")
        else:
            report.ok()


def check_argocd(renders: dict[str, list[dict]], report: Report) -> None:
    """Argo CD: the ApplicationSet's paths exist, its repo is allowed by the AppProject, and the
    project admits every kind the overlays render."""
    argocd = renders.get("deploy/argocd", [])
    appsets = [d for d in argocd if d["kind"] == "ApplicationSet"]
    projects = {d["metadata"]["name"]: d for d in argocd if d["kind"] == "AppProject"}
    for appset in appsets:
        tmpl = appset["spec"]["template"]["spec"]
        regions = []
        for gen in appset["spec"]["generators"]:
            for expr in gen.get("clusters", {}).get("selector", {}).get("matchExpressions", []):
                if expr["key"] == "region":
                    regions += expr["values"]
        project = projects.get(tmpl["project"])
        if project is None:
            report.fail(f"deploy/argocd: ApplicationSet uses unknown project {tmpl['project']!r}")
            continue
        if tmpl["source"]["repoURL"] not in project["spec"]["sourceRepos"]:
            report.fail("deploy/argocd: ApplicationSet repoURL not in the AppProject's sourceRepos")
        allowed = {(w["group"], w["kind"]) for w in project["spec"].get("namespaceResourceWhitelist", [])}
        allowed |= {(w["group"], w["kind"]) for w in project["spec"].get("clusterResourceWhitelist", [])}
        for region in regions:
            path = re.sub(r"\{\{\s*\.metadata\.labels\.region\s*\}\}", region, tmpl["source"]["path"])
            if path not in renders:
                report.fail(f"deploy/argocd: ApplicationSet path {path!r} for region {region} "
                            f"is not a kustomization")
                continue
            report.ok()
            for doc in renders[path]:
                group = doc["apiVersion"].split("/")[0] if "/" in doc["apiVersion"] else ""
                if (group, doc["kind"]) not in allowed:
                    report.fail(f"{path}: {doc['kind']} ({group or 'core'}) is not admitted by "
                                f"AppProject/{project['metadata']['name']}")
                else:
                    report.ok()


def check_istio_values(report: Report) -> None:
    """Istio values: one mesh, one trust domain, each cluster's network matching its east-west
    gateway; the gateway values set only what the chart's networkGateway does not already
    render."""
    values = DEPLOY / "istio" / "values"
    common = yaml.safe_load((values / "istiod-common.yaml").read_text())
    if common.get("global", {}).get("meshID") != "training-mesh" or \
            common.get("meshConfig", {}).get("trustDomain") != "corp.local":
        report.fail("deploy/istio/values/istiod-common.yaml: meshID must be training-mesh and "
                    "trustDomain corp.local")
    else:
        report.ok()
    for region in ("us", "eu"):
        istiod = yaml.safe_load((values / f"istiod-{region}.yaml").read_text())
        eastwest = yaml.safe_load((values / f"eastwest-{region}.yaml").read_text())
        net = istiod["global"]["network"]
        if net != f"{region}-net" or eastwest.get("networkGateway") != net:
            report.fail(f"deploy/istio/values: {region}: network names disagree "
                        f"(istiod {net}, gateway {eastwest.get('networkGateway')})")
        else:
            report.ok()
        repeated = [k for k, present in (
            ("labels.topology.istio.io/network", "topology.istio.io/network" in (eastwest.get("labels") or {})),
            ("env.ISTIO_META_REQUESTED_NETWORK_VIEW", "ISTIO_META_REQUESTED_NETWORK_VIEW" in (eastwest.get("env") or {})),
            ("service.ports", "ports" in (eastwest.get("service") or {})),
        ) if present]
        if repeated:
            report.fail(f"deploy/istio/values/eastwest-{region}.yaml: {', '.join(repeated)} repeat what "
                        f"networkGateway renders")
        else:
            report.ok()


def check_cross_region(renders: dict[str, list[dict]], report: Report) -> None:
    """Cross-region wiring per overlay: echo-local names this region, echo-remote and its
    DestinationRule name the other one (host and SNI), and the gateway address is a real address
    or the unlinked placeholder."""
    for region, other in (("us", "eu"), ("eu", "us")):
        docs = renders.get(f"deploy/overlays/{region}", [])
        by_name = {(d["kind"], d["metadata"]["name"]): d for d in docs}
        local = by_name.get(("ServiceEntry", "echo-local"), {}).get("spec", {})
        remote = by_name.get(("ServiceEntry", "echo-remote"), {}).get("spec", {})
        rule = by_name.get(("DestinationRule", "echo-remote"), {}).get("spec", {})
        host = f"echo.{other}.mesh.local"
        problems = []
        if local.get("hosts") != [f"echo.{region}.mesh.local"]:
            problems.append(f"echo-local hosts {local.get('hosts')}")
        if remote.get("hosts") != [host]:
            problems.append(f"echo-remote hosts {remote.get('hosts')}")
        if rule.get("host") != host or rule.get("trafficPolicy", {}).get("tls", {}) != {
                "mode": "ISTIO_MUTUAL", "sni": f"outbound_.80_._.{host}"}:
            problems.append(f"DestinationRule echo-remote host/tls {rule.get('host')} "
                            f"{rule.get('trafficPolicy', {}).get('tls')}")
        endpoints = remote.get("endpoints", [])
        if len(endpoints) != 1 or endpoints[0].get("ports", {}).get("http") != 15443:
            problems.append("echo-remote needs exactly one endpoint on port 15443")
        else:
            addr = endpoints[0].get("address", "")
            if addr != f"eastwest.{other}.unlinked.invalid":
                try:
                    course_config.check_address(addr)
                except course_config.ConfigError as err:
                    problems.append(str(err))
            if endpoints[0].get("labels", {}).get("security.istio.io/tlsMode") != "istio":
                problems.append("echo-remote's endpoint lacks security.istio.io/tlsMode: istio")
        if problems:
            report.fail(f"deploy/overlays/{region}: " + "; ".join(problems))
        else:
            report.ok()


def check_observability_namespace(renders: dict[str, list[dict]], report: Report) -> None:
    """Everything that reaches Prometheus names the namespace it runs in
    (deploy/observability/namespace.yaml), never another one."""
    obs_ns = yaml.safe_load((DEPLOY / "observability" / "namespace.yaml").read_text())["metadata"]["name"]
    for where, docs in renders.items():
        for doc in docs:
            if doc["kind"] == "AnalysisTemplate":
                for arg in doc["spec"].get("args", []):
                    m = re.search(r"\.([a-z0-9-]+)\.svc", str(arg.get("value", "")))
                    if m and m.group(1) != obs_ns:
                        report.fail(f"{where}: AnalysisTemplate/{doc['metadata']['name']}: Prometheus in "
                                    f"namespace {m.group(1)}, not {obs_ns}")
                    elif m:
                        report.ok()
            if doc["kind"] == "NetworkPolicy":
                text = json.dumps(doc)
                if '"monitoring"' in text:
                    report.fail(f"{where}: NetworkPolicy/{doc['metadata']['name']} admits namespace "
                                f"monitoring; Prometheus runs in {obs_ns}")


def consistency_checks(renders: dict[str, list[dict]], report: Report) -> None:
    """What must agree across the rendered manifests, one check each."""
    check_images(renders, report)
    for where, docs in renders.items():
        by_kind: dict[str, list[dict]] = {}
        for doc in docs:
            by_kind.setdefault(doc["kind"], []).append(doc)
        check_grace_periods(where, by_kind, report)
        check_service_ports(where, docs, by_kind, report)
        check_jobs(where, by_kind, report)
    check_rollout_matches_deployment(renders, report)
    check_argocd(renders, report)
    check_istio_values(report)
    check_cross_region(renders, report)
    check_observability_namespace(renders, report)


def applications_admitted(renders: dict[str, list[dict]], report: Report) -> None:
    """Each plain Application (the canary lab's) deploys a kustomization that exists,
    from a repo and to a destination its AppProject allows, and only kinds it admits."""
    argocd = renders.get("deploy/argocd", [])
    projects = {d["metadata"]["name"]: d for d in argocd if d["kind"] == "AppProject"}
    for app in (d for d in argocd if d["kind"] == "Application"):
        spec, name = app["spec"], app["metadata"]["name"]
        project = projects.get(spec["project"])
        path = spec["source"]["path"]
        if project is None or path not in renders:
            report.fail(f"deploy/argocd: Application/{name}: project {spec['project']!r} or path {path!r} missing")
            continue
        dest = spec["destination"]
        allowed_dest = any(d.get("name") == dest.get("name") and d.get("namespace") == dest.get("namespace")
                           for d in project["spec"]["destinations"])
        if spec["source"]["repoURL"] not in project["spec"]["sourceRepos"] or not allowed_dest:
            report.fail(f"deploy/argocd: Application/{name}: repo or destination not allowed by its AppProject")
            continue
        kinds = {(w["group"], w["kind"]) for key in ("namespaceResourceWhitelist", "clusterResourceWhitelist")
                 for w in project["spec"].get(key, [])}
        for doc in renders[path]:
            group = doc["apiVersion"].split("/")[0] if "/" in doc["apiVersion"] else ""
            if (group, doc["kind"]) in kinds:
                report.ok()
            else:
                report.fail(f"{path}: {doc['kind']} ({group or 'core'}) is not admitted by "
                            f"AppProject/{project['metadata']['name']} (Application/{name})")


def envoys_scrapable(renders: dict[str, list[dict]], report: Report) -> None:
    """Every meshed pod's Envoy answers Prometheus: a NetworkPolicy that selects the pod
    admits namespace observability on 15090 (the envoy-stats PodMonitor) and 15020.
    Without it the client pods' targets are DOWN and Kiali draws no cross-region edge."""
    for where, docs in renders.items():
        policies = [d for d in docs if d["kind"] == "NetworkPolicy"]
        for doc in docs:
            pod = pod_specs(doc)
            if pod is None or not policies:
                continue
            spec = doc["spec"].get("jobTemplate", {}).get("spec", doc["spec"])
            meta = spec.get("template", {}).get("metadata", {})
            labels = meta.get("labels") or {}
            if (meta.get("annotations") or {}).get("sidecar.istio.io/inject") == "false" \
                    or labels.get("sidecar.istio.io/inject") == "false":
                continue  # no Envoy to scrape
            selecting = [p for p in policies if selects(p["spec"].get("podSelector", {}), labels)]
            if not selecting:
                continue
            for port in (15090, 15020):
                if not any(admits(p, "observability", port) for p in selecting):
                    report.fail(f"{where}: {doc['kind']}/{doc['metadata']['name']}: no NetworkPolicy "
                                f"admits observability on {port} (Envoy's metrics)")
                else:
                    report.ok()


def selects(selector: dict, labels: dict) -> bool:
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for e in selector.get("matchExpressions") or []:
        have = labels.get(e["key"])
        if e["operator"] == "In" and have not in e.get("values", []):
            return False
        if e["operator"] == "NotIn" and have in e.get("values", []):
            return False
        if e["operator"] == "Exists" and have is None:
            return False
        if e["operator"] == "DoesNotExist" and have is not None:
            return False
    return True


def admits(policy: dict, namespace: str, port: int) -> bool:
    for rule in policy["spec"].get("ingress") or []:
        ports = [p.get("port") for p in rule.get("ports") or []]
        if ports and port not in ports:
            continue
        for peer in rule.get("from") or [{}]:
            ns = peer.get("namespaceSelector")
            if ns is None and peer:
                continue
            if ns is None or selects(ns, {"kubernetes.io/metadata.name": namespace}):
                return True
    return False


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, help="directory for the rendered manifests")
    parser.add_argument("--files", nargs="+", type=Path,
                        help="validate these YAML files instead of rendering deploy/")
    args = parser.parse_args()
    report = Report()

    if args.files:
        for file in args.files:
            try:
                docs = [d for d in yaml.safe_load_all(file.read_text()) if d is not None]
            except (OSError, yaml.YAMLError) as err:
                report.fail(f"{file}: cannot read YAML: {err}")
                continue
            for doc in docs:
                validate_doc(doc, str(file), report)
    else:
        if args.out is None:
            parser.error("--out is required when rendering deploy/")
        args.out.mkdir(parents=True, exist_ok=True)
        renders: dict[str, list[dict]] = {}
        print("render: kubectl kustomize")
        for directory in kustomization_dirs():
            docs = render(directory, args.out, report)
            if docs is not None:
                renders[str(directory.relative_to(ROOT))] = docs
        print(f"schemas: kubernetes-validate --strict (Kubernetes {K8S_VERSION}) "
              f"and Draft 4 CRD schemas from deploy/schemas/")
        before = report.passed
        for where, docs in renders.items():
            for doc in docs:
                validate_doc(doc, where, report)
        print(f"  {report.passed - before} documents valid")
        print("consistency: images, grace periods, ports, Jobs, Argo CD, Istio values")
        before = report.passed
        consistency_checks(renders, report)
        envoys_scrapable(renders, report)
        applications_admitted(renders, report)
        print(f"  {report.passed - before} checks passed")
        (args.out / "deployable.txt").write_text(
            "".join(d.replace("/", "__") + ".yaml\n" for d in deployable_kustomizations(list(renders))))

    print(f"validate_manifests: {report.passed} ok, {len(report.errors)} problems")
    return 1 if report.errors else 0


if __name__ == "__main__":
    sys.exit(main())
