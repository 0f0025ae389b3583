//! `mynah replay` end to end: the real binary against real servers on loopback.
//!
//! Recordings are the shared captures (`../shared/data/traffic`) and fresh ones made by
//! `mynah_testkit::record` against the testkit app (real TCP, real timing). What arrived is
//! witnessed by the servers themselves: nginx's access log (with a log format that names the
//! connection of each request) and the testkit app's counters and arrival times. Every replay is
//! bounded by its recording, `--duration` or `--max-requests`, and a hard 120 s kill.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mynah_testkit::app::{self, AppConfig, AppHandle};
use mynah_testkit::nginx::{nginx_binary, require_nginx};
use mynah_testkit::record::{self, at, get, post_json, request};
use mynah_traffic::Exchange;
use serde_json::Value;

mod common;
use common::traffic;

// ---------------------------------------------------------------------------------------------
// Running the binary

/// A fresh folder for one test's files.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mynah-replay-{}-{name}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

struct Outcome {
    args: Vec<String>,
    code: i32,
    stdout: String,
    stderr: String,
    /// The summary JSON (`Value::Null` when none was written or asked for).
    summary: Value,
    elapsed: Duration,
}

impl Outcome {
    /// A description for assertion messages.
    fn show(&self) -> String {
        format!(
            "mynah {}\nexit {}\nstderr: {}\nstdout: {}",
            self.args.join(" "),
            self.code,
            self.stderr,
            self.stdout
        )
    }

    fn u64(&self, pointer: &str) -> u64 {
        self.summary
            .pointer(pointer)
            .and_then(Value::as_u64)
            .unwrap_or_else(|| {
                panic!(
                    "summary has no count at {pointer}: {}\n{}",
                    self.summary,
                    self.show()
                )
            })
    }
}

/// Runs `mynah ARGS...` (killed after 120 s) and reads `summary` if given.
fn mynah(args: &[&str], summary: Option<&Path>) -> Outcome {
    if let Some(s) = summary {
        let _ = fs::remove_file(s);
    }
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_mynah"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start mynah");
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out_t = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err_t = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let deadline = started + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("mynah {args:?} did not end within 120 s");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let elapsed = started.elapsed();
    let summary = summary
        .and_then(|s| fs::read_to_string(s).ok())
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or(Value::Null);
    Outcome {
        args: args.iter().map(|s| s.to_string()).collect(),
        code: status.code().unwrap_or(-1),
        stdout: out_t.join().unwrap(),
        stderr: err_t.join().unwrap(),
        summary,
        elapsed,
    }
}

/// `mynah replay ARGS... --summary-json DIR/summary.json`.
fn replay(dir: &Path, args: &[&str]) -> Outcome {
    let summary = dir.join("summary.json");
    let mut all = vec!["replay"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--summary-json", summary.to_str().unwrap()]);
    mynah(&all, Some(&summary))
}

/// Like [`replay`], and fails unless the exit code is 0 and the summary is a replay summary.
fn replay_ok(dir: &Path, args: &[&str]) -> Outcome {
    let o = replay(dir, args);
    assert_eq!(o.code, 0, "{}", o.show());
    assert_eq!(o.summary["kind"], "replay", "{}\n{}", o.summary, o.show());
    o
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Records `connections` against `server` and writes them to `path` (.har or .gor).
fn make_recording(
    server: SocketAddr,
    connections: Vec<Vec<record::Planned>>,
    path: &Path,
) -> Vec<Exchange> {
    let xs = record::record(server, connections).expect("record");
    record::write(path, &xs).expect("write recording");
    xs
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// The endpoint `name` of a summary, with `method`.
fn endpoint<'a>(summary: &'a Value, method: &str, name: &str) -> &'a Value {
    summary["endpoints"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| e["method"] == method && e["name"] == name)
        .unwrap_or_else(|| panic!("no endpoint {method} {name} in {}", summary["endpoints"]))
}

// ---------------------------------------------------------------------------------------------
// nginx as a witness that names connections

/// One access-log line of [`Witness`].
#[derive(Debug, Clone)]
struct Logged {
    /// nginx's connection serial number.
    conn: u64,
    /// The position of the request on its connection, from 1.
    conn_req: u64,
    status: u16,
    host: String,
    /// `HTTP/1.0` or `HTTP/1.1`.
    protocol: String,
    method: String,
    uri: String,
}

/// nginx with an access log of `$msec $connection $connection_requests $status $http_host
/// $server_protocol $request_method $request_uri` (the testkit harness logs a fixed format without the
/// connection). Killed and its prefix removed on drop.
struct Witness {
    child: Child,
    prefix: PathBuf,
    port: u16,
}

impl Witness {
    /// nginx answering 200 `ok` to everything; `None` (skip) if nginx is not installed and
    /// `MYNAH_REQUIRE_NGINX` is not set.
    fn start(test: &str) -> Option<Witness> {
        if !require_nginx() {
            eprintln!(
                "skipping {test}: nginx is not installed (apt-get install nginx-light; CI installs it)"
            );
            return None;
        }
        let bin = nginx_binary().unwrap();
        let mut last = String::new();
        for attempt in 0..5 {
            let prefix = std::env::temp_dir().join(format!(
                "mynah-replay-nginx-{}-{test}-{attempt}",
                std::process::id()
            ));
            let _ = fs::remove_dir_all(&prefix);
            fs::create_dir_all(prefix.join("logs")).unwrap();
            let port = TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let p = prefix.display();
            let conf = format!(
                r#"daemon off;
master_process off;
worker_processes 1;
pid {p}/nginx.pid;
error_log {p}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    default_type text/plain;
    client_body_temp_path {p}/client_body_temp;
    proxy_temp_path {p}/proxy_temp;
    fastcgi_temp_path {p}/fastcgi_temp;
    uwsgi_temp_path {p}/uwsgi_temp;
    scgi_temp_path {p}/scgi_temp;
    log_format witness '$msec $connection $connection_requests $status $http_host $server_protocol $request_method $request_uri';
    access_log {p}/access.log witness;
    keepalive_requests 1000000;
    keepalive_timeout 75s;
    client_max_body_size 64m;
    large_client_header_buffers 8 64k;
    server {{
        listen 127.0.0.1:{port};
        server_name localhost;
        location / {{ return 200 "ok\n"; }}
    }}
}}
"#
            );
            fs::write(prefix.join("nginx.conf"), conf).unwrap();
            let child = Command::new(&bin)
                .arg("-p")
                .arg(&prefix)
                .arg("-c")
                .arg("nginx.conf")
                .arg("-e")
                .arg(prefix.join("error.log"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("run nginx");
            let mut w = Witness {
                child,
                prefix,
                port,
            };
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                if let Ok(Some(_)) = w.child.try_wait() {
                    last = fs::read_to_string(w.prefix.join("error.log")).unwrap_or_default();
                    break;
                }
                let addr = SocketAddr::from(([127, 0, 0, 1], port));
                if TcpStream::connect_timeout(&addr, ms(200)).is_ok() {
                    return Some(w);
                }
                if Instant::now() > deadline {
                    last = "nginx did not accept within 10 s".into();
                    break;
                }
                std::thread::sleep(ms(20));
            }
        }
        panic!("nginx did not start: {last}");
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn lines(&self) -> Vec<Logged> {
        fs::read_to_string(self.prefix.join("access.log"))
            .unwrap_or_default()
            .lines()
            .map(|l| {
                let f: Vec<&str> = l.splitn(8, ' ').collect();
                assert_eq!(f.len(), 8, "access log line {l:?}");
                Logged {
                    conn: f[1].parse().unwrap(),
                    conn_req: f[2].parse().unwrap(),
                    status: f[3].parse().unwrap(),
                    host: unescape(f[4]),
                    protocol: f[5].to_owned(),
                    method: unescape(f[6]),
                    uri: unescape(f[7]),
                }
            })
            .collect()
    }

    /// Polls until the log has at least `n` lines (or 10 s passed), then waits a little more
    /// for stragglers that should not be there, and returns every line.
    fn wait_lines(&self, n: usize) -> Vec<Logged> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.lines().len() < n && Instant::now() < deadline {
            std::thread::sleep(ms(10));
        }
        std::thread::sleep(ms(200));
        self.lines()
    }
}

