//! The load tools: how each is started for a fixed-rate or maximum-rate run (their reports
//! are read back in [`crate::outputs`]).
//!
//! Every tool runs for a bounded time against one loopback URL and reports its own view of
//! the run: requests completed, p50 and p99. What each tool calls latency differs, and the
//! table says so: loadgen and oha (`--latency-correction`) measure from the scheduled send
//! time (coordinated omission corrected); k6, autocannon, hey and wrk measure service time.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// The floor's tick: the one loadgen's `--tick auto` keeps against a near server.
pub const FLOOR_TICK: Duration = loadgen::schedule::tick::AUTO_MIN;

/// The load tools the harness knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    Loadgen,
    /// loadgen in exact mode (`--tick 0s`): one wake-up per request at its due time.
    LoadgenExact,
    /// `benches floor`: the least a client paced at loadgen's near tick can spend here.
    Floor,
    /// `benches floor --measure`: the same loop plus the least that honest timing adds.
    FloorTimed,
    K6,
    Oha,
    Autocannon,
    Hey,
    Wrk,
    /// loadgen over h2c (`--http2`), one connection.
    LoadgenH2,
    /// h2load (nghttp2) at `--rps`, one client.
    H2load,
    /// oha over h2c (`--http2`), one connection.
    OhaH2,
}

impl Tool {
    pub fn name(self) -> &'static str {
        match self {
            Tool::Loadgen => "loadgen",
            Tool::LoadgenExact => "loadgen-exact",
            Tool::Floor => "floor",
            Tool::FloorTimed => "floor-timed",
            Tool::K6 => "k6",
            Tool::Oha => "oha",
            Tool::Autocannon => "autocannon",
            Tool::Hey => "hey",
            Tool::Wrk => "wrk",
            Tool::LoadgenH2 => "loadgen-h2",
            Tool::H2load => "h2load",
            Tool::OhaH2 => "oha-h2",
        }
    }

    /// How the tool is told the rate, for the table.
    pub fn mode(self) -> &'static str {
        match self {
            Tool::Loadgen => "open loop, default (--tick auto: 500us near by)",
            Tool::LoadgenExact => "open loop, --tick 0s (exact)",
            Tool::Floor => "reference: sleep, send, read per 500us tick; times nothing",
            Tool::FloorTimed => {
                "reference: the floor plus stamped reads, parsing and histograms (--measure)"
            }
            Tool::K6 => "constant-arrival-rate",
            Tool::Oha => "-q, --latency-correction",
            Tool::Autocannon => "-R (overall rate)",
            Tool::Hey => "-q per worker × -c",
            Tool::Wrk => "closed loop, max rate",
            Tool::LoadgenH2 => "open loop, --http2, 1 connection, up to 100 streams",
            Tool::H2load => "--rps, -c 1 -m 100 (service time)",
            Tool::OhaH2 => "-q, --latency-correction, --http2, -c 1 -p 100",
        }
    }
}

/// Streams per connection for the HTTP/2 rows (loadgen's default cap).
pub const H2_STREAMS: usize = 100;

/// One run of one tool: the command line and where its report goes.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub program: PathBuf,
    pub args: Vec<String>,
    /// File the tool writes its report to (`None`: it is on stdout).
    pub report_file: Option<PathBuf>,
    /// Files to create before the run (k6's script).
    pub files: Vec<(PathBuf, String)>,
    /// Environment variables to set.
    pub env: Vec<(String, String)>,
}

/// Load shape: fixed rate, or as fast as possible (closed loop) with `rate` as a ceiling
/// only for tools that need one.
#[derive(Debug, Clone, Copy)]
pub struct Load {
    pub rate: f64,
    pub duration: Duration,
    pub connections: usize,
}

fn secs(d: Duration) -> u64 {
    d.as_secs().max(1)
}

