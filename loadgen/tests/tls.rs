//! `https://` targets over real sockets: echo-svc behind a TLS front (rustls, as a mesh
//! gateway or an ingress would terminate it), with certificates made for each case by a
//! test CA. What is checked is what a user relies on: a trusted certificate serves and
//! counts its handshakes, and every way a handshake can fail lands in the `tls` bucket
//! with the reason in the report, while the run's plain targets go on.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use common::{echo, loadgen_bin, output_within, server_runtime};
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair, SanType};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A test certificate authority, written as PEM for `--cacert`.
struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
    pem: PathBuf,
}

fn make_ca(dir: &std::path::Path, name: &str) -> Ca {
    std::fs::create_dir_all(dir).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(rcgen::DnType::CommonName, name);
    let cert = p.self_signed(&key).unwrap();
    let pem = dir.join("ca.pem");
    std::fs::write(&pem, cert.pem()).unwrap();
    Ca { cert, key, pem }
}

/// A server certificate for `names` (DNS names or IP addresses), signed by `ca`, as
/// rustls takes it; `expired` dates it in the past.
fn leaf(
    ca: &Ca,
    names: &[&str],
    expired: bool,
) -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
    let (cert, key) = leaf_cert(ca, names, expired);
    (
        cert.der().clone(),
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
    )
}

/// A server certificate and its key, signed by `ca`.
fn leaf_cert(ca: &Ca, names: &[&str], expired: bool) -> (rcgen::Certificate, KeyPair) {
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.subject_alt_names = names
        .iter()
        .map(|n| match n.parse() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => SanType::DnsName((*n).try_into().unwrap()),
        })
        .collect();
    if expired {
        p.not_before = rcgen::date_time_ymd(2020, 1, 1);
        p.not_after = rcgen::date_time_ymd(2021, 1, 1);
    }
    let cert = p.signed_by(&key, &ca.cert, &ca.key).unwrap();
    (cert, key)
}

/// The rustls side of a TLS server with one certificate.
fn server_config(
    cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
) -> rustls::ServerConfig {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .unwrap()
}

fn tls_front(
    rt: &tokio::runtime::Runtime,
    upstream: SocketAddr,
    leaf: (CertificateDer<'static>, PrivateKeyDer<'static>),
) -> SocketAddr {
    tls_front_alpn(rt, upstream, leaf, &["http/1.1"])
}

/// A TLS front that offers the protocols in `alpn` (echo-svc behind it speaks HTTP/1.1
/// and, from the first bytes, h2c: the front relays bytes, so h2 passes through).
/// Terminates TLS on a loopback port and relays each connection to `upstream`.
fn tls_front_alpn(
    rt: &tokio::runtime::Runtime,
    upstream: SocketAddr,
    (cert, key): (CertificateDer<'static>, PrivateKeyDer<'static>),
    alpn: &[&str],
) -> SocketAddr {
    let mut cfg = server_config(cert, key);
    cfg.alpn_protocols = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    tls_server(rt, cfg, move |mut tls| async move {
        let Ok(mut up) = tokio::net::TcpStream::connect(upstream).await else {
            return;
        };
        let _ = tokio::io::copy_bidirectional(&mut tls, &mut up).await;
    })
}

type ServerTls = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;

/// A TLS listener on loopback: each connection that completes its handshake is handed to
/// `serve` on a task of its own.
fn tls_server<F, Fut>(
    rt: &tokio::runtime::Runtime,
    cfg: rustls::ServerConfig,
    serve: F,
) -> SocketAddr
where
    F: Fn(ServerTls) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let serve = Arc::new(serve);
    rt.spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, serve) = (acceptor.clone(), serve.clone());
            tokio::spawn(async move {
                if let Ok(tls) = acceptor.accept(tcp).await {
                    serve(tls).await;
                }
            });
        }
    });
    addr
}

/// Completes the TLS handshake, then answers each request with plain-text bytes on the raw
/// socket: not TLS records, what a broken proxy or a protocol mix-up sends.
fn garbage_after_handshake(
    rt: &tokio::runtime::Runtime,
    (cert, key): (CertificateDer<'static>, PrivateKeyDer<'static>),
) -> SocketAddr {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    tls_server(rt, server_config(cert, key), |mut tls| async move {
        let mut buf = [0u8; 4096];
        if matches!(tls.read(&mut buf).await, Ok(n) if n > 0) {
            let raw = &mut tls.get_mut().0;
            let _ = raw
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                .await;
        }
    })
}

