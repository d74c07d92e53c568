//! Reading each load tool's own report back: requests completed, errors, drops, p50 and p99
//! as the tool itself measured them (see [`crate::peers`] for what each calls latency).

use anyhow::{bail, Context as _};
use serde_json::Value;

use crate::peers::Tool;

/// What a tool reported about its run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reported {
    /// Responses received (any status).
    pub responses: u64,
    /// Responses with status >= 400 and transport errors the tool counted.
    pub errors: u64,
    /// Requests the tool planned but did not send (k6 dropped iterations, loadgen dropped).
    pub dropped: u64,
    /// Median latency, milliseconds.
    pub p50_ms: Option<f64>,
    /// 99th percentile latency, milliseconds.
    pub p99_ms: Option<f64>,
    /// loadgen only: p99 of its pacing lag (send time minus intended time), milliseconds.
    pub pacing_p99_ms: Option<f64>,
    /// loadgen only: answers read after it found the kernel's arrival stamps were not
    /// receipt times and stopped holding its sleeps (`arrival_stamps.unheld`).
    pub unheld: u64,
}

/// Reads a tool's report (stdout or its report file's contents).
pub fn parse(tool: Tool, text: &str) -> anyhow::Result<Reported> {
    match tool {
        Tool::Loadgen | Tool::LoadgenExact | Tool::LoadgenH2 => parse_loadgen(text),
        Tool::H2load => parse_h2load_log(text),
        Tool::Floor | Tool::FloorTimed => parse_floor(text),
        Tool::K6 => parse_k6(text),
        Tool::Oha | Tool::OhaH2 => parse_oha(text),
        Tool::Autocannon => parse_autocannon(text),
        Tool::Hey => parse_hey(text),
        Tool::Wrk => parse_wrk(text),
    }
}

fn num(v: &Value, path: &[&str]) -> Option<f64> {
    let mut cur = v;
    for p in path {
        cur = cur.get(p)?;
    }
    cur.as_f64()
}

/// loadgen's JSON report: corrected latency of the largest group, accounting of every target.
pub fn parse_loadgen(text: &str) -> anyhow::Result<Reported> {
    let v: Value = serde_json::from_str(text).context("loadgen's JSON report")?;
    let mut r = Reported::default();
    for t in v["targets"]
        .as_array()
        .context("no targets in loadgen's report")?
    {
        let a = &t["accounting"];
        let get = |k: &str| a[k].as_u64().unwrap_or(0);
        let http_errors: u64 = a["http_errors"]
            .as_object()
            .map(|m| m.values().filter_map(Value::as_u64).sum())
            .unwrap_or(0);
        r.responses += get("ok") + http_errors;
        r.errors += http_errors
            + get("timeout")
            + get("refused")
            + get("reset")
            + get("malformed")
            + get("tls")
            + get("dns")
            + get("other_transport");
        r.dropped += get("dropped_cap") + get("dropped_behind");
        r.unheld += t["arrival_stamps"]["unheld"].as_u64().unwrap_or(0);
    }
    let biggest = v["groups"]
        .as_array()
        .and_then(|g| {
            g.iter()
                .max_by_key(|g| g["corrected"]["count"].as_u64().unwrap_or(0))
        })
        .context("no latency groups in loadgen's report")?;
    r.p50_ms = num(biggest, &["corrected", "p50"]).map(|us| us / 1e3);
    r.p99_ms = num(biggest, &["corrected", "p99"]).map(|us| us / 1e3);
    r.pacing_p99_ms = num(&v, &["pacing", "p99"]).map(|us| us / 1e3);
    Ok(r)
}

/// `benches floor`'s one JSON object: no latency, unless `--measure` timed its answers.
pub fn parse_floor(text: &str) -> anyhow::Result<Reported> {
    let v: Value = serde_json::from_str(text.trim()).context("the floor's JSON report")?;
    let get = |k: &str| {
        v[k].as_u64()
            .with_context(|| format!("no {k} in the floor's report"))
    };
    // With `--measure` it timed its answers too (µs).
    let ms = |k: &str| v["latency"][k].as_u64().map(|us| us as f64 / 1000.0);
    Ok(Reported {
        responses: get("responses")?,
        errors: get("errors")?,
        dropped: get("skipped")? + get("unanswered")?,
        p50_ms: ms("p50_us"),
        p99_ms: ms("p99_us"),
        ..Reported::default()
    })
}

