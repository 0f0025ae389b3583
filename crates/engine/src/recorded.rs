//! Recorded sessions as virtual users (`replay:` user classes): the recording is read once at
//! plan time and split into sessions; each user of the class
//! then plays one session after another with its recorded requests, bodies and think times, and
//! the session mapping of `mynah replay`, so the load shape and user count decide how much real
//! traffic runs at once without squeezing time as a speed factor does.
//!
//! The requests go out as the file holds them: a recording is masked when it is captured or
//! converted (`mynah convert`, `mynah record`); masking again here would also mask the test
//! accounts' passwords a login needs.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use mynah_scenario::Pick;
use mynah_synth::{is_session_cookie, SessionKey};
use mynah_traffic::{Exchange, ReadOptions, Request, Response};

/// A session ends after this much recorded time without a request (as `mynah synth` splits).
const IDLE: i64 = 30 * 60 * 1_000_000_000;
/// Exchanges a recording may hold for a `replay` class: it is kept in memory.
pub const MAX_EXCHANGES: usize = 1_000_000;
/// Body bytes (requests and kept responses) a recording may hold.
pub const MAX_BODY_BYTES: usize = 512 << 20;
/// Distinct endpoint names a recording adds to the statistics; beyond, `(other endpoints)`.
const MAX_ENDPOINTS: usize = 1000;
/// A think time is capped here: a long recorded pause is the session being left open, and a
/// virtual user sitting idle for half an hour helps no test.
const MAX_GAP: Duration = Duration::from_secs(60);

/// One recorded request of a session.
#[derive(Debug)]
pub struct RecordedStep {
    /// Recorded pause before it: from the previous response's end (or request's start) to this
    /// request's start, at most a minute.
    pub gap: Duration,
    /// Index into the plan's endpoints.
    pub endpoint: u32,
    /// The request as recorded.
    pub request: Request,
    /// The recorded response, kept when it may carry session values to map.
    pub recorded: Option<Response>,
}

/// The sessions of a recording, and which one is played next.
#[derive(Debug)]
pub struct RecordedSessions {
    /// The recording's path, for messages.
    pub file: String,
    /// Sessions in recorded order (by first request).
    pub sessions: Vec<Vec<RecordedStep>>,
    pick: Pick,
    next: AtomicUsize,
}

impl RecordedSessions {
    /// The session a user plays next (`pick: random` or `sequential`).
    pub fn pick(&self, rng: &mut fastrand::Rng) -> &[RecordedStep] {
        let n = self.sessions.len();
        if n == 0 {
            return &[];
        }
        let i = match self.pick {
            Pick::Random => rng.usize(..n),
            Pick::Sequential => self.next.fetch_add(1, Ordering::Relaxed) % n,
        };
        &self.sessions[i]
    }

    /// Reads `path` (relative to `base_dir`) and splits it into sessions by `key`; recorded
    /// endpoints are added to `endpoints`.
    pub fn load(
        base_dir: &Path,
        path: &str,
        key: &str,
        pick: Pick,
        endpoints: &mut Vec<(String, String)>,
    ) -> Result<RecordedSessions, String> {
        let key = SessionKey::parse(key).map_err(|e| format!("replay.session_key: {e}"))?;
        let full = base_dir.join(path);
        let reader = mynah_traffic::open(&full, None, &ReadOptions::default())
            .map_err(|e| format!("replay.file: {e}"))?;
        let mut splitter = Splitter::new(key);
        let mut names: HashMap<(String, String), u32> = endpoints
            .iter()
            .enumerate()
            .map(|(i, e)| (e.clone(), i as u32))
            .collect();
        let mut added = 0usize;
        let (mut count, mut bytes) = (0usize, 0usize);
        for item in reader {
            let ex = item.map_err(|e| format!("replay.file: {e}"))?;
            if crate::replay::unsendable(&ex.request).is_some() {
                continue;
            }
            count += 1;
            bytes += ex.request.body.len() + ex.response.as_ref().map_or(0, |r| r.body.len());
            if count > MAX_EXCHANGES || bytes > MAX_BODY_BYTES {
                return Err(format!(
                    "replay.file: {} is too large for a `replay` class (more than {MAX_EXCHANGES} exchanges or {} MiB of bodies): cut it with `mynah convert --sample`, or use `mynah replay`",
                    full.display(),
                    MAX_BODY_BYTES >> 20
                ));
            }
            let method = ex.request.method.to_ascii_uppercase();
            let mut name = (method.clone(), ex.request.path().to_string());
            if !names.contains_key(&name) && added >= MAX_ENDPOINTS {
                name = (method, crate::replay::OTHER.to_string());
            }
            let endpoint = *names.entry(name.clone()).or_insert_with(|| {
                added += 1;
                endpoints.push(name);
                (endpoints.len() - 1) as u32
            });
            splitter.add(ex, endpoint);
        }
        let sessions = splitter.finish();
        if sessions.is_empty() {
            return Err(format!(
                "replay.file: {} holds no request to replay",
                full.display()
            ));
        }
        Ok(RecordedSessions {
            file: full.display().to_string(),
            sessions,
            pick,
            next: AtomicUsize::new(0),
        })
    }
}

