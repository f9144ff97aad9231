//! CPU accounting from /proc: the server's own CPU time (to get a cost per
//! request that does not depend on the load generator keeping up), and the
//! load of other processes (which skews a run on a 2-core machine).

use std::time::Duration;

/// Nanoseconds the process `pid` has run on a CPU, all threads together
/// (`/proc/PID/task/*/schedstat`).
pub(crate) fn process_ns(pid: u32) -> Option<u64> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let mut total = 0;
    for task in tasks.flatten() {
        let stat = std::fs::read_to_string(task.path().join("schedstat")).ok()?;
        total += stat.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(total)
}

/// (busy, total) jiffies of all CPUs together, from /proc/stat.
fn system_jiffies() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let v: Vec<u64> = line
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    Some((total - idle, total))
}

/// (pid, command, utime + stime in jiffies) of every process.
fn process_jiffies() -> Vec<(u32, String, u64)> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            let (name, rest) = stat.split_once(" (")?.1.rsplit_once(") ")?;
            let fields: Vec<&str> = rest.split_whitespace().collect();
            // utime and stime are fields 14 and 15; `rest` starts at field 3.
            let cpu = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
            Some((pid, name.to_owned(), cpu))
        })
        .collect()
}

/// The CPU time of every process at one moment.
#[derive(Debug)]
pub(crate) struct Snapshot {
    at: std::time::Instant,
    procs: Vec<(u32, String, u64)>,
}

impl Snapshot {
    pub(crate) fn take() -> Self {
        Self {
            at: std::time::Instant::now(),
            procs: process_jiffies(),
        }
    }

    /// CPUs' worth of time that processes other than `ours` used between
    /// `self` and `later` (1.0: one whole CPU). Kernel threads that carry
    /// our own network traffic (`ksoftirqd`, `kworker`) do not count;
    /// processes that started and ended in between are not seen.
    pub(crate) fn others_until(&self, later: &Snapshot, ours: &[u32]) -> f64 {
        let ticks = later.at.duration_since(self.at).as_secs_f64() * 100.0;
        if ticks <= 0.0 {
            return 0.0;
        }
        let used: u64 = later
            .procs
            .iter()
            .filter(|(pid, name, _)| {
                !ours.contains(pid)
                    && !name.starts_with("ksoftirqd")
                    && !name.starts_with("kworker")
            })
            .map(|(pid, name, cpu)| {
                let was = self
                    .procs
                    .iter()
                    .find(|(p, n, _)| p == pid && n == name)
                    .map_or(0, |(_, _, c)| *c);
                cpu.saturating_sub(was)
            })
            .sum();
        used as f64 / ticks
    }
}

/// What the machine did while nothing of ours was running.
#[derive(Clone, Debug, Default)]
pub(crate) struct Background {
    /// CPUs' worth of busy time (1.0: one whole CPU).
    pub(crate) busy: f64,
    /// The busiest process and its share of a CPU.
    pub(crate) top: Option<(String, f64)>,
}

/// Samples the machine's load over `window`.
pub(crate) fn background(window: Duration) -> Background {
    let cpus = std::thread::available_parallelism().map_or(1, usize::from) as f64;
    let before = system_jiffies();
    let procs_before = process_jiffies();
    std::thread::sleep(window);
    let after = system_jiffies();
    let procs_after = process_jiffies();
    let busy = match (before, after) {
        (Some((b0, t0)), Some((b1, t1))) if t1 > t0 => (b1 - b0) as f64 / (t1 - t0) as f64 * cpus,
        _ => 0.0,
    };
    // Jiffies are 1/100 s on Linux (USER_HZ).
    let ticks = window.as_secs_f64() * 100.0;
    let top = procs_after
        .iter()
        .filter_map(|(pid, name, cpu)| {
            let (_, _, was) = procs_before
                .iter()
                .find(|(p, n, _)| p == pid && n == name)?;
            Some((name.clone(), cpu.saturating_sub(*was) as f64 / ticks))
        })
        .max_by(|a, b| a.1.total_cmp(&b.1));
    Background { busy, top }
}
