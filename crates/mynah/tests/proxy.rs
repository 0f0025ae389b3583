//! `mynah proxy` end to end: the real binary between real clients and real servers on loopback.
//! What the clients received, what the upstream saw, and what the file holds must agree.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use mynah_testkit::app::{self, AppConfig};
use mynah_testkit::record::{self, at, get, post_json, request};
use mynah_traffic::{Exchange, Incomplete};

/// A running `mynah proxy`, its stderr collected; killed on drop if still running.
struct ProxyProc {
    child: Child,
    addr: SocketAddr,
    log: Arc<Mutex<String>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mynah-proxy-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn start_proxy(upstream: &str, out: &Path, extra: &[&str]) -> ProxyProc {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mynah"))
        .args([
            "proxy",
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            upstream,
            "--progress",
            "0",
            "-o",
        ])
        .arg(out)
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run mynah proxy");
    let stderr = child.stderr.take().unwrap();
    let log = Arc::new(Mutex::new(String::new()));
    let (tx, rx) = mpsc::channel();
    let l = log.clone();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if line.contains("proxy listening on ") {
                let _ = tx.send(line.clone());
            }
            let mut l = l.lock().unwrap();
            l.push_str(&line);
            l.push('\n');
        }
    });
    let line = match rx.recv_timeout(Duration::from_secs(20)) {
        Ok(line) => line,
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("mynah proxy did not start:\n{}", log.lock().unwrap());
        }
    };
    // "mynah: proxy listening on http://127.0.0.1:PORT -> ..."
    let addr = line
        .split("://")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no address in {line:?}"));
    ProxyProc {
        child,
        addr,
        log,
        reader: Some(reader),
    }
}

impl ProxyProc {
    /// Sends SIGINT and waits for the exit (at most 30 s); returns the status and stderr.
    fn interrupt(mut self) -> (ExitStatus, String) {
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGINT);
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "mynah proxy did not stop on SIGINT:\n{}",
                    self.log.lock().unwrap()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        let log = self.log.lock().unwrap().clone();
        (status, log)
    }

    /// Interrupts and fails the test unless the proxy exits 0.
    fn stop(self) -> String {
        let (status, log) = self.interrupt();
        assert!(status.success(), "mynah proxy exited with {status}:\n{log}");
        log
    }
}

impl Drop for ProxyProc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn read(path: &Path) -> Vec<Exchange> {
    record::read(path)
}

fn line(ex: &Exchange) -> String {
    format!(
        "{} {} {}",
        ex.request.method,
        ex.request.target,
        ex.response.as_ref().map_or(0, |r| r.status)
    )
}

fn sorted_lines(xs: &[Exchange]) -> Vec<String> {
    let mut v: Vec<String> = xs.iter().map(line).collect();
    v.sort();
    v
}

