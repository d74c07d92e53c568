//! The report's inline SVG plots: the percentile spectrum of one histogram (HdrHistogram's
//! plotter: x is `1/(1-p)` on a log scale, so 50%, 90%, 99%, 99.9% and 99.99% are evenly
//! spaced) and values over time, one line per series, with a scenario's events marked.

use std::fmt::Write as _;

use hdrhistogram::Histogram;
use html_escape::encode_text as esc;

const W: f64 = 640.0;
const H: f64 = 300.0;
const LEFT: f64 = 70.0;
const BOTTOM: f64 = 40.0;
const TOP: f64 = 15.0;
const RIGHT: f64 = 30.0;
/// Highest percentile plotted: 99.99% is x = log10(10^4) = 4.
const X_MAX: f64 = 4.0;
/// Lowest: 50% is x = log10(2).
const X_MIN: f64 = std::f64::consts::LOG10_2;

fn attr(s: &str) -> String {
    html_escape::encode_double_quoted_attribute(s).into_owned()
}

/// Percentile spectrum of one histogram as an SVG.
pub(super) fn spectrum_svg(h: &Histogram<u64>, title: &str) -> String {
    let xs: Vec<f64> = (0..=120)
        .map(|i| X_MIN + (X_MAX - X_MIN) * i as f64 / 120.0)
        .collect();
    let pts: Vec<(f64, f64)> = xs
        .iter()
        .map(|x| {
            let p = 1.0 - 10f64.powf(-x);
            (*x, h.value_at_quantile(p) as f64 / 1000.0)
        })
        .collect();
    let y_max = pts.iter().map(|p| p.1).fold(0.0, f64::max).max(0.001) * 1.1;
    let px = |x: f64| LEFT + (x - X_MIN) / (X_MAX - X_MIN) * (W - LEFT - RIGHT);
    let py = |y: f64| H - BOTTOM - y / y_max * (H - BOTTOM - TOP);
    let mut s = String::new();
    let _ = write!(
        s,
        "<svg class=\"plot\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\" role=\"img\" aria-label=\"{}\">",
        attr(title)
    );
    let _ = write!(
        s,
        "<rect x=\"{LEFT}\" y=\"{TOP}\" width=\"{}\" height=\"{}\" fill=\"#fafafa\" stroke=\"#999\"/>",
        W - LEFT - RIGHT,
        H - BOTTOM - TOP
    );
    for (label, x) in [
        ("50%", X_MIN),
        ("90%", 1.0),
        ("99%", 2.0),
        ("99.9%", 3.0),
        ("99.99%", 4.0),
    ] {
        let _ = write!(
            s,
            "<line x1=\"{0:.1}\" x2=\"{0:.1}\" y1=\"{TOP}\" y2=\"{1}\" stroke=\"#ddd\"/><text x=\"{0:.1}\" y=\"{2}\" font-size=\"11\" text-anchor=\"middle\">{label}</text>",
            px(x),
            H - BOTTOM,
            H - BOTTOM + 15.0
        );
    }
    for i in 0..=4 {
        let y = y_max * i as f64 / 4.0;
        let _ = write!(
            s,
            "<line x1=\"{LEFT}\" x2=\"{0}\" y1=\"{1:.1}\" y2=\"{1:.1}\" stroke=\"#eee\"/><text x=\"{2}\" y=\"{3:.1}\" font-size=\"11\" text-anchor=\"end\">{4:.2} ms</text>",
            W - RIGHT,
            py(y),
            LEFT - 5.0,
            py(y) + 4.0,
            y
        );
    }
    let _ = write!(
        s,
        "<text x=\"{}\" y=\"{}\" font-size=\"12\" text-anchor=\"middle\">percentile</text>",
        (LEFT + W - RIGHT) / 2.0,
        H - 5.0
    );
    let path: Vec<String> = pts
        .iter()
        .map(|(x, y)| format!("{:.1},{:.1}", px(*x), py(*y)))
        .collect();
    let _ = write!(
        s,
        "<polyline class=\"series\" fill=\"none\" stroke=\"#d62728\" stroke-width=\"2.5\" points=\"{}\"/></svg>",
        path.join(" ")
    );
    s
}

/// Colours for a plot's series, in order.
const COLOURS: [&str; 6] = [
    "#1f77b4", "#ff7f0e", "#7f7f7f", "#2ca02c", "#9467bd", "#d62728",
];

/// One line of a plot over time: its label and its (seconds, value) points, by time.
pub(super) type Series = (String, Vec<(f64, f64)>);

/// A scenario's event on a plot over time: (seconds into the measured window, label).
pub(super) type Mark = (f64, String);

/// The time axis every plot over time of one report shares, so that events and changes
/// line up from plot to plot.
#[derive(Debug, Clone, Copy)]
pub(super) struct Axis {
    /// Right end of the axis, seconds into the measured window.
    pub t_max: f64,
    /// The interval between points: points further apart than this are not joined.
    pub step: f64,
}

/// A round step for the time axis (1, 2 or 5 times a power of ten) giving at most about
/// eight marks, so the marks read as times (10 s, 20 s) rather than fractions of the run.
fn time_step(t_max: f64) -> f64 {
    let rough = (t_max / 8.0).max(1e-3);
    let pow = 10f64.powf(rough.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * pow)
        .find(|s| *s >= rough)
        .unwrap_or(10.0 * pow)
}

