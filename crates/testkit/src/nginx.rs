//! Runs the real nginx binary as an independent witness.
//!
//! [`Nginx::start`] writes a fresh prefix directory under
//! [`std::env::temp_dir`] with an `nginx.conf` (single process, no daemon,
//! every path inside the prefix, so it works as root and as non-root),
//! starts `nginx -p PREFIX -c nginx.conf -e PREFIX/error.log`, waits until
//! its port accepts connections, and kills it (and removes the prefix) on
//! drop.
//!
//! The access log is unbuffered and has one line per request:
//! `$request_method $request_uri $status $http_authorization`
//! (nginx writes `-` for an absent `Authorization` header; note the header
//! value itself may contain spaces, e.g. `Bearer abc`).
//!
//! Tests should start with [`require_nginx`]:
//!
//! ```no_run
//! if !mynah_testkit::nginx::require_nginx() {
//!     eprintln!("skipping: nginx is not installed");
//!     return;
//! }
//! let nginx = mynah_testkit::nginx::Nginx::start_default().unwrap();
//! ```

use std::fs;
use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Message carried by [`NginxMissing`].
pub const NGINX_MISSING: &str =
    "nginx is not installed: apt-get install nginx-light (CI installs it)";

/// Environment variable that turns a missing nginx into a test failure.
pub const REQUIRE_ENV: &str = "MYNAH_REQUIRE_NGINX";

/// nginx is not installed (neither `/usr/sbin/nginx` nor `nginx` on `PATH`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NginxMissing {
    /// [`NGINX_MISSING`].
    pub message: String,
}

impl std::fmt::Display for NginxMissing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for NginxMissing {}

fn missing() -> NginxMissing {
    NginxMissing {
        message: NGINX_MISSING.to_owned(),
    }
}

/// Path of the nginx binary: `/usr/sbin/nginx` if it exists, else `nginx`
/// found on `PATH`.
pub fn nginx_binary() -> Option<PathBuf> {
    let default = Path::new("/usr/sbin/nginx");
    if default.is_file() {
        return Some(default.to_path_buf());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("nginx"))
        .find(|p| p.is_file())
}

/// Whether nginx-based tests can run.
///
/// Returns true if nginx is installed. If it is missing: panics with
/// [`NGINX_MISSING`] when the environment variable `MYNAH_REQUIRE_NGINX` is
/// `1` (CI sets it), otherwise returns false so the caller can skip (with an
/// `eprintln!`).
pub fn require_nginx() -> bool {
    if nginx_binary().is_some() {
        return true;
    }
    if std::env::var(REQUIRE_ENV).is_ok_and(|v| v.trim() == "1") {
        panic!("{NGINX_MISSING} ({REQUIRE_ENV}=1)");
    }
    false
}

/// Locations of [`Nginx::start_default`]: `/`, `/a`, `/b`, `/c` answer 200
/// with small bodies (`ok`, `a`, `b`, `c` plus a newline) and `/status/500`
/// answers 500.
pub const DEFAULT_LOCATIONS: &str = r#"
        location = / { return 200 "ok\n"; }
        location = /a { return 200 "a\n"; }
        location = /b { return 200 "b\n"; }
        location = /c { return 200 "c\n"; }
        location = /status/500 { return 500 "error\n"; }
"#;

