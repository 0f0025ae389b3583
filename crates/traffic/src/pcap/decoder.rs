//! Packets to exchanges: link decoding, TCP reassembly, HTTP/1.x parsing and time ordering, one
//! packet at a time, for a file ([`super::PcapReader`]) or a live capture alike.

use std::collections::BTreeSet;
use std::net::SocketAddr;

use crate::http1::{Conversation, Protocol, Side};
use crate::model::{Exchange, Nanos};
use crate::order::TimeOrder;
use crate::source::ReadReport;
use crate::tcp::{Ended, FlowHandle, FlowTable, StreamSink, TcpConfig};

use super::link::{self, Skip};

/// Exchanges held for ordering past these limits are released early (slightly out of order)
/// rather than letting one stalled connection hold the whole capture in memory.
const MAX_HELD: usize = 100_000;
const MAX_HELD_BYTES: usize = 64 << 20;
/// Bytes all conversations may buffer (partial messages); past it the largest are ended early.
const MAX_CONVERSATION_BYTES: usize = 128 << 20;
/// Backward time steps up to this size (interfaces merged with jitter) make the watermark lag by
/// as much; larger ones are taken for broken clocks and not accommodated.
const MAX_SLACK: Nanos = 10_000_000_000;

/// The HTTP side of one TCP connection. The conversation is created with the first payload, so
/// connections that never carry any (scans, handshakes only) cost no parser.
struct ConvSink {
    id: u64,
    a: SocketAddr,
    b: SocketAddr,
    conv: Option<Conversation>,
    /// This connection's key in the decoder's set of bounds.
    bound: Option<Nanos>,
    /// What `conv.buffered()` last said.
    buffered: usize,
    /// The time of the connection's latest packet, for [`PacketDecoder::evict_idle`].
    last_seen: Nanos,
}

impl ConvSink {
    fn conv(&mut self) -> &mut Conversation {
        let (id, a, b) = (self.id, self.a, self.b);
        self.conv.get_or_insert_with(|| Conversation::new(id, a, b))
    }
}

impl StreamSink for ConvSink {
    #[inline]
    fn data(&mut self, side: Side, ts: Nanos, bytes: &[u8]) {
        self.conv().data(side, ts, bytes);
    }

    fn gap(&mut self, side: Side, ts: Nanos, len: u64) {
        self.conv().gap(side, ts, len);
    }

    fn close(&mut self, side: Side, ts: Nanos) {
        if let Some(c) = self.conv.as_mut() {
            c.close(side, ts);
        }
    }

    #[inline]
    fn wants_data(&self) -> bool {
        self.conv
            .as_ref()
            .is_none_or(|c| matches!(c.protocol(), Protocol::Unknown | Protocol::Http1))
    }
}

/// Turns captured link-layer frames into HTTP exchanges, one packet at a time, with bounded
/// memory: the engine behind [`super::PcapReader`], and what a live capture feeds.
///
/// Call [`push`](Self::push) for every frame, take what is ready with
/// [`pop_ready`](Self::pop_ready), and at the end call [`finish`](Self::finish), after which
/// `pop_ready` yields everything still held (connections still open come out marked
/// `capture_ended` or `no_response`).
///
/// Exchanges come out in request-start order: a finished exchange waits until no open
/// connection can still produce an earlier one. A live capture, which cannot wait for a stalled
/// connection for ever, sets [`with_hold_limit`](Self::with_hold_limit) and moves the clock with
/// [`advance`](Self::advance) when no packets come.
pub struct PacketDecoder {
    /// One bit per port when only some ports are parsed.
    ports: Option<Box<[u64; 1024]>>,
    flows: FlowTable<ConvSink>,
    ended: Vec<Ended<ConvSink>>,
    order: TimeOrder,
    held_bytes: usize,
    scratch: Vec<Exchange>,
    /// (bound, connection id) of every connection that may still emit an exchange.
    bounds: BTreeSet<(Nanos, u64)>,
    conv_bytes: usize,
    report: ReadReport,
    skips: [u64; Skip::ALL.len()],
    port_filtered: u64,
    /// The latest packet time seen (or clock time given to `advance`).
    now: Nanos,
    /// The largest (plausible) step back in time seen between consecutive packets.
    slack: Nanos,
    /// Exchanges that started this long before `now` are released whatever still waits.
    hold_limit: Option<Nanos>,
    /// [`finish`](Self::finish) was called: everything held may go.
    finished: bool,
}

