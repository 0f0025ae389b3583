//! A virtual user's HTTP client: it owns its connections (one per origin), so users never share
//! a socket, keep-alive behaves like a browser's, and per-user memory stays small.
//!
//! HTTP/1.1 is driven by hand in the user's own task (`h1`: no second task, no buffer while
//! idle; its module says why and what was measured); HTTP/2, negotiated by ALPN or with prior
//! knowledge, goes through hyper's connection-level API; TLS is rustls. Each connection is owned
//! by one user, so the engine knows which connection a request used, times connects separately,
//! and drops a connection after any failure.
//!
//! Pieces: `conn` (resolve, connect, TLS, handshake, error mapping), `h1` (the HTTP/1.1
//! exchange), `headers` (a response's headers as received), `pool` (per-thread exchange
//! buffers), `tls` (the rustls configuration), `cookies` (the per-user jar). A `Client` is an
//! `Arc` and two `Vec`s (no allocation until used); `bench/run_memory.sh` measures 3–5 KiB per
//! idle virtual user with its keep-alive connection.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderValue};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use mynah_stats::FailureKind;

mod conn;
mod cookies;
mod h1;
mod headers;
mod pool;
mod replay;
mod tls;

#[doc(hidden)]
pub use h1::{read_response, ReadResponse};
pub use headers::{GetAll as ResponseHeaderValues, Iter as ResponseHeadersIter, ResponseHeaders};
pub use replay::WireResponse;

use conn::{Conn, Target};

/// Client settings shared by every user of a run.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Time allowed to resolve, connect and finish the TLS handshake.
    pub connect_timeout: Duration,
    /// Time allowed for a whole request: send, wait, and read the full response body.
    pub request_timeout: Duration,
    /// Follow 3xx responses with a `Location` header.
    pub follow_redirects: bool,
    /// Redirects followed at most per request; one more is a `protocol` failure.
    pub max_redirects: u32,
    /// Accept any server certificate (self-signed test hosts).
    pub insecure: bool,
    /// Use HTTP/2 with prior knowledge on `http://` origins (h2c). `https://` origins negotiate
    /// HTTP/2 or HTTP/1.1 by ALPN whatever this says.
    pub http2_prior_knowledge: bool,
    /// Response body bytes kept for checks and extraction; the rest is read and counted but
    /// discarded, so an endless body cannot grow memory.
    pub max_body_bytes: usize,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(60),
            follow_redirects: true,
            max_redirects: 10,
            insecure: false,
            http2_prior_knowledge: false,
            max_body_bytes: 10 << 20,
        }
    }
}

/// What every user's client shares: the settings and the TLS configuration (built once).
#[derive(Debug)]
pub struct Shared {
    /// The settings.
    pub config: ClientConfig,
    /// The rustls configuration (roots or the accept-anything verifier, ALPN h2 + http/1.1).
    tls: Arc<rustls::ClientConfig>,
}

impl Shared {
    /// Builds the shared state; fails only if the TLS configuration cannot be built.
    pub fn new(config: ClientConfig) -> Result<Arc<Shared>, String> {
        let tls = tls::config(config.insecure, false)?;
        Ok(Arc::new(Shared { config, tls }))
    }

    /// Like [`Shared::new`], but TLS offers only `http/1.1` by ALPN, so every connection is
    /// HTTP/1.1 (replay sends recorded requests as recorded; `http2_prior_knowledge` must be off).
    pub fn new_http1(config: ClientConfig) -> Result<Arc<Shared>, String> {
        let tls = tls::config(config.insecure, true)?;
        Ok(Arc::new(Shared { config, tls }))
    }
}

/// A request ready to send.
#[derive(Debug, Clone)]
pub struct Request {
    /// Method.
    pub method: http::Method,
    /// Absolute URI (`http://host:port/path?query` or `https://...`).
    pub uri: http::Uri,
    /// Headers in sending order. `Host`, `Content-Length` and `Cookie` (from the user's jar) are
    /// added by the client when absent; a `Host` given here wins.
    pub headers: http::HeaderMap,
    /// Body; empty for none.
    pub body: Bytes,
}

