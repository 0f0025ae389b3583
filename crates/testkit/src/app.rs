//! An HTTP API server for mynah's integration tests and benchmarks.
//!
//! [`App::start`] (or [`start`]) binds `127.0.0.1:0` (or
//! [`AppConfig::addr`]) and serves HTTP/1.1 with keep-alive and HTTP/2 with
//! prior knowledge (h2c) on the same port, on its own OS thread with its own
//! multi-threaded tokio runtime. The returned [`AppHandle`] stops the server
//! on [`AppHandle::shutdown`] or when dropped.
//!
//! # Routes
//!
//! | request | response | stats route name |
//! |---|---|---|
//! | `GET /` | 200 `home` | `home` |
//! | `GET /articles/{id}` | 200 `article {id}` | `article` |
//! | `GET /search?q=..` | 200 JSON `{"query":q,"results":[{"id":1,"title":".."},..3]}` | `search` |
//! | `POST /login` JSON `{"user":..,"password":..}` | 200 `{"token":"<hex>"}` + `Set-Cookie: session=<hex>; Path=/`; 401 when the account is unknown; 400 on bad JSON | `login` |
//! | `GET /private` | 200 `{"user":..}` with `Authorization: Bearer <token from /login>`, else 401 | `private` |
//! | `GET /api/me` | same as `/private` | `me` |
//! | `POST /api/cart` (JSON) | 201 `{"received":<request JSON>}`; 400 on bad JSON | `cart` |
//! | `GET /delay/{ms}` | sleeps `ms` (≤ 3 600 000) from arrival, then 200 `delayed {ms}ms` | `delay` |
//! | `GET /serial/{ms}` | one request at a time: holds a server-wide lock while sleeping `ms`, then 200 | `serial` |
//! | `GET /accuracy` | sleeps a deterministic cycle of delays, see [`ACCURACY_TRUTH_MS`] | `accuracy` |
//! | any method `/status/{code}` | that status (200..=599, else 400) | `status` |
//! | `GET /account` | 200 `{"user":..}` with a `Cookie: session=<value from /login>` issued by this App, else 401 | `account` |
//! | `GET /catalog/{id}` | 200 JSON `{"id":id,"name":"item {id}","price":..,"stock":..,"generated_at":<unix ms, volatile>}` + `X-Catalog-Version: 7`; 404 JSON when `id` is not a number in 1..=1000000; see [variants](#variants) | `catalog` |
//! | anything else | 404 | `not_found` |
//!
//! [`AppHandle::stats`] counts requests per route and status;
//! [`AppHandle::arrival_window`] gives the arrival times of the first and the
//! latest request (to check the timing of a replay from the server's side).
//!
//! Every response carries `x-server-time-us`: microseconds from the
//! request's arrival to the response (after any delay); `/accuracy` also
//! sends `x-delay-ms`, the nominal delay of that request.
//!
//! `GET` routes also answer `HEAD`. Request bodies are read up to
//! [`MAX_BODY`] bytes (413 beyond). Malformed requests never panic the server.
//!
//! Tokens are stateless (a random nonce, the account index and a keyed hash
//! of both, in hex), so memory stays bounded however many logins a benchmark
//! makes; a token is only valid on the `App` that issued it. The `session`
//! cookie of `/login` is built the same way (32 hex digits: a 32-bit nonce,
//! the account index and a keyed hash), so `/account` can check it without
//! storing sessions; it too is only valid on the `App` that issued it.
//!
//! # Variants
//!
//! [`AppConfig::variant`] (`mynah-testserver app --variant N`) makes an App
//! differ from the default on purpose, to test response comparison. Variant 0
//! is the default behaviour. Variant 1 changes `GET /catalog/{id}` only, and
//! only for these items (everything else, including every other route, is
//! identical to variant 0 apart from volatile values: `Date`,
//! `x-server-time-us`, `generated_at`):
//!
//! | item | variant 1 |
//! |---|---|
//! | 2 | `price` is one more |
//! | 3 | 404 `{"error":"not found"}` |
//! | 4 | `X-Catalog-Version: 8` |
//! | 5 | an extra JSON field `"discount": 10` |
//!
//! # Delays
//!
//! Every delay (`/delay`, `/serial`, `/accuracy`) is measured from the
//! moment the request's head was handed to the service (for `/serial`: from
//! the moment the lock is acquired) and slept precisely: a coarse tokio
//! timer wakes up ~2 ms early and the rest is slept with `std::thread::sleep`
//! on the blocking pool, so the server-side delay is never short and is late
//! only by thread wake-up latency: measured on a busy 2-core box (debug
//! build), `x-server-time-us` of `/delay/10` was 10.26..10.5 ms (median
//! 10.36), against 0..~1.5 ms late for a plain `tokio::time::sleep`. Under
//! heavy CPU load (e.g. the load generator saturating the same cores) the
//! lateness grows with scheduling delay; compare with `x-server-time-us`.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::hash::{BuildHasher, Hasher};
use std::net::{SocketAddr, TcpListener as StdTcpListener};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde_json::{json, Value};
use tokio::sync::oneshot;