impl Drop for Witness {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = fs::remove_dir_all(&self.prefix);
    }
}

/// Undoes nginx's default log escaping (`\xHH`).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1] == b'x' {
            if let Ok(v) = u8::from_str_radix(&s[i + 2..i + 4], 16) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

// ---------------------------------------------------------------------------------------------
// a. shared captures to nginx: exactly what the pipeline kept, connections kept

#[test]
fn captures_replay_to_nginx_with_the_pipeline_applied_and_connections_kept() {
    let cases: [(&str, &[&str]); 2] = [
        (
            "pcap/shop_capture.pcap",
            &[
                "--deny-url",
                "^/articles/1001",
                "--allow-method",
                "GET,POST,HEAD",
            ],
        ),
        (
            "har/chrome-har_www.yahoo.com.devtoolslog.har",
            &["--deny-url", "\\.gif(\\?|$)"],
        ),
    ];
    for (file, flags) in cases {
        let name = file.rsplit('/').next().unwrap();
        let Some(nginx) = Witness::start(&format!("captures-{}", &name[..8])) else {
            return;
        };
        let dir = scratch(&format!("captures-{name}"));
        let src = traffic(file);
        let key = "replay-test-key";

        // What the pipeline keeps, written by `mynah convert` with the same flags and key.
        let kept_path = dir.join("kept.har");
        let mut args = vec!["convert", &src, "-o", s(&kept_path), "--redact-key", key];
        args.extend_from_slice(flags);
        let c = mynah(&args, None);
        assert_eq!(c.code, 0, "{}", c.show());
        let kept = record::read(&kept_path);
        let original = record::read(Path::new(&src));
        assert!(
            kept.len() >= 20 && kept.len() < original.len(),
            "{file}: the flags must drop some requests and keep most: {} of {}",
            kept.len(),
            original.len()
        );

        let target = format!("{}/base", nginx.url());
        let mut args = vec![
            src.as_str(),
            "--target",
            &target,
            "--speed",
            "100",
            "--redact-key",
            key,
        ];
        args.extend_from_slice(flags);
        let o = replay_ok(&dir, &args);
        assert_eq!(
            o.summary["replay"]["skipped"],
            serde_json::json!({}),
            "{file}: nothing should be skipped\n{}",
            o.show()
        );
        assert_eq!(o.u64("/replay/sent"), kept.len() as u64, "{}", o.show());
        assert_eq!(o.u64("/total/requests"), kept.len() as u64);
        assert_eq!(o.u64("/replay/dropped"), 0);
        assert_eq!(o.u64("/total/failures"), 0, "{}", o.summary["failures"]);

        let lines = nginx.wait_lines(kept.len());
        // Exactly the kept requests arrived: same multiset of (method, /base + path?query,
        // version as recorded, HTTP/2 as HTTP/1.1).
        let mut expected: Vec<(String, String, &str)> = kept
            .iter()
            .map(|x| {
                (
                    x.request.method.clone(),
                    format!("/base{}", x.request.path_and_query()),
                    wire_version(x),
                )
            })
            .collect();
        let mut got: Vec<(String, String, &str)> = lines
            .iter()
            .map(|l| (l.method.clone(), l.uri.clone(), l.protocol.as_str()))
            .collect();
        expected.sort();
        got.sort();
        if expected != got {
            let missing: Vec<_> = expected.iter().filter(|e| !got.contains(e)).collect();
            let extra: Vec<_> = got.iter().filter(|g| !expected.contains(g)).collect();
            panic!(
                "{file}: nginx saw {} requests, the pipeline kept {}\nmissing: {missing:?}\nextra: {extra:?}",
                got.len(),
                expected.len()
            );
        }
        // Host is the target's.
        let host = format!("127.0.0.1:{}", nginx.port);
        assert!(
            lines.iter().all(|l| l.host == host),
            "{file}: Host must be {host}: {:?}",
            lines
                .iter()
                .filter(|l| l.host != host)
                .take(5)
                .collect::<Vec<_>>()
        );
        assert!(lines.iter().all(|l| l.status == 200));
        if file.ends_with(".pcap") {
            assert!(
                expected.iter().any(|e| e.2 == "HTTP/1.0"),
                "{file} has an HTTP/1.0 request"
            );
        }
        check_connections(file, &kept, &lines);
    }
}

/// The version a recorded request goes out with: HTTP/1.0 as recorded, anything else as 1.1.
fn wire_version(x: &Exchange) -> &'static str {
    if x.request.version == mynah_traffic::Version::Http10 {
        "HTTP/1.0"
    } else {
        "HTTP/1.1"
    }
}

/// Each recorded connection's requests arrived on one nginx connection, in recorded order and
/// back to back (a target connection may carry several recorded connections one after the
/// other, but never interleaves them).
fn check_connections(file: &str, kept: &[Exchange], lines: &[Logged]) {
    let mut recorded: BTreeMap<u64, Vec<&Exchange>> = BTreeMap::new();
    for x in kept {
        let id = x
            .connection
            .id
            .unwrap_or_else(|| panic!("{file}: kept exchange without a connection id"));
        recorded.entry(id).or_default().push(x);
    }
    assert!(
        recorded.values().any(|v| v.len() >= 3),
        "{file}: needs keep-alive connections with several requests"
    );
    let mut on_nginx: BTreeMap<u64, Vec<&Logged>> = BTreeMap::new();
    for l in lines {
        on_nginx.entry(l.conn).or_default().push(l);
    }
    for v in on_nginx.values_mut() {
        v.sort_by_key(|l| l.conn_req);
    }
    let mut used: HashMap<(u64, u64), bool> = HashMap::new();
    // Longest recorded connections first: they constrain the most.
    let mut order: Vec<(&u64, &Vec<&Exchange>)> = recorded.iter().collect();
    order.sort_by_key(|(_, v)| std::cmp::Reverse(v.len()));
    for (id, xs) in order {
        let mut xs = xs.clone();
        xs.sort_by_key(|x| x.connection.index);
        let want: Vec<(String, String)> = xs
            .iter()
            .map(|x| {
                (
                    x.request.method.clone(),
                    format!("/base{}", x.request.path_and_query()),
                )
            })
            .collect();
        let found = on_nginx.iter().find_map(|(conn, ls)| {
            ls.windows(want.len()).find_map(|w| {
                let fits = w.iter().zip(&want).all(|(l, (m, u))| {
                    &l.method == m && &l.uri == u && !used.contains_key(&(*conn, l.conn_req))
                });
                fits.then(|| (*conn, w.iter().map(|l| l.conn_req).collect::<Vec<_>>()))
            })
        });
        match found {
            Some((conn, reqs)) => {
                for r in reqs {
                    used.insert((conn, r), true);
                }
            }
            None => panic!(
                "{file}: recorded connection {id} ({} requests: {want:?}) did not arrive in order on one nginx connection",
                want.len()
            ),
        }
    }
    assert_eq!(used.len(), lines.len());
}

