//! From a captured frame to a TCP segment: link layers, IPv4/IPv6 and the TCP header.
//!
//! Hand-decoded rather than with etherparse: besides IP and TCP this needs link types etherparse
//! does not know (NULL/LOOP, SLL2, NFLOG, radiotap/802.11, PPPoE, PPI, Prism, AVS), and the
//! snaplen arithmetic needs the IP total length next to the captured length. Every read is
//! bounds-checked; nothing here allocates.

use crate::tcp::{Endpoint, Segment};

/// Why a frame gave no TCP segment (the names are `ReadReport::skipped` keys, counted per packet).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Skip {
    UnsupportedLink,
    NotTcp,
    Fragment,
    /// Headers that contradict themselves.
    Malformed,
    /// The capture cut the frame before the end of the TCP header.
    Truncated,
}

impl Skip {
    pub const ALL: [Skip; 5] = [
        Skip::UnsupportedLink,
        Skip::NotTcp,
        Skip::Fragment,
        Skip::Malformed,
        Skip::Truncated,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Skip::UnsupportedLink => "unsupported_link_type",
            Skip::NotTcp => "not_tcp",
            Skip::Fragment => "ip_fragment",
            Skip::Malformed => "malformed_packet",
            Skip::Truncated => "truncated_packet",
        }
    }
}

/// An IP packet found inside a link layer.
enum Net<'a> {
    V4(&'a [u8]),
    V6(&'a [u8]),
    /// An IP packet whose version the first nibble tells.
    Ip(&'a [u8]),
}

const ETH_IPV4: u16 = 0x0800;
const ETH_IPV6: u16 = 0x86DD;
const ETH_VLAN: u16 = 0x8100;
const ETH_QINQ: u16 = 0x88A8;
const ETH_QINQ_OLD: u16 = 0x9100;
const ETH_QINQ_OLD2: u16 = 0x9200;
const ETH_PPPOE: u16 = 0x8864;
const ETH_MPLS: u16 = 0x8847;
const ETH_MPLS_MC: u16 = 0x8848;

#[inline]
fn be16(b: &[u8], at: usize) -> Option<u16> {
    let s = b.get(at..at + 2)?;
    Some(u16::from_be_bytes([s[0], s[1]]))
}

#[inline]
fn be32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at + 4)?;
    Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

#[inline]
fn le16(b: &[u8], at: usize) -> Option<u16> {
    let s = b.get(at..at + 2)?;
    Some(u16::from_le_bytes([s[0], s[1]]))
}

#[inline]
fn le32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at + 4)?;
    Some(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

/// Decodes one frame of `linktype`; `origlen` is its length on the wire.
pub(crate) fn decode(linktype: u32, frame: &[u8], origlen: u32) -> Result<Segment<'_>, Skip> {
    let cut = origlen.saturating_sub(frame.len() as u32);
    let short = if cut > 0 {
        Skip::Truncated
    } else {
        Skip::Malformed
    };
    let net = link(linktype, frame, 0).ok_or(short)??;
    ip(net, cut, 0)
}

