//! Writing HAR 1.2, one entry at a time.

use std::borrow::Cow;
use std::io::{self, Write};

use serde::{Serialize, Serializer};

use super::text::{encode_base64, format_timestamp, parse_http_date, query_pairs, UrlParts};
use crate::model::{BodyForm, Exchange, Headers, Nanos, Request, Response, Version};
use crate::sink::{ExchangeWriter, Output};

/// Writes exchanges as a HAR 1.2 file: `{"log":{..., "entries":[` first, one entry per line as
/// they come, and `]}}` on [`ExchangeWriter::finish`] (or [`HarWriter::close`]).
///
/// The standard fields say all HAR can say, for other tools: an absolute `url` (the target if it
/// is absolute-form, else scheme + Host + target; https when `:scheme` says so or the server port
/// is 443), decoded bodies (base64 with `encoding` when not UTF-8), cookies, query string,
/// `redirectURL`, sizes, timings with sub-millisecond precision (so nanoseconds survive), and
/// status 0 with empty fields for a request that got no response, as browsers write it.
///
/// Underscore extensions (allowed by the spec) carry the rest, so that reading the file back
/// gives the same exchanges:
///
/// - `_target`: the request target exactly as sent.
/// - `_wireBody` (on `request`/`response`): base64 of the wire body when it differs from the
///   decoded one (chunked or content-coded) or cannot be decoded (`_decodeError` says why).
/// - `_bodyForm: "wire"`: the body was stored in wire form and decoding leaves it unchanged, so
///   the text is the wire body too. On `_interim` objects, `"decoded"` marks the opposite.
/// - `postData._encoding: "base64"`: postData has no standard `encoding`.
/// - `_valueBase64` (on a header): the exact bytes of a value that is not UTF-8 or holds a line
///   break (`value` then holds a lossy rendering).
/// - `_interim`: 1xx responses before the final one; `_incomplete`: why the exchange is not whole.
/// - `_client`, `_serverPort` (when the URL does not imply the server's port, as Safari writes
///   it), `_connectionIndex`: the connection facts `serverIPAddress` and `connection` leave out.
/// - `_tls`: whether the connection was TLS, which the URL's scheme cannot say for an absolute or
///   CONNECT target.
/// - `timings._send`/`_wait`/`_receive`: the exact value (or null: not known) where the standard
///   one had to be written as 0 (unknown, or negative: a response that began before the request
///   ended).
pub struct HarWriter {
    out: Output,
    buf: Vec<u8>,
    entries: u64,
}

/// A serialization buffer grown past this by a huge entry is not kept for the next one.
const KEEP_BUF: usize = 4 << 20;

impl HarWriter {
    /// Starts the file (writes the log header).
    pub fn new(mut out: Output) -> io::Result<Self> {
        write!(
            out,
            "{{\"log\":{{\"version\":\"1.2\",\"creator\":{{\"name\":\"mynah\",\"version\":\"{}\"}},\"pages\":[],\"entries\":[",
            env!("CARGO_PKG_VERSION")
        )?;
        Ok(HarWriter {
            out,
            buf: Vec::new(),
            entries: 0,
        })
    }

    /// Closes the JSON and finishes the output, returning its bytes if it was in memory.
    pub fn close(mut self) -> io::Result<Option<Vec<u8>>> {
        self.out.write_all(b"\n]}}\n")?;
        self.out.finish()
    }
}

impl ExchangeWriter for HarWriter {
    fn write(&mut self, exchange: &Exchange) -> io::Result<()> {
        self.buf.clear();
        self.buf
            .extend_from_slice(if self.entries == 0 { b"\n" } else { b",\n" });
        serde_json::to_writer(&mut self.buf, &entry(exchange)).map_err(io::Error::other)?;
        self.out.write_all(&self.buf)?;
        self.entries += 1;
        if self.buf.capacity() > KEEP_BUF {
            self.buf = Vec::new();
        }
        Ok(())
    }

    fn finish(self: Box<Self>) -> io::Result<()> {
        self.close().map(|_| ())
    }
}

