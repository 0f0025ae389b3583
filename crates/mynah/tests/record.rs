//! `mynah record` on loopback, with nginx as the witness of what was served.
//!
//! Live capture needs root or CAP_NET_RAW: without it these tests say so and skip, unless
//! `MYNAH_REQUIRE_CAPTURE=1` (CI, which runs as root), where they fail. They also need nginx
//! (`mynah_testkit::nginx::require_nginx`).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use mynah_testkit::mix::{self, Mix};
use mynah_testkit::nginx::{self, Nginx};
use mynah_traffic::{Exchange, ReadOptions};

const REQUIRE_ENV: &str = "MYNAH_REQUIRE_CAPTURE";

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("mynah-record-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A running `mynah record`; its stderr is collected by a thread.
struct Recorder {
    child: Child,
    stderr: mpsc::Receiver<String>,
    lines: Vec<String>,
}

enum Started {
    Ready(Recorder),
    /// No capture privilege here (the message mynah printed).
    NoPermission(String),
}

fn start_record(port: u16, out: &Path, extra: &[&str]) -> Started {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mynah"))
        .args([
            "record",
            "--interface",
            "lo",
            "--port",
            &port.to_string(),
            "-o",
        ])
        .arg(out)
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run mynah record");
    let (tx, rx) = mpsc::channel();
    let err = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    loop {
        match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(line) => {
                let ready = line.contains("mynah: capturing on lo");
                lines.push(line);
                if ready {
                    return Started::Ready(Recorder {
                        child,
                        stderr: rx,
                        lines,
                    });
                }
            }
            Err(_) => {
                let _ = child.kill();
                let status = child.wait().unwrap();
                let text = lines.join("\n");
                if text.contains("no permission to capture") {
                    return Started::NoPermission(text);
                }
                panic!("mynah record did not start ({status}):\n{text}");
            }
        }
    }
}

impl Recorder {
    /// Sends SIGINT and waits for a clean exit; returns everything printed on stderr.
    fn interrupt(self) -> String {
        // SAFETY: plain kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGINT);
        }
        self.wait_ok()
    }

    fn wait_ok(mut self) -> String {
        let status = self.child.wait().unwrap();
        while let Ok(l) = self.stderr.recv_timeout(Duration::from_secs(5)) {
            self.lines.push(l);
        }
        let text = self.lines.join("\n");
        assert!(status.success(), "mynah record failed ({status}):\n{text}");
        text
    }
}

/// Starts the recorder, or says why the test cannot run (`None`: skip).
fn recorder_or_skip(port: u16, out: &Path, extra: &[&str]) -> Option<Recorder> {
    match start_record(port, out, extra) {
        Started::Ready(r) => Some(r),
        Started::NoPermission(msg) => {
            if std::env::var(REQUIRE_ENV).is_ok_and(|v| v.trim() == "1") {
                panic!("live capture is not permitted here but {REQUIRE_ENV}=1:\n{msg}");
            }
            eprintln!("skipping: live capture needs root or CAP_NET_RAW ({REQUIRE_ENV}=1 makes this a failure)");
            None
        }
    }
}

/// Every exchange of every file, in order; a file that does not read whole fails the test.
fn read_all(files: &[PathBuf]) -> Vec<Exchange> {
    let mut v = Vec::new();
    for f in files {
        let r = mynah_traffic::open(f, None, &ReadOptions::default())
            .unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        for x in r {
            v.push(x.unwrap_or_else(|e| panic!("{}: {e}", f.display())));
        }
    }
    v
}

/// (method, normalized target, status) of nginx's access log lines.
fn logged(nginx: &Nginx, n: usize) -> Vec<(String, String, u16)> {
    let lines = nginx.wait_for_access_log_lines(n, Duration::from_secs(10));
    lines
        .iter()
        .map(|l| {
            let mut it = l.split(' ');
            let method = it.next().unwrap_or_default().to_string();
            let uri = it.next().unwrap_or_default();
            let status = it.next().and_then(|s| s.parse().ok()).unwrap_or(0);
            (method, mix::normalize_target(uri), status)
        })
        .collect()
}

fn multiset<T: Ord + Clone>(v: &[T]) -> BTreeMap<T, usize> {
    let mut m = BTreeMap::new();
    for x in v {
        *m.entry(x.clone()).or_default() += 1;
    }
    m
}

