//! The self-contained HTML report (`report.html`): header, totals, thresholds, charts over time as
//! inline SVG, the per-endpoint table and the failures table.
//!
//! The file fetches nothing: no scripts, fonts, images or style sheets from anywhere, and a
//! Content-Security-Policy forbids it, so it opens offline and can be archived or mailed as is.
//! Every string that came from the run (names, messages, host, title) is HTML-escaped.

use std::fmt::Write as _;

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::fmt_ms;
use crate::stats::{EndpointStats, RunStats, SecondStats};
use crate::threshold::ThresholdResult;

/// What the report says about the run beyond its statistics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReportMeta {
    /// Page title and heading.
    pub title: String,
    /// The scenario file or name that was run.
    pub scenario: Option<String>,
    /// The target host.
    pub host: Option<String>,
    /// The most users running at once.
    pub users_max: u64,
    /// Warnings to show above the results (validation notes, an interrupted run...).
    pub warnings: Vec<String>,
}

/// Most failure groups listed; the rest are counted in a note (the CSV files hold them all).
pub const MAX_FAILURE_ROWS: usize = 500;

/// Most points per chart line: longer runs are bucketed into several seconds per point.
const MAX_POINTS: i64 = 600;

const NS_PER_S: i64 = 1_000_000_000;

/// Escapes `s` for HTML text and double- or single-quoted attribute values.
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const CSS: &str = "\
*{box-sizing:border-box}\
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:#1f2328;background:#f6f8fa;margin:0;padding:24px}\
main{max-width:1200px;margin:0 auto}\
h1{font-size:22px;margin:0 0 8px}h2{font-size:17px;margin:28px 0 10px}\
section,header{background:#fff;border:1px solid #d0d7de;border-radius:8px;padding:16px 20px;margin-bottom:16px}\
section h2{margin-top:0}\
dl.meta{display:grid;grid-template-columns:max-content 1fr;gap:2px 16px;margin:0}\
dl.meta dt{color:#59636e}dl.meta dd{margin:0;word-break:break-all}\
.cards{display:flex;flex-wrap:wrap;gap:10px}\
.card{border:1px solid #d0d7de;border-radius:6px;padding:8px 12px;min-width:110px}\
.card .k{color:#59636e;font-size:12px}.card .v{font-size:18px;font-weight:600;font-variant-numeric:tabular-nums}\
table{border-collapse:collapse;width:100%;font-variant-numeric:tabular-nums}\
th,td{padding:4px 8px;border-bottom:1px solid #eaeef2;text-align:right;vertical-align:top}\
th{background:#f6f8fa;font-weight:600;white-space:nowrap}\
td.t,th.t{text-align:left}td.msg{text-align:left;word-break:break-word}\
tfoot td{font-weight:600;border-top:2px solid #d0d7de}\
.scroll{overflow-x:auto}\
.pass{color:#1a7f37;font-weight:600}.fail{color:#cf222e;font-weight:600}\
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;font-weight:600;color:#fff;vertical-align:middle}\
.badge.pass{background:#1a7f37;color:#fff}.badge.fail{background:#cf222e;color:#fff}\
.warn{background:#fff8c5;border-color:#d4a72c}.warn ul{margin:0;padding-left:20px}\
.chart{margin:0 0 12px}.chart svg{width:100%;height:auto;display:block}\
.chart text{font:11px system-ui,sans-serif;fill:#59636e}.chart .title{font-size:13px;font-weight:600;fill:#1f2328}\
.muted{color:#59636e}footer{color:#59636e;font-size:12px;text-align:center}\
";

