//! TCP reassembly: the segments of each captured TCP connection become two in-order byte streams,
//! delivered to a [`StreamSink`] as data, gaps (bytes never captured) and closes.
//!
//! No crate fits this: the Rust TCP crates are stacks (smoltcp) or packet parsers (etherparse,
//! pnet); none reassembles passively observed traffic with gap reporting, so it is written here.
//!
//! The model is a passive observer's, like Zeek's or Wireshark's:
//! - A flow table keyed by the normalized 4-tuple. Side A is the SYN sender when the SYN is seen,
//!   else the sender of the first packet seen; the sink decides client and server by content.
//! - Each direction maps 32-bit sequence numbers to 64-bit offsets from its initial sequence (the
//!   SYN's ISN + 1, or the first segment seen when the capture starts mid-connection), so wraparound
//!   at 2^32 is invisible and every comparison is on offsets.
//! - In-order data goes straight to the sink (no copy). Out-of-order data is buffered by offset;
//!   overlaps keep the first copy (as most stacks do); retransmissions and keep-alive probes are
//!   dropped.
//! - A hole is declared a gap when the peer acknowledges bytes beyond it (they were received but not
//!   captured), when a direction buffers more than a cap, or when the connection ends.
//! - FIN/RST close a side; when both sides closed, or on RST, the flow ends and leaves a small
//!   tombstone that swallows stray ACKs and retransmissions; a new SYN on the same 4-tuple starts a
//!   new connection. Idle flows, the flow count and the total buffered bytes are all capped.

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::http1::Side;
use crate::model::Nanos;

/// TCP flag bit: no more data from the sender.
pub const FIN: u8 = 0x01;
/// TCP flag bit: synchronize sequence numbers (connection open).
pub const SYN: u8 = 0x02;
/// TCP flag bit: reset the connection.
pub const RST: u8 = 0x04;
/// TCP flag bit: push.
pub const PSH: u8 = 0x08;
/// TCP flag bit: the acknowledgment number is valid.
pub const ACK: u8 = 0x10;

const SECOND: Nanos = 1_000_000_000;
/// Segments or acknowledgements further than this beyond the next expected byte are implausible
/// (no window is that large) and ignored rather than turned into enormous gaps.
const MAX_AHEAD: i64 = 1 << 30;
/// Approximate bookkeeping cost of one buffered chunk, so many tiny chunks count too.
const CHUNK_OVERHEAD: usize = 64;

/// One end of a TCP connection. IPv4 addresses are stored in the first four bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Endpoint {
    /// The address; IPv4 in the first four bytes, the rest zero.
    pub ip: [u8; 16],
    pub port: u16,
    /// Whether `ip` is an IPv6 address.
    pub v6: bool,
}

impl Endpoint {
    /// An IPv4 endpoint.
    pub fn v4(ip: [u8; 4], port: u16) -> Self {
        let mut a = [0u8; 16];
        a[..4].copy_from_slice(&ip);
        Endpoint {
            ip: a,
            port,
            v6: false,
        }
    }

    /// An IPv6 endpoint.
    pub fn v6(ip: [u8; 16], port: u16) -> Self {
        Endpoint { ip, port, v6: true }
    }

    /// The endpoint as a socket address.
    pub fn socket_addr(&self) -> SocketAddr {
        let ip = if self.v6 {
            IpAddr::V6(Ipv6Addr::from(self.ip))
        } else {
            IpAddr::V4(Ipv4Addr::new(
                self.ip[0], self.ip[1], self.ip[2], self.ip[3],
            ))
        };
        SocketAddr::new(ip, self.port)
    }

    fn words(&self) -> (u64, u64) {
        let (lo, hi) = self.ip.split_at(8);
        let mut l = [0u8; 8];
        let mut h = [0u8; 8];
        l.copy_from_slice(lo);
        h.copy_from_slice(hi);
        (u64::from_le_bytes(l), u64::from_le_bytes(h))
    }
}

/// One captured TCP segment, as the link/IP/TCP decoder hands it over.
#[derive(Debug, Clone, Copy)]
pub struct Segment<'a> {
    pub ts: Nanos,
    pub src: Endpoint,
    pub dst: Endpoint,
    pub seq: u32,
    pub ack: u32,
    /// The header's flags byte ([`FIN`], [`SYN`], [`RST`], [`ACK`], ...).
    pub flags: u8,
    /// The captured payload.
    pub payload: &'a [u8],
    /// Payload bytes the IP length announces beyond `payload` that were not captured (snaplen).
    pub missing: u32,
}

/// Receives the reassembled streams of one connection.
pub trait StreamSink {
    /// In-order bytes from `side`, first seen at `ts`.
    fn data(&mut self, side: Side, ts: Nanos, bytes: &[u8]);
    /// `len` bytes from `side` were never captured.
    fn gap(&mut self, side: Side, ts: Nanos, len: u64);
    /// `side` finished sending (FIN, or RST).
    fn close(&mut self, side: Side, ts: Nanos);
    /// False once the sink ignores payload (not HTTP): reassembly then stops buffering and
    /// delivering data for the flow, and only tracks its end.
    fn wants_data(&self) -> bool {
        true
    }
}

/// Limits that keep reassembly memory bounded.
#[derive(Debug, Clone)]
pub struct TcpConfig {
    /// A flow without packets for this long (capture time) is ended.
    pub idle_timeout: Nanos,
    /// How long an ended flow's tombstone swallows stray packets.
    pub tombstone_time: Nanos,
    /// Live flows (tombstones included); past it the least recently active are ended.
    pub max_flows: usize,
    /// Out-of-order bytes one direction may buffer before its first hole is declared a gap.
    pub max_buffered_per_direction: usize,
    /// Out-of-order bytes all flows together may buffer.
    pub max_buffered_total: usize,
}

impl Default for TcpConfig {
    fn default() -> Self {
        TcpConfig {
            idle_timeout: 300 * SECOND,
            tombstone_time: 60 * SECOND,
            max_flows: 100_000,
            max_buffered_per_direction: 1 << 20,
            max_buffered_total: 64 << 20,
        }
    }
}

/// Why a flow ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// Both sides sent FIN.
    Closed,
    /// A RST from this side.
    Reset(Side),
    /// A new SYN reused the 4-tuple.
    Reused,
    /// No packet for [`TcpConfig::idle_timeout`].
    Idle,
    /// Pushed out by the flow-count cap, or ended by the owner.
    Evicted,
    /// [`FlowTable::finish_all`].
    CaptureEnded,
}

/// A flow that ended: its sink has received every byte, gap and close reassembly had for it.
pub struct Ended<S> {
    pub id: u64,
    pub sink: S,
    /// When it ended (the last packet's time for idle flows).
    pub ts: Nanos,
    pub reason: EndReason,
}

/// Names a live flow right after [`FlowTable::segment`] returned it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowHandle(u32);

/// A multiply-rotate hasher (rustc's FxHash): the flow key is not attacker-chosen in a way that
/// matters for an offline reader, and SipHash would cost more than the rest of a lookup.
#[derive(Default, Clone, Copy)]
pub struct FxHasher {
    hash: u64,
}

const FX_K: u64 = 0xf135_7aea_2e62_a9c5;

impl FxHasher {
    #[inline]
    fn add(&mut self, w: u64) {
        self.hash = self.hash.wrapping_add(w).wrapping_mul(FX_K);
    }
}

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        for c in bytes.chunks(8) {
            let mut w = [0u8; 8];
            w[..c.len()].copy_from_slice(c);
            self.add(u64::from_le_bytes(w));
        }
    }
    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }
    #[inline]
    fn finish(&self) -> u64 {
        self.hash.rotate_left(26)
    }
}

/// `HashMap` with [`FxHasher`].
pub type FxBuild = BuildHasherDefault<FxHasher>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FlowKey {
    lo: Endpoint,
    hi: Endpoint,
}

