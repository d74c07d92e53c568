"""What a trainee's machine runs, with no apt, no sudo and no Docker engine.

Each test runs the real `task` with a PATH of its own: stubs that record their
arguments (apt-get and sudo fail as well, as on a Mac), and links to only the
few system programs the tasks call. Scripts run by their `#!/bin/sh` line,
which is dash here: what passes under dash passes under macOS's /bin/sh.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT

SYSTEM = ["sh", "dirname", "tr", "sed", "mkdir", "cat", "grep", "rm", "head", "uname", "env"]


def task_exe() -> str:
    exe = shutil.which("task")
    assert exe, "go-task is not installed (scripts/install-tools.sh)"
    return exe


class Bin:
    """A PATH directory of stubs and links; every stub appends its argv to log."""

    def __init__(self, tmp: Path) -> None:
        self.dir = tmp / "bin"
        self.dir.mkdir()
        self.log = tmp / "calls.log"
        self.log.write_text("")
        for name in SYSTEM:
            real = shutil.which(name)
            assert real, name
            (self.dir / name).symlink_to(real)
        # The interpreter itself, not a venv's or a version manager's shim: as a system python3.
        (self.dir / "python3").symlink_to(os.path.realpath(sys.executable))

    def stub(self, name: str, body: str = "exit 0") -> None:
        path = self.dir / name
        path.write_text(f'#!/bin/sh\necho "{name} $*" >> "{self.log}"\n{body}\n')
        path.chmod(0o755)

    def calls(self) -> list[str]:
        return [line for line in self.log.read_text().splitlines() if line]

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("PATH", "VIRTUAL_ENV")}
        env.update(PATH=str(self.dir), NO_COLOR="1", HOME=os.environ.get("HOME", "/tmp"), **extra)
        return env


def run_task(b: Bin, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([task_exe(), *args], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env=b.env(**env))


@pytest.fixture
def machine(tmp_path: Path) -> Bin:
    b = Bin(tmp_path)
    # A Mac: no apt, no sudo (both fail loudly if anything calls them).
    b.stub("apt-get", "exit 1")
    b.stub("sudo", "exit 1")
    return b


PREREQS = ["docker", "kind", "kubectl", "helm", "git", "openssl", "cargo"]


def test_task_tools_makes_the_venv_and_never_calls_apt_or_sudo(machine: Bin, tmp_path: Path) -> None:
    for tool in PREREQS:
        machine.stub(tool)
    (machine.dir / "task").symlink_to(task_exe())
    venv = tmp_path / "venv"
    out = run_task(machine, "tools", VENV=str(venv))
    assert out.returncode == 0, out.stdout + out.stderr
    assert not [c for c in machine.calls() if c.split()[0] in ("apt-get", "sudo")], machine.calls()
    # The environment is real: the course's scripts import yaml from it.
    check = subprocess.run([str(venv / "bin" / "python"), "-c", "import yaml"], capture_output=True)
    assert check.returncode == 0, check.stderr
    assert "ready" in out.stderr


def test_task_tools_names_what_is_missing_and_how_to_get_it(machine: Bin, tmp_path: Path) -> None:
    for tool in PREREQS:
        if tool not in ("kind", "helm"):
            machine.stub(tool)
    (machine.dir / "task").symlink_to(task_exe())
    venv = tmp_path / "venv"
    out = run_task(machine, "tools", VENV=str(venv))
    assert out.returncode != 0, out.stdout + out.stderr
    assert "MISSING kind: macOS: brew install kind" in out.stderr, out.stderr
    assert "MISSING helm: macOS: brew install helm" in out.stderr, out.stderr
    assert "2 missing" in out.stderr
    assert not [c for c in machine.calls() if c.split()[0] in ("apt-get", "sudo")], machine.calls()


@pytest.mark.parametrize("printed, too_old", [
    ("Task version: v3.29.1 (h1:x)", True),   # before wildcard task names: verify:labN would not exist
    ("Task version: 2.8.1", True),
    ("Task version: v3.41.0 (h1:x)", False),  # Homebrew's, as printed
    ("3.54.0+pypi", False),                   # pip's go-task-bin
])
def test_task_tools_refuses_a_go_task_too_old_for_the_wildcard_lab_checks(
        machine: Bin, tmp_path: Path, printed: str, too_old: bool) -> None:
    for tool in PREREQS:
        machine.stub(tool)
    machine.stub("task", f'echo "{printed}"')
    out = subprocess.run(["sh", "scripts/tools.sh"], cwd=ROOT, capture_output=True, text=True, timeout=300,
                         env=machine.env(VENV=str(tmp_path / "venv")))
    if too_old:
        assert out.returncode == 1, out.stderr
        assert "is too old: the course's Taskfile needs 3.40 or newer" in out.stderr, out.stderr
    else:
        assert out.returncode == 0, out.stderr
        assert "too old" not in out.stderr


def engine(b: Bin, arch: str, api: str) -> None:
    """A docker stub that answers `version --format` like an engine of arch and API."""
    b.stub("docker", f"""case "$*" in
  *Server.Arch*) echo {arch} ;;
  *Server.APIVersion*) echo {api} ;;
  image\\ save*) for a in "$@"; do case "$prev" in -o) : > "$a" ;; esac; prev=$a; done ;;
