//! HdrHistogram interval log (`--hdr-log FILE`), readable by HdrHistogram's standard tools
//! (`HistogramLogProcessor`, the plotters) and by the Rust crate's interval log iterator.
//!
//! One line per interval and group, tagged `Tag=target/region/version/class` (characters a
//! tag may not hold become `_`). Values are corrected latency in **microseconds**; the
//! `Interval_Max` column is divided by 1000, i.e. shown in milliseconds as the Java tools
//! expect. Timestamps are seconds from `BaseTime`, the start of the measured window.

use std::io::Write as _;
use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, Tag};
use hdrhistogram::serialization::V2DeflateSerializer;

use crate::timeline::Timeline;

fn tag_text(k: &crate::results::GroupKey) -> String {
    let name = if k.name.is_empty() {
        String::new()
    } else {
        format!("/{}", k.name)
    };
    format!("{}{name}/{}/{}/{}", k.target, k.region, k.version, k.class)
        .chars()
        .map(|c| {
            if matches!(c, ',' | ' ' | '\r' | '\n') {
                '_'
            } else {
                c
            }
        })
        .collect()
}

/// The log's text.
pub fn render(tl: &Timeline) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    writeln!(out, "#[Histogram log format version 1.3]")?;
    writeln!(
        out,
        "#[Written by loadgen: corrected latency in microseconds per interval and group]"
    )?;
    writeln!(
        out,
        "#[StartTime: {:.3} (seconds since epoch)]",
        tl.origin_unix_secs
    )?;
    writeln!(
        out,
        "#[BaseTime: {:.3} (seconds since epoch)]",
        tl.origin_unix_secs
    )?;
    writeln!(
        out,
        "\"StartTimestamp\",\"Interval_Length\",\"Interval_Max\",\"Interval_Compressed_Histogram\""
    )?;
    let mut ser = V2DeflateSerializer::new();
    let mut w = IntervalLogWriterBuilder::new()
        .with_max_value_divisor(1000.0)
        .begin_log_with(&mut out, &mut ser)?;
    let len = Duration::from_secs_f64(tl.interval_secs.max(0.0));
    for ((idx, key), parts) in &tl.slices {
        let h = Timeline::histogram(parts);
        let text = tag_text(key);
        w.write_histogram(
            &h,
            Duration::from_secs_f64(*idx as f64 * tl.interval_secs),
            len,
            Tag::new(&text),
        )
        .map_err(|e| anyhow::anyhow!("cannot encode an interval histogram: {e:?}"))?;
    }
    Ok(out)
}

/// Writes the log to `path`.
pub fn write(path: &Path, tl: &Timeline) -> anyhow::Result<()> {
    let bytes = render(tl)?;
    std::fs::write(path, bytes)
        .with_context(|| format!("cannot write the HdrHistogram log to {}", path.display()))
}
