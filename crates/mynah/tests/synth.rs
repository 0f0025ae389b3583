//! `mynah synth` end to end: learn a scenario from the shared shop capture (and a HAR browsing
//! session), check what it found and that no recorded secret leaks into anything it writes, run
//! the scenario (and the generated locustfile, with real Locust) against a recording loopback
//! server, and measure with `mynah compare` how faithful the traffic it sent is to the capture.

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{mynah, ok, traffic};
use serde_json::Value;

const SHOP: &str = "gor/shop_capture.gor";
/// A browser session of 87 entries: GETs, a form POST, cookies, a redirect.
const HAR: &str = "har/harviewer_noPages.har";

/// A fresh folder for one test's files.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mynah-synth-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
}

// ---------------------------------------------------------------------------------------------
// A recording loopback server
// ---------------------------------------------------------------------------------------------

/// One request the server received and what it answered.
#[derive(Debug, Clone)]
struct Received {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    /// The request as received (head and body).
    raw: Vec<u8>,
    /// Unix nanoseconds: the first byte of the request was read / the response was written.
    arrived: i64,
    answered: i64,
    peer: SocketAddr,
    response: Vec<u8>,
}

impl Received {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Answers every request with 200 and `{"token": "<unique>", ...}`, sets a distinct
/// `session` cookie on every request that does not carry one (so each virtual user, logged in
/// or not, is one session), and records everything.
struct Recorder {
    addr: SocketAddr,
    log: Arc<Mutex<Vec<Received>>>,
    stop: Arc<AtomicBool>,
}

impl Recorder {
    fn start() -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let addr = listener.local_addr().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let counter = Arc::new(AtomicU64::new(1));
        let (l, s) = (log.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (l, s, c) = (l.clone(), s.clone(), counter.clone());
                std::thread::spawn(move || serve(conn, l, s, c));
            }
        });
        Recorder { addr, log, stop }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn received(&self) -> Vec<Received> {
        let mut v = self.log.lock().unwrap().clone();
        v.sort_by_key(|r| r.arrived);
        v
    }

    /// Writes what was received as a GoReplay file: a request record (`1 ID ARRIVED`) and a
    /// response record (`2 ID ANSWERED`) per request.
    fn write_gor(&self, path: &Path) -> usize {
        let sep = "\n\u{1f435}\u{1f648}\u{1f649}\n".as_bytes();
        let mut out = Vec::new();
        let all = self.received();
        for (i, r) in all.iter().enumerate() {
            let id = format!("{:024x}", i + 1);
            out.extend_from_slice(format!("1 {id} {}\n", r.arrived).as_bytes());
            out.extend_from_slice(&r.raw);
            out.extend_from_slice(sep);
            out.extend_from_slice(format!("2 {id} {}\n", r.answered).as_bytes());
            out.extend_from_slice(&r.response);
            out.extend_from_slice(sep);
        }
        std::fs::write(path, out).expect("write the recording");
        all.len()
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.addr);
    }
}

