//! Endpoint templates: the first pass over a recording.
//!
//! Request paths are inserted segment by segment into a trie. A segment that *looks* like an
//! identifier (a number, a UUID, a hex id, a date, a masked pseudonym, a slug, a long token) goes
//! straight to the node's variable child; other segments are literal children until a node has
//! seen [`MAX_LITERALS`] distinct ones, after which it is declared variable (high cardinality)
//! and its literal children are merged into the variable child when the templates are built.
//! Query parameters are tracked per terminal node and method: a parameter whose values vary is a
//! variable, one with a single value stays literal.
//!
//! Memory: at most [`MAX_NODES`] trie nodes, [`MAX_LITERALS`] literal children per node,
//! [`MAX_DEPTH`] segments per path, [`MAX_METHODS`] methods per node, [`MAX_PARAMS`] query
//! parameters per method with [`MAX_LITERALS`] distinct values each (values cut at
//! [`MAX_VALUE_LEN`] bytes).

use std::collections::{BTreeMap, HashMap, HashSet};

use mynah_traffic::Request;

/// Distinct literal values a segment position or parameter may take before it is a variable.
pub const MAX_LITERALS: usize = 64;
/// Trie nodes kept; beyond, new literal segments go to the variable child.
pub const MAX_NODES: usize = 20_000;
/// Path segments looked at; deeper paths go to the catch-all endpoint.
pub const MAX_DEPTH: usize = 32;
/// Methods tracked per path.
pub const MAX_METHODS: usize = 16;
/// Query parameters tracked per method and path.
pub const MAX_PARAMS: usize = 32;
/// Longest value kept for cardinality counting.
pub const MAX_VALUE_LEN: usize = 256;

/// Index of an endpoint in [`Templates::endpoints`].
pub type EndpointId = usize;

/// One segment of a path template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// Kept as is.
    Literal(String),
    /// A `{name}` placeholder.
    Var(String),
}

/// A query parameter of an endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryParam {
    /// The parameter name as recorded.
    pub name: String,
    /// `Some(value)` when every request had the same value; `None` when it varies.
    pub fixed: Option<String>,
}

/// An endpoint: a method and a path template (with its query parameters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// HTTP method, upper case (`*` for the catch-all).
    pub method: String,
    /// Path segments (`/users/{user_id}` is `[Literal("users"), Var("user_id")]`).
    pub segments: Vec<Segment>,
    /// Query parameters present in at least half of its requests.
    pub query: Vec<QueryParam>,
    /// Requests seen in the first pass.
    pub count: u64,
    /// True for the catch-all endpoint that stands for every rare or unmatched request.
    pub catch_all: bool,
}

impl Endpoint {
    /// The path template, e.g. `/users/{user_id}`.
    pub fn path(&self) -> String {
        if self.catch_all {
            return "(other)".to_string();
        }
        let mut s = String::new();
        for seg in &self.segments {
            s.push('/');
            match seg {
                Segment::Literal(l) => s.push_str(l),
                Segment::Var(v) => {
                    s.push('{');
                    s.push_str(v);
                    s.push('}');
                }
            }
        }
        if s.is_empty() {
            s.push('/');
        }
        s
    }

    /// `METHOD /path/{var}` with the variable query parameters (`?q={q}`).
    pub fn label(&self) -> String {
        let mut s = format!("{} {}", self.method, self.path());
        let vars: Vec<String> = self
            .query
            .iter()
            .map(|q| match &q.fixed {
                Some(v) => format!("{}={v}", q.name),
                None => format!("{}={{{}}}", q.name, q.name),
            })
            .collect();
        if !vars.is_empty() {
            s.push('?');
            s.push_str(&vars.join("&"));
        }
        s
    }

    /// Names of the path variables, in order.
    pub fn path_vars(&self) -> Vec<&str> {
        self.segments
            .iter()
            .filter_map(|s| match s {
                Segment::Var(v) => Some(v.as_str()),
                Segment::Literal(_) => None,
            })
            .collect()
    }
}

