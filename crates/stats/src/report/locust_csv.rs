//! Locust's `--csv PREFIX` files, column for column, so dashboards and scripts built for Locust read
//! mynah's output. Times are milliseconds carrying exact HDR values (µs precision), not Locust's
//! rounded ones, so a percentile never exceeds the max.

use std::collections::{BTreeMap, VecDeque};
use std::ffi::OsString;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use super::{fmt_f, fmt_ms, fmt_ms_f};
use crate::stats::{EndpointStats, RunStats, SecondStats};

/// Header of `PREFIX_stats.csv`.
pub const STATS_HEADER: &str = "Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,Min Response Time,Max Response Time,Average Content Size,Requests/s,Failures/s,50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%";
/// Header of `PREFIX_stats_history.csv`.
pub const HISTORY_HEADER: &str = "Timestamp,User Count,Type,Name,Requests/s,Failures/s,50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%,Total Request Count,Total Failure Count,Total Median Response Time,Total Average Response Time,Total Min Response Time,Total Max Response Time,Total Average Content Size";
/// Header of `PREFIX_failures.csv`.
pub const FAILURES_HEADER: &str = "Method,Name,Error,Occurrences,First Seen,Last Seen";
/// Header of `PREFIX_exceptions.csv`.
pub const EXCEPTIONS_HEADER: &str = "Count,Message,Traceback,Nodes";

/// The percentile columns Locust reports, in order.
pub const PERCENTILES: [f64; 11] = [
    50.0, 66.0, 75.0, 80.0, 90.0, 95.0, 98.0, 99.0, 99.9, 99.99, 100.0,
];

/// Seconds covered by the history file's percentile columns (Locust's current-response-time window).
pub const HISTORY_WINDOW_S: i64 = 10;

/// Beyond this span the history does not fill empty seconds: bogus timestamps must not make the
/// writer emit billions of rows.
const MAX_FILLED_SPAN_S: i64 = 31 * 86_400;

/// Quotes a CSV field when it contains a comma, quote or line break (RFC 4180).
pub fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

fn path_with_suffix(prefix: &Path, suffix: &str) -> PathBuf {
    let mut s = OsString::from(prefix.as_os_str());
    s.push(suffix);
    PathBuf::from(s)
}

/// Writes `PREFIX_stats.csv`, `PREFIX_stats_history.csv`, `PREFIX_failures.csv` and
/// `PREFIX_exceptions.csv`, as Locust's `--csv PREFIX` does.
pub fn write_locust_csv(prefix: &Path, stats: &RunStats) -> io::Result<()> {
    type Writer = fn(&mut dyn Write, &RunStats) -> io::Result<()>;
    let files: [(&str, Writer); 4] = [
        ("_stats.csv", write_stats),
        ("_stats_history.csv", write_history),
        ("_failures.csv", write_failures),
        ("_exceptions.csv", write_exceptions),
    ];
    for (suffix, write) in files {
        let mut w = BufWriter::new(File::create(path_with_suffix(prefix, suffix))?);
        write(&mut w, stats)?;
        w.flush()?;
    }
    Ok(())
}

fn stats_row(
    w: &mut dyn Write,
    run: &RunStats,
    typ: &str,
    name: &str,
    e: &EndpointStats,
) -> io::Result<()> {
    let avg_size = if e.requests() > 0 {
        e.bytes_received() as f64 / e.requests() as f64
    } else {
        0.0
    };
    write!(
        w,
        "{},{},{},{},{},{},{},{},{},{},{}",
        csv_field(typ),
        csv_field(name),
        e.requests(),
        e.failures(),
        e.percentile_us(50.0).map_or("0".into(), fmt_ms),
        e.mean_us().map_or("0".into(), fmt_ms_f),
        e.min_us().map_or("0".into(), fmt_ms),
        e.max_us().map_or("0".into(), fmt_ms),
        fmt_f(avg_size),
        fmt_f(run.rps(e)),
        fmt_f(run.fail_per_s(e)),
    )?;
    for q in PERCENTILES {
        match e.percentile_us(q) {
            Some(v) => write!(w, ",{}", fmt_ms(v))?,
            None => w.write_all(b",N/A")?,
        }
    }
    w.write_all(b"\n")
}

