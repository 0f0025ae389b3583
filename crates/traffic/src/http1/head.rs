//! Message heads: start lines and header sections.
//!
//! `httparse` is the fast path. What it rejects but real captures contain (HTTP/0.9 request lines,
//! odd versions such as `HTTP/1.`, obs-fold in requests, non-UTF-8 targets, stray bytes in header
//! lines) goes through a lenient line parser instead, so a single odd message does not cost the
//! rest of the connection.
//!
//! This is also the one place httparse's output becomes model heads ([`httparse_request`],
//! [`httparse_response`]): [`crate::wire`], which parses whole messages, goes through it too.

use crate::model::{trim_ascii, Header, Headers, Request, Response, Version};

/// Header fields kept per message at most; beyond, lines are ignored (the head itself is capped
/// at [`super::MAX_HEAD`] bytes, so this only bounds pathological heads of tiny lines).
const MAX_HEADERS: usize = 16 << 10;
/// httparse is retried with more header slots up to this many; beyond, the streaming parser falls
/// back to its lenient parser and [`crate::wire`] gives up.
pub(crate) const MAX_HTTPARSE_HEADERS: usize = 4096;
/// Longest method token accepted.
const MAX_METHOD: usize = 32;

/// Methods accepted on a request line without a version (HTTP/0.9 style) where nothing else says
/// the stream is HTTP.
const KNOWN_METHODS: [&[u8]; 9] = [
    b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"OPTIONS", b"TRACE", b"CONNECT", b"PATCH",
];

/// What the framing and connection logic needs to know about a head's fields.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Fields {
    pub content_length: ContentLength,
    pub transfer_encoding: bool,
    /// Some `Transfer-Encoding` lists `chunked`.
    pub chunked: bool,
    pub expect_continue: bool,
    /// The first protocol named by `Upgrade`.
    pub upgrade: Option<UpgradeKind>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) enum ContentLength {
    #[default]
    Absent,
    Valid(u64),
    /// Unparsable, or several different values.
    Invalid,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum UpgradeKind {
    Websocket,
    H2c,
    Other,
}

impl UpgradeKind {
    pub(super) fn from_value(v: &[u8]) -> UpgradeKind {
        let first = v.split(|&b| b == b',').next().unwrap_or(v);
        let first = trim_ascii(first);
        let name = first.split(|&b| b == b'/').next().unwrap_or(first);
        if name.eq_ignore_ascii_case(b"websocket") {
            UpgradeKind::Websocket
        } else if name.eq_ignore_ascii_case(b"h2c") {
            UpgradeKind::H2c
        } else {
            UpgradeKind::Other
        }
    }
}

pub(super) struct ParsedRequest {
    pub request: Request,
    pub fields: Fields,
}

pub(super) struct ParsedResponse {
    pub response: Response,
    pub fields: Fields,
}

/// A request line split into its parts (without the line end).
#[derive(Debug, PartialEq, Eq)]
pub(super) struct RequestLine<'a> {
    pub method: &'a [u8],
    pub target: &'a [u8],
    /// `None` for an HTTP/0.9-style line.
    pub version: Option<&'a [u8]>,
}

/// A status line split into its parts (without the line end).
#[derive(Debug, PartialEq, Eq)]
pub(super) struct StatusLine<'a> {
    pub version: &'a [u8],
    pub status: u16,
    pub reason: &'a [u8],
}

pub(super) fn is_tchar(b: u8) -> bool {
    matches!(b,
        b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9'
        | b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+' | b'-' | b'.' | b'^' | b'_'
        | b'`' | b'|' | b'~')
}

/// Bytes that never appear on a start line (controls other than HTAB and the line end).
pub(super) fn is_line_control(b: u8) -> bool {
    (b < 0x20 && b != b'\t' && b != b'\r' && b != b'\n') || b == 0x7f
}