/// What [`Templates::classify`] finds for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matched {
    /// The endpoint (the catch-all when nothing else fits or the endpoint is rare).
    pub endpoint: EndpointId,
    /// Values of the path variables, in order (percent-encoded as recorded).
    pub path_values: Vec<String>,
    /// Every query parameter of the request, decoded, in order.
    pub query: Vec<(String, String)>,
}

/// The kinds of segment that are identifiers whatever the corpus says.
fn looks_variable(seg: &str) -> bool {
    let b = seg.as_bytes();
    if b.is_empty() {
        return false;
    }
    let all = |f: fn(&u8) -> bool| b.iter().all(f);
    if all(u8::is_ascii_digit) {
        return true; // number
    }
    if b.first() == Some(&b'-') && b.len() > 1 && b.iter().skip(1).all(u8::is_ascii_digit) {
        return true;
    }
    let hex = |c: &u8| c.is_ascii_hexdigit();
    let digits = b.iter().filter(|c| c.is_ascii_digit()).count();
    let letters = b.iter().filter(|c| c.is_ascii_alphabetic()).count();
    // UUID 8-4-4-4-12.
    if b.len() == 36
        && b.iter().enumerate().all(|(i, c)| {
            if [8, 13, 18, 23].contains(&i) {
                *c == b'-'
            } else {
                c.is_ascii_hexdigit()
            }
        })
    {
        return true;
    }
    // Masked pseudonym.
    if let Some(rest) = seg.strip_prefix("mask-") {
        if rest.len() == 16 && rest.bytes().all(|c| c.is_ascii_hexdigit()) {
            return true;
        }
    }
    // Hex id (at least 8 hex digits, some of them digits).
    if b.len() >= 8 && all(hex) && digits > 0 {
        return true;
    }
    // Dates: 2024-01-31, 2024-01-31T10:00:00Z, 20240131 (a number, above).
    if b.len() >= 10
        && b.get(4) == Some(&b'-')
        && b.get(7) == Some(&b'-')
        && b.iter().take(4).all(u8::is_ascii_digit)
        && b.get(5..7)
            .is_some_and(|m| m.iter().all(u8::is_ascii_digit))
        && b.get(8..10)
            .is_some_and(|d| d.iter().all(u8::is_ascii_digit))
    {
        return true;
    }
    let word = |c: &u8| c.is_ascii_alphanumeric() || *c == b'-' || *c == b'_' || *c == b'.';
    if !all(word) {
        // Percent-encoded or other odd text: an identifier if long.
        return b.len() >= 24;
    }
    // Slugs: lower-case words joined by '-' with at least three words, or two with a digit.
    let parts = seg.split('-').filter(|p| !p.is_empty()).count();
    if seg.contains('-')
        && !seg.bytes().any(|c| c.is_ascii_uppercase())
        && (parts >= 3 || (parts >= 2 && digits > 0))
    {
        return true;
    }
    // Long tokens mixing letters and digits (base64url ids, opaque keys).
    if b.len() >= 16 && digits > 0 && letters > 0 {
        return true;
    }
    // Short mixed ids like `a1b2c3` or `u12345`: mostly digits.
    b.len() >= 4 && digits * 2 > b.len()
}

/// Splits a path into segments (`/` is one empty segment; no leading slash: `None`).
fn segments(path: &str) -> Option<Vec<&str>> {
    let rest = path.strip_prefix('/')?;
    Some(rest.split('/').collect())
}

