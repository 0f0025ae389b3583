//! The HTTP/1 conversation parser driven directly with arbitrary segments, gaps and closes from
//! both sides: the deepest parser, fuzzed without the packet layers in the way.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mynah_traffic::http1::{Conversation, Side};

fuzz_target!(|data: &[u8]| {
    let a = "10.0.0.1:40000".parse().unwrap();
    let b = "10.0.0.2:80".parse().unwrap();
    let mut conv = Conversation::new(0, a, b);
    let mut out = Vec::new();
    let mut rest = data;
    let mut ts = 0i64;
    // Each step: an op byte (bit 0: side; bits 1-2: data, gap, close), a length byte, then data.
    while let [op, len, tail @ ..] = rest {
        let side = if op & 1 == 0 { Side::A } else { Side::B };
        let n = (*len as usize).min(tail.len());
        ts += 1000;
        match (op >> 1) % 4 {
            0 | 3 => conv.data(side, ts, &tail[..n]),
            1 => conv.gap(side, ts, *len as u64),
            _ => conv.close(side, ts),
        }
        rest = &tail[n..];
        conv.take_exchanges(&mut out);
        out.clear();
    }
    conv.finish(ts + 1);
    conv.take_exchanges(&mut out);
});