/// k6's `--summary-export` JSON (milliseconds).
pub fn parse_k6(text: &str) -> anyhow::Result<Reported> {
    let v: Value = serde_json::from_str(text).context("k6's summary export")?;
    let m = &v["metrics"];
    let reqs = num(m, &["http_reqs", "count"]).context("no http_reqs in k6's summary")?;
    // http_req_failed is a rate metric: `passes` counts true values (failed requests).
    let failed = num(m, &["http_req_failed", "passes"]).unwrap_or(0.0);
    Ok(Reported {
        responses: reqs as u64,
        errors: failed as u64,
        dropped: num(m, &["dropped_iterations", "count"]).unwrap_or(0.0) as u64,
        p50_ms: num(m, &["http_req_duration", "med"]),
        p99_ms: num(m, &["http_req_duration", "p(99)"]),
        pacing_p99_ms: None,
        unheld: 0,
    })
}

/// oha's JSON output (seconds).
pub fn parse_oha(text: &str) -> anyhow::Result<Reported> {
    let v: Value = serde_json::from_str(text).context("oha's JSON output")?;
    let codes = v["statusCodeDistribution"]
        .as_object()
        .context("no statusCodeDistribution in oha's output")?;
    let mut responses = 0;
    let mut errors = 0;
    for (code, n) in codes {
        let n = n.as_u64().unwrap_or(0);
        responses += n;
        if code.parse::<u16>().map_or(true, |c| c >= 400) {
            errors += n;
        }
    }
    errors += v["errorDistribution"]
        .as_object()
        .map(|m| m.values().filter_map(Value::as_u64).sum())
        .unwrap_or(0);
    let pct = |k: &str| num(&v, &["latencyPercentiles", k]).map(|s| s * 1e3);
    Ok(Reported {
        responses,
        errors,
        dropped: 0,
        p50_ms: pct("p50"),
        p99_ms: pct("p99"),
        pacing_p99_ms: None,
        unheld: 0,
    })
}

/// h2load's `--log-file`: a line per request, tab-separated: start (µs since the epoch),
/// status (-1 when the request failed), microseconds to the end of the answer.
pub fn parse_h2load_log(text: &str) -> anyhow::Result<Reported> {
    let mut micros = Vec::new();
    let mut errors = 0;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let mut cols = line.split('\t');
        let (Some(_), Some(status), Some(us)) = (cols.next(), cols.next(), cols.next()) else {
            bail!("h2load log line {line:?}: expected three columns");
        };
        let status: i64 = status.trim().parse().context("h2load log: status")?;
        let us: f64 = us.trim().parse().context("h2load log: duration")?;
        if !(100..400).contains(&status) {
            errors += 1;
        }
        micros.push(us);
    }
    micros.sort_by(f64::total_cmp);
    let pct = |q: f64| -> Option<f64> {
        let i = ((micros.len() as f64 * q).ceil() as usize).checked_sub(1)?;
        micros.get(i).map(|us| us / 1e3)
    };
    Ok(Reported {
        responses: micros.len() as u64,
        errors,
        dropped: 0,
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        pacing_p99_ms: None,
        unheld: 0,
    })
}

/// autocannon's `-j` JSON (milliseconds).
pub fn parse_autocannon(text: &str) -> anyhow::Result<Reported> {
    // autocannon may print a line or two before its JSON; take the JSON object.
    let start = text.find('{').context("no JSON in autocannon's output")?;
    let v: Value = serde_json::from_str(&text[start..]).context("autocannon's JSON output")?;
    let total = num(&v, &["requests", "total"]).context("no requests.total")?;
    let errors = num(&v, &["errors"]).unwrap_or(0.0)
        + num(&v, &["timeouts"]).unwrap_or(0.0)
        + num(&v, &["non2xx"]).unwrap_or(0.0);
    Ok(Reported {
        responses: total as u64,
        errors: errors as u64,
        dropped: 0,
        p50_ms: num(&v, &["latency", "p50"]),
        p99_ms: num(&v, &["latency", "p99"]),
        pacing_p99_ms: None,
        unheld: 0,
    })
}

