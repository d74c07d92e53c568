"""`task verify:labN` against a stub kubectl: PASS on good answers, FAIL on bad ones.

No cluster exists here, so the answers are written in the shape kubectl prints
for these objects (`-o json`, `-o name`, jsonpath) — they were not recorded
from a cluster. The loadgen results Lab 9 collects are real: loadgen runs
against two real echo-svc processes (us and eu) on loopback, and its JSON is
what the stub's `kubectl logs` replays. What only a cluster can show (Istio
routing, Argo CD syncing, Chaos Mesh injecting) is what these answers stand in
for; the tests prove the checks read them right and catch each failure.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, free_port, loadgen_bin, start_echo, wait_http

US, EU = "prod-us-east-1", "prod-eu-west-1"
CTX = {"us": US, "eu": EU}
ROOT_PEM = "-----BEGIN CERTIFICATE-----\nMIIBfakeRootForTheTape\n-----END CERTIFICATE-----\n"
HEAD = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
REPO_TAG = subprocess.run([sys.executable, "scripts/deploy/course_config.py", "get", "IMAGE_REPO"], cwd=ROOT,
                          capture_output=True, text=True).stdout.strip()
TAG = subprocess.run([sys.executable, "scripts/deploy/course_config.py", "get", "TAG"], cwd=ROOT,
                     capture_output=True, text=True).stdout.strip()
GATEWAY = {"us": "172.18.255.200", "eu": "172.18.255.225"}


def j(obj) -> str:
    return json.dumps(obj)


def rule(match: str, stdout: str = "", rc: int = 0, **extra) -> dict:
    return {"match": match, "stdout": stdout, "rc": rc, **extra}


def ctx(region: str) -> str:
    return f"--context {CTX[region]} "


def nodes(region: str, node_region: str | None = None) -> dict:
    names = [f"{region}-control-plane", f"{region}-worker", f"{region}-worker2"]
    loc = node_region or {"us": "us-east-1", "eu": "eu-west-1"}[region]
    return {"kind": "List", "items": [
        {"metadata": {"name": n, "labels": {"topology.kubernetes.io/region": loc,
                                            "topology.kubernetes.io/zone": loc + ("b" if n.endswith("2") else "a")}},
         "status": {"conditions": [{"type": "Ready", "status": "True"}]}} for n in names]}


def app(region: str, sync="Synced", health="Healthy", revision=HEAD) -> dict:
    return {"metadata": {"name": f"echo-prod-{region}"},
            "status": {"sync": {"status": sync, "revision": revision}, "health": {"status": health}}}


def echo_pods(uids: list[str], image: str | None = None) -> dict:
    image = image or f"{REPO_TAG}/echo-svc:{TAG}"
    return {"items": [{"metadata": {"uid": u, "name": f"echo-v1-{u}"},
                       "spec": {"containers": [{"name": "echo", "image": image}, {"name": "istio-proxy",
                                                                                   "image": "docker.io/istio/proxyv2:1.24.3"}]}}
                      for u in uids]}


def curl_answer(region: str, version: str = "v1", code: int = 200) -> str:
    body = {"region": region, "version": version, "service": "echo", "pod": f"echo-{version}-abc"}
    return (j(body) if code == 200 else "upstream connect error") + f"\n{code}"


def loop_lines(n: int, fmt: str) -> str:
    return "".join(fmt.format(i=i) for i in range(n))


def good_world(results: dict) -> list[dict]:
    commit = results["upstream"]["commit"]
    r = []
    r.append(rule(r"^config get-contexts -o name$", f"kind-old\n{US}\n{EU}\n"))
    for region in ("us", "eu"):
        other = "eu" if region == "us" else "us"
        c = ctx(region)
        r += [
            rule(c + r"version -o json$", j({"serverVersion": {"gitVersion": "v1.32.2"}})),
            rule(c + r"get nodes -o json$", j(nodes(region))),
            rule(c + r"get namespace echo -o name$", "namespace/echo\n"),
            rule(c + r"-n istio-system get deployment istiod -o json$", j({"status": {"availableReplicas": 1}})),
            rule(c + r"-n istio-system get secret cacerts -o json$",
                 j({"data": {"root-cert.pem": base64.b64encode(ROOT_PEM.encode()).decode()}})),
            rule(c + r"-n echo get configmap istio-ca-root-cert -o json$", j({"data": {"root-cert.pem": ROOT_PEM}})),
            rule(c + r"-n istio-system get svc istio-eastwestgateway -o json$",
                 j({"status": {"loadBalancer": {"ingress": [{"ip": GATEWAY[region]}]}}})),
            rule(c + r"-n echo get serviceentry echo-remote -o json$",
                 j({"spec": {"endpoints": [{"address": GATEWAY[other], "ports": {"http": 15443}}]}})),
            rule(c + rf"-n echo exec deploy/mesh-client -c curl -- curl -sS .* http://echo\.{other}\.mesh\.local/$",
                 curl_answer(other)),
            rule(c + r"-n echo exec deploy/mesh-client -c curl -- curl -sS .*/identity$",
                 j({"cloud_identity": {"mechanism": "none", "incomplete_variables": []}, "region": region}) + "\n200"),
            rule(c + r"-n echo get deployment echo-v[12] -o json$", j({"status": {"availableReplicas": 2}})),
            rule(c + r"-n echo exec deploy/mesh-client -c curl -- sh -c .*-lt 10 \];.*x-echo-region",
                 loop_lines(10, f"200 {region}\n")),
            rule(c + r"-n echo get pods -l app=echo -o json$", stdouts=[j(echo_pods(["a1", "b2", "c3"])),
                                                                         j(echo_pods(["a1", "b2", "d4"]))]),
        ]
    r += [
        rule(r"-n argocd get secrets -l argocd.argoproj.io/secret-type=cluster -o json$",
             j({"items": [{"metadata": {"name": "cluster-prod-us-east-1", "labels": {"region": "us"}}},
                          {"metadata": {"name": "cluster-prod-eu-west-1", "labels": {"region": "eu"}}}]})),
        rule(r"-n argocd get applications -o json$", j({"items": [app("us"), app("eu")]})),
        rule(r"-n argocd get application echo-prod-us -o json$", j(app("us", revision=commit))),
        rule(r"-n argocd get application echo-prod-eu -o json$", j(app("eu", revision=commit))),
        # Outside the mesh: the mesh name does not resolve (curl exit 6); echo's sidecar
        # resets plain text (STRICT mTLS, curl exit 56).
        rule(r"-n default run verify-outsider-\d+ .*echo\.eu\.mesh\.local", "000 curl-exit=6\n"),
        rule(r"-n default run verify-outsider-\d+ .*echo\.echo\.svc", "000 curl-exit=56\n"),
        # Lab 7: 200 calls, 21 of them v2; beta always v2.
        rule(r"-n echo exec deploy/mesh-client -c curl -- sh -c .*-lt 200 \];.*x-echo-version",
             loop_lines(200, "200 v1 us\n").replace("200 v1 us\n", "200 v2 us\n", 21)),
        rule(r"-n echo exec deploy/mesh-client -c curl -- sh -c .*-lt 20 \];.*x-user-type: beta",
             loop_lines(20, "200 v2 us\n")),
        rule(r"-n echo get destinationrule echo -o json$",
             j({"spec": {"trafficPolicy": {"connectionPool": {}, "outlierDetection": {}},
                         "subsets": [{"name": "v1"}, {"name": "v2"}]}})),
        *canary_world(),
        # Lab 8.
        rule(r"get crd podchaos.chaos-mesh.org -o name$", "customresourcedefinition/podchaos.chaos-mesh.org\n"),
        rule(r"-n echo exec deploy/mesh-client -c curl -- sh -c .*-lt 300 \];", loop_lines(300, "200\n")),
        rule(r"-n echo (delete|apply) .*(podchaos|networkchaos|chaos/)", ""),
        rule(r"-n echo get networkchaos echo-delay -o json$",
             j({"status": {"conditions": [{"type": "AllInjected", "status": "True"}]}})),
        rule(r"-n echo exec deploy/mesh-client -c curl -- sh -c .*-lt 20 \];.*time_total",
             stdouts=[loop_lines(20, "0.004\n"), loop_lines(20, "0.112\n")]),
        # Lab 9 (scripts/deploy/load-run.sh, then the forced failure).
        rule(r"-n echo delete job loadgen --ignore-not-found", ""),
        rule(r"apply -l load-mode in \(shared,single\) -f -$", "job.batch/loadgen created\n"),
        rule(r"-n echo get job loadgen -o jsonpath=", "Failed ", env={"LOAD_SLO": "p99<1us"}),
        rule(r"-n echo get job loadgen -o jsonpath=", "Complete "),
        rule(r"-n echo get pods -l job-name=loadgen -o name$", "pod/loadgen-x7k2p\n"),
        rule(r"-n echo logs pod/loadgen-x7k2p -c loadgen$", "starting\n" + results["fail"], env={"LOAD_SLO": "p99<1us"}),
        rule(r"-n echo logs pod/loadgen-x7k2p -c loadgen$", "starting\n" + results["pass"]),
        rule(r"-n echo get pod/loadgen-x7k2p -o jsonpath=", "99", env={"LOAD_SLO": "p99<1us"}),
        rule(r"-n echo get pod/loadgen-x7k2p -o jsonpath=", "0"),
        rule(r"-n echo get job loadgen -o json$",
             j({"status": {"failed": 1, "conditions": [{"type": "Failed", "status": "True", "reason": "PodFailurePolicy"}]}})),
        rule(r"-n echo get pods -l job-name=loadgen -o json$", j({"items": [{"metadata": {"name": "loadgen-x7k2p"}}]})),
    ]
    return r


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", *args], cwd=cwd,
                          capture_output=True, text=True, check=True).stdout.strip()


def upstream_world(tmp: Path) -> dict:
    """A remote with this checkout's deploy/config.env and images component, a trainee's
    clone of it, and a second clone that stands for CI: each `bump` pushes a new tag there,
    which the trainee's clone does not have until it fetches."""
    tmp.mkdir(parents=True, exist_ok=True)
    remote = tmp / "remote.git"
    git(tmp, "init", "-q", "--bare", "-b", "main", str(remote))
    seed = tmp / "seed"
    git(tmp, "clone", "-q", str(remote), str(seed))
    for path in ("deploy/config.env", "deploy/components/images/kustomization.yaml"):
        (seed / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / path, seed / path)
    git(seed, "add", "-A")
    git(seed, "commit", "-q", "-m", "seed")
    git(seed, "push", "-q", "origin", "HEAD:main")
    trainee = tmp / "trainee"
    git(tmp, "clone", "-q", "-b", "main", str(remote), str(trainee))

    def bump(tag: str) -> str:
        images = seed / "deploy/components/images/kustomization.yaml"
        images.write_text(images.read_text().replace(f"newTag: {TAG}", f"newTag: {tag}")
                          .replace(f'newTag: "{TAG}"', f'newTag: "{tag}"'))
        git(seed, "commit", "-q", "-am", f"bump to {tag}")
        git(seed, "push", "-q", "origin", "HEAD:main")
        return git(seed, "rev-parse", "HEAD")

    return {"repo": str(trainee), "commit": git(trainee, "rev-parse", "HEAD"), "bump": bump}


