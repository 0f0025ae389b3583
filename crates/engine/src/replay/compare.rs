//! `--compare`: a replayed response compared with the recorded one.
//!
//! The point is to find behaviour changes (a new status, a missing header, a field whose value
//! changed), not noise: headers that differ on every response (dates, trace ids, cookie values)
//! are ignored by default, bodies are compared as JSON documents when both are JSON (so key order
//! and formatting do not count, and a difference names its path), and values the recording
//! masked (`mask-<16 hex>`) or the session map knows as issued in place of the recorded ones
//! match whatever the target sent.

use std::collections::{BTreeSet, HashSet};

use mynah_traffic::{BodyForm, Headers, Response};
use serde_json::Value;
use serde_json_path::{JsonPath, PathElement};

/// Differences listed per response at most; the rest are not listed (the response still counts
/// as mismatched), so one broken endpoint cannot flood the report.
pub const MAX_DIFFERENCES: usize = 20;

/// Characters of each side shown in a [`Difference`].
pub const SHOW_CHARS: usize = 200;

/// What a [`Difference`] shows for a side that has nothing there.
pub const ABSENT: &str = "(absent)";

/// Bodies larger than this (decoded) are compared as bytes, not parsed as JSON.
const MAX_JSON_BODY: usize = 32 << 20;

/// Headers that differ between any two responses of the same resource, ignored by default.
const VOLATILE_HEADERS: &[&str] = &[
    "date",
    "expires",
    "age",
    "last-modified",
    "etag",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "x-request-id",
    "x-correlation-id",
    "request-id",
    "traceparent",
    "tracestate",
    "x-amzn-trace-id",
    "x-runtime",
    "x-response-time",
    "server-timing",
    "x-server-time-us",
];

/// How to compare, from the command line.
#[derive(Debug, Clone, Default)]
pub struct CompareOptions {
    /// Extra header names to ignore (case-insensitive), from `--compare-ignore-header`.
    pub ignore_headers: Vec<String>,
    /// JSON paths to ignore in bodies, from `--compare-ignore json:$.path`, e.g.
    /// `$.meta.generated_at`, `$.items[*].updated`, `$..etag` (a `json:` prefix is accepted).
    /// A difference at or under a location any of them selects (in either document) is skipped.
    pub ignore_json: Vec<String>,
}

/// Which part of a response differs; reports count mismatches per kind.
///
/// The discriminants are stable (0, 1, 2) so a report can index per-kind counters with
/// `kind as usize`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DiffKind {
    /// The status code.
    Status = 0,
    /// A header (or the set of cookie names set).
    Header = 1,
    /// The body, or a field of a JSON body.
    Body = 2,
}

impl DiffKind {
    /// The stable name used in reports and JSON: `status`, `header` or `body`.
    pub fn as_str(self) -> &'static str {
        match self {
            DiffKind::Status => "status",
            DiffKind::Header => "header",
            DiffKind::Body => "body",
        }
    }
}

/// One difference, with both versions, for the report's examples.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    /// Which part differs.
    pub kind: DiffKind,
    /// `status`, the header name (lowercase), a JSON path like `$.items[2].price`, or `body`.
    pub field: String,
    /// Both sides as text, each cut to 200 chars (with a trailing "…" when cut); "(absent)" when
    /// missing.
    pub recorded: String,
    /// The replayed side, shown the same way as `recorded`.
    pub replayed: String,
}

/// Compares responses; built once per replay (JSON paths compiled), shared by every connection
/// (`Send + Sync`, no interior state).
#[derive(Debug)]
pub struct Comparer {
    /// Lowercase header names ignored (the defaults and the user's).
    ignore_headers: HashSet<String>,
    ignore_json: Vec<JsonPath>,
}

/// A step of a JSON path, as walked and as `serde_json_path` locates ignored nodes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Seg {
    Key(String),
    Index(usize),
}

/// The differences of one response, bounded by [`MAX_DIFFERENCES`].
struct Diffs(Vec<Difference>);

impl Diffs {
    fn full(&self) -> bool {
        self.0.len() >= MAX_DIFFERENCES
    }

    fn push(&mut self, kind: DiffKind, field: impl Into<String>, recorded: &str, replayed: &str) {
        if !self.full() {
            self.0.push(Difference {
                kind,
                field: field.into(),
                recorded: cut(recorded),
                replayed: cut(replayed),
            });
        }
    }
}

impl Comparer {
    /// Compiles the options; a JSON path that does not parse is an error naming it.
    pub fn new(opts: &CompareOptions) -> Result<Comparer, String> {
        let mut ignore_headers: HashSet<String> =
            VOLATILE_HEADERS.iter().map(|h| h.to_string()).collect();
        for h in &opts.ignore_headers {
            let h = h.trim();
            if h.is_empty() {
                return Err("--compare-ignore-header: the header name is empty".into());
            }
            ignore_headers.insert(h.to_ascii_lowercase());
        }
        let mut ignore_json = Vec::new();
        for p in &opts.ignore_json {
            let path = p.trim();
            let path = path.strip_prefix("json:").unwrap_or(path).trim();
            let compiled = JsonPath::parse(path)
                .map_err(|e| format!("--compare-ignore json:{path}: not a valid JSON path: {e}"))?;
            ignore_json.push(compiled);
        }
        Ok(Comparer {
            ignore_headers,
            ignore_json,
        })
    }

