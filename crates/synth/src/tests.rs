//! Unit tests of the model and the writers on synthetic traffic.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Instant;

use mynah_traffic::{Exchange, Headers, Request, Response, Timing};
use proptest::prelude::*;

use crate::{learn, SessionKey, SynthOptions, TemplateLearner, WorkloadBuilder, WriteOptions};

const MS: i64 = 1_000_000;

fn ex(method: &str, target: &str, ts: i64, headers: &[(&str, &str)]) -> Exchange {
    let mut h = Headers::new();
    for (k, v) in headers {
        h.push(*k, v.as_bytes().to_vec());
    }
    let mut x = Exchange::new(
        Request {
            method: method.into(),
            target: target.into(),
            headers: h,
            ..Default::default()
        },
        ts,
    );
    x.timing = Timing {
        request_start: ts,
        request_end: None,
        response_start: Some(ts + 5 * MS),
        response_end: Some(ts + 10 * MS),
    };
    x.response = Some(Response {
        status: 200,
        ..Default::default()
    });
    x
}

fn with_response(mut x: Exchange, headers: &[(&str, &str)], body: &str) -> Exchange {
    let mut h = Headers::new();
    for (k, v) in headers {
        h.push(*k, v.as_bytes().to_vec());
    }
    x.response = Some(Response {
        status: 200,
        headers: h,
        body: body.as_bytes().to_vec(),
        ..Default::default()
    });
    x
}

fn with_body(mut x: Exchange, ctype: &str, body: &str) -> Exchange {
    x.request
        .headers
        .push("Content-Type", ctype.as_bytes().to_vec());
    x.request.body = body.as_bytes().to_vec();
    x
}

fn addr(i: u32) -> SocketAddr {
    SocketAddr::from(([10, (i >> 16) as u8, (i >> 8) as u8, i as u8], 40000))
}

fn parse(yaml: &str) {
    if let Err(e) = mynah_scenario::parse(yaml, Path::new("t.yaml")) {
        panic!("{e}\n{yaml}");
    }
}

/// Anonymous browsers read articles; API clients log in (token) and post JSON to the cart.
fn corpus() -> Vec<Exchange> {
    let mut v = Vec::new();
    let mut t = 0i64;
    for s in 0..20u32 {
        let ua = "Mozilla/5.0 (X11) Firefox/131.0";
        for k in 0..5u32 {
            t += 200 * MS;
            let mut x = ex(
                "GET",
                &format!("/articles/{}?ref=home", 10 + (s * 7 + k) % 13),
                t,
                &[("User-Agent", ua)],
            );
            x.connection.client = Some(addr(s));
            v.push(x);
        }
    }
    for s in 0..10u32 {
        t += 100 * MS;
        let token = format!("mask-{:016x}", 0xabc0 + u64::from(s));
        let mut login = with_response(
            with_body(
                ex(
                    "POST",
                    "/api/login",
                    t,
                    &[("User-Agent", "python-requests/2.31")],
                ),
                "application/json",
                &format!(
                    "{{\"username\": \"user{s}\", \"password\": \"mask-{:016x}\"}}",
                    s
                ),
            ),
            &[("Content-Type", "application/json")],
            &format!("{{\"access_token\": \"{token}\"}}"),
        );
        login.connection.client = Some(addr(100 + s));
        v.push(login);
        for k in 0..4u32 {
            t += 150 * MS;
            let mut x = with_body(
                ex(
                    "POST",
                    "/api/cart",
                    t,
                    &[
                        ("User-Agent", "python-requests/2.31"),
                        ("Authorization", &format!("Bearer {token}")),
                    ],
                ),
                "application/json",
                &format!("{{\"item\": {}, \"note\": \"n{}\"}}", k + 1, s),
            );
            x.connection.client = Some(addr(100 + s));
            v.push(x);
        }
    }
    v.sort_by_key(|x| x.timing.request_start);
    v
}

