"""`task --dry bootstrap`, parsed: every step comes after what it depends on.

A dry run prints each command task would run, in order, without running any.
The order is what a trainee's `task bootstrap` (or the runbook, step by step)
does to two empty clusters.
"""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
import subprocess

import pytest

from conftest import ROOT

US, EU = "prod-us-east-1", "prod-eu-west-1"


def dry(task: str) -> list[str]:
    return dry_with(task)


def dry_with(task: str, *variables: str) -> list[str]:
    exe = shutil.which("task")
    assert exe, "go-task is not installed (scripts/install-tools.sh)"
    proc = subprocess.run([exe, "--dry", task, *variables], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, NO_COLOR="1"))
    assert proc.returncode == 0, proc.stderr
    return [m.group(1) for line in (proc.stdout + proc.stderr).splitlines()
            if (m := re.match(r"task: \[[^\]]+\] (.*)", line))]


def first(cmds: list[str], pattern: str) -> int:
    for i, c in enumerate(cmds):
        if re.search(pattern, c):
            return i
    raise AssertionError(f"no command matches {pattern!r}")


def last(cmds: list[str], pattern: str) -> int:
    return max(i for i, c in enumerate(cmds) if re.search(pattern, c))


# (earlier, later, why): each pair must hold for the dry run.
ORDER = [
    (r"scripts/kind/up\.sh us ", r"--kube-context prod-us-east-1 ", "a cluster exists before anything is installed in it"),
    (r"scripts/kind/up\.sh eu ", r"--kube-context prod-eu-west-1 ", "a cluster exists before anything is installed in it"),
    (r"upgrade --install metallb ", r"metallb-pool\.sh", "MetalLB's CRDs and webhook before its IPAddressPool"),
    (r"metallb-pool\.sh eu", r"upgrade --install istio-eastwestgateway", "a load balancer before the LoadBalancer gateways"),
    (r"scripts/istio/certs\.sh", r"create secret generic cacerts", "the root CA exists before it is loaded"),
    (rf"--context {US} -n istio-system create secret generic cacerts", rf"--kube-context {US} upgrade --install istiod",
     "us: cacerts before istiod starts (else istiod makes its own root)"),
    (rf"--context {EU} -n istio-system create secret generic cacerts", rf"--kube-context {EU} upgrade --install istiod",
     "eu: cacerts before istiod starts"),
    (rf"--kube-context {US} upgrade --install istio-base", rf"--kube-context {US} upgrade --install istiod", "Istio CRDs first"),
    (rf"--kube-context {EU} upgrade --install istiod", r"upgrade --install istio-eastwestgateway",
     "istiod injects the gateways"),
    (r"apply -k deploy/istio/gateway", r"link-mesh\.sh", "the gateways exist (and have addresses) before linking"),
    (r"gateway-address\.sh prod-eu-west-1 --wait", r"link-mesh\.sh", "both gateway addresses before linking"),
    (rf"--kube-context {US} upgrade --install kube-prometheus-stack", rf"--context {US} apply -k deploy/observability/mesh",
     "ServiceMonitor/PodMonitor CRDs before the mesh scrapes"),
    (rf"--kube-context {EU} upgrade --install kube-prometheus-stack", r"apply -k deploy/argocd$",
     "the overlays Argo CD syncs hold ServiceMonitors: their CRD must exist in both clusters"),
    (r"upgrade --install argocd ", r"apply -k deploy/argocd$", "Argo CD's CRDs before the ApplicationSet"),
    (r"apply -k deploy/argocd/remote", r"argocd-clusters\.sh", "eu's ServiceAccount and token before registering eu"),
    (r"argocd-clusters\.sh", r"apply -k deploy/argocd$", "both clusters registered when the ApplicationSet generates"),
    (r"upgrade --install argo-rollouts ", r"apply -k deploy/argocd$",
     "the Rollout CRD exists before Argo CD syncs the canary lab (Application echo-rollout)"),
    (r"link-mesh\.sh", r"apply -k deploy/argocd$", "the overlays are linked before Argo CD first deploys them"),
]


def check_order(cmds: list[str]) -> list[str]:
    problems = []
    for before, after, why in ORDER:
        try:
            a, b = last(cmds, before) if before.endswith("$") else first(cmds, before), first(cmds, after)
        except (AssertionError, ValueError) as err:
            problems.append(f"{why}: {err}")
            continue
        if not a < b:
            problems.append(f"{why}: {before!r} (#{a}) does not come before {after!r} (#{b})")
    return problems


