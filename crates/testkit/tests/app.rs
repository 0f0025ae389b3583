mod common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use common::*;
use mynah_testkit::app::{self, AppConfig, ACCURACY_CYCLE, ACCURACY_TRUTH_MS};

fn start() -> app::AppHandle {
    app::start(AppConfig::default()).expect("start app")
}

#[test]
fn simple_routes() {
    let app = start();
    assert!(app.url().starts_with("http://127.0.0.1:"));
    let r = get(app.addr, "/");
    assert_eq!((r.status, r.text().trim()), (200, "home"));
    let r = get(app.addr, "/articles/42");
    assert_eq!((r.status, r.text().trim()), (200, "article 42"));
    let r = get(app.addr, "/search?q=red%20shoes&page=2");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let j = r.json();
    assert_eq!(j["query"], "red shoes");
    assert_eq!(j["results"].as_array().unwrap().len(), 3);
    assert_eq!(get(app.addr, "/status/503").status, 503);
    assert_eq!(get(app.addr, "/status/204").status, 204);
    assert_eq!(get(app.addr, "/status/nope").status, 400);
    assert_eq!(get(app.addr, "/status/99").status, 400);
    assert_eq!(get(app.addr, "/nothing/here").status, 404);
    assert_eq!(get(app.addr, "/articles/").status, 404);
    assert_eq!(post(app.addr, "/", "{}").status, 404);
    assert_eq!(get(app.addr, "/delay/abc").status, 400);

    let s = app.stats();
    assert_eq!(s.route("home"), 1);
    assert_eq!(s.route("article"), 1);
    assert_eq!(s.route("search"), 1);
    assert_eq!(s.route("status"), 4);
    assert_eq!(s.route("not_found"), 3);
    assert_eq!(s.route("delay"), 1);
    assert_eq!(s.total, 11);
    assert_eq!(s.unauthorized, 0);
    assert_eq!(s.statuses.get(&404), Some(&3));
}

#[test]
fn keep_alive_serves_many_requests_on_one_connection() {
    let app = start();
    let mut c = Conn::new(app.addr);
    for i in 0..20 {
        let r = c.send("GET", &format!("/articles/{i}"), &[], b"").unwrap();
        assert_eq!(r.text().trim(), format!("article {i}"));
    }
    let r = c.send("HEAD", "/", &[], b"").unwrap();
    assert_eq!(r.status, 200);
    let r = c.send("GET", "/", &[], b"").unwrap();
    assert_eq!(r.text().trim(), "home");
    assert_eq!(app.stats().total, 22);
}

