//! `mynah run --web` end to end: the real binary serves its dashboard on a free loopback port;
//! the test drives it over HTTP as the page does (start, watch the SSE stream, change users,
//! stop, download), against the mynah-testkit app on loopback. With MYNAH_BROWSER=1 a real
//! headless chromium drives the page itself (crates/web/tests/browser).
//!
//! Every run is bounded: a 10-minute run time that the test stops, deadlines on every wait, and
//! the process killed on the way out.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use mynah_testkit::app::{self, AppConfig};
use serde_json::Value;

/// Longest wait for anything the dashboard should do within a second or two.
const PATIENCE: Duration = Duration::from_secs(30);

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mynah-web-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

/// A `mynah run --web` process, killed when dropped.
struct Mynah {
    child: Child,
    addr: SocketAddr,
    stderr: mpsc::Receiver<String>,
}

impl Drop for Mynah {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Mynah {
    /// `mynah run dir/scenario.yaml --web --web-port 0 ARGS`.
    fn start(dir: &Path, scenario: &str, args: &[&str]) -> Mynah {
        let file = dir.join("scenario.yaml");
        std::fs::write(&file, scenario).unwrap();
        let mut all = vec!["run", file.to_str().unwrap(), "--web", "--web-port", "0"];
        all.extend_from_slice(args);
        Mynah::spawn(&all)
    }

    /// `mynah ARGS`, waiting for the dashboard's URL on stderr.
    fn spawn(args: &[&str]) -> Mynah {
        let mut child = Command::new(env!("CARGO_BIN_EXE_mynah"))
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start mynah");
        let (tx, rx) = mpsc::channel();
        let err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + PATIENCE;
        let mut seen = Vec::new();
        let addr = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = rx
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no dashboard URL on stderr; saw {seen:?}"));
            if let Some(rest) = line.strip_prefix("mynah: dashboard: http://") {
                let hostport = rest.split('/').next().unwrap();
                break hostport.parse().unwrap();
            }
            seen.push(line);
        };
        Mynah {
            child,
            addr,
            stderr: rx,
        }
    }

    fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    fn request(&self, method: &str, path: &str, headers: &[&str], body: &str) -> (u16, String) {
        let mut s = TcpStream::connect(self.addr).unwrap();
        s.set_read_timeout(Some(PATIENCE)).unwrap();
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: {}\r\n",
            self.addr,
            body.len()
        );
        for h in headers {
            head.push_str(h);
            head.push_str("\r\n");
        }
        head.push_str("\r\n");
        s.write_all(head.as_bytes()).unwrap();
        s.write_all(body.as_bytes()).unwrap();
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).unwrap();
        let text = String::from_utf8_lossy(&raw).into_owned();
        let status = text[9..12].parse().unwrap();
        let body = text
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        (status, body)
    }

    fn post(&self, path: &str, body: &str) -> (u16, String) {
        self.request(
            "POST",
            path,
            &[
                "Content-Type: application/json",
                &format!("Origin: http://{}", self.addr),
            ],
            body,
        )
    }

    fn get(&self, path: &str) -> (u16, String) {
        self.request("GET", path, &[], "")
    }

    /// Reads the SSE stream until an update satisfies `want`; returns that update.
    fn wait_for(&self, what: &str, want: impl Fn(&Value) -> bool) -> Value {
        let mut s = TcpStream::connect(self.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        write!(
            s,
            "GET /api/events HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\n\r\n",
            self.addr
        )
        .unwrap();
        let deadline = Instant::now() + PATIENCE;
        let mut last = Value::Null;
        let mut event = String::new();
        for line in BufReader::new(s).lines() {
            assert!(
                Instant::now() < deadline,
                "{what}: not seen within {PATIENCE:?}; last update {last}"
            );
            let line =
                line.unwrap_or_else(|e| panic!("{what}: SSE read failed ({e}); last {last}"));
            if let Some(name) = line.strip_prefix("event: ") {
                event = name.to_string();
            } else if let Some(data) = line.strip_prefix("data: ") {
                if event == "update" {
                    let v: Value = serde_json::from_str(data).unwrap();
                    if want(&v) {
                        return v;
                    }
                    last = v;
                }
            }
        }
        panic!("{what}: the SSE stream ended; last update {last}");
    }
}