fn serve(
    conn: TcpStream,
    log: Arc<Mutex<Vec<Received>>>,
    stop: Arc<AtomicBool>,
    counter: Arc<AtomicU64>,
) {
    let peer = match conn.peer_addr() {
        Ok(a) => a,
        Err(_) => return,
    };
    let _ = conn.set_read_timeout(Some(Duration::from_secs(20)));
    let _ = conn.set_nodelay(true);
    let mut w = match conn.try_clone() {
        Ok(w) => w,
        Err(_) => return,
    };
    let mut r = BufReader::new(conn);
    loop {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        // Request line and headers.
        let mut raw = Vec::new();
        let mut line = Vec::new();
        let mut arrived = 0;
        loop {
            line.clear();
            match r.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            if arrived == 0 {
                arrived = now_ns();
            }
            raw.extend_from_slice(&line);
            if line == b"\r\n" || line == b"\n" {
                if raw.len() == line.len() {
                    // Stray blank line between requests.
                    raw.clear();
                    arrived = 0;
                    continue;
                }
                break;
            }
        }
        let head = String::from_utf8_lossy(&raw).into_owned();
        let mut lines = head.lines();
        let mut first = lines.next().unwrap_or_default().split_whitespace();
        let method = first.next().unwrap_or_default().to_string();
        let target = first.next().unwrap_or_default().to_string();
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        let get = |n: &str| {
            headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(n))
                .map(|(_, v)| v.clone())
        };
        // Body.
        if get("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked")) {
            loop {
                line.clear();
                if r.read_until(b'\n', &mut line).unwrap_or(0) == 0 {
                    return;
                }
                raw.extend_from_slice(&line);
                let size = usize::from_str_radix(
                    String::from_utf8_lossy(&line)
                        .trim()
                        .split(';')
                        .next()
                        .unwrap_or("0"),
                    16,
                )
                .unwrap_or(0);
                let mut chunk = vec![0; size + 2];
                if r.read_exact(&mut chunk).is_err() {
                    return;
                }
                raw.extend_from_slice(&chunk);
                if size == 0 {
                    break;
                }
            }
        } else if let Some(n) = get("content-length").and_then(|v| v.parse::<usize>().ok()) {
            let mut body = vec![0; n];
            if r.read_exact(&mut body).is_err() {
                return;
            }
            raw.extend_from_slice(&body);
        }
        let n = counter.fetch_add(1, Ordering::SeqCst);
        let body = format!("{{\"token\": \"srv-token-{n}\", \"ok\": true, \"n\": {n}}}");
        let has_session = get("cookie").is_some_and(|c| {
            c.split(';')
                .any(|kv| kv.trim().starts_with("session=") && kv.trim().len() > 8)
        });
        let mut response = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        );
        if !has_session {
            response.push_str(&format!("Set-Cookie: session=srv-session-{n}; Path=/\r\n"));
        }
        response.push_str("\r\n");
        if !method.eq_ignore_ascii_case("HEAD") {
            response.push_str(&body);
        }
        let close = get("connection").is_some_and(|v| v.eq_ignore_ascii_case("close"));
        let answered = now_ns();
        let sent = w.write_all(response.as_bytes()).and_then(|_| w.flush());
        log.lock().unwrap().push(Received {
            method,
            target,
            headers,
            raw,
            arrived,
            answered,
            peer,
            response: response.into_bytes(),
        });
        if sent.is_err() || close {
            return;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// `mynah synth` of the shop capture into `dir` (scenario.yaml, scenario-data/, locustfile.py).
fn synth_shop(dir: &Path) -> Output {
    let scenario = dir.join("scenario.yaml");
    let locustfile = dir.join("locustfile.py");
    ok(&[
        "synth",
        &traffic(SHOP),
        "-o",
        p(&scenario),
        "--locustfile",
        p(&locustfile),
    ])
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let path = e.unwrap().path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out.sort();
    out
}

/// `mynah run SCENARIO --host URL ARGS --summary-json S`, bounded at 60 s; returns the output and
/// the summary.
fn run_scenario(scenario: &Path, host: &str, args: &[&str]) -> (Output, Value) {
    let summary = scenario.with_extension("summary.json");
    let _ = std::fs::remove_file(&summary);
    let mut all = vec![
        "run",
        p(scenario),
        "--host",
        host,
        "--summary-json",
        p(&summary),
    ];
    all.extend_from_slice(args);
    let o = bounded(
        Command::new(env!("CARGO_BIN_EXE_mynah")).args(&all),
        Duration::from_secs(60),
    );
    let v = std::fs::read_to_string(&summary)
        .ok()
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or(Value::Null);
    (o, v)
}

/// Runs a command with piped output, killing it (and failing) after `limit`.
fn bounded(cmd: &mut Command, limit: Duration) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("start {cmd:?}: {e}"));
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let err_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} did not end within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Output {
        status,
        stdout: out_t.join().unwrap(),
        stderr: err_t.join().unwrap(),
    }
}

fn total_requests(summary: &Value) -> u64 {
    summary["total"]["requests"].as_u64().unwrap_or(0)
}

