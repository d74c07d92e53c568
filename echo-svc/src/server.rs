//! Listeners and connections: [`spawn`] binds and serves in background tasks, [`Handle`]
//! controls a running server.
//!
//! Each accepted connection is served by hyper-util's auto builder, which speaks HTTP/1.1
//! (with keep-alive) and, on seeing the HTTP/2 preface, h2c on the same port. Connections are
//! watched by a graceful-shutdown helper so that shutdown closes idle keep-alive connections
//! and lets in-flight requests finish.
//!
//! Slowloris guard: [`crate::deadlines`] closes connections that have had no request in service
//! for `--header-read-timeout` since they were accepted or handed over their last answer
//! (HTTP/1 and HTTP/2 alike), or whose HTTP/1 answer has stalled that long, with one sweeper
//! per server instead of hyper's timer per request.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use crate::config::Config;
use crate::deadlines::{Deadlines, Tracked, Watched};
use crate::routes::{App, ToggleAccess};

/// Largest request head (request line plus headers) accepted over HTTP/1, and header list
/// over HTTP/2. Larger gets 431 (HTTP/1) or a stream reset (HTTP/2).
pub const MAX_HEADER_BYTES: usize = 32 * 1024;
/// Most request headers accepted over HTTP/1.
pub const MAX_HEADERS: usize = 100;

/// A running server. Dropping it without calling [`Handle::shutdown`] stops the server at once
/// (no drain).
#[derive(Debug)]
pub struct Handle {
    addr: SocketAddr,
    admin_addr: Option<SocketAddr>,
    app: Arc<App>,
    trigger: watch::Sender<bool>,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Handle {
    /// The main listener's address (with the real port when configured with port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The admin listener's address, if `admin_port` was configured.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_addr
    }

    /// Set the readiness toggle (as `POST /readyz/enable|disable` does).
    pub fn set_ready(&self, ready: bool) {
        self.app.switches.set_ready(ready);
    }

    /// Set the fault switch (as `POST /fault/enable|disable` does).
    pub fn set_fault_switch(&self, on: bool) {
        self.app.switches.set_fault(on);
    }

    /// Hold every request arriving in the next `duration` until it has passed (as
    /// `POST /stall?for=` does, without its cap). Zero ends a stall.
    pub fn stall(&self, duration: Duration) {
        self.app.switches.stall_for(duration);
    }

    /// Shut down gracefully, exactly as on SIGTERM: readiness fails at once, serving continues
    /// for the drain delay, then the listeners close, idle connections are closed and in-flight
    /// requests get up to the shutdown timeout to finish.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        // The server task may already have stopped; it reports how below.
        let _ = self.trigger.send(true);
        self.task.await.context("the server task panicked")?
    }
}

/// Bind the listeners and serve in background tasks on the current tokio runtime.
pub async fn spawn(config: Config) -> anyhow::Result<Handle> {
    let app = Arc::new(App::new(&config)?);
    let main = TcpListener::bind((config.bind, config.port))
        .await
        .with_context(|| format!("binding {}:{}", config.bind, config.port))?;
    let addr = main.local_addr().context("reading the bound address")?;
    let admin = match config.admin_port {
        Some(port) => {
            let l = TcpListener::bind((config.bind, port))
                .await
                .with_context(|| format!("binding the admin port {}:{port}", config.bind))?;
            Some(l)
        }
        None => None,
    };
    let admin_addr = match &admin {
        Some(l) => Some(l.local_addr().context("reading the bound admin address")?),
        None => None,
    };

    let main_access = match (config.enable_toggles, admin.is_some()) {
        (false, _) => ToggleAccess::Disabled,
        (true, true) => ToggleAccess::AdminPortOnly,
        (true, false) => ToggleAccess::Allowed,
    };
    let admin_access = if config.enable_toggles {
        ToggleAccess::Allowed
    } else {
        ToggleAccess::Disabled
    };

    let (trigger, trigger_rx) = watch::channel(false);
    let timings = Timings {
        drain_delay: config.drain_delay,
        shutdown_timeout: config.shutdown_timeout,
        header_read_timeout: config.header_read_timeout,
    };
    let mut listeners = vec![(main, main_access)];
    if let Some(l) = admin {
        listeners.push((l, admin_access));
    }
    let task = tokio::spawn(serve(app.clone(), listeners, timings, trigger_rx));
    info!(%addr, admin = ?admin_addr, region = %app.identity.region, version = %app.identity.version, "listening");
    Ok(Handle {
        addr,
        admin_addr,
        app,
        trigger,
        task,
    })
}

