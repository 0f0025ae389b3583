//! The statistics model: per (method, name) exact HDR latency histograms, counts, bytes, failures by
//! kind with grouped messages, a one-second time series, exact merging and serialization.
//!
//! No clock is read here: every timestamp comes from the caller, so tests are deterministic and
//! several workers' pieces merge into exactly what one process would have recorded.

use std::collections::{BTreeMap, HashMap};
use std::io::Cursor;

use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Lowest latency the histograms distinguish, in microseconds.
pub const LOWEST_US: u64 = 1;
/// Highest latency the histograms hold (one hour), in microseconds; larger values are clamped.
pub const HIGHEST_US: u64 = 3_600_000_000;
/// Significant decimal digits kept by the histograms.
pub const SIGNIFICANT_DIGITS: u8 = 3;
/// Distinct failure messages kept per (method, name, kind); further messages are counted under
/// [`OTHER_MESSAGES`] so a flood of unique error texts cannot exhaust memory.
pub const MAX_MESSAGES_PER_KIND: usize = 1000;
/// The message under which failures beyond [`MAX_MESSAGES_PER_KIND`] are counted.
pub const OTHER_MESSAGES: &str = "(other messages)";

const NS_PER_S: i64 = 1_000_000_000;
const ENVELOPE_MAGIC: &[u8; 8] = b"MYNAHST\0";
const ENVELOPE_VERSION: u16 = 1;

fn new_histogram() -> Histogram<u64> {
    // Constant, valid bounds: this cannot fail.
    Histogram::new_with_bounds(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)
        .expect("constant histogram bounds are valid")
}

/// Clamps a latency into the histogram's range so that out-of-range samples are still counted.
fn clamp_us(v: u64) -> u64 {
    v.clamp(LOWEST_US, HIGHEST_US)
}

/// Why a request failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FailureKind {
    /// The connection could not be established (DNS, TCP, TLS).
    Connect,
    /// A deadline passed.
    Timeout,
    /// The peer reset or closed the connection mid-exchange.
    Reset,
    /// The response status was judged a failure.
    Status,
    /// A user-defined check on the response failed.
    Check,
    /// The peer violated the protocol (malformed response).
    Protocol,
}

impl FailureKind {
    /// Every kind, in declaration order.
    pub const ALL: [FailureKind; 6] = [
        FailureKind::Connect,
        FailureKind::Timeout,
        FailureKind::Reset,
        FailureKind::Status,
        FailureKind::Check,
        FailureKind::Protocol,
    ];

    /// The lowercase name used in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Connect => "connect",
            FailureKind::Timeout => "timeout",
            FailureKind::Reset => "reset",
            FailureKind::Status => "status",
            FailureKind::Check => "check",
            FailureKind::Protocol => "protocol",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl std::fmt::Display for FailureKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Errors from [`RunStats::to_bytes`] and [`RunStats::from_bytes`].
#[derive(Debug, thiserror::Error)]
pub enum StatsError {
    /// The bytes are not a mynah statistics envelope this version understands.
    #[error("invalid statistics data: {0}")]
    Decode(String),
    /// Encoding failed (should not happen for in-memory buffers).
    #[error("cannot encode statistics: {0}")]
    Encode(String),
}

/// Walks sorted `(value, count)` pairs to the HDR-style quantile: the value whose cumulative count
/// first reaches `ceil(q * total)` (at least 1), the rule `Histogram::value_at_quantile` uses.
fn sparse_quantile(pairs: &[(u64, u64)], total: u64, q_percent: f64) -> Option<u64> {
    if total == 0 || q_percent.is_nan() {
        return None;
    }
    let q = q_percent.clamp(0.0, 100.0) / 100.0;
    let target = ((q * total as f64).ceil() as u64).max(1);
    let mut seen = 0u64;
    for &(v, c) in pairs {
        seen = seen.saturating_add(c);
        if seen >= target {
            return Some(v);
        }
    }
    pairs.last().map(|p| p.0)
}

/// Adds sorted sparse `(value, count)` pairs from `src` into sorted `dst`.
fn merge_sparse(dst: &mut Vec<(u64, u64)>, src: &[(u64, u64)]) {
    if src.is_empty() {
        return;
    }
    let mut out = Vec::with_capacity(dst.len() + src.len());
    let (mut i, mut j) = (0, 0);
    while i < dst.len() && j < src.len() {
        match dst[i].0.cmp(&src[j].0) {
            std::cmp::Ordering::Less => {
                out.push(dst[i]);
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                out.push(src[j]);
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                out.push((dst[i].0, dst[i].1.saturating_add(src[j].1)));
                i += 1;
                j += 1;
            }
        }
    }
    out.extend_from_slice(&dst[i..]);
    out.extend_from_slice(&src[j..]);
    *dst = out;
}

/// Adds `count` samples of `value` to a sorted sparse histogram in place. A late sample costs a
/// binary search (and at worst a shift), where a merge would copy the whole second.
fn add_sparse(dst: &mut Vec<(u64, u64)>, value: u64, count: u64) {
    match dst.binary_search_by_key(&value, |&(v, _)| v) {
        Ok(i) => dst[i].1 = dst[i].1.saturating_add(count),
        Err(i) => dst.insert(i, (value, count)),
    }
}

/// Recorded-bucket `(highest equivalent value, count)` pairs of a histogram, sorted by value.
fn histogram_to_sparse(h: &Histogram<u64>) -> Vec<(u64, u64)> {
    h.iter_recorded()
        .map(|v| (v.value_iterated_to(), v.count_at_value()))
        .collect()
}

/// Statistics of one (method, name), or of the aggregated total.
#[derive(Debug, Clone, PartialEq)]
pub struct EndpointStats {
    /// Latencies in microseconds (clamped to the histogram's range).
    hist: Histogram<u64>,
    requests: u64,
    failures: u64,
    bytes_received: u64,
    // Exact figures beside the quantized histogram: the histogram's max is a bucket bound, and
    // percentiles must never exceed the true max.
    sum_us: u64,
    min_us: u64,
    max_us: u64,
}

impl Default for EndpointStats {
    fn default() -> Self {
        Self::new()
    }
}

impl EndpointStats {
    /// Empty statistics.
    pub fn new() -> Self {
        EndpointStats {
            hist: new_histogram(),
            requests: 0,
            failures: 0,
            bytes_received: 0,
            sum_us: 0,
            min_us: u64::MAX,
            max_us: 0,
        }
    }

