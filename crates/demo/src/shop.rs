//! The demo shop: a small web shop with the behaviour that makes load tests interesting.
//!
//! | request | behaviour |
//! |---|---|
//! | `GET /` | the hot home page (HTML), about 1 ms |
//! | `GET /articles/{id}` | article pages 1..=500 (HTML, 2–8 KiB), 2–6 ms; 404 beyond; 0.3% answer 503 |
//! | `GET /search?q=..` | JSON results, 5–25 ms; queries for [`SLOW_TERMS`] scan "everything": 120–300 ms |
//! | `POST /login` JSON `{"user": ..}` | a demo sign-in by user name (`user1`..`user200`): 200 `{"token": ..}` and `Set-Cookie: session=..`; 401 for other names |
//! | `GET /account` | the signed-in user (session cookie or `Authorization: Bearer`), else 401 |
//! | `GET /api/cart` | the cart's size, signed in, else 401 |
//! | `POST /api/cart` JSON `{"item": ..}` | 201 `{"received": .., "cart_size": ..}`, 3–8 ms; 3% fail with 500; 401 when not signed in |
//! | `POST /logout` | 204, clears the cookie |
//! | `GET /static/app.js`, `/static/style.css` | cacheable assets |
//!
//! The home and article pages give a browser without one a `vsid` visitor cookie.
//!
//! Sign-in takes a user name only, so that a recording masked by mynah's default policy (which
//! masks passwords, tokens and cookies) still replays: the issued session values are mapped by
//! `mynah replay`, and nothing secret is needed to sign in again.

use std::collections::hash_map::RandomState;
use std::convert::Infallible;
use std::hash::BuildHasher;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::sync::oneshot;

/// Search terms that make the search slow (a full scan), for the demo's slow endpoint.
pub const SLOW_TERMS: &[&str] = &["sale", "gift", "vintage"];
/// Articles that exist.
pub const ARTICLES: u64 = 500;
/// Users who may sign in: `user1` to `user{USERS}`.
pub const USERS: u64 = 200;
/// Largest request body read.
const MAX_BODY: usize = 64 << 10;

type Resp = Response<Full<Bytes>>;

/// A running shop; stops when dropped or on [`Shop::stop`].
pub struct Shop {
    addr: SocketAddr,
    state: Arc<State>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

struct State {
    key: RandomState,
    requests: AtomicU64,
    errors: AtomicU64,
}

impl Shop {
    /// Starts the shop on `addr` (port 0 for any free port) on its own thread and runtime.
    pub fn start(addr: SocketAddr) -> std::io::Result<Shop> {
        let listener = std::net::TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State {
            key: RandomState::new(),
            requests: AtomicU64::new(0),
            errors: AtomicU64::new(0),
        });
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("mynah-demo-shop")
            .enable_all()
            .build()?;
        let (stop_tx, stop_rx) = oneshot::channel();
        let st = state.clone();
        let thread = std::thread::Builder::new()
            .name("mynah-demo-shop".into())
            .spawn(move || {
                let served = rt.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener)?;
                    accept_loop(listener, st, stop_rx).await;
                    Ok::<_, std::io::Error>(())
                });
                if let Err(e) = served {
                    eprintln!("mynah demo shop: {e}");
                }
                rt.shutdown_timeout(Duration::from_secs(1));
            })?;
        Ok(Shop {
            addr,
            state,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }

    /// Where the shop listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Requests answered so far, and how many of them were server errors (5xx).
    pub fn served(&self) -> (u64, u64) {
        (
            self.state.requests.load(Ordering::Relaxed),
            self.state.errors.load(Ordering::Relaxed),
        )
    }

    /// Stops accepting and waits for the server thread.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Shop {
    fn drop(&mut self) {
        self.shutdown();
    }
}

async fn accept_loop(
    listener: tokio::net::TcpListener,
    state: Arc<State>,
    mut stop: oneshot::Receiver<()>,
) {
    let builder = Arc::new(auto::Builder::new(TokioExecutor::new()));
    loop {
        tokio::select! {
            _ = &mut stop => return,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let state = state.clone();
                let builder = builder.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| {
                        let state = state.clone();
                        async move { Ok::<_, Infallible>(handle(&state, req).await) }
                    });
                    let _ = builder
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        }
    }
}

