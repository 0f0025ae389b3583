//! pcap and pcapng records from a stream, through one fixed-size buffer.
//!
//! Parsed by hand rather than with `pcap-file`'s parsers: those collect every block's options into
//! vectors, which would be an allocation per packet on the hot path, and they do not report where a
//! file went wrong. Records are handed out as slices of the buffer; nothing is copied or allocated
//! per packet.

use std::io::{self, BufRead, ErrorKind};

use crate::error::{Location, ReadError};
use crate::model::Nanos;

/// Captured bytes above this in one record mean the record header is corrupt (no link carries
/// frames this large; libpcap's own limit is the same).
pub(crate) const MAX_CAPLEN: u32 = 256 * 1024;
/// The read buffer; a packet block must fit in it whole.
const BUF_SIZE: usize = 2 << 20;
/// Blocks above this are taken for corrupt lengths; smaller non-packet blocks are skipped while
/// streaming, so they need not fit in the buffer.
const MAX_BLOCK: u32 = 64 << 20;

const SHB: u32 = 0x0A0D_0D0A;
const IDB: u32 = 1;
const PB: u32 = 2;
const SPB: u32 = 3;
const EPB: u32 = 6;

const NANOS_PER_SEC: i128 = 1_000_000_000;

/// One packet record.
pub(crate) struct RawPacket<'a> {
    pub ts: Nanos,
    pub linktype: u32,
    /// The captured bytes.
    pub data: &'a [u8],
    /// The frame's length on the wire (≥ `data.len()`).
    pub origlen: u32,
}

/// Why reading stopped or a record was passed over.
#[derive(Debug)]
pub(crate) struct FileError {
    pub message: String,
    pub location: Location,
    /// The file ends inside a record.
    pub truncated: bool,
    /// Reading can go on after this record (under `--lenient`).
    pub skippable: bool,
    pub io: bool,
}

impl FileError {
    fn corrupt(message: String, location: Location, skippable: bool) -> Self {
        FileError {
            message,
            location,
            truncated: false,
            skippable,
            io: false,
        }
    }

    fn truncated(message: String, location: Location) -> Self {
        FileError {
            message,
            location,
            truncated: true,
            skippable: false,
            io: false,
        }
    }

    fn io(e: io::Error, location: Location) -> Self {
        FileError {
            message: format!("I/O error: {e}"),
            location,
            truncated: false,
            skippable: false,
            io: true,
        }
    }

    /// The user-facing error (without the count of exchanges read, which the reader adds).
    pub fn to_read_error(&self) -> ReadError {
        let e = ReadError::new(self.message.clone()).at(self.location);
        if self.truncated {
            e.hint("the capture was cut short; `--lenient` reads what is there")
        } else if self.io {
            e
        } else if self.skippable {
            e.hint("`--lenient` skips corrupt records").recoverable()
        } else {
            e.hint("the file is corrupt from here on; `--lenient` keeps what was read before it")
        }
    }
}

/// A fixed buffer over the input that tracks the file offset of what it holds.
struct Feed {
    input: Box<dyn BufRead + Send>,
    buf: Box<[u8]>,
    pos: usize,
    end: usize,
    /// File offset of `buf[0]`.
    base: u64,
    eof: bool,
}

impl Feed {
    fn avail(&self) -> &[u8] {
        self.buf.get(self.pos..self.end).unwrap_or_default()
    }

    fn offset(&self) -> u64 {
        self.base + self.pos as u64
    }

