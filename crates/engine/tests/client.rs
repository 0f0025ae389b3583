//! The per-user HTTP client against servers started here on 127.0.0.1: well-behaved hyper
//! servers (HTTP/1.1, h2c, TLS with ALPN) and hostile raw-TCP ones.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use mynah_engine::client::{Client, ClientConfig, Failure, Request, Response, Shared};
use mynah_stats::FailureKind;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Every test body runs under this bound.
const TEST_LIMIT: Duration = Duration::from_secs(20);

async fn bounded<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(TEST_LIMIT, f)
        .await
        .expect("test took too long")
}

/// What a handler sees of a request.
struct Seen {
    method: Method,
    uri: http::Uri,
    version: http::Version,
    headers: HeaderMap,
    body: Bytes,
}

type Handler = Arc<dyn Fn(Seen) -> http::Response<Full<Bytes>> + Send + Sync>;

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    H1,
    H2c,
    /// TLS, with the ALPN protocols the server offers.
    Tls(&'static [&'static [u8]]),
}

struct Server {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Server {
    fn url(&self, path: &str) -> http::Uri {
        format!("http://{}{path}", self.addr).parse().unwrap()
    }

    fn tls_url(&self, path: &str) -> http::Uri {
        format!("https://{}{path}", self.addr).parse().unwrap()
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

fn tls_acceptor(alpn: &[&[u8]]) -> tokio_rustls::TlsAcceptor {
    let key = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let cert = key.cert.der().clone();
    let private = rustls::pki_types::PrivateKeyDer::Pkcs8(key.signing_key.serialize_der().into());
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert], private)
        .unwrap();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

async fn serve<F>(mode: Mode, handler: F) -> Server
where
    F: Fn(Seen) -> http::Response<Full<Bytes>> + Send + Sync + 'static,
{
    let handler: Handler = Arc::new(handler);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    let acceptor = match mode {
        Mode::Tls(alpn) => Some(tls_acceptor(alpn)),
        _ => None,
    };
    let task = tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            count.fetch_add(1, Ordering::SeqCst);
            let handler = handler.clone();
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let handler = handler.clone();
                    async move {
                        let (parts, body) = req.into_parts();
                        let body = body
                            .collect()
                            .await
                            .map(|b| b.to_bytes())
                            .unwrap_or_default();
                        let seen = Seen {
                            method: parts.method,
                            uri: parts.uri,
                            version: parts.version,
                            headers: parts.headers,
                            body,
                        };
                        Ok::<_, Infallible>(handler(seen))
                    }
                });
                match acceptor {
                    None if mode == Mode::H2c => {
                        let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                            .serve_connection(TokioIo::new(tcp), service)
                            .await;
                    }
                    None => {
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(tcp), service)
                            .await;
                    }
                    Some(acceptor) => {
                        let Ok(tls) = acceptor.accept(tcp).await else {
                            return;
                        };
                        if tls.get_ref().1.alpn_protocol() == Some(b"h2") {
                            let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                                .serve_connection(TokioIo::new(tls), service)
                                .await;
                        } else {
                            let _ = hyper::server::conn::http1::Builder::new()
                                .serve_connection(TokioIo::new(tls), service)
                                .await;
                        }
                    }
                }
            });
        }
    });
    Server {
        addr,
        accepted,
        task,
    }
}

/// A raw TCP server: `f` gets each accepted connection.
async fn raw<F, Fut>(f: F) -> Server
where
    F: Fn(TcpStream) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    let task = tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(f(tcp));
        }
    });
    Server {
        addr,
        accepted,
        task,
    }
}

/// Reads one request head (and no body) from a raw connection; `None` at EOF.
async fn read_head(tcp: &mut TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match tcp.read(&mut byte).await {
            Ok(1) => head.push(byte[0]),
            _ => return None,
        }
    }
    Some(String::from_utf8_lossy(&head).into_owned())
}

/// Echoes the request as text: method, path, version and the interesting headers.
fn echo(seen: Seen) -> http::Response<Full<Bytes>> {
    let h = |name: &str| {
        seen.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-")
            .to_string()
    };
    let text = format!(
        "{} {} {:?} host={} ua={} cookie={} len={} body={}",
        seen.method,
        seen.uri.path(),
        seen.version,
        h("host"),
        h("user-agent"),
        h("cookie"),
        h("content-length"),
        seen.body.len()
    );
    http::Response::new(Full::new(Bytes::from(text)))
}