use crate::util::{percent_decode, random_hex, sleep_until_precise};

/// Largest request body read, in bytes (16 MiB); larger bodies get 413.
pub const MAX_BODY: usize = 16 * 1024 * 1024;

/// Largest delay accepted by `/delay/{ms}` and `/serial/{ms}` (one hour).
pub const MAX_DELAY_MS: u64 = 3_600_000;

/// The `/accuracy` cycle: `(count per 100 consecutive requests, delay ms)`,
/// in rank order. Sorted, ranks 1-30 are 5 ms, 31-70 are 20 ms, 71-92 are
/// 50 ms, 93-97 are 100 ms and 98-100 are 250 ms.
pub const ACCURACY_CYCLE: [(u32, u64); 5] = [(30, 5), (40, 20), (22, 50), (5, 100), (3, 250)];

/// True server-side percentiles of `/accuracy`, as `(percentile, ms)`:
/// p50 = 20 ms, p95 = 100 ms, p99 = 250 ms.
///
/// Each percentile sits strictly inside a run of equal delays (p50 at rank
/// 50 of 31-70, p95 at rank 95 of 93-97, p99 at rank 99 of 98-100), so
/// nearest-rank, HdrHistogram and interpolating estimators all agree, and a
/// run that is not a whole number of cycles (or started mid-cycle) moves them
/// by at most a rank. Measured client-side latencies add the network and
/// client overhead on top of these.
pub const ACCURACY_TRUTH_MS: [(f64, f64); 3] = [(50.0, 20.0), (95.0, 100.0), (99.0, 250.0)];

/// Mean server-side delay of `/accuracy` over a whole cycle, in ms.
pub const ACCURACY_MEAN_MS: f64 = 33.0;

/// Delay of the `n`-th `/accuracy` request (0-based, counted per `App`).
///
/// Request `n` gets rank `(n * 37) % 100` of [`ACCURACY_CYCLE`], so every
/// 100 consecutive requests have exactly the cycle's proportions and slow
/// requests are spread out rather than bunched.
pub fn accuracy_delay_ms(n: u64) -> u64 {
    let rank = ((n % 100) * 37 % 100) as u32;
    let mut upto = 0;
    for (count, ms) in ACCURACY_CYCLE {
        upto += count;
        if rank < upto {
            return ms;
        }
    }
    unreachable!("ACCURACY_CYCLE sums to 100")
}

