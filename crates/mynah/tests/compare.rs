//! `mynah compare A.json B.json` on run summaries: two real `mynah run`s against the testkit
//! app (the second slower and failing more), and hand-written summaries in the exact summary
//! format for the error paths and escaping.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use mynah_testkit::app::{self, AppConfig};
use serde_json::{json, Value};

/// A fresh folder for one test's files.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mynah-compare-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

fn mynah(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mynah"))
        .args(args)
        .output()
        .expect("run mynah")
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// Runs `scenario` with `mynah run` and returns the summary's path.
fn run_summary(dir: &Path, tag: &str, scenario: &str) -> PathBuf {
    let file = dir.join(format!("{tag}.yaml"));
    std::fs::write(&file, scenario).unwrap();
    let summary = dir.join(format!("{tag}.json"));
    let o = mynah(&["run", p(&file), "--summary-json", p(&summary)]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "mynah run {tag}: {err}\n{out}");
    summary
}

fn scenario(host: &str, delay_ms: u64, flaky_status: u16) -> String {
    format!(
        "host: {host}
users:
  - name: u
    wait_time: {{ constant: 0.02 }}
    tasks:
      - request: {{ method: GET, path: /delay/{delay_ms}, name: /delay }}
      - request: {{ method: GET, path: /status/{flaky_status}, name: /flaky }}
      - request: {{ method: GET, path: / }}
load: {{ users: 4, spawn_rate: 100, run_time: 2s }}
"
    )
}

fn row<'a>(doc: &'a Value, method: &str, name: &str) -> &'a Value {
    doc["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["method"] == method && r["name"] == name)
        .unwrap_or_else(|| panic!("no row {method} {name} in {doc}"))
}

