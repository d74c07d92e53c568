#!/usr/bin/env python3
"""Check that the rendered manifests agree with the real echo-svc and loadgen.

Every port, probe path, env var name, flag and metric the manifests use must
exist in the binaries, as they are now:

* flags and env var names: from the binaries' own `--help` (clap prints every
  flag and its `[env: NAME=]` fallback); `$(VAR)` helpers that only feed
  args expansion are allowed;
* ports: echo's container ports must be the port it really listens on (PORT,
  else the `--port` default from `--help`) and ADMIN_PORT; loadgen serves none;
* paths: echo-svc is started on loopback with the Deployment's own env values,
  and every probe / scrape path must answer something other than 404;
* metrics: every metric and label the alerts, dashboard and canary analysis
  query must appear in echo-svc's /metrics (plus Prometheus' target labels);
* shutdown: after SIGTERM echo-svc must exit within the pod's
  terminationGracePeriodSeconds;
* loadgen: each Job's exact args run for real against that loopback echo-svc
  (rate and duration scaled down, targets mapped to loopback); a usage error
  (exit 2) fails the check, an SLO verdict (0 or 99) passes it.

`--self-test` plants known mistakes in a copy of the manifests and fails unless
every one is reported.

Binaries: ECHO_SVC_BIN and LOADGEN_BIN, else `cargo build -p echo-svc -p loadgen`.
Traffic goes to 127.0.0.1 only, bounded in count and time.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
# Ports the Istio sidecar itself serves; NetworkPolicies may name them.
ISTIO_PORTS = {15020, 15021, 15090}
# Images that are not ours, allowed in the manifests (pinned by the validator):
# the mesh client the lab checks exec into (echo's image has no shell).
THIRD_PARTY = {"curlimages/curl"}
# Labels Prometheus adds to every scraped series (target and pod labels).
TARGET_LABELS = {"job", "namespace", "instance", "pod", "service", "container", "endpoint"}
PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool",
                "and", "or", "unless"}


class Problems:
    def __init__(self, quiet: bool = False) -> None:
        self.items: list[str] = []
        self.passed = 0
        self.quiet = quiet

    def fail(self, msg: str) -> None:
        self.items.append(msg)
        if not self.quiet:
            print(f"  FAIL {msg}", flush=True)

    def ok(self, msg: str | None = None) -> None:
        self.passed += 1
        if msg and not self.quiet:
            print(f"  ok   {msg}", flush=True)


# --- the binaries -----------------------------------------------------------------

class Binary:
    """What a binary's --help says it accepts."""

    def __init__(self, name: str, path: Path) -> None:
        self.name = name
        self.path = path
        self.help = self._help([])
        self.flags = set(re.findall(r"(?<![\w-])(--[a-z0-9][a-z0-9-]*)", self.help))
        self.envs = set(re.findall(r"\[env:\s*([A-Za-z0-9_]+)=", self.help))
        self.subcommands = set()
        in_cmds = False
        for line in self.help.splitlines():
            if re.match(r"^(Commands|Subcommands):", line):
                in_cmds = True
                continue
            if in_cmds:
                match = re.match(r"^\s{2}([a-z][a-z0-9-]*)\s", line)
                if match:
                    self.subcommands.add(match.group(1))
                elif line.strip() and not line.startswith(" "):
                    in_cmds = False

    def _help(self, sub: list[str]) -> str:
        # A clean environment: clap prints `[env: NAME=value]` for set variables.
        proc = subprocess.run([str(self.path), *sub, "--help"], capture_output=True, text=True,
                              env={"PATH": "/usr/bin:/bin"}, timeout=30, check=False)
        if proc.returncode != 0:
            raise SystemExit(f"check_binaries: `{self.path} --help` exited {proc.returncode}: "
                             f"{proc.stderr.strip()}")
        return proc.stdout

    def default(self, flag: str) -> str | None:
        """The `[default: X]` shown in --help for a flag."""
        lines = self.help.splitlines()
        for i, line in enumerate(lines):
            if re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", line):
                block = [line]
                for nxt in lines[i + 1:]:
                    if re.match(r"^\s*(-\w,\s*)?--[a-z]", nxt):
                        break
                    block.append(nxt)
                match = re.search(r"\[default:\s*([^\]]+)\]", " ".join(block))
                return match.group(1).strip() if match else None
        return None