def test_bootstrap_runs_in_dependency_order():
    cmds = dry("bootstrap")
    assert len(cmds) > 30
    assert check_order(cmds) == []


def test_the_order_check_catches_a_reordered_bootstrap():
    cmds = dry("bootstrap")
    # istiod before its cacerts: the mistake this issue started from.
    i, j = first(cmds, rf"--context {US} -n istio-system create secret generic cacerts"), \
        first(cmds, rf"--kube-context {US} upgrade --install istiod")
    swapped = list(cmds)
    swapped[i], swapped[j] = swapped[j], swapped[i]
    assert any("cacerts before istiod" in p for p in check_order(swapped))


@pytest.mark.parametrize("task", ["bootstrap", "istio:gw:all", "argocd:install:all", "obs:install:all"])
def test_no_istioctl_and_no_helm_wait_on_load_balancers(task):
    cmds = dry(task)
    assert not [c for c in cmds if re.search(r"\bistioctl\b", c)]
    for c in cmds:
        if "istio-eastwestgateway istio/gateway" in c:
            assert "--wait" not in c, "helm --wait on a LoadBalancer Service hangs where none is provisioned"


def test_obs_installs_into_observability():
    cmds = dry("obs:install:all")
    helm = [c for c in cmds if "helm" in c and "upgrade --install" in c]
    assert helm and all("-n observability" in c for c in helm)
    assert any("kiali-server" in c for c in helm)


def test_every_task_the_docs_name_exists():
    """A trainee reading the runbook from the top never meets a task that is not there."""
    exe = shutil.which("task")
    listing = subprocess.run([exe, "--list-all", "--json"], cwd=ROOT, capture_output=True, text=True, check=True)
    names = {t["name"] for t in __import__("json").loads(listing.stdout)["tasks"]}
    named = set()
    for doc in ("README.md", "deploy/README.md", "loadgen/README.md", "echo-svc/README.md"):
        text = (ROOT / doc).read_text()
        for span in re.findall(r"`([^`\n]*\btask [^`\n]*)`", text):
            # `task verify:labN` stands for the nine; names run to a space or backtick.
            named.update(re.findall(r"\btask ([a-z][a-z0-9-]*(?::[a-z0-9-]+)*)(?![A-Za-z0-9:*-])", span))
        for span in re.findall(r"`task ([^`\n]*)`", text):
            named.update(w for w in span.split() if re.fullmatch(r"[a-z0-9-]+(:[a-z0-9-]+)+", w))
    # A wildcard task (`verify:lab*`) stands for every name it matches.
    missing = sorted(n for n in named if not any(fnmatch.fnmatchcase(n, t) for t in names))
    assert named and not missing, f"tasks named in the docs but not in Taskfile.yml: {missing}"


def test_on_eks_bootstrap_makes_no_kind_cluster_and_no_metallb():
    eks = [c for c in dry_with("bootstrap", "PLATFORM=eks")]
    assert not [c for c in eks if re.search(r"scripts/kind/up\.sh|metallb|kubelet-insecure-tls", c)], eks
    assert any("eastwest-eks.yaml" in c for c in eks)
    # Everything else is the same path, in the same order.
    first(eks, r"scripts/istio/certs\.sh")
    assert first(eks, r"create secret generic cacerts") < first(eks, r"upgrade --install istiod ")
    kind = dry("bootstrap")
    assert any("kubelet-insecure-tls" in c for c in kind) and not any("eastwest-eks" in c for c in kind)


def test_verify_lab_n_runs_lab_n_and_only_the_nine():
    """`task verify:labN` is one wildcard task: N reaches the checks, and a lab that does not
    exist is refused by name."""
    exe = shutil.which("task")
    for n in ("1", "7", "9"):
        out = subprocess.run([exe, "--dry", f"verify:lab{n}"], cwd=ROOT, capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        assert f"scripts/verify/labs.py {n} --ctx-us" in out.stdout + out.stderr, out.stdout + out.stderr
    bad = subprocess.run([exe, "verify:lab10"], cwd=ROOT, capture_output=True, text=True)
    assert bad.returncode != 0
    assert "invalid choice: 10" in bad.stderr, bad.stderr
