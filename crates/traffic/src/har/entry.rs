//! One HAR entry, parsed as a JSON value, to an [`Exchange`].
//!
//! Everything is read leniently (numbers written as strings, missing optional fields, `null`s), but
//! the fields an exchange cannot do without (`startedDateTime`, `request.method`, `request.url`,
//! `response.status`) must be there and make sense: otherwise the entry is reported, not guessed.

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use super::json::{Obj, J};
use super::text::{decode_base64, form_urlencode, header_param, parse_timestamp, UrlParts};
use crate::model::{
    BodyForm, ConnectionInfo, Exchange, Headers, Incomplete, Nanos, Request, Response, Timing,
    Version,
};

/// An entry converted, with what it carried that an exchange does not.
pub(crate) struct Converted {
    pub exchange: Exchange,
    /// Messages of a WebSocket upgraded on this exchange (`_webSocketMessages`), not replayed.
    pub websocket_messages: u64,
}

/// More distinct connections than this and a table starts over (ids stay unique, but a
/// connection seen again afterwards gets a new one): bounds memory on endless files.
pub(crate) const MAX_CONNECTIONS: usize = 1 << 20;

/// Marks `connection.index` as given by the file (`_connectionIndex`) between the parser thread
/// and the reader, which otherwise counts exchanges per connection itself; cleared before an
/// exchange is yielded.
pub(crate) const EXPLICIT_INDEX: u32 = 1 << 31;

/// Gives each distinct HAR `connection` string (a port, an id) a number, in file order. The
/// reader renumbers them in the order it yields exchanges and counts positions there.
#[derive(Default)]
pub(crate) struct Connections {
    seen: HashMap<String, u64>,
    next_id: u64,
}

impl Connections {
    fn place(&mut self, key: &str) -> u64 {
        if let Some(&id) = self.seen.get(key) {
            return id;
        }
        if self.seen.len() >= MAX_CONNECTIONS {
            self.seen.clear();
        }
        let id = self.next_id;
        self.next_id += 1;
        self.seen.insert(key.to_string(), id);
        id
    }
}

/// A scalar as text (tools write numbers where strings belong, and the reverse).
fn text<'v>(v: &'v J<'_>) -> Option<Cow<'v, str>> {
    match v {
        J::Str(s) => Some(Cow::Borrowed(s)),
        J::Int(n) => Some(Cow::Owned(n.to_string())),
        J::Uint(n) => Some(Cow::Owned(n.to_string())),
        J::Float(n) => Some(Cow::Owned(n.to_string())),
        J::Bool(b) => Some(Cow::Borrowed(if *b { "true" } else { "false" })),
        _ => None,
    }
}

fn take_text(obj: &mut Obj<'_>, key: &str) -> Option<String> {
    match obj.take(key)? {
        J::Str(s) => Some(s.into_owned()),
        v => text(&v).map(Cow::into_owned),
    }
}

fn get_text<'v>(obj: &'v Obj<'_>, key: &str) -> Option<Cow<'v, str>> {
    obj.get(key).and_then(text)
}

fn num(v: &J<'_>) -> Option<f64> {
    match v {
        J::Int(n) => Some(*n as f64),
        J::Uint(n) => Some(*n as f64),
        J::Float(n) => Some(*n),
        J::Str(s) => s.trim().parse().ok(),
        _ => None,
    }
    .filter(|f: &f64| f.is_finite())
}

