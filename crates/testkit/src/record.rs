//! Real recordings for tests: sends raw HTTP/1.1 requests over real TCP
//! connections to a server on loopback and returns what went back and forth
//! as [`mynah_traffic::Exchange`]s, with real timing, ready to be written to
//! a `.har` or `.gor` file and replayed.
//!
//! Each inner `Vec` given to [`record`] is one connection: its requests go on
//! one TCP connection, in order, each at its planned offset from the start of
//! the recording (or as soon as the previous response on that connection has
//! arrived, if that is later). Connections run concurrently, one thread each.
//!
//! Requests are sent exactly as given (method, target, version, header order
//! and case, body), with two additions when missing: a `Host` header (first,
//! `Host: <server addr>`) and `Content-Length` for a non-empty body without
//! `Content-Length` or `Transfer-Encoding`. Placeholders in the target,
//! header values and body are filled in from what the server sent earlier
//! on the same connection, so a recording can carry the tokens a login gave:
//!
//! * `{{json:NAME}}`: the top-level JSON field `NAME` (a string, or a number
//!   or boolean as written) of the latest response that had it;
//! * `{{cookie:NAME}}`: the value of the latest `Set-Cookie: NAME=...`.
//!
//! The response reader is a small, strict HTTP/1.1 reader: `Content-Length`,
//! `chunked` (stored with its framing, as on the wire), no body for `HEAD`,
//! 1xx, 204 and 304, and read-to-close otherwise; interim 1xx responses
//! (other than 101) are kept in [`Exchange::interim`].
//!
//! ```no_run
//! use std::time::Duration;
//! use mynah_testkit::record::{self, at, request};
//! let app = mynah_testkit::app::start(Default::default()).unwrap();
//! let xs = record::record(app.addr, vec![vec![
//!     at(Duration::ZERO, request("POST", "/login", &[("Content-Type", "application/json")],
//!         r#"{"user":"user1","password":"pass1"}"#)),
//!     at(Duration::from_millis(100), request("GET", "/private",
//!         &[("Authorization", "Bearer {{json:token}}")], "")),
//! ]]).unwrap();
//! record::write(std::path::Path::new("/tmp/rec.har"), &xs).unwrap();
//! ```

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mynah_traffic::{
    BodyForm, ConnectionInfo, Exchange, Format, Headers, Nanos, ReadOptions, Request, Response,
    Timing, Version,
};

/// Largest response head accepted, in bytes.
const MAX_HEAD: usize = 64 * 1024;

/// How long a read may block before the recording fails.
const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// One request of a connection and when to send it.
#[derive(Debug, Clone)]
pub struct Planned {
    /// Offset from the start of the recording. The request is sent then, or
    /// as soon as the previous response on its connection has arrived, if
    /// that is later.
    pub at: Duration,
    /// The request as it is to be sent (placeholders allowed, see the module
    /// docs).
    pub request: Request,
}

/// `Planned { at, request }`.
pub fn at(at: Duration, request: Request) -> Planned {
    Planned { at, request }
}

/// An HTTP/1.1 request with `headers` in the given order and case.
pub fn request(
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: impl Into<Vec<u8>>,
) -> Request {
    let mut h = Headers::new();
    for (name, value) in headers {
        h.push(*name, value.as_bytes());
    }
    Request {
        method: method.to_owned(),
        target: target.to_owned(),
        version: Version::Http11,
        headers: h,
        body: body.into(),
        body_form: BodyForm::Wire,
    }
}

/// A plain `GET target` with no extra headers.
pub fn get(target: &str) -> Request {
    request("GET", target, &[], "")
}

/// A `POST target` with a JSON body.
pub fn post_json(target: &str, json: &str) -> Request {
    request(
        "POST",
        target,
        &[("Content-Type", "application/json")],
        json,
    )
}

/// Nanoseconds since the Unix epoch, now.
pub fn now_ns() -> Nanos {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as Nanos)
}