    fn record(&mut self, latency_us: Option<u64>, bytes: u64, failed: bool) {
        self.requests += 1;
        if failed {
            self.failures += 1;
        }
        self.bytes_received = self.bytes_received.saturating_add(bytes);
        if let Some(l) = latency_us {
            self.hist.saturating_record(clamp_us(l));
            self.sum_us = self.sum_us.saturating_add(l);
            self.min_us = self.min_us.min(l);
            self.max_us = self.max_us.max(l);
        }
    }

    /// Adds `other` into `self` exactly (histograms add bucket by bucket).
    pub fn merge(&mut self, other: &EndpointStats) {
        // Same bounds on both sides, so addition cannot run out of range; saturate by hand anyway
        // rather than panic if it ever did.
        if self.hist.add(&other.hist).is_err() {
            for v in other.hist.iter_recorded() {
                self.hist
                    .saturating_record_n(v.value_iterated_to(), v.count_at_value());
            }
        }
        self.requests = self.requests.saturating_add(other.requests);
        self.failures = self.failures.saturating_add(other.failures);
        self.bytes_received = self.bytes_received.saturating_add(other.bytes_received);
        self.sum_us = self.sum_us.saturating_add(other.sum_us);
        self.min_us = self.min_us.min(other.min_us);
        self.max_us = self.max_us.max(other.max_us);
    }

    /// Requests recorded, successful or not.
    pub fn requests(&self) -> u64 {
        self.requests
    }

    /// Failed requests.
    pub fn failures(&self) -> u64 {
        self.failures
    }

    /// Failures over requests, in 0..=1; 0 when there were no requests.
    pub fn fail_rate(&self) -> f64 {
        if self.requests == 0 {
            0.0
        } else {
            self.failures as f64 / self.requests as f64
        }
    }

    /// Requests that carried a latency (failures before any response may not).
    pub fn latency_count(&self) -> u64 {
        self.hist.len()
    }

    /// The `q`-th percentile latency (q in 0..=100, clamped) in microseconds, within HDR's
    /// 3-significant-digit precision and never above the exact max nor below the exact min.
    /// `None` when no latency was recorded or `q` is NaN.
    pub fn percentile_us(&self, q: f64) -> Option<u64> {
        if self.hist.is_empty() || q.is_nan() {
            return None;
        }
        // The extremes are known exactly; the histogram only knows their buckets.
        if q <= 0.0 {
            return self.min_us();
        }
        if q >= 100.0 {
            return self.max_us();
        }
        let q = q / 100.0;
        Some(
            self.hist
                .value_at_quantile(q)
                .clamp(self.min_us.min(self.max_us), self.max_us),
        )
    }

    /// Exact smallest latency, in microseconds.
    pub fn min_us(&self) -> Option<u64> {
        (!self.hist.is_empty()).then_some(self.min_us)
    }

    /// Exact largest latency, in microseconds.
    pub fn max_us(&self) -> Option<u64> {
        (!self.hist.is_empty()).then_some(self.max_us)
    }

    /// Exact mean latency, in microseconds.
    pub fn mean_us(&self) -> Option<f64> {
        let n = self.hist.len();
        (n > 0).then(|| self.sum_us as f64 / n as f64)
    }

    /// Response bytes received.
    pub fn bytes_received(&self) -> u64 {
        self.bytes_received
    }

    /// The underlying latency histogram (microseconds, clamped to 1 µs ..= 1 h).
    pub fn histogram(&self) -> &Histogram<u64> {
        &self.hist
    }
}

/// Occurrences of one failure message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct FailureCount {
    count: u64,
    first_seen_ns: i64,
    last_seen_ns: i64,
}

impl FailureCount {
    fn add(&mut self, other: FailureCount) {
        self.count = self.count.saturating_add(other.count);
        self.first_seen_ns = self.first_seen_ns.min(other.first_seen_ns);
        self.last_seen_ns = self.last_seen_ns.max(other.last_seen_ns);
    }
}

/// Failure groups of one endpoint in a comparable, ordered form (for equality).
type FailureView<'a> = BTreeMap<(FailureKind, &'a str), FailureCount>;

/// Messages of one (method, name, kind), capped at [`MAX_MESSAGES_PER_KIND`] distinct entries.
type MessageMap = HashMap<String, FailureCount>;

fn add_message(map: &mut MessageMap, message: &str, fc: FailureCount) {
    // get_mut by &str first: no allocation for a message already seen (the common case).
    if let Some(e) = map.get_mut(message) {
        e.add(fc);
        return;
    }
    let key = if map.len() >= MAX_MESSAGES_PER_KIND {
        OTHER_MESSAGES
    } else {
        message
    };
    match map.get_mut(key) {
        Some(e) => e.add(fc),
        None => {
            map.insert(key.to_owned(), fc);
        }
    }
}

/// One group of failures: same (method, name, kind, message).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailureGroup<'a> {
    /// Request method.
    pub method: &'a str,
    /// Request name.
    pub name: &'a str,
    /// Failure kind.
    pub kind: FailureKind,
    /// Message, or [`OTHER_MESSAGES`] for the overflow group.
    pub message: &'a str,
    /// Occurrences.
    pub count: u64,
    /// First occurrence, Unix nanoseconds.
    pub first_seen_ns: i64,
    /// Last occurrence, Unix nanoseconds.
    pub last_seen_ns: i64,
}