// ---------------------------------------------------------------------------------------------
// b. --speed: the recorded gaps, divided

/// Requests spread irregularly over `span_ms`, on two connections.
fn spread_plan(span_ms: u64) -> Vec<Vec<record::Planned>> {
    let offsets: Vec<u64> = vec![0, 130, 610, 900, 1450, 2000, 2020, 2900, 3333, 4100, 4750];
    let scale = |o: u64| o * span_ms / 4750;
    let mut a = Vec::new();
    let mut b = Vec::new();
    for (i, o) in offsets.iter().enumerate() {
        let r = get(&format!("/articles/{i}"));
        if i % 3 == 1 {
            b.push(at(ms(scale(*o)), r));
        } else {
            a.push(at(ms(scale(*o)), r));
        }
    }
    a.push(at(ms(span_ms), get("/")));
    vec![a, b]
}

fn recorded_span(xs: &[Exchange]) -> Duration {
    let first = xs.iter().map(|x| x.timing.request_start).min().unwrap();
    let last = xs.iter().map(|x| x.timing.request_start).max().unwrap();
    Duration::from_nanos((last - first) as u64)
}

fn server_span(app: &AppHandle) -> Duration {
    let (first, last) = app.arrival_window().expect("requests arrived");
    last - first
}

/// |got - want| <= 5% of want + `abs`.
fn assert_close(what: &str, got: Duration, want: Duration, abs: Duration, context: &Value) {
    let diff = got.abs_diff(want);
    let tolerance = want.mul_f64(0.05) + abs;
    assert!(
        diff <= tolerance,
        "{what}: {got:?}, expected {want:?} ± {tolerance:?}\nreplay summary: {context}"
    );
}

/// Held by the tests whose assertions are about timing (and by the busiest ones), so that they
/// do not share two cores with each other.
static TIMING: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn timing_lock() -> std::sync::MutexGuard<'static, ()> {
    TIMING.lock().unwrap_or_else(|e| e.into_inner())
}

#[test]
fn speed_divides_the_recorded_gaps() {
    let _timing = timing_lock();
    let dir = scratch("speed");
    let recorder = app::start(AppConfig::default()).unwrap();
    let rec = dir.join("spread.har");
    let xs = make_recording(recorder.addr, spread_plan(5000), &rec);
    let span = recorded_span(&xs);
    assert!(span >= ms(4900), "recorded span {span:?}");

    for (speed, factor) in [("10", 10.0), ("200%", 2.0)] {
        let target = app::start(AppConfig::default()).unwrap();
        let o = replay_ok(
            &dir,
            &[s(&rec), "--target", &target.url(), "--speed", speed],
        );
        assert_eq!(o.u64("/replay/sent"), xs.len() as u64, "{}", o.show());
        assert_eq!(target.stats().total, xs.len() as u64);
        assert_eq!(o.u64("/total/failures"), 0);
        let want = span.div_f64(factor);
        assert_close(
            &format!("--speed {speed}: server-side span of the replay"),
            server_span(&target),
            want,
            ms(5),
            &o.summary["replay"],
        );
        // Lag figures are reported in the paced modes.
        assert!(
            o.summary["replay"]["schedule_lag_ms"]["p99"].is_number(),
            "{}",
            o.summary["replay"]
        );
    }
}

// ---------------------------------------------------------------------------------------------
// c. --rate N --duration D --loop: N × D requests

#[test]
fn rate_500_for_10s_with_loop_sends_5000() {
    let _timing = timing_lock();
    let dir = scratch("rate");
    let recorder = app::start(AppConfig::default()).unwrap();
    let rec = dir.join("small.gor");
    let plan = vec![
        (0..6)
            .map(|i| at(ms(i * 20), get(&format!("/articles/{i}"))))
            .collect(),
        (0..6)
            .map(|i| at(ms(5 + i * 20), get("/search?q=x")))
            .collect(),
    ];
    make_recording(recorder.addr, plan, &rec);

    let target = app::start(AppConfig::default()).unwrap();
    let o = replay_ok(
        &dir,
        &[
            s(&rec),
            "--target",
            &target.url(),
            "--rate",
            "500",
            "--duration",
            "10s",
            "--loop",
        ],
    );
    let arrived = target.stats().total;
    assert!(
        (4950..=5050).contains(&arrived),
        "--rate 500 for 10 s: the server saw {arrived} requests, expected 5000 ± 1%\n{}",
        o.show()
    );
    assert_eq!(o.u64("/replay/sent"), arrived, "sent vs arrived");
    assert_eq!(o.u64("/total/requests"), arrived);
    assert_eq!(o.u64("/replay/dropped"), 0);
    // Both endpoints in recorded proportions (6 and 6 per pass).
    let a: u64 = (0..6)
        .map(|i| {
            o.summary["endpoints"]
                .as_array()
                .unwrap()
                .iter()
                .find(|e| e["name"] == format!("/articles/{i}"))
                .and_then(|e| e["requests"].as_u64())
                .unwrap_or(0)
        })
        .sum();
    let search = endpoint(&o.summary, "GET", "/search")["requests"]
        .as_u64()
        .unwrap();
    assert_eq!(a + search, arrived);
    assert!(a.abs_diff(search) <= 12, "articles {a}, search {search}");
    let (first, last) = target.arrival_window().unwrap();
    assert_close(
        "server-side span",
        last - first,
        ms(10_000),
        ms(20),
        &o.summary["replay"],
    );
}

// ---------------------------------------------------------------------------------------------
// d. sessions

