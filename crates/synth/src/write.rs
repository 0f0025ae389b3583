//! Writing a [`Workload`] out: the mynah scenario, its CSV feeds, a Locust file and a summary.
//!
//! All of these are pure functions returning strings; the caller decides where files go. The
//! scenario and the Locust file read the same CSV files, so both replay the same data.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt::Write as _;

use crate::model::{
    ident, is_password_field, is_user_field, BodyModel, BodyPiece, ClassModel, ColumnSource,
    LoginKind, TaskId, Workload,
};
use crate::sample::quantile;
use crate::templates::{EndpointId, Segment};

/// Where the generated files will be used from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteOptions {
    /// The base URL to put in the scenario (`host:`) and the Locust classes; `None` leaves it
    /// to the command line.
    pub host: Option<String>,
    /// Directory of the CSV files relative to the scenario (and Locust) file, e.g. `data`;
    /// empty means beside it.
    pub data_dir: String,
}

/// Most rows written to one CSV file (rows are repeated in proportion to their counts).
pub const MAX_CSV_ROWS: usize = 5_000;

/// A task of the generated scenario: one endpoint, or a frequent pair of endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
struct TaskPlan {
    steps: Vec<TaskId>,
    weight: u64,
}

/// The value of one placeholder.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Val {
    Lit(String),
    Feed(String, String),
    Var(String),
    RandomString(usize),
}

/// A rendered request, independent of the output language.
#[derive(Debug, Clone)]
struct Req {
    method: String,
    name: String,
    path: Vec<Val>,
    query: Vec<(String, Val)>,
    headers: Vec<(String, Vec<Val>)>,
    body: Option<ReqBody>,
}

impl Req {
    /// Adds the data feeds this request draws values from to `out`.
    fn feeds_into(&self, out: &mut BTreeSet<String>) {
        let mut visit = |v: &Val| {
            if let Val::Feed(f, _) = v {
                out.insert(f.clone());
            }
        };
        self.path.iter().for_each(&mut visit);
        self.query.iter().for_each(|(_, v)| visit(v));
        self.headers
            .iter()
            .flat_map(|(_, v)| v)
            .for_each(&mut visit);
        match &self.body {
            Some(ReqBody::Text(v)) => v.iter().for_each(&mut visit),
            Some(ReqBody::Form(f)) => f.iter().for_each(|(_, v)| visit(v)),
            None => {}
        }
    }
}

#[derive(Debug, Clone)]
enum ReqBody {
    Text(Vec<Val>),
    Form(Vec<(String, Val)>),
}

/// Tasks for a class: pairs `A -> B` where B follows A in at least 60% of A's transitions
/// (and at least 3 times) become two-step sequences weighted by the pair's count; every
/// remaining request becomes a single-request task weighted by its remaining count. Each
/// recorded request is counted once, so the endpoint mix is preserved.
fn plan_tasks(c: &ClassModel) -> Vec<TaskPlan> {
    let mut residual: HashMap<TaskId, u64> = c.endpoint_counts.iter().copied().collect();
    let mut out_total: HashMap<TaskId, u64> = HashMap::new();
    for (a, _, n) in &c.transitions {
        if let Some(a) = a {
            *out_total.entry(*a).or_default() += n;
        }
    }
    let mut used: HashSet<TaskId> = HashSet::new();
    let mut plans = Vec::new();
    for (a, b, n) in &c.transitions {
        let (Some(a), Some(b)) = (a, b) else { continue };
        if a == b || *n < 3 || used.contains(a) || used.contains(b) {
            continue;
        }
        let out = out_total.get(a).copied().unwrap_or(0).max(1);
        if (*n as f64) / (out as f64) < 0.6 {
            continue;
        }
        let ra = residual.get(a).copied().unwrap_or(0);
        let rb = residual.get(b).copied().unwrap_or(0);
        let w = (*n).min(ra).min(rb);
        if w == 0 {
            continue;
        }
        used.insert(*a);
        used.insert(*b);
        residual.insert(*a, ra - w);
        residual.insert(*b, rb - w);
        plans.push(TaskPlan {
            steps: vec![*a, *b],
            weight: w,
        });
    }
    for (t, _) in &c.endpoint_counts {
        let r = residual.get(t).copied().unwrap_or(0);
        if r > 0 {
            plans.push(TaskPlan {
                steps: vec![*t],
                weight: r,
            });
        }
    }
    plans.sort_by(|a, b| b.weight.cmp(&a.weight).then(a.steps.cmp(&b.steps)));
    plans
}

/// The wait time of a class from its think-time sample: `(min, max)` seconds, equal for a
/// constant; `None` without a sample.
/// How long a class's users pause between tasks.
#[derive(Debug, Clone, PartialEq)]
enum Wait {
    /// The recorded gaps barely vary.
    Constant(f64),
    /// The recorded gaps as 21 quantiles (p0, p5, ..., p100): think times are far from uniform
    /// (many short gaps and a long tail), and a uniform `between` cannot follow them.
    Quantiles(Vec<f64>),
}

impl Wait {
    /// The mean pause.
    fn mean(&self) -> f64 {
        match self {
            Wait::Constant(c) => *c,
            // The distribution is piecewise uniform between neighbouring quantiles.
            Wait::Quantiles(q) if q.len() >= 2 => {
                q.windows(2).map(|w| (w[0] + w[1]) / 2.0).sum::<f64>() / (q.len() - 1) as f64
            }
            Wait::Quantiles(q) => q.first().copied().unwrap_or(0.0),
        }
    }

    /// For the summary table: `0.5` or `0..1.2` (p0..p100).
    fn short(&self) -> String {
        match self {
            Wait::Constant(c) => fmt_secs(*c),
            Wait::Quantiles(q) => format!(
                "{}..{}",
                fmt_secs(q.first().copied().unwrap_or(0.0)),
                fmt_secs(q.last().copied().unwrap_or(0.0))
            ),
        }
    }
}

/// Tasks per session as 21 quantiles: the recorded session lengths (requests) divided by the
/// requests per task (2 for a pair). `None` without sessions.
fn session_tasks(c: &ClassModel, paired: f64) -> Option<Vec<f64>> {
    let per_task = 1.0 / (1.0 - paired.clamp(0.0, 0.9));
    let r = |x: f64| ((x / per_task).max(1.0) * 10.0).round() / 10.0;
    (0..WAIT_QUANTILES)
        .map(|i| quantile(&c.session_lengths, i as f64 / (WAIT_QUANTILES - 1) as f64).map(r))
        .collect()
}