/// A method as real clients write it: upper-case letters, digits, `_` and `-`, starting with a letter.
fn is_strict_method(m: &[u8]) -> bool {
    !m.is_empty()
        && m.len() <= MAX_METHOD
        && m[0].is_ascii_uppercase()
        && m.iter()
            .all(|&b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// `HTTP/` followed by a short run of digits and dots (`HTTP/1.1`, `HTTP/1.`, `HTTP/0.9`).
fn is_version_token(v: &[u8], strict: bool) -> bool {
    match v.get(..5) {
        Some(p) if p.eq_ignore_ascii_case(b"HTTP/") => {}
        _ => return false,
    }
    if strict && !v.starts_with(b"HTTP/") {
        return false;
    }
    let rest = &v[5..];
    rest.len() <= 6 && rest.iter().all(|&b| b.is_ascii_digit() || b == b'.')
}

fn strip_line_end(mut line: &[u8]) -> &[u8] {
    if let [rest @ .., b'\n'] = line {
        line = rest;
    }
    if let [rest @ .., b'\r'] = line {
        line = rest;
    }
    line
}

fn is_space(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// Parses a request line (line end optional). `strict` is for places where nothing yet says the
/// bytes are HTTP (connection start, resynchronisation): the method must look like a real one,
/// and a line without a version must use a well-known method and an origin-form target.
pub(super) fn request_line(line: &[u8], strict: bool) -> Option<RequestLine<'_>> {
    let terminated = line.last() == Some(&b'\n');
    let line = strip_line_end(line);
    if line.iter().any(|&b| is_line_control(b) || b == b'\r') {
        return None;
    }
    let Some(sp) = line.iter().position(|&b| is_space(b)) else {
        // A bare well-known method (`OPTIONS`) is a broken request, but a request: servers answer
        // it with a 400, and dissectors such as tshark count it. Only a whole line qualifies.
        return (terminated && KNOWN_METHODS.contains(&line)).then_some(RequestLine {
            method: line,
            target: b"",
            version: None,
        });
    };
    let method = &line[..sp];
    let ok_method = if strict {
        is_strict_method(method)
    } else {
        !method.is_empty() && method.len() <= MAX_METHOD && method.iter().all(|&b| is_tchar(b))
    };
    if !ok_method {
        return None;
    }
    let rest = trim_ascii(&line[sp..]);
    if rest.is_empty() {
        return None;
    }
    // The version is the last word; a target may (wrongly, but really) contain spaces.
    let (target, version) = match rest.iter().rposition(|&b| is_space(b)) {
        Some(p) if is_version_token(&rest[p + 1..], strict) => {
            (trim_ascii(&rest[..p]), Some(&rest[p + 1..]))
        }
        Some(_) => return None,
        None => (rest, None),
    };
    if target.is_empty() {
        return None;
    }
    // Without a version nothing else says this is HTTP: take well-known methods with any target
    // (`OPTIONS HTTP/1.1` is answered with a 400), and other methods only with an origin-form one.
    if version.is_none()
        && strict
        && !(KNOWN_METHODS.contains(&method) || target.first() == Some(&b'/'))
    {
        return None;
    }
    Some(RequestLine {
        method,
        target,
        version,
    })
}

/// Parses a status line (line end optional): `HTTP/x.y SP ddd [SP reason]`.
pub(super) fn status_line(line: &[u8], strict: bool) -> Option<StatusLine<'_>> {
    let line = strip_line_end(line);
    let sp = line.iter().position(|&b| is_space(b))?;
    let version = &line[..sp];
    if !is_version_token(version, strict) {
        return None;
    }
    if strict && !(version.len() == 8 && version[5].is_ascii_digit() && version[6] == b'.') {
        return None;
    }
    let rest = &line[sp..];
    let rest = &rest[rest.iter().position(|&b| !is_space(b))?..];
    let code = rest.get(..3)?;
    if !code.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let after = &rest[3..];
    if let Some(&b) = after.first() {
        if !is_space(b) {
            return None;
        }
    }
    if after.iter().any(|&b| is_line_control(b) || b == b'\r') {
        return None;
    }
    let status = code
        .iter()
        .fold(0u16, |acc, &d| acc * 10 + u16::from(d - b'0'));
    Some(StatusLine {
        version,
        status,
        reason: trim_ascii(after),
    })
}

/// Where a message may start in `r`, judged strictly as `r` may be any bytes: a status line
/// (`HTTP/d.d ddd`) anywhere, or a request line ending in ` HTTP/d.d` and a line end, whose
/// method may be glued to the end of a body (`...b=2GET /next HTTP/1.1`).
pub(super) fn find_start(r: &[u8], want_req: bool, want_resp: bool) -> Option<usize> {
    let mut from = 0;
    while let Some(k) = memchr::memchr(b'H', r.get(from..)?) {
        let p = from + k;
        from = p + 1;
        let rest = &r[p..];
        if !rest.starts_with(b"HTTP/") {
            continue;
        }
        if want_resp && status_at(rest) {
            return Some(p);
        }
        if want_req && p > 0 && is_space(r[p - 1]) {
            if let Some(start) = request_ending_at(r, p) {
                return Some(start);
            }
        }
    }
    None
}

/// `HTTP/d.d ddd` followed by a space or line end.
fn status_at(rest: &[u8]) -> bool {
    const PAT: &[u8; 12] = b"HTTP/9.9 999";
    rest.len() > PAT.len()
        && PAT.iter().zip(rest).all(|(&p, &b)| match p {
            b'9' => b.is_ascii_digit(),
            _ => b == p,
        })
        && matches!(rest[PAT.len()], b' ' | b'\t' | b'\r' | b'\n')
}

/// The start of a request line whose version begins at `p`, if it is one.
fn request_ending_at(r: &[u8], p: usize) -> Option<usize> {
    let v = &r[p..];
    let vend = v.iter().take(16).position(|&b| b == b'\r' || b == b'\n')?;
    if !is_version_token(&v[..vend], true) {
        return None;
    }
    let line_start = memchr::memrchr(b'\n', &r[..p]).map_or(0, |q| q + 1);
    let mut q = p;
    while q > line_start && is_space(r[q - 1]) {
        q -= 1;
    }
    let t_end = q;
    while q > line_start && !is_space(r[q - 1]) {
        q -= 1;
    }
    let t_start = q;
    while q > line_start && is_space(r[q - 1]) {
        q -= 1;
    }
    let m_end = q;
    if t_start == t_end || m_end == t_start {
        return None;
    }
    let method_char =
        |b: u8| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_' || b == b'-';
    while q > line_start && m_end - q <= 2 * MAX_METHOD && method_char(r[q - 1]) {
        q -= 1;
    }
    let run = &r[q..m_end];
    let full = q + run.iter().position(u8::is_ascii_uppercase)?;
    // A run glued to preceding letters or digits is likely a body's end followed by the method:
    // then a well-known method at the run's end is the method.
    let glued = full > line_start && r[full - 1].is_ascii_alphanumeric();
    let known = KNOWN_METHODS
        .iter()
        .filter(|m| run.ends_with(m))
        .map(|m| m_end - m.len())
        .min();
    let start = match known {
        Some(k) if glued => k,
        _ => full,
    };
    let target_ok =
        matches!(r[t_start], b'/' | b'*' | b'h' | b'H') || &r[start..m_end] == b"CONNECT";
    (target_ok && request_line(&r[start..p + vend], true).is_some()).then_some(start)
}

/// True if `data` (after any blank-line bytes) plausibly starts a new request: used where a body
/// was expected but the peer evidently moved on (a final response came before an announced body).
pub(super) fn looks_like_request_start(data: &[u8]) -> bool {
    let skip = data
        .iter()
        .take_while(|&&b| b == b'\r' || b == b'\n')
        .count();
    let d = &data[skip..];
    let Some(sp) = d.iter().take(MAX_METHOD + 1).position(|&b| b == b' ') else {
        return false;
    };
    if sp < 3 || !is_strict_method(&d[..sp]) {
        return false;
    }
    matches!(d.get(sp + 1), Some(b'/' | b'*' | b'h' | b'H'))
        || (d[..sp] == *b"CONNECT" && d.get(sp + 1).is_some_and(u8::is_ascii_alphanumeric))
}

/// Early rejection while a start line is still arriving: `buf` is the line so far (no `\n` yet),
/// `new_from` where this call's bytes begin. Returns false when the bytes cannot begin a message
/// of the wanted kind.
pub(super) fn prefix_plausible(
    buf: &[u8],
    new_from: usize,
    want_req: bool,
    want_resp: bool,
    strict: bool,
) -> bool {
    if buf
        .get(new_from..)
        .unwrap_or_default()
        .iter()
        .any(|&b| is_line_control(b))
    {
        return false;
    }
    let resp = want_resp && {
        let n = buf.len().min(5);
        buf[..n].eq_ignore_ascii_case(&b"HTTP/"[..n])
    };
    let req = want_req && {
        let head = &buf[..buf.len().min(MAX_METHOD + 1)];
        match head.iter().position(|&b| is_space(b)) {
            Some(sp) => {
                let m = &head[..sp];
                if strict {
                    is_strict_method(m)
                } else {
                    !m.is_empty() && m.iter().all(|&b| is_tchar(b))
                }
            }
            None => {
                head.len() <= MAX_METHOD
                    && head.iter().all(|&b| {
                        if strict {
                            b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_' || b == b'-'
                        } else {
                            is_tchar(b)
                        }
                    })
            }
        }
    };
    req || resp
}

/// How tolerant httparse is of header lines. Both parsers of heads (this streaming one and
/// [`crate::wire`]'s whole-message one) go through [`httparse_request`] / [`httparse_response`];
/// each keeps the leniency its callers rely on.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Leniency {
    /// Whitespace before the first header name is skipped; otherwise that line is invalid.
    pub space_before_first_header: bool,
    /// The head is parsed strictly first, and only when a header line is rejected once more
    /// dropping invalid lines; otherwise invalid lines are dropped from the start.
    pub strict_first: bool,
}