/// `None`: the frame is too short for its headers. `Some(Err)`: no IP inside.
fn link(linktype: u32, f: &[u8], depth: u8) -> Option<Result<Net<'_>, Skip>> {
    Some(match linktype {
        // Ethernet
        1 => ethernet(f)?,
        // NULL (host byte order AF) and LOOP (network byte order, though writers differ)
        0 | 108 => {
            let le = le32(f, 0)?;
            let af = if le <= 0xFFFF { le } else { be32(f, 0)? };
            let rest = f.get(4..)?;
            match af {
                2 => Ok(Net::V4(rest)),
                10 | 23 | 24 | 28 | 30 => Ok(Net::V6(rest)),
                _ => Err(Skip::NotTcp),
            }
        }
        // Raw IP (DLT_RAW has three numbers across platforms)
        101 | 12 | 14 => Ok(Net::Ip(f)),
        228 => Ok(Net::V4(f)),
        229 => Ok(Net::V6(f)),
        // Linux cooked capture v1 and v2
        113 => ether_type(be16(f, 14)?, f.get(16..)?, 0)?,
        276 => ether_type(be16(f, 0)?, f.get(20..)?, 0)?,
        239 => nflog(f)?,
        // 802.11 with radiotap, plain 802.11, Prism and AVS headers
        127 => {
            let len = usize::from(le16(f, 2)?);
            wifi(f.get(len..)?)?
        }
        105 => wifi(f)?,
        119 => {
            let len = le32(f, 4)? as usize;
            wifi(f.get(len..)?)?
        }
        163 => {
            let len = be32(f, 4)? as usize;
            wifi(f.get(len..)?)?
        }
        // PPI: its own header, then the frame of the link type it names
        192 if depth < 2 => {
            let len = usize::from(le16(f, 2)?);
            let dlt = le32(f, 4)?;
            return link(dlt, f.get(len..)?, depth + 1);
        }
        // PPP, PPP in HDLC framing
        9 | 50 => {
            let rest = match f {
                [0xff, 0x03, rest @ ..] => rest,
                _ => f,
            };
            ppp(rest)?
        }
        // Cisco HDLC: address, control, EtherType
        104 => ether_type(be16(f, 2)?, f.get(4..)?, 0)?,
        _ => Err(Skip::UnsupportedLink),
    })
}

fn ethernet(f: &[u8]) -> Option<Result<Net<'_>, Skip>> {
    let t = be16(f, 12)?;
    let rest = f.get(14..)?;
    if t <= 1500 {
        // 802.3 length field: IP only with LLC/SNAP.
        return llc(rest);
    }
    ether_type(t, rest, 0)
}

fn llc(rest: &[u8]) -> Option<Result<Net<'_>, Skip>> {
    match rest {
        [0xAA, 0xAA, 0x03, _, _, _, t0, t1, payload @ ..] => {
            ether_type(u16::from_be_bytes([*t0, *t1]), payload, 0)
        }
        _ => Some(Err(Skip::NotTcp)),
    }
}

fn ether_type(t: u16, rest: &[u8], depth: u8) -> Option<Result<Net<'_>, Skip>> {
    if depth > 8 {
        return Some(Err(Skip::Malformed));
    }
    Some(match t {
        ETH_IPV4 => Ok(Net::V4(rest)),
        ETH_IPV6 => Ok(Net::V6(rest)),
        ETH_VLAN | ETH_QINQ | ETH_QINQ_OLD | ETH_QINQ_OLD2 => {
            return ether_type(be16(rest, 2)?, rest.get(4..)?, depth + 1)
        }
        ETH_PPPOE => {
            // version/type, code, session id, length; then the PPP protocol.
            let len = usize::from(be16(rest, 4)?);
            let body = rest.get(6..)?;
            let body = body.get(..len.min(body.len()))?;
            return ppp(body);
        }
        ETH_MPLS | ETH_MPLS_MC => {
            let mut at = 0;
            loop {
                let entry = rest.get(at..at + 4)?;
                at += 4;
                if entry[2] & 1 != 0 {
                    break;
                }
                if at > 64 {
                    return Some(Err(Skip::Malformed));
                }
            }
            let payload = rest.get(at..)?;
            match payload.first()? >> 4 {
                4 | 6 => Ok(Net::Ip(payload)),
                _ => Err(Skip::NotTcp),
            }
        }
        _ => Err(Skip::NotTcp),
    })
}

fn ppp(b: &[u8]) -> Option<Result<Net<'_>, Skip>> {
    // A protocol field with an odd first byte is the one-byte compressed form.
    let (proto, rest) = match b.first()? {
        p if p & 1 == 1 => (u16::from(*p), b.get(1..)?),
        _ => (be16(b, 0)?, b.get(2..)?),
    };
    Some(match proto {
        0x0021 => Ok(Net::V4(rest)),
        0x0057 => Ok(Net::V6(rest)),
        _ => Err(Skip::NotTcp),
    })
}

