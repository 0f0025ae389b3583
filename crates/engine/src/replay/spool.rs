//! The recording written once, before the replay starts, as requests ready to send.
//!
//! Reading a recording costs several times what sending its requests does: the `.gor` reader's
//! pairing window, the HTTP parser, a dozen strings per exchange, the masking pipeline. A replay
//! reads the whole recording before it starts anyway (the safety scan), so that pass can also
//! write each request as the target will get it (masked, serialized, Host and prefix applied)
//! into a temporary file. Each replay pass then reads bytes back instead of parsing, and the
//! generator's CPU goes to sending: at `--max-speed` that is the difference between keeping up
//! with wrk and not. tcpreplay does the same with its pre-processed cache files.
//!
//! - Memory stays bounded: the file is read as a stream. The disk holds about the recording's
//!   size, at most [`MAX_BYTES`] and half the free space of the temporary directory (which may
//!   be memory: a tmpfs `/tmp`); the file is unlinked as soon as it is created, so it is gone
//!   when the replay ends however it ends, and no other user can open it (mode 0600).
//! - It serves replays that need nothing else of an exchange: no response comparison and, with
//!   session mapping on, no recorded response that may issue a session value (mapping rewrites
//!   the parsed request when it goes out). Otherwise, or when the file cannot be written, the
//!   replay reads the recording on each pass ([`super::Recording::Stream`]).
//!
//! The record format is private to one process run, so it is written by hand (26-byte header,
//! little-endian): kind (0 send, else a skip reason), flags (connection, HEAD, idempotent),
//! recorded start (ns), connection id, then the endpoint key (`METHOD path?query`) and the
//! request bytes.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::PathBuf;

use mynah_traffic::Exchange;

use super::wire::{self, Destination, UNSENDABLE};
use super::{is_head, is_idempotent, may_issue_session};
use crate::plan::BaseUrl;

/// The largest spool written; a bigger recording is read on each pass instead.
pub const MAX_BYTES: u64 = 4 << 30;
const HEADER: usize = 26;
const HAS_CONN: u8 = 1;
const HEAD: u8 = 2;
const IDEMPOTENT: u8 = 4;

/// Writes the spool during the scan: one [`push`](SpoolWriter::push) per exchange the pipeline
/// kept, in recording order.
pub struct SpoolWriter {
    out: BufWriter<File>,
    dest: Destination,
    session_mapping: bool,
    bytes: u64,
    /// The most bytes written.
    limit: u64,
    records: u64,
    /// Why the spool cannot be used, once known (nothing more is written).
    unusable: Option<String>,
    wire: Vec<u8>,
}

/// A finished spool, handed to [`super::replay`] as [`super::Recording::Spooled`].
pub struct Spool {
    file: File,
    pub(crate) dest: Destination,
    records: u64,
    bytes: u64,
}

impl std::fmt::Debug for Spool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spool")
            .field("records", &self.records)
            .field("bytes", &self.bytes)
            .finish()
    }
}

impl SpoolWriter {
    /// A writer for requests to `target` (`keep_host` and `session_mapping` as the replay will
    /// use them), in the system's temporary directory.
    pub fn new(
        target: &BaseUrl,
        keep_host: bool,
        session_mapping: bool,
    ) -> Result<SpoolWriter, String> {
        SpoolWriter::new_in(&std::env::temp_dir(), target, keep_host, session_mapping)
    }

    /// [`new`](SpoolWriter::new) in `dir`.
    pub fn new_in(
        dir: &std::path::Path,
        target: &BaseUrl,
        keep_host: bool,
        session_mapping: bool,
    ) -> Result<SpoolWriter, String> {
        let dest = Destination::of(target, keep_host)?;
        let file = anonymous_file(dir)
            .map_err(|e| format!("cannot create a temporary file in {}: {e}", dir.display()))?;
        let limit = free_space(&file).map_or(MAX_BYTES, |free| (free / 2).min(MAX_BYTES));
        Ok(SpoolWriter {
            out: BufWriter::with_capacity(1 << 20, file),
            dest,
            session_mapping,
            bytes: 0,
            limit,
            records: 0,
            unusable: None,
            wire: Vec::new(),
        })
    }

    /// Adds the next exchange of the recording.
    pub fn push(&mut self, exchange: &Exchange) {
        if self.unusable.is_some() {
            return;
        }
        if let Err(why) = self.write(exchange) {
            self.unusable = Some(why);
        }
    }

