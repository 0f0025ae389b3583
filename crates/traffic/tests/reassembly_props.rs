//! The pcap path's acceptance property: any valid HTTP/1.1 conversation, cut into random
//! segments, reordered, with duplicated (retransmitted) segments, yields the same exchanges as
//! the same conversation delivered in order, one segment per message.
//!
//! A conversation (keep-alive, several exchanges: Content-Length and chunked bodies with
//! trailers, HEAD, 204, 304, `Expect: 100-continue` with its interim 100, pipelining) is played
//! by a small scheduler that respects HTTP's causality: a response only after its request, the
//! 100 only after the head that asked for it, the body only after the 100. The resulting messages
//! become TCP segments (handshake, real seq/ack numbers from a random ISN that may wrap at 2^32,
//! optional FINs), which are then retransmitted (exact and re-segmented overlapping copies) and
//! shuffled within a small window. Shuffling never moves a segment ahead of a peer segment whose
//! bytes it acknowledges: a capture point sees a byte before any ACK of it, so a violation would be
//! loss, not reordering, and reassembly would rightly report a gap.
//!
//! Both captures are written as Ethernet/IPv4 pcap with independent writers (etherparse,
//! pcap-file) and read by `PcapReader`; the exchanges must be equal but for their timing, and
//! must match the conversation that was generated.

use std::time::Duration;

use proptest::collection::vec;
use proptest::prelude::*;

use mynah_traffic::pcap::PcapReader;
use mynah_traffic::{Exchange, ExchangeReader, Headers, Incomplete, ReadOptions, Timing, Version};

const CLIENT: ([u8; 4], u16) = ([10, 1, 2, 3], 51515);
const SERVER: ([u8; 4], u16) = ([10, 9, 8, 7], 8080);
const C: usize = 0;
const S: usize = 1;

// ---- the conversation ----

#[derive(Debug, Clone)]
enum Body {
    Length(Vec<u8>),
    /// Non-empty chunks, each with a chunk extension when `ext`, then trailer fields.
    Chunked {
        chunks: Vec<Vec<u8>>,
        ext: bool,
        trailers: Vec<(String, String)>,
    },
}