impl FlowKey {
    fn new(a: Endpoint, b: Endpoint) -> Self {
        if a <= b {
            FlowKey { lo: a, hi: b }
        } else {
            FlowKey { lo: b, hi: a }
        }
    }
}

impl Hash for FlowKey {
    fn hash<H: Hasher>(&self, h: &mut H) {
        let (a, b) = self.lo.words();
        let (c, d) = self.hi.words();
        h.write_u64(a);
        h.write_u64(b);
        h.write_u64(c);
        h.write_u64(d);
        h.write_u64(
            u64::from(self.lo.port)
                | u64::from(self.hi.port) << 16
                | u64::from(self.lo.v6) << 32
                | u64::from(self.hi.v6) << 33,
        );
    }
}

enum Piece {
    Data(Vec<u8>),
    /// Bytes the IP length announced but the capture cut (snaplen).
    Missing(u64),
}

struct Chunk {
    ts: Nanos,
    piece: Piece,
}

impl Chunk {
    fn len(&self) -> u64 {
        match &self.piece {
            Piece::Data(d) => d.len() as u64,
            Piece::Missing(m) => *m,
        }
    }

    fn cost(&self) -> usize {
        CHUNK_OVERHEAD
            + match &self.piece {
                Piece::Data(d) => d.len(),
                Piece::Missing(_) => 0,
            }
    }
}

/// Where a range being buffered takes its bytes from.
#[derive(Clone, Copy)]
enum Src<'a> {
    /// Bytes starting at the given offset.
    Data(u64, &'a [u8]),
    Missing,
}

/// What a direction's events go to, and the table-wide byte counter.
struct Ctx<'a, S> {
    sink: &'a mut S,
    side: Side,
    ts: Nanos,
    total: &'a mut usize,
}

impl<S: StreamSink> Ctx<'_, S> {
    fn other(&mut self) -> Ctx<'_, S> {
        Ctx {
            sink: self.sink,
            side: self.side.other(),
            ts: self.ts,
            total: self.total,
        }
    }
}

/// One direction of a connection.
#[derive(Default)]
struct Dir {
    init: bool,
    /// Initialised from a SYN: `base - 1` is the ISN.
    syn: bool,
    /// The sequence number of offset 0.
    base: u32,
    /// The next offset to deliver.
    next: u64,
    /// The offset of the FIN, once seen.
    fin: Option<u64>,
    closed: bool,
    ooo: BTreeMap<u64, Chunk>,
    ooo_bytes: usize,
    ooo_since: Option<Nanos>,
}

impl Dir {
    fn init_at(&mut self, base: u32, syn: bool) {
        self.init = true;
        self.syn = syn;
        self.base = base;
        self.next = 0;
    }

    /// The offset of `seq`: the value congruent to it modulo 2^32 that is nearest to `next`.
    #[inline]
    fn offset(&self, seq: u32) -> i64 {
        let cur = self.base.wrapping_add(self.next as u32);
        self.next as i64 + i64::from(seq.wrapping_sub(cur) as i32)
    }

    /// Takes the segment `[off, off + data.len() + missing)`.
    fn accept<S: StreamSink>(
        &mut self,
        cx: &mut Ctx<'_, S>,
        off: i64,
        mut data: &[u8],
        mut missing: u64,
        max_buffered: usize,
    ) {
        let next = self.next as i64;
        let mut len = data.len() as u64 + missing;
        if let Some(fin) = self.fin {
            // Nothing follows a FIN.
            let room = (fin as i64 - off).max(0) as u64;
            if len > room {
                let cut = len - room;
                let cut_missing = cut.min(missing);
                missing -= cut_missing;
                let keep = data.len() - (cut - cut_missing).min(data.len() as u64) as usize;
                data = data.get(..keep).unwrap_or_default();
                len = room;
            }
        }
        if len == 0 || off + len as i64 <= next {
            return; // retransmission or keep-alive probe
        }
        if off - next > MAX_AHEAD {
            return;
        }
        // Trim what was already delivered.
        let mut off = off;
        if off < next {
            let cut = (next - off) as u64;
            if cut <= data.len() as u64 {
                data = data.get(cut as usize..).unwrap_or_default();
            } else {
                missing -= cut - data.len() as u64;
                data = &[];
            }
            off = next;
        }
        let off = off as u64;
        if off == self.next {
            let first = self.ooo.keys().next().copied();
            match first {
                None => {
                    let ts = cx.ts;
                    self.deliver(cx, ts, data, missing);
                }
                Some(first) => {
                    // Only the part before the first buffered chunk goes out directly: the
                    // buffered copy came first and wins where they overlap.
                    let len = data.len() as u64 + missing;
                    let direct = (first - off).min(len);
                    let dl = (direct.min(data.len() as u64)) as usize;
                    let (head, tail) = data.split_at(dl);
                    let head_missing = direct - dl as u64;
                    // Sent before the buffered bytes, so no later than they were seen.
                    let ts = self.ooo.values().next().map_or(cx.ts, |c| c.ts.min(cx.ts));
                    self.deliver(cx, ts, head, head_missing);
                    let rest_off = off + direct;
                    self.insert(cx, rest_off, tail, missing - head_missing);
                    self.drain(cx);
                }
            }
        } else {
            self.insert(cx, off, data, missing);
            while self.ooo_bytes > max_buffered {
                self.skip_first_hole(cx);
            }
        }
    }

    #[inline]
    fn deliver<S: StreamSink>(
        &mut self,
        cx: &mut Ctx<'_, S>,
        ts: Nanos,
        data: &[u8],
        missing: u64,
    ) {
        if !data.is_empty() {
            cx.sink.data(cx.side, ts, data);
            self.next += data.len() as u64;
        }
        if missing > 0 {
            cx.sink.gap(cx.side, ts, missing);
            self.next += missing;
        }
    }

    fn insert<S>(&mut self, cx: &mut Ctx<'_, S>, off: u64, data: &[u8], missing: u64) {
        let dend = off + data.len() as u64;
        if !data.is_empty() {
            self.insert_range(cx, off, dend, Src::Data(off, data));
        }
        if missing > 0 {
            self.insert_range(cx, dend, dend + missing, Src::Missing);
        }
    }

    /// Buffers the parts of `[start, end)` not already buffered (first copy wins).
    fn insert_range<S>(&mut self, cx: &mut Ctx<'_, S>, start: u64, end: u64, src: Src<'_>) {
        let mut cur = start;
        if let Some((&k, c)) = self.ooo.range(..cur).next_back() {
            cur = cur.max(k + c.len());
        }
        while cur < end {
            let (stop, resume) = match self.ooo.range(cur..).next() {
                Some((&k, c)) if k < end => (k, k + c.len()),
                _ => (end, end),
            };
            if stop > cur {
                let piece = match src {
                    Src::Data(at, d) => {
                        let s = (cur - at) as usize;
                        let e = (stop - at) as usize;
                        Piece::Data(d.get(s..e).unwrap_or_default().to_vec())
                    }
                    Src::Missing => Piece::Missing(stop - cur),
                };
                let chunk = Chunk { ts: cx.ts, piece };
                let cost = chunk.cost();
                self.ooo_bytes += cost;
                *cx.total += cost;
                self.ooo_since = Some(self.ooo_since.map_or(cx.ts, |t| t.min(cx.ts)));
                self.ooo.insert(cur, chunk);
                self.settle_ts(cur);
            }
            cur = resume.max(stop);
        }
    }

    /// Dates the chunk just buffered at `k` no later than the chunk after it, and the chunks
    /// before it no later than it: a sender sends its bytes in order, so each was sent no later
    /// than any later byte was seen. Buffered times then never decrease with the offset, so
    /// delivery times never go back (exchanges of one connection stay in request order) and
    /// this walk stops at once when packets come in time order.
    fn settle_ts(&mut self, k: u64) {
        let after = self.ooo.range(k + 1..).next().map(|(_, c)| c.ts);
        let Some(c) = self.ooo.get_mut(&k) else {
            return;
        };
        if let Some(a) = after {
            c.ts = c.ts.min(a);
        }
        let t = c.ts;
        for (_, c) in self.ooo.range_mut(..k).rev() {
            if c.ts <= t {
                break;
            }
            c.ts = t;
        }
    }

