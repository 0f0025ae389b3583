//! `mynah run` end to end: the real binary against real servers on loopback. nginx (from apt)
//! is the independent witness of what arrived; mynah-testkit provides an API with logins and
//! slow routes, and servers that misbehave on purpose. Every run is bounded by its run time and
//! stop timeout.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mynah_testkit::app::{self, AppConfig};
use mynah_testkit::hostile::{self, Hostile};
use mynah_testkit::nginx::{require_nginx, Nginx};
use serde_json::Value;

/// A fresh folder for one test's files.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mynah-run-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

struct Outcome {
    code: i32,
    stdout: String,
    stderr: String,
    summary: Value,
    elapsed: Duration,
    /// Peak resident memory of the mynah process seen while it ran, in KiB.
    peak_rss_kib: u64,
}

/// Writes `scenario` to `dir/scenario.yaml` and runs `mynah run` on it with a summary JSON.
fn run(dir: &Path, scenario: &str, args: &[&str]) -> Outcome {
    let file = dir.join("scenario.yaml");
    std::fs::write(&file, scenario).unwrap();
    let summary = dir.join("summary.json");
    let _ = std::fs::remove_file(&summary);
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_mynah"))
        .arg("run")
        .arg(&file)
        .arg("--summary-json")
        .arg(&summary)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start mynah");
    let pid = child.id();
    // Read the pipes on threads so a chatty child cannot block on a full pipe.
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out_t = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut out, &mut s);
        s
    });
    let err_t = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut err, &mut s);
        s
    });
    let mut peak_rss_kib = 0;
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
            if let Some(kib) = s
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
            {
                peak_rss_kib = peak_rss_kib.max(kib);
            }
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("mynah run did not end within 120 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let elapsed = started.elapsed();
    let stdout = out_t.join().unwrap();
    let stderr = err_t.join().unwrap();
    let summary = std::fs::read_to_string(&summary)
        .ok()
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or(Value::Null);
    Outcome {
        code: status.code().unwrap_or(-1),
        stdout,
        stderr,
        summary,
        elapsed,
        peak_rss_kib,
    }
}

fn requests(o: &Outcome) -> u64 {
    o.summary["total"]["requests"].as_u64().unwrap_or(0)
}

fn failures(o: &Outcome) -> u64 {
    o.summary["total"]["failures"].as_u64().unwrap_or(0)
}

fn endpoint<'a>(o: &'a Outcome, method: &str, name: &str) -> &'a Value {
    endpoint_of(&o.summary, method, name)
}

fn failure_kinds(o: &Outcome) -> BTreeMap<String, u64> {
    let mut kinds = BTreeMap::new();
    for f in o.summary["failures"].as_array().into_iter().flatten() {
        *kinds
            .entry(f["kind"].as_str().unwrap_or("").to_string())
            .or_default() += f["count"].as_u64().unwrap_or(0);
    }
    kinds
}

fn nginx(test: &str) -> Option<Nginx> {
    if !require_nginx() {
        eprintln!(
            "skipping {test}: nginx is not installed (apt-get install nginx-light; CI installs it)"
        );
        return None;
    }
    Some(Nginx::start_default().expect("start nginx"))
}

#[test]
fn counts_equal_nginx_log_and_weighted_mix_lands_within_3_points() {
    let Some(nginx) = nginx("counts_equal_nginx_log") else {
        return;
    };
    let dir = scratch("mix");
    let scenario = format!(
        "host: {}
users:
  - name: u
    tasks:
      - {{ weight: 1, request: {{ method: GET, path: /a }} }}
      - {{ weight: 2, request: {{ method: GET, path: /b }} }}
      - {{ weight: 7, request: {{ method: GET, path: /c }} }}
load: {{ users: 8, spawn_rate: 100, run_time: 4s }}
",
        nginx.url()
    );
    let o = run(&dir, &scenario, &[]);
    assert_eq!(o.code, 0, "stderr: {}\nstdout: {}", o.stderr, o.stdout);
    let total = requests(&o);
    assert!(
        total >= 5000,
        "need ≥ 5000 requests for a ±3 point check, got {total}"
    );
    assert_eq!(failures(&o), 0);
    let lines = nginx.wait_for_access_log_lines(total as usize, Duration::from_secs(5));
    assert_eq!(
        lines.len() as u64,
        total,
        "mynah counted {total} requests, nginx logged {}",
        lines.len()
    );
    for (path, share) in [("/a", 0.1), ("/b", 0.2), ("/c", 0.7)] {
        let n = endpoint(&o, "GET", path)["requests"].as_u64().unwrap();
        let logged = lines
            .iter()
            .filter(|l| l.contains(&format!(" {path} ")))
            .count() as u64;
        assert_eq!(n, logged, "{path}: mynah {n}, nginx {logged}");
        let got = n as f64 / total as f64;
        assert!(
            (got - share).abs() <= 0.03,
            "{path}: share {got:.3}, expected {share} ± 0.03"
        );
    }
}