/// A series' points cut where an interval has no value, so that a group that stopped
/// and started again is not drawn as a straight line across the gap.
fn runs(points: &[(f64, f64)], step: f64) -> Vec<&[(f64, f64)]> {
    let mut out = Vec::new();
    let mut from = 0;
    for i in 1..points.len() {
        if points[i].0 - points[i - 1].0 > step * 1.5 {
            out.push(&points[from..i]);
            from = i;
        }
    }
    if from < points.len() {
        out.push(&points[from..]);
    }
    out
}

/// Values over time as an SVG line plot on `axis`, one line per series, `unit` on the y
/// axis, each of `marks` a dashed vertical line with its number.
pub(super) fn over_time_svg(
    series: &[Series],
    unit: &str,
    title: &str,
    marks: &[Mark],
    axis: Axis,
) -> String {
    let t_max = axis.t_max.max(1e-3);
    let y_max = series
        .iter()
        .flat_map(|(_, p)| p.iter())
        .map(|p| p.1)
        .fold(0.0, f64::max)
        .max(0.001)
        * 1.1;
    let px = |x: f64| LEFT + x / t_max * (W - LEFT - RIGHT);
    let py = |y: f64| H - BOTTOM - y / y_max * (H - BOTTOM - TOP);
    let mut s = String::new();
    let _ = write!(
        s,
        "<svg class=\"plot\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\" role=\"img\" aria-label=\"{}\"><rect x=\"{LEFT}\" y=\"{TOP}\" width=\"{}\" height=\"{}\" fill=\"#fafafa\" stroke=\"#999\"/>",
        attr(title),
        W - LEFT - RIGHT,
        H - BOTTOM - TOP
    );
    for i in 0..=4 {
        let y = y_max * i as f64 / 4.0;
        let _ = write!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"end\">{y:.2} {unit}</text>",
            LEFT - 5.0,
            py(y) + 4.0,
        );
    }
    let step = time_step(t_max);
    let decimals = usize::from(step < 1.0);
    let mut x = 0.0;
    while x <= t_max + 1e-9 {
        let _ = write!(
            s,
            "<line x1=\"{0:.1}\" x2=\"{0:.1}\" y1=\"{TOP}\" y2=\"{1}\" stroke=\"#eee\"/><text class=\"t\" x=\"{0:.1}\" y=\"{2:.1}\" font-size=\"11\" text-anchor=\"middle\">{x:.3$} s</text>",
            px(x),
            H - BOTTOM,
            H - BOTTOM + 15.0,
            decimals
        );
        x += step;
    }
    let mut label_x = LEFT + 10.0;
    for (i, (name, points)) in series.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        for run in runs(points, axis.step) {
            let pts: Vec<String> = run
                .iter()
                .map(|(t, v)| format!("{:.1},{:.1}", px(*t), py(*v)))
                .collect();
            // A lone point still shows: a line of one point draws nothing.
            let _ = match run {
                [(t, v)] => write!(
                    s,
                    "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"2\" fill=\"{colour}\"/>",
                    px(*t),
                    py(*v)
                ),
                _ => write!(
                    s,
                    "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"1.5\" points=\"{}\"/>",
                    pts.join(" ")
                ),
            };
        }
        let _ = write!(
            s,
            "<text x=\"{label_x:.1}\" y=\"{:.1}\" font-size=\"11\" fill=\"{colour}\">{}</text>",
            TOP + 14.0,
            esc(name)
        );
        label_x += 12.0 + 6.5 * name.len() as f64;
    }
    for (i, (t, label)) in marks
        .iter()
        .enumerate()
        .filter(|(_, m)| m.0 >= 0.0 && m.0 <= t_max)
    {
        let x = px(*t);
        // A number on the line (the list under the heading says what it was; hovering
        // shows it too); numbers step down so that events close together stay readable.
        let y = TOP + 28.0 + 12.0 * (i % 3) as f64;
        let _ = write!(
            s,
            "<g class=\"event\"><title>{}</title><line x1=\"{x:.1}\" y1=\"{TOP}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"#444\" stroke-dasharray=\"4 3\"/><text x=\"{:.1}\" y=\"{y:.1}\" font-size=\"11\" font-weight=\"bold\" fill=\"#444\">{}</text></g>",
            esc(label),
            H - BOTTOM,
            x + 3.0,
            i + 1
        );
    }
    s.push_str("</svg>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gap_in_the_intervals_cuts_the_line() {
        let pts = [(1.0, 5.0), (2.0, 5.0), (6.0, 7.0), (7.0, 7.0), (9.0, 1.0)];
        let cut: Vec<usize> = runs(&pts, 1.0).iter().map(|r| r.len()).collect();
        assert_eq!(cut, vec![2, 2, 1]);
        let svg = over_time_svg(
            &[("p50".into(), pts.to_vec())],
            "ms",
            "x",
            &[],
            Axis {
                t_max: 10.0,
                step: 1.0,
            },
        );
        assert_eq!(svg.matches("<polyline").count(), 2, "{svg}");
        assert_eq!(svg.matches("<circle").count(), 1, "{svg}");
        // The axis is the one given, not the series' own last point, marked in round steps.
        assert!(svg.contains(">10 s</text>"), "{svg}");
        assert_eq!(time_step(52.2), 10.0);
        assert_eq!(time_step(9.2), 2.0);
        assert_eq!(time_step(1.0), 0.2);
    }
}