/// A complete response.
#[derive(Debug, Clone)]
pub struct Response {
    /// Final status (after redirects).
    pub status: u16,
    /// Final response headers.
    pub headers: ResponseHeaders,
    /// Body (decoded from chunked framing, not from Content-Encoding), at most
    /// [`ClientConfig::max_body_bytes`].
    pub body: Bytes,
    /// Whether `body` was cut at the limit.
    pub body_truncated: bool,
    /// Body bytes received over all hops, including discarded ones.
    pub bytes_received: u64,
    /// `(name, value)` of every cookie the responses of this request set, in order.
    pub set_cookies: Vec<(String, String)>,
}

/// A request that did not produce a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// Why, for the statistics.
    pub kind: FailureKind,
    /// Human-readable cause, stable enough to group by (no addresses or counters that vary per request).
    pub message: String,
}

impl Failure {
    pub(crate) fn new(kind: FailureKind, message: &str) -> Failure {
        Failure {
            kind,
            message: message.to_string(),
        }
    }
}

const USER_AGENT: &str = concat!("mynah/", env!("CARGO_PKG_VERSION"));

/// One virtual user's client: its connections and cookie jar.
pub struct Client {
    shared: Arc<Shared>,
    /// At most one per origin; a handful at most, so a `Vec` beats a map in size and speed.
    conns: Vec<Conn>,
    jar: cookies::Jar,
    /// The request timeout's timer, kept from request to request (see [`RequestTimer`]).
    timer: RequestTimer,
}

/// A request timeout that does not touch tokio's timer wheel on every request.
///
/// `tokio::time::timeout` registers a timer entry per request and removes it when the response
/// comes first: the largest single cost on a fast load loop's user-space profile. Here one timer
/// per client is armed at `start + timeout + slack` and left alone while later requests'
/// deadlines still fall inside that window, so it is re-armed about once per `slack` instead of
/// once per request. It never fires early; it fires at most `slack` (a tenth of the timeout,
/// at most 1 s) late.
struct RequestTimer {
    sleep: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
}

impl RequestTimer {
    /// Arms the timer for a request starting now with `limit`, and takes it out of the client
    /// (so the request future can borrow the client).
    fn arm(&mut self, limit: Duration) -> std::pin::Pin<Box<tokio::time::Sleep>> {
        let slack = (limit / 10).min(Duration::from_secs(1));
        let need = tokio::time::Instant::now() + limit;
        match self.sleep.take() {
            Some(mut sleep) => {
                let at = sleep.deadline();
                if at < need || at > need + slack {
                    sleep.as_mut().reset(need + slack);
                }
                sleep
            }
            None => Box::pin(tokio::time::sleep_until(need + slack)),
        }
    }
}

impl Client {
    /// A client with no connection yet.
    pub fn new(shared: Arc<Shared>) -> Client {
        Client {
            shared,
            conns: Vec::new(),
            jar: cookies::Jar::default(),
            timer: RequestTimer { sleep: None },
        }
    }

    /// Sends a request (following redirects per the config) and reads the whole response.
    /// After any failure the connection it used is dropped.
    pub async fn send(&mut self, request: Request) -> Result<Response, Failure> {
        let limit = self.shared.config.request_timeout;
        let mut timer = self.timer.arm(limit);
        // Pinned where it is made: passed by value, the request future would be stored twice
        // in this one (as the argument and inside `under_timer`'s), and copied whole on each
        // request.
        let result = {
            let request = std::pin::pin!(self.send_inner(request));
            under_timer(&mut timer, limit, request).await
        };
        self.timer.sleep = Some(timer);
        result
    }

    /// Closes every connection (the user stopped); the cookie jar is kept.
    pub fn close(&mut self) {
        self.conns.clear();
    }