#[test]
fn fixed_count_is_honoured() {
    let Some(nginx) = nginx("fixed_count_is_honoured") else {
        return;
    };
    let dir = scratch("fixed");
    let scenario = format!(
        "host: {}
users:
  - name: fixed
    fixed_count: 3
    wait_time: {{ constant: 0.05 }}
    tasks:
      - request: {{ method: GET, path: /a, query: {{ u: '{{{{ user_index }}}}' }} }}
  - name: weighted
    weight: 1
    wait_time: {{ constant: 0.05 }}
    tasks:
      - request: {{ method: GET, path: /b, query: {{ u: '{{{{ user_index }}}}' }} }}
load: {{ users: 10, spawn_rate: 100, run_time: 2s }}
",
        nginx.url()
    );
    let o = run(&dir, &scenario, &[]);
    assert_eq!(o.code, 0, "stderr: {}", o.stderr);
    let lines = nginx.wait_for_access_log_lines(requests(&o) as usize, Duration::from_secs(5));
    let users = |path: &str| -> BTreeSet<String> {
        lines
            .iter()
            .filter_map(|l| l.split_whitespace().nth(1))
            .filter(|uri| uri.starts_with(&format!("{path}?u=")))
            .map(|uri| uri.to_string())
            .collect()
    };
    assert_eq!(users("/a").len(), 3, "fixed_count 3: {:?}", users("/a"));
    assert_eq!(users("/b").len(), 7, "the other 7 users: {:?}", users("/b"));
    assert_eq!(o.summary["users_max"], 10);
}

