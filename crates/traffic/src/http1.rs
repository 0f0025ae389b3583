//! HTTP/1.x conversations from the two byte streams of one TCP connection.
//!
//! TCP reassembly (see `tcp`) hands each connection's in-order bytes, gaps and closes to a
//! [`Conversation`], which frames messages (Content-Length, chunked with trailers, close-delimited,
//! HEAD/1xx/204/304 without bodies, `Expect: 100-continue`, 101 Upgrade, CONNECT, pipelining) and
//! pairs requests with responses in order.
//!
//! How it copes with real captures:
//! - Roles come from content: the side that sends a request line is the client. A capture that
//!   starts mid-connection, a gap, or a malformed message is resynchronised on the next message
//!   start, judged strictly: `HTTP/d.d ddd`, or `METHOD target HTTP/d.d` and a line end, which
//!   may follow the end of a body directly (`...a=1GET /next HTTP/1.1`). The bytes passed over
//!   are counted as `unparsed_bytes`; at most 8 KiB of the current line is kept meanwhile.
//! - Detection is cheap: TLS and SSH are recognised from their first bytes. When the connection
//!   start was seen ([`Conversation::set_start_seen`]), a side whose first line is binary (control
//!   bytes, or no letter first) makes the connection [`Protocol::NotHttp`] at once; otherwise
//!   (text that is not HTTP, or a capture that may start mid-body) at most [`HUNT_BUDGET`] bytes
//!   are searched. Once not HTTP, HTTP/2 or upgraded, `data` returns immediately.
//! - Pairing is first-in first-out, with two guards against the off-by-one that a lost message
//!   would otherwise cause for the rest of the connection: a response cannot answer a request that
//!   started after it, and after the server side lost bytes, a connection that has not pipelined
//!   pairs the next response with the latest request sent before it (the skipped requests are
//!   marked `MissingSegments`).
//! - Memory is bounded: a head is at most [`MAX_HEAD`] bytes (else `oversized_head`, resync), a
//!   stored body at most [`DEFAULT_MAX_BODY`] (settable; beyond it bytes are still framed but not
//!   kept, and the exchange is marked `TruncatedBody` and counted as `body_over_cap`), and at most
//!   [`MAX_UNANSWERED`] requests wait for responses.
//! - Bodies are kept as on the wire (chunk framing and trailers included). Obs-fold in header
//!   values is replaced by one space, as RFC 9112 §5.2 asks.
//! - An HTTP/0.9 exchange (request line without version) whose response has no status line gets a
//!   response with status 200, version HTTP/0.9, no headers, and the bytes until close as body.
//! - A close-delimited response still open at [`Conversation::finish`] is kept but marked
//!   `CaptureEnded`: nothing shows whether it was complete.

pub(crate) mod head;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::net::SocketAddr;

use crate::model::{ConnectionInfo, Exchange, Incomplete, Nanos, Version};
use crate::source::ReadReport;
use head::{ContentLength, Fields, UpgradeKind};

/// The largest head (start line and header section) kept while waiting for its end.
pub const MAX_HEAD: usize = 256 << 10;
/// The default cap on a stored body, per message.
pub const DEFAULT_MAX_BODY: usize = 64 << 20;
/// Bytes searched for a message start before a connection whose beginning was not seen, and that
/// showed no HTTP yet, is declared not HTTP.
pub const HUNT_BUDGET: u64 = 256 << 10;
/// Requests that may wait for their responses at once; beyond, the oldest is given up
/// (`NoResponse`). Real pipelining is a few deep; this bounds request-only captures.
pub const MAX_UNANSWERED: usize = 1024;
/// Longest chunk-size or trailer line.
const MAX_CHUNK_LINE: usize = 64 << 10;
/// While resynchronising, at most this much of the current line is kept: a request line that
/// began in earlier bytes is found if it is not longer.
const HUNT_CARRY: usize = 8 << 10;
/// A head buffer larger than this is released rather than kept for reuse.
const KEEP_BUF: usize = 64 << 10;

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

    fn ix(self) -> usize {
        match self {
            Side::A => 0,
            Side::B => 1,
        }
    }

    fn of(i: usize) -> Side {
        if i == 0 {
            Side::A
        } else {
            Side::B
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

/// Why traffic was not turned into exchanges; names as in [`ReadReport::skipped`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reason {
    /// Connections: no HTTP/1 seen (TLS, another protocol, or nothing recognisable).
    NotHttp,
    /// Connections: HTTP/2 with prior knowledge.
    Http2PriorKnowledge,
    /// Connections switched by 101 to WebSocket, h2c or another protocol.
    UpgradedWebsocket,
    UpgradedH2c,
    UpgradedOther,
    /// Connections that became a CONNECT tunnel.
    ConnectTunnel,
    /// Responses with no request to pair with.
    ResponseWithoutRequest,
    /// Request heads (or request bodies) that could not be parsed.
    MalformedRequest,
    /// Response heads (or response bodies) that could not be parsed.
    MalformedResponse,
    /// Heads over [`MAX_HEAD`].
    OversizedHead,
    /// Messages whose body exceeded the storage cap.
    BodyOverCap,
    /// Bytes passed over while resynchronising.
    UnparsedBytes,
}

const REASONS: [Reason; 12] = [
    Reason::NotHttp,
    Reason::Http2PriorKnowledge,
    Reason::UpgradedWebsocket,
    Reason::UpgradedH2c,
    Reason::UpgradedOther,
    Reason::ConnectTunnel,
    Reason::ResponseWithoutRequest,
    Reason::MalformedRequest,
    Reason::MalformedResponse,
    Reason::OversizedHead,
    Reason::BodyOverCap,
    Reason::UnparsedBytes,
];

impl Reason {
    fn name(self) -> &'static str {
        match self {
            Reason::NotHttp => "not_http",
            Reason::Http2PriorKnowledge => "http2_prior_knowledge",
            Reason::UpgradedWebsocket => "upgraded_websocket",
            Reason::UpgradedH2c => "upgraded_h2c",
            Reason::UpgradedOther => "upgraded_other",
            Reason::ConnectTunnel => "connect_tunnel",
            Reason::ResponseWithoutRequest => "response_without_request",
            Reason::MalformedRequest => "malformed_request",
            Reason::MalformedResponse => "malformed_response",
            Reason::OversizedHead => "oversized_head",
            Reason::BodyOverCap => "body_over_cap",
            Reason::UnparsedBytes => "unparsed_bytes",
        }
    }

    fn ix(self) -> usize {
        self as usize
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Unknown,
    Client,
    Server,
}

/// Whose body bytes are being read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owner {
    Request(u64),
    Response(u64),
    /// A response nobody asked for: framed, not kept.
    Discard,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// Reading a chunk-size line.
    Size,
    Data(u64),
    /// After chunk data: CRLF expected.
    DataEnd,
    /// After chunk data and a CR: LF expected.
    DataEndLf,
    /// Reading trailer lines until the empty one.
    Trailer,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Length(u64),
    Chunked(Chunk),
    /// Until the sender closes.
    Close,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Body {
    owner: Owner,
    framing: Framing,
    /// Body bytes seen so far (stored or not).
    received: u64,
    /// When the head was complete (the message's end, if the body is abandoned).
    head_end: Nanos,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// At a message boundary.
    Idle,
    /// `buf` holds the head so far; `line_ok` once the start line was complete and valid.
    Head {
        line_ok: bool,
        strict: bool,
    },
    Body(Body),
    /// Resynchronising: looking for a message start. `buf` holds the tail of the current line.
    Hunt,
    /// The client asked to upgrade (or CONNECT) and the server's verdict is not in yet: bytes that
    /// do not start a request belong to the new protocol.
    AwaitVerdict {
        discarded: bool,
    },
    /// A CONNECT was answered 2xx: the tunnel's first bytes tell whether it carries plain HTTP/1
    /// (parsed on) or anything else, usually TLS (the connection is then a skipped tunnel).
    Tunnel,
    /// Nothing more to parse.
    Ignore,
}

/// The current line of a chunked body: only its first bytes matter (the size, or emptiness).
#[derive(Debug, Clone, Copy, Default)]
struct LineBuf {
    len: usize,
    head: [u8; 24],
    /// Bytes of the trailer section so far.
    trailer: usize,
}

impl LineBuf {
    fn push(&mut self, bytes: &[u8]) {
        let kept = self.len.min(self.head.len());
        let n = (self.head.len() - kept).min(bytes.len());
        self.head[kept..kept + n].copy_from_slice(&bytes[..n]);
        self.len = self.len.saturating_add(bytes.len());
    }

    fn reset(&mut self) {
        self.len = 0;
    }

    fn content(&self) -> &[u8] {
        let n = self.len.min(self.head.len());
        let c = &self.head[..n];
        c.strip_suffix(b"\r").unwrap_or(c)
    }

    fn is_blank(&self) -> bool {
        self.len == 0 || (self.len == 1 && self.head[0] == b'\r')
    }

    /// The chunk size at the start of the line (extensions after `;` ignored).
    fn chunk_size(&self) -> Option<u64> {
        let c = self.content();
        let c = &c[c.iter().take_while(|&&b| b == b' ' || b == b'\t').count()..];
        let digits = c.iter().take_while(|b| b.is_ascii_hexdigit()).count();
        // More than 16 digits (or digits running past the kept prefix) cannot be a size.
        if digits == 0 || digits > 16 {
            return None;
        }
        c[..digits].iter().try_fold(0u64, |acc, &b| {
            let d = u64::from((b as char).to_digit(16)?);
            acc.checked_mul(16)?.checked_add(d)
        })
    }
}

struct SideState {
    mode: Mode,
    buf: Vec<u8>,
    /// When the first byte of `buf` arrived.
    buf_ts: Nanos,
    started: bool,
    closed: bool,
    /// Bytes were lost on this side (or its start was not seen) and parsing resynchronised.
    resync: bool,
    /// The time of the latest data from this side.
    last_ts: Nanos,
    line: LineBuf,
    /// Heads rejected before the connection was recognised as HTTP; counted if it is.
    early_bad: u64,
    /// A gap was seen on this side.
    lost: bool,
    /// The head in `buf` has a folded line.
    folded: bool,
}

impl SideState {
    fn new() -> Self {
        SideState {
            mode: Mode::Idle,
            buf: Vec::new(),
            buf_ts: 0,
            started: false,
            closed: false,
            resync: false,
            last_ts: 0,
            line: LineBuf::default(),
            early_bad: 0,
            lost: false,
            folded: false,
        }
    }

    /// The start of a message whose head is still arriving, if any.
    fn pending_start(&self) -> Option<Nanos> {
        match self.mode {
            Mode::Head { .. } => Some(self.buf_ts),
            Mode::Hunt if !self.buf.is_empty() => Some(self.buf_ts),
            _ => None,
        }
    }

    fn take_buf(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.buf)
    }

    fn return_buf(&mut self, mut buf: Vec<u8>) {
        buf.clear();
        if buf.capacity() <= KEEP_BUF {
            self.buf = buf;
        }
    }
}

