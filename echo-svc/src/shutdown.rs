//! Process signals and the top-level run loop.
//!
//! Handlers for SIGTERM and SIGINT are installed explicitly before the listeners open. This
//! matters when running as PID 1 in a container: the kernel does not apply default signal
//! actions to PID 1, so without a handler SIGTERM would be ignored and the pod would only die
//! when the kubelet sends SIGKILL after the grace period.
//!
//! On the first signal the server begins its graceful shutdown (see [`crate::Handle::shutdown`]).
//! A second signal during the drain ends the process at once with exit code 130, for an
//! operator who pressed Ctrl-C twice.

use anyhow::Context as _;
use tokio::signal::unix::{signal, Signal, SignalKind};
use tracing::{info, warn};

use crate::config::Config;
use crate::server::spawn;

/// SIGTERM and SIGINT listeners.
#[derive(Debug)]
pub struct Signals {
    term: Signal,
    int: Signal,
}

impl Signals {
    /// Install the handlers. Must run inside a tokio runtime.
    pub fn install() -> anyhow::Result<Self> {
        Ok(Signals {
            term: signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
            int: signal(SignalKind::interrupt()).context("installing the SIGINT handler")?,
        })
    }

    /// Wait for the next SIGTERM or SIGINT; returns its name.
    pub async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}

/// Serve `config` until SIGTERM or SIGINT, then shut down gracefully.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    let mut signals = Signals::install()?;
    let handle = spawn(config).await?;
    let name = signals.recv().await;
    info!(signal = name, "shutting down");
    let shutdown = handle.shutdown();
    tokio::select! {
        res = shutdown => res,
        name = signals.recv() => {
            warn!(signal = name, "second signal: exiting without waiting for the drain");
            std::process::exit(130);
        }
    }
}