#[test]
fn recorded_sessions_play_as_users_with_their_logins_mapped() {
    use mynah_testkit::record::{at, post_json, request};
    // Record three login sessions (token and cookie) against one app...
    let recorded_on = app::start(AppConfig::default()).unwrap();
    let ms = Duration::from_millis;
    let plan: Vec<_> = (1..=3u64)
        .map(|u| {
            vec![
                at(
                    ms(u * 10),
                    post_json(
                        "/login",
                        &format!(r#"{{"user":"user{u}","password":"pass{u}"}}"#),
                    ),
                ),
                at(
                    ms(u * 10 + 50),
                    request(
                        "GET",
                        "/private",
                        &[("Authorization", "Bearer {{json:token}}")],
                        "",
                    ),
                ),
                at(
                    ms(u * 10 + 100),
                    request(
                        "GET",
                        "/account",
                        &[("Cookie", "session={{cookie:session}}")],
                        "",
                    ),
                ),
            ]
        })
        .collect();
    let exchanges = mynah_testkit::record::record(recorded_on.addr, plan).unwrap();
    let dir = scratch("recorded-users");
    // .gor: no connection identity, so sessions come from the cookies and tokens alone.
    mynah_testkit::record::write(&dir.join("sessions.gor"), &exchanges).unwrap();
    drop(recorded_on);
    // ...and play them as users against another, whose tokens and cookies differ: only the
    // session mapping makes /private and /account answer 200. A scripted class runs beside.
    let app = app::start(AppConfig::default()).unwrap();
    let scenario = format!(
        "host: {}
users:
  - name: recorded
    weight: 3
    replay: {{ file: sessions.gor, session_key: auto, pick: sequential }}
  - name: scripted
    weight: 1
    wait_time: {{ constant: 0.1 }}
    tasks:
      - request: {{ method: GET, path: / }}
load: {{ users: 4, spawn_rate: 100, run_time: 2s }}
",
        app.url()
    );
    let o = run(&dir, &scenario, &[]);
    assert_eq!(o.code, 0, "stderr: {}\nstdout: {}", o.stderr, o.stdout);
    assert_eq!(failures(&o), 0, "{}", o.summary["failures"]);
    let stats = app.stats();
    assert_eq!(stats.unauthorized, 0, "{stats:?}");
    let (logins, private, account) = (
        stats.route("login"),
        stats.route("private"),
        stats.route("account"),
    );
    // 3 users play sessions back to back (login, private, account after recorded pauses).
    assert!(logins >= 6, "{stats:?}");
    assert!(private + 3 >= logins && account + 3 >= logins, "{stats:?}");
    assert!(stats.route("home") >= 5, "{stats:?}");
    assert_eq!(
        endpoint(&o, "GET", "/private")["requests"].as_u64(),
        Some(private)
    );
}

#[test]
fn sessions_end_after_their_length_and_log_in_again() {
    let app = app::start(AppConfig::default()).unwrap();
    let dir = scratch("sessions");
    std::fs::write(dir.join("accounts.csv"), "user,password\nuser1,pass1\n").unwrap();
    // One user, three tasks per session: every third /private is followed by a new login
    // (on_stop first), and the new token works (the old variables are gone).
    let scenario = format!(
        "host: {}
data:
  accounts: {{ csv: accounts.csv, mode: sequential }}
users:
  - name: member
    wait_time: {{ constant: 0.02 }}
    session_length: {{ constant: 3 }}
    on_start:
      - request: {{ method: POST, path: /login,
                   json: {{ user: '{{{{ accounts.user }}}}', password: '{{{{ accounts.password }}}}' }} }}
        extract: {{ token: {{ json: $.token }} }}
    on_stop:
      - request: {{ method: GET, path: /status/204 }}
    tasks:
      - request: {{ method: GET, path: /private, headers: {{ Authorization: 'Bearer {{{{ token }}}}' }} }}
        checks: [ {{ status: 200 }} ]
load: {{ users: 1, spawn_rate: 1, run_time: 2s }}
",
        app.url()
    );
    let o = run(&dir, &scenario, &[]);
    assert_eq!(o.code, 0, "stderr: {}\nstdout: {}", o.stderr, o.stdout);
    assert_eq!(failures(&o), 0, "{}", o.summary["failures"]);
    let stats = app.stats();
    let (logins, private, stops) = (
        stats.route("login"),
        stats.route("private"),
        stats.route("status"),
    );
    assert!(private >= 12, "{stats:?}");
    // Sessions of exactly 3 tasks: logins = ceil(private / 3); each session but the first
    // began with the previous one's on_stop, and the user's own end runs on_stop once more.
    // The run may end just after a session ended and the next one logged in, before its first
    // task: one login more then.
    let sessions = private.div_ceil(3);
    assert!(
        logins == sessions || (private % 3 == 0 && logins == sessions + 1),
        "{stats:?}"
    );
    assert!(stops == logins || stops == logins - 1, "{stats:?}");
    assert_eq!(stats.unauthorized, 0, "{stats:?}");
}

#[test]
fn login_extracts_a_token_that_authorises_later_requests() {
    let app = app::start(AppConfig::default()).unwrap();
    let dir = scratch("login");
    std::fs::write(
        dir.join("accounts.csv"),
        "user,password\nuser1,pass1\nuser2,pass2\nuser3,pass3\nuser4,pass4\nuser5,pass5\n",
    )
    .unwrap();
    let scenario = format!(
        "host: {}
data:
  accounts: {{ csv: accounts.csv, mode: unique }}
users:
  - name: member
    wait_time: {{ constant: 0.05 }}
    on_start:
      - request: {{ method: POST, path: /login,
                   json: {{ user: '{{{{ accounts.user }}}}', password: '{{{{ accounts.password }}}}' }} }}
        extract: {{ token: {{ json: $.token }} }}
    tasks:
      - request: {{ method: GET, path: /private, headers: {{ Authorization: 'Bearer {{{{ token }}}}' }} }}
        checks: [ {{ status: 200 }}, {{ json: $.user }} ]
load: {{ users: 5, spawn_rate: 50, run_time: 2s }}
",
        app.url()
    );
    let o = run(&dir, &scenario, &[]);
    assert_eq!(o.code, 0, "stderr: {}\nstdout: {}", o.stderr, o.stdout);
    assert_eq!(failures(&o), 0, "{}", o.summary["failures"]);
    let stats = app.stats();
    assert_eq!(stats.route("login"), 5, "{stats:?}");
    assert!(stats.route("private") >= 20, "{stats:?}");
    assert_eq!(stats.unauthorized, 0, "{stats:?}");
    assert_eq!(
        endpoint(&o, "GET", "/private")["requests"].as_u64(),
        Some(stats.route("private"))
    );

    // The server rejects a bad token: every such request is a counted `status` failure.
    let bad = scenario.replace("Bearer {{ token }}", "Bearer not-a-token");
    let o = run(&dir, &bad, &[]);
    assert_eq!(o.code, 0, "stderr: {}", o.stderr);
    let private = endpoint(&o, "GET", "/private");
    assert!(private["requests"].as_u64().unwrap() > 0);
    assert_eq!(private["failures"], private["requests"]);
    assert_eq!(
        failure_kinds(&o).get("status").copied(),
        private["failures"].as_u64()
    );
}

#[test]
fn a_unique_feed_that_runs_out_stops_the_run_with_exit_code_1() {
    let app = app::start(AppConfig::default()).unwrap();
    let dir = scratch("unique");
    std::fs::write(
        dir.join("accounts.csv"),
        "user,password\nuser1,pass1\nuser2,pass2\n",
    )
    .unwrap();
    let scenario = format!(
        "host: {}
data:
  accounts: {{ csv: accounts.csv, mode: unique }}
users:
  - name: member
    wait_time: {{ constant: 0.1 }}
    on_start:
      - request: {{ method: POST, path: /login, json: {{ user: '{{{{ accounts.user }}}}', password: '{{{{ accounts.password }}}}' }} }}
    tasks:
      - request: {{ method: GET, path: / }}
load: {{ users: 4, spawn_rate: 100, run_time: 5s }}
",
        app.url()
    );
    let o = run(&dir, &scenario, &[]);
    assert_eq!(o.code, 1, "stderr: {}", o.stderr);
    assert!(
        o.stderr.contains("\"accounts\"")
            && o.stderr.contains("accounts.csv")
            && o.stderr.contains("unique"),
        "the error names the feed, its file and the mode: {}",
        o.stderr
    );
    assert!(o.summary.is_object(), "the summary is still written");
    assert_eq!(app.stats().route("login"), 2);
}

#[test]
fn failed_checks_are_counted_as_failures() {
    let Some(nginx) = nginx("failed_checks_are_counted") else {
        return;
    };
    let dir = scratch("checks");
    let scenario = format!(
        "host: {}
users:
  - name: u
    wait_time: {{ constant: 0.02 }}
    tasks:
      - request: {{ method: GET, path: /a }}
        checks: [ {{ body_contains: zzz }} ]
      - request: {{ method: GET, path: /b }}
        checks: [ {{ status: 200 }}, {{ body_matches: '^b' }} ]
      - request: {{ method: GET, path: /status/500 }}
load: {{ users: 2, spawn_rate: 100, run_time: 2s }}
",
        nginx.url()
    );
    let o = run(&dir, &scenario, &[]);
    assert_eq!(o.code, 0, "stderr: {}", o.stderr);
    let a = endpoint(&o, "GET", "/a");
    assert!(a["requests"].as_u64().unwrap() > 0);
    assert_eq!(a["failures"], a["requests"]);
    let b = endpoint(&o, "GET", "/b");
    assert_eq!(b["failures"], 0);
    let e = endpoint(&o, "GET", "/status/500");
    assert_eq!(e["failures"], e["requests"]);
    let kinds = failure_kinds(&o);
    assert_eq!(kinds.get("check").copied(), a["requests"].as_u64());
    assert_eq!(kinds.get("status").copied(), e["requests"].as_u64());
    let messages: Vec<&str> = o.summary["failures"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["message"].as_str())
        .collect();
    assert!(messages.iter().any(|m| m.contains("zzz")), "{messages:?}");
}

#[test]
fn csv_headers_are_locusts_and_thresholds_set_the_exit_code() {
    let Some(nginx) = nginx("csv_headers_are_locusts") else {
        return;
    };
    let dir = scratch("csv");
    let scenario = format!(
        "host: {}
users:
  - name: u
    wait_time: {{ constant: 0.01 }}
    tasks:
      - request: {{ method: GET, path: /a }}
load: {{ users: 2, spawn_rate: 100, run_time: 2s }}
thresholds: [ 'fail_rate < 1%' ]
",
        nginx.url()
    );
    let prefix = dir.join("out");
    let junit = dir.join("junit.xml");
    let html = dir.join("report.html");
    let o = run(
        &dir,
        &scenario,
        &[
            "--csv",
            prefix.to_str().unwrap(),
            "--junit",
            junit.to_str().unwrap(),
            "--html",
            html.to_str().unwrap(),
        ],
    );
    assert_eq!(o.code, 0, "stderr: {}", o.stderr);
    // Locust's column names, in Locust's order (docs/peer-formats.md), written out here
    // independently of the code that writes them.
    let expected = [
        ("stats", "Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,Min Response Time,Max Response Time,Average Content Size,Requests/s,Failures/s,50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%"),
        ("stats_history", "Timestamp,User Count,Type,Name,Requests/s,Failures/s,50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%,Total Request Count,Total Failure Count,Total Median Response Time,Total Average Response Time,Total Min Response Time,Total Max Response Time,Total Average Content Size"),
        ("failures", "Method,Name,Error,Occurrences,First Seen,Last Seen"),
        ("exceptions", "Count,Message,Traceback,Nodes"),
    ];
    for (suffix, header) in expected {
        let path = dir.join(format!("out_{suffix}.csv"));
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(text.lines().next(), Some(header), "{}", path.display());
    }
    let stats = std::fs::read_to_string(dir.join("out_stats.csv")).unwrap();
    assert!(stats.lines().any(|l| l.starts_with("GET,/a,")), "{stats}");
    assert!(
        stats.lines().any(|l| l.starts_with(",Aggregated,")),
        "{stats}"
    );
    let junit_text = std::fs::read_to_string(&junit).unwrap();
    assert!(junit_text.contains("fail_rate &lt; 1%") || junit_text.contains("fail_rate < 1%"));
    assert!(!junit_text.contains("<failure"));
    let html_text = std::fs::read_to_string(&html).unwrap();
    assert!(html_text.contains("/a") && html_text.contains("<svg"));
    assert_eq!(o.summary["thresholds"][0]["passed"], true);

    // A threshold that cannot hold: exit code 3, and the JUnit report says which.
    let o = run(
        &dir,
        &scenario,
        &[
            "--threshold",
            "rps > 1000000",
            "--junit",
            junit.to_str().unwrap(),
        ],
    );
    assert_eq!(o.code, 3, "stderr: {}", o.stderr);
    assert!(
        o.stderr.contains("1 of 2 thresholds failed"),
        "{}",
        o.stderr
    );
    assert_eq!(o.summary["thresholds"][1]["passed"], false);
    assert!(std::fs::read_to_string(&junit)
        .unwrap()
        .contains("<failure"));

    // A malformed threshold on the command line is a usage error.
    let o = run(&dir, &scenario, &["--threshold", "p95 <"]);
    assert_eq!(o.code, 2, "stderr: {}", o.stderr);
}

#[test]
fn the_open_model_holds_its_rate_when_the_server_slows_and_counts_the_queueing() {
    // /serial/50 serves one request at a time in 50 ms: at most 20 per second. Offered 40 per
    // second for 3 s, a closed model would slow down to the server's pace; the open model must
    // keep starting iterations on schedule, and its latencies must include the growing queue.
    let app = app::start(AppConfig::default()).unwrap();
    let dir = scratch("open");
    let scenario = format!(
        "host: {}
users:
  - name: u
    tasks:
      - request: {{ method: GET, path: /serial/50 }}
load:
  arrival:
    - {{ duration: 3s, rate: 40, max_users: 400 }}
",
        app.url()
    );
    let o = run(&dir, &scenario, &["--stop-timeout", "1s"]);
    assert_eq!(o.code, 0, "stderr: {}", o.stderr);
    assert_eq!(o.summary["total"]["dropped"], 0);
    let arrived = app.stats().route("serial");
    assert!(
        (115..=121).contains(&arrived),
        "40/s for 3 s is 120 iterations; the server saw {arrived}"
    );
    let p50 = o.summary["total"]["latency_ms"]["p50"].as_f64().unwrap();
    assert!(
        p50 > 250.0,
        "with the server at half the offered rate, the median must include queueing (≫ 50 ms), got {p50} ms"
    );
}

#[test]
fn hostile_servers_yield_failures_of_the_right_kind_and_the_run_ends_on_time() {
    let cases = [
        (Hostile::Reset, "reset"),
        (Hostile::Garbage, "protocol"),
        (Hostile::Slow(Duration::from_secs(30)), "timeout"),
        (Hostile::EndlessBody, "timeout"),
        (Hostile::CloseMidResponse, "reset"),
        (Hostile::Silent, "timeout"),
    ];
    for (mode, kind) in cases {
        let server = hostile::start(mode).unwrap();
        let dir = scratch(&format!("hostile-{kind}-{}", server.url().len()));
        let scenario = format!(
            "host: {}
timeouts: {{ request: 1s }}
users:
  - name: u
    wait_time: {{ constant: 0.05 }}
    tasks:
      - request: {{ method: GET, path: /x }}
load: {{ users: 3, spawn_rate: 100, run_time: 2s }}
",
            server.url()
        );
        let csv = dir.join("out");
        let html = dir.join("r.html");
        let junit = dir.join("j.xml");
        let o = run(
            &dir,
            &scenario,
            &[
                "--stop-timeout",
                "1s",
                "--csv",
                csv.to_str().unwrap(),
                "--html",
                html.to_str().unwrap(),
                "--junit",
                junit.to_str().unwrap(),
            ],
        );
        assert_eq!(o.code, 0, "{mode:?}: stderr: {}", o.stderr);
        let kinds = failure_kinds(&o);
        assert!(failures(&o) > 0, "{mode:?}: no failures: {}", o.summary);
        assert_eq!(
            kinds.keys().collect::<Vec<_>>(),
            vec![kind],
            "{mode:?}: failures {kinds:?}"
        );
        // 2 s of run and 1 s to stop; a hang would show here (the harness kills at 120 s).
        assert!(
            o.elapsed < Duration::from_secs(15),
            "{mode:?}: the run took {:?}",
            o.elapsed
        );
        assert!(
            o.peak_rss_kib < 200 * 1024,
            "{mode:?}: peak RSS {} KiB",
            o.peak_rss_kib
        );
        for f in [
            "out_stats.csv",
            "out_stats_history.csv",
            "out_failures.csv",
            "out_exceptions.csv",
            "r.html",
            "j.xml",
        ] {
            assert!(dir.join(f).exists(), "{mode:?}: {f} was not written");
        }
    }
}

#[test]
fn an_unreachable_host_is_reported_at_once() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = scratch("unreachable");
    let scenario = format!(
        "host: http://127.0.0.1:{port}
users:
  - name: u
    tasks:
      - request: {{ method: GET, path: / }}
load: {{ users: 1, run_time: 30s }}
"
    );
    let o = run(&dir, &scenario, &[]);
    assert_eq!(o.code, 1, "stderr: {}", o.stderr);
    assert!(
        o.stderr.contains("cannot connect to http://127.0.0.1:"),
        "{}",
        o.stderr
    );
    assert!(o.stderr.to_lowercase().contains("refused"), "{}", o.stderr);
    assert!(o.elapsed < Duration::from_secs(10));
}

