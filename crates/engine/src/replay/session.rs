//! Session continuity for `mynah replay`: values the server issued in the recording are mapped to
//! the values the target issues during the replay, and substituted in later recorded requests.
//!
//! A recorded login response carries a token (in a `Set-Cookie`, a response header or a JSON
//! body); the later recorded requests of the same session carry that token back (in a `Cookie`,
//! an `Authorization` header, a query string or a body). Replayed as recorded, they would present
//! a token the target never issued, and every request after the login would fail. So each replayed
//! response is compared with its recorded twin ([`SessionMap::learn`]) and each later request is
//! rewritten before it is sent ([`SessionMap::apply`]).
//!
//! Recorded values are unique per session (a server never issues the same session id twice), so a
//! single map keyed by the recorded value serves every session of the replay at once.
//!
//! Recordings that went through mynah's masking pipeline work the same way: a secret becomes the
//! same pseudonym (`mask-<16 hex>`) wherever it was seen, so the masked token in the recorded
//! login response and the masked credentials of the later recorded requests are the same string.
//!
//! Out of scope: percent-encoded variants of a value (`a%2Bb` for `a+b`) are not matched, and
//! neither are values inside `Basic` credentials (they are base64 of `user:password`).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use mynah_traffic::{BodyForm, Headers, Request, Response};
use serde_json::Value;

/// Values shorter than this are never mapped: they would collide with ordinary text
/// (`"ok"`, `"true"`, small numbers) and corrupt requests.
pub const MIN_VALUE_LEN: usize = 6;

/// JSON response bodies larger than this (decoded) are not searched for tokens: login and
/// refresh responses are small, and parsing two large documents per exchange is not free.
pub const MAX_JSON_BODY: usize = 1 << 20;

/// Key names (substrings, lowercase) that mark a JSON string as a credential.
const CREDENTIAL_KEYS: &[&str] = &[
    "token", "session", "sid", "jwt", "csrf", "xsrf", "auth", "key", "nonce", "ticket", "code",
];

/// Response header names (substrings, lowercase) that carry a server-issued credential.
const CREDENTIAL_HEADERS: &[&str] = &["token", "session", "csrf", "xsrf", "auth"];

/// One learnt pair. `generation` tells the live entry from stale FIFO slots after an update.
#[derive(Debug)]
struct Entry {
    replayed: Arc<str>,
    generation: u64,
}

#[derive(Debug, Default)]
struct Inner {
    map: HashMap<Box<str>, Entry>,
    /// Insertion order for the FIFO bound; may hold stale slots (their generation no longer
    /// matches the entry), which are skipped on eviction and compacted away.
    order: VecDeque<(Box<str>, u64)>,
    next_generation: u64,
}

impl Inner {
    /// Stores `recorded -> replayed`; true if the pair is new or the replayed value changed.
    fn insert(&mut self, recorded: &str, replayed: &str, max_entries: usize) -> bool {
        let generation = self.next_generation;
        self.next_generation = self.next_generation.wrapping_add(1);
        if let Some(e) = self.map.get_mut(recorded) {
            if &*e.replayed == replayed {
                return false;
            }
            // The same recorded login replayed again (a second loop over the recording) gets a
            // new token: the newest is the one the target accepts now. It counts as new for FIFO.
            e.replayed = Arc::from(replayed);
            e.generation = generation;
            self.order.push_back((Box::from(recorded), generation));
            self.compact();
            return true;
        }
        while self.map.len() >= max_entries {
            let Some((old, g)) = self.order.pop_front() else {
                break;
            };
            if self.map.get(&old).is_some_and(|e| e.generation == g) {
                self.map.remove(&old);
            }
        }
        self.map.insert(
            Box::from(recorded),
            Entry {
                replayed: Arc::from(replayed),
                generation,
            },
        );
        self.order.push_back((Box::from(recorded), generation));
        self.compact();
        true
    }

    /// Drops stale FIFO slots once they outnumber the live ones, so updates cannot grow memory.
    fn compact(&mut self) {
        if self.order.len() > 2 * self.map.len() + 16 {
            let map = &self.map;
            self.order
                .retain(|(k, g)| map.get(k).is_some_and(|e| e.generation == *g));
        }
    }
}

/// Recorded value -> replayed value, learnt from responses, applied to later requests.
///
/// Shared by every replay connection on several threads: it is `Send + Sync` (an internal
/// `RwLock`; [`SessionMap::apply`] only reads, and does not even lock while the map is empty).
#[derive(Debug)]
pub struct SessionMap {
    max_entries: usize,
    /// The number of entries, readable without the lock (the empty fast path of `apply`).
    len: AtomicUsize,
    inner: RwLock<Inner>,
}

impl Default for SessionMap {
    /// A map bounded at 100,000 entries (a few tens of MiB at most).
    fn default() -> Self {
        SessionMap::new(100_000)
    }
}

impl SessionMap {
    /// `max_entries` bounds memory: beyond it the oldest entries are forgotten (FIFO), since old
    /// sessions are the least likely to be used again. `0` learns nothing.
    pub fn new(max_entries: usize) -> SessionMap {
        SessionMap {
            max_entries,
            len: AtomicUsize::new(0),
            inner: RwLock::new(Inner::default()),
        }
    }

    /// The number of pairs known.
    pub fn len(&self) -> usize {
        self.len.load(Ordering::Acquire)
    }

    /// True when nothing was learnt (or everything was forgotten).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The replayed value learnt for `recorded`, if any.
    pub fn get(&self, recorded: &str) -> Option<Arc<str>> {
        if self.is_empty() {
            return None;
        }
        self.read()
            .map
            .get(recorded)
            .map(|e| Arc::clone(&e.replayed))
    }

    /// True if the map maps `recorded` to `replayed`: what `Comparer::compare` wants to know, so
    /// a token the target issued in place of the recorded one is not reported as a difference.
    pub fn is_mapped(&self, recorded: &str, replayed: &str) -> bool {
        self.get(recorded).is_some_and(|r| &*r == replayed)
    }