/// The share of a class's requests that are the second step of a two-step sequence.
fn paired_share(plans: &[(TaskPlan, Vec<Req>)]) -> f64 {
    let (tasks, requests) = plans.iter().fold((0u64, 0u64), |(t, r), (p, _)| {
        (t + p.weight, r + p.weight * p.steps.len() as u64)
    });
    if requests == 0 {
        0.0
    } else {
        1.0 - tasks as f64 / requests as f64
    }
}

/// The locustfile's session support (mynah's `session_length`): Locust users live one
/// session, so classes with recorded session lengths derive from this base, which starts a new
/// visit (cookies cleared, `on_start` again) when a session has run its tasks.
const LOCUST_SESSIONS: &str = r#"

def session_tasks(quantiles):
    """Draws the tasks of one session from the recorded session lengths."""
    last = len(quantiles) - 1
    x = random.random() * last
    i = int(x)
    j = min(i + 1, last)
    n = quantiles[i] + (quantiles[j] - quantiles[i]) * (x - i)
    return max(1, round(n))


class RecordedSession(HttpUser):
    """A user whose visits last as long as the recorded sessions.

    When a session has run its tasks, the user starts a new visit: its
    cookies are cleared and on_start (the login) runs again, like the
    session_length of the mynah scenario.
    """

    abstract = True
    session_length = [1]
    tasks_left = 0

    def on_start(self):
        """Draws the length of the new session."""
        self.tasks_left = session_tasks(self.session_length)

    def count_task(self):
        """Starts a new session when this one has run its tasks."""
        if self.tasks_left <= 0:
            self.on_stop()
            self.client.cookies.clear()
            self.on_start()
        self.tasks_left -= 1
"#;

/// A Python list of numbers, wrapped to stay within PEP 8's 79 columns when it is indented
/// by four spaces after `name = `.
fn py_list(values: &[f64]) -> String {
    let items: Vec<String> = values.iter().map(|x| fmt_secs(*x)).collect();
    let one = format!("[{}]", items.join(", "));
    if one.len() <= 50 {
        return one;
    }
    let mut out = String::from("[\n");
    let mut line = String::from("       ");
    for it in &items {
        if line.len() + it.len() + 2 > 79 {
            out.push_str(line.trim_end());
            out.push('\n');
            line = String::from("       ");
        }
        line.push(' ');
        line.push_str(it);
        line.push(',');
    }
    out.push_str(line.trim_end());
    out.push_str("\n    ]");
    out
}

/// Quantiles written for a [`Wait::Quantiles`].
const WAIT_QUANTILES: usize = 21;

/// The pause between a class's tasks. `paired` is the share of the class's requests sent as the
/// second step of a two-step sequence, right after the first: those gaps are (close to) zero
/// in the run, so the pause is drawn from the rest of the recorded gaps, the longest
/// `1 - paired` of them, and the whole run's gaps follow the recorded distribution.
fn wait_of(c: &ClassModel, paired: f64) -> Option<Wait> {
    let r = |x: f64| (x.max(0.0) * 1000.0).round() / 1000.0;
    let paired = if paired.is_finite() {
        paired.clamp(0.0, 0.9)
    } else {
        0.0
    };
    let qs: Vec<f64> = (0..WAIT_QUANTILES)
        .map(|i| {
            let p = paired + (1.0 - paired) * i as f64 / (WAIT_QUANTILES - 1) as f64;
            quantile(&c.think_times, p).map(r)
        })
        .collect::<Option<Vec<f64>>>()?;
    let (lo, hi) = (qs.first().copied()?, qs.last().copied()?);
    if hi - lo < 0.001 {
        return Some(Wait::Constant(r(
            quantile(&c.think_times, 0.5).unwrap_or(lo)
        )));
    }
    Some(Wait::Quantiles(qs))
}

/// The response time assumed when sharing users out between classes (see [`class_weights`]).
const ASSUMED_LATENCY_S: f64 = 0.005;

/// Users per class (as weights summing to about 1,000) such that each class's share of the
/// requests is the recorded one.
///
/// A recorded session ends; a mynah (or Locust) user runs tasks for ever. So a class's share of
/// the *users* is not its share of the sessions: a class whose sessions are short but busy
/// would be drowned by classes with fast-paced users. A user of class c sends `n` requests per
/// task (1, or 2 for a pair) and then pauses `W` on average, so it sends about
/// `n / (W + n * latency)` requests per second; users are shared in proportion to
/// `requests_c / rate_c`. The response time is not known in advance and is taken as
/// [`ASSUMED_LATENCY_S`]: the shares are exact when responses are fast next to think times.
fn class_weights(classes: &[(&ClassModel, f64, Option<Wait>)]) -> Vec<u32> {
    let need: Vec<f64> = classes
        .iter()
        .map(|(c, per_task, wait)| {
            let n = per_task.max(1.0);
            let w = wait.as_ref().map_or(0.0, Wait::mean);
            c.requests as f64 * (w + n * ASSUMED_LATENCY_S) / n
        })
        .collect();
    let total: f64 = need.iter().sum();
    need.iter()
        .map(|x| {
            if total > 0.0 && x.is_finite() {
                ((x / total * 1000.0).round() as u32).max(1)
            } else {
                1
            }
        })
        .collect()
}

fn fmt_secs(x: f64) -> String {
    let s = format!("{x:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.').to_string();
    if s.is_empty() || s == "-0" {
        "0".into()
    } else {
        s
    }
}

/// YAML (and JSON) double-quoted string. Control characters other than tab and line breaks
/// (which YAML parsers refuse even escaped, e.g. NUL) become U+FFFD.
fn q(s: &str) -> String {
    let clean: String = s
        .chars()
        .map(|c| {
            if (c.is_control() && !matches!(c, '\t' | '\n' | '\r')) || c == '\u{feff}' {
                '\u{fffd}'
            } else {
                c
            }
        })
        .collect();
    serde_json::to_string(&clean).unwrap_or_else(|_| "\"\"".into())
}

/// Text safe in a YAML comment: one line, no control characters.
fn comment_safe(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_control() || c == '\u{feff}' {
                '?'
            } else {
                c
            }
        })
        .collect()
}

/// Python double-quoted string literal.
fn py(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) || s.starts_with(' ') || s.ends_with(' ') {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Literal text safe inside a mynah template (no `{{`).
fn lit(s: &str) -> String {
    s.replace("{{", "{\\u007b")
}

fn camel(s: &str) -> String {
    let mut out = String::new();
    for part in s.split('_').filter(|p| !p.is_empty()) {
        let mut cs = part.chars();
        if let Some(f) = cs.next() {
            out.push(f.to_ascii_uppercase());
            out.extend(cs);
        }
    }
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert_str(0, "User");
    }
    out
}

