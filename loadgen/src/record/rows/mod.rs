//! Per-request output (`--out csv=FILE`, `--out jsonl=FILE`): one row per measured
//! scheduled request, for analysis outside loadgen.
//!
//! The hot path only appends a fixed-size [`Row`] (no allocation, no names) to its worker's
//! buffer; every [`ROWS_PER_BATCH`] rows go to one writer thread through a queue bounded at
//! [`QUEUE_BATCHES`] batches, so the queue costs one channel operation per batch, not per
//! request. When the disk cannot keep up and the queue is full, the worker does not wait
//! (that would stall the schedule and put the disk's delays into the very latencies being
//! recorded): the batch is counted as lost, and the report says how many rows the file
//! lacks. Rows name their served region and version by the recorder's group index; a new
//! group's names go through the queue once, just before the first batch that can refer to
//! them, and hold that batch back (counted lost) while the queue is full.
//!
//! Hand-rolled rather than through a logging or CSV crate: the format is ten plain columns
//! and the hot side must stay a `Vec::push`.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::time::Duration;

use anyhow::Context as _;

mod format;
use format::write_all;

use crate::results::{Failure, RowStats};

/// Rows a worker gathers before handing them to the writer.
pub const ROWS_PER_BATCH: usize = 1024;
/// Batches the writer's queue holds; beyond them, batches are lost (counted).
pub const QUEUE_BATCHES: usize = 64;
/// How long the end of a run waits for the writer to write what it was given.
pub const DRAIN_WAIT: Duration = Duration::from_secs(10);

/// The file format of `--out`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Jsonl,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Jsonl => "jsonl",
        }
    }
}

/// `--out FORMAT=FILE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutSpec {
    pub format: Format,
    pub path: PathBuf,
}

impl OutSpec {
    /// Parses `csv=FILE` or `jsonl=FILE`.
    pub fn parse(s: &str) -> Result<OutSpec, String> {
        let (format, path) = s
            .split_once('=')
            .ok_or_else(|| format!("{s:?}: expected csv=FILE or jsonl=FILE"))?;
        let format = match format.trim().to_ascii_lowercase().as_str() {
            "csv" => Format::Csv,
            "jsonl" | "json" => Format::Jsonl,
            other => return Err(format!("{other:?}: the formats are csv and jsonl")),
        };
        if path.trim().is_empty() {
            return Err(format!("{s:?}: no file after '='"));
        }
        Ok(OutSpec {
            format,
            path: PathBuf::from(path.trim()),
        })
    }
}

/// How one measured request ended, as a row says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Answered below 400.
    Ok,
    /// Answered 400 or above.
    HttpError,
    /// Answered below 400 but failed a `--check`.
    Check,
    /// No answer (or not sent), with the accounting bucket it counts in.
    Failed(Failure),
}

impl Outcome {
    /// The accounting bucket's name, as in the JSON report.
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::HttpError => "http_error",
            Outcome::Check => "check",
            Outcome::Failed(f) => match f {
                Failure::Timeout => "timeout",
                Failure::ConnectTimeout => "connect_timeout",
                Failure::Refused => "refused",
                Failure::Reset => "reset",
                Failure::Malformed => "malformed",
                Failure::Tls => "tls",
                Failure::Dns => "dns",
                Failure::OtherTransport => "other_transport",
                Failure::DroppedCap => "dropped_cap",
                Failure::DroppedBehind => "dropped_behind",
                Failure::Cancelled => "cancelled",
            },
        }
    }
}

/// Marks a row whose request had no served group (no answer).
pub const NO_GROUP: u32 = u32::MAX;

/// One measured request. Times are the engine's monotonic nanoseconds; 0 is "not known"
/// (never sent; cancelled at the end without its times).
#[derive(Debug, Clone, Copy)]
pub struct Row {
    pub due_ns: u64,
    pub sent_ns: u64,
    pub end_ns: u64,
    pub bytes: u64,
    pub target: u32,
    /// The recorder's group index (served region and version), or [`NO_GROUP`].
    pub group: u32,
    /// The request's name index among its target's (0: unnamed).
    pub name: u16,
    pub status: u16,
    pub outcome: Outcome,
}

enum Msg {
    Group {
        worker: usize,
        index: u32,
        region: String,
        version: String,
    },
    Rows {
        worker: usize,
        rows: Vec<Row>,
    },
}