/// Failures of the run that point at the scenario rather than the server: a template or
/// variable that did not render, an extraction that found nothing.
fn scenario_failures(summary: &Value) -> Vec<String> {
    summary["failures"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|f| f.to_string())
        .filter(|f| {
            let l = f.to_ascii_lowercase();
            ["template", "variable", "extract", "undefined", "render"]
                .iter()
                .any(|w| l.contains(w))
        })
        .collect()
}

/// The secrets of the shop capture, read through mynah's own reader: raw Authorization,
/// Cookie and Set-Cookie values (whole and each cookie's value), and the `password` and
/// `token` values of JSON bodies.
fn capture_secrets() -> BTreeSet<String> {
    let mut secrets = BTreeSet::new();
    let reader = mynah_traffic::open(
        Path::new(&traffic(SHOP)),
        None,
        &mynah_traffic::ReadOptions::default(),
    )
    .expect("open the shop capture");
    fn json_secrets(v: &Value, out: &mut BTreeSet<String>) {
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    let k = k.to_ascii_lowercase();
                    if k.contains("password") || k.contains("token") {
                        match v {
                            Value::String(s) => {
                                out.insert(s.clone());
                            }
                            Value::Null | Value::Bool(_) => {}
                            other => {
                                out.insert(other.to_string());
                            }
                        }
                    }
                    json_secrets(v, out);
                }
            }
            Value::Array(a) => a.iter().for_each(|v| json_secrets(v, out)),
            _ => {}
        }
    }
    let mut exchanges = 0;
    for ex in reader {
        let ex = ex.expect("read the shop capture");
        exchanges += 1;
        let cookie_values = |v: &str, out: &mut BTreeSet<String>| {
            out.insert(v.to_string());
            // `a=b; c=d` (Cookie) or `a=b; Path=/; HttpOnly` (Set-Cookie): the first pair's value
            // is always a cookie's; the others only in a Cookie header.
            for pair in v.split(';') {
                if let Some((k, val)) = pair.split_once('=') {
                    let k = k.trim().to_ascii_lowercase();
                    if !["path", "domain", "expires", "max-age", "samesite"].contains(&k.as_str()) {
                        out.insert(val.trim().to_string());
                    }
                }
            }
        };
        for h in ex.request.headers.iter() {
            let n = h.name.to_ascii_lowercase();
            if n == "authorization" {
                let v = h.value_str().into_owned();
                if let Some(t) = v.split_whitespace().nth(1) {
                    secrets.insert(t.to_string());
                }
                secrets.insert(v);
            } else if n == "cookie" {
                cookie_values(&h.value_str(), &mut secrets);
            }
        }
        if let Ok(b) = ex.request.decoded_body() {
            if let Ok(v) = serde_json::from_slice::<Value>(&b) {
                json_secrets(&v, &mut secrets);
            }
        }
        if let Some(resp) = &ex.response {
            for h in resp.headers.iter() {
                if h.name.eq_ignore_ascii_case("set-cookie") {
                    cookie_values(&h.value_str(), &mut secrets);
                }
            }
            if let Ok(b) = resp.decoded_body() {
                if let Ok(v) = serde_json::from_slice::<Value>(&b) {
                    json_secrets(&v, &mut secrets);
                }
            }
        }
    }
    assert!(
        exchanges > 200,
        "the shop capture read {exchanges} exchanges"
    );
    // Values too short to be told apart from ordinary text would only give false alarms.
    secrets.retain(|s| s.len() >= 6);
    secrets
}

