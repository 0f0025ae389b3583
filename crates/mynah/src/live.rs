//! The live view of a running test.
//!
//! On a terminal it redraws a block in place every tick (ANSI cursor-up and clear, nothing hidden,
//! so an interrupted run leaves the terminal as it was): progress, users, recent requests per
//! second, failures, and the busiest endpoints. Elsewhere (CI logs, pipes) it prints one plain
//! line every five seconds.

use std::collections::VecDeque;
use std::io::Write;
use std::time::Duration;

use mynah_engine::{Observer, Progress};
use mynah_stats::report::table::{fmt_ms_short, sanitize, truncate, NAME_MAX};
use mynah_stats::{EndpointStats, RunStats};

/// Endpoints listed in the terminal block (the most requested ones).
pub const TOP_ENDPOINTS: usize = 15;
/// Seconds between plain lines when stdout is not a terminal.
pub const PLAIN_EVERY_S: u64 = 5;
/// Window of the "recent" requests-per-second figure.
pub const RATE_WINDOW: Duration = Duration::from_secs(5);
/// Terminal width used when `COLUMNS` is unset or invalid.
pub const DEFAULT_WIDTH: usize = 100;
const BAR_WIDTH: usize = 24;

/// The terminal width from the `COLUMNS` environment variable, or [`DEFAULT_WIDTH`].
pub fn terminal_width() -> usize {
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.trim().parse::<usize>().ok())
        .filter(|&w| w >= 20)
        .unwrap_or(DEFAULT_WIDTH)
}

/// `7s`, `1m05s`, `2h03m07s`.
pub fn fmt_elapsed(d: Duration) -> String {
    let t = d.as_secs();
    let (h, m, s) = (t / 3600, t / 60 % 60, t % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m{s:02}s"),
        _ => format!("{h}h{m:02}m{s:02}s"),
    }
}

fn fmt_pct(num: u64, den: u64) -> String {
    if den == 0 {
        "0.00%".to_owned()
    } else {
        format!("{:.2}%", num as f64 * 100.0 / den as f64)
    }
}

fn fmt_rate(v: f64) -> String {
    if v.is_finite() && v > 0.0 {
        format!("{v:.1}")
    } else {
        "0.0".to_owned()
    }
}

fn opt_ms(v: Option<u64>) -> String {
    v.map_or_else(|| "-".to_owned(), |us| format!("{}ms", fmt_ms_short(us)))
}

/// Requests per second over the last few seconds, from successive (elapsed, total requests)
/// readings: cheap on every tick, unlike walking the whole time series.
#[derive(Debug, Default, Clone)]
pub struct RateWindow {
    readings: VecDeque<(Duration, u64)>,
}

impl RateWindow {
    /// Adds a reading and forgets those older than [`RATE_WINDOW`] (keeping one at its edge).
    pub fn push(&mut self, elapsed: Duration, requests: u64) {
        if self.readings.back().is_some_and(|&(e, _)| elapsed < e) {
            // Time went backwards (a new run?): start over.
            self.readings.clear();
        }
        self.readings.push_back((elapsed, requests));
        while self.readings.len() > 2 && elapsed.saturating_sub(self.readings[1].0) >= RATE_WINDOW {
            self.readings.pop_front();
        }
    }

    /// The recent rate; before two readings exist, the average since the start.
    pub fn rate(&self) -> f64 {
        match (self.readings.front(), self.readings.back()) {
            (Some(&(e0, r0)), Some(&(e1, r1))) if e1 > e0 => {
                r1.saturating_sub(r0) as f64 / (e1 - e0).as_secs_f64()
            }
            (_, Some(&(e1, r1))) if !e1.is_zero() => r1 as f64 / e1.as_secs_f64(),
            _ => 0.0,
        }
    }
}

/// Users, as `now/target` (the target is omitted when unknown).
fn users(p: &Progress) -> String {
    if p.target_users > 0 {
        format!("{}/{}", p.users, p.target_users)
    } else {
        p.users.to_string()
    }
}

