//! The HTTP/1.1 exchange, written by hand over a socket the virtual user owns.
//!
//! Why not hyper's `client::conn::http1` here (HTTP/2 still uses hyper): hyper drives each
//! connection from a second task, talks to it through channels, and keeps a read buffer per
//! connection for the connection's whole life. With it, `bench/run_throughput.sh` measured 0.72×
//! wrk's requests/s; with this reader 0.87× (and an idle user holds no buffer at all). A load
//! generator's HTTP/1.1 side is small — write one request, read one response with httparse,
//! frame the body (Content-Length, chunked, until close; none for HEAD, 1xx, 204, 304) — so it is
//! done here in the user's own task, with a buffer that exists only while a response is read.

use std::future::Future;
use std::io;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Largest response head accepted; a bigger one is a protocol failure, not unbounded memory.
pub(crate) const MAX_HEAD: usize = 64 * 1024;
/// Headers per response head.
const MAX_HEADERS: usize = 128;
/// Longest chunk-size line (with extensions) or trailer line.
const MAX_LINE: usize = 8 * 1024;
/// First read size: most responses of a load test fit.
const FIRST_READ: usize = 8 * 1024;

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
    pub headers: http::HeaderMap,
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
    let mut buf = BytesMut::with_capacity(FIRST_READ);
    let mut got_any = false;
    loop {
        let head = read_head(io, &mut buf, &mut got_any).await?;
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
        let mut body = Body::new(keep);
        let eof = match framing {
            Framing::None => false,
            Framing::Length(n) => {
                read_length(io, &mut buf, n, &mut body, received).await?;
                false
            }
            Framing::Chunked => {
                read_chunked(io, &mut buf, &mut body, received).await?;
                false
            }
            Framing::UntilClose => {
                read_until_close(io, &mut buf, &mut body, received).await?;
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
    headers: http::HeaderMap,
    keep_alive: bool,
    http10: bool,
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
                    let parsed = parse_head(&response, buf.as_ptr() as usize)?;
                    // The header values are slices of the head: no copy per value.
                    let raw = buf.split_to(len).freeze();
                    return Ok(parsed.into_head(&raw));
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

/// A parsed head whose header values are still byte ranges of the receive buffer.
struct ParsedHead {
    status: u16,
    http10: bool,
    keep_alive: bool,
    headers: Vec<(http::HeaderName, usize, usize)>,
}

impl ParsedHead {
    fn into_head(self, raw: &Bytes) -> Head {
        let mut headers = http::HeaderMap::with_capacity(self.headers.len());
        for (name, start, end) in self.headers {
            // Checked in `parse_head`, so this cannot fail; skip rather than panic regardless.
            if let Ok(value) = http::HeaderValue::from_maybe_shared(raw.slice(start..end)) {
                headers.append(name, value);
            }
        }
        Head {
            status: self.status,
            headers,
            keep_alive: self.keep_alive,
            http10: self.http10,
        }
    }
}

/// Validates a head's names and values and notes where each value lies relative to `base`,
/// the start of the buffer `r` was parsed from.
fn parse_head(r: &httparse::Response<'_, '_>, base: usize) -> Result<ParsedHead, H1Error> {
    let status = r.code.unwrap_or(0);
    let http10 = r.version == Some(0);
    let mut headers = Vec::with_capacity(r.headers.len());
    let mut connection_close = false;
    let mut connection_keep_alive = false;
    for h in r.headers.iter() {
        let name = http::HeaderName::from_bytes(h.name.as_bytes()).map_err(|_| {
            H1Error::Malformed(format!(
                "malformed response: invalid header name {:?}",
                h.name
            ))
        })?;
        // The `http` crate's rule for header values, checked here without copying.
        if !h.value.iter().all(|&b| (b >= 32 && b != 127) || b == b'\t') {
            return Err(H1Error::Malformed(format!(
                "malformed response: invalid value for header {name}"
            )));
        }
        if name == http::header::CONNECTION {
            for token in h.value.split(|&b| b == b',') {
                let token = token.trim_ascii();
                connection_close |= token.eq_ignore_ascii_case(b"close");
                connection_keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
            }
        }
        let start = (h.value.as_ptr() as usize).wrapping_sub(base);
        headers.push((name, start, start + h.value.len()));
    }
    let keep_alive = if http10 {
        connection_keep_alive && !connection_close
    } else {
        !connection_close
    };
    Ok(ParsedHead {
        status,
        http10,
        keep_alive,
        headers,
    })
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
    let te = head.headers.get_all(http::header::TRANSFER_ENCODING);
    if let Some(last) = te.iter().next_back() {
        let chunked = last
            .as_bytes()
            .rsplit(|&b| b == b',')
            .next()
            .is_some_and(|c| c.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        if chunked && !head.http10 {
            return Ok(Framing::Chunked);
        }
        return Ok(Framing::UntilClose);
    }
    let mut length: Option<u64> = None;
    for v in head.headers.get_all(http::header::CONTENT_LENGTH) {
        for part in v.as_bytes().split(|&b| b == b',') {
            let n = std::str::from_utf8(part.trim_ascii())
                .ok()
                .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|s| s.parse::<u64>().ok())
                .ok_or_else(|| {
                    H1Error::Malformed("malformed response: invalid Content-Length".into())
                })?;
            if length.is_some_and(|l| l != n) {
                return Err(H1Error::Malformed(
                    "malformed response: conflicting Content-Length values".into(),
                ));
            }
            length = Some(n);
        }
    }
    Ok(match length {
        Some(n) => Framing::Length(n),
        None => Framing::UntilClose,
    })
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
        Body {
            keep,
            data: BytesMut::new(),
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