/// Route names as reported by [`AppStats::routes`].
pub const ROUTES: [&str; 14] = [
    "home",
    "article",
    "search",
    "login",
    "private",
    "me",
    "cart",
    "delay",
    "serial",
    "accuracy",
    "status",
    "not_found",
    "catalog",
    "account",
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Route {
    Home,
    Article,
    Search,
    Login,
    Private,
    Me,
    Cart,
    Delay,
    Serial,
    Accuracy,
    Status,
    NotFound,
    Catalog,
    Account,
}

impl Route {
    fn index(self) -> usize {
        self as usize
    }
}

/// Configuration of an [`App`].
#[derive(Clone, Debug)]
pub struct AppConfig {
    /// Address to bind; `None` binds `127.0.0.1:0` (a free port).
    pub addr: Option<SocketAddr>,
    /// Valid `(user, password)` accounts for `POST /login`.
    /// Default: `user1`..`user100` with passwords `pass1`..`pass100`.
    pub accounts: Vec<(String, String)>,
    /// tokio worker threads of the server's runtime (default 2, minimum 1).
    pub worker_threads: usize,
    /// Behaviour variant (default 0); see [variants](#variants).
    pub variant: u8,
}

impl Default for AppConfig {
    fn default() -> Self {
        AppConfig {
            addr: None,
            accounts: default_accounts(),
            worker_threads: 2,
            variant: 0,
        }
    }
}

/// `user1`..`user100` with passwords `pass1`..`pass100`.
pub fn default_accounts() -> Vec<(String, String)> {
    (1..=100)
        .map(|i| (format!("user{i}"), format!("pass{i}")))
        .collect()
}

/// Counters of an [`App`], see [`AppHandle::stats`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AppStats {
    /// Requests per route name (see [`ROUTES`]); only routes hit at least
    /// once appear. Counted when the request arrives.
    pub routes: BTreeMap<String, u64>,
    /// All requests (counted on arrival).
    pub total: u64,
    /// Responses with status 401.
    pub unauthorized: u64,
    /// Responses per status code (counted when the response is produced).
    pub statuses: BTreeMap<u16, u64>,
    /// Requests that arrived over HTTP/2.
    pub http2: u64,
}

impl AppStats {
    /// Requests on route `name` (0 if never hit).
    pub fn route(&self, name: &str) -> u64 {
        self.routes.get(name).copied().unwrap_or(0)
    }
}

/// The API server; see the module docs for its routes.
pub struct App;

impl App {
    /// Starts the server on its own thread; see [`start`].
    pub fn start(config: AppConfig) -> std::io::Result<AppHandle> {
        start(config)
    }
}

/// Handle to a running [`App`]; dropping it stops the server.
pub struct AppHandle {
    /// The bound address.
    pub addr: SocketAddr,
    state: Arc<State>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl AppHandle {
    /// `http://<addr>` (no trailing slash).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A snapshot of the request counters.
    pub fn stats(&self) -> AppStats {
        let s = &self.state;
        let mut routes = BTreeMap::new();
        for (i, name) in ROUTES.iter().enumerate() {
            let n = s.routes[i].load(Ordering::Relaxed);
            if n > 0 {
                routes.insert((*name).to_owned(), n);
            }
        }
        let mut statuses = BTreeMap::new();
        for (code, n) in s.statuses.iter().enumerate() {
            let n = n.load(Ordering::Relaxed);
            if n > 0 {
                statuses.insert(code as u16, n);
            }
        }
        AppStats {
            routes,
            total: s.total.load(Ordering::Relaxed),
            unauthorized: statuses.get(&401).copied().unwrap_or(0),
            statuses,
            http2: s.http2.load(Ordering::Relaxed),
        }
    }

    /// When the first and the latest request arrived (as their heads were
    /// handed to the service), or `None` before any request. Their difference
    /// is the server-side span of a run, e.g. to check a replay's timing.
    pub fn arrival_window(&self) -> Option<(Instant, Instant)> {
        let s = &self.state;
        let first = s.first_arrival_ns.load(Ordering::Relaxed);
        if first == u64::MAX {
            return None;
        }
        let last = s.last_arrival_ns.load(Ordering::Relaxed);
        Some((
            s.epoch + Duration::from_nanos(first),
            s.epoch + Duration::from_nanos(last),
        ))
    }

    /// Stops accepting, drops every connection and joins the server thread.
    pub fn shutdown(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for AppHandle {
    fn drop(&mut self) {
        self.stop_now();
    }
}

impl std::fmt::Debug for AppHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppHandle")
            .field("addr", &self.addr)
            .finish()
    }
}

struct State {
    /// user -> (password, account index)
    accounts: HashMap<String, (String, usize)>,
    users: Vec<String>,
    /// Keyed hasher for stateless tokens (random keys per App).
    token_key: std::collections::hash_map::RandomState,
    serial: tokio::sync::Mutex<()>,
    accuracy_n: AtomicU64,
    routes: [AtomicU64; ROUTES.len()],
    statuses: Vec<AtomicU64>,
    total: AtomicU64,
    http2: AtomicU64,
    /// [`AppConfig::variant`].
    variant: u8,
    /// Reference point of the arrival times below.
    epoch: Instant,
    /// Nanoseconds from `epoch` to the first request's arrival (`u64::MAX`
    /// until one arrives).
    first_arrival_ns: AtomicU64,
    /// Nanoseconds from `epoch` to the latest request's arrival.
    last_arrival_ns: AtomicU64,
}

impl State {
    fn token_tag(&self, nonce: u64, idx: u64) -> u64 {
        let mut h = self.token_key.build_hasher();
        h.write_u64(nonce);
        h.write_u64(idx);
        h.finish()
    }