    fn read(&self) -> RwLockReadGuard<'_, Inner> {
        // A panic elsewhere while holding the lock leaves the map consistent (every mutation is
        // a whole insert), so a poisoned lock is still usable.
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Learns from one replayed exchange: what the server issued in the recording vs what the
    /// target issued now. Returns how many new pairs were learnt.
    ///
    /// Looks at cookies set by both responses (by cookie name), at credential-like response
    /// headers (names containing `token`, `session`, `csrf`, `xsrf` or `auth`), and at JSON
    /// bodies walked in parallel (strings under credential-like keys, or opaque token-like
    /// strings). Works whatever the replayed status: whatever matches is learnt.
    pub fn learn(&self, recorded: &Response, replayed: &Response) -> usize {
        if self.max_entries == 0 {
            return 0;
        }
        let mut pairs = Vec::new();
        cookie_pairs(&recorded.headers, &replayed.headers, &mut pairs);
        header_pairs(&recorded.headers, &replayed.headers, &mut pairs);
        json_pairs(recorded, replayed, &mut pairs);
        if pairs.is_empty() {
            return 0;
        }
        let mut inner = self.write();
        let mut learnt = 0;
        for (r, p) in &pairs {
            if inner.insert(r, p, self.max_entries) {
                learnt += 1;
            }
        }
        self.len.store(inner.map.len(), Ordering::Release);
        learnt
    }

    /// Rewrites a recorded request before it is sent: every recorded value known to the map that
    /// appears in the request target (path segments and query values), in header values (Cookie
    /// pairs, Authorization credentials, any other header value and its tokens) or in the body
    /// (JSON string values, form values, and as a fallback token-like runs of a textual body) is
    /// replaced by the replayed value. Fixes Content-Length when the body changed (when the
    /// request had one). Returns the number of substitutions.
    ///
    /// Costs one atomic load when the map is empty; otherwise O(request size): the request is
    /// split into candidate tokens, each looked up once, never the other way round.
    /// A body still content-encoded or chunked (wire form) is left alone.
    pub fn apply(&self, request: &mut Request) -> usize {
        if self.is_empty() {
            return 0;
        }
        let inner = self.read();
        let map = &inner.map;
        let mut n = 0;

        // -- target --
        let mut sc = Scanner::new(map);
        sc.url = true;
        scan_target(&mut sc, request.target.as_bytes());
        if !sc.edits.is_empty() {
            let out = splice(request.target.as_bytes(), &sc.edits);
            if let Ok(t) = String::from_utf8(out) {
                request.target = t;
                n += sc.edits.len();
            }
        }

        // -- headers --
        for h in request.headers.0.iter_mut() {
            let lname = h.name.to_ascii_lowercase();
            let mut sc = Scanner::new(map);
            match lname.as_str() {
                "content-length" | "content-type" | "content-encoding" | "transfer-encoding"
                | "host" => continue,
                "cookie" => {
                    for (off, part) in split_offsets(&h.value, b';') {
                        match part.iter().position(|&b| b == b'=') {
                            Some(eq) => sc.piece(part.get(eq + 1..).unwrap_or(&[]), off + eq + 1),
                            None => sc.piece(part, off),
                        }
                    }
                }
                "authorization" | "proxy-authorization" => {
                    let (v, base) = trim_off(&h.value, 0);
                    match v.iter().position(|&b| b == b' ') {
                        Some(sp) => sc.piece(v.get(sp + 1..).unwrap_or(&[]), base + sp + 1),
                        None => sc.piece(v, base),
                    }
                }
                _ => sc.piece(&h.value, 0),
            }
            if !sc.edits.is_empty() {
                h.value = splice(&h.value, &sc.edits);
                n += sc.edits.len();
            }
        }

        // -- body --
        if !request.body.is_empty() {
            let coded = request
                .headers
                .get_all("content-encoding")
                .flat_map(|v| v.split(|&b| b == b','))
                .any(|t| {
                    let t = trim_off(t, 0).0;
                    !t.is_empty() && !t.eq_ignore_ascii_case(b"identity")
                })
                || request.headers.has_token("transfer-encoding", "chunked");
            if !(coded && request.body_form == BodyForm::Wire) {
                let edits = scan_body(map, &request.headers, &request.body);
                if !edits.is_empty() {
                    request.body = splice(&request.body, &edits);
                    n += edits.len();
                    // A decoded body whose headers still describe a coding: the length describes
                    // the wire form, which whoever re-encodes it must recompute.
                    if !coded && request.headers.contains("content-length") {
                        request
                            .headers
                            .set("Content-Length", request.body.len().to_string());
                    }
                }
            }
        }
        n
    }
}

// -- learning ---------------------------------------------------------------------------------

/// True for a pair worth storing: a long enough recorded value, a different replayed one, and
/// nothing that could break a header or a request line when substituted.
fn worth_mapping(recorded: &str, replayed: &str) -> bool {
    let clean = |s: &str| !s.chars().any(char::is_control);
    recorded != replayed
        && recorded.chars().count() >= MIN_VALUE_LEN
        && !replayed.is_empty()
        && clean(recorded)
        && clean(replayed)
}

fn push_pair(out: &mut Vec<(String, String)>, recorded: &str, replayed: &str) {
    if worth_mapping(recorded, replayed) {
        out.push((recorded.to_string(), replayed.to_string()));
    }
}

/// The cookies a response sets, `(name, value)` in order (the first `name=value` of each
/// `Set-Cookie`; attributes are not values the client sends back).
fn set_cookies(headers: &Headers) -> Vec<(String, String)> {
    headers
        .get_all("set-cookie")
        .filter_map(|v| {
            let v = String::from_utf8_lossy(v);
            let first = v.split(';').next().unwrap_or("");
            let (name, value) = first.split_once('=')?;
            let value = value.trim();
            let value = value
                .strip_prefix('"')
                .and_then(|x| x.strip_suffix('"'))
                .unwrap_or(value);
            Some((name.trim().to_string(), value.to_string()))
        })
        .collect()
}

