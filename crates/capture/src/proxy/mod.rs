//! A recording reverse proxy: clients talk to it as to the application, it forwards everything to
//! one upstream and hands a copy of each exchange to a [`Recorder`].
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use mynah_capture::proxy::{Proxy, ProxyConfig, Recorder, RecorderOptions};
//! use mynah_traffic::{Format, Pipeline, PipelineOptions};
//!
//! let pipeline = Pipeline::new(&PipelineOptions::default())?; // default masking on
//! let recorder = Recorder::to_file("out.gor".as_ref(), Format::Gor, pipeline, RecorderOptions::default())?;
//! let config = ProxyConfig::new("127.0.0.1:0".parse()?, "http://127.0.0.1:8080")?;
//! let proxy = Proxy::start(config, recorder.sink()).await?;
//! println!("send traffic to http://{}", proxy.local_addr());
//! // ...
//! let stats = proxy.shutdown().await; // every exchange is with the recorder now
//! let report = recorder.finish()?;    // and in the file
//! # Ok(()) }
//! ```
//!
//! How it works, and why:
//! - A hyper server speaks HTTP/1.1 and HTTP/2 (prior knowledge on plain TCP, ALPN with TLS) to
//!   clients; upstream connections are pooled HTTP/1.1 (see [`upstream`]). Header policy
//!   (hop-by-hop, `Host`, `X-Forwarded-*`) is in `forward`.
//! - Bodies stream through in both directions with hyper's own flow control, so memory per
//!   exchange is bounded by the recorded copy: up to [`ProxyConfig::max_body`] bytes per body.
//!   Longer bodies pass whole; the recording keeps the start and is marked
//!   [`Incomplete::TruncatedBody`].
//! - An exchange is handed to the recorder when its response body has ended (or failed, or the
//!   client went away, or the proxy stopped), exactly once: one guard owns the exchange from the
//!   request to the end of the response and records it when dropped.
//! - Upgrades (`Connection: upgrade` answered by `101`) are recorded at the 101 and then tunnelled
//!   both ways byte for byte.
//! - Upstream failures answer `502 Bad Gateway` with a one-line text body, and are recorded so.

mod forward;
pub mod recorder;
mod tap;
pub mod upstream;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use mynah_traffic::{ConnectionInfo, Exchange, Incomplete, Nanos, Timing};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{watch, Notify};
use tokio::task::JoinSet;

pub use recorder::{
    RecordSink, Recorder, RecorderError, RecorderOptions, RecorderReport, RecorderStats,
};
pub use upstream::{UpstreamTrust, UpstreamUrl};

use tap::{lock_tap, BodyTap, TeeRequest};
use upstream::{Sender, Upstream};

/// The default cap on a recorded body (`--max-body`): 1 MiB.
pub const DEFAULT_MAX_BODY: usize = 1 << 20;

/// What went wrong starting the proxy. Each message names the flag or file to fix.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("--upstream {0}")]
    Upstream(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("TLS: {0}")]
    Tls(String),
}

/// The listener's certificate and key (PEM files), for TLS to clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerTls {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Everything the proxy needs; [`ProxyConfig::new`] gives the defaults.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// Where clients connect (port 0: any free port, see [`ProxyHandle::local_addr`]).
    pub listen: SocketAddr,
    pub upstream: UpstreamUrl,
    /// Bodies are recorded up to this many bytes each; the proxied bytes are never cut.
    pub max_body: usize,
    /// TLS to clients (`--tls-cert`, `--tls-key`), else plain TCP.
    pub listener_tls: Option<ListenerTls>,
    /// How an `https://` upstream's certificate is checked.
    pub upstream_trust: UpstreamTrust,
    /// Forward the client's `Host` instead of the upstream's.
    pub preserve_host: bool,
    /// Connecting (and the TLS handshake) to the upstream, at most.
    pub connect_timeout: Duration,
    /// At shutdown, how long exchanges in flight may take to finish before they are cut (and
    /// recorded as [`Incomplete::CaptureEnded`]).
    pub drain_timeout: Duration,
}

