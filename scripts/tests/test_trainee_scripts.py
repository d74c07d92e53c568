"""Every shell script a trainee's task runs works on a Mac's shells.

macOS has bash 3.2 as /bin/bash, a POSIX /bin/sh, and BSD tools. So each script
such a task runs is POSIX sh (`#!/bin/sh`), uses none of the GNU-only options
below, and is executed here by `dash`, a strict POSIX shell (what runs under
dash runs under macOS's /bin/sh and bash 3.2), against stubs for kubectl, kind
and docker that record their calls. The Python those scripts and the lab checks
call must run on the python3 that macOS ships (3.9), with only the standard
library where it runs before `task tools` made .venv.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import ROOT

# Tasks for the people who build this project (CI, benchmarks, image checks), not trainees.
NOT_TRAINEE = re.compile(r"^(bench|validate|image:check|tools:test|lint|test|build|charts)")
# GNU-only spellings that BSD tools reject or read differently.
GNU_ONLY = {
    r"\bsed\s+(-[a-zA-Z]*\s+)*-i(\s|$)(?!'')": "sed -i without a suffix argument (BSD sed needs -i '')",
    r"\breadlink\s+-f\b": "readlink -f",
    r"\bdate\s+(-[a-zA-Z]+\s+)*-d\b": "date -d",
    r"\bbase64\s+(-[a-zA-Z]+\s+)*-w": "base64 -w",
    r"\bgrep\s+(-[a-zA-Z]+\s+)*-[a-zA-Z]*P": "grep -P",
    r"\bxargs\s+(-[a-zA-Z]+\s+)*-[a-zA-Z]*r\b": "xargs -r",
    r"\bstat\s+-c\b": "stat -c",
    r"\bfind\s+.*-printf\b": "find -printf",
}
# Each trainee script, and the test here that runs it under dash.
EXECUTED = {
    "scripts/tools.sh": "test_tools_runs_under_dash",
    "scripts/kind/up.sh": "test_kind_up_creates_renames_and_labels",
    "scripts/kind/metallb-pool.sh": "test_metallb_pool_reads_the_kind_network",
    "scripts/kind/save-image.sh": "test_save_image_picks_the_platform_under_dash",
    "scripts/kind/node-platform.sh": "test_save_image_picks_the_platform_under_dash",
    "scripts/istio/certs.sh": "test_certs_under_dash",
    "scripts/deploy/gateway-address.sh": "test_gateway_address_prints_an_ip_or_a_host_name",
    "scripts/deploy/link-mesh.sh": "test_link_mesh_writes_both_overlays",
    "scripts/deploy/argocd-clusters.sh": "test_argocd_clusters_applies_server_side",
    "scripts/deploy/rollout-canary.sh": "test_rollout_canary_replaces_the_template",
    "scripts/deploy/load-run.sh": "test_load_run_collects_the_result",
    "scripts/deploy/gitops-bump.sh": "test_gitops_bump_never_rebases_over_a_newer_commit",
}


def dash() -> str:
    exe = shutil.which("dash")
    assert exe, "dash is not installed (scripts/install-tools.sh)"
    return exe


def trainee_scripts() -> set[str]:
    tasks = yaml.safe_load((ROOT / "Taskfile.yml").read_text())["tasks"]
    found = set()
    for name, task in tasks.items():
        if NOT_TRAINEE.match(name) or not isinstance(task, dict):
            continue
        for cmd in task.get("cmds", []):
            text = json.dumps(cmd)
            found.update(re.findall(r"scripts/[\w/.-]+\.sh", text))
    return found


def test_every_trainee_script_is_posix_sh_and_run_here():
    scripts = trainee_scripts()
    assert "scripts/kind/up.sh" in scripts and "scripts/tools.sh" in scripts, scripts
    # Scripts those scripts call count too.
    for s in list(scripts):
        code = "\n".join(x for x in (ROOT / s).read_text().splitlines() if not x.lstrip().startswith("#"))
        scripts.update(re.findall(r"scripts/[\w/.-]+\.sh", code))
    for s in sorted(scripts):
        text = (ROOT / s).read_text()
        assert text.startswith("#!/bin/sh\n"), f"{s}: not #!/bin/sh"
        parsed = subprocess.run([dash(), "-n", str(ROOT / s)], capture_output=True, text=True)
        assert parsed.returncode == 0, f"{s}: {parsed.stderr}"
        assert s in EXECUTED, f"{s} is run by a trainee task but no test runs it under dash"


def gnu_only(text: str) -> list[str]:
    found = []
    for line in text.splitlines():
        code = line.split("#", 1)[0] if not line.lstrip().startswith("#") else ""
        for pattern, what in GNU_ONLY.items():
            if re.search(pattern, code):
                found.append(f"{what}: {line.strip()}")
    return found


def test_no_gnu_only_options_in_trainee_scripts_or_tasks():
    assert gnu_only("sed -i 's/a/b/' f") and gnu_only("readlink -f x") and gnu_only("grep -oP x")
    assert gnu_only("date -d @1") and gnu_only("xargs -r rm") and gnu_only("base64 -w0")
    assert not gnu_only("sed -i '' 's/a/b/' f") and not gnu_only("sed 's/-i/x/'") and not gnu_only("grep -Eq x")
    problems = []
    for s in sorted(set(EXECUTED)):
        problems += [f"{s}: {p}" for p in gnu_only((ROOT / s).read_text())]
    problems += [f"Taskfile.yml: {p}" for p in gnu_only((ROOT / "Taskfile.yml").read_text())]
    assert not problems, "\n".join(problems)


# Python the trainee's tasks run: the lab checks, and what every task evaluates
# (course_config.py fills a Taskfile variable) before .venv exists.
BEFORE_VENV = ["scripts/deploy/course_config.py", "scripts/deploy/extract_json.py",
               "scripts/verify/labs.py", "scripts/verify/canary.py", "scripts/verify/lab9.py"]
TRAINEE_PY = BEFORE_VENV + ["scripts/deploy/load_overrides.py"]


def test_trainee_python_runs_on_3_9():
    vermin = shutil.which("vermin")
    assert vermin, "vermin is not installed (scripts/install-tools.sh)"
    proc = subprocess.run([vermin, "--no-tips", "--violations", "-t=3.9-", "--eval-annotations",
                           *[str(ROOT / p) for p in TRAINEE_PY]], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_python_run_before_the_venv_needs_only_the_standard_library():
    import ast
    for p in BEFORE_VENV:
        tree = ast.parse((ROOT / p).read_text())
        names = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        names |= {n.module.split(".")[0] for n in ast.walk(tree)
                  if isinstance(n, ast.ImportFrom) and n.module and n.level == 0}
        ours = {"course_config", "canary", "lab9"}
        outside = sorted(n for n in names - ours if n not in sys.stdlib_module_names and n != "__future__")
        assert not outside, f"{p} imports {outside}, which the system python3 does not have"


class Stubs:
    """A bin directory of stubs first on PATH; each records its argv (and stdin) as a JSON line."""

    def __init__(self, tmp: Path) -> None:
        self.dir = tmp / "stubs"
        self.dir.mkdir()
        self.log = tmp / "calls.jsonl"
        self.log.write_text("")

    def add(self, name: str, script: str = "") -> None:
        """`script` is sh run after the call is recorded; $* are the arguments."""
        path = self.dir / name
        path.write_text(
            "#!/bin/sh\n"
            f'{sys.executable} -c \'import json,sys; print(json.dumps(sys.argv[1:]))\' "$@" >> "{self.log}"\n'
            + script + "\n")
        path.chmod(0o755)

    def calls(self) -> list[list[str]]:
        return [json.loads(x) for x in self.log.read_text().splitlines() if x]

    def env(self, **extra: str) -> dict[str, str]:
        return {**os.environ, "PATH": f"{self.dir}:{os.environ['PATH']}", **extra}


def run_dash(script: str, *args: str, env: dict | None = None, cwd: Path = ROOT,
             stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([dash(), str(cwd / script), *args], cwd=cwd, env=env, input=stdin,
                          capture_output=True, text=True, timeout=120)


def test_tools_runs_under_dash(tmp_path):
    s = Stubs(tmp_path)
    for tool in ("docker", "kind", "kubectl", "helm", "task", "git", "openssl", "cargo"):
        s.add(tool)
    s.add("apt-get", "exit 1")
    s.add("sudo", "exit 1")
    venv = ROOT / ".venv"
    proc = run_dash("scripts/tools.sh", env=s.env(VENV=str(venv)))
    assert proc.returncode == 0, proc.stderr
    assert not [c for c in s.calls() if c and c[0] in ("install", "update")], s.calls()


def test_kind_up_creates_renames_and_labels(tmp_path):
    s = Stubs(tmp_path)
    s.add("kind", 'case "$1 $2" in "get clusters") echo other ;; esac')
    s.add("docker")
    state = tmp_path / "renamed"
    s.add("kubectl", f"""case "$*" in
  "config get-contexts -o name") if [ -e {state} ]; then echo prod-us-east-1; else echo kind-us; fi ;;
  "config rename-context"*) : > {state} ;;
  *"get node us-worker -o jsonpath"*"zone"*) echo us-east-1a ;;