/// Parses a query string into decoded pairs (at most [`MAX_PARAMS`] * 2 pairs).
pub(crate) fn parse_query(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .take(MAX_PARAMS * 2)
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

/// `+` as space and `%XX` decoded (invalid escapes kept as is; invalid UTF-8 replaced).
pub(crate) fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        if c == b'+' {
            out.push(b' ');
            i += 1;
            continue;
        }
        if c == b'%' {
            let hex = b
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok());
            if let Some(v) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(c);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn cut(s: &str) -> String {
    let mut end = s.len().min(MAX_VALUE_LEN);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or_default().to_string()
}

#[derive(Debug, Default, Clone)]
struct ParamStats {
    count: u64,
    values: HashSet<String>,
    overflow: bool,
}

#[derive(Debug, Default, Clone)]
struct MethodStats {
    count: u64,
    params: BTreeMap<String, ParamStats>,
}

impl MethodStats {
    fn merge(&mut self, o: MethodStats) {
        self.count += o.count;
        for (k, p) in o.params {
            if !self.params.contains_key(&k) && self.params.len() >= MAX_PARAMS {
                continue;
            }
            let mine = self.params.entry(k).or_default();
            mine.count += p.count;
            mine.overflow |= p.overflow;
            for v in p.values {
                if mine.values.len() >= MAX_LITERALS {
                    mine.overflow = true;
                    break;
                }
                mine.values.insert(v);
            }
        }
    }
}

#[derive(Debug, Default, Clone)]
struct Node {
    literals: HashMap<String, Node>,
    var: Option<Box<Node>>,
    /// More than [`MAX_LITERALS`] distinct literals were seen here.
    overflow: bool,
    methods: BTreeMap<String, MethodStats>,
}

impl Node {
    fn merge(&mut self, o: Node) {
        self.overflow |= o.overflow;
        for (k, child) in o.literals {
            match self.literals.get_mut(&k) {
                Some(mine) => mine.merge(child),
                None => {
                    self.literals.insert(k, child);
                }
            }
        }
        if let Some(v) = o.var {
            match &mut self.var {
                Some(mine) => mine.merge(*v),
                None => self.var = Some(v),
            }
        }
        for (m, s) in o.methods {
            self.methods.entry(m).or_default().merge(s);
        }
    }

    /// Turns high-cardinality literal sets into the variable child, recursively.
    fn settle(&mut self) {
        if self.overflow {
            let lits = std::mem::take(&mut self.literals);
            let mut var = self.var.take().map(|b| *b).unwrap_or_default();
            for (_, child) in lits {
                var.merge(child);
            }
            self.var = Some(Box::new(var));
        }
        for child in self.literals.values_mut() {
            child.settle();
        }
        if let Some(v) = &mut self.var {
            v.settle();
        }
    }
}

/// Learns endpoint templates from requests (the first pass). Feed it every request with
/// [`TemplateLearner::add`], then call [`TemplateLearner::finish`].
///
/// Why a separate pass: whether `/users/123` is an instance of `/users/{user_id}` is only known
/// once many user paths were seen; the second pass needs the answer for its first request.
#[derive(Debug, Default)]
pub struct TemplateLearner {
    root: Node,
    nodes: usize,
    total: u64,
    /// Requests whose path could not be templated (not origin-form, too deep).
    unmatched: u64,
}

impl TemplateLearner {
    /// An empty learner.
    pub fn new() -> Self {
        Self::default()
    }

    /// Learns from one request.
    pub fn add(&mut self, req: &Request) {
        self.add_target(&req.method, req.path_and_query());
    }

    /// Learns from a method and a path with its query (`/a/b?c=d`).
    pub fn add_target(&mut self, method: &str, path_and_query: &str) {
        self.total += 1;
        if method.is_empty() || !method.bytes().all(|b| b.is_ascii_alphabetic()) {
            self.unmatched += 1;
            return;
        }
        let (path, query) = path_and_query
            .split_once('?')
            .unwrap_or((path_and_query, ""));
        let Some(segs) = segments(path) else {
            self.unmatched += 1;
            return;
        };
        if segs.len() > MAX_DEPTH {
            self.unmatched += 1;
            return;
        }
        let mut node = &mut self.root;
        for seg in segs {
            node = if looks_variable(seg) {
                node.var.get_or_insert_with(Box::default)
            } else if node.literals.contains_key(seg) {
                match node.literals.get_mut(seg) {
                    Some(n) => n,
                    None => return,
                }
            } else if node.literals.len() < MAX_LITERALS && self.nodes < MAX_NODES {
                self.nodes += 1;
                node.literals.entry(cut(seg)).or_default()
            } else {
                node.overflow = node.literals.len() >= MAX_LITERALS || node.overflow;
                node.var.get_or_insert_with(Box::default)
            };
        }
        let method = method.to_ascii_uppercase();
        if !node.methods.contains_key(&method) && node.methods.len() >= MAX_METHODS {
            self.unmatched += 1;
            return;
        }
        let stats = node.methods.entry(method).or_default();
        stats.count += 1;
        let mut seen = HashSet::new();
        for (k, v) in parse_query(query) {
            if !seen.insert(k.clone()) {
                continue;
            }
            if !stats.params.contains_key(&k) && stats.params.len() >= MAX_PARAMS {
                continue;
            }
            let p = stats.params.entry(cut(&k)).or_default();
            p.count += 1;
            if p.values.len() < MAX_LITERALS {
                p.values.insert(cut(&v));
            } else if !p.values.contains(&v) {
                p.overflow = true;
            }
        }
    }

    /// Builds the templates. Endpoints with less than `min_share` of the requests (e.g. `0.001`)
    /// are left out: their requests match the catch-all endpoint, which replays recorded
    /// examples, so nothing observed disappears from the mix.
    pub fn finish(mut self, min_share: f64) -> Templates {
        self.root.settle();
        let mut endpoints = Vec::new();
        let mut path = Vec::new();
        let root = walk(&self.root, &mut path, &mut endpoints);
        let total = self.total.max(1) as f64;
        let mut keep = vec![false; endpoints.len()];
        for (i, e) in endpoints.iter().enumerate() {
            if let Some(k) = keep.get_mut(i) {
                *k = e.count as f64 / total >= min_share;
            }
        }
        // Renumber: kept endpoints first, in order of decreasing count, then the catch-all.
        let mut order: Vec<usize> = (0..endpoints.len())
            .filter(|&i| keep.get(i).copied().unwrap_or(false))
            .collect();
        order.sort_by(|&a, &b| {
            let (ea, eb) = (&endpoints[a], &endpoints[b]);
            eb.count
                .cmp(&ea.count)
                .then_with(|| ea.label().cmp(&eb.label()))
        });
        let mut new_id: Vec<Option<usize>> = vec![None; endpoints.len()];
        for (n, &old) in order.iter().enumerate() {
            if let Some(slot) = new_id.get_mut(old) {
                *slot = Some(n);
            }
        }
        let catch_all = order.len();
        let rare: u64 = endpoints
            .iter()
            .enumerate()
            .filter(|(i, _)| new_id.get(*i).copied().flatten().is_none())
            .map(|(_, e)| e.count)
            .sum();
        let mut out: Vec<Endpoint> = order
            .iter()
            .filter_map(|&i| endpoints.get(i).cloned())
            .collect();
        out.push(Endpoint {
            method: "*".into(),
            segments: Vec::new(),
            query: Vec::new(),
            count: rare + self.unmatched,
            catch_all: true,
        });
        let mut root = root;
        root.renumber(&new_id, catch_all);
        Templates {
            endpoints: out,
            root,
            catch_all,
        }
    }
}

/// The settled trie, for matching.
#[derive(Debug, Default, Clone)]
struct MatchNode {
    literals: HashMap<String, MatchNode>,
    var: Option<Box<MatchNode>>,
    methods: HashMap<String, EndpointId>,
}

impl MatchNode {
    fn renumber(&mut self, new_id: &[Option<usize>], catch_all: usize) {
        for id in self.methods.values_mut() {
            *id = new_id.get(*id).copied().flatten().unwrap_or(catch_all);
        }
        for c in self.literals.values_mut() {
            c.renumber(new_id, catch_all);
        }
        if let Some(v) = &mut self.var {
            v.renumber(new_id, catch_all);
        }
    }
}

/// `users` -> `user_id`; anything not a plain word -> `id`.
fn var_name(prev: Option<&Segment>) -> String {
    let Some(Segment::Literal(word)) = prev else {
        return "id".into();
    };
    let mut w: String = word
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    w = w.trim_matches('_').to_string();
    if w.is_empty() || w.starts_with(|c: char| c.is_ascii_digit()) || w.len() > 40 {
        return "id".into();
    }
    if w.len() > 1 && w.ends_with('s') && !w.ends_with("ss") {
        w.pop();
    }
    format!("{w}_id")
}

fn walk(node: &Node, path: &mut Vec<Segment>, out: &mut Vec<Endpoint>) -> MatchNode {
    let mut m = MatchNode::default();
    for (method, stats) in &node.methods {
        let mut query: Vec<QueryParam> = stats
            .params
            .iter()
            .filter(|(_, p)| p.count * 2 >= stats.count)
            .map(|(name, p)| QueryParam {
                name: name.clone(),
                fixed: match (p.overflow, p.values.len()) {
                    (false, 1) => p.values.iter().next().cloned(),
                    _ => None,
                },
            })
            .collect();
        query.sort_by(|a, b| a.name.cmp(&b.name));
        // Unique variable names within the template.
        let mut segs = path.clone();
        let mut used: HashSet<String> = HashSet::new();
        for s in &mut segs {
            if let Segment::Var(v) = s {
                let mut name = v.clone();
                let mut n = 2;
                while !used.insert(name.clone()) {
                    name = format!("{v}_{n}");
                    n += 1;
                }
                *v = name;
            }
        }
        m.methods.insert(method.clone(), out.len());
        out.push(Endpoint {
            method: method.clone(),
            segments: segs,
            query,
            count: stats.count,
            catch_all: false,
        });
    }
    let mut lits: Vec<(&String, &Node)> = node.literals.iter().collect();
    lits.sort_by(|a, b| a.0.cmp(b.0));
    for (lit, child) in lits {
        path.push(Segment::Literal(lit.clone()));
        let c = walk(child, path, out);
        path.pop();
        m.literals.insert(lit.clone(), c);
    }
    if let Some(v) = &node.var {
        let name = var_name(path.last());
        path.push(Segment::Var(name));
        let c = walk(v, path, out);
        path.pop();
        m.var = Some(Box::new(c));
    }
    m
}

/// The learned endpoints, and the matcher that maps a request to its endpoint.
#[derive(Debug, Clone)]
pub struct Templates {
    endpoints: Vec<Endpoint>,
    root: MatchNode,
    catch_all: EndpointId,
}

/// Steps allowed when backtracking between literal and variable children.
const MATCH_BUDGET: usize = 512;

fn match_node<'a>(
    node: &MatchNode,
    segs: &[&'a str],
    method: &str,
    values: &mut Vec<&'a str>,
    budget: &mut usize,
) -> Option<EndpointId> {
    if *budget == 0 {
        return None;
    }
    *budget -= 1;
    let Some((first, rest)) = segs.split_first() else {
        return node.methods.get(method).copied();
    };
    if let Some(child) = node.literals.get(*first) {
        if let Some(id) = match_node(child, rest, method, values, budget) {
            return Some(id);
        }
    }
    if let Some(child) = &node.var {
        values.push(first);
        if let Some(id) = match_node(child, rest, method, values, budget) {
            return Some(id);
        }
        values.pop();
    }
    None
}

impl Templates {
    /// Every endpoint, most frequent first; the catch-all is last.
    pub fn endpoints(&self) -> &[Endpoint] {
        &self.endpoints
    }

    /// The catch-all endpoint's id.
    pub fn catch_all(&self) -> EndpointId {
        self.catch_all
    }

    /// The endpoint with this id (the catch-all for an unknown id).
    pub fn endpoint(&self, id: EndpointId) -> &Endpoint {
        match self.endpoints.get(id) {
            Some(e) => e,
            // The catch-all is always present (pushed last by `finish`).
            None => &self.endpoints[self.endpoints.len() - 1],
        }
    }

    /// Maps a request to its endpoint and the values of its variables.
    pub fn classify(&self, method: &str, path_and_query: &str) -> Matched {
        let (path, query) = path_and_query
            .split_once('?')
            .unwrap_or((path_and_query, ""));
        let query = parse_query(query);
        let method = method.to_ascii_uppercase();
        let mut values = Vec::new();
        let found = segments(path)
            .filter(|s| s.len() <= MAX_DEPTH)
            .and_then(|segs| {
                let mut budget = MATCH_BUDGET;
                match_node(&self.root, &segs, &method, &mut values, &mut budget)
            });
        match found {
            Some(id) if id != self.catch_all => Matched {
                endpoint: id,
                path_values: values.into_iter().map(str::to_string).collect(),
                query,
            },
            _ => Matched {
                endpoint: self.catch_all,
                path_values: Vec::new(),
                query,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn learn(targets: &[(&str, &str)]) -> Templates {
        let mut l = TemplateLearner::new();
        for (m, t) in targets {
            l.add_target(m, t);
        }
        l.finish(0.0)
    }

    fn labels(t: &Templates) -> Vec<String> {
        let mut v: Vec<String> = t.endpoints().iter().map(Endpoint::label).collect();
        v.sort();
        v
    }

    #[test]
    fn ids_become_named_variables() {
        let t = learn(&[
            ("GET", "/users/123"),
            ("GET", "/users/456"),
            ("GET", "/articles/7"),
            ("GET", "/about"),
            ("GET", "/orders/3f2504e0-4f89-11d3-9a0c-0305e82c3301"),
            ("GET", "/blobs/deadbeef0123"),
            ("GET", "/reports/2024-01-31"),
            ("GET", "/posts/my-first-blog-post"),
            ("GET", "/"),
            ("GET", "/search?q=rust&lang=en"),
            ("GET", "/search?q=gor&lang=en"),
            ("GET", "/teams/12/members/34"),
            ("POST", "/users/123"),
        ]);
        let l = labels(&t);
        for want in [
            "GET /users/{user_id}",
            "POST /users/{user_id}",
            "GET /articles/{article_id}",
            "GET /about",
            "GET /orders/{order_id}",
            "GET /blobs/{blob_id}",
            "GET /reports/{report_id}",
            "GET /posts/{post_id}",
            "GET /",
            "GET /search?lang=en&q={q}",
            "GET /teams/{team_id}/members/{member_id}",
            "* (other)",
        ] {
            assert!(l.contains(&want.to_string()), "{want} not in {l:?}");
        }
        let m = t.classify("GET", "/users/999");
        assert_eq!(t.endpoint(m.endpoint).path(), "/users/{user_id}");
        assert_eq!(m.path_values, vec!["999"]);
        let m = t.classify("GET", "/nowhere");
        assert_eq!(m.endpoint, t.catch_all());
    }

    #[test]
    fn high_cardinality_literals_become_variables() {
        let mut l = TemplateLearner::new();
        let words = [
            "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel",
        ];
        for i in 0..200 {
            let w = words[i % words.len()];
            l.add_target(
                "GET",
                &format!("/tags/{w}{}", (b'a' + (i % 26) as u8) as char),
            );
        }
        l.add_target("GET", "/tags");
        let t = l.finish(0.0);
        let ls = labels(&t);
        assert!(ls.contains(&"GET /tags/{tag_id}".to_string()), "{ls:?}");
    }

    #[test]
    fn rare_endpoints_go_to_the_catch_all() {
        let mut l = TemplateLearner::new();
        for i in 0..2000 {
            l.add_target("GET", &format!("/items/{i}"));
        }
        l.add_target("DELETE", "/admin/reset");
        let t = l.finish(0.001);
        assert_eq!(t.endpoints().len(), 2);
        let m = t.classify("DELETE", "/admin/reset");
        assert_eq!(m.endpoint, t.catch_all());
        assert_eq!(t.endpoint(t.catch_all()).count, 1);
    }
}