#[test]
fn scenario_mistakes_are_reported_with_a_position_before_anything_is_sent() {
    let app = app::start(AppConfig::default()).unwrap();
    let dir = scratch("bad");
    let scenario = format!(
        "host: {}
users:
  - name: u
    tasks:
      - request: {{ method: GET, path: '/articles/{{{{ article_id }}}}' }}
load: {{ users: 1, run_time: 5s }}
",
        app.url()
    );
    let o = run(&dir, &scenario, &[]);
    assert_eq!(o.code, 1);
    assert!(o.stderr.contains("scenario.yaml:5:"), "{}", o.stderr);
    assert!(
        o.stderr
            .contains("undefined template variable `article_id`"),
        "{}",
        o.stderr
    );
    let o = run(&dir, &scenario.replace("tasks:", "taks:"), &[]);
    assert_eq!(o.code, 1);
    assert!(o.stderr.contains("did you mean \"tasks\""), "{}", o.stderr);
    assert_eq!(app.stats().total, 0);
}

/// The example in issue 3 and docs/scenario.md runs as written (only the host and the run time
/// are overridden on the command line, as a user would).
#[test]
fn the_documented_example_runs_as_written() {
    let app = app::start(AppConfig::default()).unwrap();
    let dir = scratch("example");
    let mut csv = String::from("user,password\n");
    for i in 1..=60 {
        csv.push_str(&format!("user{i},pass{i}\n"));
    }
    std::fs::write(dir.join("accounts.csv"), csv).unwrap();
    let scenario = r#"host: http://127.0.0.1:8080
data:
  accounts: { csv: accounts.csv, mode: unique }
users:
  - name: reader
    weight: 3
    wait_time: { between: [1, 3] }
    on_start:
      - request: { method: POST, path: /login,
                   json: { user: "{{ accounts.user }}", password: "{{ accounts.password }}" } }
        extract: { token: { json: "$.token" } }
    tasks:
      - weight: 10
        request: { method: GET, path: /, headers: { Authorization: "Bearer {{ token }}" } }
      - weight: 50
        request: { method: GET, path: "/articles/{{ random_int(1, 500) }}", name: "/articles/{id}" }
        checks: [ { status: 200 }, { body_contains: "article" } ]
      - weight: 5
        tags: [search]
        sequence:
          - request: { method: GET, path: /search, query: { q: locust } }
          - request: { method: GET, path: /articles/1 }
  - name: buyer
    fixed_count: 2
    wait_time: { constant: 2 }
    tasks:
      - request: { method: POST, path: /api/cart, json: { item: "{{ random_int(1, 99) }}" } }
        checks: [ { status: [200, 201] }, { json: "$.received", exists: true } ]
load: { users: 50, spawn_rate: 10, run_time: 1m }
thresholds: [ "p95 < 300ms", "fail_rate < 1%" ]
"#;
    let o = run(&dir, scenario, &["--host", &app.url(), "-t", "4s"]);
    assert_eq!(o.code, 0, "stderr: {}\nstdout: {}", o.stderr, o.stdout);
    assert_eq!(failures(&o), 0, "{}", o.summary["failures"]);
    let logins = endpoint(&o, "POST", "/login")["requests"].as_u64().unwrap();
    assert_eq!(logins, app.stats().route("login"));
    assert!(logins >= 20, "readers logged in: {logins}");
    assert!(
        endpoint(&o, "POST", "/api/cart")["requests"]
            .as_u64()
            .unwrap()
            >= 2
    );
    assert!(
        endpoint(&o, "GET", "/articles/{id}")["requests"]
            .as_u64()
            .unwrap()
            > 0
    );
    assert_eq!(o.summary["thresholds"].as_array().map(Vec::len), Some(2));
}