esac""")
    proc = run_dash("scripts/kind/up.sh", "us", "prod-us-east-1", "deploy/kind/us.yaml", "kindest/node:v1.32.2",
                    env=s.env())
    assert proc.returncode == 0, proc.stderr
    calls = [" ".join(c) for c in s.calls()]
    create = calls.index(next(c for c in calls if c.startswith("create cluster --name us")))
    rename = calls.index("config rename-context kind-us prod-us-east-1")
    labels = [c for c in calls if " label node " in c]
    assert create < rename < calls.index(labels[0])
    # Three nodes, two labels each; one already right (us-worker's zone) is left alone.
    assert len(labels) == 5, labels
    assert "--context prod-us-east-1 label node us-worker2 topology.kubernetes.io/zone=us-east-1b --overwrite" in labels
    assert not any("us-worker topology.kubernetes.io/zone" in c for c in labels)
    # The dots of the label key are escaped for kubectl's jsonpath.
    assert any(r"labels['topology\.kubernetes\.io/zone']" in c for c in calls), calls


def test_metallb_pool_reads_the_kind_network(tmp_path):
    s = Stubs(tmp_path)
    s.add("docker", 'echo "fc00:f853:ccd:e793::/64"; echo "172.19.0.0/16"')
    proc = run_dash("scripts/kind/metallb-pool.sh", "eu", env=s.env())
    assert proc.returncode == 0, proc.stderr
    assert "- 172.19.255.225-172.19.255.250" in proc.stdout
    s.add("docker", "exit 1")
    proc = run_dash("scripts/kind/metallb-pool.sh", "us", env=s.env())
    assert proc.returncode == 1 and "no IPv4 subnet" in proc.stderr


def test_save_image_picks_the_platform_under_dash(tmp_path):
    s = Stubs(tmp_path)
    s.add("docker", """case "$*" in
  *Server.Arch*) echo aarch64 ;;
  *Server.APIVersion*) echo 1.49 ;;