/// The streaming parser's leniency: a stray line must not cost the rest of the connection.
const STREAM: Leniency = Leniency {
    space_before_first_header: true,
    strict_first: false,
};

impl Leniency {
    fn config(self, ignore_invalid: bool) -> httparse::ParserConfig {
        let mut c = httparse::ParserConfig::default();
        // Each option applies to one kind of message only, so one config serves both kinds.
        c.allow_multiple_spaces_in_request_line_delimiters(true)
            .allow_multiple_spaces_in_response_status_delimiters(true)
            .allow_spaces_after_header_name_in_responses(true)
            .allow_obsolete_multiline_headers_in_responses(true)
            .allow_space_before_first_header_name(self.space_before_first_header)
            .ignore_invalid_headers_in_requests(ignore_invalid)
            .ignore_invalid_headers_in_responses(ignore_invalid);
        c
    }
}

/// Runs `parse` with httparse header slots: 64 on the stack (no allocation for most heads), then
/// more on TooManyHeaders, up to [`MAX_HTTPARSE_HEADERS`]; with [`Leniency::strict_first`], a
/// rejected header line switches to dropping invalid lines for this and the later tries.
fn with_slots<'b, T>(
    how: Leniency,
    mut parse: impl FnMut(
        &mut [httparse::Header<'b>],
        &httparse::ParserConfig,
    ) -> Result<T, httparse::Error>,
) -> Result<T, httparse::Error> {
    let mut ignore_invalid = !how.strict_first;
    let mut attempt = |slots: &mut [httparse::Header<'b>]| loop {
        match parse(slots, &how.config(ignore_invalid)) {
            Err(httparse::Error::HeaderName | httparse::Error::HeaderValue) if !ignore_invalid => {
                ignore_invalid = true;
            }
            other => return other,
        }
    };
    let mut stack = [httparse::EMPTY_HEADER; 64];
    match attempt(&mut stack) {
        Err(httparse::Error::TooManyHeaders) => {}
        other => return other,
    }
    let mut n = 256;
    loop {
        let mut slots = vec![httparse::EMPTY_HEADER; n];
        match attempt(&mut slots) {
            Err(httparse::Error::TooManyHeaders) if n < MAX_HTTPARSE_HEADERS => n *= 4,
            other => return other,
        }
    }
}

