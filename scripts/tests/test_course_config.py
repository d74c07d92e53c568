"""deploy/config.env, `task config:apply`, `task mesh:link`'s file edit, `task gitops:bump`,
the MetalLB pools and the kind cluster configs — on a copy of the repo."""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

from conftest import ROOT


def sh(*args, cwd=None, env=None, check=False) -> subprocess.CompletedProcess:
    proc = subprocess.run(list(map(str, args)), cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    if check:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


@pytest.fixture
def repo(tmp_path) -> Path:
    """deploy/ and scripts/ in a fresh Git repository, pushed to a bare 'origin'."""
    work = tmp_path / "work"
    shutil.copytree(ROOT / "deploy", work / "deploy")
    shutil.copytree(ROOT / "scripts", work / "scripts", ignore=shutil.ignore_patterns("__pycache__", "tests"))
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    sh("git", "init", "-q", "-b", "main", work, check=True)
    sh(*git, "-C", work, "add", "-A", check=True)
    sh(*git, "-C", work, "commit", "-qm", "start", check=True)
    sh("git", "clone", "-q", "--bare", work, tmp_path / "origin.git", check=True)
    sh("git", "-C", work, "remote", "add", "origin", tmp_path / "origin.git", check=True)
    sh("git", "-C", work, "fetch", "-q", "origin", check=True)
    sh("git", "-C", work, "branch", "-q", "--set-upstream-to=origin/main", check=True)
    return work


def cc(repo: Path, *args) -> subprocess.CompletedProcess:
    return sh(sys.executable, repo / "scripts" / "deploy" / "course_config.py", *args, cwd=repo)


def rendered(repo: Path, path: str) -> list[dict]:
    proc = sh("kubectl", "kustomize", repo / path, check=True)
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


def images(docs: list[dict]) -> set[str]:
    return {c["image"] for d in docs if d["kind"] in ("Deployment", "Job", "Rollout")
            for c in d["spec"]["template"]["spec"]["containers"]}


def test_the_shipped_manifests_follow_config_env():
    proc = sh(sys.executable, ROOT / "scripts" / "deploy" / "course_config.py", "check")
    assert proc.returncode == 0, proc.stdout


def test_a_fork_sets_two_lines_and_every_overlay_follows(repo):
    env = repo / "deploy" / "config.env"
    text = env.read_text().replace("https://github.com/training-mesh/echo.git", "https://github.com/alice/echo.git")
    env.write_text(text.replace("ghcr.io/training-mesh", "ghcr.io/alice"))
    proc = cc(repo, "check")
    assert proc.returncode == 1 and "task config:apply" in proc.stdout
    assert cc(repo, "apply").returncode == 0
    assert cc(repo, "check").returncode == 0
    for path in ("deploy/overlays/us", "deploy/overlays/eu", "deploy/load/us", "deploy/rollouts"):
        imgs = images(rendered(repo, path))
        assert imgs and all(i.startswith("ghcr.io/alice/") for i in imgs if "curl" not in i), (path, imgs)
    argocd = rendered(repo, "deploy/argocd")
    appset = next(d for d in argocd if d["kind"] == "ApplicationSet")
    project = next(d for d in argocd if d["kind"] == "AppProject")
    assert appset["spec"]["template"]["spec"]["source"]["repoURL"] == "https://github.com/alice/echo.git"
    assert project["spec"]["sourceRepos"] == ["https://github.com/alice/echo.git"]


def test_linking_writes_the_address_argo_cd_deploys(repo):
    assert cc(repo, "set-remote", "us", "172.18.255.225").returncode == 0
    assert cc(repo, "set-remote", "eu", "a1b2.elb.eu-west-1.amazonaws.com").returncode == 0
    for region, addr in (("us", "172.18.255.225"), ("eu", "a1b2.elb.eu-west-1.amazonaws.com")):
        se = next(d for d in rendered(repo, f"deploy/overlays/{region}")
                  if d["kind"] == "ServiceEntry" and d["metadata"]["name"] == "echo-remote")
        assert [e["address"] for e in se["spec"]["endpoints"]] == [addr]
        assert se["spec"]["endpoints"][0]["ports"] == {"http": 15443}
    for bad in ("", "a b", "x;rm -rf /", "-x"):
        assert cc(repo, "set-remote", "us", bad).returncode != 0


def test_gitops_bump_commits_and_pushes_the_new_tag(repo, tmp_path):
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    proc = sh(repo / "scripts" / "deploy" / "gitops-bump.sh", "ghcr.io/alice", "3f9c2a7b1d0e", "--push", cwd=repo, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    log = sh("git", "-C", tmp_path / "origin.git", "log", "-1", "--format=%s", "main", check=True).stdout
    assert log.strip() == "deploy: echo-svc and loadgen at 3f9c2a7b1d0e [skip ci]"
    shown = sh("git", "-C", tmp_path / "origin.git", "show", "main:deploy/components/images/kustomization.yaml",
               check=True).stdout
    assert shown.count('newTag: "3f9c2a7b1d0e"') == 2 and "ghcr.io/alice/echo-svc" in shown
    assert "IMAGE_REPO=ghcr.io/alice" in sh("git", "-C", tmp_path / "origin.git", "show",
                                            "main:deploy/config.env", check=True).stdout
    again = sh(repo / "scripts" / "deploy" / "gitops-bump.sh", "ghcr.io/alice", "3f9c2a7b1d0e", "--push", cwd=repo, env=env)
    assert again.returncode == 0 and "already deploy" in again.stdout
    assert sh("git", "-C", repo, "status", "--porcelain", check=True).stdout == ""


def test_gitops_bump_rejects_a_bad_tag_or_registry(repo):
    for repo_arg, tag in (("ghcr.io/alice", "has space"), ("GHCR.io/Alice", "abc"), ("ghcr.io/alice", "")):
        proc = sh(repo / "scripts" / "deploy" / "gitops-bump.sh", repo_arg, tag, cwd=repo)
        assert proc.returncode != 0
    assert sh("git", "-C", repo, "status", "--porcelain").stdout == ""


def test_metallb_pools_validate_and_do_not_overlap():
    pools = {}
    for region in ("us", "eu"):
        proc = sh(ROOT / "scripts" / "kind" / "metallb-pool.sh", region,
                  env=dict(os.environ, KIND_SUBNET="172.18.0.0/16"), check=True)
        docs = list(yaml.safe_load_all(proc.stdout))
        for doc in docs:
            group, version = doc["apiVersion"].split("/")
            schema = json.loads((ROOT / "deploy" / "schemas" / group / f"{doc['kind'].lower()}_{version}.json").read_text())
            assert not list(jsonschema.Draft4Validator(schema).iter_errors(doc))
        first, last = docs[0]["spec"]["addresses"][0].split("-")
        pools[region] = (ipaddress.ip_address(first), ipaddress.ip_address(last))
        net = ipaddress.ip_network("172.18.0.0/16")
        assert pools[region][0] in net and pools[region][1] in net
    assert pools["us"][1] < pools["eu"][0]
    assert sh(ROOT / "scripts" / "kind" / "metallb-pool.sh", "ap").returncode == 2


def test_kind_clusters_are_two_regions_on_separate_ranges():
    cfg = {r: yaml.safe_load((ROOT / "deploy" / "kind" / f"{r}.yaml").read_text()) for r in ("us", "eu")}
    want = {"us": "us-east-1", "eu": "eu-west-1"}
    for region, c in cfg.items():
        assert c["kind"] == "Cluster" and c["apiVersion"] == "kind.x-k8s.io/v1alpha4"
        regions = {n["labels"]["topology.kubernetes.io/region"] for n in c["nodes"]}
        zones = {n["labels"]["topology.kubernetes.io/zone"] for n in c["nodes"] if n["role"] == "worker"}
        assert regions == {want[region]} and len(zones) == 2
    nets = [ipaddress.ip_network(cfg[r]["networking"][k]) for r in cfg for k in ("podSubnet", "serviceSubnet")]
    assert all(not a.overlaps(b) for i, a in enumerate(nets) for b in nets[i + 1:])
    # The localities the remote ServiceEntries claim are the other cluster's node regions.
    for region, other in (("us", "eu"), ("eu", "us")):
        remote = yaml.safe_load((ROOT / "deploy" / "overlays" / region / "remote-gateway.yaml").read_text())
        assert remote["spec"]["endpoints"][0]["locality"] == want[other]


def test_a_canary_by_commit_edits_only_the_rollouts_version_and_faults(repo):
    rollout = repo / "deploy" / "rollouts" / "rollout.yaml"
    before = rollout.read_text()
    assert cc(repo, "set-canary", "v2", "bad").returncode == 0
    ro = next(d for d in rendered(repo, "deploy/rollouts") if d["kind"] == "Rollout")
    assert ro["spec"]["template"]["metadata"]["labels"]["version"] == "v2"
    env = {e["name"]: e.get("value") for e in ro["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["DEFAULT_FAULTS"] == "status=503:20"
    # A good canary after a bad one drops the faults; back to v1 is the file as it was.
    assert cc(repo, "set-canary", "v3").returncode == 0
    assert "DEFAULT_FAULTS" not in rollout.read_text()
    assert cc(repo, "set-canary", "v1").returncode == 0
    assert rollout.read_text() == before
    for bad in (("V2!",), ("v2", "worse")):
        assert cc(repo, "set-canary", *bad).returncode != 0
    assert rollout.read_text() == before


def test_the_canary_lab_application_follows_config_env(repo):
    env_file = repo / "deploy" / "config.env"
    env_file.write_text(env_file.read_text().replace("GIT_REPO_URL=", "GIT_REPO_URL=https://github.com/alice/echo.git\n#", 1))
    assert cc(repo, "apply").returncode == 0
    app = yaml.safe_load((repo / "deploy" / "argocd" / "rollouts-app.yaml").read_text())
    assert app["spec"]["source"]["repoURL"] == "https://github.com/alice/echo.git"
    assert cc(repo, "check").returncode == 0