/// hey's text summary (seconds).
pub fn parse_hey(text: &str) -> anyhow::Result<Reported> {
    let mut r = Reported::default();
    let mut in_codes = false;
    let mut saw_summary = false;
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with("Summary:") {
            saw_summary = true;
        }
        if let Some(rest) = t.strip_suffix("secs") {
            for (pct, slot) in [("50%", &mut r.p50_ms), ("99%", &mut r.p99_ms)] {
                if let Some(v) = rest
                    .strip_prefix(pct)
                    .and_then(|x| x.trim().strip_prefix("in"))
                {
                    *slot = v.trim().parse::<f64>().ok().map(|s| s * 1e3);
                }
            }
        }
        if t.starts_with("Status code distribution:") {
            in_codes = true;
            continue;
        }
        if in_codes {
            // `[200]	49990 responses`
            let Some(rest) = t.strip_prefix('[') else {
                in_codes = false;
                continue;
            };
            let (code, count) = rest
                .split_once(']')
                .context("bad status line in hey's output")?;
            let n: u64 = count
                .split_whitespace()
                .next()
                .and_then(|x| x.parse().ok())
                .context("bad status count in hey's output")?;
            r.responses += n;
            if code.parse::<u16>().map_or(true, |c| c >= 400) {
                r.errors += n;
            }
        }
    }
    if !saw_summary {
        bail!("no summary in hey's output");
    }
    // hey lists transport errors as `[count]	message` under "Error distribution:".
    if let Some(pos) = text.find("Error distribution:") {
        for line in text[pos..].lines().skip(1) {
            let Some(rest) = line.trim().strip_prefix('[') else {
                break;
            };
            if let Some(n) = rest.split(']').next().and_then(|x| x.parse::<u64>().ok()) {
                r.errors += n;
            }
        }
    }
    Ok(r)
}

fn wrk_duration_ms(s: &str) -> Option<f64> {
    let s = s.trim();
    let (n, unit) = s.split_at(s.find(|c: char| c.is_ascii_alphabetic())?);
    let n: f64 = n.parse().ok()?;
    Some(match unit {
        "us" => n / 1e3,
        "ms" => n,
        "s" => n * 1e3,
        "m" => n * 60e3,
        _ => return None,
    })
}