fn join_path(dir: &str, file: &str) -> String {
    let d = dir.trim_end_matches('/');
    if d.is_empty() {
        file.to_string()
    } else {
        format!("{d}/{file}")
    }
}

impl Workload {
    /// Feed names by endpoint id (endpoints with data columns only), and by catch-all method.
    fn feed_names(&self) -> (HashMap<EndpointId, String>, HashMap<TaskId, String>) {
        let mut taken: HashSet<String> = ["accounts".to_string()].into_iter().collect();
        let mut by_ep = HashMap::new();
        for (id, e) in self.templates.endpoints().iter().enumerate() {
            let has_cols = self
                .endpoints
                .get(id)
                .is_some_and(|d| !d.columns.is_empty() && !d.rows.is_empty());
            if e.catch_all || !has_cols {
                continue;
            }
            let statics: Vec<&str> = e
                .segments
                .iter()
                .filter_map(|s| match s {
                    Segment::Literal(l) if !l.is_empty() => Some(l.as_str()),
                    _ => None,
                })
                .collect();
            let base = if statics.is_empty() {
                "root".to_string()
            } else {
                ident(&statics.join("_"))
            };
            let mut name = base.clone();
            if taken.contains(&name) || name.starts_with("other_") {
                name = format!("{base}_{}", e.method.to_ascii_lowercase());
            }
            let mut n = 2;
            while taken.contains(&name) {
                name = format!("{base}_{}_{n}", e.method.to_ascii_lowercase());
                n += 1;
            }
            taken.insert(name.clone());
            by_ep.insert(id, name);
        }
        let base = self.templates.endpoints().len();
        let mut other = HashMap::new();
        for (i, o) in self.other.iter().enumerate() {
            if o.examples.is_empty() {
                continue;
            }
            let mut name = format!("other_{}", ident(&o.method));
            while taken.contains(&name) {
                name.push('_');
            }
            taken.insert(name.clone());
            other.insert(base + i, name);
        }
        (by_ep, other)
    }

    /// Feed names actually referenced by the generated requests (so no unused feed is
    /// declared or written).
    fn used_feeds(
        &self,
        feeds: &(HashMap<EndpointId, String>, HashMap<TaskId, String>),
    ) -> BTreeSet<String> {
        let mut used = BTreeSet::new();
        let mut add = |r: &Req| r.feeds_into(&mut used);
        for c in &self.classes {
            let token = matches!(c.login, Some((_, LoginKind::Token(_))));
            if let Some((ep, _)) = &c.login {
                if let Some(r) = self.request(*ep, feeds, true, false) {
                    add(&r);
                }
            }
            for p in plan_tasks(c) {
                for t in p.steps {
                    if let Some(r) = self.request(t, feeds, false, token) {
                        add(&r);
                    }
                }
            }
        }
        used
    }

    /// The feeds to declare and write: `feed_names` restricted to the used ones.
    fn live_feeds(&self) -> (HashMap<EndpointId, String>, HashMap<TaskId, String>) {
        let all = self.feed_names();
        let used = self.used_feeds(&all);
        let keep = |m: &HashMap<usize, String>| -> HashMap<usize, String> {
            m.iter()
                .filter(|(_, n)| used.contains(*n))
                .map(|(k, v)| (*k, v.clone()))
                .collect()
        };
        // Requests render the same with the restricted map: every used name is kept.
        (keep(&all.0), keep(&all.1))
    }

    /// The tasks of a class that can be rendered, with their requests.
    fn class_tasks(
        &self,
        c: &ClassModel,
        feeds: &(HashMap<EndpointId, String>, HashMap<TaskId, String>),
    ) -> Vec<(TaskPlan, Vec<Req>)> {
        let token = matches!(c.login, Some((_, LoginKind::Token(_))));
        plan_tasks(c)
            .into_iter()
            .filter_map(|p| {
                let reqs: Vec<Req> = p
                    .steps
                    .iter()
                    .filter_map(|t| self.request(*t, feeds, false, token))
                    .collect();
                (reqs.len() == p.steps.len() && !reqs.is_empty()).then_some((p, reqs))
            })
            .collect()
    }

    /// True when at least one class has a task that can be replayed; without one the
    /// scenario has no runnable user class (and `mynah_scenario::parse` refuses it).
    pub fn has_tasks(&self) -> bool {
        let feeds = self.feed_names();
        self.classes
            .iter()
            .any(|c| !self.class_tasks(c, &feeds).is_empty())
    }

    /// True when some class logs in with the endpoint's user or password fields.
    fn login_endpoints(&self) -> BTreeSet<EndpointId> {
        self.classes
            .iter()
            .filter_map(|c| c.login.as_ref().map(|(e, _)| *e))
            .collect()
    }

    fn uses_accounts(&self) -> bool {
        self.login_endpoints().iter().any(|e| {
            self.endpoints.get(*e).is_some_and(|d| {
                d.columns.iter().any(|c| {
                    let name = match &c.source {
                        ColumnSource::Query(n) | ColumnSource::Form(n) | ColumnSource::Json(n) => n,
                        ColumnSource::Path => return false,
                    };
                    is_user_field(name) || is_password_field(name)
                })
            })
        })
    }

