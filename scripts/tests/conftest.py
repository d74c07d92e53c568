"""Shared helpers for the deploy/ and task tests: real echo-svc and loadgen
processes on loopback, built by cargo if the workspace has not built them."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).resolve().parent))


def _binary(name: str) -> Path:
    path = ROOT / "target" / "debug" / name
    if not path.exists():
        subprocess.run(["cargo", "build", "--locked", "-p", "echo-svc", "-p", "loadgen"], cwd=ROOT, check=True)
    return path


def echo_bin() -> Path:
    return _binary("echo-svc")


def loadgen_bin() -> Path:
    return _binary("loadgen")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 20) -> None:
    """Until url answers 200 (bounded): a started server is ready, not assumed."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError as err:
            last = err
        time.sleep(0.05)
    raise TimeoutError(f"{url} not ready after {timeout}s: {last}")


class Echo:
    def __init__(self, region: str, version: str, *extra: str) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen([str(echo_bin()), "--region", region, "--app-version", version,
                                      "--bind", "127.0.0.1", "--port", str(self.port), "--drain-delay", "0s",
                                      *extra], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_http(f"http://127.0.0.1:{self.port}/healthz")
        except TimeoutError:
            self.stop()
            raise

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def start_echo(region: str, version: str, *extra: str) -> Echo:
    return Echo(region, version, *extra)
