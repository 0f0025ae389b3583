//! A recorded request as it goes to the target: the request line and headers as recorded (order
//! and case kept), with the target's path prefix and Host, and a body framed correctly.

use mynah_traffic::{BodyForm, Request, Version};

/// Where the replayed requests go.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Destination {
    /// `scheme://authority/` of the target, for the client's connection lookup.
    pub origin: http::Uri,
    /// `host[:port]` for the Host header.
    pub authority: String,
    /// Path prefix without a trailing `/` (empty for none).
    pub prefix: String,
    /// Send the recorded Host header instead of the target's.
    pub keep_host: bool,
}

impl Destination {
    /// Where requests to `target` go.
    pub fn of(target: &crate::plan::BaseUrl, keep_host: bool) -> Result<Destination, String> {
        let origin = format!("{}://{}/", target.scheme, target.authority);
        let Ok(origin) = origin.parse::<http::Uri>() else {
            return Err(format!("invalid target {origin}"));
        };
        Ok(Destination {
            origin,
            authority: target.authority.as_str().to_string(),
            prefix: target.prefix.clone(),
            keep_host,
        })
    }
}

/// Every reason [`unsendable`] gives, in a fixed order (the spool stores the index).
pub(crate) const UNSENDABLE: [&str; 5] = [
    "connect",
    "upgrade",
    "invalid_method",
    "invalid_target",
    "incomplete_request",
];

/// Why a recorded request is not replayed (`connect`, `upgrade`, `invalid_method`,
/// `invalid_target`, `incomplete_request`), or `None` when it can be.
pub fn unsendable(request: &Request) -> Option<&'static str> {
    if request.method.eq_ignore_ascii_case("CONNECT") {
        return Some(UNSENDABLE[0]);
    }
    if request.headers.contains("upgrade") || request.headers.has_token("connection", "upgrade") {
        return Some(UNSENDABLE[1]);
    }
    if !valid_token(&request.method) {
        return Some(UNSENDABLE[2]);
    }
    let target = request.path_and_query();
    if target != "*" && !target.starts_with('/') {
        return Some(UNSENDABLE[3]);
    }
    if target
        .bytes()
        .any(|b| b == b' ' || b == b'\r' || b == b'\n' || b == 0)
    {
        return Some(UNSENDABLE[3]);
    }
    // A request whose body was not captured whole would be a different request.
    if request.body_form == BodyForm::Wire
        && !request.headers.has_token("transfer-encoding", "chunked")
    {
        if let Some(len) = request
            .headers
            .get_str("content-length")
            .and_then(|v| v.trim().parse::<usize>().ok())
        {
            if request.body.len() < len {
                return Some(UNSENDABLE[4]);
            }
        }
    }
    None
}