    /// Builds the request of a task target; `login` maps credential fields to `accounts`,
    /// `token` adds `Authorization: Bearer {{ token }}`.
    fn request(
        &self,
        t: TaskId,
        feeds: &(HashMap<EndpointId, String>, HashMap<TaskId, String>),
        login: bool,
        token: bool,
    ) -> Option<Req> {
        let n = self.templates.endpoints().len();
        let mut headers = Vec::new();
        if token {
            headers.push((
                "Authorization".to_string(),
                vec![Val::Lit("Bearer ".into()), Val::Var("token".into())],
            ));
        }
        if t >= n {
            let o = self.other.get(t - n)?;
            let feed = feeds.1.get(&t)?;
            return Some(Req {
                method: o.method.clone(),
                name: format!("{} (other)", o.method),
                path: vec![Val::Feed(feed.clone(), "target".into())],
                query: Vec::new(),
                headers,
                body: None,
            });
        }
        let e = self.templates.endpoint(t);
        let data = self.endpoints.get(t)?;
        let feed = feeds.0.get(&t);
        let col = |i: usize, source_name: Option<&str>| -> Val {
            if login {
                if let Some(nm) = source_name {
                    if is_user_field(nm) {
                        return Val::Feed("accounts".into(), "user".into());
                    }
                    if is_password_field(nm) {
                        return Val::Feed("accounts".into(), "password".into());
                    }
                }
            }
            match (feed, data.columns.get(i)) {
                (Some(f), Some(c)) => Val::Feed(f.clone(), c.name.clone()),
                _ => Val::Lit(String::new()),
            }
        };
        let mut path = Vec::new();
        let mut var_i = 0;
        let path_cols: Vec<usize> = data
            .columns
            .iter()
            .enumerate()
            .filter(|(_, c)| c.source == ColumnSource::Path)
            .map(|(i, _)| i)
            .collect();
        for seg in &e.segments {
            path.push(Val::Lit("/".into()));
            match seg {
                Segment::Literal(l) => path.push(Val::Lit(l.replace("{{", "%7B%7B"))),
                Segment::Var(_) => {
                    let v = match path_cols.get(var_i) {
                        Some(i) => col(*i, None),
                        None => Val::Lit("1".into()),
                    };
                    var_i += 1;
                    path.push(v);
                }
            }
        }
        if path.is_empty() {
            path.push(Val::Lit("/".into()));
        }
        let mut query = Vec::new();
        for p in &e.query {
            match &p.fixed {
                Some(v) => query.push((p.name.clone(), Val::Lit(v.clone()))),
                None => {
                    let i = data
                        .columns
                        .iter()
                        .position(|c| c.source == ColumnSource::Query(p.name.clone()));
                    let v = match i {
                        Some(i) => col(i, Some(&p.name)),
                        None => Val::Lit(String::new()),
                    };
                    query.push((p.name.clone(), v));
                }
            }
        }
        let body = match &data.body {
            BodyModel::None => None,
            BodyModel::Json(pieces) => {
                let json_cols: Vec<usize> = data
                    .columns
                    .iter()
                    .enumerate()
                    .filter(|(_, c)| matches!(c.source, ColumnSource::Json(_)))
                    .map(|(i, _)| i)
                    .collect();
                let mut vals = Vec::new();
                for p in pieces {
                    match p {
                        BodyPiece::Text(t) => vals.push(Val::Lit(lit(t))),
                        BodyPiece::Column { index, .. } => {
                            let v = match json_cols.get(*index) {
                                Some(i) => {
                                    let nm = match data.columns.get(*i).map(|c| &c.source) {
                                        Some(ColumnSource::Json(n)) => Some(n.as_str()),
                                        _ => None,
                                    };
                                    col(*i, nm)
                                }
                                None => Val::Lit(String::new()),
                            };
                            vals.push(v);
                        }
                    }
                }
                Some(ReqBody::Text(vals))
            }
            BodyModel::Form(fields) => Some(ReqBody::Form(
                fields
                    .iter()
                    .map(|(k, i)| (k.clone(), col(*i, Some(k))))
                    .collect(),
            )),
            BodyModel::Opaque(size) => {
                Some(ReqBody::Text(vec![Val::RandomString((*size).min(65_536))]))
            }
        };
        if body.is_some() {
            let ct = data
                .content_type
                .clone()
                .unwrap_or_else(|| match &data.body {
                    BodyModel::Json(_) => "application/json".into(),
                    _ => "application/octet-stream".into(),
                });
            if !matches!(data.body, BodyModel::Form(_)) {
                headers.push(("Content-Type".into(), vec![Val::Lit(ct)]));
            }
        }
        Some(Req {
            method: e.method.clone(),
            name: e.path(),
            path,
            query,
            headers,
            body,
        })
    }

    /// Each class's user weight (see [`class_weights`]), by class index.
    fn user_weights(
        &self,
        feeds: &(HashMap<EndpointId, String>, HashMap<TaskId, String>),
    ) -> Vec<u32> {
        let rows: Vec<(&ClassModel, f64, Option<Wait>)> = self
            .classes
            .iter()
            .map(|c| {
                let paired = paired_share(&self.class_tasks(c, feeds));
                // Requests per task: each paired request rides along with another one.
                let per_task = 1.0 / (1.0 - paired.clamp(0.0, 0.9));
                (c, per_task, wait_of(c, paired))
            })
            .collect();
        class_weights(&rows)
    }