def rollout(phase: str, version: str, weight: int = 0, abort: bool = False, step: int = 0) -> dict:
    return {"spec": {"template": {"metadata": {"labels": {"app": "echo", "version": version}},
                                  "spec": {"containers": [{"name": "echo", "env": []}]}}},
            "status": {"phase": phase, "currentStepIndex": step, "abort": abort,
                       "canary": {"weights": {"canary": {"weight": weight}}}}}


GET_ROLLOUT = r"-n echo-rollout get rollout echo -o json$"
REPLACE = r"replace -f -"
PROMOTE = r"-n echo-rollout patch rollout echo --subresource status"


def canary_world() -> list[dict]:
    """The canary Rollout as Argo Rollouts moves it after each command the check runs:
    stable v1; `replace` (canary v2) pauses at 10 %; a promotion makes v2 stable; the
    bad canary's `replace` (with DEFAULT_FAULTS) is aborted by the analysis; the last
    `replace` (back to v2) is Healthy again. First match wins: latest state first."""
    return [
        rule(GET_ROLLOUT, j(rollout("Healthy", "v2")), after=[REPLACE, 3]),
        rule(GET_ROLLOUT, j(rollout("Degraded", "bad", abort=True)), after=[REPLACE + ".*DEFAULT_FAULTS", 1]),
        rule(GET_ROLLOUT, j(rollout("Healthy", "v2")), after=[PROMOTE, 1]),
        rule(GET_ROLLOUT, j(rollout("Paused", "v2", weight=10, step=1)), after=[REPLACE, 1]),
        rule(GET_ROLLOUT, j(rollout("Healthy", "v1"))),
        rule(REPLACE, "rollout.argoproj.io/echo replaced\n"),
        rule(PROMOTE, "rollout.argoproj.io/echo patched\n"),
        # The beta route reaches the canary; plain calls reach the stable version (v2 once promoted).
        rule(r"-n echo exec deploy/mesh-client -c curl -- curl -sS .* -H x-user-type: beta "
             r"http://echo-stable\.echo-rollout", curl_answer("us", "v2")),
        rule(r"-n echo exec deploy/mesh-client -c curl -- curl -sS .*http://echo-stable\.echo-rollout",
             curl_answer("us", "v2"), after=[PROMOTE, 1]),
        rule(r"-n echo exec deploy/mesh-client -c curl -- curl -sS .*http://echo-stable\.echo-rollout",
             curl_answer("us", "v1")),
    ]


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> dict:
    """Real loadgen reports: one passing, one failing its SLO on purpose; and the Git
    world Lab 6 reads (upstream_world)."""
    us, eu = start_echo("us", "v1"), start_echo("eu", "v1")
    out = {}
    try:
        for name, slo in (("pass", "p99<5s"), ("fail", "p99<1us")):
            path = tmp_path_factory.mktemp("lg") / "r.json"
            subprocess.run([str(loadgen_bin()), "--target", f"us=http://127.0.0.1:{us.port}/",
                            "--target", f"eu=http://127.0.0.1:{eu.port}/", "--rps", "100", "--duration", "1s",
                            "--no-progress", "--slo", slo, "--json", str(path)],
                           capture_output=True, timeout=60, check=False)
            out[name] = path.read_text()
    finally:
        us.stop()
        eu.stop()
    assert json.loads(out["pass"])["exit_code"] == 0
    assert json.loads(out["fail"])["exit_code"] == 99
    out["upstream"] = upstream_world(tmp_path_factory.mktemp("git"))
    return out