    fn issue_token(&self, idx: usize) -> String {
        let nonce = fastrand::u64(..);
        let tag = self.token_tag(nonce, idx as u64);
        format!("{nonce:016x}{:08x}{tag:016x}", idx as u32)
    }

    /// The user of a token issued by this App, if valid.
    fn check_token(&self, token: &str) -> Option<&str> {
        if token.len() != 40 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let nonce = u64::from_str_radix(&token[0..16], 16).ok()?;
        let idx = u64::from_str_radix(&token[16..24], 16).ok()?;
        let tag = u64::from_str_radix(&token[24..40], 16).ok()?;
        if self.token_tag(nonce, idx) != tag {
            return None;
        }
        self.users.get(idx as usize).map(String::as_str)
    }

    /// The keyed hash of a session cookie (a different domain from tokens,
    /// so a token is never a valid session and vice versa).
    fn session_tag(&self, nonce: u32, idx: u32) -> u64 {
        let mut h = self.token_key.build_hasher();
        h.write(b"session");
        h.write_u32(nonce);
        h.write_u32(idx);
        h.finish()
    }

    /// A `session` cookie value: 32 lowercase hex digits.
    fn issue_session(&self, idx: usize) -> String {
        let nonce = random_hex(&mut fastrand::Rng::new(), 4);
        let nonce = u32::from_str_radix(&nonce, 16).expect("hex");
        let tag = self.session_tag(nonce, idx as u32);
        format!("{nonce:08x}{:08x}{tag:016x}", idx as u32)
    }

    /// The user of a session cookie value issued by this App, if valid.
    fn check_session(&self, session: &str) -> Option<&str> {
        if session.len() != 32 || !session.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let nonce = u32::from_str_radix(&session[0..8], 16).ok()?;
        let idx = u32::from_str_radix(&session[8..16], 16).ok()?;
        let tag = u64::from_str_radix(&session[16..32], 16).ok()?;
        if self.session_tag(nonce, idx) != tag {
            return None;
        }
        self.users.get(idx as usize).map(String::as_str)
    }
}

/// Starts an [`App`] on its own thread with its own tokio runtime and
/// returns once the socket is bound (and so accepting connections).
pub fn start(config: AppConfig) -> std::io::Result<AppHandle> {
    let addr = config
        .addr
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)));
    let listener = StdTcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;

    let mut accounts = HashMap::new();
    let mut users = Vec::new();
    for (user, password) in config.accounts {
        if accounts.contains_key(&user) {
            continue;
        }
        accounts.insert(user.clone(), (password, users.len()));
        users.push(user);
    }
    let state = Arc::new(State {
        accounts,
        users,
        token_key: std::collections::hash_map::RandomState::new(),
        serial: tokio::sync::Mutex::new(()),
        accuracy_n: AtomicU64::new(0),
        routes: Default::default(),
        statuses: (0..1000).map(|_| AtomicU64::new(0)).collect(),
        total: AtomicU64::new(0),
        http2: AtomicU64::new(0),
        variant: config.variant,
        epoch: Instant::now(),
        first_arrival_ns: AtomicU64::new(u64::MAX),
        last_arrival_ns: AtomicU64::new(0),
    });

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.worker_threads.max(1))
        .thread_name("mynah-testkit-app")
        .enable_all()
        .build()?;
    let (stop_tx, stop_rx) = oneshot::channel();
    let st = state.clone();
    let thread = std::thread::Builder::new()
        .name("mynah-testkit-app".into())
        .spawn(move || {
            let served = rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener)?;
                accept_loop(listener, st, stop_rx).await;
                Ok::<_, std::io::Error>(())
            });
            if let Err(e) = served {
                eprintln!("mynah-testkit app: {e}");
            }
            rt.shutdown_timeout(Duration::from_secs(1));
        })?;

    Ok(AppHandle {
        addr,
        state,
        stop: Some(stop_tx),
        thread: Some(thread),
    })
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
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    let _ = stream.set_nodelay(true);
                    let state = state.clone();
                    let builder = builder.clone();
                    tokio::spawn(async move {
                        let svc = service_fn(move |req| {
                            let state = state.clone();
                            async move { Ok::<_, Infallible>(handle(&state, req).await) }
                        });
                        let _ = builder.serve_connection(TokioIo::new(stream), svc).await;
                    });
                }
                // EMFILE and friends: back off instead of spinning.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
        }
    }
}