/// A running nginx; killed (and its prefix removed) on drop.
#[derive(Debug)]
pub struct Nginx {
    child: Child,
    prefix: PathBuf,
    port: u16,
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

fn unique_prefix() -> PathBuf {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    std::env::temp_dir().join(format!(
        "mynah-nginx-{}-{n}-{nanos:08x}",
        std::process::id()
    ))
}

fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn config(prefix: &Path, port: u16, locations: &str) -> String {
    let p = prefix.display();
    format!(
        r#"# written by mynah-testkit
daemon off;
master_process off;
worker_processes 1;
pid {p}/nginx.pid;
error_log {p}/error.log warn;

events {{
    worker_connections 4096;
}}

http {{
    default_type text/plain;
    client_body_temp_path {p}/client_body_temp;
    proxy_temp_path {p}/proxy_temp;
    fastcgi_temp_path {p}/fastcgi_temp;
    uwsgi_temp_path {p}/uwsgi_temp;
    scgi_temp_path {p}/scgi_temp;
    log_format mynah '$request_method $request_uri $status $http_authorization';
    access_log {p}/access.log mynah;
    keepalive_requests 1000000;
    keepalive_timeout 75s;

    server {{
        listen 127.0.0.1:{port};
        server_name localhost;
{locations}
    }}
}}
"#
    )
}

impl Nginx {
    /// Starts nginx with `locations` as the body of its `server` block
    /// (e.g. `location / { return 200 "ok\n"; }`).
    ///
    /// Returns [`NginxMissing`] if nginx is not installed. Panics (with the
    /// content of nginx's error log) if nginx is installed but does not come
    /// up within 10 s, e.g. because `locations` is invalid: that is a bug in
    /// the test, not a reason to skip it.
    pub fn start(locations: &str) -> Result<Nginx, NginxMissing> {
        let bin = nginx_binary().ok_or_else(missing)?;
        let mut last_error = String::new();
        // The free port may be taken between probing and nginx binding it:
        // retry a few times with a new port.
        for _attempt in 0..5 {
            let prefix = unique_prefix();
            let port = match free_port() {
                Ok(p) => p,
                Err(e) => panic!("mynah-testkit nginx: no free port: {e}"),
            };
            if let Err(e) = fs::create_dir_all(prefix.join("logs")) {
                panic!(
                    "mynah-testkit nginx: cannot create {}: {e}",
                    prefix.display()
                );
            }
            if let Err(e) = fs::write(prefix.join("nginx.conf"), config(&prefix, port, locations)) {
                panic!("mynah-testkit nginx: cannot write nginx.conf: {e}");
            }
            let child = Command::new(&bin)
                .arg("-p")
                .arg(&prefix)
                .arg("-c")
                .arg("nginx.conf")
                .arg("-e")
                .arg(prefix.join("error.log"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn();
            let child = match child {
                Ok(c) => c,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(missing()),
                Err(e) => panic!("mynah-testkit nginx: cannot run {}: {e}", bin.display()),
            };
            let mut nginx = Nginx {
                child,
                prefix,
                port,
            };
            match nginx.wait_ready(Duration::from_secs(10)) {
                Ok(()) => return Ok(nginx),
                Err(e) => last_error = e,
            }
            // `nginx` is dropped here: killed and its prefix removed.
        }
        panic!("mynah-testkit nginx did not start:\n{last_error}");
    }

    /// Starts nginx with [`DEFAULT_LOCATIONS`].
    pub fn start_default() -> Result<Nginx, NginxMissing> {
        Nginx::start(DEFAULT_LOCATIONS)
    }

    fn wait_ready(&mut self, timeout: Duration) -> Result<(), String> {
        let addr = self.addr();
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                let mut stderr = String::new();
                if let Some(mut e) = self.child.stderr.take() {
                    let _ = e.read_to_string(&mut stderr);
                }
                return Err(format!(
                    "nginx exited with {status}\nstderr: {stderr}\nerror.log: {}",
                    self.error_log()
                ));
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "nginx did not accept on {addr} within {timeout:?}\nerror.log: {}",
                    self.error_log()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The port nginx listens on (on 127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:<port>`.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// `http://127.0.0.1:<port>` (no trailing slash).
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The prefix directory (config, logs, temp paths).
    pub fn prefix(&self) -> &Path {
        &self.prefix
    }

    /// The access log, one entry per request:
    /// `METHOD URI STATUS AUTHORIZATION` (`-` when no Authorization header).
    ///
    /// nginx writes a line when the request completes, which may be just
    /// after the client has read the response; use
    /// [`Nginx::wait_for_access_log_lines`] to wait for an expected count.
    pub fn access_log_lines(&self) -> Vec<String> {
        fs::read_to_string(self.prefix.join("access.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// Polls the access log until it has at least `n` lines or `timeout`
    /// passed; returns the lines read last.
    pub fn wait_for_access_log_lines(&self, n: usize, timeout: Duration) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let lines = self.access_log_lines();
            if lines.len() >= n || Instant::now() >= deadline {
                return lines;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The content of nginx's error log (for diagnostics).
    pub fn error_log(&self) -> String {
        fs::read_to_string(self.prefix.join("error.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = fs::remove_dir_all(&self.prefix);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_keeps_everything_in_the_prefix() {
        let c = config(Path::new("/tmp/x"), 1234, "location / { return 200; }");
        assert!(c.contains("listen 127.0.0.1:1234;"));
        assert!(c.contains("access_log /tmp/x/access.log mynah;"));
        assert!(c.contains("daemon off;"));
        assert!(!c.contains("/var/"));
    }
}
