//! pcap and pcapng captures: records (`file`), link/IP/TCP decoding (`link`), TCP reassembly
//! ([`crate::tcp`]) and HTTP/1.x parsing ([`crate::http1`]), streamed with bounded memory.
//!
//! [`PacketDecoder`] does the work packet by packet, so the same reassembly and parsing serve a
//! file ([`PcapReader`]) and a live capture (`mynah record`, which feeds it libpcap's packets).
//!
//! Exchanges come out in request-start order. Each connection's earliest unfinished exchange (or
//! held-back out-of-order data) bounds what may be released: finished exchanges wait in a
//! [`TimeOrder`](crate::order::TimeOrder) until no live connection can still produce an earlier one. The set of those
//! bounds is kept sorted and updated only when a connection's bound changes, so the per-packet
//! cost stays constant.

mod decoder;
mod file;
mod link;

use std::io::BufRead;

use crate::error::ReadError;
use crate::model::Exchange;
use crate::source::{ExchangeReader, ReadOptions, ReadReport};

pub use self::decoder::PacketDecoder;
use self::file::Records;

/// Packets read per call of [`PcapReader::read_some`] before checking what can be released.
const BATCH: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Reading,
    /// The input is exhausted (or failed): release everything held, then the error if any.
    Draining,
    Done,
}

/// Reads a pcap or pcapng stream as exchanges in request-start order.
pub struct PcapReader {
    records: Records,
    lenient: bool,
    decoder: PacketDecoder,
    report: ReadReport,
    yielded: u64,
    state: State,
    error: Option<ReadError>,
}

impl PcapReader {
    /// Reads the file header; errors here name byte 0 (or the version field).
    pub fn new(input: Box<dyn BufRead + Send>, opts: ReadOptions) -> Result<Self, ReadError> {
        let records = Records::open(input)?;
        Ok(PcapReader {
            records,
            lenient: opts.lenient,
            decoder: PacketDecoder::new(&opts.ports),
            report: ReadReport::default(),
            yielded: 0,
            state: State::Reading,
            error: None,
        })
    }

    /// Processes packets until an exchange can be released or the input ends.
    fn read_some(&mut self) {
        for _ in 0..BATCH {
            let pkt = match self.records.next() {
                Ok(Some(p)) => p,
                Ok(None) => return self.end_of_input(),
                Err(e) => {
                    if self.lenient && !e.io {
                        self.report.corrupt_skipped += 1;
                        if self.report.first_corrupt.is_none() {
                            self.report.first_corrupt =
                                Some(format!("{}: {}", e.location, e.message));
                        }
                        if e.skippable {
                            continue;
                        }
                    } else {
                        self.error = Some(e.to_read_error());
                    }
                    return self.end_of_input();
                }
            };
            if self
                .decoder
                .push(pkt.linktype, pkt.ts, pkt.data, pkt.origlen)
                && self.decoder.has_ready()
            {
                return;
            }
        }
    }

    fn end_of_input(&mut self) {
        self.decoder.finish();
        self.state = State::Draining;
    }
}

impl Iterator for PcapReader {
    type Item = Result<Exchange, ReadError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            match self.state {
                State::Reading => {
                    if let Some(ex) = self.decoder.pop_ready() {
                        self.yielded += 1;
                        return Some(Ok(ex));
                    }
                    self.read_some();
                }
                State::Draining => {
                    if let Some(ex) = self.decoder.pop_ready() {
                        self.yielded += 1;
                        return Some(Ok(ex));
                    }
                    self.state = State::Done;
                    if let Some(e) = self.error.take() {
                        return Some(Err(e.read_before(self.yielded)));
                    }
                }
                State::Done => return None,
            }
        }
    }
}

impl ExchangeReader for PcapReader {
    fn report(&self) -> ReadReport {
        let mut r = self.report.clone();
        r.merge(&self.decoder.report());
        r.bytes_read = self.records.bytes_read();
        r
    }
}

