//! Live progress on stderr: current rate, p99 so far, errors and dropped. Drawn only when
//! stderr is a terminal (and not disabled), so CI logs stay clean.

use std::io::IsTerminal as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::live::Live;
use crate::units::fmt_us;

/// A running progress display; [`Progress::finish`] clears it.
#[derive(Debug)]
pub struct Progress {
    done: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Progress {
    /// Starts drawing if `wanted` and stderr is a terminal; `total` is the run length.
    pub fn start(wanted: bool, live: &Arc<Live>, total: Duration) -> Progress {
        let done = Arc::new(AtomicBool::new(false));
        if !wanted || !std::io::stderr().is_terminal() {
            return Progress { done, thread: None };
        }
        let bar = ProgressBar::with_draw_target(
            Some(total.as_millis() as u64),
            ProgressDrawTarget::stderr(),
        );
        if let Ok(style) = ProgressStyle::with_template("{bar:30} {elapsed}/{duration} {msg}") {
            bar.set_style(style);
        }
        let (live, flag) = (live.clone(), done.clone());
        let thread = std::thread::Builder::new()
            .name("loadgen-progress".into())
            .spawn(move || {
                let started = Instant::now();
                let (mut last_sent, mut last_t) = (0u64, Instant::now());
                while !flag.load(Ordering::Relaxed) {
                    std::thread::park_timeout(Duration::from_millis(250));
                    let sent = live.total(|w| &w.sent);
                    let now = Instant::now();
                    let rate = (sent.saturating_sub(last_sent)) as f64
                        / now.duration_since(last_t).as_secs_f64().max(1e-3);
                    (last_sent, last_t) = (sent, now);
                    let h = live.latency();
                    let p99 = if h.is_empty() {
                        "-".to_string()
                    } else {
                        fmt_us(h.value_at_quantile(0.99) as f64)
                    };
                    bar.set_position(started.elapsed().as_millis() as u64);
                    bar.set_message(format!(
                        "{rate:.0} rps  p99 {p99}  errors {}  dropped {}",
                        live.total(|w| &w.errors),
                        live.total(|w| &w.dropped)
                    ));
                }
                bar.finish_and_clear();
            })
            .ok();
        Progress { done, thread }
    }

    /// Stops drawing and clears the bar.
    pub fn finish(mut self) {
        self.done.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}
