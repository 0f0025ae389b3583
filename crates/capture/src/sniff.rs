//! Passive capture from a network interface through libpcap.
//!
//! [`Sniffer::start`] opens the interface (on the caller's thread, so a missing privilege or an
//! unknown interface is reported before anything runs), then reads packets on a thread of its
//! own and feeds them to the same [`PacketDecoder`] as `mynah convert` uses for pcap files: the
//! same TCP reassembly and HTTP/1.x parsing. Finished exchanges come out of a bounded channel in
//! batches, roughly in request-start order.
//!
//! The capture never blocks for long: the handle is nonblocking and the thread polls its file
//! descriptor with a short timeout, so [`Sniffer::stop`] is noticed within about 100 ms even
//! when no traffic flows (a blocking read with a timeout was seen to hang once traffic stopped).
//! Packets are taken a whole kernel buffer block at a time (`pcap_dispatch`), which is what lets
//! one core keep up with loopback traffic at full speed.

use std::os::unix::io::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use mynah_traffic::pcap::PacketDecoder;
use mynah_traffic::{Exchange, Nanos, ReadReport};
use pcap::{Active, Capture, Device};

/// How often the thread looks at the stop flag when no packet comes.
const POLL_MS: i32 = 100;
/// libpcap's read timeout: the kernel hands over a partly filled block of packets after this
/// long, which bounds how late a quiet stream's packets are seen.
const BLOCK_TIMEOUT_MS: i32 = 50;
/// A connection without packets for this long is ended and what it had in progress written as
/// incomplete (nginx's default keep-alive timeout is 75 s; five minutes, like file import).
const IDLE: Duration = Duration::from_secs(300);
/// A finished exchange is written at the latest this long after it started, even when an
/// earlier request on a stalled connection still waits for its response.
const HOLD_LIMIT: Duration = Duration::from_secs(2);
/// Batches of exchanges in flight between the capture thread and the consumer. When the consumer
/// falls behind, the capture thread waits and the kernel buffer fills, then drops (and counts).
const CHANNEL_BATCHES: usize = 1024;

/// What to capture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SniffOptions {
    /// The interface name (`lo`, `eth0`, `any`).
    pub interface: String,
    /// TCP ports whose connections are parsed (either side). Empty: any port, HTTP recognised by
    /// its first bytes.
    pub ports: Vec<u16>,
    /// A BPF expression. With ports it narrows the default filter (`(tcp port P ...) and
    /// (EXPR)`); without, it is the whole filter.
    pub bpf: Option<String>,
    /// Bytes kept of each packet. Longer packets are cut and their exchanges marked incomplete.
    pub snaplen: u32,
    /// The kernel's capture buffer, in bytes: what absorbs bursts while the thread is busy.
    pub buffer_size: u64,
}

impl Default for SniffOptions {
    fn default() -> Self {
        SniffOptions {
            interface: "lo".into(),
            ports: Vec::new(),
            bpf: None,
            snaplen: 262_144,
            buffer_size: 64 << 20,
        }
    }
}

impl SniffOptions {
    /// The BPF filter the capture runs: `tcp port P` (or `tcp and (port P1 or port P2)`) for the
    /// ports, joined with the user's expression, or `tcp` when neither is given.
    pub fn filter(&self) -> String {
        let ports = match self.ports.as_slice() {
            [] => None,
            [p] => Some(format!("tcp port {p}")),
            ps => Some(format!(
                "tcp and ({})",
                ps.iter()
                    .map(|p| format!("port {p}"))
                    .collect::<Vec<_>>()
                    .join(" or ")
            )),
        };
        match (ports, self.bpf.as_deref().map(str::trim)) {
            (Some(p), Some(b)) if !b.is_empty() => format!("({p}) and ({b})"),
            (Some(p), _) => p,
            (None, Some(b)) if !b.is_empty() => b.to_string(),
            (None, _) => "tcp".to_string(),
        }
    }
}

/// Why a capture could not start.
#[derive(Debug, thiserror::Error)]
pub enum SniffError {
    /// The process may not open a raw packet socket.
    #[error(
        "no permission to capture on {interface} ({detail}). Live capture needs root or the \
         CAP_NET_RAW capability: run it with sudo, or grant the binary the capabilities once with \
         `sudo setcap cap_net_raw,cap_net_admin=eip {exe}`. Where packets cannot be read (no \
         privileges, TLS terminated in the application), record through `mynah proxy` instead"
    )]
    Permission {
        /// The interface asked for.
        interface: String,
        /// libpcap's words.
        detail: String,
        /// This executable's path, for the `setcap` line.
        exe: String,
    },
    /// No interface by that name.
    #[error("no network interface named {interface:?}; available: {}", available.join(", "))]
    NoSuchInterface {
        /// The interface asked for.
        interface: String,
        /// What libpcap lists.
        available: Vec<String>,
    },
    /// The BPF expression does not compile.
    #[error("the capture filter {filter:?} is not valid BPF ({detail}); see `man pcap-filter`")]
    BadFilter {
        /// The whole filter, as given to libpcap.
        filter: String,
        /// libpcap's words.
        detail: String,
    },
    /// Anything else libpcap refused.
    #[error("cannot capture on {interface}: {detail}")]
    Pcap {
        /// The interface asked for.
        interface: String,
        /// libpcap's words.
        detail: String,
    },
}

