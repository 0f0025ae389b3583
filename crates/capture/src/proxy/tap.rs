//! Bodies that stream through the proxy while a bounded copy is kept for the recording.
//!
//! [`BodyTap`] is the copy: up to `max` bytes of body data (chunked framing is removed by hyper
//! and put back when the recording is made, so a recorded message is framed as its headers say).
//! [`TeeRequest`] wraps the client's request body on its way upstream; the response side is
//! [`super::ResponseBody`]. Neither ever holds back or truncates the bytes it forwards.

use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::HeaderMap;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use mynah_traffic::Nanos;

use super::{now_nanos, Counters};

/// The recorded copy of one body.
#[derive(Default)]
pub(crate) struct BodyTap {
    max: usize,
    /// Body data as received (de-chunked), at most `max` bytes.
    data: Vec<u8>,
    /// Every data byte that passed, recorded or not.
    pub total: u64,
    /// More than `max` bytes passed: `data` holds the first `max`.
    pub truncated: bool,
    /// The body's end was seen.
    pub ended: Option<Nanos>,
    /// The body failed (the sender went away mid-body).
    pub failed: bool,
    /// Somebody asked for the body (hyper sends `100 Continue` then).
    pub polled: bool,
    trailers: Option<HeaderMap>,
    /// The request body is still being forwarded (its [`TeeRequest`] is alive).
    pub streaming: bool,
    /// An exchange whose response ended while its request body was still streaming (a server
    /// may answer before reading the whole body): recorded when the request body ends.
    pub parked: Option<Box<super::Recording>>,
}

impl BodyTap {
    pub fn new(max: usize) -> Self {
        BodyTap {
            max,
            ..Default::default()
        }
    }

    pub fn frame(&mut self, frame: &Frame<Bytes>) {
        if let Some(d) = frame.data_ref() {
            self.total += d.len() as u64;
            let room = self.max.saturating_sub(self.data.len());
            if d.len() > room {
                self.truncated = true;
            }
            self.data.extend_from_slice(&d[..d.len().min(room)]);
        } else if let Some(t) = frame.trailers_ref() {
            self.trailers = Some(t.clone());
        }
    }

    /// The recorded body as an HTTP/1.1 message with these headers carries it: re-chunked (one
    /// chunk, then the trailers) when `chunked`, else the data as it came.
    pub fn into_wire(self, chunked: bool) -> Vec<u8> {
        if !chunked {
            return self.data;
        }
        let mut out = Vec::with_capacity(self.data.len() + 32);
        if !self.data.is_empty() {
            out.extend_from_slice(format!("{:x}\r\n", self.data.len()).as_bytes());
            out.extend_from_slice(&self.data);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"0\r\n");
        for (name, value) in self.trailers.iter().flatten() {
            out.extend_from_slice(super::forward::title_case(name.as_str()).as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out
    }
}

/// The client's request body on its way upstream, copied into a shared [`BodyTap`] (shared because
/// the upstream connection's task polls it while the exchange is assembled elsewhere).
pub(crate) struct TeeRequest {
    inner: Incoming,
    tap: Arc<Mutex<BodyTap>>,
    counters: Arc<Counters>,
}

impl TeeRequest {
    pub fn new(inner: Incoming, tap: Arc<Mutex<BodyTap>>, counters: Arc<Counters>) -> Self {
        lock_tap(&tap).streaming = true;
        TeeRequest {
            inner,
            tap,
            counters,
        }
    }
}

impl TeeRequest {
    /// Records the exchange parked on this body, if any (outside the lock: recording locks it).
    fn release_parked(&self) {
        let parked = lock_tap(&self.tap).parked.take();
        drop(parked);
    }
}

impl Drop for TeeRequest {
    fn drop(&mut self) {
        let parked = {
            let mut tap = lock_tap(&self.tap);
            tap.streaming = false;
            tap.parked.take()
        };
        drop(parked);
    }
}

/// Locks a shared tap. A panic while holding the lock cannot leave a `BodyTap` inconsistent in a
/// way that matters for a recording: go on with what it holds.
pub(crate) fn lock_tap(tap: &Mutex<BodyTap>) -> std::sync::MutexGuard<'_, BodyTap> {
    tap.lock().unwrap_or_else(|p| p.into_inner())
}

impl Body for TeeRequest {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        let mut tap = lock_tap(&this.tap);
        tap.polled = true;
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(d) = frame.data_ref() {
                    this.counters
                        .request_bytes
                        .fetch_add(d.len() as u64, Ordering::Relaxed);
                }
                tap.frame(frame);
                // hyper stops polling a body that says it has ended (Content-Length reached).
                if this.inner.is_end_stream() && tap.ended.is_none() {
                    tap.ended = Some(now_nanos());
                }
            }
            Poll::Ready(Some(Err(_))) => tap.failed = true,
            Poll::Ready(None) => {
                if tap.ended.is_none() {
                    tap.ended = Some(now_nanos());
                }
            }
            Poll::Pending => {}
        }
        let done = tap.ended.is_some() || tap.failed;
        drop(tap);
        if done {
            self.release_parked();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        let end = self.inner.is_end_stream();
        if end {
            // An empty body is never polled: its end is seen here.
            let mut tap = lock_tap(&self.tap);
            if tap.ended.is_none() {
                tap.ended = Some(now_nanos());
            }
            let parked = tap.parked.take();
            drop(tap);
            drop(parked);
        }
        end
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_at_most_max_and_counts_everything() {
        let mut tap = BodyTap::new(5);
        tap.frame(&Frame::data(Bytes::from_static(b"abc")));
        tap.frame(&Frame::data(Bytes::from_static(b"defgh")));
        assert!(tap.truncated);
        assert_eq!(tap.total, 8);
        assert_eq!(tap.into_wire(false), b"abcde");
    }

    #[test]
    fn chunked_bodies_are_framed_again_with_their_trailers() {
        let mut tap = BodyTap::new(100);
        tap.frame(&Frame::data(Bytes::from_static(b"hello ")));
        tap.frame(&Frame::data(Bytes::from_static(b"world")));
        let mut t = HeaderMap::new();
        t.insert("x-checksum", "42".parse().unwrap());
        tap.frame(&Frame::trailers(t));
        assert_eq!(
            tap.into_wire(true),
            b"b\r\nhello world\r\n0\r\nX-Checksum: 42\r\n\r\n"
        );
        assert_eq!(BodyTap::new(10).into_wire(true), b"0\r\n\r\n");
    }
}
