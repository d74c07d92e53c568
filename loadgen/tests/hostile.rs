//! Hostile servers, absurd flags and forged files against loadgen, over real sockets and
//! through the real binary: every resource bounded, every framing error rejected, every
//! request accounted for, and no crash.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use loadgen::execute;

fn target(addr: std::net::SocketAddr) -> String {
    format!("t=http://{addr}/")
}

fn ok_with_version(v: &str) -> Vec<u8> {
    response(
        "200 OK",
        &["x-echo-region: us", &format!("x-echo-version: {v}")],
        "ok",
    )
}

#[test]
fn new_versions_beyond_the_cap_fold_into_other() {
    // A server inventing a version per response: memory must not follow it.
    let addr = scripted_server(|n| ok_with_version(&format!("v{n}")), None);
    let t = target(addr);
    let cfg = config(&[
        "--target",
        &t,
        "--rps",
        "300",
        "--duration",
        "1s",
        "--max-groups",
        "8",
    ]);
    let out = execute(cfg, false).unwrap();
    let r = &out.results;
    assert_sums(r);
    let a = &r.targets[0].accounts.measured;
    assert_eq!(a.ok, 300, "{a:?}");
    assert!(r.groups.len() <= 9, "{} groups", r.groups.len());
    assert_eq!(r.targets[0].accounts.folded, 300 - 8);
    let other = r
        .groups
        .iter()
        .find(|(k, _)| k.version == "other")
        .map(|(_, g)| g.corrected.len())
        .unwrap();
    assert_eq!(other, 292);
    let text = loadgen::report::text::render(r, &out.judgement);
    assert!(
        text.contains("292 responses carried more distinct region/version values"),
        "{text}"
    );
}

#[test]
fn a_long_label_is_cut() {
    let long = "v".repeat(10_000);
    let addr = scripted_server(move |_| ok_with_version(&long), None);
    let t = target(addr);
    let out = execute(
        config(&["--target", &t, "--rps", "50", "--duration", "1s"]),
        false,
    )
    .unwrap();
    let key = out.results.groups.keys().next().unwrap();
    assert_eq!(key.version.len(), loadgen::results::MAX_LABEL_BYTES);
}

