//! The HTTP/1.1 exchange, written by hand over a socket the virtual user owns.
//!
//! Why not hyper's `client::conn::http1` here (HTTP/2 still uses hyper): hyper drives each
//! connection from a second task, talks to it through channels, and keeps a read buffer per
//! connection for the connection's whole life. With it, `bench/run_throughput.sh` measured 0.72×
//! wrk's requests/s; with this reader 0.87×, and 0.97–1.03× once the response head stopped being
//! turned into an `http::HeaderMap` (see `headers.rs`). An idle user holds no buffer at all. A
//! load generator's HTTP/1.1 side is small — write one request, read one response with httparse,
//! frame the body (Content-Length, chunked, until close; none for HEAD, 1xx, 204, 304) — so it is
//! done here in the user's own task, with a receive buffer borrowed from a per-thread pool
//! (`pool.rs`) only while a response is read.

use std::future::Future;
use std::io;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::headers::{ResponseHeaders, Span};

/// Largest response head accepted; a bigger one is a protocol failure, not unbounded memory.
pub(crate) const MAX_HEAD: usize = 64 * 1024;
/// Headers per response head.
const MAX_HEADERS: usize = 128;
/// Longest chunk-size line (with extensions) or trailer line.
const MAX_LINE: usize = 8 * 1024;
/// Largest body buffer reserved up front from a Content-Length.
const PRESIZE_LIMIT: u64 = 64 * 1024;
/// First read size: most responses of a load test fit.
pub(crate) const FIRST_READ: usize = 8 * 1024;

/// Why an exchange failed, mapped to a failure kind by the caller.
#[derive(Debug)]
pub(crate) enum H1Error {
    /// The connection was closed before any byte of a response arrived. On a reused keep-alive
    /// connection this is the server having closed it while idle: the request may be retried.
    ClosedBeforeResponse,
    /// Closed or reset part way through the response.
    Closed,
    /// An I/O error (reset, broken pipe...).
    Io(io::Error),
    /// The bytes are not an HTTP/1 response.
    Malformed(String),
}

/// A response read whole (body kept up to a limit).
#[derive(Debug)]
pub(crate) struct H1Response {
    pub status: u16,
    pub headers: ResponseHeaders,
    pub body: Bytes,
    pub truncated: bool,
    /// Whether the connection can carry another request.
    pub keep_alive: bool,
}

/// Writes `request` (a complete serialized request: head and body) and reads the response.
/// `head_request`: the request was a HEAD (no body follows whatever the headers say).
/// `keep`: body bytes kept; `received` counts every body byte read.
pub(crate) async fn exchange<S>(
    io: &mut S,
    request: &[u8],
    head_request: bool,
    keep: usize,
    received: &mut u64,
) -> Result<H1Response, H1Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    io.write_all(request).await.map_err(write_error)?;
    io.flush().await.map_err(write_error)?;
    let mut pooled = super::pool::read_buffer();
    let buf = &mut *pooled;
    let mut got_any = false;
    loop {
        let head = read_head(io, buf, &mut got_any).await?;
        if (100..200).contains(&head.status) {
            if head.status == 101 {
                return Err(H1Error::Malformed(
                    "unexpected 101 Switching Protocols".into(),
                ));
            }
            // Interim response (100 Continue, 103 Early Hints): the real one follows.
            continue;
        }
        let framing = framing(&head, head_request)?;
        let mut body = match framing {
            // Sized up front (a `Bytes` frozen from a buffer with spare room needs a second
            // allocation, a shared header, and its free), but not beyond what a lying
            // Content-Length could make us reserve for nothing.
            Framing::Length(n) => {
                Body::with_capacity(keep, n.min(keep as u64).min(PRESIZE_LIMIT) as usize)
            }
            _ => Body::new(keep),
        };
        let eof = match framing {
            Framing::None => false,
            Framing::Length(n) => {
                read_length(io, buf, n, &mut body, received).await?;
                false
            }
            Framing::Chunked => {
                read_chunked(io, buf, &mut body, received).await?;
                false
            }
            Framing::UntilClose => {
                read_until_close(io, buf, &mut body, received).await?;
                true
            }
        };
        // Bytes beyond the response on a keep-alive connection would be a protocol error by
        // the server; the connection is not reused then.
        let keep_alive = head.keep_alive && !eof && buf.is_empty();
        let (body, truncated) = body.finish();
        return Ok(H1Response {
            status: head.status,
            headers: head.headers,
            body,
            truncated,
            keep_alive,
        });
    }
}