#[test]
fn two_real_runs_compared_with_a_regression_gate() {
    let app = app::start(AppConfig::default()).unwrap();
    let dir = scratch("runs");
    let before = run_summary(&dir, "before", &scenario(&app.url(), 5, 200));
    let after = run_summary(&dir, "after", &scenario(&app.url(), 60, 500));
    let json_out = dir.join("cmp.json");
    let html_out = dir.join("cmp.html");

    let o = mynah(&[
        "compare",
        p(&before),
        p(&after),
        "--json",
        p(&json_out),
        "--html",
        p(&html_out),
        "--fail-on",
        "GET /delay: p95 +100%",
        "--fail-on",
        "GET /: requests -100%",
        "--fail-on",
        "GET /flaky: fail_rate +50%",
        "--fail-on",
        "GET /gone: p95 +10%",
    ]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(3), "stderr: {err}\nstdout: {out}");
    assert!(
        out.contains("FAIL  GET /delay: p95 +100%  (measured +"),
        "{out}"
    );
    assert!(out.contains("pass  GET /: requests -100%"), "{out}");
    assert!(
        out.contains("FAIL  GET /flaky: fail_rate +50%  (measured +100pt"),
        "{out}"
    );
    assert!(
        out.contains("FAIL  GET /gone: p95 +10%  (GET /gone is in neither summary)"),
        "{out}"
    );
    assert!(err.contains("3 of 4"), "{err}");
    // Total first, then the most changed: /delay (p95 about 12x).
    let total_at = out.find("\nTotal ").expect("total row");
    let delay_at = out.find("\nGET /delay ").expect("delay row");
    let home_at = out.find("\nGET / ").expect("home row");
    let flaky_at = out.find("\nGET /flaky ").expect("flaky row");
    assert!(
        total_at < delay_at && delay_at < home_at.min(flaky_at),
        "{out}"
    );

    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&json_out).unwrap()).unwrap();
    assert_eq!(doc["kind"], "compare");
    assert_eq!(doc["passed"], false);
    assert_eq!(doc["rows"][0]["total"], true);
    let names: Vec<String> = doc["rows"].as_array().unwrap()[1..]
        .iter()
        .map(|r| {
            format!(
                "{} {}",
                r["method"].as_str().unwrap(),
                r["name"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(names.len(), 3, "{names:?}");
    // /delay went from 5 to 60 ms (p95 about +1000%): first. The others are sub-millisecond on
    // loopback, where relative noise can outweigh /flaky's +100 points, so only the order of
    // the scores is checked for them.
    assert_eq!(names[0], "GET /delay", "{names:?}");
    let scores: Vec<f64> = doc["rows"].as_array().unwrap()[1..]
        .iter()
        .map(|r| r["score"].as_f64().unwrap())
        .collect();
    assert!(scores.windows(2).all(|w| w[0] >= w[1]), "{scores:?}");
    let delay = row(&doc, "GET", "/delay");
    let a95 = delay["a"]["latency_ms"]["p95"].as_f64().unwrap();
    let b95 = delay["b"]["latency_ms"]["p95"].as_f64().unwrap();
    assert!((5.0..40.0).contains(&a95) && b95 >= 60.0, "{delay}");
    let rel = delay["change"]["latency_ms"]["p95"]["rel_pct"]
        .as_f64()
        .unwrap();
    assert!((rel - (b95 - a95) / a95 * 100.0).abs() < 1e-6, "{delay}");
    let flaky = row(&doc, "GET", "/flaky");
    assert_eq!(flaky["a"]["fail_rate_pct"], 0.0);
    assert_eq!(flaky["b"]["fail_rate_pct"], 100.0);
    assert_eq!(flaky["change"]["fail_rate_pt"], 100.0);
    // The after run is slower, so fewer requests; shares still sum to 100.
    let share: f64 = doc["rows"].as_array().unwrap()[1..]
        .iter()
        .map(|r| r["b"]["share_pct"].as_f64().unwrap())
        .sum();
    assert!((share - 100.0).abs() < 1e-6, "{share}");
    let rules = doc["rules"].as_array().unwrap();
    assert_eq!(rules.len(), 4);
    assert_eq!(rules[1]["passed"], true);
    assert_eq!(rules[3]["reason"], "GET /gone is in neither summary");

    let html = std::fs::read_to_string(&html_out).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>") && html.contains("GET /delay"));
    assert!(html.contains("Rules: 3 of 4 failed"), "{html}");

    // A gate that holds exits 0; no report is required.
    let o = mynah(&[
        "compare",
        p(&before),
        p(&after),
        "--fail-on",
        "GET /delay: p50 +100000%",
        "--fail-on",
        "p99 +60s",
    ]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "stderr: {err}\nstdout: {out}");
    assert!(out.contains("pass  GET /delay: p50 +100000%"), "{out}");
    app.shutdown();
}

fn endpoint(method: &str, name: &str, requests: u64, failures: u64, p95: Option<f64>) -> Value {
    let lat = |v: Option<f64>| v.map_or(Value::Null, |v| json!(v));
    json!({
        "method": method, "name": name, "requests": requests, "failures": failures,
        "rps": requests as f64 / 10.0,
        "latency_ms": {
            "min": lat(p95.map(|v| v / 10.0)), "mean": lat(p95.map(|v| v / 2.0)),
            "p50": lat(p95.map(|v| v / 2.0)), "p90": lat(p95.map(|v| v * 0.9)), "p95": lat(p95),
            "p99": lat(p95.map(|v| v * 1.5)), "p999": lat(p95.map(|v| v * 2.0)),
            "max": lat(p95.map(|v| v * 3.0)),
        },
    })
}

/// A summary in the exact format `mynah run`/`mynah replay` write (`"tool"` first, so that the
/// command recognises it whatever its size).
fn summary(kind: &str, p95: f64, endpoints: Vec<Value>) -> String {
    let requests: u64 = endpoints
        .iter()
        .map(|e| e["requests"].as_u64().unwrap())
        .sum();
    let failures: u64 = endpoints
        .iter()
        .map(|e| e["failures"].as_u64().unwrap())
        .sum();
    let mut total = endpoint("", "", requests, failures, Some(p95));
    let t = total.as_object_mut().unwrap();
    t.remove("method");
    t.remove("name");
    t.insert("dropped".into(), json!(0));
    t.insert("bytes_received".into(), json!(requests * 100));
    let mut out = format!("{{\"tool\": \"mynah\", \"version\": \"0.1.0\", \"kind\": \"{kind}\"");
    let rest = json!({
        "started_at": "2026-11-26T09:00:00Z", "duration_s": 10.0, "users_max": 8,
        "total": total, "endpoints": endpoints, "failures": [], "thresholds": [],
    });
    for (k, v) in rest.as_object().unwrap() {
        out.push_str(&format!(", {}: {v}", json!(k)));
    }
    if kind == "replay" {
        out.push_str(", \"replay\": {\"sent\": 300, \"skipped\": {}, \"dropped\": 0, \"passes\": 1, \"schedule_lag_ms\": {\"p50\": null, \"p99\": null, \"max\": null}, \"sessions\": {\"mapped_values\": 0, \"substitutions\": 0}, \"compare\": null}");
    }
    out.push('}');
    out
}

#[test]
fn synthetic_against_replayed_with_hostile_names_and_error_paths() {
    let dir = scratch("files");
    let hostile = "/x<script>alert(1)</script>";
    let a = dir.join("synthetic.json");
    let b = dir.join("replayed.json");
    std::fs::write(
        &a,
        summary(
            "run",
            20.0,
            vec![
                endpoint("GET", "/search", 200, 0, Some(20.0)),
                endpoint("GET", hostile, 100, 0, Some(10.0)),
                endpoint("GET", "/empty", 0, 0, None),
            ],
        ),
    )
    .unwrap();
    std::fs::write(
        &b,
        summary(
            "replay",
            22.0,
            vec![
                endpoint("GET", "/search", 200, 2, Some(22.0)),
                endpoint("POST", "/only-replayed", 100, 0, Some(5.0)),
                endpoint("GET", "/empty", 0, 0, None),
            ],
        ),
    )
    .unwrap();
    let html_out = dir.join("cmp.html");
    let o = mynah(&[
        "compare",
        p(&a),
        p(&b),
        "--html",
        p(&html_out),
        "--fail-on",
        "p95 +5%",
        "--fail-on",
        &format!("GET {hostile}: p95 +10%"),
        "--fail-on",
        "GET /empty: p99 +10%",
        "--fail-on",
        "fail_rate +1%",
    ]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(3), "stderr: {err}\nstdout: {out}");
    assert!(
        out.contains("FAIL  p95 +5%  (measured +10% on Total)"),
        "{out}"
    );
    assert!(out.contains("is missing in B"), "{out}");
    assert!(out.contains("GET /empty: no latency samples in A"), "{out}");
    assert!(
        out.contains("pass  fail_rate +1%  (measured +0.667pt on Total)"),
        "{out}"
    );
    assert!(
        out.contains("only in A") && out.contains("only in B"),
        "{out}"
    );
    assert!(out.contains("(run, ") && out.contains("(replay, "), "{out}");
    let html = std::fs::read_to_string(&html_out).unwrap();
    assert!(!html.contains("<script"), "{html}");
    assert!(
        html.contains("/x&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{html}"
    );

    // A malformed rule is a usage error (2) that says what is wrong and shows an example.
    let o = mynah(&["compare", p(&a), p(&b), "--fail-on", "p95 10%"]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("p95 10%") && err.contains("for example"),
        "{err}"
    );
    let o = mynah(&["compare", p(&a), p(&b), "--fail-on", "latency +10%"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).1.contains("unknown metric"), "{}", text(&o).1);

    // Unreadable or invalid summaries are bad input (1) naming the file.
    let broken = dir.join("broken.json");
    std::fs::write(
        &broken,
        "{\"tool\": \"mynah\", \"kind\": \"run\", \"total\": ",
    )
    .unwrap();
    let o = mynah(&["compare", p(&a), p(&broken)]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("broken.json"), "{err}");
    let incomplete = dir.join("incomplete.json");
    std::fs::write(
        &incomplete,
        "{\"tool\": \"mynah\", \"kind\": \"run\", \"total\": {\"requests\": 1}, \"endpoints\": []}",
    )
    .unwrap();
    let o = mynah(&["compare", p(&incomplete), p(&b)]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("incomplete.json") && err.contains("total.failures"),
        "{err}"
    );
    let o = mynah(&["compare", p(&a), p(&dir.join("missing.json"))]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).1.contains("missing.json"));
}
