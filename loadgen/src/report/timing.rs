//! The timing section of the text report: how coarse the ticks were (fixed, or what
//! `--tick auto` chose), per target what the tick check found (`judge::tick`), and
//! whether the answers' arrival stamps were receipt times (`send::arrival`).

use std::fmt::Write as _;

use crate::judge::tick;
use crate::results::Results;
use crate::results::TickCounts;
use crate::stamps::StampCounts;
use crate::units::fmt_us;

/// Appends the schedule's lines (nothing in exact mode).
pub fn lines(out: &mut String, r: &Results, ticks: &[tick::TickCheck]) {
    if r.tick_auto {
        let _ = writeln!(
            out,
            "schedule: --tick auto chose {}\n  (ticks follow the nearest target's service time; requests timed from their tick)",
            tick_shares(r)
        );
    } else if r.tick_ns > 0 {
        let _ = writeln!(
            out,
            "schedule: coarsened to {} ticks, each request timed from its tick (--tick 0s: exact)",
            fmt_us(r.tick_ns as f64 / 1000.0)
        );
    }
    for c in ticks {
        let _ = writeln!(out, "  {}", tick::describe(c));
    }
    if !r.timing.is_empty() {
        let _ = writeln!(out, "timing: {}", r.timing);
    }
    for t in &r.targets {
        let s = &t.accounts.stamps;
        for line in [stamp_line(&t.name, s), before_send_line(&t.name, s)]
            .into_iter()
            .flatten()
        {
            let _ = writeln!(out, "{line}");
        }
    }
}

/// A warning when answers carried a stamp older than their send (nothing otherwise).
fn before_send_line(name: &str, s: &StampCounts) -> Option<String> {
    (s.before_send > 0).then(|| {
        format!(
            "WARNING arrival stamps for {name}: {} answers were stamped before their request was \
             sent (the wall clock stepped?), so they were timed when read",
            s.before_send
        )
    })
}

/// A warning when a target's answers were not stamped on receipt (nothing otherwise).
fn stamp_line(name: &str, s: &StampCounts) -> Option<String> {
    let late = format!(
        "{} of {} answers read after a held sleep were stamped after it ended, or not at all",
        s.late, s.checked
    );
    if s.unheld > 0 {
        return Some(format!(
            "WARNING arrival stamps for {name}: {late}, so the kernel was not stamping arrivals.\n  \
             Answers read before that was seen were timed when read, up to a sleep late; then the \
             worker stopped holding its sleeps, and the other {} were read, and timed, as they arrived",
            s.unheld
        ));
    }
    (s.checked >= 50 && s.late * 2 >= s.checked).then(|| {
        format!(
            "WARNING arrival stamps for {name}: {late}; latency may include up to a sleep of the \
             generator's own wait"
        )
    })
}

/// `2.00ms for 96% of requests, 500µs for 4%`: the ticks `--tick auto` chose, most used first.
fn tick_shares(r: &Results) -> String {
    let mut all: Vec<(u64, u64)> = TickCounts::of_all(&r.targets).iter().collect();
    let total: u64 = all.iter().map(|(_, n)| n).sum();
    if total == 0 {
        return "no measured requests".into();
    }
    all.sort_by_key(|&(t, n)| (std::cmp::Reverse(n), t));
    all.iter()
        .enumerate()
        .map(|(i, &(t, n))| {
            format!(
                "{} for {:.0}%{}",
                fmt_us(t as f64 / 1000.0),
                n as f64 * 100.0 / total as f64,
                if i == 0 { " of requests" } else { "" }
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_are_mentioned_only_when_they_failed() {
        let fine = StampCounts {
            checked: 1000,
            late: 30,
            unheld: 0,
            read_at_send: 0,
            before_send: 0,
        };
        assert_eq!(stamp_line("us", &fine), None);
        let fell_back = StampCounts {
            checked: 900,
            late: 890,
            unheld: 4000,
            read_at_send: 0,
            before_send: 0,
        };
        let line = stamp_line("us", &fell_back).unwrap_or_default();
        assert!(line.contains("890 of 900"), "{line}");
        assert!(line.contains("other 4000 were read"), "{line}");
        let doubtful = StampCounts {
            checked: 100,
            late: 60,
            unheld: 0,
            read_at_send: 0,
            before_send: 0,
        };
        assert!(stamp_line("eu", &doubtful).is_some_and(|l| l.contains("up to a sleep")));
        assert_eq!(before_send_line("us", &fine), None);
        let stepped = StampCounts {
            before_send: 7,
            ..fine
        };
        let line = before_send_line("us", &stepped).unwrap_or_default();
        assert!(line.contains("us: 7 answers were stamped before"), "{line}");
    }
}