/// The Locust executable: `MYNAH_LOCUST`, else `locust` on PATH; `None` (skip) unless
/// `MYNAH_REQUIRE_LOCUST=1`, which makes a missing Locust a failure.
fn locust() -> Option<PathBuf> {
    let required = std::env::var("MYNAH_REQUIRE_LOCUST").is_ok_and(|v| v == "1");
    let found = match std::env::var_os("MYNAH_LOCUST") {
        Some(p) => {
            let p = PathBuf::from(p);
            assert!(
                p.is_file(),
                "MYNAH_LOCUST={} is not a file (.ci/run installs Locust into /opt/mynah-locust)",
                p.display()
            );
            Some(p)
        }
        None => std::env::var_os("PATH").and_then(|path| {
            std::env::split_paths(&path)
                .map(|d| d.join("locust"))
                .find(|c| c.is_file())
        }),
    };
    if found.is_none() {
        assert!(
            !required,
            "MYNAH_REQUIRE_LOCUST=1 but Locust was not found: set MYNAH_LOCUST or put `locust` on PATH"
        );
        eprintln!(
            "note: skipping the Locust test: Locust is not installed (python3 -m venv /opt/mynah-locust && /opt/mynah-locust/bin/pip install locust, then MYNAH_LOCUST=/opt/mynah-locust/bin/locust; CI does this)"
        );
    }
    found
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[test]
fn templates_are_found_in_the_shop_capture() {
    let dir = scratch("templates");
    let o = synth_shop(&dir);
    let (out, err) = text(&o);
    let yaml = std::fs::read_to_string(dir.join("scenario.yaml")).unwrap();
    let names: BTreeSet<&str> = yaml
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            l.strip_prefix("- name: ")
                .or_else(|| l.strip_prefix("name: "))
        })
        .map(|n| n.trim_matches('"'))
        .collect();
    for name in ["/articles/{article_id}", "/users/{user_id}", "/search"] {
        assert!(names.contains(name), "no `name: {name}` in {names:?}");
    }
    // The search template keeps its query variables, fed from search.csv.
    assert!(
        names.contains("GET /search?page={page}&q={q}"),
        "no search task with its query variables in {names:?}"
    );
    assert!(yaml.contains("\"page\": \"{{ search.page }}\""), "{yaml}");
    assert!(yaml.contains("\"q\": \"{{ search.q }}\""), "{yaml}");
    assert!(
        yaml.contains("path: \"/articles/{{ articles.article_id }}\""),
        "{yaml}"
    );
    assert!(
        yaml.contains("path: \"/users/{{ users.user_id }}\""),
        "{yaml}"
    );
    let search_csv = std::fs::read_to_string(dir.join("scenario-data/search.csv")).unwrap();
    assert_eq!(search_csv.lines().next(), Some("page,q"), "{search_csv}");
    // The terminal summary lists them.
    for t in [
        "GET /articles/{article_id}",
        "GET /users/{user_id}",
        "GET /search?page={page}&q={q}",
    ] {
        assert!(
            out.lines().any(|l| l.starts_with(t)),
            "the summary does not list {t}:\n{out}"
        );
    }
    assert!(out.contains("wrote "), "{out}");
    assert!(err.contains("274 seen"), "{err}");
    let templates: Vec<&str> = out
        .lines()
        .skip_while(|l| !l.starts_with("endpoint "))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .collect();
    eprintln!("templates found:\n{}", templates.join("\n"));
}

#[test]
fn no_recorded_secret_reaches_any_output() {
    let secrets = capture_secrets();
    // The capture holds what the test is about: bearer tokens, session cookies, a password.
    assert!(
        secrets.iter().any(|s| s.starts_with("Bearer ")),
        "{secrets:?}"
    );
    assert!(
        secrets.iter().any(|s| s.starts_with("session=")),
        "{secrets:?}"
    );
    assert!(secrets.contains("hunter2"), "{secrets:?}");
    let dir = scratch("secrets");
    let o = synth_shop(&dir);
    let mut outputs: Vec<(String, String)> = vec![
        ("stdout".into(), String::from_utf8_lossy(&o.stdout).into()),
        ("stderr".into(), String::from_utf8_lossy(&o.stderr).into()),
    ];
    let files = files_under(&dir);
    assert!(
        files.iter().any(|f| f.ends_with("locustfile.py"))
            && files.iter().any(|f| f.ends_with("scenario.yaml"))
            && files.iter().filter(|f| p(f).ends_with(".csv")).count() >= 3,
        "{files:?}"
    );
    for f in files {
        outputs.push((
            f.display().to_string(),
            String::from_utf8_lossy(&std::fs::read(&f).unwrap()).into(),
        ));
    }
    let mut leaks = Vec::new();
    for (name, text) in &outputs {
        for s in &secrets {
            if text.contains(s.as_str()) {
                leaks.push(format!("{name}: {s:?}"));
            }
        }
    }
    assert!(
        leaks.is_empty(),
        "{} secrets of the capture were written:\n{}",
        leaks.len(),
        leaks.join("\n")
    );
    eprintln!(
        "checked {} secret values against {} outputs",
        secrets.len(),
        outputs.len()
    );
}