/// Milliseconds (HAR timings) to nanoseconds.
fn ms_to_ns(ms: f64) -> Option<Nanos> {
    let ns = (ms * 1e6).round();
    (ns.is_finite() && ns.abs() < 9.0e18).then_some(ns as Nanos)
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn status_of(v: Option<&J<'_>>, what: &str) -> Result<u16, String> {
    let v = v.ok_or_else(|| format!("{what}.status is missing"))?;
    num(v)
        .filter(|f| f.fract() == 0.0 && (0.0..=f64::from(u16::MAX)).contains(f))
        .map(|f| f as u16)
        .ok_or_else(|| format!("{what}.status {v} is not a status code"))
}

/// Headers in order. Chrome joins repeated headers into one value with `\n`: those are split
/// back into the header lines they were. A mynah `_valueBase64` gives the exact bytes instead.
fn headers(v: Option<J<'_>>) -> Headers {
    let mut out = Headers::new();
    let Some(J::Arr(items)) = v else {
        return out;
    };
    for item in items {
        let J::Obj(mut h) = item else { continue };
        let Some(name) = take_text(&mut h, "name").filter(|n| !n.is_empty()) else {
            continue;
        };
        if let Some(bytes) = get_text(&h, "_valueBase64").and_then(|b| decode_base64(&b)) {
            out.push(name, bytes);
            continue;
        }
        let value = take_text(&mut h, "value").unwrap_or_default();
        if value.contains('\n') {
            for line in value.split('\n') {
                let line = line.strip_suffix('\r').unwrap_or(line);
                if !line.is_empty() {
                    out.push(name.clone(), line);
                }
            }
        } else {
            out.push(name, value);
        }
    }
    out
}

fn is_base64_encoding(obj: &Obj<'_>) -> bool {
    ["encoding", "_encoding"]
        .iter()
        .any(|k| get_text(obj, k).is_some_and(|e| e.trim().eq_ignore_ascii_case("base64")))
}

/// The form of a body read from `text`: decoded, as HAR says, unless mynah's `_bodyForm` says
/// the bytes are also the wire bytes (nothing to decode).
fn text_form(msg: &Obj<'_>, default: BodyForm) -> BodyForm {
    match get_text(msg, "_bodyForm").as_deref() {
        Some("wire") => BodyForm::Wire,
        Some("decoded") => BodyForm::Decoded,
        _ => default,
    }
}

/// `_wireBody` (mynah): the body exactly as on the wire.
fn wire_body(msg: &Obj<'_>, what: &str) -> Result<Option<Vec<u8>>, String> {
    match get_text(msg, "_wireBody") {
        Some(b) => decode_base64(&b)
            .map(Some)
            .ok_or_else(|| format!("{what}._wireBody is not valid base64")),
        None => Ok(None),
    }
}

fn request_body(req: &mut Obj<'_>, headers: &Headers) -> Result<(Vec<u8>, BodyForm), String> {
    if let Some(wire) = wire_body(req, "request")? {
        return Ok((wire, BodyForm::Wire));
    }
    let form = text_form(req, BodyForm::Decoded);
    let Some(J::Obj(mut pd)) = req.take("postData") else {
        return Ok((Vec::new(), form));
    };
    let base64 = is_base64_encoding(&pd);
    if let Some(text) = take_text(&mut pd, "text").filter(|t| !t.is_empty()) {
        let body = if base64 {
            decode_base64(&text).ok_or("request.postData.text is not valid base64")?
        } else {
            text.into_bytes()
        };
        return Ok((body, form));
    }
    let mime = get_text(&pd, "mimeType")
        .filter(|m| !m.trim().is_empty())
        .map(Cow::into_owned)
        .or_else(|| headers.get_str("content-type").map(Cow::into_owned))
        .unwrap_or_default();
    let body = match pd.take("params") {
        Some(J::Arr(params)) if !params.is_empty() => params_body(&params, &mime, headers),
        _ => Vec::new(),
    };
    // A form rebuilt from params is a decoded view (its bytes were never seen).
    let form = if body.is_empty() {
        form
    } else {
        BodyForm::Decoded
    };
    Ok((body, form))
}

/// Rebuilds a form body from `postData.params` (tools that omit `text`): multipart when the MIME
/// type says so, else URL-encoded.
fn params_body(params: &[J<'_>], mime: &str, headers: &Headers) -> Vec<u8> {
    let fields = params
        .iter()
        .filter_map(|p| match p {
            J::Obj(o) => Some(o),
            _ => None,
        })
        .map(|p| {
            let get = |k| get_text(p, k).unwrap_or_default();
            (
                get("name"),
                get("value"),
                get("fileName"),
                get("contentType"),
            )
        });
    if mime
        .trim_start()
        .to_ascii_lowercase()
        .starts_with("multipart/")
    {
        let header_ct = headers.get_str("content-type");
        let boundary = header_param(mime, "boundary")
            .map(str::to_string)
            .or_else(|| {
                header_ct
                    .as_deref()
                    .and_then(|c| header_param(c, "boundary"))
                    .map(str::to_string)
            })
            .unwrap_or_else(|| "mynah-form-boundary".to_string());
        let mut out = String::new();
        for (name, value, file, ctype) in fields {
            out.push_str(&format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\""
            ));
            if !file.is_empty() {
                out.push_str(&format!("; filename=\"{file}\""));
            }
            out.push_str("\r\n");
            if !ctype.is_empty() {
                out.push_str(&format!("Content-Type: {ctype}\r\n"));
            }
            out.push_str("\r\n");
            out.push_str(&value);
            out.push_str("\r\n");
        }
        out.push_str(&format!("--{boundary}--\r\n"));
        out.into_bytes()
    } else {
        let mut out = String::new();
        for (name, value, _, _) in fields {
            if !out.is_empty() {
                out.push('&');
            }
            form_urlencode(&mut out, &name);
            out.push('=');
            form_urlencode(&mut out, &value);
        }
        out.into_bytes()
    }
}

fn response_body(resp: &mut Obj<'_>) -> Result<(Vec<u8>, BodyForm), String> {
    if let Some(wire) = wire_body(resp, "response")? {
        return Ok((wire, BodyForm::Wire));
    }
    let form = text_form(resp, BodyForm::Decoded);
    let Some(J::Obj(mut content)) = resp.take("content") else {
        return Ok((Vec::new(), form));
    };
    let body = match take_text(&mut content, "text") {
        Some(t) if is_base64_encoding(&content) => {
            decode_base64(&t).ok_or("response.content.text is not valid base64")?
        }
        Some(t) => t.into_bytes(),
        None => Vec::new(),
    };
    Ok((body, form))
}

/// `_interim` (mynah): the 1xx responses before the final one.
fn interim(v: Option<J<'_>>) -> Result<Vec<Response>, String> {
    let Some(J::Arr(items)) = v else {
        return Ok(Vec::new());
    };
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let J::Obj(mut r) = item else { continue };
        let status = status_of(r.get("status"), "_interim[]")?;
        let version = get_text(&r, "httpVersion")
            .filter(|v| !v.trim().is_empty())
            .map_or(Version::Http11, |v| Version::parse(&v));
        let body = match get_text(&r, "_wireBody") {
            Some(b) => decode_base64(&b).ok_or("_interim[]._wireBody is not valid base64")?,
            None => Vec::new(),
        };
        out.push(Response {
            version,
            status,
            reason: take_text(&mut r, "statusText").unwrap_or_default(),
            headers: headers(r.take("headers")),
            body,
            body_form: text_form(&r, BodyForm::Wire),
        });
    }
    Ok(out)
}