/// An exchange being assembled.
struct Pending {
    ex: Exchange,
    req_done: bool,
    /// The final response is complete, or none will come.
    resp_done: bool,
    is_head: bool,
    is_connect: bool,
    upgrade: Option<UpgradeKind>,
    req_capped: bool,
    resp_capped: bool,
    /// Bytes held for this exchange (heads and bodies), for [`Conversation::buffered`].
    held: usize,
}

impl Pending {
    fn done(&self) -> bool {
        self.req_done && self.resp_done
    }
}

fn rank(r: Incomplete) -> u8 {
    match r {
        Incomplete::NoResponse => 1,
        Incomplete::CaptureEnded => 2,
        Incomplete::TruncatedBody => 3,
        Incomplete::MissingSegments => 4,
    }
}

/// Records why an exchange is incomplete, keeping the gravest reason.
fn mark(ex: &mut Exchange, r: Incomplete) {
    match ex.incomplete {
        Some(old) if rank(old) >= rank(r) => {}
        _ => ex.incomplete = Some(r),
    }
}

fn memchr_nl(d: &[u8]) -> Option<usize> {
    memchr::memchr(b'\n', d)
}

/// TLS records begin with a content type 20..=23 and version 3.x.
fn looks_tls(d: &[u8]) -> bool {
    matches!(d, [0x14..=0x17, 0x03, 0x00..=0x04, ..])
}

/// An HTTP/2 server may send its SETTINGS frame before the client's preface arrives: a frame
/// header with type 4 on stream 0 (as far as the bytes go).
fn h2_settings_prefix(b: &[u8]) -> bool {
    let expect = |k: usize, ok: fn(u8) -> bool| b.get(k).is_none_or(|&x| ok(x));
    !b.is_empty()
        && expect(0, |x| x == 0)
        && expect(3, |x| x == 4)
        && expect(4, |x| x <= 1)
        && (5..9).all(|k| expect(k, |x| x == 0))
}

/// Where the head that `buf` begins ends in `data`: just past the empty line (`\n\n` or
/// `\n\r\n`), which may straddle the two. Also whether a line in the scanned part of `data`
/// begins with whitespace (obs-fold), so parsing can skip looking for it otherwise.
fn find_head_end(buf: &[u8], data: &[u8]) -> (Option<usize>, bool) {
    let before = |i: usize, back: usize| -> Option<u8> {
        if i >= back {
            data.get(i - back).copied()
        } else {
            buf.len()
                .checked_sub(back - i)
                .and_then(|j| buf.get(j).copied())
        }
    };
    let is_ws = |b: Option<&u8>| matches!(b, Some(b' ' | b'\t'));
    let mut folded = buf.last() == Some(&b'\n') && is_ws(data.first());
    let mut from = 0;
    while let Some(p) = data.get(from..).and_then(memchr_nl) {
        let i = from + p;
        match before(i, 1) {
            Some(b'\n') => return (Some(i + 1), folded),
            Some(b'\r') if before(i, 2) == Some(b'\n') => return (Some(i + 1), folded),
            _ => {}
        }
        folded |= is_ws(data.get(i + 1));
        from = i + 1;
    }
    (None, folded)
}

/// The parsing state of one TCP connection.
pub struct Conversation {
    id: u64,
    addr: [SocketAddr; 2],
    protocol: Protocol,
    client: Option<Side>,
    start_seen: bool,
    sides: [SideState; 2],
    queue: VecDeque<Pending>,
    /// Sequence number of `queue[0]` (sequence numbers are request indexes on the connection).
    front_seq: u64,
    next_seq: u64,
    /// The next exchange to receive a final response.
    resp_seq: u64,
    /// A request was seen to be sent before the previous response started.
    pipelined: bool,
    held: usize,
    /// Bytes searched while the protocol was unknown.
    hunted_unknown: u64,
    skipped: [u64; REASONS.len()],
    max_body: usize,
    finished: bool,
}

