//! The pcap → TCP → HTTP path on arbitrary bytes: it may return errors, never panic, never hang.
//!
//! Input without a pcap/pcapng magic gets a valid pcap global header (link type chosen by its first
//! byte) so that the fuzzer spends its time in packet, TCP and HTTP parsing, not in the magic check.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mynah_traffic::ReadOptions;

fuzz_target!(|data: &[u8]| {
    for lenient in [false, true] {
        let input = Box::new(std::io::Cursor::new(with_header(data)));
        let opts = ReadOptions {
            lenient,
            ..Default::default()
        };
        if let Ok(reader) = mynah_traffic::pcap::PcapReader::new(input, opts) {
            for item in reader {
                let _ = item;
            }
        }
    }
});

fn with_header(data: &[u8]) -> Vec<u8> {
    const MAGICS: [[u8; 4]; 3] = [
        [0xd4, 0xc3, 0xb2, 0xa1],
        [0x4d, 0x3c, 0xb2, 0xa1],
        [0x0a, 0x0d, 0x0d, 0x0a],
    ];
    if data.len() >= 4 && MAGICS.iter().any(|m| data[..4] == m[..]) {
        return data.to_vec();
    }
    let link: u32 = match data.first().copied().unwrap_or(0) % 8 {
        0 => 1,   // Ethernet
        1 => 0,   // NULL
        2 => 101, // raw IP
        3 => 113, // Linux SLL
        4 => 276, // Linux SLL2
        5 => 239, // NFLOG
        6 => 127, // radiotap
        _ => 228, // raw IPv4
    };
    let mut out = Vec::with_capacity(data.len() + 24);
    out.extend_from_slice(&[0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    out.extend_from_slice(&65535u32.to_le_bytes());
    out.extend_from_slice(&link.to_le_bytes());
    out.extend_from_slice(data.get(1..).unwrap_or_default());
    out
}