    /// Delivers buffered chunks that have become contiguous.
    fn drain<S: StreamSink>(&mut self, cx: &mut Ctx<'_, S>) {
        let mut removed = false;
        while let Some(entry) = self.ooo.first_entry() {
            let k = *entry.key();
            if k > self.next {
                break;
            }
            let chunk = entry.remove();
            removed = true;
            let cost = chunk.cost();
            self.ooo_bytes -= cost;
            *cx.total -= cost;
            let end = k + chunk.len();
            if end <= self.next {
                continue;
            }
            let skip = self.next - k;
            match &chunk.piece {
                Piece::Data(d) => {
                    self.deliver(cx, chunk.ts, d.get(skip as usize..).unwrap_or_default(), 0)
                }
                Piece::Missing(m) => self.deliver(cx, chunk.ts, &[], m - skip),
            }
        }
        if removed {
            self.ooo_since = self.ooo.values().map(|c| c.ts).min();
        }
    }

    /// Declares the first hole a gap and delivers what follows it.
    fn skip_first_hole<S: StreamSink>(&mut self, cx: &mut Ctx<'_, S>) {
        if let Some(&k) = self.ooo.keys().next() {
            if k > self.next {
                cx.sink.gap(cx.side, cx.ts, k - self.next);
                self.next = k;
            }
        }
        self.drain(cx);
    }

    /// The peer acknowledged `ack`: holes below it were received, just not captured.
    fn acked<S: StreamSink>(&mut self, cx: &mut Ctx<'_, S>, ack: u32) {
        if !self.init {
            return;
        }
        let a = self.offset(ack);
        let next = self.next as i64;
        if a <= next || a - next > MAX_AHEAD {
            return;
        }
        let a = a as u64;
        while let Some(&k) = self.ooo.keys().next() {
            if k > a {
                break;
            }
            self.skip_first_hole(cx);
        }
        // Nothing buffered below the ACK: the hole runs to it (or to the FIN). A hole of exactly
        // one byte that only the ACK bounds is most likely the ACK of an uncaptured FIN.
        let (end, definite) = match self.fin {
            Some(f) if f <= a => (f, true),
            _ => (a, false),
        };
        if end > self.next && (definite || end - self.next >= 2) {
            cx.sink.gap(cx.side, cx.ts, end - self.next);
            self.next = end;
        }
        self.try_close(cx);
    }

    fn try_close<S: StreamSink>(&mut self, cx: &mut Ctx<'_, S>) {
        if !self.closed && self.fin.is_some_and(|f| self.next >= f) {
            self.closed = true;
            cx.sink.close(cx.side, cx.ts);
        }
    }

    /// Everything buffered goes out, holes as gaps, then the close if a FIN was seen.
    fn flush<S: StreamSink>(&mut self, cx: &mut Ctx<'_, S>) {
        while !self.ooo.is_empty() {
            self.skip_first_hole(cx);
        }
        if let Some(f) = self.fin {
            if f > self.next && !self.closed {
                cx.sink.gap(cx.side, cx.ts, f - self.next);
                self.next = f;
            }
        }
        self.try_close(cx);
    }

    fn clear(&mut self, total: &mut usize) {
        *total -= self.ooo_bytes;
        self.ooo_bytes = 0;
        self.ooo.clear();
        self.ooo_since = None;
    }
}

struct Flow<S> {
    key: FlowKey,
    id: u64,
    /// Side A's endpoint.
    a: Endpoint,
    dirs: [Dir; 2],
    /// `None` once ended: the flow is a tombstone.
    sink: Option<S>,
    last_seen: Nanos,
}

impl<S> Flow<S> {
    fn side_of(&self, src: &Endpoint) -> Side {
        if *src == self.a {
            Side::A
        } else {
            Side::B
        }
    }
}

fn idx(side: Side) -> usize {
    match side {
        Side::A => 0,
        Side::B => 1,
    }
}

/// The live TCP connections of a capture.
pub struct FlowTable<S> {
    config: TcpConfig,
    map: HashMap<FlowKey, u32, FxBuild>,
    slots: Vec<Option<Flow<S>>>,
    free: Vec<u32>,
    next_id: u64,
    buffered: usize,
    next_sweep: Nanos,
}

impl<S: StreamSink> FlowTable<S> {
    /// An empty table with these limits.
    pub fn new(config: TcpConfig) -> Self {
        FlowTable {
            config,
            map: HashMap::default(),
            slots: Vec::new(),
            free: Vec::new(),
            next_id: 0,
            buffered: 0,
            next_sweep: Nanos::MIN,
        }
    }

    /// Flows in the table, tombstones included.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when no flow (not even a tombstone) is tracked.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Out-of-order bytes buffered across all flows (with per-chunk overhead).
    pub fn buffered_bytes(&self) -> usize {
        self.buffered
    }

    /// Processes one segment. `make(id, a, b)` creates the sink of a new connection. Flows that end
    /// (this one, a reused 4-tuple, idle or evicted ones) are pushed to `ended`. Returns the flow
    /// the segment belongs to if it is still live.
    pub fn segment(
        &mut self,
        seg: &Segment<'_>,
        make: impl FnOnce(u64, SocketAddr, SocketAddr) -> S,
        ended: &mut Vec<Ended<S>>,
    ) -> Option<FlowHandle> {
        if seg.ts >= self.next_sweep {
            self.sweep(seg.ts, ended);
        }
        let key = FlowKey::new(seg.src, seg.dst);
        let syn_only = seg.flags & (SYN | ACK | RST) == SYN;
        let slot = match self.map.get(&key).copied() {
            Some(slot) => {
                let flow = self.slots.get(slot as usize)?.as_ref()?;
                let tomb = flow.sink.is_none();
                let restart = syn_only && {
                    let d = &flow.dirs[idx(flow.side_of(&seg.src))];
                    tomb || (d.init && (!d.syn || d.base != seg.seq.wrapping_add(1)))
                };
                if restart {
                    if !tomb {
                        self.end(slot, EndReason::Reused, seg.ts, ended);
                    }
                    self.remove(slot);
                    self.create(key, seg, make, ended)
                } else if tomb {
                    // Stray packets keep the tombstone alive: the rest of a connection that was
                    // ended early is ignored, not parsed from the middle.
                    if let Some(Some(f)) = self.slots.get_mut(slot as usize) {
                        f.last_seen = f.last_seen.max(seg.ts);
                    }
                    return None;
                } else {
                    slot
                }
            }
            None if seg.flags & RST != 0 => return None,
            None => self.create(key, seg, make, ended),
        };
        self.process(slot, seg, ended);
        if self.buffered > self.config.max_buffered_total {
            self.shrink();
        }
        match self.slots.get(slot as usize) {
            Some(Some(f)) if f.sink.is_some() => Some(FlowHandle(slot)),
            _ => None,
        }
    }

    /// The sink of a live flow.
    pub fn sink_mut(&mut self, h: FlowHandle) -> Option<&mut S> {
        self.slots.get_mut(h.0 as usize)?.as_mut()?.sink.as_mut()
    }

