use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use base64::Engine as _;
use http_body_util::BodyExt;
use mynah_stats::FailureKind;
use tower::ServiceExt;

use super::*;

fn setup(mode: Mode) -> Setup {
    Setup {
        mode,
        title: "shop".into(),
        users: Some(5),
        spawn_rate: Some(2.0),
        host: Some("http://127.0.0.1:9".into()),
        run_time_s: Some(30.0),
        shape: None,
    }
}

fn loopback() -> WebOptions {
    WebOptions {
        host: "127.0.0.1".into(),
        port: 0,
        auth: None,
    }
}

fn dashboard(options: &WebOptions) -> Dashboard {
    Dashboard::new(setup(Mode::Run), options).unwrap()
}

async fn send(d: &Dashboard, req: Request<Body>) -> (StatusCode, String) {
    let resp = server::router(d.clone()).oneshot(req).await.unwrap();
    let status = resp.status();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

fn get(path: &str) -> Request<Body> {
    Request::get(path)
        .header(header::HOST, "127.0.0.1:8089")
        .body(Body::empty())
        .unwrap()
}

fn post(path: &str) -> axum::http::request::Builder {
    Request::post(path)
        .header(header::HOST, "127.0.0.1:8089")
        .header(header::CONTENT_TYPE, "application/json")
}

#[test]
fn auth_and_bind_rules() {
    assert_eq!(
        "admin:s3cret".parse::<Auth>(),
        Ok(Auth::Basic {
            user: "admin".into(),
            password: "s3cret".into()
        })
    );
    assert_eq!(
        "token:abc:def".parse::<Auth>(),
        Ok(Auth::Token("abc:def".into()))
    );
    assert!("nocolon".parse::<Auth>().is_err());
    assert!("user:".parse::<Auth>().is_err());
    assert!(":pw".parse::<Auth>().is_err());
    // The secret never shows in debug output.
    assert!(!format!("{:?}", Auth::Token("abc".into())).contains("abc"));

    let mut o = loopback();
    assert!(o.bind_addr().is_ok());
    o.host = "0.0.0.0".into();
    let e = o.bind_addr().unwrap_err();
    assert!(e.contains("--web-auth"), "{e}");
    o.auth = Some(Auth::Token("t".into()));
    assert!(o.bind_addr().is_ok());
    o.host = "example.com".into();
    assert!(o.bind_addr().unwrap_err().contains("not an IP address"));
    o.host = "::1".into();
    o.auth = None;
    assert!(o.bind_addr().unwrap().ip().is_loopback());
}

#[test]
fn run_times() {
    assert_eq!(parse_run_time("90"), Ok(Duration::from_secs(90)));
    assert_eq!(parse_run_time("1h30m"), Ok(Duration::from_secs(5400)));
    assert_eq!(parse_run_time("250ms"), Ok(Duration::from_millis(250)));
    assert_eq!(parse_run_time("2m5s"), Ok(Duration::from_secs(125)));
    assert!(parse_run_time("5x").is_err());
    assert!(parse_run_time("").is_err());
    assert!(parse_run_time("5m3").is_err());
    assert!(parse_run_time("-3").is_err());
}

#[test]
fn helpers() {
    use server::{loopback_host, percent_decode};
    assert!(loopback_host("127.0.0.1:8089"));
    assert!(loopback_host("localhost"));
    assert!(loopback_host("[::1]:80"));
    assert!(!loopback_host("evil.example:8089"));
    assert!(!loopback_host("10.0.0.1"));
    assert_eq!(percent_decode("a%20b+c%zz%"), "a b c%zz%");
    assert_eq!(percent_decode("%e2%82%ac%"), "€%");
}

#[tokio::test]
async fn page_and_assets_are_embedded() {
    let d = dashboard(&loopback());
    let (s, body) = send(&d, get("/")).await;
    assert_eq!(s, StatusCode::OK);
    assert!(body.contains("<script src=\"app.js\">"));
    for external in ["src=\"http", "href=\"http", "src=\"//", "href=\"//"] {
        assert!(!body.contains(external), "no external assets");
    }
    let (s, js) = send(&d, get("/app.js")).await;
    assert_eq!(s, StatusCode::OK);
    assert!(js.contains("EventSource"));
    let (s, setup) = send(&d, get("/api/setup")).await;
    assert_eq!(s, StatusCode::OK);
    let v: Value = serde_json::from_str(&setup).unwrap();
    assert_eq!(v["mode"], "run");
    assert_eq!(v["users"], 5);
}

#[tokio::test]
async fn loopback_dashboard_refuses_foreign_host_names() {
    let d = dashboard(&loopback());
    let req = Request::get("/")
        .header(header::HOST, "attacker.example:8089")
        .body(Body::empty())
        .unwrap();
    let (s, body) = send(&d, req).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert!(body.contains("loopback"), "{body}");
}

#[tokio::test]
async fn basic_and_token_auth() {
    let mut o = loopback();
    o.host = "0.0.0.0".into();
    o.auth = Some("admin:pw".parse().unwrap());
    let d = dashboard(&o);
    let (s, _) = send(&d, get("/")).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let resp = server::router(d.clone()).oneshot(get("/")).await.unwrap();
    assert_eq!(
        resp.headers()[header::WWW_AUTHENTICATE],
        "Basic realm=\"mynah\""
    );
    let basic = |cred: &str| {
        Request::get("/api/setup")
            .header(header::HOST, "10.1.2.3:8089")
            .header(
                header::AUTHORIZATION,
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(cred)
                ),
            )
            .body(Body::empty())
            .unwrap()
    };
    assert_eq!(send(&d, basic("admin:pw")).await.0, StatusCode::OK);
    assert_eq!(
        send(&d, basic("admin:px")).await.0,
        StatusCode::UNAUTHORIZED
    );

    o.auth = Some("token:t0k3n".parse().unwrap());
    let d = dashboard(&o);
    assert_eq!(send(&d, get("/?token=t0k3n")).await.0, StatusCode::OK);
    assert_eq!(
        send(&d, get("/?token=nope")).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(send(&d, get("/")).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(
        send(&d, get("/api/events")).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        send(&d, get("/download/summary.json")).await.0,
        StatusCode::UNAUTHORIZED
    );
    // The page's script and styles load without the token (a <script src> cannot send it).
    assert_eq!(send(&d, get("/app.js")).await.0, StatusCode::OK);
    assert_eq!(send(&d, get("/style.css")).await.0, StatusCode::OK);
    let bearer = Request::get("/api/setup")
        .header(header::HOST, "10.1.2.3")
        .header(header::AUTHORIZATION, "Bearer t0k3n")
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(&d, bearer).await.0, StatusCode::OK);
}

#[tokio::test]
async fn control_requests_refuse_cross_site() {
    let d = dashboard(&loopback());
    let cross = post("/api/start")
        .header(header::ORIGIN, "http://evil.example")
        .body(Body::from("{}"))
        .unwrap();
    let (s, body) = send(&d, cross).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert!(body.contains("cross-site"), "{body}");
    let fetch_site = post("/api/stop")
        .header("sec-fetch-site", "cross-site")
        .body(Body::from("{}"))
        .unwrap();
    assert_eq!(send(&d, fetch_site).await.0, StatusCode::FORBIDDEN);
    // A form post (no preflight) cannot send JSON.
    let form = Request::post("/api/start")
        .header(header::HOST, "127.0.0.1:8089")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from("users=5"))
        .unwrap();
    assert_eq!(send(&d, form).await.0, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    // Control endpoints are POST only.
    assert_eq!(
        send(&d, get("/api/stop")).await.0,
        StatusCode::METHOD_NOT_ALLOWED
    );
    // Same origin is fine: the start request reaches the command.
    let same = post("/api/start")
        .header(header::ORIGIN, "http://127.0.0.1:8089")
        .header("sec-fetch-site", "same-origin")
        .body(Body::from(r#"{"users": 3, "run_time": "10s"}"#))
        .unwrap();
    let (s, body) = send(&d, same).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{body}");
    let req = tokio::time::timeout(Duration::from_secs(5), d.next_start())
        .await
        .unwrap();
    assert_eq!(req.users, Some(3));
    assert_eq!(req.run_time.as_deref(), Some("10s"));
    // A second start while the first is pending is refused.
    let again = post("/api/start").body(Body::from("{}")).unwrap();
    assert_eq!(send(&d, again).await.0, StatusCode::CONFLICT);
    // Bad values are refused before reaching the run.
    d.start_failed("x".into());
    let bad = post("/api/start")
        .body(Body::from(r#"{"users": 0}"#))
        .unwrap();
    assert_eq!(send(&d, bad).await.0, StatusCode::BAD_REQUEST);
    let bad = post("/api/start")
        .body(Body::from(r#"{"run_time": "soon"}"#))
        .unwrap();
    assert_eq!(send(&d, bad).await.0, StatusCode::BAD_REQUEST);
    let unknown = post("/api/start")
        .body(Body::from(r#"{"userz": 3}"#))
        .unwrap();
    assert_eq!(send(&d, unknown).await.0, StatusCode::BAD_REQUEST);
}

fn sample_stats() -> RunStats {
    let mut s = RunStats::new(0);
    for i in 0..20 {
        s.record_success("GET", "/items", i * 50_000_000, 1_500, 100);
    }
    s.record_failure(
        "POST",
        "/cart",
        900_000_000,
        None,
        FailureKind::Status,
        "status 500",
    );
    s.finish(1_000_000_000);
    s
}

#[tokio::test]
async fn sse_stream_sends_history_then_updates() {
    let d = dashboard(&loopback());
    let control = RunControl::new();
    d.run_started(control.clone(), None, ReportInfo::default());
    let mut tracker = Tracker::new();
    let mut inner = Quiet;
    let mut watch = Watch::new(&mut inner, &mut tracker, Some(d.clone()));
    let progress = Progress {
        elapsed: Duration::from_secs(1),
        users: 4,
        target_users: 4,
        ..Progress::default()
    };
    watch.tick(&sample_stats(), &progress);

    let resp = server::router(d.clone())
        .oneshot(get("/api/events"))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()[header::CONTENT_TYPE], "text/event-stream");
    let mut body = resp.into_body();
    let mut text = String::new();
    while !text.contains("event: update") || !text.ends_with("\n\n") {
        let frame = tokio::time::timeout(Duration::from_secs(5), body.frame())
            .await
            .expect("an SSE frame within 5s")
            .unwrap()
            .unwrap();
        if let Ok(data) = frame.into_data() {
            text.push_str(&String::from_utf8_lossy(&data));
        }
    }
    let events: Vec<(&str, Value)> = text
        .split("\n\n")
        .filter(|e| !e.is_empty())
        .map(|e| {
            let name = e.lines().find_map(|l| l.strip_prefix("event: ")).unwrap();
            let data = e.lines().find_map(|l| l.strip_prefix("data: ")).unwrap();
            (name, serde_json::from_str(data).unwrap())
        })
        .collect();
    assert_eq!(events[0].0, "history");
    assert_eq!(events[0].1["points"][0]["users"], 4);
    let (name, u) = &events[1];
    assert_eq!(*name, "update");
    assert_eq!(u["phase"], "running");
    assert_eq!(u["run"], 1);
    assert_eq!(u["stats"]["total"]["requests"], 21);
    assert_eq!(u["stats"]["total"]["failures"], 1);
    assert_eq!(u["stats"]["users"], 4);
    let endpoints = u["stats"]["endpoints"].as_array().unwrap();
    assert_eq!(endpoints.len(), 2);
    for key in [
        "method", "name", "requests", "failures", "rps", "fps", "p50", "p90", "p95", "p99", "max",
        "avg",
    ] {
        assert!(endpoints[0].get(key).is_some(), "{key} in {}", endpoints[0]);
    }
    assert_eq!(u["stats"]["failures"][0]["message"], "status 500");
    assert!(u["health"]["cores"].as_u64().unwrap() >= 1);
    assert!(u["point"]["t"].is_number());

    // Control requests reach the run's handle.
    let stop = post("/api/stop").body(Body::from("{}")).unwrap();
    assert_eq!(send(&d, stop).await.0, StatusCode::OK);
    assert!(control.stop_requested());
}

struct Quiet;
impl Observer for Quiet {
    fn tick(&mut self, _: &RunStats, _: &Progress) {}
}

#[tokio::test]
async fn downloads_use_the_report_writers() {
    let d = dashboard(&loopback());
    let (s, _) = send(&d, get("/download/mynah_stats.csv")).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "no run yet");
    d.run_started(
        RunControl::new(),
        None,
        ReportInfo {
            meta: ReportMeta {
                title: "mynah run: shop".into(),
                ..ReportMeta::default()
            },
            thresholds: vec![Threshold::parse("fail_rate < 1%").unwrap()],
            ..ReportInfo::default()
        },
    );
    // While the run goes on, a download waits for the next tick.
    let pending = {
        let d = d.clone();
        tokio::spawn(async move { send(&d, get("/download/summary.json")).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut tracker = Tracker::new();
    let mut inner = Quiet;
    Watch::new(&mut inner, &mut tracker, Some(d.clone()))
        .tick(&sample_stats(), &Progress::default());
    let (s, summary) = pending.await.unwrap();
    assert_eq!(s, StatusCode::OK);
    let v: Value = serde_json::from_str(&summary).unwrap();
    assert_eq!(v["thresholds"][0]["passed"], false);

    d.run_finished(sample_stats(), 4, &tracker, None);
    let resp = server::router(d.clone())
        .oneshot(get("/download/mynah_stats.csv"))
        .await
        .unwrap();
    assert_eq!(
        resp.headers()[header::CONTENT_DISPOSITION],
        "attachment; filename=\"mynah_stats.csv\""
    );
    let csv = String::from_utf8(
        resp.into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap();
    assert!(
        csv.starts_with("Type,Name,Request Count,Failure Count"),
        "{csv}"
    );
    assert!(csv.contains("GET,/items,20,0"), "{csv}");
    assert!(csv.contains(",Aggregated,21,1"), "{csv}");
    let (_, failures) = send(&d, get("/download/mynah_failures.csv")).await;
    assert!(failures.contains("status 500"), "{failures}");
    let (_, summary) = send(&d, get("/download/summary.json")).await;
    let v: Value = serde_json::from_str(&summary).unwrap();
    assert_eq!(v["generator"]["saturated"], false);
    let (_, html) = send(&d, get("/download/report.html")).await;
    assert!(html.contains("mynah run: shop"));
    assert_eq!(
        send(&d, get("/download/secrets.txt")).await.0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn replay_pages_watch_only() {
    let d = Dashboard::new(setup(Mode::Replay), &loopback()).unwrap();
    let start = post("/api/start").body(Body::from("{}")).unwrap();
    let (s, body) = send(&d, start).await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert!(body.contains("command line"), "{body}");
    d.run_started(RunControl::new(), None, ReportInfo::default());
    let users = post("/api/users")
        .body(Body::from(r#"{"users": 3}"#))
        .unwrap();
    assert_eq!(send(&d, users).await.0, StatusCode::CONFLICT);
}

#[tokio::test]
async fn serves_on_a_real_loopback_port() {
    let (d, addr) = Dashboard::serve(setup(Mode::Run), &loopback())
        .await
        .unwrap();
    assert!(addr.ip().is_loopback() && addr.port() != 0);
    assert_eq!(
        Dashboard::url(addr, None),
        format!("http://127.0.0.1:{}/", addr.port())
    );
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    s.write_all(b"GET /api/setup HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(out.contains("\"title\":\"shop\""), "{out}");
    drop(d);
}

#[tokio::test]
async fn a_saturated_generator_is_named_in_the_reports() {
    let d = dashboard(&loopback());
    d.run_started(RunControl::new(), None, ReportInfo::default());
    let mut tracker = Tracker::new();
    for s in 1..=5 {
        tracker.schedule_lag(Duration::from_millis(500));
        tracker.sample(Duration::from_secs(s));
    }
    d.run_finished(sample_stats(), 1, &tracker, None);
    let (_, summary) = send(&d, get("/download/summary.json")).await;
    let v: Value = serde_json::from_str(&summary).unwrap();
    assert_eq!(v["generator"]["saturated"], true);
    assert_eq!(v["generator"]["saturated_seconds"], 3);
    let (_, html) = send(&d, get("/download/report.html")).await;
    assert!(html.contains("the load generator was saturated"), "{html}");
}

#[tokio::test]
async fn a_replay_download_has_the_replay_section_and_warnings() {
    let d = dashboard(&loopback());
    d.run_started(
        RunControl::new(),
        None,
        ReportInfo {
            summary: [("kind".to_string(), json!("replay"))]
                .into_iter()
                .collect(),
            ..ReportInfo::default()
        },
    );
    d.add_to_reports(
        [("replay".to_string(), json!({"sent": 7, "dropped": 3}))]
            .into_iter()
            .collect(),
        ["3 requests could not be sent on schedule (dropped)".to_string()],
    );
    d.run_finished(sample_stats(), 1, &Tracker::new(), None);
    let (_, summary) = send(&d, get("/download/summary.json")).await;
    let v: Value = serde_json::from_str(&summary).unwrap();
    assert_eq!(v["kind"], "replay");
    assert_eq!(v["replay"]["sent"], 7);
    assert!(v["total"].is_object(), "{v}");
    let (_, html) = send(&d, get("/download/report.html")).await;
    assert!(html.contains("could not be sent on schedule"), "{html}");
    // The next run starts without them.
    d.run_started(RunControl::new(), None, ReportInfo::default());
    d.run_finished(sample_stats(), 1, &Tracker::new(), None);
    let (_, summary) = send(&d, get("/download/summary.json")).await;
    let v: Value = serde_json::from_str(&summary).unwrap();
    assert!(v.get("replay").is_none(), "{v}");
}
