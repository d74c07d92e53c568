//! A target that never lets requests in, over real loopback sockets: a listener whose
//! accept queue is full (what a SYN black hole, a region down or a firewall looks like from
//! the client), and a TLS endpoint that accepts but never answers its handshake. The run
//! must say the target did not accept, not that loadgen limited it, and time out what it
//! scheduled rather than cancel it. And the one pool limit that is loadgen's machine's, the
//! open-files limit, is named as such.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::*;
use loadgen::execute;
use loadgen::judge::limits::{limits, By};

/// A listener that never accepts, its accept queue filled so further SYNs are dropped.
/// The returned streams keep the queue full; drop them with the listener.
fn black_hole(rt: &tokio::runtime::Runtime) -> (tokio::net::TcpListener, Vec<TcpStream>) {
    let listener = rt.block_on(async {
        let s = tokio::net::TcpSocket::new_v4().unwrap();
        s.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        s.listen(0).unwrap()
    });
    let addr = listener.local_addr().unwrap();
    let mut fillers = Vec::new();
    // Bounded: the queue of a zero backlog holds one or two.
    for _ in 0..16 {
        match TcpStream::connect_timeout(&addr, Duration::from_millis(300)) {
            Ok(s) => fillers.push(s),
            Err(_) => break,
        }
    }
    assert!(
        TcpStream::connect_timeout(&addr, Duration::from_millis(300)).is_err(),
        "the accept queue did not fill: loopback is not dropping SYNs here"
    );
    (listener, fillers)
}

fn run_against_dead(target: String, extra: &[&str]) -> (loadgen::RunOutcome, Duration) {
    let mut words = vec![
        "--target",
        &target,
        "--rps",
        "200",
        "--duration",
        "2s",
        "--timeout",
        "1s",
        "--slo",
        "generator_limited==0",
    ];
    words.extend_from_slice(extra);
    let cfg = config(&words);
    let start = Instant::now();
    let out = execute(cfg, false).unwrap();
    (out, start.elapsed())
}

fn assert_target_not_accepting(out: &loadgen::RunOutcome, took: Duration) {
    let r = &out.results;
    assert_sums(r);
    let a = &r.targets[0].accounts.measured;
    assert_eq!(a.scheduled, 400, "{a:?}");
    assert_eq!(a.ok, 0, "{a:?}");
    assert!(a.connect_timeout > 0, "no connect timeouts: {a:?}");
    // Requests are timed out from when they were due, not cancelled for having waited.
    assert_eq!(a.cancelled, 0, "{a:?}");
    assert_eq!(a.timeouts(), a.scheduled, "{a:?}");
    let all = limits(r);
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(all[0].by, By::Target, "{all:?}");
    assert!(all[0].advice.contains("not accepting"), "{all:?}");
    assert!(!out.judgement.generator_limited(None));
    // The generator_limited gate passes: loadgen was not the limit. The run failed on
    // nothing else, as no other SLO was given.
    assert_eq!(
        out.judgement.exit_code,
        loadgen::EXIT_OK,
        "{:?}",
        out.judgement.verdicts
    );
    let text = loadgen::report::text::render(r, &out.judgement);
    assert!(text.contains("TARGET NOT ACCEPTING CONNECTIONS"), "{text}");
    assert!(text.contains("but only 0.0 rps answered"), "{text}");
    assert!(!text.contains("LOADGEN LIMITED"), "{text}");
    assert!(!text.contains("--max-connections"), "{text}");
    // The compact accounting table shows every bucket its sum adds: the timeouts too.
    let cells = |l: &str| -> Vec<String> {
        l.split(['|', '│', '┆'])
            .map(|c| c.trim().to_string())
            .filter(|c| !c.is_empty())
            .collect()
    };
    let row = text
        .lines()
        .map(cells)
        .find(|c| c.len() > 2 && c[0] == "dead" && c[1] == "measured")
        .unwrap_or_else(|| panic!("no accounting row: {text}"));
    let header = text
        .lines()
        .map(cells)
        .find(|c| c.iter().any(|h| h == "sched"))
        .unwrap();
    let cell = |name: &str| row[header.iter().position(|h| h == name).unwrap()].as_str();
    assert_eq!(cell("timeout"), "400", "{text}");
    assert_eq!(cell("sum"), "400", "{text}");
    // Duration, plus the timeout and the drain's second, plus slack for a loaded machine.
    assert!(took < Duration::from_secs(15), "took {took:?}");
}

#[test]
fn a_target_whose_accept_queue_is_full_is_not_called_loadgens_limit() {
    let rt = server_runtime();
    let (listener, fillers) = black_hole(&rt);
    let addr = listener.local_addr().unwrap();
    let (out, took) = run_against_dead(format!("dead=http://{addr}/"), &[]);
    eprintln!("black hole: {:?}", out.results.targets[0].accounts.measured);
    assert_target_not_accepting(&out, took);
    drop((listener, fillers));
}

/// Accepts connections and holds them, silent: a TLS handshake there never completes.
fn silent_acceptor(rt: &tokio::runtime::Runtime) -> SocketAddr {
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    rt.spawn(async move {
        let mut held = Vec::new();
        // Bounded: the run opens at most a few hundred.
        while held.len() < 10_000 {
            match listener.accept().await {
                Ok((s, _)) => held.push(s),
                Err(_) => return,
            }
        }
    });
    addr
}

#[test]
fn a_tls_handshake_that_never_completes_is_a_connect_timeout() {
    let rt = server_runtime();
    let addr = silent_acceptor(&rt);
    let (out, took) = run_against_dead(format!("dead=https://{addr}/"), &["--insecure"]);
    eprintln!("silent TLS: {:?}", out.results.targets[0].accounts.measured);
    assert_target_not_accepting(&out, took);
    drop(rt);
}

#[test]
fn a_pool_held_down_by_the_open_files_limit_names_that_limit() {
    let rt = server_runtime();
    let e = echo(&rt, "eu", "v1", "delay=200ms");
    // 1000 rps x 200 ms needs about 200 connections; 128 descriptors leave room for 64.
    let mut cmd = std::process::Command::new("sh");
    cmd.arg("-c")
        .arg("ulimit -n 128 && exec \"$0\" \"$@\"")
        .arg(loadgen_bin().get_program())
        .args([
            "--no-progress",
            "--target",
            &format!("eu=http://{}/", e.addr()),
            "--rps",
            "1000",
            "--duration",
            "2s",
            "--slo",
            "generator_limited==0",
        ])
        .stdin(std::process::Stdio::null());
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("LOADGEN_")) {
        cmd.env_remove(k);
    }
    let out = output_within(cmd, Duration::from_secs(60));
    rt.block_on(e.shutdown()).unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stdout.contains("LOADGEN LIMITED THIS RUN"),
        "{stdout}{stderr}"
    );
    assert!(stdout.contains("open-files limit"), "{stdout}");
    assert!(stdout.contains("ulimit -n"), "{stdout}");
    assert!(!stdout.contains("raise --max-connections"), "{stdout}");
    assert_eq!(out.status.code(), Some(99), "{stdout}{stderr}");
}