fn cookie_pairs(recorded: &Headers, replayed: &Headers, out: &mut Vec<(String, String)>) {
    let rec = set_cookies(recorded);
    if rec.is_empty() {
        return;
    }
    let rep = set_cookies(replayed);
    for (name, rv) in &rec {
        // The last value set for a name is the one the client keeps.
        if let Some((_, pv)) = rep.iter().rev().find(|(n, _)| n == name) {
            // An empty replayed value is a deletion, not a value to send back.
            push_pair(out, rv, pv);
        }
    }
}

/// `Scheme credentials` split in two, when the value is exactly that (`Bearer abc`).
fn split_scheme(v: &str) -> Option<(&str, &str)> {
    let (scheme, cred) = v.split_once(' ')?;
    let cred = cred.trim();
    let scheme_ok = !scheme.is_empty()
        && scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    (scheme_ok && !cred.is_empty() && !cred.contains(char::is_whitespace)).then_some((scheme, cred))
}

fn header_pairs(recorded: &Headers, replayed: &Headers, out: &mut Vec<(String, String)>) {
    let mut done: Vec<String> = Vec::new();
    for h in recorded.iter() {
        let lname = h.name.to_ascii_lowercase();
        if lname == "set-cookie"
            || done.contains(&lname)
            || !CREDENTIAL_HEADERS.iter().any(|k| lname.contains(k))
        {
            continue;
        }
        for (rv, pv) in recorded.get_all(&lname).zip(replayed.get_all(&lname)) {
            let rv = String::from_utf8_lossy(rv);
            let pv = String::from_utf8_lossy(pv);
            let (rv, pv) = (rv.trim(), pv.trim());
            if !rv.contains(char::is_whitespace) {
                push_pair(out, rv, pv);
            } else if let (Some((rs, rc)), Some((ps, pc))) = (split_scheme(rv), split_scheme(pv)) {
                if rs.eq_ignore_ascii_case(ps) {
                    push_pair(out, rc, pc);
                }
            }
        }
        done.push(lname);
    }
}

/// A decoded body small enough to search, that may be JSON (an object or an array).
fn json_doc(resp: &Response) -> Option<Value> {
    // Compressed or chunked, the raw size is no exact bound; twice the cap rejects the
    // obviously large without decoding them.
    if resp.body.is_empty() || resp.body.len() > 2 * MAX_JSON_BODY {
        return None;
    }
    let body = resp.decoded_body().ok()?;
    if body.len() > MAX_JSON_BODY {
        return None;
    }
    let first = body.iter().find(|b| !b.is_ascii_whitespace())?;
    if *first != b'{' && *first != b'[' {
        return None;
    }
    serde_json::from_slice(&body).ok()
}

fn json_pairs(recorded: &Response, replayed: &Response, out: &mut Vec<(String, String)>) {
    let Some(rec) = json_doc(recorded) else {
        return;
    };
    let Some(rep) = json_doc(replayed) else {
        return;
    };
    walk_json(&rec, &rep, None, out);
}

fn is_credential_key(key: &str) -> bool {
    let lower = key.to_ascii_lowercase();
    CREDENTIAL_KEYS.iter().any(|k| lower.contains(k))
}

/// Looks like a server-made opaque token: long, no whitespace, only token/base64/JWT characters.
fn is_opaque_token(s: &str) -> bool {
    s.len() >= 16 && s.bytes().all(is_token_char)
}

/// The characters of opaque tokens: base64, base64url, JWT, hex and UUIDs.
fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'~' | b'+' | b'/' | b'=' | b'-')
}

/// Walks both documents by key and array index (serde_json's recursion limit bounds the depth).
/// Array elements are paired by position, so a list whose order changed can map wrongly; those
/// values are still only substituted where the recorded value itself appears.
fn walk_json(rec: &Value, rep: &Value, key: Option<&str>, out: &mut Vec<(String, String)>) {
    match (rec, rep) {
        (Value::Object(r), Value::Object(p)) => {
            for (k, rv) in r {
                if let Some(pv) = p.get(k) {
                    walk_json(rv, pv, Some(k), out);
                }
            }
        }
        (Value::Array(r), Value::Array(p)) => {
            for (rv, pv) in r.iter().zip(p) {
                walk_json(rv, pv, key, out);
            }
        }
        (Value::String(r), Value::String(p))
            if r != p && (key.is_some_and(is_credential_key) || is_opaque_token(r)) =>
        {
            push_pair(out, r, p);
        }
        _ => {}
    }
}

// -- applying ---------------------------------------------------------------------------------

/// One replacement: `src[start..end]` becomes `with`.
#[derive(Debug)]
struct Edit {
    start: usize,
    end: usize,
    with: String,
}

/// Finds known recorded values in pieces of a request and collects the edits, left to right.
struct Scanner<'m> {
    map: &'m HashMap<Box<str>, Entry>,
    edits: Vec<Edit>,
    /// Inside a JSON string: replacements are escaped.
    json: bool,
    /// In the request target: replacements with whitespace are not made (they would break the
    /// request line).
    url: bool,
}

impl<'m> Scanner<'m> {
    fn new(map: &'m HashMap<Box<str>, Entry>) -> Self {
        Scanner {
            map,
            edits: Vec::new(),
            json: false,
            url: false,
        }
    }

