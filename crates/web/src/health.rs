//! The load generator's own health: its CPU and memory, and whether it is saturated.
//!
//! A saturated generator measures itself: requests queue inside mynah before they are sent, so
//! latencies grow and rates flatten even when the target is idle. Watching the generator beside
//! the target says which of the two the numbers describe.

use std::time::{Duration, Instant};

use serde::Serialize;

/// CPU use above this share of the cores mynah may use counts as saturated.
pub const CPU_SATURATED: f64 = 0.90;
/// A schedule lag (open model, replay) above this counts as the generator falling behind.
pub const LAG_SATURATED: Duration = Duration::from_millis(100);
/// Consecutive one-second samples over a limit before the warning starts, so one busy second
/// (a JIT of the page, a garbage burst on the machine) does not raise it.
pub const SATURATED_AFTER: u32 = 3;

/// Reads mynah's own CPU time and resident memory from `/proc/self`.
#[derive(Debug)]
pub struct CpuSampler {
    last: Option<(Instant, f64)>,
    cores: usize,
}

impl Default for CpuSampler {
    fn default() -> Self {
        CpuSampler::new()
    }
}

impl CpuSampler {
    /// A sampler; the first [`CpuSampler::sample`] only sets the baseline.
    pub fn new() -> CpuSampler {
        CpuSampler {
            last: None,
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }

    /// The cores mynah may use (CPU affinity and cgroup quota included).
    pub fn cores(&self) -> usize {
        self.cores
    }

    /// CPU use since the previous call in per-core-equivalent percent (150 = one and a half
    /// cores busy), and the resident memory in bytes. `None` for what cannot be read (not
    /// Linux, or the first CPU sample).
    pub fn sample(&mut self) -> (Option<f64>, Option<u64>) {
        let now = Instant::now();
        let cpu = cpu_seconds().and_then(|secs| {
            let prev = self.last.replace((now, secs));
            let (at, was) = prev?;
            let wall = now.duration_since(at).as_secs_f64();
            (wall > 0.05).then(|| ((secs - was) / wall * 100.0).max(0.0))
        });
        (cpu, rss_bytes())
    }
}

/// User plus system CPU time of this process, seconds (`/proc/self/stat` fields 14 and 15).
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) may hold spaces and parentheses: fields after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state): utime is field 14, stime field 15.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    // SAFETY: sysconf only reads a configuration value.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (ticks > 0).then(|| (utime + stime) / ticks as f64)
}

/// Resident set size of this process, bytes (`/proc/self/statm` field 2, in pages).
fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf only reads a configuration value.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    (page > 0).then(|| pages * page as u64)
}

/// One health reading, as the dashboard shows it.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Health {
    /// CPU use, per-core-equivalent percent (200 = two cores busy).
    pub cpu_percent: Option<f64>,
    /// Cores mynah may use.
    pub cores: usize,
    /// Resident memory, bytes.
    pub rss_bytes: Option<u64>,
    /// Worst schedule lag of the last second, ms (open model and replay only).
    pub lag_ms: Option<f64>,
    /// Why the generator is saturated right now, if it is.
    pub saturated: Option<String>,
}

/// Follows the generator's health through a run and remembers whether it was ever saturated.
#[derive(Debug, Default)]
pub struct Tracker {
    cpu: CpuSampler,
    lag: Option<Duration>,
    cpu_over: u32,
    lag_over: u32,
    current: Health,
    /// The first saturation of the run: when (seconds into the run) and why.
    first: Option<(f64, String)>,
    /// Seconds sampled while saturated.
    saturated_s: u64,
    peak_cpu: f64,
    peak_rss: u64,
}

impl Tracker {
    /// A tracker with a fresh CPU baseline.
    pub fn new() -> Tracker {
        let mut t = Tracker::default();
        t.cpu.sample();
        t
    }

    /// Notes the worst schedule lag of the last second (see
    /// [`mynah_engine::Observer::schedule_lag`]); used by the next [`Tracker::sample`].
    pub fn schedule_lag(&mut self, worst: Duration) {
        self.lag = Some(worst);
    }