/// One second of the run (aggregated over all endpoints).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecondStats {
    requests: u64,
    failures: u64,
    users: u64,
    bytes_received: u64,
    sum_us: u64,
    min_us: u64,
    max_us: u64,
    /// Sparse histogram: (bucket's highest equivalent value in µs, count), sorted by value.
    /// Sparse because a full HDR histogram per second would cost ~190 KB × 86,400 s a day.
    latencies: Vec<(u64, u64)>,
}

impl Default for SecondStats {
    fn default() -> Self {
        SecondStats {
            requests: 0,
            failures: 0,
            users: 0,
            bytes_received: 0,
            sum_us: 0,
            min_us: u64::MAX,
            max_us: 0,
            latencies: Vec::new(),
        }
    }
}

impl SecondStats {
    /// Requests completed in this second.
    pub fn requests(&self) -> u64 {
        self.requests
    }

    /// Failures in this second.
    pub fn failures(&self) -> u64 {
        self.failures
    }

    /// Users running during this second (the highest value set while it was current; summed
    /// across merged workers).
    pub fn users(&self) -> u64 {
        self.users
    }

    /// Bytes received in this second.
    pub fn bytes_received(&self) -> u64 {
        self.bytes_received
    }

    /// Number of latency samples in this second.
    pub fn latency_count(&self) -> u64 {
        self.latencies
            .iter()
            .fold(0u64, |t, p| t.saturating_add(p.1))
    }

    /// Sum of the exact latencies, µs.
    pub fn sum_us(&self) -> u64 {
        self.sum_us
    }

    /// Exact min latency of this second, µs.
    pub fn min_us(&self) -> Option<u64> {
        (!self.latencies.is_empty()).then_some(self.min_us)
    }

    /// Exact max latency of this second, µs.
    pub fn max_us(&self) -> Option<u64> {
        (!self.latencies.is_empty()).then_some(self.max_us)
    }

    /// Sparse latency histogram: sorted (bucket value µs, count) pairs.
    pub fn latencies(&self) -> &[(u64, u64)] {
        &self.latencies
    }

    /// The `q`-th percentile (0..=100) of this second, µs, never above its exact max.
    pub fn percentile_us(&self, q: f64) -> Option<u64> {
        sparse_quantile(&self.latencies, self.latency_count(), q)
            .map(|v| v.clamp(self.min_us.min(self.max_us), self.max_us))
    }

    fn merge(&mut self, other: &SecondStats) {
        self.requests = self.requests.saturating_add(other.requests);
        self.failures = self.failures.saturating_add(other.failures);
        self.users = self.users.saturating_add(other.users);
        self.bytes_received = self.bytes_received.saturating_add(other.bytes_received);
        self.sum_us = self.sum_us.saturating_add(other.sum_us);
        self.min_us = self.min_us.min(other.min_us);
        self.max_us = self.max_us.max(other.max_us);
        merge_sparse(&mut self.latencies, &other.latencies);
    }
}

#[derive(Debug, Clone)]
struct Endpoint {
    method: String,
    name: String,
    stats: EndpointStats,
    failures: [MessageMap; 6],
}

/// Statistics of a whole run: per (method, name) endpoints, the aggregated total, grouped failures,
/// dropped iterations and a one-second time series.
#[derive(Debug, Clone)]
pub struct RunStats {
    started_at_ns: i64,
    ended_at_ns: Option<i64>,
    last_at_ns: i64,
    /// name -> method -> index into `endpoints`: two `&str` lookups, no allocation per sample.
    index: HashMap<String, HashMap<String, usize>>,
    endpoints: Vec<Endpoint>,
    total: EndpointStats,
    dropped: u64,
    users: u64,
    /// Closed seconds; all keys are below `cur_sec` while a second is open.
    series: BTreeMap<i64, SecondStats>,
    cur_sec: Option<i64>,
    cur: SecondStats,
    /// Full histogram of the open second: recording into it is O(1); compacted on rollover.
    cur_hist: Histogram<u64>,
}

impl PartialEq for RunStats {
    fn eq(&self, other: &Self) -> bool {
        self.started_at_ns == other.started_at_ns
            && self.ended_at_ns == other.ended_at_ns
            && self.dropped == other.dropped
            && self.total == other.total
            && self.sorted_endpoints() == other.sorted_endpoints()
            && self.series() == other.series()
    }
}

impl RunStats {
    /// A run that started at `started_at_ns` (Unix nanoseconds, from the caller's clock).
    pub fn new(started_at_ns: i64) -> Self {
        RunStats {
            started_at_ns,
            ended_at_ns: None,
            last_at_ns: started_at_ns,
            index: HashMap::new(),
            endpoints: Vec::new(),
            total: EndpointStats::new(),
            dropped: 0,
            users: 0,
            series: BTreeMap::new(),
            cur_sec: None,
            cur: SecondStats::default(),
            cur_hist: new_histogram(),
        }
    }

    fn endpoint_index(&mut self, method: &str, name: &str) -> usize {
        if let Some(&i) = self.index.get(name).and_then(|m| m.get(method)) {
            return i;
        }
        let i = self.endpoints.len();
        self.endpoints.push(Endpoint {
            method: method.to_owned(),
            name: name.to_owned(),
            stats: EndpointStats::new(),
            failures: Default::default(),
        });
        self.index
            .entry(name.to_owned())
            .or_default()
            .insert(method.to_owned(), i);
        i
    }

    /// Where `(method, name)` is in this run's endpoint list (added when new), for
    /// [`RunStats::record_success_at`] and [`RunStats::record_failure_at`]. `hint` is the caller's
    /// earlier answer for the same pair: it is checked first (two string compares), so a hot
    /// loop skips two hash lookups; a stale or made-up hint only costs the lookup.
    pub fn endpoint_slot(&mut self, method: &str, name: &str, hint: usize) -> usize {
        match self.endpoints.get(hint) {
            Some(e) if e.name == name && e.method == method => hint,
            _ => self.endpoint_index(method, name),
        }
    }

