//! Side-by-side comparison of two run or replay summaries (`mynah compare A.json B.json`), and
//! the `--fail-on` regression rules evaluated on it.
//!
//! # Rows
//!
//! Endpoints are matched by `(method, name)`; an endpoint present in only one summary is kept,
//! with the other side empty. For the total and every endpoint a [`Row`] holds both sides'
//! requests, share of that run's requests, rps, failure rate and latencies, and the change from
//! A to B: absolute (milliseconds for latencies) and relative (percent of A).
//!
//! # Order
//!
//! The total comes first, then the endpoints by decreasing **change score**:
//!
//! ```text
//! score = max(|relative change of p99| in %, |relative change of p95| in %,
//!             |change of the failure rate| in percentage points)
//! ```
//!
//! A term that cannot be measured (no latency samples, or no requests, on either side) counts 0;
//! a latency that grew from exactly 0 counts as infinite. An endpoint present on only one side
//! scores infinity (it changed the most). Ties go to the busier endpoint (B's requests, then
//! A's), then by method and name.
//!
//! # Rules
//!
//! A rule is `[SCOPE:] METRIC SIGN AMOUNT[UNIT]`, see [`Rule::parse`].

use std::cmp::Ordering;
use std::fmt::{self, Write as _};

use serde_json::{json, Map, Value};

use super::html::escape_html;
use crate::threshold::{parse_scope, Scope};

/// One summary's figures for the total or an endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct Figures {
    /// Requests counted (failed ones included).
    pub requests: u64,
    /// Failed requests counted.
    pub failures: u64,
    /// Requests per second over the run.
    pub rps: f64,
    /// Latencies in milliseconds; `None` without samples.
    pub latency: Latency,
}

/// Latency figures in milliseconds, each `None` when the summary has `null` (no samples).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Latency {
    /// Mean latency.
    pub mean: Option<f64>,
    /// Median.
    pub p50: Option<f64>,
    /// 90th percentile.
    pub p90: Option<f64>,
    /// 95th percentile.
    pub p95: Option<f64>,
    /// 99th percentile.
    pub p99: Option<f64>,
    /// Slowest request.
    pub max: Option<f64>,
}

impl Figures {
    /// Failed requests as a fraction (0..=1) of all requests; `None` without requests.
    pub fn fail_rate(&self) -> Option<f64> {
        (self.requests > 0).then(|| self.failures as f64 / self.requests as f64)
    }
}

/// One parsed summary: what it is, its total and its endpoints.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// How the summary is called in reports (usually its file name).
    pub label: String,
    /// `run` or `replay`.
    pub kind: String,
    /// RFC 3339 start time, when the summary has one.
    pub started_at: Option<String>,
    /// Length of the run in seconds, when the summary has it.
    pub duration_s: Option<f64>,
    /// All requests.
    pub total: Figures,
    /// Per endpoint: `(method, name, figures)` in the summary's order.
    pub endpoints: Vec<(String, String, Figures)>,
}

/// A summary JSON that is not one mynah wrote: which field is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{label}: {message}")]
pub struct SummaryError {
    /// The summary's label (its file name).
    pub label: String,
    /// What is wrong, naming the JSON path.
    pub message: String,
}

/// Parses a summary JSON (`mynah run` or `mynah replay` `--summary-json`).
///
/// Requires `"tool": "mynah"`, `total` and `endpoints` with their counts and rps; latency
/// values may be `null` or absent (no samples). `label` names the summary in errors and reports.
pub fn parse_summary(v: &Value, label: &str) -> Result<Summary, SummaryError> {
    let err = |message: String| SummaryError {
        label: label.to_string(),
        message,
    };
    if !v.is_object() {
        return Err(err("not a JSON object: expected a mynah summary".into()));
    }
    if v.get("tool").and_then(Value::as_str) != Some("mynah") {
        return Err(err(
            "missing \"tool\": \"mynah\": not a mynah run or replay summary (--summary-json)"
                .into(),
        ));
    }
    let kind = v
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or("run")
        .to_string();
    let total = figures(v.get("total"), "total").map_err(err)?;
    let eps = v
        .get("endpoints")
        .and_then(Value::as_array)
        .ok_or_else(|| err("missing array \"endpoints\"".into()))?;
    let mut endpoints = Vec::with_capacity(eps.len());
    for (i, e) in eps.iter().enumerate() {
        let at = format!("endpoints[{i}]");
        let text = |k: &str| {
            e.get(k)
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| err(format!("missing string \"{at}.{k}\"")))
        };
        let method = text("method")?;
        let name = text("name")?;
        endpoints.push((method, name, figures(Some(e), &at).map_err(err)?));
    }
    Ok(Summary {
        label: label.to_string(),
        kind,
        started_at: v
            .get("started_at")
            .and_then(Value::as_str)
            .map(str::to_string),
        duration_s: v.get("duration_s").and_then(Value::as_f64),
        total,
        endpoints,
    })
}

fn figures(v: Option<&Value>, at: &str) -> Result<Figures, String> {
    let v = v
        .filter(|v| v.is_object())
        .ok_or_else(|| format!("missing object \"{at}\""))?;
    let count = |k: &str| {
        v.get(k)
            .and_then(Value::as_u64)
            .ok_or_else(|| format!("missing whole number \"{at}.{k}\""))
    };
    let requests = count("requests")?;
    let failures = count("failures")?;
    let rps = v
        .get("rps")
        .and_then(Value::as_f64)
        .filter(|r| r.is_finite())
        .ok_or_else(|| format!("missing number \"{at}.rps\""))?;
    let lat = match v.get("latency_ms") {
        None | Some(Value::Null) => None,
        Some(l) if l.is_object() => Some(l),
        Some(_) => return Err(format!("\"{at}.latency_ms\" is not an object")),
    };
    let ms = |k: &str| -> Result<Option<f64>, String> {
        match lat.and_then(|l| l.get(k)) {
            None | Some(Value::Null) => Ok(None),
            Some(x) => x
                .as_f64()
                .filter(|x| x.is_finite())
                .map(Some)
                .ok_or_else(|| format!("\"{at}.latency_ms.{k}\" is not a number or null")),
        }
    };
    Ok(Figures {
        requests,
        failures,
        rps,
        latency: Latency {
            mean: ms("mean")?,
            p50: ms("p50")?,
            p90: ms("p90")?,
            p95: ms("p95")?,
            p99: ms("p99")?,
            max: ms("max")?,
        },
    })
}

/// What a row of the comparison stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RowKey {
    /// All requests.
    Total,
    /// One `(method, name)` endpoint.
    Endpoint {
        /// HTTP method.
        method: String,
        /// Endpoint name.
        name: String,
    },
}

impl fmt::Display for RowKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RowKey::Total => f.write_str("Total"),
            RowKey::Endpoint { method, name } => write!(f, "{method} {name}"),
        }
    }
}

/// The total or one endpoint on both sides.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// What the row is.
    pub key: RowKey,
    /// Summary A's figures; `None` when the endpoint is only in B.
    pub a: Option<Figures>,
    /// Summary B's figures; `None` when the endpoint is only in A.
    pub b: Option<Figures>,
    /// A's requests as a percentage of A's total.
    pub a_share: Option<f64>,
    /// B's requests as a percentage of B's total.
    pub b_share: Option<f64>,
    /// The change score (see the [module docs](self)); infinite when on one side only.
    pub score: f64,
}

/// A change from A to B.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Change {
    /// `B - A` in the metric's unit (ms, per second, count; percentage points for rates).
    pub abs: f64,
    /// `(B - A) / A` in percent; `None` when A is 0 and B is not (no finite ratio).
    pub rel_pct: Option<f64>,
}

impl Change {
    /// The change between two measured values.
    pub fn between(a: f64, b: f64) -> Change {
        let rel_pct = if a == b {
            Some(0.0)
        } else if a == 0.0 {
            None
        } else {
            Some((b - a) / a.abs() * 100.0)
        };
        Change {
            abs: b - a,
            rel_pct,
        }
    }

    /// `|relative change|` for ordering: infinite when it grew (or fell) from 0.
    fn magnitude(&self) -> f64 {
        self.rel_pct.map_or(f64::INFINITY, f64::abs)
    }
}

impl Row {
    /// The value of `metric` on side A.
    pub fn a_value(&self, metric: RuleMetric) -> Option<f64> {
        self.a.as_ref().and_then(|f| metric.value(f))
    }

    /// The value of `metric` on side B.
    pub fn b_value(&self, metric: RuleMetric) -> Option<f64> {
        self.b.as_ref().and_then(|f| metric.value(f))
    }

    /// The change of `metric` from A to B, when both sides measured it. For `fail_rate` the
    /// absolute change is in percentage points.
    pub fn change(&self, metric: RuleMetric) -> Option<Change> {
        let (a, b) = (self.a_value(metric)?, self.b_value(metric)?);
        let mut c = Change::between(a, b);
        if metric == RuleMetric::FailRate {
            c.abs *= 100.0;
        }
        Some(c)
    }

    fn compute_score(&self) -> f64 {
        if self.a.is_none() || self.b.is_none() {
            return f64::INFINITY;
        }
        let lat = |m| self.change(m).map_or(0.0, |c| c.magnitude());
        let fail = self
            .change(RuleMetric::FailRate)
            .map_or(0.0, |c| c.abs.abs());
        lat(RuleMetric::P99).max(lat(RuleMetric::P95)).max(fail)
    }
}