impl Conversation {
    /// `id` numbers connections in the order they were first seen; `a` and `b` are the endpoints.
    pub fn new(id: u64, a: SocketAddr, b: SocketAddr) -> Self {
        Conversation {
            id,
            addr: [a, b],
            protocol: Protocol::Unknown,
            client: None,
            start_seen: false,
            sides: [SideState::new(), SideState::new()],
            queue: VecDeque::new(),
            front_seq: 0,
            next_seq: 0,
            resp_seq: 0,
            pipelined: false,
            held: 0,
            hunted_unknown: 0,
            skipped: [0; REASONS.len()],
            max_body: DEFAULT_MAX_BODY,
            finished: false,
        }
    }

    /// Tells the conversation that the connection's start (the handshake) was captured, so each
    /// side's first bytes are the start of its stream: a side whose first bytes cannot begin an
    /// HTTP message makes the connection `NotHttp` at once instead of being searched. Call before
    /// the first `data`.
    pub fn set_start_seen(&mut self, seen: bool) {
        self.start_seen = seen;
    }

    /// Caps the bytes stored per body (default [`DEFAULT_MAX_BODY`]).
    pub fn set_max_body(&mut self, bytes: usize) {
        self.max_body = bytes;
    }

    /// Which side is the HTTP client, once known.
    pub fn client(&self) -> Option<Side> {
        self.client
    }

    /// False once nothing more can come of this connection's bytes (not HTTP, HTTP/2, upgraded,
    /// or finished): reassembly may stop buffering them. Call `take_exchanges` still.
    pub fn wants_data(&self) -> bool {
        !self.terminal()
    }

    fn terminal(&self) -> bool {
        self.finished
            || matches!(
                self.protocol,
                Protocol::NotHttp | Protocol::Http2PriorKnowledge | Protocol::Upgraded
            )
    }

    fn role(&self, i: usize) -> Role {
        match self.client {
            None => Role::Unknown,
            Some(c) if c.ix() == i => Role::Client,
            Some(_) => Role::Server,
        }
    }

    fn count(&mut self, r: Reason, n: u64) {
        self.skipped[r.ix()] = self.skipped[r.ix()].saturating_add(n);
    }

    fn pending(&self, seq: u64) -> Option<&Pending> {
        let k = usize::try_from(seq.checked_sub(self.front_seq)?).ok()?;
        self.queue.get(k)
    }

    fn pending_mut(&mut self, seq: u64) -> Option<&mut Pending> {
        let k = usize::try_from(seq.checked_sub(self.front_seq)?).ok()?;
        self.queue.get_mut(k)
    }

    /// In-order payload bytes from `side`, first seen at `ts`.
    pub fn data(&mut self, side: Side, ts: Nanos, bytes: &[u8]) {
        if self.terminal() || bytes.is_empty() {
            return;
        }
        let i = side.ix();
        let s = &mut self.sides[i];
        s.last_ts = ts;
        if !s.started {
            s.started = true;
            if self.protocol == Protocol::Unknown
                && (looks_tls(bytes) || bytes.starts_with(b"SSH-"))
            {
                self.set_not_http();
                return;
            }
        }
        let mut rest = bytes;
        // Each step consumes bytes, shrinks the kept bytes (a rejected start in the hunt carry),
        // or changes state towards one that does; this only guards against a bug turning into a
        // hang on someone's capture.
        let mut stalls = 0u32;
        let mut least_kept = usize::MAX;
        while !rest.is_empty() && !self.terminal() {
            let n = self.step(i, ts, rest).min(rest.len());
            let kept = self.sides[i].buf.len();
            if n > 0 || kept < least_kept {
                stalls = 0;
                least_kept = if n > 0 { usize::MAX } else { kept };
            } else {
                stalls += 1;
                debug_assert!(stalls < 8, "http1: no progress in {:?}", self.sides[i].mode);
                if stalls >= 8 {
                    self.count(Reason::UnparsedBytes, rest.len() as u64);
                    self.sides[i].buf.clear();
                    self.sides[i].mode = Mode::Hunt;
                    return;
                }
            }
            rest = &rest[n..];
        }
    }

    fn step(&mut self, i: usize, ts: Nanos, data: &[u8]) -> usize {
        match self.sides[i].mode {
            Mode::Idle => self.step_idle(i, ts, data),
            Mode::Head { line_ok, strict } => self.step_head(i, ts, data, line_ok, strict),
            Mode::Body(b) => self.step_body(i, ts, data, b),
            Mode::Hunt => self.step_hunt(i, ts, data),
            Mode::AwaitVerdict { .. } => {
                // Stray line ends after a request are allowed (RFC 9112 §2.2), not the new protocol.
                let blank = data
                    .iter()
                    .take_while(|&&b| b == b'\r' || b == b'\n')
                    .count();
                if blank > 0 {
                    blank
                } else if head::looks_like_request_start(data) {
                    self.sides[i].mode = Mode::Idle;
                    0
                } else {
                    self.sides[i].mode = Mode::AwaitVerdict { discarded: true };
                    data.len()
                }
            }
            Mode::Tunnel => {
                // The first bytes may arrive one at a time: a plausible start is enough, the
                // head parser rejects what turns out not to be HTTP.
                let server = self.role(i) == Role::Server;
                let blank = data
                    .iter()
                    .take_while(|&&b| b == b'\r' || b == b'\n')
                    .count();
                if blank > 0 {
                    // Stray line ends after the CONNECT exchange decide nothing.
                    return blank;
                }
                if head::prefix_plausible(data, 0, !server, server, true) {
                    self.sides[0].mode = Mode::Idle;
                    self.sides[1].mode = Mode::Idle;
                } else {
                    self.count(Reason::ConnectTunnel, 1);
                    self.switch_protocols();
                }
                0
            }
            Mode::Ignore => data.len(),
        }
    }

    fn step_idle(&mut self, i: usize, ts: Nanos, data: &[u8]) -> usize {
        // Empty lines between messages are allowed (RFC 9112 §2.2).
        let blank = data
            .iter()
            .take_while(|&&b| b == b'\r' || b == b'\n')
            .count();
        if blank > 0 {
            return blank;
        }
        if self.role(i) != Role::Client {
            // A lone HTTP/0.9 request line on the other side is complete once this side answers.
            self.flush_http09(1 - i);
        }
        if self.role(i) == Role::Server {
            if let Some(seq) = self.unanswered_http09(ts) {
                let n = data.len().min(5);
                if !data[..n].eq_ignore_ascii_case(&b"HTTP/"[..n]) {
                    self.start_http09_response(i, ts, seq);
                    return 0;
                }
            }
        }
        let strict = self.protocol == Protocol::Unknown;
        let s = &mut self.sides[i];
        s.buf.clear();
        s.buf_ts = ts;
        s.folded = false;
        s.mode = Mode::Head {
            line_ok: false,
            strict,
        };
        0
    }

    fn wants(&self, i: usize) -> (bool, bool) {
        match self.role(i) {
            Role::Client => (true, false),
            Role::Server => (false, true),
            Role::Unknown => (true, true),
        }
    }

