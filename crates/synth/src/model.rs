//! The workload model: the second pass over a recording.
//!
//! Exchanges are grouped into sessions by a [`SessionKey`]; a session closes after an idle gap
//! of recorded time (or when the recording ends), and only then is it folded into the
//! statistics of its user class. Per-session state exists only for open sessions.
//!
//! Memory: at most [`SynthOptions::max_open_sessions`] open sessions (the longest idle are
//! closed early beyond that), each buffering at most [`MAX_EVENTS`] requests (a longer session
//! is cut in two); per class, reservoirs of [`RESERVOIR`] think times and session lengths and at
//! most [`MAX_TRANSITIONS`] transitions; per endpoint, at most [`MAX_ROWS`] distinct data rows
//! (with counts, reservoir beyond) and a body shape of at most [`MAX_LEAVES`] JSON leaves.

use std::collections::{BTreeMap, HashMap};

use mynah_traffic::{Exchange, Nanos};
use serde_json::Value;

use crate::sample::{jsd, CountedPool, Reservoir};
use crate::templates::{parse_query, EndpointId, Templates};

/// Requests buffered per open session; a longer session is closed and continued as a new one.
pub const MAX_EVENTS: usize = 512;
/// Size of the think-time and session-length reservoirs of each class.
pub const RESERVOIR: usize = 10_000;
/// Distinct endpoint transitions kept per class.
pub const MAX_TRANSITIONS: usize = 20_000;
/// Distinct data rows kept per endpoint (and accounts), with counts.
pub const MAX_ROWS: usize = 1_000;
/// JSON body leaves turned into data columns per endpoint.
pub const MAX_LEAVES: usize = 32;
/// Recorded examples kept per method for the catch-all endpoint.
pub const MAX_EXAMPLES: usize = 32;
/// Methods the catch-all distinguishes.
pub const MAX_OTHER_METHODS: usize = 16;
/// Longest data value kept (longer ones are cut at a character boundary).
pub const MAX_VALUE: usize = 1_024;

/// How requests are grouped into sessions.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum SessionKey {
    /// A session-like cookie (`session`, `sid`, `JSESSIONID`, ...), else `Authorization`, else
    /// the client address and User-Agent (the User-Agent alone when the capture has no
    /// addresses), with the idle gap.
    #[default]
    Auto,
    /// The value of this cookie.
    Cookie(String),
    /// The value of this request header.
    Header(String),
    /// The client IP address and User-Agent (User-Agent alone when the capture has no
    /// addresses).
    ClientIp,
}

impl SessionKey {
    /// Parses `auto`, `cookie:NAME`, `header:NAME` or `client-ip`.
    pub fn parse(s: &str) -> Result<SessionKey, String> {
        let t = s.trim();
        if t.eq_ignore_ascii_case("auto") {
            return Ok(SessionKey::Auto);
        }
        if t.eq_ignore_ascii_case("client-ip") || t.eq_ignore_ascii_case("ip") {
            return Ok(SessionKey::ClientIp);
        }
        let expected = "expected auto, cookie:NAME, header:NAME or client-ip";
        let (kind, name) = t.split_once(':').ok_or_else(|| expected.to_string())?;
        let name = name.trim();
        if name.is_empty() {
            return Err(format!("the name is missing: {expected}"));
        }
        match kind.trim().to_ascii_lowercase().as_str() {
            "cookie" => Ok(SessionKey::Cookie(name.to_string())),
            "header" => Ok(SessionKey::Header(name.to_string())),
            _ => Err(expected.to_string()),
        }
    }
}

/// Settings of the model.
#[derive(Debug, Clone)]
pub struct SynthOptions {
    /// How requests are grouped into sessions.
    pub session_key: SessionKey,
    /// A session closes after this much recorded time without a request (default 30 min).
    pub idle_gap: Nanos,
    /// Endpoints under this share of requests go to the catch-all (default 0.001).
    pub min_share: f64,
    /// Open sessions kept at once; beyond, the longest idle tenth is closed (default 50,000:
    /// busy recordings interleave tens of thousands of sessions, and closing them early splits
    /// them into fragments).
    pub max_open_sessions: usize,
}

impl Default for SynthOptions {
    fn default() -> Self {
        SynthOptions {
            session_key: SessionKey::Auto,
            idle_gap: 30 * 60 * 1_000_000_000,
            min_share: 0.001,
            max_open_sessions: 50_000,
        }
    }
}

/// What kind of client a User-Agent names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ClientKind {
    /// A desktop web browser.
    Browser,
    /// A mobile app or mobile browser.
    Mobile,
    /// A crawler or monitor.
    Bot,
    /// A programmatic client (curl, python-requests, okhttp, ...).
    Api,
    /// No or unrecognised User-Agent.
    Unknown,
}

impl ClientKind {
    /// Lower-case name used in class names.
    pub fn as_str(self) -> &'static str {
        match self {
            ClientKind::Browser => "browser",
            ClientKind::Mobile => "mobile",
            ClientKind::Bot => "bot",
            ClientKind::Api => "api",
            ClientKind::Unknown => "unknown",
        }
    }

    /// Classifies a User-Agent value.
    pub fn from_user_agent(ua: Option<&str>) -> ClientKind {
        let Some(ua) = ua else {
            return ClientKind::Unknown;
        };
        let u = ua.to_ascii_lowercase();
        let has = |words: &[&str]| words.iter().any(|w| u.contains(w));
        if has(&[
            "bot",
            "crawler",
            "spider",
            "slurp",
            "monitor",
            "headless",
            "lighthouse",
        ]) {
            ClientKind::Bot
        } else if has(&[
            "curl",
            "wget",
            "python",
            "okhttp",
            "go-http",
            "java",
            "httpclient",
            "axios",
            "node-fetch",
            "undici",
            "postman",
            "insomnia",
            "libwww",
            "httpie",
            "ruby",
            "php",
            "reqwest",
            "hyper",
            "k6",
            "locust",
            "jmeter",
            "gatling",
        ]) {
            ClientKind::Api
        } else if has(&[
            "mobile",
            "android",
            "iphone",
            "ipad",
            "ios",
            "cfnetwork",
            "dalvik",
        ]) {
            ClientKind::Mobile
        } else if has(&["mozilla", "opera", "chrome", "safari", "firefox", "edge"]) {
            ClientKind::Browser
        } else {
            ClientKind::Unknown
        }
    }
}

