#!/usr/bin/env python3
"""What hostile peers cost echo-svc and loadgen: peak RSS and open descriptors.

  scripts/bench/hostile_resources.py [--echo BIN] [--loadgen BIN] [--quick]

Runs each attack against fresh processes on loopback (bounded in count and time) and
prints one Markdown row per attack: the attack, the process's RSS before, its peak
during the attack (VmHWM), and its open file descriptors at the peak. Point --echo and
--loadgen at another build (an older commit's) to compare side by side.

  body-stall    300 POSTs to /echo, each 1 byte short of its 1 MiB Content-Length
  unread        150 POSTs of 1 MiB to /echo whose answers are never read
  hops          20 requests of a 1000-hop /call path between two instances
                that allow-list each other
  labels        every ?status= code from 200 to 599 on 4 routes and 4 methods, then
                the size of /metrics
  versions      loadgen against a server that answers with a new version each time
                (10,000 distinct), 5000 rps for 4 s
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def status(pid: int) -> dict[str, int]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        k, _, v = line.partition(":")
        if k in ("VmRSS", "VmHWM"):
            out[k] = int(v.split()[0])  # kB
    out["fds"] = len(os.listdir(f"/proc/{pid}/fd"))
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 20) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on {port}")


def start_echo(binary: str, port: int, *extra: str) -> subprocess.Popen:
    proc = subprocess.Popen([binary, "--bind", "127.0.0.1", "--port", str(port), "--drain-delay", "0s",
                             "--log-level", "error", *extra],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port)
    return proc


def mib(kb: int) -> str:
    return f"{kb / 1024:.1f} MiB"


def row(name: str, before: dict, peak: dict, note: str = "") -> str:
    return f"| {name} | {mib(before['VmRSS'])} | {mib(peak['VmHWM'])} | {peak['fds']} | {note} |"


def body_stall(echo: str) -> str:
    port = free_port()
    proc = start_echo(echo, port)
    before = status(proc.pid)
    socks = []
    body = b"a" * (1024 * 1024 - 1)
    for _ in range(300):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 1048576\r\n\r\n")
        s.setblocking(False)
        try:
            s.sendall(body)
        except BlockingIOError:
            pass
        socks.append(s)
    return settle_and_close(proc, socks, "300 stalled 1 MiB bodies", before)


def settle_and_close(proc, socks, label: str, before) -> str:
    """Lets the server take the load in, reads its peak, then closes everything."""
    time.sleep(2)
    peak = status(proc.pid)
    for s in socks:
        s.close()
    proc.terminate()
    proc.wait(timeout=30)
    return row(label, before, peak)


def unread(echo: str) -> str:
    port = free_port()
    proc = start_echo(echo, port, "--max-body-bytes", "1048576")
    before = status(proc.pid)
    socks = []
    body = b"b" * (1024 * 1024)
    for _ in range(150):
        s = socket.create_connection(("127.0.0.1", port))
        s.settimeout(5)
        try:
            s.sendall(b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 1048576\r\n\r\n" + body)
        except OSError:
            pass
        socks.append(s)
    return settle_and_close(proc, socks, "150 unread 1 MiB /echo answers", before)


def hops(echo: str) -> str:
    pa, pb = free_port(), free_port()
    a = start_echo(echo, pa, "--region", "us", "--upstream", f"eu=http://127.0.0.1:{pb}")
    b = start_echo(echo, pb, "--region", "eu", "--upstream", f"us=http://127.0.0.1:{pa}")
    before = status(a.pid)
    path = "/call/eu/call/us" * 500
    max_fds = 0

    def one() -> None:
        try:
            with socket.create_connection(("127.0.0.1", pa), timeout=60) as s:
                s.sendall(f"GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n".encode())
                while s.recv(65536):
                    pass
        except OSError:
            pass

    threads = [threading.Thread(target=one) for _ in range(20)]
    for t in threads:
        t.start()
    end = time.monotonic() + 60
    while any(t.is_alive() for t in threads) and time.monotonic() < end:
        max_fds = max(max_fds, status(a.pid)["fds"])
        time.sleep(0.05)
    peak = status(a.pid)
    peak["fds"] = max(max_fds, peak["fds"])
    for p in (a, b):
        p.terminate()
        p.wait(timeout=30)
    return row("20 requests of a 1000-hop /call loop", before, peak, "fds: the most seen during the attack")


def labels(echo: str) -> str:
    port = free_port()
    proc = start_echo(echo, port)
    before = status(proc.pid)
    with socket.create_connection(("127.0.0.1", port)) as s:
        f = s.makefile("rb")
        for method in ("GET", "POST", "PUT", "DELETE"):
            for route in ("/", "/echo", "/version", "/nope"):
                for code in range(200, 600):
                    s.sendall(f"{method} {route}?status={code} HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n\r\n".encode())
                    # Read the answer (headers, then content-length bytes).
                    length = 0
                    while (line := f.readline()) not in (b"\r\n", b""):
                        if line.lower().startswith(b"content-length:"):
                            length = int(line.split(b":")[1])
                    f.read(length)
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(b"GET /metrics HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        size = 0
        while chunk := s.recv(65536):
            size += len(chunk)
    peak = status(proc.pid)
    proc.terminate()
    proc.wait(timeout=30)
    return row("6,400 requests with distinct status/route/method", before, peak, f"/metrics is {size / 1e6:.2f} MB")


def versions(loadgen: str) -> str:
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(1024)
    port = srv.getsockname()[1]
    counter = [0]
    lock = threading.Lock()
    stop = threading.Event()

    def serve(c: socket.socket) -> None:
        buf = b""
        with c:
            while not stop.is_set():
                try:
                    data = c.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                buf += data
                out = b""
                while b"\r\n\r\n" in buf:
                    _, buf = buf.split(b"\r\n\r\n", 1)
                    with lock:
                        n = counter[0] % 10_000
                        counter[0] += 1
                    out += (f"HTTP/1.1 200 OK\r\nx-echo-region: us\r\nx-echo-version: v{n}\r\n"
                            f"content-length: 2\r\n\r\nok").encode()
                try:
                    c.sendall(out)
                except OSError:
                    return

    def accept() -> None:
        srv.settimeout(0.5)
        while not stop.is_set():
            try:
                c, _ = srv.accept()
            except OSError:
                continue
            threading.Thread(target=serve, args=(c,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    proc = subprocess.Popen([loadgen, "--target", f"t=http://127.0.0.1:{port}/", "--rps", "5000",
                             "--duration", "4s", "--no-progress"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.3)
    before = status(proc.pid)
    peak = dict(before, VmHWM=before.get("VmHWM", before["VmRSS"]))
    while proc.poll() is None:
        try:
            s = status(proc.pid)
        except FileNotFoundError:
            break
        # An exiting process reports no memory any more: keep the last full reading.
        if "VmHWM" in s:
            peak = s
        time.sleep(0.1)
    stop.set()
    srv.close()
    return row("loadgen vs 10,000 distinct versions (20,000 responses)", before, peak)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--echo", default=str(ROOT / "target" / "release" / "echo-svc"))
    ap.add_argument("--loadgen", default=str(ROOT / "target" / "release" / "loadgen"))
    args = ap.parse_args()
    print(f"echo-svc: {args.echo}\nloadgen: {args.loadgen}\n")
    print("| attack | RSS before | peak RSS | open fds at peak | note |")
    print("|---|---|---|---|---|")
    for attack in (body_stall, unread, hops, labels):
        print(attack(args.echo), flush=True)
    print(versions(args.loadgen), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