impl ProxyConfig {
    /// Defaults around a listening address and an upstream URL (`http://` or `https://`).
    pub fn new(listen: SocketAddr, upstream: &str) -> Result<ProxyConfig, ProxyError> {
        Ok(ProxyConfig {
            listen,
            upstream: UpstreamUrl::parse(upstream)?,
            max_body: DEFAULT_MAX_BODY,
            listener_tls: None,
            upstream_trust: UpstreamTrust::WebPki,
            preserve_host: false,
            connect_timeout: Duration::from_secs(10),
            drain_timeout: Duration::from_secs(5),
        })
    }
}

/// Counters of a running proxy (a snapshot).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProxyStats {
    /// Client connections accepted.
    pub connections: u64,
    /// Requests received from clients.
    pub requests: u64,
    /// Exchanges handed to the recorder (each request once, when its response ended).
    pub recorded: u64,
    /// Exchanges the recorder refused because its queue was full.
    pub not_recorded: u64,
    /// Recorded exchanges marked incomplete (truncated body, client gone, cut at shutdown).
    pub incomplete: u64,
    /// Recorded exchanges with a body longer than `max_body`.
    pub truncated: u64,
    /// Requests answered 502 because the upstream failed.
    pub upstream_errors: u64,
    /// Upgraded connections (101) tunnelled.
    pub upgrades: u64,
    /// Request body bytes forwarded upstream.
    pub request_bytes: u64,
    /// Response body bytes forwarded to clients.
    pub response_bytes: u64,
    /// Exchanges not recorded yet (in flight).
    pub in_flight: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    connections: AtomicU64,
    requests: AtomicU64,
    recorded: AtomicU64,
    not_recorded: AtomicU64,
    incomplete: AtomicU64,
    truncated: AtomicU64,
    upstream_errors: AtomicU64,
    upgrades: AtomicU64,
    pub(crate) request_bytes: AtomicU64,
    pub(crate) response_bytes: AtomicU64,
    in_flight: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> ProxyStats {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        ProxyStats {
            connections: l(&self.connections),
            requests: l(&self.requests),
            recorded: l(&self.recorded),
            not_recorded: l(&self.not_recorded),
            incomplete: l(&self.incomplete),
            truncated: l(&self.truncated),
            upstream_errors: l(&self.upstream_errors),
            upgrades: l(&self.upgrades),
            request_bytes: l(&self.request_bytes),
            response_bytes: l(&self.response_bytes),
            in_flight: l(&self.in_flight),
        }
    }
}

pub(crate) fn now_nanos() -> Nanos {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as Nanos)
}

struct Shared {
    upstream: Upstream,
    max_body: usize,
    preserve_host: bool,
    listener_tls: bool,
    sink: RecordSink,
    counters: Arc<Counters>,
    /// Set once the drain time is over: exchanges cut from then on are `CaptureEnded`.
    cutting: AtomicBool,
    /// Woken each time an exchange is recorded, for the shutdown to wait on.
    recorded: Notify,
    shutdown: watch::Receiver<bool>,
    drain_timeout: Duration,
    next_conn: AtomicU64,
}

impl Shared {
    fn record(&self, ex: Exchange) {
        let c = &self.counters;
        if ex.incomplete.is_some() {
            c.incomplete.fetch_add(1, Ordering::Relaxed);
        }
        if self.sink.offer(ex) {
            c.recorded.fetch_add(1, Ordering::Relaxed);
        } else {
            c.not_recorded.fetch_add(1, Ordering::Relaxed);
        }
        c.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.recorded.notify_waiters();
    }
}

/// The proxy; see the module documentation.
#[derive(Debug)]
pub struct Proxy;

