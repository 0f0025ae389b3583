//! HTTP/1.x messages as bytes: writing the model's requests and responses in wire form, and parsing
//! whole messages out of a byte buffer (what a `.gor` record, or any source that hands over complete
//! messages, holds).
//!
//! Writing reproduces what was captured: the request or status line, the header fields in their order
//! and case, a blank line, the body bytes. A body stored [`BodyForm::Decoded`] (from HAR) is turned
//! back into wire form per its headers, so the message written is self-consistent.
//!
//! Parsing uses `httparse` (CRLF or bare-LF line ends). Request bodies are framed by Content-Length
//! or chunked encoding and kept as wire bytes, so several pipelined requests can be split apart.

use std::borrow::Cow;
use std::fmt;

use crate::decode::{self, find_lf, parse_hex};
use crate::http1::head::{self, Leniency};
use crate::model::{trim_ascii, BodyForm, Headers, Request, Response, Version};

/// The most header fields one message may carry. Parsing starts with room for 64 and retries with
/// more when a message has more, up to this cap.
pub const MAX_HEADERS: usize = head::MAX_HTTPARSE_HEADERS;

/// A message in a buffer could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// Byte offset in the buffer of the message (or body part) that is wrong.
    pub offset: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at payload byte {}", self.message, self.offset)
    }
}

impl std::error::Error for ParseError {}

// ---------------------------------------------------------------------------------------------
// Writing
// ---------------------------------------------------------------------------------------------

/// The request in HTTP/1.x wire form (see [`write_request`]).
pub fn request_bytes(req: &Request) -> Vec<u8> {
    let mut out = Vec::with_capacity(estimate(&req.headers, req.body.len()) + req.target.len());
    write_request(req, &mut out);
    out
}

/// The response in HTTP/1.x wire form (see [`write_response`]).
pub fn response_bytes(resp: &Response) -> Vec<u8> {
    let mut out = Vec::with_capacity(estimate(&resp.headers, resp.body.len()));
    write_response(resp, &mut out);
    out
}

/// Appends the request line, header fields, blank line and body to `out`.
///
/// Versions that HTTP/1 cannot state on the line are written as `HTTP/1.1` (HTTP/2, HTTP/3,
/// `Other`) or `HTTP/1.0` (HTTP/0.9, whose request line has no version and which has no headers).
/// Pseudo-headers of HTTP/2 (`:authority`, `:path`, ...) are not valid in HTTP/1: `:authority`
/// becomes `Host` when there is no Host header, the others are dropped. CR and LF inside a header
/// value (other than an obsolete line fold) are written as spaces so a value cannot inject lines.
/// A [`BodyForm::Decoded`] body is turned back into wire form per the headers (see the module doc).
pub fn write_request(req: &Request, out: &mut Vec<u8>) {
    out.extend_from_slice(req.method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(req.target.as_bytes());
    out.push(b' ');
    out.extend_from_slice(line_version(&req.version).as_bytes());
    out.extend_from_slice(b"\r\n");
    write_fields_and_body(&req.headers, &req.body, req.body_form, None, out);
}

/// Appends the status line (`HTTP/1.1 200 OK`), header fields, blank line and body to `out`.
///
/// The same rules as [`write_request`] apply. A decoded body of a 1xx, 204 or 304 response is not
/// encoded (those have no body on the wire).
pub fn write_response(resp: &Response, out: &mut Vec<u8>) {
    out.extend_from_slice(line_version(&resp.version).as_bytes());
    out.push(b' ');
    // Three digits whatever the value, so the line always parses back.
    let s = resp.status.min(999);
    out.extend_from_slice(&[
        b'0' + (s / 100) as u8,
        b'0' + (s / 10 % 10) as u8,
        b'0' + (s % 10) as u8,
    ]);
    out.push(b' ');
    out.extend_from_slice(&sanitized(resp.reason.as_bytes()));
    out.extend_from_slice(b"\r\n");
    write_fields_and_body(
        &resp.headers,
        &resp.body,
        resp.body_form,
        Some(resp.status),
        out,
    );
}

fn estimate(headers: &Headers, body: usize) -> usize {
    64 + body
        + headers
            .iter()
            .map(|h| h.name.len() + h.value.len() + 4)
            .sum::<usize>()
}

/// The spelling on the request or status line; HTTP/1 can only state 1.0 and 1.1.
fn line_version(v: &Version) -> &'static str {
    match v {
        Version::Http10 | Version::Http09 => "HTTP/1.0",
        _ => "HTTP/1.1",
    }
}

