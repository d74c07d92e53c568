#!/usr/bin/env python3
"""What TLS costs loadgen per request on kept-alive connections, against plain HTTP.

One nginx (one process, pinned to core 1) listens twice: plain HTTP and TLS
(TLS 1.3, a P-256 certificate made by openssl for 127.0.0.1). loadgen, pinned to
core 0, runs the same open-loop rate against each, alternating plain and TLS
`--rounds` times, so background load hits both sides. Per run: loadgen's whole
process user+system CPU (wait4) divided by the responses it counted, and its p50,
p99 and the handshakes it reports. Prints a Markdown table and the ratio's median
and spread. Loopback only; every run is bounded by --duration plus a kill deadline.

    python3 benches/tls_vs_plain.py --loadgen target/release/loadgen --rps 5000
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port: int, proc: subprocess.Popen, limit: float = 10) -> None:
    end = time.monotonic() + limit
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise SystemExit(f"nginx exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on 127.0.0.1:{port}")


def start_nginx(work: Path) -> tuple[subprocess.Popen, int, int, Path]:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    crt, key = work / "server.crt", work / "server.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-addext", "basicConstraints=critical,CA:FALSE",
                    "-keyout", str(key), "-out", str(crt)], check=True, capture_output=True)
    plain, tls = free_port(), free_port()
    d = work
    conf = f"""daemon off; master_process off; worker_processes 1; pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off; keepalive_requests 1000000;
  client_body_temp_path {d}/b; proxy_temp_path {d}/p; fastcgi_temp_path {d}/f; uwsgi_temp_path {d}/u; scgi_temp_path {d}/s;
  ssl_protocols TLSv1.3; ssl_certificate {crt}; ssl_certificate_key {key};
  server {{
    listen 127.0.0.1:{plain}; listen 127.0.0.1:{tls} ssl;
    location / {{ add_header x-echo-region local; add_header x-echo-version v1; default_type text/plain;
                 return 200 "region=local version=v1 pod=nginx\\n"; }}
  }}
}}
"""
    (work / "nginx.conf").write_text(conf)
    proc = subprocess.Popen(["taskset", "-c", "1", nginx, "-p", str(work), "-c", str(work / "nginx.conf")],
                            stdout=subprocess.DEVNULL)
    wait_listening(plain, proc)
    wait_listening(tls, proc)
    return proc, plain, tls, crt


def run_loadgen(exe: str, url: str, cacert: Path, rps: int, duration: int, work: Path) -> dict:
    out = work / "r.json"
    out.unlink(missing_ok=True)
    args = ["taskset", "-c", "0", exe, "--target", f"t={url}", "--rps", str(rps), "--duration", f"{duration}s",
            "--no-progress", "--threads", "1", "--json", str(out)]
    if url.startswith("https"):
        args += ["--cacert", str(cacert)]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + duration + 30
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() > deadline:
            proc.kill()
            raise SystemExit(f"loadgen against {url} did not finish")
        time.sleep(0.05)
    r = json.loads(out.read_text())
    if not r["groups"]:
        raise SystemExit(f"no answers from {url}: {json.dumps(r['targets'][0])[-300:]}")
    t = r["targets"][0]
    a = t["accounting"]
    answered = a["ok"] + sum(a["http_errors"].values())
    g = [x for x in r["groups"] if x["status_class"] == "2xx"][0]
    return {"cpu_us": (usage.ru_utime + usage.ru_stime) * 1e6 / max(answered, 1), "answered": answered,
            "failed": a["scheduled"] - a["ok"], "p50_us": g["corrected"]["p50"], "p99_us": g["corrected"]["p99"],
            "handshakes": t["connections"].get("tls_handshakes", 0), "opened": t["connections"]["opened"]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--loadgen", default="target/release/loadgen")
    ap.add_argument("--rps", type=int, default=5000)
    ap.add_argument("--duration", type=int, default=8, help="seconds per run")
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="tls-bench-") as tmp:
        work = Path(tmp)
        nginx, plain, tls, crt = start_nginx(work)
        rows = []
        try:
            for i in range(a.rounds):
                for kind, url in (("plain", f"http://127.0.0.1:{plain}/"), ("tls", f"https://127.0.0.1:{tls}/")):
                    rows.append((i, kind, run_loadgen(a.loadgen, url, crt, a.rps, a.duration, work)))
        finally:
            nginx.terminate()
            nginx.wait(timeout=10)
    print(f"loadgen {a.rps} rps x {a.duration}s, nginx `return 200` over loopback, {a.rounds} alternating rounds\n")
    print("| round | scheme | CPU µs/req | answered | failed | p50 | p99 | connections | handshakes |")
    print("|---|---|---|---|---|---|---|---|---|")
    for i, kind, r in rows:
        print(f"| {i + 1} | {kind} | {r['cpu_us']:.1f} | {r['answered']} | {r['failed']} | {r['p50_us']}µs | "
              f"{r['p99_us']}µs | {r['opened']} | {r['handshakes']} |")
    ratios = [t["cpu_us"] / p["cpu_us"] for (_, _, p), (_, _, t) in zip(rows[0::2], rows[1::2])]
    print(f"\nTLS / plain CPU per request: median {statistics.median(ratios):.2f}x, "
          f"range {min(ratios):.2f}-{max(ratios):.2f}x over {len(ratios)} pairs")
    failed = sum(r["failed"] for _, _, r in rows)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
