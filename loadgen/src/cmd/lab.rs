//! `loadgen lab`: the course's load lab on one machine.
//!
//! Starts two regions, us and eu. Each region is a small weighted L7 router in front of
//! two echo-svc instances (v1 and v2, 90/10 by default, chosen per request in a fixed
//! rotation so the split is exact). eu's instances carry a server-wide `delay=` fault
//! that stands for the cross-region hop. loadgen then runs against both routers with
//! default SLOs and prints the per-cluster, per-version table and the verdict.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::Context as _;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{combinators::BoxBody, BodyExt as _, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::sync::watch;

use clap::Parser as _;

use crate::cli::{LabArgs, RunArgs};
use crate::config::{RunConfig, UsageError};

/// SLOs the lab applies unless `--slo` is given. The last one fails a run that loadgen
/// itself limited, so a trainee never reads the generator's shortfall as the service's.
pub const DEFAULT_SLOS: [&str; 6] = [
    "p95<100ms",
    "p99<250ms",
    "http_req_duration{target:eu}: p(95)<150",
    "error_rate<1%",
    "dropped==0",
    "generator_limited==0",
];

type RouterBody = BoxBody<Bytes, hyper::Error>;

/// A region: a router and its two backends.
#[derive(Debug)]
pub struct Region {
    pub name: String,
    pub router: SocketAddr,
    backends: Vec<echo_svc::Handle>,
    stop: watch::Sender<bool>,
}

/// The running fleet.
#[derive(Debug)]
pub struct Fleet {
    pub regions: Vec<Region>,
}

impl Fleet {
    /// Starts us and eu; eu's backends get `eu_delay` on every request.
    pub async fn start(eu_delay: std::time::Duration, v2_percent: u8) -> anyhow::Result<Fleet> {
        let mut regions = Vec::new();
        for (name, delay) in [("us", std::time::Duration::ZERO), ("eu", eu_delay)] {
            let mut backends = Vec::new();
            for version in ["v1", "v2"] {
                let mut cfg = echo_svc::Config::local(name, version);
                if !delay.is_zero() {
                    cfg.faults = format!("delay={}us", delay.as_micros())
                        .parse()
                        .map_err(|e| anyhow::anyhow!("bad delay fault: {e}"))?;
                }
                backends.push(
                    echo_svc::spawn(cfg)
                        .await
                        .with_context(|| format!("cannot start echo-svc {name}/{version}"))?,
                );
            }
            let (router, stop) =
                start_router(backends[0].addr(), backends[1].addr(), v2_percent).await?;
            regions.push(Region {
                name: name.to_string(),
                router,
                backends,
                stop,
            });
        }
        Ok(Fleet { regions })
    }

    /// Stops routers and backends.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        for r in self.regions {
            let _ = r.stop.send(true);
            for b in r.backends {
                b.shutdown().await?;
            }
        }
        Ok(())
    }
}

/// A weighted router: every request goes to v2 when a rotating counter falls in the
/// first `v2_percent` of each hundred, else to v1.
async fn start_router(
    v1: SocketAddr,
    v2: SocketAddr,
    v2_percent: u8,
) -> anyhow::Result<(SocketAddr, watch::Sender<bool>)> {
    let listener = TcpListener::bind(("127.0.0.1", 0))
        .await
        .context("cannot bind the lab router")?;
    let addr = listener.local_addr()?;
    let client: Client<HttpConnector, Incoming> =
        Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    let counter = Arc::new(AtomicU64::new(0));
    let (stop_tx, mut stop_rx) = watch::channel(false);
    let pct = u64::from(v2_percent.min(100));
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                _ = stop_rx.changed() => return,
                a = listener.accept() => a,
            };
            let Ok((stream, _)) = accepted else { continue };
            let _ = stream.set_nodelay(true);
            let (client, counter) = (client.clone(), counter.clone());
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |mut req: Request<Incoming>| {
                    let client = client.clone();
                    let n = counter.fetch_add(1, Ordering::Relaxed);
                    // Spread v2's share evenly: request n goes to v2 when n·pct crosses a
                    // multiple of 100.
                    let to_v2 = (n + 1) * pct / 100 > n * pct / 100;
                    let backend = if to_v2 { v2 } else { v1 };
                    async move {
                        let pq = req
                            .uri()
                            .path_and_query()
                            .map(|p| p.as_str())
                            .unwrap_or("/")
                            .to_string();
                        let uri = format!("http://{backend}{pq}").parse::<http::Uri>();
                        let Ok(uri) = uri else {
                            return Ok::<_, hyper::Error>(plain(
                                StatusCode::BAD_REQUEST,
                                "bad path",
                            ));
                        };
                        *req.uri_mut() = uri;
                        match client.request(req).await {
                            Ok(resp) => Ok(resp.map(|b| b.boxed())),
                            Err(e) => Ok(plain(
                                StatusCode::BAD_GATEWAY,
                                &format!("upstream error: {e}"),
                            )),
                        }
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Ok((addr, stop_tx))
}

fn plain(status: StatusCode, msg: &str) -> Response<RouterBody> {
    let mut r = Response::new(
        Full::new(Bytes::from(msg.to_string()))
            .map_err(|never| match never {})
            .boxed(),
    );
    *r.status_mut() = status;
    r
}

/// Runs the lab: fleet up, load, report, fleet down. Returns the exit code.
pub fn run(args: &LabArgs) -> anyhow::Result<u8> {
    if !(args.rps.is_finite() && args.rps > 0.0) {
        return Err(UsageError::new("--rps must be > 0").into());
    }
    if args.v2_percent > 100 {
        return Err(UsageError::new("--v2-percent must be 0..=100").into());
    }
    let fleet_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("lab-fleet")
        .enable_all()
        .build()
        .context("cannot start the fleet runtime")?;
    let fleet = fleet_rt.block_on(Fleet::start(args.eu_delay, args.v2_percent))?;
    let mut targets = Vec::new();
    for r in &fleet.regions {
        crate::report::console::note(format_args!(
            "lab: region {} router on http://{}/ (v1 {}%, v2 {}%)",
            r.name,
            r.router,
            100 - args.v2_percent,
            args.v2_percent
        ));
        targets.push(format!("{}=http://{}/", r.name, r.router));
    }
    crate::report::console::note(format_args!(
        "lab: running {} rps for {:?} after {:?} warm-up; eu is {:?} slower",
        args.rps, args.duration, args.warmup, args.eu_delay
    ));
    let slos = if args.slos.is_empty() {
        DEFAULT_SLOS.iter().map(|s| s.to_string()).collect()
    } else {
        args.slos.clone()
    };
    // Everything the lab does not set is what a direct run would get: the flags'
    // defaults (and LOADGEN_* variables), parsed by the same command line.
    let mut run_args: RunArgs = crate::cli::Cli::try_parse_from(["loadgen"])
        .context("building the lab's run from the defaults")?
        .run;
    run_args.targets = targets;
    run_args.rps = Some(args.rps);
    run_args.duration = Some(args.duration);
    run_args.warmup = args.warmup;
    run_args.arrival = args.arrival;
    run_args.slos = slos;
    run_args.json = args.json.clone();
    run_args.no_progress = args.no_progress;
    run_args.exports = args.exports.clone();
    let outcome = RunConfig::from_args(&run_args)
        .map_err(anyhow::Error::from)
        .and_then(|cfg| crate::execute(cfg, true));
    let down = fleet_rt.block_on(fleet.shutdown());
    let outcome = outcome?;
    down.context("stopping the lab fleet")?;
    Ok(outcome.exit_code)
}