    /// All differences (at most [`MAX_DIFFERENCES`] per response; the rest are not listed).
    /// Empty = the same. `is_mapped(recorded, replayed)` returns true for value pairs the session
    /// map knows (those are not differences).
    pub fn compare(
        &self,
        recorded: &Response,
        replayed: &Response,
        is_mapped: &dyn Fn(&str, &str) -> bool,
    ) -> Vec<Difference> {
        let mut out = Diffs(Vec::new());
        if recorded.status != replayed.status {
            out.push(
                DiffKind::Status,
                "status",
                &recorded.status.to_string(),
                &replayed.status.to_string(),
            );
        }
        let rec_body = recorded.decoded_body();
        let rep_body = replayed.decoded_body();
        let bodies_differ = match (&rec_body, &rep_body) {
            (Ok(a), Ok(b)) => a != b,
            _ => true,
        };
        self.headers(recorded, replayed, bodies_differ, is_mapped, &mut out);

        if !has_body(recorded.status) || !has_body(replayed.status) || out.full() {
            return out.0;
        }
        // A recorded body that cannot be decoded, or a truncated capture (nothing captured while
        // Content-Length says otherwise; HEAD responses look the same), gives nothing to compare.
        let Ok(rec) = rec_body else {
            return out.0;
        };
        if rec.is_empty() && content_length(&recorded.headers).is_some_and(|n| n > 0) {
            return out.0;
        }
        let rep = match rep_body {
            Ok(b) => b,
            Err(e) => {
                out.push(
                    DiffKind::Body,
                    "body",
                    &window(&rec, 0),
                    &format!("(undecodable: {e})"),
                );
                return out.0;
            }
        };
        if rec == rep {
            return out.0;
        }
        if let Some((a, b)) = json_pair(&rec, &rep) {
            let mut ignored = HashSet::new();
            for q in &self.ignore_json {
                for doc in [&a, &b] {
                    for loc in q.query_located(doc).locations() {
                        let path: Vec<Seg> = loc
                            .iter()
                            .map(|e| match e {
                                PathElement::Name(n) => Seg::Key((*n).to_string()),
                                PathElement::Index(i) => Seg::Index(*i),
                            })
                            .collect();
                        ignored.insert(path);
                    }
                }
            }
            let mut walk = JsonWalk {
                ignored: &ignored,
                is_mapped,
                out: &mut out,
                path: Vec::new(),
            };
            walk.walk(&a, &b);
            return out.0;
        }
        // Not JSON: text or bytes. A recorded text with masks matches around them.
        if let (Ok(rt), Ok(pt)) = (std::str::from_utf8(&rec), std::str::from_utf8(&rep)) {
            if mask_glob(rt, pt) || is_mapped(rt, pt) {
                return out.0;
            }
        }
        let at = rec
            .iter()
            .zip(rep.iter())
            .position(|(x, y)| x != y)
            .unwrap_or(rec.len().min(rep.len()));
        out.push(DiffKind::Body, "body", &window(&rec, at), &window(&rep, at));
        out.0
    }

    fn headers(
        &self,
        recorded: &Response,
        replayed: &Response,
        bodies_differ: bool,
        is_mapped: &dyn Fn(&str, &str) -> bool,
        out: &mut Diffs,
    ) {
        let rec = group(&recorded.headers);
        let rep = group(&replayed.headers);
        let coding_differs = joined(&rec, "content-encoding") != joined(&rep, "content-encoding");
        // A recorded body stored decoded without a Content-Encoding was rewritten (the masking
        // pipeline decodes the bodies it masks and drops the header): the recording no longer
        // says how the server encoded it.
        let coding_unknown =
            recorded.body_form == BodyForm::Decoded && values(&rec, "content-encoding").is_empty();
        let mut names: Vec<&str> = rec.iter().map(|(n, _)| n.as_str()).collect();
        for (n, _) in &rep {
            if !names.contains(&n.as_str()) {
                names.push(n);
            }
        }
        for name in names {
            if out.full() {
                return;
            }
            if self.ignore_headers.contains(name) {
                continue;
            }
            let rv = values(&rec, name);
            let pv = values(&rep, name);
            match name {
                "set-cookie" => {
                    let (a, b) = (cookie_names(rv), cookie_names(pv));
                    if a != b {
                        out.push(DiffKind::Header, name, &show_names(&a), &show_names(&b));
                    }
                    continue;
                }
                // The length follows the body and its coding; whether it is sent at all is a
                // framing choice (chunked or not), not a difference of content.
                "content-length"
                    if bodies_differ || coding_differs || rv.is_empty() || pv.is_empty() =>
                {
                    continue
                }
                "content-encoding" if coding_unknown => continue,
                _ => {}
            }
            if !values_match(rv, pv, is_mapped) {
                out.push(DiffKind::Header, name, &show_values(rv), &show_values(pv));
            }
        }
    }
}