impl Proxy {
    /// Binds the listener, loads the TLS files, and starts serving on the current tokio runtime.
    /// Exchanges go to `sink` (from [`Recorder::sink`]).
    pub async fn start(config: ProxyConfig, sink: RecordSink) -> Result<ProxyHandle, ProxyError> {
        let acceptor = match &config.listener_tls {
            Some(t) => Some(tokio_rustls::TlsAcceptor::from(upstream::server_tls(
                &t.cert, &t.key,
            )?)),
            None => None,
        };
        let upstream = Upstream::new(
            config.upstream.clone(),
            &config.upstream_trust,
            config.connect_timeout,
        )?;
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| ProxyError::Bind {
                    addr: config.listen,
                    source,
                })?;
        let local_addr = listener.local_addr().map_err(|source| ProxyError::Bind {
            addr: config.listen,
            source,
        })?;
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let counters = Arc::new(Counters::default());
        let shared = Arc::new(Shared {
            upstream,
            max_body: config.max_body,
            preserve_host: config.preserve_host,
            listener_tls: acceptor.is_some(),
            sink,
            counters: counters.clone(),
            cutting: AtomicBool::new(false),
            recorded: Notify::new(),
            shutdown: shutdown_rx,
            drain_timeout: config.drain_timeout,
            next_conn: AtomicU64::new(0),
        });
        let task = tokio::spawn(accept_loop(listener, shared.clone(), acceptor, local_addr));
        Ok(ProxyHandle {
            local_addr,
            counters,
            shutdown_tx,
            task: Some(task),
        })
    }
}

/// A running proxy. Dropping it without [`ProxyHandle::shutdown`] stops accepting but does not
/// wait for anything.
#[derive(Debug)]
pub struct ProxyHandle {
    local_addr: SocketAddr,
    counters: Arc<Counters>,
    shutdown_tx: watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl ProxyHandle {
    /// The address clients connect to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The counters now.
    pub fn stats(&self) -> ProxyStats {
        self.counters.snapshot()
    }

    /// Stops accepting, lets exchanges in flight finish for up to the drain timeout, cuts the rest
    /// (recorded as incomplete), and returns once every exchange was handed to the recorder.
    pub async fn shutdown(mut self) -> ProxyStats {
        let _ = self.shutdown_tx.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        self.counters.snapshot()
    }
}

impl Drop for ProxyHandle {
    fn drop(&mut self) {
        let _ = self.shutdown_tx.send(true);
    }
}

/// Returns once the proxy is told to stop (or its handle is gone).
async fn stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    local: SocketAddr,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().preserve_header_case(true);
    let builder = Arc::new(builder);
    let mut shutdown = shared.shutdown.clone();
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            _ = stopped(&mut shutdown) => break,
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => {
                    let _ = tcp.set_nodelay(true);
                    shared.counters.connections.fetch_add(1, Ordering::Relaxed);
                    let (shared, builder, acceptor) = (shared.clone(), builder.clone(), acceptor.clone());
                    conns.spawn(async move {
                        match acceptor {
                            None => serve(tcp, shared, builder, peer, local, false).await,
                            Some(a) => {
                                let hs = tokio::time::timeout(Duration::from_secs(10), a.accept(tcp)).await;
                                if let Ok(Ok(tls)) = hs {
                                    serve(tls, shared, builder, peer, local, true).await;
                                }
                            }
                        }
                    });
                }
                // Out of file descriptors and the like: wait a little instead of spinning.
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    drop(listener);
    // Connections were told to finish (graceful shutdown); give them the drain time.
    let drained = tokio::time::timeout(shared.drain_timeout, async {
        while conns.join_next().await.is_some() {}
    })
    .await;
    shared.cutting.store(true, Ordering::SeqCst);
    if drained.is_err() {
        conns.abort_all();
        while conns.join_next().await.is_some() {}
    }
    shared.upstream.clear();
    // HTTP/2 streams and upstream connections run in tasks of their own: wait until every
    // exchange they hold was recorded (they are cut by the connections closing above).
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let notified = shared.recorded.notified();
            if shared.counters.in_flight.load(Ordering::Acquire) == 0 {
                break;
            }
            notified.await;
        }
    })
    .await;
}