/// Three users, each on its own connection: log in, then use the token and the cookie.
fn session_plan() -> Vec<Vec<record::Planned>> {
    (1..=3u64)
        .map(|u| {
            let o = (u - 1) * 40;
            vec![
                at(
                    ms(o),
                    post_json(
                        "/login",
                        &format!(r#"{{"user":"user{u}","password":"pass{u}"}}"#),
                    ),
                ),
                at(
                    ms(o + 100),
                    request(
                        "GET",
                        "/private",
                        &[
                            ("Authorization", "Bearer {{json:token}}"),
                            ("Accept", "application/json"),
                        ],
                        "",
                    ),
                ),
                at(
                    ms(o + 200),
                    request(
                        "GET",
                        "/account",
                        &[("Cookie", "theme=dark; session={{cookie:session}}")],
                        "",
                    ),
                ),
            ]
        })
        .collect()
}

#[test]
fn sessions_are_mapped_to_what_the_target_issues() {
    let dir = scratch("sessions");
    let recorder = app::start(AppConfig::default()).unwrap();
    let rec = dir.join("sessions.har");
    let xs = make_recording(recorder.addr, session_plan(), &rec);
    assert_eq!(xs.len(), 9);
    assert!(
        xs.iter()
            .all(|x| x.response.as_ref().unwrap().status == 200),
        "the recording itself must be all 200"
    );
    let key = "sessions-key";

    // With default masking the login passwords go out masked: the target's accounts are the
    // masked ones (their pseudonyms are fixed by the key, as `mynah convert` shows).
    let masked = dir.join("masked.har");
    let c = mynah(
        &["convert", s(&rec), "-o", s(&masked), "--redact-key", key],
        None,
    );
    assert_eq!(c.code, 0, "{}", c.show());
    let masked_accounts: Vec<(String, String)> = record::read(&masked)
        .iter()
        .filter(|x| x.request.path() == "/login")
        .map(|x| {
            let j: Value = serde_json::from_slice(&x.request.body).unwrap();
            let pw = j["password"].as_str().unwrap().to_owned();
            assert!(pw.starts_with("mask-"), "masked password: {j}");
            (j["user"].as_str().unwrap().to_owned(), pw)
        })
        .collect();
    assert_eq!(masked_accounts.len(), 3);

    for masking in [true, false] {
        let accounts = if masking {
            masked_accounts.clone()
        } else {
            app::default_accounts()
        };
        let mut common = vec![s(&rec), "--speed", "4", "--redact-key", key];
        if !masking {
            common.push("--no-default-redaction");
        }

        // Mapping on: every request succeeds on a target that never saw the recorded tokens.
        let target = app::start(AppConfig {
            accounts: accounts.clone(),
            ..Default::default()
        })
        .unwrap();
        let url = target.url();
        let mut args = common.clone();
        args.extend_from_slice(&["--target", &url]);
        let o = replay_ok(&dir, &args);
        let st = target.stats();
        let what = format!("masking {masking}, mapping on");
        assert_eq!(o.u64("/total/requests"), 9, "{what}: {}", o.show());
        assert_eq!(
            o.u64("/total/failures"),
            0,
            "{what}: {}\nserver: {st:?}",
            o.summary["failures"]
        );
        assert_eq!(st.statuses.get(&200), Some(&9), "{what}: {st:?}");
        assert_eq!(st.unauthorized, 0, "{what}: {st:?}");
        assert_eq!(
            (st.route("login"), st.route("private"), st.route("account")),
            (3, 3, 3)
        );
        assert!(
            o.u64("/replay/sessions/mapped_values") >= 6,
            "{what}: 3 tokens and 3 cookies: {}",
            o.summary["replay"]["sessions"]
        );
        assert!(
            o.u64("/replay/sessions/substitutions") >= 6,
            "{what}: {}",
            o.summary["replay"]["sessions"]
        );

        // Mapping off: the recorded tokens are refused by the target.
        let target = app::start(AppConfig {
            accounts,
            ..Default::default()
        })
        .unwrap();
        let url = target.url();
        let mut args = common.clone();
        args.extend_from_slice(&["--target", &url, "--no-session-mapping"]);
        let o = replay_ok(&dir, &args);
        let st = target.stats();
        let what = format!("masking {masking}, mapping off");
        assert_eq!(st.route("login"), 3, "{what}: {st:?}");
        assert_eq!(
            st.statuses.get(&200),
            Some(&3),
            "{what}: only logins succeed: {st:?}"
        );
        assert_eq!(st.unauthorized, 6, "{what}: {st:?}");
        assert_eq!(
            o.u64("/total/failures"),
            6,
            "{what}: {}",
            o.summary["failures"]
        );
        for name in ["/private", "/account"] {
            let e = endpoint(&o.summary, "GET", name);
            assert_eq!(
                (e["requests"].as_u64(), e["failures"].as_u64()),
                (Some(3), Some(3))
            );
        }
        assert_eq!(
            o.summary["replay"]["sessions"]["substitutions"].as_u64(),
            Some(0),
            "{what}: {}",
            o.summary["replay"]["sessions"]
        );
    }
}

// ---------------------------------------------------------------------------------------------
// e. --compare

#[test]
fn compare_finds_exactly_the_differences_introduced() {
    let dir = scratch("compare");
    let recorder = app::start(AppConfig::default()).unwrap();
    let rec = dir.join("catalog.har");
    let plan = vec![(1..=6u64)
        .map(|i| at(ms(i * 10), get(&format!("/catalog/{i}"))))
        .collect()];
    make_recording(recorder.addr, plan, &rec);

    let variant1 = app::start(AppConfig {
        variant: 1,
        ..Default::default()
    })
    .unwrap();
    let url = variant1.url();
    let o = replay_ok(
        &dir,
        &[
            s(&rec),
            "--target",
            &url,
            "--speed",
            "10",
            "--compare",
            "--compare-ignore",
            "json:$.generated_at",
        ],
    );
    let cmp = &o.summary["replay"]["compare"];
    assert_eq!(cmp["compared"], 6, "{cmp}");
    assert_eq!(cmp["mismatched"], 4, "{cmp}");
    let by_name = |i: u64| -> &Value {
        cmp["endpoints"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == format!("/catalog/{i}") && e["method"] == "GET")
            .unwrap_or_else(|| panic!("no compare endpoint /catalog/{i}: {cmp}"))
    };
    for i in [1, 6] {
        assert_eq!(by_name(i)["compared"], 1, "{cmp}");
        assert_eq!(by_name(i)["mismatched"], 0, "item {i} is identical: {cmp}");
    }
    let kinds = |i: u64| {
        let k = &by_name(i)["by_kind"];
        (
            k["status"].as_u64().unwrap_or(0),
            k["header"].as_u64().unwrap_or(0),
            k["body"].as_u64().unwrap_or(0),
        )
    };
    assert_eq!(by_name(2)["mismatched"], 1, "{cmp}");
    assert_eq!(kinds(2), (0, 0, 1), "item 2: price: {cmp}");
    assert_eq!(by_name(3)["mismatched"], 1, "{cmp}");
    assert_eq!(kinds(3).0, 1, "item 3: status: {cmp}");
    assert_eq!(by_name(4)["mismatched"], 1, "{cmp}");
    assert_eq!(kinds(4), (0, 1, 0), "item 4: header only: {cmp}");
    assert_eq!(by_name(5)["mismatched"], 1, "{cmp}");
    assert_eq!(kinds(5), (0, 0, 1), "item 5: extra field only: {cmp}");

    let examples = cmp["examples"].as_array().expect("examples");
    let example = |i: u64, kind: &str| -> &Value {
        examples
            .iter()
            .find(|e| e["name"] == format!("/catalog/{i}") && e["kind"] == kind)
            .unwrap_or_else(|| panic!("no {kind} example for /catalog/{i}: {cmp}"))
    };
    let e = example(2, "body");
    assert_eq!(e["field"], "$.price", "{e}");
    assert_eq!(
        (e["recorded"].as_str(), e["replayed"].as_str()),
        (Some("15"), Some("16")),
        "{e}"
    );
    let e = example(3, "status");
    assert_eq!(
        (e["recorded"].as_str(), e["replayed"].as_str()),
        (Some("200"), Some("404")),
        "{e}"
    );
    let e = example(4, "header");
    assert_eq!(e["field"], "x-catalog-version", "{e}");
    assert_eq!(
        (e["recorded"].as_str(), e["replayed"].as_str()),
        (Some("7"), Some("8")),
        "{e}"
    );
    let e = example(5, "body");
    assert_eq!(e["field"], "$.discount", "{e}");
    assert!(
        examples
            .iter()
            .all(|e| e["name"] != "/catalog/1" && e["name"] != "/catalog/6"),
        "{cmp}"
    );
    // Only the recorded 200 replayed as 404 is a failure.
    assert_eq!(o.u64("/total/failures"), 1, "{}", o.summary["failures"]);

    // Without the ignore rule the volatile field is a difference everywhere: the comparison
    // really looks at bodies. (Without masking: the default masking takes a 13-digit
    // millisecond timestamp that passes the Luhn check, about 1 in 10, for a card number, and a
    // masked recorded value matches anything.)
    let o = replay_ok(
        &dir,
        &[
            s(&rec),
            "--target",
            &url,
            "--speed",
            "10",
            "--compare",
            "--no-default-redaction",
        ],
    );
    let cmp = &o.summary["replay"]["compare"];
    assert_eq!(cmp["compared"], 6, "{cmp}");
    assert_eq!(
        cmp["mismatched"], 6,
        "generated_at differs on every 200: {cmp}"
    );

    // A recorded value the pipeline masked matches anything: masking the volatile field
    // instead of ignoring it finds the same four differences.
    let o = replay_ok(
        &dir,
        &[
            s(&rec),
            "--target",
            &url,
            "--speed",
            "10",
            "--compare",
            "--redact",
            "json:$.generated_at",
        ],
    );
    let cmp = &o.summary["replay"]["compare"];
    let mismatched: Vec<u64> = (1..=6u64)
        .map(|i| {
            cmp["endpoints"]
                .as_array()
                .unwrap()
                .iter()
                .find(|e| e["name"] == format!("/catalog/{i}"))
                .and_then(|e| e["mismatched"].as_u64())
                .unwrap_or(99)
        })
        .collect();
    assert_eq!(
        mismatched,
        [0, 1, 1, 1, 1, 0],
        "masked values match anything: {cmp}"
    );

    // Replaying to the same variant finds nothing.
    let variant0 = app::start(AppConfig::default()).unwrap();
    let o = replay_ok(
        &dir,
        &[
            s(&rec),
            "--target",
            &variant0.url(),
            "--speed",
            "10",
            "--compare",
            "--compare-ignore",
            "json:$.generated_at",
        ],
    );
    let cmp = &o.summary["replay"]["compare"];
    assert_eq!(
        (cmp["compared"].as_u64(), cmp["mismatched"].as_u64()),
        (Some(6), Some(0)),
        "{cmp}"
    );
}

// ---------------------------------------------------------------------------------------------
// f. masking: no secret in any output, stable pseudonyms

const PASSWORD: &str = "Sup3r-Secret-Passw0rd";
const API_KEY: &str = "AKIAZZSECRETKEY12345";
const CARD: &str = "4111 1111 1111 1111";
const CARD_DIGITS: &str = "4111111111111111";

fn secrets_plan() -> Vec<Vec<record::Planned>> {
    vec![
        vec![
            at(
                ms(0),
                post_json(
                    "/login",
                    &format!(r#"{{"user":"alice","password":"{PASSWORD}"}}"#),
                ),
            ),
            at(
                ms(30),
                request(
                    "GET",
                    "/private",
                    &[("Authorization", "Bearer {{json:token}}")],
                    "",
                ),
            ),
            at(
                ms(60),
                request(
                    "GET",
                    "/account",
                    &[("Cookie", "session={{cookie:session}}; theme=dark")],
                    "",
                ),
            ),
            at(ms(90), get(&format!("/search?q=shoes&api_key={API_KEY}"))),
        ],
        vec![
            at(
                ms(10),
                request("GET", "/search?q=hats", &[("X-Api-Key", API_KEY)], ""),
            ),
            at(
                ms(40),
                post_json(
                    "/api/cart",
                    &format!(r#"{{"item":"sku-1","card":"{CARD}","note":"pay"}}"#),
                ),
            ),
            at(
                ms(70),
                post_json(
                    "/api/cart",
                    &format!(r#"{{"item":"sku-2","card":"{CARD_DIGITS}","note":"again"}}"#),
                ),
            ),
        ],
    ]
}

/// Every `mask-<16 hex>` in `text`, in order.
fn masks_in(text: &str) -> Vec<String> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(p) = text[i..].find("mask-") {
        let start = i + p;
        let hex = &b[start + 5..(start + 21).min(b.len())];
        if hex.len() == 16 && hex.iter().all(|c| c.is_ascii_hexdigit()) {
            out.push(text[start..start + 21].to_owned());
        }
        i = start + 5;
    }
    out
}

#[test]
fn masking_leaves_no_secret_in_any_output_and_pseudonyms_are_stable() {
    let dir = scratch("masking");
    let recorder = app::start(AppConfig {
        accounts: vec![("alice".into(), PASSWORD.into())],
        ..Default::default()
    })
    .unwrap();
    let rec = dir.join("secrets.har");
    let xs = make_recording(recorder.addr, secrets_plan(), &rec);
    assert_eq!(recorder.stats().unauthorized, 0, "the recording logs in");
    let token = {
        let login = xs.iter().find(|x| x.request.path() == "/login").unwrap();
        let j: Value = serde_json::from_slice(&login.response.as_ref().unwrap().body).unwrap();
        j["token"].as_str().unwrap().to_owned()
    };
    let session = xs
        .iter()
        .find_map(|x| x.response.as_ref()?.headers.get_str("set-cookie"))
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .trim_start_matches("session=")
        .to_owned();
    let secrets = [
        PASSWORD,
        API_KEY,
        CARD,
        CARD_DIGITS,
        token.as_str(),
        session.as_str(),
    ];
    // The recording itself holds them all (so their absence below means something).
    let raw = fs::read_to_string(&rec).unwrap();
    for secret in secrets {
        assert!(raw.contains(secret), "the recording should hold {secret}");
    }
    let leaks = |what: &str, text: &str| {
        for secret in secrets {
            assert!(!text.contains(secret), "{what} leaks the secret {secret:?}");
        }
    };

    // convert: no secret in .har or .gor, same key → same masks, another key → others.
    let out = |n: &str| dir.join(n);
    let mut outputs = Vec::new();
    for (name, key) in [
        ("a.har", "k1"),
        ("b.har", "k1"),
        ("c.har", "k2"),
        ("a.gor", "k1"),
    ] {
        let o = mynah(
            &["convert", s(&rec), "-o", s(&out(name)), "--redact-key", key],
            None,
        );
        assert_eq!(o.code, 0, "{}", o.show());
        leaks(&format!("convert {name} stderr"), &o.stderr);
        leaks(&format!("convert {name} stdout"), &o.stdout);
        let text = String::from_utf8_lossy(&fs::read(out(name)).unwrap()).into_owned();
        leaks(&format!("convert output {name}"), &text);
        outputs.push(masks_in(&text));
    }
    assert!(outputs[0].len() >= 6, "masks in a.har: {:?}", outputs[0]);
    assert_eq!(outputs[0], outputs[1], "same key, same masks");
    assert_ne!(outputs[0], outputs[2], "another key, other masks");

    // One secret, one mask, wherever it appears.
    let masked = record::read(&out("a.har"));
    let find = |path: &str| {
        masked
            .iter()
            .find(|x| x.request.path_and_query().starts_with(path))
            .unwrap()
    };
    let query_mask = find("/search?q=shoes")
        .request
        .path_and_query()
        .split("api_key=")
        .nth(1)
        .unwrap()
        .to_owned();
    let header_mask = find("/search?q=hats")
        .request
        .headers
        .get_str("x-api-key")
        .unwrap()
        .into_owned();
    assert!(query_mask.starts_with("mask-"), "{query_mask}");
    assert_eq!(
        query_mask, header_mask,
        "the api key in a query and a header"
    );
    let login_body: Value =
        serde_json::from_slice(&find("/login").response.as_ref().unwrap().body).unwrap();
    let token_mask = login_body["token"].as_str().unwrap().to_owned();
    assert!(token_mask.starts_with("mask-"), "{login_body}");
    assert_eq!(
        find("/private")
            .request
            .headers
            .get_str("authorization")
            .unwrap(),
        format!("Bearer {token_mask}"),
        "the token in a response body and in Authorization"
    );

    let cards: Vec<String> = masked
        .iter()
        .filter(|x| x.request.path() == "/api/cart")
        .map(|x| {
            let j: Value = serde_json::from_slice(&x.request.body).unwrap();
            j["card"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(cards.len(), 2);
    assert!(cards[0].contains("mask-"), "{cards:?}");
    assert_eq!(
        cards[0], cards[1],
        "one card number, spaced or not, one mask"
    );

    // replay with every report, and a dry run: no secret anywhere.
    let target = app::start(AppConfig {
        accounts: vec![("alice".into(), PASSWORD.into())],
        ..Default::default()
    })
    .unwrap();
    let url = target.url();
    let csv = out("report");
    let html = out("report.html");
    let junit = out("junit.xml");
    let o = replay_ok(
        &dir,
        &[
            s(&rec),
            "--target",
            &url,
            "--speed",
            "5",
            "--redact-key",
            "k1",
            "--compare",
            "--csv",
            s(&csv),
            "--html",
            s(&html),
            "--junit",
            s(&junit),
            "--threshold",
            "fail_rate < 100%",
        ],
    );
    assert_eq!(target.stats().total, 7, "{}", o.show());
    leaks("replay stdout", &o.stdout);
    leaks("replay stderr", &o.stderr);
    let mut files = vec![dir.join("summary.json"), html, junit];
    for suffix in ["stats", "stats_history", "failures", "exceptions"] {
        files.push(out(&format!("report_{suffix}.csv")));
    }
    for f in &files {
        let text = fs::read_to_string(f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        leaks(&f.display().to_string(), &text);
    }
    let o = mynah(
        &[
            "replay",
            s(&rec),
            "--target",
            &url,
            "--dry-run",
            "--redact-key",
            "k1",
        ],
        None,
    );
    assert_eq!(o.code, 0, "{}", o.show());
    leaks("dry-run stdout", &o.stdout);
    leaks("dry-run stderr", &o.stderr);
}

// ---------------------------------------------------------------------------------------------
// g. safety, dry run, exit codes

#[test]
fn recorded_host_is_refused_and_dry_run_sends_nothing() {
    let dir = scratch("safety");
    let recorder = app::start(AppConfig::default()).unwrap();
    let rec = dir.join("mix.har");
    let mut a = Vec::new();
    for i in 0..4 {
        a.push(at(ms(i * 10), get("/articles/7")));
    }
    let b = vec![
        at(ms(5), get("/search?q=a")),
        at(ms(15), get("/search?q=b")),
        at(ms(25), get("/")),
    ];
    make_recording(recorder.addr, vec![a, b], &rec);
    let recorded_url = recorder.url();
    let before = recorder.stats().total;
    assert_eq!(before, 7);

    // The recording's own host is refused...
    let o = replay(&dir, &[s(&rec), "--target", &recorded_url]);
    assert_eq!(o.code, 1, "{}", o.show());
    assert!(o.stderr.contains("recorded host"), "{}", o.show());
    assert_eq!(recorder.stats().total, before, "nothing is sent");
    // ... even with a path prefix ...
    let prefixed = format!("{recorded_url}/base");
    let o = replay(&dir, &[s(&rec), "--target", &prefixed]);
    assert_eq!(o.code, 1, "{}", o.show());
    assert_eq!(recorder.stats().total, before, "nothing is sent");
    // ... unless allowed.
    let o = replay_ok(
        &dir,
        &[
            s(&rec),
            "--target",
            &recorded_url,
            "--allow-recorded-host",
            "--speed",
            "10",
        ],
    );
    assert_eq!(recorder.stats().total, before + 7, "{}", o.show());

    // A dry run sends nothing and prints the plan.
    let target = app::start(AppConfig::default()).unwrap();
    let o = replay(&dir, &[s(&rec), "--target", &target.url(), "--dry-run"]);
    assert_eq!(o.code, 0, "{}", o.show());
    std::thread::sleep(ms(100));
    assert_eq!(target.stats().total, 0, "a dry run sends nothing");
    let mut lines = o.stdout.lines();
    let first = lines.next().unwrap_or("");
    assert!(first.starts_with("mynah replay (dry run):"), "{}", o.show());
    let words = |l: &str| -> Vec<String> {
        l.split(|c: char| !c.is_ascii_alphanumeric() && c != '/' && c != '.')
            .map(str::to_owned)
            .collect()
    };
    assert!(
        words(first).contains(&"7".to_string()),
        "request count in {first:?}"
    );
    assert!(
        words(first).contains(&"2".to_string()),
        "connections in {first:?}"
    );
    let rest: Vec<&str> = lines.collect();
    for (name, count) in [("/articles/7", "4"), ("/search", "2"), ("/", "1")] {
        assert!(
            rest.iter().any(|l| {
                let w = words(l);
                w.contains(&name.to_string()) && w.contains(&count.to_string())
            }),
            "no line for {name} with {count}:\n{}",
            o.stdout
        );
    }

    // Exit codes: usage errors are 2, what cannot be done is 1.
    let o = replay(
        &dir,
        &[
            s(&rec),
            "--target",
            &target.url(),
            "--speed",
            "2",
            "--rate",
            "5",
        ],
    );
    assert_eq!(o.code, 2, "two timing modes: {}", o.show());
    let o = replay(&dir, &[s(&rec)]);
    assert_eq!(o.code, 2, "no --target: {}", o.show());
    let missing = dir.join("missing.har");
    let o = replay(&dir, &[s(&missing), "--target", &target.url()]);
    assert_eq!(o.code, 1, "unreadable input: {}", o.show());
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let o = replay(
        &dir,
        &[
            s(&rec),
            "--target",
            &format!("http://127.0.0.1:{closed}"),
            "--speed",
            "10",
        ],
    );
    assert_eq!(o.code, 1, "unreachable target: {}", o.show());
    assert_eq!(target.stats().total, 0);

    // --threshold sets the exit code.
    let o = replay(
        &dir,
        &[
            s(&rec),
            "--target",
            &target.url(),
            "--speed",
            "10",
            "--threshold",
            "requests > 1000",
        ],
    );
    assert_eq!(o.code, 3, "a failed threshold: {}", o.show());
}

// ---------------------------------------------------------------------------------------------
// h. a slow target: drops, not an unbounded queue

#[test]
fn slow_target_drops_instead_of_queueing() {
    let _timing = timing_lock();
    let dir = scratch("slow");
    let recorder = app::start(AppConfig::default()).unwrap();
    let rec = dir.join("fast.gor");
    let plan = vec![(0..10)
        .map(|i| at(ms(i * 5), get(&format!("/articles/{i}"))))
        .collect()];
    make_recording(recorder.addr, plan, &rec);

    let target = app::start(AppConfig {
        worker_threads: 2,
        ..Default::default()
    })
    .unwrap();
    let o = replay(
        &dir,
        &[
            s(&rec),
            "--target",
            &target.url(),
            "--rewrite-url",
            "^/articles/[0-9]+$=>/delay/2000",
            "--rate",
            "200",
            "--loop",
            "--concurrency",
            "5",
            "--duration",
            "3s",
            "--stop-timeout",
            "5s",
        ],
    );
    assert_eq!(o.code, 0, "{}", o.show());
    // Started, ran for its duration, and stopped within duration + stop timeout (+ slack for
    // process start and a debug build).
    assert!(
        o.elapsed >= Duration::from_secs(3) && o.elapsed <= Duration::from_secs(3 + 5 + 4),
        "elapsed {:?}",
        o.elapsed
    );
    let st = target.stats();
    let sent = o.u64("/replay/sent");
    let dropped = o.u64("/replay/dropped");
    assert_eq!(
        st.route("delay"),
        st.total,
        "every request was rewritten: {st:?}"
    );
    assert_eq!(sent, st.total, "sent vs arrived: {st:?}");
    // 5 connections, 2 s per request, 3 s: at most 2 rounds of 5 went out.
    assert!(
        (5..=15).contains(&sent),
        "sent {sent}: at most --concurrency requests in flight\n{}",
        o.show()
    );
    // The other ~590 of the 600 scheduled requests are counted as dropped, not queued.
    assert!(dropped >= 400, "dropped {dropped}\n{}", o.summary["replay"]);
    assert_eq!(o.u64("/total/dropped"), dropped, "{}", o.summary["total"]);
}

// ---------------------------------------------------------------------------------------------
// The request as recorded: bytes, header order and case, version; Host and --keep-host;
// --max-requests with --max-speed

/// (connection number, request bytes) in arrival order, shared with the server's threads.
type Seen = std::sync::Arc<std::sync::Mutex<Vec<(u64, Vec<u8>)>>>;

/// A raw HTTP/1.x server that keeps the bytes of every request (per connection, in order) and
/// answers each with an empty 200 (closing after an HTTP/1.0 request). It runs until the
/// process ends.
struct RawServer {
    addr: SocketAddr,
    /// (connection number, request bytes) in arrival order.
    seen: Seen,
}

impl RawServer {
    fn start() -> RawServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let store = seen.clone();
        std::thread::spawn(move || {
            for (n, stream) in listener.incoming().enumerate() {
                let Ok(stream) = stream else { continue };
                let store = store.clone();
                std::thread::spawn(move || raw_connection(n as u64, stream, store));
            }
        });
        RawServer { addr, seen }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The requests of each connection, in order.
    fn connections(&self) -> BTreeMap<u64, Vec<Vec<u8>>> {
        let mut m: BTreeMap<u64, Vec<Vec<u8>>> = BTreeMap::new();
        for (c, r) in self.seen.lock().unwrap().iter() {
            m.entry(*c).or_default().push(r.clone());
        }
        m
    }

    fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
}

fn raw_connection(n: u64, mut stream: TcpStream, store: Seen) {
    use std::io::Write;
    let mut buf: Vec<u8> = Vec::new();
    let mut tmp = [0u8; 65536];
    loop {
        // A whole request: head, then Content-Length bytes of body.
        let complete = buf.windows(4).position(|w| w == b"\r\n\r\n").and_then(|i| {
            let head = String::from_utf8_lossy(&buf[..i]).to_string();
            let len = head
                .lines()
                .filter_map(|l| l.split_once(':'))
                .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
                .map_or(0, |(_, v)| v.trim().parse::<usize>().unwrap_or(0));
            (buf.len() >= i + 4 + len).then_some((i + 4 + len, head))
        });
        if let Some((end, head)) = complete {
            let request: Vec<u8> = buf.drain(..end).collect();
            store.lock().unwrap().push((n, request));
            let http10 = head.lines().next().is_some_and(|l| l.ends_with("HTTP/1.0"));
            let reply: &[u8] = if http10 {
                b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n"
            } else {
                b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
            };
            if stream.write_all(reply).is_err() || http10 {
                return;
            }
            continue;
        }
        match stream.read(&mut tmp) {
            Ok(0) | Err(_) => return,
            Ok(k) => buf.extend_from_slice(&tmp[..k]),
        }
    }
}

fn odd_requests_plan() -> Vec<Vec<record::Planned>> {
    let mut old = request("GET", "/?v=1.0", &[("User-Agent", "old/1")], "");
    old.version = mynah_traffic::Version::Http10;
    vec![
        vec![
            at(
                ms(0),
                request(
                    "GET",
                    "/articles/1?x=1&y=%20z",
                    &[
                        ("user-agent", "rec/1"),
                        ("X-Mixed-CASE", "a  b"),
                        ("accept", "*/*"),
                        ("X-Dup", "1"),
                        ("x-dup", "2"),
                    ],
                    "",
                ),
            ),
            at(
                ms(20),
                request(
                    "POST",
                    "/api/cart",
                    &[("Content-Type", "application/json"), ("x-trace", "t1")],
                    r#"{"item":"a","qty":2}"#,
                ),
            ),
            at(
                ms(40),
                request("DELETE", "/api/cart", &[("X-Last", "yes")], ""),
            ),
        ],
        vec![at(ms(10), get("/search?q=plain")), at(ms(30), old)],
    ]
}

/// Checks that every recorded connection's requests arrived, byte for byte as `expect` makes
/// them, in order, on one connection of `server`.
fn check_bytes(
    what: &str,
    xs: &[Exchange],
    server: &RawServer,
    expect: impl Fn(&Exchange) -> Vec<u8>,
) {
    let got = server.connections();
    let mut recorded: BTreeMap<u64, Vec<Vec<u8>>> = BTreeMap::new();
    for x in xs {
        recorded
            .entry(x.connection.id.unwrap())
            .or_default()
            .push(expect(x));
    }
    let show = |v: &Vec<Vec<u8>>| -> Vec<String> {
        v.iter()
            .map(|r| String::from_utf8_lossy(r).into_owned())
            .collect()
    };
    for (id, want) in &recorded {
        assert!(
            got.values().any(|g| g == want),
            "{what}: recorded connection {id} did not arrive as recorded on one connection\nwant: {:#?}\ngot: {:#?}",
            show(want),
            got.values().map(show).collect::<Vec<_>>()
        );
    }
    assert_eq!(
        server.count(),
        xs.len(),
        "{what}: {:#?}",
        got.values().map(show).collect::<Vec<_>>()
    );
}

#[test]
fn requests_go_out_as_recorded_byte_for_byte() {
    let dir = scratch("bytes");
    let recorder = app::start(AppConfig::default()).unwrap();
    let rec = dir.join("odd.har");
    let xs = make_recording(recorder.addr, odd_requests_plan(), &rec);
    let recorded_host = recorder.addr.to_string();

    // Both ways a replay gets its requests: spooled (the recording's responses may issue
    // session values, so only without session mapping) and parsed on each pass.
    for (mode, flag, spooled) in [
        ("spooled", "--no-session-mapping", true),
        ("read on each pass", "--no-spool", false),
    ] {
        // --keep-host: exactly the recorded bytes.
        let raw = RawServer::start();
        let o = replay_ok(
            &dir,
            &[
                s(&rec),
                "--target",
                &raw.url(),
                "--speed",
                "10",
                "--keep-host",
                "--no-default-redaction",
                flag,
            ],
        );
        assert_eq!(o.u64("/replay/sent"), xs.len() as u64, "{}", o.show());
        assert_eq!(
            o.summary["replay"]["spooled"],
            spooled,
            "{mode}: {}",
            o.show()
        );
        std::thread::sleep(ms(100));
        check_bytes(&format!("{mode}, --keep-host"), &xs, &raw, |x| {
            record::serialize(&x.request)
        });

        // Default: the target's host:port in the recorded Host header's place, nothing else
        // changed.
        let raw = RawServer::start();
        let target_host = raw.addr.to_string();
        let o = replay_ok(
            &dir,
            &[
                s(&rec),
                "--target",
                &raw.url(),
                "--speed",
                "10",
                "--no-default-redaction",
                flag,
            ],
        );
        assert_eq!(
            o.summary["replay"]["spooled"],
            spooled,
            "{mode}: {}",
            o.show()
        );
        std::thread::sleep(ms(100));
        check_bytes(&format!("{mode}, default Host"), &xs, &raw, |x| {
            let mut r = x.request.clone();
            for h in &mut r.headers.0 {
                if h.name.eq_ignore_ascii_case("host") {
                    assert_eq!(h.value, recorded_host.as_bytes());
                    h.value = target_host.clone().into_bytes();
                }
            }
            record::serialize(&r)
        });
    }

    // A path prefix, and --set-header / --drop-header from the pipeline.
    let raw = RawServer::start();
    let target = format!("{}/v2", raw.url());
    replay_ok(
        &dir,
        &[
            s(&rec),
            "--target",
            &target,
            "--speed",
            "10",
            "--no-default-redaction",
            "--set-header",
            "X-Replay: 1",
            "--drop-header",
            "x-dup",
        ],
    );
    std::thread::sleep(ms(100));
    let got: Vec<String> = raw
        .connections()
        .values()
        .flatten()
        .map(|r| String::from_utf8_lossy(r).into_owned())
        .collect();
    assert_eq!(got.len(), xs.len());
    for r in &got {
        let head = r.split("\r\n\r\n").next().unwrap();
        let first = head.lines().next().unwrap();
        let path = first.split(' ').nth(1).unwrap();
        assert!(path.starts_with("/v2/"), "prefix: {first}");
        assert!(
            head.lines().any(|l| l == "X-Replay: 1"),
            "set-header: {head}"
        );
        assert!(
            !head.to_ascii_lowercase().contains("x-dup:"),
            "drop-header: {head}"
        );
    }
    assert!(
        got.iter()
            .any(|r| r.starts_with("GET /v2/articles/1?x=1&y=%20z HTTP/1.1\r\n")),
        "{got:#?}"
    );
    assert!(
        got.iter()
            .any(|r| r.starts_with("GET /v2/?v=1.0 HTTP/1.0\r\n")),
        "{got:#?}"
    );
}

#[test]
fn max_speed_with_max_requests_and_keep_host() {
    let Some(nginx) = Witness::start("maxspeed") else {
        return;
    };
    let dir = scratch("maxspeed");
    let src = traffic("pcap/shop_capture.pcap");
    let o = replay_ok(
        &dir,
        &[
            &src,
            "--target",
            &nginx.url(),
            "--max-speed",
            "--concurrency",
            "4",
            "--max-requests",
            "50",
            "--keep-host",
            "--no-default-redaction",
        ],
    );
    assert_eq!(o.u64("/replay/sent"), 50, "{}", o.show());
    assert!(
        o.summary["replay"]["schedule_lag_ms"]["p99"].is_null(),
        "no lag at --max-speed: {}",
        o.summary["replay"]
    );
    let lines = nginx.wait_lines(50);
    assert_eq!(lines.len(), 50);
    let conns: std::collections::BTreeSet<u64> = lines.iter().map(|l| l.conn).collect();
    assert!(
        conns.len() <= 4,
        "--concurrency 4: {} connections",
        conns.len()
    );
    // The first 50 recorded requests, with their recorded Host.
    let first: Vec<Exchange> = record::read(Path::new(&src)).into_iter().take(50).collect();
    let mut want: Vec<(String, String, String)> = first
        .iter()
        .map(|x| {
            (
                x.request.method.clone(),
                x.request.path_and_query().to_owned(),
                x.request
                    .headers
                    .get_str("host")
                    .map(|h| h.into_owned())
                    .unwrap_or_else(|| format!("127.0.0.1:{}", nginx.port)),
            )
        })
        .collect();
    let mut got: Vec<(String, String, String)> = lines
        .iter()
        .map(|l| (l.method.clone(), l.uri.clone(), l.host.clone()))
        .collect();
    want.sort();
    got.sort();
    assert_eq!(got, want);
    assert!(got
        .iter()
        .all(|g| g.2 != format!("127.0.0.1:{}", nginx.port)
            || first
                .iter()
                .any(|x| x.request.headers.get("host").is_none())));
}

/// The spool holds exactly what parsing the recording on each pass would send: a real `.gor`
/// capture (1,051 requests, form posts with masked passwords and cookies) replayed flat out and
/// looped, both ways, arrives at the server as the same requests, byte for byte.
#[test]
fn a_spooled_replay_sends_what_a_parsed_one_does() {
    let dir = scratch("spool");
    let src = traffic("gor/isucon5_requests.gor");
    // One server for both (the Host header names it).
    let raw = RawServer::start();
    let url = raw.url();
    let mut arrived = Vec::new();
    for (flags, spooled) in [(&[][..], true), (&["--no-spool"][..], false)] {
        let mut args = vec![
            &src[..],
            "--target",
            &url,
            "--max-speed",
            "--concurrency",
            "4",
            "--loop",
            "--max-requests",
            "2500",
            "--redact-key",
            "spool-test-key",
        ];
        args.extend_from_slice(flags);
        let o = replay_ok(&dir, &args);
        assert_eq!(o.summary["replay"]["spooled"], spooled, "{}", o.show());
        assert_eq!(o.u64("/replay/sent"), 2500, "{}", o.show());
        assert_eq!(o.u64("/replay/passes"), 3, "{}", o.show());
        assert_eq!(o.u64("/total/failures"), 0, "{}", o.show());
        let want = 2500 * (arrived.len() + 1);
        let deadline = Instant::now() + Duration::from_secs(10);
        while raw.count() < want && Instant::now() < deadline {
            std::thread::sleep(ms(20));
        }
        let mut requests: Vec<Vec<u8>> = raw.seen.lock().unwrap()[want - 2500..]
            .iter()
            .map(|(_, r)| r.clone())
            .collect();
        requests.sort();
        assert_eq!(requests.len(), 2500);
        arrived.push(requests);
    }
    if let Some(i) = (0..2500).find(|&i| arrived[0][i] != arrived[1][i]) {
        panic!(
            "the spooled replay sent other requests than the parsed one, e.g.\nspooled: {}\nparsed: {}",
            String::from_utf8_lossy(&arrived[0][i]),
            String::from_utf8_lossy(&arrived[1][i])
        );
    }
    // The masks were applied before the spool was written: the recorded session cookies are not
    // in what arrived.
    let all = String::from_utf8_lossy(&arrived[0].concat()).into_owned();
    assert!(all.contains("POST /login"), "the capture's logins arrived");
    let recorded = fs::read(&src).unwrap();
    let recorded = String::from_utf8_lossy(&recorded);
    let cookie = recorded
        .lines()
        .find_map(|l| l.strip_prefix("Cookie: rack.session="))
        .expect("the capture has session cookies")
        .trim();
    assert!(
        all.contains("Cookie: rack.session="),
        "cookies are sent, masked"
    );
    assert!(
        !all.contains(cookie),
        "a recorded cookie was sent unmasked: {cookie}"
    );
}

/// A recording with an id in every path names at most 1,000 endpoints; the rest are counted under
/// "(other endpoints)", both ways the replay gets its requests.
#[test]
fn endpoint_names_are_capped() {
    let dir = scratch("endpoint-cap");
    let rec = dir.join("ids.gor");
    let mut gor = Vec::new();
    for i in 0..1_200u64 {
        gor.extend_from_slice(
            format!(
                "1 {i:024x} {} 0\nGET /items/{i}?x=1 HTTP/1.1\r\nHost: shop.example\r\n\r\n\n\u{1F435}\u{1F648}\u{1F649}\n",
                1_700_000_000_000_000_000u64 + i * 1000
            )
            .as_bytes(),
        );
    }
    fs::write(&rec, gor).unwrap();
    let raw = RawServer::start();
    for flags in [&[][..], &["--no-spool"][..]] {
        let url = raw.url();
        let mut args = vec![s(&rec), "--target", &url, "--max-speed"];
        args.extend_from_slice(flags);
        let o = replay_ok(&dir, &args);
        assert_eq!(o.u64("/replay/sent"), 1200, "{}", o.show());
        let endpoints = o.summary["endpoints"].as_array().unwrap();
        assert_eq!(endpoints.len(), 1001, "{flags:?}");
        assert_eq!(
            endpoint(&o.summary, "GET", "(other endpoints)")["requests"],
            200,
            "{flags:?}"
        );
        assert_eq!(endpoint(&o.summary, "GET", "/items/7")["requests"], 1);
    }
}