/// Sends every connection's requests to `server` and returns the exchanges
/// in request-start order, each with its connection id (the index of its
/// connection in `connections`), its position on it, both addresses and real
/// timing (unix ns).
///
/// Fails if a connection cannot be made, a request cannot be sent or a
/// response cannot be read (the error names the connection and request).
pub fn record(server: SocketAddr, connections: Vec<Vec<Planned>>) -> io::Result<Vec<Exchange>> {
    let clock = Clock::new();
    let threads: Vec<_> = connections
        .into_iter()
        .enumerate()
        .map(|(id, plan)| {
            std::thread::Builder::new()
                .name(format!("mynah-testkit-record-{id}"))
                .spawn(move || run_connection(server, id as u64, plan, clock))
        })
        .collect::<io::Result<_>>()?;
    let mut all = Vec::new();
    let mut first_error = None;
    for t in threads {
        match t.join() {
            Ok(Ok(xs)) => all.extend(xs),
            Ok(Err(e)) => {
                first_error.get_or_insert(e);
            }
            Err(_) => {
                first_error.get_or_insert(io::Error::other("a recording thread panicked"));
            }
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    all.sort_by_key(|x| (x.timing.request_start, x.connection.id, x.connection.index));
    Ok(all)
}

/// One clock for every connection of a recording: unix ns derived from a
/// monotonic [`Instant`], so recorded gaps are exact.
#[derive(Clone, Copy)]
struct Clock {
    start: Instant,
    start_ns: Nanos,
}

impl Clock {
    fn new() -> Clock {
        Clock {
            start: Instant::now(),
            start_ns: now_ns(),
        }
    }

    fn ns(&self, t: Instant) -> Nanos {
        self.start_ns + t.duration_since(self.start).as_nanos() as Nanos
    }

    fn now(&self) -> Nanos {
        self.ns(Instant::now())
    }
}

fn run_connection(
    server: SocketAddr,
    id: u64,
    plan: Vec<Planned>,
    clock: Clock,
) -> io::Result<Vec<Exchange>> {
    let ctx = |what: &str, e: io::Error| {
        io::Error::new(e.kind(), format!("recording connection {id}: {what}: {e}"))
    };
    let stream = TcpStream::connect(server).map_err(|e| ctx("connect", e))?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(READ_TIMEOUT))?;
    let client = stream.local_addr()?;
    let mut reader = Reader::new(stream.try_clone()?);
    let mut writer = stream;
    let mut seen = Seen::default();
    let mut out = Vec::with_capacity(plan.len());
    for (index, step) in plan.into_iter().enumerate() {
        let due = clock.start + step.at;
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        let req = seen.fill(step.request, server);
        let bytes = serialize(&req);
        let request_start = clock.now();
        writer
            .write_all(&bytes)
            .map_err(|e| ctx(&format!("send {} {}", req.method, req.target), e))?;
        let request_end = clock.now();
        let head_only = req.method.eq_ignore_ascii_case("HEAD");
        let (response, interim, first_byte) = reader
            .response(head_only, &clock)
            .map_err(|e| ctx(&format!("response to {} {}", req.method, req.target), e))?;
        let response_end = clock.now();
        seen.learn(&response);
        out.push(Exchange {
            request: req,
            response: Some(response),
            interim,
            timing: Timing {
                request_start,
                request_end: Some(request_end),
                response_start: Some(first_byte),
                response_end: Some(response_end),
            },
            connection: ConnectionInfo {
                client: Some(client),
                server: Some(server),
                id: Some(id),
                index: index as u32,
                tls: false,
            },
            incomplete: None,
        });
    }
    Ok(out)
}

/// Values learnt from responses on one connection, for the placeholders.
#[derive(Default)]
struct Seen {
    json: HashMap<String, String>,
    cookies: HashMap<String, String>,
}

impl Seen {
    fn learn(&mut self, resp: &Response) {
        for v in resp.headers.get_all("set-cookie") {
            let v = String::from_utf8_lossy(v);
            let pair = v.split(';').next().unwrap_or("");
            if let Some((name, value)) = pair.split_once('=') {
                self.cookies
                    .insert(name.trim().to_owned(), value.trim().to_owned());
            }
        }
        let Ok(body) = resp.decoded_body() else {
            return;
        };
        if let Ok(serde_json::Value::Object(map)) = serde_json::from_slice(&body) {
            for (k, v) in map {
                let text = match v {
                    serde_json::Value::String(s) => s,
                    serde_json::Value::Number(n) => n.to_string(),
                    serde_json::Value::Bool(b) => b.to_string(),
                    _ => continue,
                };
                self.json.insert(k, text);
            }
        }
    }

    fn subst(&self, s: &str) -> String {
        let mut out = String::with_capacity(s.len());
        let mut rest = s;
        while let Some(i) = rest.find("{{") {
            out.push_str(&rest[..i]);
            let after = &rest[i + 2..];
            let Some(j) = after.find("}}") else {
                out.push_str(&rest[i..]);
                return out;
            };
            let key = &after[..j];
            let value = if let Some(name) = key.strip_prefix("json:") {
                self.json.get(name)
            } else if let Some(name) = key.strip_prefix("cookie:") {
                self.cookies.get(name)
            } else {
                None
            };
            match value {
                Some(v) => out.push_str(v),
                None => panic!("record: no value for placeholder {{{{{key}}}}} yet"),
            }
            rest = &after[j + 2..];
        }
        out.push_str(rest);
        out
    }

    fn fill(&self, mut req: Request, server: SocketAddr) -> Request {
        req.target = self.subst(&req.target);
        for h in &mut req.headers.0 {
            let v = String::from_utf8_lossy(&h.value);
            if v.contains("{{") {
                h.value = self.subst(&v).into_bytes();
            }
        }
        if req.body.windows(2).any(|w| w == b"{{") {
            req.body = self.subst(&String::from_utf8_lossy(&req.body)).into_bytes();
        }
        if !req.headers.contains("host") {
            req.headers
                .0
                .insert(0, mynah_traffic::Header::new("Host", server.to_string()));
        }
        if !req.body.is_empty()
            && !req.headers.contains("content-length")
            && !req.headers.contains("transfer-encoding")
        {
            req.headers
                .push("Content-Length", req.body.len().to_string());
        }
        req
    }
}

/// The request's bytes on the wire.
pub fn serialize(req: &Request) -> Vec<u8> {
    let mut b = Vec::with_capacity(256 + req.body.len());
    b.extend_from_slice(req.method.as_bytes());
    b.push(b' ');
    b.extend_from_slice(req.target.as_bytes());
    b.push(b' ');
    b.extend_from_slice(req.version.as_str().as_bytes());
    b.extend_from_slice(b"\r\n");
    for h in req.headers.iter() {
        b.extend_from_slice(h.name.as_bytes());
        b.extend_from_slice(b": ");
        b.extend_from_slice(&h.value);
        b.extend_from_slice(b"\r\n");
    }
    b.extend_from_slice(b"\r\n");
    b.extend_from_slice(&req.body);
    b
}

/// A buffered reader of HTTP/1.1 responses.
struct Reader {
    stream: TcpStream,
    buf: Vec<u8>,
    /// When bytes of the response being read first arrived (unix ns).
    first: Option<Nanos>,
}

fn bad(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

impl Reader {
    fn new(stream: TcpStream) -> Reader {
        Reader {
            stream,
            buf: Vec::with_capacity(16 * 1024),
            first: None,
        }
    }

    /// Reads more bytes; `Ok(0)` at end of stream.
    fn fill(&mut self, clock: &Clock) -> io::Result<usize> {
        let mut tmp = [0u8; 64 * 1024];
        let n = loop {
            match self.stream.read(&mut tmp) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        };
        if n > 0 && self.first.is_none() {
            self.first = Some(clock.now());
        }
        self.buf.extend_from_slice(&tmp[..n]);
        Ok(n)
    }

    fn fill_or_eof(&mut self, clock: &Clock, what: &str) -> io::Result<()> {
        if self.fill(clock)? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("connection closed in the middle of {what}"),
            ));
        }
        Ok(())
    }

    fn take(&mut self, n: usize, clock: &Clock) -> io::Result<Vec<u8>> {
        while self.buf.len() < n {
            self.fill_or_eof(clock, "a body")?;
        }
        Ok(self.buf.drain(..n).collect())
    }

    /// One line including its CRLF (or LF).
    fn line(&mut self, clock: &Clock) -> io::Result<Vec<u8>> {
        loop {
            if let Some(i) = self.buf.iter().position(|&b| b == b'\n') {
                return Ok(self.buf.drain(..=i).collect());
            }
            if self.buf.len() > MAX_HEAD {
                return Err(bad("chunk line too long"));
            }
            self.fill_or_eof(clock, "a chunked body")?;
        }
    }

    /// Reads one response head.
    fn head(&mut self, clock: &Clock) -> io::Result<Response> {
        loop {
            let mut headers = [httparse::EMPTY_HEADER; 128];
            let mut parsed = httparse::Response::new(&mut headers);
            match parsed.parse(&self.buf) {
                Ok(httparse::Status::Complete(len)) => {
                    let mut h = Headers::new();
                    for x in parsed.headers.iter() {
                        h.push(x.name, x.value);
                    }
                    let resp = Response {
                        version: if parsed.version == Some(0) {
                            Version::Http10
                        } else {
                            Version::Http11
                        },
                        status: parsed.code.unwrap_or(0),
                        reason: parsed.reason.unwrap_or("").to_owned(),
                        headers: h,
                        body: Vec::new(),
                        body_form: BodyForm::Wire,
                    };
                    self.buf.drain(..len);
                    return Ok(resp);
                }
                Ok(httparse::Status::Partial) => {
                    if self.buf.len() > MAX_HEAD {
                        return Err(bad("response head too large"));
                    }
                    self.fill_or_eof(clock, "a response head")?;
                }
                Err(e) => return Err(bad(format!("bad response head: {e}"))),
            }
        }
    }

    /// Reads interim responses and the final one; returns them with the time
    /// the response's first byte arrived.
    fn response(
        &mut self,
        head_request: bool,
        clock: &Clock,
    ) -> io::Result<(Response, Vec<Response>, Nanos)> {
        self.first = (!self.buf.is_empty()).then(|| clock.now());
        let mut interim = Vec::new();
        loop {
            let mut resp = self.head(clock)?;
            if resp.is_interim() {
                interim.push(resp);
                continue;
            }
            let no_body =
                head_request || resp.status < 200 || resp.status == 204 || resp.status == 304;
            if !no_body {
                resp.body = if resp.headers.has_token("transfer-encoding", "chunked") {
                    self.chunked(clock)?
                } else if let Some(len) = resp.headers.get_str("content-length") {
                    let len: usize = len
                        .trim()
                        .parse()
                        .map_err(|_| bad(format!("bad Content-Length {len:?}")))?;
                    self.take(len, clock)?
                } else {
                    while self.fill(clock)? > 0 {}
                    std::mem::take(&mut self.buf)
                };
            }
            let first = self.first.unwrap_or_else(|| clock.now());
            return Ok((resp, interim, first));
        }
    }

    /// A chunked body with its framing, as on the wire.
    fn chunked(&mut self, clock: &Clock) -> io::Result<Vec<u8>> {
        let mut body = Vec::new();
        loop {
            let line = self.line(clock)?;
            body.extend_from_slice(&line);
            let text = String::from_utf8_lossy(&line);
            let size = text.split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(size, 16)
                .map_err(|_| bad(format!("bad chunk size {size:?}")))?;
            if size == 0 {
                // Trailers, up to the empty line.
                loop {
                    let line = self.line(clock)?;
                    body.extend_from_slice(&line);
                    if line == b"\r\n" || line == b"\n" {
                        return Ok(body);
                    }
                }
            }
            let data = self.take(size, clock)?;
            body.extend_from_slice(&data);
            let end = self.line(clock)?;
            if end != b"\r\n" && end != b"\n" {
                return Err(bad("chunk data longer than its size"));
            }
            body.extend_from_slice(&end);
        }
    }
}