#[test]
fn every_exchange_is_recorded_once_with_its_response() {
    let app = app::start(AppConfig::default()).unwrap();
    let out = tmp("once.gor");
    let proxy = start_proxy(&app.url(), &out, &[]);
    let ms = Duration::from_millis;
    let conn = |n: u64| {
        vec![
            at(ms(0), get("/")),
            at(ms(0), get(&format!("/articles/{n}"))),
            at(ms(0), post_json("/api/cart", &format!(r#"{{"item":{n}}}"#))),
            at(ms(0), request("HEAD", "/", &[], "")),
            at(ms(0), get("/status/404")),
            at(ms(0), get(&format!("/search?q=n{n}"))),
        ]
    };
    let sent = record::record(proxy.addr, vec![conn(1), conn(2), conn(3)]).unwrap();
    let log = proxy.stop();

    // The clients got the app's answers through the proxy.
    assert_eq!(sent.len(), 18);
    for x in &sent {
        let r = x.response.as_ref().unwrap();
        let want = match x.request.target.as_str() {
            "/api/cart" => 201,
            "/status/404" => 404,
            _ => 200,
        };
        assert_eq!(r.status, want, "{}", line(x));
    }
    let cart = sent
        .iter()
        .find(|x| x.request.target == "/api/cart")
        .unwrap();
    assert!(String::from_utf8_lossy(&cart.response.as_ref().unwrap().body).contains("received"));
    // The app saw each request once; the file holds each once, with the same responses.
    assert_eq!(app.stats().total, 18);
    let recorded = read(&out);
    assert_eq!(sorted_lines(&recorded), sorted_lines(&sent), "{log}");
    for x in &recorded {
        assert_eq!(x.incomplete, None, "{}", line(x));
        let t = &x.timing;
        assert!(t.response_start.unwrap() >= t.request_start);
        assert!(t.response_end.unwrap() >= t.response_start.unwrap());
        assert!(x.request.host().is_some(), "Host kept: {}", line(x));
    }
    let cart = recorded
        .iter()
        .find(|x| x.request.target == "/api/cart")
        .unwrap();
    assert!(cart.request.body.starts_with(b"{\"item\":"));
    assert!(String::from_utf8_lossy(&cart.response.as_ref().unwrap().body).contains("received"));
    let head = recorded
        .iter()
        .find(|x| x.request.method == "HEAD")
        .unwrap();
    assert!(head.response.as_ref().unwrap().body.is_empty());
    assert!(log.contains("wrote 18 exchanges (0 incomplete"), "{log}");
}

#[test]
fn seeded_secrets_never_reach_the_file() {
    let app = app::start(AppConfig {
        accounts: vec![("alice".into(), "SEKRET-password-1".into())],
        ..AppConfig::default()
    })
    .unwrap();
    let out = tmp("secrets.gor");
    let proxy = start_proxy(&app.url(), &out, &[]);
    let z = Duration::ZERO;
    let sent = record::record(
        proxy.addr,
        vec![vec![
            at(
                z,
                post_json(
                    "/login",
                    r#"{"user":"alice","password":"SEKRET-password-1"}"#,
                ),
            ),
            at(
                z,
                request(
                    "GET",
                    "/private",
                    &[("Authorization", "Bearer SEKRET-bearer-2")],
                    "",
                ),
            ),
            at(z, get("/search?q=shoes&token=SEKRET-query-3")),
            at(
                z,
                request(
                    "POST",
                    "/status/200",
                    &[("Content-Type", "application/x-www-form-urlencoded")],
                    "user=alice&password=SEKRET-form-4",
                ),
            ),
        ]],
    )
    .unwrap();
    proxy.stop();
    // The upstream got the real secrets: the login worked.
    assert_eq!(sent[0].response.as_ref().unwrap().status, 200);
    let bytes = std::fs::read(&out).unwrap();
    assert_eq!(read(&out).len(), 4);
    let text = String::from_utf8_lossy(&bytes);
    assert!(
        !text.contains("SEKRET"),
        "a secret reached the file:\n{text}"
    );
}

#[test]
fn http2_prior_knowledge_clients_are_proxied_and_recorded_as_http11() {
    use http_body_util::{BodyExt, Full};
    let app = app::start(AppConfig::default()).unwrap();
    let out = tmp("h2.gor");
    let proxy = start_proxy(&app.url(), &out, &[]);
    let addr = proxy.addr;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let bodies = rt.block_on(async move {
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (mut send, conn) = hyper::client::conn::http2::handshake(
            hyper_util::rt::TokioExecutor::new(),
            hyper_util::rt::TokioIo::new(tcp),
        )
        .await
        .unwrap();
        tokio::spawn(conn);
        let mut bodies = Vec::new();
        for (method, path, body) in [
            ("GET", "/articles/5", ""),
            ("POST", "/api/cart", r#"{"h2":true}"#),
        ] {
            let req = http::Request::builder()
                .method(method)
                .uri(format!("http://{addr}{path}"))
                .header("content-type", "application/json")
                .body(Full::new(bytes::Bytes::from(body)))
                .unwrap();
            let resp = send.send_request(req).await.unwrap();
            let status = resp.status().as_u16();
            let body = resp.into_body().collect().await.unwrap().to_bytes();
            bodies.push((status, String::from_utf8_lossy(&body).into_owned()));
        }
        bodies
    });
    proxy.stop();
    assert_eq!(bodies[0], (200, "article 5\n".to_string()));
    assert_eq!(bodies[1].0, 201);
    let recorded = read(&out);
    assert_eq!(
        sorted_lines(&recorded),
        vec!["GET /articles/5 200", "POST /api/cart 201"]
    );
    for x in &recorded {
        assert_eq!(x.request.version, mynah_traffic::Version::Http11);
        assert_eq!(x.request.host().as_deref(), Some(addr.to_string().as_str()));
    }
    let post = recorded
        .iter()
        .find(|x| x.request.method == "POST")
        .unwrap();
    assert_eq!(post.request.body, br#"{"h2":true}"#);
    // Forwarded upstream as HTTP/1.1.
    assert_eq!(app.stats().http2, 0);
}

/// PEM armour around DER bytes (rcgen's own `pem` feature would pull in one more crate).
fn pem(label: &str, der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap());
        out.push('\n');
    }
    out + &format!("-----END {label}-----\n")
}

#[test]
fn tls_listener_and_https_upstream_with_a_private_ca() {
    let key = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let cert = tmp("cert.pem");
    let pkey = tmp("key.pem");
    std::fs::write(&cert, pem("CERTIFICATE", key.cert.der())).unwrap();
    std::fs::write(&pkey, pem("PRIVATE KEY", &key.signing_key.serialize_der())).unwrap();
    let app = app::start(AppConfig::default()).unwrap();
    // client --http--> front --https--> back (TLS listener) --http--> app
    let back_out = tmp("tls-back.har");
    let back = start_proxy(
        &app.url(),
        &back_out,
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            pkey.to_str().unwrap(),
        ],
    );
    let front_out = tmp("tls-front.gor");
    let front = start_proxy(
        &format!("https://localhost:{}", back.addr.port()),
        &front_out,
        &["--upstream-ca", cert.to_str().unwrap()],
    );
    let z = Duration::ZERO;
    let sent = record::record(
        front.addr,
        vec![vec![at(z, get("/articles/9")), at(z, get("/"))]],
    )
    .unwrap();
    let (front_addr, back_port) = (front.addr, back.addr.port());
    front.stop();
    back.stop();
    assert_eq!(sent[0].response.as_ref().unwrap().body, b"article 9\n");
    let lines = vec!["GET / 200".to_string(), "GET /articles/9 200".to_string()];
    let f = read(&front_out);
    let b = read(&back_out);
    assert_eq!(sorted_lines(&f), lines);
    assert_eq!(sorted_lines(&b), lines);
    assert!(b.iter().all(|x| x.connection.tls), "the back proxy saw TLS");
    // The front proxy sent the upstream's Host (nginx proxy_pass default) and X-Forwarded-Host.
    let bx = &b[0];
    assert_eq!(
        bx.request.headers.get_str("host").as_deref(),
        Some(format!("localhost:{}", back_port).as_str())
    );
    assert_eq!(
        bx.request.headers.get_str("x-forwarded-host").as_deref(),
        Some(front_addr.to_string().as_str())
    );
    assert_eq!(
        bx.request.headers.get_str("x-forwarded-for").as_deref(),
        Some("127.0.0.1")
    );

    // Without the CA the certificate is refused: 502, recorded.
    let strict_out = tmp("tls-strict.gor");
    let back = start_proxy(
        &app.url(),
        &tmp("tls-back2.gor"),
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            pkey.to_str().unwrap(),
        ],
    );
    let strict = start_proxy(
        &format!("https://localhost:{}", back.addr.port()),
        &strict_out,
        &[],
    );
    let sent = record::record(strict.addr, vec![vec![at(z, get("/"))]]).unwrap();
    strict.stop();
    back.stop();
    let r = sent[0].response.as_ref().unwrap();
    assert_eq!(r.status, 502);
    assert!(
        String::from_utf8_lossy(&r.body).contains("certificate"),
        "{:?}",
        String::from_utf8_lossy(&r.body)
    );
    assert_eq!(sorted_lines(&read(&strict_out)), vec!["GET / 502"]);
}

#[test]
fn bodies_over_max_body_pass_whole_and_are_recorded_truncated() {
    let app = app::start(AppConfig::default()).unwrap();
    let out = tmp("big.har");
    let proxy = start_proxy(&app.url(), &out, &["--max-body", "64KB"]);
    let big = format!(r#"{{"blob":"{}"}}"#, "x".repeat(300_000));
    let sent = record::record(
        proxy.addr,
        vec![vec![
            at(Duration::ZERO, post_json("/api/cart", &big)),
            at(Duration::ZERO, get("/")),
        ]],
    )
    .unwrap();
    let log = proxy.stop();
    // The client got the whole echo of its whole body.
    let resp = sent[0].response.as_ref().unwrap();
    assert_eq!(resp.status, 201);
    let echoed: serde_json::Value = serde_json::from_slice(&resp.decoded_body().unwrap()).unwrap();
    assert_eq!(echoed["received"]["blob"].as_str().unwrap().len(), 300_000);
    let recorded = read(&out);
    assert_eq!(recorded.len(), 2);
    let x = recorded
        .iter()
        .find(|x| x.request.method == "POST")
        .unwrap();
    assert_eq!(x.incomplete, Some(Incomplete::TruncatedBody), "{log}");
    assert_eq!(x.request.body.len(), 64 << 10);
    assert!(x.response.as_ref().unwrap().body.len() <= (64 << 10) + 64);
    let small = recorded.iter().find(|x| x.request.method == "GET").unwrap();
    assert_eq!(small.incomplete, None);
    assert!(log.contains("1 with a body over --max-body"), "{log}");
}

/// A raw upstream that answers an upgrade with 101 and then echoes bytes back.
fn echo_upgrade_server() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        let Ok((mut s, _)) = l.accept() else { return };
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut head = Vec::new();
        let mut b = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            if s.read(&mut b).unwrap_or(0) == 0 {
                return;
            }
            head.push(b[0]);
        }
        let _ = s.write_all(
            b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n",
        );
        let mut buf = [0u8; 4096];
        while let Ok(n) = s.read(&mut buf) {
            if n == 0 || s.write_all(&buf[..n]).is_err() {
                break;
            }
        }
    });
    addr
}