/// The plain line printed every few seconds when stdout is not a terminal:
/// `[  12s] users 50/50  rps 1234.5  fail 0.10%  p50 3.1ms p95 9.8ms p99 15ms  reqs 14000`.
pub fn render_line(stats: &RunStats, progress: &Progress, recent_rps: f64) -> String {
    let t = stats.total();
    let mut line = format!(
        "[{:>4}s] {} {}  rps {}  fail {}  p50 {} p95 {} p99 {}  reqs {}",
        progress.elapsed.as_secs(),
        progress.unit.unwrap_or("users"),
        users(progress),
        fmt_rate(recent_rps),
        fmt_pct(t.failures(), t.requests()),
        opt_ms(t.percentile_us(50.0)),
        opt_ms(t.percentile_us(95.0)),
        opt_ms(t.percentile_us(99.0)),
        t.requests(),
    );
    let dropped = progress.dropped.max(stats.dropped());
    if progress.arrival_rate.is_some() || dropped > 0 {
        line.push_str(&format!("  dropped {dropped}"));
    }
    if progress.stopping {
        line.push_str("  stopping");
    }
    line
}

fn progress_line(progress: &Progress, run_name: &str) -> String {
    let mut l = sanitize(run_name);
    match progress.planned.filter(|p| !p.is_zero()) {
        Some(planned) => {
            let frac = (progress.elapsed.as_secs_f64() / planned.as_secs_f64()).clamp(0.0, 1.0);
            let filled = ((frac * BAR_WIDTH as f64).round() as usize).min(BAR_WIDTH);
            l.push_str(&format!(
                "  [{}{}] {:>3.0}%  {} / {}",
                "#".repeat(filled),
                "-".repeat(BAR_WIDTH - filled),
                frac * 100.0,
                fmt_elapsed(progress.elapsed),
                fmt_elapsed(planned),
            ));
        }
        None => l.push_str(&format!("  elapsed {}", fmt_elapsed(progress.elapsed))),
    }
    if let Some((i, n)) = progress.stage {
        l.push_str(&format!("  stage {}/{}", i + 1, n));
    }
    if progress.stopping {
        l.push_str("  stopping…");
    }
    l
}

/// The terminal block, one string per line, each at most `width` characters.
pub fn render_block(
    stats: &RunStats,
    progress: &Progress,
    run_name: &str,
    recent_rps: f64,
    width: usize,
) -> Vec<String> {
    let t = stats.total();
    let mut lines = vec![progress_line(progress, run_name)];

    let mut l = format!(
        "{} {}  rps {}  fail {} ({}/{})  reqs {}",
        progress.unit.unwrap_or("users"),
        users(progress),
        fmt_rate(recent_rps),
        fmt_pct(t.failures(), t.requests()),
        t.failures(),
        t.requests(),
        t.requests(),
    );
    if let Some(rate) = progress.arrival_rate {
        l.push_str(&format!("  arrivals {}/s", fmt_rate(rate)));
    }
    let dropped = progress.dropped.max(stats.dropped());
    if progress.arrival_rate.is_some() || dropped > 0 {
        l.push_str(&format!("  dropped {dropped}"));
    }
    lines.push(l);
    lines.push(format!(
        "latency  p50 {}  p95 {}  p99 {}  max {}",
        opt_ms(t.percentile_us(50.0)),
        opt_ms(t.percentile_us(95.0)),
        opt_ms(t.percentile_us(99.0)),
        opt_ms(t.max_us()),
    ));

    let mut eps: Vec<(&str, &str, &EndpointStats)> = stats.endpoints().collect();
    if !eps.is_empty() {
        // Busiest first; ties by name then method, so rows do not jump around.
        eps.sort_by(|a, b| {
            b.2.requests()
                .cmp(&a.2.requests())
                .then_with(|| (a.1, a.0).cmp(&(b.1, b.0)))
        });
        let hidden = eps.len().saturating_sub(TOP_ENDPOINTS);
        eps.truncate(TOP_ENDPOINTS);
        lines.push(String::new());
        lines.extend(endpoint_table(stats, &eps, width));
        if hidden > 0 {
            lines.push(format!("… and {hidden} more endpoints"));
        }
    }
    lines.into_iter().map(|l| truncate(&l, width)).collect()
}

