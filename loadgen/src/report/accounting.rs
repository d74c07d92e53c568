//! The terminal report's accounting: every scheduled request in exactly one bucket, as one
//! sentence when all were answered below 400, else as a table whose columns add up to its
//! sum, each column shown.

use std::fmt::Write as _;

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{ContentArrangement, Table};

use crate::results::{Accounting, Results};

/// Writes the accounting of `r` to `out`; `wide` shows every bucket, else the table fits
/// `width` columns.
pub(crate) fn write(out: &mut String, r: &Results, wide: bool, width: u16) {
    // Accounting: one sentence when every request was answered below 400.
    let clean = r.targets.iter().all(|t| {
        [&t.accounts.measured, &t.accounts.warmup]
            .iter()
            .all(|a| a.ok == a.scheduled && a.bucket_sum() == a.scheduled)
    });
    if clean && !wide {
        let scheduled: u64 = r
            .targets
            .iter()
            .map(|t| t.accounts.measured.scheduled)
            .sum();
        let warm: u64 = r.targets.iter().map(|t| t.accounts.warmup.scheduled).sum();
        let _ = writeln!(
            out,
            "\nAccounting: all {scheduled} scheduled requests{} answered below 400;\n\
             none failed, was dropped or was cancelled.",
            if warm > 0 {
                format!(" (and {warm} of warm-up)")
            } else {
                String::new()
            }
        );
    }
    // A `check` column only when some answer failed a `--check`.
    let checks = r
        .targets
        .iter()
        .any(|t| t.accounts.measured.check + t.accounts.warmup.check > 0);
    let mut acc = Table::new();
    if !wide {
        acc.set_content_arrangement(ContentArrangement::Dynamic);
        acc.set_width(width);
    }
    acc.load_preset(UTF8_FULL_CONDENSED);
    let mut header: Vec<&str> = if wide {
        vec![
            "target",
            "phase",
            "scheduled",
            "ok",
            "http errors",
            "timeout",
            "connect t/o",
            "refused",
            "reset",
            "malformed",
            "tls",
            "dns",
            "other",
            "dropped",
            "cancelled",
            "sum",
        ]
    } else {
        vec![
            "target", "phase", "sched", "ok", "http err", "timeout", "net err", "dropped",
            "cancel", "sum",
        ]
    };
    if checks {
        header.insert(5, "check");
    }
    acc.set_header(header);
    for t in &r.targets {
        for (phase, a) in [
            ("measured", &t.accounts.measured),
            ("warm-up", &t.accounts.warmup),
        ] {
            if phase == "warm-up" && a.scheduled == 0 {
                continue;
            }
            let mut cells = row(&t.name, phase, a, wide);
            if checks {
                cells.insert(5, a.check.to_string());
            }
            acc.add_row(cells);
        }
    }
    if !clean || wide {
        let _ = writeln!(
            out,
            "\nAccounting (every scheduled request ends in exactly one bucket):\n{acc}"
        );
    }
}

/// One phase of one target: its buckets, then their sum (which must be `scheduled`).
fn row(name: &str, phase: &str, a: &Accounting, wide: bool) -> Vec<String> {
    let http = if a.http_errors.is_empty() {
        "0".to_string()
    } else {
        a.http_errors
            .iter()
            .map(|(s, n)| format!("{s}:{n}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let sum = a.bucket_sum();
    let check = if sum == a.scheduled {
        sum.to_string()
    } else {
        format!("{sum} != {} (BUG)", a.scheduled)
    };
    let mut row = vec![
        name.to_string(),
        phase.to_string(),
        a.scheduled.to_string(),
        a.ok.to_string(),
        http,
    ];
    if wide {
        row.extend([
            a.timeout.to_string(),
            a.connect_timeout.to_string(),
            a.refused.to_string(),
            a.reset.to_string(),
            a.malformed.to_string(),
            a.tls.to_string(),
            a.dns.to_string(),
            a.other_transport.to_string(),
            format!(
                "{} (cap {}, behind {})",
                a.dropped(),
                a.dropped_cap,
                a.dropped_behind
            ),
        ]);
    } else {
        row.extend([
            a.timeouts().to_string(),
            a.transport_total().to_string(),
            a.dropped().to_string(),
        ]);
    }
    row.extend([a.cancelled.to_string(), check]);
    row
}