#[test]
fn upgrades_are_tunnelled_and_the_101_recorded() {
    let upstream = echo_upgrade_server();
    let out = tmp("upgrade.gor");
    let proxy = start_proxy(&format!("http://{upstream}"), &out, &[]);
    let mut s = TcpStream::connect(proxy.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
        .unwrap();
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(
            s.read(&mut b).unwrap(),
            1,
            "{}",
            String::from_utf8_lossy(&head)
        );
        head.push(b[0]);
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("upgrade: echo"), "{head}");
    for msg in [&b"ping"[..], &b"a longer message through the tunnel"[..]] {
        s.write_all(msg).unwrap();
        let mut got = vec![0u8; msg.len()];
        s.read_exact(&mut got).unwrap();
        assert_eq!(got, msg);
    }
    drop(s);
    let log = proxy.stop();
    let recorded = read(&out);
    assert_eq!(sorted_lines(&recorded), vec!["GET /ws 101"], "{log}");
    assert!(log.contains("1 upgrades"), "{log}");
}

#[test]
fn an_unreachable_upstream_answers_502_and_is_recorded() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = tmp("502.gor");
    let proxy = start_proxy(&format!("http://127.0.0.1:{port}"), &out, &[]);
    let sent = record::record(proxy.addr, vec![vec![at(Duration::ZERO, get("/x"))]]).unwrap();
    let log = proxy.stop();
    let r = sent[0].response.as_ref().unwrap();
    assert_eq!(r.status, 502);
    assert!(String::from_utf8_lossy(&r.body).contains("cannot connect"));
    assert_eq!(sorted_lines(&read(&out)), vec!["GET /x 502"]);
    assert!(log.contains("1 upstream errors"), "{log}");
}