type Resp = Response<Full<Bytes>>;

fn text(status: StatusCode, body: impl Into<String>) -> Resp {
    let mut body: String = body.into();
    if !body.ends_with('\n') {
        body.push('\n');
    }
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(Full::new(Bytes::from(body)))
        .expect("valid response")
}

fn json_resp(status: StatusCode, value: &Value) -> Resp {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(value.to_string())))
        .expect("valid response")
}

fn route_of(method: &Method, path: &str) -> (Route, Option<String>) {
    let get = *method == Method::GET || *method == Method::HEAD;
    let post = *method == Method::POST;
    let one_param = |prefix: &str| -> Option<String> {
        let rest = path.strip_prefix(prefix)?;
        (!rest.is_empty() && !rest.contains('/')).then(|| percent_decode(rest))
    };
    let found = match path {
        "/" if get => Some((Route::Home, None)),
        "/search" if get => Some((Route::Search, None)),
        "/login" if post => Some((Route::Login, None)),
        "/private" if get => Some((Route::Private, None)),
        "/api/me" if get => Some((Route::Me, None)),
        "/api/cart" if post => Some((Route::Cart, None)),
        "/accuracy" if get => Some((Route::Accuracy, None)),
        "/account" if get => Some((Route::Account, None)),
        _ if get && path.starts_with("/catalog/") => {
            one_param("/catalog/").map(|p| (Route::Catalog, Some(p)))
        }
        _ if get && path.starts_with("/articles/") => {
            one_param("/articles/").map(|p| (Route::Article, Some(p)))
        }
        _ if get && path.starts_with("/delay/") => {
            one_param("/delay/").map(|p| (Route::Delay, Some(p)))
        }
        _ if get && path.starts_with("/serial/") => {
            one_param("/serial/").map(|p| (Route::Serial, Some(p)))
        }
        _ if path.starts_with("/status/") => {
            one_param("/status/").map(|p| (Route::Status, Some(p)))
        }
        _ => None,
    };
    found.unwrap_or((Route::NotFound, None))
}

async fn handle(state: &State, req: Request<Incoming>) -> Resp {
    let arrival = Instant::now();
    let (route, param) = route_of(req.method(), req.uri().path());
    state.total.fetch_add(1, Ordering::Relaxed);
    let since = arrival.saturating_duration_since(state.epoch).as_nanos() as u64;
    state.first_arrival_ns.fetch_min(since, Ordering::Relaxed);
    state.last_arrival_ns.fetch_max(since, Ordering::Relaxed);
    if req.version() == hyper::Version::HTTP_2 {
        state.http2.fetch_add(1, Ordering::Relaxed);
    }
    state.routes[route.index()].fetch_add(1, Ordering::Relaxed);
    let mut resp = respond(state, route, param, req, arrival).await;
    let micros = arrival.elapsed().as_micros() as u64;
    resp.headers_mut().insert("x-server-time-us", micros.into());
    let code = resp.status().as_u16() as usize;
    if let Some(c) = state.statuses.get(code) {
        c.fetch_add(1, Ordering::Relaxed);
    }
    resp
}

fn parse_delay(param: Option<String>) -> Option<u64> {
    param?.parse::<u64>().ok().filter(|ms| *ms <= MAX_DELAY_MS)
}