/// Counters of a running capture, updated by its thread (pcap's statistics about once a second).
#[derive(Debug, Default)]
pub struct SniffStats {
    /// Packets libpcap handed over (after the BPF filter).
    pub packets: AtomicU64,
    /// Bytes of those packets, as captured.
    pub bytes: AtomicU64,
    /// Packets the kernel dropped because its buffer was full (pcap `ps_drop`).
    pub dropped_kernel: AtomicU64,
    /// Packets the interface or its driver dropped (pcap `ps_ifdrop`).
    pub dropped_interface: AtomicU64,
    /// Exchanges the decoder released.
    pub exchanges: AtomicU64,
    /// TCP connections being followed.
    pub connections: AtomicU64,
}

impl SniffStats {
    /// The counters now.
    pub fn snapshot(&self) -> SniffCounts {
        SniffCounts {
            packets: self.packets.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
            dropped_kernel: self.dropped_kernel.load(Ordering::Relaxed),
            dropped_interface: self.dropped_interface.load(Ordering::Relaxed),
            exchanges: self.exchanges.load(Ordering::Relaxed),
            connections: self.connections.load(Ordering::Relaxed),
        }
    }
}

/// A reading of [`SniffStats`] (see there for what each counts).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct SniffCounts {
    pub packets: u64,
    pub bytes: u64,
    pub dropped_kernel: u64,
    pub dropped_interface: u64,
    pub exchanges: u64,
    pub connections: u64,
}

/// The end of a capture: what the thread saw, and the error that stopped it, if any.
#[derive(Debug, Default)]
pub struct SniffOutcome {
    /// The final counters (pcap's statistics read after the last packet).
    pub counts: SniffCounts,
    /// Traffic not turned into exchanges, by reason (`not_http`, `http2_prior_knowledge`, ...).
    pub skipped: ReadReport,
    /// Why the capture stopped other than [`Sniffer::stop`] (the interface went away, ...).
    pub error: Option<String>,
}

/// A running capture. Exchanges come from [`Sniffer::exchanges`] until the capture has stopped
/// and everything was handed over; then the channel disconnects.
pub struct Sniffer {
    stop: Arc<AtomicBool>,
    stats: Arc<SniffStats>,
    rx: Receiver<Vec<Exchange>>,
    thread: Option<JoinHandle<SniffOutcome>>,
    filter: String,
}

impl Sniffer {
    /// Opens the interface and starts capturing. When this returns `Ok`, the capture is active:
    /// every packet from now on is seen.
    pub fn start(opts: &SniffOptions) -> Result<Sniffer, SniffError> {
        let filter = opts.filter();
        let cap = open(opts, &filter)?;
        let linktype = cap.get_datalink().0 as u32;
        let fd = cap.as_raw_fd();
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(SniffStats::default());
        let (tx, rx) = mpsc::sync_channel(CHANNEL_BATCHES);
        let decoder = PacketDecoder::new(&opts.ports).with_hold_limit(HOLD_LIMIT);
        let worker = Worker {
            cap,
            fd,
            linktype,
            decoder,
            stop: stop.clone(),
            stats: stats.clone(),
            tx,
        };
        let thread = std::thread::Builder::new()
            .name("mynah-capture".into())
            .spawn(move || worker.run())
            .map_err(|e| SniffError::Pcap {
                interface: opts.interface.clone(),
                detail: format!("cannot start the capture thread: {e}"),
            })?;
        Ok(Sniffer {
            stop,
            stats,
            rx,
            thread: Some(thread),
            filter,
        })
    }

    /// The BPF filter in use.
    pub fn filter(&self) -> &str {
        &self.filter
    }

    /// Batches of finished exchanges. `recv_timeout` on it lets the caller report progress and
    /// watch its own stop conditions while no traffic comes.
    pub fn exchanges(&self) -> &Receiver<Vec<Exchange>> {
        &self.rx
    }

    /// Live counters.
    pub fn stats(&self) -> &SniffStats {
        &self.stats
    }