/// Synthesizes the shop scenario into `dir` and runs it against `server` with 100 users for
/// 8 s; fails unless the run succeeds with requests and without failures caused by the
/// scenario. (Enough users that every class gets its share: the busy logged-in classes need
/// about 1 user in 40, and with 20 users rounding would give them several times that.)
fn run_shop(dir: &Path, server: &Recorder) -> Value {
    synth_shop(dir);
    let started = Instant::now();
    let (o, summary) = run_scenario(
        &dir.join("scenario.yaml"),
        &server.url(),
        &["-u", "100", "-r", "100", "-t", "8s"],
    );
    let (out, err) = text(&o);
    eprintln!("mynah run took {:?}", started.elapsed());
    assert_eq!(o.status.code(), Some(0), "mynah run: {err}\n{out}");
    assert!(total_requests(&summary) > 0, "no requests: {summary}");
    let bad = scenario_failures(&summary);
    assert!(
        bad.is_empty(),
        "failures from the scenario itself:\n{}",
        bad.join("\n")
    );
    summary
}

#[test]
fn the_synthesized_scenario_runs_and_logs_in() {
    let dir = scratch("run");
    let server = Recorder::start();
    let summary = run_shop(&dir, &server);
    let requests = total_requests(&summary);
    let received = server.received();
    assert!(
        received.len() as u64 >= requests,
        "the server received {} requests, mynah counted {requests}",
        received.len()
    );
    // The login flow worked: the token extracted from the login response came back as a
    // bearer token.
    let logins = received
        .iter()
        .filter(|r| r.method == "GET" && r.target.starts_with("/login"))
        .count();
    let bearers: BTreeSet<&str> = received
        .iter()
        .filter_map(|r| r.header("authorization"))
        .collect();
    assert!(logins > 0, "no login was sent");
    assert!(
        !bearers.is_empty() && bearers.iter().all(|b| b.starts_with("Bearer srv-token-")),
        "{bearers:?}"
    );
    // Every template and data variable was rendered.
    assert!(
        !received
            .iter()
            .any(|r| r.raw.windows(2).any(|w| w == b"{{" || w == b"}}")),
        "a template was sent unrendered"
    );
    let peers: BTreeSet<SocketAddr> = received.iter().map(|r| r.peer).collect();
    eprintln!(
        "mynah counted {requests} requests; the server received {} ({} logins, {} bearer tokens) on {} connections",
        received.len(),
        logins,
        bearers.len(),
        peers.len()
    );
}

/// What the synthesized scenario sent, recorded by the server, against the capture: the
/// endpoint mix and the think times must be close (the bounds of the synth issue).
#[test]
fn the_traffic_of_the_synthesized_scenario_is_faithful_to_the_capture() {
    let dir = scratch("fidelity");
    let server = Recorder::start();
    run_shop(&dir, &server);
    let recording = dir.join("run_recording.gor");
    let written = server.write_gor(&recording);
    let fidelity = dir.join("fidelity.json");
    let o = ok(&[
        "compare",
        &traffic(SHOP),
        p(&recording),
        "--json",
        p(&fidelity),
    ]);
    let (out, _) = text(&o);
    eprintln!("{out}");
    let f: Value = serde_json::from_str(&std::fs::read_to_string(&fidelity).unwrap()).unwrap();
    let get = |k: &str| {
        f[k].as_f64()
            .unwrap_or_else(|| panic!("no {k} in the fidelity JSON: {f}"))
    };
    let figures = format!(
        "endpoint JSD {:.4}, method JSD {:.4}, status JSD {:.4}, think-time KS {:.4}, request-size KS {:.4}, response-size KS {:.4}, session-length KS {:.4} ({} recorded vs {} requests)",
        get("endpoint_jsd"),
        get("method_jsd"),
        get("status_jsd"),
        get("think_time_ks"),
        get("request_size_ks"),
        get("response_size_ks"),
        get("session_length_ks"),
        f["recorded_requests"],
        f["other_requests"],
    );
    eprintln!("fidelity: {figures}");
    assert_eq!(f["recorded_requests"].as_u64(), Some(274), "{f}");
    assert_eq!(f["other_requests"].as_u64(), Some(written as u64), "{f}");
    let mut missed = Vec::new();
    // The issue's goal for the endpoint mix, met.
    if get("endpoint_jsd") >= 0.05 {
        missed.push("endpoint-mix JSD >= 0.05");
    }
    // The issue's goal for think times (measured 0.067..0.069 over three runs).
    if get("think_time_ks") >= 0.1 {
        missed.push("think-time KS >= 0.1");
    }
    assert!(missed.is_empty(), "{}: {figures}", missed.join(", "));
}