/// The whole report as one HTML document.
pub fn html_report(stats: &RunStats, meta: &ReportMeta, thresholds: &[ThresholdResult]) -> String {
    let mut h = String::with_capacity(64 * 1024);
    let title = if meta.title.is_empty() {
        "mynah run"
    } else {
        meta.title.as_str()
    };
    let title = escape_html(title);
    h.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    // Nothing may be fetched: only the inline style sheet is allowed.
    h.push_str("<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\n");
    h.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    let _ = writeln!(
        h,
        "<title>{title}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<main>"
    );

    header(&mut h, stats, meta, &title, thresholds);
    if !meta.warnings.is_empty() {
        h.push_str("<section class=\"warn\"><h2>Warnings</h2><ul>\n");
        for w in &meta.warnings {
            let _ = writeln!(h, "<li>{}</li>", escape_html(w));
        }
        h.push_str("</ul></section>\n");
    }
    totals(&mut h, stats);
    if !thresholds.is_empty() {
        threshold_table(&mut h, thresholds);
    }
    charts(&mut h, stats);
    endpoint_table(&mut h, stats);
    failure_table(&mut h, stats);
    let _ = writeln!(
        h,
        "<footer>Generated by mynah {}</footer>\n</main>\n</body>\n</html>",
        env!("CARGO_PKG_VERSION")
    );
    h
}

fn header(
    h: &mut String,
    stats: &RunStats,
    meta: &ReportMeta,
    title: &str,
    thresholds: &[ThresholdResult],
) {
    let badge = if thresholds.is_empty() {
        ""
    } else if thresholds.iter().all(|t| t.passed) {
        " <span class=\"badge pass\">PASSED</span>"
    } else {
        " <span class=\"badge fail\">FAILED</span>"
    };
    let _ = writeln!(h, "<header><h1>{title}{badge}</h1><dl class=\"meta\">");
    let mut row = |k: &str, v: &str| {
        let _ = writeln!(h, "<dt>{k}</dt><dd>{v}</dd>");
    };
    row("Started at", &escape_html(&started_at(stats)));
    row("Duration", &fmt_duration(stats.duration_s()));
    row("Users (max)", &meta.users_max.to_string());
    if let Some(host) = &meta.host {
        row("Host", &escape_html(host));
    }
    if let Some(s) = &meta.scenario {
        row("Scenario", &escape_html(s));
    }
    h.push_str("</dl></header>\n");
}

fn started_at(stats: &RunStats) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(stats.started_at_ns()))
        .ok()
        .and_then(|t| t.replace_nanosecond(0).ok())
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| "unknown".to_owned())
}

/// `95` -> `1m 35s`, `3725.4` -> `1h 2m 5s`, `0.25` -> `0.25s`.
fn fmt_duration(secs: f64) -> String {
    if !secs.is_finite() || secs <= 0.0 {
        return "0s".to_owned();
    }
    if secs < 10.0 {
        let s = format!("{secs:.2}");
        return format!("{}s", s.trim_end_matches('0').trim_end_matches('.'));
    }
    let t = secs.round() as u64;
    let (h, m, s) = (t / 3600, t / 60 % 60, t % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m {s}s"),
        _ => format!("{h}h {m}m {s}s"),
    }
}

fn opt_ms(v: Option<u64>) -> String {
    v.map_or_else(|| "—".to_owned(), fmt_ms)
}

fn pct(num: u64, den: u64) -> String {
    if den == 0 {
        "0.00%".to_owned()
    } else {
        format!("{:.2}%", num as f64 * 100.0 / den as f64)
    }
}

fn fmt_rate(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.2}")
    } else {
        "0.00".to_owned()
    }
}

fn fmt_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

fn totals(h: &mut String, stats: &RunStats) {
    let t = stats.total();
    h.push_str("<section><h2>Totals</h2><div class=\"cards\">\n");
    let fail_class = if t.failures() > 0 { " fail" } else { "" };
    let cards: [(&str, String, &str); 11] = [
        ("Requests", t.requests().to_string(), ""),
        ("Failures", t.failures().to_string(), fail_class),
        ("Fail %", pct(t.failures(), t.requests()), fail_class),
        ("Requests/s", fmt_rate(stats.rps(t)), ""),
        ("Dropped", stats.dropped().to_string(), ""),
        ("p50 ms", opt_ms(t.percentile_us(50.0)), ""),
        ("p95 ms", opt_ms(t.percentile_us(95.0)), ""),
        ("p99 ms", opt_ms(t.percentile_us(99.0)), ""),
        ("Max ms", opt_ms(t.max_us()), ""),
        (
            "Mean ms",
            t.mean_us()
                .map_or_else(|| "—".to_owned(), |m| fmt_ms(m.round() as u64)),
            "",
        ),
        ("Received", fmt_bytes(t.bytes_received()), ""),
    ];
    for (k, v, class) in cards {
        let _ = writeln!(
            h,
            "<div class=\"card\"><div class=\"k\">{k}</div><div class=\"v{class}\">{v}</div></div>"
        );
    }
    h.push_str("</div></section>\n");
}