    /// A flag that stops the capture when set (from a signal handler thread, say). After it is
    /// set, the thread ends every open connection, hands over what it holds and disconnects the
    /// channel.
    pub fn stop_flag(&self) -> Arc<AtomicBool> {
        self.stop.clone()
    }

    /// Asks the capture to stop (see [`Sniffer::stop_flag`]).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    /// Waits for the capture thread after the channel disconnected (call it once the
    /// exchanges are drained; it stops the capture first if that was not done).
    pub fn join(mut self) -> SniffOutcome {
        self.stop();
        // Keep draining so the thread can never wait on a full channel while being joined.
        let rx = &self.rx;
        let thread = self.thread.take();
        while rx.recv().is_ok() {}
        match thread.map(JoinHandle::join) {
            Some(Ok(outcome)) => outcome,
            Some(Err(_)) => SniffOutcome {
                counts: self.stats.snapshot(),
                error: Some("the capture thread panicked".into()),
                ..SniffOutcome::default()
            },
            None => SniffOutcome {
                counts: self.stats.snapshot(),
                ..SniffOutcome::default()
            },
        }
    }
}

/// Opens and activates the capture handle, with the filter set and nonblocking reads.
fn open(opts: &SniffOptions, filter: &str) -> Result<Capture<Active>, SniffError> {
    let interface = opts.interface.clone();
    let pcap_err = |detail: String| SniffError::Pcap {
        interface: interface.clone(),
        detail,
    };
    // Listing interfaces needs no privilege, so an unknown name is told apart from a refusal.
    if let Ok(devices) = Device::list() {
        if !devices.iter().any(|d| d.name == opts.interface) {
            return Err(SniffError::NoSuchInterface {
                interface: opts.interface.clone(),
                available: devices.into_iter().map(|d| d.name).collect(),
            });
        }
    }
    let to_i32 = |v: u64| i32::try_from(v).unwrap_or(i32::MAX);
    let cap = Capture::from_device(opts.interface.as_str())
        .map_err(|e| pcap_err(detail(&e)))?
        .snaplen(to_i32(u64::from(opts.snaplen)))
        .buffer_size(to_i32(opts.buffer_size))
        .promisc(false)
        .timeout(BLOCK_TIMEOUT_MS)
        .open()
        .map_err(|e| classify_open_error(opts, e))?;
    let mut cap = cap.setnonblock().map_err(|e| pcap_err(detail(&e)))?;
    cap.filter(filter, true)
        .map_err(|e| SniffError::BadFilter {
            filter: filter.to_string(),
            detail: detail(&e),
        })?;
    Ok(cap)
}

fn detail(e: &pcap::Error) -> String {
    match e {
        pcap::Error::PcapError(s) => s.clone(),
        other => other.to_string(),
    }
}

fn classify_open_error(opts: &SniffOptions, e: pcap::Error) -> SniffError {
    let d = detail(&e);
    let lower = d.to_ascii_lowercase();
    if lower.contains("permission") || lower.contains("not permitted") {
        SniffError::Permission {
            interface: opts.interface.clone(),
            detail: d,
            exe: std::env::current_exe()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|_| "$(which mynah)".into()),
        }
    } else if lower.contains("no such device") || lower.contains("doesn't exist") {
        SniffError::NoSuchInterface {
            interface: opts.interface.clone(),
            available: Device::list()
                .map(|v| v.into_iter().map(|d| d.name).collect())
                .unwrap_or_default(),
        }
    } else {
        SniffError::Pcap {
            interface: opts.interface.clone(),
            detail: d,
        }
    }
}

/// The capture thread's state.
struct Worker {
    cap: Capture<Active>,
    fd: i32,
    linktype: u32,
    decoder: PacketDecoder,
    stop: Arc<AtomicBool>,
    stats: Arc<SniffStats>,
    tx: SyncSender<Vec<Exchange>>,
}