/// Starts `mynah run` in the background; the caller signals and waits.
fn spawn(dir: &Path, scenario: &str, args: &[&str]) -> std::process::Child {
    let file = dir.join("scenario.yaml");
    std::fs::write(&file, scenario).unwrap();
    Command::new(env!("CARGO_BIN_EXE_mynah"))
        .arg("run")
        .arg(&file)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start mynah")
}

#[test]
fn ctrl_c_stops_the_run_runs_on_stop_and_still_writes_every_report() {
    let app = app::start(AppConfig::default()).unwrap();
    let dir = scratch("sigint");
    let scenario = format!(
        "host: {}
users:
  - name: u
    wait_time: {{ constant: 0.05 }}
    on_stop:
      - request: {{ method: GET, path: /status/204 }}
    tasks:
      - request: {{ method: GET, path: / }}
load: {{ users: 3, spawn_rate: 100, run_time: 10m }}
",
        app.url()
    );
    let summary = dir.join("summary.json");
    let html = dir.join("r.html");
    let csv = dir.join("out");
    let mut child = spawn(
        &dir,
        &scenario,
        &[
            "--summary-json",
            summary.to_str().unwrap(),
            "--html",
            html.to_str().unwrap(),
            "--csv",
            csv.to_str().unwrap(),
        ],
    );
    // Wait for traffic, then interrupt as a user at the terminal would.
    let deadline = Instant::now() + Duration::from_secs(30);
    while app.stats().route("home") < 10 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let started = Instant::now();
    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "mynah did not stop"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(0));
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();
    let home = endpoint_of(&v, "GET", "/");
    assert_eq!(home["requests"].as_u64(), Some(app.stats().route("home")));
    // Each of the 3 users ran on_stop once.
    assert_eq!(app.stats().route("status"), 3);
    assert!(html.exists() && dir.join("out_stats.csv").exists());
}