    /// Takes a reading (about once a second). Returns the warning line when the generator has
    /// just become saturated, so the caller prints it once.
    pub fn sample(&mut self, elapsed: Duration) -> Option<String> {
        let (cpu, rss) = self.cpu.sample();
        let cores = self.cpu.cores();
        let lag = self.lag.take();
        let cpu_limit = CPU_SATURATED * cores as f64 * 100.0;
        match cpu {
            Some(c) if c > cpu_limit => self.cpu_over += 1,
            Some(_) => self.cpu_over = 0,
            None => {}
        }
        match lag {
            Some(l) if l > LAG_SATURATED => self.lag_over += 1,
            _ => self.lag_over = 0,
        }
        let reason = if self.cpu_over >= SATURATED_AFTER {
            Some(format!(
                "mynah's CPU is at {:.0}% of {cores} core{} (over {:.0}%)",
                cpu.unwrap_or(0.0) / cores as f64,
                if cores == 1 { "" } else { "s" },
                CPU_SATURATED * 100.0
            ))
        } else if self.lag_over >= SATURATED_AFTER {
            Some(format!(
                "requests start {:.0} ms behind their schedule (over {} ms for {SATURATED_AFTER}s)",
                lag.unwrap_or_default().as_secs_f64() * 1000.0,
                LAG_SATURATED.as_millis()
            ))
        } else {
            None
        };
        let started = reason.is_some() && self.current.saturated.is_none();
        self.peak_cpu = self.peak_cpu.max(cpu.unwrap_or(0.0));
        self.peak_rss = self.peak_rss.max(rss.unwrap_or(0));
        self.current = Health {
            cpu_percent: cpu,
            cores,
            rss_bytes: rss,
            lag_ms: lag.map(|l| l.as_secs_f64() * 1000.0),
            saturated: reason.clone(),
        };
        if let Some(r) = &reason {
            self.saturated_s += 1;
            if self.first.is_none() {
                self.first = Some((elapsed.as_secs_f64(), r.clone()));
            }
        }
        started.then(|| warning_line(reason.as_deref().unwrap_or_default()))
    }

    /// The latest reading.
    pub fn current(&self) -> &Health {
        &self.current
    }

    /// The sentence the reports carry when the generator was saturated at some point.
    pub fn report_warning(&self) -> Option<String> {
        self.first.as_ref().map(|(at, why)| {
            format!(
                "the load generator was saturated for {}s, first {:.0}s into the run ({why}): \
                 the figures from then on describe mynah as much as the target",
                self.saturated_s, at
            )
        })
    }

    /// The `generator` field of the summary JSON.
    pub fn summary_json(&self) -> serde_json::Value {
        serde_json::json!({
            "cores": self.cpu.cores(),
            "cpu_peak_percent": (self.peak_cpu * 10.0).round() / 10.0,
            "rss_peak_bytes": self.peak_rss,
            "saturated": self.first.is_some(),
            "saturated_seconds": self.saturated_s,
            "saturated_first_at_s": self.first.as_ref().map(|f| f.0),
            "saturated_reason": self.first.as_ref().map(|f| f.1.clone()),
        })
    }
}

/// The terminal line printed when saturation starts.
pub fn warning_line(reason: &str) -> String {
    format!(
        "mynah: warning: the load generator is saturated ({reason}); the numbers now describe \
         mynah more than the target: use fewer users, more cores, or several generators"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_cpu_and_memory() {
        let mut s = CpuSampler::new();
        assert!(s.cores() >= 1);
        let _ = s.sample();
        // Burn a little CPU so the delta is positive.
        let t = Instant::now();
        let mut x = 0u64;
        while t.elapsed() < Duration::from_millis(80) {
            x = x.wrapping_mul(31).wrapping_add(7);
        }
        std::hint::black_box(x);
        let (cpu, rss) = s.sample();
        if cfg!(target_os = "linux") {
            assert!(cpu.unwrap() >= 0.0);
            assert!(rss.unwrap() > 1 << 20, "{rss:?}");
        }
    }

    #[test]
    fn lag_saturation_needs_consecutive_seconds_and_is_reported_once() {
        let mut t = Tracker::new();
        let late = Duration::from_millis(400);
        for s in 1..SATURATED_AFTER {
            t.schedule_lag(late);
            assert_eq!(t.sample(Duration::from_secs(u64::from(s))), None);
        }
        t.schedule_lag(Duration::from_millis(1));
        assert_eq!(t.sample(Duration::from_secs(3)), None);
        let mut lines = Vec::new();
        for s in 4..10 {
            t.schedule_lag(late);
            lines.extend(t.sample(Duration::from_secs(s)));
        }
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(lines[0].contains("behind their schedule"), "{}", lines[0]);
        assert!(t.current().saturated.is_some());
        let j = t.summary_json();
        assert_eq!(j["saturated"], true);
        assert_eq!(j["saturated_first_at_s"], 6.0);
        assert!(t.report_warning().unwrap().contains("saturated for 4s"));
        // Recovery clears the current state, not the record.
        t.schedule_lag(Duration::ZERO);
        t.sample(Duration::from_secs(10));
        assert!(t.current().saturated.is_none());
        assert!(t.report_warning().is_some());
    }
}