async fn read_json(req: Request<Incoming>) -> Result<Value, Resp> {
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            return Err(if e.is::<http_body_util::LengthLimitError>() {
                text(StatusCode::PAYLOAD_TOO_LARGE, "request body too large")
            } else {
                text(StatusCode::BAD_REQUEST, "could not read request body")
            });
        }
    };
    serde_json::from_slice(&body)
        .map_err(|_| json_resp(StatusCode::BAD_REQUEST, &json!({"error": "invalid json"})))
}

/// The value of the first `session` cookie of the request's `Cookie` headers.
fn session_cookie(req: &Request<Incoming>) -> Option<String> {
    req.headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|kv| kv.trim().strip_prefix("session="))
        .map(|v| v.trim().to_owned())
}

/// `GET /catalog/{id}`; see the module docs (routes and variants).
fn catalog(variant: u8, param: Option<&str>) -> Resp {
    let not_found = || json_resp(StatusCode::NOT_FOUND, &json!({"error": "not found"}));
    let Some(id) = param
        .and_then(|p| p.parse::<u64>().ok())
        .filter(|id| (1..=1_000_000).contains(id))
    else {
        return not_found();
    };
    if variant == 1 && id == 3 {
        return not_found();
    }
    let generated_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let mut price = id * 3 + 9;
    if variant == 1 && id == 2 {
        price += 1;
    }
    let mut body = json!({
        "id": id,
        "name": format!("item {id}"),
        "price": price,
        "stock": (id * 13) % 50,
        "generated_at": generated_at,
    });
    if variant == 1 && id == 5 {
        body["discount"] = json!(10);
    }
    let version = if variant == 1 && id == 4 { "8" } else { "7" };
    let mut resp = json_resp(StatusCode::OK, &body);
    resp.headers_mut().insert(
        "x-catalog-version",
        header::HeaderValue::from_static(version),
    );
    resp
}