    /// Makes `n` bytes available (`n` ≤ the buffer size); false if the input ends first.
    fn fill(&mut self, n: usize) -> io::Result<bool> {
        if self.end - self.pos >= n {
            return Ok(true);
        }
        if n > self.buf.len() {
            return Ok(false);
        }
        if self.pos + n > self.buf.len() {
            self.buf.copy_within(self.pos..self.end, 0);
            self.base += self.pos as u64;
            self.end -= self.pos;
            self.pos = 0;
        }
        while self.end - self.pos < n {
            if self.eof {
                return Ok(false);
            }
            let Some(space) = self.buf.get_mut(self.end..) else {
                return Ok(false);
            };
            match self.input.read(space) {
                Ok(0) => self.eof = true,
                Ok(r) => self.end += r,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }

    fn consume(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.end);
    }

    /// Skips `n` bytes without buffering them; false if the input ends first.
    fn skip(&mut self, mut n: u64) -> io::Result<bool> {
        loop {
            let have = (self.end - self.pos) as u64;
            if have >= n {
                self.pos += n as usize;
                return Ok(true);
            }
            n -= have;
            self.base += self.end as u64;
            self.pos = 0;
            self.end = 0;
            if !self.fill(1)? {
                return Ok(false);
            }
        }
    }
}

/// pcapng timestamp resolution.
#[derive(Debug, Clone, Copy)]
enum TsRes {
    /// Units of 10^-n seconds.
    Pow10(u8),
    /// Units of 2^-n seconds.
    Pow2(u8),
}

#[derive(Debug, Clone)]
struct Iface {
    linktype: u32,
    snaplen: u32,
    res: TsRes,
    /// `if_tsoffset`, seconds.
    offset: i64,
}

enum Kind {
    Pcap {
        be: bool,
        nanos: bool,
        linktype: u32,
    },
    Ng {
        be: bool,
        ifaces: Vec<Iface>,
        /// Simple packet blocks carry no time: they get the last one seen.
        last_ts: Nanos,
    },
}

/// The records of one capture file.
pub(crate) struct Records {
    feed: Feed,
    kind: Kind,
    packets: u64,
    /// Bytes of the record last returned, consumed on the next call.
    pending: usize,
}

fn u16_at(b: &[u8], at: usize, be: bool) -> u16 {
    let mut x = [0u8; 2];
    if let Some(s) = b.get(at..at + 2) {
        x.copy_from_slice(s);
    }
    if be {
        u16::from_be_bytes(x)
    } else {
        u16::from_le_bytes(x)
    }
}

fn u32_at(b: &[u8], at: usize, be: bool) -> u32 {
    let mut x = [0u8; 4];
    if let Some(s) = b.get(at..at + 4) {
        x.copy_from_slice(s);
    }
    if be {
        u32::from_be_bytes(x)
    } else {
        u32::from_le_bytes(x)
    }
}

fn i64_at(b: &[u8], at: usize, be: bool) -> i64 {
    let mut x = [0u8; 8];
    if let Some(s) = b.get(at..at + 8) {
        x.copy_from_slice(s);
    }
    if be {
        i64::from_be_bytes(x)
    } else {
        i64::from_le_bytes(x)
    }
}

fn clamp_nanos(ns: i128) -> Nanos {
    ns.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as Nanos
}

fn ng_ts(raw: u64, res: TsRes, offset: i64) -> Nanos {
    let raw = i128::from(raw);
    let ns = match res {
        TsRes::Pow10(n) if n <= 9 => raw * 10i128.pow(u32::from(9 - n)),
        TsRes::Pow10(n) if n - 9 <= 38 => raw / 10i128.pow(u32::from(n - 9)),
        TsRes::Pow10(_) => 0,
        TsRes::Pow2(n) if n < 64 => (raw * NANOS_PER_SEC) >> n,
        TsRes::Pow2(_) => 0,
    };
    clamp_nanos(ns + i128::from(offset) * NANOS_PER_SEC)
}

impl Records {
    /// Reads the global header (pcap) or first section header (pcapng).
    pub fn open(input: Box<dyn BufRead + Send>) -> Result<Self, ReadError> {
        let mut feed = Feed {
            input,
            buf: vec![0u8; BUF_SIZE].into_boxed_slice(),
            pos: 0,
            end: 0,
            base: 0,
            eof: false,
        };
        let at0 = Location::Byte(0);
        let io_err = |e: io::Error| ReadError::io(e).at(at0);
        let not_pcap = "mynah reads libpcap .pcap and .pcapng captures (optionally gzipped); \
                        convert other formats with `editcap -F pcapng`";
        feed.fill(24).map_err(io_err)?;
        let head = feed.avail();
        if head.is_empty() {
            return Err(ReadError::new("empty file: no pcap header")
                .at(at0)
                .hint(not_pcap));
        }
        let magic: [u8; 4] = match head.get(..4) {
            Some(m) => [m[0], m[1], m[2], m[3]],
            None => {
                return Err(ReadError::new("file too short for a pcap header")
                    .at(at0)
                    .hint(not_pcap))
            }
        };
        let pcap = match magic {
            [0xd4, 0xc3, 0xb2, 0xa1] => Some((false, false)),
            [0xa1, 0xb2, 0xc3, 0xd4] => Some((true, false)),
            [0x4d, 0x3c, 0xb2, 0xa1] => Some((false, true)),
            [0xa1, 0xb2, 0x3c, 0x4d] => Some((true, true)),
            _ => None,
        };
        if let Some((be, nanos)) = pcap {
            if head.len() < 24 {
                return Err(ReadError::new(format!(
                    "pcap global header cut short: {} of 24 bytes",
                    head.len()
                ))
                .at(at0)
                .hint("the capture was cut short before its first packet"));
            }
            let major = u16_at(head, 4, be);
            if major != 2 {
                return Err(ReadError::new(format!(
                    "unsupported pcap version {major}.{}",
                    u16_at(head, 6, be)
                ))
                .at(Location::Byte(4))
                .hint(not_pcap));
            }
            // The upper bits of the link-type field carry FCS information.
            let linktype = u32_at(head, 20, be) & 0xFFFF;
            feed.consume(24);
            return Ok(Records {
                feed,
                kind: Kind::Pcap {
                    be,
                    nanos,
                    linktype,
                },
                packets: 0,
                pending: 0,
            });
        }
        if magic == SHB.to_le_bytes() {
            // The section header is parsed by `next` like any later one.
            return Ok(Records {
                feed,
                kind: Kind::Ng {
                    be: false,
                    ifaces: Vec::new(),
                    last_ts: 0,
                },
                packets: 0,
                pending: 0,
            });
        }
        let known = match magic {
            [0x34, 0xcd, 0xb2, 0xa1] | [0xa1, 0xb2, 0xcd, 0x34] => {
                " (a Kuznetsov-patched pcap, which mynah does not read)"
            }
            [0x1f, 0x8b, ..] => " (gzip inside gzip?)",
            _ => "",
        };
        Err(ReadError::new(format!(
            "not a pcap or pcapng file: magic number {:02x}{:02x}{:02x}{:02x}{known}",
            magic[0], magic[1], magic[2], magic[3]
        ))
        .at(at0)
        .hint(not_pcap))
    }