/// A worker's side of the output: its buffer and its handle on the writer's queue.
#[derive(Debug)]
pub struct RowOut {
    worker: usize,
    buf: Vec<Row>,
    tx: SyncSender<Msg>,
    produced: u64,
    lost: u64,
    /// New groups' names not yet through the queue; they go before the next batch.
    names: Vec<Msg>,
}

impl std::fmt::Debug for Msg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Msg")
    }
}

impl RowOut {
    /// Adds a row; a full buffer goes to the writer, or is counted lost if its queue is full.
    #[inline]
    pub fn push(&mut self, row: Row) {
        self.buf.push(row);
        self.produced += 1;
        if self.buf.len() >= ROWS_PER_BATCH {
            self.hand_over();
        }
    }

    fn hand_over(&mut self) {
        let rows = std::mem::replace(&mut self.buf, Vec::with_capacity(ROWS_PER_BATCH));
        let n = rows.len() as u64;
        // A batch goes only after the names its rows refer to; neither waits for room.
        if !self.send_names() {
            self.lost += n;
            return;
        }
        let msg = Msg::Rows {
            worker: self.worker,
            rows,
        };
        match self.tx.try_send(msg) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => self.lost += n,
        }
    }

    /// Sends the pending group names while the queue has room; whether all went.
    fn send_names(&mut self) -> bool {
        while !self.names.is_empty() {
            let msg = self.names.remove(0);
            match self.tx.try_send(msg) {
                Ok(()) => {}
                Err(TrySendError::Full(m)) => {
                    self.names.insert(0, m);
                    return false;
                }
                Err(TrySendError::Disconnected(_)) => return false,
            }
        }
        true
    }

    /// Names a new group once; the name goes before the next batch.
    pub fn group(&mut self, index: usize, region: &[u8], version: &[u8]) {
        self.names.push(Msg::Group {
            worker: self.worker,
            index: index as u32,
            region: String::from_utf8_lossy(region).into_owned(),
            version: String::from_utf8_lossy(version).into_owned(),
        });
    }

    /// At the end of the run: hands over the rest (waiting for room: the schedule is
    /// over) and returns (rows produced, rows lost on the way).
    pub fn finish(mut self) -> (u64, u64) {
        for msg in std::mem::take(&mut self.names) {
            let _ = self.tx.send(msg);
        }
        if !self.buf.is_empty() {
            let rows = std::mem::take(&mut self.buf);
            let n = rows.len() as u64;
            let msg = Msg::Rows {
                worker: self.worker,
                rows,
            };
            if self.tx.send(msg).is_err() {
                self.lost += n;
            }
        }
        (self.produced, self.lost)
    }
}

/// The writer thread and what every worker needs to reach it.
#[derive(Debug)]
pub struct Writer {
    tx: SyncSender<Msg>,
    done: Receiver<(u64, Option<String>, f64)>,
    spec: OutSpec,
}

/// Creates the file (an error here stops the run before any request) and starts the
/// writer. Times in rows count from `origin_ns`, the start of the measured window.
pub fn start(
    spec: &OutSpec,
    targets: Vec<String>,
    request_names: Vec<Vec<String>>,
    origin_ns: u64,
) -> anyhow::Result<Writer> {
    let file = std::fs::File::create(&spec.path).with_context(|| {
        format!(
            "cannot create the per-request output {}",
            spec.path.display()
        )
    })?;
    let (tx, rx) = sync_channel::<Msg>(QUEUE_BATCHES);
    let (done_tx, done) = sync_channel(1);
    let format = spec.format;
    std::thread::Builder::new()
        .name("loadgen-rows".into())
        .spawn(move || {
            let mut file = file;
            let (written, error) =
                write_all(&mut file, format, &rx, &targets, &request_names, origin_ns);
            let _ = done_tx.send((written, error, thread_cpu_secs()));
        })
        .context("cannot start the per-request output's writer")?;
    Ok(Writer {
        tx,
        done,
        spec: spec.clone(),
    })
}

impl Writer {
    /// Worker `worker`'s side of the output.
    pub fn for_worker(&self, worker: usize) -> RowOut {
        RowOut {
            worker,
            buf: Vec::with_capacity(ROWS_PER_BATCH),
            tx: self.tx.clone(),
            produced: 0,
            lost: 0,
            names: Vec::new(),
        }
    }