    /// Records a successful request completed at `at_ns` (Unix ns) after `latency_us`, having
    /// received `bytes` response bytes.
    pub fn record_success(
        &mut self,
        method: &str,
        name: &str,
        at_ns: i64,
        latency_us: u64,
        bytes: u64,
    ) {
        let i = self.endpoint_index(method, name);
        self.record_success_at(i, at_ns, latency_us, bytes);
    }

    /// [`RunStats::record_success`] for the endpoint at `slot`, an answer of
    /// [`RunStats::endpoint_slot`] from these statistics (a slot out of range is ignored).
    pub fn record_success_at(&mut self, slot: usize, at_ns: i64, latency_us: u64, bytes: u64) {
        let Some(ep) = self.endpoints.get_mut(slot) else {
            return;
        };
        ep.stats.record(Some(latency_us), bytes, false);
        self.total.record(Some(latency_us), bytes, false);
        self.record_second(at_ns, Some(latency_us), bytes, false);
    }

    /// Records a failed request at `at_ns` (Unix ns); `latency_us` is `None` when no response
    /// timing exists (e.g. connect failures).
    pub fn record_failure(
        &mut self,
        method: &str,
        name: &str,
        at_ns: i64,
        latency_us: Option<u64>,
        kind: FailureKind,
        message: &str,
    ) {
        let i = self.endpoint_index(method, name);
        self.record_failure_at(i, at_ns, latency_us, kind, message);
    }

    /// [`RunStats::record_failure`] for the endpoint at `slot`, an answer of
    /// [`RunStats::endpoint_slot`] from these statistics (a slot out of range is ignored).
    pub fn record_failure_at(
        &mut self,
        slot: usize,
        at_ns: i64,
        latency_us: Option<u64>,
        kind: FailureKind,
        message: &str,
    ) {
        let Some(ep) = self.endpoints.get_mut(slot) else {
            return;
        };
        ep.stats.record(latency_us, 0, true);
        add_message(
            &mut ep.failures[kind.index()],
            message,
            FailureCount {
                count: 1,
                first_seen_ns: at_ns,
                last_seen_ns: at_ns,
            },
        );
        self.total.record(latency_us, 0, true);
        self.record_second(at_ns, latency_us, 0, true);
    }

    /// Counts `n` open-model iterations that could not start in time.
    pub fn record_dropped(&mut self, n: u64) {
        self.dropped = self.dropped.saturating_add(n);
    }

    /// Sets the number of running users; kept in the time series per second.
    pub fn set_users(&mut self, n: u64) {
        self.users = n;
        if self.cur_sec.is_some() {
            self.cur.users = self.cur.users.max(n);
        }
    }

    fn record_second(&mut self, at_ns: i64, latency_us: Option<u64>, bytes: u64, failed: bool) {
        self.last_at_ns = self.last_at_ns.max(at_ns);
        let sec = at_ns.div_euclid(NS_PER_S);
        if self.cur_sec != Some(sec) {
            let newer = match self.cur_sec {
                Some(c) => sec > c,
                None => self.series.keys().next_back().is_none_or(|&k| sec > k),
            };
            if !newer {
                // A late sample for a closed second: rare, so the slower sparse path is fine.
                let e = self.series.entry(sec).or_default();
                e.requests += 1;
                e.failures += u64::from(failed);
                e.bytes_received = e.bytes_received.saturating_add(bytes);
                if let Some(l) = latency_us {
                    e.sum_us = e.sum_us.saturating_add(l);
                    e.min_us = e.min_us.min(l);
                    e.max_us = e.max_us.max(l);
                    let v = self.cur_hist.highest_equivalent(clamp_us(l));
                    add_sparse(&mut e.latencies, v, 1);
                }
                return;
            }
            self.flush_second();
            self.cur_sec = Some(sec);
            self.cur.users = self.users;
        }
        let c = &mut self.cur;
        c.requests += 1;
        c.failures += u64::from(failed);
        c.bytes_received = c.bytes_received.saturating_add(bytes);
        if let Some(l) = latency_us {
            c.sum_us = c.sum_us.saturating_add(l);
            c.min_us = c.min_us.min(l);
            c.max_us = c.max_us.max(l);
            self.cur_hist.saturating_record(clamp_us(l));
        }
    }

    /// Moves the open second into the closed series.
    fn flush_second(&mut self) {
        if let Some(sec) = self.cur_sec.take() {
            let mut s = std::mem::take(&mut self.cur);
            s.latencies = histogram_to_sparse(&self.cur_hist);
            self.cur_hist.reset();
            self.series.entry(sec).or_default().merge(&s);
        }
    }

    /// Marks the run ended at `ended_at_ns` (Unix ns) and closes the open second.
    pub fn finish(&mut self, ended_at_ns: i64) {
        self.ended_at_ns = Some(ended_at_ns);
        self.flush_second();
    }

    /// Start of the run, Unix nanoseconds.
    pub fn started_at_ns(&self) -> i64 {
        self.started_at_ns
    }

    /// End of the run, Unix nanoseconds, once [`RunStats::finish`] was called.
    pub fn ended_at_ns(&self) -> Option<i64> {
        self.ended_at_ns
    }

    /// Statistics of one (method, name).
    pub fn endpoint(&self, method: &str, name: &str) -> Option<&EndpointStats> {
        let i = *self.index.get(name)?.get(method)?;
        self.endpoints.get(i).map(|e| &e.stats)
    }

    /// The aggregated total over all endpoints.
    pub fn total(&self) -> &EndpointStats {
        &self.total
    }

    fn sorted_endpoint_refs(&self) -> Vec<&Endpoint> {
        let mut v: Vec<&Endpoint> = self.endpoints.iter().collect();
        v.sort_by(|a, b| (&a.method, &a.name).cmp(&(&b.method, &b.name)));
        v
    }

    fn sorted_endpoints(&self) -> BTreeMap<(&str, &str), (&EndpointStats, FailureView<'_>)> {
        self.endpoints
            .iter()
            .map(|e| {
                let f = FailureKind::ALL
                    .iter()
                    .flat_map(|&k| {
                        e.failures[k.index()]
                            .iter()
                            .map(move |(m, c)| ((k, m.as_str()), *c))
                    })
                    .collect();
                ((e.method.as_str(), e.name.as_str()), (&e.stats, f))
            })
            .collect()
    }

