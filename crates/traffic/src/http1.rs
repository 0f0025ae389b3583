//! HTTP/1.x conversations from the two byte streams of one TCP connection.
//!
//! TCP reassembly (see `tcp`) hands each connection's in-order bytes, gaps and closes to a
//! [`Conversation`], which frames messages (Content-Length, chunked with trailers, close-delimited,
//! HEAD/1xx/204/304 without bodies, `Expect: 100-continue`, 101 Upgrade, CONNECT, pipelining) and
//! pairs requests with responses in order.
//!
//! IMPLEMENTATION PENDING (being written in parallel); the API below is the contract.

use std::net::SocketAddr;

use crate::model::{Exchange, Nanos};

/// One side of a TCP connection, as reassembly names them: `A` opened the connection when the SYN
/// was seen, else it is the sender of the first packet seen. The conversation decides which side is
/// the HTTP client by what each sends (a request line or a status line), so a capture that starts
/// mid-connection or has only one side still works.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    A,
    B,
}

impl Side {
    pub fn other(self) -> Side {
        match self {
            Side::A => Side::B,
            Side::B => Side::A,
        }
    }
}

/// What the conversation concluded about the connection's protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// Not decided yet (no payload, or too little to tell).
    Unknown,
    Http1,
    /// Not HTTP/1.x: the connection is ignored from here on.
    NotHttp,
    /// HTTP/2 with prior knowledge (the connection preface was seen).
    Http2PriorKnowledge,
    /// Switched protocols after a 101 (`h2c`, `websocket`, or another upgrade token), or a CONNECT
    /// tunnel was established: the rest of the connection is not HTTP/1.
    Upgraded,
}

/// The parsing state of one TCP connection.
pub struct Conversation {
    _private: (),
}

impl Conversation {
    /// `id` numbers connections in the order they were first seen; `a` and `b` are the endpoints.
    pub fn new(id: u64, a: SocketAddr, b: SocketAddr) -> Self {
        let _ = (id, a, b);
        todo!()
    }

    /// In-order payload bytes from `side`, first seen at `ts`.
    pub fn data(&mut self, side: Side, ts: Nanos, bytes: &[u8]) {
        let _ = (side, ts, bytes);
        todo!()
    }

    /// `len` bytes from `side` were never captured (a sequence gap). The message in progress is
    /// marked `MissingSegments`; parsing resynchronises on the next message start.
    pub fn gap(&mut self, side: Side, ts: Nanos, len: u64) {
        let _ = (side, ts, len);
        todo!()
    }

    /// `side` sent FIN (or RST): ends a close-delimited body.
    pub fn close(&mut self, side: Side, ts: Nanos) {
        let _ = (side, ts);
        todo!()
    }

    /// The capture ended or the connection was evicted: everything in progress is emitted,
    /// with `CaptureEnded` / `NoResponse` / `TruncatedBody` as fits.
    pub fn finish(&mut self, ts: Nanos) {
        let _ = ts;
        todo!()
    }

    /// Moves finished exchanges out, in the order their requests started.
    pub fn take_exchanges(&mut self, out: &mut Vec<Exchange>) {
        let _ = out;
        todo!()
    }

    /// The request start of the earliest exchange not yet finished, if any: no exchange of this
    /// connection that is emitted later can start before it (used to emit in time order).
    pub fn pending_since(&self) -> Option<Nanos> {
        todo!()
    }

    pub fn protocol(&self) -> Protocol {
        todo!()
    }

    /// Bytes currently buffered (for memory caps).
    pub fn buffered(&self) -> usize {
        todo!()
    }
}