/// Per client connection: what every exchange on it records.
struct ConnCtx {
    id: u64,
    peer: SocketAddr,
    local: SocketAddr,
    tls: bool,
    next_index: AtomicU32,
}

async fn serve<I>(
    io: I,
    shared: Arc<Shared>,
    builder: Arc<auto::Builder<TokioExecutor>>,
    peer: SocketAddr,
    local: SocketAddr,
    tls: bool,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let ctx = Arc::new(ConnCtx {
        id: shared.next_conn.fetch_add(1, Ordering::Relaxed),
        peer,
        local,
        tls,
        next_index: AtomicU32::new(0),
    });
    let mut shutdown = shared.shutdown.clone();
    let svc_shared = shared.clone();
    let svc = service_fn(move |req| handle(req, svc_shared.clone(), ctx.clone()));
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), svc);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => return,
        _ = stopped(&mut shutdown) => conn.as_mut().graceful_shutdown(),
    }
    let _ = conn.await;
}

/// Owns an exchange from its request to the end of its response; records it exactly once, when
/// dropped (or earlier through [`Recording::finish`]).
pub(crate) struct Recording {
    shared: Arc<Shared>,
    exchange: Option<Exchange>,
    request_tap: Arc<Mutex<BodyTap>>,
    request_chunked: bool,
    /// An HTTP/2 request without `Content-Length`: the recording adds one.
    request_needs_length: bool,
    expect_continue: bool,
    response_tap: BodyTap,
    response_chunked: bool,
}

impl Recording {
    /// Records now, or, when the request body is still being forwarded, once it has ended.
    fn complete(self: Box<Self>) {
        let tap = self.request_tap.clone();
        let mut t = lock_tap(&tap);
        if t.streaming && t.ended.is_none() && !t.failed {
            t.parked = Some(self);
            return;
        }
        drop(t);
        drop(self); // records
    }

    fn finish(&mut self) {
        let Some(mut ex) = self.exchange.take() else {
            return;
        };
        let cutting = self.shared.cutting.load(Ordering::SeqCst);
        let req_tap = std::mem::take(&mut *lock_tap(&self.request_tap));
        let resp_tap = std::mem::replace(&mut self.response_tap, BodyTap::new(0));
        let req_failed = req_tap.failed;
        let truncated = req_tap.truncated || resp_tap.truncated;
        ex.timing.request_end = req_tap.ended;
        if self.expect_continue
            && req_tap.polled
            && ex.request.version == mynah_traffic::Version::Http11
        {
            ex.interim.push(mynah_traffic::Response {
                version: mynah_traffic::Version::Http11,
                status: 100,
                reason: "Continue".into(),
                ..Default::default()
            });
        }
        if self.request_needs_length && req_tap.total > 0 {
            ex.request
                .headers
                .push("content-length", req_tap.total.to_string());
        }
        let req_ended = req_tap.ended.is_some();
        ex.request.body = req_tap.into_wire(self.request_chunked);
        let resp_ended = resp_tap.ended;
        let resp_failed = resp_tap.failed;
        if let Some(resp) = ex.response.as_mut() {
            resp.body = resp_tap.into_wire(self.response_chunked);
            ex.timing.response_end = resp_ended;
        }
        ex.incomplete = if ex.response.is_none() {
            Some(if req_failed {
                Incomplete::TruncatedBody
            } else if cutting {
                Incomplete::CaptureEnded
            } else {
                Incomplete::NoResponse
            })
        } else if resp_ended.is_none() || resp_failed || req_failed {
            Some(if cutting {
                Incomplete::CaptureEnded
            } else {
                Incomplete::TruncatedBody
            })
        } else if truncated || !req_ended && !is_bodiless_request(&ex) {
            Some(Incomplete::TruncatedBody)
        } else {
            None
        };
        if truncated {
            self.shared
                .counters
                .truncated
                .fetch_add(1, Ordering::Relaxed);
        }
        self.shared.record(ex);
    }
}

