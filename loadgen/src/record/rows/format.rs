//! The writer thread's side: rows formatted as CSV or JSON lines, one `write` per batch,
//! names escaped once for the format.

use std::collections::HashMap;
use std::sync::mpsc::Receiver;

use super::{Format, Msg, Row, ROWS_PER_BATCH};

/// Writes every row the queue brings until every sender is gone: rows written, and the
/// first write error (after which rows are only counted as not written).
pub(super) fn write_all(
    w: &mut impl std::io::Write,
    format: Format,
    rx: &Receiver<Msg>,
    targets: &[String],
    request_names: &[Vec<String>],
    origin_ns: u64,
) -> (u64, Option<String>) {
    // Names are escaped once for the format, when they first appear; a row only adds numbers.
    let mut names: HashMap<(usize, u32), (String, String)> = HashMap::new();
    let targets: Vec<String> = targets.iter().map(|t| escape(format, t)).collect();
    let request_names: Vec<Vec<String>> = request_names
        .iter()
        .map(|ns| ns.iter().map(|n| escape(format, n)).collect())
        .collect();
    let none = escape(format, "");
    let mut written = 0u64;
    let mut error = None;
    if format == Format::Csv {
        if let Err(e) = w.write_all(CSV_HEADER.as_bytes()) {
            error = Some(e.to_string());
        }
    }
    let mut line = String::with_capacity(256);
    let mut batch: Vec<u8> = Vec::with_capacity(ROWS_PER_BATCH * 128);
    for msg in rx {
        match msg {
            Msg::Group {
                worker,
                index,
                region,
                version,
            } => {
                names.insert(
                    (worker, index),
                    (escape(format, &region), escape(format, &version)),
                );
            }
            Msg::Rows { worker, rows } => {
                if error.is_some() {
                    continue;
                }
                // A batch is one write, and its rows count as written once the write
                // returned: a buffered write that fails later would count rows not on disk.
                batch.clear();
                for r in &rows {
                    line.clear();
                    let target = targets.get(r.target as usize).unwrap_or(&none);
                    let name = request_names
                        .get(r.target as usize)
                        .and_then(|ns| ns.get(usize::from(r.name)))
                        .unwrap_or(&none);
                    let (region, version) = names
                        .get(&(worker, r.group))
                        .map_or((none.as_str(), none.as_str()), |(a, b)| {
                            (a.as_str(), b.as_str())
                        });
                    let fields = Fields {
                        row: r,
                        target,
                        name,
                        region,
                        version,
                        origin_ns,
                    };
                    match format {
                        Format::Csv => fields.csv(&mut line),
                        Format::Jsonl => fields.jsonl(&mut line),
                    }
                    batch.extend_from_slice(line.as_bytes());
                }
                match w.write_all(&batch) {
                    Ok(()) => written += rows.len() as u64,
                    Err(e) => error = Some(e.to_string()),
                }
            }
        }
    }
    (written, error)
}

/// The columns, in order.
pub(super) const CSV_HEADER: &str =
    "due_us,sent_us,end_us,latency_us,target,name,region,version,status,bytes,outcome\n";

/// One row with its names, ready to format.
struct Fields<'a> {
    row: &'a Row,
    target: &'a str,
    /// The request's name from a requests file (empty when unnamed).
    name: &'a str,
    region: &'a str,
    version: &'a str,
    origin_ns: u64,
}

impl Fields<'_> {
    /// Microseconds since the measured start (empty when not known).
    fn at(&self, ns: u64) -> Option<i64> {
        (ns != 0).then(|| (ns as i64 - self.origin_ns as i64) / 1000)
    }

    /// From due to end: the corrected latency of an answer, how long a failure took.
    fn latency(&self) -> Option<u64> {
        let r = self.row;
        (r.due_ns != 0 && r.end_ns != 0).then(|| r.end_ns.saturating_sub(r.due_ns) / 1000)
    }

    fn csv(&self, out: &mut String) {
        use std::fmt::Write as _;
        let r = self.row;
        let num = |out: &mut String, v: Option<i64>| {
            if let Some(x) = v {
                let _ = write!(out, "{x}");
            }
            out.push(',');
        };
        num(out, self.at(r.due_ns));
        num(out, self.at(r.sent_ns));
        num(out, self.at(r.end_ns));
        num(out, self.latency().map(|x| x as i64));
        let _ = write!(
            out,
            "{},{},{},{},",
            self.target, self.name, self.region, self.version
        );
        num(out, (r.status != 0).then_some(i64::from(r.status)));
        let _ = writeln!(out, "{},{}", r.bytes, r.outcome.name());
    }

    fn jsonl(&self, out: &mut String) {
        use std::fmt::Write as _;
        let r = self.row;
        let num = |out: &mut String, key: &str, v: Option<i64>| {
            let _ = match v {
                Some(x) => write!(out, "\"{key}\":{x},"),
                None => write!(out, "\"{key}\":null,"),
            };
        };
        out.push('{');
        num(out, "due_us", self.at(r.due_ns));
        num(out, "sent_us", self.at(r.sent_ns));
        num(out, "end_us", self.at(r.end_ns));
        num(out, "latency_us", self.latency().map(|x| x as i64));
        let _ = write!(
            out,
            "\"target\":{},\"name\":{},\"region\":{},\"version\":{},",
            self.target, self.name, self.region, self.version
        );
        num(
            out,
            "status",
            (r.status != 0).then_some(i64::from(r.status)),
        );
        let _ = writeln!(
            out,
            "\"bytes\":{},\"outcome\":\"{}\"}}",
            r.bytes,
            r.outcome.name()
        );
    }
}

/// A name as the format writes it: a CSV field (quoted when it holds a comma, a quote or
/// a line break: region and version come from the server), or a JSON string (`null` when
/// empty).
fn escape(format: Format, s: &str) -> String {
    match format {
        Format::Csv if s.contains([',', '"', '\n', '\r']) => {
            format!("\"{}\"", s.replace('"', "\"\""))
        }
        Format::Csv => s.to_string(),
        Format::Jsonl if s.is_empty() => "null".into(),
        Format::Jsonl => serde_json::Value::from(s).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_text_cannot_break_a_row() {
        assert_eq!(escape(Format::Csv, "eu"), "eu");
        assert_eq!(escape(Format::Csv, "a,\"b\"\nc"), "\"a,\"\"b\"\"\nc\"");
        assert_eq!(escape(Format::Jsonl, "a\"\n"), "\"a\\\"\\n\"");
        assert_eq!(escape(Format::Jsonl, ""), "null");
    }
}