/// `status` is None for a request.
fn write_fields_and_body(
    headers: &Headers,
    body: &[u8],
    form: BodyForm,
    status: Option<u16>,
    out: &mut Vec<u8>,
) {
    match form {
        BodyForm::Wire => {
            write_fields(headers, out);
            out.extend_from_slice(b"\r\n");
            out.extend_from_slice(body);
        }
        BodyForm::Decoded => {
            let (headers, body) = to_wire(headers, body, status);
            write_fields(&headers, out);
            out.extend_from_slice(b"\r\n");
            out.extend_from_slice(&body);
        }
    }
}

fn write_fields(headers: &Headers, out: &mut Vec<u8>) {
    let has_host = headers.contains("host");
    let mut authority_written = false;
    for h in headers.iter() {
        let name: &str = if let Some(pseudo) = h.name.strip_prefix(':') {
            // HTTP/2 pseudo-headers: only the authority has an HTTP/1 equivalent.
            if pseudo.eq_ignore_ascii_case("authority") && !has_host && !authority_written {
                authority_written = true;
                "Host"
            } else {
                continue;
            }
        } else {
            &h.name
        };
        out.extend_from_slice(&sanitized(name.as_bytes()));
        out.extend_from_slice(b": ");
        out.extend_from_slice(&sanitized(&h.value));
        out.extend_from_slice(b"\r\n");
    }
}

/// The bytes with stray CR/LF replaced by spaces; an obsolete line fold (CRLF or LF followed by a
/// space or tab) is kept, since it is valid and reproduces what was captured.
fn sanitized(v: &[u8]) -> Cow<'_, [u8]> {
    if !v.iter().any(|&b| b == b'\r' || b == b'\n') {
        return Cow::Borrowed(v);
    }
    let mut out = v.to_vec();
    let mut i = 0;
    while i < out.len() {
        if out[i] == b'\r' || out[i] == b'\n' {
            let run_end = out[i..]
                .iter()
                .position(|&b| b != b'\r' && b != b'\n')
                .map_or(out.len(), |p| i + p);
            let run = &out[i..run_end];
            let fold = (run == b"\r\n" || run == b"\n")
                && matches!(out.get(run_end), Some(b' ') | Some(b'\t'));
            if !fold {
                out[i..run_end].fill(b' ');
            }
            i = run_end;
        } else {
            i += 1;
        }
    }
    Cow::Owned(out)
}

/// Turns a decoded body back into wire form: applies the content-codings, chunked framing, and
/// makes Content-Length agree with the body.
fn to_wire<'a>(headers: &Headers, body: &'a [u8], status: Option<u16>) -> (Headers, Cow<'a, [u8]>) {
    let mut h = headers.clone();
    // 1xx, 204 and 304 responses have no body on the wire: nothing to encode or frame.
    if let Some(s) = status {
        if (100..200).contains(&s) || s == 204 || s == 304 {
            return (h, Cow::Borrowed(body));
        }
    }
    let mut data: Cow<'a, [u8]> = Cow::Borrowed(body);
    // An empty decoded body stays empty (a HEAD response, or a HAR without content).
    if !body.is_empty() {
        let codings: Vec<String> = h
            .get_all("content-encoding")
            .flat_map(|v| v.split(|&b| b == b','))
            .map(|t| String::from_utf8_lossy(trim_ascii(t)).to_ascii_lowercase())
            .filter(|t| !t.is_empty() && t != "identity")
            .collect();
        if !codings.is_empty() {
            let mut encoded: Option<Vec<u8>> = None;
            for coding in &codings {
                let input = encoded.as_deref().unwrap_or(body);
                match decode::encode_coding(coding, input) {
                    Some(v) => encoded = Some(v),
                    None => {
                        encoded = None;
                        break;
                    }
                }
            }
            match encoded {
                Some(v) => data = Cow::Owned(v),
                // A coding mynah cannot produce: send the decoded bytes and say so.
                None => h.remove("content-encoding"),
            }
        }
    }
    if h.has_token("transfer-encoding", "chunked") {
        // Content-Length must not accompany chunked framing (RFC 9112, 6.2).
        h.remove("content-length");
        data = Cow::Owned(decode::chunk(&data));
    } else if h.contains("content-length") {
        // An empty response body may legitimately come with a Content-Length (HEAD).
        let keep = status.is_some() && data.is_empty();
        let len = data.len().to_string();
        if !keep && h.get("content-length") != Some(len.as_bytes()) {
            set_single(&mut h, "Content-Length", len.into_bytes());
        } else if h.get_all("content-length").count() > 1 {
            let first = h.get("content-length").unwrap_or_default().to_vec();
            set_single(&mut h, "Content-Length", first);
        }
    } else if !data.is_empty() && !h.contains("transfer-encoding") {
        // HTTP/2 messages need no framing header; HTTP/1 does.
        h.push("Content-Length", data.len().to_string());
    }
    (h, data)
}

