//! The HTML report of a real run: self-contained (no external references), laid out in the
//! order a reader asks (what happened, verdicts, latency over time, spectra, settings) with
//! every plot over time on one axis, and rendered by headless Chromium into screenshots
//! that show the plots where the layout puts them.
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
    // What happened (answers per second by served region/version), then latency per group.
    assert!(text.contains("<h2>What happened</h2>"));
    let rps = plot(
        &text,
        "target us: answers per second by served region/version",
    );
    assert!(
        rps.contains(">us/v1</text>") && rps.contains(" rps</text>"),
        "{rps}"
    );
    assert!(text.contains("target us, region us, version v1: latency over time"));
    assert!(text.contains("PASS"));
    // Verdicts come first, settings in human units.
    let at = |needle: &str| text.find(needle).unwrap_or(usize::MAX);
    assert!(at("SLO verdicts") < at("Run settings"), "verdicts first");
    assert!(text.contains("<th>max lag</th><td>1s</td>"), "human units");
    // The SVG namespace is an identifier, not a fetched resource.
    let refs = external_refs(&text);
    assert!(refs.is_empty(), "external references: {refs:?}");

    let Some(pixels) = screenshot(&html, &dir, 2600) else {
        return;
    };
    let series = pixels.count(SERIES);
    // A 2.5 px wide line across a 555 px plot: well over a thousand pixels.
    assert!(
        series > 500,
        "only {series} plot-line pixels in the screenshot"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A screenshot's RGB pixels, top to bottom.
struct Pixels {
    width: usize,
    rgb: Vec<[u8; 3]>,
}

impl Pixels {
    /// Pixels within a small distance of `colour`.
    fn count(&self, colour: [u8; 3]) -> usize {
        self.count_in(colour, 0, usize::MAX)
    }

    /// Such pixels in rows `from..to`.
    fn count_in(&self, colour: [u8; 3], from: usize, to: usize) -> usize {
        self.rgb
            .chunks(self.width)
            .skip(from)
            .take(to.saturating_sub(from))
            .flatten()
            .filter(|px| {
                px.iter()
                    .zip(colour)
                    .all(|(a, b)| (*a as i32 - b as i32).abs() < 40)
            })
            .count()
    }
}

/// `html` rendered by headless Chromium in a 1280 px wide window `height` tall; `None`
/// (after saying so) where Chromium is not installed and that is allowed.
fn screenshot(html: &Path, dir: &Path, height: u32) -> Option<Pixels> {
    let chromium = Path::new("/usr/bin/chromium");
    if !chromium.exists() {
        // scripts/install-tools.sh installs it; Linux CI must not pass by skipping (the
        // macOS job has no Debian chromium).
        assert!(
            std::env::var_os("CI").is_none() || !cfg!(target_os = "linux"),
            "chromium missing under CI: run scripts/install-tools.sh"
        );
        eprintln!("chromium not installed: screenshot check skipped");
        return None;
    }
    let shot = dir.join(format!("shot-{height}.png"));
    let profile = dir.join(format!("profile-{height}"));
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
        ])
        .arg(format!("--window-size=1280,{height}"))
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
    let decoder = png::Decoder::new(std::fs::File::open(&shot).unwrap());
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = info.color_type.samples();
    assert!(channels >= 3, "{:?}", info.color_type);
    Some(Pixels {
        width: info.width as usize,
        rgb: buf[..info.buffer_size()]
            .chunks(channels)
            .map(|px| [px[0], px[1], px[2]])
            .collect(),
    })
}

/// The time-axis marks of every plot over time (each SVG's `class="t"` labels).
fn time_axes(html: &str) -> Vec<Vec<String>> {
    html.split("<svg")
        .skip(1)
        .filter(|svg| svg.contains("class=\"t\""))
        .map(|svg| {
            svg.split("class=\"t\"")
                .skip(1)
                .filter_map(|t| Some(t.split_once('>')?.1.split_once('<')?.0.to_string()))
                .collect()
        })
        .collect()
}

/// A scenario with events: the page opens on what happened (the events, then answers per
/// second by served region), then the verdicts; latency, spectra and settings follow. Every
/// plot over time has the same time axis, and each title stands above its plot.
#[test]
fn a_lab_report_opens_on_what_happened_with_one_time_axis() {
    let dir = std::env::temp_dir().join(format!("loadgen-html-lab-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let scenario = common::brownout_scenario(&dir);
    let html = dir.join("lab.html");
    let o = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(["lab", "--no-progress", "--rps", "300", "--warmup", "1s"])
        .args(["--consecutive-5xx", "1000", "--scenario-file"])
        .arg(&scenario)
        .arg("--html")
        .arg(&html)
        .output()
        .unwrap();
    assert!(
        o.status.code().is_some(),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let text = std::fs::read_to_string(&html).unwrap();
    let at = |needle: &str| {
        text.find(needle)
            .unwrap_or_else(|| panic!("{needle:?} not in the page"))
    };
    let order = [
        "<h2>What happened</h2>",
        "<ol class=\"events\">",
        "eu-v2: answering 500",
        "target eu: answers per second by served region/version",
        "<h2>SLO verdicts</h2>",
        "<h2>Latency over time</h2>",
        "target eu, region eu, version v2: latency over time",
        "<h2>Latency per target",
        "<h2>Percentile spectrum per group</h2>",
        "<h2>Run settings</h2>",
    ];
    for pair in order.windows(2) {
        assert!(
            at(pair[0]) < at(pair[1]),
            "{:?} before {:?}",
            pair[0],
            pair[1]
        );
    }
    // Titles above plots: every figure opens with its caption.
    let figures = text.matches("<figure>").count();
    assert!(figures >= 6, "{figures} figures");
    assert_eq!(text.matches("<figure><figcaption>").count(), figures);
    // One time axis: each plot over time carries the same marks, with the events on it.
    let axes = time_axes(&text);
    assert!(axes.len() >= 4, "{axes:?}");
    assert!(axes.iter().all(|a| a == &axes[0]), "{axes:?}");
    assert!(axes[0].len() >= 3, "{axes:?}");
    assert!(text.matches("class=\"event\"").count() >= 2 * axes.len());

    let Some(first_screen) = screenshot(&html, &dir, 900) else {
        let _ = std::fs::remove_dir_all(&dir);
        return;
    };
    // The first screen shows the answers-per-second plots: their first series' colour
    // (#1f77b4) and the events' dashed lines (#444444) are there.
    let blue = first_screen.count([0x1f, 0x77, 0xb4]);
    assert!(
        blue > 300,
        "only {blue} pixels of the first series on the first screen"
    );
    let marks = first_screen.count([0x44, 0x44, 0x44]);
    assert!(
        marks > 100,
        "only {marks} event-line pixels on the first screen"
    );
    // The whole page: the spectra (#d62728) come below every plot over time.
    let whole = screenshot(&html, &dir, 5000).unwrap();
    let rows = whole.rgb.len() / whole.width;
    // A row with many such pixels is a plot line (a failed verdict's red text has few).
    let red_rows: Vec<usize> = (0..rows)
        .filter(|y| whole.count_in(SERIES, *y, y + 1) > 50)
        .collect();
    assert!(!red_rows.is_empty(), "no spectrum drawn");
    assert!(
        red_rows[0] > 900,
        "a spectrum starts at row {}, on the first screen",
        red_rows[0]
    );
    let _ = std::fs::remove_dir_all(&dir);
}