fn write_error(e: io::Error) -> H1Error {
    match e.kind() {
        // Nothing of a response can have arrived before the request was written.
        io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset => H1Error::ClosedBeforeResponse,
        _ => H1Error::Io(e),
    }
}

struct Head {
    status: u16,
    headers: ResponseHeaders,
    keep_alive: bool,
    http10: bool,
    chunked: Option<bool>,
    length: Length,
}

async fn fill<S: AsyncRead + Unpin>(io: &mut S, buf: &mut BytesMut) -> Result<usize, H1Error> {
    if buf.capacity() - buf.len() < 1024 {
        // The buffer is never shared, so this reclaims consumed space before it allocates;
        // it grows only while one head or line does not fit.
        buf.reserve(FIRST_READ);
    }
    io.read_buf(buf).await.map_err(H1Error::Io)
}

async fn read_head<S: AsyncRead + Unpin>(
    io: &mut S,
    buf: &mut BytesMut,
    got_any: &mut bool,
) -> Result<Head, H1Error> {
    loop {
        if !buf.is_empty() {
            // Uninitialised slots: no 4 KiB memset per response.
            let mut slots =
                [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
            let mut response = httparse::Response::new(&mut []);
            match httparse::ParserConfig::default().parse_response_with_uninit_headers(
                &mut response,
                buf,
                &mut slots,
            ) {
                // The limit holds however the head arrived (in one read or many).
                Ok(httparse::Status::Complete(len)) if len > MAX_HEAD => {
                    return Err(H1Error::Malformed(format!(
                        "malformed response: head larger than {} KiB",
                        MAX_HEAD / 1024
                    )))
                }
                Ok(httparse::Status::Complete(len)) => {
                    let parsed = parse_head(&response, buf.as_ptr() as usize);
                    // One small copy of the head, so the receive buffer is never shared and
                    // goes back to the pool whole; the headers are places in that copy.
                    let raw = Bytes::copy_from_slice(&buf[..len]);
                    buf.advance(len);
                    return Ok(parsed.into_head(raw));
                }
                Ok(httparse::Status::Partial) => {}
                Err(e) => return Err(H1Error::Malformed(format!("malformed response: {e}"))),
            }
            if buf.len() > MAX_HEAD {
                return Err(H1Error::Malformed(format!(
                    "malformed response: head larger than {} KiB",
                    MAX_HEAD / 1024
                )));
            }
        }
        match fill(io, buf).await {
            Ok(0) if !*got_any => return Err(H1Error::ClosedBeforeResponse),
            Ok(0) => return Err(H1Error::Closed),
            Ok(_) => *got_any = true,
            Err(H1Error::Io(e)) if !*got_any && e.kind() == io::ErrorKind::ConnectionReset => {
                return Err(H1Error::ClosedBeforeResponse)
            }
            Err(e) => return Err(e),
        }
    }
}

/// Notes where each header's name and value lie relative to `base`, the start of the buffer
/// `r` was parsed from, and reads the few headers framing depends on, in one pass. Nothing is
/// checked again: httparse accepts only token names and values without control bytes, the same
/// rules as the `http` crate's (so `ResponseHeaders::to_header_map` loses nothing).
fn parse_head(r: &httparse::Response<'_, '_>, base: usize) -> ParsedHead {
    let mut spans = Vec::with_capacity(r.headers.len());
    let mut connection_close = false;
    let mut connection_keep_alive = false;
    let mut chunked = None;
    let mut length = Length::Absent;
    let offset = |s: &[u8]| {
        let start = (s.as_ptr() as usize).wrapping_sub(base) as u32;
        (start, start + s.len() as u32)
    };
    for h in r.headers.iter() {
        let name = h.name.as_bytes();
        // Length first: most names are ruled out by one compare.
        match name.len() {
            10 if name.eq_ignore_ascii_case(b"connection") => {
                for token in h.value.split(|&b| b == b',') {
                    let token = token.trim_ascii();
                    connection_close |= token.eq_ignore_ascii_case(b"close");
                    connection_keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
                }
            }
            14 if name.eq_ignore_ascii_case(b"content-length") => length.add(h.value),
            // The last Transfer-Encoding's last coding decides.
            17 if name.eq_ignore_ascii_case(b"transfer-encoding") => {
                chunked = Some(
                    h.value
                        .rsplit(|&b| b == b',')
                        .next()
                        .is_some_and(|c| c.trim_ascii().eq_ignore_ascii_case(b"chunked")),
                );
            }
            _ => {}
        }
        spans.push(Span {
            name: offset(name),
            value: offset(h.value),
        });
    }
    let http10 = r.version == Some(0);
    let keep_alive = if http10 {
        connection_keep_alive && !connection_close
    } else {
        !connection_close
    };
    ParsedHead {
        status: r.code.unwrap_or(0),
        http10,
        keep_alive,
        chunked,
        length,
        spans,
    }
}

/// What the Content-Length headers said; judged only when the length frames the body.
#[derive(Clone, Copy)]
enum Length {
    Absent,
    Is(u64),
    Invalid,
    Conflicting,
}

impl Length {
    /// Adds one Content-Length value (a comma-separated list of equal numbers is allowed).
    fn add(&mut self, value: &[u8]) {
        for part in value.split(|&b| b == b',') {
            let part = part.trim_ascii();
            let n = (!part.is_empty() && part.len() <= 19 && part.iter().all(u8::is_ascii_digit))
                .then(|| part.iter().fold(0u64, |n, &d| n * 10 + u64::from(d - b'0')));
            *self = match (*self, n) {
                (Length::Invalid | Length::Conflicting, _) => return,
                (_, None) => Length::Invalid,
                (Length::Absent, Some(n)) => Length::Is(n),
                (Length::Is(l), Some(n)) if l == n => Length::Is(n),
                (Length::Is(_), Some(_)) => Length::Conflicting,
            };
        }
    }
}

/// A parsed head, its header places still relative to the receive buffer.
struct ParsedHead {
    status: u16,
    http10: bool,
    keep_alive: bool,
    /// Whether the last Transfer-Encoding ends in `chunked`; `None` without one.
    chunked: Option<bool>,
    length: Length,
    spans: Vec<Span>,
}

impl ParsedHead {
    fn into_head(self, raw: Bytes) -> Head {
        Head {
            status: self.status,
            headers: ResponseHeaders::raw(raw, self.spans),
            keep_alive: self.keep_alive,
            http10: self.http10,
            chunked: self.chunked,
            length: self.length,
        }
    }
}

enum Framing {
    None,
    Length(u64),
    Chunked,
    UntilClose,
}

/// RFC 9112 section 6.3, for responses.
fn framing(head: &Head, head_request: bool) -> Result<Framing, H1Error> {
    if head_request || head.status == 204 || head.status == 304 {
        return Ok(Framing::None);
    }
    match head.chunked {
        Some(true) if !head.http10 => return Ok(Framing::Chunked),
        Some(_) => return Ok(Framing::UntilClose),
        None => {}
    }
    match head.length {
        Length::Absent => Ok(Framing::UntilClose),
        Length::Is(n) => Ok(Framing::Length(n)),
        Length::Invalid => Err(H1Error::Malformed(
            "malformed response: invalid Content-Length".into(),
        )),
        Length::Conflicting => Err(H1Error::Malformed(
            "malformed response: conflicting Content-Length values".into(),
        )),
    }
}

/// The body as it arrives, kept up to a limit. Kept bytes are copied out of the read buffer,
/// so the buffer is never shared and one allocation serves the whole response, whatever its
/// length (an endless body costs no memory beyond the limit).
struct Body {
    keep: usize,
    data: BytesMut,
    truncated: bool,
}

impl Body {
    fn new(keep: usize) -> Body {
        Body::with_capacity(keep, 0)
    }

    fn with_capacity(keep: usize, capacity: usize) -> Body {
        Body {
            keep,
            data: BytesMut::with_capacity(capacity),
            truncated: false,
        }
    }

    fn push(&mut self, bytes: &[u8]) {
        let room = self.keep - self.data.len();
        if bytes.len() > room {
            self.truncated = true;
        }
        self.data.extend_from_slice(&bytes[..bytes.len().min(room)]);
    }

    fn finish(self) -> (Bytes, bool) {
        (self.data.freeze(), self.truncated)
    }
}

async fn read_length<S: AsyncRead + Unpin>(
    io: &mut S,
    buf: &mut BytesMut,
    mut left: u64,
    body: &mut Body,
    received: &mut u64,
) -> Result<(), H1Error> {
    loop {
        let take = (buf.len() as u64).min(left) as usize;
        if take > 0 {
            *received += take as u64;
            left -= take as u64;
            body.push(&buf[..take]);
            buf.advance(take);
        }
        if left == 0 {
            return Ok(());
        }
        read_more(io, buf).await?;
    }
}

/// Reads into `buf`; the end of the stream here is a response cut short.
async fn read_more<S: AsyncRead + Unpin>(io: &mut S, buf: &mut BytesMut) -> Result<(), H1Error> {
    match fill(io, buf).await? {
        0 => Err(H1Error::Closed),
        _ => Ok(()),
    }
}

async fn read_until_close<S: AsyncRead + Unpin>(
    io: &mut S,
    buf: &mut BytesMut,
    body: &mut Body,
    received: &mut u64,
) -> Result<(), H1Error> {
    loop {
        if !buf.is_empty() {
            *received += buf.len() as u64;
            body.push(buf);
            buf.clear();
        }
        match fill(io, buf).await {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            // Some servers reset instead of closing after a close-delimited body.
            Err(H1Error::Io(e)) if e.kind() == io::ErrorKind::ConnectionReset => return Ok(()),
            Err(e) => return Err(e),
        }
    }
}

/// Waits until `buf` starts with a whole CRLF- (or LF-) terminated line; returns the line's
/// length without its terminator and the bytes to consume with it.
async fn line<S: AsyncRead + Unpin>(
    io: &mut S,
    buf: &mut BytesMut,
) -> Result<(usize, usize), H1Error> {
    loop {
        if let Some(i) = buf.iter().position(|&c| c == b'\n') {
            let len = if i > 0 && buf[i - 1] == b'\r' {
                i - 1
            } else {
                i
            };
            return Ok((len, i + 1));
        }
        if buf.len() > MAX_LINE {
            break;
        }
        read_more(io, buf).await?;
    }
    Err(H1Error::Malformed(
        "malformed response: chunk line too long".into(),
    ))
}

async fn read_chunked<S: AsyncRead + Unpin>(
    io: &mut S,
    buf: &mut BytesMut,
    body: &mut Body,
    received: &mut u64,
) -> Result<(), H1Error> {
    loop {
        let (len, used) = line(io, buf).await?;
        let digits = buf[..len]
            .split(|&b| b == b';')
            .next()
            .unwrap_or_default()
            .trim_ascii();
        let size = std::str::from_utf8(digits)
            .ok()
            .filter(|s| !s.is_empty() && s.len() <= 16 && s.bytes().all(|b| b.is_ascii_hexdigit()))
            .and_then(|s| u64::from_str_radix(s, 16).ok())
            .ok_or_else(|| H1Error::Malformed("malformed response: invalid chunk size".into()))?;
        buf.advance(used);
        if size == 0 {
            // Trailers, up to the empty line.
            loop {
                let (len, used) = line(io, buf).await?;
                buf.advance(used);
                if len == 0 {
                    return Ok(());
                }
            }
        }
        read_length(io, buf, size, body, received).await?;
        let (len, used) = line(io, buf).await?;
        buf.advance(used);
        if len != 0 {
            return Err(H1Error::Malformed(
                "malformed response: chunk not followed by CRLF".into(),
            ));
        }
    }
}

/// A peer that answers `data`, handed out in reads of the sizes in `pieces` (cycled; 0 is
/// read as 1), and swallows whatever is written.
struct Scripted<'a> {
    data: &'a [u8],
    pieces: &'a [usize],
    next: usize,
}