/// Milliseconds, written from nanoseconds: an integer when whole, else a float precise enough to
/// give the nanoseconds back.
#[derive(Clone, Copy)]
struct Ms(Nanos);

impl Serialize for Ms {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0 % 1_000_000 == 0 {
            s.serialize_i64(self.0 / 1_000_000)
        } else {
            s.serialize_f64(self.0 as f64 / 1e6)
        }
    }
}

const NA: Ms = Ms(-1_000_000);

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Entry<'a> {
    started_date_time: String,
    time: Ms,
    request: Req<'a>,
    response: Resp<'a>,
    cache: Empty,
    timings: Timings,
    #[serde(rename = "serverIPAddress", skip_serializing_if = "Option::is_none")]
    server_ip_address: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    connection: Option<String>,
    #[serde(rename = "_target")]
    target: &'a str,
    #[serde(rename = "_serverPort", skip_serializing_if = "Option::is_none")]
    server_port: Option<u16>,
    #[serde(rename = "_connectionIndex", skip_serializing_if = "Option::is_none")]
    connection_index: Option<u32>,
    #[serde(rename = "_client", skip_serializing_if = "Option::is_none")]
    client: Option<String>,
    #[serde(rename = "_tls")]
    tls: bool,
    #[serde(rename = "_interim", skip_serializing_if = "Vec::is_empty")]
    interim: Vec<Interim<'a>>,
    #[serde(rename = "_incomplete", skip_serializing_if = "Option::is_none")]
    incomplete: Option<&'static str>,
}

#[derive(Serialize)]
struct Empty {}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Req<'a> {
    method: &'a str,
    url: String,
    http_version: &'a str,
    cookies: Vec<Cookie>,
    headers: Vec<Hdr<'a>>,
    query_string: Vec<Pair>,
    #[serde(skip_serializing_if = "Option::is_none")]
    post_data: Option<PostData>,
    headers_size: i64,
    body_size: i64,
    #[serde(rename = "_wireBody", skip_serializing_if = "Option::is_none")]
    wire_body: Option<String>,
    #[serde(rename = "_bodyForm", skip_serializing_if = "Option::is_none")]
    body_form: Option<&'static str>,
    #[serde(rename = "_decodeError", skip_serializing_if = "Option::is_none")]
    decode_error: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Resp<'a> {
    status: u16,
    status_text: &'a str,
    http_version: &'a str,
    cookies: Vec<Cookie>,
    headers: Vec<Hdr<'a>>,
    content: Content,
    #[serde(rename = "redirectURL")]
    redirect_url: String,
    headers_size: i64,
    body_size: i64,
    #[serde(rename = "_wireBody", skip_serializing_if = "Option::is_none")]
    wire_body: Option<String>,
    #[serde(rename = "_bodyForm", skip_serializing_if = "Option::is_none")]
    body_form: Option<&'static str>,
    #[serde(rename = "_decodeError", skip_serializing_if = "Option::is_none")]
    decode_error: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Interim<'a> {
    status: u16,
    status_text: &'a str,
    http_version: &'a str,
    headers: Vec<Hdr<'a>>,
    #[serde(rename = "_wireBody", skip_serializing_if = "Option::is_none")]
    wire_body: Option<String>,
    /// Interim bodies are wire form unless this says `decoded`.
    #[serde(rename = "_bodyForm", skip_serializing_if = "Option::is_none")]
    body_form: Option<&'static str>,
}

#[derive(Serialize)]
struct Hdr<'a> {
    name: &'a str,
    value: Cow<'a, str>,
    #[serde(rename = "_valueBase64", skip_serializing_if = "Option::is_none")]
    value_base64: Option<String>,
}