    /// The mynah scenario (YAML) that replays this workload with `mynah run`.
    ///
    /// Sequences: see the crate documentation; in short, strongly ordered pairs of endpoints
    /// become two-step `sequence` tasks, every other request a single-request task, all
    /// weighted so the endpoint mix of each class is the recorded one.
    pub fn scenario_yaml(&self, opts: &WriteOptions) -> String {
        let feeds = self.live_feeds();
        let weights = self.user_weights(&feeds);
        let mut y = String::new();
        let total_requests: u64 = self.classes.iter().map(|c| c.requests).sum();
        let _ = writeln!(
            y,
            "# Generated by mynah synth from {} recorded exchanges in {} sessions.",
            self.exchanges, self.sessions
        );
        y.push_str("# User classes are groups of sessions (anonymous/authenticated, split by client kind when\n");
        y.push_str("# that changes the endpoint mix). Users never end, unlike sessions: a class's weight is\n");
        y.push_str("# the share of users that makes its share of the requests the recorded one, given its\n");
        y.push_str("# requests per task and its mean think time (and 5 ms responses).\n");
        y.push_str("# Task weights are request counts: a request that followed another in at least 60% of\n");
        y.push_str("# cases is kept with it as a two-step `sequence`; the others are single-request tasks.\n");
        y.push_str(
            "# wait_time is the p10..p90 range of the recorded gaps between a response and the\n",
        );
        y.push_str("# session's next request (steps inside a sequence run without a pause).\n");
        if let Some(h) = &opts.host {
            let _ = writeln!(y, "host: {}", q(h));
        }
        let uses_accounts = self.uses_accounts();
        let mut ep_feeds: Vec<(&EndpointId, &String)> = feeds.0.iter().collect();
        ep_feeds.sort_by(|a, b| a.1.cmp(b.1));
        let mut other_feeds: Vec<(&TaskId, &String)> = feeds.1.iter().collect();
        other_feeds.sort_by(|a, b| a.1.cmp(b.1));
        if uses_accounts || !ep_feeds.is_empty() || !other_feeds.is_empty() {
            y.push_str("data:\n");
            if uses_accounts {
                y.push_str("  # Login credentials. The recorded values are masked pseudonyms: REPLACE accounts.csv\n");
                y.push_str("  # (columns user,password) with real test accounts before running.\n");
                let _ = writeln!(
                    y,
                    "  accounts: {{ csv: {}, mode: random }}",
                    q(&join_path(&opts.data_dir, "accounts.csv"))
                );
            }
            for (id, name) in ep_feeds {
                let _ = writeln!(
                    y,
                    "  # values recorded for {}",
                    comment_safe(&self.templates.endpoint(*id).label())
                );
                let _ = writeln!(
                    y,
                    "  {name}: {{ csv: {}, mode: random }}",
                    q(&join_path(&opts.data_dir, &format!("{name}.csv")))
                );
            }
            for (t, name) in other_feeds {
                let _ = writeln!(
                    y,
                    "  # recorded examples of rare {} requests (the catch-all endpoint)",
                    comment_safe(&self.task_label(*t))
                );
                let _ = writeln!(
                    y,
                    "  {name}: {{ csv: {}, mode: random }}",
                    q(&join_path(&opts.data_dir, &format!("{name}.csv")))
                );
            }
        }
        y.push_str("users:\n");
        for (ci, c) in self.classes.iter().enumerate() {
            let plans = self.class_tasks(c, &feeds);
            if plans.is_empty() {
                continue;
            }
            let _ = writeln!(y, "  - name: {}", q(&c.name));
            let _ = writeln!(
                y,
                "    # {} sessions ({:.1}% of all), {} requests ({:.1}% of all)",
                c.sessions,
                c.share * 100.0,
                c.requests,
                pct(c.requests, total_requests)
            );
            let lens = &c.session_lengths;
            if let (Some(p50), Some(p90)) = (quantile(lens, 0.5), quantile(lens, 0.9)) {
                let _ = writeln!(y, "    # session length: median {p50} requests, p90 {p90} (mynah users do not end; for reference)");
            }
            if let Some(ua) = &c.user_agent {
                let _ = writeln!(y, "    # most common User-Agent: {}", comment_safe(ua));
            }
            let _ = writeln!(y, "    weight: {}", weights.get(ci).copied().unwrap_or(1));
            match wait_of(c, paired_share(&plans)) {
                Some(wait) => {
                    let t = &c.think_times;
                    let _ = writeln!(
                        y,
                        "    # think time observed (n={}): p10 {}s, p50 {}s, p90 {}s, max {}s",
                        t.len(),
                        fmt_secs(quantile(t, 0.1).unwrap_or(0.0)),
                        fmt_secs(quantile(t, 0.5).unwrap_or(0.0)),
                        fmt_secs(quantile(t, 0.9).unwrap_or(0.0)),
                        fmt_secs(quantile(t, 1.0).unwrap_or(0.0)),
                    );
                    match wait {
                        Wait::Constant(c) => {
                            let _ = writeln!(y, "    wait_time: {{ constant: {} }}", fmt_secs(c));
                        }
                        Wait::Quantiles(qs) => {
                            y.push_str("    # the recorded distribution, as p0, p5, ..., p100:\n");
                            let list: Vec<String> = qs.iter().map(|x| fmt_secs(*x)).collect();
                            let _ = writeln!(
                                y,
                                "    wait_time: {{ quantiles: [{}] }}",
                                list.join(", ")
                            );
                        }
                    }
                }
                None => {
                    y.push_str("    # no think time observed (sessions of one request): no pause\n")
                }
            }
            if let Some(tasks) = session_tasks(c, paired_share(&plans)) {
                y.push_str("    # tasks per session (recorded session lengths, p0, p5, ..., p100): then the\n");
                y.push_str("    # user logs in again with a new cookie jar, like a new visitor\n");
                let list: Vec<String> = tasks.iter().map(|x| fmt_secs(*x)).collect();
                let _ = writeln!(
                    y,
                    "    session_length: {{ quantiles: [{}] }}",
                    list.join(", ")
                );
            }
            if c.sessions_without_login > 0 {
                let _ = writeln!(y, "    # {} sessions carried credentials from before the recording; they are sent without them", c.sessions_without_login);
            }
            if let Some((ep, kind)) = &c.login {
                if let Some(req) = self.request(*ep, &feeds, true, false) {
                    match kind {
                        LoginKind::Cookie(name) => {
                            let _ = writeln!(y, "    # login: the response sets the `{name}` cookie, kept by the cookie jar");
                        }
                        LoginKind::Token(field) => {
                            let _ = writeln!(y, "    # login: the response's `{field}` is sent back as `Authorization: Bearer`");
                        }
                    }
                    y.push_str("    on_start:\n");
                    write_step(&mut y, "      - ", &req);
                    if let LoginKind::Token(field) = kind {
                        let _ = writeln!(
                            y,
                            "        extract: {{ token: {{ json: {} }} }}",
                            q(&format!("$.{field}"))
                        );
                    }
                }
            }
            if let Some(ep) = c.logout {
                if let Some(req) = self.request(ep, &feeds, true, false) {
                    y.push_str("    # the recorded sessions end with this logout\n");
                    y.push_str("    on_stop:\n");
                    write_step(&mut y, "      - ", &req);
                }
            }
            let top: Vec<String> = c
                .transitions
                .iter()
                .take(5)
                .map(|(a, b, n)| {
                    let a = a.map_or("(start)".to_string(), |t| self.task_label(t));
                    let b = b.map_or("(end)".to_string(), |t| self.task_label(t));
                    format!("{a} -> {b} ({n})")
                })
                .collect();
            if !top.is_empty() {
                y.push_str("    # top transitions:\n");
                for t in top {
                    let _ = writeln!(y, "    #   {}", comment_safe(&t));
                }
            }
            y.push_str("    tasks:\n");
            for (p, reqs) in &plans {
                let name = p
                    .steps
                    .iter()
                    .map(|t| self.task_label(*t))
                    .collect::<Vec<_>>()
                    .join(" -> ");
                let _ = writeln!(
                    y,
                    "      # {:.1}% of the class's requests",
                    pct(p.weight * p.steps.len() as u64, c.requests)
                );
                let _ = writeln!(y, "      - name: {}", q(&name));
                let _ = writeln!(y, "        weight: {}", p.weight.min(u64::from(u32::MAX)));
                if let [one] = reqs.as_slice() {
                    write_request(&mut y, "        ", one);
                } else {
                    y.push_str("        sequence:\n");
                    for r in reqs {
                        write_step(&mut y, "          - ", r);
                    }
                }
            }
        }
        // Labels and User-Agents in comments are recorded text: keep each comment on its line.
        y.lines()
            .map(|l| {
                if l.trim_start().starts_with('#') {
                    comment_safe(l)
                } else {
                    l.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
            + "\n"
    }

    /// The CSV feeds the scenario and the Locust file read: `(file name, CSV text)`. Rows are
    /// repeated in proportion to how often they were recorded (at most [`MAX_CSV_ROWS`]).
    pub fn data_files(&self) -> Vec<(String, String)> {
        let feeds = self.live_feeds();
        let mut out = Vec::new();
        if self.uses_accounts() {
            let mut s = String::from("user,password\n");
            if self.accounts.is_empty() {
                s.push_str("replace-me,replace-me\n");
            }
            for ((u, p), _) in self.accounts.iter().take(MAX_CSV_ROWS) {
                let _ = writeln!(s, "{},{}", csv_field(u), csv_field(p));
            }
            out.push(("accounts.csv".to_string(), s));
        }
        let mut eps: Vec<(&EndpointId, &String)> = feeds.0.iter().collect();
        eps.sort_by(|a, b| a.1.cmp(b.1));
        for (id, name) in eps {
            let Some(d) = self.endpoints.get(*id) else {
                continue;
            };
            let mut s = d
                .columns
                .iter()
                .map(|c| csv_field(&c.name))
                .collect::<Vec<_>>()
                .join(",");
            s.push('\n');
            let total: u64 = d.rows.iter().map(|r| r.1).sum::<u64>().max(1);
            let mut written = 0;
            'rows: for (row, n) in &d.rows {
                let copies = ((*n as f64) * 1000.0 / total as f64).round().max(1.0) as usize;
                for _ in 0..copies {
                    if written >= MAX_CSV_ROWS {
                        break 'rows;
                    }
                    let line: Vec<String> = row.iter().map(|v| csv_field(v)).collect();
                    s.push_str(&line.join(","));
                    s.push('\n');
                    written += 1;
                }
            }
            out.push((format!("{name}.csv"), s));
        }
        let mut others: Vec<(&TaskId, &String)> = feeds.1.iter().collect();
        others.sort_by(|a, b| a.1.cmp(b.1));
        let n = self.templates.endpoints().len();
        for (t, name) in others {
            let Some(o) = self.other.get(t - n) else {
                continue;
            };
            let mut s = String::from("target\n");
            for e in &o.examples {
                s.push_str(&csv_field(e));
                s.push('\n');
            }
            out.push((format!("{name}.csv"), s));
        }
        out
    }

    /// A Locust file with the same classes, weights, tasks, waits, login and data as the
    /// scenario; it reads the CSV files from `opts.data_dir` beside itself.
    pub fn locustfile(&self, opts: &WriteOptions) -> String {
        let feeds = self.live_feeds();
        let uses_accounts = self.uses_accounts();
        let mut feed_list: Vec<(String, String)> = Vec::new(); // (feed, CONST)
        if uses_accounts {
            feed_list.push(("accounts".into(), "ACCOUNTS".into()));
        }
        let mut names: Vec<&String> = feeds.0.values().chain(feeds.1.values()).collect();
        names.sort();
        for n in names {
            feed_list.push((n.clone(), n.to_ascii_uppercase()));
        }
        let constant_of: HashMap<String, String> = feed_list.iter().cloned().collect();
        let mut body = String::new();
        let weights = self.user_weights(&feeds);
        let mut used_quantiles = false;
        let mut used_sessions = false;
        let mut used_constant = false;
        let mut used_random = false;
        let mut used_json = false;
        for (ci, c) in self.classes.iter().enumerate() {
            let plans = self.class_tasks(c, &feeds);
            if plans.is_empty() {
                continue;
            }
            body.push_str("\n\n");
            let sessions = session_tasks(c, paired_share(&plans));
            used_sessions |= sessions.is_some();
            let base = if sessions.is_some() {
                "RecordedSession"
            } else {
                "HttpUser"
            };
            let _ = writeln!(body, "class {}({base}):", camel(&c.name));
            let _ = writeln!(
                body,
                "    \"\"\"{}: {} sessions ({:.1}%), {} requests.\"\"\"",
                c.name.replace('"', "'"),
                c.sessions,
                c.share * 100.0,
                c.requests
            );
            body.push('\n');
            let _ = writeln!(
                body,
                "    weight = {}",
                weights.get(ci).copied().unwrap_or(1)
            );
            if let Some(h) = &opts.host {
                let _ = writeln!(body, "    host = {}", py(h));
            }
            match wait_of(c, paired_share(&plans)) {
                Some(Wait::Constant(x)) => {
                    used_constant = true;
                    let _ = writeln!(body, "    wait_time = constant({})", fmt_secs(x));
                }
                Some(Wait::Quantiles(qs)) => {
                    used_quantiles = true;
                    used_random = true;
                    let _ = writeln!(body, "    wait_time = quantile_wait({})", py_list(&qs));
                }
                None => {
                    used_constant = true;
                    body.push_str("    wait_time = constant(0)\n");
                }
            }
            if let Some(tasks) = &sessions {
                used_random = true;
                let _ = writeln!(body, "    session_length = {}", py_list(tasks));
            }
            if let Some((ep, kind)) = &c.login {
                if let Some(req) = self.request(*ep, &feeds, true, false) {
                    body.push_str("\n    def on_start(self):\n");
                    body.push_str("        \"\"\"Logs in like the recorded sessions did.\"\"\"\n");
                    if sessions.is_some() {
                        body.push_str("        super().on_start()\n");
                    }
                    used_random |= py_rows(&mut body, &req, &constant_of);
                    match kind {
                        LoginKind::Token(field) => {
                            used_json = true;
                            py_call(&mut body, &req, "response = ");
                            body.push_str("        try:\n");
                            let _ = writeln!(
                                body,
                                "            self.token = str(response.json().get({}, \"\"))",
                                py(field)
                            );
                            body.push_str("        except (ValueError, AttributeError):\n");
                            body.push_str("            self.token = \"\"\n");
                        }
                        LoginKind::Cookie(_) => py_call(&mut body, &req, ""),
                    }
                }
            }
            if let Some(ep) = c.logout {
                if let Some(req) = self.request(ep, &feeds, true, false) {
                    body.push_str("\n    def on_stop(self):\n");
                    body.push_str(
                        "        \"\"\"Logs out, as the recorded sessions ended.\"\"\"\n",
                    );
                    used_random |= py_rows(&mut body, &req, &constant_of);
                    py_call(&mut body, &req, "");
                }
            }
            let mut method_names: HashSet<String> = HashSet::new();
            for (p, reqs) in &plans {
                let label = p
                    .steps
                    .iter()
                    .map(|t| self.task_label(*t))
                    .collect::<Vec<_>>()
                    .join(" then ");
                let mut m = format!("task_{}", ident(&label));
                if m.len() > 60 {
                    m.truncate(60);
                    m = m.trim_end_matches('_').to_string();
                }
                let base = m.clone();
                let mut n = 2;
                while !method_names.insert(m.clone()) {
                    m = format!("{base}_{n}");
                    n += 1;
                }
                body.push('\n');
                let _ = writeln!(body, "    @task({})", p.weight.min(u64::from(u32::MAX)));
                let _ = writeln!(body, "    def {m}(self):");
                let _ = writeln!(
                    body,
                    "        \"\"\"{}.\"\"\"",
                    comment_safe(&label).replace('"', "'").replace('\\', "/")
                );
                if sessions.is_some() {
                    body.push_str("        self.count_task()\n");
                }
                for r in reqs {
                    used_random |= py_rows(&mut body, r, &constant_of);
                    py_call(&mut body, r, "");
                }
            }
        }
        let _ = used_json;
        let mut head = String::new();
        head.push_str("\"\"\"Locust file generated by mynah synth.\n\n");
        let _ = writeln!(
            head,
            "Learned from {} recorded exchanges in {} sessions.",
            self.exchanges, self.sessions
        );
        head.push_str("Classes, weights, tasks and wait times follow the recorded\n");
        head.push_str("sessions; data comes from the CSV files written with this file\n");
        head.push_str("(the same ones the mynah scenario reads).\n");
        if uses_accounts {
            head.push_str("accounts.csv holds masked pseudonyms: replace it with real test\n");
            head.push_str("accounts.\n");
        }
        head.push_str("\"\"\"\n\n");
        if !feed_list.is_empty() {
            head.push_str("import csv\nimport os\n");
        }
        if used_random {
            head.push_str("import random\n");
        }
        if !feed_list.is_empty() || used_random {
            head.push('\n');
        }
        let mut imports = vec!["HttpUser"];
        if used_constant {
            imports.push("constant");
        }
        imports.push("task");
        let _ = writeln!(head, "from locust import {}", imports.join(", "));
        if !feed_list.is_empty() {
            head.push_str(
                "\nDATA_DIR = os.path.join(\n    os.path.dirname(os.path.abspath(__file__)),\n",
            );
            let _ = writeln!(
                head,
                "    {},\n)",
                py(if opts.data_dir.is_empty() {
                    "."
                } else {
                    &opts.data_dir
                })
            );
            head.push_str("\n\ndef load_rows(name):\n");
            head.push_str("    \"\"\"Reads one CSV feed as a list of dicts.\"\"\"\n");
            head.push_str("    path = os.path.join(DATA_DIR, name)\n");
            head.push_str("    with open(path, newline=\"\", encoding=\"utf-8\") as f:\n");
            head.push_str("        return list(csv.DictReader(f))\n\n\n");
            for (feed, constant) in &feed_list {
                let _ = writeln!(
                    head,
                    "{constant} = load_rows({})",
                    py(&format!("{feed}.csv"))
                );
            }
        }
        if used_quantiles {
            head.push_str("\n\ndef quantile_wait(quantiles):\n");
            head.push_str("    \"\"\"A wait_time drawn from the recorded think times.\n\n");
            head.push_str(
                "    `quantiles` are evenly spaced (p0, p5, ..., p100); each pause picks a\n",
            );
            head.push_str(
                "    uniform point and interpolates between the two neighbouring values\n",
            );
            head.push_str("    (mynah's `wait_time: { quantiles: [...] }`).\n");
            head.push_str("    \"\"\"\n");
            head.push_str("    last = len(quantiles) - 1\n\n");
            head.push_str("    def wait(self):\n");
            head.push_str("        x = random.random() * last\n");
            head.push_str("        i = int(x)\n");
            head.push_str("        j = min(i + 1, last)\n");
            head.push_str(
                "        return quantiles[i] + (quantiles[j] - quantiles[i]) * (x - i)\n\n",
            );
            head.push_str("    return wait\n");
        }
        if used_sessions {
            head.push_str(LOCUST_SESSIONS);
        }
        head.push_str(&body);
        head
    }

    /// A terminal summary: endpoints with shares, classes with weights, top transitions.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{} exchanges, {} sessions, {} user classes",
            self.exchanges,
            self.sessions,
            self.classes.len()
        );
        let mut counts: HashMap<TaskId, u64> = HashMap::new();
        for c in &self.classes {
            for (t, n) in &c.endpoint_counts {
                *counts.entry(*t).or_default() += n;
            }
        }
        let total: u64 = counts.values().sum();
        let mut rows: Vec<(TaskId, u64)> = counts.into_iter().collect();
        rows.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let labels: Vec<String> = rows.iter().map(|(t, _)| self.task_label(*t)).collect();
        let w = labels
            .iter()
            .map(|l| l.chars().count())
            .max()
            .unwrap_or(8)
            .clamp(8, 70);
        let _ = writeln!(s, "\n{:<w$}  {:>8}  {:>6}", "endpoint", "requests", "share");
        for ((_, n), l) in rows.iter().zip(&labels) {
            let _ = writeln!(s, "{:<w$}  {:>8}  {:>5.1}%", l, n, pct(*n, total));
        }
        let feeds = self.live_feeds();
        let weights = self.user_weights(&feeds);
        let _ = writeln!(
            s,
            "\n{:<28}  {:>8}  {:>6}  {:>6}  {:>8}  {:<14}  login",
            "class", "sessions", "share", "weight", "requests", "wait (s)"
        );
        for (ci, c) in self.classes.iter().enumerate() {
            let paired = paired_share(&self.class_tasks(c, &feeds));
            let wait = wait_of(c, paired).map_or_else(|| "-".into(), |w| w.short());
            let login = match &c.login {
                Some((e, LoginKind::Cookie(n))) => format!("{} (cookie {n})", self.task_label(*e)),
                Some((e, LoginKind::Token(f))) => format!("{} (token {f})", self.task_label(*e)),
                None => "-".into(),
            };
            let _ = writeln!(
                s,
                "{:<28}  {:>8}  {:>5.1}%  {:>6}  {:>8}  {:<14}  {}",
                c.name,
                c.sessions,
                c.share * 100.0,
                weights.get(ci).copied().unwrap_or(1),
                c.requests,
                wait,
                login
            );
        }
        for c in &self.classes {
            let _ = writeln!(s, "\ntop transitions of {}:", c.name);
            for (a, b, n) in c.transitions.iter().take(5) {
                let a = a.map_or("(start)".to_string(), |t| self.task_label(t));
                let b = b.map_or("(end)".to_string(), |t| self.task_label(t));
                let _ = writeln!(s, "  {n:>6}  {a} -> {b}");
            }
        }
        s
    }
}

