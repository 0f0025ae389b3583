//! The plain-text table printed to the terminal at the end of a run: Locust's final statistics
//! plus percentiles, the grouped failures, and dropped iterations.

use std::fmt::Write as _;

use crate::stats::{EndpointStats, RunStats};

/// Names longer than this many characters are cut with an ellipsis.
pub const NAME_MAX: usize = 60;
/// Failure messages longer than this many characters are cut with an ellipsis.
pub const MESSAGE_MAX: usize = 200;
/// Most failure groups listed (the most frequent ones); the rest are summed in one line.
pub const MAX_FAILURE_LINES: usize = 50;

/// A latency for people: `0.45` below 1 ms, `3.1` below 10 ms, whole milliseconds above
/// (`15`, `1234`); trailing zeros dropped (`2`, not `2.0`).
pub fn fmt_ms_short(us: u64) -> String {
    let ms = us as f64 / 1000.0;
    let s = if us < 1_000 {
        format!("{ms:.2}")
    } else if us < 10_000 {
        format!("{ms:.1}")
    } else {
        return format!("{ms:.0}");
    };
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// Replaces control characters (line breaks, escape sequences) so that a name or message from
/// the run cannot break the layout or drive the terminal.
pub fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// Cuts `s` to at most `max` characters, ending with `…` when it was cut.
pub fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    if max == 0 {
        return String::new();
    }
    let mut out: String = s.chars().take(max - 1).collect();
    out.push('…');
    out
}

/// Column alignment.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Align {
    Left,
    Right,
}