/// Writes the `PREFIX_stats.csv` content: one row per (method, name) sorted by name then method
/// (Locust's order), then the `Aggregated` row with an empty Type.
pub fn write_stats(w: &mut dyn Write, run: &RunStats) -> io::Result<()> {
    writeln!(w, "{STATS_HEADER}")?;
    let mut rows: Vec<(&str, &str, &EndpointStats)> = run.endpoints().collect();
    rows.sort_by(|a, b| (a.1, a.0).cmp(&(b.1, b.0)));
    for (method, name, e) in rows {
        stats_row(w, run, method, name, e)?;
    }
    stats_row(w, run, "", "Aggregated", run.total())
}

/// Percentiles of the union of several seconds' sparse histograms, clamped to their exact range.
fn window_percentiles(window: &VecDeque<(i64, SecondStats)>) -> Option<[u64; 11]> {
    let mut pairs: Vec<(u64, u64)> = window
        .iter()
        .flat_map(|(_, s)| s.latencies().iter().copied())
        .collect();
    if pairs.is_empty() {
        return None;
    }
    pairs.sort_unstable();
    let total = pairs.iter().fold(0u64, |t, p| t.saturating_add(p.1));
    let min = window.iter().filter_map(|(_, s)| s.min_us()).min()?;
    let max = window.iter().filter_map(|(_, s)| s.max_us()).max()?;
    let mut out = [0u64; 11];
    let mut seen = 0u64;
    let mut i = 0usize;
    for (k, q) in PERCENTILES.iter().enumerate() {
        // Same rank rule as Histogram::value_at_quantile.
        let target = (((q / 100.0) * total as f64).ceil() as u64).max(1);
        while i < pairs.len() && seen < target {
            seen = seen.saturating_add(pairs[i].1);
            i += 1;
        }
        let v = pairs[i.saturating_sub(1)].0;
        out[k] = v.clamp(min.min(max), max);
    }
    Some(out)
}

/// Running totals from the start of the run up to the current history row.
struct Cumulative {
    requests: u64,
    failures: u64,
    bytes: u64,
    samples: u64,
    sum_us: u64,
    min_us: u64,
    max_us: u64,
    hist: BTreeMap<u64, u64>,
}

impl Cumulative {
    fn add(&mut self, s: &SecondStats) {
        // Saturating: the series may come from untrusted bytes.
        self.requests = self.requests.saturating_add(s.requests());
        self.failures = self.failures.saturating_add(s.failures());
        self.bytes = self.bytes.saturating_add(s.bytes_received());
        self.sum_us = self.sum_us.saturating_add(s.sum_us());
        if let (Some(lo), Some(hi)) = (s.min_us(), s.max_us()) {
            self.min_us = self.min_us.min(lo);
            self.max_us = self.max_us.max(hi);
        }
        for &(v, c) in s.latencies() {
            self.samples = self.samples.saturating_add(c);
            let e = self.hist.entry(v).or_default();
            *e = e.saturating_add(c);
        }
    }

    fn median(&self) -> Option<u64> {
        let target = ((0.5 * self.samples as f64).ceil() as u64).max(1);
        let mut seen = 0u64;
        for (&v, &c) in &self.hist {
            seen = seen.saturating_add(c);
            if seen >= target {
                return Some(v.clamp(self.min_us.min(self.max_us), self.max_us));
            }
        }
        None
    }
}