/// Endpoint rows under a header; the name column shrinks so rows fit in `width` when it can.
fn endpoint_table(
    stats: &RunStats,
    eps: &[(&str, &str, &EndpointStats)],
    width: usize,
) -> Vec<String> {
    const HEADER: [&str; 8] = [
        "Type", "Name", "reqs", "fails", "req/s", "p50", "p95", "p99",
    ];
    let ms = |v: Option<u64>| v.map_or_else(|| "-".to_owned(), fmt_ms_short);
    let rows: Vec<[String; 8]> = eps
        .iter()
        .map(|(m, n, e)| {
            [
                truncate(&sanitize(m), 10),
                sanitize(n),
                e.requests().to_string(),
                format!("{} ({})", e.failures(), fmt_pct(e.failures(), e.requests())),
                fmt_rate(stats.rps(e)),
                ms(e.percentile_us(50.0)),
                ms(e.percentile_us(95.0)),
                ms(e.percentile_us(99.0)),
            ]
        })
        .collect();
    let mut widths: Vec<usize> = HEADER.iter().map(|h| h.chars().count()).collect();
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let others: usize = widths.iter().sum::<usize>() - widths[1] + 2 * (HEADER.len() - 1);
    widths[1] = widths[1]
        .min(NAME_MAX)
        .min(width.saturating_sub(others))
        .max(8);
    let fmt_row = |cells: &[&str]| {
        let mut l = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i > 0 {
                l.push_str("  ");
            }
            let c = if i == 1 {
                truncate(c, widths[1])
            } else {
                (*c).to_owned()
            };
            let pad = widths[i].saturating_sub(c.chars().count());
            if i < 2 {
                l.push_str(&c);
                l.extend(std::iter::repeat_n(' ', pad));
            } else {
                l.extend(std::iter::repeat_n(' ', pad));
                l.push_str(&c);
            }
        }
        l.trim_end().to_owned()
    };
    let mut out = vec![fmt_row(&HEADER)];
    for r in &rows {
        let cells: Vec<&str> = r.iter().map(String::as_str).collect();
        out.push(fmt_row(&cells));
    }
    out
}

/// The live view: an [`Observer`] drawing to stdout (or any writer, for tests).
pub struct LiveView {
    is_terminal: bool,
    run_name: String,
    width: usize,
    out: Box<dyn Write + Send>,
    /// Lines of the block currently on screen (terminal mode).
    drawn: usize,
    /// Elapsed second at which the next plain line is due (plain mode).
    next_plain_s: u64,
    rate: RateWindow,
}

impl LiveView {
    /// A view on stdout; `is_terminal` picks the redrawn block or plain lines.
    pub fn new(is_terminal: bool, run_name: String) -> Self {
        Self::with_writer(
            is_terminal,
            run_name,
            terminal_width(),
            Box::new(std::io::stdout()),
        )
    }

    /// A view writing to `out`, `width` columns wide.
    pub fn with_writer(
        is_terminal: bool,
        run_name: String,
        width: usize,
        out: Box<dyn Write + Send>,
    ) -> Self {
        LiveView {
            is_terminal,
            run_name,
            width: width.max(20),
            out,
            drawn: 0,
            next_plain_s: PLAIN_EVERY_S,
            rate: RateWindow::default(),
        }
    }

    /// Moves the cursor to the top of the drawn block and clears from there down.
    fn clear_block(&mut self, buf: &mut String) {
        if self.drawn > 0 {
            buf.push_str(&format!("\r\x1b[{}A\x1b[J", self.drawn));
            self.drawn = 0;
        }
    }
}

impl Observer for LiveView {
    fn tick(&mut self, stats: &RunStats, progress: &Progress) {
        self.rate.push(progress.elapsed, stats.total().requests());
        let rps = self.rate.rate();
        let mut buf = String::new();
        if self.is_terminal {
            let lines = render_block(stats, progress, &self.run_name, rps, self.width);
            self.clear_block(&mut buf);
            for l in &lines {
                buf.push_str(l);
                buf.push('\n');
            }
            self.drawn = lines.len();
        } else {
            let secs = progress.elapsed.as_secs();
            if secs < self.next_plain_s {
                return;
            }
            self.next_plain_s = (secs / PLAIN_EVERY_S + 1) * PLAIN_EVERY_S;
            buf.push_str(&render_line(stats, progress, rps));
            buf.push('\n');
        }
        // A closed stdout must not stop the run: the reports are still written.
        let _ = self.out.write_all(buf.as_bytes());
        let _ = self.out.flush();
    }