fn fmt_value(v: f64) -> String {
    if !v.is_finite() {
        return v.to_string();
    }
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".to_owned()
    } else {
        s.to_owned()
    }
}

fn threshold_table(h: &mut String, thresholds: &[ThresholdResult]) {
    let passed = thresholds.iter().filter(|t| t.passed).count();
    let _ = writeln!(
        h,
        "<section><h2>Thresholds <span class=\"muted\">({passed} of {} passed)</span></h2>\
         <div class=\"scroll\"><table><thead><tr><th class=\"t\">Threshold</th><th>Measured</th>\
         <th>Result</th></tr></thead><tbody>",
        thresholds.len()
    );
    for t in thresholds {
        let (class, word) = if t.passed {
            ("pass", "pass")
        } else {
            ("fail", "FAIL")
        };
        let _ = writeln!(
            h,
            "<tr><td class=\"t\"><code>{}</code></td><td>{}</td><td class=\"{class}\">{word}</td></tr>",
            escape_html(&t.expr),
            t.value
                .map_or_else(|| "no data".to_owned(), fmt_value)
        );
    }
    h.push_str("</tbody></table></div></section>\n");
}

fn endpoint_row(h: &mut String, stats: &RunStats, method: &str, name: &str, e: &EndpointStats) {
    let p = |q: f64| opt_ms(e.percentile_us(q));
    let _ = writeln!(
        h,
        "<tr><td class=\"t\">{}</td><td class=\"t\">{}</td><td>{}</td><td>{}</td><td>{}</td>\
         <td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
         <td title=\"{} bytes\">{}</td></tr>",
        escape_html(method),
        escape_html(name),
        e.requests(),
        e.failures(),
        pct(e.failures(), e.requests()),
        fmt_rate(stats.rps(e)),
        opt_ms(e.min_us()),
        e.mean_us()
            .map_or_else(|| "—".to_owned(), |m| fmt_ms(m.round() as u64)),
        p(50.0),
        p(90.0),
        p(95.0),
        p(99.0),
        opt_ms(e.max_us()),
        e.bytes_received(),
        fmt_bytes(e.bytes_received()),
    );
}

fn endpoint_table(h: &mut String, stats: &RunStats) {
    h.push_str(
        "<section><h2>Endpoints</h2><div class=\"scroll\"><table><thead><tr>\
         <th class=\"t\">Method</th><th class=\"t\">Name</th><th>Requests</th><th>Failures</th>\
         <th>Fail %</th><th>Req/s</th><th>Min ms</th><th>Mean ms</th><th>p50 ms</th><th>p90 ms</th>\
         <th>p95 ms</th><th>p99 ms</th><th>Max ms</th><th>Received</th></tr></thead><tbody>\n",
    );
    let mut rows: Vec<(&str, &str, &EndpointStats)> = stats.endpoints().collect();
    rows.sort_by(|a, b| (a.1, a.0).cmp(&(b.1, b.0)));
    if rows.is_empty() {
        h.push_str("<tr><td class=\"t muted\" colspan=\"14\">No requests were made.</td></tr>\n");
    }
    for (method, name, e) in rows {
        endpoint_row(h, stats, method, name, e);
    }
    h.push_str("</tbody><tfoot>\n");
    endpoint_row(h, stats, "", "Aggregated", stats.total());
    h.push_str("</tfoot></table></div></section>\n");
}