/// An Ethernet frame of test connection `c` (10.0.0.1:(40000 + c) <-> 10.0.0.2:80), for the tests
/// of the file reader and of the packet decoder.
#[cfg(test)]
pub(crate) fn test_frame(
    c: u16,
    client: bool,
    seq: u32,
    ack: u32,
    flags: u8,
    data: &[u8],
) -> Vec<u8> {
    use crate::tcp::{ACK, FIN, RST, SYN};
    let (cip, sip) = ([10, 0, 0, 1], [10, 0, 0, 2]);
    let (src, dst, sp, dp) = if client {
        (cip, sip, 40000 + c, 80)
    } else {
        (sip, cip, 80, 40000 + c)
    };
    let mut b = etherparse::PacketBuilder::ethernet2([1; 6], [2; 6])
        .ipv4(src, dst, 64)
        .tcp(sp, dp, seq, 65535);
    if flags & SYN != 0 {
        b = b.syn();
    }
    if flags & FIN != 0 {
        b = b.fin();
    }
    if flags & RST != 0 {
        b = b.rst();
    }
    if flags & ACK != 0 {
        b = b.ack(ack);
    }
    let mut frame = Vec::new();
    b.write(&mut frame, data).unwrap();
    frame
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/data/traffic/");

    fn reader(name: &str, opts: ReadOptions) -> Result<PcapReader, ReadError> {
        let path = format!("{DATA}pcap/{name}");
        let f = std::fs::File::open(&path).unwrap_or_else(|e| {
            panic!("test capture {path} missing ({e}): see shared/data/traffic")
        });
        PcapReader::new(crate::source::maybe_gunzip(f).unwrap(), opts)
    }

    struct Read {
        exchanges: Vec<Exchange>,
        error: Option<ReadError>,
        report: ReadReport,
    }

    fn read(name: &str, opts: ReadOptions) -> Read {
        let mut r = reader(name, opts).unwrap();
        let mut exchanges = Vec::new();
        let mut error = None;
        for x in r.by_ref() {
            match x {
                Ok(e) => exchanges.push(e),
                Err(e) => {
                    assert!(error.is_none(), "{name}: two errors");
                    error = Some(e);
                }
            }
        }
        let report = r.report();
        Read {
            exchanges,
            error,
            report,
        }
    }

    /// Every pcap file in the shared set.
    fn shared_pcaps() -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(format!("{DATA}pcap"))
            .expect("shared/data/traffic/pcap missing")
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .collect();
        v.sort();
        v
    }

    /// What must hold for every capture, whatever it holds. The counts are checked against
    /// tshark's in the binary's integration tests (crates/mynah/tests/captures.rs), with the
    /// reasons for each difference.
    #[test]
    fn every_capture_reads_in_order_with_connection_positions() {
        let files = shared_pcaps();
        assert!(files.len() >= 60, "found {} pcaps", files.len());
        for file in &files {
            let file = file.as_str();
            let r = read(file, ReadOptions::default());
            // Request-start order, and connection indexes counting up per connection.
            for w in r.exchanges.windows(2) {
                assert!(
                    w[0].timing.request_start <= w[1].timing.request_start,
                    "{file}: out of order"
                );
            }
            let mut next_index: BTreeMap<u64, u32> = BTreeMap::new();
            let mut by_start: Vec<&Exchange> = r.exchanges.iter().collect();
            by_start.sort_by_key(|e| (e.connection.id, e.connection.index));
            for e in by_start {
                let id = e
                    .connection
                    .id
                    .expect("pcap exchanges name their connection");
                let n = next_index.entry(id).or_default();
                assert_eq!(e.connection.index, *n, "{file}: connection {id}");
                *n += 1;
                assert!(e.connection.client.is_some() && e.connection.server.is_some());
            }
            let truncated = file == "suricata_http-mime-truncated.pcap";
            assert_eq!(r.error.is_some(), truncated, "{file}: {:?}", r.error);
            let mut size = 0u64;
            let mut input = crate::source::maybe_gunzip(
                std::fs::File::open(format!("{DATA}pcap/{file}")).unwrap(),
            )
            .unwrap();
            loop {
                let n = input.fill_buf().unwrap().len();
                if n == 0 {
                    break;
                }
                input.consume(n);
                size += n as u64;
            }
            // The truncated file's last, partial record header is not consumed.
            assert_eq!(r.report.bytes_read, size - u64::from(truncated), "{file}");
        }
    }

    #[test]
    fn zeek_get_is_one_exchange() {
        let r = read("zeek_get.pcap", ReadOptions::default());
        assert_eq!(r.exchanges.len(), 1);
        let e = &r.exchanges[0];
        assert_eq!(e.request.method, "GET");
        assert_eq!(e.response.as_ref().map(|r| r.status), Some(200));
        assert_eq!(e.incomplete, None);
        assert_eq!(e.connection.id, Some(0));
    }

    #[test]
    fn shop_capture_has_every_final_response() {
        let r = read("shop_capture.pcap", ReadOptions::default());
        assert_eq!(r.exchanges.len(), 274);
        assert!(r
            .exchanges
            .iter()
            .all(|e| e.response.is_some() && e.incomplete.is_none()));
        let put = r
            .exchanges
            .iter()
            .find(|e| e.request.method == "PUT")
            .expect("the 100-continue PUT");
        assert_eq!(put.request.body.len(), 120_000);
        assert_eq!(
            put.interim.iter().map(|i| i.status).collect::<Vec<_>>(),
            vec![100]
        );
        let heads = r
            .exchanges
            .iter()
            .filter(|e| e.request.method == "HEAD")
            .count();
        assert!(heads > 0);
        assert!(r.report.skipped.is_empty(), "{:?}", r.report.skipped);
    }

    #[test]
    fn truncated_file_yields_everything_then_the_error() {
        let name = "suricata_http-mime-truncated.pcap";
        let mut r = reader(name, ReadOptions::default()).unwrap();
        let mut n = 0;
        let err = loop {
            match r.next() {
                Some(Ok(_)) => n += 1,
                Some(Err(e)) => break e,
                None => panic!("no error for a truncated file"),
            }
        };
        assert!(r.next().is_none());
        assert_eq!(n, 8);
        assert_eq!(err.exchanges_read, 8);
        assert_eq!(
            err.location,
            Some(crate::Location::Packet {
                number: 2697,
                byte: 2_715_459
            })
        );
        assert!(
            err.message
                .contains("ends inside the header of packet 2697"),
            "{err}"
        );
        assert!(err.hint.as_deref().unwrap_or("").contains("--lenient"));

        let lenient = read(
            name,
            ReadOptions {
                lenient: true,
                ..ReadOptions::default()
            },
        );
        assert!(lenient.error.is_none());
        assert_eq!(lenient.exchanges.len(), 8);
        assert_eq!(lenient.report.corrupt_skipped, 1);
        assert!(lenient
            .report
            .first_corrupt
            .as_deref()
            .unwrap_or("")
            .contains("packet 2697"));
    }

    #[test]
    fn port_filter() {
        let all = read("pcapplusplus_example.pcap", ReadOptions::default());
        let only = read(
            "pcapplusplus_example.pcap",
            ReadOptions {
                ports: vec![5005],
                ..ReadOptions::default()
            },
        );
        assert_eq!(only.exchanges.len(), 1);
        assert_eq!(only.exchanges[0].request.method, "SUBSCRIBE");
        assert!(
            only.report
                .skipped
                .get("port_filtered")
                .copied()
                .unwrap_or(0)
                > 4000
        );
        assert!(all
            .exchanges
            .iter()
            .any(|e| e.request.method == "SUBSCRIBE"));
    }

    #[test]
    fn damaged_captures_never_panic() {
        // Deterministic xorshift: flipped bytes and cuts anywhere, strict and lenient.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut rnd = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for name in [
            "zeek_get.pcap",
            "chrissanders_http_post.pcapng",
            "suricata_http-protocol-nodup.pcap",
            "arkime_80211http.pcap",
            "zeek_nflog-http.pcap",
            "suricata_pppoe-session-http.pcap",
        ] {
            let orig = std::fs::read(format!("{DATA}pcap/{name}")).expect("test capture missing");
            for round in 0..60 {
                let mut bytes = orig.clone();
                for _ in 0..1 + round % 8 {
                    let i = (rnd() as usize) % bytes.len();
                    bytes[i] = rnd() as u8;
                }
                if round % 3 == 0 {
                    bytes.truncate((rnd() as usize) % bytes.len());
                }
                for lenient in [false, true] {
                    let opts = ReadOptions {
                        lenient,
                        ..ReadOptions::default()
                    };
                    let Ok(r) =
                        PcapReader::new(Box::new(std::io::Cursor::new(bytes.clone())), opts)
                    else {
                        continue;
                    };
                    let mut errors = 0;
                    for x in r {
                        if x.is_err() {
                            errors += 1;
                        }
                    }
                    assert!(errors <= 1);
                    assert!(!lenient || errors == 0, "{name}: lenient reading failed");
                }
            }
        }
    }

    /// Builds an Ethernet/IPv4 capture; connection `c` is 10.0.0.1:(40000 + c) -> 10.0.0.2:80.
    struct Cap {
        w: pcap_file::pcap::PcapWriter<Vec<u8>>,
    }

    impl Cap {
        fn new() -> Self {
            Cap {
                w: pcap_file::pcap::PcapWriter::new(Vec::new()).unwrap(),
            }
        }

        /// A segment at `ms` milliseconds; `keep` limits the captured bytes (snaplen).
        #[allow(clippy::too_many_arguments)]
        fn seg(
            &mut self,
            ms: u64,
            c: u16,
            client: bool,
            seq: u32,
            ack: u32,
            flags: u8,
            data: &[u8],
            keep: Option<usize>,
        ) {
            let mut frame = super::test_frame(c, client, seq, ack, flags, data);
            let orig = frame.len() as u32;
            if let Some(k) = keep {
                frame.truncate(k);
            }
            let p = pcap_file::pcap::PcapPacket::new(
                std::time::Duration::from_millis(1_700_000_000_000 + ms),
                orig,
                &frame,
            );
            self.w.write_packet(&p).unwrap();
        }

        /// A whole connection: handshake, request, response, close, from `ms` on, the response
        /// `delay` ms after the request.
        fn conn(&mut self, ms: u64, c: u16, req: &[u8], resp: &[u8], delay: u64) {
            use crate::tcp::{ACK, FIN, SYN};
            let (q, r) = (req.len() as u32, resp.len() as u32);
            self.seg(ms, c, true, 100, 0, SYN, b"", None);
            self.seg(ms, c, false, 500, 101, SYN | ACK, b"", None);
            self.seg(ms, c, true, 101, 501, ACK, req, None);
            self.seg(ms + delay, c, false, 501, 101 + q, ACK | FIN, resp, None);
            self.seg(ms + delay, c, true, 101 + q, 502 + r, ACK | FIN, b"", None);
        }

        fn read(self, opts: ReadOptions) -> (Vec<Exchange>, ReadReport) {
            let bytes = self.w.into_writer();
            let mut r = PcapReader::new(Box::new(std::io::Cursor::new(bytes)), opts).unwrap();
            let v: Vec<Exchange> = r.by_ref().map(|x| x.unwrap()).collect();
            (v, r.report())
        }
    }

    const RESP: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

    #[test]
    fn exchanges_come_out_in_request_order_across_connections() {
        use crate::tcp::{ACK, SYN};
        let mut cap = Cap::new();
        // Connection 0 asks first and is answered last; 1..5 ask later and are answered at once.
        for c in 0..5u16 {
            let ms = u64::from(c) * 10;
            let req = format!("GET /{c} HTTP/1.1\r\n\r\n");
            let q = req.len() as u32;
            cap.seg(ms, c, true, 100, 0, SYN, b"", None);
            cap.seg(ms, c, false, 500, 101, SYN | ACK, b"", None);
            cap.seg(ms, c, true, 101, 501, ACK, req.as_bytes(), None);
            if c > 0 {
                cap.seg(ms + 5, c, false, 501, 101 + q, ACK, RESP, None);
            }
        }
        let q0 = "GET /0 HTTP/1.1\r\n\r\n".len() as u32;
        cap.seg(1000, 0, false, 501, 101 + q0, ACK, RESP, None);
        let (v, _) = cap.read(ReadOptions::default());
        let targets: Vec<&str> = v.iter().map(|e| e.request.target.as_str()).collect();
        assert_eq!(targets, vec!["/0", "/1", "/2", "/3", "/4"]);
        let ids: Vec<Option<u64>> = v.iter().map(|e| e.connection.id).collect();
        assert_eq!(ids, vec![Some(0), Some(1), Some(2), Some(3), Some(4)]);
        assert!(v
            .iter()
            .all(|e| e.response.as_ref().map(|r| r.status) == Some(200)));
    }

    #[test]
    fn reordered_pipelined_requests_keep_their_order() {
        // Found by tests/reassembly_props.rs: the segment with the second pipelined request was
        // captured before the one with the first; both requests must still come out in order.
        use crate::tcp::{ACK, SYN};
        let mut cap = Cap::new();
        let (q1, q2) = (b"GET /1 HTTP/1.1\r\n\r\n", b"GET /2 HTTP/1.1\r\n\r\n");
        let (n1, n2) = (q1.len() as u32, q2.len() as u32);
        cap.seg(0, 0, true, 100, 0, SYN, b"", None);
        cap.seg(1, 0, false, 500, 101, SYN | ACK, b"", None);
        cap.seg(2, 0, true, 101, 501, ACK, b"", None);
        cap.seg(3, 0, true, 101 + n1, 501, ACK, q2, None);
        cap.seg(4, 0, true, 101, 501, ACK, q1, None);
        let r = RESP.len() as u32;
        cap.seg(5, 0, false, 501, 101 + n1 + n2, ACK, RESP, None);
        cap.seg(6, 0, false, 501 + r, 101 + n1 + n2, ACK, RESP, None);
        let (v, _) = cap.read(ReadOptions::default());
        let targets: Vec<&str> = v.iter().map(|e| e.request.target.as_str()).collect();
        assert_eq!(targets, vec!["/1", "/2"]);
        assert!(v.iter().all(|e| e.incomplete.is_none()));
        // The first request was sent before the second was seen.
        assert!(v[0].timing.request_start <= v[1].timing.request_start);
    }

    #[test]
    fn small_clock_steps_back_do_not_reorder() {
        use crate::tcp::ACK;
        let mut cap = Cap::new();
        // An early step back of 150 ms teaches the reader the jitter of this capture.
        cap.seg(150, 9, true, 1, 1, ACK, b"", None);
        cap.seg(0, 9, true, 1, 1, ACK, b"", None);
        // Connection 0: request at 200, answered at 300. Connection 1's request carries an
        // earlier time (180) but is written after connection 0's response.
        let q = b"GET /a HTTP/1.1\r\n\r\n";
        cap.seg(200, 0, true, 1, 1, ACK, q, None);
        cap.seg(300, 0, false, 1, 1 + q.len() as u32, ACK, RESP, None);
        cap.seg(180, 1, true, 1, 1, ACK, b"GET /b HTTP/1.1\r\n\r\n", None);
        cap.seg(310, 1, false, 1, 1 + q.len() as u32, ACK, RESP, None);
        let (v, _) = cap.read(ReadOptions::default());
        let targets: Vec<&str> = v.iter().map(|e| e.request.target.as_str()).collect();
        assert_eq!(targets, vec!["/b", "/a"]);
    }

    #[test]
    fn snaplen_cut_response_keeps_its_head() {
        use crate::tcp::{ACK, FIN};
        let mut cap = Cap::new();
        let q = b"GET /big HTTP/1.1\r\n\r\n";
        let body = vec![b'x'; 1000];
        let resp = [
            &b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"[..],
            &body,
        ]
        .concat();
        cap.seg(0, 0, true, 1, 1, ACK, q, None);
        // Captured up to 54 + 60 bytes: the head and a few body bytes.
        cap.seg(
            5,
            0,
            false,
            1,
            1 + q.len() as u32,
            ACK,
            &resp,
            Some(54 + 60),
        );
        let next = b"GET /next HTTP/1.1\r\n\r\n";
        cap.seg(6, 0, true, 1 + q.len() as u32, 1, ACK, next, None);
        cap.seg(
            7,
            0,
            false,
            1 + resp.len() as u32,
            1 + (q.len() + next.len()) as u32,
            ACK,
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n",
            None,
        );
        cap.seg(
            8,
            0,
            true,
            1 + (q.len() + next.len()) as u32,
            1,
            FIN | ACK,
            b"",
            None,
        );
        let (v, _) = cap.read(ReadOptions::default());
        let first = &v[0];
        assert_eq!(first.response.as_ref().map(|r| r.status), Some(200));
        assert_eq!(first.incomplete, Some(crate::Incomplete::MissingSegments));
        // The stream stays in step after the cut: the next response is whole.
        assert_eq!(v.len(), 2);
        assert_eq!(v[1].response.as_ref().map(|r| r.status), Some(404));
    }

    #[test]
    fn not_http_flows_are_counted_and_dropped() {
        use crate::tcp::ACK;
        let mut cap = Cap::new();
        cap.seg(
            0,
            0,
            true,
            1,
            1,
            ACK,
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 binary tls hello",
            None,
        );
        // Far ahead: would be buffered if the flow were still being reassembled.
        cap.seg(1, 0, true, 100_000, 1, ACK, &[7u8; 1000], None);
        cap.conn(2, 1, b"GET / HTTP/1.1\r\n\r\n", RESP, 1);
        let (v, report) = cap.read(ReadOptions::default());
        assert_eq!(v.len(), 1);
        assert_eq!(report.skipped.get("not_http"), Some(&1));
    }

    #[test]
    fn bad_header_is_an_error_at_byte_0() {
        let e = PcapReader::new(
            Box::new(std::io::Cursor::new(b"<html>not a capture</html>".to_vec())),
            ReadOptions::default(),
        )
        .err()
        .expect("an error");
        assert_eq!(e.location, Some(crate::Location::Byte(0)));
        assert!(e.hint.is_some());
    }

    /// `MYNAH_PCAP_BENCH=FILE [MYNAH_PCAP_BENCH_REPEAT=N] cargo test --release -p mynah-traffic
    /// pcap_throughput -- --ignored --nocapture`: reads FILE (N times) and prints the rate.
    #[test]
    #[ignore = "benchmark: needs MYNAH_PCAP_BENCH"]
    fn pcap_throughput() {
        let path = std::env::var("MYNAH_PCAP_BENCH").expect("set MYNAH_PCAP_BENCH to a capture");
        let repeat: u32 = std::env::var("MYNAH_PCAP_BENCH_REPEAT")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(1);
        let start = std::time::Instant::now();
        let (mut n, mut bodies, mut bytes) = (0u64, 0u64, 0u64);
        let mut skipped = BTreeMap::new();
        for _ in 0..repeat {
            let input = crate::source::maybe_gunzip(std::fs::File::open(&path).unwrap()).unwrap();
            let opts = ReadOptions {
                lenient: true,
                ..ReadOptions::default()
            };
            let mut r = PcapReader::new(input, opts).unwrap();
            for x in r.by_ref() {
                let e = x.unwrap();
                n += 1;
                bodies += e.response.map_or(0, |r| r.body.len() as u64);
            }
            let rep = r.report();
            bytes += rep.bytes_read;
            skipped = rep.skipped;
        }
        let secs = start.elapsed().as_secs_f64();
        println!(
            "{path}: {n} exchanges, {bodies} response body bytes, {} MB in {secs:.2} s = {:.0} MB/s; {skipped:?}",
            bytes / 1_000_000,
            bytes as f64 / 1e6 / secs,
        );
    }
}