/// Sets the first `name` field to `value` (keeping its position and case) and removes the others.
fn set_single(h: &mut Headers, name: &str, value: Vec<u8>) {
    let mut seen = false;
    h.0.retain_mut(|f| {
        if !f.name.eq_ignore_ascii_case(name) {
            return true;
        }
        if seen {
            return false;
        }
        seen = true;
        f.value.clone_from(&value);
        true
    });
    if !seen {
        h.push(name, value);
    }
}

// ---------------------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------------------

/// A request parsed from a buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedRequest {
    pub request: Request,
    /// Bytes of the buffer this request took (head and body).
    pub len: usize,
    /// The body ended before its declared length (Content-Length or chunked framing).
    pub truncated: bool,
}

/// How a request's body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body.
    None,
    /// Content-Length bytes.
    Length(u64),
    /// Chunked transfer-coding.
    Chunked,
    /// A transfer-coding other than chunked last: no way to find the end, the body runs to the end
    /// of the data.
    UntilEnd,
}

/// How a request's body is framed, per RFC 9112 section 6.3: chunked wins over Content-Length;
/// several Content-Length values must agree.
pub fn request_framing(headers: &Headers) -> Result<Framing, &'static str> {
    if headers.contains("transfer-encoding") {
        let last = headers
            .get_all("transfer-encoding")
            .flat_map(|v| v.split(|&b| b == b','))
            .map(trim_ascii)
            .filter(|t| !t.is_empty())
            .last();
        return Ok(match last {
            Some(t) if t.eq_ignore_ascii_case(b"chunked") => Framing::Chunked,
            _ => Framing::UntilEnd,
        });
    }
    let mut length: Option<u64> = None;
    for v in headers.get_all("content-length") {
        for part in v.split(|&b| b == b',') {
            let n = parse_decimal(trim_ascii(part)).ok_or("invalid Content-Length")?;
            if length.is_some_and(|l| l != n) {
                return Err("conflicting Content-Length values");
            }
            length = Some(n);
        }
    }
    Ok(match length {
        Some(0) | None => Framing::None,
        Some(n) => Framing::Length(n),
    })
}

fn parse_decimal(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 19 || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(s).ok()?.parse().ok()
}

/// Where a chunked body that starts at `buf[0]` ends (after its last chunk and trailer section).
///
/// `Ok(None)` when the buffer ends first (a truncated body). Accepts chunk extensions, bare-LF line
/// ends, and a buffer that ends right after the last chunk's size line (the final blank line lost).
pub fn chunked_end(buf: &[u8]) -> Result<Option<usize>, &'static str> {
    let mut pos = 0;
    loop {
        let Some(lf) = find_lf(buf, pos) else {
            return Ok(None);
        };
        let line = buf.get(pos..lf).unwrap_or_default();
        let size_part = line.split(|&b| b == b';').next().unwrap_or(line);
        let size = parse_hex(trim_ascii(size_part)).ok_or("bad chunk size")?;
        pos = lf + 1;
        if size == 0 {
            // Trailer fields until a blank line.
            loop {
                if pos >= buf.len() {
                    return Ok(Some(buf.len()));
                }
                let Some(lf) = find_lf(buf, pos) else {
                    return Ok(None);
                };
                let line = buf.get(pos..lf).unwrap_or_default();
                pos = lf + 1;
                if line.is_empty() || line == b"\r" {
                    return Ok(Some(pos));
                }
            }
        }
        let Some(end) = pos.checked_add(size).filter(|&e| e <= buf.len()) else {
            return Ok(None);
        };
        pos = end;
        if buf.get(pos) == Some(&b'\r') {
            pos += 1;
        }
        match buf.get(pos) {
            Some(b'\n') => pos += 1,
            None => return Ok(None),
            Some(_) => return Err("chunk data not followed by a line end"),
        }
    }
}