class Stub:
    def __init__(self, tmp: Path, rules: list[dict], repo: str = str(ROOT)) -> None:
        self.tmp = tmp
        self.repo = repo
        bindir = tmp / "bin"
        bindir.mkdir(exist_ok=True)
        link = bindir / "kubectl"
        if not link.exists():
            link.symlink_to(ROOT / "scripts" / "tests" / "fake_kubectl.py")
        (tmp / "tape.json").write_text(json.dumps(rules))
        self.log = tmp / "calls.jsonl"
        self.env = dict(os.environ,
                        PATH=f"{bindir}:{Path(sys.executable).parent}:{os.environ['PATH']}",
                        FAKE_KUBECTL_TAPE=str(tmp / "tape.json"), FAKE_KUBECTL_LOG=str(self.log),
                        VERIFY_POLL_SECS="0.01", VERIFY_CANARY_SECS="3",
                        REAL_KUBECTL=shutil.which("kubectl") or "kubectl")

    def verify(self, lab: int) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "scripts/verify/labs.py", str(lab), "--ctx-us", US, "--ctx-eu", EU,
                               "--results", str(self.tmp / "results"), "--repo", self.repo],
                              cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=300)

    def calls(self) -> list[list[str]]:
        return [json.loads(x)["args"] for x in self.log.read_text().splitlines()] if self.log.exists() else []