fn scenario(host: &str) -> String {
    format!(
        "host: {host}
users:
  - name: browsing
    wait_time: {{ constant: 0.05 }}
    tasks:
      - name: home
        weight: 3
        request: {{ method: GET, path: / }}
      - name: status
        request: {{ method: GET, path: /status/204 }}
load: {{ users: 2, spawn_rate: 100, run_time: 10m }}
"
    )
}

fn requests(u: &Value) -> u64 {
    u["stats"]["total"]["requests"].as_u64().unwrap_or(0)
}

#[test]
fn dashboard_starts_watches_changes_users_stops_and_downloads() {
    let app = app::start(AppConfig::default()).unwrap();
    let dir = scratch("drive");
    let csv = dir.join("out");
    let mut mynah = Mynah::start(
        &dir,
        &scenario(&app.url()),
        &[
            "--csv",
            csv.to_str().unwrap(),
            "--summary-json",
            dir.join("summary.json").to_str().unwrap(),
            "--stop-timeout",
            "2s",
        ],
    );

    // Before Start: the form's prefill comes from the scenario, and nothing runs.
    let (status, setup) = mynah.get("/api/setup");
    assert_eq!(status, 200, "{setup}");
    let setup: Value = serde_json::from_str(&setup).unwrap();
    assert_eq!(setup["users"], 2);
    assert_eq!(setup["run_time_s"], 600.0);
    assert!(setup["host"].as_str().unwrap().starts_with(&app.url()));
    let waiting = mynah.wait_for("waiting phase", |u| u["phase"] == "waiting");
    assert!(waiting["stats"].is_null());
    let (status, page) = mynah.get("/");
    assert_eq!(status, 200);
    assert!(page.contains("app.js"));

    // A cross-site page cannot start it.
    let (status, body) = mynah.request(
        "POST",
        "/api/start",
        &[
            "Content-Type: application/json",
            "Origin: http://evil.example",
        ],
        "{}",
    );
    assert_eq!(status, 403, "{body}");

    let (status, body) = mynah.post(
        "/api/start",
        r#"{"users": 2, "spawn_rate": 100, "host": null, "run_time": ""}"#,
    );
    assert_eq!(status, 202, "{body}");
    let running = mynah.wait_for("requests counted", |u| {
        u["phase"] == "running" && requests(u) > 0
    });
    assert_eq!(running["run"], 1);
    let endpoints = running["stats"]["endpoints"].as_array().unwrap();
    assert!(endpoints.iter().any(|e| e["name"] == "/"), "{running}");
    assert!(running["health"]["rss_bytes"].as_u64().unwrap() > 0);
    // The scenario's task ratios.
    assert_eq!(running["stats"]["ratios"][0]["tasks"][0]["share"], 0.75);

    let (status, body) = mynah.post("/api/users", r#"{"users": 5, "spawn_rate": 100}"#);
    assert_eq!(status, 200, "{body}");
    let grown = mynah.wait_for("5 users", |u| u["stats"]["users"] == 5);
    assert_eq!(grown["stats"]["target_users"], 5);
    let ratios = &grown["stats"]["ratios"][0];
    assert_eq!(ratios["users"], 5);

    // A download while it runs holds the figures so far.
    let (status, live_csv) = mynah.get("/download/mynah_stats.csv");
    assert_eq!(status, 200, "{live_csv}");
    assert!(live_csv.contains("GET,/,"), "{live_csv}");

    let (status, body) = mynah.post("/api/stop", "{}");
    assert_eq!(status, 200, "{body}");
    let finished = mynah.wait_for("finished", |u| u["phase"] == "finished");
    let total = requests(&finished);
    assert!(total > 0);

    let (status, stats_csv) = mynah.get("/download/mynah_stats.csv");
    assert_eq!(status, 200);
    assert!(
        stats_csv.starts_with("Type,Name,Request Count"),
        "{stats_csv}"
    );
    let aggregated = stats_csv
        .lines()
        .find(|l| l.contains(",Aggregated,"))
        .unwrap();
    assert!(
        aggregated.contains(&format!(",Aggregated,{total},")),
        "{aggregated} vs {total}"
    );
    let (status, summary) = mynah.get("/download/summary.json");
    assert_eq!(status, 200);
    let summary: Value = serde_json::from_str(&summary).unwrap();
    assert_eq!(summary["generator"]["saturated"], false, "{summary}");
    let (status, html) = mynah.get("/download/report.html");
    assert_eq!(status, 200);
    assert!(html.contains("mynah run: scenario"));
    // The command's own reports were written as without --web.
    assert!(std::fs::read_to_string(dir.join("out_stats.csv"))
        .unwrap()
        .contains("GET,/,"));

    let written: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    assert_eq!(written["generator"]["saturated"], false, "{written}");
    assert!(written["generator"]["cores"].as_u64().unwrap() >= 1);

    // The page keeps serving: a second run starts from it.
    let (status, body) = mynah.post("/api/start", r#"{"users": 1, "run_time": "1s"}"#);
    assert_eq!(status, 202, "{body}");
    let second = mynah.wait_for("second run finished", |u| {
        u["run"] == 2 && u["phase"] == "finished"
    });
    assert!(requests(&second) > 0);

    // Ctrl-C quits.
    let pid = mynah.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap()
        .success());
    let deadline = Instant::now() + PATIENCE;
    let code = loop {
        if let Some(s) = mynah.child.try_wait().unwrap() {
            break s.code();
        }
        assert!(Instant::now() < deadline, "mynah did not quit on Ctrl-C");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(code, Some(0));
    let rest: Vec<String> = mynah.stderr.try_iter().collect();
    assert!(
        rest.iter().any(|l| l.contains("waiting for Start")),
        "{rest:?}"
    );
}

#[test]
fn autostart_runs_at_once_and_the_page_keeps_the_result() {
    let app = app::start(AppConfig::default()).unwrap();
    let dir = scratch("autostart");
    let mut mynah = Mynah::start(
        &dir,
        &scenario(&app.url()),
        &["--autostart", "-u", "1", "-t", "1s"],
    );
    let done = mynah.wait_for("the autostarted run finished", |u| {
        u["run"] == 1 && u["phase"] == "finished"
    });
    assert!(requests(&done) > 0);
    assert_eq!(mynah.get("/download/summary.json").0, 200);
    let pid = mynah.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap()
        .success());
    let deadline = Instant::now() + PATIENCE;
    while mynah.child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "mynah did not quit on Ctrl-C");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn exposed_dashboard_needs_auth() {
    let dir = scratch("auth");
    let file = dir.join("scenario.yaml");
    std::fs::write(&file, scenario("http://127.0.0.1:9")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_mynah"))
        .arg("run")
        .arg(&file)
        .args(["--web", "--web-host", "0.0.0.0", "--web-port", "0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--web-auth"), "{err}");

    // With a token, the page answers only to it.
    let mynah = Mynah::start(
        &dir,
        &scenario("http://127.0.0.1:9"),
        &["--web-host", "127.0.0.1", "--web-auth", "token:s3cret"],
    );
    assert_eq!(mynah.get("/").0, 401);
    assert_eq!(mynah.get("/api/setup").0, 401);
    assert_eq!(mynah.get("/?token=s3cret").0, 200);
    // An unreachable host is reported on the page, and the page stays up.
    let (status, _) = mynah.request(
        "POST",
        "/api/start",
        &[
            "Content-Type: application/json",
            "Authorization: Bearer s3cret",
        ],
        "{}",
    );
    assert_eq!(status, 202);
    let mut s = TcpStream::connect(mynah.addr).unwrap();
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    let _ = mynah.url();
    write!(
        s,
        "GET /api/events?token=s3cret HTTP/1.1\r\nHost: {}\r\n\r\n",
        mynah.addr
    )
    .unwrap();
    let deadline = Instant::now() + PATIENCE;
    for line in BufReader::new(s).lines() {
        let line = line.unwrap();
        if line.contains("cannot connect") {
            assert!(line.contains("\"phase\":\"waiting\""), "{line}");
            return;
        }
        assert!(Instant::now() < deadline, "no start error on the page");
    }
    panic!("the SSE stream ended");
}

#[test]
fn replay_dashboard_watches_and_stops() {
    use mynah_testkit::record::{self, at, get};
    let recorded_on = app::start(AppConfig::default()).unwrap();
    let target = app::start(AppConfig::default()).unwrap();
    let dir = scratch("replay");
    let gor = dir.join("traffic.gor");
    let plan = vec![vec![
        at(Duration::ZERO, get("/")),
        at(Duration::from_millis(20), get("/articles/1")),
    ]];
    let exchanges = record::record(recorded_on.addr, plan).unwrap();
    record::write(&gor, &exchanges).unwrap();
    let url = target.url();
    let mynah = Mynah::spawn(&[
        "replay",
        gor.to_str().unwrap(),
        "--target",
        &url,
        "--rate",
        "50",
        "--loop",
        "--duration",
        "10m",
        "--web",
        "--web-port",
        "0",
    ]);
    let (_, setup) = mynah.get("/api/setup");
    assert!(setup.contains("\"mode\":\"replay\""), "{setup}");
    let running = mynah.wait_for("replayed requests", |u| {
        u["phase"] == "running" && requests(u) > 0
    });
    assert_eq!(running["stats"]["unit"], "connections");
    // The recording sets the load: no user count, no start from the page.
    let (status, body) = mynah.post("/api/users", r#"{"users": 3}"#);
    assert_eq!(status, 409, "{body}");
    let (status, _) = mynah.post("/api/start", "{}");
    assert_eq!(status, 409);
    let (status, body) = mynah.post("/api/stop", "{}");
    assert_eq!(status, 200, "{body}");
    let finished = mynah.wait_for("finished", |u| u["phase"] == "finished");
    assert!(requests(&finished) > 0);
    let (status, csv) = mynah.get("/download/mynah_stats.csv");
    assert_eq!(status, 200);
    assert!(csv.contains("GET,/articles/"), "{csv}");
    // The downloaded summary is the replay's, as --summary-json writes it.
    let (status, summary) = mynah.get("/download/summary.json");
    assert_eq!(status, 200);
    let summary: serde_json::Value = serde_json::from_str(&summary).unwrap();
    assert_eq!(summary["kind"], "replay", "{summary}");
    assert!(summary["replay"]["sent"].as_u64() > Some(0), "{summary}");
}

/// The page in a real browser: headless chromium driven by playwright-core starts a run from
/// the form, sees the numbers move, changes the user count, stops, downloads the HTML report,
/// and saves a screenshot of the running dashboard as target/dashboard.png. Needs node,
/// chromium and `npm ci` in crates/web/tests/browser; runs when MYNAH_BROWSER=1 (CI sets it).
#[test]
fn real_browser_drives_the_dashboard() {
    if std::env::var("MYNAH_BROWSER").as_deref() != Ok("1") {
        eprintln!("skipped: set MYNAH_BROWSER=1 (with node, chromium and `npm ci` in crates/web/tests/browser) to run the browser test");
        return;
    }
    let app = app::start(AppConfig::default()).unwrap();
    let dir = scratch("browser");
    let mynah = Mynah::start(&dir, &scenario(&app.url()), &["--stop-timeout", "2s"]);
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let script = root.join("crates/web/tests/browser/dashboard.mjs");
    let shot = root.join("target/dashboard.png");
    let download = dir.join("report.html");
    let chromium = std::env::var("MYNAH_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let out = Command::new("node")
        .arg(&script)
        .env("DASHBOARD_URL", mynah.url())
        .env("SCREENSHOT", &shot)
        .env("DOWNLOAD", &download)
        .env("CHROMIUM", chromium)
        .output()
        .expect("run node (is nodejs installed?)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "browser script failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stdout.contains("dashboard ok"), "{stdout}");
    let report = std::fs::read_to_string(&download).unwrap();
    assert!(report.contains("mynah run: scenario"));
    assert!(std::fs::metadata(&shot).unwrap().len() > 10_000);
}
