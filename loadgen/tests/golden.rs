//! The report's shape does not change when the code behind it is reorganised: one
//! fixed-seed, fixed-rate run, its terminal report reduced to structure and counts (every
//! timing and anything derived from timing replaced by a placeholder), compared with the
//! recording in `tests/golden/report.txt`. Set `LOADGEN_GOLDEN_RECORD=1` to re-record
//! (and review the diff) when a report change is intended.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;

/// Replaces what depends on timing: durations, rates with decimals, connection counts,
/// and the table borders (whose width follows the widest value).
fn shape(report: &str) -> String {
    let time = regex_lite(r"[0-9]+(\.[0-9]+)?(µs|ms|s)\b");
    let mut out = String::new();
    for line in report.lines() {
        // The pacing warning appears when the machine is slow: timing, not shape.
        if line.starts_with("  WARNING: the generator is falling behind")
            || line.starts_with("  WARNING: sending each tick's requests together")
        {
            continue;
        }
        // How the generator timed depends on the platform (`send::clock::timing_source`).
        let line = if line.starts_with("timing: ") {
            "timing: <source>".to_string()
        } else if line.contains("connections for") {
            // Opened and peak depend on how answers interleave.
            let head = line.split(':').next().unwrap_or("");
            format!("{head}: <pool>")
        } else {
            line.to_string()
        };
        // Cells: split on the table's separators, trim, normalise times.
        let cells: Vec<String> = line
            .split(['│', '┆', '|'])
            .map(|c| time(c.trim()))
            .collect();
        // The tick check's shift is a signed time.
        let joined = cells.join(" | ").replace("(-<t>", "(+<t>");
        // Border rows carry no information beyond their position.
        let joined = if joined.chars().all(|c| "┌┬┐└┴┘╞╪╡═─ |├┼┤".contains(c))
        {
            "<border>".to_string()
        } else {
            joined
        };
        out.push_str(joined.trim_end());
        out.push('\n');
    }
    out
}

/// A tiny matcher for `NUMBER(.NUMBER)?UNIT` without a regex dependency.
fn regex_lite(_pattern: &str) -> impl Fn(&str) -> String {
    |s: &str| {
        let b: Vec<char> = s.chars().collect();
        let mut out = String::new();
        let mut i = 0;
        while i < b.len() {
            if b[i].is_ascii_digit() && (i == 0 || !b[i - 1].is_ascii_alphanumeric()) {
                let mut j = i;
                while j < b.len() && (b[j].is_ascii_digit() || b[j] == '.') {
                    j += 1;
                }
                let rest: String = b[j..].iter().take(2).collect();
                let unit = if rest.starts_with("µs") || rest.starts_with("ms") {
                    2
                } else if rest.starts_with('s')
                    && b.get(j + 1).map_or(true, |c| !c.is_ascii_alphanumeric())
                {
                    1
                } else {
                    0
                };
                if unit > 0 {
                    out.push_str("<t>");
                    i = j + unit;
                    continue;
                }
                out.extend(&b[i..j]);
                i = j;
                continue;
            }
            out.push(b[i]);
            i += 1;
        }
        out
    }
}

/// Runs loadgen with `words` against echo-svc us (v1) and eu (v2, with `eu_faults`).
fn two_regions(eu_faults: &str, words: &[&str]) -> loadgen::RunOutcome {
    let rt = server_runtime();
    let us = echo(&rt, "us", "v1", "");
    let eu = echo(&rt, "eu", "v2", eu_faults);
    let t1 = format!("us=http://{}/", us.addr());
    let t2 = format!("eu=http://{}/", eu.addr());
    let mut argv = vec!["--target", t1.as_str(), "--target", t2.as_str()];
    argv.extend_from_slice(words);
    let out = loadgen::execute(config(&argv), false).unwrap();
    rt.block_on(us.shutdown()).unwrap();
    rt.block_on(eu.shutdown()).unwrap();
    out
}

#[test]
fn the_report_keeps_its_shape() {
    // Every eu answer is a 503: an error column that does not depend on sampling.
    let out = two_regions(
        "status=503",
        &[
            "--rps",
            "200",
            "--duration",
            "1s",
            "--seed",
            "7",
            "--slo",
            "p99<10s",
            "--slo",
            "error_rate<1%",
            "--slo",
            "dropped==0",
        ],
    );
    let text = loadgen::report::text::render(&out.results, &out.judgement);
    let got = shape(&text);
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/report.txt");
    if std::env::var_os("LOADGEN_GOLDEN_RECORD").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &got).unwrap();
    }
    let want = std::fs::read_to_string(&path).expect("tests/golden/report.txt (record it)");
    assert_eq!(got, want, "the report's shape changed:\n{text}");
}

#[test]
fn the_report_fits_the_terminal_and_wide_shows_every_column() {
    let out = two_regions("delay=30ms", &["--rps", "100", "--duration", "1s"]);
    use loadgen::report::text::{render_styled, Style};
    let width = |s: &str| s.lines().map(|l| l.chars().count()).max().unwrap_or(0);
    let compact = render_styled(
        &out.results,
        &out.judgement,
        &Style {
            wide: false,
            width: 100,
        },
    );
    assert!(width(&compact) <= 100, "{compact}");
    let header = compact.lines().find(|l| l.contains("target ┆")).unwrap();
    assert!(
        !header.contains("p99.9") && !header.contains("p90"),
        "{header}"
    );
    assert!(
        compact.contains("Accounting: all 100 scheduled"),
        "{compact}"
    );
    // Narrower: the tables wrap inside their cells instead of breaking the grid.
    let narrow = render_styled(
        &out.results,
        &out.judgement,
        &Style {
            wide: false,
            width: 70,
        },
    );
    let tables = |s: &str| {
        s.lines()
            .filter(|l| l.starts_with(['┌', '│', '╞', '└', '├']))
            .map(|l| l.chars().count())
            .max()
            .unwrap_or(0)
    };
    assert!(tables(&narrow) <= 70, "{narrow}");
    let wide = render_styled(
        &out.results,
        &out.judgement,
        &Style {
            wide: true,
            width: 100,
        },
    );
    for col in ["p90", "p99.9", "p99 svc", "requests", "errors", "dropped"] {
        assert!(wide.contains(col), "{col}: {wide}");
    }
    assert!(wide.contains("Accounting (every scheduled request"));
}
