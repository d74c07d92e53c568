//! An in-process echo-svc fleet for the SLO bench: us and eu, v1 and v2.
//!
//! All four instances share one thread running a single-threaded tokio runtime, the way
//! `echo-svc --workers 1` runs. Keeping them on a thread of their own lets the bench read
//! exactly the CPU time the servers used (the thread's CPU clock), apart from the load
//! generator's, although both live in the same process.

use std::net::SocketAddr;
use std::os::unix::thread::JoinHandleExt as _;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _};

/// The four instances, as (region, version).
pub const INSTANCES: [(&str, &str); 4] = [("us", "v1"), ("us", "v2"), ("eu", "v1"), ("eu", "v2")];

/// A running fleet; stop it with [`Fleet::stop`] (dropping it stops it too).
#[derive(Debug)]
pub struct Fleet {
    /// `(region, version, address)` of each instance.
    pub instances: Vec<(String, String, SocketAddr)>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<anyhow::Result<()>>>,
}

type Ready = Result<Vec<(String, String, SocketAddr)>, String>;

impl Fleet {
    /// Starts the four instances on loopback. `faults` (query syntax, e.g. `delay=30ms`)
    /// becomes every instance's server-wide default fault.
    pub fn start(faults: Option<&str>) -> anyhow::Result<Fleet> {
        let spec: Option<echo_svc::FaultSpec> = match faults {
            Some(f) => Some(f.parse().map_err(|e| anyhow!("bad --faults {f:?}: {e}"))?),
            None => None,
        };
        let (ready_tx, ready_rx) = mpsc::channel::<Ready>();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("echo-fleet".into())
            .spawn(move || serve(spec, ready_tx, stop_rx))
            .context("cannot start the echo-svc thread")?;
        let instances = match ready_rx.recv_timeout(Duration::from_secs(30)) {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => bail!("cannot start the echo-svc fleet: {e}"),
            Err(e) => bail!("the echo-svc fleet did not start: {e}"),
        };
        Ok(Fleet {
            instances,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }

    /// CPU time the fleet's thread has used so far (nanosecond clock).
    pub fn cpu(&self) -> anyhow::Result<Duration> {
        let t = self.thread.as_ref().context("the fleet has been stopped")?;
        pthread_cpu(t.as_pthread_t())
    }

    /// Graceful shutdown of every instance; waits for the thread.
    pub fn stop(mut self) -> anyhow::Result<()> {
        self.stop_inner()
    }

    fn stop_inner(&mut self) -> anyhow::Result<()> {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        match self.thread.take() {
            Some(t) => t
                .join()
                .map_err(|_| anyhow!("the echo-svc thread panicked"))?,
            None => Ok(()),
        }
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        let _ = self.stop_inner();
    }
}

fn serve(
    faults: Option<echo_svc::FaultSpec>,
    ready: mpsc::Sender<Ready>,
    stop: tokio::sync::oneshot::Receiver<()>,
) -> anyhow::Result<()> {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let _ = ready.send(Err(format!("cannot start a runtime: {e}")));
            return Err(e.into());
        }
    };
    rt.block_on(async move {
        let mut handles = Vec::new();
        let mut addrs = Vec::new();
        for (region, version) in INSTANCES {
            let mut cfg = echo_svc::Config::local(region, version);
            if let Some(f) = &faults {
                cfg.faults = f.clone();
            }
            match echo_svc::spawn(cfg).await {
                Ok(h) => {
                    addrs.push((region.to_string(), version.to_string(), h.addr()));
                    handles.push(h);
                }
                Err(e) => {
                    let _ = ready.send(Err(format!("{region}/{version}: {e:#}")));
                    return Err(e);
                }
            }
        }
        let _ = ready.send(Ok(addrs));
        // Either an explicit stop or a dropped Fleet ends the serving.
        let _ = stop.await;
        for h in handles {
            h.shutdown().await?;
        }
        Ok(())
    })
}

/// CPU time of another live thread of this process, from its CPU-time clock.
#[cfg(target_os = "linux")]
pub fn pthread_cpu(thread: libc::pthread_t) -> anyhow::Result<Duration> {
    let mut clock: libc::clockid_t = 0;
    // SAFETY: `thread` is a live thread of this process (its JoinHandle is held) and
    // `clock` is a valid out-pointer.
    let rc = unsafe { libc::pthread_getcpuclockid(thread, &mut clock) };
    if rc != 0 {
        bail!("pthread_getcpuclockid failed: {rc}");
    }
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid clock id and writable timespec.
    if unsafe { libc::clock_gettime(clock, &mut ts) } != 0 {
        bail!("clock_gettime: {}", std::io::Error::last_os_error());
    }
    Ok(Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32))
}

/// macOS has no per-thread CPU clock in `libc`; the CPU gates that need it run on Linux.
#[cfg(not(target_os = "linux"))]
pub fn pthread_cpu(_thread: libc::pthread_t) -> anyhow::Result<Duration> {
    bail!("a thread's CPU time is read on Linux only")
}