#[test]
fn the_locustfile_runs_under_real_locust() {
    let Some(locust) = locust() else {
        return;
    };
    let dir = scratch("locust");
    synth_shop(&dir);
    // Formatted cleanly: flake8 (installed beside Locust by .ci/run) has nothing to say.
    let flake8 = locust.with_file_name("flake8");
    if flake8.is_file() {
        let o = bounded(
            Command::new(&flake8).arg(dir.join("locustfile.py")),
            Duration::from_secs(60),
        );
        let (out, err) = text(&o);
        assert!(
            o.status.success() && out.trim().is_empty(),
            "flake8 on the generated locustfile:\n{out}{err}"
        );
    } else {
        eprintln!("note: flake8 not found beside Locust: the locustfile's style is not checked");
    }
    let server = Recorder::start();
    let o = bounded(
        Command::new(&locust).current_dir(&dir).args([
            "-f",
            "locustfile.py",
            "--headless",
            // Enough users that the small authenticated classes get some: users are shared so
            // that each class's request share is the recorded one, and the busy logged-in
            // sessions need few users.
            "-u",
            "60",
            "-r",
            "60",
            "-t",
            "4s",
            "--host",
            &server.url(),
            "--only-summary",
        ]),
        Duration::from_secs(60),
    );
    let (out, err) = text(&o);
    let both = format!("{out}\n{err}");
    assert!(
        !both.contains("Traceback") && !both.contains("Error report"),
        "Locust reported Python errors:\n{both}"
    );
    assert_eq!(o.status.code(), Some(0), "locust failed:\n{both}");
    let received = server.received();
    assert!(
        received.len() >= 5,
        "the server received {} requests from Locust:\n{both}",
        received.len()
    );
    assert!(
        received.iter().any(|r| r.target.starts_with("/login")),
        "Locust did not log in"
    );
    assert!(
        received
            .iter()
            .filter_map(|r| r.header("authorization"))
            .all(|b| b.starts_with("Bearer srv-token-")),
        "Locust sent a bearer token the server never gave"
    );
    eprintln!("Locust sent {} requests", received.len());
}

#[test]
fn a_har_browsing_session_synthesizes_a_scenario_that_runs() {
    let dir = scratch("har");
    let scenario = dir.join("scenario.yaml");
    let o = ok(&["synth", &traffic(HAR), "-o", p(&scenario)]);
    let (out, _) = text(&o);
    assert!(out.contains("wrote "), "{out}");
    let server = Recorder::start();
    let (o, summary) = run_scenario(
        &scenario,
        &server.url(),
        &["-u", "5", "-r", "5", "-t", "3s"],
    );
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "mynah run: {err}\n{out}");
    assert!(total_requests(&summary) > 0, "no requests: {summary}");
    let bad = scenario_failures(&summary);
    assert!(bad.is_empty(), "{}", bad.join("\n"));
    assert!(!server.received().is_empty());
}

#[test]
fn synth_without_inputs_it_can_use_fails_clearly() {
    let dir = scratch("empty");
    let o = mynah(&[
        "synth",
        &traffic(SHOP),
        "--allow-url",
        "^/nothing-matches$",
        "-o",
        p(&dir.join("s.yaml")),
    ]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("nothing to synthesize"), "{err}");
}