    fn step_head(
        &mut self,
        i: usize,
        ts: Nanos,
        data: &[u8],
        line_ok: bool,
        strict: bool,
    ) -> usize {
        let (want_req, want_resp) = self.wants(i);
        if !line_ok {
            // Take the start line only, so a bad one is rejected before anything after it.
            let nl = memchr_nl(data);
            let take = nl.map_or(data.len(), |p| p + 1);
            let s = &mut self.sides[i];
            if s.buf.len() + take > MAX_HEAD {
                return self.oversized_head(i, take);
            }
            let from = s.buf.len();
            s.buf.extend_from_slice(&data[..take]);
            let ok = if nl.is_some() {
                start_line_ok(&s.buf, want_req, want_resp, strict)
            } else {
                head::prefix_plausible(&s.buf, from, want_req, want_resp, strict)
            };
            if !ok {
                // Bytes that cannot begin any text line of HTTP: controls, or no letter first.
                let binary = (s.buf.iter().take(64).any(|&b| head::is_line_control(b))
                    || !s.buf.first().is_some_and(u8::is_ascii_alphabetic))
                    && !h2_settings_prefix(&s.buf);
                // Hunting reads this call's bytes again, from just after where this start began.
                s.buf.truncate(from);
                self.not_a_start(i, binary);
                if self.terminal() {
                    return data.len();
                }
                self.note_hunted(1);
                let s = &mut self.sides[i];
                return if s.buf.is_empty() {
                    1
                } else {
                    s.buf.remove(0);
                    0
                };
            }
            if nl.is_some() {
                s.mode = Mode::Head {
                    line_ok: true,
                    strict,
                };
            }
            return take;
        }
        let s = &mut self.sides[i];
        let (end, folded) = find_head_end(&s.buf, data);
        s.folded |= folded;
        let take = end.unwrap_or(data.len());
        if s.buf.len() + take > MAX_HEAD {
            return self.oversized_head(i, take);
        }
        s.buf.extend_from_slice(&data[..take]);
        if end.is_some() {
            self.head_complete(i, ts, strict);
        }
        take
    }

    /// What began as a message start is not one: count it and resynchronise. `binary`: its
    /// first line held control bytes. The caller decides which bytes hunting reads next.
    fn not_a_start(&mut self, i: usize, binary: bool) {
        let s = &mut self.sides[i];
        s.resync = true;
        s.mode = Mode::Hunt;
        if self.protocol == Protocol::Unknown {
            // Only a side's first bytes, when the connection's start was seen, are known to be
            // meant as a message; elsewhere they may be the end of a body.
            if self.start_seen && !s.lost && s.early_bad == 0 {
                if binary {
                    self.set_not_http();
                    return;
                }
                // A text line that is not a start line may still be a broken client's request
                // (zeek's methods.pcap): it is searched past, and counted as malformed if the
                // connection shows HTTP.
                s.early_bad += 1;
            }
            return;
        }
        self.count(
            match self.role(i) {
                Role::Server => Reason::MalformedResponse,
                _ => Reason::MalformedRequest,
            },
            1,
        );
    }

    /// A head over [`MAX_HEAD`]: dropped with the bytes just consumed, then resynchronise.
    fn oversized_head(&mut self, i: usize, consumed: usize) -> usize {
        self.sides[i].buf.clear();
        self.sides[i].resync = true;
        self.sides[i].mode = Mode::Hunt;
        if self.protocol == Protocol::Unknown {
            self.note_hunted((MAX_HEAD + consumed) as u64);
        } else {
            self.count(Reason::OversizedHead, 1);
        }
        consumed
    }

    /// Bytes searched before the connection showed HTTP: past the budget it is not HTTP.
    fn note_hunted(&mut self, n: u64) {
        if self.protocol == Protocol::Unknown {
            self.hunted_unknown = self.hunted_unknown.saturating_add(n);
            if self.hunted_unknown > HUNT_BUDGET {
                self.set_not_http();
            }
        } else {
            self.count(Reason::UnparsedBytes, n);
        }
    }

    fn step_hunt(&mut self, i: usize, ts: Nanos, data: &[u8]) -> usize {
        let (want_req, want_resp) = self.wants(i);
        let s = &mut self.sides[i];
        // Search the kept tail of the current line and this call's bytes as one.
        let carried = s.buf.len();
        let region: &[u8] = if carried == 0 {
            data
        } else {
            s.buf.extend_from_slice(data);
            &s.buf
        };
        let found = head::find_start(region, want_req, want_resp);
        let line_tail = memchr::memrchr(b'\n', region).map_or(0, |p| p + 1);
        let keep_from = line_tail.max(region.len().saturating_sub(HUNT_CARRY));
        match found {
            Some(pos) => {
                self.note_hunted(pos as u64);
                if self.terminal() {
                    return data.len();
                }
                let s = &mut self.sides[i];
                s.folded = false;
                s.mode = Mode::Head {
                    line_ok: false,
                    strict: true,
                };
                if pos < carried {
                    // The head begins in the kept bytes; this call's bytes follow it.
                    s.buf.truncate(carried);
                    s.buf.drain(..pos);
                    0
                } else {
                    s.buf.clear();
                    s.buf_ts = ts;
                    pos - carried
                }
            }
            None => {
                self.note_hunted(keep_from as u64);
                if self.terminal() {
                    return data.len();
                }
                let s = &mut self.sides[i];
                if carried == 0 {
                    s.buf.extend_from_slice(&data[keep_from..]);
                } else {
                    s.buf.drain(..keep_from);
                }
                // The kept bytes are dated by this call once their front moved: a request found in
                // them starts no earlier than `pending_since` said, and the date cannot stall.
                if carried == 0 || keep_from > 0 {
                    s.buf_ts = ts;
                }
                data.len()
            }
        }
    }

    fn head_complete(&mut self, i: usize, ts: Nanos, strict: bool) {
        let buf = self.sides[i].take_buf();
        let folded = self.sides[i].folded;
        let is_resp = match self.role(i) {
            Role::Server => true,
            Role::Client => false,
            Role::Unknown => buf.len() >= 5 && buf[..5].eq_ignore_ascii_case(b"HTTP/"),
        };
        self.sides[i].mode = Mode::Idle;
        if is_resp {
            self.on_response_head(i, ts, &buf, strict, folded);
        } else {
            self.on_request_head(i, ts, &buf, strict, folded);
        }
        self.sides[i].return_buf(buf);
    }

    /// The connection shows HTTP/1: what was searched before it counts as unparsed, and heads
    /// rejected before it as malformed.
    fn established(&mut self) {
        if self.protocol != Protocol::Unknown {
            return;
        }
        self.protocol = Protocol::Http1;
        let hunted = std::mem::take(&mut self.hunted_unknown);
        self.count(Reason::UnparsedBytes, hunted);
        for i in 0..2 {
            let n = std::mem::take(&mut self.sides[i].early_bad);
            let r = if self.role(i) == Role::Server {
                Reason::MalformedResponse
            } else {
                Reason::MalformedRequest
            };
            self.count(r, n);
        }
    }

    fn set_not_http(&mut self) {
        if self.protocol == Protocol::Unknown {
            self.count(Reason::NotHttp, 1);
        }
        self.protocol = Protocol::NotHttp;
        self.ignore_rest();
    }

    fn ignore_rest(&mut self) {
        for s in &mut self.sides {
            s.mode = Mode::Ignore;
            s.buf = Vec::new();
        }
    }