/// `serverIPAddress` (bare, bracketed, or with a port) and the port the URL implies.
fn server_addr(e: &Obj<'_>, url: Option<&UrlParts<'_>>) -> Option<SocketAddr> {
    let ip = get_text(e, "serverIPAddress")?;
    let ip = ip.trim();
    let explicit_port = e
        .get("_serverPort")
        .and_then(num)
        .filter(|p| p.fract() == 0.0 && (0.0..=65535.0).contains(p))
        .map(|p| p as u16);
    if let Ok(sa) = ip.parse::<SocketAddr>() {
        return Some(SocketAddr::new(sa.ip(), explicit_port.unwrap_or(sa.port())));
    }
    let bare = ip
        .strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .unwrap_or(ip);
    let ip: IpAddr = bare.parse().ok()?;
    let port = explicit_port.or_else(|| url.and_then(UrlParts::effective_port))?;
    Some(SocketAddr::new(ip, port))
}

/// Converts one entry. Errors say which field was wrong; the caller adds where the entry is.
pub(crate) fn convert(entry: J<'_>, conns: &mut Connections) -> Result<Converted, String> {
    let mut e = match entry {
        J::Obj(m) => m,
        other => return Err(format!("the entry is {}, not an object", other.kind())),
    };
    let started = match e.get("startedDateTime") {
        None | Some(J::Null) => return Err("startedDateTime is missing".into()),
        Some(v) => text(v)
            .and_then(|s| parse_timestamp(&s))
            .ok_or_else(|| format!("startedDateTime {v} is not an ISO 8601 date"))?,
    };
    let mut req = match e.take("request") {
        Some(J::Obj(m)) => m,
        None | Some(J::Null) => return Err("request is missing".into()),
        Some(other) => return Err(format!("request is {}, not an object", other.kind())),
    };
    let method = take_text(&mut req, "method").ok_or("request.method is missing")?;
    if !is_token(&method) {
        return Err(format!("request.method {method:?} is not an HTTP method"));
    }
    let url = take_text(&mut req, "url")
        .filter(|u| !u.trim().is_empty())
        .ok_or("request.url is missing")?;
    let req_headers = headers(req.take("headers"));
    let (req_body, req_form) = request_body(&mut req, &req_headers)?;

    let mut resp = match e.take("response") {
        Some(J::Obj(m)) => Some(m),
        None | Some(J::Null) => None,
        Some(other) => return Err(format!("response is {}, not an object", other.kind())),
    };
    let status = match &resp {
        Some(r) => status_of(r.get("status"), "response")?,
        None => 0,
    };

    // An empty httpVersion (Safari, Firefox cache hits) borrows the other message's.
    let version_of = |m: &Obj<'_>| {
        get_text(m, "httpVersion")
            .filter(|v| !v.trim().is_empty())
            .map(|v| Version::parse(&v))
    };
    let resp_version = resp.as_ref().and_then(version_of);
    let req_version = version_of(&req)
        .or_else(|| resp_version.clone())
        .unwrap_or_default();
    let response = match resp.as_mut() {
        Some(r) if status != 0 => {
            let (body, body_form) = response_body(r)?;
            Some(Response {
                version: resp_version.unwrap_or_else(|| req_version.clone()),
                status,
                reason: take_text(r, "statusText").unwrap_or_default(),
                headers: headers(r.take("headers")),
                body,
                body_form,
            })
        }
        _ => None,
    };

    let parts = UrlParts::parse(&url);
    let target = match get_text(&e, "_target").filter(|t| !t.is_empty()) {
        Some(t) => t.into_owned(),
        None => match &parts {
            Some(p) if req_headers.contains("host") => p.origin_form(),
            _ => url.split('#').next().unwrap_or(&url).to_string(),
        },
    };

    let timing = timing(started, e.get("timings"), response.is_some());
    let mut connection = ConnectionInfo {
        server: server_addr(&e, parts.as_ref()),
        client: get_text(&e, "_client").and_then(|c| c.trim().parse().ok()),
        tls: match e.get("_tls") {
            Some(J::Bool(b)) => *b,
            _ => ["https://", "wss://"].iter().any(|p| {
                url.get(..p.len())
                    .is_some_and(|s| s.eq_ignore_ascii_case(p))
            }),
        },
        ..Default::default()
    };
    if let Some(i) = e
        .get("_connectionIndex")
        .and_then(num)
        .filter(|i| i.fract() == 0.0 && *i >= 0.0)
    {
        connection.index = EXPLICIT_INDEX | (i.min(f64::from(EXPLICIT_INDEX - 1)) as u32);
    }
    if let Some(key) = get_text(&e, "connection").filter(|c| !c.trim().is_empty()) {
        // Firefox writes the server port here, not an id: the server address tells those apart.
        let server = get_text(&e, "serverIPAddress").unwrap_or_default();
        connection.id = Some(conns.place(&format!("{}|{}", key.trim(), server.trim())));
    }
    let mut incomplete = get_text(&e, "_incomplete").and_then(|s| Incomplete::parse(s.trim()));
    if response.is_none() {
        incomplete = incomplete.or(Some(Incomplete::NoResponse));
    }
    let websocket_messages = match e.get("_webSocketMessages") {
        Some(J::Arr(m)) => m.len() as u64,
        _ => 0,
    };

    Ok(Converted {
        exchange: Exchange {
            request: Request {
                method,
                target,
                version: req_version,
                headers: req_headers,
                body: req_body,
                body_form: req_form,
            },
            response,
            interim: interim(e.take("_interim"))?,
            timing,
            connection,
            incomplete,
        },
        websocket_messages,
    })
}

