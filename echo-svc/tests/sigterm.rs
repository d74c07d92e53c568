//! The real binary under SIGTERM/SIGINT: readiness fails during the drain, in-flight requests
//! complete, idle connections are closed, and the process exits 0 in time.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Server {
    fn drop(&mut self) {
        // Only reached if a test failed midway: don't leave the process behind.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Start the binary on a free loopback port and read the bound address from its JSON log.
fn start(extra: &[&str]) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_echo-svc"))
        .args([
            "--bind",
            "127.0.0.1",
            "--port",
            "0",
            "--region",
            "us",
            "--app-version",
            "v1",
            "--pod-name",
            "us-v1",
            "--log-format",
            "json",
            "--workers",
            "2",
        ])
        .args(extra)
        .env_remove("DEFAULT_FAULTS")
        .env_remove("UPSTREAMS")
        .env_remove("ADMIN_PORT")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start echo-svc");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
                if v["message"] == "listening" {
                    let _ = tx.send(v["addr"].as_str().unwrap_or_default().to_owned());
                }
            }
        }
    });
    let addr = rx
        .recv_timeout(DEADLINE)
        .expect("server did not log its address")
        .parse()
        .unwrap();
    Server { child, addr }
}

fn signal(server: &Server, sig: libc::c_int) {
    let pid = libc::pid_t::try_from(server.child.id()).unwrap();
    // SAFETY: kill(2) with a pid we spawned and still own (not yet reaped).
    let rc = unsafe { libc::kill(pid, sig) };
    assert_eq!(rc, 0, "kill failed");
}

/// Wait for the process to exit, polling with a deadline.
async fn wait_exit(server: &mut Server, deadline: Duration) -> std::process::ExitStatus {
    wait_for("process exit", deadline, || {
        let status = server.child.try_wait().unwrap();
        async move { status }
    })
    .await
}

#[tokio::test]
async fn sigterm_drains_in_flight_requests_and_exits_zero() {
    let mut server = start(&["--drain-delay", "1s", "--shutdown-timeout", "15s"]);
    let addr = server.addr;
    let c = client();
    assert_eq!(
        c.get(url(addr, "/readyz")).send().await.unwrap().status(),
        200
    );

    // A request that will still be running when the signal arrives.
    let in_flight = {
        let c = c.clone();
        tokio::spawn(async move {
            let r = c.get(url(addr, "/?delay=2500ms")).send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        })
    };
    // Make sure it has reached the server before signalling.
    wait_for("the delayed request to be in flight", DEADLINE, || {
        let c = c.clone();
        async move {
            let text = c
                .get(url(addr, "/metrics"))
                .send()
                .await
                .ok()?
                .text()
                .await
                .ok()?;
            (metric(&text, "http_requests_in_flight")? >= 2.0).then_some(())
        }
    })
    .await;

    let signalled = Instant::now();
    signal(&server, libc::SIGTERM);

    // Readiness fails during the drain while the server keeps serving.
    wait_for("readyz to report 503", DEADLINE, || {
        let c = c.clone();
        async move {
            let r = c.get(url(addr, "/readyz")).send().await.ok()?;
            (r.status() == 503).then_some(())
        }
    })
    .await;
    let r = c.get(url(addr, "/")).send().await.unwrap();
    assert_eq!(r.status(), 200, "still serving during the drain");

    let (status, body) = in_flight.await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(body, "region=us version=v1 pod=us-v1\n");

    let exit = wait_exit(&mut server, Duration::from_secs(30)).await;
    assert_eq!(exit.code(), Some(0), "{exit:?}");
    // It waited for the drain delay, then for the in-flight request.
    assert!(
        signalled.elapsed() >= Duration::from_secs(1),
        "{:?}",
        signalled.elapsed()
    );
    // And the port is closed afterwards.
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn sigint_with_idle_keep_alive_connection_exits_promptly() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut server = start(&["--drain-delay", "0s", "--shutdown-timeout", "60s"]);
    let mut idle = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    idle.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 1024];
    assert!(idle.read(&mut buf).await.unwrap() > 0);

    let t = Instant::now();
    signal(&server, libc::SIGINT);
    let exit = wait_exit(&mut server, Duration::from_secs(30)).await;
    assert_eq!(exit.code(), Some(0), "{exit:?}");
    // Far below the 60 s shutdown timeout: the idle connection was closed, not waited on.
    assert!(t.elapsed() < Duration::from_secs(20), "{:?}", t.elapsed());
    let rest = read_until_close(&mut idle).await;
    assert!(rest.is_empty());
}

#[test]
fn bad_flags_exit_2_with_a_message() {
    for args in [
        vec!["--faults", "delay=soon"],
        vec!["--upstream", "no-equals-sign"],
        vec!["--faults", "delay=1h"],
        vec!["--log-format", "xml"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_echo-svc"))
            .args(&args)
            .env_remove("DEFAULT_FAULTS")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("error"), "{args:?}: {stderr}");
    }
}

#[test]
fn help_documents_exit_codes() {
    let out = Command::new(env!("CARGO_BIN_EXE_echo-svc"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Exit codes"), "{text}");
    for flag in [
        "--admin-port",
        "--drain-delay",
        "--faults",
        "--upstream",
        "--workers",
    ] {
        assert!(text.contains(flag), "{flag} missing from --help");
    }
}