/// An 802.11 frame: data frames carry LLC/SNAP and then the EtherType.
fn wifi(f: &[u8]) -> Option<Result<Net<'_>, Skip>> {
    let fc0 = *f.first()?;
    let fc1 = *f.get(1)?;
    let ftype = (fc0 >> 2) & 3;
    let subtype = fc0 >> 4;
    if ftype != 2 || subtype & 0x4 != 0 {
        // Management, control, and data frames without a body (null, CF-only).
        return Some(Err(Skip::NotTcp));
    }
    if fc1 & 0x40 != 0 {
        // Protected (encrypted) frame.
        return Some(Err(Skip::NotTcp));
    }
    let mut hl = 24;
    if fc1 & 0x03 == 0x03 {
        hl += 6; // four addresses (WDS)
    }
    if subtype & 0x8 != 0 {
        hl += 2; // QoS control
        if fc1 & 0x80 != 0 {
            hl += 4; // HT control
        }
    }
    llc(f.get(hl..)?)
}

/// NFLOG: a netfilter header, then TLVs (in the capturing host's byte order) one of which is the
/// IP packet.
fn nflog(f: &[u8]) -> Option<Result<Net<'_>, Skip>> {
    let family = *f.first()?;
    let tlvs = f.get(4..)?;
    for le in [true, false] {
        let mut at = 0;
        while at + 4 <= tlvs.len() {
            let (len, typ) = if le {
                (le16(tlvs, at)?, le16(tlvs, at + 2)?)
            } else {
                (be16(tlvs, at)?, be16(tlvs, at + 2)?)
            };
            let len = usize::from(len);
            if len < 4 || at + len > tlvs.len() {
                break;
            }
            if typ & 0x3FFF == 9 {
                let payload = tlvs.get(at + 4..at + len)?;
                return Some(Ok(match family {
                    2 => Net::V4(payload),
                    10 => Net::V6(payload),
                    _ => Net::Ip(payload),
                }));
            }
            at += len.div_ceil(4) * 4;
        }
    }
    Some(Err(Skip::NotTcp))
}

fn ip(net: Net<'_>, cut: u32, depth: u8) -> Result<Segment<'_>, Skip> {
    let short = if cut > 0 {
        Skip::Truncated
    } else {
        Skip::Malformed
    };
    let p = match net {
        Net::V4(p) | Net::V6(p) | Net::Ip(p) => p,
    };
    let version = p.first().ok_or(short)? >> 4;
    match (net, version) {
        (Net::V4(_) | Net::Ip(_), 4) => ipv4(p, cut, depth),
        (Net::V6(_) | Net::Ip(_), 6) => ipv6(p, cut, depth),
        _ => Err(Skip::Malformed),
    }
}

/// The bytes of a packet that claims `total` bytes of which `avail` were captured: what to read,
/// and how many of the claimed bytes the capture cut (never more than the frame lost).
fn extent(total: usize, avail: usize, cut: u32) -> (usize, u32) {
    let end = total.min(avail);
    let missing = (total - end).min(cut as usize) as u32;
    (end, missing)
}

fn ipv4(p: &[u8], cut: u32, depth: u8) -> Result<Segment<'_>, Skip> {
    let short = if cut > 0 {
        Skip::Truncated
    } else {
        Skip::Malformed
    };
    let ihl = usize::from(p.first().ok_or(short)? & 0x0F) * 4;
    if ihl < 20 {
        return Err(Skip::Malformed);
    }
    if p.len() < ihl {
        return Err(short);
    }
    let total = usize::from(be16(p, 2).ok_or(short)?);
    // A zero total length is what TCP segmentation offload leaves in outgoing captures.
    let total = if total == 0 {
        p.len() + cut as usize
    } else {
        total
    };
    if total < ihl {
        return Err(Skip::Malformed);
    }
    let frag = be16(p, 6).ok_or(short)?;
    if frag & 0x3FFF != 0 {
        return Err(Skip::Fragment);
    }
    let proto = p[9];
    let (end, missing) = extent(total, p.len(), cut);
    let body = p.get(ihl..end).ok_or(short)?;
    let mut src = [0u8; 4];
    let mut dst = [0u8; 4];
    src.copy_from_slice(&p[12..16]);
    dst.copy_from_slice(&p[16..20]);
    match proto {
        6 => tcp(
            body,
            total - ihl,
            missing,
            |port| Endpoint::v4(src, port),
            |port| Endpoint::v4(dst, port),
        ),
        4 if depth < 2 => ipv4(body, missing, depth + 1),
        41 if depth < 2 => ipv6(body, missing, depth + 1),
        _ => Err(Skip::NotTcp),
    }
}