fn shared(config: ClientConfig) -> Arc<Shared> {
    Shared::new(config).unwrap()
}

fn get(uri: http::Uri) -> Request {
    Request {
        method: Method::GET,
        uri,
        headers: HeaderMap::new(),
        body: Bytes::new(),
    }
}

fn text(response: &Response) -> String {
    String::from_utf8_lossy(&response.body).into_owned()
}

fn failure(result: Result<Response, Failure>) -> Failure {
    match result {
        Ok(r) => panic!("expected a failure, got status {} {:?}", r.status, text(&r)),
        Err(f) => f,
    }
}

#[tokio::test]
async fn keep_alive_reuses_one_connection() {
    bounded(async {
        let server = serve(Mode::H1, echo).await;
        let mut client = Client::new(shared(ClientConfig::default()));
        for _ in 0..10 {
            let r = client.send(get(server.url("/hello"))).await.unwrap();
            assert_eq!(r.status, 200);
            let body = text(&r);
            assert!(body.starts_with("GET /hello HTTP/1.1"), "{body}");
            assert!(body.contains(&format!("host={}", server.addr)), "{body}");
            assert!(body.contains(&format!("ua=mynah/{}", env!("CARGO_PKG_VERSION"))));
            assert_eq!(r.bytes_received, r.body.len() as u64);
            assert!(!r.body_truncated);
        }
        assert_eq!(server.accepted(), 1);
        assert_eq!(client.connections(), 1);
        client.close();
        assert_eq!(client.connections(), 0);
        client.send(get(server.url("/again"))).await.unwrap();
        assert_eq!(server.accepted(), 2);
    })
    .await;
}

#[tokio::test]
async fn post_sends_content_length_and_given_headers_win() {
    bounded(async {
        let server = serve(Mode::H1, echo).await;
        let mut client = Client::new(shared(ClientConfig::default()));
        let mut headers = HeaderMap::new();
        headers.insert("host", HeaderValue::from_static("api.example"));
        headers.insert("user-agent", HeaderValue::from_static("tester"));
        let r = client
            .send(Request {
                method: Method::POST,
                uri: server.url("/items"),
                headers,
                body: Bytes::from_static(b"{\"a\":1}"),
            })
            .await
            .unwrap();
        assert_eq!(
            text(&r),
            "POST /items HTTP/1.1 host=api.example ua=tester cookie=- len=7 body=7"
        );
    })
    .await;
}