/// Writes the `PREFIX_stats_history.csv` content: one `Aggregated` row per second (Unix seconds)
/// from the first to the last second with samples; per-second rates, percentiles over the last
/// 10 s, and running totals.
pub fn write_history(w: &mut dyn Write, run: &RunStats) -> io::Result<()> {
    writeln!(w, "{HISTORY_HEADER}")?;
    let series = run.series();
    let (Some(first), Some(last)) = (series.first().map(|s| s.0), series.last().map(|s| s.0))
    else {
        return Ok(());
    };
    let fill = last.saturating_sub(first) <= MAX_FILLED_SPAN_S;
    let mut cum = Cumulative {
        requests: 0,
        failures: 0,
        bytes: 0,
        samples: 0,
        sum_us: 0,
        min_us: u64::MAX,
        max_us: 0,
        hist: BTreeMap::new(),
    };
    let mut window: VecDeque<(i64, SecondStats)> = VecDeque::new();
    let mut users = 0u64;
    let mut it = series.into_iter().peekable();
    let mut t = first;
    loop {
        let current = match it.peek() {
            Some((sec, _)) if *sec == t => it.next().map(|x| x.1),
            _ => None,
        };
        let (req, fail) = match &current {
            Some(s) => (s.requests(), s.failures()),
            None => (0, 0),
        };
        if let Some(s) = current {
            users = s.users();
            cum.add(&s);
            window.push_back((t, s));
        }
        while window
            .front()
            .is_some_and(|(sec, _)| *sec <= t - HISTORY_WINDOW_S)
        {
            window.pop_front();
        }
        write!(w, "{t},{users},,Aggregated,{req},{fail}")?;
        match window_percentiles(&window) {
            Some(ps) => {
                for v in ps {
                    write!(w, ",{}", fmt_ms(v))?;
                }
            }
            None => {
                for _ in PERCENTILES {
                    w.write_all(b",N/A")?;
                }
            }
        }
        let (avg, min, max) = if cum.samples > 0 {
            (
                fmt_ms_f(cum.sum_us as f64 / cum.samples as f64),
                fmt_ms(cum.min_us),
                fmt_ms(cum.max_us),
            )
        } else {
            ("0".into(), "0".into(), "0".into())
        };
        let avg_size = if cum.requests > 0 {
            cum.bytes as f64 / cum.requests as f64
        } else {
            0.0
        };
        writeln!(
            w,
            ",{},{},{},{},{},{},{}",
            cum.requests,
            cum.failures,
            cum.median().map_or("0".into(), fmt_ms),
            avg,
            min,
            max,
            fmt_f(avg_size)
        )?;
        t = match it.peek() {
            None => break,
            Some((next, _)) if !fill => *next,
            Some(_) => t + 1,
        };
    }
    Ok(())
}

fn fmt_unix_s(ns: i64) -> String {
    format!(
        "{}.{:03}",
        ns.div_euclid(1_000_000_000),
        ns.rem_euclid(1_000_000_000) / 1_000_000
    )
}

/// Writes the `PREFIX_failures.csv` content: one row per (method, name, kind, message), most
/// frequent first as Locust orders them; Error is `kind: message`, First/Last Seen are Unix seconds.
pub fn write_failures(w: &mut dyn Write, run: &RunStats) -> io::Result<()> {
    writeln!(w, "{FAILURES_HEADER}")?;
    let mut groups: Vec<_> = run.failures().collect();
    // Stable sort keeps the (method, name, kind, message) order among equal counts.
    groups.sort_by_key(|g| std::cmp::Reverse(g.count));
    for g in groups {
        writeln!(
            w,
            "{},{},{},{},{},{}",
            csv_field(g.method),
            csv_field(g.name),
            csv_field(&format!("{}: {}", g.kind, g.message)),
            g.count,
            fmt_unix_s(g.first_seen_ns),
            fmt_unix_s(g.last_seen_ns)
        )?;
    }
    Ok(())
}