    fn lookup(&self, s: &[u8]) -> Option<&'m str> {
        if s.len() < MIN_VALUE_LEN {
            return None;
        }
        let s = std::str::from_utf8(s).ok()?;
        self.map.get(s).map(|e| &*e.replayed)
    }

    /// Replaces `start..end` if `s` (the bytes there) is a known value; true if it was.
    fn try_replace(&mut self, s: &[u8], start: usize) -> bool {
        let Some(with) = self.lookup(s) else {
            return false;
        };
        if self.url && with.contains(char::is_whitespace) {
            return false;
        }
        let with = if self.json {
            let quoted = serde_json::to_string(with).unwrap_or_default();
            quoted
                .strip_prefix('"')
                .and_then(|q| q.strip_suffix('"'))
                .unwrap_or(with)
                .to_string()
        } else {
            with.to_string()
        };
        self.edits.push(Edit {
            start,
            end: start + s.len(),
            with,
        });
        true
    }

    /// A value: trimmed and unquoted, looked up whole, else searched run by run.
    fn piece(&mut self, s: &[u8], base: usize) {
        let (s, base) = trim_off(s, base);
        let (s, base) = match s {
            [b'"', inner @ .., b'"'] => (inner, base + 1),
            _ => (s, base),
        };
        if !self.try_replace(s, base) {
            self.runs(s, base);
        }
    }

    /// Every maximal run of token characters in `s`.
    fn runs(&mut self, s: &[u8], base: usize) {
        let mut i = 0;
        while i < s.len() {
            if !s.get(i).copied().is_some_and(is_token_char) {
                i += 1;
                continue;
            }
            let start = i;
            while s.get(i).copied().is_some_and(is_token_char) {
                i += 1;
            }
            if let Some(run) = s.get(start..i) {
                self.run(run, base + start);
            }
        }
    }

    /// One run of token characters: the whole run, the run without a sentence's final dots,
    /// the value of a `name=value` run, or its `/`-separated segments.
    fn run(&mut self, run: &[u8], base: usize) {
        if run.len() < MIN_VALUE_LEN || self.try_replace(run, base) {
            return;
        }
        let trimmed = run.strip_suffix(b".").map(|_| {
            let k = run.iter().rposition(|&b| b != b'.').map_or(0, |p| p + 1);
            run.get(..k).unwrap_or(&[])
        });
        if let Some(t) = trimmed {
            if self.try_replace(t, base) {
                return;
            }
        }
        if let Some(eq) = run.iter().position(|&b| b == b'=') {
            if let Some(v) = run.get(eq + 1..) {
                if self.try_replace(v, base + eq + 1) {
                    return;
                }
            }
        }
        if run.contains(&b'/') {
            for (off, seg) in split_offsets(run, b'/') {
                self.try_replace(seg, base + off);
            }
        }
    }
}

/// The parts of `s` between `sep` bytes, with their offsets.
fn split_offsets(s: &[u8], sep: u8) -> impl Iterator<Item = (usize, &[u8])> {
    let mut pos = 0;
    s.split(move |&b| b == sep).map(move |part| {
        let p = pos;
        pos += part.len() + 1;
        (p, part)
    })
}

/// `s` without surrounding ASCII whitespace, and the offset it now starts at.
fn trim_off(s: &[u8], base: usize) -> (&[u8], usize) {
    let lead = s.iter().take_while(|b| b.is_ascii_whitespace()).count();
    let rest = s.get(lead..).unwrap_or(&[]);
    let trail = rest
        .iter()
        .rev()
        .take_while(|b| b.is_ascii_whitespace())
        .count();
    (rest.get(..rest.len() - trail).unwrap_or(&[]), base + lead)
}

/// Applies sorted, non-overlapping edits (an edit that would overlap or fall outside is skipped).
fn splice(src: &[u8], edits: &[Edit]) -> Vec<u8> {
    let mut out = Vec::with_capacity(src.len() + 64);
    let mut last = 0;
    for e in edits {
        if e.start < last || e.end < e.start || e.end > src.len() {
            continue;
        }
        out.extend_from_slice(src.get(last..e.start).unwrap_or(&[]));
        out.extend_from_slice(e.with.as_bytes());
        last = e.end;
    }
    out.extend_from_slice(src.get(last..).unwrap_or(&[]));
    out
}

/// Path segments and query values of a request target, whatever its form.
fn scan_target(sc: &mut Scanner<'_>, t: &[u8]) {
    let mut start = 0;
    for scheme in [&b"http://"[..], b"https://"] {
        if t.len() >= scheme.len()
            && t.get(..scheme.len())
                .is_some_and(|p| p.eq_ignore_ascii_case(scheme))
        {
            let rest = t.get(scheme.len()..).unwrap_or(&[]);
            start = scheme.len() + rest.iter().position(|&b| b == b'/').unwrap_or(rest.len());
        }
    }
    let pq = t.get(start..).unwrap_or(&[]);
    let end = pq.iter().position(|&b| b == b'#').unwrap_or(pq.len());
    let pq = pq.get(..end).unwrap_or(&[]);
    let (path, query) = match pq.iter().position(|&b| b == b'?') {
        Some(q) => (
            pq.get(..q).unwrap_or(&[]),
            pq.get(q + 1..).map(|s| (q + 1, s)),
        ),
        None => (pq, None),
    };
    for (off, seg) in split_offsets(path, b'/') {
        sc.piece(seg, start + off);
    }
    if let Some((qoff, query)) = query {
        for (off, pair) in split_offsets(query, b'&') {
            let base = start + qoff + off;
            match pair.iter().position(|&b| b == b'=') {
                Some(eq) => sc.piece(pair.get(eq + 1..).unwrap_or(&[]), base + eq + 1),
                None => sc.piece(pair, base),
            }
        }
    }
}

/// The edits of a plain (not encoded) request body.
fn scan_body(map: &HashMap<Box<str>, Entry>, headers: &Headers, body: &[u8]) -> Vec<Edit> {
    let ct = headers
        .get_str("content-type")
        .map(|c| c.to_ascii_lowercase())
        .unwrap_or_default();
    let mut sc = Scanner::new(map);
    let first = body.iter().find(|b| !b.is_ascii_whitespace()).copied();
    let maybe_json = ct.contains("json") || matches!(first, Some(b'{') | Some(b'['));
    if maybe_json && serde_json::from_slice::<Value>(body).is_ok() {
        // serde_json here has no `preserve_order`: re-serialising would sort the keys. The
        // string literals are replaced in the raw text instead, which also keeps the formatting.
        sc.json = true;
        scan_json(&mut sc, body);
    } else if ct.contains("application/x-www-form-urlencoded") {
        for (off, pair) in split_offsets(body, b'&') {
            match pair.iter().position(|&b| b == b'=') {
                Some(eq) => sc.piece(pair.get(eq + 1..).unwrap_or(&[]), off + eq + 1),
                None => sc.piece(pair, off),
            }
        }
    } else if is_textual(&ct, body) {
        sc.piece(body, 0);
    }
    sc.edits
}