/// Reads `/metrics` of a running loadgen until `want` shows up (bounded).
fn scrape_until(addr: std::net::SocketAddr, want: &str) -> String {
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(s) = std::net::TcpStream::connect(addr) {
            drop(s);
            let text = http(addr, "GET", "/metrics");
            if text.contains(want) {
                return text;
            }
        }
        assert!(Instant::now() < end, "{want:?} never appeared in /metrics");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn label_values_from_the_network_cannot_inject_labels() {
    let addr = scripted_server(|_| ok_with_version("v1\",evil=\"1"), None);
    let t = target(addr);
    let metrics = closed_port();
    let m = metrics.to_string();
    let run = std::thread::spawn(move || {
        let cfg = config(&[
            "--target",
            &t,
            "--rps",
            "50",
            "--duration",
            "4s",
            "--metrics-addr",
            &m,
        ]);
        execute(cfg, false).unwrap()
    });
    let text = scrape_until(metrics, "loadgen_latency_seconds_count");
    run.join().unwrap();
    assert!(!text.contains("evil=\""), "{text}");
    for line in text
        .lines()
        .filter(|l| l.starts_with("loadgen_latency_seconds"))
    {
        // Every label value is one quoted run of safe characters.
        let labels = line.split('{').nth(1).unwrap().split('}').next().unwrap();
        assert_eq!(labels.matches('"').count() % 2, 0, "{line}");
        for pair in labels.split(',') {
            let (_, v) = pair.split_once('=').unwrap();
            assert!(v.starts_with('"') && v.ends_with('"'), "{line}");
        }
    }
}

#[test]
fn framing_errors_are_malformed_not_ok() {
    for (what, resp) in [
        (
            "a chunk size that overflows",
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFE\r\nxx\r\n0\r\n\r\n"
                .to_vec(),
        ),
        ("a signed Content-Length", b"HTTP/1.1 200 OK\r\ncontent-length: +2\r\n\r\nok".to_vec()),
        ("status 000", b"HTTP/1.1 000 OK\r\ncontent-length: 2\r\n\r\nok".to_vec()),
        ("status 999", b"HTTP/1.1 999 OK\r\ncontent-length: 2\r\n\r\nok".to_vec()),
        (
            "Transfer-Encoding with Content-Length",
            b"HTTP/1.1 200 OK\r\ncontent-length: 7\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"
                .to_vec(),
        ),
    ] {
        let addr = scripted_server(move |_| resp.clone(), None);
        let t = target(addr);
        let out =
            execute(config(&["--target", &t, "--rps", "40", "--duration", "500ms"]), false).unwrap();
        let a = &out.results.targets[0].accounts.measured;
        assert_sums(&out.results);
        assert_eq!(a.ok, 0, "{what}: {a:?}");
        assert_eq!(a.malformed, a.scheduled, "{what}: {a:?}");
    }
}

#[test]
fn a_hundred_headers_is_a_valid_response() {
    let mut headers: Vec<String> = (0..100).map(|i| format!("x-h{i}: {i}")).collect();
    headers.push("x-echo-region: us".into());
    headers.push("x-echo-version: v1".into());
    let addr = scripted_server(
        move |_| {
            let h: Vec<&str> = headers.iter().map(String::as_str).collect();
            response("200 OK", &h, "ok")
        },
        None,
    );
    let t = target(addr);
    let out = execute(
        config(&["--target", &t, "--rps", "40", "--duration", "500ms"]),
        false,
    )
    .unwrap();
    let a = &out.results.targets[0].accounts.measured;
    assert_eq!(a.ok, a.scheduled, "{a:?}");
}

#[test]
fn a_late_unsolicited_response_is_never_taken_for_the_next_answer() {
    // Each answer is followed, 20 ms later, by a second one nobody asked for.
    let addr = scripted_server(
        |_| ok_with_version("real"),
        Some(|_| ok_with_version("phantom")),
    );
    let t = target(addr);
    let out = execute(
        config(&["--target", &t, "--rps", "20", "--duration", "1s"]),
        false,
    )
    .unwrap();
    let r = &out.results;
    assert_sums(r);
    assert!(
        r.groups.keys().all(|k| k.version == "real"),
        "{:?}",
        r.groups.keys()
    );
    assert_eq!(
        r.targets[0].accounts.measured.ok,
        r.targets[0].accounts.measured.scheduled
    );
    // Seen, and said.
    assert!(
        r.targets[0].accounts.pool.unasked > 0,
        "{:?}",
        r.targets[0].accounts.pool
    );
    let text = loadgen::report::text::render(r, &out.judgement);
    assert!(text.contains("held an answer nobody asked for"), "{text}");
}

#[test]
fn an_out_of_range_port_is_a_usage_error() {
    for url in [
        "http://127.0.0.1:99999/",
        "http://127.0.0.1:0/",
        "http://127.0.0.1:/",
        "http://user@127.0.0.1:8080/",
        "http://:8080/",
    ] {
        let mut c = loadgen_bin();
        c.args([
            "--target",
            &format!("h={url}"),
            "--rps",
            "1",
            "--duration",
            "1s",
        ]);
        let out = output_within(c, Duration::from_secs(30));
        assert_eq!(
            out.status.code(),
            Some(2),
            "{url}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn absurd_rates_and_durations_are_refused_up_front() {
    for args in [
        vec!["--rps", "1e9", "--duration", "1s"],
        vec!["--rps", "10", "--duration", "18446744073709551615s"],
        vec![
            "--rps",
            "10",
            "--duration",
            "1s",
            "--timeout",
            "18446744073709551615s",
        ],
        vec!["--rps", "10", "--duration", "1s", "--tick", "1h"],
        vec!["--rps", "10", "--duration", "8d"],
        vec!["--stages", "1s:2000000"],
    ] {
        let mut c = loadgen_bin();
        c.args(["--target", "t=http://127.0.0.1:1/"]).args(&args);
        let started = Instant::now();
        let out = output_within(c, Duration::from_secs(30));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains("must be") || err.contains("maximum"),
            "{args:?}: {err}"
        );
        assert!(started.elapsed() < Duration::from_secs(10));
    }
}

#[test]
fn the_run_ends_on_time_whatever_the_rate() {
    // A server that accepts and never answers, at the highest rate accepted.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in l.incoming().flatten() {
            held.push(s);
        }
    });
    let t = target(addr);
    let started = Instant::now();
    let out = execute(
        config(&[
            "--target",
            &t,
            "--rps",
            "1000000",
            "--duration",
            "1s",
            "--timeout",
            "1s",
        ]),
        false,
    )
    .unwrap();
    // 1 s of schedule + 1 s timeout + drain slack; generous for a loaded machine.
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    assert_sums(&out.results);
    assert_eq!(
        out.results.targets[0].accounts.measured.scheduled,
        1_000_000
    );
}