/// Lays out rows under a header with each column as wide as its widest cell, two spaces apart.
/// `None` rows are separator lines across the full width.
pub(crate) fn layout(header: &[&str], align: &[Align], rows: &[Option<Vec<String>>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows.iter().flatten() {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let total = widths.iter().sum::<usize>() + 2 * widths.len().saturating_sub(1);
    let mut out = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut l = String::new();
        for (i, c) in cells.enumerate() {
            if i > 0 {
                l.push_str("  ");
            }
            let pad = widths[i].saturating_sub(c.chars().count());
            if align[i] == Align::Right {
                l.extend(std::iter::repeat_n(' ', pad));
                l.push_str(c);
            } else {
                l.push_str(c);
                l.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(&mut header.iter().copied());
    let sep = "-".repeat(total);
    for r in rows {
        match r {
            Some(cells) => line(&mut cells.iter().map(String::as_str)),
            None => line(&mut std::iter::once(sep.as_str())),
        }
    }
    out
}

fn fmt_pct(num: u64, den: u64) -> String {
    if den == 0 {
        "0.00%".to_owned()
    } else {
        format!("{:.2}%", num as f64 * 100.0 / den as f64)
    }
}

fn row(stats: &RunStats, typ: &str, name: &str, e: &EndpointStats) -> Vec<String> {
    let ms = |v: Option<u64>| v.map_or_else(|| "-".to_owned(), fmt_ms_short);
    let rps = stats.rps(e);
    vec![
        truncate(&sanitize(typ), NAME_MAX),
        truncate(&sanitize(name), NAME_MAX),
        e.requests().to_string(),
        format!("{} ({})", e.failures(), fmt_pct(e.failures(), e.requests())),
        e.mean_us()
            .map_or_else(|| "-".to_owned(), |m| fmt_ms_short(m.round() as u64)),
        ms(e.min_us()),
        ms(e.max_us()),
        ms(e.percentile_us(50.0)),
        ms(e.percentile_us(90.0)),
        ms(e.percentile_us(95.0)),
        ms(e.percentile_us(99.0)),
        if rps.is_finite() {
            format!("{rps:.2}")
        } else {
            "0.00".to_owned()
        },
    ]
}

/// The end-of-run table: one row per endpoint (sorted by name, then method), an `Aggregated` row,
/// then the failures grouped by (method, name, kind, message), most frequent first, then the
/// dropped iterations if there were any. Times are milliseconds.
pub fn final_table(stats: &RunStats, users_max: u64) -> String {
    final_table_of(stats, users_max, "users")
}

/// [`final_table`] with the peak counted in `unit` (`connections` for a replay).
pub fn final_table_of(stats: &RunStats, users_max: u64, unit: &str) -> String {
    const HEADER: [&str; 12] = [
        "Type", "Name", "# reqs", "# fails", "Avg", "Min", "Max", "Med", "p90", "p95", "p99",
        "req/s",
    ];
    let mut align = [Align::Right; 12];
    align[0] = Align::Left;
    align[1] = Align::Left;

    let mut eps: Vec<(&str, &str, &EndpointStats)> = stats.endpoints().collect();
    eps.sort_by(|a, b| (a.1, a.0).cmp(&(b.1, b.0)));
    let mut rows: Vec<Option<Vec<String>>> = eps
        .into_iter()
        .map(|(m, n, e)| Some(row(stats, m, n, e)))
        .collect();
    rows.push(None);
    rows.push(Some(row(stats, "", "Aggregated", stats.total())));

    let mut out = String::new();
    let _ = writeln!(
        out,
        "Response times in ms; {:.1} s, {} {unit} max.",
        stats.duration_s(),
        users_max
    );
    out.push_str(&layout(&HEADER, &align, &rows));

    let mut groups: Vec<_> = stats.failures().collect();
    if !groups.is_empty() {
        groups.sort_by_key(|g| std::cmp::Reverse(g.count));
        out.push_str("\nFailures\n");
        let shown = &groups[..groups.len().min(MAX_FAILURE_LINES)];
        let width = shown
            .iter()
            .map(|g| g.count.to_string().len())
            .max()
            .unwrap_or(1)
            .max("count".len());
        let _ = writeln!(out, "{:>width$}  Error", "count");
        for g in shown {
            let _ = writeln!(
                out,
                "{:>width$}  {} {}  {}: {}",
                g.count,
                truncate(&sanitize(g.method), NAME_MAX),
                truncate(&sanitize(g.name), NAME_MAX),
                g.kind,
                truncate(&sanitize(g.message), MESSAGE_MAX),
            );
        }
        if groups.len() > shown.len() {
            let rest = &groups[shown.len()..];
            let _ = writeln!(
                out,
                "… and {} more failure groups ({} failures)",
                rest.len(),
                rest.iter().map(|g| g.count).sum::<u64>()
            );
        }
    }
    if stats.dropped() > 0 {
        let _ = writeln!(
            out,
            "\nDropped iterations: {} (could not start in time: every user was busy)",
            stats.dropped()
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::FailureKind;

    const S: i64 = 1_000_000_000;

    fn sample() -> RunStats {
        let mut s = RunStats::new(0);
        for i in 0..100u64 {
            s.record_success("GET", "/items", (i as i64) * S / 10, 1_000 + i * 100, 10);
        }
        s.record_success("POST", "/cart", S, 25_400, 0);
        s.record_failure(
            "POST",
            "/cart",
            2 * S,
            Some(30_000),
            FailureKind::Status,
            "503 busy",
        );
        s.record_failure(
            "POST",
            "/cart",
            3 * S,
            None,
            FailureKind::Connect,
            "refused\nagain",
        );
        s.record_failure(
            "POST",
            "/cart",
            4 * S,
            None,
            FailureKind::Connect,
            "refused\nagain",
        );
        s.finish(10 * S);
        s
    }

    #[test]
    fn table_rows_and_aggregate() {
        let t = final_table(&sample(), 7);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "Response times in ms; 10.0 s, 7 users max.");
        assert!(lines[1].starts_with("Type  Name"));
        assert!(lines[1].ends_with("req/s"));
        // Locust's order: by name then method.
        assert!(lines[2].starts_with("POST  /cart "));
        assert!(lines[3].starts_with("GET   /items"));
        assert!(lines[4].starts_with("-----"));
        assert!(lines[5].starts_with("      Aggregated"));
        // Every data row is as wide as the header (right-aligned last column).
        for l in &lines[1..=5] {
            assert_eq!(l.chars().count(), lines[1].chars().count(), "{l:?}");
        }
        let cart: Vec<&str> = lines[2].split_whitespace().collect();
        // POST /cart 4 3 (75.00%) avg min max med p90 p95 p99 rps
        assert_eq!(&cart[..5], ["POST", "/cart", "4", "3", "(75.00%)"]);
        assert_eq!(cart[6], "25"); // min
        assert_eq!(cart[7], "30"); // max
        assert_eq!(cart[12], "0.40");
        let items: Vec<&str> = lines[3].split_whitespace().collect();
        assert_eq!(items[6], "1"); // min 1 ms
        assert_eq!(items[7], "11"); // max 10.9 ms rounds to 11
        let agg: Vec<&str> = lines[5].split_whitespace().collect();
        assert_eq!(&agg[..4], ["Aggregated", "104", "3", "(2.88%)"]);
        assert_eq!(agg[11], "10.40");
    }

    #[test]
    fn failures_and_dropped() {
        let mut s = sample();
        s.record_dropped(5);
        let t = final_table(&s, 1);
        let f = t.split("\nFailures\n").nth(1).unwrap();
        let lines: Vec<&str> = f.lines().collect();
        assert_eq!(lines[0], "count  Error");
        // Most frequent first, line breaks in messages flattened.
        assert_eq!(lines[1], "    2  POST /cart  connect: refused again");
        assert_eq!(lines[2], "    1  POST /cart  status: 503 busy");
        assert!(
            t.ends_with("\nDropped iterations: 5 (could not start in time: every user was busy)\n")
        );
        let clean = final_table(&RunStats::new(0), 0);
        assert!(!clean.contains("Failures") && !clean.contains("Dropped"));
    }

    #[test]
    fn long_names_truncated_and_empty_run() {
        let mut s = RunStats::new(0);
        let long = format!("/{}", "x".repeat(100));
        s.record_success("GET", &long, 0, 1_000, 0);
        s.record_success("GET", "/\u{1b}[31mred", 0, 1_000, 0);
        let t = final_table(&s, 1);
        let cut = format!("/{}…", "x".repeat(58));
        assert!(t.contains(&cut));
        assert!(!t.contains(&"x".repeat(60)));
        assert!(!t.contains('\u{1b}'));
        let name_col: Vec<usize> = t
            .lines()
            .skip(1)
            .map(|l| l.chars().count())
            .filter(|&n| n > 10)
            .collect();
        assert!(name_col.windows(2).all(|w| w[0] == w[1]), "{t}");

        let empty = final_table(&RunStats::new(0), 0);
        let agg = empty.lines().find(|l| l.contains("Aggregated")).unwrap();
        assert_eq!(
            agg.split_whitespace().collect::<Vec<_>>(),
            [
                "Aggregated",
                "0",
                "0",
                "(0.00%)",
                "-",
                "-",
                "-",
                "-",
                "-",
                "-",
                "-",
                "0.00"
            ]
        );
    }

    #[test]
    fn short_ms_and_helpers() {
        assert_eq!(fmt_ms_short(450), "0.45");
        assert_eq!(fmt_ms_short(3_100), "3.1");
        assert_eq!(fmt_ms_short(2_000), "2");
        assert_eq!(fmt_ms_short(15_400), "15");
        assert_eq!(fmt_ms_short(1_234_567), "1235");
        assert_eq!(fmt_ms_short(0), "0");
        assert_eq!(truncate("abcdef", 4), "abc…");
        assert_eq!(truncate("abc", 3), "abc");
        assert_eq!(truncate("abc", 0), "");
        assert_eq!(sanitize("a\tb\r\n"), "a b  ");
    }
}
