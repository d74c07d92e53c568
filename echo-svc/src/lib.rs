//! echo-svc: a region- and version-aware HTTP echo workload.
//!
//! It answers with its identity (region, version, pod) in the body and in `x-echo-*` headers on
//! every response, serves Kubernetes probes and Prometheus metrics, injects faults on request
//! (delay, status, body size, connection close, headers; weighted), can stall or fail on
//! demand, forwards to allow-listed upstreams, and drains gracefully on SIGTERM.
//!
//! Module map:
//!
//! - [`config`]: flags with environment fallbacks ([`Config`]), validation.
//! - [`faults`]: the fault specification syntax, caps and sampling.
//! - [`weighted`]: the weighted choices fault parameters take.
//! - [`identity`]: instance identity (pre-rendered headers and bodies) and cloud identity.
//! - `route`: a request path's route template (what routing and metrics share).
//! - `routes`: routing, the fault pipeline and the handlers.
//! - `switches`: readiness, draining, fault and stall switches (atomics).
//! - `metrics`: Prometheus metrics with podinfo's names.
//! - `upstream`: allow-listed `/call/{name}` forwarding and the hop chain.
//! - `echo`: `/echo`, read within its memory budget.
//! - `budget`: that budget (bytes, shared fairly, with a send deadline).
//! - `body`: the response body type and the small responses built from it.
//! - `server`: listeners, HTTP/1.1 + h2c connections, [`spawn`] and [`Handle`].
//! - `deadlines`: idle and stalled-answer deadlines by one sweep per server (the slowloris
//!   guard), and each connection's share of the body budget.
//! - [`shutdown`]: signal handling and [`serve`].
//! - [`logging`]: tracing set-up.
//!
//! Embedding (tests, loadgen's local fleet):
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! let mut cfg = echo_svc::Config::local("eu", "v2");
//! cfg.faults = "delay=40ms".parse()?; // every workload request 40 ms slower
//! let handle = echo_svc::spawn(cfg).await?;
//! println!("serving on http://{}", handle.addr());
//! handle.shutdown().await?;
//! # Ok(()) }
//! ```

mod body;
mod budget;
pub mod config;
mod deadlines;
mod echo;
pub mod faults;
pub mod identity;
pub mod logging;
mod metrics;
mod route;
mod routes;
mod server;
pub mod shutdown;
mod switches;
mod upstream;
pub mod weighted;

pub use config::{Config, LogFormat, Upstream};
pub use faults::{FaultError, FaultSpec, Limits};
pub use routes::X_ECHO_FAULTS;
pub use server::{spawn, Handle, MAX_HEADERS, MAX_HEADER_BYTES};
pub use shutdown::serve;