fn pct(n: u64, total: u64) -> f64 {
    if total == 0 {
        0.0
    } else {
        n as f64 * 100.0 / total as f64
    }
}

fn tmpl(vals: &[Val]) -> String {
    let mut s = String::new();
    for v in vals {
        match v {
            // A recorded `{{` would start a template: paths and JSON bodies were already
            // rewritten to an equivalent spelling; elsewhere (query, form, headers) it is
            // split with a space, the only change made to recorded text.
            Val::Lit(l) => s.push_str(&l.replace("{{", "{ {")),
            Val::Feed(f, c) => {
                let _ = write!(s, "{{{{ {f}.{c} }}}}");
            }
            Val::Var(v) => {
                let _ = write!(s, "{{{{ {v} }}}}");
            }
            Val::RandomString(n) => {
                let _ = write!(s, "{{{{ random_string({n}) }}}}");
            }
        }
    }
    s
}

fn write_request(y: &mut String, indent: &str, r: &Req) {
    let _ = writeln!(y, "{indent}request:");
    let i2 = format!("{indent}  ");
    let _ = writeln!(y, "{i2}method: {}", r.method);
    let _ = writeln!(y, "{i2}path: {}", q(&tmpl(&r.path)));
    let _ = writeln!(y, "{i2}name: {}", q(&r.name));
    if !r.query.is_empty() {
        let _ = writeln!(y, "{i2}query:");
        for (k, v) in &r.query {
            let _ = writeln!(
                y,
                "{i2}  {}: {}",
                q(&k.replace("{{", "{ {")),
                q(&tmpl(std::slice::from_ref(v)))
            );
        }
    }
    if !r.headers.is_empty() {
        let _ = writeln!(y, "{i2}headers:");
        for (k, v) in &r.headers {
            let _ = writeln!(y, "{i2}  {}: {}", q(k), q(&tmpl(v)));
        }
    }
    match &r.body {
        None => {}
        Some(ReqBody::Text(v)) => {
            let _ = writeln!(y, "{i2}body: {}", q(&tmpl(v)));
        }
        Some(ReqBody::Form(f)) => {
            let _ = writeln!(y, "{i2}form:");
            for (k, v) in f {
                let _ = writeln!(
                    y,
                    "{i2}  {}: {}",
                    q(&k.replace("{{", "{ {")),
                    q(&tmpl(std::slice::from_ref(v)))
                );
            }
        }
    }
}