/// Parses a request head with httparse: the request (body empty) and the head's length in bytes,
/// or `Partial` when `head` ends first.
pub(crate) fn httparse_request(head: &[u8], how: Leniency) -> httparse::Result<(Request, usize)> {
    with_slots(how, |slots, cfg| {
        let mut req = httparse::Request::new(slots);
        Ok(match cfg.parse_request(&mut req, head)? {
            httparse::Status::Complete(n) => httparse::Status::Complete((
                Request {
                    method: req.method.unwrap_or_default().to_owned(),
                    target: req.path.unwrap_or_default().to_owned(),
                    version: minor_version(req.version),
                    headers: own_headers(req.headers, false),
                    ..Default::default()
                },
                n,
            )),
            httparse::Status::Partial => httparse::Status::Partial,
        })
    })
}

/// Parses a response head with httparse: the response (body empty, header values as sent) and
/// the head's length in bytes, or `Partial` when `head` ends first.
pub(crate) fn httparse_response(head: &[u8], how: Leniency) -> httparse::Result<(Response, usize)> {
    httparse_response_as(head, how, |resp| Response {
        version: minor_version(resp.version),
        status: resp.code.unwrap_or_default(),
        reason: resp.reason.unwrap_or_default().to_owned(),
        headers: own_headers(resp.headers, false),
        ..Default::default()
    })
}

