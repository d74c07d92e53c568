//! Live progress on stderr: current rate, p99 so far, errors and dropped, and who served
//! each target in the last moment (`us: eu 100%` while us fails over), so a failover or a
//! canary shift is seen as it happens. Drawn only when stderr is a terminal (and not
//! disabled), so CI logs stay clean.

use std::collections::BTreeMap;
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
    /// Whether a progress line will be drawn: `wanted` and stderr is a terminal.
    pub fn drawn(wanted: bool) -> bool {
        wanted && std::io::stderr().is_terminal()
    }

    /// Starts drawing if `drawn`; `total` is the run length, `targets` the targets' names.
    pub fn start(drawn: bool, live: &Arc<Live>, targets: &[String], total: Duration) -> Progress {
        let done = Arc::new(AtomicBool::new(false));
        if !drawn {
            return Progress { done, thread: None };
        }
        let bar = ProgressBar::with_draw_target(
            Some(total.as_millis() as u64),
            ProgressDrawTarget::stderr(),
        );
        if let Ok(style) = ProgressStyle::with_template("{bar:30} {elapsed}/{duration} {msg}") {
            bar.set_style(style);
        }
        let (live, flag, targets) = (live.clone(), done.clone(), targets.to_vec());
        let thread = std::thread::Builder::new()
            .name("loadgen-progress".into())
            .spawn(move || draw(&bar, &live, &flag, &targets))
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

/// Redraws the line every 250 ms until `done`.
fn draw(bar: &ProgressBar, live: &Live, done: &AtomicBool, targets: &[String]) {
    let started = Instant::now();
    let (mut last_sent, mut last_t) = (0u64, Instant::now());
    let mut last_served = BTreeMap::new();
    while !done.load(Ordering::Relaxed) {
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
        let served = live.served();
        let shares = shares(targets, &served, &last_served);
        last_served = served;
        bar.set_position(started.elapsed().as_millis() as u64);
        bar.set_message(format!(
            "{rate:.0} rps  p99 {p99}  errors {}  dropped {}{shares}",
            live.total(|w| &w.errors),
            live.total(|w| &w.dropped)
        ));
    }
    bar.finish_and_clear();
}

/// `  | us: eu 100%  eu: eu 100%`: per target, the share of the answers since the
/// last redraw by the region that served them (regions with none left out; nothing for a
/// target with no new answers).
fn shares(
    targets: &[String],
    now: &BTreeMap<(usize, String), u64>,
    before: &BTreeMap<(usize, String), u64>,
) -> String {
    let mut out = String::new();
    for (i, name) in targets.iter().enumerate() {
        let new: Vec<(&str, u64)> = now
            .range((i, String::new())..(i + 1, String::new()))
            .map(|((_, region), n)| {
                let was = before.get(&(i, region.clone())).copied().unwrap_or(0);
                (region.as_str(), n.saturating_sub(was))
            })
            .collect();
        let total: u64 = new.iter().map(|(_, n)| n).sum();
        if total == 0 {
            continue;
        }
        out.push_str(if out.is_empty() { "  | " } else { "  " });
        out.push_str(name);
        out.push(':');
        for (region, n) in new.into_iter().filter(|(_, n)| *n > 0) {
            out.push_str(&format!(
                " {region} {:.0}%",
                n as f64 * 100.0 / total as f64
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_are_of_the_answers_since_the_last_redraw() {
        let targets = vec!["us".to_string(), "eu".to_string()];
        let at = |v: &[(usize, &str, u64)]| -> BTreeMap<(usize, String), u64> {
            v.iter()
                .map(|(t, r, n)| ((*t, r.to_string()), *n))
                .collect()
        };
        let before = at(&[(0, "us", 900), (1, "eu", 500)]);
        // us stopped answering from us: every new us answer came from eu.
        let now = at(&[(0, "us", 900), (0, "eu", 100), (1, "eu", 600)]);
        assert_eq!(
            shares(&targets, &now, &before),
            "  | us: eu 100%  eu: eu 100%"
        );
        assert_eq!(shares(&targets, &before, &before), "");
    }
}