impl AsyncRead for Scripted<'_> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        let piece = match self.pieces {
            [] => usize::MAX,
            p => p[self.next % p.len()].max(1),
        };
        self.next += 1;
        let n = piece.min(self.data.len()).min(buf.remaining());
        buf.put_slice(&self.data[..n]);
        self.data = &self.data[n..];
        std::task::Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Scripted<'_> {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<io::Result<usize>> {
        std::task::Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

/// What [`read_response`] found: status, kept body, whether it was cut, body bytes counted,
/// and whether the connection could be reused.
pub type ReadResponse = (u16, Bytes, bool, u64, bool);

/// Reads one response from `data` as the engine does from a socket, delivered in reads of the
/// sizes in `pieces`. For fuzzing and property tests; errors are their messages.
#[doc(hidden)]
pub fn read_response(
    data: &[u8],
    pieces: &[usize],
    head_request: bool,
    keep: usize,
) -> Result<ReadResponse, String> {
    let mut io = Scripted {
        data,
        pieces,
        next: 0,
    };
    let mut received = 0;
    let result = {
        let fut = exchange(
            &mut io,
            b"GET / HTTP/1.1\r\n\r\n",
            head_request,
            keep,
            &mut received,
        );
        let mut fut = std::pin::pin!(fut);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        // The scripted peer is always ready, so the exchange never waits.
        match fut.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(r) => r,
            std::task::Poll::Pending => return Err("pending".into()),
        }
    };
    match result {
        Ok(r) => Ok((r.status, r.body, r.truncated, received, r.keep_alive)),
        Err(e) => Err(format!("{e:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs one exchange against a scripted peer that answers `response` (in pieces).
    async fn run(
        pieces: &[&[u8]],
        head_request: bool,
        keep: usize,
    ) -> Result<(H1Response, u64), H1Error> {
        let (mut client, mut server) = tokio::io::duplex(1 << 16);
        let pieces: Vec<Vec<u8>> = pieces.iter().map(|p| p.to_vec()).collect();
        let peer = tokio::spawn(async move {
            let mut req = vec![0u8; 1024];
            let _ = server.read(&mut req).await;
            for p in pieces {
                if server.write_all(&p).await.is_err() {
                    return;
                }
                tokio::task::yield_now().await;
            }
            // Dropping `server` closes the stream.
        });
        let mut received = 0;
        let r = exchange(
            &mut client,
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
            head_request,
            keep,
            &mut received,
        )
        .await;
        let _ = peer.await;
        r.map(|r| (r, received))
    }

    #[tokio::test]
    async fn content_length_across_reads() {
        let (r, n) = run(
            &[
                b"HTTP/1.1 200 OK\r\nContent-Le",
                b"ngth: 5\r\n\r\nhe",
                b"llo",
            ],
            false,
            100,
        )
        .await
        .unwrap();
        assert_eq!(
            (r.status, &r.body[..], n, r.keep_alive),
            (200, &b"hello"[..], 5, true)
        );
    }

    #[tokio::test]
    async fn chunked_with_extensions_and_trailers() {
        let (r, n) = run(
            &[
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n",
                b"2\r\nde\r\n0\r\nX-T: 1\r\n\r\n",
            ],
            false,
            100,
        )
        .await
        .unwrap();
        assert_eq!((&r.body[..], n, r.keep_alive), (&b"abcde"[..], 5, true));
    }

    #[tokio::test]
    async fn interim_responses_are_skipped_and_head_has_no_body() {
        let (r, _) = run(
            &[b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n"],
            true,
            100,
        )
        .await
        .unwrap();
        assert_eq!((r.status, r.body.len(), r.keep_alive), (200, 0, true));
    }

    #[tokio::test]
    async fn close_delimited_and_http10() {
        let (r, n) = run(&[b"HTTP/1.0 200 OK\r\n\r\nall of ", b"it"], false, 100)
            .await
            .unwrap();
        assert_eq!(
            (&r.body[..], n, r.keep_alive),
            (&b"all of it"[..], 9, false)
        );
    }

    #[tokio::test]
    async fn truncation_counts_everything() {
        let (r, n) = run(
            &[
                b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n01234",
                b"56789",
            ],
            false,
            3,
        )
        .await
        .unwrap();
        assert_eq!((&r.body[..], r.truncated, n), (&b"012"[..], true, 10));
    }

    #[tokio::test]
    async fn failures() {
        assert!(matches!(
            run(&[], false, 10).await,
            Err(H1Error::ClosedBeforeResponse)
        ));
        assert!(matches!(
            run(
                &[b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"],
                false,
                10
            )
            .await,
            Err(H1Error::Closed)
        ));
        assert!(matches!(
            run(&[b"HTTP/1.1 200"], false, 10).await,
            Err(H1Error::Closed)
        ));
        assert!(matches!(
            run(&[b"HTTP/9 banana\r\n\r\nxx"], false, 10).await,
            Err(H1Error::Malformed(_))
        ));
        assert!(matches!(
            run(
                &[b"HTTP/1.1 200 OK\r\nContent-Length: 1, 2\r\n\r\n"],
                false,
                10
            )
            .await,
            Err(H1Error::Malformed(_))
        ));
        assert!(matches!(
            run(
                &[b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"],
                false,
                10
            )
            .await,
            Err(H1Error::Malformed(_))
        ));
        assert!(matches!(
            run(&[b"HTTP/1.1 101 Switching Protocols\r\n\r\n"], false, 10).await,
            Err(H1Error::Malformed(_))
        ));
    }

    #[tokio::test]
    async fn headers_are_kept_as_sent_and_framing_reads_them() {
        let (r, n) = run(
            &[b"HTTP/1.1 200 OK\r\nX-A: 1\r\ncontent-LENGTH: 3, 3\r\nSet-Cookie: s=1\r\nset-cookie: t=2\r\nX-Obs: caf\xc3\xa9\r\n\r\nabc"],
            false,
            10,
        )
        .await
        .unwrap();
        assert_eq!((&r.body[..], n), (&b"abc"[..], 3));
        assert_eq!(r.headers.len(), 5);
        let names: Vec<&str> = r.headers.iter().map(|(n, _)| n).collect();
        assert_eq!(
            names,
            ["X-A", "content-LENGTH", "Set-Cookie", "set-cookie", "X-Obs"]
        );
        assert_eq!(r.headers.get_all("SET-cookie").count(), 2);
        // Everything httparse accepts, the `http` crate accepts too.
        let map = r.headers.to_header_map();
        assert_eq!(map.len(), 5);
        assert_eq!(map["x-obs"].as_bytes(), "café".as_bytes());
    }

    #[tokio::test]
    async fn content_length_is_judged_only_when_it_frames_the_body() {
        // A HEAD response's length describes the GET it stands for, and is not read.
        let (r, _) = run(
            &[b"HTTP/1.1 200 OK\r\nContent-Length: banana\r\n\r\n"],
            true,
            10,
        )
        .await
        .unwrap();
        assert_eq!(r.status, 200);
        // Transfer-Encoding wins over Content-Length.
        let (r, _) = run(
            &[b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\nTransfer-Encoding: gzip, chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n"],
            false,
            10,
        )
        .await
        .unwrap();
        assert_eq!(&r.body[..], b"x");
        for bad in [
            &b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 123456789012345678901\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: \r\n\r\n",
            b"HTTP/1.1 200 OK\r\nX-Del: a\x7fb\r\nContent-Length: 0\r\n\r\n",
        ] {
            assert!(
                matches!(run(&[bad], false, 10).await, Err(H1Error::Malformed(_))),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[tokio::test]
    async fn connection_close_ends_keep_alive() {
        let (r, _) = run(
            &[b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n"],
            false,
            10,
        )
        .await
        .unwrap();
        assert!(!r.keep_alive);
    }
}