fn failure_table(h: &mut String, stats: &RunStats) {
    let mut groups: Vec<_> = stats.failures().collect();
    h.push_str("<section><h2>Failures</h2>\n");
    if groups.is_empty() {
        h.push_str("<p class=\"muted\">No failures.</p></section>\n");
        return;
    }
    // Most frequent first; the sort is stable so ties keep (method, name, kind, message) order.
    groups.sort_by_key(|g| std::cmp::Reverse(g.count));
    h.push_str(
        "<div class=\"scroll\"><table><thead><tr><th>Count</th><th class=\"t\">Method</th>\
         <th class=\"t\">Name</th><th class=\"t\">Kind</th><th class=\"t\">Message</th></tr></thead><tbody>\n",
    );
    for g in groups.iter().take(MAX_FAILURE_ROWS) {
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td class=\"t\">{}</td><td class=\"t\">{}</td><td class=\"t\">{}</td>\
             <td class=\"msg\">{}</td></tr>",
            g.count,
            escape_html(g.method),
            escape_html(g.name),
            g.kind.as_str(),
            escape_html(g.message),
        );
    }
    h.push_str("</tbody></table></div>\n");
    if groups.len() > MAX_FAILURE_ROWS {
        let rest = &groups[MAX_FAILURE_ROWS..];
        let _ = writeln!(
            h,
            "<p class=\"muted\">{} more failure groups ({} failures) are not listed; the failures CSV has them all.</p>",
            rest.len(),
            rest.iter().map(|g| g.count).sum::<u64>()
        );
    }
    h.push_str("</section>\n");
}

// ---------------------------------------------------------------------------------------------
// Charts

/// Several seconds of the series folded together.
#[derive(Default)]
struct Bucket {
    present: bool,
    requests: u64,
    failures: u64,
    users: u64,
    min_us: u64,
    max_us: u64,
    latencies: Vec<(u64, u64)>,
}

impl Bucket {
    fn add(&mut self, s: &SecondStats) {
        if !self.present {
            self.min_us = u64::MAX;
        }
        self.present = true;
        self.requests = self.requests.saturating_add(s.requests());
        self.failures = self.failures.saturating_add(s.failures());
        self.users = self.users.max(s.users());
        if let (Some(lo), Some(hi)) = (s.min_us(), s.max_us()) {
            self.min_us = self.min_us.min(lo);
            self.max_us = self.max_us.max(hi);
        }
        self.latencies.extend_from_slice(s.latencies());
    }

    /// Percentiles of the bucket in ms, with the HDR rank rule, clamped to the exact range.
    fn percentiles_ms(&mut self, qs: &[f64]) -> Vec<Option<f64>> {
        self.latencies.sort_unstable();
        let total = self
            .latencies
            .iter()
            .fold(0u64, |t, p| t.saturating_add(p.1));
        qs.iter()
            .map(|&q| {
                if total == 0 {
                    return None;
                }
                let target = (((q / 100.0) * total as f64).ceil() as u64).max(1);
                let mut seen = 0u64;
                let mut v = self.latencies.last()?.0;
                for &(val, c) in &self.latencies {
                    seen = seen.saturating_add(c);
                    if seen >= target {
                        v = val;
                        break;
                    }
                }
                let v = v.clamp(self.min_us.min(self.max_us), self.max_us);
                Some(v as f64 / 1000.0)
            })
            .collect()
    }
}

struct Line<'a> {
    label: &'a str,
    color: &'a str,
    values: Vec<Option<f64>>,
}