#[test]
fn sigterm_during_warmup_keeps_every_bucket_summed() {
    let rt = server_runtime();
    // Slower than the stop grace, so requests are still in flight when it ends.
    let e = echo(&rt, "us", "v1", "delay=2s");
    let addr = e.addr();
    let json = std::env::temp_dir().join(format!("loadgen-warmup-{}.json", std::process::id()));
    let mut c = loadgen_bin();
    c.args(["--target", &format!("us=http://{addr}/"), "--rps", "200"])
        .args(["--duration", "5s", "--warmup", "20s", "--json"])
        .arg(&json);
    let mut child = c
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Interrupt once warm-up is under way (the first 2 s answers are back).
    assert!(wait_for(Duration::from_secs(30), || served(addr) >= 20.0));
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let mut stdout = String::new();
    std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut stdout).unwrap();
    let status = child.wait().unwrap();
    rt.block_on(e.shutdown()).unwrap();
    assert!(!stdout.contains("BUG"), "{stdout}");
    let saved = loadgen::report::json::read::load(&json).unwrap();
    std::fs::remove_file(&json).ok();
    let t = &saved.results.targets[0];
    assert_eq!(t.accounts.measured.scheduled, 0, "{t:?}");
    assert_eq!(t.accounts.measured.bucket_sum(), 0);
    assert!(
        t.accounts.warmup.scheduled > 0 && t.accounts.warmup.cancelled > 0,
        "{:?}",
        t.accounts.warmup
    );
    assert_eq!(t.accounts.warmup.bucket_sum(), t.accounts.warmup.scheduled);
    assert_eq!(status.code(), Some(0));
}

