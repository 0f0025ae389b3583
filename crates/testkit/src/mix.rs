//! A known mix of HTTP/1.1 traffic for capture tests (`mynah record`, `mynah proxy`): the cases
//! capture tools get wrong, sent over raw TCP so that keep-alive and pipelining are exactly as
//! planned, against nginx configured by [`Mix::locations`].
//!
//! What [`Mix::send`] sends, on four connections one after the other:
//!
//! 1. keep-alive: `GET /mix/a` with `Authorization: Bearer` [`SECRET_BEARER`], `GET /mix/b` with
//!    `token=`[`SECRET_TOKEN`] in the query, `HEAD` of a static file, the same file with
//!    `Accept-Encoding: gzip` (nginx answers it gzip-encoded and chunked), a form `POST
//!    /mix/login` with `password=`[`SECRET_PASSWORD`], and a `GET` nginx answers 404;
//! 2. three pipelined `GET`s written with one `write` before any response is read;
//! 3. a 1 MB `POST /mix/upload` with `Expect: 100-continue`: the body is sent only after the
//!    `100 Continue` arrived;
//! 4. one more `GET` with `Connection: close`, so nginx closes the connection first.
//!
//! It returns what was sent and the final status each request got, so a test can compare a
//! recording with the client's view as well as with nginx's access log. The raw secret values
//! must never appear in a recording made with default masking ([`SECRETS`]).
//!
//! ```no_run
//! let mix = mynah_testkit::mix::Mix::new().unwrap();
//! let nginx = mynah_testkit::nginx::Nginx::start(&mix.locations()).unwrap();
//! let sent = mix.send(nginx.addr()).unwrap();
//! assert_eq!(sent.len(), mynah_testkit::mix::REQUESTS);
//! ```

use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The bearer token sent in `Authorization` on the first request.
pub const SECRET_BEARER: &str = "mixbearer7f3a9c21e5d04b68";
/// The value of the `token=` query parameter of `GET /mix/b`.
pub const SECRET_TOKEN: &str = "mixtoken93b1d0c4aa5e2f17";
/// The `password=` form field of `POST /mix/login`.
pub const SECRET_PASSWORD: &str = "mixpass4e8d2b7f116c0a93";
/// Every seeded secret: none may appear, raw, in a masked recording.
pub const SECRETS: [&str; 3] = [SECRET_BEARER, SECRET_TOKEN, SECRET_PASSWORD];

/// How many requests [`Mix::send`] sends.
pub const REQUESTS: usize = 11;
/// The size of the upload's body.
pub const UPLOAD_BYTES: usize = 1_000_000;

/// One request of the mix and the final status it got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    /// The method as sent.
    pub method: String,
    /// The request target as sent (path and query, secrets raw).
    pub target: String,
    /// The final (non-1xx) status of the response.
    pub status: u16,
    /// Bytes of the request body.
    pub body_len: usize,
}

