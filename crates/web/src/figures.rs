//! What the page shows, computed from the run's statistics once a second on the collector
//! thread: the statistics table, a chart point, failures, errors and task ratios, as JSON.

use std::collections::{HashMap, VecDeque};

use hdrhistogram::Histogram;
use mynah_engine::{Plan, Progress};
use mynah_stats::{EndpointStats, FailureKind, RunStats};
use serde::Serialize;
use serde_json::{json, Value};

/// Window of the "current" requests and failures per second in the table, in ticks (seconds).
pub const RATE_WINDOW: usize = 5;
/// Most failure groups sent to the page (the CSV download holds them all).
pub const MAX_FAILURE_GROUPS: usize = 300;
/// Most chart points kept: an hour at one point a second; older points are dropped.
pub const MAX_POINTS: usize = 3600;

/// One chart point.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Point {
    /// Seconds since the run started.
    pub t: f64,
    /// Requests per second over the last tick.
    pub rps: f64,
    /// Failures per second over the last tick.
    pub fps: f64,
    /// Latency percentiles of the requests that ended during the last tick, ms.
    pub p50: Option<f64>,
    /// 95th percentile, ms.
    pub p95: Option<f64>,
    /// 99th percentile, ms.
    pub p99: Option<f64>,
    /// Users (or replay connections) running.
    pub users: u64,
}

/// Turns cumulative statistics into per-second figures; one per run.
#[derive(Default)]
pub struct Figures {
    /// Per endpoint ("METHOD name"): recent (elapsed s, requests, failures) readings.
    windows: HashMap<String, VecDeque<(f64, u64, u64)>>,
    total_window: VecDeque<(f64, u64, u64)>,
    last_hist: Option<Histogram<u64>>,
    last: Option<(f64, u64, u64)>,
}

fn ms(us: u64) -> f64 {
    (us as f64 / 10.0).round() / 100.0
}

fn push_window(w: &mut VecDeque<(f64, u64, u64)>, t: f64, reqs: u64, fails: u64) -> (f64, f64) {
    // A statistics reset makes counts go down: start the window over.
    if w.back().is_some_and(|b| b.1 > reqs || b.2 > fails) {
        w.clear();
    }
    w.push_back((t, reqs, fails));
    while w.len() > RATE_WINDOW + 1 {
        w.pop_front();
    }
    match (w.front(), w.back()) {
        (Some(a), Some(b)) if b.0 > a.0 => {
            let dt = b.0 - a.0;
            ((b.1 - a.1) as f64 / dt, (b.2 - a.2) as f64 / dt)
        }
        _ => (0.0, 0.0),
    }
}

fn row(method: &str, name: &str, e: &EndpointStats, rps: f64, fps: f64) -> Value {
    let p = |q: f64| e.percentile_us(q).map(ms);
    json!({
        "method": method,
        "name": name,
        "requests": e.requests(),
        "failures": e.failures(),
        "rps": (rps * 100.0).round() / 100.0,
        "fps": (fps * 100.0).round() / 100.0,
        "p50": p(50.0),
        "p90": p(90.0),
        "p95": p(95.0),
        "p99": p(99.0),
        "max": e.max_us().map(ms),
        "avg": e.mean_us().map(|m| (m / 10.0).round() / 100.0),
    })
}

impl Figures {
    /// The figures of this tick: the `stats` part of the page's update, and the chart point.
    pub fn update(
        &mut self,
        stats: &RunStats,
        progress: &Progress,
        plan: Option<&Plan>,
    ) -> (Value, Point) {
        let t = progress.elapsed.as_secs_f64();
        let mut endpoints = Vec::new();
        for (method, name, e) in stats.endpoints() {
            let key = format!("{method} {name}");
            let w = self.windows.entry(key).or_default();
            let (rps, fps) = push_window(w, t, e.requests(), e.failures());
            endpoints.push(row(method, name, e, rps, fps));
        }
        let total = stats.total();
        let (rps, fps) = push_window(
            &mut self.total_window,
            t,
            total.requests(),
            total.failures(),
        );
        let total_row = row("", "Aggregated", total, rps, fps);

        let point = self.point(stats, progress);
        let mut groups: Vec<_> = stats.failures().collect();
        let failure_groups = groups.len();
        groups.sort_by_key(|g| std::cmp::Reverse(g.count));
        let failures: Vec<Value> = groups
            .iter()
            .take(MAX_FAILURE_GROUPS)
            .map(|f| {
                json!({
                    "method": f.method, "name": f.name, "kind": f.kind.as_str(),
                    "message": f.message, "count": f.count,
                })
            })
            .collect();
        let mut by_kind: Vec<(FailureKind, u64)> =
            FailureKind::ALL.iter().map(|&k| (k, 0)).collect();
        for f in &groups {
            if let Some(k) = by_kind.iter_mut().find(|k| k.0 == f.kind) {
                k.1 += f.count;
            }
        }
        let errors: Vec<Value> = by_kind
            .iter()
            .filter(|k| k.1 > 0)
            .map(|(k, n)| json!({"kind": k.as_str(), "count": n}))
            .collect();
        let value = json!({
            "elapsed_s": (t * 10.0).round() / 10.0,
            "planned_s": progress.planned.map(|d| d.as_secs_f64()),
            "users": progress.users,
            "target_users": progress.target_users,
            "unit": progress.unit.unwrap_or("users"),
            "arrival_rate": progress.arrival_rate,
            "dropped": progress.dropped,
            "stage": progress.stage.map(|(i, n)| [i + 1, n]),
            "stopping": progress.stopping,
            "total": total_row,
            "endpoints": endpoints,
            "failures": failures,
            "failure_groups": failure_groups,
            "errors": errors,
            "ratios": plan.map_or(Value::Null, |p| ratios(p, progress.users)),
        });
        (value, point)
    }