#[test]
fn a_closed_stdout_ends_printing_not_the_run() {
    let rt = server_runtime();
    let e = echo(&rt, "us", "v1", "");
    let dir = std::env::temp_dir().join(format!("loadgen-pipe-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bin = env!("CARGO_BIN_EXE_loadgen");
    for (slo, want) in [("p99<10s", "0"), ("p99<1us", "99")] {
        let json = dir.join(format!("r{want}.json"));
        let script = format!(
            "set -o pipefail; {bin} --no-progress --target us=http://{}/ --rps 50 --duration 1s \
             --slo '{slo}' --json {} | true; echo \"exit=${{PIPESTATUS[0]}}\"",
            e.addr(),
            json.display()
        );
        let out = std::process::Command::new("bash")
            .args(["-c", &script])
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(
            said.contains(&format!("exit={want}")),
            "{slo}: {said} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let doc: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
        assert_eq!(doc["exit_code"].to_string(), want);
    }
    // stdout on a full device: the same.
    let json = dir.join("full.json");
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let status = loadgen_bin()
        .args([
            "--target",
            &format!("us=http://{}/", e.addr()),
            "--rps",
            "50",
            "--duration",
            "1s",
        ])
        .args(["--slo", "p99<10s", "--json"])
        .arg(&json)
        .stdout(std::process::Stdio::from(full))
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(0));
    assert!(json.is_file());
    // merge, onto a full stdout too.
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let status = loadgen_bin()
        .args(["merge"])
        .arg(&json)
        .stdout(std::process::Stdio::from(full))
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(0));
    rt.block_on(e.shutdown()).unwrap();
    std::fs::remove_dir_all(&dir).ok();
}

fn report_with(mut edit: impl FnMut(&mut serde_json::Value)) -> std::path::PathBuf {
    // A real report to forge from.
    let rt = server_runtime();
    let e = echo(&rt, "us", "v1", "");
    let path = std::env::temp_dir().join(format!(
        "loadgen-forged-{}-{}.json",
        std::process::id(),
        rand_suffix()
    ));
    let p = path.to_str().unwrap().to_string();
    let cfg = config(&[
        "--target",
        &format!("us=http://{}/", e.addr()),
        "--rps",
        "20",
        "--duration",
        "500ms",
        "--json",
        &p,
    ]);
    execute(cfg, false).unwrap();
    rt.block_on(e.shutdown()).unwrap();
    let mut doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    edit(&mut doc);
    std::fs::write(&path, serde_json::to_vec(&doc).unwrap()).unwrap();
    path
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// A V2 histogram header with the given payload length and bounds, base64.
fn forged_hdr(payload_len: u32, low: u64, high: u64, digits: u32, payload: &[u8]) -> String {
    use base64::Engine as _;
    let mut b = Vec::new();
    b.extend_from_slice(&0x1c84_9313u32.to_be_bytes());
    b.extend_from_slice(&payload_len.to_be_bytes());
    b.extend_from_slice(&0u32.to_be_bytes());
    b.extend_from_slice(&digits.to_be_bytes());
    b.extend_from_slice(&low.to_be_bytes());
    b.extend_from_slice(&high.to_be_bytes());
    b.extend_from_slice(&1.0f64.to_be_bytes());
    b.extend_from_slice(payload);
    base64::engine::general_purpose::STANDARD.encode(b)
}

#[test]
fn forged_reports_are_refused_cheaply() {
    let huge = forged_hdr(u32::MAX - 8, 1, loadgen::hist::HIGHEST_US, 3, &[0; 30]);
    let wide = forged_hdr(2, 1, u64::MAX / 2, 5, &[0, 0]);
    let cases: Vec<(&str, std::path::PathBuf, &str)> = vec![
        (
            "a 4 GB payload claim",
            report_with(|d| d["groups"][0]["corrected"]["hdr"] = huge.clone().into()),
            "payload bytes",
        ),
        (
            "wide bounds",
            report_with(|d| d["groups"][0]["service"]["hdr"] = wide.clone().into()),
            "bounds",
        ),
        (
            "buckets that do not sum",
            report_with(|d| d["targets"][0]["accounting"]["ok"] = 5.into()),
            "does not sum",
        ),
        (
            "counts that overflow",
            report_with(|d| {
                d["targets"][0]["accounting"]["ok"] = u64::MAX.into();
                d["targets"][0]["accounting"]["timeout"] = 2.into();
                d["targets"][0]["accounting"]["scheduled"] = 1.into();
            }),
            "does not sum",
        ),
        (
            "too many groups",
            report_with(|d| {
                let g = d["groups"][0].clone();
                d["groups"] = serde_json::Value::Array(vec![g; 70_000]);
            }),
            "groups",
        ),
    ];
    for (what, path, why) in cases {
        let started = Instant::now();
        let mut c = loadgen_bin();
        c.arg("merge").arg(&path);
        let out = output_within(c, Duration::from_secs(60));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_ne!(out.status.code(), Some(0), "{what}: accepted");
        assert!(err.contains(why), "{what}: {err}");
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{what}: {:?}",
            started.elapsed()
        );
        std::fs::remove_file(&path).ok();
    }
    // Endless input is refused before a byte is read (it is no regular file), not read
    // until memory runs out.
    let mut c = loadgen_bin();
    c.args(["merge", "/dev/zero"]);
    let out = output_within(c, Duration::from_secs(60));
    assert_ne!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a regular file"));
}

#[test]
fn small_hostile_inputs() {
    // Threads never multiply the connection cap.
    let addr = scripted_server(|_| ok_with_version("v1"), None);
    let t = target(addr);
    let out = execute(
        config(&[
            "--target",
            &t,
            "--rps",
            "200",
            "--duration",
            "500ms",
            "--threads",
            "8",
            "--connections",
            "1",
        ]),
        false,
    )
    .unwrap();
    assert!(
        out.results.targets[0].accounts.pool.opened <= 1,
        "{:?}",
        out.results.targets[0].accounts.pool
    );
    assert!(out.results.targets[0].accounts.pool.cap <= 1);
    // Weights whose sum overflows, an endless SLO file, and a huge targets file.
    let many = std::env::temp_dir().join(format!("loadgen-targets-{}.toml", std::process::id()));
    let mut text = String::from("[targets]\n");
    for i in 0..20_000 {
        text.push_str(&format!(
            "t{i} = \"http://127.0.0.1:{}/\"\n",
            1000 + i % 60_000
        ));
    }
    std::fs::write(&many, text).unwrap();
    for args in [
        vec![
            "--target",
            "a=http://127.0.0.1:1/@1e308,b=http://127.0.0.1:2/@1e308",
            "--rps",
            "1",
            "--duration",
            "1s",
        ],
        vec![
            "--target",
            "a=http://127.0.0.1:1/",
            "--slo-file",
            "/dev/zero",
            "--rps",
            "1",
            "--duration",
            "1s",
        ],
        vec![
            "--targets-file",
            many.to_str().unwrap(),
            "--rps",
            "1",
            "--duration",
            "1s",
        ],
    ] {
        let started = Instant::now();
        let mut c = loadgen_bin();
        c.args(&args);
        let out = output_within(c, Duration::from_secs(60));
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{args:?}: {:?}",
            started.elapsed()
        );
    }
    std::fs::remove_file(&many).ok();
}

#[test]
fn junit_is_valid_xml_whatever_the_slo_text() {
    let v = loadgen::judge::slo::Verdict {
        slo: "p99<1s\u{1}\u{0}".into(),
        measured: Some(1.0),
        threshold: 1.0,
        pass: false,
        detail: "x\u{1f}y".into(),
    };
    let xml = loadgen::report::junit::render("suite\u{7}", &[v], 1.0);
    assert!(
        !xml.chars()
            .any(|c| (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r')),
        "{xml:?}"
    );
    assert!(!xml.contains("&#1;") && !xml.contains("&#x1;"));
}