fn bearer(req: &Request<Incoming>) -> Option<&str> {
    let v = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

async fn respond(
    state: &State,
    route: Route,
    param: Option<String>,
    req: Request<Incoming>,
    arrival: Instant,
) -> Resp {
    match route {
        Route::Home => text(StatusCode::OK, "home"),
        Route::Article => text(
            StatusCode::OK,
            format!("article {}", param.unwrap_or_default()),
        ),
        Route::Search => {
            let q = req
                .uri()
                .query()
                .unwrap_or("")
                .split('&')
                .find_map(|kv| kv.strip_prefix("q="))
                .map(percent_decode)
                .unwrap_or_default();
            let results: Vec<Value> = (1..=3)
                .map(|i| json!({"id": i, "title": format!("result {i} for {q}")}))
                .collect();
            json_resp(StatusCode::OK, &json!({"query": q, "results": results}))
        }
        Route::Login => {
            let body = match read_json(req).await {
                Ok(v) => v,
                Err(resp) => return resp,
            };
            let user = body.get("user").and_then(Value::as_str);
            let password = body.get("password").and_then(Value::as_str);
            let idx = match (user, password) {
                (Some(u), Some(p)) => match state.accounts.get(u) {
                    Some((pw, idx)) if pw == p => Some(*idx),
                    _ => None,
                },
                _ => None,
            };
            match idx {
                Some(idx) => {
                    let token = state.issue_token(idx);
                    let session = state.issue_session(idx);
                    let mut resp = json_resp(StatusCode::OK, &json!({"token": token}));
                    if let Ok(v) = format!("session={session}; Path=/").parse() {
                        resp.headers_mut().insert(header::SET_COOKIE, v);
                    }
                    resp
                }
                None => json_resp(
                    StatusCode::UNAUTHORIZED,
                    &json!({"error": "invalid credentials"}),
                ),
            }
        }
        Route::Private | Route::Me => match bearer(&req).and_then(|t| state.check_token(t)) {
            Some(user) => json_resp(StatusCode::OK, &json!({"user": user})),
            None => {
                let mut resp =
                    json_resp(StatusCode::UNAUTHORIZED, &json!({"error": "unauthorized"}));
                resp.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    header::HeaderValue::from_static("Bearer"),
                );
                resp
            }
        },
        Route::Account => match session_cookie(&req).and_then(|s| state.check_session(&s)) {
            Some(user) => json_resp(StatusCode::OK, &json!({"user": user})),
            None => json_resp(StatusCode::UNAUTHORIZED, &json!({"error": "unauthorized"})),
        },
        Route::Catalog => catalog(state.variant, param.as_deref()),
        Route::Cart => match read_json(req).await {
            Ok(v) => json_resp(StatusCode::CREATED, &json!({"received": v})),
            Err(resp) => resp,
        },
        Route::Delay => match parse_delay(param) {
            Some(ms) => {
                sleep_until_precise(arrival + Duration::from_millis(ms)).await;
                text(StatusCode::OK, format!("delayed {ms}ms"))
            }
            None => text(StatusCode::BAD_REQUEST, "bad delay"),
        },
        Route::Serial => match parse_delay(param) {
            Some(ms) => {
                let guard = state.serial.lock().await;
                sleep_until_precise(Instant::now() + Duration::from_millis(ms)).await;
                drop(guard);
                text(StatusCode::OK, format!("serial {ms}ms"))
            }
            None => text(StatusCode::BAD_REQUEST, "bad delay"),
        },
        Route::Accuracy => {
            let n = state.accuracy_n.fetch_add(1, Ordering::Relaxed);
            let ms = accuracy_delay_ms(n);
            sleep_until_precise(arrival + Duration::from_millis(ms)).await;
            let mut resp = text(StatusCode::OK, format!("accuracy {ms}ms"));
            resp.headers_mut().insert("x-delay-ms", ms.into());
            resp
        }
        Route::Status => {
            match param
                .and_then(|p| p.parse::<u16>().ok())
                .filter(|c| (200..=599).contains(c))
                .and_then(|c| StatusCode::from_u16(c).ok())
            {
                Some(code) => {
                    let mut resp = text(code, format!("status {}", code.as_u16()));
                    if code == StatusCode::NO_CONTENT || code == StatusCode::NOT_MODIFIED {
                        *resp.body_mut() = Full::new(Bytes::new());
                    }
                    resp
                }
                None => text(StatusCode::BAD_REQUEST, "bad status code"),
            }
        }
        Route::NotFound => text(StatusCode::NOT_FOUND, "not found"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accuracy_cycle_has_the_documented_proportions() {
        assert_eq!(ACCURACY_CYCLE.iter().map(|c| c.0).sum::<u32>(), 100);
        for start in [0u64, 17, 1234] {
            let mut v: Vec<u64> = (start..start + 100).map(accuracy_delay_ms).collect();
            v.sort_unstable();
            let mean = v.iter().sum::<u64>() as f64 / 100.0;
            assert_eq!(mean, ACCURACY_MEAN_MS);
            for (p, ms) in ACCURACY_TRUTH_MS {
                // nearest rank, and its neighbours
                let rank = (p as usize).max(1);
                assert_eq!(v[rank - 1] as f64, ms, "p{p}");
                assert_eq!(v[rank - 2] as f64, ms, "p{p}-1");
                assert_eq!(v[rank] as f64, ms, "p{p}+1");
            }
        }
    }

    #[test]
    fn tokens_round_trip_and_reject_forgeries() {
        let state = State {
            accounts: HashMap::new(),
            users: vec!["a".into(), "b".into()],
            token_key: Default::default(),
            serial: Default::default(),
            accuracy_n: AtomicU64::new(0),
            routes: Default::default(),
            statuses: Vec::new(),
            total: AtomicU64::new(0),
            http2: AtomicU64::new(0),
            variant: 0,
            epoch: Instant::now(),
            first_arrival_ns: AtomicU64::new(u64::MAX),
            last_arrival_ns: AtomicU64::new(0),
        };
        let t = state.issue_token(1);
        assert_eq!(state.check_token(&t), Some("b"));
        let mut forged = t.clone().into_bytes();
        forged[39] = if forged[39] == b'0' { b'1' } else { b'0' };
        assert_eq!(
            state.check_token(std::str::from_utf8(&forged).unwrap()),
            None
        );
        assert_eq!(state.check_token("xyz"), None);
        assert_eq!(state.check_token(&"é".repeat(20)), None);

        let s = state.issue_session(1);
        assert_eq!(s.len(), 32);
        assert_eq!(state.check_session(&s), Some("b"));
        assert_eq!(state.check_session(&t), None, "a token is not a session");
        assert_eq!(state.check_token(&s), None, "a session is not a token");
        let mut forged = s.clone().into_bytes();
        forged[31] = if forged[31] == b'0' { b'1' } else { b'0' };
        assert_eq!(
            state.check_session(std::str::from_utf8(&forged).unwrap()),
            None
        );
    }

    #[test]
    fn routing() {
        assert_eq!(route_of(&Method::GET, "/").0, Route::Home);
        assert_eq!(route_of(&Method::POST, "/").0, Route::NotFound);
        assert_eq!(
            route_of(&Method::GET, "/articles/a%20b"),
            (Route::Article, Some("a b".into()))
        );
        assert_eq!(route_of(&Method::GET, "/articles/").0, Route::NotFound);
        assert_eq!(route_of(&Method::GET, "/articles/1/2").0, Route::NotFound);
        assert_eq!(route_of(&Method::DELETE, "/status/503").0, Route::Status);
        assert_eq!(
            route_of(&Method::GET, "/catalog/7"),
            (Route::Catalog, Some("7".into()))
        );
        assert_eq!(route_of(&Method::POST, "/catalog/7").0, Route::NotFound);
        assert_eq!(route_of(&Method::GET, "/account").0, Route::Account);
        for (i, name) in ROUTES.iter().enumerate() {
            let r = [
                Route::Home,
                Route::Article,
                Route::Search,
                Route::Login,
                Route::Private,
                Route::Me,
                Route::Cart,
                Route::Delay,
                Route::Serial,
                Route::Accuracy,
                Route::Status,
                Route::NotFound,
                Route::Catalog,
                Route::Account,
            ][i];
            assert_eq!(r.index(), i, "{name}");
        }
    }

    fn catalog_json(variant: u8, id: &str) -> (u16, Option<String>, Value) {
        let resp = catalog(variant, Some(id));
        let status = resp.status().as_u16();
        let version = resp
            .headers()
            .get("x-catalog-version")
            .map(|v| v.to_str().unwrap().to_owned());
        let body = futures_body(resp);
        (status, version, serde_json::from_slice(&body).unwrap())
    }

    fn futures_body(resp: Resp) -> Bytes {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async { resp.into_body().collect().await.unwrap().to_bytes() })
    }

    #[test]
    fn catalog_variants_differ_exactly_as_documented() {
        for id in 1..=8u64 {
            let (s0, v0, mut b0) = catalog_json(0, &id.to_string());
            let (s1, v1, mut b1) = catalog_json(1, &id.to_string());
            assert_eq!(s0, 200);
            assert_eq!(v0.as_deref(), Some("7"));
            assert_eq!(b0["id"], id);
            assert_eq!(b0["name"], format!("item {id}"));
            assert!(b0["generated_at"].as_u64().unwrap() > 1_600_000_000_000);
            match id {
                3 => {
                    assert_eq!((s1, v1), (404, None));
                    continue;
                }
                4 => assert_eq!(v1.as_deref(), Some("8")),
                _ => assert_eq!(v1.as_deref(), Some("7")),
            }
            assert_eq!(s1, 200);
            b0.as_object_mut().unwrap().remove("generated_at");
            b1.as_object_mut().unwrap().remove("generated_at");
            match id {
                2 => {
                    assert_eq!(b1["price"], b0["price"].as_u64().unwrap() + 1);
                    b1["price"] = b0["price"].clone();
                }
                5 => {
                    assert_eq!(b1["discount"], 10);
                    b1.as_object_mut().unwrap().remove("discount");
                }
                _ => {}
            }
            assert_eq!(b0, b1, "item {id}");
        }
        assert_eq!(catalog_json(0, "0").0, 404);
        assert_eq!(catalog_json(0, "x").0, 404);
        assert_eq!(catalog_json(1, "1000001").0, 404);
    }
}