fn valid_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Serializes `request` for the target into `out`.
///
/// - Request line: the method, the target's prefix then the recorded path and query (the
///   origin-form of an absolute-form target), `HTTP/1.0` when recorded so, else `HTTP/1.1`
///   (HTTP/2 and HTTP/3 recordings are sent as HTTP/1.1).
/// - Headers in recorded order and case; `Host` becomes the target's (in the recorded place)
///   unless `keep_host`; HTTP/2 pseudo-headers are dropped (`:authority` gives the Host).
///   Fields with CR, LF or NUL (a corrupt capture) are not sent, so a capture cannot smuggle a
///   second request to the target.
/// - A body recorded decoded (HAR) is sent as is with a fresh `Content-Length`, without the
///   `Transfer-Encoding` and `Content-Encoding` that described the original transfer; a body
///   recorded on the wire (pcap, `.gor`) goes out byte for byte with its own framing.
pub(crate) fn serialize(request: &Request, dest: &Destination, out: &mut Vec<u8>) {
    let pq = request.path_and_query();
    out.reserve(256 + pq.len() + request.body.len());
    out.extend_from_slice(request.method.as_bytes());
    out.push(b' ');
    if pq == "*" {
        out.push(b'*');
    } else {
        out.extend_from_slice(dest.prefix.as_bytes());
        out.extend_from_slice(pq.as_bytes());
    }
    out.extend_from_slice(match request.version {
        Version::Http10 => b" HTTP/1.0\r\n",
        _ => b" HTTP/1.1\r\n",
    });
    let decoded = request.body_form == BodyForm::Decoded;
    let mut host_written = false;
    let mut length_written = false;
    for h in request.headers.iter() {
        let name = h.name.as_str();
        if !valid_token(name.trim_start_matches(':'))
            || h.value.iter().any(|&b| b == b'\r' || b == b'\n' || b == 0)
        {
            continue;
        }
        let is_host = name.eq_ignore_ascii_case("host") || name == ":authority";
        if is_host {
            if host_written {
                continue;
            }
            host_written = true;
            if dest.keep_host {
                line(
                    out,
                    if name == ":authority" { "Host" } else { name },
                    &h.value,
                );
            } else {
                line(
                    out,
                    if name == ":authority" { "Host" } else { name },
                    dest.authority.as_bytes(),
                );
            }
            continue;
        }
        if name.starts_with(':') {
            continue;
        }
        if decoded
            && (name.eq_ignore_ascii_case("transfer-encoding")
                || name.eq_ignore_ascii_case("content-encoding")
                || name.eq_ignore_ascii_case("content-length"))
        {
            continue;
        }
        if name.eq_ignore_ascii_case("content-length") {
            length_written = true;
        }
        line(out, name, &h.value);
    }
    if !host_written {
        line(out, "Host", dest.authority.as_bytes());
    }
    let wants_length = !request.body.is_empty()
        || ["POST", "PUT", "PATCH"]
            .iter()
            .any(|m| request.method.eq_ignore_ascii_case(m));
    if decoded && wants_length
        || !decoded
            && !length_written
            && !request.body.is_empty()
            && !request.headers.has_token("transfer-encoding", "chunked")
    {
        line(
            out,
            "Content-Length",
            request.body.len().to_string().as_bytes(),
        );
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(&request.body);
}

fn line(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use mynah_traffic::Headers;

    fn dest(prefix: &str, keep_host: bool) -> Destination {
        Destination {
            origin: "http://127.0.0.1:8080/".parse().unwrap(),
            authority: "127.0.0.1:8080".into(),
            prefix: prefix.into(),
            keep_host,
        }
    }

    fn request(method: &str, target: &str, headers: &[(&str, &str)], body: &str) -> Request {
        let mut h = Headers::new();
        for (n, v) in headers {
            h.push(*n, v.as_bytes().to_vec());
        }
        Request {
            method: method.into(),
            target: target.into(),
            version: Version::Http11,
            headers: h,
            body: body.as_bytes().to_vec(),
            body_form: BodyForm::Wire,
        }
    }

    fn text(r: &Request, d: &Destination) -> String {
        let mut out = Vec::new();
        serialize(r, d, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn head_kept_as_recorded_with_the_targets_host_and_prefix() {
        let r = request(
            "GET",
            "/a/b?x=1",
            &[
                ("X-First", "1"),
                ("HOST", "shop.example.com"),
                ("accept", "*/*"),
            ],
            "",
        );
        assert_eq!(
            text(&r, &dest("/base", false)),
            "GET /base/a/b?x=1 HTTP/1.1\r\nX-First: 1\r\nHOST: 127.0.0.1:8080\r\naccept: */*\r\n\r\n"
        );
        assert_eq!(
            text(&r, &dest("", true)),
            "GET /a/b?x=1 HTTP/1.1\r\nX-First: 1\r\nHOST: shop.example.com\r\naccept: */*\r\n\r\n"
        );
    }

    #[test]
    fn absolute_form_and_missing_host() {
        let mut r = request("GET", "http://proxy.example/x?y", &[], "");
        r.version = Version::Http10;
        assert_eq!(
            text(&r, &dest("", false)),
            "GET /x?y HTTP/1.0\r\nHost: 127.0.0.1:8080\r\n\r\n"
        );
    }

    #[test]
    fn decoded_bodies_get_a_fresh_length_and_lose_their_transfer_headers() {
        let mut r = request(
            "POST",
            "/p",
            &[
                (":authority", "h"),
                (":method", "POST"),
                ("content-encoding", "gzip"),
                ("content-length", "999"),
                ("content-type", "application/json"),
            ],
            "{\"a\":1}",
        );
        r.body_form = BodyForm::Decoded;
        r.version = Version::Http2;
        assert_eq!(
            text(&r, &dest("", false)),
            "POST /p HTTP/1.1\r\nHost: 127.0.0.1:8080\r\ncontent-type: application/json\r\nContent-Length: 7\r\n\r\n{\"a\":1}"
        );
    }

    #[test]
    fn wire_bodies_go_out_byte_for_byte() {
        let r = request(
            "POST",
            "/c",
            &[("Transfer-Encoding", "chunked")],
            "3\r\nabc\r\n0\r\n\r\n",
        );
        assert_eq!(
            text(&r, &dest("", false)),
            "POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\nHost: 127.0.0.1:8080\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
        );
    }

    #[test]
    fn injected_lines_are_not_sent() {
        let r = request(
            "GET",
            "/",
            &[("X-Evil", "a\r\nGET /smuggled HTTP/1.1"), ("Ok", "1")],
            "",
        );
        let t = text(&r, &dest("", false));
        assert!(!t.contains("smuggled"), "{t}");
        assert!(t.contains("Ok: 1\r\n"));
    }

    #[test]
    fn what_is_not_replayed() {
        assert_eq!(
            unsendable(&request("CONNECT", "h:443", &[], "")),
            Some("connect")
        );
        assert_eq!(
            unsendable(&request("GET", "/ws", &[("Upgrade", "websocket")], "")),
            Some("upgrade")
        );
        assert_eq!(
            unsendable(&request("POST", "/", &[("Content-Length", "10")], "abc")),
            Some("incomplete_request")
        );
        assert_eq!(
            unsendable(&request("GET", "a b", &[], "")),
            Some("invalid_target")
        );
        assert_eq!(
            unsendable(&request("G ET", "/", &[], "")),
            Some("invalid_method")
        );
        assert_eq!(unsendable(&request("GET", "/", &[], "")), None);
    }
}