esac""")
    proc = run_dash("scripts/kind/save-image.sh", "r/echo-svc:1", str(tmp_path / "out" / "e.tar"), env=s.env())
    assert proc.returncode == 0, proc.stderr
    assert ["image", "save", "--platform", "linux/arm64", "-o", str(tmp_path / "out" / "e.tar"),
            "r/echo-svc:1"] in s.calls()
    assert run_dash("scripts/kind/node-platform.sh", env=s.env()).stdout == "linux/arm64\n"
    s.add("docker", 'case "$*" in *Server.Arch*) echo s390x ;; esac')
    bad = run_dash("scripts/kind/node-platform.sh", env=s.env())
    assert bad.returncode == 1 and "no node image" in bad.stderr


def test_certs_under_dash(tmp_path):
    proc = run_dash("scripts/istio/certs.sh", str(tmp_path / "c"), "us", "eu")
    assert proc.returncode == 0, proc.stderr
    for region in ("us", "eu"):
        ok = subprocess.run(["openssl", "verify", "-CAfile", str(tmp_path / "c" / "root-cert.pem"),
                             str(tmp_path / "c" / region / "ca-cert.pem")], capture_output=True, text=True)
        assert ok.returncode == 0, ok.stderr
    again = run_dash("scripts/istio/certs.sh", str(tmp_path / "c"), "us")
    assert "keeping the root CA" in again.stdout and "keeping us's CA" in again.stdout


def test_gateway_address_prints_an_ip_or_a_host_name(tmp_path):
    s = Stubs(tmp_path)
    s.add("kubectl", "echo ' a1b2-0123.elb.eu-west-1.amazonaws.com'")
    proc = run_dash("scripts/deploy/gateway-address.sh", "prod-eu-west-1", env=s.env())
    assert proc.stdout == "a1b2-0123.elb.eu-west-1.amazonaws.com\n", proc.stderr
    s.add("kubectl", "echo ' '")
    proc = run_dash("scripts/deploy/gateway-address.sh", "prod-eu-west-1", "--wait", "0", env=s.env())
    assert proc.returncode == 1 and "no LoadBalancer address" in proc.stderr


def repo_copy(tmp: Path) -> Path:
    work = tmp / "work"
    shutil.copytree(ROOT / "deploy", work / "deploy")
    shutil.copytree(ROOT / "scripts", work / "scripts", ignore=shutil.ignore_patterns("__pycache__", "tests"))
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", "-C", str(work)]
    subprocess.run(["git", "init", "-q", "-b", "main", str(work)], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "start"], check=True)
    return work


def test_link_mesh_writes_both_overlays(tmp_path):
    work = repo_copy(tmp_path)
    s = Stubs(tmp_path)
    s.add("kubectl", 'case "$*" in *prod-us-east-1*) echo "172.18.255.200 " ;; *) echo "172.18.255.225 " ;; esac')
    proc = run_dash("scripts/deploy/link-mesh.sh", "prod-us-east-1", "prod-eu-west-1", env=s.env(), cwd=work)
    assert proc.returncode == 0, proc.stderr
    assert "172.18.255.225" in (work / "deploy/overlays/us/remote-gateway.yaml").read_text()
    assert "172.18.255.200" in (work / "deploy/overlays/eu/remote-gateway.yaml").read_text()
    assert "commit and push" in proc.stdout


def test_argocd_clusters_applies_server_side(tmp_path):
    s = Stubs(tmp_path)
    token, ca = base64.b64encode(b"tok-123").decode(), base64.b64encode(b"CA").decode()
    applied = tmp_path / "applied.json"
    s.add("kubectl", f"""case "$*" in
  *"jsonpath={{.data.token}}"*) echo {token} ;;
  *"ca\\\\.crt"*) echo {ca} ;;
  *apply*) cat > {applied} ;;
