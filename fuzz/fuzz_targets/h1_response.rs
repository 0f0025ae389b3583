//! The engine's HTTP/1.1 response reader on arbitrary bytes, delivered in reads of arbitrary
//! sizes: it may return errors, never panic, never hang, and what it returns is consistent.
//!
//! Input layout: byte 0 bit 0 = HEAD request, bits 1-3 choose the body limit `keep`; byte 1 is
//! the number of read sizes (0-3; 0 = everything in one read), then one byte per size; the rest
//! is the server's byte stream.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mynah_engine::client::read_response;

const KEEPS: [usize; 8] = [0, 1, 2, 5, 16, 100, 4096, 1 << 20];

fuzz_target!(|data: &[u8]| {
    let [flags, count, rest @ ..] = data else {
        return;
    };
    let head_request = flags & 1 == 1;
    let keep = KEEPS[usize::from((flags >> 1) & 7)];
    let count = usize::from(count % 4).min(rest.len());
    let pieces: Vec<usize> = rest[..count].iter().map(|&b| usize::from(b)).collect();
    let response = &rest[count..];

    let got = read_response(response, &pieces, head_request, keep);
    if let Ok((status, body, truncated, received, _keep_alive)) = &got {
        assert!(
            body.len() <= keep,
            "kept {} bytes over a limit of {keep}",
            body.len()
        );
        assert!(
            !truncated || body.len() == keep,
            "truncated below the limit"
        );
        assert!(
            *received >= body.len() as u64,
            "counted fewer bytes than kept"
        );
        assert!(
            *received <= response.len() as u64,
            "counted more bytes than were sent"
        );
        assert!(
            *truncated == (*received > keep as u64),
            "truncated is not `received > keep`"
        );
        // The same bytes in one read and one byte at a time frame the same response.
        for other in [&[][..], &[1][..]] {
            if let Ok((s, b, t, r, _)) = read_response(response, other, head_request, keep) {
                assert_eq!(
                    (s, &b, t, r),
                    (*status, body, *truncated, *received),
                    "reads {other:?}"
                );
            }
        }
    }
});