    fn write(&mut self, exchange: &Exchange) -> Result<(), String> {
        let request = &exchange.request;
        let mut header = [0u8; HEADER];
        let mut flags = 0;
        if let Some(id) = exchange.connection.id {
            flags |= HAS_CONN;
            header[10..18].copy_from_slice(&id.to_le_bytes());
        }
        header[2..10].copy_from_slice(&exchange.timing.request_start.to_le_bytes());
        self.wire.clear();
        let mut key_len = 0;
        match wire::unsendable(request) {
            Some(reason) => {
                // 1-based: 0 means "send".
                let code = UNSENDABLE.iter().position(|r| *r == reason).unwrap_or(0);
                header[0] = code as u8 + 1;
            }
            None => {
                if self.session_mapping && may_issue_session(exchange.response.as_ref()) {
                    return Err("the recording has responses that may issue session values".into());
                }
                if is_head(&request.method) {
                    flags |= HEAD;
                }
                if is_idempotent(&request.method) {
                    flags |= IDEMPOTENT;
                }
                // The endpoint key first, then the request, in one buffer.
                for b in request.method.bytes() {
                    self.wire.push(b.to_ascii_uppercase());
                }
                self.wire.push(b' ');
                self.wire
                    .extend_from_slice(request.path_and_query().as_bytes());
                key_len = self.wire.len();
                wire::serialize(request, &self.dest, &mut self.wire);
            }
        }
        header[1] = flags;
        let wire_len = self.wire.len() - key_len;
        let too_big = || "a request is larger than 4 GiB".to_string();
        header[18..22]
            .copy_from_slice(&u32::try_from(key_len).map_err(|_| too_big())?.to_le_bytes());
        header[22..26].copy_from_slice(
            &u32::try_from(wire_len)
                .map_err(|_| too_big())?
                .to_le_bytes(),
        );
        self.bytes += (HEADER + self.wire.len()) as u64;
        if self.bytes > self.limit {
            return Err(format!(
                "the requests take more than {} MiB, the spool's limit in the temporary directory",
                self.limit >> 20
            ));
        }
        self.out
            .write_all(&header)
            .and_then(|()| self.out.write_all(&self.wire))
            .map_err(|e| format!("cannot write the temporary file: {e}"))?;
        self.records += 1;
        Ok(())
    }

    /// The spool, or why the replay must read the recording on each pass instead.
    pub fn finish(self) -> Result<Spool, String> {
        if let Some(why) = self.unusable {
            return Err(why);
        }
        let file = self
            .out
            .into_inner()
            .map_err(|e| format!("cannot write the temporary file: {}", e.error()))?;
        Ok(Spool {
            file,
            dest: self.dest,
            records: self.records,
            bytes: self.bytes,
        })
    }
}

impl Spool {
    /// Exchanges written (skipped ones included).
    pub fn records(&self) -> u64 {
        self.records
    }

    /// Bytes on disk.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// A reader from the first record.
    pub(crate) fn read(&self) -> io::Result<SpoolReader> {
        let mut file = self.file.try_clone()?;
        file.seek(SeekFrom::Start(0))?;
        Ok(SpoolReader {
            input: BufReader::with_capacity(1 << 20, file),
            left: self.records,
            bytes: self.bytes,
            key: Vec::new(),
        })
    }
}

/// One spooled exchange.
pub(crate) enum Spooled<'a> {
    Send {
        start_ns: i64,
        conn: Option<u64>,
        /// `METHOD path?query`, method in upper case.
        key: &'a [u8],
        bytes: Vec<u8>,
        head: bool,
        idempotent: bool,
    },
    Skip {
        start_ns: i64,
        conn: Option<u64>,
        reason: &'static str,
    },
}

/// Reads one pass of a spool.
pub(crate) struct SpoolReader {
    input: BufReader<File>,
    left: u64,
    /// The spool's size: no record is larger.
    bytes: u64,
    key: Vec<u8>,
}