    fn finish(&mut self, _stats: &RunStats, _progress: &Progress) {
        let mut buf = String::new();
        self.clear_block(&mut buf);
        if !buf.is_empty() {
            let _ = self.out.write_all(buf.as_bytes());
            let _ = self.out.flush();
        }
    }

    /// Clears the block first, so the next redraw (which moves up over the block's lines)
    /// cannot overwrite the notice.
    fn notice(&mut self, line: &str) {
        self.finish(&RunStats::new(0), &Progress::default());
        eprintln!("{line}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mynah_stats::FailureKind;
    use std::sync::{Arc, Mutex};

    const S: i64 = 1_000_000_000;

    fn stats() -> RunStats {
        let mut s = RunStats::new(0);
        s.set_users(50);
        for i in 0..1000u64 {
            s.record_success("GET", "/items", (i as i64) * S / 100, 1_000 + i * 10, 10);
        }
        for i in 0..10u64 {
            s.record_success("POST", "/cart", (i as i64) * S, 3_100, 10);
        }
        s.record_failure("POST", "/cart", 9 * S, None, FailureKind::Timeout, "t");
        s
    }

    fn progress(secs: u64) -> Progress {
        Progress {
            elapsed: Duration::from_secs(secs),
            planned: Some(Duration::from_secs(60)),
            users: 50,
            target_users: 50,
            stage: Some((1, 3)),
            ..Progress::default()
        }
    }

    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl Write for Sink {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Sink {
        fn take(&self) -> String {
            String::from_utf8(std::mem::take(&mut *self.0.lock().unwrap())).unwrap()
        }
    }

    #[test]
    fn plain_line_format() {
        let s = stats();
        let l = render_line(&s, &progress(12), 1234.5);
        let t = s.total();
        assert_eq!(
            l,
            format!(
                "[  12s] users 50/50  rps 1234.5  fail 0.10%  p50 {} p95 {} p99 {}  reqs 1011",
                opt_ms(t.percentile_us(50.0)),
                opt_ms(t.percentile_us(95.0)),
                opt_ms(t.percentile_us(99.0)),
            )
        );
        assert!(l.contains("p50 5.9ms p95 10ms p99 11ms"), "{l}");
        let mut p = progress(3);
        p.arrival_rate = Some(20.0);
        p.dropped = 4;
        p.stopping = true;
        let l = render_line(&RunStats::new(0), &p, 0.0);
        assert_eq!(
            l,
            "[   3s] users 50/50  rps 0.0  fail 0.00%  p50 - p95 - p99 -  reqs 0  dropped 4  stopping"
        );
    }

    #[test]
    fn block_contents() {
        let s = stats();
        let b = render_block(&s, &progress(30), "shop", 99.5, 120);
        assert_eq!(
            b[0],
            format!(
                "shop  [{}{}]  50%  30s / 1m00s  stage 2/3",
                "#".repeat(12),
                "-".repeat(12)
            )
        );
        assert_eq!(
            b[1],
            "users 50/50  rps 99.5  fail 0.10% (1/1011)  reqs 1011"
        );
        assert!(
            b[2].starts_with("latency  p50 5.9ms  p95 10ms  p99 11ms  max 11ms"),
            "{}",
            b[2]
        );
        assert_eq!(b[3], "");
        assert!(b[4].starts_with("Type  Name"));
        // Busiest first.
        assert!(b[5].starts_with("GET   /items"), "{}", b[5]);
        assert!(b[6].starts_with("POST  /cart"), "{}", b[6]);
        assert!(b[6].contains("1 (9.09%)"));
        assert_eq!(b.len(), 7);
        // Cumulative percentiles, never above the max.
        let cart: Vec<&str> = b[6].split_whitespace().collect();
        assert_eq!(&cart[cart.len() - 3..], ["3.1", "3.1", "3.1"]);
    }

    #[test]
    fn block_truncates_to_width_and_top_endpoints() {
        let mut s = RunStats::new(0);
        for i in 0..20u64 {
            let name = format!("/endpoint/{i:02}/{}", "long".repeat(30));
            for _ in 0..=i {
                s.record_success("GET", &name, 0, 1_000, 0);
            }
        }
        let b = render_block(&s, &progress(1), "a-very-long-run-name", 1.0, 40);
        for l in &b {
            assert!(l.chars().count() <= 40, "{l:?}");
        }
        assert!(b[0].ends_with('…'));
        let rows: Vec<&String> = b.iter().filter(|l| l.starts_with("GET")).collect();
        assert_eq!(rows.len(), TOP_ENDPOINTS);
        // The name column shrinks first, then the line is cut.
        assert!(
            rows[0].starts_with("GET   /endpoi…    20  0 (0.00%)"),
            "{}",
            rows[0]
        );
        assert_eq!(b.last().unwrap(), "… and 5 more endpoints");

        // Wide terminal: names cut at NAME_MAX, the row keeps its numbers.
        let b = render_block(&s, &progress(1), "run", 1.0, 200);
        let row = b.iter().find(|l| l.starts_with("GET")).unwrap();
        assert!(row.contains('…') && row.ends_with("1"), "{row}");
        let name = row.split_whitespace().nth(1).unwrap();
        assert_eq!(name.chars().count(), NAME_MAX);
        // No plan: elapsed only.
        let p = Progress {
            elapsed: Duration::from_secs(75),
            ..Progress::default()
        };
        assert_eq!(
            render_block(&RunStats::new(0), &p, "r", 0.0, 100)[0],
            "r  elapsed 1m15s"
        );
    }

    #[test]
    fn terminal_redraws_in_place_and_clears_on_finish() {
        let sink = Sink::default();
        let mut v = LiveView::with_writer(true, "run".into(), 100, Box::new(sink.clone()));
        let s = stats();
        v.tick(&s, &progress(1));
        let first = sink.take();
        assert!(!first.contains('\x1b'));
        let n = first.lines().count();
        assert_eq!(n, 7);
        v.tick(&s, &progress(2));
        let second = sink.take();
        assert!(second.starts_with(&format!("\r\x1b[{n}A\x1b[J")));
        v.finish(&s, &progress(2));
        assert_eq!(sink.take(), format!("\r\x1b[{n}A\x1b[J"));
        // Nothing left to clear.
        v.finish(&s, &progress(2));
        assert_eq!(sink.take(), "");
    }

    #[test]
    fn plain_mode_prints_every_five_seconds() {
        let sink = Sink::default();
        let mut v = LiveView::with_writer(false, "run".into(), 100, Box::new(sink.clone()));
        let s = stats();
        for sec in 1..=16 {
            v.tick(&s, &progress(sec));
        }
        v.finish(&s, &progress(16));
        let out = sink.take();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 3, "{out}");
        assert!(lines[0].starts_with("[   5s] users 50/50  rps 0.0"));
        assert!(lines[1].starts_with("[  10s]") && lines[2].starts_with("[  15s]"));
        assert!(!out.contains('\x1b'));
    }

    #[test]
    fn rate_window() {
        let mut r = RateWindow::default();
        assert_eq!(r.rate(), 0.0);
        r.push(Duration::from_secs(2), 100);
        assert_eq!(r.rate(), 50.0);
        for s in 3..=20 {
            r.push(Duration::from_secs(s), 100 + (s - 2) * 10);
        }
        assert_eq!(r.rate(), 10.0);
        assert!(r.readings.len() <= 7);
        r.push(Duration::from_secs(1), 5);
        assert_eq!(r.rate(), 5.0);
    }

    #[test]
    fn width_from_env_or_default() {
        // Only reads; the variable is whatever the test environment has.
        let w = terminal_width();
        assert!(w >= 20);
        assert_eq!(fmt_elapsed(Duration::from_secs(3725)), "1h02m05s");
    }
}