    fn on_request_head(
        &mut self,
        i: usize,
        ts: Nanos,
        head_bytes: &[u8],
        strict: bool,
        folded: bool,
    ) {
        let Some(p) = head::parse_request(head_bytes, strict, folded) else {
            self.not_a_start(i, false);
            return;
        };
        let req = p.request;
        // The HTTP/2 connection preface parses as a request line; it can only open a connection.
        if req.method == "PRI"
            && req.target == "*"
            && req.version == Version::Http2
            && (self.protocol == Protocol::Unknown || self.next_seq == 0)
        {
            self.count(Reason::Http2PriorKnowledge, 1);
            self.protocol = Protocol::Http2PriorKnowledge;
            self.ignore_rest();
            return;
        }
        if self.client.is_none() {
            self.client = Some(Side::of(i));
        }
        self.established();
        let framing = request_framing(&p.fields);
        let start = self.sides[i].buf_ts;
        let is_head = req.method.eq_ignore_ascii_case("HEAD");
        let is_connect = req.method.eq_ignore_ascii_case("CONNECT");
        let seq = self.next_seq;
        self.next_seq += 1;
        let mut ex = Exchange::new(req, start);
        ex.connection = ConnectionInfo {
            client: Some(self.addr[i]),
            server: Some(self.addr[1 - i]),
            id: Some(self.id),
            index: u32::try_from(seq).unwrap_or(u32::MAX),
            tls: false,
        };
        if let Some(Framing::Length(n)) = framing {
            let want = usize::try_from(n).unwrap_or(usize::MAX);
            ex.request
                .body
                .reserve_exact(want.min(self.max_body).min(1 << 20));
        }
        let req_done = framing.is_none();
        if req_done {
            ex.timing.request_end = Some(ts);
        }
        let held = head_bytes.len();
        self.held += held;
        self.queue.push_back(Pending {
            ex,
            req_done,
            resp_done: self.sides[1 - i].closed,
            is_head,
            is_connect,
            upgrade: p.fields.upgrade,
            req_capped: false,
            resp_capped: false,
            held,
        });
        self.limit_unanswered();
        self.sides[i].mode = match framing {
            Some(framing) => Mode::Body(Body {
                owner: Owner::Request(seq),
                framing,
                received: 0,
                head_end: ts,
            }),
            None => self.after_request(seq),
        };
        if let Mode::Body(b) = self.sides[i].mode {
            if let Framing::Chunked(_) = b.framing {
                self.sides[i].line = LineBuf::default();
            }
        }
    }

    /// Gives up the oldest unanswered requests beyond [`MAX_UNANSWERED`].
    fn limit_unanswered(&mut self) {
        while self.next_seq - self.resp_seq > MAX_UNANSWERED as u64 {
            let seq = self.resp_seq;
            if let Some(p) = self.pending_mut(seq) {
                p.resp_done = true;
            }
            self.resp_seq += 1;
        }
    }

    /// The client's mode once request `seq` is complete.
    fn after_request(&self, seq: u64) -> Mode {
        match self.pending(seq) {
            Some(p) if (p.upgrade.is_some() || p.is_connect) && p.ex.response.is_none() => {
                Mode::AwaitVerdict { discarded: false }
            }
            _ => Mode::Idle,
        }
    }

    /// The exchange a response starting at `t` answers, if any.
    fn pick_owner(&mut self, server: usize, t: Nanos) -> Option<u64> {
        while self.resp_seq < self.next_seq
            && self.pending(self.resp_seq).is_none_or(|p| p.resp_done)
        {
            self.resp_seq += 1;
        }
        let resync = std::mem::take(&mut self.sides[server].resync);
        let first = self.resp_seq;
        // A response cannot answer a request that started after it.
        if self.pending(first)?.ex.timing.request_start > t {
            return None;
        }
        let mut pick = first;
        if resync && !self.pipelined {
            // After lost server bytes, a connection that waits for each response before the next
            // request is answering the latest request sent before this response.
            let mut s = first + 1;
            while let Some(p) = self.pending(s) {
                if p.ex.timing.request_start > t || p.resp_done {
                    break;
                }
                pick = s;
                s += 1;
            }
            for s in first..pick {
                if let Some(p) = self.pending_mut(s) {
                    p.resp_done = true;
                    mark(&mut p.ex, Incomplete::MissingSegments);
                }
            }
            self.resp_seq = pick;
        }
        Some(pick)
    }

    fn on_response_head(
        &mut self,
        i: usize,
        ts: Nanos,
        head_bytes: &[u8],
        strict: bool,
        folded: bool,
    ) {
        let Some(p) = head::parse_response(head_bytes, strict, folded) else {
            self.not_a_start(i, false);
            return;
        };
        if self.client.is_none() {
            self.client = Some(Side::of(1 - i));
        }
        self.established();
        let start = self.sides[i].buf_ts;
        self.response(i, ts, start, p.response, p.fields, head_bytes.len(), None);
    }

    /// A response head arrived (or was salvaged, with `salvaged` the reason it is incomplete).
    #[allow(clippy::too_many_arguments)]
    fn response(
        &mut self,
        i: usize,
        ts: Nanos,
        start: Nanos,
        mut resp: crate::model::Response,
        fields: Fields,
        head_len: usize,
        salvaged: Option<Incomplete>,
    ) {
        let status = resp.status;
        let owner = self.pick_owner(i, start);
        self.sides[i].mode = Mode::Idle;
        if resp.is_interim() {
            match owner.and_then(|s| self.pending_mut(s)) {
                Some(p) => {
                    p.held += head_len;
                    p.ex.interim.push(resp);
                    self.held += head_len;
                }
                None => self.count(Reason::ResponseWithoutRequest, 1),
            }
            return;
        }
        let (is_head, is_connect, req_upgrade) = owner
            .and_then(|s| self.pending(s))
            .map_or((false, false, None), |p| {
                (p.is_head, p.is_connect, p.upgrade)
            });
        let framing = if status == 101 || (is_connect && (200..300).contains(&status)) {
            None
        } else {
            response_framing(&fields, status, is_head)
        };
        if salvaged.is_none() {
            if let Some(Framing::Length(n)) = framing {
                let want = usize::try_from(n).unwrap_or(usize::MAX);
                resp.body
                    .reserve_exact(want.min(self.max_body).min(1 << 20));
            }
        }
        match owner {
            Some(seq) => {
                self.resp_seq = seq + 1;
                if self
                    .pending(seq + 1)
                    .is_some_and(|n| n.ex.timing.request_start < start)
                {
                    self.pipelined = true;
                }
                self.held += head_len;
                if let Some(p) = self.pending_mut(seq) {
                    p.held += head_len;
                    p.ex.response = Some(resp);
                    p.ex.timing.response_start = Some(start);
                    if let Some(r) = salvaged {
                        mark(&mut p.ex, r);
                        p.resp_done = true;
                        p.ex.timing.response_end = Some(ts);
                    } else if framing.is_none() {
                        p.resp_done = true;
                        p.ex.timing.response_end = Some(ts);
                    }
                }
            }
            None => self.count(Reason::ResponseWithoutRequest, 1),
        }
        if salvaged.is_some() {
            return;
        }
        // The client's upgrade (or CONNECT) verdict is in.
        if status == 101 {
            let kind = fields.upgrade.or(req_upgrade);
            self.count(
                match kind {
                    Some(UpgradeKind::Websocket) => Reason::UpgradedWebsocket,
                    Some(UpgradeKind::H2c) => Reason::UpgradedH2c,
                    _ => Reason::UpgradedOther,
                },
                1,
            );
            self.switch_protocols();
            return;
        }
        if is_connect && (200..300).contains(&status) {
            let c = 1 - i;
            if matches!(self.sides[c].mode, Mode::AwaitVerdict { discarded: true }) {
                // The client already sent bytes that are not HTTP into the tunnel.
                self.count(Reason::ConnectTunnel, 1);
                self.switch_protocols();
            } else {
                self.sides[0].mode = Mode::Tunnel;
                self.sides[1].mode = Mode::Tunnel;
            }
            return;
        }
        let c = 1 - i;
        if let Mode::AwaitVerdict { discarded } = self.sides[c].mode {
            if self.resp_seq >= self.next_seq {
                // Not switching after all; what the client sent meanwhile was not a request.
                self.sides[c].mode = if discarded { Mode::Hunt } else { Mode::Idle };
            }
        }
        if let Some(framing) = framing {
            if let Framing::Chunked(_) = framing {
                self.sides[i].line = LineBuf::default();
            }
            self.sides[i].mode = Mode::Body(Body {
                owner: owner.map_or(Owner::Discard, Owner::Response),
                framing,
                received: 0,
                head_end: ts,
            });
        }
    }

