//! The HTTP side: routes, the guard (host, authentication, cross-site refusal), the SSE stream.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use base64::Engine as _;
use futures_util::stream::{self, Stream};
use mynah_engine::UsersChange;
use serde::Deserialize;
use serde_json::json;

use crate::{lock, parse_run_time, Auth, Dashboard, Download, Mode, Phase, StartRequest};

const INDEX_HTML: &str = include_str!("../assets/index.html");
const APP_JS: &str = include_str!("../assets/app.js");
const STYLE_CSS: &str = include_str!("../assets/style.css");
const FAVICON: &[u8] = include_bytes!("../assets/favicon.svg");

/// Paths of the embedded scripts, styles and icon.
const STATIC_ASSETS: [&str; 3] = ["/app.js", "/style.css", "/favicon.svg"];

/// Most users the page may ask for at once (a typo guard, not a capacity limit).
pub const MAX_USERS: u64 = 1_000_000;

pub(crate) fn router(d: Dashboard) -> Router {
    Router::new()
        .route(
            "/",
            get(|| async { asset("text/html; charset=utf-8", INDEX_HTML) }),
        )
        .route(
            "/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", APP_JS) }),
        )
        .route(
            "/style.css",
            get(|| async { asset("text/css; charset=utf-8", STYLE_CSS) }),
        )
        .route(
            "/favicon.svg",
            get(|| async { ([(header::CONTENT_TYPE, "image/svg+xml")], FAVICON) }),
        )
        .route("/api/setup", get(setup))
        .route("/api/events", get(events))
        .route("/api/start", post(start))
        .route("/api/users", post(users))
        .route("/api/stop", post(stop))
        .route("/api/reset", post(reset))
        .route("/download/{name}", get(download))
        .layer(middleware::from_fn_with_state(d.clone(), guard))
        .with_state(d)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

fn refuse(status: StatusCode, message: impl Into<String>) -> Response {
    (status, axum::Json(json!({"error": message.into()}))).into_response()
}

/// Constant-time comparison, so a wrong secret takes as long as a nearly right one.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn authorized(auth: &Auth, headers: &HeaderMap, query: Option<&str>) -> bool {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    match auth {
        Auth::Basic { user, password } => {
            let Some(b64) = given.strip_prefix("Basic ") else {
                return false;
            };
            let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(b64.trim()) else {
                return false;
            };
            same(&raw, format!("{user}:{password}").as_bytes())
        }
        Auth::Token(token) => {
            if let Some(t) = given.strip_prefix("Bearer ") {
                return same(t.trim().as_bytes(), token.as_bytes());
            }
            query.is_some_and(|q| {
                q.split('&').any(|kv| {
                    kv.strip_prefix("token=")
                        .is_some_and(|v| same(percent_decode(v).as_bytes(), token.as_bytes()))
                })
            })
        }
    }
}