#[test]
fn classes_logins_and_bodies() {
    let w = learn(&corpus(), &SynthOptions::default());
    let names: Vec<&str> = w.classes().iter().map(|c| c.name.as_str()).collect();
    assert!(names.contains(&"anonymous"), "{names:?}");
    assert!(names.contains(&"authenticated"), "{names:?}");
    let auth = w
        .classes()
        .iter()
        .find(|c| c.authenticated)
        .expect("authenticated class");
    assert_eq!(auth.sessions, 10);
    assert!(matches!(&auth.login, Some((_, crate::LoginKind::Token(f))) if f == "access_token"));
    let anon = w
        .classes()
        .iter()
        .find(|c| !c.authenticated)
        .expect("anonymous");
    assert_eq!(anon.sessions, 20);
    assert!((anon.share - 2.0 / 3.0).abs() < 1e-9);
    // Think time: 200 ms between request starts, 10 ms of response: 190 ms gaps.
    assert!(anon.think_times.iter().all(|g| (g - 0.19).abs() < 1e-6));

    let opts = WriteOptions {
        host: Some("http://localhost:8080".into()),
        data_dir: "data".into(),
    };
    let yaml = w.scenario_yaml(&opts);
    parse(&yaml);
    assert!(
        yaml.contains("extract: { token: { json: \"$.access_token\" } }"),
        "{yaml}"
    );
    assert!(
        yaml.contains("\"Authorization\": \"Bearer {{ token }}\""),
        "{yaml}"
    );
    assert!(yaml.contains("{{ accounts.user }}") && yaml.contains("{{ accounts.password }}"));
    assert!(yaml.contains("wait_time: { constant: 0.19 }"), "{yaml}");
    // JSON numbers stay numbers: the body is a text template with the value unquoted.
    assert!(yaml.contains("{\\\"item\\\":{{ api_cart.item }}"), "{yaml}");
    let files = w.data_files();
    let accounts = files
        .iter()
        .find(|(n, _)| n == "accounts.csv")
        .expect("accounts.csv");
    assert!(accounts.1.starts_with("user,password\n"));
    assert!(accounts.1.contains("user3,mask-"));
    let locust = w.locustfile(&opts);
    assert!(locust.contains("self.token = str(response.json().get(\"access_token\", \"\"))"));
    assert!(locust.contains("wait_time = constant(0.19)"), "{locust}");
    assert!(!locust.contains("between"), "unused import: {locust}");
    let summary = w.summary();
    assert!(
        summary.contains("GET /articles/{article_id}?ref=home"),
        "{summary}"
    );
}

#[test]
fn a_visitor_cookie_from_a_page_view_is_a_session_not_a_login() {
    // Every visitor gets `vsid` on its first page view; some then sign in with a POST that sets
    // `session`. Only the sign-in is a login, and the visitors who never sign in stay anonymous.
    let mut v = Vec::new();
    let mut t = 0;
    for s in 0..8 {
        let vsid = format!("mask-v{s:015x}");
        let ua = [("User-Agent", "curl/8")];
        t += 100 * MS;
        v.push(with_response(
            ex("GET", "/", t, &ua),
            &[("Set-Cookie", &format!("vsid={vsid}; Path=/"))],
            "",
        ));
        let mut cookie = format!("vsid={vsid}");
        if s % 2 == 0 {
            t += 100 * MS;
            v.push(with_response(
                with_body(
                    ex(
                        "POST",
                        "/login",
                        t,
                        &[("User-Agent", "curl/8"), ("Cookie", &cookie)],
                    ),
                    "application/json",
                    &format!("{{\"user\":\"u{s}\"}}"),
                ),
                &[("Set-Cookie", &format!("session=mask-s{s:015x}; Path=/"))],
                "",
            ));
            cookie = format!("{cookie}; session=mask-s{s:015x}");
        }
        for k in 0..3 {
            t += 100 * MS;
            v.push(ex(
                "GET",
                &format!("/articles/{}", 10 + k),
                t,
                &[("User-Agent", "curl/8"), ("Cookie", &cookie)],
            ));
        }
    }
    let w = learn(&v, &SynthOptions::default());
    let auth = w
        .classes()
        .iter()
        .find(|c| c.authenticated)
        .expect("auth class");
    assert!(
        matches!(&auth.login, Some((_, crate::LoginKind::Cookie(n))) if n == "session"),
        "{:?}",
        auth.login
    );
    assert_eq!(auth.sessions, 4);
    let anon: u64 = w
        .classes()
        .iter()
        .filter(|c| !c.authenticated)
        .map(|c| c.sessions)
        .sum();
    assert_eq!(anon, 4, "visitors who never signed in");
}

