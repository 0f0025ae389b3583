//! The captured-traffic model: one [`Exchange`] is one HTTP request with its optional final response.
//!
//! Everything is kept as it was seen: header order and case, body bytes as on the wire (chunked framing
//! and content-coding included). Decoded views are computed on demand, so a reader never pays for
//! decompression that nobody asks for, and a writer can always reproduce the original bytes.

use std::borrow::Cow;
use std::fmt;
use std::net::SocketAddr;

use crate::decode::{self, DecodeError};

/// Nanoseconds since the Unix epoch (UTC). Captures carry at most microsecond or nanosecond resolution;
/// i64 nanoseconds covers the years 1678..2262.
pub type Nanos = i64;

/// One header field exactly as it was seen: original case, original bytes.
///
/// Values are bytes, not strings: real traffic carries Latin-1 and raw binary in header values, and a
/// round trip must not alter them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Header {
    pub name: String,
    pub value: Vec<u8>,
}

impl Header {
    pub fn new(name: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        Header {
            name: name.into(),
            value: value.into(),
        }
    }

    /// The value as text, with invalid UTF-8 replaced (for display and matching).
    pub fn value_str(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.value)
    }
}

/// Header fields in their original order. Lookups are case-insensitive, as HTTP requires.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Headers(pub Vec<Header>);

impl Headers {
    pub fn new() -> Self {
        Headers(Vec::new())
    }

    pub fn push(&mut self, name: impl Into<String>, value: impl Into<Vec<u8>>) {
        self.0.push(Header::new(name, value));
    }

    /// The first value of `name` (case-insensitive).
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.0
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value.as_slice())
    }

    /// The first value of `name` as text.
    pub fn get_str(&self, name: &str) -> Option<Cow<'_, str>> {
        self.get(name).map(String::from_utf8_lossy)
    }

    /// Every value of `name`, in order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.0
            .iter()
            .filter(move |h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value.as_slice())
    }

    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// True if any comma-separated element of any `name` header equals `token` (case-insensitive),
    /// e.g. `has_token("Transfer-Encoding", "chunked")`.
    pub fn has_token(&self, name: &str, token: &str) -> bool {
        self.get_all(name).any(|v| {
            v.split(|&b| b == b',')
                .any(|t| trim_ascii(t).eq_ignore_ascii_case(token.as_bytes()))
        })
    }

    /// Replaces the value of the first `name` header, or appends one.
    pub fn set(&mut self, name: &str, value: impl Into<Vec<u8>>) {
        let value = value.into();
        match self
            .0
            .iter_mut()
            .find(|h| h.name.eq_ignore_ascii_case(name))
        {
            Some(h) => h.value = value,
            None => self.push(name, value),
        }
    }

    /// Removes every `name` header.
    pub fn remove(&mut self, name: &str) {
        self.0.retain(|h| !h.name.eq_ignore_ascii_case(name));
    }

    pub fn iter(&self) -> std::slice::Iter<'_, Header> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

pub(crate) fn trim_ascii(mut s: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = s {
        if first.is_ascii_whitespace() {
            s = rest;
        } else {
            break;
        }
    }
    while let [rest @ .., last] = s {
        if last.is_ascii_whitespace() {
            s = rest;
        } else {
            break;
        }
    }
    s
}

/// The protocol version of a message as the capture states it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub enum Version {
    /// HTTP/0.9: a request line without a version.
    Http09,
    Http10,
    #[default]
    Http11,
    Http2,
    Http3,
    /// Anything else, verbatim (HAR files carry strings like `spdy` or `unknown`).
    Other(String),
}

impl Version {
    /// Parses the spellings seen in captures and HAR files (`HTTP/1.1`, `http/2.0`, `h2`, `h3`, `1.1`, ...).
    pub fn parse(s: &str) -> Version {
        let t = s.trim();
        let lower = t.to_ascii_lowercase();
        let bare = lower.strip_prefix("http/").unwrap_or(&lower);
        match bare {
            "1.1" => Version::Http11,
            "1.0" => Version::Http10,
            "0.9" => Version::Http09,
            "2" | "2.0" | "h2" | "h2c" => Version::Http2,
            "3" | "3.0" | "h3" => Version::Http3,
            _ if bare.starts_with("h3-") => Version::Http3,
            _ => Version::Other(t.to_string()),
        }
    }

    /// The spelling used on an HTTP/1.x request or status line.
    pub fn as_str(&self) -> &str {
        match self {
            Version::Http09 => "HTTP/0.9",
            Version::Http10 => "HTTP/1.0",
            Version::Http11 => "HTTP/1.1",
            Version::Http2 => "HTTP/2",
            Version::Http3 => "HTTP/3",
            Version::Other(s) => s,
        }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a message's body bytes are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum BodyForm {
    /// Exactly as on the wire: chunked framing (if `Transfer-Encoding: chunked`) and content-coding
    /// (if `Content-Encoding`) still applied. What pcap, `.gor` and the proxy give.
    #[default]
    Wire,
    /// Already de-chunked and decoded (what HAR files hold in `content.text`); the headers may still
    /// say `chunked` or `gzip`, describing the original transfer.
    Decoded,
}

/// An HTTP request as captured.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Request {
    pub method: String,
    /// The request target as sent: origin-form (`/a?b`), absolute-form (`http://h/a`), authority-form
    /// (`h:443`, CONNECT) or `*`.
    pub target: String,
    pub version: Version,
    pub headers: Headers,
    pub body: Vec<u8>,
    pub body_form: BodyForm,
}