impl Worker {
    fn run(mut self) -> SniffOutcome {
        let mut error = None;
        let mut next_tick = Instant::now() + Duration::from_secs(1);
        let (mut packets, mut bytes, mut exchanges) = (0u64, 0u64, 0u64);
        while !self.stop.load(Ordering::Relaxed) {
            let decoder = &mut self.decoder;
            let linktype = self.linktype;
            let got = self.cap.dispatch(None, |p| {
                let h = p.header;
                let ts =
                    Nanos::from(h.ts.tv_sec) * 1_000_000_000 + Nanos::from(h.ts.tv_usec) * 1_000;
                packets += 1;
                bytes += u64::from(h.caplen);
                decoder.push(linktype, ts, p.data, h.len);
            });
            match got {
                Ok(0) => {
                    wait_readable(self.fd, POLL_MS);
                    self.decoder.advance(wall_clock());
                }
                Ok(_) => {}
                Err(e) => {
                    error = Some(format!("capture failed: {}", detail(&e)));
                    break;
                }
            }
            exchanges += self.send_ready();
            self.stats.packets.store(packets, Ordering::Relaxed);
            self.stats.bytes.store(bytes, Ordering::Relaxed);
            self.stats.exchanges.store(exchanges, Ordering::Relaxed);
            if Instant::now() >= next_tick {
                next_tick = Instant::now() + Duration::from_secs(1);
                self.decoder.advance(wall_clock());
                self.decoder.evict_idle(IDLE);
                self.update_pcap_stats();
            }
        }
        // What the kernel still holds from before the stop is taken; packets stamped after it
        // are not, and the first of them shows the ring was read up to the stop. The block being
        // filled is handed over only when its timeout retires it, so an empty read is trusted
        // only after waiting for that once. Bounded, should the clock be odd.
        if error.is_none() {
            let stop_ts = wall_clock();
            let deadline = Instant::now() + Duration::from_secs(5);
            let mut waited = false;
            let mut caught_up = false;
            while !caught_up && Instant::now() < deadline {
                let decoder = &mut self.decoder;
                let linktype = self.linktype;
                match self.cap.dispatch(None, |p| {
                    let h = p.header;
                    let ts = Nanos::from(h.ts.tv_sec) * 1_000_000_000
                        + Nanos::from(h.ts.tv_usec) * 1_000;
                    if ts > stop_ts {
                        caught_up = true;
                        return;
                    }
                    packets += 1;
                    bytes += u64::from(h.caplen);
                    decoder.push(linktype, ts, p.data, h.len);
                }) {
                    Ok(0) if !waited => {
                        wait_readable(self.fd, BLOCK_TIMEOUT_MS * 2);
                        waited = true;
                    }
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        }
        self.update_pcap_stats();
        self.decoder.finish();
        exchanges += self.send_ready();
        self.stats.packets.store(packets, Ordering::Relaxed);
        self.stats.bytes.store(bytes, Ordering::Relaxed);
        self.stats.exchanges.store(exchanges, Ordering::Relaxed);
        SniffOutcome {
            counts: self.stats.snapshot(),
            skipped: self.decoder.report(),
            error,
        }
    }

    /// Hands over everything the decoder can release; returns how many.
    fn send_ready(&mut self) -> u64 {
        let mut batch = Vec::new();
        while let Some(ex) = self.decoder.pop_ready() {
            batch.push(ex);
        }
        self.stats
            .connections
            .store(self.decoder.connections() as u64, Ordering::Relaxed);
        let n = batch.len() as u64;
        if n > 0 && self.tx.send(batch).is_err() {
            // The consumer is gone: nothing more to do than stop.
            self.stop.store(true, Ordering::Relaxed);
        }
        n
    }

    fn update_pcap_stats(&mut self) {
        if let Ok(s) = self.cap.stats() {
            self.stats
                .dropped_kernel
                .store(u64::from(s.dropped), Ordering::Relaxed);
            self.stats
                .dropped_interface
                .store(u64::from(s.if_dropped), Ordering::Relaxed);
        }
    }
}

/// Nanoseconds since the Unix epoch, the clock packet time stamps use.
fn wall_clock() -> Nanos {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| Nanos::try_from(d.as_nanos()).unwrap_or(Nanos::MAX))
}

/// Waits until the capture descriptor is readable or `ms` pass.
fn wait_readable(fd: i32, ms: i32) {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd for the duration of the call; the descriptor belongs to the
    // capture handle, which outlives the call.
    unsafe {
        libc::poll(&mut pfd, 1, ms);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters() {
        let mut o = SniffOptions {
            ports: vec![8080],
            ..SniffOptions::default()
        };
        assert_eq!(o.filter(), "tcp port 8080");
        o.bpf = Some("host 10.0.0.1".into());
        assert_eq!(o.filter(), "(tcp port 8080) and (host 10.0.0.1)");
        o.ports = vec![80, 443];
        assert_eq!(
            o.filter(),
            "(tcp and (port 80 or port 443)) and (host 10.0.0.1)"
        );
        o.ports.clear();
        assert_eq!(o.filter(), "host 10.0.0.1");
        o.bpf = None;
        assert_eq!(o.filter(), "tcp");
    }

    #[test]
    fn unknown_interface_lists_the_others() {
        let o = SniffOptions {
            interface: "no-such-if0".into(),
            ports: vec![80],
            ..SniffOptions::default()
        };
        match Sniffer::start(&o) {
            Err(SniffError::NoSuchInterface { available, .. }) => {
                assert!(available.iter().any(|a| a == "lo"), "{available:?}")
            }
            Err(e) => panic!("unexpected error: {e}"),
            Ok(_) => panic!("opened an interface that does not exist"),
        }
    }
}