#[test]
fn a_logout_that_ends_sessions_is_on_stop_not_a_task() {
    let mut v = Vec::new();
    let mut t = 0;
    for s in 0..6 {
        let cookie = format!("session=mask-{s:016x}");
        t += 100 * MS;
        v.push(with_response(
            with_body(
                ex("POST", "/login", t, &[("User-Agent", "curl/8")]),
                "application/json",
                &format!("{{\"user\":\"u{s}\"}}"),
            ),
            &[("Set-Cookie", &format!("{cookie}; Path=/"))],
            "",
        ));
        for k in 0..3 {
            t += 100 * MS;
            let h = [("User-Agent", "curl/8"), ("Cookie", cookie.as_str())];
            v.push(ex("GET", &format!("/orders/{}", 1000 + k), t, &h));
        }
        t += 100 * MS;
        let h = [("User-Agent", "curl/8"), ("Cookie", cookie.as_str())];
        v.push(ex("POST", "/logout", t, &h));
    }
    let w = learn(&v, &SynthOptions::default());
    let auth = w
        .classes()
        .iter()
        .find(|c| c.authenticated)
        .expect("auth class");
    assert!(auth.logout.is_some(), "{auth:?}");
    assert_eq!(auth.requests, 18, "login and logout are not tasks");
    let yaml = w.scenario_yaml(&WriteOptions::default());
    parse(&yaml);
    let on_stop = yaml.find("on_stop:").expect("on_stop in the scenario");
    let tasks = yaml[on_stop..].find("tasks:").expect("tasks after on_stop");
    assert!(yaml[on_stop..on_stop + tasks].contains("/logout"), "{yaml}");
    assert!(!yaml[on_stop + tasks..].contains("/logout"), "{yaml}");
}

#[test]
fn cookie_login_and_session_keys() {
    // No client addresses: sessions come from the session cookie the login response sets.
    let mut v = Vec::new();
    let mut t = 0;
    for s in 0..6 {
        t += 100 * MS;
        v.push(ex("GET", "/", t, &[("User-Agent", "curl/8")]));
        t += 100 * MS;
        let cookie = format!("mask-{s:016x}");
        v.push(with_response(
            with_body(
                ex("POST", "/login", t, &[("User-Agent", "curl/8")]),
                "application/x-www-form-urlencoded",
                &format!("user=u{s}&password=mask-{s:016x}"),
            ),
            &[("Set-Cookie", &format!("sessionid={cookie}; Path=/"))],
            "",
        ));
        for k in 0..3 {
            t += 100 * MS;
            v.push(ex(
                "GET",
                &format!("/orders/{}", 1000 + k),
                t,
                &[
                    ("User-Agent", "curl/8"),
                    ("Cookie", &format!("sessionid={cookie}")),
                ],
            ));
        }
    }
    let w = learn(&v, &SynthOptions::default());
    let auth = w
        .classes()
        .iter()
        .find(|c| c.authenticated)
        .expect("auth class");
    assert_eq!(auth.sessions, 6);
    assert!(matches!(&auth.login, Some((_, crate::LoginKind::Cookie(n))) if n == "sessionid"));
    let yaml = w.scenario_yaml(&WriteOptions::default());
    parse(&yaml);
    assert!(yaml.contains("form:"), "{yaml}");
    assert!(
        !yaml.contains("extract"),
        "a cookie login needs no extraction: {yaml}"
    );
    // Explicit keys parse; bad ones are refused.
    assert_eq!(
        SessionKey::parse("cookie:sid"),
        Ok(SessionKey::Cookie("sid".into()))
    );
    assert_eq!(
        SessionKey::parse("header:X-User"),
        Ok(SessionKey::Header("X-User".into()))
    );
    assert_eq!(SessionKey::parse("client-ip"), Ok(SessionKey::ClientIp));
    assert!(SessionKey::parse("cookie:").is_err());
    assert!(SessionKey::parse("nope").is_err());
    // Keyed by header: each X-User value is a session.
    let opts = SynthOptions {
        session_key: SessionKey::Header("X-User".into()),
        ..Default::default()
    };
    let v: Vec<Exchange> = (0..30)
        .map(|i| ex("GET", "/a", i * MS, &[("X-User", &format!("u{}", i % 3))]))
        .collect();
    assert_eq!(learn(&v, &opts).sessions(), 3);
}

