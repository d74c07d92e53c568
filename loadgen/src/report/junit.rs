//! JUnit XML (`--junit FILE`): one test case per SLO, so CI systems show each gate as a
//! test. A failed SLO carries a `<failure>` with the measured value and the threshold.

use std::fmt::Write as _;

use crate::judge::slo::Verdict;

/// XML 1.0 admits no control characters but tab, newline and carriage return, not even
/// as character references: an SLO text holding one would make the file invalid, so
/// they become U+FFFD before escaping.
fn xml_chars(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '\t' | '\n' | '\r' => c,
            c if (c as u32) < 0x20 || c == '\u{fffe}' || c == '\u{ffff}' => '\u{fffd}',
            c => c,
        })
        .collect()
}

fn esc(s: &str) -> String {
    html_escape::encode_quoted_attribute(&xml_chars(s)).into_owned()
}

fn esc_text(s: &str) -> String {
    html_escape::encode_text(&xml_chars(s)).into_owned()
}

/// Renders the verdicts as a JUnit test suite named `suite`.
pub fn render(suite: &str, verdicts: &[Verdict], measured_secs: f64) -> String {
    let failures = verdicts.iter().filter(|v| !v.pass).count();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuites name=\"{}\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" time=\"{measured_secs:.3}\">",
        esc(suite),
        verdicts.len()
    );
    let _ = writeln!(
        out,
        "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" skipped=\"0\" time=\"{measured_secs:.3}\">",
        esc(suite),
        verdicts.len()
    );
    for v in verdicts {
        let _ = write!(
            out,
            "    <testcase classname=\"{}.slo\" name=\"{}\" time=\"0\"",
            esc(suite),
            esc(&v.slo)
        );
        if v.pass {
            out.push_str("/>\n");
        } else {
            let msg = format!("measured {} against threshold {}", v.detail, v.slo);
            let _ = writeln!(
                out,
                ">\n      <failure message=\"{}\" type=\"SLO\">SLO: {}\nmeasured: {}\nthreshold value: {}</failure>\n    </testcase>",
                esc(&msg),
                esc_text(&v.slo),
                esc_text(&v.detail),
                v.threshold
            );
        }
    }
    out.push_str("  </testsuite>\n</testsuites>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_case_per_slo_with_failures_escaped() {
        let v = vec![
            Verdict {
                slo: "p95<200ms".into(),
                measured: Some(1000.0),
                threshold: 200_000.0,
                pass: true,
                detail: "1.00ms".into(),
            },
            Verdict {
                slo: "p99{target:\"x\"}<1ms & more".into(),
                measured: Some(5000.0),
                threshold: 1000.0,
                pass: false,
                detail: "5.00ms".into(),
            },
        ];
        let x = render("loadgen", &v, 2.0);
        assert_eq!(x.matches("<testcase ").count(), 2);
        assert_eq!(x.matches("<failure ").count(), 1);
        assert!(x.contains("tests=\"2\" failures=\"1\""));
        assert!(x.contains("&amp; more") && !x.contains("& more"));
        assert!(x.contains("measured 5.00ms"));
    }
}