/// A request whose body was never read because the upstream answered first (e.g. 101, or an
/// early 4xx) is still whole if it had no body to read.
fn is_bodiless_request(ex: &Exchange) -> bool {
    let h = &ex.request.headers;
    !h.has_token("transfer-encoding", "chunked")
        && h.get_str("content-length").is_none_or(|v| v.trim() == "0")
}

impl Drop for Recording {
    fn drop(&mut self) {
        self.finish();
    }
}

/// The body of a response to a client: streamed from the upstream (and recorded), or a short
/// body the proxy made (502, 101).
pub(crate) struct ResponseBody {
    kind: Kind,
}

impl Kind {
    /// The upstream's body has ended: give the connection back and record the exchange.
    fn upstream_ended(&mut self) {
        if let Kind::Upstream {
            recording, sender, ..
        } = self
        {
            if let Some(mut r) = recording.take() {
                r.response_tap.ended = Some(now_nanos());
                if let Some(s) = sender.take() {
                    r.shared.upstream.put_back(s);
                }
                r.complete();
            }
        }
    }
}

impl Drop for ResponseBody {
    fn drop(&mut self) {
        // hyper drops a body that says it has ended (Content-Length reached, or empty) without
        // polling it to the end.
        if let Kind::Upstream { inner, .. } = &self.kind {
            if inner.is_end_stream() {
                self.kind.upstream_ended();
            }
        }
    }
}