fn ipv6(p: &[u8], cut: u32, depth: u8) -> Result<Segment<'_>, Skip> {
    let short = if cut > 0 {
        Skip::Truncated
    } else {
        Skip::Malformed
    };
    if p.len() < 40 {
        return Err(short);
    }
    let plen = usize::from(be16(p, 4).ok_or(short)?);
    // Zero: a jumbogram, or segmentation offload; take what the frame holds.
    let total = if plen == 0 {
        p.len() + cut as usize
    } else {
        40 + plen
    };
    let (end, missing) = extent(total, p.len(), cut);
    let mut next = p[6];
    let mut at = 40;
    for _ in 0..16 {
        match next {
            // Hop-by-hop, routing, destination options, mobility, HIP, shim6
            0 | 43 | 60 | 135 | 139 | 140 => {
                let h = p.get(at..at + 2).filter(|_| at + 2 <= end).ok_or(short)?;
                next = h[0];
                at += (usize::from(h[1]) + 1) * 8;
            }
            44 => {
                let h = p.get(at..at + 8).filter(|_| at + 8 <= end).ok_or(short)?;
                let fo = u16::from_be_bytes([h[2], h[3]]);
                if fo & 0xFFF9 != 0 {
                    return Err(Skip::Fragment);
                }
                next = h[0];
                at += 8;
            }
            51 => {
                let h = p.get(at..at + 2).filter(|_| at + 2 <= end).ok_or(short)?;
                next = h[0];
                at += (usize::from(h[1]) + 2) * 4;
            }
            6 => {
                let body = p.get(at..end).ok_or(short)?;
                let mut src = [0u8; 16];
                let mut dst = [0u8; 16];
                src.copy_from_slice(&p[8..24]);
                dst.copy_from_slice(&p[24..40]);
                return tcp(
                    body,
                    total.checked_sub(at).ok_or(Skip::Malformed)?,
                    missing,
                    |port| Endpoint::v6(src, port),
                    |port| Endpoint::v6(dst, port),
                );
            }
            4 if depth < 2 => return ipv4(p.get(at..end).ok_or(short)?, missing, depth + 1),
            41 if depth < 2 => return ipv6(p.get(at..end).ok_or(short)?, missing, depth + 1),
            _ => return Err(Skip::NotTcp),
        }
    }
    Err(Skip::Malformed)
}