impl PacketDecoder {
    /// A decoder that parses TCP connections with one of `ports` on either side, or any
    /// connection when `ports` is empty (HTTP is then recognised by its first bytes).
    pub fn new(ports: &[u16]) -> Self {
        let ports = (!ports.is_empty()).then(|| {
            let mut bits = Box::new([0u64; 1024]);
            for &p in ports {
                if let Some(w) = bits.get_mut(usize::from(p / 64)) {
                    *w |= 1 << (p % 64);
                }
            }
            bits
        });
        PacketDecoder {
            ports,
            flows: FlowTable::new(TcpConfig::default()),
            ended: Vec::new(),
            order: TimeOrder::new(),
            held_bytes: 0,
            scratch: Vec::new(),
            bounds: BTreeSet::new(),
            conv_bytes: 0,
            report: ReadReport::default(),
            skips: [0; Skip::ALL.len()],
            port_filtered: 0,
            now: Nanos::MIN,
            slack: 0,
            hold_limit: None,
            finished: false,
        }
    }

    /// Releases a finished exchange at the latest `limit` after it started (by the packet clock
    /// or [`advance`](Self::advance)), even if an earlier one may still come from a connection
    /// that stalled: output then stays timely at the price of slight disorder. Files need no
    /// limit; a live capture does.
    pub fn with_hold_limit(mut self, limit: std::time::Duration) -> Self {
        self.hold_limit = Some(Nanos::try_from(limit.as_nanos()).unwrap_or(Nanos::MAX));
        self
    }

    /// Processes one captured frame: `linktype` is the pcap LINKTYPE_ value, `ts` the capture
    /// time in nanoseconds since the Unix epoch, `frame` the captured bytes and `origlen` the
    /// frame's length on the wire. Returns true when the frame was a TCP segment that was
    /// processed (false: skipped and counted, or filtered by port).
    pub fn push(&mut self, linktype: u32, ts: Nanos, frame: &[u8], origlen: u32) -> bool {
        if ts < self.now {
            let back = self.now.saturating_sub(ts);
            if back <= MAX_SLACK {
                self.slack = self.slack.max(back);
            }
        } else {
            self.now = ts;
        }
        let mut seg = match link::decode(linktype, frame, origlen) {
            Ok(t) => t,
            Err(skip) => {
                if let Some(n) = self.skips.get_mut(skip as usize) {
                    *n += 1;
                }
                return false;
            }
        };
        if let Some(bits) = &self.ports {
            if !port_set(bits, seg.src.port) && !port_set(bits, seg.dst.port) {
                self.port_filtered += 1;
                return false;
            }
        }
        seg.ts = ts;
        let make = |id, a, b| ConvSink {
            id,
            a,
            b,
            conv: None,
            bound: None,
            buffered: 0,
            last_seen: ts,
        };
        if let Some(h) = self.flows.segment(&seg, make, &mut self.ended) {
            self.touched(h, ts);
        }
        if !self.ended.is_empty() {
            self.collect_ended();
        }
        if self.conv_bytes > MAX_CONVERSATION_BYTES {
            self.shed_conversations();
        }
        true
    }

    /// Moves the clock to `now` (nanoseconds since the Unix epoch) when it is later than the last
    /// packet: a live capture calls it while no packets come, so the hold limit still applies.
    pub fn advance(&mut self, now: Nanos) {
        self.now = self.now.max(now);
    }

    /// Ends connections that carried no packet for `idle` (by the decoder's clock), finishing
    /// what they had in progress as incomplete. Costs a pass over all connections: call it
    /// every second or so, not per packet.
    pub fn evict_idle(&mut self, idle: std::time::Duration) {
        let idle = Nanos::try_from(idle.as_nanos()).unwrap_or(Nanos::MAX);
        let cutoff = self.now.saturating_sub(idle);
        let mut stale = Vec::new();
        self.flows.for_each_sink(|h, s| {
            if s.last_seen < cutoff {
                stale.push(h);
            }
        });
        for h in stale {
            self.flows.evict(h, self.now, &mut self.ended);
        }
        if !self.ended.is_empty() {
            self.collect_ended();
        }
    }

