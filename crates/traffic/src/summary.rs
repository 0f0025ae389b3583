//! What is in a capture: the counts behind `mynah inspect`.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::model::{Exchange, Nanos, Request, Response};
use crate::source::ReadReport;

/// Distinct paths tracked for `top_paths`; beyond this, new paths are counted under `(other)` so a
/// capture with millions of unique URLs costs bounded memory.
const MAX_DISTINCT_PATHS: usize = 100_000;
/// Distinct connections tracked for `connections`.
const MAX_DISTINCT_CONNECTIONS: usize = 1_000_000;

/// Running totals over a stream of exchanges.
#[derive(Debug, Default, Clone)]
pub struct Summary {
    pub exchanges: u64,
    pub with_response: u64,
    pub interim_responses: u64,
    pub incomplete: BTreeMap<String, u64>,
    pub skipped: BTreeMap<String, u64>,
    pub corrupt_skipped: u64,
    connection_ids: HashSet<u64>,
    connections_known: bool,
    pub methods: BTreeMap<String, u64>,
    pub statuses: BTreeMap<String, u64>,
    pub hosts: BTreeMap<String, u64>,
    paths: HashMap<String, u64>,
    pub first_ts: Option<Nanos>,
    pub last_ts: Option<Nanos>,
    /// Bytes of HTTP messages (heads and bodies as on the wire).
    pub bytes: u64,
}

impl Summary {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&mut self, ex: &Exchange) {
        self.exchanges += 1;
        if ex.response.is_some() {
            self.with_response += 1;
        }
        self.interim_responses += ex.interim.len() as u64;
        if let Some(r) = ex.incomplete {
            *self.incomplete.entry(r.as_str().to_string()).or_default() += 1;
        }
        if let Some(id) = ex.connection.id {
            self.connections_known = true;
            if self.connection_ids.len() < MAX_DISTINCT_CONNECTIONS {
                self.connection_ids.insert(id);
            }
        }
        bump(&mut self.methods, &ex.request.method);
        if let Some(resp) = &ex.response {
            bump(&mut self.statuses, &resp.status.to_string());
        }
        if let Some(h) = ex.request.host() {
            bump(&mut self.hosts, &h);
        }
        let path = ex.request.path();
        if let Some(n) = self.paths.get_mut(path) {
            *n += 1;
        } else if self.paths.len() < MAX_DISTINCT_PATHS {
            self.paths.insert(path.to_string(), 1);
        } else {
            *self.paths.entry("(other)".to_string()).or_default() += 1;
        }
        let t = ex.timing.request_start;
        self.first_ts = Some(self.first_ts.map_or(t, |f| f.min(t)));
        let end = ex
            .timing
            .response_end
            .or(ex.timing.response_start)
            .unwrap_or(t);
        self.last_ts = Some(self.last_ts.map_or(end, |l| l.max(end)));
        self.bytes += request_size(&ex.request)
            + ex.response
                .iter()
                .chain(&ex.interim)
                .map(response_size)
                .sum::<u64>();
    }

    pub fn add_report(&mut self, report: &ReadReport) {
        for (k, v) in &report.skipped {
            *self.skipped.entry(k.clone()).or_default() += v;
        }
        self.corrupt_skipped += report.corrupt_skipped;
    }

    /// Distinct connections, when the source knows them (`.gor` files do not).
    pub fn connections(&self) -> Option<u64> {
        self.connections_known
            .then_some(self.connection_ids.len() as u64)
    }

    /// The `n` most requested paths (query removed), most first, ties by path.
    pub fn top_paths(&self, n: usize) -> Vec<(String, u64)> {
        let mut v: Vec<(String, u64)> = self.paths.iter().map(|(p, c)| (p.clone(), *c)).collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        v.truncate(n);
        v
    }

    pub fn incomplete_total(&self) -> u64 {
        self.incomplete.values().sum()
    }
}

fn bump(map: &mut BTreeMap<String, u64>, key: &str) {
    if let Some(n) = map.get_mut(key) {
        *n += 1;
    } else {
        map.insert(key.to_string(), 1);
    }
}

fn headers_size(headers: &crate::model::Headers) -> u64 {
    headers
        .iter()
        .map(|h| (h.name.len() + h.value.len() + 4) as u64)
        .sum::<u64>()
        + 2
}

fn request_size(r: &Request) -> u64 {
    (r.method.len() + r.target.len() + r.version.as_str().len() + 4) as u64
        + headers_size(&r.headers)
        + r.body.len() as u64
}

fn response_size(r: &Response) -> u64 {
    (r.version.as_str().len() + r.reason.len() + 7) as u64
        + headers_size(&r.headers)
        + r.body.len() as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::*;

    #[test]
    fn counts_what_it_sees() {
        let mut s = Summary::new();
        let mut a = Exchange::default();
        a.request.method = "GET".into();
        a.request.target = "/a?x=1".into();
        a.request.headers.push("Host", "example.com");
        a.response = Some(Response {
            status: 200,
            ..Default::default()
        });
        a.interim.push(Response {
            status: 100,
            ..Default::default()
        });
        a.connection.id = Some(7);
        a.timing.request_start = 10;
        let mut b = a.clone();
        b.response = None;
        b.interim.clear();
        b.incomplete = Some(Incomplete::NoResponse);
        b.timing.request_start = 5;
        b.request.target = "http://other/b".into();
        b.request.headers = Headers::new();
        s.add(&a);
        s.add(&b);
        assert_eq!(
            (s.exchanges, s.with_response, s.interim_responses),
            (2, 1, 1)
        );
        assert_eq!(s.incomplete.get("no_response"), Some(&1));
        assert_eq!(s.connections(), Some(1));
        assert_eq!(s.statuses.get("200"), Some(&1));
        assert_eq!(s.hosts.get("other"), Some(&1));
        assert_eq!(
            s.top_paths(5),
            vec![("/a".to_string(), 1), ("/b".to_string(), 1)]
        );
        assert_eq!(s.first_ts, Some(5));
        assert!(s.bytes > 0);
    }
}