    /// After a 101 or an established tunnel nothing more is HTTP/1: every request still waiting
    /// is finished as it is.
    fn switch_protocols(&mut self) {
        self.protocol = Protocol::Upgraded;
        self.ignore_rest();
        for p in &mut self.queue {
            if !p.req_done {
                p.req_done = true;
                mark(&mut p.ex, Incomplete::TruncatedBody);
            }
            p.resp_done = true;
        }
        self.resp_seq = self.next_seq;
    }

    /// The first unanswered exchange, if it is an HTTP/0.9 request that a response at `t` may answer.
    fn unanswered_http09(&self, t: Nanos) -> Option<u64> {
        let mut seq = self.resp_seq;
        while let Some(p) = self.pending(seq) {
            if !p.resp_done {
                return (p.ex.request.version == Version::Http09 && p.ex.timing.request_start <= t)
                    .then_some(seq);
            }
            seq += 1;
        }
        None
    }

    /// An HTTP/0.9 request line without headers is complete without an empty line; it is only
    /// known to be when the server answers or the client stops.
    fn flush_http09(&mut self, c: usize) {
        if self.role(c) == Role::Server {
            return;
        }
        let s = &self.sides[c];
        let Mode::Head { line_ok: true, .. } = s.mode else {
            return;
        };
        if memchr_nl(&s.buf) != Some(s.buf.len().saturating_sub(1)) {
            return;
        }
        match head::request_line(&s.buf, false) {
            Some(rl) if rl.version.is_none() => {}
            _ => return,
        }
        let mut line = self.sides[c].take_buf();
        line.push(b'\n');
        let ts = self.sides[c].last_ts;
        let strict = self.protocol == Protocol::Unknown;
        self.on_request_head(c, ts, &line, strict, false);
        self.sides[c].return_buf(line);
    }

    fn start_http09_response(&mut self, i: usize, ts: Nanos, seq: u64) {
        self.resp_seq = seq + 1;
        if let Some(p) = self.pending_mut(seq) {
            p.ex.response = Some(crate::model::Response {
                version: Version::Http09,
                status: 200,
                ..Default::default()
            });
            p.ex.timing.response_start = Some(ts);
        }
        self.sides[i].mode = Mode::Body(Body {
            owner: Owner::Response(seq),
            framing: Framing::Close,
            received: 0,
            head_end: ts,
        });
    }

    fn step_body(&mut self, i: usize, ts: Nanos, data: &[u8], mut b: Body) -> usize {
        if let Owner::Request(seq) = b.owner {
            // The server answered before any of an announced body came (417, 401 after
            // `Expect: 100-continue`) and the client moved on to a new request.
            if b.received == 0
                && self.resp_seq > seq
                && self.pending(seq).is_some_and(|p| p.ex.response.is_some())
                && head::looks_like_request_start(data)
            {
                let expected = self
                    .pending(seq)
                    .is_some_and(|p| p.ex.request.headers.has_token("expect", "100-continue"));
                if let Some(p) = self.pending_mut(seq) {
                    if !expected {
                        mark(&mut p.ex, Incomplete::TruncatedBody);
                    }
                }
                self.body_done(i, b.owner, b.head_end);
                return 0;
            }
        }
        let (n, outcome) = match b.framing {
            Framing::Length(rem) => {
                let n = data.len().min(usize::try_from(rem).unwrap_or(usize::MAX));
                let left = rem - n as u64;
                b.framing = Framing::Length(left);
                (n, if left == 0 { Some(true) } else { None })
            }
            Framing::Close => (data.len(), None),
            Framing::Chunked(st) => {
                let (n, r) = chunk_scan(&mut self.sides[i].line, st, data);
                match r {
                    ChunkResult::More(st) => {
                        b.framing = Framing::Chunked(st);
                        (n, None)
                    }
                    ChunkResult::Done => (n, Some(true)),
                    ChunkResult::Bad => (n, Some(false)),
                }
            }
        };
        b.received = b.received.saturating_add(n as u64);
        self.store(b.owner, &data[..n]);
        match outcome {
            None => self.sides[i].mode = Mode::Body(b),
            Some(true) => self.body_done(i, b.owner, ts),
            Some(false) => {
                // Chunk framing broke: keep what came, resynchronise on the next message.
                self.mark_owner(b.owner, Incomplete::TruncatedBody);
                self.count(
                    match b.owner {
                        Owner::Request(_) => Reason::MalformedRequest,
                        _ => Reason::MalformedResponse,
                    },
                    1,
                );
                self.body_done(i, b.owner, ts);
                self.sides[i].resync = true;
                self.sides[i].mode = Mode::Hunt;
            }
        }
        n
    }

    /// Stores body bytes up to the cap.
    fn store(&mut self, owner: Owner, bytes: &[u8]) {
        let (seq, is_req) = match owner {
            Owner::Request(s) => (s, true),
            Owner::Response(s) => (s, false),
            Owner::Discard => return,
        };
        if bytes.is_empty() {
            return;
        }
        let max = self.max_body;
        let Some(p) = self.pending_mut(seq) else {
            return;
        };
        let body = if is_req {
            &mut p.ex.request.body
        } else {
            match &mut p.ex.response {
                Some(r) => &mut r.body,
                None => return,
            }
        };
        let n = bytes.len().min(max.saturating_sub(body.len()));
        body.extend_from_slice(&bytes[..n]);
        p.held += n;
        let over = n < bytes.len() && {
            let capped = if is_req {
                &mut p.req_capped
            } else {
                &mut p.resp_capped
            };
            !std::mem::replace(capped, true)
        };
        if over {
            mark(&mut p.ex, Incomplete::TruncatedBody);
        }
        self.held += n;
        if over {
            self.count(Reason::BodyOverCap, 1);
        }
    }

    fn mark_owner(&mut self, owner: Owner, r: Incomplete) {
        if let Owner::Request(s) | Owner::Response(s) = owner {
            if let Some(p) = self.pending_mut(s) {
                mark(&mut p.ex, r);
            }
        }
    }