#[test]
fn a_client_leaving_mid_body_is_recorded_incomplete() {
    let app = app::start(AppConfig::default()).unwrap();
    let out = tmp("gone.har");
    let proxy = start_proxy(&app.url(), &out, &[]);
    {
        let mut s = TcpStream::connect(proxy.addr).unwrap();
        s.write_all(b"POST /api/cart HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{\"a\":").unwrap();
        std::thread::sleep(Duration::from_millis(200));
    }
    // The proxy stays up and records the rest normally.
    let sent = record::record(proxy.addr, vec![vec![at(Duration::ZERO, get("/"))]]).unwrap();
    assert_eq!(sent[0].response.as_ref().unwrap().status, 200);
    // The cut exchange is recorded when the proxy notices the closed connection, at the latest
    // when it stops.
    let log = proxy.stop();
    let recorded = read(&out);
    assert_eq!(recorded.len(), 2, "{log}");
    let cut = recorded
        .iter()
        .find(|x| x.request.method == "POST")
        .unwrap();
    assert!(cut.incomplete.is_some(), "{log}");
    assert!(cut.request.body.starts_with(b"{\"a\":"));
}

#[test]
fn sigint_in_the_middle_of_traffic_leaves_a_valid_file() {
    let app = app::start(AppConfig::default()).unwrap();
    let out = tmp("sigint.gor");
    let proxy = start_proxy(&app.url(), &out, &[]);
    let addr = proxy.addr;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let clients: Vec<_> = (0..4)
        .map(|i| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut ok = 0u32;
                for n in 0..400 {
                    if stop.load(std::sync::atomic::Ordering::Relaxed) {
                        break;
                    }
                    let path = if n % 5 == 0 {
                        "/delay/50".to_string()
                    } else {
                        format!("/articles/{i}{n}")
                    };
                    match record::record(addr, vec![vec![at(Duration::ZERO, get(&path))]]) {
                        Ok(_) => ok += 1,
                        Err(_) => break,
                    }
                }
                ok
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(600));
    let (status, log) = proxy.interrupt();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let served: u32 = clients.into_iter().map(|c| c.join().unwrap()).sum();
    assert!(status.success(), "{status}:\n{log}");
    assert!(served > 0);
    // Valid to the end (`read` panics on a corrupt record), and every complete exchange was served.
    let recorded = read(&out);
    let complete: Vec<&Exchange> = recorded.iter().filter(|x| x.incomplete.is_none()).collect();
    assert!(!complete.is_empty(), "{log}");
    assert!(complete.len() as u64 <= app.stats().total);
    for x in &complete {
        let r = x.response.as_ref().unwrap();
        assert_eq!(r.status, 200, "{}", line(x));
    }
    assert!(log.contains("interrupted (SIGINT)"), "{log}");
}