fn charts(h: &mut String, stats: &RunStats) {
    h.push_str("<section><h2>Over time</h2>\n");
    let series = stats.series();
    let (Some(first), Some(last)) = (series.first().map(|s| s.0), series.last().map(|s| s.0))
    else {
        h.push_str("<p class=\"muted\">No samples were recorded, so there is nothing to chart.</p></section>\n");
        return;
    };
    let start_sec = stats.started_at_ns().div_euclid(NS_PER_S);
    let origin = first.min(start_sec);
    let end = stats
        .ended_at_ns()
        .map_or(last, |e| (e.saturating_sub(1)).div_euclid(NS_PER_S))
        .max(last);
    // Seconds covered, saturating so that bogus timestamps cannot overflow.
    let span = end.saturating_sub(origin).saturating_add(1).max(1);
    let step = (span.saturating_add(MAX_POINTS - 1) / MAX_POINTS).max(1);
    let n = usize::try_from(span.saturating_add(step - 1) / step).unwrap_or(1);
    let mut buckets: Vec<Bucket> = (0..n).map(|_| Bucket::default()).collect();
    for (sec, s) in &series {
        let i = usize::try_from(sec.saturating_sub(origin) / step).unwrap_or(0);
        if let Some(b) = buckets.get_mut(i) {
            b.add(s);
        }
    }
    let xs: Vec<f64> = (0..n).map(|i| i as f64 * step as f64).collect();
    let mut rps = Vec::with_capacity(n);
    let mut fps = Vec::with_capacity(n);
    let mut users = Vec::with_capacity(n);
    let (mut p50, mut p95, mut p99) = (Vec::new(), Vec::new(), Vec::new());
    for (i, b) in buckets.iter_mut().enumerate() {
        // The last bucket may be shorter than `step`.
        let len = (span - i as i64 * step).clamp(1, step) as f64;
        rps.push(Some(b.requests as f64 / len));
        fps.push(Some(b.failures as f64 / len));
        users.push(b.present.then_some(b.users as f64));
        let p = b.percentiles_ms(&[50.0, 95.0, 99.0]);
        p50.push(p[0]);
        p95.push(p[1]);
        p99.push(p[2]);
    }
    let note = if step > 1 {
        format!(" (each point covers {step} s)")
    } else {
        String::new()
    };
    let span_s = span as f64;
    h.push_str(&line_chart(
        &format!("Requests and failures per second{note}"),
        span_s,
        &xs,
        &[
            Line {
                label: "requests/s",
                color: "#0969da",
                values: rps,
            },
            Line {
                label: "failures/s",
                color: "#cf222e",
                values: fps,
            },
        ],
    ));
    h.push_str(&line_chart(
        &format!("Response time, ms{note}"),
        span_s,
        &xs,
        &[
            Line {
                label: "p50",
                color: "#1a7f37",
                values: p50,
            },
            Line {
                label: "p95",
                color: "#bf8700",
                values: p95,
            },
            Line {
                label: "p99",
                color: "#cf222e",
                values: p99,
            },
        ],
    ));
    h.push_str(&line_chart(
        &format!("Users{note}"),
        span_s,
        &xs,
        &[Line {
            label: "users",
            color: "#8250df",
            values: users,
        }],
    ));
    h.push_str("</section>\n");
}

/// The smallest 1, 2, 2.5 or 5 times a power of ten at or above `v` (1 for non-positive `v`).
fn nice_ceil(v: f64) -> f64 {
    if !v.is_finite() || v <= 0.0 {
        return 1.0;
    }
    let exp = 10f64.powf(v.log10().floor());
    let f = v / exp;
    let nf = [1.0, 2.0, 2.5, 5.0, 10.0]
        .into_iter()
        .find(|&n| f <= n + 1e-9)
        .unwrap_or(10.0);
    nf * exp
}

/// A tick label: integers plainly, otherwise up to 3 decimals; large values with k/M suffixes.
fn fmt_tick(v: f64) -> String {
    let a = v.abs();
    if a >= 1e6 {
        format!("{}M", fmt_value(v / 1e6))
    } else if a >= 1e4 {
        format!("{}k", fmt_value(v / 1e3))
    } else {
        fmt_value(v)
    }
}

/// A time-axis label: `0s`, `45s`, `2m`, `1m30s`, `1h`, `1h30m`, `2d`.
fn fmt_clock(secs: f64) -> String {
    let t = secs.max(0.0).round() as u64;
    let (d, h, m, s) = (t / 86_400, t / 3600 % 24, t / 60 % 60, t % 60);
    match (d, h, m, s) {
        (0, 0, 0, s) => format!("{s}s"),
        (0, 0, m, 0) => format!("{m}m"),
        (0, 0, m, s) => format!("{m}m{s}s"),
        (0, h, 0, _) => format!("{h}h"),
        (0, h, m, _) => format!("{h}h{m}m"),
        (d, 0, _, _) => format!("{d}d"),
        (d, h, _, _) => format!("{d}d{h}h"),
    }
}