/// Statuses whose responses have no body to compare (1xx, 204, 304).
fn has_body(status: u16) -> bool {
    !(status < 200 || status == 204 || status == 304)
}

fn content_length(h: &Headers) -> Option<u64> {
    h.get_str("content-length")?.trim().parse().ok()
}

/// Header values grouped by lowercase name, names in first-seen order, values in order.
fn group(h: &Headers) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for hd in h.iter() {
        let name = hd.name.to_ascii_lowercase();
        let value = hd.value_str().trim().to_string();
        match out.iter_mut().find(|(n, _)| *n == name) {
            Some((_, v)) => v.push(value),
            None => out.push((name, vec![value])),
        }
    }
    out
}

fn values<'a>(g: &'a [(String, Vec<String>)], name: &str) -> &'a [String] {
    g.iter()
        .find(|(n, _)| n == name)
        .map_or(&[], |(_, v)| v.as_slice())
}

fn joined(g: &[(String, Vec<String>)], name: &str) -> String {
    values(g, name).join(", ")
}

/// Equal lists of values (each pair matching), or equal once joined with `, ` (one header with
/// a list is the same as that header repeated).
fn values_match(rv: &[String], pv: &[String], is_mapped: &dyn Fn(&str, &str) -> bool) -> bool {
    if rv.len() == pv.len()
        && rv
            .iter()
            .zip(pv)
            .all(|(r, p)| value_matches(r, p, is_mapped))
    {
        return true;
    }
    !rv.is_empty() && !pv.is_empty() && value_matches(&rv.join(", "), &pv.join(", "), is_mapped)
}

fn value_matches(r: &str, p: &str, is_mapped: &dyn Fn(&str, &str) -> bool) -> bool {
    if r == p || is_mask_value(r) || mask_glob(r, p) || is_mapped(r, p) {
        return true;
    }
    // `Bearer <recorded>` vs `Bearer <replayed>`, the credentials mapped.
    match (r.split_once(' '), p.split_once(' ')) {
        (Some((rs, rc)), Some((ps, pc))) => {
            rs.eq_ignore_ascii_case(ps) && is_mapped(rc.trim(), pc.trim())
        }
        _ => false,
    }
}

fn show_values(v: &[String]) -> String {
    if v.is_empty() {
        ABSENT.to_string()
    } else {
        v.join(", ")
    }
}

/// The names of the cookies set (values are ignored: they differ on every response).
fn cookie_names(v: &[String]) -> BTreeSet<String> {
    v.iter()
        .map(|c| {
            let first = c.split(';').next().unwrap_or("");
            first.split('=').next().unwrap_or("").trim().to_string()
        })
        .collect()
}

fn show_names(s: &BTreeSet<String>) -> String {
    if s.is_empty() {
        ABSENT.to_string()
    } else {
        s.iter().cloned().collect::<Vec<_>>().join(", ")
    }
}

// -- masks ----------------------------------------------------------------------------------------

/// Where the pseudonyms of mynah's masking (`mask-` and 16 hex digits) are in `s`.
fn mask_spans(s: &str) -> Vec<(usize, usize)> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(i) = s.get(from..).and_then(|t| t.find("mask-")) {
        let start = from + i;
        let end = start + 21;
        let hex = b
            .get(start + 5..end)
            .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit));
        if hex {
            out.push((start, end));
            from = end;
        } else {
            from = start + 5;
        }
    }
    out
}

/// A value that is a pseudonym, possibly after a scheme (`Bearer mask-…`): it matches anything,
/// since the recording no longer says what the value was.
fn is_mask_value(s: &str) -> bool {
    let s = s.trim();
    let cred = s.split_once(' ').map_or(s, |(_, c)| c.trim());
    cred.len() == 21 && mask_spans(cred) == [(0, 21)]
}

/// `recorded` read as a pattern where each pseudonym matches any text (a `*` glob), so a text
/// the masking pipeline changed in places still matches the target's.
fn mask_glob(recorded: &str, replayed: &str) -> bool {
    let spans = mask_spans(recorded);
    if spans.is_empty() {
        return false;
    }
    let mut lits: Vec<&str> = Vec::with_capacity(spans.len() + 1);
    let mut last = 0;
    for (s, e) in &spans {
        lits.push(recorded.get(last..*s).unwrap_or(""));
        last = *e;
    }
    lits.push(recorded.get(last..).unwrap_or(""));
    let (Some(first), Some(tail)) = (lits.first(), lits.last()) else {
        return false;
    };
    if !replayed.starts_with(first) || !replayed.ends_with(tail) {
        return false;
    }
    let Some(limit) = replayed.len().checked_sub(tail.len()) else {
        return false;
    };
    let mut pos = first.len();
    if pos > limit {
        return false;
    }
    for mid in lits.iter().skip(1).take(lits.len().saturating_sub(2)) {
        let Some(hay) = replayed.get(pos..limit) else {
            return false;
        };
        match hay.find(mid) {
            Some(i) => pos += i + mid.len(),
            None => return false,
        }
    }
    true
}