/// `startedDateTime` plus the `timings` phases. blocked, dns and connect (ssl is inside connect)
/// come before the first request byte; send, wait and receive follow one another. -1 or missing
/// means not known; mynah's `_send`/`_wait`/`_receive` carry exact values (null: not known) where
/// the standard fields had to be clamped or zeroed.
fn timing(started: Nanos, timings: Option<&J<'_>>, has_response: bool) -> Timing {
    let t = match timings {
        Some(J::Obj(o)) => Some(o),
        _ => None,
    };
    let standard = |k: &str| {
        t.and_then(|t| t.get(k))
            .and_then(num)
            .filter(|ms| *ms >= 0.0)
            .and_then(ms_to_ns)
    };
    let stage = |k: &str| match t.and_then(|t| t.get(&format!("_{k}"))) {
        Some(J::Null) => None,
        Some(v) => num(v).and_then(ms_to_ns).or_else(|| standard(k)),
        None => standard(k),
    };
    let mut at = started;
    for k in ["blocked", "dns", "connect"] {
        if let Some(d) = standard(k) {
            at = at.saturating_add(d);
        }
    }
    let mut timing = Timing::at(at);
    let mut step = |k: &str| {
        let d = stage(k)?;
        at = at.saturating_add(d);
        Some(at)
    };
    timing.request_end = step("send");
    if has_response {
        timing.response_start = step("wait");
        timing.response_end = step("receive");
    }
    timing
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn conv(v: Value) -> Result<Exchange, String> {
        let text = v.to_string();
        let j: J = serde_json::from_str(&text).unwrap();
        convert(j, &mut Connections::default()).map(|c| c.exchange)
    }

    fn minimal() -> Value {
        json!({
            "startedDateTime": "2020-01-01T00:00:00.000Z",
            "request": {"method": "GET", "url": "https://example.com:8443/a?b=1#frag",
                        "httpVersion": "HTTP/1.1", "headers": [{"name": "Host", "value": "example.com:8443"}]},
            "response": {"status": 200, "statusText": "OK", "httpVersion": "", "headers": [],
                         "content": {"size": 5, "text": "aGVsbG8=", "encoding": "base64"}},
            "timings": {"blocked": 1, "dns": -1, "connect": 2.5, "ssl": 2, "send": 0.5, "wait": 10, "receive": 1.25},
            "serverIPAddress": "[2001:db8::1]",
            "connection": "443"
        })
    }

    #[test]
    fn maps_the_fields() {
        let x = conv(minimal()).unwrap();
        assert_eq!(x.request.method, "GET");
        assert_eq!(x.request.target, "/a?b=1");
        assert_eq!(x.request.body_form, BodyForm::Decoded);
        let r = x.response.unwrap();
        assert_eq!(
            (r.status, r.reason.as_str(), r.version),
            (200, "OK", Version::Http11)
        );
        assert_eq!(r.body, b"hello");
        let t0 = parse_timestamp("2020-01-01T00:00:00Z").unwrap();
        assert_eq!(x.timing.request_start, t0 + 3_500_000);
        assert_eq!(x.timing.request_end, Some(t0 + 4_000_000));
        assert_eq!(x.timing.response_start, Some(t0 + 14_000_000));
        assert_eq!(x.timing.response_end, Some(t0 + 15_250_000));
        assert_eq!(
            x.connection.server,
            Some("[2001:db8::1]:8443".parse().unwrap())
        );
        assert_eq!(x.connection.id, Some(0));
        assert_eq!(x.incomplete, None);
    }

    #[test]
    fn no_host_header_keeps_the_absolute_url() {
        let mut v = minimal();
        v["request"]["headers"] = json!([{"name": ":authority", "value": "example.com"}]);
        let x = conv(v).unwrap();
        assert_eq!(x.request.target, "https://example.com:8443/a?b=1");
        assert_eq!(
            x.request.headers.get(":authority"),
            Some(&b"example.com"[..])
        );
    }

    #[test]
    fn status_zero_is_no_response() {
        let mut v = minimal();
        v["response"]["status"] = json!(0);
        let x = conv(v).unwrap();
        assert!(x.response.is_none());
        assert_eq!(x.incomplete, Some(Incomplete::NoResponse));
        assert_eq!(x.timing.response_start, None);
    }

    #[test]
    fn versions_borrow_from_each_other() {
        let mut v = minimal();
        v["request"]["httpVersion"] = json!("");
        v["response"]["httpVersion"] = json!("h2");
        let x = conv(v).unwrap();
        assert_eq!(x.request.version, Version::Http2);
        let mut v = minimal();
        v["request"]["httpVersion"] = json!("");
        let x = conv(v).unwrap();
        assert_eq!(x.request.version, Version::Http11);
        assert_eq!(x.response.unwrap().version, Version::Http11);
    }

    #[test]
    fn chrome_joined_headers_are_split() {
        let mut v = minimal();
        v["response"]["headers"] = json!([{"name": "Set-Cookie", "value": "a=1\nb=2"},
                                          {"name": "X", "value": "\n", "_valueBase64": "AP8K"}]);
        let r = conv(v).unwrap().response.unwrap();
        assert_eq!(
            r.headers.get_all("set-cookie").collect::<Vec<_>>(),
            [&b"a=1"[..], b"b=2"]
        );
        assert_eq!(r.headers.get("x"), Some(&[0u8, 0xff, b'\n'][..]));
    }

    #[test]
    fn params_become_a_body() {
        let mut v = minimal();
        v["request"]["postData"] = json!({"mimeType": "application/x-www-form-urlencoded",
            "params": [{"name": "user", "value": "a b"}, {"name": "pw", "value": "x&y"}]});
        assert_eq!(conv(v).unwrap().request.body, b"user=a+b&pw=x%26y");
        let mut v = minimal();
        v["request"]["postData"] = json!({"mimeType": "multipart/form-data; boundary=XX",
            "params": [{"name": "f", "value": "data", "fileName": "a.txt", "contentType": "text/plain"}]});
        assert_eq!(
            String::from_utf8(conv(v).unwrap().request.body).unwrap(),
            "--XX\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a.txt\"\r\nContent-Type: text/plain\r\n\r\ndata\r\n--XX--\r\n"
        );
        let mut v = minimal();
        v["request"]["postData"] = json!({"text": "raw", "params": [{"name": "p"}]});
        assert_eq!(conv(v).unwrap().request.body, b"raw");
    }

    #[test]
    fn missing_required_fields_are_errors() {
        for (path, err) in [
            ("/request/method", "request.method is missing"),
            ("/request/url", "request.url is missing"),
            ("/startedDateTime", "startedDateTime is missing"),
            ("/response/status", "response.status is missing"),
        ] {
            let mut v = minimal();
            let (parent, key) = path.rsplit_once('/').unwrap();
            let p = if parent.is_empty() {
                &mut v
            } else {
                v.pointer_mut(parent).unwrap()
            };
            p.as_object_mut().unwrap().remove(key);
            assert_eq!(conv(v).unwrap_err(), err);
        }
        assert!(conv(json!([1])).unwrap_err().contains("not an object"));
        let mut v = minimal();
        v["request"]["method"] = json!("GET /x");
        assert!(conv(v).is_err());
        let mut v = minimal();
        v["response"]["status"] = json!(-3);
        assert!(conv(v).is_err());
        let mut v = minimal();
        v["response"]["content"]["text"] = json!("!!!");
        assert!(conv(v).unwrap_err().contains("base64"));
    }

    #[test]
    fn connections_numbered_in_first_seen_order() {
        let mut c = Connections::default();
        assert_eq!(c.place("9"), 0);
        assert_eq!(c.place("3"), 1);
        assert_eq!(c.place("9"), 0);
    }
}