/// `seg` holds the captured part of a TCP segment the IP header says is `total` bytes long, of
/// which `missing` were cut by the capture.
fn tcp<'a>(
    seg: &'a [u8],
    total: usize,
    missing: u32,
    src: impl FnOnce(u16) -> Endpoint,
    dst: impl FnOnce(u16) -> Endpoint,
) -> Result<Segment<'a>, Skip> {
    let short = if missing > 0 {
        Skip::Truncated
    } else {
        Skip::Malformed
    };
    if seg.len() < 20 {
        return Err(short);
    }
    let doff = usize::from(seg[12] >> 4) * 4;
    if doff < 20 || total < doff {
        return Err(Skip::Malformed);
    }
    let payload = seg.get(doff..).ok_or(short)?;
    Ok(Segment {
        // The record's time; the reader sets it (link layers carry none).
        ts: 0,
        src: src(u16::from_be_bytes([seg[0], seg[1]])),
        dst: dst(u16::from_be_bytes([seg[2], seg[3]])),
        seq: u32::from_be_bytes([seg[4], seg[5], seg[6], seg[7]]),
        ack: u32::from_be_bytes([seg[8], seg[9], seg[10], seg[11]]),
        flags: seg[13],
        payload,
        missing,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pcap::file::Records;

    pub(crate) const DATA: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/data/traffic/pcap/"
    );

    pub(crate) fn open(name: &str) -> Records {
        let path = format!("{DATA}{name}");
        let f = std::fs::File::open(&path).unwrap_or_else(|e| {
            panic!("test capture {path} missing ({e}): see shared/data/traffic")
        });
        Records::open(crate::source::maybe_gunzip(f).unwrap()).unwrap()
    }

    /// (TCP segments decoded, skips by reason, packets), reading up to a truncation.
    fn census(name: &str) -> (u64, std::collections::BTreeMap<&'static str, u64>, u64) {
        let mut r = open(name);
        let (mut tcp, mut n) = (0, 0);
        let mut skips = std::collections::BTreeMap::new();
        while let Ok(Some(p)) = r.next() {
            n += 1;
            match decode(p.linktype, p.data, p.origlen) {
                Ok(_) => tcp += 1,
                Err(s) => *skips.entry(s.name()).or_default() += 1,
            }
        }
        (tcp, skips, n)
    }

    fn ip4(payload: &[u8]) -> Vec<u8> {
        let b = etherparse::PacketBuilder::ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .tcp(40000, 80, 1000, 100)
            .ack(7)
            .psh();
        let mut v = Vec::new();
        b.write(&mut v, payload).unwrap();
        v
    }

    fn ip6(payload: &[u8]) -> Vec<u8> {
        let mut src = [0u8; 16];
        src[15] = 1;
        let mut dst = [0u8; 16];
        dst[15] = 2;
        let b = etherparse::PacketBuilder::ipv6(src, dst, 64)
            .tcp(40000, 8080, 5, 100)
            .ack(9);
        let mut v = Vec::new();
        b.write(&mut v, payload).unwrap();
        v
    }

    fn eth(ethertype: u16, inner: &[u8]) -> Vec<u8> {
        let mut v = vec![0u8; 12];
        v.extend_from_slice(&ethertype.to_be_bytes());
        v.extend_from_slice(inner);
        v
    }

    fn ok(linktype: u32, frame: &[u8]) -> Segment<'_> {
        decode(linktype, frame, frame.len() as u32)
            .unwrap_or_else(|e| panic!("linktype {linktype}: {e:?}"))
    }

    #[test]
    fn link_layers_around_ipv4() {
        let ip = ip4(b"hello");
        let mut frames: Vec<(u32, Vec<u8>)> = vec![
            (101, ip.clone()),
            (12, ip.clone()),
            (228, ip.clone()),
            (0, [&[2u8, 0, 0, 0][..], &ip].concat()),
            (0, [&[0u8, 0, 0, 2][..], &ip].concat()),
            (108, [&[0u8, 0, 0, 2][..], &ip].concat()),
            (1, eth(0x0800, &ip)),
            // Ethernet padding after a short packet is not payload.
            (1, [eth(0x0800, &ip), vec![0; 9]].concat()),
            (1, eth(0x8100, &[&[0u8, 5, 8, 0][..], &ip].concat())),
            (
                1,
                eth(0x88a8, &[&[0u8, 5, 0x81, 0, 0, 6, 8, 0][..], &ip].concat()),
            ),
            (
                1,
                eth(0x9100, &[&[0u8, 5, 0x81, 0, 0, 6, 8, 0][..], &ip].concat()),
            ),
            // PPPoE session: ver/type, code, session, length, PPP protocol 0x0021
            (
                1,
                eth(
                    0x8864,
                    &[
                        &[0x11u8, 0, 0, 1][..],
                        &((ip.len() + 2) as u16).to_be_bytes(),
                        &[0, 0x21],
                        &ip,
                    ]
                    .concat(),
                ),
            ),
            // MPLS: two labels, the second with bottom-of-stack
            (
                1,
                eth(
                    0x8847,
                    &[&[0u8, 1, 0x20, 64, 0, 2, 0x21, 64][..], &ip].concat(),
                ),
            ),
            // 802.3 length with LLC/SNAP
            (
                1,
                [
                    &[0u8; 12][..],
                    &((ip.len() + 8) as u16).to_be_bytes(),
                    &[0xAA, 0xAA, 3, 0, 0, 0, 8, 0],
                    &ip,
                ]
                .concat(),
            ),
            // Linux cooked v1 and v2
            (113, [&[0u8; 14][..], &[8, 0], &ip].concat()),
            (276, [&[8u8, 0][..], &[0; 18], &ip].concat()),
            // PPI around Ethernet
            (
                192,
                [&[0u8, 0, 8, 0, 1, 0, 0, 0][..], &eth(0x0800, &ip)].concat(),
            ),
            // PPP in HDLC framing
            (50, [&[0xffu8, 0x03, 0x00, 0x21][..], &ip].concat()),
            // 802.11 QoS data frame (subtype 8), radiotap header of 8 bytes
            (
                127,
                [
                    &[0u8, 0, 8, 0, 0, 0, 0, 0][..],
                    &[0x88, 0x01],
                    &[0; 22],
                    &[0, 0],
                    &[0xAA, 0xAA, 3, 0, 0, 0, 8, 0],
                    &ip,
                ]
                .concat(),
            ),
        ];
        // NFLOG with TLVs in little-endian order: a prefix TLV, then the payload TLV (type 9).
        let mut nf = vec![2u8, 0, 0, 0];
        nf.extend_from_slice(&[8, 0, 10, 0, b'x', b'y', 0, 0]);
        nf.extend_from_slice(&((ip.len() + 4) as u16).to_le_bytes());
        nf.extend_from_slice(&9u16.to_le_bytes());
        nf.extend_from_slice(&ip);
        frames.push((239, nf));
        for (lt, f) in &frames {
            let t = ok(*lt, f);
            assert_eq!(t.payload, b"hello", "linktype {lt}");
            assert_eq!((t.src.port, t.dst.port, t.seq, t.ack), (40000, 80, 1000, 7));
            assert_eq!(t.src.socket_addr().to_string(), "10.0.0.1:40000");
            assert_eq!(t.missing, 0);
        }
        assert_eq!(
            decode(147, &ip, ip.len() as u32).unwrap_err(),
            Skip::UnsupportedLink
        );
        // 802.11 management frame and protected data frame.
        assert_eq!(decode(105, &[0x80, 0, 0, 0], 4).unwrap_err(), Skip::NotTcp);
        assert_eq!(
            decode(105, &[0x08, 0x40, 0, 0], 4).unwrap_err(),
            Skip::NotTcp
        );
        // ARP
        assert_eq!(
            decode(1, &eth(0x0806, &[0; 28]), 42).unwrap_err(),
            Skip::NotTcp
        );
    }

    #[test]
    fn ipv6_extension_headers_and_fragments() {
        let ip = ip6(b"payload");
        let t = ok(229, &ip);
        assert_eq!((t.payload, t.dst.port), (&b"payload"[..], 8080));
        assert_eq!(t.dst.socket_addr().to_string(), "[::2]:8080");
        // Insert hop-by-hop (8 bytes) and an atomic fragment header before TCP.
        let (hdr, tcp) = ip.split_at(40);
        let mut h = hdr.to_vec();
        h[6] = 0; // next: hop-by-hop
        let plen = u16::from_be_bytes([h[4], h[5]]) + 16;
        h[4..6].copy_from_slice(&plen.to_be_bytes());
        let hop = [44u8, 0, 1, 4, 0, 0, 0, 0];
        let frag = [6u8, 0, 0, 0, 0, 0, 0, 1];
        let pkt = [&h[..], &hop, &frag, tcp].concat();
        assert_eq!(ok(229, &pkt).payload, b"payload");
        // A real fragment (more-fragments set) is skipped.
        let frag_mf = [6u8, 0, 0, 1, 0, 0, 0, 1];
        let pkt = [&h[..], &hop, &frag_mf, tcp].concat();
        assert_eq!(
            decode(229, &pkt, pkt.len() as u32).unwrap_err(),
            Skip::Fragment
        );
        // UDP
        let mut u = ip.clone();
        u[6] = 17;
        assert_eq!(decode(229, &u, u.len() as u32).unwrap_err(), Skip::NotTcp);
    }

    #[test]
    fn ipv4_snaplen_fragments_and_offload() {
        let ip = ip4(&[b'x'; 100]);
        // Captured with a snaplen that keeps 10 payload bytes of 100.
        let cut = &ip[..40 + 10];
        let t = decode(101, cut, ip.len() as u32).unwrap();
        assert_eq!((t.payload.len(), t.missing), (10, 90));
        // Cut inside the TCP header: no segment.
        assert_eq!(
            decode(101, &ip[..30], ip.len() as u32).unwrap_err(),
            Skip::Truncated
        );
        // An IP length larger than the frame, without any capture cut, is not a gap.
        let mut liar = ip.clone();
        liar[2..4].copy_from_slice(&500u16.to_be_bytes());
        assert_eq!(decode(101, &liar, liar.len() as u32).unwrap().missing, 0);
        // Fragments: more-fragments, or an offset.
        for flags in [0x20u8, 0x00] {
            let mut f = ip.clone();
            f[6] = flags;
            f[7] = if flags == 0 { 8 } else { 0 };
            assert_eq!(decode(101, &f, f.len() as u32).unwrap_err(), Skip::Fragment);
        }
        // Don't-fragment is fine; a zero total length (segmentation offload) takes the frame.
        let mut tso = ip.clone();
        tso[6] = 0x40;
        tso[2..4].copy_from_slice(&[0, 0]);
        assert_eq!(
            decode(101, &tso, tso.len() as u32).unwrap().payload.len(),
            100
        );
        // IPv4 options.
        let mut opt = ip.clone();
        opt[0] = 0x46;
        opt.splice(20..20, [1u8, 1, 1, 0]);
        let total = (ip.len() + 4) as u16;
        opt[2..4].copy_from_slice(&total.to_be_bytes());
        assert_eq!(ok(101, &opt).payload.len(), 100);
        // Garbage never panics.
        for n in 0..60 {
            for lt in [0u32, 1, 9, 101, 105, 113, 127, 192, 239, 276] {
                let _ = decode(lt, &ip[..n], 1000);
                let _ = decode(lt, &vec![0xAA; n], 1000);
            }
        }
    }

    /// Packets and TCP segments per capture, as `tshark -Y tcp` counts them (an independent
    /// decoder), except pcapplusplus_tcp-reassembly's last frame: an sFlow sample over UDP that
    /// tshark's filter matches for the TCP header sampled inside it.
    const EXPECTED: &[(&str, u64, u64)] = &[
        ("arkime_80211http.pcap", 26, 26),
        ("arkime_http-100-continue.pcap", 16, 16),
        ("arkime_http-post-upload.pcap", 34, 34),
        ("arkime_http-simple-get.pcap", 16, 16),
        ("arkime_v6-http.pcap", 55, 10),
        ("arkime_websocket.pcap", 19, 19),
        ("chrissanders_http_dvwa_clearlogin.pcapng", 54, 54),
        ("chrissanders_http_espn.pcapng", 956, 928),
        ("chrissanders_http_espn_fail.pcapng", 569, 555),
        ("chrissanders_http_google.pcapng", 12, 12),
        ("chrissanders_http_ip4and6.pcapng", 20, 20),
        ("chrissanders_http_post.pcapng", 21, 21),
        ("pcapplusplus_example.pcap", 4631, 4492),
        ("pcapplusplus_four_ipv6_http_streams.pcap", 81, 81),
        ("pcapplusplus_http-packets.pcap", 1985, 1985),
        ("pcapplusplus_http-packets2.pcap", 222, 222),
        ("pcapplusplus_one_http_stream_rst.pcap", 10, 10),
        ("pcapplusplus_sll.pcap", 518, 483),
        ("pcapplusplus_tcp-reassembly.pcap", 66, 65),
        (
            "pcapplusplus_unidirectional_tcp_stream_with_missing_packet.pcap",
            14,
            14,
        ),
        ("shop_capture.pcap", 1806, 1806),
        ("suricata_filestore-filecontainer-http.pcap", 94, 94),
        ("suricata_firewall-88-pipeline.pcap", 12, 12),
        ("suricata_http-connect-simple.pcap", 16, 16),
        ("suricata_http-encoding-gzip-uncompressed.pcap", 7, 7),
        ("suricata_http-gap-simple.pcap", 31, 31),
        ("suricata_http-ipv6.pcap", 14, 14),
        ("suricata_http-mime-truncated.pcap", 2696, 2696),
        ("suricata_http-multiple100.pcap", 48, 48),
        ("suricata_http-post-file.pcap", 28, 28),
        ("suricata_http-protocol-nodup.pcap", 36, 36),
        ("suricata_http-range-file.pcap", 316, 316),
        ("suricata_http-sticky-start.pcap", 32, 32),
        ("suricata_http2-authority-mismatch.pcap", 10, 10),
        ("suricata_http2-keywords2.pcap", 10, 10),
        ("suricata_http2-range.pcap", 116, 116),
        ("suricata_http2-userinfo-authority.pcap", 9, 9),
        ("suricata_pppoe-session-http.pcap", 30, 30),
        ("suricata_tlpw1-snaplen-truncated.pcap", 75, 75),
        ("zeek_100-continue.pcap", 66, 66),
        (
            "zeek_1000-requests-one-dropped-response.pcap.gz",
            4102,
            4102,
        ),
        ("zeek_206_example_a.pcap", 672, 672),
        ("zeek_bro.org.pcap", 751, 751),
        ("zeek_cooper-grill-dvwa.pcapng", 64, 48),
        ("zeek_docker-http-upgrade.pcap", 200, 200),
        ("zeek_get-gzip.pcap", 14, 14),
        ("zeek_get.pcap", 14, 14),
        ("zeek_get_nosyn.pcap", 11, 11),
        ("zeek_http-post-large.pcap", 38, 38),
        ("zeek_http-qinq-0.pcap", 14, 14),
        ("zeek_http-vlan-0.pcap", 14, 14),
        ("zeek_iso-download.pcap.gz", 289, 289),
        ("zeek_m57-long-49583-80.pcap", 227, 227),
        ("zeek_methods.pcap", 655, 655),
        ("zeek_missing-zlib-header.pcap", 28, 28),
        ("zeek_multipart.pcap", 10, 10),
        ("zeek_nflog-http.pcap", 13, 13),
        ("zeek_post.pcap", 14, 14),
        ("zeek_proxy.pcap", 26, 26),
        ("zeek_web.pcap", 24, 24),
        ("zeek_websocket.pcap", 27, 27),
        ("zeek_wikipedia.pcap", 136, 78),
        ("zeek_x-gzip.pcap", 7, 7),
        ("zeek_zero-length-bodies-with-drops.pcap", 44, 44),
    ];

    #[test]
    fn every_capture_decodes_like_tshark() {
        let mut seen = 0;
        for e in std::fs::read_dir(DATA).expect("shared/data/traffic/pcap missing") {
            let name = e.unwrap().file_name().into_string().unwrap();
            let (tcp, skips, n) = census(&name);
            let Some(&(_, packets, segments)) = EXPECTED.iter().find(|x| x.0 == name) else {
                panic!("{name}: not in the expected table ({n} packets, {tcp} TCP, {skips:?})");
            };
            assert_eq!((n, tcp), (packets, segments), "{name}: {skips:?}");
            assert!(!skips.contains_key("unsupported_link_type"), "{name}");
            assert!(!skips.contains_key("malformed_packet"), "{name}");
            seen += 1;
        }
        assert_eq!(seen, EXPECTED.len());
    }
}