impl SpoolReader {
    /// The next exchange, or `None` after the last.
    pub(crate) fn next(&mut self) -> io::Result<Option<Spooled<'_>>> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        let mut header = [0u8; HEADER];
        self.input.read_exact(&mut header)?;
        let le64 = |r: std::ops::Range<usize>| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&header[r]);
            b
        };
        let le32 = |r: std::ops::Range<usize>| {
            let mut b = [0u8; 4];
            b.copy_from_slice(&header[r]);
            u32::from_le_bytes(b) as usize
        };
        let flags = header[1];
        let start_ns = i64::from_le_bytes(le64(2..10));
        let conn = (flags & HAS_CONN != 0).then(|| u64::from_le_bytes(le64(10..18)));
        let (key_len, wire_len) = (le32(18..22), le32(22..26));
        if key_len as u64 + wire_len as u64 > self.bytes {
            // Only this process writes the file: the disk gave back something else.
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "a record is longer than the file",
            ));
        }
        if header[0] != 0 {
            let reason = UNSENDABLE
                .get(header[0] as usize - 1)
                .copied()
                .unwrap_or("unsendable");
            return Ok(Some(Spooled::Skip {
                start_ns,
                conn,
                reason,
            }));
        }
        self.key.resize(key_len, 0);
        self.input.read_exact(&mut self.key)?;
        let mut bytes = vec![0u8; wire_len];
        self.input.read_exact(&mut bytes)?;
        Ok(Some(Spooled::Send {
            start_ns,
            conn,
            key: &self.key,
            bytes,
            head: flags & HEAD != 0,
            idempotent: flags & IDEMPOTENT != 0,
        }))
    }
}

/// Bytes free for unprivileged users on the file system of `file`, where the OS says.
fn free_space(file: &File) -> Option<u64> {
    #[cfg(unix)]
    {
        use std::os::fd::AsRawFd;
        let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
        // SAFETY: fstatvfs fills the struct for a valid open descriptor and returns 0, or
        // returns -1 and leaves it alone (then it is not read).
        let rc = unsafe { libc::fstatvfs(file.as_raw_fd(), st.as_mut_ptr()) };
        if rc != 0 {
            return None;
        }
        // SAFETY: rc == 0, so fstatvfs initialized it.
        let st = unsafe { st.assume_init() };
        // The fields are narrower than u64 on some targets.
        #[allow(clippy::useless_conversion)]
        let free = u64::from(st.f_bavail).saturating_mul(u64::from(st.f_frsize));
        Some(free)
    }
    #[cfg(not(unix))]
    {
        let _ = file;
        None
    }
}