/// Whole messages are parsed strictly first: an invalid header line is dropped only when httparse
/// rejects one (so one odd field does not cost the whole message).
const LENIENCY: Leniency = Leniency {
    space_before_first_header: false,
    strict_first: true,
};

/// Parses a message head out of a buffer that holds all there is: when the buffer ends inside the
/// head (hand-written files often lack the final blank line), the missing line ends are supplied.
/// Returns the head and the bytes it took.
fn whole_head<T>(
    buf: &[u8],
    what: &str,
    parse: impl Fn(&[u8]) -> httparse::Result<(T, usize)>,
) -> Result<(T, usize), ParseError> {
    let err = |e: httparse::Error| ParseError {
        offset: 0,
        message: format!("invalid HTTP {what}: {e}"),
    };
    match parse(buf).map_err(err)? {
        httparse::Status::Complete((m, n)) => Ok((m, n)),
        httparse::Status::Partial => {
            let mut completed = Vec::with_capacity(buf.len() + 4);
            completed.extend_from_slice(buf);
            completed.extend_from_slice(if buf.ends_with(b"\n") {
                b"\r\n"
            } else {
                b"\r\n\r\n"
            });
            match parse(&completed).map_err(err)? {
                httparse::Status::Complete((m, _)) => Ok((m, buf.len())),
                httparse::Status::Partial => Err(ParseError {
                    offset: 0,
                    message: format!("incomplete HTTP {what} head"),
                }),
            }
        }
    }
}

/// Parses one request at the start of `buf`, its body framed by Content-Length or chunked encoding
/// (kept as wire bytes). A body cut short by the end of `buf` is kept and flagged `truncated`.
pub fn parse_request(buf: &[u8]) -> Result<ParsedRequest, ParseError> {
    let (mut request, head_len) =
        whole_head(buf, "request", |b| head::httparse_request(b, LENIENCY))?;
    let rest = buf.get(head_len..).unwrap_or_default();
    let framing = request_framing(&request.headers).map_err(|m| ParseError {
        offset: 0,
        message: m.to_string(),
    })?;
    let (body_len, truncated) = match framing {
        Framing::None => (0, false),
        Framing::Length(n) => match usize::try_from(n) {
            Ok(n) if n <= rest.len() => (n, false),
            _ => (rest.len(), true),
        },
        Framing::Chunked => match chunked_end(rest) {
            Ok(Some(end)) => (end, false),
            Ok(None) => (rest.len(), true),
            Err(m) => {
                return Err(ParseError {
                    offset: head_len,
                    message: format!("malformed chunked request body: {m}"),
                })
            }
        },
        Framing::UntilEnd => (rest.len(), false),
    };
    request.body = rest.get(..body_len).unwrap_or_default().to_vec();
    Ok(ParsedRequest {
        request,
        len: head_len + body_len,
        truncated,
    })
}

/// Parses every request in `buf` (pipelined requests follow each other). Blank lines between and
/// after requests are ignored. An empty buffer is an error.
pub fn parse_requests(buf: &[u8]) -> Result<Vec<ParsedRequest>, ParseError> {
    let mut out = Vec::new();
    let mut pos = 0;
    loop {
        while matches!(buf.get(pos), Some(b'\r' | b'\n')) {
            pos += 1;
        }
        let Some(rest) = buf.get(pos..).filter(|r| !r.is_empty()) else {
            break;
        };
        let parsed = parse_request(rest).map_err(|mut e| {
            e.offset += pos;
            e
        })?;
        pos += parsed.len.max(1);
        out.push(parsed);
    }
    if out.is_empty() {
        return Err(ParseError {
            offset: 0,
            message: "no HTTP request (empty payload)".into(),
        });
    }
    Ok(out)
}