    /// The message `owner` ended at `ts`; the side goes back to a message boundary.
    fn body_done(&mut self, i: usize, owner: Owner, ts: Nanos) {
        match owner {
            Owner::Request(seq) => {
                if let Some(p) = self.pending_mut(seq) {
                    p.req_done = true;
                    p.ex.timing.request_end = Some(ts);
                }
                self.sides[i].mode = self.after_request(seq);
            }
            Owner::Response(seq) => {
                if let Some(p) = self.pending_mut(seq) {
                    p.resp_done = true;
                    p.ex.timing.response_end = Some(ts);
                }
                self.sides[i].mode = Mode::Idle;
            }
            Owner::Discard => self.sides[i].mode = Mode::Idle,
        }
    }

    /// `len` bytes from `side` were never captured (a sequence gap). The message in progress is
    /// marked `MissingSegments`; parsing resynchronises on the next message start.
    pub fn gap(&mut self, side: Side, ts: Nanos, len: u64) {
        if self.terminal() || len == 0 {
            return;
        }
        let i = side.ix();
        self.sides[i].lost = true;
        match self.sides[i].mode {
            Mode::Idle => self.lost_boundary(i),
            Mode::Head { line_ok, .. } => {
                let salvaged = line_ok && self.salvage_head(i, ts, Incomplete::MissingSegments);
                self.sides[i].buf.clear();
                self.sides[i].mode = Mode::Hunt;
                // A salvaged response took its place in the order; otherwise one may be lost.
                self.sides[i].resync = !salvaged;
            }
            Mode::Body(mut b) => {
                self.mark_owner(b.owner, Incomplete::MissingSegments);
                b.received = b.received.saturating_add(len);
                match b.framing {
                    Framing::Length(rem) if len < rem => {
                        b.framing = Framing::Length(rem - len);
                        self.sides[i].mode = Mode::Body(b);
                    }
                    Framing::Length(rem) => {
                        self.body_done(i, b.owner, ts);
                        if len > rem {
                            self.lost_boundary(i);
                        }
                    }
                    Framing::Close => self.sides[i].mode = Mode::Body(b),
                    Framing::Chunked(Chunk::Data(rem)) if len < rem => {
                        b.framing = Framing::Chunked(Chunk::Data(rem - len));
                        self.sides[i].mode = Mode::Body(b);
                    }
                    Framing::Chunked(_) => {
                        // The framing is lost with the bytes: the message ends here.
                        self.body_done(i, b.owner, ts);
                        self.lost_boundary(i);
                    }
                }
            }
            Mode::Hunt => self.lost_boundary(i),
            Mode::AwaitVerdict { .. } => {
                self.sides[i].mode = Mode::AwaitVerdict { discarded: true };
            }
            Mode::Tunnel => {
                // What the tunnel carries was not captured: treat it as opaque.
                self.count(Reason::ConnectTunnel, 1);
                self.switch_protocols();
            }
            Mode::Ignore => {}
        }
    }

    /// Bytes were lost between messages (or where a message's end was): hunt for the next start.
    fn lost_boundary(&mut self, i: usize) {
        self.drop_carry(i);
        let s = &mut self.sides[i];
        s.buf.clear();
        s.resync = true;
        s.mode = Mode::Hunt;
    }

    /// Counts the kept tail of a line being searched as passed over.
    fn drop_carry(&mut self, i: usize) {
        if self.sides[i].mode == Mode::Hunt {
            let n = std::mem::take(&mut self.sides[i].buf).len();
            self.note_hunted(n as u64);
        }
    }

    /// Turns a head cut short into a message from its complete lines, marked `why`. Returns true
    /// if a message was made.
    fn salvage_head(&mut self, i: usize, ts: Nanos, why: Incomplete) -> bool {
        let buf = self.sides[i].take_buf();
        let end = memchr::memrchr(b'\n', &buf).map_or(0, |p| p + 1);
        let part = &buf[..end];
        let is_resp = match self.role(i) {
            Role::Server => true,
            Role::Client => false,
            Role::Unknown => part.len() >= 5 && part[..5].eq_ignore_ascii_case(b"HTTP/"),
        };
        let strict = self.protocol == Protocol::Unknown;
        let mut made = false;
        if is_resp {
            if let Some(resp) = head::lenient_response(part) {
                if !strict || head::status_line(part, true).is_some() {
                    if self.client.is_none() {
                        self.client = Some(Side::of(1 - i));
                    }
                    self.established();
                    let start = self.sides[i].buf_ts;
                    let fields = head::fields_of(&resp.headers);
                    self.response(i, ts, start, resp, fields, part.len(), Some(why));
                    made = true;
                }
            }
        } else if let Some(req) = head::lenient_request(part, strict) {
            if self.client.is_none() {
                self.client = Some(Side::of(i));
            }
            self.established();
            let seq = self.next_seq;
            self.next_seq += 1;
            let mut ex = Exchange::new(req, self.sides[i].buf_ts);
            ex.connection = ConnectionInfo {
                client: Some(self.addr[i]),
                server: Some(self.addr[1 - i]),
                id: Some(self.id),
                index: u32::try_from(seq).unwrap_or(u32::MAX),
                tls: false,
            };
            ex.timing.request_end = Some(ts);
            mark(&mut ex, why);
            self.held += part.len();
            let fields = head::fields_of(&ex.request.headers);
            self.queue.push_back(Pending {
                is_head: ex.request.method.eq_ignore_ascii_case("HEAD"),
                is_connect: ex.request.method.eq_ignore_ascii_case("CONNECT"),
                upgrade: fields.upgrade,
                ex,
                req_done: true,
                resp_done: self.sides[1 - i].closed,
                req_capped: false,
                resp_capped: false,
                held: part.len(),
            });
            self.limit_unanswered();
            made = true;
        }
        self.sides[i].mode = Mode::Idle;
        self.sides[i].return_buf(buf);
        made
    }

    /// `side` sent FIN (or RST): ends a close-delimited body.
    pub fn close(&mut self, side: Side, ts: Nanos) {
        let i = side.ix();
        if self.finished || self.sides[i].closed {
            return;
        }
        self.sides[i].closed = true;
        if self.terminal() {
            return;
        }
        let last = self.sides[i].last_ts;
        self.drop_carry(i);
        match self.sides[i].mode {
            Mode::Head { line_ok: true, .. } => {
                self.flush_http09(i);
                if let Mode::Head { .. } = self.sides[i].mode {
                    self.salvage_head(i, last, Incomplete::TruncatedBody);
                }
            }
            Mode::Body(b) => {
                let complete = match b.framing {
                    Framing::Close => true,
                    // Only the final CRLF is missing: sloppy, but the body is whole.
                    Framing::Chunked(Chunk::Trailer) => self.sides[i].line.len == 0,
                    _ => false,
                };
                if !complete {
                    self.mark_owner(b.owner, Incomplete::TruncatedBody);
                }
                self.body_done(i, b.owner, last);
            }
            _ => {}
        }
        let _ = ts;
        self.sides[i].buf.clear();
        self.sides[i].mode = Mode::Idle;
        if self.role(i) == Role::Server {
            // No response can come any more.
            for p in &mut self.queue {
                p.resp_done = true;
            }
            self.resp_seq = self.next_seq;
        }
    }