/// [`httparse_response`] with the caller choosing what to keep of httparse's parse (the streaming
/// parser reads the status line itself and takes only the header fields: no allocation wasted).
fn httparse_response_as<T>(
    head: &[u8],
    how: Leniency,
    mut build: impl FnMut(&httparse::Response<'_, '_>) -> T,
) -> httparse::Result<(T, usize)> {
    with_slots(how, |slots, cfg| {
        let mut resp = httparse::Response::new(slots);
        Ok(match cfg.parse_response(&mut resp, head)? {
            httparse::Status::Complete(n) => httparse::Status::Complete((build(&resp), n)),
            httparse::Status::Partial => httparse::Status::Partial,
        })
    })
}

/// The version httparse reports as a minor number (it only accepts `HTTP/1.0` and `HTTP/1.1`).
fn minor_version(minor: Option<u8>) -> Version {
    match minor {
        Some(0) => Version::Http10,
        _ => Version::Http11,
    }
}

/// Replaces each obs-fold (line end plus leading whitespace) inside a value with one space, as
/// RFC 9112 §5.2 asks of recipients.
fn unfold(value: &[u8]) -> Vec<u8> {
    if !value.iter().any(|&b| b == b'\n' || b == b'\r') {
        return value.to_vec();
    }
    let mut out = Vec::with_capacity(value.len());
    let mut folding = false;
    for &b in value {
        if b == b'\r' || b == b'\n' {
            folding = true;
        } else if folding && is_space(b) {
        } else {
            if folding {
                out.push(b' ');
                folding = false;
            }
            out.push(b);
        }
    }
    out
}