pub(crate) fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = |c: u8| (c as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(if b[i] == b'+' { b' ' } else { b[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `localhost`, `127.x.y.z` or `[::1]`, with or without a port.
pub(crate) fn loopback_host(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        host.rsplit_once(':').map_or(host, |(h, _)| h)
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Every request: a loopback dashboard answers only to loopback host names (a DNS-rebinding
/// page cannot reach it); an exposed one asks for credentials; control requests (POST) must be
/// same-origin JSON.
async fn guard(State(d): State<Dashboard>, req: Request, next: Next) -> Response {
    let headers = req.headers();
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    match &d.inner.auth {
        None if d.inner.loopback && !loopback_host(&host) => {
            return refuse(
                StatusCode::FORBIDDEN,
                format!(
                    "this dashboard answers only on loopback addresses, not Host {host:?}; \
                     open it as http://127.0.0.1:PORT/"
                ),
            );
        }
        // The page's own scripts and styles are the same for everyone (embedded in the binary):
        // with a token they load without it, as `<script src>` cannot send it; the page itself,
        // the API and the downloads need it.
        Some(Auth::Token(_)) if STATIC_ASSETS.contains(&req.uri().path()) => {}
        Some(auth) if !authorized(auth, headers, req.uri().query()) => {
            let mut r = refuse(
                StatusCode::UNAUTHORIZED,
                match auth {
                    Auth::Basic { .. } => "log in with the --web-auth user and password",
                    Auth::Token(_) => "add ?token=SECRET (the --web-auth token) to the URL",
                },
            );
            if matches!(auth, Auth::Basic { .. }) {
                r.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"mynah\""),
                );
            }
            return r;
        }
        _ => {}
    }
    if req.method() == Method::POST {
        if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
            if site != "same-origin" && site != "none" {
                return refuse(
                    StatusCode::FORBIDDEN,
                    format!("cross-site control request refused (Sec-Fetch-Site: {site})"),
                );
            }
        }
        if let Some(origin) = headers.get(header::ORIGIN) {
            let origin = origin.to_str().unwrap_or("");
            let expected = [format!("http://{host}"), format!("https://{host}")];
            if !expected.iter().any(|e| e.eq_ignore_ascii_case(origin)) {
                return refuse(
                    StatusCode::FORBIDDEN,
                    format!("cross-site control request refused (Origin {origin:?} is not this dashboard)"),
                );
            }
        }
        let json = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|c| c.starts_with("application/json"));
        if !json {
            return refuse(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "control requests take a JSON body (Content-Type: application/json)",
            );
        }
    }
    next.run(req).await
}

async fn setup(State(d): State<Dashboard>) -> Response {
    axum::Json(&d.inner.setup).into_response()
}

/// The page's live feed: first the chart history (`history` event), then an `update` event at
/// least once a second. A slow reader skips to the latest update instead of queueing them.
async fn events(State(d): State<Dashboard>) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let history = d.history_json();
    let rx = d.inner.updates.subscribe();
    let first = Event::default().event("history").data(history);
    let updates = stream::unfold((rx, true), |(mut rx, first)| async move {
        if !first && rx.changed().await.is_err() {
            return None;
        }
        let text: Arc<str> = rx.borrow_and_update().clone();
        Some((
            Ok(Event::default().event("update").data(&*text)),
            (rx, false),
        ))
    });
    Sse::new(stream::once(async { Ok(first) }).chain_updates(updates))
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(10)))
}

trait ChainUpdates: Stream + Sized {
    fn chain_updates<S: Stream<Item = Self::Item>>(self, s: S) -> stream::Chain<Self, S> {
        futures_util::StreamExt::chain(self, s)
    }
}

impl<T: Stream> ChainUpdates for T {}

/// The JSON body (an empty body reads as `{}`), or the message of a 400 answer.
fn parse_json<T: for<'de> Deserialize<'de>>(body: &Bytes) -> Result<T, String> {
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        &b"{}"[..]
    } else {
        &body[..]
    };
    serde_json::from_slice(body).map_err(|e| format!("bad JSON body: {e}"))
}

