//! Shared helpers: echo-svc instances on a background runtime, run configurations from
//! command-line words, and raw TCP servers that misbehave on purpose.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use clap::Parser as _;
use loadgen::configured::cli::Cli;
use loadgen::configured::config::RunConfig;
use loadgen::results::Results;

/// A runtime for servers; the load runs on loadgen's own threads.
pub fn server_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

/// Starts echo-svc with optional server-wide faults.
pub fn echo(
    rt: &tokio::runtime::Runtime,
    region: &str,
    version: &str,
    faults: &str,
) -> echo_svc::Handle {
    let mut cfg = echo_svc::Config::local(region, version);
    if !faults.is_empty() {
        cfg.faults = faults.parse().unwrap();
    }
    rt.block_on(echo_svc::spawn(cfg)).unwrap()
}

/// Builds a run configuration from flags, as the binary would (progress off).
pub fn config(words: &[&str]) -> RunConfig {
    let mut argv = vec!["loadgen", "--no-progress"];
    argv.extend_from_slice(words);
    let cli = Cli::try_parse_from(argv).unwrap();
    RunConfig::from_args(&cli.run).unwrap()
}

/// Asserts every target's buckets sum to its schedule (measured and warm-up).
pub fn assert_sums(r: &Results) {
    for t in &r.targets {
        assert_eq!(
            t.accounts.measured.bucket_sum(),
            t.accounts.measured.scheduled,
            "{}: {:?}",
            t.name,
            t.accounts.measured
        );
        assert_eq!(
            t.accounts.warmup.bucket_sum(),
            t.accounts.warmup.scheduled,
            "{}: {:?}",
            t.name,
            t.accounts.warmup
        );
    }
}

/// A loopback address on which nothing listens (bound, then released).
pub fn closed_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

/// Plain HTTP/1.1 GET or POST over loopback; returns the whole response text.
pub fn http(addr: SocketAddr, method: &str, path: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

/// Requests echo-svc has counted on its main routes so far (from /metrics).
pub fn served(addr: SocketAddr) -> f64 {
    http(addr, "GET", "/metrics")
        .lines()
        .filter(|l| l.starts_with("http_requests_total") && !l.contains("/metrics"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Polls `cond` until it holds or `limit` passes.
pub fn wait_for(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    cond()
}

/// A raw HTTP/1.1 server that answers the n-th request (counted over all connections,
/// from 0) with `respond(n)`, and then, if `after` is set, writes `after(n)` on the same
/// connection a little later: a server that misbehaves in exactly one way.
pub fn scripted_server(
    respond: impl Fn(u64) -> Vec<u8> + Send + Sync + 'static,
    after: Option<fn(u64) -> Vec<u8>>,
) -> SocketAddr {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let respond = Arc::new(respond);
    let count = Arc::new(AtomicU64::new(0));
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { return };
            let (respond, count) = (respond.clone(), count.clone());
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        match s.read(&mut chunk) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                        continue;
                    };
                    buf.drain(..end + 4);
                    let n = count.fetch_add(1, Ordering::Relaxed);
                    if s.write_all(&respond(n)).is_err() {
                        return;
                    }
                    if let Some(after) = after {
                        std::thread::sleep(Duration::from_millis(20));
                        if s.write_all(&after(n)).is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    addr
}

/// A canned response with `headers` (each `name: value`) and `body`.
pub fn response(status: &str, headers: &[&str], body: &str) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status}\r\n");
    for h in headers {
        out.push_str(h);
        out.push_str("\r\n");
    }
    out.push_str(&format!("content-length: {}\r\n\r\n{body}", body.len()));
    out.into_bytes()
}

/// The loadgen binary with none of the caller's `LOADGEN_*` variables (progress shows
/// only on a terminal, so piped runs have none).
pub fn loadgen_bin() -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_loadgen"));
    // One rule for every test: none of the caller's loadgen settings leak in.
    for (k, _) in std::env::vars() {
        if k.starts_with("LOADGEN_") || k == "JOB_COMPLETION_INDEX" {
            c.env_remove(k);
        }
    }
    c.stdin(std::process::Stdio::null());
    c
}

/// Starts echo-svc (with server-wide `faults`), runs loadgen in-process with `words`
/// against it as target `name`, stops echo-svc, and returns the outcome: the preamble
/// most run tests share.
pub fn run_against(name: &str, faults: &str, words: &[&str]) -> loadgen::RunOutcome {
    let rt = server_runtime();
    let e = echo(&rt, name, "v1", faults);
    let t = format!("{name}=http://{}/", e.addr());
    let mut argv = vec!["--target", t.as_str()];
    argv.extend_from_slice(words);
    let out = loadgen::execute(config(&argv), false).unwrap();
    rt.block_on(e.shutdown()).unwrap();
    out
}

/// Runs loadgen against a closed port with `flags` after the target, and asserts that
/// it stops at once as a usage error (exit 2) whose message says `says`.
pub fn assert_usage_error(flags: &[&str], says: &str) {
    let mut cmd = loadgen_bin();
    cmd.args(["--target", "us=http://127.0.0.1:1/", "--duration", "1s"])
        .args(flags);
    let out = output_within(cmd, Duration::from_secs(30));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{flags:?}: {err}");
    assert!(err.contains(says), "{flags:?}: {err}");
}

/// Runs `cmd` to its end, killing it (and failing) past `limit`.
pub fn output_within(mut cmd: std::process::Command, limit: Duration) -> std::process::Output {
    use std::process::Stdio;
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let end = Instant::now() + limit;
    // Drain the pipes while waiting, so a chatty child cannot block on them.
    let out = std::thread::spawn({
        let mut o = child.stdout.take().unwrap();
        move || {
            let mut v = Vec::new();
            let _ = o.read_to_end(&mut v);
            v
        }
    });
    let err = std::thread::spawn({
        let mut e = child.stderr.take().unwrap();
        move || {
            let mut v = Vec::new();
            let _ = e.read_to_end(&mut v);
            v
        }
    });
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > end {
            child.kill().ok();
            panic!("the command did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    std::process::Output {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

/// Writes a scenario file in `dir`: eu's v2 pods answer 500 from t=1s to t=2s of a 3 s run.
pub fn brownout_scenario(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("brownout.yaml");
    std::fs::write(
        &path,
        "name: brownout\nabout: eu's v2 pods fail for a second.\nduration: 3s\nsteps:\n  - { at: 1s, do: fault, pods: eu-v2, on: true }\n  - { at: 2s, do: fault, pods: eu-v2, on: false }\n",
    )
    .unwrap();
    path
}