impl Body {
    /// The framing header and the body as on the wire.
    fn wire(&self) -> ((&'static str, String), Vec<u8>) {
        match self {
            Body::Length(b) => (("Content-Length", b.len().to_string()), b.clone()),
            Body::Chunked {
                chunks,
                ext,
                trailers,
            } => {
                let mut w = Vec::new();
                for c in chunks {
                    w.extend_from_slice(format!("{:x}", c.len()).as_bytes());
                    if *ext {
                        w.extend_from_slice(b";name=\"va;lue\"");
                    }
                    w.extend_from_slice(b"\r\n");
                    w.extend_from_slice(c);
                    w.extend_from_slice(b"\r\n");
                }
                w.extend_from_slice(b"0\r\n");
                for (n, v) in trailers {
                    w.extend_from_slice(format!("{n}: {v}\r\n").as_bytes());
                }
                w.extend_from_slice(b"\r\n");
                (("Transfer-Encoding", "chunked".to_string()), w)
            }
        }
    }
}

#[derive(Debug, Clone)]
enum Kind {
    /// GET, answered 200 with a body.
    Get,
    /// POST with a body, answered 200 with a body.
    Post(Body),
    /// HEAD, answered 200 with a Content-Length and no body.
    Head,
    /// GET answered 204.
    NoContent,
    /// Conditional GET answered 304 with a Content-Length and no body.
    NotModified,
    /// PUT with `Expect: 100-continue` and a Content-Length body, answered 100 then 201.
    Continue(Vec<u8>),
}

#[derive(Debug, Clone)]
struct Spec {
    kind: Kind,
    target: String,
    headers: Vec<(String, String)>,
    resp_headers: Vec<(String, String)>,
    resp_body: Body,
    /// The Content-Length of a HEAD or 304 response, which has no body.
    no_body_len: u32,
}

/// What an exchange must read as.
struct Expect {
    method: &'static str,
    target: String,
    req_headers: Vec<(String, Vec<u8>)>,
    req_head: Vec<u8>,
    req_body: Vec<u8>,
    status: u16,
    reason: &'static str,
    resp_headers: Vec<(String, Vec<u8>)>,
    resp_bytes: Vec<u8>,
    resp_body: Vec<u8>,
    interim: bool,
}

fn head_bytes(line: &str, headers: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut h = format!("{line}\r\n").into_bytes();
    for (n, v) in headers {
        h.extend_from_slice(n.as_bytes());
        h.extend_from_slice(b": ");
        h.extend_from_slice(v);
        h.extend_from_slice(b"\r\n");
    }
    h.extend_from_slice(b"\r\n");
    h
}

impl Spec {
    fn expect(&self) -> Expect {
        let own = |v: &[(String, String)]| -> Vec<(String, Vec<u8>)> {
            v.iter()
                .map(|(n, v)| (n.clone(), v.clone().into_bytes()))
                .collect()
        };
        let mut req_headers = vec![("Host".to_string(), b"example.test".to_vec())];
        req_headers.extend(own(&self.headers));
        let mut resp_headers = own(&self.resp_headers);
        let mut req_body = Vec::new();
        let mut resp_body = Vec::new();
        let (method, status, reason) = match &self.kind {
            Kind::Get => ("GET", 200, "OK"),
            Kind::Post(_) => ("POST", 200, "OK"),
            Kind::Head => ("HEAD", 200, "OK"),
            Kind::NoContent => ("GET", 204, "No Content"),
            Kind::NotModified => ("GET", 304, "Not Modified"),
            Kind::Continue(_) => ("PUT", 201, "Created"),
        };
        match &self.kind {
            Kind::Post(b) => {
                let ((n, v), w) = b.wire();
                req_headers.push((n.to_string(), v.into_bytes()));
                req_body = w;
            }
            Kind::Continue(b) => {
                req_headers.push(("Expect".to_string(), b"100-continue".to_vec()));
                req_headers.push(("Content-Length".to_string(), b.len().to_string().into()));
                req_body = b.clone();
            }
            Kind::NotModified => {
                req_headers.push(("If-None-Match".to_string(), b"\"v1\"".to_vec()));
            }
            _ => {}
        }
        match &self.kind {
            Kind::Head | Kind::NotModified => {
                resp_headers.push((
                    "Content-Length".to_string(),
                    self.no_body_len.to_string().into(),
                ));
            }
            Kind::NoContent => {}
            _ => {
                let ((n, v), w) = self.resp_body.wire();
                resp_headers.push((n.to_string(), v.into_bytes()));
                resp_body = w;
            }
        }
        let req_head = head_bytes(&format!("{method} {} HTTP/1.1", self.target), &req_headers);
        let mut resp_bytes = head_bytes(&format!("HTTP/1.1 {status} {reason}"), &resp_headers);
        resp_bytes.extend_from_slice(&resp_body);
        Expect {
            method,
            target: self.target.clone(),
            req_headers,
            req_head,
            req_body,
            status,
            reason,
            resp_headers,
            resp_bytes,
            resp_body,
            interim: matches!(self.kind, Kind::Continue(_)),
        }
    }
}

const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

// ---- the messages on the wire ----

/// One message (or a part of one that the other side waits for) in the order it was sent.
#[derive(Debug)]
struct Msg {
    dir: usize,
    bytes: Vec<u8>,
    /// Peer bytes the sender must have received before sending it (HTTP causality).
    need: u64,
}

/// Plays the conversation: the client sends requests up to `depth` ahead of the responses
/// (pipelining), the server answers each once it has the request; `choices` decide who goes
/// next when both may.
fn schedule(ex: &[Expect], depth: usize, choices: &[bool]) -> Vec<Msg> {
    let n = ex.len();
    let mut msgs = Vec::new();
    let mut sent = [0u64; 2];
    let mut head_end = vec![0u64; n];
    let mut req_end: Vec<Option<u64>> = vec![None; n];
    let mut sent_100 = vec![false; n];
    let (mut r, mut s) = (0usize, 0usize);
    // The request whose body waits for its 100 Continue.
    let mut waiting: Option<usize> = None;
    let mut step = 0usize;
    let push = |msgs: &mut Vec<Msg>, sent: &mut [u64; 2], dir: usize, b: &[u8], need: u64| {
        sent[dir] += b.len() as u64;
        msgs.push(Msg {
            dir,
            bytes: b.to_vec(),
            need,
        });
    };
    while s < n {
        let client_can = match waiting {
            Some(k) => sent_100[k],
            None => r < n && r - s < depth,
        };
        let server_can = s < r
            && if ex[s].interim && !sent_100[s] {
                true
            } else {
                req_end[s].is_some()
            };
        assert!(client_can || server_can, "the schedule cannot stall");
        let client = if client_can && server_can {
            let c = choices
                .get(step % choices.len().max(1))
                .copied()
                .unwrap_or(true);
            step += 1;
            c
        } else {
            client_can
        };
        if client {
            match waiting.take() {
                Some(k) => {
                    let need = sent[S];
                    push(&mut msgs, &mut sent, C, &ex[k].req_body, need);
                    req_end[k] = Some(sent[C]);
                }
                None => {
                    let e = &ex[r];
                    if e.interim {
                        push(&mut msgs, &mut sent, C, &e.req_head, 0);
                        head_end[r] = sent[C];
                        waiting = Some(r);
                    } else {
                        let whole = [&e.req_head[..], &e.req_body[..]].concat();
                        push(&mut msgs, &mut sent, C, &whole, 0);
                        req_end[r] = Some(sent[C]);
                    }
                    r += 1;
                }
            }
        } else if ex[s].interim && !sent_100[s] {
            push(&mut msgs, &mut sent, S, CONTINUE, head_end[s]);
            sent_100[s] = true;
        } else {
            let need = req_end[s].unwrap_or(0);
            push(&mut msgs, &mut sent, S, &ex[s].resp_bytes, need);
            s += 1;
        }
    }
    msgs
}

/// One TCP segment, in stream offsets (offset 0 is the byte after the SYN).
#[derive(Debug, Clone, Copy)]
struct Seg {
    dir: usize,
    start: u64,
    len: u64,
    syn: bool,
    fin: bool,
    /// Acknowledges the peer's stream up to this offset (`None`: no ACK flag).
    ack: Option<u64>,
}

impl Seg {
    /// Whether `self` may not be seen before `x`: it acknowledges bytes (or the FIN) that `x`
    /// carries.
    fn needs(&self, x: &Seg) -> bool {
        self.dir != x.dir && (x.len > 0 || x.fin) && self.ack.is_some_and(|a| a > x.start)
    }
}

#[derive(Debug, Clone)]
struct Net {
    isn: [u32; 2],
    /// Segment sizes, used in turn.
    cuts: Vec<usize>,
    depth: usize,
    choices: Vec<bool>,
    /// Per message: acknowledge everything received (else only what causality needs).
    eager: Vec<bool>,
    /// Per message: the peer sends a pure ACK of it.
    pure_acks: Vec<bool>,
    /// Retransmissions: (segment, bytes back from its start, length, segment size, delay).
    dups: Vec<(usize, u64, u64, usize, usize)>,
    /// Moves: (segment, how far later).
    moves: Vec<(usize, usize)>,
    /// 0: the capture ends with the connection open; 1: the client closes first, 2: the server
    /// does; 3 and 4: likewise, the first FIN on the last data segment.
    close: u8,
}

fn bit(v: &[bool], i: usize) -> bool {
    v.get(i % v.len().max(1)).copied().unwrap_or(false)
}

/// The streams of both sides and the segments that carry them: either one segment per message
/// (`reference`) or cut, retransmitted and shuffled as `net` says.
fn segments(msgs: &[Msg], net: &Net, reference: bool) -> ([Vec<u8>; 2], Vec<Seg>) {
    let mut streams = [Vec::new(), Vec::new()];
    let mut segs = vec![
        Seg {
            dir: C,
            start: 0,
            len: 0,
            syn: true,
            fin: false,
            ack: None,
        },
        Seg {
            dir: S,
            start: 0,
            len: 0,
            syn: true,
            fin: false,
            ack: Some(0),
        },
        Seg {
            dir: C,
            start: 0,
            len: 0,
            syn: false,
            fin: false,
            ack: Some(0),
        },
    ];
    let fixed = segs.len();
    let mut acked = [0u64; 2];
    let mut cut = 0usize;
    for (m, msg) in msgs.iter().enumerate() {
        let d = msg.dir;
        let p = 1 - d;
        let ack = if bit(&net.eager, m) {
            streams[p].len() as u64
        } else {
            acked[d].max(msg.need)
        };
        acked[d] = ack;
        let start = streams[d].len() as u64;
        streams[d].extend_from_slice(&msg.bytes);
        let end = streams[d].len() as u64;
        let mut at = start;
        while at < end {
            let n = if reference {
                end - at
            } else {
                let c = net
                    .cuts
                    .get(cut % net.cuts.len().max(1))
                    .copied()
                    .unwrap_or(1);
                cut += 1;
                (c.max(1) as u64).min(end - at)
            };
            segs.push(Seg {
                dir: d,
                start: at,
                len: n,
                syn: false,
                fin: false,
                ack: Some(ack),
            });
            at += n;
        }
        if bit(&net.pure_acks, m) && !reference {
            acked[p] = end;
            segs.push(Seg {
                dir: p,
                start: streams[p].len() as u64,
                len: 0,
                syn: false,
                fin: false,
                ack: Some(end),
            });
        }
    }
    let ends = [streams[C].len() as u64, streams[S].len() as u64];
    if net.close != 0 {
        let first = if net.close % 2 == 1 { C } else { S };
        let second = 1 - first;
        let fin = |dir: usize, ack: u64| Seg {
            dir,
            start: ends[dir],
            len: 0,
            syn: false,
            fin: true,
            ack: Some(ack),
        };
        let last_data = segs.iter().rposition(|s| s.dir == first && s.len > 0);
        match last_data {
            // The first FIN rides on the last data segment; what that side sends later comes
            // after it in sequence space.
            Some(i) if net.close > 2 => {
                segs[i].fin = true;
                for s in &mut segs[i + 1..] {
                    if s.dir == first {
                        s.start = ends[first] + 1;
                    }
                }
            }
            _ => segs.push(fin(first, ends[second])),
        }
        segs.push(fin(second, ends[first] + 1));
        segs.push(Seg {
            dir: first,
            start: ends[first] + 1,
            len: 0,
            syn: false,
            fin: false,
            ack: Some(ends[second] + 1),
        });
    }
    if reference {
        return (streams, segs);
    }
    // Retransmissions: bytes the sender had already sent by the original segment, re-cut,
    // seen some time after it (and carrying its ACK, which is what the sender knew then).
    for &(pick, back, len, size, delay) in &net.dups {
        let data: Vec<usize> = (fixed..segs.len()).filter(|&i| segs[i].len > 0).collect();
        if data.is_empty() {
            break;
        }
        let i = data[pick % data.len()];
        let o = segs[i];
        let start = o.start.saturating_sub(back);
        let end = (start + len.max(1)).min(o.start + o.len);
        let mut at = start;
        let mut pos = (i + 1 + delay).min(segs.len());
        while at < end {
            let n = (size.max(1) as u64).min(end - at);
            segs.insert(
                pos,
                Seg {
                    start: at,
                    len: n,
                    // A retransmission ending where the FIN is carries it too.
                    fin: o.fin && at + n == o.start + o.len,
                    ..o
                },
            );
            pos += 1;
            at += n;
        }
    }
    // Reordering: each move takes a segment later by up to a few places, never past a
    // segment that acknowledges its bytes.
    for &(pick, by) in &net.moves {
        let movable = segs.len() - fixed;
        if movable < 2 {
            break;
        }
        let from = fixed + pick % movable;
        for i in from..from + by {
            let Some(next) = segs.get(i + 1) else { break };
            if next.needs(&segs[i]) {
                break;
            }
            segs.swap(i, i + 1);
        }
    }
    (streams, segs)
}

/// The capture: every segment as an Ethernet/IPv4/TCP frame, 100 µs apart.
fn pcap(streams: &[Vec<u8>; 2], segs: &[Seg], isn: [u32; 2]) -> Vec<u8> {
    let mut w = pcap_file::pcap::PcapWriter::new(Vec::new()).unwrap();
    for (k, s) in segs.iter().enumerate() {
        let ((sip, sp), (dip, dp)) = if s.dir == C {
            (CLIENT, SERVER)
        } else {
            (SERVER, CLIENT)
        };
        let seq = if s.syn {
            isn[s.dir]
        } else {
            isn[s.dir].wrapping_add(1).wrapping_add(s.start as u32)
        };
        let mut b = etherparse::PacketBuilder::ethernet2([2; 6], [4; 6])
            .ipv4(sip, dip, 64)
            .tcp(sp, dp, seq, 65535);
        if s.syn {
            b = b.syn();
        }
        if s.fin {
            b = b.fin();
        }
        if s.len > 0 {
            b = b.psh();
        }
        if let Some(a) = s.ack {
            b = b.ack(isn[1 - s.dir].wrapping_add(1).wrapping_add(a as u32));
        }
        let payload = streams[s.dir]
            .get(s.start as usize..(s.start + s.len) as usize)
            .unwrap_or_default();
        let mut frame = Vec::new();
        b.write(&mut frame, payload).unwrap();
        let ts = Duration::from_secs(1_700_000_000) + Duration::from_micros(100 * k as u64);
        let p = pcap_file::pcap::PcapPacket::new(ts, frame.len() as u32, &frame);
        w.write_packet(&p).unwrap();
    }
    w.into_writer()
}

/// Reads a capture; the exchanges with their timing cleared, and what was skipped.
fn read(bytes: Vec<u8>) -> (Vec<Exchange>, String) {
    let mut r = PcapReader::new(
        Box::new(std::io::Cursor::new(bytes)),
        ReadOptions::default(),
    )
    .unwrap();
    let v = r
        .by_ref()
        .map(|x| {
            let mut e = x.unwrap();
            e.timing = Timing::default();
            e
        })
        .collect();
    let rep = r.report();
    (v, format!("{:?} {}", rep.skipped, rep.corrupt_skipped))
}

fn headers(h: &Headers) -> Vec<(String, Vec<u8>)> {
    h.iter()
        .map(|x| (x.name.clone(), x.value.clone()))
        .collect()
}

/// The exchanges read in order match the conversation generated.
fn check_model(ex: &[Expect], got: &[Exchange]) -> Result<(), TestCaseError> {
    prop_assert_eq!(got.len(), ex.len());
    for (i, (e, g)) in ex.iter().zip(got).enumerate() {
        prop_assert_eq!(g.incomplete, None::<Incomplete>, "exchange {}", i);
        prop_assert_eq!(g.connection.index, i as u32);
        prop_assert_eq!(&g.request.method, e.method);
        prop_assert_eq!(&g.request.target, &e.target);
        prop_assert_eq!(&g.request.version, &Version::Http11);
        prop_assert_eq!(headers(&g.request.headers), e.req_headers.clone());
        prop_assert_eq!(&g.request.body, &e.req_body);
        let resp = g.response.as_ref();
        prop_assert!(resp.is_some(), "exchange {} has no response", i);
        let resp = resp.unwrap();
        prop_assert_eq!(resp.status, e.status);
        prop_assert_eq!(&resp.reason, e.reason);
        prop_assert_eq!(headers(&resp.headers), e.resp_headers.clone());
        prop_assert_eq!(&resp.body, &e.resp_body);
        let interim: Vec<u16> = g.interim.iter().map(|r| r.status).collect();
        prop_assert_eq!(interim, if e.interim { vec![100] } else { vec![] });
    }
    Ok(())
}

// ---- strategies ----

fn field() -> impl Strategy<Value = (String, String)> {
    ("X-[A-Za-z][A-Za-z0-9-]{0,10}", "[!-~]([ -~]{0,24}[!-~])?")
}

/// Body bytes, often built from pieces that look like HTTP framing, to tempt a parser that
/// searches instead of counting.
fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        vec(any::<u8>(), 1..64),
        Just(b"\r\n".to_vec()),
        Just(b"\r\n\r\n".to_vec()),
        Just(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n".to_vec()),
        Just(b"GET /in-body HTTP/1.1\r\nHost: x\r\n\r\n".to_vec()),
        Just(b"0\r\n\r\n".to_vec()),
    ];
    vec(piece, 0..12).prop_map(move |v| {
        let mut b = v.concat();
        b.truncate(max);
        b
    })
}