def run(tmp_path: Path, results: dict, lab: int, *overrides: dict) -> subprocess.CompletedProcess:
    """Overrides come first, so they win over the good world's answers."""
    return Stub(tmp_path, [*overrides, *good_world(results)], results["upstream"]["repo"]).verify(lab)


def lines(proc, word: str) -> list[str]:
    return [x for x in proc.stdout.splitlines() if x.startswith(word + " ")]


@pytest.mark.parametrize("lab", [1, 2, 3, 5, 6, 7, 8, 9])
def test_every_lab_passes_on_good_answers(tmp_path, results, lab):
    proc = run(tmp_path, results, lab)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert lines(proc, "PASS") and not lines(proc, "FAIL"), proc.stdout
    assert "fake kubectl: no answer" not in proc.stderr


def test_lab4_skips_without_an_aws_identity(tmp_path, results):
    proc = run(tmp_path, results, 4)
    assert proc.returncode == 0, proc.stdout
    assert len(lines(proc, "SKIP")) == 2 and not lines(proc, "FAIL")


def test_lab4_passes_with_irsa(tmp_path, results):
    irsa = j({"cloud_identity": {"mechanism": "irsa", "role_arn": "arn:aws:iam::123456789012:role/echo",
                                 "token_file_present": True}}) + "\n200"
    proc = run(tmp_path, results, 4, rule(r"curl -sS .*/identity$", irsa))
    assert proc.returncode == 0 and len(lines(proc, "PASS")) == 2, proc.stdout