/// Cookie names that identify a session.
pub fn is_session_cookie(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    [
        "session",
        "sess",
        "sid",
        "jsessionid",
        "phpsessid",
        "connect.sid",
        "auth",
        "token",
    ]
    .iter()
    .any(|w| n.contains(w))
}

/// JSON fields of a response that carry a token a client sends back.
fn is_token_field(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    matches!(
        n.as_str(),
        "token" | "access_token" | "accesstoken" | "id_token" | "jwt" | "auth_token" | "authtoken"
    )
}

/// Request fields that hold a login name.
pub(crate) fn is_user_field(name: &str) -> bool {
    matches!(
        name.to_ascii_lowercase().as_str(),
        "user" | "username" | "user_name" | "login" | "email" | "userid" | "user_id" | "account"
    )
}

/// Request fields that hold a password.
pub(crate) fn is_password_field(name: &str) -> bool {
    matches!(
        name.to_ascii_lowercase().as_str(),
        "password" | "passwd" | "pwd" | "pass" | "secret"
    )
}

/// Paths that look like a login.
fn is_login_path(path: &str) -> bool {
    let p = path.to_ascii_lowercase();
    [
        "login", "signin", "sign-in", "sign_in", "auth", "session", "token", "oauth",
    ]
    .iter()
    .any(|w| p.contains(w))
}

/// Paths that look like a logout.
fn is_logout_path(path: &str) -> bool {
    let p = path.to_ascii_lowercase();
    [
        "logout", "log-out", "log_out", "signout", "sign-out", "sign_out", "logoff",
    ]
    .iter()
    .any(|w| p.contains(w))
}

/// Cuts a value to [`MAX_VALUE`] bytes at a character boundary.
pub(crate) fn cut(s: &str) -> String {
    let mut end = s.len().min(MAX_VALUE);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or_default().to_string()
}

/// Identifier-safe form of a name (`user-name` -> `user_name`).
pub(crate) fn ident(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    while out.contains("__") {
        out = out.replace("__", "_");
    }
    let out = out.trim_matches('_').to_string();
    let mut out: String = out.chars().take(48).collect();
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert_str(0, "v_");
    }
    out
}

/// How a login was recognised.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LoginKind {
    /// The response set this session cookie, later sent back (the cookie jar replays it).
    Cookie(String),
    /// The response carried this JSON token field, later sent as `Authorization: Bearer`.
    Token(String),
}

/// One task target: a real endpoint, or the catch-all for one method.
pub type TaskId = usize;

/// The body of an endpoint's requests, as a template over its data columns.
#[derive(Debug, Clone, PartialEq)]
pub enum BodyModel {
    /// No body.
    None,
    /// JSON text with holes: `pieces` alternate literal text and column indexes.
    Json(Vec<BodyPiece>),
    /// URL-encoded form: field name and column index.
    Form(Vec<(String, usize)>),
    /// An opaque body of about this many bytes (its content is not reproduced).
    Opaque(usize),
}

/// A piece of a JSON body template.
#[derive(Debug, Clone, PartialEq)]
pub enum BodyPiece {
    /// Literal JSON text.
    Text(String),
    /// The value of this data column (already JSON-encoded for non-strings, escaped for
    /// strings, so it is pasted between quotes when `quoted`).
    Column {
        /// Index into the endpoint's columns.
        index: usize,
        /// The column holds the inside of a JSON string.
        quoted: bool,
    },
}

/// Where a data column's values come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ColumnSource {
    /// A path variable.
    Path,
    /// A query parameter with this name.
    Query(String),
    /// A JSON body leaf (the field name is the last path item).
    Json(String),
    /// A form field with this name.
    Form(String),
}

/// A data column of an endpoint's feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// Column name in the CSV header (an identifier).
    pub name: String,
    /// Where its values come from.
    pub source: ColumnSource,
}

/// What the model knows about one endpoint's requests.
#[derive(Debug, Clone)]
pub struct EndpointData {
    /// Data columns, in CSV order.
    pub columns: Vec<Column>,
    /// Distinct rows of values with counts (most frequent first).
    pub rows: Vec<(Vec<String>, u64)>,
    /// The request body template.
    pub body: BodyModel,
    /// The request Content-Type, when it had a body.
    pub content_type: Option<String>,
    /// Response statuses seen, with counts.
    pub statuses: Vec<(u16, u64)>,
}

/// A user class learned from sessions.
#[derive(Debug, Clone)]
pub struct ClassModel {
    /// Class name (`anonymous_browser`, `authenticated`, ...).
    pub name: String,
    /// Sessions of this class carried credentials.
    pub authenticated: bool,
    /// The client kind, when the class was split by it.
    pub kind: Option<ClientKind>,
    /// Sessions in the class.
    pub sessions: u64,
    /// Share of all sessions (0..=1).
    pub share: f64,
    /// Requests of the class's sessions (login requests excluded).
    pub requests: u64,
    /// Requests per task target, most frequent first.
    pub endpoint_counts: Vec<(TaskId, u64)>,
    /// Transitions `(from, to, count)`; `None` is the start (as `from`) or end (as `to`) state.
    pub transitions: Vec<(Option<TaskId>, Option<TaskId>, u64)>,
    /// Sample of gaps (seconds) between the end of a request and the next request of a session.
    pub think_times: Vec<f64>,
    /// Sample of session lengths (requests).
    pub session_lengths: Vec<f64>,
    /// The login flow, when the class's sessions log in.
    pub login: Option<(EndpointId, LoginKind)>,
    /// The logout that ends at least half of the class's sessions: `on_stop`, not a task (a
    /// task would log users out in the middle of their sessions).
    pub logout: Option<EndpointId>,
    /// Authenticated sessions in which no login was seen (credentials came from before the
    /// recording).
    pub sessions_without_login: u64,
    /// Most common User-Agent.
    pub user_agent: Option<String>,
}

#[derive(Debug, Clone)]
struct Event {
    task: TaskId,
    gap: Option<f64>,
    creds: Option<(String, String)>,
}