esac""")


def test_dry_image_kind_saves_for_the_nodes_platform_then_loads_archives(machine: Bin) -> None:
    engine(machine, "arm64", "1.51")
    machine.stub("kind")
    out = run_task(machine, "--dry", "image:kind")
    assert out.returncode == 0, out.stderr
    text = out.stdout + out.stderr
    assert "kind load image-archive target/kind-images/echo-svc.tar --name us" in text, text
    assert "kind load image-archive target/kind-images/loadgen.tar --name eu" in text, text
    assert "kind load docker-image" not in text
    # A dry run asks no engine anything (the platform is read when the archive is saved).
    assert not machine.calls(), machine.calls()


@pytest.mark.parametrize("arch,api,flag", [("arm64", "1.51", "--platform linux/arm64"),
                                           ("x86_64", "1.51", "--platform linux/amd64"),
                                           ("amd64", "1.45", None)])
def test_image_kind_builds_saves_then_loads_in_that_order(machine: Bin, arch: str, api: str,
                                                          flag: str | None) -> None:
    engine(machine, arch, api)
    machine.stub("kind")
    machine.stub("git", "echo 0123456789ab")
    out = run_task(machine, "image:kind")
    assert out.returncode == 0, out.stdout + out.stderr
    calls = [c for c in machine.calls() if not c.startswith("docker version") and not c.startswith("git")]
    kinds = [c.split()[0] + " " + c.split()[1] + " " + c.split()[2] for c in calls]
    # Both builds, then both saves, then the loads: a load never reads an archive not yet written.
    assert kinds == ["docker build --target"] * 2 + ["docker image save"] * 2 + ["kind load image-archive"] * 4, calls
    saves = [c for c in calls if c.startswith("docker image save")]
    for s in saves:
        if flag:
            assert flag in s, s
        else:
            assert "--platform" not in s, s
    loads = [c for c in calls if c.startswith("kind load")]
    assert sorted(c.split()[-1] for c in loads) == ["eu", "eu", "us", "us"]


def test_saving_stops_when_no_engine_answers(machine: Bin, tmp_path: Path) -> None:
    machine.stub("docker", 'case "$*" in build*) exit 0 ;; *) exit 1 ;; esac')
    dash = shutil.which("dash")
    assert dash, "dash is not installed (scripts/install-tools.sh)"
    out = subprocess.run([dash, "scripts/kind/save-image.sh", "repo/echo-svc:1", str(tmp_path / "a.tar")], cwd=ROOT,
                         capture_output=True, text=True, timeout=60, env=machine.env())
    assert out.returncode == 1, out.stderr
    assert "Docker engine does not answer" in out.stderr, out.stderr
    assert not (tmp_path / "a.tar").exists()
    assert not [c for c in machine.calls() if "save" in c], machine.calls()