fn run(args: &[String]) -> (i32, String, String, serde_json::Value, tempfile_dir::Dir) {
    let dir = tempfile_dir::Dir::new();
    let json = dir.path().join("r.json");
    let mut cmd = loadgen_bin();
    cmd.args(args)
        .args([
            "--rps",
            "100",
            "--duration",
            "1s",
            "--timeout",
            "5s",
            "--json",
        ])
        .arg(&json);
    let out = output_within(cmd, Duration::from_secs(60));
    let v = serde_json::from_str(&std::fs::read_to_string(&json).unwrap_or_default())
        .unwrap_or(serde_json::Value::Null);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        v,
        dir,
    )
}

/// A per-test scratch folder, removed when dropped.
mod tempfile_dir {
    pub struct Dir(std::path::PathBuf);
    impl Dir {
        pub fn new() -> Dir {
            use std::sync::atomic::{AtomicU32, Ordering};
            static N: AtomicU32 = AtomicU32::new(0);
            let p = std::env::temp_dir().join(format!(
                "loadgen-tls-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::create_dir_all(&p).unwrap();
            Dir(p)
        }
        pub fn path(&self) -> &std::path::Path {
            &self.0
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn target(v: &serde_json::Value, name: &str) -> serde_json::Value {
    v["targets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == name)
        .cloned()
        .unwrap()
}

#[test]
fn a_trusted_certificate_serves_and_its_handshakes_are_counted() {
    let rt = server_runtime();
    let dir = tempfile_dir::Dir::new();
    let ca = make_ca(dir.path(), "loadgen test CA");
    let e = echo(&rt, "us", "v1", "");
    let front = tls_front(&rt, e.addr(), leaf(&ca, &["localhost", "127.0.0.1"], false));
    for host in ["127.0.0.1", "localhost"] {
        let (code, stdout, _, v, _d) = run(&[
            "--target".into(),
            format!("us=https://{host}:{}/", front.port()),
            "--cacert".into(),
            ca.pem.display().to_string(),
        ]);
        assert_eq!(code, 0, "{stdout}");
        let t = target(&v, "us");
        let a = &t["accounting"];
        assert_eq!(a["ok"], a["scheduled"], "{a}");
        assert_eq!(a["tls"], 0);
        let conns = &t["connections"];
        assert!(conns["opened"].as_u64().unwrap() >= 1);
        assert_eq!(conns["tls_handshakes"], conns["opened"], "{conns}");
        // Kept alive: a session ticket arriving on an idle connection is not taken for
        // a closed one, so connections carry many requests each.
        assert!(
            conns["opened"].as_u64().unwrap() * 4 <= a["scheduled"].as_u64().unwrap(),
            "{conns} {a}"
        );
        assert_eq!(v["settings"]["tls"]["insecure"], false);
        // Served by echo-svc through the front: the region header came back over TLS.
        assert!(
            v["groups"]
                .as_array()
                .unwrap()
                .iter()
                .any(|g| g["region"] == "us" && g["version"] == "v1"),
            "{}",
            v["groups"]
        );
        assert!(stdout.contains("TLS for us:"), "{stdout}");
    }
    rt.block_on(e.shutdown()).unwrap();
}

#[test]
fn every_bad_handshake_lands_in_the_tls_bucket_and_the_plain_target_goes_on() {
    let rt = server_runtime();
    let dir = tempfile_dir::Dir::new();
    let ca = make_ca(dir.path(), "loadgen test CA");
    let other_ca = make_ca(&dir.path().join("other"), "some other CA");
    let e = echo(&rt, "eu", "v1", "");
    let plain = echo(&rt, "us", "v1", "");
    let cases = [
        (
            "expired",
            tls_front(&rt, e.addr(), leaf(&ca, &["127.0.0.1"], true)),
            "expired",
        ),
        (
            "wrong-host",
            tls_front(&rt, e.addr(), leaf(&ca, &["not-this-host.example"], false)),
            "not valid for name",
        ),
        (
            "unknown-ca",
            tls_front(&rt, e.addr(), leaf(&other_ca, &["127.0.0.1"], false)),
            "UnknownIssuer",
        ),
        // A server that speaks plain HTTP where TLS was expected.
        ("plain-http", e.addr(), "corrupt message"),
    ];
    for (case, addr, reason) in cases {
        let (code, stdout, stderr, v, _d) = run(&[
            "--target".into(),
            format!("eu=https://127.0.0.1:{}/", addr.port()),
            "--target".into(),
            format!("us=http://{}/", plain.addr()),
            "--cacert".into(),
            ca.pem.display().to_string(),
            "--slo".into(),
            "error_rate<0.5".into(),
        ]);
        let eu = target(&v, "eu");
        let a = &eu["accounting"];
        assert_eq!(a["tls"], a["scheduled"], "{case}: {a}\n{stdout}{stderr}");
        assert!(a["scheduled"].as_u64().unwrap() > 0, "{case}");
        let err = eu["connections"]["tls_error"].as_str().unwrap_or_default();
        assert!(err.contains(reason), "{case}: {err:?}");
        assert!(
            stdout.contains("TLS FAILED for eu") && stdout.contains(reason),
            "{case}: {stdout}"
        );
        let us = target(&v, "us");
        assert_eq!(
            us["accounting"]["ok"], us["accounting"]["scheduled"],
            "{case}"
        );
        // Half the requests failed: the SLO gate says so.
        assert_eq!(code, 99, "{case}: {stdout}");
    }
    rt.block_on(e.shutdown()).unwrap();
    rt.block_on(plain.shutdown()).unwrap();
}

#[test]
fn bytes_that_are_not_tls_after_the_handshake_land_in_the_tls_bucket_with_a_line() {
    let rt = server_runtime();
    let dir = tempfile_dir::Dir::new();
    let ca = make_ca(dir.path(), "loadgen test CA");
    let front = garbage_after_handshake(&rt, leaf(&ca, &["127.0.0.1"], false));
    let (_code, stdout, stderr, v, _d) = run(&[
        "--target".into(),
        format!("eu=https://127.0.0.1:{}/", front.port()),
        "--cacert".into(),
        ca.pem.display().to_string(),
    ]);
    let eu = target(&v, "eu");
    let a = &eu["accounting"];
    assert!(a["scheduled"].as_u64().unwrap() > 0, "{stdout}{stderr}");
    assert_eq!(a["tls"], a["scheduled"], "{a}\n{stdout}{stderr}");
    assert_eq!(a["malformed"], 0, "{a}");
    let err = eu["connections"]["tls_error"].as_str().unwrap_or_default();
    assert!(err.starts_with("after the handshake"), "{err:?}");
    assert!(stdout.contains("TLS FAILED for eu"), "{stdout}");
}

#[test]
fn insecure_accepts_any_certificate_and_says_so_loudly() {
    let rt = server_runtime();
    let dir = tempfile_dir::Dir::new();
    let ca = make_ca(dir.path(), "loadgen test CA");
    let e = echo(&rt, "eu", "v2", "");
    let front = tls_front(&rt, e.addr(), leaf(&ca, &["elsewhere.example"], true));
    let (code, stdout, stderr, v, _d) = run(&[
        "--target".into(),
        format!("eu=https://127.0.0.1:{}/", front.port()),
        "--insecure".into(),
    ]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let a = &target(&v, "eu")["accounting"];
    assert_eq!(a["ok"], a["scheduled"]);
    assert_eq!(v["settings"]["tls"]["insecure"], true);
    assert!(stderr.contains("WARNING --insecure"), "{stderr}");
    assert!(stderr.contains("certificates NOT checked"), "{stderr}");
    rt.block_on(e.shutdown()).unwrap();
}

#[test]
fn a_bad_cacert_file_is_a_usage_error() {
    let dir = tempfile_dir::Dir::new();
    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "not a certificate\n").unwrap();
    for (file, says) in [
        (dir.path().join("missing.pem"), "cannot read --cacert"),
        (junk, "holds no PEM certificate"),
    ] {
        let (code, _, stderr, _, _d) = run(&[
            "--target".into(),
            "x=https://127.0.0.1:1/".into(),
            "--cacert".into(),
            file.display().to_string(),
        ]);
        assert_eq!(code, 2, "{stderr}");
        assert!(stderr.contains(says), "{stderr}");
    }
}

/// The protocol a target spoke, as the JSON report says it.
fn protocol(v: &serde_json::Value, name: &str) -> String {
    target(v, name)["protocol"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

#[test]
fn https_speaks_what_the_server_chose_by_alpn_and_http_forces_either() {
    let rt = server_runtime();
    let dir = tempfile_dir::Dir::new();
    let ca = make_ca(dir.path(), "loadgen test CA");
    let e = echo(&rt, "us", "v1", "");
    let names = ["127.0.0.1"];
    let both = tls_front_alpn(&rt, e.addr(), leaf(&ca, &names, false), &["h2", "http/1.1"]);
    let h1_only = tls_front(&rt, e.addr(), leaf(&ca, &names, false));
    let cacert = ca.pem.display().to_string();
    let run_on = |front: SocketAddr, extra: &[&str]| {
        let mut args = vec![
            "--target".to_string(),
            format!("us=https://127.0.0.1:{}/", front.port()),
            "--cacert".into(),
            cacert.clone(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        run(&args)
    };
    for (front, extra, spoke) in [
        (both, &[][..], "h2"),
        (both, &["--http", "1.1"][..], "http/1.1"),
        (both, &["--http2"][..], "h2"),
        (h1_only, &[][..], "http/1.1"),
    ] {
        let (code, stdout, _, v, _d) = run_on(front, extra);
        assert_eq!(code, 0, "{extra:?}: {stdout}");
        assert_eq!(protocol(&v, "us"), spoke, "{extra:?}: {stdout}");
        let t = target(&v, "us");
        assert_eq!(
            t["accounting"]["ok"], t["accounting"]["scheduled"],
            "{extra:?}"
        );
        assert!(
            stdout.contains(&format!("connections for us ({spoke})")),
            "{stdout}"
        );
        // echo-svc's region header came back through the front, whichever the protocol.
        assert!(v["groups"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["region"] == "us"));
        assert_eq!(
            v["settings"]["http"],
            if extra == ["--http2"] {
                "2"
            } else if extra.is_empty() {
                "auto"
            } else {
                "1.1"
            }
        );
    }
    // Only h2 asked, a server that speaks only HTTP/1.1: every request fails in TLS, and
    // the report says why.
    let (code, stdout, _, v, _d) = run_on(h1_only, &["--http", "2", "--slo", "error_rate<0.5"]);
    assert_eq!(code, 99, "{stdout}");
    let a = &target(&v, "us")["accounting"];
    assert_eq!(a["tls"], a["scheduled"], "{a}");
    // rustls refuses the handshake (no common protocol); the line names the flag.
    assert!(stdout.contains("protocols --http offers"), "{stdout}");
    rt.block_on(e.shutdown()).unwrap();
}

#[test]
fn nginx_with_http2_over_tls_is_spoken_to_in_h2() {
    let Some(nginx) = ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
    else {
        panic!("nginx is not installed: scripts/install-tools.sh test installs it");
    };
    let dir = tempfile_dir::Dir::new();
    let ca = make_ca(dir.path(), "loadgen test CA");
    let (cert, key) = leaf_cert(&ca, &["localhost"], false);
    let d = dir.path();
    std::fs::write(d.join("cert.pem"), cert.pem()).unwrap();
    std::fs::write(d.join("key.pem"), key.serialize_pem()).unwrap();
    let port = common::closed_port().port();
    let conf = format!(
        "daemon off;\nmaster_process off;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
         events {{ worker_connections 1024; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
           fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
           server {{\n    listen 127.0.0.1:{port} ssl http2;\n\
             ssl_certificate {d}/cert.pem;\n    ssl_certificate_key {d}/key.pem;\n\
             location / {{ add_header x-echo-region nginx; return 200 \"ok\\n\"; }}\n  }}\n}}\n",
        d = d.display()
    );
    std::fs::write(d.join("nginx.conf"), conf).unwrap();
    let mut child = std::process::Command::new(nginx)
        .args(["-p", &d.display().to_string(), "-c"])
        .arg(d.join("nginx.conf"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let up = common::wait_for(Duration::from_secs(10), || {
        std::net::TcpStream::connect(addr).is_ok()
    });
    let result = up.then(|| {
        run(&[
            "--target".into(),
            format!("nginx=https://localhost:{port}/"),
            "--cacert".into(),
            ca.pem.display().to_string(),
        ])
    });
    let _ = child.kill();
    let _ = child.wait();
    let (code, stdout, _, v, _d) = result.expect("nginx did not listen");
    assert_eq!(code, 0, "{stdout}");
    assert_eq!(protocol(&v, "nginx"), "h2", "{stdout}");
    let t = target(&v, "nginx");
    assert_eq!(t["accounting"]["ok"], t["accounting"]["scheduled"]);
    assert_eq!(
        t["connections"]["h2"]["least_limit"], 100,
        "nginx's http2_max_concurrent_streams is 128, capped at 100"
    );
    assert!(v["groups"]
        .as_array()
        .unwrap()
        .iter()
        .any(|g| g["region"] == "nginx"));
}
