//! Raw TCP servers that misbehave on purpose.
//!
//! [`start`] binds `127.0.0.1:0` and serves one [`Hostile`] behaviour on
//! every connection, on its own OS thread with its own (single-threaded)
//! tokio runtime. Each connection is handled by its own task, so any number
//! of connections is served at once. A "request" is read as an HTTP/1.x
//! head (up to the blank line, at most 64 KiB) plus a `Content-Length` body
//! if any, so keep-alive clients that send several requests on a connection
//! are handled (where the mode answers at all).
//!
//! Dropping the [`HostileHandle`] (or [`HostileHandle::shutdown`]) drops the
//! runtime, which closes the listener and every connection and stops every
//! task, including endless writers.

use std::net::{SocketAddr, TcpListener as StdTcpListener};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

/// Largest request head read before the connection is dropped.
const MAX_HEAD: usize = 64 * 1024;

/// What a hostile server does with each connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hostile {
    /// Reads the request, then closes with `SO_LINGER` 0, so the client sees
    /// a TCP RST (ECONNRESET) instead of a response.
    Reset,
    /// Reads the request, writes `HTTP/9 banana\r\n\r\nxx` and closes.
    Garbage,
    /// Reads the request and answers `200 OK` (`Content-Length: 2`, body
    /// `ok`) only after the duration; keeps the connection alive for the
    /// next request.
    Slow(Duration),
    /// Reads the request and answers `200 OK` with a chunked body that never
    /// ends, written as fast as the client reads (16 KiB chunks of `x`).
    EndlessBody,
    /// Reads the request, writes a head announcing `Content-Length: 1000`,
    /// then only 10 bytes of body, then closes (FIN).
    CloseMidResponse,
    /// Accepts and never answers; reads and discards whatever the client
    /// sends and keeps the socket open until the client closes it.
    Silent,
}

impl Hostile {
    /// Parses a mode name as used by `mynah-testserver hostile <mode>`:
    /// `reset`, `garbage`, `slow` (30 s) or `slow:<ms>`, `endless-body`,
    /// `close-mid-response`, `silent`.
    pub fn parse(s: &str) -> Option<Hostile> {
        let s = s.trim().to_ascii_lowercase().replace('_', "-");
        Some(match s.as_str() {
            "reset" => Hostile::Reset,
            "garbage" => Hostile::Garbage,
            "slow" => Hostile::Slow(Duration::from_secs(30)),
            "endless-body" | "endless" => Hostile::EndlessBody,
            "close-mid-response" | "close-mid" => Hostile::CloseMidResponse,
            "silent" => Hostile::Silent,
            _ => {
                let ms = s.strip_prefix("slow:")?.parse::<u64>().ok()?;
                Hostile::Slow(Duration::from_millis(ms))
            }
        })
    }
}

/// Handle to a running hostile server; dropping it stops the server.
pub struct HostileHandle {
    /// The bound address.
    pub addr: SocketAddr,
    /// The behaviour served.
    pub mode: Hostile,
    accepted: Arc<AtomicU64>,
    requests: Arc<AtomicU64>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for HostileHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostileHandle")
            .field("addr", &self.addr)
            .field("mode", &self.mode)
            .finish()
    }
}

impl HostileHandle {
    /// `http://<addr>` (no trailing slash).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }

    /// Complete request heads read so far (over all connections).
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Stops the server: closes the listener and every connection, and joins
    /// its thread.
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

impl Drop for HostileHandle {
    fn drop(&mut self) {
        self.stop_now();
    }
}

/// Starts a hostile server on `127.0.0.1:0`.
pub fn start(mode: Hostile) -> std::io::Result<HostileHandle> {
    start_on(mode, SocketAddr::from(([127, 0, 0, 1], 0)))
}

/// Starts a hostile server on `addr`.
pub fn start_on(mode: Hostile, addr: SocketAddr) -> std::io::Result<HostileHandle> {
    let listener = StdTcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let accepted = Arc::new(AtomicU64::new(0));
    let requests = Arc::new(AtomicU64::new(0));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (stop_tx, mut stop_rx) = oneshot::channel::<()>();
    let (acc, req) = (accepted.clone(), requests.clone());
    let thread = std::thread::Builder::new()
        .name("mynah-testkit-hostile".into())
        .spawn(move || {
            let r = rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener)?;
                loop {
                    tokio::select! {
                        _ = &mut stop_rx => return Ok::<_, std::io::Error>(()),
                        accepted = listener.accept() => match accepted {
                            Ok((stream, _)) => {
                                acc.fetch_add(1, Ordering::Relaxed);
                                let _ = stream.set_nodelay(true);
                                tokio::spawn(serve(mode, stream, req.clone()));
                            }
                            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                        },
                    }
                }
            });
            if let Err(e) = r {
                eprintln!("mynah-testkit hostile: {e}");
            }
            // Dropping the runtime cancels every connection task.
            drop(rt);
        })?;
    Ok(HostileHandle {
        addr,
        mode,
        accepted,
        requests,
        stop: Some(stop_tx),
        thread: Some(thread),
    })
}