#[derive(Debug, Clone, Copy)]
struct Timings {
    drain_delay: Duration,
    shutdown_timeout: Duration,
    header_read_timeout: Duration,
}

/// Serve until triggered, then run the shutdown sequence.
async fn serve(
    app: Arc<App>,
    listeners: Vec<(TcpListener, ToggleAccess)>,
    timings: Timings,
    mut trigger: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let graceful = Arc::new(GracefulShutdown::new());
    let builder = connection_builder();
    let deadlines = Deadlines::start(timings.header_read_timeout);
    let (stop_accepting, stop_rx) = watch::channel(false);
    let mut acceptors = Vec::new();
    for (listener, access) in listeners {
        acceptors.push(tokio::spawn(accept_loop(
            listener,
            access,
            app.clone(),
            builder.clone(),
            graceful.clone(),
            stop_rx.clone(),
            deadlines.clone(),
        )));
    }

    // Wait for the trigger; a dropped Handle means "stop now, no drain".
    let drain = match trigger.wait_for(|t| *t).await {
        Ok(_) => timings.drain_delay,
        Err(_) => Duration::ZERO,
    };

    app.switches.start_draining();
    if !drain.is_zero() {
        info!(drain_delay = %humantime::format_duration(drain), "draining: readiness now fails, still serving");
        tokio::time::sleep(drain).await;
    }

    info!("no longer accepting connections");
    let _ = stop_accepting.send(true);
    for acceptor in acceptors {
        if let Err(e) = acceptor.await {
            warn!(error = %e, "accept loop ended abnormally");
        }
    }

    let graceful = match Arc::try_unwrap(graceful) {
        Ok(g) => g,
        Err(_) => anyhow::bail!("connection tracker still shared after the accept loops ended"),
    };
    let open = graceful.count();
    match tokio::time::timeout(timings.shutdown_timeout, graceful.shutdown()).await {
        Ok(()) => info!(connections = open, "all connections finished"),
        Err(_) => warn!(
            timeout = %humantime::format_duration(timings.shutdown_timeout),
            "shutdown timeout reached with requests still in flight; abandoning them"
        ),
    }
    Ok(())
}

fn connection_builder() -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        // Head deadlines are crate::deadlines' sweep, not a timer per request.
        .header_read_timeout(None)
        .keep_alive(true)
        .max_buf_size(MAX_HEADER_BYTES.max(8192))
        .max_headers(MAX_HEADERS)
        .writev(false);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(MAX_HEADER_BYTES as u32)
        .max_concurrent_streams(256)
        // A client that stops reading (zero window) makes hyper buffer each stream's
        // answer; 64 KiB per stream bounds that to 16 MiB per connection.
        .max_send_buf_size(64 * 1024)
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .keep_alive_timeout(Duration::from_secs(10));
    builder
}

async fn accept_loop(
    listener: TcpListener,
    access: ToggleAccess,
    app: Arc<App>,
    builder: auto::Builder<TokioExecutor>,
    graceful: Arc<GracefulShutdown>,
    mut stop: watch::Receiver<bool>,
    deadlines: Arc<Deadlines>,
) {
    loop {
        let accepted = tokio::select! {
            biased;
            _ = stop.wait_for(|s| *s) => return,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                // Usually out of file descriptors: back off briefly instead of spinning.
                warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let watch = deadlines.watch();
        let service = {
            let app = app.clone();
            let watch = watch.clone();
            service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let active = watch.begin();
                let http2 = req.version() == hyper::Version::HTTP_2;
                let app = app.clone();
                let conn = watch.clone();
                async move {
                    let resp = app.handle(req, access, &conn).await;
                    active.answered(http2);
                    Ok::<_, Infallible>(resp.map(|body| Tracked::new(body, active)))
                }
            })
        };
        let conn = builder
            .serve_connection(TokioIo::new(Watched::new(stream, watch.clone())), service)
            .into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            tokio::select! {
                res = conn => {
                    if let Err(e) = res {
                        debug!(%peer, error = %e, "connection ended with an error");
                    }
                }
                () = watch.expired() => {
                    debug!(%peer, "closing connection: no complete request head within the header read timeout");
                }
            }
        });
    }
}