    /// The first-seen time of the earliest out-of-order data a flow holds back: data delivered
    /// later may start an exchange as early as this.
    pub fn buffered_since(&self, h: FlowHandle) -> Option<Nanos> {
        let f = self.slots.get(h.0 as usize)?.as_ref()?;
        match (f.dirs[0].ooo_since, f.dirs[1].ooo_since) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Calls `f` on every live flow's sink.
    pub fn for_each_sink(&self, mut f: impl FnMut(FlowHandle, &S)) {
        for (i, slot) in self.slots.iter().enumerate() {
            if let Some(Flow { sink: Some(s), .. }) = slot {
                f(FlowHandle(i as u32), s);
            }
        }
    }

    /// Ends a live flow now (the owner's memory cap), flushing what it buffered. Its later
    /// packets are ignored until it is idle or a new SYN reuses the 4-tuple.
    pub fn evict(&mut self, h: FlowHandle, ts: Nanos, ended: &mut Vec<Ended<S>>) {
        if matches!(self.slots.get(h.0 as usize), Some(Some(f)) if f.sink.is_some()) {
            self.end(h.0, EndReason::Evicted, ts, ended);
            self.tombstone(h.0);
        }
    }

    /// Ends every flow (the capture is over), in the order connections were first seen.
    pub fn finish_all(&mut self, ts: Nanos, ended: &mut Vec<Ended<S>>) {
        let mut live: Vec<(u64, u32)> = self
            .slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| match s {
                Some(f) if f.sink.is_some() => Some((f.id, i as u32)),
                _ => None,
            })
            .collect();
        live.sort_unstable();
        for (_, slot) in live {
            self.end(slot, EndReason::CaptureEnded, ts, ended);
        }
        self.map.clear();
        self.slots.clear();
        self.free.clear();
        self.buffered = 0;
    }

    fn create(
        &mut self,
        key: FlowKey,
        seg: &Segment<'_>,
        make: impl FnOnce(u64, SocketAddr, SocketAddr) -> S,
        ended: &mut Vec<Ended<S>>,
    ) -> u32 {
        if self.map.len() >= self.config.max_flows {
            self.make_room(seg.ts, ended);
        }
        // The connection's opener is side A: the SYN sender, or the receiver of a SYN-ACK.
        let (a, b) = if seg.flags & (SYN | ACK) == SYN | ACK {
            (seg.dst, seg.src)
        } else {
            (seg.src, seg.dst)
        };
        let id = self.next_id;
        self.next_id += 1;
        let sink = make(id, a.socket_addr(), b.socket_addr());
        let flow = Flow {
            key,
            id,
            a,
            dirs: [Dir::default(), Dir::default()],
            sink: Some(sink),
            last_seen: seg.ts,
        };
        let slot = match self.free.pop() {
            Some(s) => {
                if let Some(x) = self.slots.get_mut(s as usize) {
                    *x = Some(flow);
                }
                s
            }
            None => {
                self.slots.push(Some(flow));
                (self.slots.len() - 1) as u32
            }
        };
        self.map.insert(key, slot);
        slot
    }

    fn process(&mut self, slot: u32, seg: &Segment<'_>, ended: &mut Vec<Ended<S>>) {
        let max_dir = self.config.max_buffered_per_direction;
        let Some(Some(flow)) = self.slots.get_mut(slot as usize) else {
            return;
        };
        let side = flow.side_of(&seg.src);
        flow.last_seen = flow.last_seen.max(seg.ts);
        let Some(sink) = flow.sink.as_mut() else {
            return;
        };
        if seg.flags & RST != 0 {
            self.end(slot, EndReason::Reset(side), seg.ts, ended);
            self.tombstone(slot);
            return;
        }
        let want = sink.wants_data();
        let (d, p) = {
            let [x, y] = &mut flow.dirs;
            match side {
                Side::A => (x, y),
                Side::B => (y, x),
            }
        };
        let mut cx = Ctx {
            sink,
            side,
            ts: seg.ts,
            total: &mut self.buffered,
        };
        if !want && (d.ooo_bytes > 0 || p.ooo_bytes > 0) {
            d.clear(cx.total);
            p.clear(cx.total);
        }
        let syn = seg.flags & SYN != 0;
        let fin = seg.flags & FIN != 0;
        let len = seg.payload.len() as u64 + u64::from(seg.missing);
        if syn {
            // A SYN that reused the 4-tuple started a new flow above; here it opens a direction
            // not yet tracked (never resets one mid-delivery).
            if !d.init {
                d.init_at(seg.seq.wrapping_add(1), true);
            }
            if seg.flags & ACK != 0 && !p.init {
                p.init_at(seg.ack, true);
            }
        } else if !d.init && (len > 0 || fin) {
            d.init_at(seg.seq, false);
        }
        if d.init {
            // A SYN takes one sequence number before the data.
            let off = d.offset(seg.seq) + i64::from(syn);
            if want && len > 0 {
                d.accept(&mut cx, off, seg.payload, u64::from(seg.missing), max_dir);
            }
            if fin && d.fin.is_none() {
                if want {
                    let f = off + len as i64;
                    if f >= 0 {
                        d.fin = Some(f as u64);
                    }
                } else {
                    // Data is no longer tracked: the FIN closes the side at once.
                    d.fin = Some(d.next);
                }
            }
            d.try_close(&mut cx);
        }
        if seg.flags & ACK != 0 && want {
            p.acked(&mut cx.other(), seg.ack);
        }
        // Both sides must have delivered everything up to their FINs: a FIN seen ahead of data
        // still in flight (reordered) does not end the flow before that data arrives. A hole
        // that never fills is given up when the peer acknowledges the FIN, or at the end.
        let done = d.closed && p.closed;
        if done {
            self.end(slot, EndReason::Closed, seg.ts, ended);
            self.tombstone(slot);
        }
    }

    /// Flushes a live flow and hands its sink to `ended`; the slot keeps the flow's key.
    fn end(&mut self, slot: u32, reason: EndReason, ts: Nanos, ended: &mut Vec<Ended<S>>) {
        let Some(Some(flow)) = self.slots.get_mut(slot as usize) else {
            return;
        };
        let Some(mut sink) = flow.sink.take() else {
            return;
        };
        let ts = if reason == EndReason::Idle {
            flow.last_seen
        } else {
            ts
        };
        let [a, b] = &mut flow.dirs;
        let mut cx = Ctx {
            sink: &mut sink,
            side: Side::A,
            ts,
            total: &mut self.buffered,
        };
        if cx.sink.wants_data() {
            a.flush(&mut cx);
            b.flush(&mut cx.other());
        } else {
            a.try_close(&mut cx);
            b.try_close(&mut cx.other());
        }
        a.clear(cx.total);
        b.clear(cx.total);
        if let EndReason::Reset(side) = reason {
            let d = if side == Side::A { a } else { b };
            if !d.closed {
                d.closed = true;
                sink.close(side, ts);
            }
        }
        ended.push(Ended {
            id: flow.id,
            sink,
            ts,
            reason,
        });
    }

    fn tombstone(&mut self, slot: u32) {
        if let Some(Some(flow)) = self.slots.get_mut(slot as usize) {
            flow.dirs = [Dir::default(), Dir::default()];
        }
    }

    fn remove(&mut self, slot: u32) {
        if let Some(s) = self.slots.get_mut(slot as usize) {
            if let Some(flow) = s.take() {
                self.map.remove(&flow.key);
                self.free.push(slot);
            }
        }
    }

    /// Ends idle flows and forgets old tombstones; runs every few seconds of capture time.
    fn sweep(&mut self, now: Nanos, ended: &mut Vec<Ended<S>>) {
        self.next_sweep = now.saturating_add(10 * SECOND);
        for slot in 0..self.slots.len() as u32 {
            let Some(Some(f)) = self.slots.get(slot as usize) else {
                continue;
            };
            let limit = if f.sink.is_some() {
                self.config.idle_timeout
            } else {
                self.config.tombstone_time
            };
            if f.last_seen.saturating_add(limit) < now {
                self.end(slot, EndReason::Idle, now, ended);
                self.remove(slot);
            }
        }
    }

