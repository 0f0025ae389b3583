//! Pass/fail thresholds over a run's statistics, and their JUnit report.
//!
//! An expression is `[SCOPE:] METRIC OP VALUE`, in the spirit of k6's thresholds:
//!
//! - `p95 < 300ms`, `p(99.9) <= 1s`, `avg < 120`, `max < 2s`, `median < 80ms` — latency, over all
//!   requests; a bare number is milliseconds (k6's convention);
//! - `fail_rate < 1%` (also `error_rate`, or a fraction: `fail_rate < 0.01`);
//! - `rps > 100`, `requests >= 5000`, `failures == 0`;
//! - a scope narrows it to one endpoint: `GET /search: p99 < 1s`, or every method of a name:
//!   `/search: p99 < 1s` (each must pass; the worst value is reported).
//!
//! Operators: `<`, `<=`, `>`, `>=`, `==`, `!=`.

use std::fmt;

use crate::stats::{EndpointStats, RunStats};

/// What a threshold measures.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Metric {
    /// A latency percentile (0..=100).
    Percentile(f64),
    /// The exact mean latency.
    Mean,
    /// The exact fastest request.
    Min,
    /// The exact slowest request.
    Max,
    /// Failed requests as a share of all requests.
    FailRate,
    /// Requests per second over the run.
    Rps,
    /// Requests counted (failed ones included).
    Requests,
    /// Failed requests counted.
    Failures,
}

/// How the measured value is compared with the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `==` (or `=`)
    Eq,
    /// `!=`
    Ne,
}

impl Op {
    fn holds(self, value: f64, limit: f64) -> bool {
        match self {
            Op::Lt => value < limit,
            Op::Le => value <= limit,
            Op::Gt => value > limit,
            Op::Ge => value >= limit,
            Op::Eq => value == limit,
            Op::Ne => value != limit,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Eq => "==",
            Op::Ne => "!=",
        }
    }
}

/// Which requests a threshold looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every request of the run.
    All,
    /// One (method, name) endpoint.
    Endpoint { method: String, name: String },
    /// Every method of a name.
    Name(String),
}

/// A parsed threshold expression.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    /// The expression as written.
    pub expr: String,
    pub scope: Scope,
    pub metric: Metric,
    pub op: Op,
    /// The limit in the metric's unit: milliseconds for latencies, a fraction (0..1) for
    /// `fail_rate`, per second for `rps`, a count otherwise.
    pub limit: f64,
}

/// A threshold expression that could not be parsed: where, what, and what would be valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("threshold {expr:?}, column {column}: {message}; {hint}")]
pub struct ThresholdError {
    pub expr: String,
    /// 1-based character column in `expr`.
    pub column: usize,
    pub message: String,
    pub hint: String,
}

/// The verdict on one threshold.
#[derive(Debug, Clone, PartialEq)]
pub struct ThresholdResult {
    pub expr: String,
    pub passed: bool,
    /// The measured value in the limit's unit (milliseconds, fraction, per second, count), or
    /// `None` when nothing was measured (no requests in scope: the threshold fails).
    pub value: Option<f64>,
}

const METRICS_HINT: &str = "expected a metric such as p95, p(99.9), avg, min, max, median, fail_rate, rps, requests or failures";

