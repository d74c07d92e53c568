//! The HTML report of a real run: self-contained (no external references), and rendered by
//! headless Chromium into a screenshot that shows the plotted percentile spectrum.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::Command;

/// Plot line colour in the SVG (`#d62728`).
const SERIES: [u8; 3] = [0xd6, 0x27, 0x28];

fn external_refs(html: &str) -> Vec<String> {
    let lower = html.to_ascii_lowercase();
    let mut out = Vec::new();
    for needle in ["src=", "href=", "url(", "@import", "<link", "<script"] {
        let mut from = 0;
        while let Some(i) = lower[from..].find(needle) {
            let at = from + i;
            out.push(lower[at..(at + 60).min(lower.len())].to_string());
            from = at + needle.len();
        }
    }
    out
}

/// The SVG whose aria-label is `label`.
fn plot<'a>(html: &'a str, label: &str) -> &'a str {
    let start = html
        .find(&format!("aria-label=\"{label}\""))
        .unwrap_or_else(|| panic!("no plot {label:?}"));
    let end = html[start..].find("</svg>").unwrap() + start;
    &html[start..end]
}

#[test]
fn html_report_is_self_contained_and_draws_the_plot() {
    let rt = common::server_runtime();
    let echo = common::echo(&rt, "us", "v1", "delay=2ms");
    let dir = std::env::temp_dir().join(format!("loadgen-html-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let html = dir.join("report.html");
    // One answer in ten a 503, so the errors line has something to draw.
    let url = format!("us=http://{}/?status=503:10", echo.addr());
    let o = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args([
            "--no-progress",
            "--target",
            &url,
            "--rps",
            "200",
            "--duration",
            "1s",
        ])
        .args(["--slo", "p99<10s", "--html", html.to_str().unwrap()])
        .output()
        .unwrap();
    rt.block_on(echo.shutdown()).unwrap();
    let text = std::fs::read_to_string(&html).unwrap_or_default();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // User text with markup characters (the SLO) comes out escaped.
    assert!(text.contains("p99&lt;10s") && !text.contains("p99<10s"));
    assert!(text.contains("<polyline class=\"series\""));
    // Over time: answers per second by served region/version, then latency per group.
    assert!(text.contains("<h2>Over time</h2>"));
    let rps = plot(
        &text,
        "target us: answers per second by served region/version",
    );
    assert!(
        rps.contains(">us/v1</text>") && rps.contains(" rps</text>"),
        "{rps}"
    );
    assert!(text.contains("us, region us, version v1 latency over time"));
    assert!(text.contains("PASS"));
    // Verdicts come first, settings in human units.
    let at = |needle: &str| text.find(needle).unwrap_or(usize::MAX);
    assert!(at("SLO verdicts") < at("Run settings"), "verdicts first");
    assert!(text.contains("<th>max lag</th><td>1s</td>"), "human units");
    // The SVG namespace is an identifier, not a fetched resource.
    let refs = external_refs(&text);
    assert!(refs.is_empty(), "external references: {refs:?}");

    let chromium = Path::new("/usr/bin/chromium");
    if !chromium.exists() {
        // scripts/install-tools.sh installs it; Linux CI must not pass by skipping (the
        // macOS job has no Debian chromium).
        assert!(
            std::env::var_os("CI").is_none() || !cfg!(target_os = "linux"),
            "chromium missing under CI: run scripts/install-tools.sh"
        );
        eprintln!("chromium not installed: screenshot check skipped");
        return;
    }
    let shot = dir.join("shot.png");
    let profile = dir.join("profile");
    let o = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--hide-scrollbars",
            "--window-size=1280,2000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("file://{}", html.display()))
        .output()
        .unwrap();
    assert!(
        shot.exists(),
        "no screenshot: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let len = std::fs::metadata(&shot).unwrap().len();
    assert!(len > 10_000, "screenshot is only {len} bytes");

    let decoder = png::Decoder::new(std::fs::File::open(&shot).unwrap());
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = info.color_type.samples();
    assert!(channels >= 3, "{:?}", info.color_type);
    let series = buf[..info.buffer_size()]
        .chunks(channels)
        .filter(|px| {
            px.iter()
                .zip(SERIES)
                .all(|(a, b)| (*a as i32 - b as i32).abs() < 40)
        })
        .count();
    // A 2.5 px wide line across a 555 px plot: well over a thousand pixels.
    assert!(
        series > 500,
        "only {series} plot-line pixels in the screenshot"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