async fn handle(state: &State, req: Request<Incoming>) -> Resp {
    state.requests.fetch_add(1, Ordering::Relaxed);
    // Like most sites, the shop gives every browser a visitor id on its first page view, so
    // anonymous visits can be told apart (and `mynah synth` splits sessions by it).
    let page = req.uri().path() == "/" || req.uri().path().starts_with("/articles/");
    let new_visitor = page && !has_cookie(&req, "vsid");
    let mut resp = route(state, req).await;
    if new_visitor {
        if let Ok(v) = format!("vsid={:016x}; Path=/", fastrand::u64(..)).parse() {
            resp.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    if resp.status().is_server_error() {
        state.errors.fetch_add(1, Ordering::Relaxed);
    }
    resp
}

async fn route(state: &State, req: Request<Incoming>) -> Resp {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let user = signed_in(state, &req);
    let get = method == Method::GET || method == Method::HEAD;
    match (get, method.as_str(), path.as_str()) {
        (true, _, "/") => {
            pause(1, 2).await;
            html(StatusCode::OK, home_page())
        }
        (true, _, "/static/app.js") => asset("application/javascript", APP_JS),
        (true, _, "/static/style.css") => asset("text/css", STYLE_CSS),
        (true, _, p) if p.starts_with("/articles/") => {
            let id = p["/articles/".len()..].parse::<u64>().ok();
            match id {
                Some(id) if (1..=ARTICLES).contains(&id) => {
                    pause(2, 6).await;
                    if fastrand::u32(..1000) < 3 {
                        return text(StatusCode::SERVICE_UNAVAILABLE, "try again later\n");
                    }
                    html(StatusCode::OK, article_page(id))
                }
                _ => text(StatusCode::NOT_FOUND, "no such article\n"),
            }
        }
        (true, _, "/search") => {
            let q = query_value(&query, "q").unwrap_or_default();
            if SLOW_TERMS.iter().any(|t| q.contains(t)) {
                pause(120, 300).await;
            } else {
                pause(5, 25).await;
            }
            json(StatusCode::OK, search_results(&q))
        }
        (true, _, "/account") => match user {
            Some(u) => {
                pause(1, 3).await;
                json(
                    StatusCode::OK,
                    serde_json::json!({ "user": format!("user{u}") }),
                )
            }
            None => text(StatusCode::UNAUTHORIZED, "sign in first\n"),
        },
        (true, _, "/api/cart") => match user {
            Some(u) => json(
                StatusCode::OK,
                serde_json::json!({ "user": format!("user{u}"), "items": (u * 7) % 5 }),
            ),
            None => text(StatusCode::UNAUTHORIZED, "sign in first\n"),
        },
        (false, "POST", "/login") => {
            let Some(body) = read_json(req).await else {
                return text(StatusCode::BAD_REQUEST, "expected JSON {\"user\": ..}\n");
            };
            let index = body
                .get("user")
                .and_then(|u| u.as_str())
                .and_then(|u| u.strip_prefix("user"))
                .and_then(|n| n.parse::<u64>().ok())
                .filter(|n| (1..=USERS).contains(n));
            let Some(index) = index else {
                return text(StatusCode::UNAUTHORIZED, "unknown user\n");
            };
            pause(3, 8).await;
            let token = issue(state, index);
            let mut resp = json(StatusCode::OK, serde_json::json!({ "token": token }));
            if let Ok(v) = format!("session={token}; Path=/; HttpOnly").parse() {
                resp.headers_mut().insert(header::SET_COOKIE, v);
            }
            resp
        }
        (false, "POST", "/api/cart") => {
            if user.is_none() {
                return text(StatusCode::UNAUTHORIZED, "sign in first\n");
            }
            let Some(body) = read_json(req).await else {
                return text(StatusCode::BAD_REQUEST, "expected JSON {\"item\": ..}\n");
            };
            pause(3, 8).await;
            if fastrand::u32(..100) < 3 {
                return text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "cart service unavailable\n",
                );
            }
            json(
                StatusCode::CREATED,
                serde_json::json!({ "received": body, "cart_size": fastrand::u32(1..9) }),
            )
        }
        (false, "POST", "/logout") => {
            let mut resp = Response::new(Full::new(Bytes::new()));
            *resp.status_mut() = StatusCode::NO_CONTENT;
            if let Ok(v) = "session=; Path=/; Max-Age=0".parse() {
                resp.headers_mut().insert(header::SET_COOKIE, v);
            }
            resp
        }
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

/// Sleeps a uniformly random time between `lo` and `hi` milliseconds (the shop's "work").
async fn pause(lo: u64, hi: u64) {
    let us = fastrand::u64(lo * 1000..=hi * 1000);
    tokio::time::sleep(Duration::from_micros(us)).await;
}

/// A session value: the user's number and a keyed hash of it and a nonce. Stateless, so the
/// shop's memory does not grow with sign-ins.
fn issue(state: &State, user: u64) -> String {
    let nonce = fastrand::u64(..);
    format!("{user:x}.{nonce:x}.{:016x}", sign(state, user, nonce))
}

fn sign(state: &State, user: u64, nonce: u64) -> u64 {
    state.key.hash_one((user, nonce, "mynah-demo"))
}

fn verify(state: &State, token: &str) -> Option<u64> {
    let mut parts = token.trim().split('.');
    let user = u64::from_str_radix(parts.next()?, 16).ok()?;
    let nonce = u64::from_str_radix(parts.next()?, 16).ok()?;
    let sig = u64::from_str_radix(parts.next()?, 16).ok()?;
    (parts.next().is_none() && sig == sign(state, user, nonce)).then_some(user)
}

/// The signed-in user, from the session cookie or a bearer token.
fn signed_in(state: &State, req: &Request<Incoming>) -> Option<u64> {
    let headers = req.headers();
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .and_then(|t| verify(state, t));
    bearer.or_else(|| {
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|c| c.trim().strip_prefix("session="))
            .find_map(|t| verify(state, t))
    })
}

fn has_cookie(req: &Request<Incoming>, name: &str) -> bool {
    req.headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .any(|c| c.trim().split_once('=').is_some_and(|(n, _)| n == name))
}

async fn read_json(req: Request<Incoming>) -> Option<serde_json::Value> {
    let body = Limited::new(req.into_body(), MAX_BODY)
        .collect()
        .await
        .ok()?
        .to_bytes();
    serde_json::from_slice(&body).ok()
}

fn query_value(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then(|| v.replace('+', " ").to_ascii_lowercase())
    })
}