/// Seconds between time-axis ticks: a round step giving at most ~8 ticks.
fn time_step(span: f64) -> f64 {
    const STEPS: [f64; 17] = [
        1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0,
        10800.0, 21600.0, 43200.0,
    ];
    STEPS
        .into_iter()
        .find(|&s| span / s <= 8.0)
        .unwrap_or_else(|| (span / 8.0 / 86_400.0).ceil().max(1.0) * 86_400.0)
}

/// An inline SVG line chart: axes, ticks, grid lines, labels, a legend; `None` values break lines.
fn line_chart(title: &str, span: f64, xs: &[f64], lines: &[Line<'_>]) -> String {
    const W: f64 = 960.0;
    const H: f64 = 260.0;
    const L: f64 = 56.0;
    const R: f64 = 16.0;
    const T: f64 = 34.0;
    const B: f64 = 30.0;
    let (pw, ph) = (W - L - R, H - T - B);
    let ymax = nice_ceil(
        lines
            .iter()
            .flat_map(|l| l.values.iter().flatten())
            .fold(0.0f64, |m, &v| if v.is_finite() { m.max(v) } else { m }),
    );
    let xmax = span.max(1.0);
    let px = |x: f64| L + (x / xmax).clamp(0.0, 1.0) * pw;
    let py = |y: f64| T + ph - (y / ymax).clamp(0.0, 1.0) * ph;

    let mut s = String::with_capacity(8 * 1024);
    let _ = write!(
        s,
        "<figure class=\"chart\"><svg viewBox=\"0 0 {W} {H}\" role=\"img\" aria-label=\"{t}\">\
         <text class=\"title\" x=\"{L}\" y=\"16\">{t}</text>",
        t = escape_html(title)
    );
    // Legend, right-aligned on the title line.
    let mut lx = W - R;
    for l in lines.iter().rev() {
        let w = 26.0 + 7.0 * l.label.chars().count() as f64;
        lx -= w;
        let _ = write!(
            s,
            "<line x1=\"{:.1}\" y1=\"12\" x2=\"{:.1}\" y2=\"12\" stroke=\"{c}\" stroke-width=\"3\"/>\
             <text x=\"{:.1}\" y=\"16\">{}</text>",
            lx,
            lx + 14.0,
            lx + 18.0,
            escape_html(l.label),
            c = l.color
        );
    }
    // Y grid and ticks.
    for i in 0..=5 {
        let v = ymax * f64::from(i) / 5.0;
        let y = py(v);
        let _ = write!(
            s,
            "<line x1=\"{L}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"#eaeef2\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            W - R,
            L - 6.0,
            y + 4.0,
            fmt_tick(v)
        );
    }
    // X ticks.
    let step = time_step(xmax);
    let mut x = 0.0;
    while x <= xmax + 1e-9 {
        let xp = px(x);
        let _ = write!(
            s,
            "<line x1=\"{xp:.1}\" y1=\"{:.1}\" x2=\"{xp:.1}\" y2=\"{:.1}\" stroke=\"#8c959f\"/>\
             <text x=\"{xp:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            T + ph,
            T + ph + 5.0,
            T + ph + 18.0,
            fmt_clock(x)
        );
        x += step;
    }
    // Axes.
    let _ = write!(
        s,
        "<polyline points=\"{L},{T} {L},{:.1} {:.1},{:.1}\" fill=\"none\" stroke=\"#8c959f\"/>",
        T + ph,
        W - R,
        T + ph
    );
    // Data: one polyline per unbroken run of values; lone points as dots.
    for l in lines {
        let mut run: Vec<(f64, f64)> = Vec::new();
        let flush = |run: &mut Vec<(f64, f64)>, s: &mut String| {
            match run.len() {
                0 => {}
                1 => {
                    let _ = write!(
                        s,
                        "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"2.5\" fill=\"{}\"/>",
                        run[0].0, run[0].1, l.color
                    );
                }
                _ => {
                    let _ = write!(
                        s,
                        "<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"1.6\" stroke-linejoin=\"round\" points=\"",
                        l.color
                    );
                    for (i, (x, y)) in run.iter().enumerate() {
                        let sep = if i == 0 { "" } else { " " };
                        let _ = write!(s, "{sep}{x:.1},{y:.1}");
                    }
                    s.push_str("\"/>");
                }
            }
            run.clear();
        };
        for (x, v) in xs.iter().zip(&l.values) {
            match v {
                Some(v) if v.is_finite() => run.push((px(*x), py(*v))),
                _ => flush(&mut run, &mut s),
            }
        }
        flush(&mut run, &mut s);
    }
    s.push_str("</svg></figure>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::FailureKind;

    const S: i64 = NS_PER_S;
    const T0: i64 = 1_700_000_000 * S;

    fn meta() -> ReportMeta {
        ReportMeta {
            title: "Checkout <load> test".into(),
            scenario: Some("shop.yaml".into()),
            host: Some("shop.internal:8080".into()),
            users_max: 25,
            warnings: vec!["run was <interrupted>".into()],
        }
    }

    fn sample() -> RunStats {
        let mut s = RunStats::new(T0);
        s.set_users(10);
        for i in 0..30i64 {
            let at = T0 + i * S / 3;
            s.record_success("GET", "/items", at, 1_000 + (i as u64) * 100, 512);
            s.record_success("POST", "/cart", at + 1, 5_000, 64);
        }
        s.set_users(25);
        s.record_success(
            "GET",
            "/search?q=<script>alert(1)</script>",
            T0 + 5 * S,
            2_500,
            10,
        );
        s.record_failure(
            "GET",
            "/items",
            T0 + 6 * S,
            Some(9_000),
            FailureKind::Status,
            "500 <b>Internal</b> & \"oops\"",
        );
        s.record_failure(
            "POST",
            "/cart",
            T0 + 7 * S,
            None,
            FailureKind::Connect,
            "refused",
        );
        s.record_dropped(4);
        s.finish(T0 + 12 * S);
        s
    }

    #[test]
    fn escapes_everything_from_the_run() {
        let html = html_report(&sample(), &meta(), &[]);
        assert!(!html.contains("<script>"), "unescaped name");
        assert!(html.contains("/search?q=&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(html.contains("500 &lt;b&gt;Internal&lt;/b&gt; &amp; &quot;oops&quot;"));
        assert!(html.contains("<title>Checkout &lt;load&gt; test</title>"));
        assert!(html.contains("run was &lt;interrupted&gt;"));
        assert!(!html.contains("<b>"));
        assert_eq!(escape_html("a'b"), "a&#39;b");
    }

    #[test]
    fn fetches_nothing() {
        let html = html_report(&sample(), &meta(), &[]);
        let lower = html.to_ascii_lowercase();
        assert!(!lower.contains("http://") && !lower.contains("https://"));
        for attr in [
            "src=", "href=", "url(", "@import", "<script", "<link", "<img",
        ] {
            assert!(!lower.contains(attr), "found {attr}");
        }
        assert!(html.contains("Content-Security-Policy"));
        // A host given with a scheme is text, never a reference.
        let mut m = meta();
        m.host = Some("https://shop.example".into());
        let html = html_report(&sample(), &m, &[]).to_ascii_lowercase();
        assert!(!html.contains("src=") && !html.contains("href="));
    }

    #[test]
    fn lists_every_endpoint_totals_and_failures() {
        let s = sample();
        let html = html_report(&s, &meta(), &[]);
        for (method, name, _) in s.endpoints() {
            let row = format!(
                "<td class=\"t\">{}</td><td class=\"t\">{}</td>",
                escape_html(method),
                escape_html(name)
            );
            assert!(html.contains(&row), "missing {method} {name}");
        }
        assert!(html.contains("Aggregated"));
        assert!(html.contains("shop.internal:8080") && html.contains("shop.yaml"));
        assert!(html.contains("2023-11-14T22:13:20Z"));
        assert!(html.contains(">Dropped</div><div class=\"v\">4<"));
        assert!(html.contains("<td class=\"t\">connect</td><td class=\"msg\">refused</td>"));
        // Percentiles never above the max in the totals.
        let t = s.total();
        assert!(t.percentile_us(99.0) <= t.max_us());
        assert!(html.contains(&format!(
            ">Max ms</div><div class=\"v\">{}<",
            fmt_ms(t.max_us().unwrap())
        )));
    }

    #[test]
    fn thresholds_shown_with_verdict() {
        let th = [
            ThresholdResult {
                expr: "p95 < 300ms".into(),
                passed: true,
                value: Some(12.5),
            },
            ThresholdResult {
                expr: "GET /x: fail_rate < 1%".into(),
                passed: false,
                value: None,
            },
        ];
        let html = html_report(&sample(), &meta(), &th);
        assert!(
            html.contains("<code>p95 &lt; 300ms</code></td><td>12.5</td><td class=\"pass\">pass")
        );
        assert!(html.contains("<td>no data</td><td class=\"fail\">FAIL"));
        assert!(html.contains("1 of 2 passed"));
        assert!(html.contains("badge fail"));
    }

    #[test]
    fn charts_present() {
        let html = html_report(&sample(), &meta(), &[]);
        assert_eq!(html.matches("<svg").count(), 3);
        for label in ["requests/s", "failures/s", "p50", "p95", "p99", "users"] {
            assert!(html.contains(&format!(">{label}</text>")), "legend {label}");
        }
        assert!(html.matches("<polyline").count() >= 3 + 5);
        // Axis labels in elapsed time.
        assert!(html.contains(">0s</text>") && html.contains(">10s</text>"));
    }

    #[test]
    fn empty_run_renders() {
        let mut s = RunStats::new(T0);
        let html = html_report(&s, &ReportMeta::default(), &[]);
        assert!(html.contains("No samples were recorded"));
        assert!(html.contains("No requests were made."));
        assert!(html.contains("No failures."));
        assert!(html.contains("<title>mynah run</title>"));
        s.finish(T0);
        let html = html_report(&s, &ReportMeta::default(), &[]);
        assert!(html.ends_with("</html>\n"));
        // Failures only, no latency at all.
        let mut s = RunStats::new(T0);
        s.record_failure("GET", "/", T0, None, FailureKind::Connect, "refused");
        s.finish(T0 + S);
        let html = html_report(&s, &ReportMeta::default(), &[]);
        assert_eq!(html.matches("<svg").count(), 3);
    }

    #[test]
    fn long_and_bogus_runs_stay_bounded() {
        let mut s = RunStats::new(T0);
        for i in 0..7200i64 {
            s.record_success("GET", "/", T0 + i * S, 1_000, 0);
        }
        s.finish(T0 + 7200 * S);
        let html = html_report(&s, &ReportMeta::default(), &[]);
        assert!(html.contains("each point covers 12 s"));
        assert!(html.len() < 200_000, "{}", html.len());
        // Samples far from the start must not blow up the bucketing.
        let mut s = RunStats::new(0);
        s.record_success("GET", "/", i64::MIN / 2, 1, 0);
        s.record_success("GET", "/", i64::MAX / 2, 1, 0);
        let html = html_report(&s, &ReportMeta::default(), &[]);
        assert_eq!(html.matches("<svg").count(), 3);
    }

    #[test]
    fn helpers() {
        assert_eq!(nice_ceil(0.0), 1.0);
        assert_eq!(nice_ceil(7.0), 10.0);
        assert_eq!(nice_ceil(1.2), 2.0);
        assert_eq!(nice_ceil(230.0), 250.0);
        assert_eq!(fmt_clock(90.0), "1m30s");
        assert_eq!(fmt_clock(3600.0), "1h");
        assert_eq!(fmt_duration(95.0), "1m 35s");
        assert_eq!(fmt_duration(0.25), "0.25s");
        assert_eq!(fmt_bytes(2048), "2.0 KiB");
        assert_eq!(fmt_tick(25_000.0), "25k");
        assert_eq!(time_step(12.0), 2.0);
    }
}