/// Reads one request (head + Content-Length body) from `stream`, keeping
/// bytes that follow it in `buf`. Returns false on EOF, error or a head
/// larger than [`MAX_HEAD`].
async fn read_request(stream: &mut TcpStream, buf: &mut Vec<u8>) -> bool {
    let mut chunk = [0u8; 8192];
    // Head.
    let head_end = loop {
        if let Some(pos) = find(buf, b"\r\n\r\n") {
            break pos + 4;
        }
        if buf.len() > MAX_HEAD {
            return false;
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let body_len = content_length(&buf[..head_end]);
    buf.drain(..head_end);
    // Body: discard without buffering it.
    let mut remaining = body_len;
    let from_buf = remaining.min(buf.len() as u64) as usize;
    buf.drain(..from_buf);
    remaining -= from_buf as u64;
    while remaining > 0 {
        let want = remaining.min(chunk.len() as u64) as usize;
        match stream.read(&mut chunk[..want]).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => remaining -= n as u64,
        }
    }
    true
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn content_length(head: &[u8]) -> u64 {
    let head = String::from_utf8_lossy(head);
    head.split("\r\n")
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Sends FIN, then drains what the client still sends for a short while,
/// so that unread client bytes do not turn the close into a RST.
async fn close_gracefully(mut stream: TcpStream) {
    let _ = stream.shutdown().await;
    let mut chunk = [0u8; 8192];
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while let Ok(n) = stream.read(&mut chunk).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
}

async fn serve(mode: Hostile, mut stream: TcpStream, requests: Arc<AtomicU64>) {
    let mut buf = Vec::new();
    match mode {
        Hostile::Silent => {
            let mut chunk = [0u8; 8192];
            loop {
                match stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        }
        Hostile::Reset => {
            if read_request(&mut stream, &mut buf).await {
                requests.fetch_add(1, Ordering::Relaxed);
            }
            let _ = stream.set_zero_linger();
            drop(stream);
        }
        Hostile::Garbage => {
            if read_request(&mut stream, &mut buf).await {
                requests.fetch_add(1, Ordering::Relaxed);
                let _ = stream.write_all(b"HTTP/9 banana\r\n\r\nxx").await;
                close_gracefully(stream).await;
            }
        }
        Hostile::Slow(delay) => {
            while read_request(&mut stream, &mut buf).await {
                requests.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(delay).await;
                let resp =
                    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok";
                if stream.write_all(resp).await.is_err() {
                    return;
                }
            }
        }
        Hostile::EndlessBody => {
            if !read_request(&mut stream, &mut buf).await {
                return;
            }
            requests.fetch_add(1, Ordering::Relaxed);
            let head = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n";
            if stream.write_all(head).await.is_err() {
                return;
            }
            let mut chunk = Vec::with_capacity(16 * 1024 + 16);
            chunk.extend_from_slice(b"4000\r\n");
            chunk.extend(std::iter::repeat_n(b'x', 16 * 1024));
            chunk.extend_from_slice(b"\r\n");
            while stream.write_all(&chunk).await.is_ok() {}
        }
        Hostile::CloseMidResponse => {
            if read_request(&mut stream, &mut buf).await {
                requests.fetch_add(1, Ordering::Relaxed);
                let resp =
                    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 1000\r\n\r\n0123456789";
                let _ = stream.write_all(resp).await;
                close_gracefully(stream).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_modes() {
        assert_eq!(Hostile::parse("reset"), Some(Hostile::Reset));
        assert_eq!(Hostile::parse("endless_body"), Some(Hostile::EndlessBody));
        assert_eq!(
            Hostile::parse("slow:250"),
            Some(Hostile::Slow(Duration::from_millis(250)))
        );
        assert_eq!(Hostile::parse("nope"), None);
    }

    #[test]
    fn content_length_parsing() {
        assert_eq!(
            content_length(b"POST / HTTP/1.1\r\ncontent-length: 12\r\n\r\n"),
            12
        );
        assert_eq!(content_length(b"GET / HTTP/1.1\r\n\r\n"), 0);
    }
}