fn body() -> impl Strategy<Value = Body> {
    prop_oneof![
        bytes(1500).prop_map(Body::Length),
        (
            vec(bytes(400).prop_filter("non-empty", |c| !c.is_empty()), 0..4),
            any::<bool>(),
            vec(field(), 0..3)
        )
            .prop_map(|(chunks, ext, trailers)| Body::Chunked {
                chunks,
                ext,
                trailers
            }),
    ]
}

fn spec() -> impl Strategy<Value = Spec> {
    let kind = prop_oneof![
        2 => Just(Kind::Get),
        3 => body().prop_map(Kind::Post),
        1 => Just(Kind::Head),
        1 => Just(Kind::NoContent),
        1 => Just(Kind::NotModified),
        2 => bytes(1500)
            .prop_filter("non-empty", |b| !b.is_empty())
            .prop_map(Kind::Continue),
    ];
    (
        kind,
        "/[a-z0-9/._?=&%-]{0,30}",
        vec(field(), 0..4),
        vec(field(), 0..4),
        body(),
        any::<u32>(),
    )
        .prop_map(
            |(kind, target, headers, resp_headers, resp_body, no_body_len)| Spec {
                kind,
                target,
                headers,
                resp_headers,
                resp_body,
                no_body_len,
            },
        )
}