    /// Bytes consumed from the input so far.
    pub fn bytes_read(&self) -> u64 {
        self.feed.offset() + self.pending as u64
    }

    /// The next packet, `None` at a clean end of file.
    pub fn next(&mut self) -> Result<Option<RawPacket<'_>>, FileError> {
        self.feed.consume(self.pending);
        self.pending = 0;
        match self.kind {
            Kind::Pcap { .. } => self.next_pcap(),
            Kind::Ng { .. } => self.next_ng(),
        }
    }

    fn next_pcap(&mut self) -> Result<Option<RawPacket<'_>>, FileError> {
        let Kind::Pcap {
            be,
            nanos,
            linktype,
        } = self.kind
        else {
            return Ok(None);
        };
        let at = self.feed.offset();
        let number = self.packets + 1;
        let loc = Location::Packet { number, byte: at };
        if !self.feed.fill(16).map_err(|e| FileError::io(e, loc))? {
            let have = self.feed.avail().len();
            if have == 0 {
                return Ok(None);
            }
            return Err(FileError::truncated(
                format!("the file ends inside the header of packet {number} ({have} of 16 bytes)"),
                loc,
            ));
        }
        let h = self.feed.avail();
        let secs = u32_at(h, 0, be);
        let frac = u32_at(h, 4, be);
        let caplen = u32_at(h, 8, be);
        let origlen = u32_at(h, 12, be);
        if caplen > MAX_CAPLEN {
            return Err(FileError::corrupt(
                format!(
                    "corrupt record header: packet {number} claims {caplen} captured bytes (at most {MAX_CAPLEN} are plausible)"
                ),
                loc,
                false,
            ));
        }
        let need = 16 + caplen as usize;
        if !self.feed.fill(need).map_err(|e| FileError::io(e, loc))? {
            let have = self.feed.avail().len().saturating_sub(16);
            return Err(FileError::truncated(
                format!(
                    "the file ends in the middle of packet {number} ({have} of {caplen} bytes present)"
                ),
                loc,
            ));
        }
        let mult: i64 = if nanos { 1 } else { 1000 };
        let ts = i64::from(secs) * 1_000_000_000 + i64::from(frac) * mult;
        self.packets = number;
        self.pending = need;
        let data = self.feed.avail().get(16..need).unwrap_or_default();
        Ok(Some(RawPacket {
            ts,
            linktype,
            data,
            origlen: origlen.max(caplen),
        }))
    }

    fn next_ng(&mut self) -> Result<Option<RawPacket<'_>>, FileError> {
        loop {
            let Kind::Ng { be, .. } = self.kind else {
                return Ok(None);
            };
            let at = self.feed.offset();
            let number = self.packets + 1;
            let bloc = Location::Byte(at);
            if !self.feed.fill(12).map_err(|e| FileError::io(e, bloc))? {
                let have = self.feed.avail().len();
                if have == 0 {
                    return Ok(None);
                }
                return Err(FileError::truncated(
                    format!("the file ends inside a pcapng block header ({have} bytes)"),
                    bloc,
                ));
            }
            let h = self.feed.avail();
            let mut be = be;
            let btype = u32_at(h, 0, be);
            if btype == SHB {
                be = match h.get(8..12) {
                    Some([0x4d, 0x3c, 0x2b, 0x1a]) => false,
                    Some([0x1a, 0x2b, 0x3c, 0x4d]) => true,
                    _ => {
                        return Err(FileError::corrupt(
                            "pcapng section header with an invalid byte-order magic".into(),
                            bloc,
                            false,
                        ))
                    }
                };
            }
            let blen = u32_at(h, 4, be);
            if blen < 12 || !blen.is_multiple_of(4) || blen > MAX_BLOCK {
                let loc = if matches!(btype, EPB | SPB | PB) {
                    Location::Packet { number, byte: at }
                } else {
                    bloc
                };
                return Err(FileError::corrupt(
                    format!("corrupt pcapng block: type {btype:#x} with length {blen}"),
                    loc,
                    false,
                ));
            }
            let blen_us = blen as usize;
            match btype {
                SHB | IDB => {
                    if blen_us > BUF_SIZE {
                        return Err(FileError::corrupt(
                            format!("pcapng header block of {blen} bytes is implausibly large"),
                            bloc,
                            false,
                        ));
                    }
                    if !self
                        .feed
                        .fill(blen_us)
                        .map_err(|e| FileError::io(e, bloc))?
                    {
                        return Err(FileError::truncated(
                            "the file ends inside a pcapng header block".into(),
                            bloc,
                        ));
                    }
                    let b = self.feed.avail().get(..blen_us).unwrap_or_default();
                    if u32_at(b, blen_us - 4, be) != blen {
                        return Err(FileError::corrupt(
                            "corrupt pcapng block: trailing length differs from the leading one"
                                .into(),
                            bloc,
                            false,
                        ));
                    }
                    if btype == SHB {
                        let major = u16_at(b, 12, be);
                        if major != 1 {
                            return Err(FileError::corrupt(
                                format!("unsupported pcapng version {major}"),
                                bloc,
                                false,
                            ));
                        }
                        self.kind = Kind::Ng {
                            be,
                            ifaces: Vec::new(),
                            last_ts: match self.kind {
                                Kind::Ng { last_ts, .. } => last_ts,
                                Kind::Pcap { .. } => 0,
                            },
                        };
                    } else {
                        let iface = parse_idb(b, be);
                        if let Kind::Ng { ifaces, .. } = &mut self.kind {
                            // Bounded by the file size anyway, but a flood of interfaces is corrupt.
                            if ifaces.len() >= 65_536 {
                                return Err(FileError::corrupt(
                                    "more than 65536 pcapng interfaces".into(),
                                    bloc,
                                    false,
                                ));
                            }
                            ifaces.push(iface);
                        }
                    }
                    self.feed.consume(blen_us);
                }
                EPB | SPB | PB => {
                    let loc = Location::Packet { number, byte: at };
                    if blen_us > BUF_SIZE {
                        self.skip_block(blen, loc)?;
                        self.packets = number;
                        return Err(FileError::corrupt(
                            format!("corrupt pcapng packet block: length {blen}"),
                            loc,
                            true,
                        ));
                    }
                    if !self.feed.fill(blen_us).map_err(|e| FileError::io(e, loc))? {
                        let have = self.feed.avail().len();
                        return Err(FileError::truncated(
                            format!(
                                "the file ends in the middle of packet {number} ({have} of {blen} block bytes present)"
                            ),
                            loc,
                        ));
                    }
                    self.packets = number;
                    let Kind::Ng {
                        ifaces, last_ts, ..
                    } = &mut self.kind
                    else {
                        return Ok(None);
                    };
                    let b = self.feed.avail().get(..blen_us).unwrap_or_default();
                    let bad =
                        |msg: String, skippable: bool| FileError::corrupt(msg, loc, skippable);
                    if u32_at(b, blen_us - 4, be) != blen {
                        return Err(bad(
                            "corrupt pcapng packet block: trailing length differs from the leading one"
                                .into(),
                            false,
                        ));
                    }
                    // The block is whole and its length sound: any error below can be skipped.
                    self.pending = blen_us;
                    let (iface_id, ts_raw, caplen, origlen, data_at) = match btype {
                        SPB => {
                            let origlen = u32_at(b, 8, be);
                            let room = blen - 16;
                            let snap = match ifaces.first() {
                                Some(i) if i.snaplen > 0 => i.snaplen,
                                _ => u32::MAX,
                            };
                            (0u32, None, origlen.min(room).min(snap), origlen, 12usize)
                        }
                        _ => {
                            if blen < 32 {
                                return Err(bad(
                                    format!("pcapng packet block too short ({blen} bytes)"),
                                    true,
                                ));
                            }
                            let iface = if btype == PB {
                                u32::from(u16_at(b, 8, be))
                            } else {
                                u32_at(b, 8, be)
                            };
                            let ts =
                                u64::from(u32_at(b, 12, be)) << 32 | u64::from(u32_at(b, 16, be));
                            (
                                iface,
                                Some(ts),
                                u32_at(b, 20, be),
                                u32_at(b, 24, be),
                                28usize,
                            )
                        }
                    };
                    if caplen > MAX_CAPLEN || data_at + caplen as usize + 4 > blen_us {
                        return Err(bad(
                            format!(
                                "corrupt packet block: {caplen} captured bytes in a {blen}-byte block"
                            ),
                            true,
                        ));
                    }
                    let Some(iface) = ifaces.get(iface_id as usize) else {
                        return Err(bad(
                            format!(
                                "packet {number} names interface {iface_id}, but the section describes {}",
                                ifaces.len()
                            ),
                            true,
                        ));
                    };
                    let ts = match ts_raw {
                        Some(raw) => ng_ts(raw, iface.res, iface.offset),
                        None => *last_ts,
                    };
                    *last_ts = ts;
                    let data = b
                        .get(data_at..data_at + caplen as usize)
                        .unwrap_or_default();
                    return Ok(Some(RawPacket {
                        ts,
                        linktype: iface.linktype,
                        data,
                        origlen: origlen.max(caplen),
                    }));
                }
                _ => self.skip_block(blen, bloc)?,
            }
        }
    }

    fn skip_block(&mut self, blen: u32, loc: Location) -> Result<(), FileError> {
        if !self
            .feed
            .skip(u64::from(blen))
            .map_err(|e| FileError::io(e, loc))?
        {
            return Err(FileError::truncated(
                format!("the file ends inside a pcapng block of {blen} bytes"),
                loc,
            ));
        }
        Ok(())
    }
}