/// Writes `exchanges` to `path`: `.har` keeps connection ids (the HAR
/// `connection` field), `.gor` carries none; a name ending in `.gz` is
/// gzipped.
pub fn write(path: &Path, exchanges: &[Exchange]) -> io::Result<()> {
    let format = Format::from_path(path).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{}: name it .har or .gor", path.display()),
        )
    })?;
    let mut w = mynah_traffic::sink::create(path, format)?;
    for x in exchanges {
        w.write(x)?;
    }
    w.finish()
}

/// Reads every exchange of a capture file (for checks in tests); panics on
/// a read error.
pub fn read(path: &Path) -> Vec<Exchange> {
    let reader = mynah_traffic::open(path, None, &ReadOptions::default())
        .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    reader
        .map(|x| x.unwrap_or_else(|e| panic!("read {}: {e}", path.display())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::{self, AppConfig};
    use std::net::TcpListener;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn tmp(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("mynah-testkit-record-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join(name)
    }

    fn body(x: &Exchange) -> serde_json::Value {
        serde_json::from_slice(&x.response.as_ref().unwrap().body).unwrap()
    }

    #[test]
    fn records_sessions_with_tokens_timing_and_connections() {
        let server = app::start(AppConfig::default()).unwrap();
        assert!(server.arrival_window().is_none());
        let session = |user: u32, offset: u64| {
            vec![
                at(
                    ms(offset),
                    post_json(
                        "/login",
                        &format!(r#"{{"user":"user{user}","password":"pass{user}"}}"#),
                    ),
                ),
                at(
                    ms(offset + 60),
                    request(
                        "GET",
                        "/private",
                        &[("authorization", "Bearer {{json:token}}")],
                        "",
                    ),
                ),
                at(
                    ms(offset + 120),
                    request(
                        "GET",
                        "/account",
                        &[("Cookie", "session={{cookie:session}}")],
                        "",
                    ),
                ),
                at(ms(offset + 130), request("HEAD", "/", &[], "")),
                at(ms(offset + 140), get("/status/204")),
            ]
        };
        let xs = record(server.addr, vec![session(1, 0), session(2, 30)]).unwrap();
        assert_eq!(xs.len(), 10);
        let starts: Vec<Nanos> = xs.iter().map(|x| x.timing.request_start).collect();
        let mut sorted = starts.clone();
        sorted.sort();
        assert_eq!(starts, sorted);
        // Connection 1 started 30 ms after connection 0: real gaps.
        let login0 = xs.iter().find(|x| x.connection.id == Some(0)).unwrap();
        let login1 = xs.iter().find(|x| x.connection.id == Some(1)).unwrap();
        let gap = login1.timing.request_start - login0.timing.request_start;
        assert!((25_000_000..200_000_000).contains(&gap), "gap {gap} ns");
        for id in 0..2u64 {
            let conn: Vec<&Exchange> = xs.iter().filter(|x| x.connection.id == Some(id)).collect();
            assert_eq!(conn.len(), 5);
            let client = conn[0].connection.client;
            for (i, x) in conn.iter().enumerate() {
                assert_eq!(x.connection.index, i as u32);
                assert_eq!(x.connection.client, client, "one TCP connection");
                assert_eq!(x.connection.server, Some(server.addr));
                let t = x.timing;
                assert!(t.request_start <= t.request_end.unwrap());
                assert!(t.request_end.unwrap() <= t.response_start.unwrap());
                assert!(t.response_start.unwrap() <= t.response_end.unwrap());
            }
            let user = format!("user{}", id + 1);
            assert_eq!(conn[0].response.as_ref().unwrap().status, 200);
            let token = body(conn[0])["token"].as_str().unwrap().to_owned();
            assert_eq!(
                conn[1].request.headers.get_str("authorization").unwrap(),
                format!("Bearer {token}")
            );
            // Original header case and order: Host first, added.
            assert_eq!(conn[1].request.headers.0[0].name, "Host");
            assert_eq!(conn[1].request.headers.0[1].name, "authorization");
            assert_eq!(conn[1].response.as_ref().unwrap().status, 200);
            assert_eq!(body(conn[1])["user"], user);
            assert_eq!(conn[2].response.as_ref().unwrap().status, 200, "cookie");
            assert_eq!(body(conn[2])["user"], user);
            assert_eq!(conn[3].response.as_ref().unwrap().status, 200);
            assert!(conn[3].response.as_ref().unwrap().body.is_empty(), "HEAD");
            assert_eq!(conn[4].response.as_ref().unwrap().status, 204);
            assert_eq!(
                conn[0].request.headers.get_str("content-length").unwrap(),
                conn[0].request.body.len().to_string()
            );
        }
        let (first, last) = server.arrival_window().unwrap();
        let server_span = last - first;
        let recorded_span = xs.last().unwrap().timing.request_start - xs[0].timing.request_start;
        let diff = (server_span.as_nanos() as i64 - recorded_span).abs();
        assert!(
            diff < 20_000_000,
            "server span {server_span:?} vs recorded {recorded_span} ns"
        );
        assert_eq!(server.stats().unauthorized, 0);
        assert_eq!(server.stats().route("account"), 2);

        // HAR keeps the connections; .gor does not.
        let har = tmp("sessions.har");
        write(&har, &xs).unwrap();
        let back = read(&har);
        assert_eq!(back.len(), xs.len());
        for (a, b) in xs.iter().zip(&back) {
            assert_eq!(a.request.target, b.request.target);
            assert_eq!(a.connection.id, b.connection.id, "HAR connection ids");
            assert_eq!(a.connection.index, b.connection.index);
            assert_eq!(a.timing.request_start / 1000, b.timing.request_start / 1000);
            assert_eq!(
                a.response.as_ref().unwrap().status,
                b.response.as_ref().unwrap().status
            );
        }
        let gor = tmp("sessions.gor");
        write(&gor, &xs).unwrap();
        let back = read(&gor);
        assert_eq!(back.len(), xs.len());
        for (a, b) in xs.iter().zip(&back) {
            assert_eq!(a.request.target, b.request.target);
            assert_eq!(a.request.headers, b.request.headers);
            assert_eq!(a.request.body, b.request.body);
        }
    }

    #[test]
    fn placeholders_without_a_value_panic() {
        let seen = Seen::default();
        let r = std::panic::catch_unwind(|| seen.subst("Bearer {{json:token}}"));
        assert!(r.is_err());
        assert_eq!(seen.subst("no {placeholder}"), "no {placeholder}");
    }

    #[test]
    fn reads_chunked_interim_and_close_delimited_responses() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = [0u8; 4096];
            let mut reqs = 0;
            let mut seen = Vec::new();
            // Answer each request head as it arrives.
            while reqs < 3 {
                let n = s.read(&mut buf).unwrap();
                assert!(n > 0);
                seen.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&seen).into_owned();
                let heads = text.matches("\r\n\r\n").count();
                while reqs < heads {
                    let reply: &[u8] = match reqs {
                        0 => b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x=1\r\nabc\r\n2\r\nde\r\n0\r\nT: 1\r\n\r\n",
                        1 => b"HTTP/1.1 304 Not Modified\r\nETag: x\r\n\r\n",
                        _ => b"HTTP/1.0 200 OK\r\n\r\nuntil close",
                    };
                    s.write_all(reply).unwrap();
                    reqs += 1;
                }
            }
        });
        let xs = record(
            addr,
            vec![vec![
                at(
                    ms(0),
                    request("POST", "/up", &[("Expect", "100-continue")], "x"),
                ),
                at(ms(5), get("/cached")),
                at(ms(10), get("/old")),
            ]],
        )
        .unwrap();
        server.join().unwrap();
        assert_eq!(xs.len(), 3);
        let r0 = xs[0].response.as_ref().unwrap();
        assert_eq!(xs[0].interim.len(), 1);
        assert_eq!(xs[0].interim[0].status, 100);
        assert_eq!(r0.status, 200);
        assert_eq!(
            r0.body,
            b"3;x=1\r\nabc\r\n2\r\nde\r\n0\r\nT: 1\r\n\r\n".to_vec()
        );
        assert_eq!(r0.decoded_body().unwrap().as_ref(), b"abcde");
        assert_eq!(xs[1].response.as_ref().unwrap().status, 304);
        assert!(xs[1].response.as_ref().unwrap().body.is_empty());
        let r2 = xs[2].response.as_ref().unwrap();
        assert_eq!(r2.version, Version::Http10);
        assert_eq!(r2.body, b"until close".to_vec());
    }

    #[test]
    fn serialize_keeps_order_case_and_version() {
        let mut r = request("GET", "/a?b=1", &[("X-One", "1"), ("x-two", "2")], "");
        r.version = Version::Http10;
        assert_eq!(
            serialize(&r),
            b"GET /a?b=1 HTTP/1.0\r\nX-One: 1\r\nx-two: 2\r\n\r\n".to_vec()
        );
    }
}
