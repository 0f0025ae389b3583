//! One connection to one origin: resolve, connect, TLS, hyper handshake, and the mapping of
//! network errors to stable failure messages.

use std::error::Error as StdError;
use std::io;
use std::net::{IpAddr, SocketAddr};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::client::conn::{http2, TrySendError};
use hyper_util::rt::{TokioExecutor, TokioIo};
use mynah_stats::FailureKind;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

use super::{Failure, Shared};

/// Scheme, host and port of a request URI, borrowed from it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Target<'a> {
    pub(crate) https: bool,
    /// Host as in the URI (IPv6 without brackets).
    pub(crate) host: &'a str,
    pub(crate) port: u16,
    /// The authority without any `user:password@`: what an HTTP/1.1 `Host` header carries.
    pub(crate) host_header: &'a str,
}

impl<'a> Target<'a> {
    /// The origin of an absolute `http://` or `https://` URI.
    ///
    /// One pass over the authority's bytes (it was validated when the URI was parsed): this runs
    /// for every request, and `Uri::host` plus `Uri::port_u16` cost several times as much.
    pub(crate) fn of(uri: &'a http::Uri) -> Result<Target<'a>, Failure> {
        let https = match uri.scheme_str() {
            Some(s) if s.eq_ignore_ascii_case("https") => true,
            Some(s) if s.eq_ignore_ascii_case("http") => false,
            Some(_) => return Err(Failure::new(FailureKind::Connect, "unsupported URI scheme")),
            None => return Err(Failure::new(FailureKind::Connect, "URI has no scheme")),
        };
        let authority = uri.authority().map_or("", |a| a.as_str());
        let host_header = match authority.bytes().rposition(|b| b == b'@') {
            Some(at) => &authority[at + 1..],
            None => authority,
        };
        // The port is what follows the last ':' outside an IPv6 literal's brackets.
        let (host, port) = match host_header.bytes().rposition(|b| b == b':' || b == b']') {
            Some(i) if host_header.as_bytes()[i] == b':' => {
                (&host_header[..i], host_header[i + 1..].parse::<u16>().ok())
            }
            _ => (host_header, None),
        };
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        if host.is_empty() {
            return Err(Failure::new(FailureKind::Connect, "URI has no host"));
        }
        Ok(Target {
            https,
            host,
            port: port.unwrap_or(if https { 443 } else { 80 }),
            host_header,
        })
    }
}

enum Sender {
    H2(http2::SendRequest<Full<Bytes>>),
    /// HTTP/1.1 written by hand in the user's own task (see `h1.rs` for why).
    Raw(RawIo),
}

/// The socket of a hand-driven HTTP/1.1 connection.
pub(crate) enum RawIo {
    Tcp(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl AsyncRead for RawIo {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        match self.get_mut() {
            RawIo::Tcp(s) => std::pin::Pin::new(s).poll_read(cx, buf),
            RawIo::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for RawIo {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<io::Result<usize>> {
        match self.get_mut() {
            RawIo::Tcp(s) => std::pin::Pin::new(s).poll_write(cx, buf),
            RawIo::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        match self.get_mut() {
            RawIo::Tcp(s) => std::pin::Pin::new(s).poll_flush(cx),
            RawIo::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        match self.get_mut() {
            RawIo::Tcp(s) => std::pin::Pin::new(s).poll_shutdown(cx),
            RawIo::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// A live connection and the task that drives it (aborted when this is dropped).
pub(crate) struct Conn {
    https: bool,
    port: u16,
    /// Lowercase host.
    host: Box<str>,
    sender: Sender,
    /// The task driving a hyper connection; none for [`Sender::Raw`].
    task: Option<JoinHandle<()>>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

impl Conn {
    pub(crate) fn is_for(&self, target: &Target<'_>) -> bool {
        self.https == target.https
            && self.port == target.port
            && self.host.eq_ignore_ascii_case(target.host)
    }

    /// The socket, when this connection is driven by hand.
    pub(crate) fn raw(&mut self) -> Option<&mut RawIo> {
        match &mut self.sender {
            Sender::Raw(io) => Some(io),
            _ => None,
        }
    }

    /// Whether the connection can take a request now; a closed one (the server dropped an idle
    /// keep-alive connection) answers false at once.
    pub(crate) async fn ready(&mut self) -> bool {
        match &mut self.sender {
            Sender::H2(s) => !s.is_closed() && s.ready().await.is_ok(),
            // An idle HTTP/1.1 socket must have nothing to read: end of stream means the server
            // closed it, and bytes mean it is out of step. tokio answers from its cached
            // readiness, so this costs no system call while the socket is quiet.
            Sender::Raw(RawIo::Tcp(tcp)) => {
                matches!(tcp.try_read(&mut [0u8; 1]), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
            }
            Sender::Raw(RawIo::Tls(_)) => true,
        }
    }

    /// Sends a request through hyper (`None` for a hand-driven connection); on failure hyper
    /// hands the request back when none of it was written.
    pub(crate) async fn send(
        &mut self,
        request: http::Request<Full<Bytes>>,
    ) -> Option<Result<http::Response<Incoming>, TrySendError<http::Request<Full<Bytes>>>>> {
        match &mut self.sender {
            Sender::H2(s) => Some(s.try_send_request(request).await),
            // Raw connections are driven by `h1::exchange`, never through here.
            Sender::Raw(_) => None,
        }
    }
}

/// Resolves, connects and handshakes, all within the connect timeout.
pub(crate) async fn connect(shared: &Shared, target: &Target<'_>) -> Result<Conn, Failure> {
    let limit = shared.config.connect_timeout;
    match tokio::time::timeout(limit, connect_inner(shared, target)).await {
        Ok(result) => result,
        Err(_) => Err(Failure {
            kind: FailureKind::Connect,
            message: format!("connect timeout after {limit:?}"),
        }),
    }
}

async fn connect_inner(shared: &Shared, target: &Target<'_>) -> Result<Conn, Failure> {
    let tcp = tcp_connect(target).await?;
    let _ = tcp.set_nodelay(true);
    let (sender, task) = if target.https {
        let name = ServerName::try_from(target.host.to_owned())
            .map_err(|_| Failure::new(FailureKind::Connect, "invalid TLS server name"))?;
        let tls = tokio_rustls::TlsConnector::from(shared.tls.clone())
            .connect(name, tcp)
            .await
            .map_err(|e| Failure {
                kind: FailureKind::Connect,
                message: format!("TLS handshake failed: {}", tls_reason(&e)),
            })?;
        if tls.get_ref().1.alpn_protocol() == Some(b"h2") {
            handshake_h2(tls).await?
        } else {
            (Sender::Raw(RawIo::Tls(Box::new(tls))), None)
        }
    } else if shared.config.http2_prior_knowledge {
        handshake_h2(tcp).await?
    } else {
        (Sender::Raw(RawIo::Tcp(tcp)), None)
    };
    Ok(Conn {
        https: target.https,
        port: target.port,
        host: target.host.to_ascii_lowercase().into_boxed_str(),
        sender,
        task,
    })
}

async fn tcp_connect(target: &Target<'_>) -> Result<TcpStream, Failure> {
    let mut last: Option<io::Error> = None;
    if let Ok(ip) = target.host.parse::<IpAddr>() {
        return TcpStream::connect(SocketAddr::new(ip, target.port))
            .await
            .map_err(|e| connect_failure(&e));
    }
    let addrs = tokio::net::lookup_host((target.host, target.port))
        .await
        .map_err(|_| unresolved(target.host))?;
    let mut any = false;
    for addr in addrs {
        any = true;
        match TcpStream::connect(addr).await {
            Ok(tcp) => return Ok(tcp),
            Err(e) => last = Some(e),
        }
    }
    match last {
        Some(e) if any => Err(connect_failure(&e)),
        _ => Err(unresolved(target.host)),
    }
}

fn unresolved(host: &str) -> Failure {
    Failure {
        kind: FailureKind::Connect,
        message: format!("cannot resolve host {host}"),
    }
}

fn connect_failure(e: &io::Error) -> Failure {
    let message = match e.kind() {
        io::ErrorKind::ConnectionRefused => "connection refused".to_string(),
        io::ErrorKind::ConnectionReset => "connection reset by peer".to_string(),
        io::ErrorKind::TimedOut => "connect timed out".to_string(),
        io::ErrorKind::HostUnreachable => "host unreachable".to_string(),
        io::ErrorKind::NetworkUnreachable => "network unreachable".to_string(),
        io::ErrorKind::AddrNotAvailable => "no local address available".to_string(),
        _ => format!("connect failed: {e}"),
    };
    Failure {
        kind: FailureKind::Connect,
        message,
    }
}

/// The reason of a failed TLS handshake: rustls's own error when there is one.
fn tls_reason(e: &io::Error) -> String {
    if let Some(inner) = e.get_ref() {
        if let Some(tls) = inner.downcast_ref::<rustls::Error>() {
            return tls.to_string();
        }
    }
    match e.kind() {
        io::ErrorKind::UnexpectedEof => "connection closed".to_string(),
        io::ErrorKind::ConnectionReset => "connection reset by peer".to_string(),
        _ => e.to_string(),
    }
}

type Spawned = (Sender, Option<JoinHandle<()>>);

async fn handshake_h2<T>(io: T) -> Result<Spawned, Failure>
where
    T: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (sender, conn) = http2::Builder::new(TokioExecutor::new())
        .handshake(TokioIo::new(io))
        .await
        .map_err(|e| Failure {
            kind: FailureKind::Connect,
            message: format!("HTTP/2 handshake failed: {e}"),
        })?;
    let task = tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok((Sender::H2(sender), Some(task)))
}

/// Maps an error of an exchange (sending, waiting, or reading the body) to a failure.
pub(crate) fn exchange_failure(e: &hyper::Error) -> Failure {
    const CLOSED: &str = "connection closed before the response was complete";
    if e.is_parse() || e.is_parse_status() || e.is_parse_too_large() {
        return Failure {
            kind: FailureKind::Protocol,
            message: format!("malformed response: {e}"),
        };
    }
    if e.is_incomplete_message() || e.is_canceled() || e.is_closed() {
        return Failure::new(FailureKind::Reset, CLOSED);
    }
    let mut source: Option<&(dyn StdError + 'static)> = e.source();
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<io::Error>() {
            return io_failure(io);
        }
        if let Some(inner) = s.downcast_ref::<hyper::Error>() {
            return exchange_failure(inner);
        }
        source = s.source();
    }
    match e.source() {
        // HTTP/2 errors (h2's own type): GOAWAY or RST_STREAM from the peer, or a protocol
        // error detected locally.
        Some(s) => {
            let text = s.to_string();
            let kind = if text.contains("received") {
                FailureKind::Reset
            } else {
                FailureKind::Protocol
            };
            Failure {
                kind,
                message: format!("HTTP/2 error: {text}"),
            }
        }
        None => Failure {
            kind: FailureKind::Reset,
            message: format!("connection error: {e}"),
        },
    }
}

pub(crate) fn io_failure(e: &io::Error) -> Failure {
    let message = match e.kind() {
        io::ErrorKind::ConnectionReset => "connection reset by peer".to_string(),
        io::ErrorKind::ConnectionAborted => "connection aborted".to_string(),
        io::ErrorKind::BrokenPipe => "connection closed while sending the request".to_string(),
        io::ErrorKind::UnexpectedEof => {
            "connection closed before the response was complete".to_string()
        }
        _ => match e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
            Some(tls) => format!("TLS error: {tls}"),
            None => format!("connection error: {e}"),
        },
    };
    Failure {
        kind: FailureKind::Reset,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_agree_with_the_uri_parser() {
        for (uri, https, port, host_header) in [
            ("http://example.com/x", false, 80, "example.com"),
            ("https://Example.COM:8443/", true, 8443, "Example.COM:8443"),
            ("http://user:pw@h:81/", false, 81, "h:81"),
            ("http://[::1]:9000/p?q", false, 9000, "[::1]:9000"),
            ("https://[fe80::1]/", true, 443, "[fe80::1]"),
            ("http://127.0.0.1:18181", false, 18181, "127.0.0.1:18181"),
            ("http://h:/", false, 80, "h:"),
        ] {
            let u: http::Uri = uri.parse().unwrap();
            let t = Target::of(&u).unwrap();
            let host = u.host().unwrap();
            let host = host.trim_start_matches('[').trim_end_matches(']');
            assert_eq!(
                (t.https, t.host, t.port, t.host_header),
                (https, host, u.port_u16().unwrap_or(port), host_header),
                "{uri}"
            );
        }
        let relative: http::Uri = "/only/a/path".parse().unwrap();
        assert!(Target::of(&relative).is_err());
        let ftp: http::Uri = "ftp://h/".parse().unwrap();
        assert!(Target::of(&ftp).is_err());
    }
}