fn own_headers(hs: &[httparse::Header<'_>], folded: bool) -> Headers {
    Headers(
        hs.iter()
            .map(|h| Header {
                name: h.name.to_owned(),
                value: if folded {
                    unfold(h.value)
                } else {
                    h.value.to_vec()
                },
            })
            .collect(),
    )
}

/// The message of a complete head; None when httparse failed or the head is cut short (the caller
/// falls back to the lenient parser).
fn complete<T>(parsed: httparse::Result<(T, usize)>) -> Option<T> {
    match parsed {
        Ok(httparse::Status::Complete((m, _))) => Some(m),
        _ => None,
    }
}

fn first_line(head: &[u8]) -> (&[u8], &[u8]) {
    match memchr::memchr(b'\n', head) {
        Some(p) => (&head[..=p], &head[p + 1..]),
        None => (head, &[]),
    }
}

fn version_of(v: Option<&[u8]>) -> Version {
    match v {
        None => Version::Http09,
        Some(b"HTTP/1.1") => Version::Http11,
        Some(b"HTTP/1.0") => Version::Http10,
        Some(v) => Version::parse(&String::from_utf8_lossy(v)),
    }
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Parses a complete request head (start line through the blank line). `folded`: some line
/// begins with whitespace (obs-fold); false lets parsing skip looking for it.
pub(super) fn parse_request(head: &[u8], strict: bool, folded: bool) -> Option<ParsedRequest> {
    if strict && request_line(first_line(head).0, true).is_none() {
        return None;
    }
    // httparse drops folded lines in requests; the lenient parser joins them.
    let fast = if folded {
        None
    } else {
        complete(httparse_request(head, STREAM))
    };
    let request = match fast {
        Some(r) => r,
        None => lenient_request(head, false)?,
    };
    let fields = fields_of(&request.headers);
    Some(ParsedRequest { request, fields })
}

/// Parses a request head leniently; also used for heads cut short (no blank line).
pub(super) fn lenient_request(head: &[u8], strict: bool) -> Option<Request> {
    let (line, rest) = first_line(head);
    let rl = request_line(line, strict)?;
    Some(Request {
        method: lossy(rl.method),
        target: lossy(rl.target),
        version: version_of(rl.version),
        headers: lenient_fields(rest),
        ..Default::default()
    })
}

/// Parses a complete response head; `folded` as for [`parse_request`].
pub(super) fn parse_response(head: &[u8], strict: bool, folded: bool) -> Option<ParsedResponse> {
    let (line, _) = first_line(head);
    // Our own status-line parse gives the reason as sent (httparse drops one with obs-text).
    let sl = status_line(line, strict)?;
    let fast = complete(httparse_response_as(head, STREAM, |resp| {
        own_headers(resp.headers, folded)
    }));
    let headers = match fast {
        Some(h) => h,
        None => lenient_fields(first_line(head).1),
    };
    let response = Response {
        version: version_of(Some(sl.version)),
        status: sl.status,
        reason: lossy(sl.reason),
        headers,
        ..Default::default()
    };
    let fields = fields_of(&response.headers);
    Some(ParsedResponse { response, fields })
}

/// Parses a response head leniently; also used for heads cut short.
pub(super) fn lenient_response(head: &[u8]) -> Option<Response> {
    let (line, rest) = first_line(head);
    let sl = status_line(line, false)?;
    Some(Response {
        version: version_of(Some(sl.version)),
        status: sl.status,
        reason: lossy(sl.reason),
        headers: lenient_fields(rest),
        ..Default::default()
    })
}

/// Header lines up to the first empty line (or the end): obs-fold joins the previous value with
/// one space, lines that are not `name: value` are ignored, as browsers do.
fn lenient_fields(section: &[u8]) -> Headers {
    let mut out: Vec<Header> = Vec::new();
    for raw in section.split(|&b| b == b'\n') {
        let line = raw.strip_suffix(b"\r").unwrap_or(raw);
        if line.is_empty() {
            break;
        }
        if is_space(line[0]) {
            if let Some(last) = out.last_mut() {
                let t = trim_ascii(line);
                if !t.is_empty() {
                    if !last.value.is_empty() {
                        last.value.push(b' ');
                    }
                    last.value.extend_from_slice(t);
                }
            }
            continue;
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let name = trim_ascii(&line[..colon]);
        if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) || out.len() >= MAX_HEADERS {
            continue;
        }
        out.push(Header {
            name: lossy(name),
            value: trim_ascii(&line[colon + 1..]).to_vec(),
        });
    }
    Headers(out)
}

fn parse_content_length(v: &[u8]) -> Option<u64> {
    // A list of identical values (`5, 5`) is what some proxies produce; RFC 9110 §8.6 allows it.
    let mut value = None;
    for part in v.split(|&b| b == b',') {
        let p = trim_ascii(part);
        if p.is_empty() || p.len() > 19 || !p.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let n = p
            .iter()
            .fold(0u64, |acc, &d| acc * 10 + u64::from(d - b'0'));
        match value {
            Some(prev) if prev != n => return None,
            _ => value = Some(n),
        }
    }
    value
}

/// One pass over the fields the framing depends on.
pub(super) fn fields_of(headers: &Headers) -> Fields {
    let mut f = Fields::default();
    for h in headers.iter() {
        let name = h.name.as_bytes();
        if name.eq_ignore_ascii_case(b"content-length") {
            f.content_length = match (f.content_length, parse_content_length(&h.value)) {
                (ContentLength::Absent, Some(n)) => ContentLength::Valid(n),
                (ContentLength::Valid(a), Some(b)) if a == b => ContentLength::Valid(a),
                _ => ContentLength::Invalid,
            };
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            f.transfer_encoding = true;
            f.chunked |= h
                .value
                .split(|&b| b == b',')
                .any(|t| trim_ascii(t).eq_ignore_ascii_case(b"chunked"));
        } else if name.eq_ignore_ascii_case(b"expect") {
            f.expect_continue |= trim_ascii(&h.value).eq_ignore_ascii_case(b"100-continue");
        } else if name.eq_ignore_ascii_case(b"upgrade") && f.upgrade.is_none() {
            f.upgrade = Some(UpgradeKind::from_value(&h.value));
        }
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_lines() {
        let rl = request_line(b"GET /a HTTP/1.1\r\n", true).unwrap();
        assert_eq!(
            (rl.method, rl.target, rl.version),
            (&b"GET"[..], &b"/a"[..], Some(&b"HTTP/1.1"[..]))
        );
        // HTTP/0.9 and odd versions seen in zeek's methods.pcap
        assert_eq!(
            request_line(b"GET /HTTP/1.1\n", true).unwrap().version,
            None
        );
        assert_eq!(
            request_line(b"CCM_POST / HTTP/1.\n", true).unwrap().version,
            Some(&b"HTTP/1."[..])
        );
        assert!(request_line(b"OPTIONS HTTP/1.1", true).is_some());
        assert!(request_line(b"OPTIONS\n", true).is_some());
        assert!(
            request_line(b"OPTIONS", true).is_none(),
            "the line may still be arriving"
        );
        assert!(request_line(b"HELLO\n", true).is_none());
        assert!(request_line(b"CCM_POST /HTTP/1.1\n", true).is_some());
        assert!(request_line(b"HELLO world\n", true).is_none());
        assert!(request_line(b"OPTIONS HTTP/1.1", false).is_some());
        assert!(request_line(b"OPTIONSHTTP/1.1", false).is_none());
        assert!(request_line(b"GET/ HTTP/1.1", false).is_none());
        assert!(request_line(b"\xc3\x83\xc3\x82 / HTTP/1.1", false).is_none());
        assert!(request_line(b"foo bar", true).is_none());
        assert!(request_line(b"get / HTTP/1.1", true).is_none());
        assert!(request_line(b"get / HTTP/1.1", false).is_some());
        // a space inside the target: the version is the last word
        assert_eq!(
            request_line(b"GET /a b HTTP/1.0", false).unwrap().target,
            b"/a b"
        );
    }

    #[test]
    fn status_lines() {
        let s = status_line(b"HTTP/1.1 100 Go Ahead\r\n", true).unwrap();
        assert_eq!((s.status, s.reason), (100, &b"Go Ahead"[..]));
        assert_eq!(status_line(b"HTTP/1.0 204", true).unwrap().reason, b"");
        assert!(status_line(b"HTTP/1.1 20", false).is_none());
        assert!(status_line(b"HTTP/1.1 2000 x", false).is_none());
        assert!(status_line(b"ICY 200 OK", false).is_none());
    }

    #[test]
    fn finding_message_starts() {
        let f = |r: &[u8]| find_start(r, true, true);
        assert_eq!(f(b"xyzHTTP/1.1 200 OK\r\n"), Some(3));
        assert_eq!(f(b"HTTP/1.1 200"), None, "not sure yet");
        assert_eq!(find_start(b"HTTP/1.1 200 OK\r\n", true, false), None);
        assert_eq!(f(b"a=1&b=2GET /next HTTP/1.1\r\n"), Some(7));
        assert_eq!(f(b"junk\nABCPOST /x HTTP/1.0\n"), Some(5));
        assert_eq!(f(b"junkABCPOST /x HTTP/1.0\n"), Some(7));
        assert_eq!(f(b"zz\nCCM_POST / HTTP/1.\n"), Some(3));
        assert_eq!(f(b"}CCM_POST / HTTP/1.1\n"), Some(1));
        assert_eq!(
            f(b"zzCCM_POST / HTTP/1.1\n"),
            Some(6),
            "ambiguous: the known method wins"
        );
        assert_eq!(f(b"GET /x HTTP/1.1"), None, "line end needed");
        assert_eq!(f(b"GET/ HTTP/1.1\n"), None);
        assert_eq!(f(b"OPTIONS HTTP/1.1\n"), None);
        assert_eq!(f(b"\xc3\x83\xc3\x82 / HTTP/1.1\n"), None);
        assert_eq!(f(b"see HTTP/1.1 for details\n"), None);
        assert_eq!(f(b"\x16\x03\x01\x02\x00function(a){\n"), None);
    }

    #[test]
    fn folded_and_odd_headers() {
        let r = lenient_request(
            b"GET / HTTP/1.1\r\nX-Long: a\r\n  b\r\nbad line\r\nHost : h\r\n\r\n",
            false,
        )
        .unwrap();
        assert_eq!(r.headers.get("x-long"), Some(&b"a b"[..]));
        assert_eq!(r.headers.get("host"), Some(&b"h"[..]));
        assert_eq!(r.headers.len(), 2);
        assert_eq!(unfold(b"a\r\n\t b"), b"a b");
    }

    #[test]
    fn content_length_values() {
        assert_eq!(parse_content_length(b" 12 "), Some(12));
        assert_eq!(parse_content_length(b"5, 5"), Some(5));
        assert_eq!(parse_content_length(b"5, 6"), None);
        assert_eq!(parse_content_length(b"-1"), None);
        assert_eq!(parse_content_length(b"99999999999999999999"), None);
    }

    #[test]
    fn too_many_headers_retries() {
        let mut head = b"HTTP/1.1 200 OK\r\n".to_vec();
        for i in 0..300 {
            head.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
        }
        head.extend_from_slice(b"\r\n");
        let r = parse_response(&head, false, false).unwrap();
        assert_eq!(r.response.headers.len(), 300);
        let mut head = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..5000 {
            head.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
        }
        head.extend_from_slice(b"\r\n");
        // beyond httparse's cap the lenient parser takes over
        assert_eq!(
            parse_request(&head, false, false)
                .unwrap()
                .request
                .headers
                .len(),
            5000
        );
    }
}