esac""")
    s.add("docker", "echo 172.18.0.4")
    proc = run_dash("scripts/deploy/argocd-clusters.sh", "prod-us-east-1", "prod-eu-west-1", "eu", env=s.env())
    assert proc.returncode == 0, proc.stderr
    secret = json.loads(applied.read_text())
    assert secret["stringData"]["server"] == "https://172.18.0.4:6443"
    assert json.loads(secret["stringData"]["config"])["bearerToken"] == "tok-123"
    apply = next(c for c in s.calls() if "apply" in c)
    # Server-side: no last-applied-configuration annotation keeps a copy of the token.
    assert "--server-side" in apply, apply
    proc = run_dash("scripts/deploy/argocd-clusters.sh", "prod-us-east-1", "prod-eu-west-1",
                    env=s.env(EU_API_SERVER="https://ABC.gr7.eu-west-1.eks.amazonaws.com"))
    assert json.loads(applied.read_text())["stringData"]["server"] == "https://ABC.gr7.eu-west-1.eks.amazonaws.com"


def test_rollout_canary_replaces_the_template(tmp_path):
    s = Stubs(tmp_path)
    ro = {"metadata": {"name": "echo"}, "spec": {"template": {"metadata": {"labels": {"version": "v1"}},
                                                              "spec": {"containers": [{"name": "echo", "env": []}]}}}}
    replaced = tmp_path / "replaced.json"
    s.add("kubectl", f"""case "$*" in
  *"get rollout"*) echo '{json.dumps(ro)}' ;;
  *replace*) cat > {replaced} ;;
esac""")
    proc = run_dash("scripts/deploy/rollout-canary.sh", "prod-us-east-1", "v2", "--bad", env=s.env())
    assert proc.returncode == 0, proc.stderr
    out = json.loads(replaced.read_text())
    assert out["spec"]["template"]["metadata"]["labels"]["version"] == "v2"
    assert {"name": "DEFAULT_FAULTS", "value": "status=503:20"} in out["spec"]["template"]["spec"]["containers"][0]["env"]
    assert run_dash("scripts/deploy/rollout-canary.sh", "c", "V2!", env=s.env()).returncode == 2
    # A failed read replaces nothing.
    s.add("kubectl", 'case "$*" in *"get rollout"*) exit 1 ;; *replace*) echo replaced ;; esac')
    replaced.unlink()
    assert run_dash("scripts/deploy/rollout-canary.sh", "c", "v3", env=s.env()).returncode != 0
    assert not replaced.exists()


def test_load_run_collects_the_result(tmp_path):
    s = Stubs(tmp_path)
    report = json.dumps({"format": "loadgen", "exit_code": 0})
    s.add("kubectl", f"""case "$*" in
  kustomize*) exec {shutil.which('kubectl') or 'false'} "$@" ;;
  *"get job"*) echo "Complete " ;;
  *"get pods"*) echo pod/loadgen-abc ;;
  *"logs"*) echo "starting"; echo '{report}' ;;
  *"-o jsonpath"*) echo 0 ;;