    /// The value of the cookie `name` in this user's jar (any host), if set and not expired.
    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.jar.get(name)
    }

    /// Number of open connections (at most one per origin).
    pub fn connections(&self) -> usize {
        self.conns.len()
    }

    async fn send_inner(&mut self, request: Request) -> Result<Response, Failure> {
        let Request {
            mut method,
            mut uri,
            mut headers,
            mut body,
        } = request;
        let mut bytes_received = 0u64;
        let mut set_cookies = Vec::new();
        let mut redirects = 0u32;
        loop {
            let target = Target::of(&uri)?;
            let shared = self.shared.clone();
            let config = &shared.config;
            let (conn, status, response_headers, response_body, body_truncated) = match self
                .exchange(&target, &method, &uri, &headers, &body, &mut bytes_received)
                .await?
            {
                Exchanged::Raw(conn, r) => (conn, r.status, r.headers, r.body, r.truncated),
                Exchanged::Hyper(conn, response) => {
                    let (parts, mut incoming) = response.into_parts();
                    let status = parts.status.as_u16();
                    let redirect = config.follow_redirects
                        && is_redirect(status)
                        && parts.headers.contains_key(header::LOCATION);
                    let keep = if redirect { 0 } else { config.max_body_bytes };
                    let (body, truncated) =
                        Box::pin(read_body(&mut incoming, keep, &mut bytes_received)).await?;
                    (Some(conn), status, parts.headers.into(), body, truncated)
                }
            };
            if let Some(conn) = conn {
                self.conns.push(conn);
            }
            self.jar.store(
                target.https,
                target.host,
                uri.path(),
                &response_headers,
                &mut set_cookies,
            );
            let location = match response_headers.get("location") {
                Some(l) if config.follow_redirects && is_redirect(status) => l,
                _ => {
                    return Ok(Response {
                        status,
                        headers: response_headers,
                        body: response_body,
                        body_truncated,
                        bytes_received,
                        set_cookies,
                    });
                }
            };
            if redirects >= config.max_redirects {
                return Err(Failure {
                    kind: FailureKind::Protocol,
                    message: format!("too many redirects ({})", config.max_redirects),
                });
            }
            let next = std::str::from_utf8(location)
                .ok()
                .and_then(|l| resolve(&uri, l))
                .ok_or_else(|| Failure::new(FailureKind::Protocol, "invalid redirect location"))?;
            redirects += 1;
            let to_get = status == 303 && method != http::Method::HEAD
                || (status == 301 || status == 302) && method == http::Method::POST;
            if to_get {
                method = http::Method::GET;
                body = Bytes::new();
                headers.remove(header::CONTENT_TYPE);
                headers.remove(header::CONTENT_LENGTH);
                headers.remove(header::TRANSFER_ENCODING);
            }
            let same_origin = Target::of(&next).is_ok_and(|t| {
                t.https == target.https
                    && t.port == target.port
                    && t.host.eq_ignore_ascii_case(target.host)
            });
            if !same_origin {
                // What the user set for the first origin does not follow to another one.
                headers.remove(header::HOST);
                headers.remove(header::AUTHORIZATION);
                headers.remove(header::COOKIE);
            }
            uri = next;
        }
    }

    /// Sends one request on the origin's connection (opening one if needed). A hand-driven
    /// HTTP/1.1 connection returns the whole response (and itself, when it can be reused); a
    /// hyper one returns the response head and the connection. The connection is out of
    /// `self.conns` meanwhile, so a failure or a timeout drops it.
    async fn exchange(
        &mut self,
        target: &Target<'_>,
        method: &http::Method,
        uri: &http::Uri,
        headers: &HeaderMap,
        body: &Bytes,
        received: &mut u64,
    ) -> Result<Exchanged, Failure> {
        let mut retried = false;
        loop {
            let (mut conn, reused) = self.take_conn(target).await?;
            if conn.raw().is_some() {
                let mut wire = pool::write_buffer();
                self.serialize_h1(target, method, uri, headers, body, &mut wire);
                let keep = self.shared.config.max_body_bytes;
                let is_head = *method == http::Method::HEAD;
                let Some(io) = conn.raw() else {
                    unreachable!("checked just above")
                };
                match h1::exchange(io, &wire, is_head, keep, received).await {
                    Ok(r) => {
                        let conn = r.keep_alive.then_some(conn);
                        return Ok(Exchanged::Raw(conn, r));
                    }
                    // The server closed the kept-alive connection as the request went out: send
                    // it again on a new connection, once, when that cannot do harm twice.
                    Err(h1::H1Error::ClosedBeforeResponse)
                        if reused && !retried && method.is_idempotent() =>
                    {
                        retried = true;
                        continue;
                    }
                    Err(e) => return Err(h1_failure(e)),
                }
            }
            let request = self.build_h2(target, method, uri, headers, body);
            match Box::pin(conn.send(request)).await {
                None => {
                    return Err(Failure::new(
                        FailureKind::Protocol,
                        "internal error: an HTTP/1.1 connection reached the HTTP/2 path",
                    ))
                }
                Some(Ok(response)) => return Ok(Exchanged::Hyper(conn, response)),
                Some(Err(mut e)) => {
                    // The server closed a kept-alive connection before any byte of the request
                    // was written: safe to send it again, once, on a new connection.
                    if reused && !retried && e.take_message().is_some() {
                        retried = true;
                        continue;
                    }
                    return Err(conn::exchange_failure(e.error()));
                }
            }
        }
    }

    /// The origin's connection, out of `self.conns` (so a failure or a timeout drops it): the
    /// kept-alive one when it is still usable (`true`), else a new one (`false`).
    async fn take_conn(&mut self, target: &Target<'_>) -> Result<(Conn, bool), Failure> {
        if let Some(i) = self.conns.iter().position(|c| c.is_for(target)) {
            let mut c = self.conns.swap_remove(i);
            if c.ready().await {
                return Ok((c, true));
            }
        }
        // Boxed (here and on the HTTP/2 path): their futures are large, and inline they would
        // make every request's future as large, to be copied on each request.
        Ok((Box::pin(conn::connect(&self.shared, target)).await?, false))
    }

    /// Writes an HTTP/1.1 request straight into `out`: request line, `Host` (unless given),
    /// the given headers, `User-Agent` and `Cookie` (unless given), `Content-Length` (for a body,
    /// and for an empty POST/PUT/PATCH), then the body. No intermediate header map.
    fn serialize_h1(
        &mut self,
        target: &Target<'_>,
        method: &http::Method,
        uri: &http::Uri,
        headers: &HeaderMap,
        body: &Bytes,
        out: &mut Vec<u8>,
    ) {
        fn line(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
            out.extend_from_slice(name);
            out.extend_from_slice(b": ");
            out.extend_from_slice(value);
            out.extend_from_slice(b"\r\n");
        }
        let request_target = uri.path_and_query().map_or("/", |pq| pq.as_str());
        out.reserve(128 + request_target.len() + body.len());
        out.extend_from_slice(method.as_str().as_bytes());
        out.push(b' ');
        out.extend_from_slice(request_target.as_bytes());
        out.extend_from_slice(b" HTTP/1.1\r\n");
        if !headers.contains_key(header::HOST) {
            line(out, b"host", target.host_header.as_bytes());
        }
        for (name, value) in headers {
            line(out, name.as_str().as_bytes(), value.as_bytes());
        }
        if !headers.contains_key(header::USER_AGENT) {
            line(out, b"user-agent", USER_AGENT.as_bytes());
        }
        if let Some(cookie) = self.cookie_header(target, uri, headers) {
            line(out, b"cookie", cookie.as_bytes());
        }
        let needs_length = !body.is_empty()
            || matches!(
                *method,
                http::Method::POST | http::Method::PUT | http::Method::PATCH
            );
        if needs_length && !headers.contains_key(header::CONTENT_LENGTH) {
            line(out, b"content-length", itoa_buf(body.len()).as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(body);
    }

    /// An HTTP/2 request for hyper: the absolute URI (hyper sends `:authority` from it, so no
    /// `Host`), the given headers, and `User-Agent` and `Cookie` unless given.
    fn build_h2(
        &mut self,
        target: &Target<'_>,
        method: &http::Method,
        uri: &http::Uri,
        headers: &HeaderMap,
        body: &Bytes,
    ) -> http::Request<Full<Bytes>> {
        let mut map = headers.clone();
        if !headers.contains_key(header::USER_AGENT) {
            map.insert(header::USER_AGENT, HeaderValue::from_static(USER_AGENT));
        }
        if let Some(cookie) = self.cookie_header(target, uri, headers) {
            map.insert(header::COOKIE, cookie);
        }
        let mut request = http::Request::new(Full::new(body.clone()));
        *request.method_mut() = method.clone();
        *request.uri_mut() = uri.clone();
        *request.headers_mut() = map;
        request
    }

    /// The `Cookie` header from the jar, unless the request sets its own.
    fn cookie_header(
        &mut self,
        target: &Target<'_>,
        uri: &http::Uri,
        headers: &HeaderMap,
    ) -> Option<HeaderValue> {
        if headers.contains_key(header::COOKIE) {
            return None;
        }
        self.jar.header(target.https, target.host, uri.path())
    }
}

/// The decimal digits of `n`, without allocating.
fn itoa_buf(mut n: usize) -> Digits {
    let mut d = Digits {
        buf: [0; 20],
        start: 20,
    };
    loop {
        d.start -= 1;
        d.buf[d.start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return d;
        }
    }
}

struct Digits {
    buf: [u8; 20],
    start: usize,
}

impl Digits {
    fn as_bytes(&self) -> &[u8] {
        &self.buf[self.start..]
    }
}

/// What one exchange produced.
enum Exchanged {
    /// A whole response from a hand-driven HTTP/1.1 connection, and the connection when it
    /// may carry another request.
    Raw(Option<Conn>, h1::H1Response),
    /// A response head from hyper (HTTP/2), the body still to read.
    Hyper(Conn, http::Response<Incoming>),
}

/// Runs `request` until it ends or `timer` fires (a `timeout` failure after `limit`).
///
/// The timer is polled first: an endless response keeps the request future busy until tokio's
/// cooperative budget runs out, after which nothing polled later in this task would run; polled
/// first, the timer always sees its deadline (as tokio's own `timeout` arranges). The
/// connection in use is owned by the request future, so it is dropped with it.
pub(crate) async fn under_timer<T>(
    timer: &mut std::pin::Pin<Box<tokio::time::Sleep>>,
    limit: Duration,
    request: std::pin::Pin<&mut impl std::future::Future<Output = Result<T, Failure>>>,
) -> Result<T, Failure> {
    tokio::select! {
        biased;
        () = timer.as_mut() => Err(timeout_failure(limit)),
        result = request => result,
    }
}

fn timeout_failure(limit: Duration) -> Failure {
    Failure {
        kind: FailureKind::Timeout,
        message: format!("request timeout after {limit:?}"),
    }
}

fn h1_failure(e: h1::H1Error) -> Failure {
    const CLOSED: &str = "connection closed before the response was complete";
    match e {
        h1::H1Error::ClosedBeforeResponse | h1::H1Error::Closed => {
            Failure::new(FailureKind::Reset, CLOSED)
        }
        h1::H1Error::Io(e) => conn::io_failure(&e),
        h1::H1Error::Malformed(message) => Failure {
            kind: FailureKind::Protocol,
            message,
        },
    }
}

fn is_redirect(status: u16) -> bool {
    matches!(status, 301 | 302 | 303 | 307 | 308)
}

/// Reads the whole body, keeping at most `keep` bytes and counting all of them.
async fn read_body(
    incoming: &mut Incoming,
    keep: usize,
    received: &mut u64,
) -> Result<(Bytes, bool), Failure> {
    // One data frame is kept as is (no copy); more are gathered into one buffer.
    let mut first: Option<Bytes> = None;
    let mut gathered: Option<BytesMut> = None;
    let mut kept = 0usize;
    let mut truncated = false;
    while let Some(frame) = incoming.frame().await {
        let frame = frame.map_err(|e| conn::exchange_failure(&e))?;
        let Ok(mut data) = frame.into_data() else {
            continue; // trailers
        };
        *received += data.len() as u64;
        if data.is_empty() {
            continue;
        }
        if kept + data.len() > keep {
            truncated = true;
            data.truncate(keep - kept);
            if data.is_empty() {
                continue;
            }
        }
        kept += data.len();
        match (&mut first, &mut gathered) {
            (None, None) => first = Some(data),
            (Some(f), None) => {
                let mut buf = BytesMut::with_capacity(kept.max(f.len() * 2).min(keep));
                buf.extend_from_slice(f);
                buf.extend_from_slice(&data);
                first = None;
                gathered = Some(buf);
            }
            (_, Some(buf)) => buf.extend_from_slice(&data),
        }
    }
    let body = match (first, gathered) {
        (_, Some(buf)) => buf.freeze(),
        (Some(f), None) => f,
        (None, None) => Bytes::new(),
    };
    Ok((body, truncated))
}

/// Resolves a `Location` against the URI it answered (RFC 3986 5.2, simplified: no userinfo,
/// fragments dropped).
fn resolve(base: &http::Uri, location: &str) -> Option<http::Uri> {
    let location = location.split('#').next().unwrap_or("").trim();
    let scheme = base.scheme_str()?;
    let authority = base.authority()?.as_str();
    if let Some((s, _)) = location.split_once("://") {
        if s.eq_ignore_ascii_case("http") || s.eq_ignore_ascii_case("https") {
            return http::Uri::try_from(location).ok();
        }
        if s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
        {
            return None; // another scheme
        }
    }
    if let Some(rest) = location.strip_prefix("//") {
        return http::Uri::try_from(format!("{scheme}://{rest}")).ok();
    }
    let base_path = base.path();
    let joined = if location.is_empty() {
        base.path_and_query()
            .map_or("/", |pq| pq.as_str())
            .to_string()
    } else if location.starts_with('?') {
        format!("{base_path}{location}")
    } else if location.starts_with('/') {
        location.to_string()
    } else {
        let dir = base_path.rfind('/').map_or("/", |i| &base_path[..=i]);
        format!("{dir}{location}")
    };
    let (path, query) = match joined.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (joined.as_str(), None),
    };
    let path = remove_dot_segments(path);
    let uri = match query {
        Some(q) => format!("{scheme}://{authority}{path}?{q}"),
        None => format!("{scheme}://{authority}{path}"),
    };
    http::Uri::try_from(uri).ok()
}