#[derive(Debug)]
struct Session {
    keys: Vec<String>,
    last_ts: Nanos,
    last_end: Nanos,
    kind: ClientKind,
    user_agent: Option<String>,
    authorized: bool,
    events: Vec<Event>,
    /// Session cookies issued in this session: name, value, the event that set them, and
    /// whether that request looked like a login (a login path, or a method other than GET/HEAD).
    issued_cookies: Vec<(String, String, usize, bool)>,
    issued_tokens: Vec<(String, String, usize)>,
    login: Option<(usize, LoginKind)>,
}

#[derive(Debug)]
struct ClassAcc {
    sessions: u64,
    requests: u64,
    ep_counts: HashMap<TaskId, u64>,
    trans: HashMap<(Option<TaskId>, Option<TaskId>), u64>,
    think: Reservoir<f64>,
    lengths: Reservoir<f64>,
    logins: HashMap<(EndpointId, LoginKind), u64>,
    /// Sessions ended by a logout, per logout endpoint (left out of the tasks).
    logouts: HashMap<EndpointId, u64>,
    without_login: u64,
    uas: CountedPool<String>,
}

impl ClassAcc {
    fn new() -> Self {
        ClassAcc {
            sessions: 0,
            requests: 0,
            ep_counts: HashMap::new(),
            trans: HashMap::new(),
            think: Reservoir::new(RESERVOIR),
            lengths: Reservoir::new(RESERVOIR),
            logins: HashMap::new(),
            logouts: HashMap::new(),
            without_login: 0,
            uas: CountedPool::new(8),
        }
    }

