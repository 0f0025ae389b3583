//! What the proxy changes on the way through, and how a message is written down.
//!
//! Forwarded requests follow what nginx `proxy_pass` users expect (see docs/proxy.md):
//! - hop-by-hop headers (`Connection` and every header it names, `Keep-Alive`, `Proxy-Connection`,
//!   `TE`, `Trailer`, `Transfer-Encoding`, `Upgrade`) are removed in both directions; an upgrade
//!   request keeps `Connection: upgrade` and its `Upgrade`;
//! - `Host` is the upstream's (as nginx's default `proxy_set_header Host $proxy_host`), so
//!   name-based upstreams and TLS upstreams work unchanged; `preserve_host` forwards the client's;
//! - `X-Forwarded-For` gets the client's address appended, `X-Forwarded-Proto` says whether the
//!   client spoke TLS to the proxy, `X-Forwarded-Host` carries the client's `Host`;
//! - the path of the upstream URL is a prefix: `--upstream http://app/api` sends `/x` to `/api/x`.
//!
//! The recording holds what the client sent and what the upstream answered, unchanged by the
//! above. hyper does not give the original case of header names, so HTTP/1 names are written in
//! the usual Title-Case (`content-type` becomes `Content-Type`); HTTP/2 names stay lowercase as
//! sent. An HTTP/2 request is recorded as its HTTP/1.1 equivalent: `Host` from `:authority`,
//! and `Content-Length` when a body came without one.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Uri, Version};
use mynah_traffic::Headers;

/// Hop-by-hop headers: they describe one connection, so a proxy never forwards them.
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy-authenticate",
];

/// True if a `Connection` header lists `token`.
pub(crate) fn connection_has(headers: &HeaderMap, token: &str) -> bool {
    headers.get_all(header::CONNECTION).iter().any(|v| {
        v.to_str()
            .unwrap_or("")
            .split(',')
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    })
}

/// An HTTP/1.1 upgrade request (WebSocket and friends): `Connection: upgrade` and `Upgrade`.
pub(crate) fn is_upgrade(version: Version, headers: &HeaderMap) -> bool {
    version == Version::HTTP_11
        && headers.contains_key(header::UPGRADE)
        && connection_has(headers, "upgrade")
}

/// Removes hop-by-hop headers and those `Connection` names, keeping the upgrade pair when asked.
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    let upgrade = headers.get(header::UPGRADE).cloned();
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .flat_map(|v| v.to_str().unwrap_or("").split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
    if keep_upgrade {
        if let Some(u) = upgrade {
            headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
            headers.insert(header::UPGRADE, u);
        }
    }
}

/// The upstream's target for a client's request target: the prefix, then the path and query.
pub(crate) fn upstream_target(prefix: &str, uri: &Uri) -> String {
    let pq = uri.path_and_query().map_or("/", |p| p.as_str());
    if pq == "*" {
        return if prefix.is_empty() {
            "*".into()
        } else {
            prefix.into()
        };
    }
    let prefix = prefix.trim_end_matches('/');
    if pq.starts_with('/') {
        format!("{prefix}{pq}")
    } else {
        format!("{prefix}/{pq}")
    }
}

/// The client's host: the `Host` header, else the HTTP/2 `:authority`.
pub(crate) fn client_host(uri: &Uri, headers: &HeaderMap) -> Option<HeaderValue> {
    headers.get(header::HOST).cloned().or_else(|| {
        uri.authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
    })
}

/// Sets the forwarding headers on a request about to go upstream (after [`strip_hop_by_hop`]).
pub(crate) fn add_forwarding(
    headers: &mut HeaderMap,
    client_ip: std::net::IpAddr,
    tls: bool,
    client_host: Option<HeaderValue>,
    upstream_host: &HeaderValue,
    preserve_host: bool,
) {
    let xff = match headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
        Some(prev) if !prev.trim().is_empty() => format!("{prev}, {client_ip}"),
        _ => client_ip.to_string(),
    };
    if let Ok(v) = HeaderValue::from_str(&xff) {
        headers.insert("x-forwarded-for", v);
    }
    headers.insert(
        "x-forwarded-proto",
        HeaderValue::from_static(if tls { "https" } else { "http" }),
    );
    match (&client_host, preserve_host) {
        (Some(h), true) => {
            headers.insert(header::HOST, h.clone());
        }
        _ => {
            headers.insert(header::HOST, upstream_host.clone());
        }
    }
    if let Some(h) = client_host {
        headers.insert("x-forwarded-host", h);
    }
}