#[derive(Serialize)]
struct Pair {
    name: String,
    value: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Cookie {
    name: String,
    value: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    domain: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    http_only: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    secure: Option<bool>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PostData {
    mime_type: String,
    text: String,
    /// postData has no standard `encoding`; this extension marks a base64 `text`.
    #[serde(rename = "_encoding", skip_serializing_if = "Option::is_none")]
    encoding: Option<&'static str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Content {
    size: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    compression: Option<i64>,
    mime_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    encoding: Option<&'static str>,
}

#[derive(Serialize)]
struct Timings {
    blocked: Ms,
    dns: Ms,
    connect: Ms,
    send: Ms,
    wait: Ms,
    receive: Ms,
    #[serde(rename = "_send", skip_serializing_if = "Option::is_none")]
    exact_send: Option<Option<Ms>>,
    #[serde(rename = "_wait", skip_serializing_if = "Option::is_none")]
    exact_wait: Option<Option<Ms>>,
    #[serde(rename = "_receive", skip_serializing_if = "Option::is_none")]
    exact_receive: Option<Option<Ms>>,
}

fn hdrs(h: &Headers) -> Vec<Hdr<'_>> {
    h.iter()
        .map(|h| {
            let exact = std::str::from_utf8(&h.value)
                .ok()
                .filter(|v| !v.contains('\n'));
            Hdr {
                name: &h.name,
                value: h.value_str(),
                value_base64: exact.is_none().then(|| encode_base64(&h.value)),
            }
        })
        .collect()
}

/// A body as HAR text: UTF-8 as is, anything else base64.
fn body_text(b: &[u8]) -> (String, Option<&'static str>) {
    match std::str::from_utf8(b) {
        Ok(s) => (s.to_string(), None),
        Err(_) => (encode_base64(b), Some("base64")),
    }
}

fn mime(h: &Headers) -> String {
    h.get_str("content-type")
        .map(|c| c.trim().to_string())
        .unwrap_or_default()
}

/// What the standard fields can say about a body, and what only the extensions can.
struct BodyParts<'a> {
    decoded: Option<Cow<'a, [u8]>>,
    decode_error: Option<String>,
    wire_body: Option<String>,
    /// `_bodyForm: "wire"`: the text is also the wire form (a wire body that decodes to itself).
    body_form: Option<&'static str>,
    /// On-the-wire size, if known.
    wire_size: i64,
}

fn body_parts<'a>(
    headers: &Headers,
    body: &'a [u8],
    form: BodyForm,
    decoded: Result<Cow<'a, [u8]>, crate::decode::DecodeError>,
) -> BodyParts<'a> {
    let coded = headers.has_token("transfer-encoding", "chunked")
        || headers
            .get_all("content-encoding")
            .any(|v| !crate::model::trim_ascii(v).eq_ignore_ascii_case(b"identity"));
    let wire_size = if form == BodyForm::Wire || !coded {
        body.len() as i64
    } else {
        -1
    };
    match decoded {
        Ok(d) => {
            let differs = d.as_ref() != body;
            BodyParts {
                wire_body: (form == BodyForm::Wire && differs).then(|| encode_base64(body)),
                body_form: (form == BodyForm::Wire && !differs).then_some("wire"),
                decoded: Some(d),
                decode_error: None,
                wire_size,
            }
        }
        Err(e) => BodyParts {
            decoded: None,
            decode_error: Some(e.to_string()),
            wire_body: Some(encode_base64(body)),
            body_form: None,
            wire_size,
        },
    }
}

/// The size of an HTTP/1.x message head as sent, or -1 (HTTP/2 and /3 have no such text).
fn head_size(version: &Version, start_line: usize, h: &Headers) -> i64 {
    match version {
        Version::Http09 | Version::Http10 | Version::Http11 => {
            let fields: usize = h.iter().map(|h| h.name.len() + h.value.len() + 4).sum();
            (start_line + 2 + fields + 2) as i64
        }
        _ => -1,
    }
}