// -- bodies ---------------------------------------------------------------------------------------

/// Both bodies parsed, when both are JSON (and not too large).
fn json_pair(a: &[u8], b: &[u8]) -> Option<(Value, Value)> {
    if a.len() > MAX_JSON_BODY || b.len() > MAX_JSON_BODY || a.is_empty() || b.is_empty() {
        return None;
    }
    let a = serde_json::from_slice(a).ok()?;
    let b = serde_json::from_slice(b).ok()?;
    Some((a, b))
}

struct JsonWalk<'a> {
    ignored: &'a HashSet<Vec<Seg>>,
    is_mapped: &'a dyn Fn(&str, &str) -> bool,
    out: &'a mut Diffs,
    path: Vec<Seg>,
}

impl JsonWalk<'_> {
    fn walk(&mut self, r: &Value, p: &Value) {
        if self.out.full() || self.ignored.contains(&self.path) {
            return;
        }
        match (r, p) {
            (Value::String(rs), _) if is_mask_value(rs) => {}
            (Value::String(rs), Value::String(ps)) => {
                if rs != ps && !mask_glob(rs, ps) && !(self.is_mapped)(rs, ps) {
                    self.diff(Some(r), Some(p));
                }
            }
            (Value::Number(a), Value::Number(b)) => {
                if !numbers_equal(a, b) {
                    self.diff(Some(r), Some(p));
                }
            }
            (Value::Object(ro), Value::Object(po)) => {
                for (k, rv) in ro {
                    self.path.push(Seg::Key(k.clone()));
                    match po.get(k) {
                        Some(pv) => self.walk(rv, pv),
                        None => self.missing(Some(rv), None),
                    }
                    self.path.pop();
                }
                for (k, pv) in po {
                    if !ro.contains_key(k) {
                        self.path.push(Seg::Key(k.clone()));
                        self.missing(None, Some(pv));
                        self.path.pop();
                    }
                }
            }
            (Value::Array(ra), Value::Array(pa)) => {
                for i in 0..ra.len().max(pa.len()) {
                    if self.out.full() {
                        return;
                    }
                    self.path.push(Seg::Index(i));
                    match (ra.get(i), pa.get(i)) {
                        (Some(rv), Some(pv)) => self.walk(rv, pv),
                        (rv, pv) => self.missing(rv, pv),
                    }
                    self.path.pop();
                }
            }
            _ => {
                if r != p {
                    self.diff(Some(r), Some(p));
                }
            }
        }
    }

    /// A value on one side only (unless ignored, or a recorded pseudonym).
    fn missing(&mut self, r: Option<&Value>, p: Option<&Value>) {
        if self.ignored.contains(&self.path) {
            return;
        }
        self.diff(r, p);
    }

    fn diff(&mut self, r: Option<&Value>, p: Option<&Value>) {
        let show = |v: Option<&Value>| match v {
            Some(v) => serde_json::to_string(v).unwrap_or_default(),
            None => ABSENT.to_string(),
        };
        let field = path_string(&self.path);
        self.out.push(DiffKind::Body, field, &show(r), &show(p));
    }
}

