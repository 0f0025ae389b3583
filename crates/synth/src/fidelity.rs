//! Fidelity: how close two traffic profiles are (a recording and the traffic a generated
//! scenario produced, or two recordings).
//!
//! A [`Profile`] summarises traffic in bounded memory: counts of endpoints (the endpoint of an
//! exchange is its template under one shared [`Templates`], so both sides are compared on the
//! same endpoint set), methods and statuses, and reservoir samples ([`SAMPLE`] values each) of
//! think times, request sizes, response sizes and session lengths. Sessions are grouped like the
//! model does by default (session cookie, else Authorization, else client address and
//! User-Agent) with a 30-minute idle gap, at most [`MAX_OPEN`] open at once.
//!
//! [`compare`] gives the Jensen–Shannon divergence (base 2, 0 = same mix, 1 = disjoint) of the
//! categorical mixes and the two-sample Kolmogorov–Smirnov D statistic (0 = same distribution,
//! 1 = no overlap) of the numeric ones.

use std::collections::HashMap;
use std::fmt::Write as _;

use mynah_traffic::{Exchange, Nanos};
use serde_json::json;

use crate::model::is_session_cookie;
use crate::sample::{jsd, ks, Reservoir};
use crate::templates::Templates;

/// Size of each reservoir sample.
pub const SAMPLE: usize = 10_000;
/// Open sessions tracked at once.
pub const MAX_OPEN: usize = 10_000;
/// Distinct endpoints, methods or statuses counted (beyond, counted as `(more)`).
pub const MAX_KEYS: usize = 4_096;
const IDLE: Nanos = 30 * 60 * 1_000_000_000;

#[derive(Debug, Clone, Copy)]
struct Open {
    last_ts: Nanos,
    last_end: Nanos,
    count: u64,
}

/// A bounded summary of some traffic; see the module documentation.
#[derive(Debug, Clone)]
pub struct Profile {
    endpoints: HashMap<String, f64>,
    methods: HashMap<String, f64>,
    statuses: HashMap<String, f64>,
    think: Reservoir<f64>,
    request_sizes: Reservoir<f64>,
    response_sizes: Reservoir<f64>,
    session_lengths: Reservoir<f64>,
    open: HashMap<String, Open>,
    requests: u64,
}

impl Default for Profile {
    fn default() -> Self {
        Self::new()
    }
}

fn bump(map: &mut HashMap<String, f64>, key: String) {
    if map.len() < MAX_KEYS || map.contains_key(&key) {
        *map.entry(key).or_default() += 1.0;
    } else {
        *map.entry("(more)".into()).or_default() += 1.0;
    }
}

impl Profile {
    /// An empty profile.
    pub fn new() -> Self {
        Profile {
            endpoints: HashMap::new(),
            methods: HashMap::new(),
            statuses: HashMap::new(),
            think: Reservoir::new(SAMPLE),
            request_sizes: Reservoir::new(SAMPLE),
            response_sizes: Reservoir::new(SAMPLE),
            session_lengths: Reservoir::new(SAMPLE),
            open: HashMap::new(),
            requests: 0,
        }
    }

    /// Requests added.
    pub fn requests(&self) -> u64 {
        self.requests
    }