def build_binaries() -> dict[str, Path]:
    paths = {}
    env_names = {"echo-svc": "ECHO_SVC_BIN", "loadgen": "LOADGEN_BIN"}
    missing = [n for n, e in env_names.items() if not os.environ.get(e)]
    if missing:
        target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
        print(f"  building {', '.join(missing)} (cargo build, debug) into {target}", flush=True)
        proc = subprocess.run(["cargo", "build", "--quiet", "--bins",
                               *[a for n in missing for a in ("-p", n)]], cwd=ROOT, check=False)
        if proc.returncode != 0:
            raise SystemExit("check_binaries: cargo build failed; set ECHO_SVC_BIN/LOADGEN_BIN "
                             "or fix the build")
        for name in missing:
            paths[name] = target / "debug" / name
    for name, env in env_names.items():
        if os.environ.get(env):
            paths[name] = Path(os.environ[env])
        if not paths[name].is_file():
            raise SystemExit(f"check_binaries: {paths[name]} does not exist")
    return paths


# --- the manifests ----------------------------------------------------------------

def load_rendered(rendered: Path) -> dict[str, list[dict]]:
    out = {}
    for file in sorted(rendered.glob("*.yaml")):
        out[file.stem.replace("__", "/")] = [d for d in yaml.safe_load_all(file.read_text()) if d]
    return out


def workloads(docs: list[dict]):
    for doc in docs:
        if doc.get("kind") in ("Deployment", "Rollout", "Job"):
            pod = doc["spec"]["template"]["spec"]
            for c in pod.get("containers", []):
                yield doc, pod, c


def which_binary(container: dict) -> str | None:
    image = container.get("image", "").rsplit("/", 1)[-1].split(":")[0].split("@")[0]
    return image if image in ("echo-svc", "loadgen") else None