/// Two summaries side by side: the total first, then the endpoints, most changed first.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    /// Summary A's description (its figures are in the rows).
    pub a: RunInfo,
    /// Summary B's description.
    pub b: RunInfo,
    /// The total, then every endpoint of either side by decreasing score.
    pub rows: Vec<Row>,
}

/// What a compared summary is.
#[derive(Debug, Clone, PartialEq)]
pub struct RunInfo {
    /// Its label (file name).
    pub label: String,
    /// `run` or `replay`.
    pub kind: String,
    /// RFC 3339 start time.
    pub started_at: Option<String>,
    /// Length in seconds.
    pub duration_s: Option<f64>,
}

impl Comparison {
    /// The total's row (`None` only for a hand-built comparison without rows).
    pub fn total(&self) -> Option<&Row> {
        self.rows.first().filter(|r| r.key == RowKey::Total)
    }

    /// The endpoints' rows, most changed first.
    pub fn endpoints(&self) -> &[Row] {
        match self.rows.first() {
            Some(r) if r.key == RowKey::Total => &self.rows[1..],
            _ => &self.rows,
        }
    }
}

fn share(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64 * 100.0)
}

/// Matches the endpoints of `a` and `b` by `(method, name)` and orders them by change score.
pub fn compare(a: &Summary, b: &Summary) -> Comparison {
    let info = |s: &Summary| RunInfo {
        label: s.label.clone(),
        kind: s.kind.clone(),
        started_at: s.started_at.clone(),
        duration_s: s.duration_s,
    };
    let mut total = Row {
        key: RowKey::Total,
        a: Some(a.total.clone()),
        b: Some(b.total.clone()),
        a_share: share(a.total.requests, a.total.requests),
        b_share: share(b.total.requests, b.total.requests),
        score: 0.0,
    };
    total.score = total.compute_score();
    let mut rows: Vec<Row> = Vec::new();
    let find = |s: &Summary, m: &str, n: &str| {
        s.endpoints
            .iter()
            .find(|(em, en, _)| em == m && en == n)
            .map(|(_, _, f)| f.clone())
    };
    let keys = a
        .endpoints
        .iter()
        .chain(b.endpoints.iter())
        .map(|(m, n, _)| (m.clone(), n.clone()));
    for (method, name) in keys {
        if rows.iter().any(|r| matches!(&r.key, RowKey::Endpoint { method: m, name: n } if *m == method && *n == name)) {
            continue;
        }
        let fa = find(a, &method, &name);
        let fb = find(b, &method, &name);
        let mut row = Row {
            a_share: fa
                .as_ref()
                .and_then(|f| share(f.requests, a.total.requests)),
            b_share: fb
                .as_ref()
                .and_then(|f| share(f.requests, b.total.requests)),
            key: RowKey::Endpoint { method, name },
            a: fa,
            b: fb,
            score: 0.0,
        };
        row.score = row.compute_score();
        rows.push(row);
    }
    let reqs = |r: &Row| {
        (
            r.b.as_ref().map_or(0, |f| f.requests),
            r.a.as_ref().map_or(0, |f| f.requests),
        )
    };
    rows.sort_by(|x, y| {
        y.score
            .partial_cmp(&x.score)
            .unwrap_or(Ordering::Equal)
            .then_with(|| reqs(y).cmp(&reqs(x)))
            .then_with(|| key_text(&x.key).cmp(&key_text(&y.key)))
    });
    rows.insert(0, total);
    Comparison {
        a: info(a),
        b: info(b),
        rows,
    }
}

fn key_text(k: &RowKey) -> (&str, &str) {
    match k {
        RowKey::Total => ("", ""),
        RowKey::Endpoint { method, name } => (name.as_str(), method.as_str()),
    }
}

// ---------------------------------------------------------------------------------------------
// Rules

/// What a `--fail-on` rule watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleMetric {
    /// Median latency (ms).
    P50,
    /// 90th percentile latency (ms).
    P90,
    /// 95th percentile latency (ms).
    P95,
    /// 99th percentile latency (ms).
    P99,
    /// Slowest request (ms).
    Max,
    /// Mean latency (ms).
    Mean,
    /// Failure rate (a fraction; its changes are in percentage points).
    FailRate,
    /// Requests per second.
    Rps,
    /// Requests counted.
    Requests,
}

impl RuleMetric {
    /// The metric's name as rules write it.
    pub fn as_str(self) -> &'static str {
        match self {
            RuleMetric::P50 => "p50",
            RuleMetric::P90 => "p90",
            RuleMetric::P95 => "p95",
            RuleMetric::P99 => "p99",
            RuleMetric::Max => "max",
            RuleMetric::Mean => "mean",
            RuleMetric::FailRate => "fail_rate",
            RuleMetric::Rps => "rps",
            RuleMetric::Requests => "requests",
        }
    }

    fn parse(s: &str) -> Option<RuleMetric> {
        Some(match s.to_ascii_lowercase().as_str() {
            "p50" | "median" | "med" => RuleMetric::P50,
            "p90" => RuleMetric::P90,
            "p95" => RuleMetric::P95,
            "p99" => RuleMetric::P99,
            "max" => RuleMetric::Max,
            "mean" | "avg" => RuleMetric::Mean,
            "fail_rate" | "error_rate" | "failure_rate" => RuleMetric::FailRate,
            "rps" | "throughput" => RuleMetric::Rps,
            "requests" | "count" => RuleMetric::Requests,
            _ => return None,
        })
    }

    fn is_latency(self) -> bool {
        matches!(
            self,
            RuleMetric::P50
                | RuleMetric::P90
                | RuleMetric::P95
                | RuleMetric::P99
                | RuleMetric::Max
                | RuleMetric::Mean
        )
    }

    /// The metric's value in `f`: ms for latencies, a fraction for `fail_rate`.
    pub fn value(self, f: &Figures) -> Option<f64> {
        let l = &f.latency;
        match self {
            RuleMetric::P50 => l.p50,
            RuleMetric::P90 => l.p90,
            RuleMetric::P95 => l.p95,
            RuleMetric::P99 => l.p99,
            RuleMetric::Max => l.max,
            RuleMetric::Mean => l.mean,
            RuleMetric::FailRate => f.fail_rate(),
            RuleMetric::Rps => Some(f.rps),
            RuleMetric::Requests => Some(f.requests as f64),
        }
    }
}

/// How a rule's amount is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleKind {
    /// Percent of A's value (`p95 +10%`).
    Relative,
    /// In the metric's unit: ms for latencies (`p99 +50ms`), per second for `rps`, a count for
    /// `requests`.
    Absolute,
    /// Percentage points of failure rate (`fail_rate +1%`, also `+1pt`).
    Points,
}

/// A parsed `--fail-on` rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// The rule as written (trimmed).
    pub expr: String,
    /// Which requests it looks at (the total, one endpoint, or every method of a name).
    pub scope: Scope,
    /// What it watches.
    pub metric: RuleMetric,
    /// `true` for `+` (fails when the metric grew by more), `false` for `-` (fails when it
    /// dropped by more).
    pub increase: bool,
    /// How `amount` is measured.
    pub kind: RuleKind,
    /// The allowed change, not negative, in the kind's unit (percent, ms, per second, count,
    /// percentage points).
    pub amount: f64,
}

/// A rule that could not be parsed: what is wrong, with an example of a valid one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("rule {expr:?}: {message}; {hint} (for example `p95 +10%`, `p99 +50ms`, `fail_rate +1%`, `rps -20%` or `GET /search: p99 +10%`)")]
pub struct RuleError {
    /// The rule as written.
    pub expr: String,
    /// What is wrong.
    pub message: String,
    /// What would be valid.
    pub hint: String,
}

const RULE_METRICS: &str =
    "expected a metric: p50, p90, p95, p99, max, mean, fail_rate, rps or requests";