impl Threshold {
    /// Parses `[SCOPE:] METRIC OP VALUE`.
    pub fn parse(expr: &str) -> Result<Threshold, ThresholdError> {
        let err = |at: usize, message: &str, hint: &str| ThresholdError {
            expr: expr.to_string(),
            column: expr[..at.min(expr.len())].chars().count() + 1,
            message: message.to_string(),
            hint: hint.to_string(),
        };
        // The scope ends at the last ':' before the metric; names may contain ':' (`/a:b`), metrics do not.
        let (scope, body_at) = match expr.rfind(':') {
            Some(i) => (parse_scope(expr[..i].trim()), i + 1),
            None => (Scope::All, 0),
        };
        if let Scope::Name(n) = &scope {
            if n.is_empty() {
                return Err(err(
                    0,
                    "empty scope before ':'",
                    "write `METHOD NAME: ...`, `NAME: ...` or leave the scope out",
                ));
            }
        }
        let body = &expr[body_at..];
        let lead = body.len() - body.trim_start().len();
        let body_at = body_at + lead;
        let body = body.trim();
        let op_at = body.find(['<', '>', '=', '!']).ok_or_else(|| {
            err(
                body_at + body.len(),
                "no comparison",
                "expected <, <=, >, >=, == or != between the metric and the value",
            )
        })?;
        let metric_text = body[..op_at].trim();
        let metric = parse_metric(metric_text).ok_or_else(|| {
            err(
                body_at,
                &format!("unknown metric {metric_text:?}"),
                METRICS_HINT,
            )
        })?;
        let rest = &body[op_at..];
        let (op, op_len) = match rest.as_bytes() {
            [b'<', b'=', ..] => (Op::Le, 2),
            [b'>', b'=', ..] => (Op::Ge, 2),
            [b'=', b'=', ..] => (Op::Eq, 2),
            [b'!', b'=', ..] => (Op::Ne, 2),
            [b'<', ..] => (Op::Lt, 1),
            [b'>', ..] => (Op::Gt, 1),
            [b'=', ..] => (Op::Eq, 1),
            _ => {
                return Err(err(
                    body_at + op_at,
                    "bad comparison",
                    "expected <, <=, >, >=, == or !=",
                ))
            }
        };
        let after = &rest[op_len..];
        let value_at = body_at + op_at + op_len + (after.len() - after.trim_start().len());
        let value_text = after.trim();
        let limit = parse_value(metric, value_text).ok_or_else(|| {
            let hint = match metric {
                Metric::Percentile(_) | Metric::Mean | Metric::Min | Metric::Max => {
                    "expected a duration such as 300ms, 1.5s, 250us or a number of milliseconds"
                }
                Metric::FailRate => "expected a percentage such as 1% or a fraction such as 0.01",
                _ => "expected a number",
            };
            err(value_at, &format!("bad value {value_text:?}"), hint)
        })?;
        Ok(Threshold {
            expr: expr.trim().to_string(),
            scope,
            metric,
            op,
            limit,
        })
    }

    /// Evaluates the threshold on a run's statistics.
    pub fn evaluate(&self, stats: &RunStats) -> ThresholdResult {
        let values: Vec<Option<f64>> = match &self.scope {
            Scope::All => vec![self.measure(stats, stats.total())],
            Scope::Endpoint { method, name } => {
                vec![stats
                    .endpoint(method, name)
                    .and_then(|e| self.measure(stats, e))]
            }
            Scope::Name(name) => stats
                .endpoints()
                .filter(|(_, n, _)| *n == name.as_str())
                .map(|(_, _, e)| self.measure(stats, e))
                .collect(),
        };
        // Every endpoint in scope must pass; report the one furthest on the wrong side.
        let mut passed = !values.is_empty();
        let mut worst: Option<f64> = None;
        for v in &values {
            match v {
                Some(v) => {
                    passed &= self.op.holds(*v, self.limit);
                    let worse = match self.op {
                        Op::Lt | Op::Le => worst.is_none_or(|w| *v > w),
                        Op::Gt | Op::Ge => worst.is_none_or(|w| *v < w),
                        Op::Eq | Op::Ne => worst.is_none() || !self.op.holds(*v, self.limit),
                    };
                    if worse {
                        worst = Some(*v);
                    }
                }
                None => passed = false,
            }
        }
        ThresholdResult {
            expr: self.expr.clone(),
            passed,
            value: worst,
        }
    }

    fn measure(&self, stats: &RunStats, e: &EndpointStats) -> Option<f64> {
        let ms = |us: u64| us as f64 / 1000.0;
        match self.metric {
            Metric::Percentile(q) => e.percentile_us(q).map(ms),
            Metric::Mean => e.mean_us().map(|us| us / 1000.0),
            Metric::Min => e.min_us().map(ms),
            Metric::Max => e.max_us().map(ms),
            Metric::FailRate => (e.requests() > 0).then(|| e.fail_rate()),
            Metric::Rps => Some(stats.rps(e)),
            Metric::Requests => Some(e.requests() as f64),
            Metric::Failures => Some(e.failures() as f64),
        }
    }
}

impl fmt::Display for Threshold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({} {})", self.expr, self.op.as_str(), self.limit)
    }
}

/// `GET /search` (one endpoint) or `/search` (every method of a name); shared with the
/// comparison rules of `mynah compare`.
pub(crate) fn parse_scope(s: &str) -> Scope {
    let mut parts = s.splitn(2, char::is_whitespace);
    let first = parts.next().unwrap_or_default();
    let rest = parts.next().map(str::trim).unwrap_or_default();
    let is_method = !first.is_empty()
        && first
            .chars()
            .all(|c| c.is_ascii_uppercase() || c == '_' || c == '-');
    if is_method && !rest.is_empty() {
        Scope::Endpoint {
            method: first.to_string(),
            name: rest.to_string(),
        }
    } else {
        Scope::Name(s.to_string())
    }
}