def expanded_vars(container: dict) -> set[str]:
    text = " ".join(container.get("command", []) + container.get("args", []))
    return set(re.findall(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", text))


def env_value(container: dict, name: str) -> str | None:
    for e in container.get("env", []):
        if e["name"] == name:
            return e.get("value")
    return None


def static_checks(renders: dict[str, list[dict]], bins: dict[str, Binary], p: Problems) -> dict:
    """Flags, env names and ports. Returns what the live checks need."""
    paths: dict[str, set[str]] = {}   # path -> where it is used
    for where, docs in renders.items():
        for doc, pod, c in workloads(docs):
            name = which_binary(c)
            if name is None:
                image = c.get("image", "").split("@")[0].rsplit(":", 1)[0]
                if image in THIRD_PARTY:
                    p.ok()
                else:
                    p.fail(f"{where}: {doc['kind']}/{doc['metadata']['name']}: container {c['name']} "
                           f"runs image {c.get('image')!r}, which is neither echo-svc, loadgen nor one "
                           f"of {sorted(THIRD_PARTY)}")
                continue
            b = bins[name]
            what = f"{where}: {doc['kind']}/{doc['metadata']['name']} ({name})"
            helpers = expanded_vars(c)
            for e in c.get("env", []):
                env = e["name"]
                if env in b.envs or env in helpers:
                    p.ok()
                elif name == "loadgen" and re.fullmatch(r"LOADGEN_TARGET_[A-Z0-9_]+", env) \
                        and re.search(r"LOADGEN_TARGET_(?!S\b|S_FILE\b)", b.help):
                    p.ok()
                else:
                    p.fail(f"{what}: env {env} is not read by {name} (--help lists: "
                           f"{', '.join(sorted(b.envs)) or 'none'})")
            for ef in c.get("envFrom", []):
                p.fail(f"{what}: envFrom {ef} hides env names from this check; use env")
            args = c.get("command", [])[1:] + c.get("args", []) if c.get("command") else c.get("args", [])
            if args and not args[0].startswith("-"):
                if args[0] in b.subcommands:
                    p.ok()
                else:
                    p.fail(f"{what}: subcommand {args[0]!r} not in {name} --help")
            for arg in args:
                if arg.startswith("--"):
                    flag = arg.split("=", 1)[0]
                    if flag in b.flags:
                        p.ok()
                    else:
                        p.fail(f"{what}: flag {flag} is not in {name} --help")
            # Ports.
            declared = {pt.get("name"): pt["containerPort"] for pt in c.get("ports", [])}
            if name == "echo-svc":
                main = env_value(c, "PORT") or b.default("--port")
                admin = env_value(c, "ADMIN_PORT")
                listening = {int(main)} if main and main.isdigit() else set()
                if admin and admin.isdigit():
                    listening.add(int(admin))
                for pname, num in declared.items():
                    if num in listening:
                        p.ok()
                    else:
                        p.fail(f"{what}: containerPort {pname}={num}, but echo-svc listens on "
                               f"{sorted(listening)} (PORT/--port default, ADMIN_PORT)")
                main_names = {n for n, v in declared.items() if main and v == int(main)}
                for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                    get = (c.get(probe) or {}).get("httpGet")
                    if not get:
                        continue
                    port = get.get("port")
                    if port in main_names or (main and port == int(main)):
                        p.ok()
                    else:
                        p.fail(f"{what}: {probe} uses port {port!r}, not echo's main port "
                               f"{main} {sorted(main_names)}")
                    paths.setdefault(get["path"], set()).add(f"{what} {probe}")
            elif declared:
                # loadgen serves only --metrics-addr (Prometheus text, /metrics).
                metrics = next((args[i + 1] for i, a in enumerate(args[:-1]) if a == "--metrics-addr"), "")
                mport = metrics.rsplit(":", 1)[-1]
                for pname, num in declared.items():
                    if mport.isdigit() and num == int(mport):
                        p.ok()
                    else:
                        p.fail(f"{what}: loadgen serves only --metrics-addr ({metrics or 'not set'}), "
                               f"but declares port {pname}={num}")
                for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                    get = (c.get(probe) or {}).get("httpGet")
                    if get and (get.get("path") != "/metrics" or declared.get(get.get("port"), get.get("port"))
                                != (int(mport) if mport.isdigit() else None)):
                        p.fail(f"{what}: {probe} must GET /metrics on the --metrics-addr port")
                    elif get:
                        p.ok()
    # Scrape paths and NetworkPolicy ports.
    for where, docs in renders.items():
        for doc in docs:
            if doc.get("kind") in ("ServiceMonitor", "PodMonitor"):
                # Only echo's scrapes are echo's paths (the mesh's PodMonitor
                # reads Envoy's /stats/prometheus, istiod's ServiceMonitor istiod).
                if (doc["spec"].get("selector") or {}).get("matchLabels", {}).get("app") != "echo":
                    continue
                key = "endpoints" if doc["kind"] == "ServiceMonitor" else "podMetricsEndpoints"
                for ep in doc["spec"].get(key, []):
                    paths.setdefault(ep.get("path", "/metrics"), set()).add(
                        f"{where}: {doc['kind']}/{doc['metadata']['name']}")
            if doc.get("kind") == "AuthorizationPolicy":
                mains = set()
                for _d, _pod, c in workloads(docs):
                    if which_binary(c) == "echo-svc":
                        main = env_value(c, "PORT") or bins["echo-svc"].default("--port")
                        mains.add(str(main))
                for rule in doc["spec"].get("rules", []):
                    for to in rule.get("to", []):
                        for port in to.get("operation", {}).get("ports", []):
                            if not mains or port in mains:
                                p.ok()
                            else:
                                p.fail(f"{where}: AuthorizationPolicy/{doc['metadata']['name']}: port "
                                       f"{port} is not echo-svc's serving port {sorted(mains)}")
            if doc.get("kind") == "NetworkPolicy":
                echo_ports = {}
                for d, _pod, c in workloads(docs):
                    # echo's ports, and loadgen's --metrics-addr (checked above).
                    if which_binary(c) in ("echo-svc", "loadgen"):
                        echo_ports.update({pt.get("name"): pt["containerPort"] for pt in c.get("ports", [])})
                for rule in doc["spec"].get("ingress", []):
                    for pt in rule.get("ports", []):
                        port = pt.get("port")
                        if port in echo_ports or port in echo_ports.values() or port in ISTIO_PORTS:
                            p.ok()
                        else:
                            p.fail(f"{where}: NetworkPolicy/{doc['metadata']['name']}: port {port!r} "
                                   f"is neither an echo/loadgen container port nor an Istio sidecar port")
    return {"paths": paths}


def taskfile_checks(bins: dict[str, Binary], p: Problems) -> None:
    """`cargo run -p <bin> -- ARGS` in Taskfile.yml: subcommands and flags exist."""
    taskfile = yaml.safe_load((ROOT / "Taskfile.yml").read_text())
    for name, task in (taskfile.get("tasks") or {}).items():
        for cmd in task.get("cmds", []) if isinstance(task, dict) else []:
            text = cmd if isinstance(cmd, str) else (cmd or {}).get("cmd", "")
            match = re.search(r"-p (echo-svc|loadgen) -- (.*)", text or "")
            if not match:
                continue
            b = bins[match.group(1)]
            args = match.group(2).split()
            helptext = b.help
            if args and not args[0].startswith("-"):
                if args[0] not in b.subcommands:
                    p.fail(f"Taskfile.yml: task {name}: {b.name} has no subcommand {args[0]!r}")
                    continue
                helptext = b._help([args[0]])
            flags = set(re.findall(r"(?<![\w-])(--[a-z0-9][a-z0-9-]*)", helptext))
            for arg in args:
                flag = arg.split("=", 1)[0]
                if flag.startswith("--") and flag not in flags:
                    p.fail(f"Taskfile.yml: task {name}: {b.name} {args[0]} has no flag {flag}")
                else:
                    p.ok()


# --- live checks ------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url: str, timeout: float = 5.0) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode("utf-8", "replace")


def echo_deployment(renders: dict[str, list[dict]]):
    for where in sorted(renders):
        if where.startswith("deploy/overlays/"):
            for doc, pod, c in workloads(renders[where]):
                if doc["kind"] == "Deployment" and which_binary(c) == "echo-svc":
                    return where, doc, pod, c
    raise SystemExit("check_binaries: no echo-svc Deployment in deploy/overlays")


def start_echo(binary: Path, container: dict, extra_env: dict | None = None,
               region: str = "us") -> tuple[subprocess.Popen, int, int]:
    """echo-svc with the Deployment's literal env; fieldRefs get plausible values."""
    port, admin = free_port(), free_port()
    env = {"PATH": "/usr/bin:/bin"}
    for e in container.get("env", []):
        if "value" in e:
            env[e["name"]] = e["value"]
    stand_ins = {"REGION": region, "APP_VERSION": "v1", "POD_NAME": "echo-check",
                 "POD_NAMESPACE": "echo", "NODE_NAME": "node-check", "WORKERS": "1"}
    for e in container.get("env", []):
        if "valueFrom" in e:
            env[e["name"]] = stand_ins.get(e["name"], "x")
    env.update({"PORT": str(port), "BIND_ADDRESS": "127.0.0.1"})
    env.update(extra_env or {})
    if "ADMIN_PORT" in env:
        env["ADMIN_PORT"] = str(admin)
    proc = subprocess.Popen([str(binary)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"check_binaries: echo-svc exited {proc.returncode} at start with the "
                             f"Deployment's env: {proc.stderr.read().strip()[-2000:]}")
        try:
            if http_get(f"http://127.0.0.1:{port}/healthz", 1)[0] == 200:
                return proc, port, admin
        except OSError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise SystemExit("check_binaries: echo-svc did not answer /healthz within 30s")


def promql_refs(renders: dict[str, list[dict]]) -> list[tuple[str, str]]:
    """(where, query) for every PromQL expression the manifests hold."""
    out = []
    for where, docs in renders.items():
        for doc in docs:
            kind, name = doc.get("kind"), doc.get("metadata", {}).get("name")
            if kind == "PrometheusRule":
                for g in doc["spec"]["groups"]:
                    for r in g["rules"]:
                        out.append((f"{where}: PrometheusRule/{name} {r.get('alert') or r.get('record')}",
                                    r["expr"]))
            elif kind == "AnalysisTemplate":
                for m in doc["spec"]["metrics"]:
                    q = m.get("provider", {}).get("prometheus", {}).get("query")
                    if q:
                        out.append((f"{where}: AnalysisTemplate/{name} {m['name']}", q))
            elif kind == "ConfigMap" and (doc["metadata"].get("labels") or {}).get("grafana_dashboard"):
                for file, text in (doc.get("data") or {}).items():
                    dash = json.loads(text)
                    for panel in dash.get("panels", []):
                        for t in panel.get("targets", []):
                            out.append((f"{where}: dashboard {file} panel {panel.get('title')!r}", t["expr"]))
                    for var in dash.get("templating", {}).get("list", []):
                        q = var.get("query")
                        if isinstance(q, dict):
                            q = q.get("query")
                        if var.get("type") == "query" and q:
                            out.append((f"{where}: dashboard {file} variable {var['name']}", q))
    return out


def exposition(text: str) -> dict[str, set[str]]:
    """metric name -> label names, from the Prometheus text format."""
    series: dict[str, set[str]] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?\s", line)
        if match:
            labels = set(re.findall(r"([a-zA-Z_][a-zA-Z0-9_]*)=\"", match.group(3) or ""))
            series.setdefault(match.group(1), set()).update(labels)
    return series


def check_metrics(renders, metrics_text: str, p: Problems) -> None:
    series = exposition(metrics_text)
    extra = set(TARGET_LABELS)
    for docs in renders.values():
        for doc in docs:
            if doc.get("kind") in ("ServiceMonitor", "PodMonitor"):
                extra.update(doc["spec"].get("podTargetLabels", []))
    for where, query in promql_refs(renders):
        # Strip strings so label values and templates are not taken for names.
        bare = re.sub(r'"(?:[^"\\]|\\.)*"', '""', query)
        for metric, body in re.findall(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{([^}]*)\}", bare):
            if ":" in metric or metric in PROMQL_WORDS:
                continue   # recording rule (ours) or a keyword's grouping list
            if metric not in series:
                p.fail(f"{where}: metric {metric} is not exposed by echo-svc "
                       f"(it has: {', '.join(sorted(n for n in series if not n.startswith('process_')))})")
                continue
            for label in re.findall(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)", body):
                if label in series[metric] or label in extra:
                    p.ok()
                else:
                    p.fail(f"{where}: label {label} is on neither {metric} "
                           f"({sorted(series[metric])}) nor the scrape's target labels")
        for label in re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", bare):
            for name in [x.strip() for x in label.split(",") if x.strip()]:
                known = set().union(*series.values()) | extra
                if name in known:
                    p.ok()
                else:
                    p.fail(f"{where}: grouping label {name} is on no echo-svc metric")


def live_echo(renders, bins: dict[str, Path], needs: dict, p: Problems) -> int:
    where, doc, pod, c = echo_deployment(renders)
    print(f"  starting echo-svc with the env of {where} {doc['kind']}/{doc['metadata']['name']}")
    proc, port, admin = start_echo(bins["echo-svc"], c)
    try:
        for path, users in sorted(needs["paths"].items()):
            status = None
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                status, _ = http_get(f"http://127.0.0.1:{port}{path}")
                if status < 500:
                    break
                time.sleep(0.2)
            if status == 200:
                p.ok(f"GET {path} -> {status} (used by {len(users)} probe/scrape settings)")
            else:
                p.fail(f"GET {path} on echo-svc -> {status}; used by {sorted(users)[0]}"
                       + (f" and {len(users) - 1} more" if len(users) > 1 else ""))
        for _ in range(3):
            http_get(f"http://127.0.0.1:{port}/")
        status, text = http_get(f"http://127.0.0.1:{port}/metrics")
        if status != 200:
            p.fail(f"GET /metrics -> {status}")
        else:
            check_metrics(renders, text, p)
        run_loadgen_jobs(renders, bins["loadgen"], port, p)
        job_at_course_rate(renders, bins, c, p)
    finally:
        grace = pod.get("terminationGracePeriodSeconds", 30)
        start = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=grace + 5)
            took = time.monotonic() - start
            if code == 0 and took < grace:
                p.ok(f"SIGTERM: echo-svc drained and exited 0 in {took:.1f}s "
                     f"(< terminationGracePeriodSeconds {grace})")
            else:
                p.fail(f"SIGTERM: echo-svc exited {code} after {took:.1f}s "
                       f"(grace period {grace}s)")
        except subprocess.TimeoutExpired:
            proc.kill()
            p.fail(f"SIGTERM: echo-svc still running after {grace + 5}s; the kubelet would SIGKILL it")
    return port


def run_loadgen_jobs(renders, loadgen: Path, echo_port: int, p: Problems) -> None:
    """Each Job's args, for real, at a tiny rate against loopback echo-svc."""
    seen = set()
    for where in sorted(renders):
        if not where.startswith("deploy/load/") or where.endswith("/base"):
            continue
        for doc, pod, c in workloads(renders[where]):
            if which_binary(c) != "loadgen" or doc["metadata"]["name"] in seen:
                continue
            seen.add(doc["metadata"]["name"])
            args = list(c.get("args", []))
            env = {"PATH": "/usr/bin:/bin"}
            helpers = {}
            for e in c.get("env", []):
                if "value" in e:
                    env[e["name"]] = e["value"]
                else:
                    helpers[e["name"]] = "0"
            # Every target name to loopback: LOADGEN_TARGET_<NAME> for all names.
            targets = []
            for i, a in enumerate(args):
                if a == "--target" and i + 1 < len(args):
                    targets += args[i + 1].split(",")
                elif a.startswith("--target="):
                    targets += a.split("=", 1)[1].split(",")
            for t in targets:
                env[f"LOADGEN_TARGET_{t.split('=')[0].upper()}"] = f"http://127.0.0.1:{echo_port}/"
            with tempfile.TemporaryDirectory() as tmp:
                mounts = {}
                for vm in c.get("volumeMounts", []):
                    vol = next(v for v in pod.get("volumes", []) if v["name"] == vm["name"])
                    cm_name = vol.get("configMap", {}).get("name")
                    cm = next((d for d in renders[where] if d["kind"] == "ConfigMap"
                               and d["metadata"]["name"] == cm_name), None)
                    if cm:
                        local = Path(tmp) / vm["name"]
                        local.mkdir()
                        for key, val in cm.get("data", {}).items():
                            (local / key).write_text(val)
                        mounts[vm["mountPath"].rstrip("/")] = str(local)
                scaled = {"--rps": "40", "--duration": "2s", "--warmup": "0s"}
                out, i = [], 0
                while i < len(args):
                    a = args[i]
                    val = args[i + 1] if i + 1 < len(args) else None
                    if a in scaled:
                        out += [a, scaled[a]]
                        i += 2
                        continue
                    if a == "--json":
                        out += [a, str(Path(tmp) / "result.json")]
                        i += 2
                        continue
                    for mount, local in mounts.items():
                        if a.startswith(mount + "/"):
                            a = local + a[len(mount):]
                    a = re.sub(r"\$\(([A-Za-z0-9_]+)\)", lambda m: helpers.get(m.group(1), m.group(0)), a)
                    out.append(a)
                    i += 1
                    del val
                what = f"{where}: Job/{doc['metadata']['name']}"
                try:
                    proc = subprocess.run([str(loadgen), *out], env=env, capture_output=True,
                                          text=True, timeout=60, check=False)
                except subprocess.TimeoutExpired:
                    p.fail(f"{what}: loadgen {' '.join(out)} did not finish within 60s")
                    continue
                if proc.returncode in (0, 99):
                    p.ok(f"{what}: loadgen ran the Job's args (scaled to 40 rps x 2s) -> exit "
                         f"{proc.returncode}")
                    if not (Path(tmp) / "result.json").is_file():
                        p.fail(f"{what}: loadgen wrote no --json result")
                else:
                    p.fail(f"{what}: loadgen {' '.join(out)} exited {proc.returncode}: "
                           f"{proc.stderr.strip()[-600:]}")


# The course's load: 5000 rps over both regions, the remote one this far away.
COURSE_RATE = "5000"
REMOTE_DELAY = "100ms"


def job_at_course_rate(renders, bins: dict[str, Path], echo_container: dict, p: Problems) -> None:
    """The single Job's own args at its own rate (only shorter), the local region on one
    echo-svc and the remote one on another that answers REMOTE_DELAY late, as a region
    that far away would: the Job must pass its SLOs with nothing dropped and loadgen not
    limiting the run (a pool too small for rate x latency would show here)."""
    where = "deploy/load/us"
    job = next((d for d in renders.get(where, []) if d["kind"] == "Job"
                and d["metadata"]["name"] == "loadgen"), None)
    if job is None:
        p.fail(f"{where}: no Job/loadgen to run at the course's rate")
        return
    pod = job["spec"]["template"]["spec"]
    c = next(x for x in pod["containers"] if x["name"] == "loadgen")
    args = list(c.get("args", []))
    if args[args.index("--rps") + 1] != COURSE_RATE:
        p.fail(f"{where}: Job/loadgen runs --rps {args[args.index('--rps') + 1]}, not the course's {COURSE_RATE}")
    local_p, local_port, _ = start_echo(bins["echo-svc"], echo_container, region="us")
    remote_p, remote_port, _ = start_echo(bins["echo-svc"], echo_container,
                                          {"DEFAULT_FAULTS": f"delay={REMOTE_DELAY}"}, region="eu")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            slo = next(d for d in renders[where] if d["kind"] == "ConfigMap"
                       and d["metadata"]["name"].startswith("loadgen-slo"))
            (Path(tmp) / "slo.txt").write_text(slo["data"]["slo.txt"])
            out, i = [], 0
            while i < len(args):
                a = args[i]
                if a in ("--duration", "--warmup"):
                    out += [a, {"--duration": "6s", "--warmup": "2s"}[a]]
                    i += 2
                    continue
                if a == "--json":
                    out += [a, str(Path(tmp) / "result.json")]
                    i += 2
                    continue
                out.append(a.replace("/etc/loadgen/slo.txt", str(Path(tmp) / "slo.txt")))
                i += 1
            env = {"PATH": "/usr/bin:/bin",
                   "LOADGEN_TARGET_US": f"http://127.0.0.1:{local_port}/",
                   "LOADGEN_TARGET_EU": f"http://127.0.0.1:{remote_port}/"}
            what = f"{where}: Job/loadgen at {COURSE_RATE} rps, eu {REMOTE_DELAY} away"
            try:
                proc = subprocess.run([str(bins["loadgen"]), *out], env=env, capture_output=True,
                                      text=True, timeout=120, check=False)
            except subprocess.TimeoutExpired:
                p.fail(f"{what}: did not finish within 120s")
                return
            try:
                doc = json.loads((Path(tmp) / "result.json").read_text())
            except (OSError, json.JSONDecodeError) as err:
                p.fail(f"{what}: no JSON result ({err}); stderr: {proc.stderr.strip()[-600:]}")
                return
            dropped = sum(t["accounting"]["dropped_cap"] + t["accounting"]["dropped_behind"]
                          for t in doc["targets"])
            peaks = {t["name"]: t["connections"]["peak"] for t in doc["targets"]}
            failed = [v["slo"] + " (" + v["detail"] + ")" for v in doc["slos"] if not v["pass"]]
            if proc.returncode == 0 and dropped == 0 and not doc["generator_limited"]:
                p.ok(f"{what}: passed its SLOs, 0 dropped, connections peak {peaks}")
            else:
                p.fail(f"{what}: exit {proc.returncode}, dropped {dropped}, generator limited "
                       f"{doc['generator_limited']} {doc.get('limits')}, failed SLOs {failed}")
    finally:
        for proc_ in (local_p, remote_p):
            proc_.terminate()
            try:
                proc_.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc_.kill()


# --- self-test --------------------------------------------------------------------

def self_test(renders, bins: dict[str, Binary]) -> int:
    """Plant one mistake of each kind; every one must be reported."""
    broken = copy.deepcopy(renders)
    where = next(w for w in sorted(broken) if w.startswith("deploy/overlays/"))
    for doc, pod, c in workloads(broken[where]):
        if which_binary(c) == "echo-svc":
            c["env"].append({"name": "PROTT", "value": "8080"})
            c["ports"].append({"name": "bogus", "containerPort": 9999})
            c["readinessProbe"]["httpGet"]["port"] = "admin"
            break
    lwhere = next(w for w in sorted(broken) if w.startswith("deploy/load/") and not w.endswith("base"))
    for doc, pod, c in workloads(broken[lwhere]):
        c["args"].append("--rsp")
        break
    for doc in broken[where]:
        if doc["kind"] == "PrometheusRule":
            doc["spec"]["groups"][0]["rules"][0]["expr"] = \
                'sum by (regoin) (rate(http_requets_total{job="echo"}[5m]))'
            doc["spec"]["groups"][0]["rules"][1]["expr"] = \
                'rate(http_requests_total{job="echo", stauts="500"}[5m])'
    p = Problems(quiet=True)
    print("self-test: planting PROTT env, port 9999, probe on admin port, --rsp flag, "
          "metric http_requets_total, labels regoin and stauts")
    static_checks(broken, bins, p)
    # The metric names echo-svc's exposition uses, with their labels.
    check_metrics(broken, 'http_requests_total{method="GET",route="/",status="200"} 1\n'
                  'http_request_duration_seconds_bucket{method="GET",route="/",status="200",le="0.1"} 1\n',
                  p)
    expect = ["env PROTT", "containerPort bogus=9999", "readinessProbe uses port 'admin'", "flag --rsp",
              "metric http_requets_total", "grouping label regoin", "label stauts"]
    missed = [e for e in expect if not any(e in msg for msg in p.items)]
    for e in expect:
        print(f"  {'MISSED' if e in missed else 'caught'} {e}")
    return 1 if missed else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rendered", type=Path, required=True,
                        help="directory of rendered manifests (validate_manifests.py --out)")
    parser.add_argument("--self-test", action="store_true")
    parser.add_argument("--no-live", action="store_true", help="skip starting the binaries")
    args = parser.parse_args()
    renders = load_rendered(args.rendered)
    if not renders:
        raise SystemExit(f"check_binaries: no rendered manifests in {args.rendered}")
    paths = build_binaries()
    bins = {n: Binary(n, pth) for n, pth in paths.items()}
    for b in bins.values():
        print(f"  {b.name}: {len(b.flags)} flags, {len(b.envs)} env vars in --help ({b.path})")
    if args.self_test:
        return self_test(renders, bins)
    p = Problems()
    print("static: env names, flags, ports, probe ports; Taskfile's loadgen/echo-svc commands")
    needs = static_checks(renders, bins, p)
    taskfile_checks(bins, p)
    print(f"  {p.passed} ok")
    if not args.no_live:
        print("live: echo-svc on loopback (paths, metrics, SIGTERM) and loadgen Job args")
        live_echo(renders, paths, needs, p)
    print(f"check_binaries: {p.passed} ok, {len(p.items)} problems")
    return 1 if p.items else 0


if __name__ == "__main__":
    sys.exit(main())