/// `content-type` → `Content-Type`, with the usual exceptions (`ETag`, `WWW-Authenticate`, ...).
pub(crate) fn title_case(name: &str) -> String {
    match name {
        "etag" => return "ETag".into(),
        "www-authenticate" => return "WWW-Authenticate".into(),
        "te" => return "TE".into(),
        "dnt" => return "DNT".into(),
        "content-md5" => return "Content-MD5".into(),
        _ => {}
    }
    let mut out = String::with_capacity(name.len());
    let mut up = true;
    for c in name.chars() {
        out.push(if up { c.to_ascii_uppercase() } else { c });
        up = c == '-';
    }
    out
}

/// Headers as the recording keeps them: in the order hyper gives them (each name's values
/// together, in order), Title-Case names for HTTP/1, names as sent for HTTP/2.
pub(crate) fn record_headers(headers: &HeaderMap, http2: bool) -> Headers {
    let mut out = Headers(Vec::with_capacity(headers.len() + 1));
    for (name, value) in headers {
        let n = if http2 {
            name.as_str().to_string()
        } else {
            title_case(name.as_str())
        };
        out.push(n, value.as_bytes());
    }
    out
}

/// The request target as the recording writes it: what an HTTP/1.1 client would have sent.
pub(crate) fn record_target(method: &Method, uri: &Uri, http2: bool) -> String {
    if *method == Method::CONNECT {
        return uri
            .authority()
            .map_or_else(|| uri.to_string(), |a| a.to_string());
    }
    if http2 || uri.scheme().is_none() {
        uri.path_and_query()
            .map_or_else(|| "/".to_string(), |p| p.to_string())
    } else {
        uri.to_string()
    }
}

/// The version of a message on the HTTP/1.x record (HTTP/2 is written as HTTP/1.1).
pub(crate) fn record_version(v: Version) -> mynah_traffic::Version {
    match v {
        Version::HTTP_10 => mynah_traffic::Version::Http10,
        Version::HTTP_09 => mynah_traffic::Version::Http09,
        _ => mynah_traffic::Version::Http11,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_joins_like_proxy_pass() {
        let u: Uri = "/x?y=1".parse().unwrap();
        assert_eq!(upstream_target("", &u), "/x?y=1");
        assert_eq!(upstream_target("/api", &u), "/api/x?y=1");
        assert_eq!(upstream_target("/api/", &u), "/api/x?y=1");
        let star: Uri = "*".parse().unwrap();
        assert_eq!(upstream_target("", &star), "*");
    }

    #[test]
    fn hop_by_hop_headers_go_and_named_ones_with_them() {
        let mut h = HeaderMap::new();
        h.insert("connection", "keep-alive, X-Secret-Hop".parse().unwrap());
        h.insert("x-secret-hop", "1".parse().unwrap());
        h.insert("keep-alive", "timeout=5".parse().unwrap());
        h.insert("transfer-encoding", "chunked".parse().unwrap());
        h.insert("accept", "*/*".parse().unwrap());
        strip_hop_by_hop(&mut h, false);
        assert_eq!(h.len(), 1, "{h:?}");
        assert!(h.contains_key("accept"));

        let mut h = HeaderMap::new();
        h.insert("connection", "Upgrade".parse().unwrap());
        h.insert("upgrade", "websocket".parse().unwrap());
        assert!(is_upgrade(Version::HTTP_11, &h));
        strip_hop_by_hop(&mut h, true);
        assert_eq!(h["connection"], "upgrade");
        assert_eq!(h["upgrade"], "websocket");
    }

    #[test]
    fn forwarding_headers() {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", "10.0.0.1".parse().unwrap());
        let up = HeaderValue::from_static("app:8080");
        let client = Some(HeaderValue::from_static("shop.example"));
        add_forwarding(
            &mut h,
            "127.0.0.1".parse().unwrap(),
            true,
            client.clone(),
            &up,
            false,
        );
        assert_eq!(h["x-forwarded-for"], "10.0.0.1, 127.0.0.1");
        assert_eq!(h["x-forwarded-proto"], "https");
        assert_eq!(h["host"], "app:8080");
        assert_eq!(h["x-forwarded-host"], "shop.example");
        add_forwarding(
            &mut h,
            "127.0.0.1".parse().unwrap(),
            false,
            client,
            &up,
            true,
        );
        assert_eq!(h["host"], "shop.example");
    }

    #[test]
    fn names_are_title_cased_for_http1() {
        assert_eq!(title_case("content-type"), "Content-Type");
        assert_eq!(title_case("x-request-id"), "X-Request-Id");
        assert_eq!(title_case("etag"), "ETag");
        let mut h = HeaderMap::new();
        h.insert("user-agent", "t".parse().unwrap());
        assert_eq!(record_headers(&h, false).0[0].name, "User-Agent");
        assert_eq!(record_headers(&h, true).0[0].name, "user-agent");
    }
}
