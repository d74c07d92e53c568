//! The processes under test: echo-svc and nginx, each pinned to a core, awaited until they
//! listen, and stopped when dropped; plus the small helpers around them.

use std::fs;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

/// How long a server gets to start listening.
const START_DEADLINE: Duration = Duration::from_secs(15);

/// A server process pinned to a core; killed when dropped.
#[derive(Debug)]
pub struct Server {
    pub name: String,
    pub child: Child,
    pub addr: SocketAddr,
    pub _dir: Option<TempDir>,
}

impl Server {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // SIGTERM first (echo-svc drains with --drain-delay 0s), then make sure.
        // SAFETY: signalling our own child by its pid.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A scratch directory removed on drop.
#[derive(Debug)]
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> anyhow::Result<TempDir> {
        let p = std::env::temp_dir().join(format!("benches-{tag}-{}", std::process::id()));
        fs::create_dir_all(&p).with_context(|| format!("cannot create {}", p.display()))?;
        Ok(TempDir(p))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

pub fn free_port() -> anyhow::Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").context("cannot find a free loopback port")?;
    Ok(l.local_addr()?.port())
}

pub fn which(name: &str) -> Option<PathBuf> {
    if name.contains('/') {
        let p = PathBuf::from(name);
        return p.is_file().then_some(p);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

pub fn pinned(core: usize, program: &Path, args: &[String]) -> Command {
    let mut c = Command::new("taskset");
    c.arg("-c").arg(core.to_string()).arg(program).args(args);
    c
}

/// Polls until something accepts on `addr`.
pub fn wait_listening(addr: SocketAddr, child: &mut Child) -> anyhow::Result<()> {
    let start = Instant::now();
    loop {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        if let Ok(Some(st)) = child.try_wait() {
            bail!("exited before listening on {addr}: {st}");
        }
        if start.elapsed() > START_DEADLINE {
            bail!("not listening on {addr} after {START_DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn start_echo(bin: &Path, core: usize) -> anyhow::Result<Server> {
    start_echo_with(bin, core, &[])
}

/// echo-svc as [`start_echo`], with `extra` flags (e.g. `--faults delay=30ms`).
pub fn start_echo_with(bin: &Path, core: usize, extra: &[&str]) -> anyhow::Result<Server> {
    let port = free_port()?;
    let mut args: Vec<String> = [
        "--bind",
        "127.0.0.1",
        "--port",
        &port.to_string(),
        "--workers",
        "1",
        "--region",
        "local",
        "--pod-name",
        "bench",
        "--drain-delay",
        "0s",
        "--shutdown-timeout",
        "2s",
        "--log-level",
        "warn",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    let mut child = pinned(core, bin, &args)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("cannot start {}", bin.display()))?;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    wait_listening(addr, &mut child).context("echo-svc")?;
    Ok(Server {
        name: "echo-svc".into(),
        child,
        addr,
        _dir: None,
    })
}

pub fn start_nginx(core: usize) -> anyhow::Result<Server> {
    let nginx = which("nginx").context("nginx is not installed (apt-get install nginx-light)")?;
    let dir = TempDir::new("nginx")?;
    let port = free_port()?;
    let d = dir.0.display();
    // One process (no master), one worker's worth of event loop: the fair match for
    // `echo-svc --workers 1`. Same identity headers and a body of similar size.
    let conf = format!(
        "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\n\
         error_log {d}/error.log warn;\n\
         events {{ worker_connections 4096; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
           fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
           keepalive_requests 1000000;\n\
           server {{\n    listen 127.0.0.1:{port};\n    location / {{\n\
               add_header x-echo-region local;\n      add_header x-echo-version v1;\n\
               add_header x-echo-pod nginx;\n      default_type text/plain;\n\
               return 200 \"region=local version=v1 pod=nginx\\n\";\n    }}\n  }}\n}}\n"
    );
    let conf_path = dir.0.join("nginx.conf");
    fs::write(&conf_path, conf).context("cannot write nginx.conf")?;
    let args = vec![
        "-p".to_string(),
        dir.0.display().to_string(),
        "-c".into(),
        conf_path.display().to_string(),
    ];
    let mut child = pinned(core, &nginx, &args)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .context("cannot start nginx")?;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    wait_listening(addr, &mut child).context("nginx")?;
    Ok(Server {
        name: "nginx".into(),
        child,
        addr,
        _dir: Some(dir),
    })
}