impl Rule {
    /// Parses `[SCOPE:] METRIC SIGN AMOUNT[UNIT]`:
    ///
    /// - `SCOPE` as in thresholds: `GET /search` (one endpoint) or `/search` (every method of
    ///   that name, each must pass); without it the rule is on the total;
    /// - `METRIC`: `p50`, `p90`, `p95`, `p99`, `max`, `mean`, `fail_rate`, `rps`, `requests`;
    /// - `SIGN`: `+` fails when B is above A by more than the amount, `-` when B is below A by
    ///   more than the amount;
    /// - `AMOUNT`: `10%` relative to A; for latencies `50ms`, `1s`, `250us` or a bare number of
    ///   milliseconds; for `fail_rate` `1%`, `1pt` or `1pp` are percentage points (a bare number
    ///   is a fraction: `0.01`); for `rps` and `requests` a bare number is absolute.
    pub fn parse(expr: &str) -> Result<Rule, RuleError> {
        let err = |message: String, hint: &str| RuleError {
            expr: expr.to_string(),
            message,
            hint: hint.to_string(),
        };
        let (scope, body) = match expr.rfind(':') {
            Some(i) => (parse_scope(expr[..i].trim()), &expr[i + 1..]),
            None => (Scope::All, expr),
        };
        if scope == Scope::Name(String::new()) {
            return Err(err(
                "empty scope before ':'".into(),
                "write `METHOD NAME: ...`, `NAME: ...` or leave the scope out",
            ));
        }
        let body = body.trim();
        let sign_at = body.find(['+', '-']).ok_or_else(|| {
            err(
                "no + or - before the amount".into(),
                "write + to fail when the metric grew by more than the amount, - when it dropped by more",
            )
        })?;
        let metric_text = body[..sign_at].trim();
        let metric = RuleMetric::parse(metric_text).ok_or_else(|| {
            err(
                if metric_text.is_empty() {
                    "no metric".to_string()
                } else {
                    format!("unknown metric {metric_text:?}")
                },
                RULE_METRICS,
            )
        })?;
        let increase = body[sign_at..].starts_with('+');
        let amount_text = body[sign_at + 1..].trim();
        let number = |t: &str| {
            t.trim()
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite() && *v >= 0.0)
        };
        let bad = |hint: &str| err(format!("bad amount {amount_text:?}"), hint);
        let (kind, amount) = if let Some(n) = amount_text.strip_suffix('%') {
            let v = number(n).ok_or_else(|| bad("expected a number before %"))?;
            if metric == RuleMetric::FailRate {
                if v > 100.0 {
                    return Err(bad("a failure rate changes by at most 100 points"));
                }
                (RuleKind::Points, v)
            } else {
                (RuleKind::Relative, v)
            }
        } else if metric == RuleMetric::FailRate {
            let points = ["pt", "pp", "points", "point"]
                .iter()
                .find_map(|s| amount_text.strip_suffix(s));
            let v = match points {
                Some(n) => number(n),
                None => number(amount_text).map(|f| f * 100.0),
            }
            .filter(|v| *v <= 100.0)
            .ok_or_else(|| {
                bad("expected percentage points such as 1%, 1pt, or a fraction such as 0.01")
            })?;
            (RuleKind::Points, v)
        } else if metric.is_latency() {
            let v = latency_ms(amount_text).ok_or_else(|| {
                bad("expected 10% (relative), or a duration such as 50ms, 1s, 250us or a number of milliseconds")
            })?;
            (RuleKind::Absolute, v)
        } else {
            let v = number(amount_text).ok_or_else(|| {
                bad("expected 20% (relative) or a number (absolute, per second for rps)")
            })?;
            (RuleKind::Absolute, v)
        };
        Ok(Rule {
            expr: expr.trim().to_string(),
            scope,
            metric,
            increase,
            kind,
            amount,
        })
    }

    /// The unit of [`Verdict::change`] for this rule: `%`, `ms`, `pt`, `/s` or `""` (a count).
    pub fn unit(&self) -> &'static str {
        match self.kind {
            RuleKind::Relative => "%",
            RuleKind::Points => "pt",
            RuleKind::Absolute if self.metric.is_latency() => "ms",
            RuleKind::Absolute if self.metric == RuleMetric::Rps => "/s",
            RuleKind::Absolute => "",
        }
    }

    /// Evaluates the rule on a comparison. Every row in scope must pass; the verdict reports the
    /// worst change. A scope that matches no endpoint, an endpoint missing on either side, or a
    /// metric not measured (no latency samples, no requests) fails with a reason.
    pub fn evaluate(&self, c: &Comparison) -> Verdict {
        let rows: Vec<&Row> = match &self.scope {
            Scope::All => c.total().into_iter().collect(),
            Scope::Endpoint { method, name } => c
                .endpoints()
                .iter()
                .filter(|r| matches!(&r.key, RowKey::Endpoint { method: m, name: n } if m == method && n == name))
                .collect(),
            Scope::Name(name) => c
                .endpoints()
                .iter()
                .filter(|r| matches!(&r.key, RowKey::Endpoint { name: n, .. } if n == name))
                .collect(),
        };
        let mut verdict = Verdict {
            expr: self.expr.clone(),
            passed: true,
            change: None,
            unit: self.unit(),
            row: None,
            a: None,
            b: None,
            reason: None,
        };
        if rows.is_empty() {
            verdict.passed = false;
            verdict.reason = Some(match &self.scope {
                Scope::Name(n) => format!("no endpoint named {n} in either summary"),
                s => format!("{} is in neither summary", scope_text(s)),
            });
            return verdict;
        }
        // The worst change seen, signed so that larger is worse.
        let mut worst: Option<f64> = None;
        for row in rows {
            let (a, b) = (row.a_value(self.metric), row.b_value(self.metric));
            let fail = |v: &mut Verdict, reason: String| {
                if v.reason.is_none() {
                    v.row = Some(row.key.to_string());
                    v.a = a;
                    v.b = b;
                    v.change = None;
                    v.reason = Some(reason);
                }
                v.passed = false;
            };
            if row.a.is_none() || row.b.is_none() {
                let side = if row.a.is_none() { "A" } else { "B" };
                fail(&mut verdict, format!("{} is missing in {side}", row.key));
                continue;
            }
            let (Some(av), Some(bv)) = (a, b) else {
                let what = if self.metric.is_latency() {
                    "no latency samples"
                } else {
                    "no requests"
                };
                let side = if a.is_none() { "A" } else { "B" };
                fail(&mut verdict, format!("{}: {what} in {side}", row.key));
                continue;
            };
            let change = Change::between(av, bv);
            let measured = match self.kind {
                RuleKind::Relative => match change.rel_pct {
                    Some(p) => p,
                    // From 0: any growth is infinitely large, a fall is impossible.
                    None => f64::INFINITY.copysign(bv - av),
                },
                RuleKind::Absolute => change.abs,
                RuleKind::Points => change.abs * 100.0,
            };
            let badness = if self.increase { measured } else { -measured };
            let passed = badness <= self.amount;
            if !passed {
                verdict.passed = false;
            }
            let take = verdict.reason.is_none() && worst.is_none_or(|w| badness > w);
            if take {
                worst = Some(badness);
                verdict.change = measured.is_finite().then_some(measured);
                verdict.row = Some(row.key.to_string());
                verdict.a = Some(av);
                verdict.b = Some(bv);
                if !measured.is_finite() {
                    verdict.reason = Some(format!("{}: grew from 0", row.key));
                }
            }
        }
        verdict
    }
}

fn scope_text(s: &Scope) -> String {
    match s {
        Scope::All => "Total".into(),
        Scope::Endpoint { method, name } => format!("{method} {name}"),
        Scope::Name(n) => n.clone(),
    }
}

/// The scope syntax of thresholds: `METHOD NAME` when the first word is upper case, else a name.
fn latency_ms(s: &str) -> Option<f64> {
    let number = |t: &str| {
        t.trim()
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite() && *v >= 0.0)
    };
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

/// The verdict on one rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// The rule as written.
    pub expr: String,
    /// Whether every row in scope stayed within the allowed change.
    pub passed: bool,
    /// The measured change (the worst in scope) in [`Verdict::unit`]; `None` when it could not
    /// be measured (see `reason`).
    pub change: Option<f64>,
    /// `%`, `ms`, `pt`, `/s` or `""` (a count).
    pub unit: &'static str,
    /// The row the change was measured on (`Total` or `METHOD NAME`).
    pub row: Option<String>,
    /// A's value there (ms, fraction, per second or count).
    pub a: Option<f64>,
    /// B's value there.
    pub b: Option<f64>,
    /// Why the change could not be measured, when it could not.
    pub reason: Option<String>,
}

impl Verdict {
    /// `measured +12.3% on Total` or the reason, for terminal and HTML output.
    pub fn describe(&self) -> String {
        let mut s = match self.change {
            Some(c) => format!("measured {}{}", signed(c, 3), self.unit),
            None => String::new(),
        };
        if let (Some(row), true) = (&self.row, self.change.is_some()) {
            let _ = write!(s, " on {row}");
        }
        if let Some(r) = &self.reason {
            if !s.is_empty() {
                s.push_str("; ");
            }
            s.push_str(r);
        }
        s
    }
}

/// Parses every rule; the first malformed one is the error.
pub fn parse_rules(exprs: &[String]) -> Result<Vec<Rule>, RuleError> {
    exprs.iter().map(|e| Rule::parse(e)).collect()
}

// ---------------------------------------------------------------------------------------------
// Formatting

/// A number with `digits` significant digits, without trailing zeros; integers of more digits
/// are printed whole (`1234.5` -> `1235`).
pub fn fmt_sig(v: f64, digits: usize) -> String {
    if !v.is_finite() {
        return if v.is_nan() {
            "n/a".into()
        } else {
            "inf".into()
        };
    }
    if v == 0.0 {
        return "0".into();
    }
    let mag = v.abs().log10().floor() as i64;
    let decimals = (digits as i64 - 1 - mag).max(0) as usize;
    let s = format!("{v:.decimals$}");
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    };
    if s == "-0" {
        "0".into()
    } else {
        s
    }
}

fn signed(v: f64, digits: usize) -> String {
    let s = fmt_sig(v, digits);
    if v > 0.0 && !s.starts_with('-') && s != "0" {
        format!("+{s}")
    } else if s == "0" {
        "+0".into()
    } else {
        s
    }
}

/// A relative change as `+12.3%` (`new` when A was 0).
fn rel_text(c: &Change) -> String {
    match c.rel_pct {
        Some(p) => format!("{}%", signed_fixed(p, 1)),
        None => "new".into(),
    }
}

fn signed_fixed(v: f64, decimals: usize) -> String {
    let s = format!("{v:+.decimals$}");
    // -0.0 reads as +0.0.
    if s.trim_start_matches(['+', '-'])
        .chars()
        .all(|c| c == '0' || c == '.')
    {
        format!("+{}", &s[1..])
    } else {
        s
    }
}