/// Splits exchanges (in request-time order) into sessions.
struct Splitter {
    key: SessionKey,
    sessions: Vec<Vec<RecordedStep>>,
    /// Open sessions by key: (index in `sessions`, last request start, last end).
    open: HashMap<String, (usize, i64, i64)>,
}

impl Splitter {
    fn new(key: SessionKey) -> Splitter {
        Splitter {
            key,
            sessions: Vec::new(),
            open: HashMap::new(),
        }
    }

    /// The keys that name the session of `ex`, most specific first.
    fn keys(&self, ex: &Exchange) -> Vec<String> {
        let h = &ex.request.headers;
        let mut keys = Vec::new();
        match &self.key {
            SessionKey::Auto | SessionKey::Cookie(_) => {
                for v in h.get_all("cookie") {
                    for pair in String::from_utf8_lossy(v).split(';') {
                        if let Some((k, v)) = pair.split_once('=') {
                            let (k, v) = (k.trim(), v.trim());
                            let wanted = match &self.key {
                                SessionKey::Cookie(name) => k == name,
                                _ => is_session_cookie(k),
                            };
                            if wanted && !v.is_empty() {
                                keys.push(format!("c:{k}={v}"));
                            }
                        }
                    }
                }
                if matches!(self.key, SessionKey::Auto) {
                    if let Some(a) = h.get_str("authorization") {
                        keys.push(format!("a:{a}"));
                    }
                }
            }
            SessionKey::Header(name) => {
                if let Some(v) = h.get_str(name) {
                    keys.push(format!("h:{v}"));
                }
            }
            SessionKey::ClientIp => {}
        }
        keys
    }

    /// The fallback key: the client address and User-Agent.
    fn fallback(ex: &Exchange) -> String {
        let ua = ex.request.headers.get_str("user-agent").unwrap_or_default();
        match ex.connection.client {
            Some(a) => format!("ip:{} ua:{ua}", a.ip()),
            None => format!("ua:{ua}"),
        }
    }

    fn add(&mut self, ex: Exchange, endpoint: u32) {
        let ts = ex.timing.request_start;
        let end = ex.timing.ended();
        let mut keys = self.keys(&ex);
        // What the response issues (a session cookie, a token) names this session from now on,
        // so the requests that carry it join the login that got it.
        let issued = ex.response.as_ref().map(issued_keys).unwrap_or_default();
        let anonymous = keys.is_empty();
        if anonymous {
            keys.push(Self::fallback(&ex));
        }
        // An anonymous request that is handed credentials (a login) starts a session of its
        // own: without a client address, every anonymous client of a `.gor` file shares one
        // fallback key, and their logins must not merge.
        let found = if anonymous && !issued.is_empty() {
            None
        } else {
            keys.iter()
                .find_map(|k| self.open.get(k).copied())
                .filter(|&(_, last_ts, _)| ts.saturating_sub(last_ts) <= IDLE)
        };
        let (index, gap) = match found {
            Some((i, _, last_end)) => (
                i,
                Duration::from_nanos(ts.saturating_sub(last_end).max(0) as u64).min(MAX_GAP),
            ),
            None => {
                self.sessions.push(Vec::new());
                (self.sessions.len() - 1, Duration::ZERO)
            }
        };
        let keys = if anonymous && !issued.is_empty() {
            // The fallback key stays with the anonymous traffic it named.
            Vec::new()
        } else {
            keys
        };
        for k in keys.into_iter().chain(issued) {
            self.open.insert(k, (index, ts, end));
        }
        let recorded = ex
            .response
            .filter(|r| crate::replay::may_issue_session(Some(r)));
        if let Some(s) = self.sessions.get_mut(index) {
            s.push(RecordedStep {
                gap,
                endpoint,
                request: ex.request,
                recorded,
            });
        }
    }

    fn finish(self) -> Vec<Vec<RecordedStep>> {
        self.sessions
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect()
    }
}

