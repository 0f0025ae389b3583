//! Sending a request that is already serialized: replay writes recorded HTTP/1.x heads byte for
//! byte (header order and case kept), so it bypasses the header map the scripted path builds.

use mynah_stats::FailureKind;

use super::conn::Target;
use super::{h1, h1_failure, under_timer, Client, Failure};

/// The response to a request sent with [`Client::send_wire`].
#[derive(Debug)]
pub struct WireResponse {
    /// Status code.
    pub status: u16,
    /// Response headers, names in the case the target sent.
    pub headers: super::ResponseHeaders,
    /// Body, de-chunked but still content-coded, at most the `keep` bytes asked for.
    pub body: bytes::Bytes,
    /// Whether `body` was cut at `keep`.
    pub body_truncated: bool,
    /// Body bytes received, including those not kept.
    pub bytes_received: u64,
}

impl Client {
    /// Sends `wire`, a complete HTTP/1.x request (head and body) written by the caller, to
    /// `origin` (an absolute `http://` or `https://` URI; only its scheme, host and port are
    /// used) on this client's connection to that origin, opening one if needed, and reads the
    /// response, keeping at most `keep` body bytes. Redirects are not followed and no cookie is
    /// added: the request goes out as written. A kept-alive connection the server closed as
    /// the request went out is retried once on a new one when `idempotent`.
    ///
    /// The client must come from [`super::Shared::new_http1`]: an HTTP/2 connection cannot carry
    /// a serialized HTTP/1 request and fails as a `protocol` failure.
    pub async fn send_wire(
        &mut self,
        origin: &http::Uri,
        wire: &[u8],
        head_request: bool,
        idempotent: bool,
        keep: usize,
    ) -> Result<WireResponse, Failure> {
        let limit = self.shared.config.request_timeout;
        let mut timer = self.timer.arm(limit);
        // Pinned in place, as in `Client::send`.
        let result = {
            let request =
                std::pin::pin!(self.send_wire_inner(origin, wire, head_request, idempotent, keep));
            under_timer(&mut timer, limit, request).await
        };
        self.timer.sleep = Some(timer);
        result
    }

    async fn send_wire_inner(
        &mut self,
        origin: &http::Uri,
        wire: &[u8],
        head_request: bool,
        idempotent: bool,
        keep: usize,
    ) -> Result<WireResponse, Failure> {
        let target = Target::of(origin)?;
        let mut retried = false;
        loop {
            let (mut conn, reused) = self.take_conn(&target).await?;
            let Some(io) = conn.raw() else {
                return Err(Failure::new(
                    FailureKind::Protocol,
                    "the target negotiated HTTP/2; replay sends HTTP/1.1",
                ));
            };
            let mut received = 0u64;
            match h1::exchange(io, wire, head_request, keep, &mut received).await {
                Ok(r) => {
                    if r.keep_alive {
                        self.conns.push(conn);
                    }
                    return Ok(WireResponse {
                        status: r.status,
                        headers: r.headers,
                        body: r.body,
                        body_truncated: r.truncated,
                        bytes_received: received,
                    });
                }
                Err(h1::H1Error::ClosedBeforeResponse) if reused && !retried && idempotent => {
                    retried = true;
                    continue;
                }
                Err(e) => return Err(h1_failure(e)),
            }
        }
    }
}
