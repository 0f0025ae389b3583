//! Format round trips over the shared captures: `.gor` -> HAR -> `.gor`, and HAR -> `.gor` -> HAR.
//!
//! What must survive: method, URL (target and Host), status, reason, header fields (order, case,
//! bytes), bodies. Where a format cannot hold something, the exception is spelled out below and
//! checked exactly, never skipped silently.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use mynah_traffic::gor::{GorReader, GorWriter};
use mynah_traffic::har::{HarReader, HarWriter};
use mynah_traffic::{
    BodyForm, Exchange, ExchangeWriter, Headers, Output, ReadOptions, Response, Version,
};

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/data/traffic/");

fn data_dir(sub: &str) -> PathBuf {
    let p = Path::new(DATA).join(sub);
    assert!(
        p.is_dir(),
        "test captures not found at {} (the shared data set must be beside the repo)",
        p.display()
    );
    p
}

fn files(sub: &str, exts: &[&str]) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(data_dir(sub))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy().to_string();
            exts.iter().any(|e| n.ends_with(e))
        })
        .collect();
    v.sort();
    v
}

fn read_file(path: &Path) -> Vec<Exchange> {
    let r =
        mynah_traffic::open(path, None, &ReadOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    r.map(|x| x.unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .collect()
}

fn to_har(xs: &[Exchange]) -> Vec<u8> {
    let mut w = HarWriter::new(Output::Memory(Vec::new())).unwrap();
    for x in xs {
        w.write(x).unwrap();
    }
    w.close().unwrap().unwrap()
}

fn to_gor(xs: &[Exchange]) -> Vec<u8> {
    let mut w = GorWriter::new(Output::Memory(Vec::new()));
    for x in xs {
        w.write(x).unwrap();
    }
    w.finish_output().unwrap().unwrap()
}

fn from_har(bytes: Vec<u8>) -> Vec<Exchange> {
    HarReader::new(Box::new(Cursor::new(bytes)), ReadOptions::default())
        .unwrap()
        .map(|x| x.unwrap())
        .collect()
}

fn from_gor(bytes: Vec<u8>) -> Vec<Exchange> {
    GorReader::new(Box::new(Cursor::new(bytes)), ReadOptions::default())
        .map(|x| x.unwrap())
        .collect()
}

/// The body as the application sees it. An empty body under `Content-Encoding: gzip` is empty
/// (there is nothing to gunzip), chunked or not.
fn decoded(h: &Headers, body: &[u8], form: BodyForm) -> Vec<u8> {
    match mynah_traffic::decode::decoded_body(h, body, form) {
        Ok(b) => b.into_owned(),
        Err(e) => {
            let dechunked = if h.has_token("transfer-encoding", "chunked") {
                mynah_traffic::decode::dechunk(body).map(|d| d.0).ok()
            } else {
                Some(body.to_vec())
            };
            match dechunked {
                Some(d) if d.is_empty() => d,
                _ => panic!("body does not decode: {e}"),
            }
        }
    }
}

/// The URL without its scheme: `.gor` has no notion of http vs https.
fn url_sans_scheme(x: &Exchange) -> String {
    let host = x.request.host().unwrap_or_default();
    format!("{host}{}", x.request.path_and_query())
}

// ---------------------------------------------------------------------------------------------
// .gor -> HAR -> .gor

#[test]
fn gor_to_har_to_gor_keeps_everything() {
    let gors = files("gor", &[".gor", ".gor.gz"]);
    assert!(gors.len() >= 9, "{gors:?}");
    let mut total = 0;
    let mut unknown_response_start = 0;
    for path in &gors {
        let name = path.display();
        let a = read_file(path);
        assert!(!a.is_empty(), "{name}");
        // Through HAR: exact, extensions included.
        let b = from_har(to_har(&a));
        assert_eq!(b.len(), a.len(), "{name}");
        for (i, (x, y)) in a.iter().zip(&b).enumerate() {
            // HAR carries all of it (wire bodies and exact timing in mynah's extensions).
            assert!(x == y, "{name} #{i}: {x:?}\n!=\n{y:?}");
        }
        // And back to .gor: the records say the same.
        let c = from_gor(to_gor(&b));
        assert_eq!(c.len(), a.len(), "{name}");
        for (i, (x, z)) in a.iter().zip(&c).enumerate() {
            assert_eq!(x.request.method, z.request.method, "{name} #{i}");
            assert_eq!(x.request.target, z.request.target, "{name} #{i}");
            assert_eq!(x.request.headers, z.request.headers, "{name} #{i}");
            assert_eq!(x.request.body, z.request.body, "{name} #{i}");
            assert_eq!(x.response.is_some(), z.response.is_some(), "{name} #{i}");
            if let (Some(r), Some(s)) = (&x.response, &z.response) {
                assert_eq!((r.status, &r.reason), (s.status, &s.reason), "{name} #{i}");
                assert_eq!(r.headers, s.headers, "{name} #{i}");
                assert_eq!(r.body, s.body, "{name} #{i}");
            }
            // Exception: a response record must carry a timestamp; when the response's first
            // byte time is unknown the writer stamps it with the request's start.
            let mut want = x.timing;
            if x.response.is_some() && want.response_start.is_none() {
                unknown_response_start += 1;
                want.response_start = Some(want.request_start);
            }
            assert_eq!(want, z.timing, "{name} #{i}");
        }
        total += a.len();
    }
    assert!(total > 1500, "{total}");
    eprintln!(
        "gor -> HAR -> gor: {} files, {total} exchanges, {unknown_response_start} responses \
         without a first-byte time stamped with the request's",
        gors.len()
    );
}

// ---------------------------------------------------------------------------------------------
// HAR -> .gor -> HAR

/// How a header list is expected to come back from `.gor`, given the body the writer re-encoded:
/// see the exceptions in [`har_to_gor_to_har_keeps_everything`].
fn expected_headers(h: &Headers, wire_len: Option<usize>) -> Headers {
    let mut h = h.clone();
    h.0.retain(|f| is_token(&f.name));
    if h.has_token("transfer-encoding", "chunked") {
        h.remove("content-length");
    } else if let Some(n) = wire_len {
        let n = n.to_string().into_bytes();
        if h.contains("content-length") {
            let mut seen = false;
            h.0.retain_mut(|f| {
                if !f.name.eq_ignore_ascii_case("content-length") {
                    return true;
                }
                if seen {
                    return false;
                }
                seen = true;
                f.value.clone_from(&n);
                true
            });
        } else if !h.contains("transfer-encoding") {
            h.push("Content-Length", n);
        }
    }
    h
}

/// An HTTP field name (RFC 9110 token).
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Whether a response can carry a body on HTTP/1.
fn bodiless(r: &Response, method: &str) -> bool {
    method.eq_ignore_ascii_case("HEAD") || r.status < 200 || r.status == 204 || r.status == 304
}

/// HAR holds decoded bodies; `.gor` holds HTTP/1 wire messages. The exceptions, each checked
/// exactly and counted:
///
/// 1. The scheme: `.gor` has none, so an https URL comes back as http (host, port, path and
///    query are kept).
/// 2. Framing headers: the writer re-encodes a decoded body per Content-Encoding (its own gzip or
///    brotli output, not the server's bytes) and Transfer-Encoding, so Content-Length becomes the
///    new wire length, is dropped beside `chunked`, or is added when a body had no framing. The
///    decoded bodies are compared, byte for byte.
/// 3. Header fields whose name is not an HTTP token cannot be an HTTP/1 header line; the `.gor`
///    reader drops them. (WebPageTest splits a Set-Cookie line at its first colon into a field
///    named `WMF-Last-Access=29-Aug-2015;Path=/;HttpOnly;Expires=Wed, 30 Sep 2015 12`.)
/// 4. Bodies of 1xx, 204 and 304 responses and of answers to HEAD (browsers fill them from their
///    cache) do not exist in HTTP/1.
#[test]
fn har_to_gor_to_har_keeps_everything() {
    let mut not_tokens = 0;
    let mut checked_files = 0;
    let mut exchanges = 0;
    let mut length_rewrites = 0;
    let mut dropped_bodies = 0;
    for path in files("har", &[".har"]) {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let Ok(r) = mynah_traffic::open(&path, None, &ReadOptions::default()) else {
            continue;
        };
        let items: Vec<_> = r.collect();
        if items.iter().any(|x| x.is_err()) {
            continue; // the two files that are not JSON
        }
        let a: Vec<Exchange> = items.into_iter().map(Result::unwrap).collect();
        // HTTP/1.x files only: .gor holds HTTP/1 messages.
        if !a
            .iter()
            .all(|x| matches!(x.request.version, Version::Http10 | Version::Http11))
        {
            continue;
        }
        checked_files += 1;
        let gor = to_gor(&a);
        let b = from_gor(gor);
        let c = from_har(to_har(&b));
        assert_eq!(b.len(), a.len(), "{name}");
        assert_eq!(c.len(), a.len(), "{name}");
        for (i, ((x, y), z)) in a.iter().zip(&b).zip(&c).enumerate() {
            let at = format!("{name} #{i} {} {}", x.request.method, x.request.target);
            not_tokens += x
                .request
                .headers
                .iter()
                .chain(x.response.iter().flat_map(|r| r.headers.iter()))
                .filter(|h| !is_token(&h.name))
                .count();
            // gor -> HAR is exact (see the other test); only HAR -> gor has exceptions.
            assert!(y == z, "{at}: {y:?}\n!=\n{z:?}");
            for got in [y, z] {
                assert_eq!(x.request.method, got.request.method, "{at}");
                // Exception: the scheme. .gor has none, so https URLs come back as http (the
                // host, port and path-and-query are kept).
                assert_eq!(url_sans_scheme(x), url_sans_scheme(got), "{at}");
                assert_eq!(x.timing.request_start, got.timing.request_start, "{at}");
            }
            // Request: the decoded body is the same; the writer re-encoded it, so the framing
            // headers follow the new wire body.
            let req_wire = y.request.body.len();
            let want = expected_headers(&x.request.headers, (req_wire > 0).then_some(req_wire));
            if want != x.request.headers {
                length_rewrites += 1;
            }
            assert_eq!(y.request.headers, want, "{at}: request headers");
            assert_eq!(z.request.headers, want, "{at}: request headers after HAR");
            let body = decoded(&x.request.headers, &x.request.body, x.request.body_form);
            for got in [y, z] {
                let d = decoded(
                    &got.request.headers,
                    &got.request.body,
                    got.request.body_form,
                );
                assert!(d == body, "{at}: request body");
            }
            match (&x.response, &y.response, &z.response) {
                (None, None, None) => {}
                (Some(r), Some(s), Some(t)) => {
                    for got in [s, t] {
                        assert_eq!(r.status, got.status, "{at}");
                        assert_eq!(r.reason, got.reason, "{at}");
                    }
                    // Exception: HTTP/1 gives 1xx, 204 and 304 responses (and answers to HEAD)
                    // no body, so a body the browser put there from its cache is not in .gor.
                    let no_body = bodiless(r, &x.request.method);
                    let want_body = if no_body {
                        if !r.body.is_empty() {
                            dropped_bodies += 1;
                        }
                        Vec::new()
                    } else {
                        decoded(&r.headers, &r.body, r.body_form)
                    };
                    let wire = (!no_body && !want_body.is_empty()).then_some(s.body.len());
                    let want = expected_headers(&r.headers, wire);
                    if want != r.headers {
                        length_rewrites += 1;
                    }
                    assert_eq!(s.headers, want, "{at}: response headers");
                    assert_eq!(t.headers, want, "{at}: response headers after HAR");
                    for got in [s, t] {
                        let d = decoded(&got.headers, &got.body, got.body_form);
                        assert!(
                            d == want_body,
                            "{at}: response body ({} vs {})",
                            d.len(),
                            want_body.len()
                        );
                    }
                }
                _ => panic!("{at}: response presence changed"),
            }
            exchanges += 1;
        }
    }
    assert!(checked_files >= 12, "{checked_files} HTTP/1.x HAR files");
    assert!(exchanges > 500, "{exchanges}");
    eprintln!(
        "HAR -> gor -> HAR: {checked_files} files, {exchanges} exchanges, {length_rewrites} \
         framing-header rewrites, {not_tokens} fields with non-token names dropped, \
         {dropped_bodies} bodies of bodiless responses dropped"
    );
}