    fn point(&mut self, stats: &RunStats, progress: &Progress) -> Point {
        let t = progress.elapsed.as_secs_f64();
        let total = stats.total();
        let now = (t, total.requests(), total.failures());
        let (rps, fps) = match self.last.replace(now) {
            Some(l) if now.0 > l.0 && now.1 >= l.1 && now.2 >= l.2 => {
                let dt = now.0 - l.0;
                ((now.1 - l.1) as f64 / dt, (now.2 - l.2) as f64 / dt)
            }
            // The first tick: everything so far, over the time so far.
            None if t > 0.0 => (now.1 as f64 / t, now.2 as f64 / t),
            _ => (0.0, 0.0),
        };
        let hist = total.histogram().clone();
        let mut recent = hist.clone();
        let windowed = match self.last_hist.replace(hist) {
            Some(prev) => recent.subtract(&prev).is_ok(),
            None => true,
        };
        let q = |q: f64| {
            (windowed && !recent.is_empty()).then(|| ms(recent.value_at_quantile(q / 100.0)))
        };
        Point {
            t: (t * 10.0).round() / 10.0,
            rps: (rps * 100.0).round() / 100.0,
            fps: (fps * 100.0).round() / 100.0,
            p50: q(50.0),
            p95: q(95.0),
            p99: q(99.0),
            users: progress.users,
        }
    }
}

/// Each class's share of the running users and each task's share of its class.
pub fn ratios(plan: &Plan, users: u64) -> Value {
    let counts = plan.class_counts(users);
    let classes: Vec<Value> = plan
        .classes
        .iter()
        .zip(counts)
        .map(|(c, n)| {
            let weights: u64 = c.tasks.iter().map(|t| u64::from(t.weight)).sum();
            let tasks: Vec<Value> = c
                .tasks
                .iter()
                .map(|t| {
                    json!({
                        "name": t.name,
                        "share": if weights == 0 { 0.0 } else { t.weight as f64 / weights as f64 },
                    })
                })
                .collect();
            json!({
                "name": c.name,
                "users": n,
                "share": if users == 0 { 0.0 } else { n as f64 / users as f64 },
                "recorded": c.recorded.is_some(),
                "tasks": tasks,
            })
        })
        .collect();
    Value::Array(classes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const S: i64 = 1_000_000_000;

    #[test]
    fn table_rates_and_chart_points() {
        let mut stats = RunStats::new(0);
        let mut f = Figures::default();
        let progress = |s: u64| Progress {
            elapsed: Duration::from_secs(s),
            users: 10,
            target_users: 10,
            ..Progress::default()
        };
        for i in 0..100 {
            stats.record_success("GET", "/a", i * S / 100, 2_000, 10);
        }
        let (_, p) = f.update(&stats, &progress(1), None);
        assert_eq!(p.p50, Some(2.0));
        for i in 0..50 {
            stats.record_success("GET", "/a", S + i * S / 50, 8_000, 10);
        }
        stats.record_failure(
            "POST",
            "/b",
            S + 1,
            None,
            FailureKind::Connect,
            "connection refused",
        );
        let (v, p) = f.update(&stats, &progress(2), None);
        assert_eq!(p.rps, 51.0);
        assert_eq!(p.fps, 1.0);
        // Only this second's latencies: all 8 ms.
        assert_eq!(p.p50, Some(8.0));
        assert_eq!(p.users, 10);
        let a = &v["endpoints"][0];
        assert_eq!(a["name"], "/a");
        assert_eq!(a["requests"], 150);
        assert_eq!(a["rps"], 50.0);
        assert_eq!(v["total"]["failures"], 1);
        assert_eq!(v["errors"][0]["kind"], "connect");
        assert_eq!(v["failures"][0]["message"], "connection refused");
        // A reset: counts fall, rates start over instead of going negative.
        let (_, p) = f.update(&RunStats::new(0), &progress(3), None);
        assert_eq!((p.rps, p.fps), (0.0, 0.0));
        assert_eq!(p.p50, None);
    }
}
