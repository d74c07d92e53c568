//! Shared helpers: echo-svc instances on a background runtime, run configurations from
//! command-line words, and raw TCP servers that misbehave on purpose.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use clap::Parser as _;
use loadgen::cli::Cli;
use loadgen::config::RunConfig;
use loadgen::record::Results;

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
            t.measured.bucket_sum(),
            t.measured.scheduled,
            "{}: {:?}",
            t.name,
            t.measured
        );
        assert_eq!(
            t.warmup.bucket_sum(),
            t.warmup.scheduled,
            "{}: {:?}",
            t.name,
            t.warmup
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