fn isn() -> impl Strategy<Value = u32> {
    prop_oneof![any::<u32>(), (u32::MAX - 4000)..=u32::MAX]
}

fn net() -> impl Strategy<Value = Net> {
    let cut = prop_oneof![1usize..8, 1usize..200, 1usize..1460];
    (
        (isn(), isn()),
        vec(cut, 1..24),
        1usize..=3,
        vec(any::<bool>(), 1..32),
        vec(any::<bool>(), 1..16),
        vec(any::<bool>(), 1..16),
        vec(
            (any::<usize>(), 0u64..300, 1u64..900, 1usize..700, 0usize..6),
            0..16,
        ),
        vec((any::<usize>(), 1usize..=6), 0..300),
        0u8..5,
    )
        .prop_map(
            |((a, b), cuts, depth, choices, eager, pure_acks, dups, moves, close)| Net {
                isn: [a, b],
                cuts,
                depth,
                choices,
                eager,
                pure_acks,
                dups,
                moves,
                close,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any valid HTTP/1.1 conversation, cut into random segments, reordered, with duplicated
    /// (retransmitted) segments, yields the same exchanges.
    #[test]
    fn segmented_reordered_retransmitted_conversation_reads_the_same(
        specs in vec(spec(), 1..8),
        net in net(),
    ) {
        let ex: Vec<Expect> = specs.iter().map(Spec::expect).collect();
        let msgs = schedule(&ex, net.depth, &net.choices);

        let (streams, segs) = segments(&msgs, &net, true);
        let (want, want_skips) = read(pcap(&streams, &segs, net.isn));
        check_model(&ex, &want)?;
        prop_assert_eq!(&want_skips, "{} 0");

        let (streams2, segs) = segments(&msgs, &net, false);
        prop_assert_eq!(&streams2, &streams);
        let (got, got_skips) = read(pcap(&streams, &segs, net.isn));
        prop_assert_eq!(&got_skips, "{} 0");
        prop_assert_eq!(got, want);
    }
}