/// By value: `1 == 1.0`; integers exactly, the rest as f64.
fn numbers_equal(a: &serde_json::Number, b: &serde_json::Number) -> bool {
    if let (Some(x), Some(y)) = (a.as_i64(), b.as_i64()) {
        return x == y;
    }
    if let (Some(x), Some(y)) = (a.as_u64(), b.as_u64()) {
        return x == y;
    }
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

/// `$.a.b[3]`, with `['odd key']` for keys that are not identifiers.
fn path_string(path: &[Seg]) -> String {
    let mut s = String::from("$");
    for seg in path {
        match seg {
            Seg::Index(i) => s.push_str(&format!("[{i}]")),
            Seg::Key(k) => {
                let ident = k
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                    && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                if ident {
                    s.push('.');
                    s.push_str(k);
                } else {
                    s.push_str("['");
                    s.push_str(&k.replace('\\', "\\\\").replace('\'', "\\'"));
                    s.push_str("']");
                }
            }
        }
    }
    s
}

/// Cut to [`SHOW_CHARS`] characters, with a trailing `…` when cut.
fn cut(s: &str) -> String {
    match s.char_indices().nth(SHOW_CHARS) {
        Some((i, _)) => format!("{}…", s.get(..i).unwrap_or(s)),
        None => s.to_string(),
    }
}

/// The body from a little before byte `at` (the first difference): text when it is UTF-8,
/// else hex. A leading `…` says the start was skipped.
fn window(b: &[u8], at: usize) -> String {
    let mut start = at.saturating_sub(40).min(b.len());
    match std::str::from_utf8(b) {
        Ok(s) => {
            while start > 0 && !s.is_char_boundary(start) {
                start -= 1;
            }
            let text = s.get(start..).unwrap_or("");
            if start > 0 {
                format!("…{text}")
            } else {
                text.to_string()
            }
        }
        Err(_) => {
            let end = (start + 64).min(b.len());
            let hex: String = b
                .get(start..end)
                .unwrap_or(&[])
                .iter()
                .map(|x| format!("{x:02x}"))
                .collect();
            format!("(binary, {} bytes) at byte {start}: {hex}", b.len())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replay::test_util::resp;
    use mynah_traffic::decode::encode_coding;

    fn no_map(_: &str, _: &str) -> bool {
        false
    }

    fn cmp(opts: &CompareOptions, a: &Response, b: &Response) -> Vec<Difference> {
        Comparer::new(opts).unwrap().compare(a, b, &no_map)
    }

    fn fields(d: &[Difference]) -> Vec<(DiffKind, String)> {
        d.iter().map(|d| (d.kind, d.field.clone())).collect()
    }

    const JSON: (&str, &str) = ("Content-Type", "application/json");

    #[test]
    fn is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Comparer>();
    }

    #[test]
    fn identical_responses_have_no_differences() {
        let r = resp(
            200,
            &[JSON, ("Content-Length", "13"), ("Vary", "Accept")],
            r#"{"a":[1,2,3]}"#,
        );
        assert!(cmp(&CompareOptions::default(), &r, &r.clone()).is_empty());
        let e = resp(204, &[], "");
        assert!(cmp(&CompareOptions::default(), &e, &e.clone()).is_empty());
    }

    #[test]
    fn volatile_headers_are_ignored() {
        let a = resp(
            200,
            &[
                ("Date", "Mon, 01 Jan 2024 00:00:00 GMT"),
                ("ETag", "\"abc\""),
                ("Set-Cookie", "sid=one; Path=/"),
                ("X-Request-Id", "1"),
                ("traceparent", "00-aa-bb-01"),
                ("Server", "nginx"),
            ],
            "hi",
        );
        let b = resp(
            200,
            &[
                ("date", "Tue, 02 Jan 2024 00:00:00 GMT"),
                ("etag", "\"def\""),
                ("set-cookie", "sid=two; Path=/; Secure"),
                ("X-REQUEST-ID", "2"),
                ("server", "nginx"),
            ],
            "hi",
        );
        assert_eq!(cmp(&CompareOptions::default(), &a, &b), vec![]);
    }

    #[test]
    fn set_cookie_names_are_compared() {
        let a = resp(
            200,
            &[("Set-Cookie", "sid=1"), ("Set-Cookie", "lang=en")],
            "",
        );
        let b = resp(200, &[("Set-Cookie", "sid=2")], "");
        let d = cmp(&CompareOptions::default(), &a, &b);
        assert_eq!(
            d,
            vec![Difference {
                kind: DiffKind::Header,
                field: "set-cookie".into(),
                recorded: "lang, sid".into(),
                replayed: "sid".into(),
            }]
        );
        let c = resp(200, &[], "");
        let d = cmp(&CompareOptions::default(), &a, &c);
        assert_eq!(d[0].replayed, ABSENT);
    }

    #[test]
    fn an_added_header_and_a_changed_one_are_reported() {
        let a = resp(200, &[("Cache-Control", "no-cache")], "x");
        let b = resp(
            200,
            &[("cache-control", "max-age=60"), ("X-Feature", "on")],
            "x",
        );
        let d = cmp(&CompareOptions::default(), &a, &b);
        assert_eq!(
            d,
            vec![
                Difference {
                    kind: DiffKind::Header,
                    field: "cache-control".into(),
                    recorded: "no-cache".into(),
                    replayed: "max-age=60".into(),
                },
                Difference {
                    kind: DiffKind::Header,
                    field: "x-feature".into(),
                    recorded: ABSENT.into(),
                    replayed: "on".into(),
                },
            ]
        );
        // --compare-ignore-header, case-insensitive.
        let opts = CompareOptions {
            ignore_headers: vec!["X-FEATURE".into(), "Cache-Control".into()],
            ..Default::default()
        };
        assert!(cmp(&opts, &a, &b).is_empty());
    }

    #[test]
    fn repeated_headers_compare_in_order_or_joined() {
        let a = resp(200, &[("Vary", "Accept"), ("Vary", "Origin")], "");
        let b = resp(200, &[("Vary", "Accept, Origin")], "");
        assert!(cmp(&CompareOptions::default(), &a, &b).is_empty());
        let c = resp(200, &[("Vary", "Origin"), ("Vary", "Accept")], "");
        assert_eq!(cmp(&CompareOptions::default(), &a, &c).len(), 1);
    }

    #[test]
    fn masked_and_mapped_header_values_match() {
        let a = resp(
            200,
            &[
                ("X-Api-Key", "mask-0123456789abcdef"),
                ("X-Auth", "Bearer mask-0123456789abcdef"),
                ("Location", "/next?token=mask-0123456789abcdef&x=1"),
                ("X-Session", "Bearer recorded-session"),
            ],
            "",
        );
        let b = resp(
            200,
            &[
                ("X-Api-Key", "real"),
                ("X-Auth", "Bearer real-token"),
                ("Location", "/next?token=real-token&x=1"),
                ("X-Session", "Bearer replayed-session"),
            ],
            "",
        );
        let mapped = |r: &str, p: &str| r == "recorded-session" && p == "replayed-session";
        let c = Comparer::new(&CompareOptions::default()).unwrap();
        assert!(c.compare(&a, &b, &mapped).is_empty());
        let b2 = resp(
            200,
            &[
                ("X-Api-Key", "real"),
                ("X-Auth", "Bearer real-token"),
                ("Location", "/other?token=real-token&x=1"),
                ("X-Session", "Bearer replayed-session"),
            ],
            "",
        );
        assert_eq!(
            fields(&c.compare(&a, &b2, &mapped)),
            vec![(DiffKind::Header, "location".into())]
        );
    }

    #[test]
    fn status_change_is_reported() {
        let a = resp(200, &[], "ok");
        let b = resp(503, &[], "ok");
        let d = cmp(&CompareOptions::default(), &a, &b);
        assert_eq!(
            d,
            vec![Difference {
                kind: DiffKind::Status,
                field: "status".into(),
                recorded: "200".into(),
                replayed: "503".into(),
            }]
        );
        assert_eq!(d[0].kind.as_str(), "status");
        assert_eq!(DiffKind::Header.as_str(), "header");
        assert_eq!(DiffKind::Body.as_str(), "body");
    }

    #[test]
    fn changed_json_field_is_reported_with_its_path() {
        let a = resp(
            200,
            &[JSON, ("Content-Length", "1")],
            r#"{"items":[{"id":1,"price":10},{"id":2,"price":20},{"id":3,"price":30}],"n":1}"#,
        );
        let b = resp(
            200,
            &[JSON, ("Content-Length", "2")],
            r#"{ "n": 1.0, "items": [{"price":10,"id":1},{"id":2,"price":20},{"id":3,"price":31}] }"#,
        );
        let d = cmp(&CompareOptions::default(), &a, &b);
        assert_eq!(
            d,
            vec![Difference {
                kind: DiffKind::Body,
                field: "$.items[2].price".into(),
                recorded: "30".into(),
                replayed: "31".into(),
            }]
        );
    }

    #[test]
    fn json_added_removed_and_type_changes() {
        let a = resp(200, &[], r#"{"a":"x","b":[1,2],"odd key":true}"#);
        let b = resp(200, &[], r#"{"b":[1],"c":null,"odd key":"true"}"#);
        let d = cmp(&CompareOptions::default(), &a, &b);
        let got: Vec<(String, String, String)> = d
            .iter()
            .map(|d| (d.field.clone(), d.recorded.clone(), d.replayed.clone()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("$.a".into(), "\"x\"".into(), ABSENT.into()),
                ("$.b[1]".into(), "2".into(), ABSENT.into()),
                ("$['odd key']".into(), "true".into(), "\"true\"".into()),
                ("$.c".into(), ABSENT.into(), "null".into()),
            ]
        );
    }

    #[test]
    fn ignored_json_paths_are_not_reported() {
        let a = resp(
            200,
            &[JSON],
            r#"{"meta":{"generated_at":"2024-01-01"},"items":[{"updated":1,"v":1},{"updated":2,"v":2}],"x":{"etag":"a"}}"#,
        );
        let b = resp(
            200,
            &[JSON],
            r#"{"meta":{"generated_at":"2025-01-01","extra":{"deep":1}},"items":[{"updated":5,"v":1},{"updated":6,"v":2}],"x":{"etag":"b"}}"#,
        );
        let opts = CompareOptions {
            ignore_json: vec![
                "$.meta".into(),
                "json:$.items[*].updated".into(),
                "$..etag".into(),
            ],
            ..Default::default()
        };
        assert!(cmp(&opts, &a, &b).is_empty());
        // Without the options, every one is reported.
        assert_eq!(cmp(&CompareOptions::default(), &a, &b).len(), 5);
        // A field present only on the replayed side, under an ignored path.
        let opts = CompareOptions {
            ignore_json: vec!["$.meta.extra".into()],
            ..Default::default()
        };
        let d = cmp(&opts, &a, &b);
        assert!(d.iter().all(|d| d.field != "$.meta.extra"), "{d:?}");
    }

    #[test]
    fn bad_json_path_is_an_error_naming_it() {
        let e = Comparer::new(&CompareOptions {
            ignore_json: vec!["$.a[".into()],
            ..Default::default()
        })
        .unwrap_err();
        assert!(e.contains("$.a["), "{e}");
        assert!(Comparer::new(&CompareOptions {
            ignore_headers: vec![" ".into()],
            ..Default::default()
        })
        .is_err());
    }

    #[test]
    fn masked_and_mapped_json_values_match() {
        let a = resp(
            200,
            &[JSON],
            r#"{"token":"mask-0123456789abcdef","pin":"mask-fedcba9876543210","msg":"hi mask-0123456789abcdef!","sid":"rec-session"}"#,
        );
        let b = resp(
            200,
            &[JSON],
            r#"{"token":"abc","pin":1234,"msg":"hi there!","sid":"new-session"}"#,
        );
        let mapped = |r: &str, p: &str| r == "rec-session" && p == "new-session";
        let c = Comparer::new(&CompareOptions::default()).unwrap();
        assert!(c.compare(&a, &b, &mapped).is_empty());
        let d = c.compare(&a, &b, &|_: &str, _: &str| false);
        assert_eq!(fields(&d), vec![(DiffKind::Body, "$.sid".into())]);
    }

    #[test]
    fn gzip_recorded_body_equals_plain_replayed_body() {
        let body = r#"{"a":1,"b":"text"}"#;
        let mut a = resp(
            200,
            &[JSON, ("Content-Encoding", "gzip"), ("Content-Length", "99")],
            "",
        );
        a.body = encode_coding("gzip", body.as_bytes()).unwrap();
        let b = resp(200, &[JSON, ("Content-Length", "18")], body);
        let d = cmp(&CompareOptions::default(), &a, &b);
        // The coding itself is a header difference; the body and its length are not.
        assert_eq!(
            fields(&d),
            vec![(DiffKind::Header, "content-encoding".into())]
        );
        let opts = CompareOptions {
            ignore_headers: vec!["content-encoding".into()],
            ..Default::default()
        };
        assert!(cmp(&opts, &a, &b).is_empty());
    }

    /// A recorded gzip JSON response masked by the real default pipeline (decoded, token
    /// masked, Content-Encoding dropped) against the target's gzip response with a real token.
    #[test]
    fn masked_recording_through_the_default_pipeline_matches() {
        use mynah_traffic::{Exchange, Pipeline, PipelineOptions, Request};
        let mut pipeline = Pipeline::new(&PipelineOptions::default()).unwrap();
        let body = |t: &str| format!(r#"{{"token":"{t}","user":"ann","n":3}}"#);
        let gz = |t: &str| encode_coding("gzip", body(t).as_bytes()).unwrap();
        let mut rec = resp(
            200,
            &[
                JSON,
                ("Content-Encoding", "gzip"),
                ("Set-Cookie", "sid=secret-session-1; Path=/"),
            ],
            "",
        );
        rec.body = gz("recorded-secret-token");
        rec.headers
            .push("Content-Length", rec.body.len().to_string());
        let mut ex = Exchange::new(
            Request {
                method: "POST".into(),
                target: "/login".into(),
                ..Default::default()
            },
            1,
        );
        ex.response = Some(rec);
        let rec = pipeline.apply(ex).unwrap().response.unwrap();
        assert_eq!(rec.body_form, BodyForm::Decoded);
        assert!(!rec.headers.contains("content-encoding"));
        let mut rep = resp(
            200,
            &[
                JSON,
                ("Content-Encoding", "gzip"),
                ("Set-Cookie", "sid=other-session-2; Path=/"),
            ],
            "",
        );
        rep.body = gz("the-target-token");
        rep.headers
            .push("Content-Length", rep.body.len().to_string());
        assert_eq!(cmp(&CompareOptions::default(), &rec, &rep), vec![]);
        // A real change still shows.
        rep.body = encode_coding("gzip", br#"{"token":"x","user":"bob","n":3}"#).unwrap();
        let d = cmp(&CompareOptions::default(), &rec, &rep);
        assert_eq!(fields(&d), vec![(DiffKind::Body, "$.user".into())]);
    }

    #[test]
    fn content_length_compared_only_when_bodies_equal() {
        let a = resp(200, &[("Content-Length", "2")], "ab");
        let b = resp(200, &[("Content-Length", "3")], "abc");
        let d = cmp(&CompareOptions::default(), &a, &b);
        assert_eq!(fields(&d), vec![(DiffKind::Body, "body".into())]);
        // Same body, a different length: a real header difference.
        let c = resp(200, &[("Content-Length", "5")], "ab");
        let d = cmp(&CompareOptions::default(), &a, &c);
        assert_eq!(
            fields(&d),
            vec![(DiffKind::Header, "content-length".into())]
        );
        // Chunked (no length) against a length: framing, not content.
        let e = resp(200, &[], "ab");
        assert!(cmp(&CompareOptions::default(), &a, &e).is_empty());
    }

    #[test]
    fn text_body_difference_shows_the_region() {
        let a = resp(200, &[], &format!("{}<p>old</p>", "x".repeat(100)));
        let b = resp(200, &[], &format!("{}<p>new</p>", "x".repeat(100)));
        let d = cmp(&CompareOptions::default(), &a, &b);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].field, "body");
        assert!(d[0].recorded.starts_with('…'));
        assert!(d[0].recorded.ends_with("<p>old</p>"));
        assert!(d[0].replayed.ends_with("<p>new</p>"));
        // Long sides are cut.
        let a = resp(200, &[], &"a".repeat(1000));
        let b = resp(200, &[], &"b".repeat(1000));
        let d = cmp(&CompareOptions::default(), &a, &b);
        assert_eq!(d[0].recorded.chars().count(), SHOW_CHARS + 1);
        assert!(d[0].recorded.ends_with('…'));
        // A recorded text with a pseudonym matches around it.
        let a = resp(200, &[], "<a href=\"/x?t=mask-0123456789abcdef\">go</a>");
        let b = resp(200, &[], "<a href=\"/x?t=secret-value\">go</a>");
        assert!(cmp(&CompareOptions::default(), &a, &b).is_empty());
        // Binary bodies are shown as hex.
        let mut a = resp(200, &[], "");
        a.body = vec![0xff, 0, 1];
        let mut b = resp(200, &[], "");
        b.body = vec![0xff, 0, 2];
        let d = cmp(&CompareOptions::default(), &a, &b);
        assert!(d[0].recorded.contains("ff0001"), "{:?}", d[0]);
    }

    #[test]
    fn bodies_skipped_when_nothing_to_compare() {
        // Truncated capture (or HEAD): empty recorded body with a length.
        let a = resp(200, &[("Content-Length", "100")], "");
        let b = resp(200, &[("Content-Length", "100")], "something else");
        assert!(cmp(&CompareOptions::default(), &a, &b).is_empty());
        // Undecodable recorded body.
        let a = resp(200, &[("Content-Encoding", "gzip")], "not gzip");
        let b = resp(200, &[], "plain");
        let d = cmp(&CompareOptions::default(), &a, &b);
        assert!(d.iter().all(|d| d.kind != DiffKind::Body), "{d:?}");
        // 304 and 204.
        let a = resp(304, &[], "");
        let b = resp(304, &[], "junk");
        assert!(cmp(&CompareOptions::default(), &a, &b).is_empty());
        // Undecodable replayed body is a difference.
        let a = resp(200, &[], "plain");
        let b = resp(200, &[("Content-Encoding", "gzip")], "not gzip");
        let d = cmp(&CompareOptions::default(), &a, &b);
        assert!(d
            .iter()
            .any(|d| d.kind == DiffKind::Body && d.replayed.starts_with("(undecodable")));
    }

    #[test]
    fn at_most_twenty_differences() {
        let a: Value = (0..50)
            .map(|i| (format!("k{i}"), Value::from(i)))
            .collect::<serde_json::Map<_, _>>()
            .into();
        let b: Value = (0..50)
            .map(|i| (format!("k{i}"), Value::from(i + 1)))
            .collect::<serde_json::Map<_, _>>()
            .into();
        let a = resp(200, &[("X-A", "1")], &a.to_string());
        let b = resp(500, &[("X-B", "1")], &b.to_string());
        let d = cmp(&CompareOptions::default(), &a, &b);
        assert_eq!(d.len(), MAX_DIFFERENCES);
        assert_eq!(d[0].kind, DiffKind::Status);
    }

    #[test]
    fn numbers_by_value() {
        let a = resp(200, &[], r#"[1, 2.50, 18446744073709551615, -3, 1e2]"#);
        let b = resp(200, &[], r#"[1.0, 2.5, 18446744073709551615, -3.0, 100]"#);
        assert!(cmp(&CompareOptions::default(), &a, &b).is_empty());
    }

    #[test]
    fn mask_glob_rules() {
        assert!(mask_glob("mask-0123456789abcdef", "anything"));
        assert!(mask_glob(
            "a mask-0123456789abcdef b mask-0123456789abcdef c",
            "a X b Y c"
        ));
        assert!(!mask_glob("a mask-0123456789abcdef b", "a X c"));
        assert!(!mask_glob("plain", "plain"));
        assert!(!mask_glob("mask-0123", "x"));
        assert!(is_mask_value("Bearer mask-0123456789abcdef"));
        assert!(!is_mask_value("Bearer mask-0123456789abcdefg"));
        assert!(!mask_glob("ab mask-0123456789abcdef ba", "aba"));
    }

    #[test]
    fn garbage_never_panics() {
        let c = Comparer::new(&CompareOptions {
            ignore_json: vec!["$..x".into()],
            ..Default::default()
        })
        .unwrap();
        let samples: [&[u8]; 7] = [
            b"",
            b"{",
            b"\xff\xfe",
            b"[[[]]]",
            b"\"mask-\"",
            b"mask-",
            b"{\"x\":[1]}",
        ];
        for a in samples {
            for b in samples {
                let mut ra = resp(200, &[("Content-Length", "x"), ("Set-Cookie", ";;=")], "");
                ra.body = a.to_vec();
                let mut rb = resp(200, &[("content-encoding", "br")], "");
                rb.body = b.to_vec();
                c.compare(&ra, &rb, &no_map);
                c.compare(&rb, &ra, &no_map);
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bodies_never_panic(
            a in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200),
            b in "[\\[\\]{}\",:0-9a-z. -]{0,80}",
            hv in "[ -~]{0,40}",
        ) {
            let c = Comparer::new(&CompareOptions {
                ignore_json: vec!["$..a".into(), "$[*]".into()],
                ..Default::default()
            })
            .unwrap();
            let mut ra = resp(200, &[("X-A", hv.as_str()), ("Set-Cookie", hv.as_str())], "");
            ra.body = a;
            let rb = resp(200, &[("x-a", "mask-0123456789abcdef")], &b);
            let _ = c.compare(&ra, &rb, &no_map);
            let _ = c.compare(&rb, &ra, &no_map);
            proptest::prop_assert!(c.compare(&rb, &rb.clone(), &no_map).is_empty());
        }
    }
}