/// Session keys a response hands out: its session cookies, and `Bearer` + the string values of
/// token-like fields of a JSON body.
fn issued_keys(r: &Response) -> Vec<String> {
    let mut keys = Vec::new();
    for v in r.headers.get_all("set-cookie") {
        let text = String::from_utf8_lossy(v);
        if let Some((k, v)) = text.split(';').next().and_then(|p| p.split_once('=')) {
            if is_session_cookie(k.trim()) && !v.trim().is_empty() {
                keys.push(format!("c:{}={}", k.trim(), v.trim()));
            }
        }
    }
    let json = r
        .headers
        .get_str("content-type")
        .is_some_and(|t| t.to_ascii_lowercase().contains("json"));
    if json && r.body.len() <= 1 << 20 {
        if let Ok(body) = r.decoded_body() {
            if let Ok(serde_json::Value::Object(map)) = serde_json::from_slice(&body) {
                for (k, v) in map {
                    let k = k.to_ascii_lowercase();
                    if let (true, serde_json::Value::String(s)) = (k.contains("token"), v) {
                        keys.push(format!("a:Bearer {s}"));
                    }
                }
            }
        }
    }
    keys
}

#[cfg(test)]
mod tests {
    use super::*;
    use mynah_traffic::{BodyForm, Headers, Timing, Version};

    fn exchange(
        ms: i64,
        target: &str,
        headers: &[(&str, &str)],
        issued: &[(&str, &str)],
    ) -> Exchange {
        let mut h = Headers::new();
        for (n, v) in headers {
            h.push(*n, v.as_bytes().to_vec());
        }
        let mut rh = Headers::new();
        for (n, v) in issued {
            rh.push(*n, v.as_bytes().to_vec());
        }
        let body = if rh.get_str("content-type").is_some() {
            br#"{"token":"T-1234567890"}"#.to_vec()
        } else {
            Vec::new()
        };
        Exchange {
            request: Request {
                method: "GET".into(),
                target: target.into(),
                version: Version::Http11,
                headers: h,
                body: Vec::new(),
                body_form: BodyForm::Wire,
            },
            response: Some(Response {
                status: 200,
                headers: rh,
                body,
                ..Default::default()
            }),
            timing: Timing {
                request_start: ms * 1_000_000,
                response_end: Some(ms * 1_000_000 + 5_000_000),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn logins_start_sessions_and_their_credentials_join_them() {
        let mut s = Splitter::new(SessionKey::Auto);
        // Two anonymous clients with the same (absent) User-Agent log in one after the other;
        // one gets a cookie, the other a token. Their later requests must not merge.
        s.add(exchange(0, "/", &[], &[]), 0);
        s.add(
            exchange(
                10,
                "/login?u=1",
                &[],
                &[("Set-Cookie", "session=S1; Path=/")],
            ),
            1,
        );
        s.add(
            exchange(
                20,
                "/login?u=2",
                &[],
                &[("Content-Type", "application/json")],
            ),
            1,
        );
        s.add(
            exchange(30, "/a", &[("Cookie", "theme=x; session=S1")], &[]),
            2,
        );
        s.add(
            exchange(40, "/b", &[("Authorization", "Bearer T-1234567890")], &[]),
            3,
        );
        s.add(exchange(1040, "/c", &[("Cookie", "session=S1")], &[]), 2);
        let sessions = s.finish();
        let targets: Vec<Vec<&str>> = sessions
            .iter()
            .map(|s| s.iter().map(|st| st.request.target.as_str()).collect())
            .collect();
        assert_eq!(
            targets,
            vec![
                vec!["/"],
                vec!["/login?u=1", "/a", "/c"],
                vec!["/login?u=2", "/b"]
            ]
        );
        // Pauses run from the previous response's end (5 ms after its start), capped at MAX_GAP.
        assert_eq!(sessions[1][1].gap, Duration::from_millis(15));
        assert_eq!(sessions[1][2].gap, Duration::from_millis(1005));
        assert_eq!(sessions[2][1].gap, Duration::from_millis(15));
    }

    #[test]
    fn idle_sessions_end_and_picks_follow_the_mode() {
        let mut s = Splitter::new(SessionKey::Cookie("sid".into()));
        s.add(exchange(0, "/1", &[("Cookie", "sid=A")], &[]), 0);
        s.add(
            exchange(31 * 60 * 1000, "/2", &[("Cookie", "sid=A")], &[]),
            0,
        );
        let sessions = s.finish();
        assert_eq!(sessions.len(), 2, "a 31-minute pause ends the session");
        let rec = RecordedSessions {
            file: "x".into(),
            sessions,
            pick: Pick::Sequential,
            next: AtomicUsize::new(0),
        };
        let mut rng = fastrand::Rng::with_seed(7);
        let firsts: Vec<&str> = (0..4)
            .map(|_| rec.pick(&mut rng)[0].request.target.as_str())
            .collect();
        assert_eq!(firsts, ["/1", "/2", "/1", "/2"]);
    }
}