/// Parses one response head at the start of `buf`; the body is left empty. Returns the response
/// and the bytes its head took.
pub fn parse_response_head(buf: &[u8]) -> Result<(Response, usize), ParseError> {
    whole_head(buf, "response", |b| head::httparse_response(b, LENIENCY))
}

/// Parses every response a recorded response payload holds, in order: interim (1xx) responses,
/// then the final response, whose body is the rest of `buf` (a `.gor` record ends where the message
/// does).
///
/// One exception: when a final response is followed by what parses as another response head —
/// right after its head (a response to HEAD, which has no body whatever its Content-Length says), or
/// after the body its Content-Length or chunked framing delimits — the payload holds several
/// responses and each is returned. GoReplay writes such records: after a HEAD response with a
/// Content-Length it waits for a body and glues the connection's next responses onto it.
pub fn parse_recorded_responses(buf: &[u8]) -> Result<Vec<Response>, ParseError> {
    let mut out = Vec::new();
    let mut pos = 0;
    loop {
        while matches!(buf.get(pos), Some(b'\r' | b'\n')) {
            pos += 1;
        }
        let rest = buf.get(pos..).unwrap_or_default();
        if rest.is_empty() {
            if out.is_empty() {
                return Err(ParseError {
                    offset: 0,
                    message: "no HTTP response (empty payload)".into(),
                });
            }
            return Ok(out);
        }
        let (mut resp, head_len) = parse_response_head(rest).map_err(|mut e| {
            e.offset += pos;
            e
        })?;
        let after = rest.get(head_len..).unwrap_or_default();
        pos += head_len.max(1);
        if resp.is_interim() {
            out.push(resp);
            continue;
        }
        match next_response_at(&resp, after) {
            Some(body_len) => {
                resp.body = after.get(..body_len).unwrap_or_default().to_vec();
                pos += body_len;
            }
            None => {
                resp.body = after.to_vec();
                out.push(resp);
                return Ok(out);
            }
        }
        out.push(resp);
    }
}

/// If another response follows `resp`'s body in `after` (the bytes after its head), the body's
/// length; None when the body runs to the end.
fn next_response_at(resp: &Response, after: &[u8]) -> Option<usize> {
    if resp.status == 101 || after.is_empty() {
        return None;
    }
    if starts_response(after) {
        return Some(0);
    }
    let end = if resp.status == 204 || resp.status == 304 {
        0
    } else {
        match request_framing(&resp.headers) {
            Ok(Framing::Length(n)) => usize::try_from(n).ok().filter(|&n| n < after.len())?,
            Ok(Framing::Chunked) => chunked_end(after).ok().flatten()?,
            _ => return None,
        }
    };
    let mut next = end;
    while matches!(after.get(next), Some(b'\r' | b'\n')) {
        next += 1;
    }
    let tail = after.get(next..).unwrap_or_default();
    (!tail.is_empty() && starts_response(tail)).then_some(end)
}