    /// Every (method, name, stats), sorted by method then name.
    pub fn endpoints(&self) -> impl Iterator<Item = (&str, &str, &EndpointStats)> {
        self.sorted_endpoint_refs()
            .into_iter()
            .map(|e| (e.method.as_str(), e.name.as_str(), &e.stats))
    }

    /// Run duration in seconds: from start to [`RunStats::finish`]'s time, or to the latest
    /// sample while the run is still going. Never negative.
    pub fn duration_s(&self) -> f64 {
        let end = self.ended_at_ns.unwrap_or(self.last_at_ns);
        (end.saturating_sub(self.started_at_ns)).max(0) as f64 / NS_PER_S as f64
    }

    /// Requests per second of `stats` over the run duration (0 for a zero-length run).
    pub fn rps(&self, stats: &EndpointStats) -> f64 {
        self.per_second(stats.requests())
    }

    /// Failures per second of `stats` over the run duration (0 for a zero-length run).
    pub fn fail_per_s(&self, stats: &EndpointStats) -> f64 {
        self.per_second(stats.failures())
    }

    fn per_second(&self, n: u64) -> f64 {
        let d = self.duration_s();
        if d > 0.0 {
            n as f64 / d
        } else {
            0.0
        }
    }

    /// Open-model iterations that could not start.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Grouped failures, sorted by (method, name, kind, message).
    pub fn failures(&self) -> impl Iterator<Item = FailureGroup<'_>> {
        let mut v: Vec<FailureGroup<'_>> = self
            .endpoints
            .iter()
            .flat_map(|e| {
                FailureKind::ALL.iter().flat_map(move |&kind| {
                    e.failures[kind.index()]
                        .iter()
                        .map(move |(m, c)| FailureGroup {
                            method: &e.method,
                            name: &e.name,
                            kind,
                            message: m,
                            count: c.count,
                            first_seen_ns: c.first_seen_ns,
                            last_seen_ns: c.last_seen_ns,
                        })
                })
            })
            .collect();
        v.sort_by(|a, b| {
            (a.method, a.name, a.kind, a.message).cmp(&(b.method, b.name, b.kind, b.message))
        });
        v.into_iter()
    }

    /// The one-second series, `(Unix second, stats)` in time order, including the open second.
    /// Seconds without any sample are absent.
    pub fn series(&self) -> Vec<(i64, SecondStats)> {
        let mut v: Vec<(i64, SecondStats)> =
            self.series.iter().map(|(k, s)| (*k, s.clone())).collect();
        if let Some(sec) = self.cur_sec {
            let mut s = self.cur.clone();
            s.latencies = histogram_to_sparse(&self.cur_hist);
            v.push((sec, s));
        }
        v
    }

    /// Adds `other` into `self` exactly: histograms add, counts sum, failure groups and the
    /// time series combine, the time span widens. Message caps apply again while combining.
    pub fn merge(&mut self, other: &RunStats) {
        self.started_at_ns = self.started_at_ns.min(other.started_at_ns);
        self.ended_at_ns = match (self.ended_at_ns, other.ended_at_ns) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        self.last_at_ns = self.last_at_ns.max(other.last_at_ns);
        self.dropped = self.dropped.saturating_add(other.dropped);
        self.users = self.users.saturating_add(other.users);
        self.total.merge(&other.total);
        for oe in &other.endpoints {
            let i = self.endpoint_index(&oe.method, &oe.name);
            let e = &mut self.endpoints[i];
            e.stats.merge(&oe.stats);
            for k in FailureKind::ALL {
                // Sorted so that which messages overflow into OTHER_MESSAGES is deterministic.
                let mut msgs: Vec<(&String, &FailureCount)> =
                    oe.failures[k.index()].iter().collect();
                msgs.sort_by(|a, b| a.0.cmp(b.0));
                for (m, c) in msgs {
                    add_message(&mut e.failures[k.index()], m, *c);
                }
            }
        }
        self.flush_second();
        for (sec, s) in other.series() {
            self.series.entry(sec).or_default().merge(&s);
        }
    }

    /// Serializes to a versioned envelope: magic, version, JSON of the counts, then each
    /// histogram in HDR V2+DEFLATE form (exact, and readable by other HDR implementations).
    pub fn to_bytes(&self) -> Result<Vec<u8>, StatsError> {
        let eps = self.sorted_endpoint_refs();
        let wire = Wire {
            started_at_ns: self.started_at_ns,
            ended_at_ns: self.ended_at_ns,
            last_at_ns: self.last_at_ns,
            dropped: self.dropped,
            users: self.users,
            total: WireEndpoint::from_stats("", "", &self.total, None),
            endpoints: eps
                .iter()
                .map(|e| WireEndpoint::from_stats(&e.method, &e.name, &e.stats, Some(&e.failures)))
                .collect(),
            series: self.series(),
        };
        let json = serde_json::to_vec(&wire).map_err(|e| StatsError::Encode(e.to_string()))?;
        let mut out = Vec::with_capacity(json.len() + 256);
        out.extend_from_slice(ENVELOPE_MAGIC);
        out.extend_from_slice(&ENVELOPE_VERSION.to_le_bytes());
        push_block(&mut out, &json)?;
        let mut ser = V2DeflateSerializer::new();
        let hists = std::iter::once(&self.total).chain(eps.iter().map(|e| &e.stats));
        for h in hists {
            let mut buf = Vec::new();
            ser.serialize(&h.hist, &mut buf)
                .map_err(|e| StatsError::Encode(format!("{e:?}")))?;
            push_block(&mut out, &buf)?;
        }
        Ok(out)
    }

    /// Reads what [`RunStats::to_bytes`] wrote. Malformed input gives an error, never a panic.
    pub fn from_bytes(bytes: &[u8]) -> Result<RunStats, StatsError> {
        let err = |m: &str| StatsError::Decode(m.to_owned());
        let rest = bytes
            .strip_prefix(ENVELOPE_MAGIC.as_slice())
            .ok_or_else(|| err("not a mynah statistics envelope"))?;
        let (ver, mut rest) = rest.split_at_checked(2).ok_or_else(|| err("truncated"))?;
        let ver = u16::from_le_bytes([ver[0], ver[1]]);
        if ver != ENVELOPE_VERSION {
            return Err(StatsError::Decode(format!("unsupported version {ver}")));
        }
        let json = take_block(&mut rest)?;
        let wire: Wire =
            serde_json::from_slice(json).map_err(|e| StatsError::Decode(e.to_string()))?;
        let mut de = Deserializer::new();
        let mut read_hist = |rest: &mut &[u8]| -> Result<Histogram<u64>, StatsError> {
            let block = take_block(rest)?;
            let h: Histogram<u64> = de
                .deserialize(&mut Cursor::new(block))
                .map_err(|e| StatsError::Decode(format!("histogram: {e:?}")))?;
            // Re-home into our bounds so every histogram has the same shape (and equality holds).
            let mut ours = new_histogram();
            ours.add(&h)
                .map_err(|e| StatsError::Decode(format!("histogram out of range: {e:?}")))?;
            Ok(ours)
        };
        let mut rs = RunStats::new(wire.started_at_ns);
        rs.ended_at_ns = wire.ended_at_ns;
        rs.last_at_ns = wire.last_at_ns;
        rs.dropped = wire.dropped;
        rs.users = wire.users;
        rs.total = wire.total.to_stats(read_hist(&mut rest)?);
        for we in wire.endpoints {
            if rs.endpoint(&we.method, &we.name).is_some() {
                return Err(err("duplicate endpoint"));
            }
            let hist = read_hist(&mut rest)?;
            let i = rs.endpoint_index(&we.method, &we.name);
            let e = &mut rs.endpoints[i];
            e.stats = we.to_stats(hist);
            for f in we.failure_groups {
                add_message(&mut e.failures[f.kind.index()], &f.message, f.count);
            }
        }
        if !rest.is_empty() {
            return Err(err("trailing bytes"));
        }
        for (sec, mut s) in wire.series {
            // Normalise untrusted pairs: sorted, merged, in range.
            let mut pairs = std::mem::take(&mut s.latencies);
            pairs.sort_unstable();
            for (v, c) in pairs {
                let v = rs.cur_hist.highest_equivalent(clamp_us(v));
                add_sparse(&mut s.latencies, v, c);
            }
            rs.series.entry(sec).or_default().merge(&s);
        }
        Ok(rs)
    }
}