enum Kind {
    Upstream {
        inner: Incoming,
        /// Taken when the exchange is complete.
        recording: Option<Box<Recording>>,
        /// The upstream connection, given back to the pool at the body's end.
        sender: Option<Sender>,
    },
    Own(Option<Bytes>),
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match &mut self.kind {
            Kind::Own(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            Kind::Upstream {
                inner,
                recording,
                sender,
            } => {
                let polled = Pin::new(inner).poll_frame(cx);
                match &polled {
                    Poll::Ready(Some(Ok(frame))) => {
                        if let Some(r) = recording.as_mut() {
                            if let Some(d) = frame.data_ref() {
                                r.shared
                                    .counters
                                    .response_bytes
                                    .fetch_add(d.len() as u64, Ordering::Relaxed);
                            }
                            r.response_tap.frame(frame);
                        }
                        if inner_end(&self.kind) {
                            self.kind.upstream_ended();
                        }
                    }
                    Poll::Ready(Some(Err(_))) => {
                        // The upstream broke off mid-body: the connection is not reusable.
                        sender.take();
                        if let Some(mut r) = recording.take() {
                            r.response_tap.failed = true;
                        }
                    }
                    Poll::Ready(None) => self.kind.upstream_ended(),
                    Poll::Pending => {}
                }
                polled
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Own(b) => b.is_none(),
            Kind::Upstream { inner, .. } => inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Own(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            Kind::Upstream { inner, .. } => inner.size_hint(),
        }
    }
}

fn inner_end(kind: &Kind) -> bool {
    matches!(kind, Kind::Upstream { inner, .. } if inner.is_end_stream())
}

fn own(status: StatusCode, text: String) -> Response<ResponseBody> {
    let mut resp = Response::new(ResponseBody {
        kind: Kind::Own(Some(Bytes::from(text))),
    });
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

async fn handle(
    mut req: Request<Incoming>,
    shared: Arc<Shared>,
    ctx: Arc<ConnCtx>,
) -> Result<Response<ResponseBody>, Infallible> {
    let start = now_nanos();
    shared.counters.requests.fetch_add(1, Ordering::Relaxed);
    shared.counters.in_flight.fetch_add(1, Ordering::AcqRel);
    let http2 = req.version() == http::Version::HTTP_2;
    let upgrade = forward::is_upgrade(req.version(), req.headers());
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));

    // The recording: the request as the client sent it.
    let mut headers = forward::record_headers(req.headers(), http2);
    let client_host = forward::client_host(req.uri(), req.headers());
    if http2 && !req.headers().contains_key(header::HOST) {
        if let Some(h) = &client_host {
            headers
                .0
                .insert(0, mynah_traffic::Header::new("host", h.as_bytes()));
        }
    }
    let request_chunked = headers.has_token("transfer-encoding", "chunked");
    let request_needs_length =
        http2 && !req.headers().contains_key(header::CONTENT_LENGTH) && !req.body().is_end_stream();
    let expect_continue = req
        .headers()
        .get(header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    let record_req = mynah_traffic::Request {
        method: req.method().as_str().to_string(),
        target: forward::record_target(req.method(), req.uri(), http2),
        version: forward::record_version(req.version()),
        headers,
        body: Vec::new(),
        body_form: mynah_traffic::BodyForm::Wire,
    };
    let mut exchange = Exchange::new(record_req, start);
    exchange.connection = ConnectionInfo {
        client: Some(ctx.peer),
        server: Some(ctx.local),
        id: Some(ctx.id),
        index: ctx.next_index.fetch_add(1, Ordering::Relaxed),
        tls: ctx.tls,
    };
    let request_tap = Arc::new(Mutex::new(BodyTap::new(shared.max_body)));
    let mut recording = Box::new(Recording {
        shared: shared.clone(),
        exchange: Some(exchange),
        request_tap: request_tap.clone(),
        request_chunked,
        request_needs_length,
        expect_continue,
        response_tap: BodyTap::new(shared.max_body),
        response_chunked: false,
    });

    // The request as it goes upstream.
    let (mut parts, body) = req.into_parts();
    let target = forward::upstream_target(&shared.upstream.url.prefix, &parts.uri);
    parts.uri = match target.parse() {
        Ok(u) => u,
        Err(_) => {
            return Ok(bad_gateway(
                recording,
                "the request target cannot be forwarded".into(),
            ))
        }
    };
    parts.version = http::Version::HTTP_11;
    forward::strip_hop_by_hop(&mut parts.headers, upgrade);
    forward::add_forwarding(
        &mut parts.headers,
        ctx.peer.ip(),
        shared.listener_tls,
        client_host,
        &shared.upstream.host_header,
        shared.preserve_host,
    );
    let upstream_req = Request::from_parts(
        parts,
        TeeRequest::new(body, request_tap, shared.counters.clone()),
    );

    let (mut resp, sender) = match shared.upstream.send(upstream_req).await {
        Ok(r) => r,
        Err(e) => {
            let text = format!(
                "mynah proxy: the upstream {} failed: {e}\n",
                shared.upstream.url.display()
            );
            return Ok(bad_gateway(recording, text));
        }
    };
    let response_start = now_nanos();
    let reason = resp
        .extensions()
        .get::<hyper::ext::ReasonPhrase>()
        .map(|r| String::from_utf8_lossy(r.as_bytes()).into_owned())
        .unwrap_or_else(|| resp.status().canonical_reason().unwrap_or("").to_string());
    let record_resp = mynah_traffic::Response {
        version: forward::record_version(resp.version()),
        status: resp.status().as_u16(),
        reason,
        headers: forward::record_headers(resp.headers(), false),
        body: Vec::new(),
        body_form: mynah_traffic::BodyForm::Wire,
    };
    recording.response_chunked = record_resp
        .headers
        .has_token("transfer-encoding", "chunked");
    if let Some(ex) = recording.exchange.as_mut() {
        ex.timing = Timing {
            response_start: Some(response_start),
            ..ex.timing
        };
        ex.response = Some(record_resp);
    }

    if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
        if let Some(client_upgrade) = client_upgrade {
            let upstream_upgrade = hyper::upgrade::on(&mut resp);
            shared.counters.upgrades.fetch_add(1, Ordering::Relaxed);
            recording.response_tap.ended = Some(response_start);
            recording.finish();
            tokio::spawn(tunnel(client_upgrade, upstream_upgrade, shared.clone()));
            let (parts, _) = resp.into_parts();
            return Ok(Response::from_parts(
                parts,
                ResponseBody {
                    kind: Kind::Own(None),
                },
            ));
        }
    }

    let (mut parts, inner) = resp.into_parts();
    forward::strip_hop_by_hop(&mut parts.headers, false);
    parts.version = http::Version::default();
    Ok(Response::from_parts(
        parts,
        ResponseBody {
            kind: Kind::Upstream {
                inner,
                recording: Some(recording),
                sender: Some(sender),
            },
        },
    ))
}

/// Answers 502 with `text` and records that answer.
fn bad_gateway(mut recording: Box<Recording>, text: String) -> Response<ResponseBody> {
    let shared = recording.shared.clone();
    shared
        .counters
        .upstream_errors
        .fetch_add(1, Ordering::Relaxed);
    let now = now_nanos();
    if let Some(ex) = recording.exchange.as_mut() {
        let mut headers = mynah_traffic::Headers::new();
        headers.push("Content-Type", "text/plain; charset=utf-8");
        headers.push("Content-Length", text.len().to_string());
        ex.response = Some(mynah_traffic::Response {
            version: mynah_traffic::Version::Http11,
            status: 502,
            reason: "Bad Gateway".into(),
            headers,
            body: Vec::new(),
            body_form: mynah_traffic::BodyForm::Wire,
        });
        ex.timing.response_start = Some(now);
        recording
            .response_tap
            .frame(&Frame::data(Bytes::from(text.clone())));
        recording.response_tap.ended = Some(now);
    }
    recording.finish();
    own(StatusCode::BAD_GATEWAY, text)
}

/// Copies bytes both ways between the upgraded client and upstream connections until either
/// side closes, or the proxy stops (after the drain time).
async fn tunnel(
    client: hyper::upgrade::OnUpgrade,
    upstream: hyper::upgrade::OnUpgrade,
    shared: Arc<Shared>,
) {
    let (Ok(client), Ok(upstream)) = tokio::join!(client, upstream) else {
        return;
    };
    let mut client = TokioIo::new(client);
    let mut upstream = TokioIo::new(upstream);
    let mut shutdown = shared.shutdown.clone();
    let drain = shared.drain_timeout;
    drop(shared);
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {}
        _ = async {
            stopped(&mut shutdown).await;
            tokio::time::sleep(drain).await;
        } => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Empty};
    use mynah_traffic::sink::ExchangeWriter;
    use mynah_traffic::{Pipeline, PipelineOptions};
    use std::sync::atomic::AtomicUsize;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    struct Memory(Arc<Mutex<Vec<Exchange>>>);