fn write_step(y: &mut String, first: &str, r: &Req) {
    // `first` is the indent plus "- ".
    let indent: String = first.chars().map(|_| ' ').collect();
    let mut tmp = String::new();
    write_request(&mut tmp, &indent, r);
    let mut lines = tmp.lines();
    if let Some(l) = lines.next() {
        let _ = writeln!(y, "{first}{}", l.trim_start());
    }
    for l in lines {
        let _ = writeln!(y, "{l}");
    }
}

/// Python expression for a template: a string literal or a concatenation.
fn py_expr(vals: &[Val], consts: &HashMap<String, String>) -> String {
    py_parts(vals, consts).join(" + ")
}

/// The operands of [`py_expr`]'s concatenation.
fn py_parts(vals: &[Val], consts: &HashMap<String, String>) -> Vec<String> {
    let _ = consts;
    let mut parts: Vec<String> = Vec::new();
    for v in vals {
        match v {
            Val::Lit(l) => parts.push(py(l)),
            Val::Feed(f, c) => parts.push(format!("row_{}[{}]", f, py(c))),
            Val::Var(v) => parts.push(format!("self.{v}")),
            Val::RandomString(n) => parts.push(format!("\"x\" * {n}")),
        }
    }
    if parts.is_empty() {
        parts.push("\"\"".into());
    }
    parts
}