fn remove_dot_segments(path: &str) -> String {
    if !path.contains("/.") {
        return path.to_string();
    }
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path.split('/').collect();
    let last = segments.len().saturating_sub(1);
    for (i, seg) in segments.iter().enumerate() {
        match *seg {
            "." => {
                if i == last {
                    out.push("");
                }
            }
            ".." => {
                if out.len() > 1 {
                    out.pop();
                }
                if i == last {
                    out.push("");
                }
            }
            s => out.push(s),
        }
    }
    let joined = out.join("/");
    if joined.starts_with('/') {
        joined
    } else {
        format!("/{joined}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(base: &str, loc: &str) -> String {
        resolve(&http::Uri::try_from(base).unwrap(), loc)
            .map(|u| u.to_string())
            .unwrap_or_default()
    }

    #[test]
    fn locations() {
        let b = "http://h:8080/a/b/c?x=1";
        assert_eq!(r(b, "/d"), "http://h:8080/d");
        assert_eq!(r(b, "d?y=2"), "http://h:8080/a/b/d?y=2");
        assert_eq!(r(b, "../d"), "http://h:8080/a/d");
        assert_eq!(r(b, "./"), "http://h:8080/a/b/");
        assert_eq!(r(b, "?y"), "http://h:8080/a/b/c?y");
        assert_eq!(r(b, "//other/p"), "http://other/p");
        assert_eq!(r(b, "https://x.org/q#frag"), "https://x.org/q");
        assert_eq!(r(b, "../../../../d"), "http://h:8080/d");
        assert_eq!(r(b, "ftp://x/y"), "");
        assert_eq!(r(b, "bad uri with spaces"), "");
    }

    #[test]
    fn client_is_small() {
        assert!(std::mem::size_of::<Client>() <= 64);
    }
}