async fn start(State(d): State<Dashboard>, body: Bytes) -> Response {
    let req: StartRequest = match parse_json(&body) {
        Ok(r) => r,
        Err(e) => return refuse(StatusCode::BAD_REQUEST, e),
    };
    if d.inner.setup.mode == Mode::Replay {
        return refuse(
            StatusCode::CONFLICT,
            "a replay starts from the command line (its recording sets the load); the page watches and can stop it",
        );
    }
    if let Some(u) = req.users {
        if u == 0 || u > MAX_USERS {
            return refuse(
                StatusCode::BAD_REQUEST,
                format!("users must be between 1 and {MAX_USERS}"),
            );
        }
    }
    if let Some(r) = req.spawn_rate {
        if !(r.is_finite() && r > 0.0) {
            return refuse(
                StatusCode::BAD_REQUEST,
                "spawn rate must be a number above 0",
            );
        }
    }
    if let Some(t) = req.run_time.as_deref().filter(|t| !t.trim().is_empty()) {
        if let Err(e) = parse_run_time(t) {
            return refuse(StatusCode::BAD_REQUEST, e);
        }
    }
    {
        let mut st = lock(&d.inner.state);
        if matches!(st.phase, Phase::Starting | Phase::Running | Phase::Stopping) {
            return refuse(StatusCode::CONFLICT, "a run is going on: stop it first");
        }
        st.phase = Phase::Starting;
        st.message = None;
    }
    if d.inner.start_tx.try_send(req).is_err() {
        return refuse(StatusCode::CONFLICT, "a start is already pending");
    }
    d.publish();
    (StatusCode::ACCEPTED, axum::Json(json!({"ok": true}))).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UsersBody {
    users: u64,
    spawn_rate: Option<f64>,
}

async fn users(State(d): State<Dashboard>, body: Bytes) -> Response {
    let b: UsersBody = match parse_json(&body) {
        Ok(r) => r,
        Err(e) => return refuse(StatusCode::BAD_REQUEST, e),
    };
    if b.users > MAX_USERS {
        return refuse(
            StatusCode::BAD_REQUEST,
            format!("users must be at most {MAX_USERS}"),
        );
    }
    let spawn_rate = b.spawn_rate.or(d.inner.setup.spawn_rate).unwrap_or(1.0);
    if !(spawn_rate.is_finite() && spawn_rate > 0.0) {
        return refuse(
            StatusCode::BAD_REQUEST,
            "spawn rate must be a number above 0",
        );
    }
    let st = lock(&d.inner.state);
    let Some(control) = &st.control else {
        return refuse(StatusCode::CONFLICT, "no run is going on");
    };
    if d.inner.setup.mode == Mode::Replay || st.open_model {
        return refuse(
            StatusCode::CONFLICT,
            "this run's load is a rate (open model or replay), not a user count: it cannot be changed here",
        );
    }
    control.set_users(UsersChange {
        users: b.users,
        spawn_rate,
    });
    (StatusCode::OK, axum::Json(json!({"ok": true}))).into_response()
}

async fn stop(State(d): State<Dashboard>, body: Bytes) -> Response {
    if let Err(e) = parse_json::<serde_json::Value>(&body) {
        return refuse(StatusCode::BAD_REQUEST, e);
    }
    let mut st = lock(&d.inner.state);
    let Some(control) = &st.control else {
        return refuse(StatusCode::CONFLICT, "no run is going on");
    };
    control.stop();
    st.phase = Phase::Stopping;
    drop(st);
    d.publish();
    (StatusCode::OK, axum::Json(json!({"ok": true}))).into_response()
}

async fn reset(State(d): State<Dashboard>, body: Bytes) -> Response {
    if let Err(e) = parse_json::<serde_json::Value>(&body) {
        return refuse(StatusCode::BAD_REQUEST, e);
    }
    let st = lock(&d.inner.state);
    let Some(control) = &st.control else {
        return refuse(StatusCode::CONFLICT, "no run is going on");
    };
    if d.inner.setup.mode == Mode::Replay {
        return refuse(
            StatusCode::CONFLICT,
            "a replay's statistics cannot be reset while it runs",
        );
    }
    control.reset_stats();
    (StatusCode::OK, axum::Json(json!({"ok": true}))).into_response()
}

async fn download(State(d): State<Dashboard>, Path(name): Path<String>) -> Response {
    let Some(kind) = Download::from_name(&name) else {
        return refuse(StatusCode::NOT_FOUND, format!("no download named {name:?}"));
    };
    match d.download(kind).await {
        Ok(body) => (
            [
                (header::CONTENT_TYPE, kind.content_type().to_string()),
                (
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"{name}\""),
                ),
            ],
            body,
        )
            .into_response(),
        Err((status, message)) => refuse(
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            message,
        ),
    }
}