    fn merge(&mut self, o: &ClassAcc) {
        self.sessions += o.sessions;
        self.requests += o.requests;
        for (k, v) in &o.ep_counts {
            *self.ep_counts.entry(*k).or_default() += v;
        }
        for (k, v) in &o.trans {
            if self.trans.len() < MAX_TRANSITIONS || self.trans.contains_key(k) {
                *self.trans.entry(*k).or_default() += v;
            }
        }
        self.think.merge(&o.think);
        self.lengths.merge(&o.lengths);
        for (k, v) in &o.logins {
            *self.logins.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &o.logouts {
            *self.logouts.entry(*k).or_default() += v;
        }
        self.without_login += o.without_login;
        for (ua, n) in o.uas.sorted() {
            for _ in 0..n.min(100) {
                self.uas.add(ua.clone());
            }
        }
    }

    fn mix(&self) -> HashMap<TaskId, f64> {
        self.ep_counts
            .iter()
            .map(|(k, v)| (*k, *v as f64))
            .collect()
    }
}

#[derive(Debug)]
struct JsonShape {
    pieces: Vec<BodyPiece>,
    /// Per leaf: JSON pointer, whether it is a string, the first value's text.
    leaves: Vec<(String, bool, String)>,
}

#[derive(Debug)]
struct EndpointAcc {
    columns: Vec<Column>,
    rows: CountedPool<Vec<String>>,
    json: Option<JsonShape>,
    form: bool,
    opaque: Option<Reservoir<f64>>,
    content_type: Option<String>,
    statuses: CountedPool<u16>,
    initialised: bool,
}

const SENTINEL: &str = "\u{1}mynah-leaf\u{1}";

/// Replaces up to [`MAX_LEAVES`] scalar leaves with sentinels, recording their pointers.
fn punch(v: &mut Value, pointer: &str, depth: usize, leaves: &mut Vec<(String, bool, String)>) {
    if leaves.len() >= MAX_LEAVES || depth > 6 {
        return;
    }
    match v {
        Value::Object(map) => {
            for (k, child) in map.iter_mut() {
                let p = format!("{pointer}/{}", k.replace('~', "~0").replace('/', "~1"));
                punch(child, &p, depth + 1, leaves);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter_mut().enumerate().take(8) {
                punch(child, &format!("{pointer}/{i}"), depth + 1, leaves);
            }
        }
        Value::String(s) => {
            leaves.push((pointer.to_string(), true, json_inner(s)));
            *v = Value::String(SENTINEL.to_string());
        }
        Value::Number(_) | Value::Bool(_) => {
            leaves.push((pointer.to_string(), false, v.to_string()));
            *v = Value::String(SENTINEL.to_string());
        }
        Value::Null => {}
    }
}

/// The inside of a JSON string literal for `s` (escaped, without the quotes).
fn json_inner(s: &str) -> String {
    let q = serde_json::to_string(s).unwrap_or_default();
    q.get(1..q.len().saturating_sub(1))
        .unwrap_or_default()
        .to_string()
}

fn json_shape(v: &Value) -> Option<JsonShape> {
    let mut v = v.clone();
    let mut leaves = Vec::new();
    punch(&mut v, "", 0, &mut leaves);
    let text = serde_json::to_string(&v).ok()?;
    let needle = serde_json::to_string(SENTINEL).ok()?;
    let mut pieces = Vec::new();
    for (i, part) in text.split(&needle).enumerate() {
        if i > 0 {
            let quoted = leaves.get(i - 1).is_some_and(|l| l.1);
            if quoted {
                pieces.push(BodyPiece::Text("\"".into()));
            }
            pieces.push(BodyPiece::Column {
                index: i - 1,
                quoted,
            });
            if quoted {
                pieces.push(BodyPiece::Text("\"".into()));
            }
        }
        if !part.is_empty() {
            pieces.push(BodyPiece::Text(part.to_string()));
        }
    }
    // Merge adjacent text pieces.
    let mut merged: Vec<BodyPiece> = Vec::new();
    for p in pieces {
        match (merged.last_mut(), p) {
            (Some(BodyPiece::Text(a)), BodyPiece::Text(b)) => a.push_str(&b),
            (_, p) => merged.push(p),
        }
    }
    Some(JsonShape {
        pieces: merged,
        leaves,
    })
}

fn header_str(ex_headers: &mynah_traffic::Headers, name: &str) -> Option<String> {
    ex_headers.get_str(name).map(|v| v.into_owned())
}

/// Cookie pairs of a `Cookie` header value.
fn cookie_pairs(v: &str) -> Vec<(String, String)> {
    v.split(';')
        .filter_map(|p| {
            let (k, v) = p.split_once('=')?;
            Some((k.trim().to_string(), v.trim().to_string()))
        })
        .take(32)
        .collect()
}

/// Builds the workload model from exchanges (the second pass). Feed every exchange, in
/// recorded order, to [`WorkloadBuilder::add`], then call [`WorkloadBuilder::finish`].
#[derive(Debug)]
pub struct WorkloadBuilder {
    templates: Templates,
    opts: SynthOptions,
    sessions: HashMap<u64, Session>,
    keys: HashMap<String, u64>,
    next_id: u64,
    now: Nanos,
    since_sweep: u32,
    classes: BTreeMap<(bool, ClientKind), ClassAcc>,
    endpoints: Vec<EndpointAcc>,
    other_methods: Vec<(String, Reservoir<String>, u64)>,
    accounts: CountedPool<(String, String)>,
    exchanges: u64,
    unmodelled: u64,
    split_sessions: u64,
}

impl WorkloadBuilder {
    /// A builder over the templates of the first pass.
    pub fn new(templates: Templates, opts: SynthOptions) -> Self {
        let endpoints = templates
            .endpoints()
            .iter()
            .map(|_| EndpointAcc {
                columns: Vec::new(),
                rows: CountedPool::new(MAX_ROWS),
                json: None,
                form: false,
                opaque: None,
                content_type: None,
                statuses: CountedPool::new(32),
                initialised: false,
            })
            .collect();
        WorkloadBuilder {
            templates,
            opts,
            sessions: HashMap::new(),
            keys: HashMap::new(),
            next_id: 0,
            now: Nanos::MIN,
            since_sweep: 0,
            classes: BTreeMap::new(),
            endpoints,
            other_methods: Vec::new(),
            accounts: CountedPool::new(MAX_ROWS),
            exchanges: 0,
            unmodelled: 0,
            split_sessions: 0,
        }
    }

    /// Sessions currently open (for memory checks).
    pub fn open_sessions(&self) -> usize {
        self.sessions.len()
    }

    /// Values currently stored in data pools and reservoirs (for memory checks): rows of every
    /// endpoint, think times and session lengths of every class, buffered session events.
    pub fn stored_values(&self) -> usize {
        let rows: usize = self.endpoints.iter().map(|e| e.rows.len()).sum();
        let classes: usize = self
            .classes
            .values()
            .map(|c| c.think.items().len() + c.lengths.items().len() + c.trans.len())
            .sum();
        let events: usize = self.sessions.values().map(|s| s.events.len()).sum();
        rows + classes + events + self.accounts.len()
    }

    fn session_keys(&self, ex: &Exchange) -> (Vec<String>, String) {
        let h = &ex.request.headers;
        // The client: its address (when the capture has one) and its User-Agent, so clients
        // behind one NAT address with different software are told apart.
        let ua = cut(&header_str(h, "user-agent").unwrap_or_default());
        let fallback = match ex.connection.client {
            Some(addr) => format!("ip:{} ua:{ua}", addr.ip()),
            None => format!("ua:{ua}"),
        };
        let cookies: Vec<(String, String)> = h
            .get_all("cookie")
            .flat_map(|v| cookie_pairs(&String::from_utf8_lossy(v)))
            .collect();
        let mut keys = Vec::new();
        match &self.opts.session_key {
            SessionKey::Auto => {
                for (k, v) in &cookies {
                    if is_session_cookie(k) && !v.is_empty() {
                        keys.push(format!("c:{k}={}", cut(v)));
                    }
                }
                if let Some(a) = header_str(h, "authorization") {
                    keys.push(format!("a:{}", cut(&a)));
                }
            }
            SessionKey::Cookie(name) => {
                for (k, v) in &cookies {
                    if k == name && !v.is_empty() {
                        keys.push(format!("c:{k}={}", cut(v)));
                    }
                }
            }
            SessionKey::Header(name) => {
                if let Some(v) = header_str(h, name) {
                    keys.push(format!("h:{}", cut(&v)));
                }
            }
            SessionKey::ClientIp => {}
        }
        (keys, fallback)
    }

    /// Adds one exchange (in recorded order; mild disorder is tolerated).
    pub fn add(&mut self, ex: &Exchange) {
        self.exchanges += 1;
        let method = &ex.request.method;
        if method.is_empty() || !method.bytes().all(|b| b.is_ascii_alphabetic()) {
            // Not an HTTP method a scenario can send.
            self.unmodelled += 1;
            return;
        }
        let ts = ex.timing.request_start;
        self.now = self.now.max(ts);
        self.since_sweep += 1;
        if self.since_sweep >= 1_000 {
            self.since_sweep = 0;
            self.sweep(false);
        }
        let m = self
            .templates
            .classify(&ex.request.method, ex.request.path_and_query());
        let task = if m.endpoint == self.templates.catch_all() {
            match self.other_task(ex) {
                Some(t) => t,
                None => {
                    self.unmodelled += 1;
                    return;
                }
            }
        } else {
            self.record_data(m.endpoint, &m.path_values, &m.query, ex);
            m.endpoint
        };

        // Find or open the session.
        let (keys, fallback) = self.session_keys(ex);
        let idle = self.opts.idle_gap;
        let mut found = keys.iter().find_map(|k| self.keys.get(k).copied());
        if found.is_none() && (keys.is_empty() || self.opts.session_key == SessionKey::ClientIp) {
            found = self.keys.get(&fallback).copied();
        }
        if let Some(id) = found {
            let stale = self.sessions.get(&id).is_none_or(|s| {
                ts.saturating_sub(s.last_ts) > idle || s.events.len() >= MAX_EVENTS
            });
            if stale {
                if self
                    .sessions
                    .get(&id)
                    .is_some_and(|s| s.events.len() >= MAX_EVENTS)
                {
                    self.split_sessions += 1;
                }
                self.close(id);
                found = None;
            }
        }
        let id = match found {
            Some(id) => id,
            None => {
                if self.sessions.len() >= self.opts.max_open_sessions.max(1) {
                    self.evict();
                }
                let id = self.next_id;
                self.next_id += 1;
                let ua = header_str(&ex.request.headers, "user-agent");
                self.sessions.insert(
                    id,
                    Session {
                        keys: Vec::new(),
                        last_ts: ts,
                        last_end: ts,
                        kind: ClientKind::from_user_agent(ua.as_deref()),
                        user_agent: ua.map(|u| cut(&u)),
                        authorized: false,
                        events: Vec::new(),
                        issued_cookies: Vec::new(),
                        issued_tokens: Vec::new(),
                        login: None,
                    },
                );
                if keys.is_empty() {
                    self.alias(&fallback, id);
                }
                id
            }
        };
        for k in &keys {
            self.alias(k, id);
        }
        // A session known by its cookie or token no longer owns the fallback key, so the next
        // anonymous request of that client starts a new session.
        if !keys.is_empty() && self.keys.get(&fallback) == Some(&id) {
            self.keys.remove(&fallback);
            if let Some(s) = self.sessions.get_mut(&id) {
                s.keys.retain(|k| k != &fallback);
            }
        }

        let h = &ex.request.headers;
        let auth = header_str(h, "authorization");
        let cookies: Vec<(String, String)> = h
            .get_all("cookie")
            .flat_map(|v| cookie_pairs(&String::from_utf8_lossy(v)))
            .collect();
        let creds = credentials(ex);
        let mut new_keys = Vec::new();
        let Some(s) = self.sessions.get_mut(&id) else {
            return;
        };
        let gap = if s.events.is_empty() {
            None
        } else {
            Some(ts.saturating_sub(s.last_end).max(0) as f64 / 1e9)
        };
        let idx = s.events.len();
        // Login recognition: a cookie or token issued earlier in this session comes back.
        if s.login.is_none() {
            for (k, v) in &cookies {
                // A session cookie a site gives every visitor on a page view (PHPSESSID on GET /)
                // coming back is not a login; one set by a sign-in request is.
                if let Some((name, _, at, _)) = s
                    .issued_cookies
                    .iter()
                    .find(|(n, val, _, login_like)| *login_like && n == k && val == v)
                {
                    s.login = Some((*at, LoginKind::Cookie(name.clone())));
                    break;
                }
            }
        }
        if let Some(a) = &auth {
            let bearer = a
                .strip_prefix("Bearer ")
                .or_else(|| a.strip_prefix("bearer "))
                .map(str::trim);
            let exact = s
                .issued_tokens
                .iter()
                .find(|(_, v, _)| Some(v.as_str()) == bearer);
            let weak = if !s.authorized && bearer.is_some() {
                s.issued_tokens.first()
            } else {
                None
            };
            if let Some((field, _, at)) = exact.or(weak) {
                // A token login explains the Authorization header better than a cookie.
                if !matches!(s.login, Some((_, LoginKind::Token(_)))) {
                    s.login = Some((*at, LoginKind::Token(field.clone())));
                }
            }
            s.authorized = true;
        }
        if s.user_agent.is_none() {
            if let Some(ua) = header_str(h, "user-agent") {
                s.kind = ClientKind::from_user_agent(Some(&ua));
                s.user_agent = Some(cut(&ua));
            }
        }
        s.events.push(Event { task, gap, creds });
        s.last_ts = ts;
        s.last_end = ex.timing.ended();
        // What the response issues.
        if let Some(resp) = &ex.response {
            let login_path = is_login_path(ex.request.path());
            let login_like = login_path || !matches!(ex.request.method.as_str(), "GET" | "HEAD");
            for v in resp.headers.get_all("set-cookie") {
                let text = String::from_utf8_lossy(v);
                let first = text.split(';').next().unwrap_or_default();
                if let Some((k, val)) = first.split_once('=') {
                    let (k, val) = (k.trim().to_string(), val.trim().to_string());
                    if val.is_empty() || s.issued_cookies.len() >= 8 {
                        continue;
                    }
                    if is_session_cookie(&k) || login_path {
                        new_keys.push(format!("c:{k}={}", cut(&val)));
                        s.issued_cookies.push((k, val, idx, login_like));
                    }
                }
            }
            if s.issued_tokens.len() < 8 {
                if let Ok(body) = resp.decoded_body() {
                    if body.len() <= 1 << 20 && body.first() == Some(&b'{') {
                        if let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(&body) {
                            for (k, v) in map.iter().take(64) {
                                if let (true, Value::String(t)) = (is_token_field(k), v) {
                                    new_keys.push(format!("a:Bearer {}", cut(t)));
                                    s.issued_tokens.push((k.clone(), cut(t), idx));
                                    break;
                                }
                            }
                        }
                    }
                }
            }
        }
        // A login in a session known only by its client (no cookie, no credentials yet) starts
        // a new session: the authenticated user's, which the issued cookie or token identifies.
        // The earlier requests stay with the anonymous client session.
        // Only the keys the session key setting uses identify sessions.
        let new_keys: Vec<String> = new_keys
            .into_iter()
            .filter(|k| match &self.opts.session_key {
                SessionKey::Auto => true,
                SessionKey::Cookie(name) => k.starts_with(&format!("c:{name}=")),
                SessionKey::Header(_) | SessionKey::ClientIp => false,
            })
            .collect();
        let mut id = id;
        if keys.is_empty() && !new_keys.is_empty() && idx > 0 {
            if let Some(ev) = s.events.pop() {
                // What this event's response issued moves with it to the new session.
                let cookies: Vec<_> = s
                    .issued_cookies
                    .iter()
                    .filter(|c| c.2 == idx)
                    .map(|(a, b, _, login_like)| (a.clone(), b.clone(), 0, *login_like))
                    .collect();
                s.issued_cookies.retain(|c| c.2 != idx);
                let tokens: Vec<_> = s
                    .issued_tokens
                    .iter()
                    .filter(|t| t.2 == idx)
                    .map(|(a, b, _)| (a.clone(), b.clone(), 0))
                    .collect();
                s.issued_tokens.retain(|t| t.2 != idx);
                let (kind, user_agent) = (s.kind, s.user_agent.clone());
                if self.sessions.len() >= self.opts.max_open_sessions.max(1) {
                    self.evict();
                }
                let nid = self.next_id;
                self.next_id += 1;
                self.sessions.insert(
                    nid,
                    Session {
                        keys: Vec::new(),
                        last_ts: ts,
                        last_end: ts,
                        kind,
                        user_agent,
                        authorized: false,
                        events: vec![Event { gap: None, ..ev }],
                        issued_cookies: cookies,
                        issued_tokens: tokens,
                        login: None,
                    },
                );
                id = nid;
            }
        }
        for k in new_keys {
            self.alias(&k, id);
        }
    }

    fn alias(&mut self, key: &str, id: u64) {
        if self.keys.get(key) == Some(&id) {
            return;
        }
        let Some(s) = self.sessions.get_mut(&id) else {
            return;
        };
        if s.keys.len() >= 8 {
            return;
        }
        s.keys.push(key.to_string());
        if let Some(old) = self.keys.insert(key.to_string(), id) {
            if let Some(o) = self.sessions.get_mut(&old) {
                o.keys.retain(|k| k != key);
            }
        }
    }

    /// The catch-all task for this request's method, recording it as an example.
    fn other_task(&mut self, ex: &Exchange) -> Option<TaskId> {
        let method = ex.request.method.to_ascii_uppercase();
        if method.is_empty() || !method.bytes().all(|b| b.is_ascii_alphabetic()) {
            return None;
        }
        let base = self.templates.endpoints().len();
        let pos = match self.other_methods.iter().position(|(m, _, _)| *m == method) {
            Some(p) => p,
            None if self.other_methods.len() < MAX_OTHER_METHODS => {
                self.other_methods
                    .push((method, Reservoir::new(MAX_EXAMPLES), 0));
                self.other_methods.len() - 1
            }
            None => return None,
        };
        let target = ex.request.path_and_query();
        let (_, ex_res, count) = self.other_methods.get_mut(pos)?;
        *count += 1;
        if target.starts_with('/') && !target.contains("{{") {
            ex_res.add(cut(target));
        }
        Some(base + pos)
    }

    fn record_data(
        &mut self,
        id: EndpointId,
        path_values: &[String],
        query: &[(String, String)],
        ex: &Exchange,
    ) {
        let ep = self.templates.endpoint(id).clone();
        let Some(acc) = self.endpoints.get_mut(id) else {
            return;
        };
        if let Some(r) = &ex.response {
            acc.statuses.add(r.status);
        }
        let body = ex.request.decoded_body().ok();
        let body: &[u8] = body.as_deref().unwrap_or_default();
        let ctype = header_str(&ex.request.headers, "content-type")
            .unwrap_or_default()
            .to_ascii_lowercase();
        let json_body: Option<Value> = if !body.is_empty() && body.len() <= 1 << 20 {
            serde_json::from_slice(body).ok()
        } else {
            None
        };
        if !acc.initialised {
            acc.initialised = true;
            let mut cols = Vec::new();
            for v in ep.path_vars() {
                cols.push(Column {
                    name: v.to_string(),
                    source: ColumnSource::Path,
                });
            }
            for q in ep.query.iter().filter(|q| q.fixed.is_none()) {
                cols.push(Column {
                    name: ident(&q.name),
                    source: ColumnSource::Query(q.name.clone()),
                });
            }
            if !body.is_empty() {
                acc.content_type = header_str(&ex.request.headers, "content-type").map(|c| cut(&c));
                match &json_body {
                    Some(v @ (Value::Object(_) | Value::Array(_))) => {
                        if let Some(shape) = json_shape(v) {
                            for (ptr, _, _) in &shape.leaves {
                                let last = ptr.rsplit('/').next().unwrap_or(ptr);
                                cols.push(Column {
                                    name: ident(&ptr.replace('/', "_")),
                                    source: ColumnSource::Json(last.to_string()),
                                });
                            }
                            acc.json = Some(shape);
                        }
                    }
                    _ if ctype.contains("x-www-form-urlencoded") => {
                        acc.form = true;
                        let text = String::from_utf8_lossy(body);
                        for (k, _) in parse_query(&text) {
                            if cols
                                .iter()
                                .any(|c| c.source == ColumnSource::Form(k.clone()))
                            {
                                continue;
                            }
                            cols.push(Column {
                                name: ident(&k),
                                source: ColumnSource::Form(k),
                            });
                        }
                    }
                    _ => acc.opaque = Some(Reservoir::new(1_000)),
                }
            }
            // Unique column names.
            let mut seen = std::collections::HashSet::new();
            for c in &mut cols {
                let base = c.name.clone();
                let mut n = 2;
                while !seen.insert(c.name.clone()) {
                    c.name = format!("{base}_{n}");
                    n += 1;
                }
            }
            acc.columns = cols;
        }
        if let Some(o) = &mut acc.opaque {
            o.add(body.len() as f64);
        }
        let form: Vec<(String, String)> = if acc.form {
            parse_query(&String::from_utf8_lossy(body))
        } else {
            Vec::new()
        };
        let mut path_i = 0;
        let mut leaf_i = 0;
        let mut row = Vec::with_capacity(acc.columns.len());
        for c in &acc.columns {
            let v = match &c.source {
                ColumnSource::Path => {
                    let v = path_values.get(path_i).cloned().unwrap_or_default();
                    path_i += 1;
                    v
                }
                ColumnSource::Query(name) => query
                    .iter()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default(),
                ColumnSource::Form(name) => form
                    .iter()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default(),
                ColumnSource::Json(_) => {
                    let leaf = acc.json.as_ref().and_then(|s| s.leaves.get(leaf_i));
                    leaf_i += 1;
                    match leaf {
                        Some((ptr, is_str, first)) => {
                            match json_body.as_ref().and_then(|b| b.pointer(ptr)) {
                                Some(Value::String(s)) if *is_str => json_inner(s),
                                Some(v @ (Value::Number(_) | Value::Bool(_))) if !*is_str => {
                                    v.to_string()
                                }
                                _ => first.clone(),
                            }
                        }
                        None => String::new(),
                    }
                }
            };
            row.push(cut(&v));
        }
        if !row.is_empty() {
            acc.rows.add(row);
        }
    }

    /// Closes sessions idle for longer than the gap (all of them when `all`).
    fn sweep(&mut self, all: bool) {
        let idle = self.opts.idle_gap;
        let now = self.now;
        let mut ids: Vec<u64> = self
            .sessions
            .iter()
            .filter(|(_, s)| all || now.saturating_sub(s.last_ts) > idle)
            .map(|(id, _)| *id)
            .collect();
        ids.sort_unstable();
        for id in ids {
            self.close(id);
        }
    }

    /// Closes the longest-idle tenth of the open sessions (memory cap reached).
    fn evict(&mut self) {
        let mut by_age: Vec<(Nanos, u64)> = self
            .sessions
            .iter()
            .map(|(id, s)| (s.last_ts, *id))
            .collect();
        by_age.sort_unstable();
        let n = (by_age.len() / 10).max(1);
        for (_, id) in by_age.into_iter().take(n) {
            self.close(id);
        }
    }

    fn close(&mut self, id: u64) {
        let Some(s) = self.sessions.remove(&id) else {
            return;
        };
        for k in &s.keys {
            if self.keys.get(k) == Some(&id) {
                self.keys.remove(k);
            }
        }
        if s.events.is_empty() {
            return;
        }
        let authenticated = s.login.is_some() || s.authorized;
        let acc = self
            .classes
            .entry((authenticated, s.kind))
            .or_insert_with(ClassAcc::new);
        acc.sessions += 1;
        if let Some(ua) = &s.user_agent {
            acc.uas.add(ua.clone());
        }
        let login_at = s.login.as_ref().map(|(at, _)| *at);
        if let Some((at, kind)) = &s.login {
            if let Some(ev) = s.events.get(*at) {
                if ev.task < self.templates.endpoints().len() && acc.logins.len() < 64 {
                    *acc.logins.entry((ev.task, kind.clone())).or_default() += 1;
                }
                if let Some(c) = &ev.creds {
                    self.accounts.add(c.clone());
                }
            }
        } else if authenticated {
            acc.without_login += 1;
        }
        // A session that ends with a logout: the logout is the session's end (`on_stop`).
        let last = s.events.len() - 1;
        let endpoints = self.templates.endpoints();
        let logout_at = s
            .events
            .get(last)
            .filter(|_| Some(last) != login_at && last > 0)
            .and_then(|ev| endpoints.get(ev.task))
            .filter(|e| !e.catch_all && is_logout_path(&e.path()))
            .map(|_| last);
        if let Some(at) = logout_at {
            *acc.logouts.entry(s.events[at].task).or_default() += 1;
        }
        let mut prev: Option<TaskId> = None;
        let mut n = 0u64;
        for (i, ev) in s.events.iter().enumerate() {
            if Some(i) == login_at || Some(i) == logout_at {
                continue;
            }
            n += 1;
            *acc.ep_counts.entry(ev.task).or_default() += 1;
            let key = (prev, Some(ev.task));
            if acc.trans.len() < MAX_TRANSITIONS || acc.trans.contains_key(&key) {
                *acc.trans.entry(key).or_default() += 1;
            }
            if let (Some(_), Some(g)) = (prev, ev.gap) {
                acc.think.add(g);
            }
            prev = Some(ev.task);
        }
        if n > 0 {
            let key = (prev, None);
            if acc.trans.len() < MAX_TRANSITIONS || acc.trans.contains_key(&key) {
                *acc.trans.entry(key).or_default() += 1;
            }
        }
        acc.requests += n;
        acc.lengths.add(n as f64);
    }

    /// Closes every session and builds the model.
    pub fn finish(mut self) -> Workload {
        self.sweep(true);
        let total_sessions: u64 = self.classes.values().map(|c| c.sessions).sum();
        // Split each auth group by client kind where the kind is common (>= 10% of the group's
        // sessions) and behaves differently (endpoint mix JSD >= 0.05 from the group's).
        let mut classes = Vec::new();
        for auth in [false, true] {
            let group: Vec<(&ClientKind, &ClassAcc)> = self
                .classes
                .iter()
                .filter(|((a, _), _)| *a == auth)
                .map(|((_, k), c)| (k, c))
                .collect();
            if group.is_empty() {
                continue;
            }
            let mut whole = ClassAcc::new();
            for (_, c) in &group {
                whole.merge(c);
            }
            let gmix = whole.mix();
            let mut rest = ClassAcc::new();
            let mut split: Vec<(ClientKind, ClassAcc)> = Vec::new();
            for (kind, c) in &group {
                let common = c.sessions * 10 >= whole.sessions;
                let differs = jsd(&c.mix(), &gmix) >= 0.05;
                if common && differs && group.len() > 1 {
                    let mut own = ClassAcc::new();
                    own.merge(c);
                    split.push((**kind, own));
                } else {
                    rest.merge(c);
                }
            }
            let base = if auth { "authenticated" } else { "anonymous" };
            if split.len() <= 1 && rest.sessions == 0 {
                // Only one kind: no need to name it.
                if let Some((kind, c)) = split.pop() {
                    classes.push(self.class_model(
                        base.to_string(),
                        auth,
                        Some(kind),
                        c,
                        total_sessions,
                    ));
                }
                continue;
            }
            if split.is_empty() {
                classes.push(self.class_model(base.to_string(), auth, None, rest, total_sessions));
                continue;
            }
            for (kind, c) in split {
                let name = format!("{base}_{}", kind.as_str());
                classes.push(self.class_model(name, auth, Some(kind), c, total_sessions));
            }
            if rest.sessions > 0 {
                classes.push(self.class_model(
                    format!("{base}_other"),
                    auth,
                    None,
                    rest,
                    total_sessions,
                ));
            }
        }
        let endpoints = self
            .endpoints
            .iter()
            .map(|a| EndpointData {
                columns: a.columns.clone(),
                rows: a.rows.sorted(),
                body: if let Some(s) = &a.json {
                    BodyModel::Json(s.pieces.clone())
                } else if a.form {
                    BodyModel::Form(
                        a.columns
                            .iter()
                            .enumerate()
                            .filter_map(|(i, c)| match &c.source {
                                ColumnSource::Form(k) => Some((k.clone(), i)),
                                _ => None,
                            })
                            .collect(),
                    )
                } else if let Some(o) = &a.opaque {
                    let size = crate::sample::quantile(o.items(), 0.5).unwrap_or(0.0);
                    BodyModel::Opaque(size.max(0.0) as usize)
                } else {
                    BodyModel::None
                },
                content_type: a.content_type.clone(),
                statuses: a.statuses.sorted(),
            })
            .collect();
        Workload {
            templates: self.templates,
            classes,
            endpoints,
            other: self
                .other_methods
                .into_iter()
                .map(|(m, r, n)| OtherMethod {
                    method: m,
                    examples: r.items().to_vec(),
                    count: n,
                })
                .collect(),
            accounts: self.accounts.sorted(),
            sessions: total_sessions,
            exchanges: self.exchanges,
            unmodelled: self.unmodelled,
            split_sessions: self.split_sessions,
        }
    }

    fn class_model(
        &self,
        name: String,
        authenticated: bool,
        kind: Option<ClientKind>,
        c: ClassAcc,
        total: u64,
    ) -> ClassModel {
        let mut endpoint_counts: Vec<(TaskId, u64)> = c.ep_counts.into_iter().collect();
        endpoint_counts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let mut transitions: Vec<(Option<TaskId>, Option<TaskId>, u64)> =
            c.trans.into_iter().map(|((a, b), n)| (a, b, n)).collect();
        transitions.sort_by(|a, b| b.2.cmp(&a.2).then(a.0.cmp(&b.0)).then(a.1.cmp(&b.1)));
        let login = c
            .logins
            .into_iter()
            .max_by(|a, b| a.1.cmp(&b.1).then_with(|| b.0.cmp(&a.0)))
            .map(|(k, _)| k);
        // The most common logout becomes `on_stop` when it ends at least half of the sessions;
        // otherwise the logouts go back among the tasks, as often as they were recorded.
        let mut logouts: Vec<(EndpointId, u64)> = c.logouts.into_iter().collect();
        logouts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let mut logout = None;
        let mut requests = c.requests;
        for (i, (ep, n)) in logouts.into_iter().enumerate() {
            if i == 0 && n * 2 >= c.sessions {
                logout = Some(ep);
            } else {
                match endpoint_counts.iter_mut().find(|(t, _)| *t == ep) {
                    Some((_, count)) => *count += n,
                    None => endpoint_counts.push((ep, n)),
                }
                requests += n;
            }
        }
        endpoint_counts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        ClassModel {
            name,
            authenticated,
            kind,
            sessions: c.sessions,
            share: c.sessions as f64 / total.max(1) as f64,
            requests,
            endpoint_counts,
            transitions,
            think_times: c.think.items().to_vec(),
            session_lengths: c.lengths.items().to_vec(),
            login,
            logout,
            sessions_without_login: c.without_login,
            user_agent: c.uas.sorted().into_iter().next().map(|(u, _)| u),
        }
    }
}

/// User and password values of a request (query, form or top-level JSON fields), if it has a
/// user-like or password-like field.
fn credentials(ex: &Exchange) -> Option<(String, String)> {
    let mut user = None;
    let mut pass = None;
    let mut look = |k: &str, v: String| {
        if user.is_none() && is_user_field(k) {
            user = Some(cut(&v));
        } else if pass.is_none() && is_password_field(k) {
            pass = Some(cut(&v));
        }
    };
    let pq = ex.request.path_and_query();
    if let Some((_, q)) = pq.split_once('?') {
        for (k, v) in parse_query(q) {
            look(&k, v);
        }
    }
    if !ex.request.body.is_empty() && ex.request.body.len() <= 1 << 16 {
        if let Ok(body) = ex.request.decoded_body() {
            match serde_json::from_slice::<Value>(&body) {
                Ok(Value::Object(map)) => {
                    for (k, v) in map.iter().take(64) {
                        let text = match v {
                            Value::String(s) => s.clone(),
                            Value::Number(n) => n.to_string(),
                            _ => continue,
                        };
                        look(k, text);
                    }
                }
                _ => {
                    let text = String::from_utf8_lossy(&body);
                    if text.contains('=') && !text.contains('{') {
                        for (k, v) in parse_query(&text) {
                            look(&k, v);
                        }
                    }
                }
            }
        }
    }
    if user.is_none() && pass.is_none() {
        return None;
    }
    Some((user.unwrap_or_default(), pass.unwrap_or_default()))
}

/// The catch-all requests of one method.
#[derive(Debug, Clone)]
pub struct OtherMethod {
    /// The method.
    pub method: String,
    /// Recorded path-and-query examples replayed for it (a uniform sample).
    pub examples: Vec<String>,
    /// Requests it stands for.
    pub count: u64,
}

/// The learned workload: endpoints, user classes and data, ready to be written out.
#[derive(Debug, Clone)]
pub struct Workload {
    pub(crate) templates: Templates,
    pub(crate) classes: Vec<ClassModel>,
    pub(crate) endpoints: Vec<EndpointData>,
    pub(crate) other: Vec<OtherMethod>,
    pub(crate) accounts: Vec<((String, String), u64)>,
    pub(crate) sessions: u64,
    pub(crate) exchanges: u64,
    pub(crate) unmodelled: u64,
    pub(crate) split_sessions: u64,
}

impl Workload {
    /// The endpoint templates the model is built on.
    pub fn templates(&self) -> &Templates {
        &self.templates
    }

    /// The user classes, anonymous first.
    pub fn classes(&self) -> &[ClassModel] {
        &self.classes
    }

    /// Per-endpoint data and body models, indexed by endpoint id.
    pub fn endpoint_data(&self) -> &[EndpointData] {
        &self.endpoints
    }

    /// The catch-all requests, by method.
    pub fn other_methods(&self) -> &[OtherMethod] {
        &self.other
    }

    /// Sessions seen.
    pub fn sessions(&self) -> u64 {
        self.sessions
    }

    /// Exchanges given to the builder.
    pub fn exchanges(&self) -> u64 {
        self.exchanges
    }

    /// Exchanges that could not be modelled (catch-all with an unusable method).
    pub fn unmodelled(&self) -> u64 {
        self.unmodelled
    }

    /// Sessions cut in two because they exceeded [`MAX_EVENTS`] buffered requests.
    pub fn split_sessions(&self) -> u64 {
        self.split_sessions
    }

    /// The label of a task target (`GET /users/{user_id}` or `GET (other)`).
    pub fn task_label(&self, t: TaskId) -> String {
        let n = self.templates.endpoints().len();
        if t < n {
            return self.templates.endpoint(t).label();
        }
        match self.other.get(t - n) {
            Some(o) => format!("{} (other)", o.method),
            None => "(other)".to_string(),
        }
    }
}

/// Runs both passes over an in-memory list of exchanges (for tests and small captures; the CLI
/// streams the file twice instead).
pub fn learn(exchanges: &[Exchange], opts: &SynthOptions) -> Workload {
    let mut l = crate::templates::TemplateLearner::new();
    for ex in exchanges {
        l.add(&ex.request);
    }
    let mut b = WorkloadBuilder::new(l.finish(opts.min_share), opts.clone());
    for ex in exchanges {
        b.add(ex);
    }
    b.finish()
}