fn cookies(h: &Headers) -> Vec<Cookie> {
    h.get_all("cookie")
        .flat_map(|v| {
            String::from_utf8_lossy(v)
                .split(';')
                .filter_map(|c| {
                    let (n, v) = c.trim().split_once('=').unwrap_or((c.trim(), ""));
                    (!n.is_empty()).then(|| Cookie::new(n, v))
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

impl Cookie {
    fn new(name: &str, value: &str) -> Cookie {
        Cookie {
            name: name.trim().to_string(),
            value: value.trim().to_string(),
            path: None,
            domain: None,
            expires: None,
            http_only: None,
            secure: None,
        }
    }
}

fn set_cookies(h: &Headers) -> Vec<Cookie> {
    h.get_all("set-cookie")
        .filter_map(|v| {
            let v = String::from_utf8_lossy(v);
            let mut parts = v.split(';');
            let (n, val) = parts.next()?.split_once('=')?;
            if n.trim().is_empty() {
                return None;
            }
            let mut c = Cookie::new(n, val);
            for attr in parts {
                let (k, a) = attr.split_once('=').unwrap_or((attr, ""));
                match k.trim().to_ascii_lowercase().as_str() {
                    "path" => c.path = Some(a.trim().to_string()),
                    "domain" => c.domain = Some(a.trim().to_string()),
                    "expires" => c.expires = parse_http_date(a).map(format_timestamp),
                    "httponly" => c.http_only = Some(true),
                    "secure" => c.secure = Some(true),
                    _ => {}
                }
            }
            Some(c)
        })
        .collect()
}

/// `https` for TLS connections. Only the model's flag decides (not ports or versions), so a
/// written exchange reads back the same.
fn scheme(x: &Exchange) -> String {
    if x.connection.tls { "https" } else { "http" }.to_string()
}

/// The absolute URL HAR wants: the target itself if absolute-form, else built from the scheme,
/// the Host (or `:authority`, or the server address) and the target.
fn request_url(x: &Exchange) -> String {
    let r: &Request = &x.request;
    let t = r.target.as_str();
    if UrlParts::parse(t).is_some() {
        return t.to_string();
    }
    let scheme = scheme(x);
    let authority = r
        .headers
        .get_str("host")
        .or_else(|| r.headers.get_str(":authority"))
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| {
            x.connection.server.map(|s| {
                let host = match s.ip() {
                    std::net::IpAddr::V6(ip) => format!("[{ip}]"),
                    ip => ip.to_string(),
                };
                if super::text::default_port(&scheme) == Some(s.port()) {
                    host
                } else {
                    format!("{host}:{}", s.port())
                }
            })
        })
        // RFC 6761: a name that never resolves, for requests that carried no host at all.
        .unwrap_or_else(|| "unknown.invalid".to_string());
    if t.starts_with('/') {
        format!("{scheme}://{authority}{t}")
    } else if r.method.eq_ignore_ascii_case("CONNECT") {
        let s = if t.ends_with(":443") { "https" } else { "http" };
        format!("{s}://{t}")
    } else {
        // `*` (OPTIONS) or something unusual: the exact target is in `_target`.
        format!("{scheme}://{authority}/")
    }
}

/// Interval from `from` to `to` for a standard timing (must be >= 0), plus the exact value when
/// the standard one had to be changed.
fn interval(from: &mut Nanos, to: Option<Nanos>) -> (Ms, Option<Option<Ms>>) {
    match to {
        None => (Ms(0), Some(None)),
        Some(t) => {
            let d = t.saturating_sub(*from);
            *from = t;
            if d < 0 {
                (Ms(0), Some(Some(Ms(d))))
            } else {
                (Ms(d), None)
            }
        }
    }
}

fn response_parts(r: &Response) -> Resp<'_> {
    let parts = body_parts(&r.headers, &r.body, r.body_form, r.decoded_body());
    let decoded_len = parts.decoded.as_ref().map_or(0, |d| d.len() as i64);
    let (text, encoding) = match &parts.decoded {
        Some(d) if !d.is_empty() => {
            let (t, e) = body_text(d);
            (Some(t), e)
        }
        _ => (None, None),
    };
    let compression = (parts.wire_size >= 0 && decoded_len > parts.wire_size)
        .then_some(decoded_len - parts.wire_size);
    let status_line = r.version.as_str().len() + 5 + r.reason.len();
    Resp {
        status: r.status,
        status_text: &r.reason,
        http_version: r.version.as_str(),
        cookies: set_cookies(&r.headers),
        headers: hdrs(&r.headers),
        content: Content {
            size: decoded_len,
            compression,
            mime_type: mime(&r.headers),
            text,
            encoding,
        },
        redirect_url: r
            .headers
            .get_str("location")
            .map(|l| l.trim().to_string())
            .unwrap_or_default(),
        headers_size: head_size(&r.version, status_line, &r.headers),
        body_size: parts.wire_size,
        wire_body: parts.wire_body,
        body_form: parts.body_form,
        decode_error: parts.decode_error,
    }
}

/// What browsers write for a request that got no response.
fn no_response() -> Resp<'static> {
    Resp {
        status: 0,
        status_text: "",
        http_version: "",
        cookies: Vec::new(),
        headers: Vec::new(),
        content: Content {
            size: 0,
            compression: None,
            mime_type: String::new(),
            text: None,
            encoding: None,
        },
        redirect_url: String::new(),
        headers_size: -1,
        body_size: -1,
        wire_body: None,
        body_form: None,
        decode_error: None,
    }
}

fn entry(x: &Exchange) -> Entry<'_> {
    let r = &x.request;
    let url = request_url(x);
    let query_string = UrlParts::parse(&url)
        .and_then(|u| u.query())
        .map(|q| {
            query_pairs(q)
                .map(|(n, v)| Pair {
                    name: n.to_string(),
                    value: v.to_string(),
                })
                .collect()
        })
        .unwrap_or_default();
    let body = body_parts(&r.headers, &r.body, r.body_form, r.decoded_body());
    let post_data = body.decoded.as_ref().filter(|d| !d.is_empty()).map(|d| {
        let (text, encoding) = body_text(d);
        PostData {
            mime_type: mime(&r.headers),
            text,
            encoding,
        }
    });
    let request_line = r.method.len() + r.target.len() + r.version.as_str().len() + 2;
    let url_port = UrlParts::parse(&url).and_then(|u| u.effective_port());

    let t = &x.timing;
    let mut at = t.request_start;
    let (send, exact_send) = interval(&mut at, t.request_end);
    let (wait, exact_wait) = interval(&mut at, t.response_start);
    let (receive, exact_receive) = interval(&mut at, t.response_end);
    let total = send.0.saturating_add(wait.0).saturating_add(receive.0);

    Entry {
        started_date_time: format_timestamp(t.request_start),
        time: Ms(total),
        request: Req {
            method: &r.method,
            http_version: r.version.as_str(),
            cookies: cookies(&r.headers),
            headers: hdrs(&r.headers),
            query_string,
            post_data,
            headers_size: head_size(&r.version, request_line, &r.headers),
            body_size: body.wire_size,
            wire_body: body.wire_body,
            body_form: body.body_form,
            decode_error: body.decode_error,
            url,
        },
        response: x
            .response
            .as_ref()
            .map_or_else(|| no_response(), response_parts),
        cache: Empty {},
        timings: Timings {
            blocked: NA,
            dns: NA,
            connect: NA,
            send,
            wait,
            receive,
            exact_send,
            exact_wait,
            exact_receive,
        },
        server_ip_address: x.connection.server.map(|s| s.ip().to_string()),
        connection: x.connection.id.map(|id| id.to_string()),
        target: &r.target,
        server_port: x
            .connection
            .server
            .map(|s| s.port())
            .filter(|p| Some(*p) != url_port),
        client: x.connection.client.map(|c| c.to_string()),
        tls: x.connection.tls,
        connection_index: (x.connection.id.is_some() || x.connection.index != 0)
            .then_some(x.connection.index),
        interim: x
            .interim
            .iter()
            .map(|i| Interim {
                status: i.status,
                status_text: &i.reason,
                http_version: i.version.as_str(),
                headers: hdrs(&i.headers),
                wire_body: (!i.body.is_empty()).then(|| encode_base64(&i.body)),
                body_form: (i.body_form == BodyForm::Decoded).then_some("decoded"),
            })
            .collect(),
        incomplete: x.incomplete.map(|i| i.as_str()),
    }
}