/// Records the mix into `name` (with `extra` flags) and checks it against nginx's log and the
/// client's view; returns the files written.
fn record_mix(name: &str, extra: &[&str]) -> Option<Vec<PathBuf>> {
    if !nginx::require_nginx() {
        eprintln!("skipping: {}", nginx::NGINX_MISSING);
        return None;
    }
    let dir = temp_dir(name.trim_start_matches("out."));
    let out = dir.join(name);
    let mix = Mix::new().unwrap();
    let nginx = Nginx::start(&mix.locations()).unwrap();
    let rec = recorder_or_skip(nginx.port(), &out, extra)?;
    let sent = mix.send(nginx.addr()).unwrap();
    let log = logged(&nginx, sent.len());
    let stderr = rec.interrupt();

    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort_by_key(|p| {
        // out_10 after out_9.
        let s = p.file_name().unwrap().to_string_lossy().into_owned();
        let digits: String = s.chars().filter(char::is_ascii_digit).collect();
        (digits.len(), s)
    });
    let exchanges = read_all(&files);

    // Exactly what nginx logged, each with its response and the same status.
    let recorded: Vec<(String, String, u16)> = exchanges
        .iter()
        .map(|e| {
            assert!(
                e.incomplete.is_none(),
                "{} {} is incomplete ({:?}):\n{stderr}",
                e.request.method,
                e.request.target,
                e.incomplete
            );
            let status = e.response.as_ref().map_or(0, |r| r.status);
            (
                e.request.method.clone(),
                mix::normalize_target(&e.request.target),
                status,
            )
        })
        .collect();
    assert_eq!(log.len(), sent.len(), "nginx logged {log:?}");
    assert_eq!(
        multiset(&recorded),
        multiset(&log),
        "recorded vs nginx's log\n{stderr}"
    );
    // The client's view agrees.
    let client: Vec<(String, String, u16)> = sent
        .iter()
        .map(|s| (s.method.clone(), mix::normalize_target(&s.target), s.status))
        .collect();
    assert_eq!(multiset(&recorded), multiset(&client));

    // The hard cases came through whole.
    let find = |m: &str, t: &str| {
        exchanges
            .iter()
            .find(|e| e.request.method == m && e.request.target == t)
            .unwrap_or_else(|| panic!("{m} {t} not recorded"))
    };
    let upload = find("POST", "/mix/upload");
    assert_eq!(upload.request.body.len(), mix::UPLOAD_BYTES);
    assert_eq!(
        upload.interim.first().map(|r| r.status),
        Some(100),
        "the 100 Continue is kept"
    );
    let gz = exchanges
        .iter()
        .find(|e| {
            e.request.method == "GET"
                && e.request.target == "/mix/static/page.txt"
                && e.response.as_ref().is_some_and(|r| {
                    r.headers
                        .iter()
                        .any(|h| h.name.eq_ignore_ascii_case("content-encoding"))
                })
        })
        .expect("the gzip response");
    let gz_resp = gz.response.as_ref().unwrap();
    assert!(gz_resp
        .headers
        .iter()
        .any(|h| h.name.eq_ignore_ascii_case("transfer-encoding")
            && h.value.eq_ignore_ascii_case(b"chunked")));
    assert!(!gz_resp.body.is_empty());
    let head = find("HEAD", "/mix/static/page.txt");
    assert!(head.response.as_ref().is_some_and(|r| r.body.is_empty()));
    let pipelined: Vec<_> = exchanges
        .iter()
        .filter(|e| e.request.target.starts_with("/mix/p/"))
        .collect();
    assert_eq!(pipelined.len(), 3);
    assert!(pipelined
        .windows(2)
        .all(|w| w[0].connection.id == w[1].connection.id || w[0].connection.id.is_none()));

    // No seeded secret reaches the disk, in any file, in any form the file holds.
    for f in &files {
        let bytes = std::fs::read(f).unwrap();
        let text = if f.extension().is_some_and(|e| e == "gz") {
            let mut s = Vec::new();
            std::io::Read::read_to_end(&mut flate2::read::MultiGzDecoder::new(&bytes[..]), &mut s)
                .unwrap();
            s
        } else {
            bytes
        };
        for secret in mix::SECRETS {
            assert!(
                !text.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{secret} found in {}",
                f.display()
            );
        }
    }
    assert!(stderr.contains("0 dropped by the kernel"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
    Some(files)
}

#[test]
fn records_exactly_what_nginx_served_gor() {
    record_mix("out.gor", &[]);
}

#[test]
fn records_exactly_what_nginx_served_har() {
    record_mix("out.har", &[]);
}

#[test]
fn rotates_into_several_valid_files() {
    let Some(files) = record_mix("out.gor.gz", &["--rotate-size", "20KB"]) else {
        return;
    };
    assert!(files.len() >= 2, "{files:?}");
    for (i, f) in files.iter().enumerate() {
        assert_eq!(
            f.file_name().unwrap().to_string_lossy(),
            format!("out_{i}.gor.gz")
        );
    }
}

#[test]
fn sigint_mid_traffic_leaves_a_valid_file_of_served_requests() {
    if !nginx::require_nginx() {
        eprintln!("skipping: {}", nginx::NGINX_MISSING);
        return;
    }
    let dir = temp_dir("sigint");
    let out = dir.join("cut.har");
    let mix = Mix::new().unwrap();
    let nginx = Nginx::start(&mix.locations()).unwrap();
    let Some(rec) = recorder_or_skip(nginx.port(), &out, &[]) else {
        return;
    };
    let addr = nginx.addr();
    let stop = Arc::new(AtomicBool::new(false));
    let progress = Arc::new(AtomicUsize::new(0));
    let load = {
        let stop = stop.clone();
        let progress = progress.clone();
        std::thread::spawn(move || {
            // Bounded: 2000 requests over 4 connections, or until told to stop.
            Mix::load(addr, 2000, 4, || {
                progress.fetch_add(1, Ordering::Relaxed);
                stop.load(Ordering::Relaxed)
            })
        })
    };
    // Interrupt in the middle: after a few hundred requests (or 10 s, whichever comes first).
    for _ in 0..1000 {
        if progress.load(Ordering::Relaxed) >= 300 {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let stderr = rec.interrupt();
    stop.store(true, Ordering::Relaxed);
    let sent = load.join().unwrap().unwrap();
    assert!(sent > 0);

    let exchanges = read_all(std::slice::from_ref(&out));
    let served: std::collections::BTreeSet<String> = nginx
        .wait_for_access_log_lines(sent, Duration::from_secs(10))
        .iter()
        .filter_map(|l| l.split(' ').nth(1).map(str::to_string))
        .collect();
    let complete: Vec<&Exchange> = exchanges
        .iter()
        .filter(|e| e.incomplete.is_none())
        .collect();
    assert!(
        complete.len() >= 100,
        "only {} complete exchanges recorded of {sent} sent:\n{stderr}",
        complete.len()
    );
    for e in &complete {
        assert!(
            served.contains(&e.request.target),
            "{} recorded complete but nginx never served it",
            e.request.target
        );
        assert_eq!(e.response.as_ref().map(|r| r.status), Some(200));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn without_capture_privilege_says_what_is_missing() {
    // Only meaningful where capture is allowed and setpriv can take the capability away.
    let setpriv = Path::new("/usr/bin/setpriv");
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 || !setpriv.is_file() {
        eprintln!("skipping: needs root and /usr/bin/setpriv to drop CAP_NET_RAW");
        return;
    }
    let dir = temp_dir("noperm");
    let out = Command::new(setpriv)
        .args([
            "--bounding-set",
            "-net_raw,-net_admin",
            "--inh-caps",
            "-net_raw,-net_admin",
            "--",
        ])
        .arg(env!("CARGO_BIN_EXE_mynah"))
        .args(["record", "--interface", "lo", "--port", "9", "-o"])
        .arg(dir.join("x.gor"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("CAP_NET_RAW"), "{err}");
    assert!(
        err.contains("setcap cap_net_raw,cap_net_admin=eip"),
        "{err}"
    );
    assert!(err.contains("mynah proxy"), "{err}");
    assert!(!dir.join("x.gor").exists(), "no empty file is left behind");

    let out = Command::new(env!("CARGO_BIN_EXE_mynah"))
        .args(["record", "--interface", "no-such-if0", "--port", "9", "-o"])
        .arg(dir.join("y.gor"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("no network interface named \"no-such-if0\""),
        "{err}"
    );
    assert!(err.contains("lo"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
