mod common;

use std::time::Duration;

use common::*;
use mynah_testkit::nginx::{require_nginx, Nginx};

#[test]
fn default_locations_and_access_log() {
    if !require_nginx() {
        eprintln!("skipping: nginx is not installed: apt-get install nginx-light (CI installs it)");
        return;
    }
    let nginx = Nginx::start_default().expect("nginx");
    assert_eq!(nginx.url(), format!("http://127.0.0.1:{}", nginx.port()));
    let mut c = Conn::new(nginx.addr());
    for (path, status, body) in [
        ("/", 200, "ok\n"),
        ("/a", 200, "a\n"),
        ("/b", 200, "b\n"),
        ("/c", 200, "c\n"),
        ("/status/500", 500, "error\n"),
    ] {
        let r = c.send("GET", path, &[], b"").unwrap();
        assert_eq!((r.status, r.text().as_str()), (status, body), "{path}");
    }
    let r = c
        .send("GET", "/a?x=1", &[("Authorization", "Bearer abc")], b"")
        .unwrap();
    assert_eq!(r.status, 200);
    let lines = nginx.wait_for_access_log_lines(6, Duration::from_secs(5));
    assert_eq!(
        lines,
        [
            "GET / 200 -",
            "GET /a 200 -",
            "GET /b 200 -",
            "GET /c 200 -",
            "GET /status/500 500 -",
            "GET /a?x=1 200 Bearer abc",
        ]
    );
}

#[test]
fn custom_locations_and_independent_instances() {
    if !require_nginx() {
        eprintln!("skipping: nginx is not installed: apt-get install nginx-light (CI installs it)");
        return;
    }
    let one = Nginx::start(r#"location / { return 201 "one\n"; }"#).expect("nginx");
    let two = Nginx::start(r#"location / { return 202 "two\n"; }"#).expect("nginx");
    assert_ne!(one.port(), two.port());
    assert_ne!(one.prefix(), two.prefix());
    for _ in 0..10 {
        assert_eq!(get(one.addr(), "/x").status, 201);
    }
    assert_eq!(get(two.addr(), "/y").status, 202);
    assert_eq!(
        one.wait_for_access_log_lines(10, Duration::from_secs(5))
            .len(),
        10
    );
    assert_eq!(
        two.wait_for_access_log_lines(1, Duration::from_secs(5)),
        ["GET /y 202 -"]
    );
    let prefix = one.prefix().to_path_buf();
    let addr = one.addr();
    drop(one);
    assert!(!prefix.exists());
    assert!(std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_err());
}