#[tokio::test]
async fn reconnects_after_the_server_closed_an_idle_connection() {
    bounded(async {
        // Answers one request per connection with keep-alive framing, then closes.
        let server = raw(|mut tcp| async move {
            if read_head(&mut tcp).await.is_some() {
                let _ = tcp
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                    .await;
            }
        })
        .await;
        let mut client = Client::new(shared(ClientConfig::default()));
        for round in 1..=3 {
            let r = client.send(get(server.url("/"))).await.unwrap();
            assert_eq!(text(&r), "ok");
            assert_eq!(server.accepted(), round);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn connection_close_response_is_not_reused() {
    bounded(async {
        let server = raw(|mut tcp| async move {
            if read_head(&mut tcp).await.is_some() {
                let _ = tcp
                    .write_all(
                        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
                    )
                    .await;
            }
        })
        .await;
        let mut client = Client::new(shared(ClientConfig::default()));
        for _ in 0..3 {
            let r = client.send(get(server.url("/"))).await.unwrap();
            assert_eq!(text(&r), "ok");
        }
        assert_eq!(server.accepted(), 3);
    })
    .await;
}

#[tokio::test]
async fn chunked_body_is_decoded() {
    bounded(async {
        let server = raw(|mut tcp| async move {
            while read_head(&mut tcp).await.is_some() {
                let _ = tcp
                    .write_all(
                        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
                          5\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\n\r\n",
                    )
                    .await;
            }
        })
        .await;
        let mut client = Client::new(shared(ClientConfig::default()));
        for _ in 0..2 {
            let r = client.send(get(server.url("/"))).await.unwrap();
            assert_eq!(text(&r), "hello world");
            assert_eq!(r.bytes_received, 11);
        }
        assert_eq!(server.accepted(), 1);
    })
    .await;
}

#[tokio::test]
async fn body_is_truncated_but_fully_counted() {
    bounded(async {
        let big = Bytes::from(vec![b'x'; 300_000]);
        let server = serve(Mode::H1, move |_| {
            http::Response::new(Full::new(big.clone()))
        })
        .await;
        let config = ClientConfig {
            max_body_bytes: 1000,
            ..ClientConfig::default()
        };
        let mut client = Client::new(shared(config));
        for _ in 0..2 {
            let r = client.send(get(server.url("/big"))).await.unwrap();
            assert_eq!(r.body.len(), 1000);
            assert!(r.body_truncated);
            assert_eq!(r.bytes_received, 300_000);
        }
        // The body was drained, so the connection stayed usable.
        assert_eq!(server.accepted(), 1);
        let exact = ClientConfig {
            max_body_bytes: 300_000,
            ..ClientConfig::default()
        };
        let r = Client::new(shared(exact))
            .send(get(server.url("/big")))
            .await
            .unwrap();
        assert_eq!(r.body.len(), 300_000);
        assert!(!r.body_truncated);
    })
    .await;
}

fn redirect(status: u16, location: &str) -> http::Response<Full<Bytes>> {
    let mut r = http::Response::new(Full::new(Bytes::from_static(b"moved")));
    *r.status_mut() = StatusCode::from_u16(status).unwrap();
    r.headers_mut()
        .insert("location", HeaderValue::from_str(location).unwrap());
    r
}

fn redirecting(seen: Seen) -> http::Response<Full<Bytes>> {
    match seen.uri.path() {
        "/dir/start" => redirect(302, "next?x=1"),
        "/dir/next" => redirect(301, "/final"),
        "/form" => redirect(303, "/final"),
        "/keep" => redirect(307, "/final"),
        "/loop" => redirect(302, "/loop"),
        _ => echo(seen),
    }
}

#[tokio::test]
async fn redirects_are_followed() {
    bounded(async {
        let server = serve(Mode::H1, redirecting).await;
        let mut client = Client::new(shared(ClientConfig::default()));

        let r = client.send(get(server.url("/dir/start"))).await.unwrap();
        assert_eq!(r.status, 200);
        assert!(text(&r).starts_with("GET /final "), "{}", text(&r));
        // "moved" twice, then the echo.
        assert_eq!(r.bytes_received, 10 + r.body.len() as u64);

        let post = |path: &str| Request {
            method: Method::POST,
            uri: server.url(path),
            headers: HeaderMap::new(),
            body: Bytes::from_static(b"payload"),
        };
        let r = client.send(post("/form")).await.unwrap();
        assert!(text(&r).starts_with("GET /final "), "{}", text(&r));
        assert!(text(&r).ends_with("len=- body=0"), "{}", text(&r));
        let r = client.send(post("/keep")).await.unwrap();
        assert!(text(&r).starts_with("POST /final "), "{}", text(&r));
        assert!(text(&r).ends_with("len=7 body=7"), "{}", text(&r));

        let f = failure(client.send(get(server.url("/loop"))).await);
        assert_eq!(f.kind, FailureKind::Protocol);
        assert_eq!(f.message, "too many redirects (10)");

        let config = ClientConfig {
            max_redirects: 1,
            ..ClientConfig::default()
        };
        let f = failure(
            Client::new(shared(config))
                .send(get(server.url("/dir/start")))
                .await,
        );
        assert_eq!(f.message, "too many redirects (1)");

        let config = ClientConfig {
            follow_redirects: false,
            ..ClientConfig::default()
        };
        let r = Client::new(shared(config))
            .send(get(server.url("/dir/start")))
            .await
            .unwrap();
        assert_eq!(r.status, 302);
        assert_eq!(r.headers.get_str("location"), Some("next?x=1"));
        assert_eq!(text(&r), "moved");
        assert!(server.accepted() <= 4);
    })
    .await;
}

#[tokio::test]
async fn cookie_jar_round_trip() {
    bounded(async {
        let server = serve(Mode::H1, |seen| match seen.uri.path() {
            "/login" => {
                let mut r = redirect(302, "/home");
                r.headers_mut().append(
                    "set-cookie",
                    HeaderValue::from_static("sid=abc; Path=/; HttpOnly"),
                );
                r.headers_mut().append(
                    "set-cookie",
                    HeaderValue::from_static("pref=dark; Path=/settings"),
                );
                r
            }
            "/logout" => {
                let mut r = echo(seen);
                r.headers_mut().append(
                    "set-cookie",
                    HeaderValue::from_static("sid=; Max-Age=0; Path=/"),
                );
                r
            }
            "/secure" => {
                let mut r = echo(seen);
                r.headers_mut()
                    .append("set-cookie", HeaderValue::from_static("tls=1; Secure"));
                r
            }
            _ => echo(seen),
        })
        .await;
        let mut client = Client::new(shared(ClientConfig::default()));
        let r = client.send(get(server.url("/login"))).await.unwrap();
        assert_eq!(
            r.set_cookies,
            vec![
                ("sid".to_string(), "abc".to_string()),
                ("pref".to_string(), "dark".to_string())
            ]
        );
        // The redirect's follow-up already carried the new cookie.
        assert!(text(&r).contains("GET /home ") && text(&r).contains("cookie=sid=abc "));
        assert_eq!(client.cookie("sid"), Some("abc"));

        let r = client.send(get(server.url("/settings/x"))).await.unwrap();
        assert!(
            text(&r).contains("cookie=sid=abc; pref=dark "),
            "{}",
            text(&r)
        );
        assert!(r.set_cookies.is_empty());

        let r = client.send(get(server.url("/logout"))).await.unwrap();
        assert_eq!(r.set_cookies, vec![("sid".to_string(), String::new())]);
        let r = client.send(get(server.url("/other"))).await.unwrap();
        assert!(text(&r).contains("cookie=- "), "{}", text(&r));
        assert_eq!(client.cookie("sid"), None);

        // A Secure cookie is not taken over plain http.
        client.send(get(server.url("/secure"))).await.unwrap();
        assert_eq!(client.cookie("tls"), None);

        // Another user has its own jar.
        let mut other = Client::new(shared(ClientConfig::default()));
        other.send(get(server.url("/login"))).await.unwrap();
        assert_eq!(other.cookie("sid"), Some("abc"));
    })
    .await;
}

#[tokio::test]
async fn h2c_prior_knowledge() {
    bounded(async {
        let server = serve(Mode::H2c, echo).await;
        let config = ClientConfig {
            http2_prior_knowledge: true,
            ..ClientConfig::default()
        };
        let mut client = Client::new(shared(config));
        for _ in 0..5 {
            let r = client.send(get(server.url("/h2"))).await.unwrap();
            assert!(text(&r).starts_with("GET /h2 HTTP/2.0"), "{}", text(&r));
        }
        let r = client
            .send(Request {
                method: Method::PUT,
                uri: server.url("/up"),
                headers: HeaderMap::new(),
                body: Bytes::from_static(b"12345"),
            })
            .await
            .unwrap();
        assert!(text(&r).ends_with("body=5"), "{}", text(&r));
        assert_eq!(server.accepted(), 1);
    })
    .await;
}

#[tokio::test]
async fn tls_with_alpn() {
    bounded(async {
        let insecure = shared(ClientConfig {
            insecure: true,
            ..ClientConfig::default()
        });

        let h2 = serve(Mode::Tls(&[b"h2", b"http/1.1"]), echo).await;
        let mut client = Client::new(insecure.clone());
        for _ in 0..3 {
            let r = client.send(get(h2.tls_url("/secure"))).await.unwrap();
            assert!(text(&r).starts_with("GET /secure HTTP/2.0"), "{}", text(&r));
        }
        assert_eq!(h2.accepted(), 1);

        let h1 = serve(Mode::Tls(&[b"http/1.1"]), echo).await;
        let mut client = Client::new(insecure.clone());
        for _ in 0..3 {
            let r = client.send(get(h1.tls_url("/secure"))).await.unwrap();
            assert!(text(&r).starts_with("GET /secure HTTP/1.1"), "{}", text(&r));
        }
        assert_eq!(h1.accepted(), 1);

        let none = serve(Mode::Tls(&[]), echo).await;
        let r = Client::new(insecure)
            .send(get(none.tls_url("/")))
            .await
            .unwrap();
        assert!(text(&r).starts_with("GET / HTTP/1.1"), "{}", text(&r));
    })
    .await;
}

#[tokio::test]
async fn self_signed_certificate_fails_without_insecure() {
    bounded(async {
        let server = serve(Mode::Tls(&[b"h2", b"http/1.1"]), echo).await;
        let mut client = Client::new(shared(ClientConfig::default()));
        let f = failure(client.send(get(server.tls_url("/"))).await);
        assert_eq!(f.kind, FailureKind::Connect);
        assert!(
            f.message.starts_with("TLS handshake failed: "),
            "{}",
            f.message
        );
        assert!(!f.message.contains("127.0.0.1"), "{}", f.message);
        assert_eq!(client.connections(), 0);
    })
    .await;
}

#[tokio::test]
async fn connection_refused_is_connect() {
    bounded(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let mut client = Client::new(shared(ClientConfig::default()));
        let f = failure(
            client
                .send(get(format!("http://{addr}/").parse().unwrap()))
                .await,
        );
        assert_eq!(
            f,
            Failure {
                kind: FailureKind::Connect,
                message: "connection refused".to_string()
            }
        );
    })
    .await;
}

#[tokio::test]
async fn tls_handshake_stall_is_a_connect_timeout() {
    bounded(async {
        let server = raw(|tcp| async move {
            tokio::time::sleep(Duration::from_secs(5)).await;
            drop(tcp);
        })
        .await;
        let config = ClientConfig {
            connect_timeout: Duration::from_millis(200),
            insecure: true,
            ..ClientConfig::default()
        };
        let f = failure(
            Client::new(shared(config))
                .send(get(server.tls_url("/")))
                .await,
        );
        assert_eq!(f.kind, FailureKind::Connect);
        assert_eq!(f.message, "connect timeout after 200ms");
    })
    .await;
}

#[tokio::test]
async fn accept_then_close_is_reset() {
    bounded(async {
        let server = raw(|tcp| async move { drop(tcp) }).await;
        let mut client = Client::new(shared(ClientConfig::default()));
        for _ in 0..3 {
            let f = failure(client.send(get(server.url("/"))).await);
            assert_eq!(f.kind, FailureKind::Reset, "{}", f.message);
            assert!(
                f.message == "connection closed before the response was complete"
                    || f.message == "connection reset by peer"
                    || f.message == "connection closed while sending the request",
                "{}",
                f.message
            );
            assert_eq!(client.connections(), 0);
        }
    })
    .await;
}

#[tokio::test]
async fn garbage_is_protocol() {
    bounded(async {
        let server = raw(|mut tcp| async move {
            let _ = read_head(&mut tcp).await;
            let _ = tcp.write_all(b"HTTP/9 banana\r\n\r\n").await;
            tokio::time::sleep(Duration::from_secs(2)).await;
        })
        .await;
        let mut client = Client::new(shared(ClientConfig::default()));
        let f = failure(client.send(get(server.url("/"))).await);
        assert_eq!(f.kind, FailureKind::Protocol);
        assert_eq!(f.message, "malformed response: invalid HTTP version");
        assert_eq!(client.connections(), 0);
    })
    .await;
}

#[tokio::test]
async fn close_mid_body_is_reset() {
    bounded(async {
        let server = raw(|mut tcp| async move {
            let _ = read_head(&mut tcp).await;
            let _ = tcp
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten..")
                .await;
        })
        .await;
        let mut client = Client::new(shared(ClientConfig::default()));
        let f = failure(client.send(get(server.url("/"))).await);
        assert_eq!(f.kind, FailureKind::Reset);
        assert_eq!(
            f.message,
            "connection closed before the response was complete"
        );
    })
    .await;
}

#[tokio::test]
async fn no_answer_is_timeout() {
    bounded(async {
        let server = raw(|mut tcp| async move {
            let _ = read_head(&mut tcp).await;
            tokio::time::sleep(Duration::from_secs(5)).await;
        })
        .await;
        let config = ClientConfig {
            request_timeout: Duration::from_millis(200),
            ..ClientConfig::default()
        };
        let mut client = Client::new(shared(config));
        let f = failure(client.send(get(server.url("/"))).await);
        assert_eq!(
            f,
            Failure {
                kind: FailureKind::Timeout,
                message: "request timeout after 200ms".to_string()
            }
        );
        // The connection with a pending response was dropped.
        assert_eq!(client.connections(), 0);
    })
    .await;
}

/// Resident set size of this process, in bytes.
fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

#[tokio::test]
async fn endless_body_is_timeout_with_bounded_memory() {
    bounded(async {
        let sent = Arc::new(AtomicUsize::new(0));
        let counter = sent.clone();
        let server = raw(move |mut tcp| {
            let counter = counter.clone();
            async move {
                let _ = read_head(&mut tcp).await;
                if tcp
                    .write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
                    .await
                    .is_err()
                {
                    return;
                }
                let chunk = format!("10000\r\n{}\r\n", "y".repeat(0x10000));
                while tcp.write_all(chunk.as_bytes()).await.is_ok() {
                    counter.fetch_add(0x10000, Ordering::Relaxed);
                }
            }
        })
        .await;
        let config = ClientConfig {
            request_timeout: Duration::from_millis(500),
            max_body_bytes: 4096,
            ..ClientConfig::default()
        };
        let before = rss();
        let f = failure(Client::new(shared(config)).send(get(server.url("/"))).await);
        let grown = rss().saturating_sub(before);
        assert_eq!(f.kind, FailureKind::Timeout);
        assert_eq!(f.message, "request timeout after 500ms");
        let sent = sent.load(Ordering::Relaxed) as u64;
        assert!(sent > 4 << 20, "the server sent only {sent} bytes");
        assert!(
            grown < sent / 2 && grown < 64 << 20,
            "RSS grew by {grown} bytes while {sent} bytes were received"
        );
    })
    .await;
}

#[tokio::test]
async fn large_chunked_body_keeps_only_the_limit() {
    bounded(async {
        let server = raw(|mut tcp| async move {
            let _ = read_head(&mut tcp).await;
            let _ = tcp
                .write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
                .await;
            let chunk = format!("1000\r\n{}\r\n", "z".repeat(0x1000));
            for _ in 0..1000 {
                if tcp.write_all(chunk.as_bytes()).await.is_err() {
                    return;
                }
            }
            let _ = tcp.write_all(b"0\r\n\r\n").await;
        })
        .await;
        let config = ClientConfig {
            max_body_bytes: 10_000,
            ..ClientConfig::default()
        };
        let r = Client::new(shared(config))
            .send(get(server.url("/")))
            .await
            .unwrap();
        assert_eq!(r.body.len(), 10_000);
        assert!(r.body.iter().all(|&b| b == b'z'));
        assert!(r.body_truncated);
        assert_eq!(r.bytes_received, 0x1000 * 1000);
    })
    .await;
}

#[tokio::test]
async fn unsupported_scheme_fails_cleanly() {
    bounded(async {
        let mut client = Client::new(shared(ClientConfig::default()));
        let f = failure(client.send(get("ftp://127.0.0.1/x".parse().unwrap())).await);
        assert_eq!(f.kind, FailureKind::Connect);
        assert_eq!(f.message, "unsupported URI scheme");
    })
    .await;
}

/// Heap per idle keep-alive client: run with
/// `cargo test --release -p mynah-engine --test client -- --ignored --nocapture idle_client_memory`.
#[test]
#[ignore]
fn idle_client_memory() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let server = raw(|mut tcp| async move {
            while read_head(&mut tcp).await.is_some() {
                if tcp
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                    .await
                    .is_err()
                {
                    return;
                }
            }
        })
        .await;
        let shared = shared(ClientConfig::default());
        let n = 2000;
        // Warm up the runtime, the allocator and the server side once.
        let mut warm = Vec::new();
        for _ in 0..n {
            let mut c = Client::new(shared.clone());
            c.send(get(server.url("/"))).await.unwrap();
            warm.push(c);
        }
        drop(warm);
        tokio::time::sleep(Duration::from_millis(200)).await;
        // The server's side of each connection lives in this process too: measure it alone.
        let base = rss();
        let mut streams = Vec::new();
        for _ in 0..n {
            let mut tcp = TcpStream::connect(server.addr).await.unwrap();
            tcp.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
            let mut buf = [0u8; 64];
            let _ = tcp.read(&mut buf).await.unwrap();
            streams.push(tcp);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        let raw_per = (rss() - base) / n;
        drop(streams);
        tokio::time::sleep(Duration::from_millis(200)).await;

        let before = rss();
        let mut clients = Vec::with_capacity(n as usize);
        for _ in 0..n {
            let mut c = Client::new(shared.clone());
            c.send(get(server.url("/"))).await.unwrap();
            clients.push(c);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        let per = (rss() - before) / n;
        println!(
            "idle keep-alive client + server side: {per} bytes; raw socket + server side: {raw_per} bytes; client alone ~{} bytes",
            per.saturating_sub(raw_per)
        );
        drop(clients);
    });
}

/// A request's future is kept small (connect and HTTP/2 are boxed), because it lives inside
/// every virtual user's task: its size is paid per user even while the user waits.
#[tokio::test]
async fn the_request_future_stays_small() {
    let mut client = Client::new(shared(ClientConfig::default()));
    let fut = client.send(get("http://127.0.0.1:1/".parse().unwrap()));
    let size = std::mem::size_of_val(&fut);
    assert!(size <= 4096, "Client::send's future is {size} bytes");
}