/// Emits `row_FEED = random.choice(FEED)` for every feed the request uses; true if any.
fn py_rows(out: &mut String, r: &Req, consts: &HashMap<String, String>) -> bool {
    let mut feeds: BTreeSet<String> = BTreeSet::new();
    r.feeds_into(&mut feeds);
    for f in &feeds {
        let c = consts
            .get(f)
            .cloned()
            .unwrap_or_else(|| f.to_ascii_uppercase());
        let _ = writeln!(out, "        row_{f} = random.choice({c})");
    }
    !feeds.is_empty()
}

/// The path as an f-string (or a plain string when static).
fn py_path(vals: &[Val]) -> String {
    if vals.iter().all(|v| matches!(v, Val::Lit(_))) {
        let s: String = vals
            .iter()
            .map(|v| match v {
                Val::Lit(l) => l.as_str(),
                _ => "",
            })
            .collect();
        return py(&s);
    }
    let mut s = String::from("f\"");
    for v in vals {
        match v {
            Val::Lit(l) => {
                let e = py(l);
                let inner = e.get(1..e.len() - 1).unwrap_or_default();
                s.push_str(&inner.replace('{', "{{").replace('}', "}}"));
            }
            Val::Feed(f, c) => {
                let _ = write!(s, "{{row_{f}['{c}']}}");
            }
            Val::Var(v) => {
                let _ = write!(s, "{{self.{v}}}");
            }
            Val::RandomString(n) => {
                let _ = write!(s, "{{'x' * {n}}}");
            }
        }
    }
    s.push('"');
    s
}

fn py_call(out: &mut String, r: &Req, assign: &str) {
    let consts = HashMap::new();
    let method = r.method.to_ascii_lowercase();
    let known = ["get", "post", "put", "patch", "delete", "head", "options"];
    if known.contains(&method.as_str()) {
        let _ = writeln!(out, "        {assign}self.client.{method}(");
    } else {
        let _ = writeln!(out, "        {assign}self.client.request(");
        let _ = writeln!(out, "            {},", py(&r.method));
    }
    let _ = writeln!(out, "            {},", py_path(&r.path));
    if !r.query.is_empty() {
        out.push_str("            params={\n");
        for (k, v) in &r.query {
            let _ = writeln!(
                out,
                "                {}: {},",
                py(k),
                py_expr(std::slice::from_ref(v), &consts)
            );
        }
        out.push_str("            },\n");
    }
    if !r.headers.is_empty() {
        out.push_str("            headers={\n");
        for (k, v) in &r.headers {
            let _ = writeln!(out, "                {}: {},", py(k), py_expr(v, &consts));
        }
        out.push_str("            },\n");
    }
    match &r.body {
        None => {}
        Some(ReqBody::Text(v)) => {
            let parts = py_parts(v, &consts);
            let e = parts.join(" + ");
            if e.len() + 18 > 79 && parts.len() > 1 {
                out.push_str("            data=(\n");
                for (i, part) in parts.iter().enumerate() {
                    let plus = if i == 0 { "" } else { "+ " };
                    let _ = writeln!(out, "                {plus}{part}");
                }
                out.push_str("            ),\n");
            } else {
                let _ = writeln!(out, "            data={e},");
            }
        }
        Some(ReqBody::Form(f)) => {
            out.push_str("            data={\n");
            for (k, v) in f {
                let _ = writeln!(
                    out,
                    "                {}: {},",
                    py(k),
                    py_expr(std::slice::from_ref(v), &consts)
                );
            }
            out.push_str("            },\n");
        }
    }
    let _ = writeln!(out, "            name={},", py(&r.name));
    out.push_str("        )\n");
}