/// An HTTP response (final or interim) as captured.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Response {
    pub version: Version,
    pub status: u16,
    /// The reason phrase as sent (may be empty).
    pub reason: String,
    pub headers: Headers,
    pub body: Vec<u8>,
    pub body_form: BodyForm,
}

impl Request {
    /// The body with chunked framing removed and content-coding (gzip, deflate, br) decoded.
    pub fn decoded_body(&self) -> Result<Cow<'_, [u8]>, DecodeError> {
        decode::decoded_body(&self.headers, &self.body, self.body_form)
    }

    /// The path and query of the target, whatever its form (`http://h/a?b` gives `/a?b`).
    pub fn path_and_query(&self) -> &str {
        let t = self.target.as_str();
        if let Some(rest) = t
            .strip_prefix("http://")
            .or_else(|| t.strip_prefix("https://"))
        {
            return match rest.find('/') {
                Some(i) => &rest[i..],
                None => "/",
            };
        }
        t
    }

    /// The path without the query.
    pub fn path(&self) -> &str {
        let pq = self.path_and_query();
        pq.split('?').next().unwrap_or(pq)
    }

    /// The host the request was for: the Host header, else the authority of an absolute-form target.
    pub fn host(&self) -> Option<String> {
        if let Some(h) = self.headers.get_str("host") {
            return Some(h.into_owned());
        }
        let t = self.target.as_str();
        let rest = t
            .strip_prefix("http://")
            .or_else(|| t.strip_prefix("https://"))?;
        Some(rest.split('/').next().unwrap_or(rest).to_string())
    }
}

impl Response {
    /// The body with chunked framing removed and content-coding (gzip, deflate, br) decoded.
    pub fn decoded_body(&self) -> Result<Cow<'_, [u8]>, DecodeError> {
        decode::decoded_body(&self.headers, &self.body, self.body_form)
    }

    /// 1xx responses other than 101 are interim: a final response follows on the same exchange.
    pub fn is_interim(&self) -> bool {
        (100..200).contains(&self.status) && self.status != 101
    }
}

/// When each part of an exchange was seen, in nanoseconds since the Unix epoch.
///
/// Sources record what they know: pcap gives all four, `.gor` gives the first bytes, HAR gives the
/// start and derives the rest from its `timings`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Timing {
    pub request_start: Nanos,
    pub request_end: Option<Nanos>,
    pub response_start: Option<Nanos>,
    pub response_end: Option<Nanos>,
}

impl Timing {
    pub fn at(request_start: Nanos) -> Self {
        Timing {
            request_start,
            ..Default::default()
        }
    }

    /// When the exchange was last seen: the response's last (or first) byte, else the
    /// request's start; never before the request's start. Think times run from here to the
    /// session's next request.
    pub fn ended(&self) -> Nanos {
        self.response_end
            .or(self.response_start)
            .unwrap_or(self.request_start)
            .max(self.request_start)
    }

    /// From the request's first byte to the response's last (or first) byte, if known.
    pub fn duration(&self) -> Option<Nanos> {
        self.response_end
            .or(self.response_start)
            .map(|e| e - self.request_start)
    }
}

/// Which connection an exchange travelled on, and where on it.
///
/// `.gor` files carry no reliable connection identity, so everything here is optional but `index`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ConnectionInfo {
    pub client: Option<SocketAddr>,
    pub server: Option<SocketAddr>,
    /// A number unique to the connection within one source (the order connections were first seen).
    pub id: Option<u64>,
    /// The position of this exchange on its connection, from 0.
    pub index: u32,
    /// The connection was TLS (`https`). Packet captures only see plaintext HTTP, so this comes
    /// from sources that saw the URL: HAR files, and proxies that terminate TLS.
    pub tls: bool,
}

/// Why an exchange is not whole. Incomplete exchanges are kept and counted, never dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Incomplete {
    /// The request was seen, no response to it was.
    NoResponse,
    /// Bytes of the request or response were never captured (a sequence gap).
    MissingSegments,
    /// A body ended before its declared length (connection closed, snaplen, or a reader limit).
    TruncatedBody,
    /// The capture ended while the exchange was still in progress.
    CaptureEnded,
}

impl Incomplete {
    pub const ALL: [Incomplete; 4] = [
        Incomplete::NoResponse,
        Incomplete::MissingSegments,
        Incomplete::TruncatedBody,
        Incomplete::CaptureEnded,
    ];

    /// The stable name used in reports and JSON (`no_response`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Incomplete::NoResponse => "no_response",
            Incomplete::MissingSegments => "missing_segments",
            Incomplete::TruncatedBody => "truncated_body",
            Incomplete::CaptureEnded => "capture_ended",
        }
    }

    pub fn parse(s: &str) -> Option<Incomplete> {
        Incomplete::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

impl fmt::Display for Incomplete {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One HTTP request and its final response, with what came between and around them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Exchange {
    pub request: Request,
    /// The final (non-1xx, or 101) response, if one was seen.
    pub response: Option<Response>,
    /// Interim 1xx responses (100 Continue, 103 Early Hints, ...) in the order they arrived.
    pub interim: Vec<Response>,
    pub timing: Timing,
    pub connection: ConnectionInfo,
    /// Set when something is missing; the exchange is still kept.
    pub incomplete: Option<Incomplete>,
}

impl Exchange {
    pub fn new(request: Request, request_start: Nanos) -> Self {
        Exchange {
            request,
            timing: Timing::at(request_start),
            ..Default::default()
        }
    }
}