/// The static files nginx serves for the mix; removed on drop.
#[derive(Debug)]
pub struct Mix {
    dir: PathBuf,
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// The static text file: long and repetitive, so gzip shrinks it a lot.
fn page() -> String {
    (0..400)
        .map(|i| format!("line {i}: the quick brown fox jumps over the lazy dog\n"))
        .collect()
}

impl Mix {
    /// Writes the static files into a fresh directory under the system's temp dir.
    pub fn new() -> io::Result<Mix> {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("mynah-mix-{}-{n}", std::process::id()));
        fs::create_dir_all(&dir)?;
        fs::write(dir.join("page.txt"), page())?;
        // nginx runs its worker as `nobody` when started as root: the files must be readable.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&dir, fs::Permissions::from_mode(0o755))?;
            fs::set_permissions(dir.join("page.txt"), fs::Permissions::from_mode(0o644))?;
        }
        Ok(Mix { dir })
    }

    /// The body of nginx's `server` block for the mix (for [`crate::nginx::Nginx::start`]).
    /// `/mix/static/` serves the files with gzip on for any size, so an HTTP/1.1 request that
    /// accepts gzip gets a chunked, gzip-encoded response.
    pub fn locations(&self) -> String {
        format!(
            r#"
        location = /mix/a {{ return 200 "a\n"; }}
        location = /mix/b {{ return 200 "b\n"; }}
        location ^~ /mix/p/ {{ return 200 "pipelined\n"; }}
        location = /mix/login {{ return 200 "welcome\n"; }}
        location = /mix/upload {{ client_max_body_size 10m; return 201 "stored\n"; }}
        location = /mix/bye {{ return 200 "bye\n"; }}
        location ^~ /mix/load/ {{ return 200 "load\n"; }}
        location /mix/static/ {{
            alias {}/;
            gzip on;
            gzip_min_length 0;
            gzip_http_version 1.0;
            gzip_types text/plain;
            default_type text/plain;
        }}
"#,
            self.dir.display()
        )
    }

    /// Sends the whole mix to `addr` (nginx, or a proxy in front of it) and returns every
    /// request with the status it got, in the order sent.
    pub fn send(&self, addr: SocketAddr) -> io::Result<Vec<Sent>> {
        let host = addr.to_string();
        let mut sent = Vec::with_capacity(REQUESTS);

        // 1. Keep-alive, one request after the other.
        let mut c = Conn::open(addr)?;
        let plain = |method: &str, target: &str, extra: &str| {
            format!("{method} {target} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: mynah-mix\r\n{extra}\r\n")
        };
        let steps: [(&str, String, String, String); 6] = [
            (
                "GET",
                "/mix/a".into(),
                format!("Authorization: Bearer {SECRET_BEARER}\r\n"),
                String::new(),
            ),
            (
                "GET",
                format!("/mix/b?page=2&token={SECRET_TOKEN}"),
                String::new(),
                String::new(),
            ),
            (
                "HEAD",
                "/mix/static/page.txt".into(),
                String::new(),
                String::new(),
            ),
            (
                "GET",
                "/mix/static/page.txt".into(),
                "Accept-Encoding: gzip\r\n".into(),
                String::new(),
            ),
            (
                "POST",
                "/mix/login".into(),
                String::new(),
                format!("user=alice&password={SECRET_PASSWORD}"),
            ),
            ("GET", "/mix/missing".into(), String::new(), String::new()),
        ];
        for (method, target, extra, body) in steps {
            let extra = if body.is_empty() {
                extra
            } else {
                format!(
                    "{extra}Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n",
                    body.len()
                )
            };
            c.write(format!("{}{body}", plain(method, &target, &extra)).as_bytes())?;
            let status = c.response(method == "HEAD")?;
            sent.push(Sent {
                method: method.into(),
                target,
                status,
                body_len: body.len(),
            });
        }
        drop(c);

        // 2. Pipelined: three requests in one write, then the three responses.
        let mut c = Conn::open(addr)?;
        let targets = ["/mix/p/1", "/mix/p/2", "/mix/p/3"];
        let all: String = targets.iter().map(|t| plain("GET", t, "")).collect();
        c.write(all.as_bytes())?;
        for t in targets {
            let status = c.response(false)?;
            sent.push(Sent {
                method: "GET".into(),
                target: t.into(),
                status,
                body_len: 0,
            });
        }
        drop(c);

        // 3. A 1 MB upload that waits for 100 Continue.
        let mut c = Conn::open(addr)?;
        let head = plain(
            "POST",
            "/mix/upload",
            &format!(
                "Content-Type: application/octet-stream\r\nContent-Length: {UPLOAD_BYTES}\r\nExpect: 100-continue\r\n"
            ),
        );
        c.write(head.as_bytes())?;
        let interim = c.status_head()?;
        if interim.0 != 100 {
            return Err(io::Error::other(format!(
                "expected 100 Continue before the upload body, got {}",
                interim.0
            )));
        }
        let body: Vec<u8> = (0..UPLOAD_BYTES).map(|i| b'a' + (i % 26) as u8).collect();
        c.write(&body)?;
        let status = c.response(false)?;
        sent.push(Sent {
            method: "POST".into(),
            target: "/mix/upload".into(),
            status,
            body_len: UPLOAD_BYTES,
        });
        drop(c);

        // 4. The server closes this one.
        let mut c = Conn::open(addr)?;
        c.write(plain("GET", "/mix/bye", "Connection: close\r\n").as_bytes())?;
        let status = c.response(false)?;
        sent.push(Sent {
            method: "GET".into(),
            target: "/mix/bye".into(),
            status,
            body_len: 0,
        });
        Ok(sent)
    }

    /// Sends `n` requests `GET /mix/load/{i}` (i from 0) over `connections` keep-alive
    /// connections (round robin, one outstanding request per connection), stopping early when
    /// `stop` returns true; returns how many got a response. For "stop in the middle of
    /// traffic" tests: every URI is unique, so a recording can be checked against nginx's log.
    pub fn load(
        addr: SocketAddr,
        n: usize,
        connections: usize,
        stop: impl Fn() -> bool,
    ) -> io::Result<usize> {
        let host = addr.to_string();
        let mut conns = (0..connections.max(1))
            .map(|_| Conn::open(addr))
            .collect::<io::Result<Vec<_>>>()?;
        let mut done = 0;
        let k = conns.len();
        for i in 0..n {
            if stop() {
                break;
            }
            let Some(c) = conns.get_mut(i % k) else {
                break;
            };
            c.write(format!("GET /mix/load/{i} HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes())?;
            c.response(false)?;
            done += 1;
        }
        Ok(done)
    }
}

impl Drop for Mix {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Replaces the values of query parameters named like a secret (`token`, `password`) with `*`,
/// so a target as sent (or as nginx logged it) compares with its masked recording.
pub fn normalize_target(target: &str) -> String {
    let Some((path, query)) = target.split_once('?') else {
        return target.to_string();
    };
    let parts: Vec<String> = query
        .split('&')
        .map(|kv| match kv.split_once('=') {
            Some((k, _)) if matches!(k, "token" | "password") => format!("{k}=*"),
            _ => kv.to_string(),
        })
        .collect();
    format!("{path}?{}", parts.join("&"))
}

/// One client connection with a buffered reader over it.
struct Conn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Conn {
    fn open(addr: SocketAddr) -> io::Result<Conn> {
        let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        s.set_nodelay(true)?;
        Ok(Conn {
            writer: s.try_clone()?,
            reader: BufReader::new(s),
        })
    }

    fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.writer.write_all(bytes)
    }

    /// Reads a status line and headers: (status, content-length, chunked).
    fn status_head(&mut self) -> io::Result<(u16, Option<usize>, bool)> {
        let mut line = String::new();
        self.reader.read_line(&mut line)?;
        let status = line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| io::Error::other(format!("not a status line: {line:?}")))?;
        let (mut len, mut chunked) = (None, false);
        loop {
            let mut h = String::new();
            if self.reader.read_line(&mut h)? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((name, value)) = h.split_once(':') {
                let value = value.trim();
                if name.eq_ignore_ascii_case("content-length") {
                    len = value.parse().ok();
                } else if name.eq_ignore_ascii_case("transfer-encoding") {
                    chunked = value.to_ascii_lowercase().contains("chunked");
                }
            }
        }
        Ok((status, len, chunked))
    }

    /// Reads one final response (skipping interim 1xx) and returns its status.
    fn response(&mut self, head_request: bool) -> io::Result<u16> {
        loop {
            let (status, len, chunked) = self.status_head()?;
            if (100..200).contains(&status) {
                continue;
            }
            if head_request || status == 204 || status == 304 {
                return Ok(status);
            }
            if chunked {
                loop {
                    let mut size = String::new();
                    self.reader.read_line(&mut size)?;
                    let n = usize::from_str_radix(size.trim().split(';').next().unwrap_or(""), 16)
                        .map_err(|_| io::Error::other(format!("bad chunk size {size:?}")))?;
                    if n == 0 {
                        // Trailers until the empty line.
                        loop {
                            let mut t = String::new();
                            if self.reader.read_line(&mut t)? == 0 || t.trim().is_empty() {
                                break;
                            }
                        }
                        break;
                    }
                    io::copy(&mut (&mut self.reader).take(n as u64 + 2), &mut io::sink())?;
                }
            } else if let Some(n) = len {
                io::copy(&mut (&mut self.reader).take(n as u64), &mut io::sink())?;
            } else {
                io::copy(&mut self.reader, &mut io::sink())?;
            }
            return Ok(status);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_normalize() {
        assert_eq!(
            normalize_target("/mix/b?page=2&token=abc"),
            "/mix/b?page=2&token=*"
        );
        assert_eq!(
            normalize_target("/mix/b?page=2&token=mask-0123"),
            "/mix/b?page=2&token=*"
        );
        assert_eq!(normalize_target("/mix/a"), "/mix/a");
    }

    #[test]
    fn mix_against_nginx() {
        if !crate::nginx::require_nginx() {
            eprintln!("skipping: {}", crate::nginx::NGINX_MISSING);
            return;
        }
        let mix = Mix::new().unwrap();
        let nginx = crate::nginx::Nginx::start(&mix.locations()).unwrap();
        let sent = mix.send(nginx.addr()).unwrap();
        assert_eq!(sent.len(), REQUESTS);
        let statuses: Vec<u16> = sent.iter().map(|s| s.status).collect();
        assert_eq!(
            statuses,
            [200, 200, 200, 200, 200, 404, 200, 200, 200, 201, 200]
        );
        let log = nginx.wait_for_access_log_lines(REQUESTS, Duration::from_secs(5));
        assert_eq!(log.len(), REQUESTS, "{log:?}");
        let n = Mix::load(nginx.addr(), 20, 3, || false).unwrap();
        assert_eq!(n, 20);
    }
}