    /// The capture ended or the connection was evicted: everything in progress is emitted,
    /// with `CaptureEnded` / `NoResponse` / `TruncatedBody` as fits.
    pub fn finish(&mut self, ts: Nanos) {
        let _ = ts; // the end of what is in progress is its last byte seen, not the capture's end
        if self.finished {
            return;
        }
        if !self.terminal() && self.sides.iter().any(|s| s.mode == Mode::Tunnel) {
            // An established tunnel that carried nothing captured.
            self.count(Reason::ConnectTunnel, 1);
        }
        if !self.terminal() {
            // The client first, so a request cut short still takes its place before responses.
            let order = match self.client {
                Some(c) => [c.ix(), 1 - c.ix()],
                None => [0, 1],
            };
            for i in order {
                let last = self.sides[i].last_ts;
                self.drop_carry(i);
                match self.sides[i].mode {
                    Mode::Head { line_ok: true, .. } => {
                        self.flush_http09(i);
                        if let Mode::Head { .. } = self.sides[i].mode {
                            self.salvage_head(i, last, Incomplete::CaptureEnded);
                        }
                    }
                    Mode::Body(b) => {
                        self.mark_owner(b.owner, Incomplete::CaptureEnded);
                        self.body_done(i, b.owner, last);
                    }
                    _ => {}
                }
            }
            if self.protocol == Protocol::Unknown && self.sides.iter().any(|s| s.started) {
                self.set_not_http();
            }
        }
        for p in &mut self.queue {
            if !p.req_done {
                p.req_done = true;
                mark(&mut p.ex, Incomplete::CaptureEnded);
            }
            p.resp_done = true;
        }
        self.resp_seq = self.next_seq;
        self.finished = true;
        for s in &mut self.sides {
            s.mode = Mode::Ignore;
            s.buf = Vec::new();
        }
    }

    /// Moves finished exchanges out, in the order their requests started.
    pub fn take_exchanges(&mut self, out: &mut Vec<Exchange>) {
        while self.queue.front().is_some_and(Pending::done) {
            let Some(mut p) = self.queue.pop_front() else {
                break;
            };
            self.front_seq += 1;
            self.held = self.held.saturating_sub(p.held);
            if p.ex.response.is_none() {
                mark(&mut p.ex, Incomplete::NoResponse);
            }
            out.push(p.ex);
        }
    }

    /// Moves the counts of traffic not turned into exchanges (by reason: `not_http`,
    /// `http2_prior_knowledge`, `upgraded_websocket`, `upgraded_h2c`, `upgraded_other`,
    /// `connect_tunnel` per connection; `response_without_request`, `malformed_request`,
    /// `malformed_response`, `oversized_head`, `body_over_cap` per message; `unparsed_bytes` in
    /// bytes) into `report`.
    pub fn take_skipped(&mut self, report: &mut ReadReport) {
        for r in REASONS {
            let n = std::mem::take(&mut self.skipped[r.ix()]);
            if n > 0 {
                report.skip(r.name(), n);
            }
        }
    }

    /// The request start of the earliest exchange not yet finished, if any: no exchange of this
    /// connection that is emitted later can start before it (used to emit in time order).
    pub fn pending_since(&self) -> Option<Nanos> {
        if let Some(p) = self.queue.front() {
            return Some(p.ex.timing.request_start);
        }
        (0..2)
            .filter(|&i| self.role(i) != Role::Server)
            .filter_map(|i| self.sides[i].pending_start())
            .min()
    }

    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// Bytes currently buffered (for memory caps).
    pub fn buffered(&self) -> usize {
        self.held + self.sides[0].buf.len() + self.sides[1].buf.len()
    }
}

/// Whether a complete start line is a message start of the wanted kind.
fn start_line_ok(line: &[u8], want_req: bool, want_resp: bool, strict: bool) -> bool {
    let resp_like = line.len() >= 5 && line[..5].eq_ignore_ascii_case(b"HTTP/");
    if want_resp && (resp_like || !want_req) {
        head::status_line(line, strict).is_some()
    } else {
        want_req && head::request_line(line, strict).is_some()
    }
}

/// How a request's body is delimited (RFC 9112 §6.3): chunked, Content-Length, else none.
fn request_framing(f: &Fields) -> Option<Framing> {
    if f.chunked {
        return Some(Framing::Chunked(Chunk::Size));
    }
    if f.transfer_encoding {
        return None;
    }
    match f.content_length {
        ContentLength::Valid(n) if n > 0 => Some(Framing::Length(n)),
        _ => None,
    }
}

/// How a final response's body is delimited (RFC 9112 §6.3).
fn response_framing(f: &Fields, status: u16, request_was_head: bool) -> Option<Framing> {
    if request_was_head || (100..200).contains(&status) || status == 204 || status == 304 {
        return None;
    }
    if f.chunked {
        return Some(Framing::Chunked(Chunk::Size));
    }
    if f.transfer_encoding {
        return Some(Framing::Close);
    }
    match f.content_length {
        ContentLength::Valid(0) => None,
        ContentLength::Valid(n) => Some(Framing::Length(n)),
        ContentLength::Invalid | ContentLength::Absent => Some(Framing::Close),
    }
}

enum ChunkResult {
    More(Chunk),
    Done,
    Bad,
}

/// Frames as much of a chunked body as `data` holds. Returns the bytes consumed (all part of the
/// body's wire form) and where the framing stands.
fn chunk_scan(line: &mut LineBuf, mut st: Chunk, data: &[u8]) -> (usize, ChunkResult) {
    let mut pos = 0;
    loop {
        let Some(&next) = data.get(pos) else {
            return (pos, ChunkResult::More(st));
        };
        match st {
            Chunk::Size | Chunk::Trailer => {
                let rest = &data[pos..];
                let Some(k) = memchr_nl(rest) else {
                    line.push(rest);
                    if st == Chunk::Trailer {
                        line.trailer += rest.len();
                    }
                    let bad = line.len > MAX_CHUNK_LINE || line.trailer > MAX_HEAD;
                    let r = if bad {
                        ChunkResult::Bad
                    } else {
                        ChunkResult::More(st)
                    };
                    return (data.len(), r);
                };
                line.push(&rest[..k]);
                pos += k + 1;
                if st == Chunk::Size {
                    match line.chunk_size() {
                        Some(0) => {
                            st = Chunk::Trailer;
                            line.trailer = 0;
                        }
                        Some(n) => st = Chunk::Data(n),
                        None => return (pos, ChunkResult::Bad),
                    }
                } else {
                    if line.is_blank() {
                        line.reset();
                        return (pos, ChunkResult::Done);
                    }
                    line.trailer += k + 1;
                    if line.trailer > MAX_HEAD {
                        return (pos, ChunkResult::Bad);
                    }
                }
                line.reset();
            }
            Chunk::Data(rem) => {
                let n = (data.len() - pos).min(usize::try_from(rem).unwrap_or(usize::MAX));
                pos += n;
                let left = rem - n as u64;
                st = if left == 0 {
                    Chunk::DataEnd
                } else {
                    Chunk::Data(left)
                };
            }
            Chunk::DataEnd => match next {
                b'\r' => {
                    pos += 1;
                    st = Chunk::DataEndLf;
                }
                b'\n' => {
                    pos += 1;
                    st = Chunk::Size;
                }
                // Sloppy senders omit the CRLF; the next size line follows directly.
                _ => st = Chunk::Size,
            },
            Chunk::DataEndLf => {
                if next == b'\n' {
                    pos += 1;
                }
                st = Chunk::Size;
            }
        }
    }
}