    /// At the flow cap: ends the least recently active sixteenth (tombstones first).
    fn make_room(&mut self, now: Nanos, ended: &mut Vec<Ended<S>>) {
        let mut ages: Vec<(Nanos, u32)> = self
            .slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| {
                s.as_ref().map(|f| {
                    let t = if f.sink.is_some() {
                        f.last_seen
                    } else {
                        Nanos::MIN
                    };
                    (t, i as u32)
                })
            })
            .collect();
        let n = (ages.len() / 16).max(1).min(ages.len());
        if n == 0 {
            return;
        }
        ages.select_nth_unstable(n - 1);
        ages.truncate(n);
        ages.sort_unstable();
        for &(_, slot) in &ages {
            self.end(slot, EndReason::Evicted, now, ended);
            self.remove(slot);
        }
    }

    /// Over the total buffer cap: the flows holding the most give up their holes as gaps.
    fn shrink(&mut self) {
        let mut big: Vec<(usize, u32)> = self
            .slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| {
                let f = s.as_ref()?;
                let b = f.dirs[0].ooo_bytes + f.dirs[1].ooo_bytes;
                (b > 0).then_some((b, i as u32))
            })
            .collect();
        big.sort_unstable_by_key(|&x| std::cmp::Reverse(x));
        let target = self.config.max_buffered_total / 2;
        for (_, slot) in big {
            if self.buffered <= target {
                break;
            }
            let Some(Some(flow)) = self.slots.get_mut(slot as usize) else {
                continue;
            };
            let ts = flow.last_seen;
            let [a, b] = &mut flow.dirs;
            match flow.sink.as_mut() {
                Some(sink) => {
                    let mut cx = Ctx {
                        sink,
                        side: Side::A,
                        ts,
                        total: &mut self.buffered,
                    };
                    while !a.ooo.is_empty() {
                        a.skip_first_hole(&mut cx);
                    }
                    a.try_close(&mut cx);
                    let mut cx = cx.other();
                    while !b.ooo.is_empty() {
                        b.skip_first_hole(&mut cx);
                    }
                    b.try_close(&mut cx);
                }
                None => {
                    a.clear(&mut self.buffered);
                    b.clear(&mut self.buffered);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// What a sink received, with adjacent data of one side merged.
    #[derive(Debug, Clone, PartialEq, Eq)]
    enum Ev {
        Data(Side, Vec<u8>),
        Gap(Side, u64),
        Close(Side),
    }

    #[derive(Default)]
    struct Rec {
        id: u64,
        a: Option<SocketAddr>,
        events: Vec<Ev>,
        ignore: bool,
        /// The time of every data delivery, with its first byte.
        stamps: Vec<(Side, Nanos, u8)>,
    }

    impl StreamSink for Rec {
        fn data(&mut self, side: Side, ts: Nanos, bytes: &[u8]) {
            assert!(!bytes.is_empty(), "empty data delivered");
            self.stamps.push((side, ts, bytes[0]));
            if let Some(Ev::Data(s, v)) = self.events.last_mut() {
                if *s == side {
                    v.extend_from_slice(bytes);
                    return;
                }
            }
            self.events.push(Ev::Data(side, bytes.to_vec()));
        }
        fn gap(&mut self, side: Side, _ts: Nanos, len: u64) {
            assert!(len > 0, "empty gap delivered");
            self.events.push(Ev::Gap(side, len));
        }
        fn close(&mut self, side: Side, _ts: Nanos) {
            assert!(
                !self.events.contains(&Ev::Close(side)),
                "closed {side:?} twice"
            );
            self.events.push(Ev::Close(side));
        }
        fn wants_data(&self) -> bool {
            !self.ignore
        }
    }

    impl Rec {
        /// Everything one side sent, gaps as `#` per byte.
        fn stream(&self, side: Side) -> Vec<u8> {
            let mut out = Vec::new();
            for e in &self.events {
                match e {
                    Ev::Data(s, d) if *s == side => out.extend_from_slice(d),
                    Ev::Gap(s, n) if *s == side => {
                        out.extend(std::iter::repeat_n(b'#', *n as usize))
                    }
                    _ => {}
                }
            }
            out
        }
        fn gaps(&self) -> Vec<(Side, u64)> {
            self.events
                .iter()
                .filter_map(|e| match e {
                    Ev::Gap(s, n) => Some((*s, *n)),
                    _ => None,
                })
                .collect()
        }
        fn closed(&self, side: Side) -> bool {
            self.events.contains(&Ev::Close(side))
        }
    }

    const CLIENT: ([u8; 4], u16) = ([10, 0, 0, 1], 40000);
    const SERVER: ([u8; 4], u16) = ([10, 0, 0, 2], 80);

    /// A table with one client and one server, and what ended.
    struct H {
        t: FlowTable<Rec>,
        ended: Vec<Ended<Rec>>,
        ts: Nanos,
        client_port: u16,
    }

    #[derive(Clone, Copy, PartialEq, Eq, Debug)]
    enum Who {
        C,
        S,
    }
    use Who::{C, S};

    impl H {
        fn new() -> Self {
            Self::with(TcpConfig::default())
        }
        fn with(config: TcpConfig) -> Self {
            H {
                t: FlowTable::new(config),
                ended: Vec::new(),
                ts: 1_000 * SECOND,
                client_port: CLIENT.1,
            }
        }
        fn send(&mut self, who: Who, seq: u32, ack: u32, flags: u8, payload: &[u8]) {
            self.send_m(who, seq, ack, flags, payload, 0);
        }
        fn send_m(
            &mut self,
            who: Who,
            seq: u32,
            ack: u32,
            flags: u8,
            payload: &[u8],
            missing: u32,
        ) {
            self.ts += 1_000_000;
            let c = Endpoint::v4(CLIENT.0, self.client_port);
            let s = Endpoint::v4(SERVER.0, SERVER.1);
            let (src, dst) = if who == C { (c, s) } else { (s, c) };
            let seg = Segment {
                ts: self.ts,
                src,
                dst,
                seq,
                ack,
                flags,
                payload,
                missing,
            };
            self.t.segment(
                &seg,
                |id, a, _b| Rec {
                    id,
                    a: Some(a),
                    ..Rec::default()
                },
                &mut self.ended,
            );
        }
        fn handshake(&mut self, cisn: u32, sisn: u32) {
            self.send(C, cisn, 0, SYN, b"");
            self.send(S, sisn, cisn.wrapping_add(1), SYN | ACK, b"");
            self.send(C, cisn.wrapping_add(1), sisn.wrapping_add(1), ACK, b"");
        }
        /// Ends everything and returns the sinks in connection order.
        fn done(mut self) -> Vec<Rec> {
            let ts = self.ts;
            self.t.finish_all(ts, &mut self.ended);
            let mut v: Vec<Ended<Rec>> = self.ended;
            v.sort_by_key(|e| e.id);
            v.into_iter().map(|e| e.sink).collect()
        }
        fn one(self) -> Rec {
            let mut v = self.done();
            assert_eq!(v.len(), 1, "expected one connection");
            v.remove(0)
        }
    }

    #[test]
    fn in_order_both_directions() {
        let mut h = H::new();
        h.handshake(100, 5000);
        h.send(C, 101, 5001, ACK | PSH, b"GET / HTTP/1.1\r\n\r\n");
        h.send(S, 5001, 119, ACK | PSH, b"HTTP/1.1 200 OK\r\n");
        h.send(S, 5018, 119, ACK | PSH, b"Content-Length: 0\r\n\r\n");
        let r = h.one();
        assert_eq!(r.stream(Side::A), b"GET / HTTP/1.1\r\n\r\n");
        assert_eq!(
            r.stream(Side::B),
            b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
        );
        assert!(r.gaps().is_empty());
        assert_eq!(r.a, Some("10.0.0.1:40000".parse().unwrap()));
    }

    #[test]
    fn out_of_order_is_buffered_then_delivered() {
        let mut h = H::new();
        h.handshake(0, 0);
        h.send(C, 1, 1, ACK, b"aaaa");
        h.send(C, 9, 1, ACK, b"cccc");
        h.send(C, 13, 1, ACK, b"dddd");
        assert_eq!(h.t.buffered_bytes(), 2 * (4 + CHUNK_OVERHEAD));
        h.send(C, 5, 1, ACK, b"bbbb");
        assert_eq!(h.t.buffered_bytes(), 0);
        let r = h.one();
        assert_eq!(r.stream(Side::A), b"aaaabbbbccccdddd");
        assert!(r.gaps().is_empty());
    }

    #[test]
    fn retransmissions_and_keepalives_are_dropped() {
        let mut h = H::new();
        h.handshake(0, 0);
        h.send(C, 1, 1, ACK, b"hello");
        h.send(C, 1, 1, ACK, b"hello");
        h.send(C, 5, 1, ACK, b"o"); // keep-alive probe: one old byte
        h.send(C, 5, 1, ACK, b""); // zero-length probe
        h.send(C, 6, 1, ACK, b" world");
        h.send(C, 1, 1, ACK, b"hello world");
        let r = h.one();
        assert_eq!(r.stream(Side::A), b"hello world");
    }

    #[test]
    fn overlap_keeps_the_first_copy_in_order_then_ahead() {
        // The buffered (first) copy wins over a later in-order segment that overlaps it.
        let mut h = H::new();
        h.handshake(0, 0);
        h.send(C, 5, 1, ACK, b"XXXX"); // offsets 4..8, first copy
        h.send(C, 1, 1, ACK, b"abcdyyyyefgh"); // offsets 0..12 overlapping it
        let r = h.one();
        assert_eq!(r.stream(Side::A), b"abcdXXXXefgh");
    }

    #[test]
    fn overlap_keeps_the_first_copy_behind() {
        // A later segment that starts inside delivered data only contributes its new tail.
        let mut h = H::new();
        h.handshake(0, 0);
        h.send(C, 1, 1, ACK, b"abcdef");
        h.send(C, 4, 1, ACK, b"ZZZghi");
        // And between two buffered chunks.
        h.send(C, 13, 1, ACK, b"mn");
        h.send(C, 17, 1, ACK, b"qr");
        h.send(C, 12, 1, ACK, b"lMNopQRs");
        h.send(C, 10, 1, ACK, b"jk");
        let r = h.one();
        assert_eq!(r.stream(Side::A), b"abcdefghijklmnopqrs");
    }

    #[test]
    fn wraparound_at_2_pow_32() {
        let mut h = H::new();
        let isn = u32::MAX - 5;
        h.handshake(isn, 7);
        // Offsets 0..10 straddle the wrap.
        h.send(C, isn.wrapping_add(1), 8, ACK, b"01234");
        h.send(C, isn.wrapping_add(11), 8, ACK, b"abcde"); // out of order, after the wrap
        h.send(C, isn.wrapping_add(6), 8, ACK, b"56789");
        h.send(C, isn.wrapping_add(3), 8, ACK, b"234"); // retransmission across the wrap
        let r = h.one();
        assert_eq!(r.stream(Side::A), b"0123456789abcde");
        assert!(r.gaps().is_empty());
    }

    #[test]
    fn offsets_stay_right_across_many_wraps() {
        // Offsets are u64: after more than 3 x 2^32 bytes (mostly declared gaps), data still lands
        // at the right place.
        let mut h = H::new();
        h.handshake(0xfff0_0000, 1);
        let mut seq = 0xfff0_0001u32;
        let jump: u32 = (1 << 30) - 10;
        for _ in 0..14 {
            h.send(C, seq, 2, ACK, b"abc");
            h.send(C, seq.wrapping_add(6), 2, ACK, b"ghi"); // out of order
            h.send(C, seq.wrapping_add(3), 2, ACK, b"def");
            seq = seq.wrapping_add(9).wrapping_add(jump);
            h.send(S, 2, seq, ACK, b""); // the server got `jump` bytes we did not
        }
        let r = h.one();
        let gaps = r.gaps();
        assert_eq!(gaps.len(), 14);
        assert!(gaps
            .iter()
            .all(|&(s, n)| s == Side::A && n == u64::from(jump)));
        let data: Vec<u8> = r
            .events
            .iter()
            .filter_map(|e| match e {
                Ev::Data(_, d) => Some(d.clone()),
                _ => None,
            })
            .collect::<Vec<_>>()
            .concat();
        assert_eq!(data, b"abcdefghi".repeat(14));
    }

    #[test]
    fn mid_connection_start() {
        let mut h = H::new();
        // No handshake: the first packet seen is the server's response, then the client's next request.
        h.send(S, 900_000, 4_000, ACK, b"HTTP/1.1 200 OK\r\n\r\n");
        h.send(C, 4_000, 900_019, ACK, b"GET /next HTTP/1.1\r\n\r\n");
        h.send(S, 900_019, 4_022, ACK, b"more");
        let r = h.one();
        // Side A is the first sender seen.
        assert_eq!(r.a, Some("10.0.0.2:80".parse().unwrap()));
        assert_eq!(r.stream(Side::A), b"HTTP/1.1 200 OK\r\n\r\nmore");
        assert_eq!(r.stream(Side::B), b"GET /next HTTP/1.1\r\n\r\n");
        assert!(r.gaps().is_empty());
    }

    #[test]
    fn first_packet_syn_ack_makes_the_receiver_side_a() {
        let mut h = H::new();
        h.send(S, 50, 11, SYN | ACK, b"");
        h.send(C, 11, 51, ACK, b"hi");
        let r = h.one();
        assert_eq!(r.a, Some("10.0.0.1:40000".parse().unwrap()));
        assert_eq!(r.stream(Side::A), b"hi");
    }

    #[test]
    fn one_sided_capture_with_a_hole_gaps_at_the_end() {
        let mut h = H::new();
        h.send(C, 1000, 1, ACK, b"aaaa");
        h.send(C, 1008, 1, ACK, b"cccc");
        h.send(C, 1012, 1, ACK | FIN, b"dd");
        let r = h.one();
        assert_eq!(r.stream(Side::A), b"aaaa####ccccdd");
        assert_eq!(r.gaps(), vec![(Side::A, 4)]);
        assert!(r.closed(Side::A));
        assert!(!r.closed(Side::B));
    }

    #[test]
    fn ack_beyond_a_hole_is_a_gap() {
        let mut h = H::new();
        h.handshake(0, 0);
        h.send(S, 1, 1, ACK, b"aaaa");
        h.send(S, 9, 1, ACK, b"cccc"); // bytes 4..8 never captured
        h.send(C, 1, 13, ACK, b""); // the client has them all
                                    // Delivered at once, before the connection ends.
        let r = &h.t.sink_mut(FlowHandle(0)).unwrap().events;
        assert_eq!(
            r,
            &vec![
                Ev::Data(Side::B, b"aaaa".to_vec()),
                Ev::Gap(Side::B, 4),
                Ev::Data(Side::B, b"cccc".to_vec())
            ]
        );
        // A later retransmission of the hole changes nothing.
        h.send(S, 5, 1, ACK, b"bbbb");
        let r = h.one();
        assert_eq!(r.stream(Side::B), b"aaaa####cccc");
    }

    #[test]
    fn ack_beyond_everything_captured_is_a_gap() {
        let mut h = H::new();
        h.handshake(0, 0);
        h.send(S, 1, 1, ACK, b"aaaa");
        // The client acknowledges 100 bytes after "aaaa" that were never captured: the gap is
        // known at the ACK, before any later data arrives.
        h.send(C, 1, 105, ACK, b"");
        let ev = &h.t.sink_mut(FlowHandle(0)).unwrap().events;
        assert_eq!(ev.last(), Some(&Ev::Gap(Side::B, 100)));
        h.send(S, 105, 1, ACK, b"zz");
        let r = h.one();
        assert_eq!(r.gaps(), vec![(Side::B, 100)]);
        assert_eq!(r.stream(Side::B).len(), 106);
    }

    #[test]
    fn ack_of_an_uncaptured_fin_is_not_a_gap() {
        let mut h = H::new();
        h.handshake(0, 0);
        h.send(S, 1, 1, ACK, b"aaaa");
        h.send(C, 1, 6, ACK, b""); // acks 4 bytes + a FIN we did not see
        let r = h.one();
        assert!(r.gaps().is_empty());
        assert_eq!(r.stream(Side::B), b"aaaa");
    }

    #[test]
    fn gap_via_buffer_cap() {
        let mut h = H::with(TcpConfig {
            max_buffered_per_direction: 3 * (1000 + CHUNK_OVERHEAD),
            ..TcpConfig::default()
        });
        h.handshake(0, 0);
        let k = [b'k'; 1000];
        h.send(C, 1, 1, ACK, b"start");
        // Offsets 5..105 are lost; four 1000-byte chunks follow.
        for i in 0..4u32 {
            h.send(C, 106 + i * 1000, 1, ACK, &k);
        }
        // The fourth pushed the buffer over its cap: the hole was given up and all four delivered.
        assert_eq!(h.t.buffered_bytes(), 0);
        let ev = &h.t.sink_mut(FlowHandle(0)).unwrap().events;
        assert_eq!(ev.get(1), Some(&Ev::Gap(Side::A, 100)));
        let r = h.one();
        assert_eq!(r.stream(Side::A).len(), 5 + 100 + 4000);
    }

    #[test]
    fn total_buffer_cap_across_flows() {
        let mut h = H::with(TcpConfig {
            max_buffered_total: 10 * (100 + CHUNK_OVERHEAD),
            ..TcpConfig::default()
        });
        for port in 0..20u16 {
            h.client_port = 1000 + port;
            h.handshake(0, 0);
            h.send(C, 50, 1, ACK, &[b'x'; 100]);
            assert!(h.t.buffered_bytes() <= 10 * (100 + CHUNK_OVERHEAD));
        }
        let v = h.done();
        assert_eq!(v.len(), 20);
        for r in &v {
            assert_eq!(r.gaps(), vec![(Side::A, 49)]);
        }
    }

    #[test]
    fn fin_closes_and_both_fins_end_the_flow() {
        let mut h = H::new();
        h.handshake(0, 0);
        h.send(C, 1, 1, ACK, b"req");
        h.send(S, 1, 4, ACK | FIN, b"resp");
        assert!(h.ended.is_empty());
        h.send(C, 4, 6, ACK | FIN, b"");
        assert_eq!(h.ended.len(), 1);
        assert_eq!(h.ended[0].reason, EndReason::Closed);
        // The last ACK and a retransmitted FIN go to the tombstone.
        h.send(S, 6, 5, ACK, b"");
        h.send(S, 1, 4, ACK | FIN, b"resp");
        let v = h.done();
        assert_eq!(v.len(), 1);
        let r = &v[0];
        assert_eq!(
            r.events,
            vec![
                Ev::Data(Side::A, b"req".to_vec()),
                Ev::Data(Side::B, b"resp".to_vec()),
                Ev::Close(Side::B),
                Ev::Close(Side::A),
            ]
        );
    }

    #[test]
    fn both_fins_wait_for_data_reordered_behind_them() {
        // Found by tests/reassembly_props.rs: the client half-closed with its request, the
        // server's FIN overtook its response, and the flow ended at the second FIN, so the
        // response became a gap and the late segment went to the tombstone.
        let mut h = H::new();
        h.handshake(0, 0);
        h.send(C, 1, 1, ACK | FIN, b"req");
        h.send(S, 5, 5, ACK | FIN, b""); // the FIN after "resp", seen first
        assert!(h.ended.is_empty(), "ended with server bytes in flight");
        h.send(S, 1, 5, ACK, b"resp");
        assert_eq!(h.ended.len(), 1);
        assert_eq!(h.ended[0].reason, EndReason::Closed);
        let r = h.one();
        assert_eq!(r.stream(Side::B), b"resp");
        assert!(r.gaps().is_empty());
        assert!(r.closed(Side::A) && r.closed(Side::B));
    }

    #[test]
    fn both_fins_with_a_hole_end_when_the_fin_is_acked() {
        let mut h = H::new();
        h.handshake(0, 0);
        h.send(C, 1, 1, ACK | FIN, b"req");
        h.send(S, 5, 5, ACK | FIN, b""); // "resp" before it is never captured
        assert!(h.ended.is_empty());
        h.send(C, 5, 6, ACK, b""); // the client acknowledges the FIN: it had it all
        assert_eq!(h.ended.len(), 1);
        assert_eq!(h.ended[0].reason, EndReason::Closed);
        let r = h.one();
        assert_eq!(r.gaps(), vec![(Side::B, 4)]);
        assert!(r.closed(Side::B));
    }

    #[test]
    fn fin_out_of_order_waits_for_the_data() {
        let mut h = H::new();
        h.handshake(0, 0);
        h.send(S, 5, 1, ACK | FIN, b"efgh");
        h.send(S, 1, 1, ACK, b"abcd");
        let ev = &h.t.sink_mut(FlowHandle(0)).unwrap().events;
        assert_eq!(
            ev,
            &vec![Ev::Data(Side::B, b"abcdefgh".to_vec()), Ev::Close(Side::B)]
        );
    }

    #[test]
    fn rst_ends_the_flow() {
        let mut h = H::new();
        h.handshake(0, 0);
        h.send(C, 1, 1, ACK, b"GET");
        h.send(S, 1, 4, ACK, b"resp");
        h.send(C, 9, 1, ACK, b"late"); // out of order, flushed at the RST
        h.send(S, 5, 4, RST | ACK, b"");
        assert_eq!(h.ended.len(), 1);
        assert_eq!(h.ended[0].reason, EndReason::Reset(Side::B));
        h.send(C, 4, 5, ACK, b"more"); // swallowed by the tombstone
        let v = h.done();
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].stream(Side::A), b"GET#####late");
        assert!(v[0].closed(Side::B));
        assert!(!v[0].closed(Side::A));
    }

    #[test]
    fn port_reuse_after_close_is_a_new_connection() {
        let mut h = H::new();
        h.handshake(100, 200);
        h.send(C, 101, 201, ACK, b"one");
        h.send(C, 104, 201, ACK | FIN, b"");
        h.send(S, 201, 105, ACK | FIN, b"");
        h.send(C, 105, 202, ACK, b"");
        // Same 4-tuple, new SYN.
        h.handshake(9000, 7000);
        h.send(C, 9001, 7001, ACK, b"two");
        let v = h.done();
        assert_eq!(v.len(), 2);
        assert_eq!((v[0].id, v[1].id), (0, 1));
        assert_eq!(v[0].stream(Side::A), b"one");
        assert_eq!(v[1].stream(Side::A), b"two");
    }

    #[test]
    fn port_reuse_without_close_and_syn_retransmission() {
        let mut h = H::new();
        h.handshake(100, 200);
        h.send(C, 100, 0, SYN, b""); // retransmitted SYN: same connection
        h.send(C, 101, 201, ACK, b"one");
        h.send(C, 5000, 0, SYN, b""); // a new ISN: the old connection is gone
        assert_eq!(h.ended.len(), 1);
        assert_eq!(h.ended[0].reason, EndReason::Reused);
        h.send(S, 800, 5001, SYN | ACK, b"");
        h.send(C, 5001, 801, ACK, b"two");
        let v = h.done();
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].stream(Side::A), b"one");
        assert_eq!(v[1].stream(Side::A), b"two");
    }

    #[test]
    fn idle_flows_are_ended_and_ids_follow_first_sight() {
        let mut h = H::new();
        h.handshake(0, 0);
        h.send(C, 1, 1, ACK, b"x");
        h.client_port = 2;
        h.handshake(0, 0);
        h.ts += 301 * SECOND;
        h.client_port = 3;
        h.handshake(0, 0);
        let mut idle: Vec<u64> = h
            .ended
            .iter()
            .filter(|e| e.reason == EndReason::Idle)
            .map(|e| e.id)
            .collect();
        idle.sort();
        assert_eq!(idle, vec![0, 1]);
        assert_eq!(h.t.len(), 1);
    }

    #[test]
    fn flow_cap_evicts_the_least_recent() {
        let mut h = H::with(TcpConfig {
            max_flows: 32,
            ..TcpConfig::default()
        });
        for p in 0..100u16 {
            h.client_port = 1000 + p;
            h.send(C, 1, 1, ACK, b"x");
        }
        assert!(h.t.len() <= 32);
        let evicted: Vec<u64> = h.ended.iter().map(|e| e.id).collect();
        // The oldest go first.
        assert_eq!(evicted.first(), Some(&0));
        assert!(evicted.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn snaplen_cut_is_a_gap_in_place() {
        let mut h = H::new();
        h.handshake(0, 0);
        h.send_m(S, 1, 1, ACK, b"HTTP", 6);
        h.send_m(S, 21, 1, ACK, b"late", 0); // ahead of a hole
        h.send_m(S, 11, 1, ACK, b"01", 8); // fills the hole, partly cut
        let r = h.one();
        assert_eq!(r.stream(Side::B), b"HTTP######01########late");
    }

    #[test]
    fn ignored_flows_stop_buffering_but_still_close() {
        let mut h = H::new();
        h.handshake(0, 0);
        h.send(C, 1, 1, ACK, b"\x16\x03\x01");
        h.send(C, 10, 1, ACK, b"ahead");
        h.t.sink_mut(FlowHandle(0)).unwrap().ignore = true;
        h.send(C, 4, 1, ACK, b"more");
        assert_eq!(h.t.buffered_bytes(), 0);
        h.send(C, 20, 1, ACK | FIN, b"");
        h.send(S, 1, 21, ACK | FIN, b"");
        assert_eq!(h.ended.len(), 1);
        let r = &h.ended[0].sink;
        assert_eq!(r.stream(Side::A), b"\x16\x03\x01");
        assert!(r.closed(Side::A) && r.closed(Side::B));
    }

    #[test]
    fn evicted_flows_ignore_the_rest_of_the_connection() {
        let mut h = H::new();
        h.handshake(0, 0);
        h.send(C, 1, 1, ACK, b"abc");
        h.t.evict(FlowHandle(0), h.ts, &mut h.ended);
        assert_eq!(h.ended.len(), 1);
        assert_eq!(h.ended[0].reason, EndReason::Evicted);
        // Minutes of further traffic: still the tombstone, no new connection.
        for i in 0..200u32 {
            h.ts += SECOND;
            h.send(C, 4 + i, 1, ACK, b"d");
        }
        assert_eq!(h.t.len(), 1);
        let v = h.done();
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].stream(Side::A), b"abc");
    }

    #[test]
    fn reordered_bytes_are_dated_no_later_than_later_bytes() {
        // Found by tests/reassembly_props.rs: the second of two pipelined requests was seen
        // first, delivered with its (earlier) time after the first one with its own, so the
        // second request seemed to start first and the exchanges came out in the wrong order.
        let mut h = H::new();
        h.handshake(0, 0);
        let t0 = h.ts;
        h.send(C, 5, 1, ACK, b"efgh"); // t0 + 1 ms
        h.send(C, 9, 1, ACK, b"ijkl"); // t0 + 2 ms
        h.send(C, 13, 1, ACK, b"mn"); // t0 + 3 ms
        h.send(C, 1, 1, ACK, b"abcd"); // t0 + 4 ms, fills the hole
        let ms = 1_000_000;
        let r = h.one();
        assert_eq!(r.stream(Side::A), b"abcdefghijklmn");
        // "abcd" was sent before "efgh", which was seen at t0 + 1 ms.
        assert_eq!(
            r.stamps,
            vec![
                (Side::A, t0 + ms, b'a'),
                (Side::A, t0 + ms, b'e'),
                (Side::A, t0 + 2 * ms, b'i'),
                (Side::A, t0 + 3 * ms, b'm'),
            ]
        );
    }

    #[test]
    fn buffered_bytes_seen_late_date_the_earlier_ones() {
        // A later chunk seen before an earlier one (both buffered behind a hole): the earlier
        // bytes take the later chunk's time, so delivery times never go back.
        let mut h = H::new();
        h.handshake(0, 0);
        let t0 = h.ts;
        h.send(C, 9, 1, ACK, b"ijkl"); // t0 + 1 ms
        h.send(C, 5, 1, ACK, b"efgh"); // t0 + 2 ms
        h.send(C, 1, 1, ACK, b"abcd"); // t0 + 3 ms
        let ms = 1_000_000;
        let r = h.one();
        assert_eq!(r.stream(Side::A), b"abcdefghijkl");
        let times: Vec<Nanos> = r.stamps.iter().map(|s| s.1).collect();
        assert_eq!(times, vec![t0 + ms; 3]);
    }

    #[test]
    fn data_after_fin_is_ignored() {
        let mut h = H::new();
        h.handshake(0, 0);
        h.send(C, 1, 1, ACK | FIN, b"abc");
        h.send(C, 1, 1, ACK, b"abcdef");
        let r = h.one();
        assert_eq!(r.stream(Side::A), b"abc");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        /// Each side's stream, cut into random segments, shuffled within a window, with duplicates
        /// and overlapping retransmissions, arrives whole and in order.
        #[test]
        fn shuffled_segments_reassemble_exactly(
            a in proptest::collection::vec(any::<u8>(), 0..3000),
            b in proptest::collection::vec(any::<u8>(), 0..3000),
            cuts in proptest::collection::vec(1usize..300, 1..64),
            isn_a in any::<u32>(),
            isn_b in any::<u32>(),
            swaps in proptest::collection::vec((0usize..1000, 0usize..6), 0..200),
            dups in proptest::collection::vec((0usize..1000, 0usize..50, 1usize..400), 0..30),
        ) {
            // Segments: (who, seq offset, len).
            let mut segs: Vec<(Who, usize, usize)> = Vec::new();
            for (who, data) in [(C, &a), (S, &b)] {
                let mut pos = 0;
                let mut i = 0;
                while pos < data.len() {
                    let n = cuts[i % cuts.len()].min(data.len() - pos);
                    segs.push((who, pos, n));
                    pos += n;
                    i += 1;
                }
            }
            // Interleave the sides deterministically, then shuffle within a window of 6.
            segs.sort_by_key(|&(w, off, _)| (off, w == S));
            for (dup_at, back, len) in dups {
                if segs.is_empty() { break; }
                let i = dup_at % segs.len();
                let (w, off, _) = segs[i];
                let total = if w == C { a.len() } else { b.len() };
                let start = off.saturating_sub(back);
                let l = len.min(total - start);
                if l > 0 { segs.insert((i + 1).min(segs.len()), (w, start, l)); }
            }
            let n = segs.len();
            for (i, d) in swaps {
                if n > 1 {
                    let i = i % n;
                    let j = (i + d).min(n - 1);
                    segs.swap(i, j);
                }
            }
            let mut h = H::new();
            h.handshake(isn_a, isn_b);
            for (w, off, len) in segs {
                let (isn, data) = if w == C { (isn_a, &a) } else { (isn_b, &b) };
                let seq = isn.wrapping_add(1).wrapping_add(off as u32);
                // No ACKs: reordering in flight must not look like loss.
                h.send(w, seq, 0, PSH, &data[off..off + len]);
            }
            let r = h.one();
            prop_assert_eq!(r.gaps(), vec![]);
            prop_assert_eq!(r.stream(Side::A), a);
            prop_assert_eq!(r.stream(Side::B), b);
        }
    }
}