    impl ExchangeWriter for Memory {
        fn write(&mut self, ex: &Exchange) -> std::io::Result<()> {
            self.0.lock().unwrap().push(ex.clone());
            Ok(())
        }
        fn finish(self: Box<Self>) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// A raw HTTP/1.1 upstream: `/base/chunked` answers chunked, `/base/slow` never answers, anything else
    /// `ok`; counts its connections.
    async fn upstream(connections: Arc<AtomicUsize>) -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                connections.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut b = [0u8; 1024];
                    loop {
                        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                            match s.read(&mut b).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buf.extend_from_slice(&b[..n]),
                            }
                            continue;
                        };
                        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                        buf.drain(..end + 4);
                        let resp: &[u8] = if head.starts_with("GET /base/chunked ") {
                            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
                        } else if head.starts_with("GET /base/slow ") {
                            std::future::pending::<()>().await;
                            b""
                        } else {
                            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
                        };
                        if s.write_all(resp).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        addr
    }

    async fn get(
        send: &mut hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
        path: &str,
    ) -> (u16, Bytes) {
        let req = Request::get(path)
            .header("host", "t")
            .body(Empty::new())
            .unwrap();
        // The client connection is ready again only once it has seen the previous response end.
        send.ready().await.unwrap();
        let resp = send.send_request(req).await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.into_body().collect().await.unwrap().to_bytes())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn records_in_process_reuses_upstream_connections_and_cuts_at_shutdown() {
        let upstream_conns = Arc::new(AtomicUsize::new(0));
        let up = upstream(upstream_conns.clone()).await;
        let out = Arc::new(Mutex::new(Vec::new()));
        let o = out.clone();
        let pipeline = Pipeline::new(&PipelineOptions::default()).unwrap();
        let recorder = Recorder::spawn(
            "memory".as_ref(),
            pipeline,
            RecorderOptions::default(),
            move || Ok(Box::new(Memory(o)) as Box<dyn ExchangeWriter>),
        )
        .unwrap();
        let mut config =
            ProxyConfig::new("127.0.0.1:0".parse().unwrap(), &format!("http://{up}/base")).unwrap();
        config.drain_timeout = Duration::from_millis(200);
        let proxy = Proxy::start(config, recorder.sink()).await.unwrap();

        let tcp = tokio::net::TcpStream::connect(proxy.local_addr())
            .await
            .unwrap();
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .unwrap();
        tokio::spawn(conn);
        assert_eq!(get(&mut send, "/a").await, (200, Bytes::from_static(b"ok")));
        assert_eq!(
            get(&mut send, "/chunked").await,
            (200, Bytes::from_static(b"hello world"))
        );
        assert_eq!(
            get(&mut send, "/b?x=1").await,
            (200, Bytes::from_static(b"ok"))
        );
        // Sequential requests share one pooled upstream connection.
        assert_eq!(upstream_conns.load(Ordering::SeqCst), 1);

        // One request never answered: the shutdown cuts it after the drain time and records it.
        let tcp = tokio::net::TcpStream::connect(proxy.local_addr())
            .await
            .unwrap();
        let (mut slow, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .unwrap();
        tokio::spawn(conn);
        let pending = tokio::spawn(async move {
            let req = Request::get("/slow")
                .header("host", "t")
                .body(Empty::<Bytes>::new())
                .unwrap();
            let _ = slow.send_request(req).await;
        });
        while proxy.stats().in_flight == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let stats = proxy.shutdown().await;
        assert_eq!(stats.in_flight, 0);
        assert_eq!((stats.requests, stats.recorded), (4, 4));
        let report = recorder.finish().unwrap();
        assert_eq!(report.stats.written, 4);
        let _ = pending.await;

        let xs = out.lock().unwrap();
        let targets: Vec<&str> = xs.iter().map(|x| x.request.target.as_str()).collect();
        assert_eq!(targets, ["/a", "/chunked", "/b?x=1", "/slow"]);
        let chunked = xs[1].response.as_ref().unwrap();
        assert_eq!(
            chunked.headers.get_str("Transfer-Encoding").as_deref(),
            Some("chunked")
        );
        assert_eq!(chunked.body, b"b\r\nhello world\r\n0\r\n\r\n");
        assert_eq!(chunked.decoded_body().unwrap().as_ref(), b"hello world");
        assert_eq!(xs[0].incomplete, None);
        assert_eq!(xs[0].connection.index, 0);
        assert_eq!(xs[2].connection.index, 2);
        assert_eq!(xs[3].incomplete, Some(Incomplete::CaptureEnded));
        assert!(xs[3].response.is_none());
    }
}