    /// The capture is over: every open connection is ended (what it had in progress comes out
    /// marked incomplete) and everything held becomes ready.
    pub fn finish(&mut self) {
        if self.finished {
            return;
        }
        self.flows.finish_all(self.now, &mut self.ended);
        self.collect_ended();
        self.bounds.clear();
        self.finished = true;
    }

    /// True when [`pop_ready`](Self::pop_ready) would return an exchange.
    pub fn has_ready(&self) -> bool {
        match self.order.earliest() {
            Some(t) => self.finished || t <= self.watermark() || self.over_limits(),
            None => false,
        }
    }

    /// The next exchange that can be released in order, if any.
    pub fn pop_ready(&mut self) -> Option<Exchange> {
        let ex = if self.finished || self.over_limits() {
            self.order.pop()
        } else {
            self.order.pop_until(self.watermark())
        }?;
        self.held_bytes -= approx_size(&ex).min(self.held_bytes);
        Some(ex)
    }

    /// Connections being followed (ended ones still swallowing stray packets included).
    pub fn connections(&self) -> usize {
        self.flows.len()
    }

    /// Finished exchanges waiting for an earlier one (or for the hold limit).
    pub fn held(&self) -> usize {
        self.order.len()
    }

    /// What was skipped so far, by reason (packets that are not TCP, non-HTTP connections, ...).
    pub fn report(&self) -> ReadReport {
        let mut r = self.report.clone();
        for s in Skip::ALL {
            let n = self.skips.get(s as usize).copied().unwrap_or(0);
            if n > 0 {
                r.skip(s.name(), n);
            }
        }
        if self.port_filtered > 0 {
            r.skip("port_filtered", self.port_filtered);
        }
        r
    }

    /// After a segment: take what the connection finished and update its bound.
    fn touched(&mut self, h: FlowHandle, ts: Nanos) {
        let held_back = self.flows.buffered_since(h);
        let Some(sink) = self.flows.sink_mut(h) else {
            return;
        };
        sink.last_seen = sink.last_seen.max(ts);
        let pending = match sink.conv.as_mut() {
            Some(conv) => {
                conv.take_exchanges(&mut self.scratch);
                let b = conv.buffered();
                self.conv_bytes = self.conv_bytes + b - sink.buffered.min(self.conv_bytes);
                sink.buffered = b;
                conv.pending_since()
            }
            None => None,
        };
        let bound = match (pending, held_back) {
            (Some(x), Some(y)) => Some(x.min(y)),
            (x, y) => x.or(y),
        };
        if bound != sink.bound {
            if let Some(old) = sink.bound {
                self.bounds.remove(&(old, sink.id));
            }
            if let Some(new) = bound {
                self.bounds.insert((new, sink.id));
            }
            sink.bound = bound;
        }
        self.hold_scratch();
    }

    /// Finishes the conversations of flows that ended.
    fn collect_ended(&mut self) {
        let mut ended = std::mem::take(&mut self.ended);
        for e in ended.drain(..) {
            let mut sink = e.sink;
            if let Some(b) = sink.bound {
                self.bounds.remove(&(b, sink.id));
            }
            self.conv_bytes -= sink.buffered.min(self.conv_bytes);
            if let Some(conv) = sink.conv.as_mut() {
                conv.finish(e.ts);
                conv.take_exchanges(&mut self.scratch);
                conv.take_skipped(&mut self.report);
            }
            self.hold_scratch();
        }
        self.ended = ended;
    }

    fn hold_scratch(&mut self) {
        for ex in self.scratch.drain(..) {
            self.held_bytes += approx_size(&ex);
            self.order.push(ex);
        }
    }

    /// Conversations buffer more than allowed: end the largest until well under the limit.
    fn shed_conversations(&mut self) {
        let mut big: Vec<(usize, FlowHandle)> = Vec::new();
        self.flows.for_each_sink(|h, s| {
            if s.buffered > 0 {
                big.push((s.buffered, h));
            }
        });
        big.sort_unstable_by_key(|x| std::cmp::Reverse(x.0));
        let target = MAX_CONVERSATION_BYTES / 4 * 3;
        for (_, h) in big {
            if self.conv_bytes <= target {
                break;
            }
            self.flows.evict(h, self.now, &mut self.ended);
            self.collect_ended();
        }
    }