fn push_block(out: &mut Vec<u8>, block: &[u8]) -> Result<(), StatsError> {
    let len =
        u32::try_from(block.len()).map_err(|_| StatsError::Encode("block too large".into()))?;
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(block);
    Ok(())
}

fn take_block<'a>(rest: &mut &'a [u8]) -> Result<&'a [u8], StatsError> {
    let err = || StatsError::Decode("truncated block".into());
    let (len, tail) = rest.split_at_checked(4).ok_or_else(err)?;
    let len = u32::from_le_bytes([len[0], len[1], len[2], len[3]]) as usize;
    let (block, tail) = tail.split_at_checked(len).ok_or_else(err)?;
    *rest = tail;
    Ok(block)
}

#[derive(Serialize, Deserialize)]
struct Wire {
    started_at_ns: i64,
    ended_at_ns: Option<i64>,
    last_at_ns: i64,
    dropped: u64,
    users: u64,
    total: WireEndpoint,
    endpoints: Vec<WireEndpoint>,
    series: Vec<(i64, SecondStats)>,
}

#[derive(Serialize, Deserialize)]
struct WireEndpoint {
    method: String,
    name: String,
    requests: u64,
    failures: u64,
    bytes_received: u64,
    sum_us: u64,
    min_us: u64,
    max_us: u64,
    failure_groups: Vec<WireFailure>,
}

#[derive(Serialize, Deserialize)]
struct WireFailure {
    kind: FailureKind,
    message: String,
    count: FailureCount,
}

impl WireEndpoint {
    fn from_stats(
        method: &str,
        name: &str,
        s: &EndpointStats,
        failures: Option<&[MessageMap; 6]>,
    ) -> Self {
        let mut failure_groups = Vec::new();
        if let Some(f) = failures {
            for k in FailureKind::ALL {
                let mut msgs: Vec<_> = f[k.index()].iter().collect();
                msgs.sort_by(|a, b| a.0.cmp(b.0));
                failure_groups.extend(msgs.into_iter().map(|(m, c)| WireFailure {
                    kind: k,
                    message: m.clone(),
                    count: *c,
                }));
            }
        }
        WireEndpoint {
            method: method.to_owned(),
            name: name.to_owned(),
            requests: s.requests,
            failures: s.failures,
            bytes_received: s.bytes_received,
            sum_us: s.sum_us,
            min_us: s.min_us,
            max_us: s.max_us,
            failure_groups,
        }
    }

