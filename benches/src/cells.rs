//! Table cells shared by the README sections: Markdown tables, milliseconds, ratios, and
//! `median [min-max]` over the rounds of an alternation.

use comfy_table::{presets::ASCII_MARKDOWN, Table};

pub fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(ASCII_MARKDOWN);
    t.set_header(header.iter().copied());
    t
}

pub fn ms(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| {
        if v >= 10.0 {
            format!("{v:.1} ms")
        } else {
            format!("{v:.3} ms")
        }
    })
}

pub fn ratio(v: f64) -> String {
    if v.is_finite() && v > 0.0 {
        format!("{v:.2}x")
    } else {
        "-".into()
    }
}

/// Median of `v` (None when empty).
pub fn median(v: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

/// `median [min-max]` with `prec` decimals, or `-`.
pub fn stat(v: &[f64], prec: usize) -> String {
    let Some(m) = median(v) else {
        return "-".into();
    };
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if v.len() < 2 {
        format!("{m:.prec$}")
    } else {
        format!("{m:.prec$} [{lo:.prec$}-{hi:.prec$}]")
    }
}