BAD = {
    "a missing context": (1, rule(r"^config get-contexts -o name$", f"{US}\n"), f"context {EU} exists"),
    "nodes without a region": (1, rule(ctx("eu") + r"get nodes -o json$", j(nodes("eu", "us-east-1"))),
                               "nodes labelled region eu-west-1"),
    "an app out of sync": (2, rule(r"-n argocd get applications -o json$",
                                   j({"items": [app("us"), app("eu", sync="OutOfSync", health="Degraded")]})),
                           "echo-prod-eu is Synced and Healthy"),
    "the wrong region answers": (3, rule(ctx("us") + r"-n echo exec .* curl -sS .*echo\.eu\.mesh\.local/$",
                                         curl_answer("us")), "from us: curl http://echo.eu.mesh.local/"),
    "a 503 across regions": (3, rule(ctx("eu") + r"-n echo exec .* curl -sS .*echo\.us\.mesh\.local/$",
                                     curl_answer("us", code=503)), "from eu: curl http://echo.us.mesh.local/"),
    "a refused cross-region call": (3, rule(ctx("us") + r"-n echo exec .* curl -sS .*echo\.eu\.mesh\.local/$",
                                            "\n000", 7, stderr="curl: (7) Failed to connect"),
                                    "from us: curl http://echo.eu.mesh.local/"),
    "two root CAs": (3, rule(ctx("eu") + r"-n istio-system get secret cacerts -o json$",
                             j({"data": {"root-cert.pem": base64.b64encode(b"other root").decode()}})),
                     "both clusters share one root CA"),
    "an unlinked overlay": (3, rule(ctx("us") + r"-n echo get serviceentry echo-remote -o json$",
                                    j({"spec": {"endpoints": [{"address": "eastwest.eu.unlinked.invalid"}]}})),
                            "echo-remote points at eu's gateway"),
    "the outside let in": (3, rule(r"-n default run verify-outsider.*echo\.svc", "200 curl-exit=0\n", 0),
                           "from namespace default (no mesh identity): http://echo.echo.svc"),
    "an outsider pod that never ran": (3, rule(r"-n default run verify-outsider", "", 1,
                                               stderr="error: timed out waiting for the condition (ErrImagePull)"),
                                       "from namespace default (no mesh identity)"),
    "a Service that does not resolve": (3, rule(r"-n default run verify-outsider.*echo\.svc", "000 curl-exit=6\n"),
                                        "from namespace default (no mesh identity): http://echo.echo.svc"),
    "a region answering for the other": (5, rule(ctx("eu") + r".*sh -c .*-lt 10 \];", loop_lines(10, "200 us\n")),
                                         f"{EU}: 10 of 10 calls"),
    "a stale image": (6, rule(ctx("us") + r"-n echo get pods -l app=echo -o json$",
                              j(echo_pods(["a1"], image="ghcr.io/someone/echo-svc:old"))), f"{US}: every echo pod runs"),
    "an unsynced commit": (6, rule(r"get application echo-prod-eu -o json$", j(app("eu", revision="0" * 40))),
                           "echo-prod-eu is synced to the pushed commit"),
    "a 50/50 split": (7, rule(r"sh -c .*-lt 200 \];", loop_lines(200, "200 v1 us\n").replace("200 v1 us\n", "200 v2 us\n", 100)),
                      "traffic splits about 90/10"),
    "beta users on v1": (7, rule(r"sh -c .*-lt 20 \];.*x-user-type: beta", loop_lines(20, "200 v1 us\n")),
                         "x-user-type: beta always reaches v2"),
    "a canary stuck in its pause": (7, rule(GET_ROLLOUT, j(rollout("Paused", "v2", weight=10, step=1)),
                                            after=[REPLACE, 1]), "canary v2 promoted to 100 % and Healthy"),
    "the ab-test route deleted": (7, rule(r"curl -sS .* -H x-user-type: beta http://echo-stable", curl_answer("us", "v1")),
                                  "x-user-type: beta reaches the canary's version v2"),
    "an analysis that never aborts": (7, rule(GET_ROLLOUT, j(rollout("Paused", "bad", weight=10, step=1)),
                                              after=[REPLACE + ".*DEFAULT_FAULTS", 1]),
                                      "the bad canary is aborted by its analysis"),
    "a bad canary promoted": (7, rule(GET_ROLLOUT, j(rollout("Healthy", "bad")), after=[REPLACE + ".*DEFAULT_FAULTS", 1]),
                              "the bad canary is aborted by its analysis"),
    "a Rollout mid-canary before the test": (7, rule(GET_ROLLOUT, j(rollout("Paused", "v2", weight=25, step=3))),
                                             "Healthy before the test"),
    "an error during the pod kill": (8, rule(r"sh -c .*-lt 300 \];", loop_lines(299, "200\n") + "503\n"),
                                     "local error count 0"),
    "no pod killed": (8, rule(ctx("us") + r"-n echo get pods -l app=echo -o json$", j(echo_pods(["a1", "b2"]))),
                      "PodChaos killed an echo pod"),
    "no latency from the delay": (8, rule(r"sh -c .*-lt 20 \];.*time_total", loop_lines(20, "0.004\n")),
                                  "NetworkChaos delay (100ms) shows"),
    "a retried SLO failure": (9, rule(r"-n echo get job loadgen -o json$",
                                      j({"status": {"failed": 2, "conditions": [{"type": "Failed", "status": "True",
                                                                                 "reason": "BackoffLimitExceeded"}]}})),
                              "the Job failed by its podFailurePolicy"),
    "a run that left no JSON": (9, rule(ctx("eu") + r"-n echo logs pod/loadgen-x7k2p -c loadgen$", "panicked\n"),
                                f"{EU}: result collected"),
}