#[test]
fn login_token_opens_private_routes() {
    let app = start();
    let r = post(app.addr, "/login", r#"{"user":"user7","password":"pass7"}"#);
    assert_eq!(r.status, 200);
    let cookie = r.header("set-cookie").expect("set-cookie").to_owned();
    assert!(
        cookie.starts_with("session=") && cookie.ends_with("; Path=/"),
        "{cookie}"
    );
    let token = r.json()["token"].as_str().unwrap().to_owned();
    assert!(token.len() >= 32 && token.bytes().all(|b| b.is_ascii_hexdigit()));

    let auth = format!("Bearer {token}");
    for path in ["/private", "/api/me"] {
        let r = get_with(app.addr, path, &[("Authorization", &auth)]);
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.json()["user"], "user7");
    }

    // Another login gives another token; both work.
    let r2 = post(
        app.addr,
        "/login",
        r#"{"user":"user100","password":"pass100"}"#,
    );
    let token2 = r2.json()["token"].as_str().unwrap().to_owned();
    assert_ne!(token, token2);
    let r = get_with(
        app.addr,
        "/private",
        &[("Authorization", &format!("Bearer {token2}"))],
    );
    assert_eq!(r.json()["user"], "user100");

    // Refusals.
    assert_eq!(get(app.addr, "/private").status, 401);
    assert_eq!(
        get_with(app.addr, "/private", &[("Authorization", "Bearer 0123")]).status,
        401
    );
    let mut forged = token.clone();
    forged.replace_range(0..1, if forged.starts_with('a') { "b" } else { "a" });
    assert_eq!(
        get_with(
            app.addr,
            "/api/me",
            &[("Authorization", &format!("Bearer {forged}"))]
        )
        .status,
        401
    );
    assert_eq!(
        get_with(app.addr, "/private", &[("Authorization", &token)]).status,
        401
    );
    assert_eq!(
        post(app.addr, "/login", r#"{"user":"user7","password":"x"}"#).status,
        401
    );
    assert_eq!(
        post(
            app.addr,
            "/login",
            r#"{"user":"nobody","password":"pass7"}"#
        )
        .status,
        401
    );
    assert_eq!(post(app.addr, "/login", r#"{"user":"user7"}"#).status, 401);
    assert_eq!(post(app.addr, "/login", "not json").status, 400);

    // A token from another App is refused.
    let other = start();
    assert_eq!(
        get_with(other.addr, "/private", &[("Authorization", &auth)]).status,
        401
    );

    let s = app.stats();
    assert_eq!(s.route("login"), 6);
    assert_eq!(s.unauthorized, 4 + 3);
}

#[test]
fn custom_accounts() {
    let app = app::start(AppConfig {
        accounts: vec![("alice".into(), "secret".into())],
        ..Default::default()
    })
    .unwrap();
    assert_eq!(
        post(
            app.addr,
            "/login",
            r#"{"user":"alice","password":"secret"}"#
        )
        .status,
        200
    );
    assert_eq!(
        post(app.addr, "/login", r#"{"user":"user1","password":"pass1"}"#).status,
        401
    );
}

#[test]
fn cart_echoes_json() {
    let app = start();
    let body = r#"{"item":"sku-1","qty":3,"tags":["a","b"]}"#;
    let r = post(app.addr, "/api/cart", body);
    assert_eq!(r.status, 201);
    let expected: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(r.json()["received"], expected);
    assert_eq!(post(app.addr, "/api/cart", "{oops").status, 400);
    assert_eq!(app.stats().route("cart"), 2);
}

#[test]
fn oversized_body_is_refused() {
    let app = start();
    let mut s = connect(app.addr);
    let len = 16 * 1024 * 1024 + 1024;
    write!(
        s,
        "POST /api/cart HTTP/1.1\r\nHost: t\r\nContent-Length: {len}\r\n\r\n"
    )
    .unwrap();
    let mut w = s.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        let chunk = vec![b' '; 64 * 1024];
        let mut sent = 0;
        while sent < len {
            if w.write_all(&chunk).is_err() {
                break;
            }
            sent += chunk.len();
        }
    });
    let r = read_response(&mut std::io::BufReader::new(s), false).expect("response");
    assert_eq!(r.status, 413);
    writer.join().unwrap();
}

#[test]
fn delay_sleeps_at_least_the_delay() {
    let app = start();
    let t = Instant::now();
    let r = get(app.addr, "/delay/120");
    assert_eq!(r.status, 200);
    assert!(
        t.elapsed() >= Duration::from_millis(120),
        "{:?}",
        t.elapsed()
    );
    let server_us: u64 = r.header("x-server-time-us").unwrap().parse().unwrap();
    assert!(server_us >= 120_000, "{server_us}");
}

#[test]
fn serial_route_processes_one_request_at_a_time() {
    let app = start();
    let addr = app.addr;
    let t0 = Instant::now();
    let threads: Vec<_> = (0..2)
        .map(|_| {
            std::thread::spawn(move || {
                let r = get(addr, "/serial/100");
                assert_eq!(r.status, 200);
                t0.elapsed()
            })
        })
        .collect();
    let mut done: Vec<Duration> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    done.sort();
    assert!(done[0] >= Duration::from_millis(100), "{done:?}");
    assert!(done[1] >= Duration::from_millis(200), "{done:?}");

    // /delay is not serialised: compare by lower bounds only on /serial.
    assert_eq!(app.stats().route("serial"), 2);
}

#[test]
fn accuracy_route_follows_the_documented_cycle() {
    let app = start();
    let addr = app.addr;
    // 200 requests over 20 keep-alive connections.
    let threads: Vec<_> = (0..20)
        .map(|_| {
            std::thread::spawn(move || {
                let mut c = Conn::new(addr);
                (0..10)
                    .map(|_| {
                        let t = Instant::now();
                        let r = c.send("GET", "/accuracy", &[], b"").unwrap();
                        assert_eq!(r.status, 200);
                        let ms: u64 = r.header("x-delay-ms").unwrap().parse().unwrap();
                        let us: u64 = r.header("x-server-time-us").unwrap().parse().unwrap();
                        (ms, t.elapsed(), us)
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut all: Vec<(u64, Duration, u64)> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    assert_eq!(all.len(), 200);
    for (ms, took, server_us) in &all {
        assert!(*took >= Duration::from_millis(*ms), "{ms} ms took {took:?}");
        assert!(
            *server_us >= ms * 1000,
            "{ms} ms took {server_us} us server-side"
        );
    }
    for (count, ms) in ACCURACY_CYCLE {
        let n = all.iter().filter(|(d, _, _)| *d == ms).count() as u32;
        assert_eq!(n, count * 2, "{ms} ms");
    }
    all.sort_by_key(|a| a.0);
    for (p, ms) in ACCURACY_TRUTH_MS {
        let rank = (p / 100.0 * all.len() as f64).ceil() as usize;
        assert_eq!(all[rank - 1].0 as f64, ms, "p{p}");
    }
}

#[test]
fn malformed_requests_do_not_hurt_the_server() {
    let app = start();
    for junk in [
        &b"BLAH\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nHost: t\r\nContent-Length: nope\r\n\r\n",
        b"\x00\x01\x02\xff\xfe\r\n\r\n",
        b"GET /\xff\xfe HTTP/1.1\r\n\r\n",
        b"POST /login HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\n\xff\xfe\x00{[",
        b"GET /articles/%ff%fe HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    ] {
        let mut s = connect(app.addr);
        s.write_all(junk).unwrap();
        let _ = s.shutdown(std::net::Shutdown::Write);
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
    }
    assert_eq!(get(app.addr, "/").status, 200);
}

#[test]
fn h2c_prior_knowledge() {
    use http_body_util::{BodyExt, Empty};
    use hyper_util::rt::{TokioExecutor, TokioIo};

    let app = start();
    let addr = app.addr;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (mut send, conn) = hyper::client::conn::http2::handshake::<_, _, Empty<bytes::Bytes>>(
            TokioExecutor::new(),
            TokioIo::new(tcp),
        )
        .await
        .unwrap();
        tokio::spawn(conn);
        for path in ["/", "/articles/9"] {
            let req = http::Request::get(format!("http://{addr}{path}"))
                .body(Empty::new())
                .unwrap();
            let resp = tokio::time::timeout(Duration::from_secs(10), send.send_request(req))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(resp.status(), 200);
            assert_eq!(resp.version(), http::Version::HTTP_2);
            let body = resp.into_body().collect().await.unwrap().to_bytes();
            assert!(body.starts_with(b"home") || body.starts_with(b"article 9"));
        }
    });
    assert_eq!(app.stats().total, 2);
}

#[test]
fn shutdown_stops_the_server() {
    let app = start();
    let addr = app.addr;
    // A request in flight when the server stops must not hang the shutdown.
    let mut s = connect(addr);
    s.write_all(b"GET /delay/60000 HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    std::thread::sleep(Duration::from_millis(50));
    let t = Instant::now();
    app.shutdown();
    assert!(t.elapsed() < Duration::from_secs(5));
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out); // EOF or reset, but no answer
    assert!(out.is_empty());
    assert!(std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_err());
}