#[test]
fn idle_gap_closes_sessions_and_rare_endpoints_are_kept() {
    let mut v = Vec::new();
    for i in 0..2000i64 {
        let mut x = ex("GET", &format!("/items/{i}"), i * 60_000 * MS, &[]);
        x.connection.client = Some(addr(1));
        v.push(x);
    }
    let mut rare = ex("DELETE", "/admin/reset?all=1", 2001 * 60_000 * MS, &[]);
    rare.connection.client = Some(addr(1));
    v.push(rare);
    let w = learn(
        &v,
        &SynthOptions {
            idle_gap: 30 * 1_000 * MS,
            ..Default::default()
        },
    );
    // One minute between requests, 30 s idle gap: every request is its own session.
    assert_eq!(w.sessions(), 2001);
    let yaml = w.scenario_yaml(&WriteOptions::default());
    parse(&yaml);
    assert!(yaml.contains("DELETE (other)"), "{yaml}");
    assert!(yaml.contains("{{ other_delete.target }}"), "{yaml}");
    let files = w.data_files();
    let other = files
        .iter()
        .find(|(n, _)| n == "other_delete.csv")
        .expect("catch-all examples");
    assert_eq!(other.1, "target\n/admin/reset?all=1\n");
}

#[test]
fn scale_is_bounded() {
    let n = 200_000u32;
    let make = |i: u32| {
        let s = i % 5_000;
        let path = match i % 7 {
            0 => format!("/users/{}", i % 50_000),
            1 => format!("/search?q=term{}&page={}", i % 3_000, i % 5),
            2 => format!("/tags/t{}x", i % 900),
            3 => format!("/files/{:016x}", u64::from(i) * 7919),
            4 => "/".to_string(),
            5 => format!("/a/b{}/c/d/{}", i % 80, i),
            _ => format!("/articles/{}/comments", i % 20_000),
        };
        let mut x = with_body(
            ex(
                if i.is_multiple_of(11) { "POST" } else { "GET" },
                &path,
                i64::from(i) * 5 * MS,
                &[(
                    "User-Agent",
                    if s.is_multiple_of(3) {
                        "curl/8"
                    } else {
                        "Mozilla/5.0"
                    },
                )],
            ),
            "application/json",
            &format!("{{\"v\": {i}, \"s\": \"x{}\"}}", i % 4_000),
        );
        x.connection.client = Some(addr(s));
        x
    };
    let start = Instant::now();
    let mut l = TemplateLearner::new();
    for i in 0..n {
        l.add(&make(i).request);
    }
    let t = l.finish(0.001);
    let mut b = WorkloadBuilder::new(
        t,
        SynthOptions {
            max_open_sessions: 1_000,
            ..Default::default()
        },
    );
    let mut max_open = 0;
    let mut max_values = 0;
    for i in 0..n {
        b.add(&make(i));
        if i % 10_000 == 0 {
            max_open = max_open.max(b.open_sessions());
            max_values = max_values.max(b.stored_values());
        }
    }
    max_open = max_open.max(b.open_sessions());
    max_values = max_values.max(b.stored_values());
    let w = b.finish();
    println!(
        "200,000 exchanges: {:?}, {} endpoints, {} classes, max open sessions {max_open}, max stored values {max_values}",
        start.elapsed(),
        w.templates().endpoints().len(),
        w.classes().len()
    );
    assert!(max_open <= 1_000);
    let endpoints = w.templates().endpoints().len();
    assert!(endpoints < 100, "{endpoints} endpoints");
    // Rows per endpoint, reservoirs per class, buffered events per open session.
    let bound = endpoints * crate::MAX_ROWS
        + w.classes().len() * (2 * crate::RESERVOIR + crate::MAX_TRANSITIONS)
        + 1_000 * crate::MAX_EVENTS
        + crate::MAX_ROWS;
    assert!(max_values <= bound, "{max_values} > {bound}");
    for d in w.endpoint_data() {
        assert!(d.rows.len() <= crate::MAX_ROWS);
    }
    for c in w.classes() {
        assert!(c.think_times.len() <= crate::RESERVOIR);
        assert!(c.session_lengths.len() <= crate::RESERVOIR);
    }
    let yaml = w.scenario_yaml(&WriteOptions::default());
    parse(&yaml);
    for (_, csv) in w.data_files() {
        assert!(csv.lines().count() <= crate::MAX_CSV_ROWS + 1);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn never_panics(
        reqs in proptest::collection::vec(
            (
                "[A-Za-z]{0,7}",
                "(/|http://h/|\\*|)[-a-zA-Z0-9_./%?&=+{}~ ]{0,40}",
                proptest::collection::vec(("[A-Za-z-]{1,12}", "[ -~]{0,40}"), 0..4),
                "[ -~]{0,60}",
                0i64..10_000_000_000,
            ),
            0..40,
        ),
        key in prop_oneof![
            Just(SessionKey::Auto),
            Just(SessionKey::ClientIp),
            Just(SessionKey::Cookie("sid".into())),
            Just(SessionKey::Header("Authorization".into())),
        ],
    ) {
        let mut xs = Vec::new();
        for (m, target, headers, body, ts) in &reqs {
            let hs: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let x = with_response(
                with_body(ex(m, target, *ts, &hs), "application/json", body),
                &[("Set-Cookie", "sid=abc; Path=/")],
                body,
            );
            xs.push(x);
        }
        let w = learn(&xs, &SynthOptions { session_key: key, min_share: 0.05, ..Default::default() });
        let opts = WriteOptions { host: None, data_dir: String::new() };
        let yaml = w.scenario_yaml(&opts);
        let _ = w.data_files();
        let _ = w.locustfile(&opts);
        let _ = w.summary();
        if w.has_tasks() {
            if let Err(e) = mynah_scenario::parse(&yaml, Path::new("p.yaml")) {
                prop_assert!(false, "{e}\n{yaml}");
            }
        }
    }
}

/// Recorded text with quotes, backslashes, braces, control characters and non-ASCII must give
/// a scenario mynah accepts and a Locust file Python compiles.
#[test]
fn odd_text_stays_valid() {
    let mut v = Vec::new();
    let targets = [
        "/a\"b/1?q=%7B%7Bx%7D%7D&z=%00%22'\\",
        "/caf%C3%A9/2?name=\u{e9}t\u{e9}",
        "/{{x}}/3?q={{y}}",
        "/p'q/4?a=1&a=2",
        "/p'q/5?a=3",
    ];
    for (i, t) in targets.iter().cycle().take(40).enumerate() {
        let mut x = with_body(
            ex(
                "POST",
                t,
                i as i64 * 100 * MS,
                &[("User-Agent", "Mozilla\"\\/\u{1}")],
            ),
            "application/json",
            "{\"k\\\"ey\": \"v{{a}}\\\\\", \"n\": [1, {\"deep\": true}], \"nul\": null}",
        );
        x.connection.client = Some(addr(i as u32 % 3));
        v.push(x);
    }
    let w = learn(&v, &SynthOptions::default());
    let opts = WriteOptions {
        host: Some("http://h\"x".into()),
        data_dir: "d a\"ta".into(),
    };
    let yaml = w.scenario_yaml(&opts);
    parse(&yaml);
    let locust = w.locustfile(&opts);
    assert!(!w.data_files().is_empty());
    let dir = std::env::temp_dir().join(format!("mynah-synth-odd-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("locustfile.py");
    std::fs::write(&file, &locust).expect("write");
    match std::process::Command::new("python3")
        .args(["-m", "py_compile"])
        .arg(&file)
        .output()
    {
        Ok(out) => assert!(
            out.status.success(),
            "{}\n{locust}",
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => println!("note: python3 not available ({e}); locustfile not compiled"),
    }
    let _ = std::fs::remove_dir_all(&dir);
}