def test_lab6_reads_what_ci_pushed_not_the_stale_checkout(tmp_path, results):
    """CI bumped the tag after the trainee cloned: the cluster runs the new tag and Argo CD
    synced the new commit, so Lab 6 is done, and the check says so without a `git pull`.
    The same cluster still on the old image is not done, and fails naming the pushed tag."""
    world = upstream_world(tmp_path / "git")
    new = world["bump"]("cafe12345678")
    done = [rule(ctx(r) + r"-n echo get pods -l app=echo -o json$",
                 j(echo_pods(["a1"], image=f"{REPO_TAG}/echo-svc:cafe12345678"))) for r in ("us", "eu")]
    done += [rule(rf"get application echo-prod-{r} -o json$", j(app(r, revision=new))) for r in ("us", "eu")]
    proc = Stub(tmp_path, [*done, *good_world(results)], world["repo"]).verify(6)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    stale = [rule(rf"get application echo-prod-{r} -o json$", j(app(r, revision=new))) for r in ("us", "eu")]
    proc = Stub(tmp_path, [*stale, *good_world(results)], world["repo"]).verify(6)
    assert proc.returncode == 1, proc.stdout
    assert "CI pushed cafe12345678" in proc.stdout, proc.stdout


def test_lab6_fails_plainly_when_the_remote_cannot_be_fetched(tmp_path, results):
    world = upstream_world(tmp_path / "git")
    shutil.rmtree(tmp_path / "git" / "remote.git")
    proc = Stub(tmp_path, good_world(results), world["repo"]).verify(6)
    assert proc.returncode == 1
    assert "git fetch origin failed" in proc.stdout, proc.stdout