/// Which direction of a metric's change is bad, for marks and colours.
fn worse_when_up(col: Col) -> Option<bool> {
    match col {
        Col::Requests | Col::Share => None,
        Col::Rps => Some(false),
        Col::FailRate | Col::P50 | Col::P95 | Col::P99 => Some(true),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Col {
    Requests,
    Share,
    Rps,
    FailRate,
    P50,
    P95,
    P99,
}

const COLS: [(Col, &str); 7] = [
    (Col::Requests, "Requests"),
    (Col::Share, "Share"),
    (Col::Rps, "RPS"),
    (Col::FailRate, "Fail rate"),
    (Col::P50, "p50 ms"),
    (Col::P95, "p95 ms"),
    (Col::P99, "p99 ms"),
];

impl Col {
    fn metric(self) -> Option<RuleMetric> {
        Some(match self {
            Col::Requests => RuleMetric::Requests,
            Col::Rps => RuleMetric::Rps,
            Col::FailRate => RuleMetric::FailRate,
            Col::P50 => RuleMetric::P50,
            Col::P95 => RuleMetric::P95,
            Col::P99 => RuleMetric::P99,
            Col::Share => return None,
        })
    }
}

/// One side's cell text.
fn side_cell(row: &Row, a_side: bool, col: Col) -> String {
    let f = if a_side { &row.a } else { &row.b };
    let Some(f) = f else {
        return "-".into();
    };
    match col {
        Col::Requests => f.requests.to_string(),
        Col::Share => {
            let s = if a_side { row.a_share } else { row.b_share };
            s.map_or("-".into(), |s| format!("{s:.1}%"))
        }
        Col::Rps => fmt_sig(f.rps, 3),
        Col::FailRate => f
            .fail_rate()
            .map_or("-".into(), |r| format!("{:.2}%", r * 100.0)),
        _ => col
            .metric()
            .and_then(|m| m.value(f))
            .map_or("-".into(), |v| fmt_sig(v, 3)),
    }
}

/// The change cell text and whether the change is bad (`Some(true)`), good or neutral.
fn change_cell(row: &Row, col: Col) -> (String, Option<bool>) {
    let change = match col {
        Col::Share => {
            return match (row.a_share, row.b_share) {
                (Some(a), Some(b)) => (format!("{}pt", signed_fixed(b - a, 1)), None),
                _ => (String::new(), None),
            }
        }
        _ => col.metric().and_then(|m| row.change(m)),
    };
    let Some(c) = change else {
        return (String::new(), None);
    };
    let text = match col {
        Col::FailRate => format!("{}pt", signed_fixed(c.abs, 2)),
        Col::Requests | Col::Rps => rel_text(&c),
        _ => format!("{}ms {}", signed(c.abs, 3), rel_text(&c)),
    };
    let bad = worse_when_up(col).and_then(|up| {
        if c.abs == 0.0 {
            None
        } else {
            Some((c.abs > 0.0) == up)
        }
    });
    (text, bad)
}

/// The comparison as a terminal table: three lines per row (A, B and the change from A to B),
/// then the rule verdicts. Plain ASCII apart from the endpoint names.
pub fn comparison_table(c: &Comparison, verdicts: &[Verdict]) -> String {
    let mut lines: Vec<Vec<String>> = Vec::new();
    let mut header = vec!["Endpoint".to_string(), "".to_string()];
    header.extend(COLS.iter().map(|(_, h)| h.to_string()));
    lines.push(header);
    for row in &c.rows {
        // Control characters would break the alignment (and could drive the terminal).
        let key: String = row
            .key
            .to_string()
            .chars()
            .map(|ch| if ch.is_control() { '?' } else { ch })
            .collect();
        for (i, side) in ["A", "B", "change"].iter().enumerate() {
            let mut l = vec![
                if i == 0 { key.clone() } else { String::new() },
                side.to_string(),
            ];
            for (col, _) in COLS {
                l.push(match i {
                    0 => side_cell(row, true, col),
                    1 => side_cell(row, false, col),
                    _ => {
                        let (t, bad) = change_cell(row, col);
                        match bad {
                            Some(true) => format!("{t} !"),
                            _ => t,
                        }
                    }
                });
            }
            if i == 2 && (row.a.is_none() || row.b.is_none()) {
                l[2] = if row.a.is_none() {
                    "only in B"
                } else {
                    "only in A"
                }
                .into();
                l.truncate(3);
            }
            lines.push(l);
        }
    }
    let ncols = COLS.len() + 2;
    let mut widths = vec![0usize; ncols];
    for l in &lines {
        for (i, cell) in l.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "A: {} ({}{})\nB: {} ({}{})\n",
        c.a.label,
        c.a.kind,
        c.a.started_at
            .as_deref()
            .map_or(String::new(), |t| format!(", {t}")),
        c.b.label,
        c.b.kind,
        c.b.started_at
            .as_deref()
            .map_or(String::new(), |t| format!(", {t}")),
    );
    for (n, l) in lines.iter().enumerate() {
        let mut s = String::new();
        for (i, cell) in l.iter().enumerate() {
            let pad = widths[i].saturating_sub(cell.chars().count());
            if i < 2 {
                s.push_str(cell);
                s.push_str(&" ".repeat(pad));
            } else {
                s.push_str(&" ".repeat(pad));
                s.push_str(cell);
            }
            s.push_str("  ");
        }
        out.push_str(s.trim_end());
        out.push('\n');
        if n == 0 || (n % 3 == 0 && n + 1 < lines.len()) {
            let total: usize = widths.iter().sum::<usize>() + 2 * (ncols - 1);
            out.push_str(&"-".repeat(total));
            out.push('\n');
        }
    }
    out.push_str(
        "\nchange: B - A (ms) and relative to A; fail rate and share in points; ! marks a change for the worse.\n",
    );
    out.push_str(
        "Endpoints in order of change: max(|p99 change %|, |p95 change %|, |fail rate change pt|).\n",
    );
    if !verdicts.is_empty() {
        out.push_str("\nRules:\n");
        for v in verdicts {
            let mark = if v.passed { "pass" } else { "FAIL" };
            let _ = writeln!(out, "  {mark}  {}  ({})", v.expr, v.describe());
        }
    }
    out
}

fn num(v: Option<f64>) -> Value {
    v.filter(|v| v.is_finite())
        .map_or(Value::Null, |v| json!(v))
}

fn figures_json(f: &Option<Figures>, share: Option<f64>) -> Value {
    let Some(f) = f else {
        return Value::Null;
    };
    let l = &f.latency;
    json!({
        "requests": f.requests,
        "failures": f.failures,
        "share_pct": num(share),
        "rps": f.rps,
        "fail_rate_pct": num(f.fail_rate().map(|r| r * 100.0)),
        "latency_ms": {
            "mean": num(l.mean), "p50": num(l.p50), "p90": num(l.p90),
            "p95": num(l.p95), "p99": num(l.p99), "max": num(l.max),
        },
    })
}

fn change_json(row: &Row) -> Value {
    if row.a.is_none() || row.b.is_none() {
        return Value::Null;
    }
    let mut m = Map::new();
    let c = |m: RuleMetric| row.change(m);
    let rel = |c: &Change| num(c.rel_pct);
    for metric in [RuleMetric::Requests, RuleMetric::Rps] {
        if let Some(ch) = c(metric) {
            m.insert(
                metric.as_str().into(),
                json!({"abs": num(Some(ch.abs)), "rel_pct": rel(&ch)}),
            );
        }
    }
    m.insert(
        "share_pt".into(),
        num(row.a_share.zip(row.b_share).map(|(a, b)| b - a)),
    );
    m.insert(
        "fail_rate_pt".into(),
        num(c(RuleMetric::FailRate).map(|ch| ch.abs)),
    );
    let mut lat = Map::new();
    for metric in [
        RuleMetric::Mean,
        RuleMetric::P50,
        RuleMetric::P90,
        RuleMetric::P95,
        RuleMetric::P99,
        RuleMetric::Max,
    ] {
        lat.insert(
            metric.as_str().into(),
            c(metric).map_or(
                Value::Null,
                |ch| json!({"abs_ms": num(Some(ch.abs)), "rel_pct": rel(&ch)}),
            ),
        );
    }
    m.insert("latency_ms".into(), Value::Object(lat));
    Value::Object(m)
}

/// The comparison as a JSON document: both sides' figures, the changes, the score and the rule
/// verdicts. Non-finite numbers (a change from 0, an only-on-one-side score) are `null`.
pub fn comparison_json(c: &Comparison, verdicts: &[Verdict]) -> Value {
    let info = |i: &RunInfo| json!({"label": i.label, "kind": i.kind, "started_at": i.started_at, "duration_s": i.duration_s});
    let rows: Vec<Value> = c
        .rows
        .iter()
        .map(|r| {
            let (method, name) = match &r.key {
                RowKey::Total => (Value::Null, Value::Null),
                RowKey::Endpoint { method, name } => (json!(method), json!(name)),
            };
            json!({
                "total": r.key == RowKey::Total,
                "method": method,
                "name": name,
                "only_in": match (&r.a, &r.b) {
                    (None, _) => json!("b"),
                    (_, None) => json!("a"),
                    _ => Value::Null,
                },
                "score": num(Some(r.score)),
                "a": figures_json(&r.a, r.a_share),
                "b": figures_json(&r.b, r.b_share),
                "change": change_json(r),
            })
        })
        .collect();
    let rules: Vec<Value> = verdicts
        .iter()
        .map(|v| {
            json!({
                "expr": v.expr, "passed": v.passed, "change": num(v.change), "unit": v.unit,
                "row": v.row, "a": num(v.a), "b": num(v.b), "reason": v.reason,
            })
        })
        .collect();
    json!({
        "tool": "mynah",
        "version": env!("CARGO_PKG_VERSION"),
        "kind": "compare",
        "a": info(&c.a),
        "b": info(&c.b),
        "score": "max(|p99 rel_pct|, |p95 rel_pct|, |fail_rate_pt|); null = only in one summary",
        "rows": rows,
        "rules": rules,
        "passed": verdicts.iter().all(|v| v.passed),
    })
}

const CSS: &str = "\
body{font:14px/1.4 system-ui,sans-serif;margin:0;background:#fafafa;color:#222}\
main{max-width:1200px;margin:0 auto;padding:1.5em}\
h1{font-size:1.4em}h2{font-size:1.15em;margin-top:1.6em}\
.wrap{overflow-x:auto}\
table{border-collapse:collapse;background:#fff;font-variant-numeric:tabular-nums}\
th,td{border:1px solid #ddd;padding:.25em .55em;text-align:right;white-space:nowrap}\
th{background:#f0f0f0}td.k{text-align:left;font-family:monospace;white-space:normal;max-width:28em;word-break:break-all}\
td.s{text-align:center;color:#666}tr.ch td{background:#f7f7f7}\
.bad{color:#b00020;font-weight:600}.good{color:#1b7f2a}\
.pass{color:#1b7f2a;font-weight:600}.fail{color:#b00020;font-weight:600}\
.note{color:#555}";

/// The comparison as a self-contained HTML page (inline CSS, nothing fetched): the runs, the
/// rule verdicts and a table with both sides and the change for every row. All text is escaped.
pub fn comparison_html(c: &Comparison, verdicts: &[Verdict]) -> String {
    let mut h = String::new();
    let title = escape_html(&format!("mynah compare: {} vs {}", c.a.label, c.b.label));
    h.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    h.push_str("<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\n");
    h.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    let _ = writeln!(
        h,
        "<title>{title}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<main>\n<h1>{title}</h1>"
    );
    h.push_str("<table>\n");
    for (side, i) in [("A", &c.a), ("B", &c.b)] {
        let _ = writeln!(
            h,
            "<tr><th>{side}</th><td class=\"k\">{}</td><td class=\"k\">{}</td><td class=\"k\">{}</td><td>{}</td></tr>",
            escape_html(&i.label),
            escape_html(&i.kind),
            escape_html(i.started_at.as_deref().unwrap_or("")),
            i.duration_s.map_or(String::new(), |d| format!("{} s", fmt_sig(d, 3))),
        );
    }
    h.push_str("</table>\n");
    if !verdicts.is_empty() {
        let failed = verdicts.iter().filter(|v| !v.passed).count();
        let _ = writeln!(
            h,
            "<h2>Rules: {} of {} failed</h2>\n<table>\n<tr><th>Verdict</th><th>Rule</th><th>Measured</th></tr>",
            failed,
            verdicts.len()
        );
        for v in verdicts {
            let (class, mark) = if v.passed {
                ("pass", "pass")
            } else {
                ("fail", "FAIL")
            };
            let _ = writeln!(
                h,
                "<tr><td class=\"{class}\">{mark}</td><td class=\"k\">{}</td><td class=\"k\">{}</td></tr>",
                escape_html(&v.expr),
                escape_html(&v.describe())
            );
        }
        h.push_str("</table>\n");
    }
    h.push_str("<h2>Endpoints</h2>\n<div class=\"wrap\"><table>\n<tr><th>Endpoint</th><th></th>");
    for (_, head) in COLS {
        let _ = write!(h, "<th>{}</th>", escape_html(head));
    }
    h.push_str("<th>Score</th></tr>\n");
    for row in &c.rows {
        let key = escape_html(&row.key.to_string());
        let score = if row.score.is_finite() {
            fmt_sig(row.score, 3)
        } else {
            "only in one".into()
        };
        for (i, side) in ["A", "B", "change"].iter().enumerate() {
            let _ = write!(h, "<tr{}>", if i == 2 { " class=\"ch\"" } else { "" });
            if i == 0 {
                let _ = write!(h, "<td class=\"k\" rowspan=\"3\">{key}</td>");
            }
            let _ = write!(h, "<td class=\"s\">{side}</td>");
            if i == 2 && (row.a.is_none() || row.b.is_none()) {
                let _ = write!(
                    h,
                    "<td class=\"k\" colspan=\"{}\">{}</td>",
                    COLS.len(),
                    if row.a.is_none() {
                        "only in B"
                    } else {
                        "only in A"
                    }
                );
            } else {
                for (col, _) in COLS {
                    let (text, class) = match i {
                        0 => (side_cell(row, true, col), ""),
                        1 => (side_cell(row, false, col), ""),
                        _ => {
                            let (t, bad) = change_cell(row, col);
                            (
                                t,
                                match bad {
                                    Some(true) => " class=\"bad\"",
                                    Some(false) => " class=\"good\"",
                                    None => "",
                                },
                            )
                        }
                    };
                    let _ = write!(h, "<td{class}>{}</td>", escape_html(&text));
                }
            }
            if i == 0 {
                let _ = write!(h, "<td rowspan=\"3\">{}</td>", escape_html(&score));
            }
            h.push_str("</tr>\n");
        }
    }
    h.push_str("</table></div>\n<p class=\"note\">change: B &minus; A (ms) and relative to A; fail rate and share in percentage points. Endpoints are ordered by score = max(|p99 change %|, |p95 change %|, |fail rate change in points|); an endpoint in only one summary comes first.</p>\n</main>\n</body>\n</html>\n");
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A summary endpoint (or total) in the exact `summary.json` shape.
    fn ep(
        method: &str,
        name: &str,
        requests: u64,
        failures: u64,
        rps: f64,
        lat: Option<[f64; 6]>,
    ) -> Value {
        let latency = match lat {
            Some([mean, p50, p90, p95, p99, max]) => json!({
                "min": 0.5, "mean": mean, "p50": p50, "p90": p90, "p95": p95, "p99": p99,
                "p999": max, "max": max,
            }),
            None => json!({
                "min": null, "mean": null, "p50": null, "p90": null, "p95": null, "p99": null,
                "p999": null, "max": null,
            }),
        };
        json!({"method": method, "name": name, "requests": requests, "failures": failures,
               "rps": rps, "latency_ms": latency})
    }

    fn summary(kind: &str, total: Value, endpoints: Vec<Value>) -> Value {
        let mut t = total;
        let o = t.as_object_mut().unwrap();
        o.remove("method");
        o.remove("name");
        o.insert("dropped".into(), json!(0));
        o.insert("bytes_received".into(), json!(1234));
        json!({
            "tool": "mynah", "version": "0.1.0", "kind": kind,
            "started_at": "2026-11-26T09:00:00Z", "duration_s": 10.0, "users_max": 4,
            "total": t, "endpoints": endpoints, "failures": [], "thresholds": [],
        })
    }

    fn parse(v: &Value, label: &str) -> Summary {
        parse_summary(v, label).unwrap_or_else(|e| panic!("{e}"))
    }

    /// A: /search 600 req p95 25 p99 40; /login 300 req 10 failures; /old 100 req.
    fn a() -> Summary {
        parse(
            &summary(
                "run",
                ep(
                    "",
                    "",
                    1000,
                    10,
                    100.0,
                    Some([12.0, 10.0, 20.0, 25.0, 40.0, 60.0]),
                ),
                vec![
                    ep(
                        "GET",
                        "/search",
                        600,
                        0,
                        60.0,
                        Some([12.0, 10.0, 20.0, 25.0, 40.0, 60.0]),
                    ),
                    ep(
                        "POST",
                        "/login",
                        300,
                        10,
                        30.0,
                        Some([5.0, 5.0, 8.0, 9.0, 10.0, 12.0]),
                    ),
                    ep(
                        "GET",
                        "/old",
                        100,
                        0,
                        10.0,
                        Some([1.0, 1.0, 1.0, 1.0, 1.0, 1.0]),
                    ),
                    ep("GET", "/quiet", 0, 0, 0.0, None),
                ],
            ),
            "a.json",
        )
    }

    /// B: /search p95 +20%, p99 +52.5%; /login fail rate 3.33% -> 11%; /old gone; /new appears.
    fn b() -> Summary {
        parse(
            &summary(
                "replay",
                ep(
                    "",
                    "",
                    1100,
                    33,
                    80.0,
                    Some([14.0, 11.0, 24.0, 30.0, 61.0, 1234.5]),
                ),
                vec![
                    ep(
                        "POST",
                        "/login",
                        300,
                        33,
                        30.0,
                        Some([5.0, 5.0, 8.0, 9.0, 10.0, 12.0]),
                    ),
                    ep(
                        "GET",
                        "/search",
                        700,
                        0,
                        70.0,
                        Some([14.0, 11.0, 24.0, 30.0, 61.0, 1234.5]),
                    ),
                    ep(
                        "GET",
                        "/new",
                        100,
                        0,
                        10.0,
                        Some([0.2, 0.123, 0.3, 0.3, 0.4, 0.5]),
                    ),
                    ep("GET", "/quiet", 0, 0, 0.0, None),
                ],
            ),
            "b.json",
        )
    }

    fn cmp() -> Comparison {
        compare(&a(), &b())
    }

    fn keys(c: &Comparison) -> Vec<String> {
        c.rows.iter().map(|r| r.key.to_string()).collect()
    }

    fn rule(s: &str) -> Rule {
        Rule::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn verdict(s: &str) -> Verdict {
        rule(s).evaluate(&cmp())
    }

    fn close(a: Option<f64>, b: f64) -> bool {
        a.is_some_and(|a| (a - b).abs() < 1e-6)
    }

    #[test]
    fn parses_both_kinds_and_rejects_what_is_not_a_summary() {
        let s = a();
        assert_eq!((s.kind.as_str(), s.endpoints.len()), ("run", 4));
        assert_eq!(s.total.requests, 1000);
        assert_eq!(s.total.latency.p95, Some(25.0));
        assert_eq!(
            s.endpoints[3].2.latency,
            Latency::default(),
            "nulls are None"
        );
        assert_eq!(b().kind, "replay");

        let good = summary("run", ep("", "", 1, 0, 1.0, None), vec![]);
        let broken = |f: &dyn Fn(&mut Value)| {
            let mut v = good.clone();
            f(&mut v);
            parse_summary(&v, "x.json").unwrap_err().to_string()
        };
        assert!(broken(&|v| v["tool"] = json!("k6")).contains("tool"));
        assert!(broken(&|v| {
            v.as_object_mut().unwrap().remove("total");
        })
        .contains("\"total\""));
        assert!(broken(&|v| v["total"]["requests"] = json!("many")).contains("total.requests"));
        assert!(broken(&|v| v["total"]["rps"] = Value::Null).contains("total.rps"));
        assert!(broken(&|v| v["endpoints"] = json!({})).contains("endpoints"));
        assert!(
            broken(&|v| v["endpoints"] = json!([{"method": "GET"}])).contains("endpoints[0].name")
        );
        assert!(
            broken(&|v| v["total"]["latency_ms"]["p95"] = json!("slow")).contains("latency_ms.p95")
        );
        let e = broken(&|v| v["total"]["latency_ms"] = json!(3));
        assert!(e.starts_with("x.json: "), "{e}");
        assert!(parse_summary(&json!([1, 2]), "l").is_err());
        assert!(parse_summary(&Value::Null, "l").is_err());
        // Absent latency (older or hand-made summaries) is the same as null.
        let mut v = good.clone();
        v["total"].as_object_mut().unwrap().remove("latency_ms");
        assert_eq!(parse(&v, "x").total.latency, Latency::default());
    }

    #[test]
    fn matches_by_method_and_name_and_keeps_one_sided_endpoints() {
        let c = cmp();
        assert_eq!(c.rows.len(), 6, "{:?}", keys(&c));
        assert_eq!(c.total().unwrap().key, RowKey::Total);
        let row = |k: &str| c.rows.iter().find(|r| r.key.to_string() == k).unwrap();
        let search = row("GET /search");
        assert_eq!(search.a.as_ref().unwrap().requests, 600);
        assert_eq!(search.b.as_ref().unwrap().requests, 700);
        assert!(close(search.a_share, 60.0) && close(search.b_share, 700.0 / 1100.0 * 100.0));
        assert!(row("GET /old").b.is_none() && row("GET /old").b_share.is_none());
        assert!(row("GET /new").a.is_none());
        let ch = search.change(RuleMetric::P95).unwrap();
        assert_eq!(ch.abs, 5.0);
        assert!(close(ch.rel_pct, 20.0));
        let login = row("POST /login");
        let f = login.change(RuleMetric::FailRate).unwrap();
        assert!((f.abs - (11.0 - 10.0 / 3.0)).abs() < 1e-9, "points: {f:?}");
        // Null latencies: no change, and no panic anywhere.
        let quiet = row("GET /quiet");
        assert_eq!(quiet.change(RuleMetric::P99), None);
        assert_eq!(quiet.change(RuleMetric::FailRate), None);
        assert_eq!(quiet.score, 0.0);
        // The same method on another name, or another method on the same name, is another row.
        let x = parse(
            &summary(
                "run",
                ep("", "", 2, 0, 1.0, None),
                vec![
                    ep("GET", "/a", 1, 0, 1.0, None),
                    ep("POST", "/a", 1, 0, 1.0, None),
                ],
            ),
            "x",
        );
        let y = parse(
            &summary(
                "run",
                ep("", "", 1, 0, 1.0, None),
                vec![ep("GET", "/a", 1, 0, 1.0, None)],
            ),
            "y",
        );
        let c = compare(&x, &y);
        assert_eq!(keys(&c), ["Total", "POST /a", "GET /a"]);
    }

    #[test]
    fn orders_by_the_largest_change_total_first() {
        let c = cmp();
        assert_eq!(
            keys(&c),
            [
                "Total",
                "GET /new",
                "GET /old",
                "GET /search",
                "POST /login",
                "GET /quiet"
            ],
            "one-sided first (busier in B first), then p99 +52.5% before fail rate +7.7 points"
        );
        let search = &c.rows[3];
        assert!((search.score - 52.5).abs() < 1e-9, "{}", search.score);
        let login = &c.rows[4];
        assert!((login.score - (11.0 - 10.0 / 3.0)).abs() < 1e-9);
        assert!(c.rows[1].score.is_infinite());

        // A failure-rate jump of 60 points outranks a p95 change of 50%.
        let mk = |fail: u64, p95: f64| {
            parse(
                &summary(
                    "run",
                    ep(
                        "",
                        "",
                        200,
                        fail,
                        1.0,
                        Some([1.0, 1.0, 1.0, 10.0, 10.0, 10.0]),
                    ),
                    vec![
                        ep(
                            "GET",
                            "/f",
                            100,
                            fail,
                            1.0,
                            Some([1.0, 1.0, 1.0, 10.0, 10.0, 10.0]),
                        ),
                        ep(
                            "GET",
                            "/l",
                            100,
                            0,
                            1.0,
                            Some([1.0, 1.0, 1.0, p95, 10.0, 10.0]),
                        ),
                    ],
                ),
                "s",
            )
        };
        let c = compare(&mk(0, 10.0), &mk(60, 15.0));
        assert_eq!(keys(&c), ["Total", "GET /f", "GET /l"]);
        let c = compare(&mk(0, 10.0), &mk(40, 15.0));
        assert_eq!(keys(&c), ["Total", "GET /l", "GET /f"]);
        // Faster counts as much as slower: |change|.
        let c = compare(&mk(0, 10.0), &mk(0, 2.0));
        assert_eq!(keys(&c)[1], "GET /l");
    }

    #[test]
    fn parses_every_metric_and_kind() {
        for (m, metric) in [
            ("p50", RuleMetric::P50),
            ("median", RuleMetric::P50),
            ("p90", RuleMetric::P90),
            ("p95", RuleMetric::P95),
            ("P99", RuleMetric::P99),
            ("max", RuleMetric::Max),
            ("mean", RuleMetric::Mean),
            ("avg", RuleMetric::Mean),
            ("rps", RuleMetric::Rps),
            ("requests", RuleMetric::Requests),
        ] {
            let r = rule(&format!("{m} +10%"));
            assert_eq!(
                (r.metric, r.kind, r.amount, r.increase),
                (metric, RuleKind::Relative, 10.0, true)
            );
        }
        let r = rule("  p99 +50ms ");
        assert_eq!(
            (r.kind, r.amount, r.expr.as_str()),
            (RuleKind::Absolute, 50.0, "p99 +50ms")
        );
        assert_eq!(rule("p99 +1.5s").amount, 1500.0);
        assert_eq!(rule("max +250us").amount, 0.25);
        assert_eq!(rule("p95+20").amount, 20.0, "a bare number is ms");
        let r = rule("fail_rate +1%");
        assert_eq!(
            (r.metric, r.kind, r.amount),
            (RuleMetric::FailRate, RuleKind::Points, 1.0)
        );
        assert_eq!(rule("error_rate +2pt").amount, 2.0);
        assert_eq!(rule("fail_rate +0.5pp").amount, 0.5);
        assert_eq!(rule("fail_rate +0.01").amount, 1.0, "a fraction");
        let r = rule("rps -20%");
        assert_eq!(
            (r.increase, r.kind, r.amount),
            (false, RuleKind::Relative, 20.0)
        );
        let r = rule("rps -15");
        assert_eq!(
            (r.kind, r.amount, r.unit()),
            (RuleKind::Absolute, 15.0, "/s")
        );
        assert_eq!(rule("requests -100").unit(), "");
        assert_eq!(rule("p95 +5ms").unit(), "ms");
        assert_eq!(rule("p95 +5%").unit(), "%");
        assert_eq!(rule("fail_rate +5%").unit(), "pt");
        assert_eq!(rule("p95 +10%").scope, Scope::All);
        assert_eq!(
            rule("GET /search: p99 +10%").scope,
            Scope::Endpoint {
                method: "GET".into(),
                name: "/search".into()
            }
        );
        assert_eq!(
            rule("/search: p99 +10%").scope,
            Scope::Name("/search".into())
        );
        assert_eq!(
            rule("GET /a:b: p50 +5").scope,
            Scope::Endpoint {
                method: "GET".into(),
                name: "/a:b".into()
            }
        );
        assert_eq!(
            rule("GET /a-b: p50 -5").scope,
            Scope::Endpoint {
                method: "GET".into(),
                name: "/a-b".into()
            }
        );
    }

    #[test]
    fn malformed_rules_say_what_is_wrong_with_an_example() {
        for (expr, says) in [
            ("p95 10%", "no + or -"),
            ("latency +10%", "unknown metric \"latency\""),
            ("+10%", "no metric"),
            ("p95 +", "bad amount"),
            ("p95 +fast", "bad amount"),
            ("p95 +-10%", "bad amount"),
            ("p95 +x%", "bad amount"),
            ("fail_rate +150%", "bad amount"),
            ("fail_rate +2", "bad amount"),
            ("rps -lots", "bad amount"),
            (": p95 +10%", "empty scope"),
            ("", "no + or -"),
            ("p95 +inf%", "bad amount"),
            ("p95 +NaN", "bad amount"),
        ] {
            let e = Rule::parse(expr).expect_err(expr).to_string();
            assert!(e.contains(says), "{expr}: {e}");
            assert!(e.contains("for example `p95 +10%`"), "{expr}: {e}");
        }
        assert!(parse_rules(&["p95 +1%".into(), "oops".into()]).is_err());
        assert_eq!(
            parse_rules(&["p95 +1%".into(), "rps -1%".into()])
                .unwrap()
                .len(),
            2
        );
    }

    #[test]
    fn relative_absolute_points_and_negative_rules() {
        // Total p95 25 -> 30 (+20%), p99 40 -> 61 (+21 ms, +52.5%).
        let v = verdict("p95 +10%");
        assert!(!v.passed);
        assert!(
            close(v.change, 20.0) && v.unit == "%" && v.row.as_deref() == Some("Total"),
            "{v:?}"
        );
        assert!(verdict("p95 +20%").passed, "exactly at the limit passes");
        assert!(verdict("p95 +25%").passed);
        assert!(!verdict("p99 +20ms").passed);
        let v = verdict("p99 +21ms");
        assert!(v.passed && close(v.change, 21.0) && v.unit == "ms", "{v:?}");
        assert!(!verdict("p50 +5%").passed, "p50 10 -> 11");
        assert!(verdict("p50 +10%").passed);
        assert!(
            !verdict("p90 +19%").passed && verdict("p90 +20%").passed,
            "p90 20 -> 24"
        );
        assert!(
            !verdict("mean +1ms").passed && verdict("mean +2ms").passed,
            "mean 12 -> 14"
        );
        assert!(
            !verdict("max +1s").passed && verdict("max +1.2s").passed,
            "max 60 -> 1234.5"
        );
        // Failure rate 1% -> 3%: +2 points.
        let v = verdict("fail_rate +1%");
        assert!(!v.passed && close(v.change, 2.0) && v.unit == "pt", "{v:?}");
        assert!(verdict("fail_rate +2%").passed);
        assert!(verdict("fail_rate +0.03").passed);
        // rps 100 -> 80: -20%.
        let v = verdict("rps -10%");
        assert!(!v.passed && close(v.change, -20.0), "{v:?}");
        assert!(verdict("rps -20%").passed);
        assert!(!verdict("rps -19.9%").passed);
        assert!(verdict("rps +0%").passed, "a drop never fails a + rule");
        assert!(
            !verdict("rps -19").passed && verdict("rps -20").passed,
            "absolute per second"
        );
        // requests 1000 -> 1100: +10%, +100.
        assert!(!verdict("requests +5%").passed && verdict("requests +10%").passed);
        assert!(!verdict("requests +99").passed && verdict("requests +100").passed);
        assert!(
            verdict("requests -0%").passed,
            "growth never fails a - rule"
        );
        // A latency that fell fails a - rule past its amount.
        let c = compare(&b(), &a());
        let v = rule("p99 -30%").evaluate(&c);
        assert!(
            !v.passed && close(v.change, (40.0 - 61.0) / 61.0 * 100.0),
            "{v:?}"
        );
        assert!(rule("p99 +0%").evaluate(&c).passed);
    }

    #[test]
    fn endpoint_scoped_rules() {
        let v = verdict("GET /search: p99 +50%");
        assert!(!v.passed && close(v.change, 52.5), "{v:?}");
        assert_eq!(v.row.as_deref(), Some("GET /search"));
        assert_eq!((v.a, v.b), (Some(40.0), Some(61.0)));
        assert!(verdict("GET /search: p99 +21ms").passed);
        assert!(verdict("POST /login: p99 +0%").passed);
        let v = verdict("POST /login: fail_rate +5%");
        assert!(!v.passed && close(v.change, 11.0 - 10.0 / 3.0), "{v:?}");
        // A name scope takes every method: each must pass, the worst is reported.
        let two = |p99_get: f64, p99_post: f64| {
            parse(
                &summary(
                    "run",
                    ep("", "", 2, 0, 1.0, Some([1.0, 1.0, 1.0, 1.0, 1.0, 1.0])),
                    vec![
                        ep(
                            "GET",
                            "/x",
                            1,
                            0,
                            1.0,
                            Some([1.0, 1.0, 1.0, 1.0, p99_get, 9.0]),
                        ),
                        ep(
                            "POST",
                            "/x",
                            1,
                            0,
                            1.0,
                            Some([1.0, 1.0, 1.0, 1.0, p99_post, 9.0]),
                        ),
                    ],
                ),
                "s",
            )
        };
        let c = compare(&two(10.0, 10.0), &two(11.0, 15.0));
        let v = rule("/x: p99 +20%").evaluate(&c);
        assert!(
            !v.passed && close(v.change, 50.0) && v.row.as_deref() == Some("POST /x"),
            "{v:?}"
        );
        let v = rule("/x: p99 +60%").evaluate(&c);
        assert!(v.passed && close(v.change, 50.0), "{v:?}");
        let v = rule("/x: p99 -5%").evaluate(&c);
        assert!(
            v.passed && close(v.change, 10.0),
            "the least growth is the worst for a - rule: {v:?}"
        );
    }

    #[test]
    fn missing_endpoints_and_null_latencies_fail_with_a_reason() {
        let v = verdict("GET /old: p95 +10%");
        assert!(!v.passed && v.change.is_none(), "{v:?}");
        assert_eq!(v.reason.as_deref(), Some("GET /old is missing in B"));
        let v = verdict("GET /new: rps -50%");
        assert_eq!(v.reason.as_deref(), Some("GET /new is missing in A"));
        assert!(!v.passed);
        let v = verdict("GET /nowhere: p95 +10%");
        assert!(
            !v.passed && v.reason.as_deref() == Some("GET /nowhere is in neither summary"),
            "{v:?}"
        );
        let v = verdict("/nowhere: p95 +10%");
        assert!(!v.passed && v.reason.unwrap().contains("no endpoint named /nowhere"));
        let v = verdict("GET /quiet: p95 +10%");
        assert!(
            !v.passed && v.reason.as_deref() == Some("GET /quiet: no latency samples in A"),
            "{v:?}"
        );
        let v = verdict("GET /quiet: fail_rate +1%");
        assert!(!v.passed && v.reason.unwrap().contains("no requests"));
        // Counts are still measured without requests.
        assert!(verdict("GET /quiet: requests +0").passed);
        assert!(verdict("GET /quiet: rps -0%").passed);
        // A name scope with one method missing fails even if the other passes.
        let c = cmp();
        let v = rule("/new: requests +1000%").evaluate(&c);
        assert!(!v.passed && v.reason.as_deref().unwrap().contains("missing in A"));
        assert!(v.describe().contains("missing in A"));
    }

    #[test]
    fn growth_from_zero() {
        let mk = |fail: u64, p95: f64| {
            parse(
                &summary(
                    "run",
                    ep("", "", 100, fail, 1.0, Some([1.0, 1.0, 1.0, p95, 1.0, 1.0])),
                    vec![],
                ),
                "s",
            )
        };
        let c = compare(&mk(0, 0.0), &mk(5, 2.0));
        let v = rule("p95 +1000%").evaluate(&c);
        assert!(!v.passed && v.change.is_none(), "{v:?}");
        assert!(v.reason.unwrap().contains("grew from 0"));
        assert!(rule("p95 -10%").evaluate(&c).passed);
        assert!(rule("p95 +2ms").evaluate(&c).passed);
        assert!(!rule("fail_rate +4%").evaluate(&c).passed);
        assert!(rule("fail_rate +5%").evaluate(&c).passed);
        assert_eq!(
            c.total().unwrap().change(RuleMetric::P95).unwrap().rel_pct,
            None
        );
        assert!(c.total().unwrap().score.is_infinite());
        // Unchanged zero is no change.
        let c = compare(&mk(0, 0.0), &mk(0, 0.0));
        assert!(rule("p95 +0%").evaluate(&c).passed);
        assert_eq!(c.total().unwrap().score, 0.0);
        // Nothing in the JSON is infinite.
        let j = comparison_json(&compare(&mk(0, 0.0), &mk(5, 2.0)), &[]);
        assert!(serde_json::to_string(&j).is_ok());
        assert_eq!(j["rows"][0]["score"], Value::Null);
    }

    #[test]
    fn odd_input_does_not_panic() {
        // A hand-built comparison without rows: rules fail with a reason, reports render.
        let mut c = cmp();
        c.rows.clear();
        assert!(c.total().is_none() && c.endpoints().is_empty());
        let v = rule("p95 +10%").evaluate(&c);
        assert!(!v.passed && v.reason.is_some(), "{v:?}");
        let _ = (
            comparison_table(&c, std::slice::from_ref(&v)),
            comparison_html(&c, std::slice::from_ref(&v)),
        );
        let _ = comparison_json(&c, &[v]);
        // Control characters in a name stay on one table line; duplicates are one row.
        let s = parse(
            &summary(
                "run",
                ep("", "", 2, 0, 1.0, None),
                vec![
                    ep("GET", "/a\n\x1b[31m", 1, 0, 1.0, None),
                    ep("GET", "/a\n\x1b[31m", 1, 0, 1.0, None),
                ],
            ),
            "s",
        );
        let c = compare(&s, &s);
        assert_eq!(c.rows.len(), 2);
        let t = comparison_table(&c, &[]);
        assert!(t.contains("GET /a??[31m") && !t.contains('\x1b'), "{t}");
        // Huge and tiny numbers stay finite in the JSON.
        let mk = |p95: f64| {
            parse(
                &summary(
                    "run",
                    ep("", "", 1, 0, 1e300, Some([1.0, 1.0, 1.0, p95, 1.0, 1.0])),
                    vec![],
                ),
                "s",
            )
        };
        let j = comparison_json(&compare(&mk(1e-300), &mk(1e300)), &[]);
        assert!(serde_json::to_string(&j).is_ok());
    }

    #[test]
    fn number_formats() {
        assert_eq!(fmt_sig(0.12345, 3), "0.123");
        assert_eq!(fmt_sig(1.2345, 3), "1.23");
        assert_eq!(fmt_sig(12.345, 3), "12.3");
        assert_eq!(fmt_sig(123.45, 3), "123");
        assert_eq!(fmt_sig(1234.6, 3), "1235");
        assert_eq!(fmt_sig(10.0, 3), "10");
        assert_eq!(fmt_sig(-0.5, 3), "-0.5");
        assert_eq!(fmt_sig(0.0, 3), "0");
        assert_eq!(fmt_sig(f64::NAN, 3), "n/a");
        assert_eq!(signed(21.0, 3), "+21");
        assert_eq!(signed(-0.25, 3), "-0.25");
        assert_eq!(signed(0.0, 3), "+0");
        assert_eq!(signed_fixed(-0.0001, 1), "+0.0");
        assert_eq!(signed_fixed(12.34, 1), "+12.3");
        assert_eq!(signed_fixed(-12.34, 1), "-12.3");
    }

    #[test]
    fn terminal_table_is_aligned_and_shows_changes_and_verdicts() {
        let c = cmp();
        let rules: Vec<Verdict> = ["p95 +10%", "rps -20%", "GET /old: p95 +1%"]
            .iter()
            .map(|r| rule(r).evaluate(&c))
            .collect();
        let t = comparison_table(&c, &rules);
        assert!(t.contains("A: a.json (run, 2026-11-26T09:00:00Z)"), "{t}");
        assert!(t.contains("B: b.json (replay"), "{t}");
        assert!(t.contains("+5ms +20.0% !"), "p95 change of the total: {t}");
        assert!(t.contains("+21ms +52.5% !"), "{t}");
        assert!(t.contains("+2.00pt !"), "{t}");
        assert!(t.contains("-20.0%"), "rps change: {t}");
        assert!(t.contains("only in A") && t.contains("only in B"), "{t}");
        assert!(t.contains("0.123"), "{t}");
        assert!(
            t.contains("  FAIL  p95 +10%  (measured +20% on Total)"),
            "{t}"
        );
        assert!(
            t.contains("  pass  rps -20%  (measured -20% on Total)"),
            "{t}"
        );
        assert!(
            t.contains("  FAIL  GET /old: p95 +1%  (GET /old is missing in B)"),
            "{t}"
        );
        // Every table line with cells has the columns right-aligned to the same end.
        let header = t.lines().find(|l| l.starts_with("Endpoint")).unwrap();
        let p99_end = header.chars().count();
        for l in t
            .lines()
            .filter(|l| l.contains("  A  ") || l.contains("  B  "))
        {
            assert_eq!(l.chars().count(), p99_end, "{l:?}\n{t}");
        }
        assert!(t.is_ascii(), "plain ASCII: {t}");
        // Rows appear in the comparison's order.
        let at = |k: &str| {
            t.find(&format!("\n{k} "))
                .unwrap_or_else(|| panic!("{k}: {t}"))
        };
        assert!(at("Total") < at("GET /old") && at("GET /search") < at("POST /login"));
        // No rules: no Rules section.
        assert!(!comparison_table(&c, &[]).contains("Rules:"));
    }

    #[test]
    fn json_has_both_sides_the_changes_and_the_verdicts() {
        let c = cmp();
        let verdicts = vec![
            rule("p95 +10%").evaluate(&c),
            rule("GET /new: p99 +1%").evaluate(&c),
        ];
        let j = comparison_json(&c, &verdicts);
        assert_eq!(
            (j["tool"].as_str(), j["kind"].as_str()),
            (Some("mynah"), Some("compare"))
        );
        assert_eq!(j["a"]["label"], "a.json");
        assert_eq!(j["b"]["kind"], "replay");
        assert_eq!(j["passed"], false);
        let rows = j["rows"].as_array().unwrap();
        assert_eq!(rows.len(), 6);
        let t = &rows[0];
        assert_eq!(t["total"], true);
        assert_eq!(t["a"]["requests"], 1000);
        assert_eq!(t["b"]["latency_ms"]["p95"], 30.0);
        assert_eq!(t["a"]["share_pct"], 100.0);
        assert_eq!(t["b"]["fail_rate_pct"], 3.0);
        assert_eq!(t["change"]["latency_ms"]["p95"]["abs_ms"], 5.0);
        assert_eq!(t["change"]["latency_ms"]["p95"]["rel_pct"], 20.0);
        assert_eq!(t["change"]["rps"]["rel_pct"], -20.0);
        assert_eq!(t["change"]["requests"]["abs"], 100.0);
        assert!((t["change"]["fail_rate_pt"].as_f64().unwrap() - 2.0).abs() < 1e-9);
        assert_eq!(t["score"], 52.5);
        let old = rows.iter().find(|r| r["name"] == "/old").unwrap();
        assert_eq!(
            (old["method"].as_str(), old["name"].as_str()),
            (Some("GET"), Some("/old"))
        );
        assert_eq!(old["only_in"], "a");
        assert_eq!(old["b"], Value::Null);
        assert_eq!(old["change"], Value::Null);
        assert_eq!(old["score"], Value::Null);
        let quiet = rows.iter().find(|r| r["name"] == "/quiet").unwrap();
        assert_eq!(quiet["a"]["latency_ms"]["p99"], Value::Null);
        assert_eq!(quiet["a"]["fail_rate_pct"], Value::Null);
        assert_eq!(quiet["change"]["latency_ms"]["p99"], Value::Null);
        let r = &j["rules"];
        assert_eq!(r[0]["expr"], "p95 +10%");
        assert_eq!(
            (r[0]["passed"].as_bool(), r[0]["change"].as_f64()),
            (Some(false), Some(20.0))
        );
        assert_eq!(r[0]["unit"], "%");
        assert_eq!(r[0]["a"], 25.0);
        assert_eq!(r[1]["change"], Value::Null);
        assert_eq!(r[1]["reason"], "GET /new is missing in A");
        assert!(serde_json::to_string(&j).is_ok());
    }

    #[test]
    fn html_is_self_contained_and_escapes_every_name() {
        let hostile = "/x<script>alert('1')</script>&\"";
        let mk = |p99: f64| {
            parse(
                &summary(
                    "run",
                    ep("", "", 10, 0, 1.0, Some([1.0, 1.0, 1.0, 1.0, p99, 9.0])),
                    vec![ep(
                        "GET",
                        hostile,
                        10,
                        0,
                        1.0,
                        Some([1.0, 1.0, 1.0, 1.0, p99, 9.0]),
                    )],
                ),
                "<b>a.json</b>",
            )
        };
        let c = compare(&mk(10.0), &mk(20.0));
        let rules = vec![
            rule(&format!("GET {hostile}: p99 +10%")).evaluate(&c),
            rule("p99 +200%").evaluate(&c),
        ];
        let h = comparison_html(&c, &rules);
        assert!(h.starts_with("<!DOCTYPE html>"));
        assert!(!h.contains("<script"), "{h}");
        assert!(!h.contains("<b>"), "{h}");
        assert!(
            h.contains("/x&lt;script&gt;alert(&#39;1&#39;)&lt;/script&gt;&amp;&quot;"),
            "{h}"
        );
        assert!(h.contains("&lt;b&gt;a.json&lt;/b&gt;"));
        assert!(h.contains("<style>") && !h.contains("<link") && !h.contains("src=\"http"));
        assert!(h.contains("default-src 'none'"));
        assert!(h.contains("Rules: 1 of 2 failed"), "{h}");
        assert!(h.contains(">FAIL<") && h.contains(">pass<"));
        assert!(h.contains("measured +100% on GET /x&lt;script&gt;"), "{h}");
        assert!(h.contains("class=\"bad\">+10ms +100.0%"), "{h}");
        assert_eq!(
            h.matches("rowspan=\"3\"").count(),
            4,
            "name and score per row"
        );
        // One-sided rows and no rules.
        let h = comparison_html(&cmp(), &[]);
        assert!(h.contains("only in A") && h.contains("only in B") && !h.contains("Rules:"));
        assert!(
            h.contains("class=\"bad\">-20.0%"),
            "an rps drop is for the worse: {h}"
        );
    }
}
