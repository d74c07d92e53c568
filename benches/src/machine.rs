//! The machine a result table was measured on: CPU model, cores, kernel, load.

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