/// `METHOD TARGET STATUS` with secret query values replaced, comparable across nginx's log, the
/// client's view and a masked recording.
fn mix_line(method: &str, target: &str, status: &str) -> String {
    format!(
        "{method} {} {status}",
        mynah_testkit::mix::normalize_target(target)
    )
}

#[test]
fn the_known_mix_through_the_proxy_is_what_nginx_logged() {
    use mynah_testkit::mix::{Mix, REQUESTS, SECRETS, UPLOAD_BYTES};
    use mynah_testkit::nginx::{require_nginx, Nginx};
    if !require_nginx() {
        eprintln!("skipping: nginx is not installed");
        return;
    }
    let mix = Mix::new().unwrap();
    let nginx = Nginx::start(&mix.locations()).unwrap();
    let out = tmp("mix.gor");
    let proxy = start_proxy(&nginx.url(), &out, &[]);
    let sent = mix.send(proxy.addr).unwrap();
    assert_eq!(sent.len(), REQUESTS);
    let logged = nginx.wait_for_access_log_lines(REQUESTS, Duration::from_secs(10));
    let log = proxy.stop();

    let mut from_log: Vec<String> = logged
        .iter()
        .map(|l| {
            let f: Vec<&str> = l.splitn(4, ' ').collect();
            mix_line(f[0], f[1], f[2])
        })
        .collect();
    let mut from_client: Vec<String> = sent
        .iter()
        .map(|s| mix_line(&s.method, &s.target, &s.status.to_string()))
        .collect();
    let recorded = read(&out);
    let mut from_file: Vec<String> = recorded
        .iter()
        .map(|x| {
            let status = x.response.as_ref().map_or(0, |r| r.status).to_string();
            mix_line(&x.request.method, &x.request.target, &status)
        })
        .collect();
    from_log.sort();
    from_client.sort();
    from_file.sort();
    assert_eq!(from_file, from_log, "{log}");
    assert_eq!(from_client, from_log);
    let cut: Vec<String> = recorded
        .iter()
        .filter(|x| x.incomplete.is_some())
        .map(|x| format!("{} {:?}", line(x), x.incomplete))
        .collect();
    assert!(cut.is_empty(), "{cut:?}\n{log}");

    // The 1 MB upload is recorded whole (under the 1 MiB --max-body), after its 100 Continue.
    let upload = recorded
        .iter()
        .find(|x| x.request.method == "POST" && x.request.target == "/mix/upload")
        .unwrap();
    assert_eq!(upload.request.body.len(), UPLOAD_BYTES);
    assert_eq!(upload.interim.first().map(|r| r.status), Some(100));
    // The gzip, chunked response decodes to the file nginx served.
    let gz = recorded
        .iter()
        .find(|x| {
            x.response
                .as_ref()
                .is_some_and(|r| r.headers.get_str("content-encoding").as_deref() == Some("gzip"))
        })
        .expect("a gzip response");
    let body = gz.response.as_ref().unwrap().decoded_body().unwrap();
    assert!(
        body.starts_with(b"line 0: the quick brown fox"),
        "{:?}",
        String::from_utf8_lossy(&body[..body.len().min(80)])
    );
    // Default masking: no seeded secret reaches the file.
    let bytes = String::from_utf8_lossy(&std::fs::read(&out).unwrap()).into_owned();
    for s in SECRETS {
        assert!(!bytes.contains(s), "{s} reached the file");
    }
}

#[test]
fn bad_flags_are_usage_errors_that_say_what_to_fix() {
    let out = tmp("usage.gor");
    let o = out.to_str().unwrap();
    for (args, says) in [
        (vec!["--upstream", "127.0.0.1:9000"], "http://host:port"),
        (vec!["--upstream", "ftp://x"], "not http or https"),
        (
            vec!["--upstream", "http://x", "--max-body", "lots"],
            "--max-body",
        ),
        (
            vec!["--upstream", "http://x", "--insecure"],
            "https:// upstream",
        ),
    ] {
        let res = Command::new(env!("CARGO_BIN_EXE_mynah"))
            .args(["proxy", "--listen", "127.0.0.1:0", "-o", o])
            .args(&args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&res.stderr);
        assert_eq!(res.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
    let res = Command::new(env!("CARGO_BIN_EXE_mynah"))
        .args([
            "proxy",
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            "http://x",
            "-o",
            "/nonexistent-dir/x.gor",
        ])
        .output()
        .unwrap();
    assert_eq!(res.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&res.stderr).contains("/nonexistent-dir/x.gor"));
}