/// A new file in `dir` that only this process can reach: created exclusively with mode 0600,
/// then unlinked (Unix keeps it while it is open).
fn anonymous_file(dir: &std::path::Path) -> io::Result<File> {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let mut options = std::fs::OpenOptions::new();
    options.read(true).write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path: PathBuf = dir.join(format!(
            "mynah-replay-{}-{n}-{}.spool",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos())
        ));
        match options.open(&path) {
            Ok(file) => {
                // Unix: the name goes now; elsewhere it stays until removed by hand.
                let _ = std::fs::remove_file(&path);
                return Ok(file);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replay::test_util::resp;
    use mynah_traffic::{Headers, Request};

    fn exchange(method: &str, target: &str, conn: Option<u64>, at: i64) -> Exchange {
        let mut headers = Headers::new();
        headers.push("Host", "shop.example");
        let mut e = Exchange::new(
            Request {
                method: method.into(),
                target: target.into(),
                headers,
                ..Default::default()
            },
            at,
        );
        e.connection.id = conn;
        e
    }

    fn target() -> BaseUrl {
        BaseUrl::parse("http://127.0.0.1:9/base").unwrap()
    }

    fn read_all(spool: &Spool) -> Vec<String> {
        let mut r = spool.read().unwrap();
        let mut out = Vec::new();
        while let Some(s) = r.next().unwrap() {
            out.push(match s {
                Spooled::Send {
                    start_ns,
                    conn,
                    key,
                    bytes,
                    head,
                    idempotent,
                } => format!(
                    "{start_ns} {conn:?} {} {head} {idempotent} {}",
                    String::from_utf8_lossy(key),
                    String::from_utf8_lossy(&bytes)
                ),
                Spooled::Skip {
                    start_ns,
                    conn,
                    reason,
                } => format!("{start_ns} {conn:?} skip {reason}"),
            });
        }
        out
    }

    #[test]
    fn requests_come_back_as_the_target_gets_them_on_every_pass() {
        let dir = std::env::temp_dir();
        let mut w = SpoolWriter::new_in(&dir, &target(), false, true).unwrap();
        w.push(&exchange("get", "/a?x=1", Some(7), 10));
        w.push(&exchange("CONNECT", "h:443", None, 20));
        w.push(&exchange("HEAD", "/b", None, 30));
        let spool = w.finish().unwrap();
        assert_eq!(spool.records(), 3);
        let expected = vec![
            "10 Some(7) GET /a?x=1 false true get /base/a?x=1 HTTP/1.1\r\nHost: 127.0.0.1:9\r\n\r\n"
                .to_string(),
            "20 None skip connect".to_string(),
            "30 None HEAD /b true true HEAD /base/b HTTP/1.1\r\nHost: 127.0.0.1:9\r\n\r\n"
                .to_string(),
        ];
        assert_eq!(read_all(&spool), expected);
        // A second pass (a looped replay) reads the same from the start.
        assert_eq!(read_all(&spool), expected);
    }

    #[test]
    fn session_values_in_the_recording_rule_the_spool_out_when_mapping() {
        let mut e = exchange("POST", "/login", None, 1);
        e.response = Some(resp(200, &[("Set-Cookie", "sid=abc")], ""));
        let mut w = SpoolWriter::new(&target(), false, true).unwrap();
        w.push(&e);
        let why = w.finish().unwrap_err();
        assert!(why.contains("session"), "{why}");
        // Without mapping the response does not matter.
        let mut w = SpoolWriter::new(&target(), false, false).unwrap();
        w.push(&e);
        assert_eq!(w.finish().unwrap().records(), 1);
    }

    #[test]
    fn the_file_has_no_name() {
        let dir = std::env::temp_dir().join(format!("mynah-spool-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let w = SpoolWriter::new_in(&dir, &target(), false, false).unwrap();
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
        drop(w);
        std::fs::remove_dir(&dir).unwrap();
    }

    #[test]
    fn the_spool_stops_at_its_limit_and_says_so() {
        let mut w = SpoolWriter::new(&target(), false, false).unwrap();
        assert!(w.limit > 0 && w.limit <= MAX_BYTES);
        w.limit = 100;
        w.push(&exchange("GET", "/a", None, 1));
        w.push(&exchange("GET", "/b", None, 2));
        let why = w.finish().unwrap_err();
        assert!(why.contains("limit"), "{why}");
    }

    #[test]
    fn a_truncated_spool_is_an_error_not_a_panic() {
        let mut w = SpoolWriter::new(&target(), false, false).unwrap();
        w.push(&exchange("GET", "/a", None, 1));
        let spool = w.finish().unwrap();
        spool.file.set_len(HEADER as u64 + 3).unwrap();
        let mut r = spool.read().unwrap();
        assert!(r.next().is_err());
        // A length past the file's size is refused before anything is allocated.
        use std::os::unix::fs::FileExt;
        spool
            .file
            .write_all_at(&u32::MAX.to_le_bytes(), 22)
            .unwrap();
        let mut r = spool.read().unwrap();
        let e = r.next().err().expect("an error");
        assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{e}");
    }

    proptest::proptest! {
        /// Whatever the recording holds, a spooled request reads back as the bytes the stream
        /// path would send, with the same skip reasons, times and connections, in order.
        #[test]
        fn spooled_requests_are_what_the_stream_would_send(
            items in proptest::collection::vec((
                "(GET|get|POST|HEAD|CONNECT|G ET|DELETE)",
                "[ -~]{0,40}",
                proptest::collection::vec(("[A-Za-z:-]{1,12}", "[ -~]{0,20}"), 0..5),
                proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64),
                proptest::option::of(proptest::prelude::any::<u64>()),
                proptest::prelude::any::<i64>(),
            ), 0..20),
            keep_host in proptest::prelude::any::<bool>(),
        ) {
            let target = target();
            let dest = Destination::of(&target, keep_host).unwrap();
            let mut w = SpoolWriter::new(&target, keep_host, false).unwrap();
            let mut want = Vec::new();
            for (method, path, headers, body, conn, at) in &items {
                let mut e = exchange(method, path, *conn, *at);
                for (n, v) in headers {
                    e.request.headers.push(n.as_str(), v.as_bytes().to_vec());
                }
                e.request.body = body.clone();
                w.push(&e);
                want.push(match wire::unsendable(&e.request) {
                    Some(reason) => format!("{at} {conn:?} skip {reason}"),
                    None => {
                        let mut bytes = Vec::new();
                        wire::serialize(&e.request, &dest, &mut bytes);
                        format!(
                            "{at} {conn:?} {} {} {} {} {}",
                            e.request.method.to_ascii_uppercase(),
                            e.request.path_and_query(),
                            is_head(&e.request.method),
                            is_idempotent(&e.request.method),
                            String::from_utf8_lossy(&bytes)
                        )
                    }
                });
            }
            let spool = w.finish().unwrap();
            proptest::prop_assert_eq!(read_all(&spool), want);
        }
    }
}
