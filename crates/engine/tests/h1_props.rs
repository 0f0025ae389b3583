//! Properties of the engine's hand-written HTTP/1.1 response reader, driven through
//! `mynah_engine::client::read_response` (the real reader fed from a scripted peer in reads of
//! chosen sizes):
//!
//! - any body, framed by Content-Length, chunked (arbitrary chunk sizes, extensions, trailers) or
//!   the end of the stream, optionally after an interim 1xx response, delivered in arbitrary read
//!   sizes, is read back exactly: status, kept body, bytes counted, keep-alive;
//! - with a keep limit, the kept bytes are the body's prefix and `truncated` is set exactly when
//!   the body is longer;
//! - a response cut before its end is an error, never a wrong success (a close-delimited body
//!   ends where it is cut);
//! - arbitrary or corrupted bytes never panic.

use mynah_engine::client::read_response;
use proptest::prelude::*;

/// How the body is framed.
#[derive(Debug, Clone)]
enum Framing {
    Length,
    /// Chunk sizes (cycled over the body; 0 is read as 1), an extension per chunk or not, the
    /// hex digits in upper case, trailer count.
    Chunked {
        sizes: Vec<usize>,
        ext: Vec<Option<Ext>>,
        upper: bool,
        trailers: usize,
    },
    /// No length: the body runs until the connection closes.
    Close,
}

#[derive(Debug, Clone, Copy)]
enum Ext {
    Bare,
    Token,
    Quoted,
    Spaced,
}

/// An interim response sent before the real one.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Interim {
    None,
    Continue,
    EarlyHints,
}

/// What the Connection header says.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Conn {
    Absent,
    Close,
    KeepAlive,
}

#[derive(Debug, Clone)]
struct Case {
    http10: bool,
    status: u16,
    interim: Interim,
    conn: Conn,
    framing: Framing,
    body: Vec<u8>,
    head_request: bool,
}

/// A built response and what reading it must give.
struct Built {
    bytes: Vec<u8>,
    /// Where the final response's head ends (the body starts).
    head_end: usize,
    /// The body the reader must see (empty for HEAD).
    body: Vec<u8>,
    keep_alive: bool,
    close_delimited: bool,
}

fn ext_text(ext: Ext, i: usize) -> String {
    match ext {
        Ext::Bare => format!(";e{i}"),
        Ext::Token => format!(";name={i}"),
        Ext::Quoted => format!(";q=\"a;b {i}\""),
        Ext::Spaced => format!(" ; s = {i}"),
    }
}