    /// Waits (at most [`DRAIN_WAIT`]) for the writer to write what it was given, once
    /// every worker finished its [`RowOut`]: `produced` rows were made in all.
    pub fn finish(self, produced: u64) -> RowStats {
        drop(self.tx);
        let (written, error, cpu_secs) = match self.done.recv_timeout(DRAIN_WAIT) {
            Ok(out) => out,
            Err(_) => (
                0,
                Some(format!(
                    "the writer had not finished {}s after the run; the file is incomplete",
                    DRAIN_WAIT.as_secs()
                )),
                0.0,
            ),
        };
        RowStats {
            path: self.spec.path.display().to_string(),
            format: self.spec.format.name().to_string(),
            written,
            lost: produced.saturating_sub(written),
            error,
            writer_cpu_secs: cpu_secs,
        }
    }
}

/// CPU time of the calling thread (POSIX, Linux and macOS alike); 0 when not known.
fn thread_cpu_secs() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec we pass, nothing else.
    if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) } != 0 {
        return 0.0;
    }
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

/// Whether `path` can be written: its folder exists (checked with the flags, before any
/// traffic).
pub fn check_path(path: &Path) -> Result<(), String> {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() && !p.is_dir() => {
            Err(format!("{}: no such folder", p.display()))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn row_out(tx: SyncSender<Msg>) -> RowOut {
        RowOut {
            worker: 0,
            buf: Vec::new(),
            tx,
            produced: 0,
            lost: 0,
            names: Vec::new(),
        }
    }

    fn row(group: u32) -> Row {
        Row {
            due_ns: 1,
            sent_ns: 2,
            end_ns: 3,
            bytes: 4,
            target: 0,
            group,
            name: 0,
            status: 200,
            outcome: Outcome::Ok,
        }
    }

    #[test]
    fn specs_parse_and_bad_ones_say_why() {
        assert_eq!(
            OutSpec::parse("csv=/tmp/a.csv").unwrap(),
            OutSpec {
                format: Format::Csv,
                path: "/tmp/a.csv".into()
            }
        );
        assert_eq!(
            OutSpec::parse("JSONL=r.jsonl").unwrap().format,
            Format::Jsonl
        );
        assert!(OutSpec::parse("csv").unwrap_err().contains("csv=FILE"));
        assert!(OutSpec::parse("xml=a")
            .unwrap_err()
            .contains("csv and jsonl"));
        assert!(OutSpec::parse("csv=").unwrap_err().contains("no file"));
    }

    #[test]
    fn a_full_queue_loses_batches_and_counts_them() {
        let (tx, rx) = sync_channel::<Msg>(1);
        let mut out = row_out(tx);
        let row = row(NO_GROUP);
        // Nobody reads: the first batch fits the queue, the next two are lost.
        for _ in 0..3 * ROWS_PER_BATCH {
            out.push(row);
        }
        assert_eq!(out.lost, 2 * ROWS_PER_BATCH as u64);
        drop(rx);
        out.push(row);
        let (produced, lost) = out.finish();
        assert_eq!(produced, 3 * ROWS_PER_BATCH as u64 + 1);
        assert_eq!(lost, 2 * ROWS_PER_BATCH as u64 + 1);
    }

    #[test]
    fn a_new_group_never_waits_and_its_name_goes_before_its_rows() {
        let (tx, rx) = sync_channel::<Msg>(2);
        let mut out = row_out(tx);
        let row = row(0);
        let batch = |out: &mut RowOut| {
            for _ in 0..ROWS_PER_BATCH {
                out.push(row);
            }
        };
        batch(&mut out);
        batch(&mut out);
        // The queue is full: a new group's name waits in the worker, not the worker on it,
        // and the batch behind the name is lost.
        out.group(0, b"eu", b"v2");
        batch(&mut out);
        assert_eq!(out.lost, ROWS_PER_BATCH as u64);
        assert!(matches!(rx.try_recv(), Ok(Msg::Rows { .. })));
        assert!(matches!(rx.try_recv(), Ok(Msg::Rows { .. })));
        // Room again: the name goes first, then the rows that refer to it.
        batch(&mut out);
        assert!(matches!(rx.try_recv(), Ok(Msg::Group { ref region, .. }) if region == "eu"));
        assert!(
            matches!(rx.try_recv(), Ok(Msg::Rows { ref rows, .. }) if rows.len() == ROWS_PER_BATCH)
        );
        assert_eq!(out.lost, ROWS_PER_BATCH as u64);
    }
}
