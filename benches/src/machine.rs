//! The machine a result table was measured on: CPU model, cores, kernel, load, and how
//! often the idle machine itself stalls a sleeping process (before and after the run), so
//! a gap or a tail in the tables can be read against the machine's own.

use std::path::Path;
use std::process::Command;

/// What goes above every result table.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Machine {
    pub cpu_model: String,
    pub cpus: usize,
    pub kernel: String,
    /// 1-, 5- and 15-minute load averages when the run started.
    pub loadavg: String,
    pub memory_gib: f64,
    /// The idle machine's stalls before the first run and after the last.
    pub stalls_before: Option<Stalls>,
    pub stalls_after: Option<Stalls>,
}

/// What `scripts/bench/stall_probe.py` saw: per core, wake-ups more than `over_ms` late
/// in `seconds` of 200 µs sleeps, and how many of them came on every core at once.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Stalls {
    pub seconds: f64,
    pub over_ms: f64,
    pub cores: std::collections::BTreeMap<String, CoreStalls>,
    pub on_every_core_at_once: u64,
}

#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct CoreStalls {
    pub stalls: u64,
    pub max_ms: f64,
}

/// Runs the stall probe on `cores` for `seconds` with nothing else of ours running; `None`
/// (and a note on stderr) when it cannot, which leaves the line out rather than failing.
pub fn stalls(cores: &[usize], seconds: u64) -> Option<Stalls> {
    let probe = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/bench/stall_probe.py");
    let list = cores
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let out = Command::new("python3")
        .arg(&probe)
        .args(["--seconds", &seconds.to_string(), "--cores", &list])
        .output();
    match out {
        Ok(o) if o.status.success() => match serde_json::from_slice(&o.stdout) {
            Ok(s) => Some(s),
            Err(e) => {
                eprintln!("compare: the stall probe's report is unreadable: {e}");
                None
            }
        },
        Ok(o) => {
            eprintln!(
                "compare: the stall probe failed: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            );
            None
        }
        Err(e) => {
            eprintln!("compare: cannot run {}: {e}", probe.display());
            None
        }
    }
}

impl std::fmt::Display for Stalls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let per_core = self
            .cores
            .iter()
            .map(|(c, s)| format!("core {c} {} (largest {:.1} ms)", s.stalls, s.max_ms))
            .collect::<Vec<_>>()
            .join(", ");
        write!(
            f,
            "wake-ups more than {} ms late in {:.0} s of 200 µs sleeps: {per_core}; {} on every \
             core at once",
            self.over_ms, self.seconds, self.on_every_core_at_once
        )
    }
}

/// Reads `lscpu`, `/proc/sys/kernel/osrelease`, `/proc/loadavg` and `/proc/meminfo`;
/// anything unreadable is left empty rather than failing the run.
pub fn describe() -> Machine {
    let lscpu = Command::new("lscpu")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let field = |name: &str| {
        lscpu
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim_start_matches(':').trim().to_string())
            .unwrap_or_default()
    };
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let memory_kib: f64 = read("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0.0);
    Machine {
        cpu_model: field("Model name"),
        cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
        kernel: read("/proc/sys/kernel/osrelease").trim().to_string(),
        loadavg: read("/proc/loadavg")
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
        memory_gib: memory_kib / 1024.0 / 1024.0,
        stalls_before: None,
        stalls_after: None,
    }
}

impl std::fmt::Display for Machine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({} CPUs), {:.0} GiB RAM, Linux {}; load average at start {}",
            if self.cpu_model.is_empty() {
                "unknown CPU"
            } else {
                &self.cpu_model
            },
            self.cpus,
            self.memory_gib,
            self.kernel,
            self.loadavg
        )
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn the_probe_reports_each_core_asked_for() {
        // The real probe, briefly: one line per core, in the order of the cores.
        let s = stalls(&[0], 1).expect("the stall probe runs");
        assert_eq!(s.cores.keys().collect::<Vec<_>>(), vec!["0"]);
        assert_eq!(s.seconds, 1.0);
        assert_eq!(s.on_every_core_at_once, 0, "one core has no other to match");
        let line = s.to_string();
        assert!(
            line.starts_with("wake-ups more than 2 ms late in 1 s of 200 µs sleeps: core 0 "),
            "{line}"
        );
    }

    #[test]
    fn reads_the_probes_json() {
        let s: Stalls = serde_json::from_str(
            r#"{"seconds": 10.0, "over_ms": 2.0, "cores": {"0": {"stalls": 34, "max_ms": 4.238},
                "1": {"stalls": 0, "max_ms": 0.0}}, "on_every_core_at_once": 11}"#,
        )
        .unwrap();
        assert_eq!(
            s.to_string(),
            "wake-ups more than 2 ms late in 10 s of 200 µs sleeps: core 0 34 (largest 4.2 ms), \
             core 1 0 (largest 0.0 ms); 11 on every core at once"
        );
    }
}