/// Builds a fixed-rate invocation. `bin` overrides the program (loadgen's path); `work` is
/// a scratch directory for reports and scripts.
pub fn fixed_rate(tool: Tool, bin: &Path, url: &str, load: Load, work: &Path) -> Invocation {
    let d = secs(load.duration);
    let c = load.connections;
    let report = work.join(format!("{}-{}.out", tool.name(), load.rate as u64));
    let mut inv = Invocation {
        program: bin.to_path_buf(),
        args: Vec::new(),
        report_file: None,
        files: Vec::new(),
        env: Vec::new(),
    };
    match tool {
        Tool::Loadgen | Tool::LoadgenExact | Tool::LoadgenH2 => {
            inv.args = paced("--target", url, load);
            inv.args.extend([
                "--threads".to_string(),
                "1".into(),
                "--no-progress".into(),
                "--json".into(),
                report.display().to_string(),
            ]);
            if tool == Tool::LoadgenExact {
                inv.args.extend(["--tick".to_string(), "0s".to_string()]);
            }
            if tool == Tool::LoadgenH2 {
                inv.args.push("--http2".to_string());
            }
            inv.report_file = Some(report);
        }
        Tool::Floor | Tool::FloorTimed => {
            inv.args = vec!["floor".to_string()];
            inv.args.extend(paced("--url", url, load));
            inv.args
                .extend(["--tick".into(), format!("{}us", FLOOR_TICK.as_micros())]);
            if tool == Tool::FloorTimed {
                inv.args.push("--measure".into());
            }
        }
        Tool::K6 => {
            let script = work.join(format!("k6-{}.js", load.rate as u64));
            inv.files.push((
                script.clone(),
                format!(
                    "import http from 'k6/http';\n\
                     export const options = {{\n  discardResponseBodies: true,\n  \
                     scenarios: {{ open: {{ executor: 'constant-arrival-rate', rate: {rate}, \
                     timeUnit: '1s', duration: '{d}s', preAllocatedVUs: {c}, maxVUs: {max} }} }},\n}};\n\
                     export default function () {{ http.get('{url}'); }}\n",
                    rate = load.rate as u64,
                    max = (c * 4).max(200),
                ),
            ));
            inv.args = [
                "run".to_string(),
                "--quiet".into(),
                "--no-color".into(),
                "--no-usage-report".into(),
                "--summary-trend-stats".into(),
                "med,p(99)".into(),
                "--summary-export".into(),
                report.display().to_string(),
                script.display().to_string(),
            ]
            .into();
            inv.env.push(("K6_NO_USAGE_REPORT".into(), "true".into()));
            inv.report_file = Some(report);
        }
        Tool::Oha | Tool::OhaH2 => {
            inv.args = [
                "-z".to_string(),
                format!("{d}s"),
                "-q".into(),
                load.rate.to_string(),
                "--latency-correction".into(),
                "-c".into(),
                c.to_string(),
                "--no-tui".into(),
                "--output-format".into(),
                "json".into(),
            ]
            .into();
            if tool == Tool::OhaH2 {
                inv.args
                    .extend(["--http2".into(), "-p".into(), H2_STREAMS.to_string()]);
            }
            inv.args.push(url.into());
        }
        Tool::H2load => {
            // --rps is per client; one client carries the whole rate on one connection.
            inv.args = [
                "-c".to_string(),
                c.to_string(),
                "-m".into(),
                H2_STREAMS.to_string(),
                "--rps".into(),
                format!("{}", (load.rate / c as f64).round() as u64),
                "-D".into(),
                d.to_string(),
                "--log-file".into(),
                report.display().to_string(),
                url.into(),
            ]
            .into();
            inv.report_file = Some(report);
        }
        Tool::Autocannon => {
            inv.args = [
                "-c".to_string(),
                c.to_string(),
                "-d".into(),
                d.to_string(),
                "-R".into(),
                (load.rate as u64).to_string(),
                "-j".into(),
                url.into(),
            ]
            .into();
        }
        Tool::Hey => {
            // hey's -q is per worker: spread the total rate over the -c workers.
            inv.args = [
                "-z".to_string(),
                format!("{d}s"),
                "-c".into(),
                c.to_string(),
                "-q".into(),
                format!("{:.3}", load.rate / c as f64),
                url.into(),
            ]
            .into();
        }
        Tool::Wrk => {
            inv.args = wrk_args(url, load);
        }
    }
    inv
}

/// The flags loadgen and the floor share: where, how fast, how long, how many connections.
fn paced(url_flag: &str, url: &str, load: Load) -> Vec<String> {
    vec![
        url_flag.to_string(),
        url.to_string(),
        "--rps".into(),
        load.rate.to_string(),
        "--duration".into(),
        format!("{}s", secs(load.duration)),
        "--connections".into(),
        load.connections.to_string(),
    ]
}

/// `wrk -t1` at its maximum rate.
pub fn wrk_args(url: &str, load: Load) -> Vec<String> {
    vec![
        "-t1".into(),
        format!("-c{}", load.connections),
        format!("-d{}s", secs(load.duration)),
        "--latency".into(),
        url.into(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_h2_rows_carry_the_whole_rate_on_one_connection() {
        let load = Load {
            rate: 5000.0,
            duration: Duration::from_secs(10),
            connections: 1,
        };
        let work = Path::new("/tmp");
        let h2load = fixed_rate(Tool::H2load, Path::new("h2load"), "http://x/", load, work);
        let a = h2load.args.join(" ");
        assert!(a.contains("-c 1 -m 100 --rps 5000 -D 10 --log-file"), "{a}");
        assert!(h2load.report_file.is_some());
        let oha = fixed_rate(Tool::OhaH2, Path::new("oha"), "http://x/", load, work).args;
        assert!(
            oha.join(" ").contains("--http2 -p 100 http://x/"),
            "{oha:?}"
        );
        let lg = fixed_rate(
            Tool::LoadgenH2,
            Path::new("loadgen"),
            "http://x/",
            load,
            work,
        )
        .args;
        assert!(lg.contains(&"--http2".to_string()), "{lg:?}");
    }

    #[test]
    fn the_floors_mode_names_its_tick() {
        let us = FLOOR_TICK.as_micros();
        assert!(Tool::Floor.mode().contains(&format!("{us}us")), "{us}");
    }
}