    /// Nothing unreleased can start before this (barring clock steps back of more than the
    /// slack seen so far), or the hold limit says not to wait for it.
    fn watermark(&self) -> Nanos {
        let now = self.now.saturating_sub(self.slack);
        let w = match self.bounds.first() {
            Some(&(t, _)) => t.min(now),
            None => now,
        };
        match self.hold_limit {
            Some(limit) => w.max(self.now.saturating_sub(limit)),
            None => w,
        }
    }

    fn over_limits(&self) -> bool {
        self.order.len() > MAX_HELD || self.held_bytes > MAX_HELD_BYTES
    }
}

fn port_set(bits: &[u64; 1024], p: u16) -> bool {
    bits.get(usize::from(p / 64))
        .is_some_and(|w| w & (1 << (p % 64)) != 0)
}

/// Roughly what an exchange holds in memory.
fn approx_size(ex: &Exchange) -> usize {
    let head = |h: &crate::model::Headers| {
        h.iter()
            .map(|x| x.name.len() + x.value.len() + 48)
            .sum::<usize>()
    };
    let mut n = 256 + ex.request.body.len() + ex.request.target.len() + head(&ex.request.headers);
    for r in ex.response.iter().chain(&ex.interim) {
        n += 128 + r.body.len() + head(&r.headers);
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tcp::{ACK, SYN};
    use crate::Incomplete;

    const MS: Nanos = 1_000_000;
    const T0: Nanos = 1_700_000_000_000 * MS;

    use crate::pcap::test_frame as frame;

    fn push(d: &mut PacketDecoder, ms: Nanos, f: &[u8]) {
        assert!(d.push(1, T0 + ms * MS, f, f.len() as u32));
    }

    fn drain(d: &mut PacketDecoder) -> Vec<Exchange> {
        std::iter::from_fn(|| d.pop_ready()).collect()
    }

    /// Connection 0 asks at 0 ms and is never answered; connection 1 asks and is answered at 1 ms.
    fn stalled(d: &mut PacketDecoder) {
        let q0 = b"GET /stalled HTTP/1.1\r\n\r\n";
        let q1 = b"GET /quick HTTP/1.1\r\n\r\n";
        let r = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
        push(d, 0, &frame(0, true, 1, 1, ACK, q0));
        push(d, 1, &frame(1, true, 1, 1, ACK, q1));
        push(d, 1, &frame(1, false, 1, 1 + q1.len() as u32, ACK, r));
    }

    #[test]
    fn a_stalled_connection_holds_back_later_exchanges_without_a_limit() {
        let mut d = PacketDecoder::new(&[80]);
        stalled(&mut d);
        d.advance(T0 + 60_000 * MS);
        assert!(drain(&mut d).is_empty());
        assert_eq!(d.held(), 1);
        d.finish();
        let v = drain(&mut d);
        let got: Vec<(&str, Option<Incomplete>)> = v
            .iter()
            .map(|e| (e.request.target.as_str(), e.incomplete))
            .collect();
        assert_eq!(
            got,
            vec![("/stalled", Some(Incomplete::NoResponse)), ("/quick", None)]
        );
    }

    #[test]
    fn the_hold_limit_releases_and_idle_connections_end() {
        let mut d = PacketDecoder::new(&[80]).with_hold_limit(std::time::Duration::from_secs(2));
        stalled(&mut d);
        assert!(drain(&mut d).is_empty(), "within the limit, order is kept");
        d.advance(T0 + 2_500 * MS);
        let v = drain(&mut d);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].request.target, "/quick");
        // Connection 0 has been silent for 2.5 s: an idle limit of 1 s ends it.
        d.evict_idle(std::time::Duration::from_secs(1));
        let v = drain(&mut d);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].request.target, "/stalled");
        assert!(v[0].incomplete.is_some());
        d.finish();
        assert!(drain(&mut d).is_empty());
    }

    #[test]
    fn skipped_frames_are_counted() {
        let mut d = PacketDecoder::new(&[8080]);
        let f = frame(0, true, 1, 1, SYN, b"");
        assert!(!d.push(1, T0, &f, f.len() as u32));
        assert!(!d.push(1, T0, &[0u8; 10], 10));
        let r = d.report();
        assert_eq!(r.skipped.get("port_filtered"), Some(&1));
        assert_eq!(r.skipped.get("malformed_packet"), Some(&1));
    }
}