/// Writes the `PREFIX_exceptions.csv` content: the header only, as mynah raises no user-code
/// exceptions (failures carry everything).
pub fn write_exceptions(w: &mut dyn Write, _run: &RunStats) -> io::Result<()> {
    writeln!(w, "{EXCEPTIONS_HEADER}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::FailureKind;

    const S: i64 = 1_000_000_000;

    fn render(f: fn(&mut dyn Write, &RunStats) -> io::Result<()>, run: &RunStats) -> String {
        let mut out = Vec::new();
        f(&mut out, run).unwrap();
        String::from_utf8(out).unwrap()
    }

    fn run() -> RunStats {
        let mut s = RunStats::new(0);
        s.set_users(3);
        s.record_success("GET", "/a", S / 2, 1_000, 100);
        s.record_success("GET", "/a", S / 2, 2_000, 100);
        s.record_success("GET", "/a", 2 * S, 3_000, 100);
        s.record_failure(
            "POST",
            "/b,\"x\"",
            S,
            None,
            FailureKind::Connect,
            "refused, \"now\"",
        );
        s.finish(2 * S);
        s
    }

    #[test]
    fn headers_are_locusts() {
        // Copied from peer-formats.md (Locust's --csv files).
        assert_eq!(STATS_HEADER, "Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,Min Response Time,Max Response Time,Average Content Size,Requests/s,Failures/s,50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%");
        assert_eq!(HISTORY_HEADER, "Timestamp,User Count,Type,Name,Requests/s,Failures/s,50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%,Total Request Count,Total Failure Count,Total Median Response Time,Total Average Response Time,Total Min Response Time,Total Max Response Time,Total Average Content Size");
        assert_eq!(
            FAILURES_HEADER,
            "Method,Name,Error,Occurrences,First Seen,Last Seen"
        );
        assert_eq!(EXCEPTIONS_HEADER, "Count,Message,Traceback,Nodes");
        let r = run();
        for (f, h) in [
            (
                write_stats as fn(&mut dyn Write, &RunStats) -> io::Result<()>,
                STATS_HEADER,
            ),
            (write_history, HISTORY_HEADER),
            (write_failures, FAILURES_HEADER),
            (write_exceptions, EXCEPTIONS_HEADER),
        ] {
            assert_eq!(render(f, &r).lines().next(), Some(h));
        }
        assert_eq!(
            render(write_exceptions, &r),
            format!("{EXCEPTIONS_HEADER}\n")
        );
    }

    #[test]
    fn stats_golden_rows() {
        let out = render(write_stats, &run());
        let rows: Vec<&str> = out.lines().skip(1).collect();
        assert_eq!(
            rows,
            [
                "GET,/a,3,0,2,2,1,3,100,1.5,0,2,2,3,3,3,3,3,3,3,3,3",
                "POST,\"/b,\"\"x\"\"\",1,1,0,0,0,0,0,0.5,0.5,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A",
                ",Aggregated,4,1,2,2,1,3,75,2,0.5,2,2,3,3,3,3,3,3,3,3,3",
            ]
        );
    }

    #[test]
    fn failures_rows_quote_fields() {
        let out = render(write_failures, &run());
        assert_eq!(
            out.lines().nth(1),
            Some("POST,\"/b,\"\"x\"\"\",\"connect: refused, \"\"now\"\"\",1,1.000,1.000")
        );
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a\nb"), "\"a\nb\"");
    }

    #[test]
    fn history_one_row_a_second_with_window() {
        let mut s = RunStats::new(0);
        s.set_users(2);
        s.record_success("GET", "/", 100 * S, 1_000, 10);
        s.record_success("GET", "/", 100 * S + 1, 1_500, 10);
        s.record_failure("GET", "/", 102 * S, Some(4_000), FailureKind::Status, "503");
        s.record_success("GET", "/", 112 * S, 9_000, 10);
        s.finish(113 * S);
        let out = render(write_history, &s);
        let rows: Vec<&str> = out.lines().skip(1).collect();
        assert_eq!(rows.len(), 13);
        assert_eq!(
            rows[0],
            "100,2,,Aggregated,2,0,1,1.5,1.5,1.5,1.5,1.5,1.5,1.5,1.5,1.5,1.5,2,0,1,1.25,1,1.5,10"
        );
        assert_eq!(
            rows[1],
            "101,2,,Aggregated,0,0,1,1.5,1.5,1.5,1.5,1.5,1.5,1.5,1.5,1.5,1.5,2,0,1,1.25,1,1.5,10"
        );
        assert_eq!(
            rows[2],
            "102,2,,Aggregated,1,1,1.5,1.5,4,4,4,4,4,4,4,4,4,3,1,1.5,2.167,1,4,6.666667"
        );
        // Second 111 still sees 102 in its 10 s window; second 112 sees only 103..=112.
        assert!(
            rows[12].starts_with("112,2,,Aggregated,1,0,9,9,"),
            "{}",
            rows[12]
        );
        assert!(
            rows[11].starts_with("111,2,,Aggregated,0,0,4,4,"),
            "{}",
            rows[11]
        );
        assert!(render(write_history, &RunStats::new(0)).lines().count() == 1);
    }

    #[test]
    fn writes_four_files() {
        let dir = std::env::temp_dir().join(format!("mynah-csv-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let prefix = dir.join("run");
        write_locust_csv(&prefix, &run()).unwrap();
        for f in [
            "run_stats.csv",
            "run_stats_history.csv",
            "run_failures.csv",
            "run_exceptions.csv",
        ] {
            assert!(dir.join(f).is_file(), "{f}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