fn html(status: StatusCode, body: String) -> Resp {
    respond(status, "text/html; charset=utf-8", Bytes::from(body))
}

fn text(status: StatusCode, body: &'static str) -> Resp {
    respond(
        status,
        "text/plain; charset=utf-8",
        Bytes::from_static(body.as_bytes()),
    )
}

fn json(status: StatusCode, value: serde_json::Value) -> Resp {
    respond(status, "application/json", Bytes::from(value.to_string()))
}

fn asset(kind: &'static str, body: &'static str) -> Resp {
    let mut resp = respond(StatusCode::OK, kind, Bytes::from_static(body.as_bytes()));
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        http::HeaderValue::from_static("public, max-age=3600"),
    );
    resp
}

fn respond(status: StatusCode, kind: &'static str, body: Bytes) -> Resp {
    let mut resp = Response::new(Full::new(body));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, http::HeaderValue::from_static(kind));
    resp
}

fn home_page() -> String {
    let mut s = String::from(
        "<!doctype html><html><head><title>mynah demo shop</title>\
         <link rel=stylesheet href=/static/style.css></head><body><h1>Today's picks</h1><ul>",
    );
    for id in 1..=30 {
        s.push_str(&format!(
            "<li><a href=/articles/{id}>Article {id}: {}</a></li>",
            title(id)
        ));
    }
    s.push_str("</ul><script src=/static/app.js></script></body></html>");
    s
}

fn article_page(id: u64) -> String {
    // Longer pages for some articles: response sizes vary like a real site's.
    let paragraphs = 3 + (id * 7919) % 12;
    let mut s = format!(
        "<!doctype html><html><head><title>{}</title></head><body><h1>article {id}: {}</h1>",
        title(id),
        title(id)
    );
    for p in 0..paragraphs {
        s.push_str(&format!(
            "<p>Paragraph {p} of article {id}. Hand-made goods, honest prices and \
             careful shipping: everything a small shop promises its customers, \
             written out at some length so that pages have realistic sizes.</p>"
        ));
    }
    s.push_str("</body></html>");
    s
}

fn title(id: u64) -> &'static str {
    const TITLES: &[&str] = &[
        "linen shirt",
        "oak table",
        "tea set",
        "wool scarf",
        "desk lamp",
        "rain boots",
        "travel mug",
        "notebook",
    ];
    TITLES[(id % TITLES.len() as u64) as usize]
}

fn search_results(q: &str) -> serde_json::Value {
    let n = 1 + q.len() % 7;
    let results: Vec<_> = (0..n as u64)
        .map(|i| {
            let id = 1 + (q.len() as u64 * 31 + i * 17) % ARTICLES;
            serde_json::json!({ "id": id, "title": title(id) })
        })
        .collect();
    serde_json::json!({ "query": q, "results": results })
}

const APP_JS: &str =
    "document.addEventListener('DOMContentLoaded', () => { console.log('shop ready'); });\n";
const STYLE_CSS: &str = "body { font-family: sans-serif; max-width: 40em; margin: auto; }\n";

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> State {
        State {
            key: RandomState::new(),
            requests: AtomicU64::new(0),
            errors: AtomicU64::new(0),
        }
    }

    #[test]
    fn tokens_verify_and_forgeries_do_not() {
        let s = state();
        let t = issue(&s, 42);
        assert_eq!(verify(&s, &t), Some(42));
        let forged = t.replacen("2a.", "2b.", 1);
        assert_eq!(verify(&s, &forged), None);
        assert_eq!(verify(&s, "garbage"), None);
        assert_eq!(verify(&s, ""), None);
        assert_eq!(verify(&state(), &t), None, "another shop's token");
    }

    #[test]
    fn query_values() {
        assert_eq!(
            query_value("q=Gift+Box&page=2", "q").as_deref(),
            Some("gift box")
        );
        assert_eq!(query_value("page=2", "q"), None);
        assert_eq!(query_value("q", "q").as_deref(), Some(""));
    }
}