/// wrk's text output with `--latency`.
pub fn parse_wrk(text: &str) -> anyhow::Result<Reported> {
    let mut r = Reported::default();
    let mut found = false;
    for line in text.lines() {
        let t = line.trim();
        // `123456 requests in 10.00s, 12.34MB read`
        if let Some((n, _)) = t.split_once(" requests in ") {
            r.responses = n
                .trim()
                .parse()
                .context("bad request count in wrk's output")?;
            found = true;
        }
        if let Some(rest) = t.strip_prefix("50%") {
            r.p50_ms = wrk_duration_ms(rest);
        }
        if let Some(rest) = t.strip_prefix("99%") {
            r.p99_ms = wrk_duration_ms(rest);
        }
        // `Non-2xx or 3xx responses: 12` and `Socket errors: connect 0, read 0, write 0, timeout 0`
        if let Some(rest) = t.strip_prefix("Non-2xx or 3xx responses:") {
            r.errors += rest.trim().parse::<u64>().unwrap_or(0);
        }
        if let Some(rest) = t.strip_prefix("Socket errors:") {
            r.errors += rest
                .split(',')
                .filter_map(|p| p.split_whitespace().last()?.parse::<u64>().ok())
                .sum::<u64>();
        }
    }
    if !found {
        bail!("no request count in wrk's output");
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn reads_wrk() {
        let out = "Running 10s test @ http://127.0.0.1:1/\n  1 threads and 50 connections\n\
  Thread Stats   Avg      Stdev     Max   +/- Stdev\n    Latency   512.00us  100.00us   5.00ms   90.00%\n\
  Latency Distribution\n     50%  480.00us\n     75%  600.00us\n     90%  700.00us\n     99%    1.20ms\n\
  987654 requests in 10.00s, 123.00MB read\n  Socket errors: connect 0, read 2, write 0, timeout 1\n\
Requests/sec:  98765.40\nTransfer/sec:     12.30MB\n";
        let r = parse_wrk(out).unwrap();
        assert_eq!(r.responses, 987_654);
        assert_eq!(r.errors, 3);
        assert!((r.p50_ms.unwrap() - 0.48).abs() < 1e-9);
        assert!((r.p99_ms.unwrap() - 1.2).abs() < 1e-9);
        assert!(parse_wrk("garbage").is_err());
    }

    #[test]
    fn reads_hey() {
        let out = "\nSummary:\n  Total:\t10.0012 secs\n  Requests/sec:\t4999.1\n\n\
Latency distribution:\n  10% in 0.0001 secs\n  50% in 0.0003 secs\n  99% in 0.0021 secs\n\n\
Status code distribution:\n  [200]\t49990 responses\n  [503]\t10 responses\n\n\
Error distribution:\n  [4]\tGet \"http://127.0.0.1:1/\": dial tcp: connection refused\n";
        let r = parse_hey(out).unwrap();
        assert_eq!(r.responses, 50_000);
        assert_eq!(r.errors, 14);
        assert!((r.p50_ms.unwrap() - 0.3).abs() < 1e-9);
        assert!((r.p99_ms.unwrap() - 2.1).abs() < 1e-9);
        assert!(parse_hey("").is_err());
    }

    #[test]
    fn reads_k6_oha_autocannon() {
        let k6 = r#"{"metrics":{"http_reqs":{"count":50000,"rate":4999.9},
            "http_req_failed":{"passes":2,"fails":49998,"value":0.00004},
            "dropped_iterations":{"count":7,"rate":0.7},
            "http_req_duration":{"med":0.25,"p(99)":3.5}}}"#;
        let r = parse_k6(k6).unwrap();
        assert_eq!((r.responses, r.errors, r.dropped), (50_000, 2, 7));
        assert_eq!((r.p50_ms, r.p99_ms), (Some(0.25), Some(3.5)));

        let oha = r#"{"summary":{"requestsPerSec":5000.0},
            "latencyPercentiles":{"p50":0.0002,"p99":0.0015},
            "statusCodeDistribution":{"200":49999,"500":1},"errorDistribution":{"connection reset":3}}"#;
        let r = parse_oha(oha).unwrap();
        assert_eq!((r.responses, r.errors), (50_000, 4));
        assert!((r.p99_ms.unwrap() - 1.5).abs() < 1e-9);

        let ac = "Running 10s test\n{\"requests\":{\"total\":50000,\"average\":5000},\
            \"latency\":{\"p50\":0,\"p99\":1},\"errors\":0,\"timeouts\":0,\"non2xx\":5}";
        let r = parse_autocannon(ac).unwrap();
        assert_eq!((r.responses, r.errors), (50_000, 5));
        assert_eq!(r.p99_ms, Some(1.0));
    }

    #[test]
    fn reads_the_h2load_log() {
        let log = "1700000000000000\t200\t100\n1700000000000100\t200\t300\n\
                   1700000000000200\t-1\t900\n1700000000000300\t200\t200\n";
        let r = parse_h2load_log(log).unwrap();
        assert_eq!(r.responses, 4);
        assert_eq!(r.errors, 1);
        assert_eq!(r.p50_ms, Some(0.2));
        assert_eq!(r.p99_ms, Some(0.9));
        assert!(parse_h2load_log("1\t200\n").is_err());
    }

    #[test]
    fn reads_the_floor() {
        let r = parse_floor(
            r#"{"tick_us":500,"sent":98,"responses":97,"errors":3,"skipped":2,"unanswered":1}"#,
        )
        .unwrap();
        assert_eq!((r.responses, r.errors, r.dropped), (97, 3, 3));
        assert_eq!((r.p50_ms, r.p99_ms), (None, None));
        assert!(parse_floor(r#"{"sent":1}"#).is_err());
        let timed = parse_floor(
            r#"{"tick_us":500,"sent":9,"responses":9,"errors":0,"skipped":0,"unanswered":0,
                "latency":{"answers":9,"stamped":9,"labelled":9,"p50_us":72,"p99_us":1500,"service_p50_us":38}}"#,
        )
        .unwrap();
        assert_eq!((timed.p50_ms, timed.p99_ms), (Some(0.072), Some(1.5)));
    }

    #[test]
    fn reads_loadgen() {
        let j = r#"{"targets":[{"accounting":{"scheduled":100,"ok":90,"http_errors":{"503":4},
            "timeout":1,"refused":0,"reset":0,"malformed":0,"other_transport":0,
            "dropped_cap":3,"dropped_behind":2,"cancelled":0},
            "arrival_stamps":{"checked":60,"late":60,"unheld":40}},{"accounting":{}}],
            "groups":[{"corrected":{"count":90,"p50":250,"p99":1800}},{"corrected":{"count":4,"p50":9,"p99":9}}]}"#;
        let r = parse_loadgen(j).unwrap();
        assert_eq!((r.responses, r.errors, r.dropped), (94, 5, 5));
        assert_eq!((r.p50_ms, r.p99_ms), (Some(0.25), Some(1.8)));
        // Reports from before the stamp check have no `arrival_stamps`.
        assert_eq!(r.unheld, 40);
    }
}