    /// Adds one exchange; its endpoint is its template in `templates`.
    pub fn add(&mut self, ex: &Exchange, templates: &Templates) {
        self.requests += 1;
        let m = templates.classify(&ex.request.method, ex.request.path_and_query());
        let label = if m.endpoint == templates.catch_all() {
            format!("{} (other)", ex.request.method.to_ascii_uppercase())
        } else {
            templates.endpoint(m.endpoint).label()
        };
        bump(&mut self.endpoints, label);
        bump(&mut self.methods, ex.request.method.to_ascii_uppercase());
        let status = match &ex.response {
            Some(r) => r.status.to_string(),
            None => "none".to_string(),
        };
        bump(&mut self.statuses, status);
        let req_size = ex
            .request
            .decoded_body()
            .map_or(ex.request.body.len(), |b| b.len());
        self.request_sizes.add(req_size as f64);
        if let Some(r) = &ex.response {
            let size = r.decoded_body().map_or(r.body.len(), |b| b.len());
            self.response_sizes.add(size as f64);
        }
        // Sessions.
        let key = session_key(ex);
        let ts = ex.timing.request_start;
        let end = ex.timing.ended();
        match self.open.get_mut(&key) {
            Some(o) if ts.saturating_sub(o.last_ts) <= IDLE => {
                self.think
                    .add(ts.saturating_sub(o.last_end).max(0) as f64 / 1e9);
                o.count += 1;
                o.last_ts = ts;
                o.last_end = end;
            }
            Some(o) => {
                self.session_lengths.add(o.count as f64);
                *o = Open {
                    last_ts: ts,
                    last_end: end,
                    count: 1,
                };
            }
            None => {
                if self.open.len() >= MAX_OPEN {
                    self.close_oldest();
                }
                self.open.insert(
                    key,
                    Open {
                        last_ts: ts,
                        last_end: end,
                        count: 1,
                    },
                );
            }
        }
    }

    fn close_oldest(&mut self) {
        let mut by_age: Vec<(Nanos, String)> = self
            .open
            .iter()
            .map(|(k, o)| (o.last_ts, k.clone()))
            .collect();
        by_age.sort();
        let n = (by_age.len() / 10).max(1);
        for (_, k) in by_age.into_iter().take(n) {
            if let Some(o) = self.open.remove(&k) {
                self.session_lengths.add(o.count as f64);
            }
        }
    }

    fn lengths(&self) -> Vec<f64> {
        let mut v = self.session_lengths.items().to_vec();
        v.extend(self.open.values().take(SAMPLE).map(|o| o.count as f64));
        v
    }
}

fn session_key(ex: &Exchange) -> String {
    let h = &ex.request.headers;
    for v in h.get_all("cookie") {
        let text = String::from_utf8_lossy(v);
        for pair in text.split(';') {
            if let Some((k, v)) = pair.split_once('=') {
                if is_session_cookie(k.trim()) && !v.trim().is_empty() {
                    return format!("c:{}={}", k.trim(), v.trim());
                }
            }
        }
    }
    // A request that is given a session cookie (a login, a first visit) belongs to the session
    // that cookie starts, not to the anonymous traffic before it.
    if let Some(r) = &ex.response {
        for v in r.headers.get_all("set-cookie") {
            let text = String::from_utf8_lossy(v);
            let first = text.split(';').next().unwrap_or_default();
            if let Some((k, v)) = first.split_once('=') {
                if is_session_cookie(k.trim()) && !v.trim().is_empty() {
                    return format!("c:{}={}", k.trim(), v.trim());
                }
            }
        }
    }
    if let Some(a) = h.get_str("authorization") {
        return format!("a:{a}");
    }
    let ua = h.get_str("user-agent").unwrap_or_default();
    match ex.connection.client {
        Some(addr) => format!("ip:{} ua:{ua}", addr.ip()),
        None => format!("ua:{ua}"),
    }
}

/// The distances between two profiles; see the module documentation.
#[derive(Debug, Clone, PartialEq)]
pub struct Fidelity {
    /// JSD of the endpoint mix.
    pub endpoint_jsd: f64,
    /// JSD of the method mix.
    pub method_jsd: f64,
    /// JSD of the status mix.
    pub status_jsd: f64,
    /// KS D of the think times.
    pub think_time_ks: f64,
    /// KS D of the request body sizes.
    pub request_size_ks: f64,
    /// KS D of the response body sizes.
    pub response_size_ks: f64,
    /// KS D of the session lengths (requests per session).
    pub session_length_ks: f64,
    /// Requests in the recorded profile.
    pub recorded_requests: u64,
    /// Requests in the other profile.
    pub other_requests: u64,
    /// Think-time quantiles (p10, p25, p50, p75, p90) in seconds, recorded then other: where
    /// the two distributions part, when the KS distance says they do.
    pub think_time_quantiles: [[Option<f64>; 5]; 2],
}