fn parse_metric(s: &str) -> Option<Metric> {
    let s = s.trim().to_ascii_lowercase();
    let pct = |n: &str| {
        n.parse::<f64>()
            .ok()
            .filter(|q| (0.0..=100.0).contains(q))
            .map(Metric::Percentile)
    };
    match s.as_str() {
        "avg" | "mean" => Some(Metric::Mean),
        "min" => Some(Metric::Min),
        "max" => Some(Metric::Max),
        "med" | "median" => Some(Metric::Percentile(50.0)),
        "fail_rate" | "error_rate" | "failure_rate" => Some(Metric::FailRate),
        "rps" | "throughput" => Some(Metric::Rps),
        "requests" | "count" => Some(Metric::Requests),
        "failures" | "errors" => Some(Metric::Failures),
        _ => {
            if let Some(inner) = s.strip_prefix("p(").and_then(|r| r.strip_suffix(')')) {
                pct(inner.trim())
            } else {
                s.strip_prefix('p').and_then(pct)
            }
        }
    }
}

/// The limit in the metric's unit: milliseconds for latencies, a fraction for rates.
fn parse_value(metric: Metric, s: &str) -> Option<f64> {
    let s = s.trim();
    let number = |t: &str| {
        t.trim()
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite() && *v >= 0.0)
    };
    match metric {
        Metric::Percentile(_) | Metric::Mean | Metric::Min | Metric::Max => {
            // Longest suffixes first: "ms" before "s".
            for (suffix, to_ms) in [
                ("ms", 1.0),
                ("us", 0.001),
                ("µs", 0.001),
                ("s", 1000.0),
                ("m", 60_000.0),
            ] {
                if let Some(n) = s.strip_suffix(suffix) {
                    return number(n).map(|v| v * to_ms);
                }
            }
            number(s)
        }
        Metric::FailRate => match s.strip_suffix('%') {
            Some(n) => number(n).filter(|v| *v <= 100.0).map(|v| v / 100.0),
            None => number(s).filter(|v| *v <= 1.0),
        },
        _ => number(s),
    }
}

/// A JUnit XML report with one test case per threshold, for CI systems that read JUnit.
pub fn junit_xml(results: &[ThresholdResult], duration_s: f64) -> String {
    let failures = results.iter().filter(|r| !r.passed).count();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    out.push_str(&format!(
        "<testsuites name=\"mynah\" tests=\"{}\" failures=\"{failures}\" time=\"{duration_s:.3}\">\n  <testsuite name=\"thresholds\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" time=\"{duration_s:.3}\">\n",
        results.len(),
        results.len()
    ));
    for r in results {
        let value = r.value.map_or("no requests in scope".to_string(), |v| {
            format!("measured {v}")
        });
        out.push_str(&format!(
            "    <testcase classname=\"mynah.thresholds\" name=\"{}\"",
            xml_escape(&r.expr)
        ));
        if r.passed {
            out.push_str(&format!(
                "><system-out>{}</system-out></testcase>\n",
                xml_escape(&value)
            ));
        } else {
            out.push_str(&format!(
                ">\n      <failure message=\"{}\" type=\"threshold\">{}</failure>\n    </testcase>\n",
                xml_escape(&format!("{} failed: {value}", r.expr)),
                xml_escape(&value)
            ));
        }
    }
    out.push_str("  </testsuite>\n</testsuites>\n");
    out
}

fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // XML 1.0 cannot carry most control characters at all.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Threshold {
        Threshold::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn parses_the_documented_forms() {
        let t = p("p95 < 300ms");
        assert_eq!(
            (t.scope.clone(), t.metric, t.op, t.limit),
            (Scope::All, Metric::Percentile(95.0), Op::Lt, 300.0)
        );
        assert_eq!(p("p(99.9)<=1s").metric, Metric::Percentile(99.9));
        assert_eq!(p("p(99.9)<=1s").limit, 1000.0);
        assert_eq!(p("avg < 120").limit, 120.0, "a bare number is milliseconds");
        assert_eq!(p("max < 250us").limit, 0.25);
        assert_eq!(p("median<2m").limit, 120_000.0);
        assert_eq!(p("fail_rate < 1%").limit, 0.01);
        assert_eq!(p("error_rate < 0.05").limit, 0.05);
        assert_eq!(
            (p("rps > 100").metric, p("rps > 100").op),
            (Metric::Rps, Op::Gt)
        );
        assert_eq!(p("failures == 0").op, Op::Eq);
        assert_eq!(p("requests >= 5000").op, Op::Ge);
        assert_eq!(
            p("GET /search: p99 < 1s").scope,
            Scope::Endpoint {
                method: "GET".into(),
                name: "/search".into()
            }
        );
        assert_eq!(p("/search: p99 < 1s").scope, Scope::Name("/search".into()));
        assert_eq!(
            p("GET /a:b: p50 < 5").scope,
            Scope::Endpoint {
                method: "GET".into(),
                name: "/a:b".into()
            }
        );
    }

    #[test]
    fn errors_say_where_and_what_would_do() {
        let e = Threshold::parse("p95 300ms").unwrap_err();
        assert!(e.hint.contains("<, <="), "{e}");
        let e = Threshold::parse("latency < 300ms").unwrap_err();
        assert_eq!(e.column, 1);
        assert!(
            e.message.contains("latency") && e.hint.contains("p95"),
            "{e}"
        );
        let e = Threshold::parse("GET /x: p95 < fast").unwrap_err();
        assert_eq!(e.column, 15, "{e}");
        assert!(e.hint.contains("300ms"), "{e}");
        assert!(Threshold::parse("fail_rate < 150%").is_err());
        assert!(
            Threshold::parse("fail_rate < 2").is_err(),
            "a fraction above 1 is a mistake"
        );
        assert!(Threshold::parse("p101 < 1s").is_err());
        assert!(Threshold::parse(": p95 < 1s").is_err());
        assert!(Threshold::parse("p95 < -1").is_err());
    }

    /// 100 GETs of /a at 1..=100 ms (2 failed), 10 POSTs of /a at 500 ms, nothing else; 10 s long.
    fn run() -> RunStats {
        let mut s = RunStats::new(0);
        for i in 1..=100u64 {
            if i <= 2 {
                s.record_failure(
                    "GET",
                    "/a",
                    i as i64,
                    Some(i * 1000),
                    crate::FailureKind::Status,
                    "HTTP 500",
                );
            } else {
                s.record_success("GET", "/a", i as i64, i * 1000, 10);
            }
        }
        for i in 0..10 {
            s.record_success("POST", "/a", 200 + i, 500_000, 10);
        }
        s.finish(10_000_000_000);
        s
    }

    fn eval(expr: &str) -> ThresholdResult {
        p(expr).evaluate(&run())
    }

    #[test]
    fn evaluates_against_the_numbers() {
        let r = eval("GET /a: p50 < 51ms");
        assert!(r.passed, "{r:?}");
        assert!((r.value.unwrap() - 50.0).abs() < 0.1, "{r:?}");
        assert!(!eval("GET /a: p99 < 99ms").passed);
        assert!(eval("GET /a: max <= 100ms").passed);
        let r = eval("GET /a: fail_rate < 1%");
        assert!(!r.passed);
        assert!((r.value.unwrap() - 0.02).abs() < 1e-9, "{r:?}");
        assert!(eval("GET /a: fail_rate < 3%").passed);
        assert!(eval("requests == 110").passed);
        assert!(eval("failures == 2").passed);
        let r = eval("rps > 10");
        assert!(r.passed && (r.value.unwrap() - 11.0).abs() < 1e-9, "{r:?}");
        // Over all requests the 500 ms POSTs dominate the tail.
        assert!(!eval("p99 < 200ms").passed);
    }

    #[test]
    fn a_name_scope_needs_every_method_to_pass_and_reports_the_worst() {
        let r = eval("/a: p95 < 200ms");
        assert!(!r.passed);
        assert!(
            (r.value.unwrap() - 500.0).abs() < 1.0,
            "the POST's p95 is reported: {r:?}"
        );
        assert!(eval("/a: max < 1s").passed);
    }

    #[test]
    fn nothing_in_scope_fails() {
        let r = eval("GET /missing: p95 < 1s");
        assert!(!r.passed);
        assert_eq!(r.value, None);
        assert!(!eval("/missing: p95 < 1s").passed);
    }

    #[test]
    fn junit_has_one_case_per_threshold_and_escapes() {
        let results = [
            ThresholdResult {
                expr: "p95 < 300ms".into(),
                passed: true,
                value: Some(120.5),
            },
            ThresholdResult {
                expr: "GET /a?x=<1>&y: fail_rate < 1%".into(),
                passed: false,
                value: Some(0.2),
            },
            ThresholdResult {
                expr: "rps > 10".into(),
                passed: false,
                value: None,
            },
        ];
        let xml = junit_xml(&results, 12.0);
        assert_eq!(xml.matches("<testcase ").count(), 3);
        assert_eq!(xml.matches("<failure ").count(), 2);
        assert!(xml.contains("tests=\"3\" failures=\"2\""));
        assert!(xml.contains("GET /a?x=&lt;1&gt;&amp;y: fail_rate &lt; 1%"));
        assert!(xml.contains("no requests in scope"));
        assert!(!xml.contains("<1>"));
    }
}