fn endpoint_of<'a>(v: &'a Value, method: &str, name: &str) -> &'a Value {
    v["endpoints"]
        .as_array()
        .and_then(|eps| {
            eps.iter()
                .find(|e| e["method"] == method && e["name"] == name)
        })
        .unwrap_or_else(|| panic!("no endpoint {method} {name} in {v}"))
}

#[test]
fn stages_move_the_user_count_up_and_down() {
    let Some(nginx) = nginx("stages_move_the_user_count") else {
        return;
    };
    let dir = scratch("stages");
    let scenario = format!(
        "host: {}
users:
  - name: u
    wait_time: {{ constant: 0.1 }}
    tasks:
      - request: {{ method: GET, path: /a }}
load:
  stages:
    - {{ duration: 2s, users: 4, spawn_rate: 100 }}
    - {{ duration: 2s, users: 8, spawn_rate: 100 }}
    - {{ duration: 2s, users: 2, spawn_rate: 100 }}
",
        nginx.url()
    );
    let csv = dir.join("out");
    let o = run(&dir, &scenario, &["--csv", csv.to_str().unwrap()]);
    assert_eq!(o.code, 0, "stderr: {}", o.stderr);
    assert_eq!(o.summary["users_max"], 8);
    let history = std::fs::read_to_string(dir.join("out_stats_history.csv")).unwrap();
    let users: BTreeSet<u64> = history
        .lines()
        .skip(1)
        .filter_map(|l| l.split(',').nth(1)?.parse().ok())
        .collect();
    for n in [4, 8, 2] {
        assert!(
            users.contains(&n),
            "user counts over time {users:?} miss {n}"
        );
    }
    let duration = o.summary["duration_s"].as_f64().unwrap();
    assert!(
        (5.5..9.0).contains(&duration),
        "3 stages of 2 s took {duration} s"
    );
}

#[test]
fn http2_with_prior_knowledge_is_used_on_request() {
    let app = app::start(AppConfig::default()).unwrap();
    let dir = scratch("h2");
    let scenario = format!(
        "host: {}
users:
  - name: u
    wait_time: {{ constant: 0.02 }}
    tasks:
      - request: {{ method: GET, path: /articles/7 }}
        checks: [ {{ body_contains: article 7 }} ]
load: {{ users: 2, spawn_rate: 100, run_time: 1s }}
",
        app.url()
    );
    let o = run(&dir, &scenario, &["--http2"]);
    assert_eq!(o.code, 0, "stderr: {}", o.stderr);
    assert!(requests(&o) > 10);
    assert_eq!(failures(&o), 0, "{}", o.summary["failures"]);
    assert_eq!(app.stats().route("article"), requests(&o));
    assert_eq!(
        app.stats().http2,
        requests(&o),
        "every request went over HTTP/2"
    );
}