/// An interface description: link type, snap length and the options that change timestamps.
fn parse_idb(b: &[u8], be: bool) -> Iface {
    let mut iface = Iface {
        linktype: u32::from(u16_at(b, 8, be)),
        snaplen: u32_at(b, 12, be),
        res: TsRes::Pow10(6),
        offset: 0,
    };
    let end = b.len().saturating_sub(4);
    let mut at = 16;
    while at + 4 <= end {
        let code = u16_at(b, at, be);
        let len = usize::from(u16_at(b, at + 2, be));
        let val = at + 4;
        if code == 0 || val + len > end {
            break;
        }
        match code {
            9 if len >= 1 => {
                let r = b.get(val).copied().unwrap_or(6);
                iface.res = if r & 0x80 != 0 {
                    TsRes::Pow2(r & 0x7f)
                } else {
                    TsRes::Pow10(r)
                };
            }
            14 if len >= 8 => iface.offset = i64_at(b, val, be),
            _ => {}
        }
        at = val + len.div_ceil(4) * 4;
    }
    iface
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;
    use std::io::Cursor;
    use std::time::Duration;

    fn records(bytes: Vec<u8>) -> Result<Records, ReadError> {
        Records::open(Box::new(Cursor::new(bytes)))
    }

    /// (time, link type, data, original length) of each packet.
    type Packets = Vec<(Nanos, u32, Vec<u8>, u32)>;

    fn all(r: &mut Records) -> (Packets, Option<FileError>) {
        let mut v = Vec::new();
        loop {
            match r.next() {
                Ok(Some(p)) => v.push((p.ts, p.linktype, p.data.to_vec(), p.origlen)),
                Ok(None) => return (v, None),
                Err(e) => return (v, Some(e)),
            }
        }
    }

    fn pcap_file(endianness: pcap_file::Endianness, ts_res: pcap_file::TsResolution) -> Vec<u8> {
        use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
        let header = PcapHeader {
            datalink: pcap_file::DataLink::ETHERNET,
            endianness,
            ts_resolution: ts_res,
            ..Default::default()
        };
        let mut w = PcapWriter::with_header(Vec::new(), header).unwrap();
        for i in 0..3u32 {
            let data = vec![i as u8; 10 + i as usize];
            let p = PcapPacket {
                timestamp: Duration::new(1_600_000_000 + u64::from(i), 123_456_789),
                orig_len: 100,
                data: Cow::Owned(data),
            };
            w.write_packet(&p).unwrap();
        }
        w.into_writer()
    }

    #[test]
    fn pcap_in_both_byte_orders_and_resolutions() {
        use pcap_file::{Endianness, TsResolution};
        for e in [Endianness::Big, Endianness::Little] {
            for res in [TsResolution::MicroSecond, TsResolution::NanoSecond] {
                let bytes = pcap_file(e, res);
                let mut r = records(bytes.clone()).unwrap();
                let (v, err) = all(&mut r);
                assert!(err.is_none(), "{e:?} {res:?}: {err:?}");
                assert_eq!(v.len(), 3);
                let frac = if res == TsResolution::NanoSecond {
                    123_456_789
                } else {
                    123_456_000
                };
                assert_eq!(v[1].0, 1_600_000_001 * 1_000_000_000 + frac);
                assert_eq!(v[2].1, 1);
                assert_eq!(v[2].2, vec![2u8; 12]);
                assert_eq!(v[2].3, 100);
                assert_eq!(r.bytes_read(), bytes.len() as u64);
            }
        }
    }

    #[test]
    fn pcap_cut_short_names_the_packet() {
        let bytes = pcap_file(
            pcap_file::Endianness::Little,
            pcap_file::TsResolution::MicroSecond,
        );
        // Header 24, records of 16 + 10, 16 + 11, 16 + 12: cut inside the third packet's data.
        let cut = 24 + 26 + 27 + 16 + 5;
        let mut r = records(bytes[..cut].to_vec()).unwrap();
        let (v, err) = all(&mut r);
        assert_eq!(v.len(), 2);
        let err = err.unwrap();
        assert!(err.truncated);
        assert_eq!(
            err.location,
            Location::Packet {
                number: 3,
                byte: 24 + 26 + 27
            }
        );
        assert!(err.message.contains("5 of 12 bytes"), "{}", err.message);
        // Cut inside a record header.
        let mut r = records(bytes[..24 + 26 + 3].to_vec()).unwrap();
        let (v, err) = all(&mut r);
        assert_eq!(v.len(), 1);
        assert_eq!(
            err.unwrap().location,
            Location::Packet {
                number: 2,
                byte: 50
            }
        );
    }

    #[test]
    fn absurd_caplen_is_corrupt() {
        let mut bytes = pcap_file(
            pcap_file::Endianness::Little,
            pcap_file::TsResolution::MicroSecond,
        );
        bytes[24 + 26 + 8..24 + 26 + 12].copy_from_slice(&(1u32 << 30).to_le_bytes());
        let mut r = records(bytes).unwrap();
        let (v, err) = all(&mut r);
        assert_eq!(v.len(), 1);
        let err = err.unwrap();
        assert!(!err.truncated && !err.skippable);
        assert_eq!(
            err.location,
            Location::Packet {
                number: 2,
                byte: 50
            }
        );
    }

    #[test]
    fn bad_global_headers() {
        for (bytes, what) in [
            (Vec::new(), "empty"),
            (b"GET / HTTP/1.1\r\n\r\n........".to_vec(), "not a pcap"),
            (vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0], "cut short"),
        ] {
            let e = records(bytes).err().expect(what);
            assert_eq!(e.location, Some(Location::Byte(0)), "{what}");
            assert!(e.hint.is_some());
            assert!(e.message.contains(what), "{what}: {}", e.message);
        }
    }

    /// A pcapng block with the given body, in either byte order.
    fn block(be: bool, btype: u32, body: &[u8]) -> Vec<u8> {
        let pad = body.len().div_ceil(4) * 4;
        let len = (12 + pad) as u32;
        let w = |x: u32| if be { x.to_be_bytes() } else { x.to_le_bytes() };
        let mut v = Vec::new();
        v.extend_from_slice(&w(btype));
        v.extend_from_slice(&w(len));
        v.extend_from_slice(body);
        v.resize(8 + pad, 0);
        v.extend_from_slice(&w(len));
        v
    }

    struct Ng {
        be: bool,
        out: Vec<u8>,
    }

    impl Ng {
        fn u16(&self, x: u16) -> [u8; 2] {
            if self.be {
                x.to_be_bytes()
            } else {
                x.to_le_bytes()
            }
        }
        fn u32(&self, x: u32) -> [u8; 4] {
            if self.be {
                x.to_be_bytes()
            } else {
                x.to_le_bytes()
            }
        }
        fn shb(&mut self) {
            let mut b = Vec::new();
            b.extend_from_slice(&self.u32(0x1A2B_3C4D));
            b.extend_from_slice(&self.u16(1));
            b.extend_from_slice(&self.u16(0));
            b.extend_from_slice(&(-1i64).to_le_bytes());
            let blk = block(self.be, SHB, &b);
            self.out.extend(blk);
        }
        fn idb(&mut self, linktype: u16, tsresol: Option<u8>, offset: Option<i64>) {
            let mut b = Vec::new();
            b.extend_from_slice(&self.u16(linktype));
            b.extend_from_slice(&self.u16(0));
            b.extend_from_slice(&self.u32(65535));
            if let Some(r) = tsresol {
                b.extend_from_slice(&self.u16(9));
                b.extend_from_slice(&self.u16(1));
                b.extend_from_slice(&[r, 0, 0, 0]);
            }
            if let Some(o) = offset {
                b.extend_from_slice(&self.u16(14));
                b.extend_from_slice(&self.u16(8));
                b.extend_from_slice(&if self.be {
                    o.to_be_bytes()
                } else {
                    o.to_le_bytes()
                });
            }
            b.extend_from_slice(&[0, 0, 0, 0]);
            let blk = block(self.be, IDB, &b);
            self.out.extend(blk);
        }
        fn epb(&mut self, iface: u32, ts: u64, data: &[u8], origlen: u32) {
            let mut b = Vec::new();
            b.extend_from_slice(&self.u32(iface));
            b.extend_from_slice(&self.u32((ts >> 32) as u32));
            b.extend_from_slice(&self.u32(ts as u32));
            b.extend_from_slice(&self.u32(data.len() as u32));
            b.extend_from_slice(&self.u32(origlen));
            b.extend_from_slice(data);
            let blk = block(self.be, EPB, &b);
            self.out.extend(blk);
        }
        fn pb(&mut self, iface: u16, ts: u64, data: &[u8]) {
            let mut b = Vec::new();
            b.extend_from_slice(&self.u16(iface));
            b.extend_from_slice(&self.u16(0));
            b.extend_from_slice(&self.u32((ts >> 32) as u32));
            b.extend_from_slice(&self.u32(ts as u32));
            b.extend_from_slice(&self.u32(data.len() as u32));
            b.extend_from_slice(&self.u32(data.len() as u32));
            b.extend_from_slice(data);
            let blk = block(self.be, PB, &b);
            self.out.extend(blk);
        }
        fn spb(&mut self, data: &[u8]) {
            let mut b = Vec::new();
            b.extend_from_slice(&self.u32(data.len() as u32));
            b.extend_from_slice(data);
            let blk = block(self.be, SPB, &b);
            self.out.extend(blk);
        }
        fn other(&mut self, btype: u32, len: usize) {
            let blk = block(self.be, btype, &vec![7u8; len]);
            self.out.extend(blk);
        }
    }

    #[test]
    fn pcapng_interfaces_resolutions_and_block_kinds() {
        for be in [false, true] {
            let mut g = Ng {
                be,
                out: Vec::new(),
            };
            g.shb();
            g.idb(1, None, None); // Ethernet, microseconds
            g.idb(101, Some(9), Some(10)); // raw IP, nanoseconds, +10 s
            g.idb(113, Some(0x80 | 10), None); // SLL, 2^-10 s
            g.other(5, 40); // interface statistics: skipped
            g.epb(0, 1_500_000_000_000_001, b"abc", 3);
            g.epb(1, 1_500_000_000_000_000_002, b"defg", 60);
            g.epb(2, 1024 * 3 + 512, b"h", 1);
            g.other(0x0BAD, 3_000_000); // large custom block: skipped while streaming
            g.pb(1, 7, b"pb");
            g.spb(b"simple");
            // A second section in the other byte order, with its own interfaces.
            let mut h = Ng {
                be: !be,
                out: Vec::new(),
            };
            h.shb();
            h.idb(239, None, None);
            h.epb(0, 5, b"nflog", 5);
            g.out.extend(h.out);
            let total = g.out.len() as u64;
            let mut r = records(g.out).unwrap();
            let (v, err) = all(&mut r);
            assert!(err.is_none(), "{err:?}");
            let got: Vec<(Nanos, u32, &[u8], u32)> = v
                .iter()
                .map(|(t, l, d, o)| (*t, *l, d.as_slice(), *o))
                .collect();
            assert_eq!(
                got,
                vec![
                    (1_500_000_000_000_001_000, 1, &b"abc"[..], 3),
                    (1_500_000_010_000_000_002, 101, &b"defg"[..], 60),
                    (3_500_000_000, 113, &b"h"[..], 1),
                    (10_000_000_007, 101, &b"pb"[..], 2),
                    (10_000_000_007, 1, &b"simple"[..], 6),
                    (5_000, 239, &b"nflog"[..], 5),
                ],
                "be={be}"
            );
            assert_eq!(r.bytes_read(), total);
        }
    }

    #[test]
    fn pcapng_errors() {
        // A packet naming an unknown interface is skippable.
        let mut g = Ng {
            be: false,
            out: Vec::new(),
        };
        g.shb();
        g.idb(1, None, None);
        g.epb(3, 1, b"x", 1);
        g.epb(0, 1, b"y", 1);
        let mut r = records(g.out).unwrap();
        let e = match r.next() {
            Err(e) => e,
            Ok(_) => panic!("expected an error"),
        };
        assert!(e.skippable);
        assert!(matches!(e.location, Location::Packet { number: 1, .. }));
        assert_eq!(r.next().unwrap().unwrap().data, b"y");

        // Cut inside a packet block.
        let mut g = Ng {
            be: true,
            out: Vec::new(),
        };
        g.shb();
        g.idb(1, None, None);
        g.epb(0, 1, b"abcdefgh", 8);
        let len = g.out.len();
        g.out.truncate(len - 6);
        let mut r = records(g.out).unwrap();
        let e = match r.next() {
            Err(e) => e,
            Ok(_) => panic!("expected an error"),
        };
        assert!(e.truncated);
        assert!(matches!(e.location, Location::Packet { number: 1, .. }));

        // A block length that is not a multiple of 4.
        let mut g = Ng {
            be: false,
            out: Vec::new(),
        };
        g.shb();
        g.out
            .extend_from_slice(&[6, 0, 0, 0, 13, 0, 0, 0, 0, 0, 0, 0, 0]);
        let mut r = records(g.out).unwrap();
        assert!(matches!(
            r.next(),
            Err(FileError {
                skippable: false,
                truncated: false,
                ..
            })
        ));
    }
}