fn is_textual(ct: &str, body: &[u8]) -> bool {
    ct.starts_with("text/")
        || ["json", "xml", "javascript", "urlencoded", "graphql", "yaml"]
            .iter()
            .any(|k| ct.contains(k))
        || std::str::from_utf8(body).is_ok()
}

/// Every string value (not key) of a valid JSON text: looked up whole (unescaped), else its
/// token-like runs are searched (strings without escapes only, so offsets stay exact).
fn scan_json(sc: &mut Scanner<'_>, body: &[u8]) {
    let mut i = 0;
    while i < body.len() {
        if body.get(i) != Some(&b'"') {
            i += 1;
            continue;
        }
        let start = i;
        let mut j = i + 1;
        let mut escaped = false;
        while let Some(&b) = body.get(j) {
            match b {
                b'\\' => {
                    escaped = true;
                    j += 2;
                }
                b'"' => break,
                _ => j += 1,
            }
        }
        if j >= body.len() {
            break;
        }
        let end = j; // the closing quote
        let after = body
            .get(end + 1..)
            .unwrap_or(&[])
            .iter()
            .find(|b| !b.is_ascii_whitespace());
        let is_key = after == Some(&b':');
        if !is_key {
            let content = body.get(start + 1..end).unwrap_or(&[]);
            if escaped {
                let text = body
                    .get(start..=end)
                    .and_then(|lit| serde_json::from_slice::<String>(lit).ok());
                if let Some(text) = text {
                    if let Some(with) = sc.lookup(text.as_bytes()) {
                        let with = serde_json::to_string(with).unwrap_or_default();
                        if !with.is_empty() {
                            sc.edits.push(Edit {
                                start,
                                end: end + 1,
                                with,
                            });
                        }
                    }
                }
            } else if !sc.try_replace(content, start + 1) {
                sc.runs(content, start + 1);
            }
        }
        i = end + 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replay::test_util::resp;
    use mynah_traffic::decode::encode_coding;
    use mynah_traffic::{Exchange, Pipeline, PipelineOptions};

    fn req(method: &str, target: &str, headers: &[(&str, &str)], body: &str) -> Request {
        let mut h = Headers::new();
        for (n, v) in headers {
            h.push(*n, *v);
        }
        Request {
            method: method.into(),
            target: target.into(),
            headers: h,
            body: body.as_bytes().to_vec(),
            ..Default::default()
        }
    }

    fn hdr(r: &Request, name: &str) -> String {
        r.headers.get_str(name).unwrap_or_default().into_owned()
    }

    const REC_TOKEN: &str = "eyJhbGciOiJIUzI1NiJ9.recorded.sig";
    const NEW_TOKEN: &str = "eyJhbGciOiJIUzI1NiJ9.replayed.sig";

    #[test]
    fn is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<SessionMap>();
    }

    #[test]
    fn login_json_token_is_substituted_into_bearer() {
        let m = SessionMap::new(100);
        let rec = resp(
            200,
            &[],
            &format!(r#"{{"access_token":"{REC_TOKEN}","user":"ann"}}"#),
        );
        let rep = resp(
            200,
            &[],
            &format!(r#"{{"access_token":"{NEW_TOKEN}","user":"ann"}}"#),
        );
        assert_eq!(m.learn(&rec, &rep), 1);
        assert_eq!(m.len(), 1);
        // Learning the same pair again learns nothing new.
        assert_eq!(m.learn(&rec, &rep), 0);
        let mut r = req(
            "GET",
            "/api/me",
            &[("Authorization", &format!("Bearer {REC_TOKEN}"))],
            "",
        );
        assert_eq!(m.apply(&mut r), 1);
        assert_eq!(hdr(&r, "authorization"), format!("Bearer {NEW_TOKEN}"));
        assert!(m.is_mapped(REC_TOKEN, NEW_TOKEN));
        assert!(!m.is_mapped(REC_TOKEN, "other"));
    }

    #[test]
    fn set_cookie_is_substituted_in_cookie_and_other_cookies_untouched() {
        let m = SessionMap::new(100);
        let rec = resp(
            200,
            &[
                ("Set-Cookie", "sid=rec-session-1234; Path=/; HttpOnly"),
                ("Set-Cookie", "lang=en; Path=/"),
            ],
            "",
        );
        let rep = resp(
            302,
            &[
                ("set-cookie", "sid=new-session-9876; Path=/; HttpOnly"),
                ("set-cookie", "lang=fr; Path=/"),
            ],
            "",
        );
        // `lang` differs but is too short to map.
        assert_eq!(m.learn(&rec, &rep), 1);
        let mut r = req(
            "GET",
            "/",
            &[("Cookie", "theme=dark-mode; sid=rec-session-1234; lang=en")],
            "",
        );
        assert_eq!(m.apply(&mut r), 1);
        assert_eq!(
            hdr(&r, "cookie"),
            "theme=dark-mode; sid=new-session-9876; lang=en"
        );
    }

    #[test]
    fn deleted_or_equal_or_short_cookies_are_not_mapped() {
        let m = SessionMap::new(100);
        let rec = resp(
            200,
            &[
                ("Set-Cookie", "a=value-one-long"),
                ("Set-Cookie", "b=same-value-here"),
                ("Set-Cookie", "c=short"),
                ("Set-Cookie", "d="),
            ],
            "",
        );
        let rep = resp(
            200,
            &[
                ("Set-Cookie", "a=; Max-Age=0"),
                ("Set-Cookie", "b=same-value-here"),
                ("Set-Cookie", "c=other"),
                ("Set-Cookie", "d=something-new"),
            ],
            "",
        );
        assert_eq!(m.learn(&rec, &rep), 0);
        assert!(m.is_empty());
    }

    #[test]
    fn credential_response_headers_are_learnt() {
        let m = SessionMap::new(100);
        let rec = resp(
            200,
            &[
                ("X-CSRF-Token", "csrf-recorded-abc"),
                ("X-Auth", "Bearer header-recorded-1"),
                ("Content-Type", "text/plain-recorded"),
            ],
            "",
        );
        let rep = resp(
            200,
            &[
                ("x-csrf-token", "csrf-replayed-xyz"),
                ("X-Auth", "Bearer header-replayed-2"),
                ("Content-Type", "text/plain-replayed"),
            ],
            "",
        );
        assert_eq!(m.learn(&rec, &rep), 2);
        assert!(m.is_mapped("csrf-recorded-abc", "csrf-replayed-xyz"));
        assert!(m.is_mapped("header-recorded-1", "header-replayed-2"));
        let mut r = req(
            "POST",
            "/form",
            &[("X-CSRF-Token", "csrf-recorded-abc")],
            "",
        );
        assert_eq!(m.apply(&mut r), 1);
        assert_eq!(hdr(&r, "x-csrf-token"), "csrf-replayed-xyz");
    }

    #[test]
    fn json_rules_keys_opaque_values_and_short_values() {
        let m = SessionMap::new(100);
        let rec = resp(
            200,
            &[("Content-Type", "application/json")],
            r#"{"data":{"refreshToken":"refresh-rec","code":"abc","name":"Alice Smith",
                "id":"0f8fad5b-d9cb-469f-a165-70867728950e","items":[{"ticket":"T-000111"}],
                "when":"2024-01-01 10:00:00 recorded"}}"#,
        );
        let rep = resp(
            500,
            &[("Content-Type", "application/json")],
            r#"{"data":{"refreshToken":"refresh-rep","code":"xyz","name":"Bob Jones",
                "id":"7c9e6679-7425-40de-944b-e07fc1f90ae7","items":[{"ticket":"T-000222"}],
                "when":"2025-01-01 10:00:00 replayed"}}"#,
        );
        assert_eq!(m.learn(&rec, &rep), 3);
        assert!(m.is_mapped("refresh-rec", "refresh-rep"));
        assert!(m.is_mapped(
            "0f8fad5b-d9cb-469f-a165-70867728950e",
            "7c9e6679-7425-40de-944b-e07fc1f90ae7"
        ));
        assert!(m.is_mapped("T-000111", "T-000222"));
        assert!(m.get("abc").is_none());
        assert!(m.get("Alice Smith").is_none());
    }

    #[test]
    fn gzip_json_response_is_learnt() {
        let m = SessionMap::new(100);
        let body = format!(r#"{{"token":"{REC_TOKEN}"}}"#);
        let mut rec = resp(200, &[("Content-Encoding", "gzip")], "");
        rec.body = encode_coding("gzip", body.as_bytes()).unwrap();
        let rep = resp(200, &[], &format!(r#"{{"token":"{NEW_TOKEN}"}}"#));
        assert_eq!(m.learn(&rec, &rep), 1);
    }

    #[test]
    fn query_and_path_tokens_are_substituted() {
        let m = SessionMap::new(100);
        let rec = resp(
            200,
            &[],
            r#"{"session_id":"sess-rec-0001","order":"ord-rec-000000000001"}"#,
        );
        let rep = resp(
            200,
            &[],
            r#"{"session_id":"sess-rep-0002","order":"ord-rep-000000000002"}"#,
        );
        assert_eq!(m.learn(&rec, &rep), 2);
        let mut r = req(
            "GET",
            "http://shop.test/orders/ord-rec-000000000001/items?sid=sess-rec-0001&x=1#frag",
            &[],
            "",
        );
        assert_eq!(m.apply(&mut r), 2);
        assert_eq!(
            r.target,
            "http://shop.test/orders/ord-rep-000000000002/items?sid=sess-rep-0002&x=1#frag"
        );
        // A path parameter (`;jsessionid=`) and a referer URL.
        let mut r = req(
            "GET",
            "/cart;jsessionid=sess-rec-0001",
            &[("Referer", "https://shop.test/a?b=1&sid=sess-rec-0001")],
            "",
        );
        assert_eq!(m.apply(&mut r), 2);
        assert_eq!(r.target, "/cart;jsessionid=sess-rep-0002");
        assert_eq!(
            hdr(&r, "referer"),
            "https://shop.test/a?b=1&sid=sess-rep-0002"
        );
    }

    #[test]
    fn json_request_body_is_substituted_and_content_length_fixed() {
        let m = SessionMap::new(100);
        let rec = resp(
            200,
            &[],
            r#"{"csrf":"csrf-rec-1","refresh_token":"rt-rec-1"}"#,
        );
        let rep = resp(
            200,
            &[],
            r#"{"csrf":"csrf-replayed-22","refresh_token":"rt-replayed-22"}"#,
        );
        assert_eq!(m.learn(&rec, &rep), 2);
        let body = "{ \"b\": \"csrf-rec-1\",\n  \"a\": [\"rt-rec-1\", 3],\n \"csrf-rec-1\": \"note: Bearer rt-rec-1.\" }";
        let mut r = req(
            "POST",
            "/refresh",
            &[
                ("Content-Type", "application/json"),
                ("Content-Length", &body.len().to_string()),
            ],
            body,
        );
        assert_eq!(m.apply(&mut r), 3);
        let want = "{ \"b\": \"csrf-replayed-22\",\n  \"a\": [\"rt-replayed-22\", 3],\n \"csrf-rec-1\": \"note: Bearer rt-replayed-22.\" }";
        assert_eq!(String::from_utf8_lossy(&r.body), want);
        assert_eq!(hdr(&r, "content-length"), want.len().to_string());
        // Key order and formatting kept, and the result is still JSON.
        assert!(serde_json::from_slice::<Value>(&r.body).is_ok());
    }

    #[test]
    fn escaped_json_strings_are_matched_and_replacements_escaped() {
        let m = SessionMap::new(100);
        let rec = resp(200, &[], r#"{"token":"a/b+rec/000000"}"#);
        let rep = resp(200, &[], r#"{"token":"new\"quoted\"value"}"#);
        assert_eq!(m.learn(&rec, &rep), 1);
        let body = r#"{"t":"a\/b+rec\/000000"}"#;
        let mut r = req("POST", "/", &[("Content-Type", "application/json")], body);
        assert_eq!(m.apply(&mut r), 1);
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["t"], "new\"quoted\"value");
    }

    #[test]
    fn form_and_text_bodies_are_substituted() {
        let m = SessionMap::new(100);
        let rec = resp(200, &[], r#"{"nonce":"nonce-rec-42"}"#);
        let rep = resp(200, &[], r#"{"nonce":"nonce-rep-43"}"#);
        m.learn(&rec, &rep);
        let body = "a=1&nonce=nonce-rec-42&b=nonce-rec-42x";
        let mut r = req(
            "POST",
            "/f",
            &[
                ("Content-Type", "application/x-www-form-urlencoded"),
                ("Content-Length", "38"),
            ],
            body,
        );
        assert_eq!(m.apply(&mut r), 1);
        assert_eq!(r.body, b"a=1&nonce=nonce-rep-43&b=nonce-rec-42x");
        assert_eq!(hdr(&r, "content-length"), "38");
        let mut r = req(
            "POST",
            "/t",
            &[("Content-Type", "text/plain")],
            "your nonce is nonce-rec-42. <a href=\"/x/nonce-rec-42/y\">",
        );
        assert_eq!(m.apply(&mut r), 2);
        assert_eq!(
            r.body,
            b"your nonce is nonce-rep-43. <a href=\"/x/nonce-rep-43/y\">"
        );
    }

    #[test]
    fn encoded_or_chunked_request_bodies_are_left_alone() {
        let m = SessionMap::new(100);
        m.learn(
            &resp(200, &[], r#"{"token":"tok-rec-000"}"#),
            &resp(200, &[], r#"{"token":"tok-rep-111"}"#),
        );
        let plain = r#"{"token":"tok-rec-000"}"#;
        let mut r = req("POST", "/", &[("Content-Encoding", "gzip")], "");
        r.body = encode_coding("gzip", plain.as_bytes()).unwrap();
        let before = r.body.clone();
        assert_eq!(m.apply(&mut r), 0);
        assert_eq!(r.body, before);
        let chunked = mynah_traffic::decode::chunk(plain.as_bytes());
        let mut r = req("POST", "/", &[("Transfer-Encoding", "chunked")], "");
        r.body = chunked.clone();
        assert_eq!(m.apply(&mut r), 0);
        assert_eq!(r.body, chunked);
        // Stored decoded (a HAR file): substituted, the wire length left to whoever encodes.
        let mut r = req(
            "POST",
            "/",
            &[("Content-Encoding", "gzip"), ("Content-Length", "99")],
            plain,
        );
        r.body_form = BodyForm::Decoded;
        assert_eq!(m.apply(&mut r), 1);
        assert_eq!(r.body, br#"{"token":"tok-rep-111"}"#);
        assert_eq!(hdr(&r, "content-length"), "99");
    }

    #[test]
    fn fifo_bound_forgets_the_oldest() {
        let m = SessionMap::new(3);
        for i in 0..5 {
            let rec = resp(200, &[("Set-Cookie", &format!("sid=recorded-{i}"))], "");
            let rep = resp(200, &[("Set-Cookie", &format!("sid=replayed-{i}"))], "");
            assert_eq!(m.learn(&rec, &rep), 1);
        }
        assert_eq!(m.len(), 3);
        assert!(m.get("recorded-0").is_none());
        assert!(m.get("recorded-1").is_none());
        assert!(m.is_mapped("recorded-4", "replayed-4"));
        // An update counts as new and refreshes the entry's place.
        let rec = resp(200, &[("Set-Cookie", "sid=recorded-2")], "");
        let rep = resp(200, &[("Set-Cookie", "sid=replayed-2b")], "");
        assert_eq!(m.learn(&rec, &rep), 1);
        let rec = resp(200, &[("Set-Cookie", "sid=recorded-5")], "");
        let rep = resp(200, &[("Set-Cookie", "sid=replayed-5")], "");
        m.learn(&rec, &rep);
        assert_eq!(m.len(), 3);
        assert!(m.get("recorded-3").is_none());
        assert!(m.is_mapped("recorded-2", "replayed-2b"));
        // Many updates of one key do not grow the FIFO without bound.
        for i in 0..1000 {
            let rep = resp(200, &[("Set-Cookie", &format!("sid=again-{i}"))], "");
            m.learn(&rec, &rep);
        }
        assert_eq!(m.len(), 3);
        assert!(m.read().order.len() <= 2 * 3 + 17);
        assert!(
            SessionMap::new(0).learn(&rec, &resp(200, &[("Set-Cookie", "sid=zzzzzzzz")], "")) == 0
        );
    }

    #[test]
    fn empty_map_fast_path_changes_nothing() {
        let m = SessionMap::new(10);
        assert!(m.is_empty());
        let mut r = req(
            "POST",
            "/a/b?c=d",
            &[("Cookie", "a=b"), ("Content-Length", "7")],
            r#"{"a":1}"#,
        );
        let before = r.clone();
        assert_eq!(m.apply(&mut r), 0);
        assert_eq!(r, before);
        // With entries but nothing matching, the request is unchanged too.
        m.learn(
            &resp(200, &[("Set-Cookie", "s=abcdefgh")], ""),
            &resp(200, &[("Set-Cookie", "s=ijklmnop")], ""),
        );
        assert_eq!(m.apply(&mut r), 0);
        assert_eq!(r, before);
    }

    #[test]
    fn concurrent_learn_and_apply() {
        let m = std::sync::Arc::new(SessionMap::new(1000));
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let m = std::sync::Arc::clone(&m);
                std::thread::spawn(move || {
                    for i in 0..50 {
                        let rec = resp(200, &[("Set-Cookie", &format!("s=rec-{t}-{i}-xx"))], "");
                        let rep = resp(200, &[("Set-Cookie", &format!("s=rep-{t}-{i}-xx"))], "");
                        m.learn(&rec, &rep);
                        let mut r =
                            req("GET", "/", &[("Cookie", &format!("s=rec-{t}-{i}-xx"))], "");
                        assert_eq!(m.apply(&mut r), 1);
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(m.len(), 200);
    }

    #[test]
    fn garbage_never_panics() {
        let m = SessionMap::new(10);
        m.learn(
            &resp(200, &[("Set-Cookie", "s=abcdefgh")], ""),
            &resp(200, &[("Set-Cookie", "s=ijklmnop")], ""),
        );
        let inputs: [&[u8]; 8] = [
            b"\"",
            b"{\"a\":\"abcdefgh",
            b"\"\\",
            b"=abcdefgh",
            b"abcdefgh....",
            b"/abcdefgh/",
            b"\xff\xfeabcdefgh\"",
            b"",
        ];
        for inp in inputs {
            let mut r = req(
                "POST",
                "http://",
                &[("Cookie", ";=;"), ("Authorization", " ")],
                "",
            );
            r.body = inp.to_vec();
            r.target = String::from_utf8_lossy(inp).into_owned();
            m.apply(&mut r);
            let mut r = req("POST", "/", &[("Content-Type", "application/json")], "");
            r.body = inp.to_vec();
            m.apply(&mut r);
        }
        m.learn(
            &resp(200, &[("Set-Cookie", "\u{1}=")], "[[[[\"x\""),
            &resp(200, &[("Set-Cookie", "=")], "{"),
        );
    }

    /// A recorded login and a later request, through the real default masking pipeline: the
    /// token and the session cookie become pseudonyms, the same in the response and the request.
    #[test]
    fn masked_recording_through_the_default_pipeline() {
        let mut pipeline = Pipeline::new(&PipelineOptions::default()).unwrap();
        let secret_token = "s3cr3t-token-value-0123456789";
        let secret_sid = "sid-secret-abcdef";
        let mut login = Exchange::new(
            req(
                "POST",
                "/login",
                &[("Content-Type", "application/json")],
                r#"{"user":"ann","password":"hunter22"}"#,
            ),
            1,
        );
        login.response = Some(resp(
            200,
            &[
                ("Content-Type", "application/json"),
                (
                    "Set-Cookie",
                    &format!("SESSION={secret_sid}; Path=/; HttpOnly"),
                ),
            ],
            &format!(r#"{{"token":"{secret_token}","user":"ann"}}"#),
        ));
        let later = Exchange::new(
            req(
                "GET",
                "/api/me",
                &[
                    ("Authorization", &format!("Bearer {secret_token}")),
                    ("Cookie", &format!("SESSION={secret_sid}")),
                ],
                "",
            ),
            2,
        );
        let login = pipeline.apply(login).unwrap();
        let later = pipeline.apply(later).unwrap();
        let rec_resp = login.response.unwrap();
        let rec_body: Value = serde_json::from_slice(&rec_resp.decoded_body().unwrap()).unwrap();
        let masked_token = rec_body["token"].as_str().unwrap().to_string();
        assert!(masked_token.starts_with("mask-"), "{masked_token}");
        assert_eq!(
            hdr(&later.request, "authorization"),
            format!("Bearer {masked_token}")
        );

        let replayed = resp(
            200,
            &[
                ("Content-Type", "application/json"),
                ("Set-Cookie", "SESSION=fresh-session-42; Path=/"),
            ],
            r#"{"token":"fresh-token-from-target","user":"ann"}"#,
        );
        let m = SessionMap::new(100);
        assert_eq!(m.learn(&rec_resp, &replayed), 2);
        let mut next = later.request.clone();
        assert_eq!(m.apply(&mut next), 2);
        assert_eq!(
            hdr(&next, "authorization"),
            "Bearer fresh-token-from-target"
        );
        assert_eq!(hdr(&next, "cookie"), "SESSION=fresh-session-42");
    }

    #[test]
    fn proxy_authorization_and_absolute_form_host_untouched() {
        let m = SessionMap::new(10);
        m.learn(
            &resp(200, &[("Set-Cookie", "s=host.example")], ""),
            &resp(200, &[("Set-Cookie", "s=other.example")], ""),
        );
        let mut r = req(
            "GET",
            "http://host.example/host.example?q=host.example",
            &[
                ("Proxy-Authorization", "Bearer host.example"),
                ("Host", "host.example"),
            ],
            "",
        );
        assert_eq!(m.apply(&mut r), 3);
        assert_eq!(
            r.target,
            "http://host.example/other.example?q=other.example"
        );
        assert_eq!(hdr(&r, "proxy-authorization"), "Bearer other.example");
        assert_eq!(hdr(&r, "host"), "host.example");
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_requests_never_panic(
            target in "[ -~]{0,60}",
            hv in "[ -~]{0,60}",
            body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200),
            text in "[\\[\\]{}\",:=&;/ a-z0-9.-]{0,120}",
        ) {
            let m = SessionMap::new(4);
            m.learn(
                &resp(200, &[("Set-Cookie", "s=abcdefgh")], r#"{"token":"recorded-token-1"}"#),
                &resp(200, &[("Set-Cookie", "s=ijklmnop")], r#"{"token":"replayed\"tok"}"#),
            );
            for ct in ["application/json", "application/x-www-form-urlencoded", "text/plain", ""] {
                let mut r = req("POST", &target, &[("Cookie", hv.as_str()), ("X", hv.as_str()), ("Content-Type", ct)], &text);
                m.apply(&mut r);
                let mut r = req("POST", &target, &[("Authorization", hv.as_str()), ("Content-Type", ct)], "");
                r.body = body.clone();
                m.apply(&mut r);
            }
            // A valid JSON body stays valid JSON.
            let doc = format!(r#"{{"a":"recorded-token-1","b":["x recorded-token-1 y", "{}"]}}"#, text.replace(['"', '\\'], ""));
            let mut r = req("POST", "/", &[("Content-Type", "application/json")], &doc);
            proptest::prop_assert_eq!(m.apply(&mut r), 2);
            proptest::prop_assert!(serde_json::from_slice::<Value>(&r.body).is_ok());
        }
    }
}