fn build(case: &Case) -> Built {
    let mut out = Vec::new();
    match case.interim {
        Interim::None => {}
        Interim::Continue => out.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n"),
        Interim::EarlyHints => out.extend_from_slice(
            b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n",
        ),
    }
    let version = if case.http10 { "1.0" } else { "1.1" };
    out.extend_from_slice(format!("HTTP/{version} {} Whatever\r\n", case.status).as_bytes());
    out.extend_from_slice(b"Server: props\r\n");
    match case.conn {
        Conn::Absent => {}
        Conn::Close => out.extend_from_slice(b"Connection: close\r\n"),
        Conn::KeepAlive => out.extend_from_slice(b"Connection: keep-alive\r\n"),
    }
    let mut framed = Vec::new();
    match &case.framing {
        Framing::Length => {
            out.extend_from_slice(format!("Content-Length: {}\r\n", case.body.len()).as_bytes());
            framed.extend_from_slice(&case.body);
        }
        Framing::Chunked {
            sizes,
            ext,
            upper,
            trailers,
        } => {
            out.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
            let mut rest = &case.body[..];
            let mut i = 0;
            let chunk_line = |framed: &mut Vec<u8>, size: usize, i: usize| {
                let hex = if *upper {
                    format!("{size:X}")
                } else {
                    format!("{size:x}")
                };
                framed.extend_from_slice(hex.as_bytes());
                if let Some(Some(e)) = ext.get(i % ext.len().max(1)) {
                    framed.extend_from_slice(ext_text(*e, i).as_bytes());
                }
                framed.extend_from_slice(b"\r\n");
            };
            while !rest.is_empty() {
                let size = sizes
                    .get(i % sizes.len().max(1))
                    .copied()
                    .unwrap_or(rest.len())
                    .max(1)
                    .min(rest.len());
                chunk_line(&mut framed, size, i);
                framed.extend_from_slice(&rest[..size]);
                framed.extend_from_slice(b"\r\n");
                rest = &rest[size..];
                i += 1;
            }
            chunk_line(&mut framed, 0, i);
            for t in 0..*trailers {
                framed.extend_from_slice(format!("X-Trailer-{t}: v{t}\r\n").as_bytes());
            }
            framed.extend_from_slice(b"\r\n");
        }
        Framing::Close => framed.extend_from_slice(&case.body),
    }
    out.extend_from_slice(b"\r\n");
    let head_end = out.len();
    let close_delimited = matches!(case.framing, Framing::Close) && !case.head_request;
    if !case.head_request {
        out.extend_from_slice(&framed);
    }
    let header_keep_alive = if case.http10 {
        case.conn == Conn::KeepAlive
    } else {
        case.conn != Conn::Close
    };
    Built {
        bytes: out,
        head_end,
        body: if case.head_request {
            Vec::new()
        } else {
            case.body.clone()
        },
        keep_alive: header_keep_alive && !close_delimited,
        close_delimited,
    }
}

fn ext_strategy() -> impl Strategy<Value = Ext> {
    prop_oneof![
        Just(Ext::Bare),
        Just(Ext::Token),
        Just(Ext::Quoted),
        Just(Ext::Spaced)
    ]
}

fn framing_strategy() -> impl Strategy<Value = Framing> {
    prop_oneof![
        Just(Framing::Length),
        (
            prop::collection::vec(0usize..80, 0..6),
            prop::collection::vec(prop::option::of(ext_strategy()), 0..4),
            any::<bool>(),
            0usize..3,
        )
            .prop_map(|(sizes, ext, upper, trailers)| Framing::Chunked {
                sizes,
                ext,
                upper,
                trailers
            }),
        Just(Framing::Close),
    ]
}

fn case_strategy() -> impl Strategy<Value = Case> {
    (
        any::<bool>(),
        prop::sample::select(vec![200u16, 201, 206, 299, 301, 404, 418, 500, 503]),
        prop_oneof![
            Just(Interim::None),
            Just(Interim::Continue),
            Just(Interim::EarlyHints)
        ],
        prop_oneof![Just(Conn::Absent), Just(Conn::Close), Just(Conn::KeepAlive)],
        framing_strategy(),
        prop::collection::vec(any::<u8>(), 0..400),
        prop::bool::weighted(0.15),
    )
        .prop_map(
            |(http10, status, interim, conn, mut framing, body, head_request)| {
                // HTTP/1.0 has no chunked coding (a 1.0 response naming it is close-delimited).
                if http10 && matches!(framing, Framing::Chunked { .. }) {
                    framing = Framing::Length;
                }
                Case {
                    http10,
                    status,
                    interim,
                    conn,
                    framing,
                    body,
                    head_request,
                }
            },
        )
}