esac""")
    proc = run_dash("scripts/deploy/load-run.sh", "prod-us-east-1", "us", "single", str(tmp_path / "out"),
                    env=s.env(PATH=f"{s.dir}:{ROOT / '.venv' / 'bin'}:{os.environ['PATH']}"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert json.loads((tmp_path / "out" / "us-loadgen-abc.json").read_text())["exit_code"] == 0
    apply = next(c for c in s.calls() if "apply" in c)
    assert "load-mode in (shared,single)" in apply


def test_gitops_bump_never_rebases_over_a_newer_commit(tmp_path):
    work = repo_copy(tmp_path)
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(tmp_path / "origin.git")], check=True)
    subprocess.run(["git", "-C", str(work), "remote", "add", "origin", str(tmp_path / "origin.git")], check=True)
    # Someone pushes a newer commit after this build began.
    other = tmp_path / "other"
    subprocess.run(["git", "clone", "-q", str(tmp_path / "origin.git"), str(other)], check=True)
    (other / "NEWER").write_text("x")
    subprocess.run(["git", "-C", str(other), "-c", "user.name=t", "-c", "user.email=t@example.invalid",
                    "commit", "-qm", "newer", "--allow-empty"], check=True)
    subprocess.run(["git", "-C", str(other), "push", "-q", "origin", "HEAD:main"], check=True)
    newer = subprocess.run(["git", "-C", str(tmp_path / "origin.git"), "rev-parse", "main"],
                           capture_output=True, text=True).stdout
    env = dict(os.environ, GIT_AUTHOR_NAME="ci", GIT_AUTHOR_EMAIL="ci@example.invalid",
               GIT_COMMITTER_NAME="ci", GIT_COMMITTER_EMAIL="ci@example.invalid")
    proc = run_dash("scripts/deploy/gitops-bump.sh", "ghcr.io/alice", "0ld0ld0ld0ld", "--push", env=env, cwd=work)
    assert proc.returncode == 0, proc.stderr
    assert "not pushed" in proc.stderr
    after = subprocess.run(["git", "-C", str(tmp_path / "origin.git"), "rev-parse", "main"],
                           capture_output=True, text=True).stdout
    assert after == newer, "the older tag was pushed over the newer commit"


@pytest.mark.parametrize("script", sorted(EXECUTED))
def test_each_listed_script_has_its_test(script):
    assert EXECUTED[script] in globals(), EXECUTED[script]


def python39() -> str | None:
    """A real 3.9 interpreter (not a version manager's shim, which may refuse to run it)."""
    pyenv = sorted(Path.home().glob(".pyenv/versions/3.9*/bin/python3.9"))
    if pyenv:
        return str(pyenv[-1])
    found = shutil.which("python3.9")
    return found if found and "shims" not in found else None


def test_trainee_python_compiles_and_starts_on_a_real_3_9(tmp_path):
    """Beyond vermin's reading: a real 3.9 compiles each file and runs what every task
    runs first (course_config.py get TAG) and the lab checks' entry point."""
    py = python39()
    if py is None:
        pytest.skip("no python3.9 here; test_trainee_python_runs_on_3_9 still holds")
    for p in TRAINEE_PY:
        proc = subprocess.run([py, "-m", "py_compile", str(ROOT / p)], capture_output=True, text=True,
                              env=dict(os.environ, PYTHONPYCACHEPREFIX=str(tmp_path)))
        assert proc.returncode == 0, f"{p}: {proc.stderr}"
    tag = subprocess.run([py, "scripts/deploy/course_config.py", "get", "TAG"], cwd=ROOT, capture_output=True, text=True)
    assert tag.returncode == 0 and tag.stdout.strip(), tag.stderr
    helped = subprocess.run([py, "scripts/verify/labs.py", "--help"], cwd=ROOT, capture_output=True, text=True)
    assert helped.returncode == 0 and "lab" in helped.stdout, helped.stderr