@pytest.mark.parametrize("case", sorted(BAD))
def test_each_bad_answer_fails_its_check(tmp_path, results, case):
    lab, override, check = BAD[case]
    proc = run(tmp_path, results, lab, override)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    failed = lines(proc, "FAIL")
    assert any(check in line for line in failed), f"expected a FAIL naming {check!r}:\n{proc.stdout}"


def test_unlinked_overlay_says_what_to_do(tmp_path, results):
    proc = run(tmp_path, results, 3, BAD["an unlinked overlay"][1])
    assert "task mesh:link, then commit and push" in proc.stdout


def test_lab8_kills_a_pod_only_after_the_load_started(tmp_path, results):
    stub = Stub(tmp_path, good_world(results))
    assert stub.verify(8).returncode == 0
    calls = [" ".join(c) for c in stub.calls()]
    load = next(i for i, c in enumerate(calls) if "-lt 300 ]" in c)
    kill = next(i for i, c in enumerate(calls) if c.startswith(f"--context {US} -n echo apply -f")
                and "podchaos" in c)
    assert load < kill


def test_lab9_forced_failure_overrides_the_slo(tmp_path, results):
    stub = Stub(tmp_path, good_world(results))
    assert stub.verify(9).returncode == 0
    applied = [json.loads(x) for x in stub.log.read_text().splitlines()]
    stdin = [a["stdin"] for a in applied if a["args"][-3:] == ["-l", "load-mode in (shared,single)", "-f"] or
             "load-mode in (shared,single)" in a["args"]]
    assert any("p99<1us" in s for s in stdin), "the forced run must apply the overridden SLO file"
    assert any("p95<250ms" in s for s in stdin), "the normal runs must apply deploy/load/base/slo.txt"
    forced = copy.deepcopy(stdin)
    assert all("--duration" in s for s in forced)


def test_lab9_runs_at_a_laptops_rate_on_kind_and_the_courses_on_eks(tmp_path, results):
    for platform, rate in (("kind", "300"), ("eks", "5000")):
        stub = Stub(tmp_path / platform, good_world(results)) if (tmp_path / platform).mkdir() is None else None
        proc = subprocess.run([sys.executable, "scripts/verify/labs.py", "9", "--ctx-us", US, "--ctx-eu", EU,
                               "--results", str(stub.tmp / "results"), "--platform", platform],
                              cwd=ROOT, env=stub.env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert f"lab9: {rate} rps per cluster (PLATFORM={platform}" in proc.stdout
        applied = [json.loads(x) for x in stub.log.read_text().splitlines()]
        jobs = [a["stdin"] for a in applied if "load-mode in (shared,single)" in " ".join(a["args"])]
        assert jobs and all(f"- '{rate}'" in j or f'- "{rate}"' in j or f"- {rate}\n" in j for j in jobs), jobs[0]
        # The comparison the course asks for: in-region and cross-region p95/p99.
        assert "in-region vs cross-region latency (us (in-region) p95" in proc.stdout, proc.stdout


def test_lab9_blames_the_generator_not_the_mesh_when_loadgen_was_the_limit(tmp_path, results):
    doc = json.loads(results["pass"])
    doc["generator_limited"] = True
    doc["limits"] = [{"target": "eu", "reasons": ["the dispatcher fell behind the schedule"],
                      "advice": "lower --rps or give loadgen more CPU"}]
    doc["exit_code"] = 99
    doc["slos"] = [{"slo": "generator_limited==0", "pass": False}]
    limited = rule(ctx("eu") + r"-n echo logs pod/loadgen-x7k2p -c loadgen$", "starting\n" + json.dumps(doc))
    proc = run(tmp_path, results, 9, limited)
    assert proc.returncode == 1
    failed = lines(proc, "FAIL")
    assert any("loadgen (this machine), not the mesh, limited the run" in f for f in failed), proc.stdout
    assert not any("SLOs failed" in f for f in failed), proc.stdout