/// The quantiles shown for think times.
const THINK_QUANTILES: [f64; 5] = [0.1, 0.25, 0.5, 0.75, 0.9];

fn think_quantiles(values: &[f64]) -> [Option<f64>; 5] {
    THINK_QUANTILES.map(|q| crate::sample::quantile(values, q))
}

/// Compares a recorded profile with another one.
pub fn compare(recorded: &Profile, other: &Profile) -> Fidelity {
    Fidelity {
        endpoint_jsd: jsd(&recorded.endpoints, &other.endpoints),
        method_jsd: jsd(&recorded.methods, &other.methods),
        status_jsd: jsd(&recorded.statuses, &other.statuses),
        think_time_ks: ks(recorded.think.items(), other.think.items()),
        request_size_ks: ks(recorded.request_sizes.items(), other.request_sizes.items()),
        response_size_ks: ks(
            recorded.response_sizes.items(),
            other.response_sizes.items(),
        ),
        session_length_ks: ks(&recorded.lengths(), &other.lengths()),
        recorded_requests: recorded.requests,
        other_requests: other.requests,
        think_time_quantiles: [
            think_quantiles(recorded.think.items()),
            think_quantiles(other.think.items()),
        ],
    }
}

impl Fidelity {
    fn rows(&self) -> [(&'static str, &'static str, f64); 7] {
        [
            ("endpoint mix", "JSD", self.endpoint_jsd),
            ("method mix", "JSD", self.method_jsd),
            ("status mix", "JSD", self.status_jsd),
            ("think time", "KS D", self.think_time_ks),
            ("request size", "KS D", self.request_size_ks),
            ("response size", "KS D", self.response_size_ks),
            ("session length", "KS D", self.session_length_ks),
        ]
    }

    /// A terminal table: one line per distance (0 = identical, 1 = disjoint).
    pub fn table(&self) -> String {
        let mut s = format!(
            "fidelity: recorded {} requests vs {} requests (0 = identical, 1 = disjoint)\n",
            self.recorded_requests, self.other_requests
        );
        let _ = writeln!(s, "{:<16}  {:<5}  {:>6}", "measure", "stat", "value");
        for (name, stat, v) in self.rows() {
            let _ = writeln!(s, "{name:<16}  {stat:<5}  {v:>6.4}");
        }
        let fmt = |qs: &[Option<f64>; 5]| {
            qs.iter()
                .map(|q| q.map_or_else(|| "-".to_string(), |v| format!("{v:.3}")))
                .collect::<Vec<_>>()
                .join(" / ")
        };
        let _ = writeln!(
            s,
            "think time p10 / p25 / p50 / p75 / p90 (s): recorded {}; other {}",
            fmt(&self.think_time_quantiles[0]),
            fmt(&self.think_time_quantiles[1])
        );
        s
    }

    /// The same as JSON: `{"endpoint_jsd": ..., ..., "recorded_requests": N, ...}`.
    pub fn to_json(&self) -> serde_json::Value {
        json!({
            "endpoint_jsd": self.endpoint_jsd,
            "method_jsd": self.method_jsd,
            "status_jsd": self.status_jsd,
            "think_time_ks": self.think_time_ks,
            "request_size_ks": self.request_size_ks,
            "response_size_ks": self.response_size_ks,
            "session_length_ks": self.session_length_ks,
            "recorded_requests": self.recorded_requests,
            "other_requests": self.other_requests,
            "think_time_quantiles_s": {
                "q": THINK_QUANTILES,
                "recorded": self.think_time_quantiles[0],
                "other": self.think_time_quantiles[1],
            },
        })
    }
}