    fn to_stats(&self, hist: Histogram<u64>) -> EndpointStats {
        EndpointStats {
            hist,
            requests: self.requests,
            failures: self.failures,
            bytes_received: self.bytes_received,
            sum_us: self.sum_us,
            min_us: self.min_us,
            max_us: self.max_us,
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn adding_one_value_equals_merging_it() {
        let mut seed = 7u64;
        let mut a: Vec<(u64, u64)> = Vec::new();
        let mut b: Vec<(u64, u64)> = Vec::new();
        for _ in 0..2000 {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let (v, c) = ((seed >> 33) % 300, (seed >> 20) % 3 + 1);
            super::add_sparse(&mut a, v, c);
            super::merge_sparse(&mut b, &[(v, c)]);
        }
        assert_eq!(a, b);
        assert!(a.windows(2).all(|w| w[0].0 < w[1].0));
    }

    use super::*;
    use proptest::prelude::*;

    const S: i64 = NS_PER_S;

    fn oracle(sorted: &[u64], q: f64) -> u64 {
        let rank = (((q / 100.0) * sorted.len() as f64).ceil() as usize).max(1);
        sorted[rank - 1]
    }

    proptest! {
        #[test]
        fn percentiles_match_sorted_oracle(
            mut lats in prop::collection::vec(prop_oneof![1u64..5_000, 1u64..10_000_000, 1u64..=HIGHEST_US], 1..300),
            qs in prop::collection::vec(0.0f64..=100.0, 1..10),
        ) {
            let mut s = RunStats::new(0);
            for (i, &l) in lats.iter().enumerate() {
                s.record_success("GET", "/", i as i64, l, 0);
            }
            lats.sort_unstable();
            let e = s.endpoint("GET", "/").unwrap();
            let max = *lats.last().unwrap();
            for q in qs.into_iter().chain([0.0, 50.0, 99.9, 100.0]) {
                let p = e.percentile_us(q).unwrap();
                let o = oracle(&lats, q);
                prop_assert!(p <= max, "p{q}={p} above max {max}");
                // HDR with 3 significant digits: within 1/1000 of the true order statistic.
                prop_assert!(p >= o && p - o <= o / 1000, "p{q}={p} oracle {o}");
            }
            prop_assert_eq!(e.percentile_us(100.0), Some(max));
            prop_assert_eq!(e.min_us(), Some(lats[0]));
            let mean = lats.iter().map(|&v| v as f64).sum::<f64>() / lats.len() as f64;
            prop_assert!((e.mean_us().unwrap() - mean).abs() <= mean * 1e-12);
        }

        #[test]
        fn merge_equals_single_recording(
            samples in prop::collection::vec(
                (0usize..3, 0i64..5 * S, 0u64..2_000_000, 0u8..8, 0usize..4, 0u64..5000),
                0..200,
            ),
            split in any::<prop::sample::Index>(),
            dropped in (0u64..10, 0u64..10),
        ) {
            let record = |s: &mut RunStats, (ep, at, lat, kind, msg, bytes): (usize, i64, u64, u8, usize, u64)| {
                let (m, n) = [("GET", "/a"), ("POST", "/a"), ("GET", "/b")][ep];
                if kind < 6 {
                    let lat = (kind % 2 == 0).then_some(lat);
                    s.record_failure(m, n, at, lat, FailureKind::ALL[kind as usize], &format!("msg {msg}"));
                } else {
                    s.record_success(m, n, at, lat, bytes);
                }
            };
            let k = split.index(samples.len() + 1);
            let mut one = RunStats::new(0);
            let mut a = RunStats::new(0);
            let mut b = RunStats::new(0);
            for (i, &x) in samples.iter().enumerate() {
                record(&mut one, x);
                record(if i < k { &mut a } else { &mut b }, x);
            }
            one.record_dropped(dropped.0 + dropped.1);
            a.record_dropped(dropped.0);
            b.record_dropped(dropped.1);

            let mut merged = a.clone();
            merged.merge(&b);
            prop_assert_eq!(&merged, &one);

            // Through serialization, as workers would send their pieces.
            let mut via_bytes = RunStats::from_bytes(&a.to_bytes().unwrap()).unwrap();
            via_bytes.merge(&RunStats::from_bytes(&b.to_bytes().unwrap()).unwrap());
            prop_assert_eq!(&via_bytes, &one);
            for q in [50.0, 95.0, 99.0, 100.0] {
                prop_assert_eq!(via_bytes.total().percentile_us(q), one.total().percentile_us(q));
            }
            prop_assert_eq!(
                via_bytes.failures().collect::<Vec<_>>(),
                one.failures().collect::<Vec<_>>()
            );
        }

        #[test]
        fn corrupted_envelope_never_panics(at in any::<prop::sample::Index>(), byte in any::<u8>()) {
            let mut bytes = sample_run().to_bytes().unwrap();
            let i = at.index(bytes.len());
            bytes[i] = byte;
            if let Ok(r) = RunStats::from_bytes(&bytes) {
                // Whatever was accepted must be usable without panicking.
                let _ = r.total().percentile_us(99.0);
                let _ = crate::report::summary_json(&r, 0, &serde_json::Value::Null);
                let mut out = Vec::new();
                let _ = crate::report::locust_csv::write_history(&mut out, &r);
                let _ = crate::report::locust_csv::write_stats(&mut out, &r);
            }
        }

        #[test]
        fn from_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
            let _ = RunStats::from_bytes(&bytes);
        }
    }

    fn sample_run() -> RunStats {
        let mut s = RunStats::new(10 * S);
        s.set_users(5);
        s.record_success("GET", "/a", 10 * S + 1, 1_500, 100);
        s.record_success("GET", "/a", 10 * S + 2, 123_457, 100);
        s.record_failure(
            "GET",
            "/a",
            11 * S,
            Some(900),
            FailureKind::Status,
            "500 Internal",
        );
        s.record_failure(
            "POST",
            "/b",
            11 * S + 5,
            None,
            FailureKind::Connect,
            "refused",
        );
        s.record_dropped(3);
        s.finish(12 * S);
        s
    }

    #[test]
    fn round_trip_keeps_every_number() {
        let s = sample_run();
        let bytes = s.to_bytes().unwrap();
        let r = RunStats::from_bytes(&bytes).unwrap();
        assert_eq!(r, s);
        assert_eq!(r.dropped(), 3);
        assert_eq!(r.duration_s(), 2.0);
        assert_eq!(r.series(), s.series());
        assert_eq!(
            r.failures().collect::<Vec<_>>(),
            s.failures().collect::<Vec<_>>()
        );
        let (a, b) = (
            r.endpoint("GET", "/a").unwrap(),
            s.endpoint("GET", "/a").unwrap(),
        );
        for q in [0.0, 50.0, 90.0, 99.0, 100.0] {
            assert_eq!(a.percentile_us(q), b.percentile_us(q));
        }
        assert_eq!(a.bytes_received(), 200);
        // Every truncation is an error, not a panic.
        for n in 0..bytes.len() {
            assert!(RunStats::from_bytes(&bytes[..n]).is_err(), "prefix {n}");
        }
        let mut extra = bytes.clone();
        extra.push(0);
        assert!(RunStats::from_bytes(&extra).is_err());
    }

    #[test]
    fn open_series_round_trips_too() {
        let mut s = RunStats::new(0);
        s.record_success("GET", "/", S / 2, 10, 1);
        let r = RunStats::from_bytes(&s.to_bytes().unwrap()).unwrap();
        assert_eq!(r, s);
    }

    #[test]
    fn endpoint_figures() {
        let s = sample_run();
        let a = s.endpoint("GET", "/a").unwrap();
        assert_eq!((a.requests(), a.failures()), (3, 1));
        assert!((a.fail_rate() - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(a.min_us(), Some(900));
        // The HDR bucket of 123_457 reaches 123_519: the exact max caps it.
        assert_eq!(a.max_us(), Some(123_457));
        assert_eq!(a.percentile_us(100.0), Some(123_457));
        assert_eq!(a.mean_us(), Some((1_500.0 + 123_457.0 + 900.0) / 3.0));
        let b = s.endpoint("POST", "/b").unwrap();
        assert_eq!((b.requests(), b.failures(), b.fail_rate()), (1, 1, 1.0));
        assert_eq!(
            (b.percentile_us(50.0), b.min_us(), b.mean_us()),
            (None, None, None)
        );
        assert!(s.endpoint("GET", "/b").is_none());
        assert_eq!(s.total().requests(), 4);
        assert_eq!(s.rps(s.total()), 2.0);
        let order: Vec<_> = s.endpoints().map(|(m, n, _)| (m, n)).collect();
        assert_eq!(order, [("GET", "/a"), ("POST", "/b")]);
        assert_eq!(EndpointStats::new().fail_rate(), 0.0);
        assert_eq!(a.percentile_us(f64::NAN), None);
        assert_eq!(a.percentile_us(1e9), Some(123_457));
    }

    #[test]
    fn out_of_range_latencies_are_clamped_but_counted() {
        let mut s = RunStats::new(0);
        s.record_success("GET", "/", 0, 0, 0);
        s.record_success("GET", "/", 0, 5_000_000_000, 0);
        let e = s.total();
        assert_eq!(e.latency_count(), 2);
        assert_eq!((e.min_us(), e.max_us()), (Some(0), Some(5_000_000_000)));
        assert_eq!(e.percentile_us(0.0), Some(0));
        assert!(e.percentile_us(100.0).unwrap() <= 5_000_000_000);
    }

    #[test]
    fn failures_grouped_and_capped() {
        let mut s = RunStats::new(0);
        for i in 0..(MAX_MESSAGES_PER_KIND + 5) {
            s.record_failure(
                "GET",
                "/",
                i as i64,
                None,
                FailureKind::Check,
                &format!("m{i}"),
            );
        }
        s.record_failure("GET", "/", 7_000, None, FailureKind::Check, "m0");
        s.record_failure("GET", "/", 8_000, None, FailureKind::Timeout, "m0");
        let f: Vec<_> = s.failures().collect();
        assert_eq!(f.len(), MAX_MESSAGES_PER_KIND + 2);
        let m0 = f
            .iter()
            .find(|g| g.kind == FailureKind::Check && g.message == "m0")
            .unwrap();
        assert_eq!((m0.count, m0.first_seen_ns, m0.last_seen_ns), (2, 0, 7_000));
        let other = f.iter().find(|g| g.message == OTHER_MESSAGES).unwrap();
        assert_eq!(
            (other.count, other.first_seen_ns, other.last_seen_ns),
            (5, 1000, 1004)
        );
        assert_eq!(f.iter().map(|g| g.count).sum::<u64>(), s.total().failures());
        // Sorted by kind (declaration order) within an endpoint: timeout before check.
        assert_eq!(f[0].kind, FailureKind::Timeout);
    }

    #[test]
    fn time_series_per_second() {
        let mut s = RunStats::new(100 * S);
        s.set_users(2);
        s.record_success("GET", "/", 100 * S, 1_000, 10);
        s.record_success("GET", "/", 100 * S + S / 2, 3_000, 10);
        s.set_users(4);
        s.record_failure("GET", "/", 102 * S, Some(7_000), FailureKind::Timeout, "t");
        // Late sample for a closed second.
        s.record_success("GET", "/", 100 * S + 1, 2_000, 10);
        s.record_success("GET", "/", -S / 2, 5, 0);
        let series = s.series();
        let secs: Vec<i64> = series.iter().map(|x| x.0).collect();
        assert_eq!(secs, [-1, 100, 102]);
        let s100 = &series[1].1;
        assert_eq!((s100.requests(), s100.failures(), s100.users()), (3, 0, 4));
        assert_eq!(s100.percentile_us(50.0), Some(2_000));
        assert_eq!(s100.percentile_us(99.0), Some(3_000));
        assert_eq!(s100.bytes_received(), 30);
        let s102 = &series[2].1;
        assert_eq!((s102.requests(), s102.failures(), s102.users()), (1, 1, 4));
        assert_eq!(s102.percentile_us(95.0), Some(7_000));
        s.finish(103 * S);
        assert_eq!(s.series(), series);
    }

    /// Hot-path cost; run with `cargo test --release -p mynah-stats -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn record_speed() {
        let mut s = RunStats::new(0);
        let names = ["/a", "/b", "/c", "/d"];
        let t = std::time::Instant::now();
        for i in 0..1_000_000u64 {
            let at = (i * 10_000) as i64;
            s.record_success("GET", names[(i % 4) as usize], at, 500 + i % 100_000, 100);
        }
        eprintln!("1e6 records: {:?}", t.elapsed());
        assert_eq!(s.total().requests(), 1_000_000);
    }
}