/// Read sizes: empty means everything in one read.
fn pieces_strategy() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(1usize..64, 0..5)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn valid_responses_are_read_back_exactly(
        case in case_strategy(),
        pieces in pieces_strategy(),
        keep in 0usize..500,
    ) {
        let built = build(&case);
        let got = read_response(&built.bytes, &pieces, case.head_request, keep);
        let (status, body, truncated, received, keep_alive) = got
            .map_err(|e| TestCaseError::fail(format!("{e} reading {:?}", String::from_utf8_lossy(&built.bytes))))?;
        prop_assert_eq!(status, case.status);
        let kept = built.body.len().min(keep);
        prop_assert_eq!(&body[..], &built.body[..kept]);
        prop_assert_eq!(truncated, built.body.len() > keep);
        prop_assert_eq!(received, built.body.len() as u64);
        prop_assert_eq!(keep_alive, built.keep_alive);
    }

    #[test]
    fn a_cut_response_is_an_error_not_a_wrong_success(
        case in case_strategy(),
        pieces in pieces_strategy(),
        keep in 0usize..500,
        cut in any::<prop::sample::Index>(),
    ) {
        let built = build(&case);
        let cut = cut.index(built.bytes.len());
        let got = read_response(&built.bytes[..cut], &pieces, case.head_request, keep);
        if built.close_delimited && cut >= built.head_end {
            // The end of the stream ends a close-delimited body: whatever arrived is the body.
            let (status, body, truncated, received, keep_alive) = got
                .map_err(|e| TestCaseError::fail(format!("{e} at cut {cut}")))?;
            let arrived = &built.body[..cut - built.head_end];
            prop_assert_eq!(status, case.status);
            prop_assert_eq!(&body[..], &arrived[..arrived.len().min(keep)]);
            prop_assert_eq!(truncated, arrived.len() > keep);
            prop_assert_eq!(received, arrived.len() as u64);
            prop_assert!(!keep_alive);
        } else {
            prop_assert!(got.is_err(), "cut at {} of {}: {:?}", cut, built.bytes.len(), got);
        }
    }

    #[test]
    fn bytes_after_the_response_end_keep_alive(
        case in case_strategy(),
        keep in 0usize..500,
        extra in prop::collection::vec(any::<u8>(), 1..20),
    ) {
        // Everything in one read (the response fits the first read buffer): the extra bytes
        // are seen, so the connection must not be reused.
        let built = build(&case);
        prop_assume!(!built.close_delimited && built.bytes.len() < 4096);
        let mut bytes = built.bytes.clone();
        bytes.extend_from_slice(&extra);
        let (status, body, _, received, keep_alive) = read_response(&bytes, &[], case.head_request, keep)
            .map_err(TestCaseError::fail)?;
        prop_assert_eq!(status, case.status);
        prop_assert_eq!(&body[..], &built.body[..built.body.len().min(keep)]);
        prop_assert_eq!(received, built.body.len() as u64);
        prop_assert!(!keep_alive);
    }

    #[test]
    fn random_bytes_never_panic(
        data in prop::collection::vec(any::<u8>(), 0..600),
        pieces in pieces_strategy(),
        head_request in any::<bool>(),
        keep in 0usize..100,
    ) {
        let _ = read_response(&data, &pieces, head_request, keep);
        // The same bytes after a valid status line reach the header and body parsing.
        let mut framed = b"HTTP/1.1 200 OK\r\n".to_vec();
        framed.extend_from_slice(&data);
        let _ = read_response(&framed, &pieces, head_request, keep);
    }

    #[test]
    fn corrupted_responses_never_panic(
        case in case_strategy(),
        pieces in pieces_strategy(),
        keep in 0usize..500,
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let mut bytes = build(&case).bytes;
        for (at, byte) in edits {
            let i = at.index(bytes.len());
            bytes[i] = byte;
        }
        if let Ok((_, body, truncated, received, _)) = read_response(&bytes, &pieces, case.head_request, keep) {
            prop_assert!(body.len() <= keep);
            prop_assert_eq!(truncated, received > keep as u64);
        }
    }
}

/// Reads of one byte each, the slowest peer, on the documented forms.
#[test]
fn one_byte_reads() {
    let r = read_response(
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n2\r\nde\r\n0\r\nX-T: 1\r\n\r\n",
        &[1],
        false,
        100,
    )
    .unwrap();
    assert_eq!(
        (r.0, &r.1[..], r.2, r.3, r.4),
        (200, &b"abcde"[..], false, 5, true)
    );
}