/// True when `buf` starts with a complete HTTP/1.x response head.
fn starts_response(buf: &[u8]) -> bool {
    buf.starts_with(b"HTTP/1.")
        && matches!(
            head::httparse_response(buf, LENIENCY),
            Ok(httparse::Status::Complete(..))
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Header;

    fn req(method: &str, target: &str, headers: &[(&str, &[u8])], body: &[u8]) -> Request {
        let mut h = Headers::new();
        for (n, v) in headers {
            h.push(*n, *v);
        }
        Request {
            method: method.into(),
            target: target.into(),
            version: Version::Http11,
            headers: h,
            body: body.to_vec(),
            body_form: BodyForm::Wire,
        }
    }

    #[test]
    fn writes_request_verbatim() {
        let r = req(
            "POST",
            "/a?b=1",
            &[
                ("hOsT", b"x"),
                ("Content-Length", b"3"),
                ("X-Bin", b"\xff\x01"),
            ],
            b"abc",
        );
        assert_eq!(
            request_bytes(&r),
            b"POST /a?b=1 HTTP/1.1\r\nhOsT: x\r\nContent-Length: 3\r\nX-Bin: \xff\x01\r\n\r\nabc"
        );
    }

    #[test]
    fn writes_response_and_versions() {
        let mut r = Response {
            version: Version::Http2,
            status: 404,
            reason: "Not Found".into(),
            ..Default::default()
        };
        r.headers.push(":status", "404");
        r.headers.push("server", "x");
        assert_eq!(
            response_bytes(&r),
            b"HTTP/1.1 404 Not Found\r\nserver: x\r\n\r\n"
        );
        r.version = Version::Http10;
        r.reason.clear();
        assert!(response_bytes(&r).starts_with(b"HTTP/1.0 404 \r\n"));
        let mut q = req("GET", "/", &[], b"");
        q.version = Version::Other("spdy".into());
        assert_eq!(request_bytes(&q), b"GET / HTTP/1.1\r\n\r\n");
    }

    #[test]
    fn pseudo_headers_become_host_or_go() {
        let q = req(
            "GET",
            "/p",
            &[
                (":method", b"GET"),
                (":authority", b"example.com"),
                (":scheme", b"https"),
                (":path", b"/p"),
                ("accept", b"*/*"),
            ],
            b"",
        );
        assert_eq!(
            request_bytes(&q),
            b"GET /p HTTP/1.1\r\nHost: example.com\r\naccept: */*\r\n\r\n"
        );
        // With a Host header already there, :authority is just dropped.
        let q = req(
            "GET",
            "/p",
            &[(":authority", b"a.example"), ("host", b"b.example")],
            b"",
        );
        assert_eq!(
            request_bytes(&q),
            b"GET /p HTTP/1.1\r\nhost: b.example\r\n\r\n"
        );
    }

    #[test]
    fn header_values_cannot_inject_lines() {
        let q = req(
            "GET",
            "/",
            &[("X", b"a\r\nEvil: 1"), ("Fold", b"a\r\n b")],
            b"",
        );
        assert_eq!(
            request_bytes(&q),
            b"GET / HTTP/1.1\r\nX: a  Evil: 1\r\nFold: a\r\n b\r\n\r\n"
        );
    }

    #[test]
    fn decoded_gzip_chunked_body_becomes_consistent_wire_form() {
        let text = b"{\"hello\": \"world\"}".repeat(20);
        let resp = Response {
            version: Version::Http11,
            status: 200,
            reason: "OK".into(),
            headers: Headers(vec![
                Header::new("Content-Type", "application/json"),
                Header::new("Content-Encoding", "gzip"),
                Header::new("Transfer-Encoding", "chunked"),
                Header::new("Content-Length", "999"),
            ]),
            body: text.clone(),
            body_form: BodyForm::Decoded,
        };
        let bytes = response_bytes(&resp);
        let mut all = parse_recorded_responses(&bytes).unwrap();
        assert_eq!(all.len(), 1);
        let fin = all.remove(0);
        assert_eq!(fin.body_form, BodyForm::Wire);
        assert!(
            !fin.headers.contains("content-length"),
            "no Content-Length beside chunked"
        );
        assert!(fin.headers.has_token("transfer-encoding", "chunked"));
        assert_eq!(fin.headers.get("content-encoding"), Some(&b"gzip"[..]));
        assert_ne!(fin.body, text, "the body is encoded on the wire");
        assert_eq!(fin.decoded_body().unwrap().as_ref(), &text[..]);
        assert_eq!(chunked_end(&fin.body), Ok(Some(fin.body.len())));
    }

    #[test]
    fn decoded_request_body_gets_a_matching_content_length() {
        let body = b"name=a&password=b".to_vec();
        let mut q = req(
            "POST",
            "/login",
            &[("Content-Encoding", b"gzip"), ("Content-Length", b"17")],
            &body,
        );
        q.body_form = BodyForm::Decoded;
        let bytes = request_bytes(&q);
        let parsed = parse_requests(&bytes).unwrap();
        assert_eq!(
            parsed.len(),
            1,
            "the body is framed, not read as another request"
        );
        let p = &parsed[0];
        assert!(!p.truncated);
        assert_eq!(
            p.request.headers.get_str("content-length").unwrap(),
            p.request.body.len().to_string()
        );
        assert_eq!(p.request.decoded_body().unwrap().as_ref(), &body[..]);

        // An HTTP/2 request with a body and no framing header gets a Content-Length.
        let mut q = req("POST", "/x", &[(":authority", b"h")], b"data");
        q.body_form = BodyForm::Decoded;
        q.version = Version::Http2;
        assert_eq!(
            request_bytes(&q),
            b"POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n\r\ndata"
        );
    }

    #[test]
    fn unknown_coding_is_written_decoded_and_header_dropped() {
        let mut r = Response {
            status: 200,
            reason: "OK".into(),
            body: b"plain".to_vec(),
            body_form: BodyForm::Decoded,
            ..Default::default()
        };
        r.headers.push("Content-Encoding", "zstd");
        r.headers.push("Content-Length", "2");
        assert_eq!(
            response_bytes(&r),
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nplain"
        );
        // Codings mynah can produce all round-trip.
        for coding in ["gzip", "deflate", "br", "gzip, br"] {
            r.headers = Headers(vec![Header::new("content-encoding", coding)]);
            let fin = parse_recorded_responses(&response_bytes(&r))
                .unwrap()
                .remove(0);
            assert_eq!(fin.decoded_body().unwrap().as_ref(), b"plain", "{coding}");
            assert_eq!(
                fin.headers.get_str("content-length").unwrap(),
                fin.body.len().to_string()
            );
        }
    }

    #[test]
    fn decoded_head_and_304_bodies_are_left_alone() {
        let mut r = Response {
            status: 304,
            reason: "Not Modified".into(),
            body_form: BodyForm::Decoded,
            ..Default::default()
        };
        r.headers.push("Content-Encoding", "gzip");
        r.headers.push("Transfer-Encoding", "chunked");
        assert_eq!(
            response_bytes(&r),
            b"HTTP/1.1 304 Not Modified\r\nContent-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n"
        );
        // A HEAD-like empty body keeps its Content-Length.
        let mut r = Response {
            status: 200,
            reason: "OK".into(),
            body_form: BodyForm::Decoded,
            ..Default::default()
        };
        r.headers.push("Content-Length", "1234");
        assert!(response_bytes(&r).ends_with(b"Content-Length: 1234\r\n\r\n"));
    }

    #[test]
    fn parses_lf_only_and_pipelined_requests() {
        let buf = b"GET /a HTTP/1.1\nHost: x\n\nPOST /b HTTP/1.0\nContent-Length: 2\n\nhiGET /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n\r\n";
        let parsed = parse_requests(buf).unwrap();
        let targets: Vec<_> = parsed.iter().map(|p| p.request.target.as_str()).collect();
        assert_eq!(targets, ["/a", "/b", "/c"]);
        assert_eq!(parsed[1].request.version, Version::Http10);
        assert_eq!(parsed[1].request.body, b"hi");
        assert_eq!(parsed[2].request.body, b"2\r\nok\r\n0\r\n\r\n");
        assert_eq!(parsed[2].request.decoded_body().unwrap().as_ref(), b"ok");
        assert!(parsed.iter().all(|p| !p.truncated));
    }

    #[test]
    fn truncated_bodies_and_missing_blank_line() {
        let p = parse_request(b"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc").unwrap();
        assert!(p.truncated);
        assert_eq!(p.request.body, b"abc");
        let p =
            parse_request(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab").unwrap();
        assert!(p.truncated);
        // Hand-written records often end without the blank line.
        let p = parse_request(b"GET /x HTTP/1.1\r\nHost: h").unwrap();
        assert_eq!(p.request.headers.get("host"), Some(&b"h"[..]));
        let p = parse_request(b"GET /x HTTP/1.0\r\n").unwrap();
        assert_eq!(p.request.target, "/x");
    }

    #[test]
    fn parse_errors_name_the_offset() {
        let e = parse_requests(b"GET / HTTP/1.1\r\n\r\n\x00\x01garbage").unwrap_err();
        assert_eq!(e.offset, 18);
        assert!(e.message.contains("invalid HTTP request"), "{e}");
        let e = parse_requests(b"POST / HTTP/1.1\r\nContent-Length: x\r\n\r\n").unwrap_err();
        assert!(e.message.contains("Content-Length"), "{e}");
        assert!(parse_requests(b"\r\n").is_err());
        let e = parse_recorded_responses(b"HTTP/1.1 100 Continue\r\n\r\nnot http").unwrap_err();
        assert_eq!(e.offset, 25);
    }

    #[test]
    fn many_headers_are_retried_with_more_room() {
        let mut buf = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..1000 {
            buf.extend_from_slice(format!("X-{i}: {i}\r\n").as_bytes());
        }
        buf.extend_from_slice(b"\r\n");
        let p = parse_request(&buf).unwrap();
        assert_eq!(p.request.headers.len(), 1000);
        assert_eq!(p.request.headers.0[999].name, "X-999");
    }

    #[test]
    fn interim_then_final_response() {
        let buf = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA";
        let all = parse_recorded_responses(buf).unwrap();
        assert_eq!(
            all.iter().map(|r| r.status).collect::<Vec<_>>(),
            [100, 103, 200]
        );
        assert_eq!(all[1].headers.get("link"), Some(&b"</a>"[..]));
        assert_eq!(all[2].reason, "OK");
        assert_eq!(
            all[2].body, b"okEXTRA",
            "a recorded response's body is the rest"
        );
        let all = parse_recorded_responses(b"HTTP/1.1 100 Continue\r\n\r\n").unwrap();
        assert_eq!(all.len(), 1);
        assert!(parse_recorded_responses(b"").is_err());
    }

    #[test]
    fn responses_glued_after_a_head_response_are_split() {
        // What GoReplay records after a HEAD: the HEAD response (Content-Length, no body), then
        // the next responses on the connection.
        let buf = b"HTTP/1.1 200 OK\r\nContent-Length: 71\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\nHTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\nabcHTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nxyz";
        let all = parse_recorded_responses(buf).unwrap();
        let got: Vec<_> = all.iter().map(|r| (r.status, r.body.as_slice())).collect();
        assert_eq!(
            got,
            [
                (200, &b""[..]),
                (200, b"2\r\n{}\r\n0\r\n\r\n"),
                (404, b"abc"),
                (204, b""),
                (200, b"xyz"),
            ]
        );
        // A body that merely mentions HTTP/1.1 is not split.
        let buf = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 then text";
        let all = parse_recorded_responses(buf).unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].body, b"okHTTP/1.1 then text");
        // 101: what follows is another protocol.
        let buf = b"HTTP/1.1 101 Switching Protocols\r\n\r\nHTTP/1.1 200 OK\r\n\r\n";
        assert_eq!(parse_recorded_responses(buf).unwrap().len(), 1);
    }

    #[test]
    fn odd_header_line_is_ignored_not_fatal() {
        let p =
            parse_request(b"GET / HTTP/1.1\r\nGood: 1\r\nBad Name: 2\r\nAlso: 3\r\n\r\n").unwrap();
        let names: Vec<_> = p.request.headers.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(names, ["Good", "Also"]);
    }

    #[test]
    fn chunked_end_cases() {
        assert_eq!(chunked_end(b"0\r\n\r\nNEXT"), Ok(Some(5)));
        assert_eq!(chunked_end(b"0\r\nX-T: 1\r\n\r\nNEXT"), Ok(Some(13)));
        assert_eq!(chunked_end(b"3;x=y\nabc\n0\n\n"), Ok(Some(13)));
        assert_eq!(chunked_end(b"0\r\n"), Ok(Some(3)));
        assert_eq!(chunked_end(b"3\r\nab"), Ok(None));
        assert!(chunked_end(b"zz\r\n").is_err());
        assert!(chunked_end(b"3\r\nabcX\r\n").is_err());
        assert!(chunked_end(b"fffffffffffffffff\r\n").is_err());
    }

    #[test]
    fn framing_rules() {
        let h = |pairs: &[(&str, &str)]| {
            Headers(pairs.iter().map(|(n, v)| Header::new(*n, *v)).collect())
        };
        assert_eq!(request_framing(&h(&[])), Ok(Framing::None));
        assert_eq!(
            request_framing(&h(&[("content-length", "5, 5")])),
            Ok(Framing::Length(5))
        );
        assert!(request_framing(&h(&[("content-length", "5"), ("Content-Length", "6")])).is_err());
        assert_eq!(
            request_framing(&h(&[
                ("Content-Length", "5"),
                ("Transfer-Encoding", "gzip, chunked")
            ])),
            Ok(Framing::Chunked)
        );
        assert_eq!(
            request_framing(&h(&[("Transfer-Encoding", "gzip")])),
            Ok(Framing::UntilEnd)
        );
    }
}
