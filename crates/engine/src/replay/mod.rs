//! Replay: recorded exchanges sent to a target host on the recorded schedule (or at a set rate,
//! or as fast as the target allows), one target connection per recorded connection, with
//! server-issued session values mapped and responses compared with the recorded ones.
//!
//! The shape, and why:
//! - A **reader** thread turns the recording into requests ready to send, a few thousand ahead:
//!   it reads them back from a [`spool`] written before the replay, or parses the recording
//!   (the masking pipeline runs in the caller's iterator) and serializes what needs no session
//!   value. A **feeder** thread hands each request to a **lane** when it is due, so memory
//!   holds the requests in flight, never the recording. The feeder sleeps on the OS clock
//!   (tens of µs late), where a tokio timer has 1 ms ticks: handing out on time is what keeps
//!   the schedule lag low, and a paced `.gor` request then finds the lanes idle at its time.
//! - A lane is a task on one of the per-core runtimes the scripted engine uses, owning one
//!   client (one connection to the target). A recorded connection's requests all go to its own
//!   lane, in order; exchanges without a connection identity (`.gor`) go to any idle lane.
//! - Paced replay never queues without bound: a request whose lane is still busy with earlier
//!   ones beyond its small queue, or that would need more than `concurrency` connections, is
//!   counted as `dropped`. At `--max-speed` the feeder waits for room instead (that is the
//!   point of the mode), so nothing is dropped.
//! - Each request's schedule lag (when it went out minus when it was due) is measured on the
//!   lane and reported as a histogram; latency is timed from the moment the request went out.
//! - Samples go through the same sample sink and statistics as `mynah run`, so replay has the same
//!   live view and reports.

pub mod compare;
pub mod session;
pub mod spool;
#[cfg(test)]
mod test_util {
    use mynah_traffic::{Headers, Response};

    /// A response with `headers` in order and a text body (for the session and compare tests).
    pub(crate) fn resp(status: u16, headers: &[(&str, &str)], body: &str) -> Response {
        let mut h = Headers::new();
        for (n, v) in headers {
            h.push(*n, *v);
        }
        Response {
            status,
            headers: h,
            body: body.as_bytes().to_vec(),
            ..Default::default()
        }
    }
}
pub(crate) mod wire;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use mynah_stats::{FailureKind, RunStats};
use mynah_traffic::{BodyForm, Exchange, Headers, Request};
use tokio::sync::mpsc;

use crate::client::{self, Client, ClientConfig};
use crate::collect::{record, Clock, Sample, Sink};
use crate::plan::BaseUrl;
use crate::runner::{Observer, Progress, Workers};
use compare::{CompareOptions, Comparer, DiffKind, Difference};
use session::SessionMap;
pub use spool::{Spool, SpoolWriter};
pub use wire::unsendable;
use wire::Destination;

/// A lane given a request earlier than this before it is due waits on a tokio timer.
const EARLY: Duration = Duration::from_micros(500);
/// Requests a lane holds beyond the one it is sending (paced modes).
const LANE_QUEUE: usize = 64;
/// Requests a lane holds at `--max-speed`: deep enough that the feeder, waking every
/// [`MAX_SPEED_NAP`] when every lane is full, never lets a connection run dry.
const MAX_SPEED_QUEUE: usize = 256;
/// How long the feeder naps when every lane is full at `--max-speed`.
const MAX_SPEED_NAP: Duration = Duration::from_micros(500);
/// A paced lane with nothing to do for this long closes its connection and ends.
const LANE_IDLE: Duration = Duration::from_secs(5);
/// Distinct endpoint names kept; beyond it requests are counted under [`OTHER`], so a recording
/// with an id in every path cannot grow the statistics without bound.
const MAX_ENDPOINTS: usize = 1000;
/// The endpoint name of requests beyond the first 1,000 distinct ones.
pub const OTHER: &str = "(other endpoints)";
/// Response body bytes kept when a response is compared or learnt from.
const KEEP_BODY: usize = 1 << 20;
/// Recorded values the session map remembers at most.
const SESSION_ENTRIES: usize = 1_000_000;
/// Mismatch examples kept per endpoint and in all.
const EXAMPLES_PER_ENDPOINT: usize = 3;
const EXAMPLES_MAX: usize = 100;
/// How often samples are folded into the statistics, and the observer called.
const COLLECT_EVERY: Duration = Duration::from_millis(100);
const TICK_EVERY: Duration = Duration::from_secs(1);

/// When requests go out.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pace {
    /// The recorded gaps divided by `speed` (1 = as recorded, 2 = twice as fast).
    Recorded {
        /// Speed factor (> 0).
        speed: f64,
    },
    /// Exactly this many requests per second, in recorded order, whatever the recorded gaps.
    Rate(f64),
    /// As fast as the target answers, on at most `concurrency` connections.
    MaxSpeed,
}

/// How to replay.
#[derive(Debug, Clone)]
pub struct ReplayOptions {
    /// Where to send: scheme, host, port and a path prefix.
    pub target: BaseUrl,
    /// When to send.
    pub pace: Pace,
    /// Connections at most.
    pub concurrency: usize,
    /// Start over at the end of the recording.
    pub looped: bool,
    /// Stop after this long.
    pub duration: Option<Duration>,
    /// Stop after this many requests were handed out.
    pub max_requests: Option<u64>,
    /// Send the recorded Host header instead of the target's.
    pub keep_host: bool,
    /// Map server-issued session values (see [`session`]).
    pub session_mapping: bool,
    /// Compare responses with the recorded ones (see [`compare`]).
    pub compare: Option<CompareOptions>,
    /// Timeouts and TLS. Redirects are never followed (the recording holds the follow-ups).
    pub client: ClientConfig,
    /// After an interruption or the duration, how long requests in flight may finish.
    pub stop_timeout: Duration,
    /// The expected length of the replay, for the progress display.
    pub planned: Option<Duration>,
    /// Name endpoints by these templates (`/articles/{article_id}`, learnt from the recording
    /// like `mynah synth` does) instead of by recorded paths, so that a replay's statistics group
    /// like a synthesized run's and can be compared with them. Requests no template fits keep
    /// their recorded path.
    pub templates: Option<Arc<mynah_synth::Templates>>,
}

/// The exchanges of a recording, in request-time order, after filtering and masking.
pub type Exchanges = Box<dyn Iterator<Item = Result<Exchange, String>> + Send>;

/// Opens the recording from its beginning: once, and again for each loop.
pub type OpenRecording = Box<dyn FnMut() -> Result<Exchanges, String> + Send>;

/// What a replay sends.
pub enum Recording {
    /// The recording, read and parsed on each pass.
    Stream(OpenRecording),
    /// The recording's requests written ready to send (see [`spool`]); it must have been written
    /// for the replay's target and `keep_host`.
    Spooled(Spool),
}

/// Schedule lag figures, in µs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Lag {
    /// Requests measured.
    pub count: u64,
    /// Median.
    pub p50_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// Largest.
    pub max_us: u64,
}

/// Response comparison totals for one endpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndpointCompare {
    /// Method.
    pub method: String,
    /// Endpoint name (recorded path).
    pub name: String,
    /// Responses compared.
    pub compared: u64,
    /// Responses with at least one difference.
    pub mismatched: u64,
    /// Responses with a difference of each kind: status, header, body.
    pub by_kind: [u64; 3],
}

/// One kept example of a mismatch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompareExample {
    /// Method.
    pub method: String,
    /// Endpoint name.
    pub name: String,
    /// What differed.
    pub difference: Difference,
}

/// What `--compare` found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompareReport {
    /// Responses compared.
    pub compared: u64,
    /// Responses with at least one difference.
    pub mismatched: u64,
    /// Per endpoint, in first-seen order.
    pub endpoints: Vec<EndpointCompare>,
    /// The first examples.
    pub examples: Vec<CompareExample>,
}

/// What the replay did besides the request statistics.
#[derive(Debug, Clone, Default)]
pub struct ReplayReport {
    /// Requests sent (each counted in the statistics).
    pub sent: u64,
    /// Recorded requests not replayed, by reason (`connect`, `upgrade`, `incomplete_request`...).
    pub skipped: BTreeMap<String, u64>,
    /// Requests that could not be sent on schedule.
    pub dropped: u64,
    /// How late requests went out.
    pub lag: Lag,
    /// Recorded values mapped to replayed ones.
    pub mapped_values: u64,
    /// Values substituted into requests.
    pub substitutions: u64,
    /// Response comparison, with `--compare`.
    pub compare: Option<CompareReport>,
    /// Times the recording was started (more than 1 with `looped`).
    pub passes: u64,
    /// The requests came from a [`Spool`], not from parsing the recording.
    pub spooled: bool,
}

/// A finished replay.
#[derive(Debug)]
pub struct ReplayOutcome {
    /// Every request's outcome, per endpoint (method + recorded path).
    pub stats: RunStats,
    /// The most connections open at once.
    pub connections_max: u64,
    /// Stopped early by the caller.
    pub interrupted: bool,
    /// Stopped by an error (an unreadable recording).
    pub fatal: Option<String>,
    /// Replay-specific figures.
    pub report: ReplayReport,
}

/// One request for a lane.
struct Job {
    /// Due time in ns since the run's start (0 at max speed: at once).
    at_ns: u64,
    endpoint: u32,
    request: Outgoing,
    /// Kept when the response is compared or may carry session values.
    recorded: Option<mynah_traffic::Response>,
}

/// A request as a lane gets it.
enum Outgoing {
    /// Serialized for the target by the reader thread: no session value can apply to it.
    Wire {
        bytes: Vec<u8>,
        head: bool,
        idempotent: bool,
    },
    /// Kept whole: session values learnt meanwhile may have to be put in when it goes out.
    Parsed(Request),
}

/// A recorded exchange made ready by the reader thread: what the feeder and a lane need of it.
///
/// The parsed [`Exchange`] (a dozen owned strings) is dropped on the thread that built it, so
/// its memory goes back to that thread's allocator cache; a lane gets one buffer per request.
struct Prepared {
    /// When it was recorded.
    start_ns: i64,
    /// The recorded connection.
    conn: Option<u64>,
    /// What to send, or why it is not replayed (see [`unsendable`]).
    what: Result<Ready, &'static str>,
}

/// A replayable request, prepared.
struct Ready {
    endpoint: u32,
    request: Outgoing,
    recorded: Option<mynah_traffic::Response>,
}

/// A lane as the feeder sees it.
struct LaneHandle {
    tx: mpsc::Sender<Job>,
    /// Jobs handed over and not finished yet.
    pending: Arc<AtomicU32>,
}

/// What lanes share.
struct Shared {
    client: Arc<client::Shared>,
    dest: Destination,
    sink: Sink,
    lags: Mutex<Vec<u64>>,
    clock: Clock,
    sessions: Option<SessionMap>,
    comparer: Option<Comparer>,
    compare: Mutex<CompareAcc>,
    endpoints: RwLock<Vec<(String, String)>>,
    /// Stop sending (interrupt or end of the duration at max speed).
    stop: AtomicBool,
    sent: AtomicU64,
    dropped: AtomicU64,
    substitutions: AtomicU64,
    lanes: AtomicU64,
    paced: bool,
}

#[derive(Default)]
struct CompareAcc {
    compared: u64,
    mismatched: u64,
    /// Indexed by endpoint id.
    endpoints: Vec<Option<EndpointCompare>>,
    order: Vec<u32>,
    examples: Vec<CompareExample>,
    examples_per: HashMap<u32, usize>,
}

/// Replays `recording`, calling `observer` about once a second, until it ends,
/// the duration or request count is reached, or `stop` resolves.
pub async fn replay(
    recording: Recording,
    options: ReplayOptions,
    observer: &mut dyn Observer,
    stop: impl std::future::Future<Output = ()> + Send,
) -> ReplayOutcome {
    let clock = Clock::new();
    let fail = |message: String| ReplayOutcome {
        stats: RunStats::new(clock.start_unix_ns),
        connections_max: 0,
        interrupted: false,
        fatal: Some(message),
        report: ReplayReport::default(),
    };
    let mut config = options.client.clone();
    config.follow_redirects = false;
    config.http2_prior_knowledge = false;
    config.max_body_bytes = KEEP_BODY;
    let client = match client::Shared::new_http1(config) {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    let comparer = match &options.compare {
        Some(c) => match Comparer::new(c) {
            Ok(c) => Some(c),
            Err(e) => return fail(e),
        },
        None => None,
    };
    let dest = match Destination::of(&options.target, options.keep_host) {
        Ok(d) => d,
        Err(e) => return fail(e),
    };
    let spooled = matches!(recording, Recording::Spooled(_));
    let source = match recording {
        Recording::Stream(mut open) => match open() {
            Ok(first) => Source::Stream { first, open },
            Err(e) => return fail(e),
        },
        Recording::Spooled(spool) => {
            if spool.dest != dest {
                return fail(format!(
                    "the replay's temporary file was written for {}, not {} (a bug in mynah, please report it)",
                    spool.dest.origin, dest.origin
                ));
            }
            Source::Spool(spool)
        }
    };
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let workers = match Workers::start(threads) {
        Ok(w) => w,
        Err(e) => return fail(format!("cannot start worker threads: {e}")),
    };
    let shared = Arc::new(Shared {
        client,
        dest,
        sink: Sink::new(threads * 4),
        lags: Mutex::new(Vec::new()),
        clock,
        sessions: options
            .session_mapping
            .then(|| SessionMap::new(SESSION_ENTRIES)),
        comparer,
        compare: Mutex::new(CompareAcc::default()),
        endpoints: RwLock::new(Vec::new()),
        stop: AtomicBool::new(false),
        sent: AtomicU64::new(0),
        dropped: AtomicU64::new(0),
        substitutions: AtomicU64::new(0),
        lanes: AtomicU64::new(0),
        paced: options.pace != Pace::MaxSpeed,
    });

    // The feeder thread; it reports its end (and its lanes) through a oneshot.
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<FeedEnd>();
    let feeder = {
        let shared = shared.clone();
        let options = options.clone();
        let handles = workers.handles.clone();
        std::thread::Builder::new()
            .name("mynah-replay-feed".into())
            .spawn(move || {
                tight_timer_slack();
                let end = Feeder::new(shared, options, handles).run(source);
                let _ = done_tx.send(end);
            })
    };
    if let Err(e) = feeder {
        return fail(format!("cannot start the feeder thread: {e}"));
    }

    let mut stats = RunStats::new(clock.start_unix_ns);
    let mut collector = Collector {
        slots: Vec::new(),
        buf: Vec::new(),
        lag: hdrhistogram::Histogram::new_with_bounds(1, 3_600_000_000, 3)
            .unwrap_or_else(|_| hdrhistogram::Histogram::new(3).expect("3 sigfigs is valid")),
        lag_buf: Vec::new(),
        tick_worst_lag: 0,
        next_tick: clock.start + TICK_EVERY,
        connections_max: 0,
        dropped_seen: 0,
        planned: options.planned,
        concurrency: options.concurrency as u64,
        rate: match options.pace {
            Pace::Rate(r) => Some(r),
            _ => None,
        },
    };
    let mut interval = tokio::time::interval(COLLECT_EVERY);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut stop = std::pin::pin!(stop);
    let mut done_rx = std::pin::pin!(done_rx);
    let mut interrupted = false;
    let end: FeedEnd = loop {
        tokio::select! {
            _ = interval.tick() => collector.collect(&shared, &mut stats, observer, false),
            end = &mut done_rx => break end.unwrap_or_else(|_| FeedEnd::crashed()),
            _ = &mut stop, if !interrupted => {
                interrupted = true;
                shared.stop.store(true, Ordering::Release);
            }
        }
    };
    // The feeder is done; lanes finish what they hold. After an interruption, the duration at
    // max speed, or an error, they get the stop timeout; after the recording's natural end
    // every request handed out is still due, and each is bounded by the request timeout.
    // Paced requests are handed out when due, so those handed out before the end of the
    // duration still go out; at max speed the queues hold requests past it, and are cut.
    let stop_now = interrupted || end.fatal.is_some() || end.cut && !shared.paced;
    if stop_now {
        shared.stop.store(true, Ordering::Release);
    }
    let bounded = stop_now || end.cut;
    let deadline = tokio::time::Instant::now() + options.stop_timeout;
    let mut lanes = end.lanes;
    let mut joined = tokio::task::JoinSet::new();
    for lane in lanes.drain(..) {
        joined.spawn(lane);
    }
    let mut fatal = end.fatal;
    loop {
        tokio::select! {
            _ = interval.tick() => collector.collect(&shared, &mut stats, observer, true),
            next = joined.join_next() => match next {
                None => break,
                Some(Ok(Err(e))) if e.is_panic() => {
                    fatal.get_or_insert_with(|| "a replay connection crashed (a bug in mynah, please report it)".into());
                }
                Some(_) => {}
            },
            _ = tokio::time::sleep_until(deadline), if bounded => break,
            _ = &mut stop, if !interrupted => {
                interrupted = true;
                shared.stop.store(true, Ordering::Release);
                break;
            }
        }
    }
    if !joined.is_empty() {
        // Give the lanes that were told to stop their stop timeout, then abandon them.
        let deadline = tokio::time::Instant::now()
            + if bounded {
                Duration::ZERO
            } else {
                options.stop_timeout
            };
        loop {
            tokio::select! {
                next = joined.join_next() => if next.is_none() { break },
                _ = tokio::time::sleep_until(deadline) => break,
            }
        }
        joined.abort_all();
    }
    drop(workers);
    collector.collect(&shared, &mut stats, observer, true);
    stats.finish(clock.unix_ns(clock.offset(Instant::now())));
    let progress = collector.progress(&shared, true);
    observer.finish(&stats, &progress);

    let lag = &collector.lag;
    let report = ReplayReport {
        sent: shared.sent.load(Ordering::Relaxed),
        skipped: end.skipped,
        dropped: shared.dropped.load(Ordering::Relaxed),
        lag: Lag {
            count: lag.len(),
            p50_us: if lag.is_empty() {
                0
            } else {
                lag.value_at_quantile(0.5)
            },
            p99_us: if lag.is_empty() {
                0
            } else {
                lag.value_at_quantile(0.99)
            },
            max_us: if lag.is_empty() { 0 } else { lag.max() },
        },
        mapped_values: shared.sessions.as_ref().map_or(0, |s| s.len() as u64),
        substitutions: shared.substitutions.load(Ordering::Relaxed),
        compare: shared.comparer.as_ref().map(|_| compare_report(&shared)),
        passes: end.passes,
        spooled,
    };
    ReplayOutcome {
        stats,
        connections_max: collector.connections_max,
        interrupted,
        fatal,
        report,
    }
}

fn compare_report(shared: &Shared) -> CompareReport {
    let acc = shared.compare.lock().unwrap_or_else(|p| p.into_inner());
    CompareReport {
        compared: acc.compared,
        mismatched: acc.mismatched,
        endpoints: acc
            .order
            .iter()
            .filter_map(|&i| acc.endpoints.get(i as usize).cloned().flatten())
            .collect(),
        examples: acc.examples.clone(),
    }
}

/// How the feeder ended.
struct FeedEnd {
    /// The lane tasks, to wait for.
    lanes: Vec<tokio::task::JoinHandle<()>>,
    skipped: BTreeMap<String, u64>,
    fatal: Option<String>,
    /// Ended by the duration (not the recording's end or the request count).
    cut: bool,
    passes: u64,
}

impl FeedEnd {
    fn crashed() -> FeedEnd {
        FeedEnd {
            lanes: Vec::new(),
            skipped: BTreeMap::new(),
            fatal: Some("the replay feeder crashed (a bug in mynah, please report it)".into()),
            cut: false,
            passes: 0,
        }
    }
}

/// Reads the recording and hands requests to lanes on time.
struct Feeder {
    shared: Arc<Shared>,
    options: ReplayOptions,
    workers: Vec<tokio::runtime::Handle>,
    /// Lanes of recorded connections (paced modes).
    keyed: HashMap<u64, LaneHandle>,
    /// Lanes for exchanges without a connection (paced), or every lane (max speed).
    pool: Vec<LaneHandle>,
    cursor: usize,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    skipped: BTreeMap<String, u64>,
    handed: u64,
    next_lane: usize,
    since_sweep: u32,
}

/// Whether the feeder goes on.
enum Flow {
    Go,
    /// Duration reached.
    Cut,
    /// Request count reached: what was handed out is still sent.
    Done,
    /// Stop requested.
    Stopped,
}

impl Feeder {
    fn new(
        shared: Arc<Shared>,
        options: ReplayOptions,
        workers: Vec<tokio::runtime::Handle>,
    ) -> Feeder {
        Feeder {
            shared,
            options,
            workers,
            keyed: HashMap::new(),
            pool: Vec::new(),
            cursor: 0,
            tasks: Vec::new(),
            skipped: BTreeMap::new(),
            handed: 0,
            next_lane: 0,
            since_sweep: 0,
        }
    }

    fn run(mut self, source: Source) -> FeedEnd {
        let mut fatal = None;
        let mut cut = false;
        let mut passes = 0u64;
        // Reading and parsing run on their own thread, a few thousand exchanges ahead, so a new
        // pass's first requests (which a `.gor` reader only gives after looking ahead for their
        // responses) are ready when the previous pass ends.
        let (tx, rx) = std::sync::mpsc::sync_channel::<Fed>(READ_AHEAD_BATCHES);
        let looped = self.options.looped;
        let mut preparer = Preparer::new(self.shared.clone(), &self.options);
        let reader = std::thread::Builder::new()
            .name("mynah-replay-read".into())
            .spawn(move || {
                lower_priority();
                match source {
                    Source::Stream { first, open } => {
                        read_ahead(first, open, looped, &mut preparer, tx)
                    }
                    Source::Spool(spool) => read_spool(&spool, looped, &mut preparer, tx),
                }
            });
        if let Err(e) = reader {
            fatal = Some(format!("cannot start the reader thread: {e}"));
        }
        // Where the current pass starts on the run's clock, and the recording's first request.
        let mut pass_offset_ns = 0u64;
        let mut first_ns: Option<i64> = None;
        let mut last_at = 0u64;
        let mut gaps = 0u64;
        let mut count = 0u64;
        let mut started = false;
        let mut origin: Option<u64> = None;
        'feed: while fatal.is_none() {
            let Ok(fed) = rx.recv() else { break };
            match fed {
                Fed::Failed(e) => {
                    fatal = Some(e);
                    break;
                }
                Fed::PassEnd => {
                    if !looped || count == 0 {
                        break;
                    }
                    // The next pass starts one average gap after this one's last request.
                    pass_offset_ns = last_at + gaps / count.saturating_sub(1).max(1);
                    first_ns = None;
                    last_at = pass_offset_ns;
                    gaps = 0;
                    count = 0;
                    started = false;
                }
                Fed::Batch(batch) => {
                    for prepared in batch {
                        if !started {
                            started = true;
                            passes += 1;
                        }
                        let start = prepared.start_ns;
                        let first = *first_ns.get_or_insert(start);
                        let at_ns = match self.options.pace {
                            Pace::Recorded { speed } => {
                                let rel = start.saturating_sub(first).max(0) as f64 / speed;
                                pass_offset_ns + rel as u64
                            }
                            Pace::Rate(rate) => (self.handed as f64 * 1e9 / rate) as u64,
                            Pace::MaxSpeed => 0,
                        };
                        if count > 0 {
                            gaps += at_ns.saturating_sub(last_at);
                        }
                        count += 1;
                        last_at = last_at.max(at_ns);
                        // The schedule starts when the first request is at hand (a `.gor`
                        // reader looks ahead for responses before it gives the first one), not
                        // when the replay started: otherwise the first requests start late.
                        let origin =
                            *origin.get_or_insert_with(|| self.shared.clock.offset(Instant::now()));
                        match self.hand_out(prepared, origin + at_ns, at_ns) {
                            Flow::Go => {}
                            Flow::Cut => {
                                cut = true;
                                break 'feed;
                            }
                            Flow::Stopped | Flow::Done => break 'feed,
                        }
                    }
                }
            }
        }
        // The reader stops at its next send once the receiver is gone.
        drop(rx);
        // Dropping the senders lets every lane finish its queue and end.
        self.keyed.clear();
        self.pool.clear();
        FeedEnd {
            lanes: self.tasks,
            skipped: self.skipped,
            fatal,
            cut,
            passes,
        }
    }

    /// Hands `prepared` to a lane at `at_ns` on the run's clock; `rel_ns` is the same time from
    /// the schedule's start (what `--duration` limits).
    fn hand_out(&mut self, prepared: Prepared, at_ns: u64, rel_ns: u64) -> Flow {
        let shared = self.shared.clone();
        if shared.stop.load(Ordering::Acquire) {
            return Flow::Stopped;
        }
        if let Some(max) = self.options.max_requests {
            if self.handed >= max {
                return Flow::Done;
            }
        }
        if let Some(d) = self.options.duration {
            let limit = d.as_nanos() as u64;
            let past = match self.options.pace {
                Pace::MaxSpeed => shared.clock.elapsed() >= d,
                _ => rel_ns >= limit,
            };
            if past {
                return Flow::Cut;
            }
        }
        let ready = match prepared.what {
            Ok(ready) => ready,
            Err(reason) => {
                *self.skipped.entry(reason.to_string()).or_default() += 1;
                return Flow::Go;
            }
        };
        // Wait until the request is almost due.
        if self.shared.paced {
            let due = shared.clock.start + Duration::from_nanos(at_ns);
            loop {
                let now = Instant::now();
                if now >= due {
                    break;
                }
                if shared.stop.load(Ordering::Acquire) {
                    return Flow::Stopped;
                }
                std::thread::sleep((due - now).min(Duration::from_millis(50)));
            }
        }
        let conn = prepared.conn;
        let job = Job {
            at_ns,
            endpoint: ready.endpoint,
            recorded: ready.recorded,
            request: ready.request,
        };
        self.handed += 1;
        if self.shared.paced {
            self.hand_paced(job, conn);
        } else {
            self.hand_max_speed(job, conn);
        }
        self.since_sweep += 1;
        if self.since_sweep >= 4096 {
            self.since_sweep = 0;
            self.keyed.retain(|_, l| !l.tx.is_closed());
            self.pool.retain(|l| !l.tx.is_closed());
        }
        Flow::Go
    }

    fn drop_job(&self) {
        self.shared.dropped.fetch_add(1, Ordering::Relaxed);
    }

    fn lanes_open(&self) -> usize {
        self.shared.lanes.load(Ordering::Relaxed) as usize
    }

    /// Paced: a recorded connection's lane (made when first needed), or any idle pool lane.
    fn hand_paced(&mut self, job: Job, conn: Option<u64>) {
        match conn {
            Some(key) => {
                if let Some(lane) = self.keyed.get(&key) {
                    lane.pending.fetch_add(1, Ordering::AcqRel);
                    match lane.tx.try_send(job) {
                        Ok(()) => return,
                        Err(mpsc::error::TrySendError::Full(_)) => {
                            lane.pending.fetch_sub(1, Ordering::AcqRel);
                            self.drop_job();
                            return;
                        }
                        Err(mpsc::error::TrySendError::Closed(j)) => {
                            // The lane ended while idle: the connection goes on in a new one.
                            self.keyed.remove(&key);
                            return self.hand_paced_new(j, key);
                        }
                    }
                }
                self.hand_paced_new(job, key)
            }
            None => {
                // The oldest idle lane first: the few connections a rate needs stay hot and
                // the rest can close when idle.
                let n = self.pool.len();
                for i in 0..n {
                    let lane = &self.pool[i];
                    if lane.pending.load(Ordering::Acquire) == 0 && !lane.tx.is_closed() {
                        lane.pending.fetch_add(1, Ordering::AcqRel);
                        match lane.tx.try_send(job) {
                            Ok(()) => return,
                            Err(
                                mpsc::error::TrySendError::Full(j)
                                | mpsc::error::TrySendError::Closed(j),
                            ) => {
                                self.pool[i].pending.fetch_sub(1, Ordering::AcqRel);
                                return self.hand_pool_new(j);
                            }
                        }
                    }
                }
                self.hand_pool_new(job)
            }
        }
    }

    fn hand_paced_new(&mut self, job: Job, key: u64) {
        if let Some(lane) = self.new_lane_with(job) {
            self.keyed.insert(key, lane);
        }
    }

    fn hand_pool_new(&mut self, job: Job) {
        if let Some(lane) = self.new_lane_with(job) {
            self.pool.push(lane);
        }
    }

    /// A new paced lane holding `job`, or `None` (the job counted as dropped) when the
    /// connection cap is reached.
    fn new_lane_with(&mut self, job: Job) -> Option<LaneHandle> {
        if self.lanes_open() >= self.options.concurrency {
            self.drop_job();
            return None;
        }
        let lane = self.spawn_lane(LANE_QUEUE, Some(LANE_IDLE));
        lane.pending.fetch_add(1, Ordering::AcqRel);
        if lane.tx.try_send(job).is_err() {
            lane.pending.fetch_sub(1, Ordering::AcqRel);
            self.drop_job();
        }
        Some(lane)
    }

    /// Max speed: `concurrency` lanes; a recorded connection always maps to the same lane (its
    /// order kept), other requests go to the first lane with room; the feeder waits when all
    /// are full.
    fn hand_max_speed(&mut self, mut job: Job, conn: Option<u64>) {
        let n = self.options.concurrency.max(1);
        while self.pool.len() < n {
            let lane = self.spawn_lane(MAX_SPEED_QUEUE, None);
            self.pool.push(lane);
        }
        if conn.is_none() {
            for k in 0..n {
                let i = (self.cursor + k) % n;
                match self.pool[i].tx.try_send(job) {
                    Ok(()) => {
                        self.cursor = i + 1;
                        return;
                    }
                    Err(mpsc::error::TrySendError::Full(j)) => job = j,
                    Err(mpsc::error::TrySendError::Closed(_)) => {
                        // Only a crashed lane closes at max speed; the run reports the panic.
                        return self.drop_job();
                    }
                }
            }
        }
        let i = match conn {
            Some(key) => (mix(key) % n as u64) as usize,
            None => {
                let i = self.cursor % n;
                self.cursor = i + 1;
                i
            }
        };
        // Wait for room, but not past a stop request.
        loop {
            match self.pool[i].tx.try_send(job) {
                Ok(()) => return,
                Err(mpsc::error::TrySendError::Full(j)) => {
                    if self.shared.stop.load(Ordering::Acquire) {
                        return;
                    }
                    job = j;
                    // Lanes hold a few milliseconds of work: a nap here costs nothing, and
                    // waking per freed slot would cost a context switch per request.
                    std::thread::sleep(MAX_SPEED_NAP);
                }
                Err(mpsc::error::TrySendError::Closed(_)) => return self.drop_job(),
            }
        }
    }

    fn spawn_lane(&mut self, queue: usize, idle: Option<Duration>) -> LaneHandle {
        let (tx, rx) = mpsc::channel(queue);
        let pending = Arc::new(AtomicU32::new(0));
        let worker = &self.workers[self.next_lane % self.workers.len()];
        let lane = Lane {
            shared: self.shared.clone(),
            client: Client::new(self.shared.client.clone()),
            pending: pending.clone(),
            shard: self.next_lane,
            wire: Vec::new(),
        };
        self.next_lane += 1;
        self.shared.lanes.fetch_add(1, Ordering::Relaxed);
        self.tasks.push(worker.spawn(lane.run(rx, idle)));
        LaneHandle { tx, pending }
    }
}

/// Turns exchanges into [`Prepared`] ones, on the reader thread.
struct Preparer {
    shared: Arc<Shared>,
    templates: Option<Arc<mynah_synth::Templates>>,
    /// Endpoint ids by `METHOD name` (the table in [`Shared::endpoints`] is the other way).
    names: HashMap<String, u32>,
    scratch: String,
    /// Endpoint ids by spooled key (`METHOD path?query`).
    by_key: HashMap<Vec<u8>, u32>,
    /// A response that may issue a session value was read (sticky, across passes too). Until
    /// then the session map is empty when any request read so far goes out, since it learns only
    /// from responses to requests handed out before: those requests are serialized right away.
    sessions_seen: bool,
}

impl Preparer {
    fn new(shared: Arc<Shared>, options: &ReplayOptions) -> Preparer {
        Preparer {
            shared,
            templates: options.templates.clone(),
            names: HashMap::new(),
            scratch: String::new(),
            by_key: HashMap::new(),
            sessions_seen: false,
        }
    }

    fn prepare(&mut self, exchange: Exchange) -> Prepared {
        let start_ns = exchange.timing.request_start;
        let conn = exchange.connection.id;
        let what = match wire::unsendable(&exchange.request) {
            Some(reason) => Err(reason),
            None => Ok(self.ready(exchange)),
        };
        Prepared {
            start_ns,
            conn,
            what,
        }
    }

    fn ready(&mut self, exchange: Exchange) -> Ready {
        let endpoint = self.endpoint(&exchange.request);
        let mapping = self.shared.sessions.is_some();
        // Whether this request's own response matters is decided after its request: a
        // response only maps values in later requests.
        let parsed = mapping && self.sessions_seen;
        let issues = mapping && may_issue_session(exchange.response.as_ref());
        self.sessions_seen |= issues;
        let recorded = if self.shared.comparer.is_some() || issues {
            exchange.response
        } else {
            None
        };
        let request = if parsed {
            Outgoing::Parsed(exchange.request)
        } else {
            let mut bytes = Vec::new();
            wire::serialize(&exchange.request, &self.shared.dest, &mut bytes);
            Outgoing::Wire {
                bytes,
                head: is_head(&exchange.request.method),
                idempotent: is_idempotent(&exchange.request.method),
            }
        };
        Ready {
            endpoint,
            request,
            recorded,
        }
    }

    fn endpoint(&mut self, request: &Request) -> u32 {
        let method = &request.method;
        if method.bytes().any(|b| b.is_ascii_lowercase()) {
            self.endpoint_of(&method.to_ascii_uppercase(), request.path_and_query())
        } else {
            self.endpoint_of(method, request.path_and_query())
        }
    }

    /// The endpoint id of a request: `method` in upper case, its recorded path and query.
    fn endpoint_of(&mut self, method: &str, path_and_query: &str) -> u32 {
        let templated = self.templates.as_ref().and_then(|t| {
            let m = t.classify(method, path_and_query);
            let e = t.endpoints().get(m.endpoint)?;
            (!e.catch_all).then(|| e.path())
        });
        let path = templated
            .as_deref()
            .unwrap_or_else(|| path_and_query.split('?').next().unwrap_or(path_and_query));
        // Looked up by `METHOD path` in a reused buffer: no allocation once an endpoint is known.
        self.scratch.clear();
        self.scratch.push_str(method);
        self.scratch.push(' ');
        self.scratch.push_str(path);
        if let Some(&i) = self.names.get(self.scratch.as_str()) {
            return i;
        }
        let mut table = self
            .shared
            .endpoints
            .write()
            .unwrap_or_else(|p| p.into_inner());
        let (key, name) = if self.names.len() >= MAX_ENDPOINTS {
            (format!("{method} {OTHER}"), OTHER.to_string())
        } else {
            (self.scratch.clone(), path.to_string())
        };
        if let Some(&i) = self.names.get(&key) {
            return i;
        }
        let i = table.len() as u32;
        table.push((method.to_string(), name));
        self.names.insert(key, i);
        i
    }

    /// [`endpoint_of`](Self::endpoint_of) for a spooled `METHOD path?query`, remembered by those
    /// bytes so that a repeated request costs one lookup.
    fn endpoint_of_key(&mut self, key: &[u8]) -> u32 {
        if let Some(&i) = self.by_key.get(key) {
            return i;
        }
        let text = String::from_utf8_lossy(key);
        let (method, pq) = text.split_once(' ').unwrap_or((&text, "/"));
        let i = self.endpoint_of(method, pq);
        // A recording with an id in every query would grow this without bound: start over.
        if self.by_key.len() >= KEY_CACHE {
            self.by_key.clear();
        }
        self.by_key.insert(key.to_vec(), i);
        i
    }

    fn prepare_spooled(&mut self, spooled: spool::Spooled<'_>) -> Prepared {
        match spooled {
            spool::Spooled::Send {
                start_ns,
                conn,
                key,
                bytes,
                head,
                idempotent,
            } => Prepared {
                start_ns,
                conn,
                what: Ok(Ready {
                    endpoint: self.endpoint_of_key(key),
                    request: Outgoing::Wire {
                        bytes,
                        head,
                        idempotent,
                    },
                    recorded: None,
                }),
            },
            spool::Spooled::Skip {
                start_ns,
                conn,
                reason,
            } => Prepared {
                start_ns,
                conn,
                what: Err(reason),
            },
        }
    }
}

/// Spooled endpoint keys remembered at most.
const KEY_CACHE: usize = 1 << 16;

fn is_head(method: &str) -> bool {
    method.eq_ignore_ascii_case("HEAD")
}

/// Whether a request may be sent again on a fresh connection when a kept-alive one turns out
/// closed (RFC 9110 idempotent methods).
fn is_idempotent(method: &str) -> bool {
    ["GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"]
        .iter()
        .any(|m| method.eq_ignore_ascii_case(m))
}

/// Sets the calling thread's timer slack to 1 ns: the feeder's sleeps then end when asked
/// instead of up to 50 µs (Linux's default slack) later, which would show as schedule lag.
fn tight_timer_slack() {
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_TIMERSLACK takes one integer argument and only changes the calling
    // thread's timer slack.
    unsafe {
        libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong, 0, 0, 0);
    }
}

/// Where the reader thread gets exchanges.
enum Source {
    Stream {
        first: Exchanges,
        open: OpenRecording,
    },
    Spool(Spool),
}

/// Reads a spool (again and again when `looped`) into batches for the feeder, like
/// [`read_ahead`] does with a recording.
fn read_spool(
    spool: &Spool,
    looped: bool,
    preparer: &mut Preparer,
    tx: std::sync::mpsc::SyncSender<Fed>,
) {
    let failed = |e: std::io::Error| {
        Fed::Failed(format!("cannot read the replay's temporary file back: {e}"))
    };
    loop {
        let mut reader = match spool.read() {
            Ok(r) => r,
            Err(e) => {
                let _ = tx.send(failed(e));
                return;
            }
        };
        let mut batch = Batcher::new(&tx);
        loop {
            match reader.next() {
                Ok(Some(spooled)) => {
                    if !batch.push(preparer.prepare_spooled(spooled)) {
                        return;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    batch.flush();
                    let _ = tx.send(failed(e));
                    return;
                }
            }
        }
        if !batch.flush() {
            return;
        }
        if tx.send(Fed::PassEnd).is_err() || !looped || spool.records() == 0 {
            return;
        }
    }
}

/// What the reader thread hands the feeder.
enum Fed {
    /// The next exchanges, in order.
    Batch(Vec<Prepared>),
    /// The recording ended (a new pass follows when looping).
    PassEnd,
    /// The recording could not be read further.
    Failed(String),
}

/// Exchanges per batch: one channel hand-off (and at most one thread wake-up) per batch.
const READ_AHEAD_BATCH: usize = 64;
/// Batches read ahead at most: ~2,000 exchanges.
const READ_AHEAD_BATCHES: usize = 32;

/// Gathers prepared exchanges into batches for the feeder.
struct Batcher<'a> {
    tx: &'a std::sync::mpsc::SyncSender<Fed>,
    batch: Vec<Prepared>,
}

impl<'a> Batcher<'a> {
    fn new(tx: &'a std::sync::mpsc::SyncSender<Fed>) -> Batcher<'a> {
        Batcher {
            tx,
            batch: Vec::with_capacity(READ_AHEAD_BATCH),
        }
    }

    /// Adds one; false when the feeder hung up.
    fn push(&mut self, prepared: Prepared) -> bool {
        self.batch.push(prepared);
        self.batch.len() < READ_AHEAD_BATCH || self.flush()
    }

    /// Sends what is gathered; false when the feeder hung up.
    fn flush(&mut self) -> bool {
        if self.batch.is_empty() {
            return true;
        }
        let full = std::mem::replace(&mut self.batch, Vec::with_capacity(READ_AHEAD_BATCH));
        self.tx.send(Fed::Batch(full)).is_ok()
    }
}

/// Reads the recording (again and again when `looped`) into batches for the feeder; ends when
/// the feeder hangs up, at the end, or at the first error.
fn read_ahead(
    first: Exchanges,
    mut open: OpenRecording,
    looped: bool,
    preparer: &mut Preparer,
    tx: std::sync::mpsc::SyncSender<Fed>,
) {
    let mut current = Some(first);
    while let Some(exchanges) = current.take() {
        let mut any = false;
        let mut batch = Batcher::new(&tx);
        for item in exchanges {
            match item {
                Ok(e) => {
                    any = true;
                    if !batch.push(preparer.prepare(e)) {
                        return;
                    }
                }
                Err(e) => {
                    batch.flush();
                    let _ = tx.send(Fed::Failed(e));
                    return;
                }
            }
        }
        if !batch.flush() {
            return;
        }
        if tx.send(Fed::PassEnd).is_err() || !looped || !any {
            return;
        }
        match open() {
            Ok(r) => current = Some(r),
            Err(e) => {
                let _ = tx.send(Fed::Failed(e));
                return;
            }
        }
    }
}

/// Lowers the calling thread's scheduling priority (nice 10). The reader parses in bursts of
/// thousands of exchanges; on a core it shares with the feeder and the connections (a generator
/// pinned to one core), those bursts would delay the requests due meanwhile. At a lower
/// priority the feeder and the connections run first when they wake, and the reader uses what
/// is left, which is plenty: it is far ahead.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: gettid has no arguments; setpriority changes the nice value of the calling thread
    // (Linux applies PRIO_PROCESS with a thread id to that thread alone).
    unsafe {
        let tid = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 10);
    }
}

/// A stable spread of connection ids over lanes.
fn mix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x
}

/// Whether a recorded response may carry a session value worth learning (so it is kept).
pub(crate) fn may_issue_session(response: Option<&mynah_traffic::Response>) -> bool {
    let Some(r) = response else { return false };
    r.headers.iter().any(|h| {
        let n = h.name.to_ascii_lowercase();
        n == "set-cookie"
            || n.contains("token")
            || n.contains("session")
            || n.contains("csrf")
            || n.contains("xsrf")
            || n.contains("auth")
    }) || r
        .headers
        .get_str("content-type")
        .is_some_and(|t| t.to_ascii_lowercase().contains("json"))
        && r.body.len() <= KEEP_BODY
}

/// One target connection and the recorded requests it carries.
struct Lane {
    shared: Arc<Shared>,
    client: Client,
    pending: Arc<AtomicU32>,
    shard: usize,
    /// The serialized request, reused.
    wire: Vec<u8>,
}

/// Counts a lane down however it ends (a panic included).
struct LaneGuard(Arc<Shared>);

impl Drop for LaneGuard {
    fn drop(&mut self) {
        self.0.lanes.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Lane {
    async fn run(mut self, mut rx: mpsc::Receiver<Job>, idle: Option<Duration>) {
        let _guard = LaneGuard(self.shared.clone());
        loop {
            let job = match idle {
                None => rx.recv().await,
                Some(idle) => match tokio::time::timeout(idle, rx.recv()).await {
                    Ok(job) => job,
                    Err(_) => {
                        // Idle: refuse new jobs, then finish any that raced in.
                        rx.close();
                        rx.recv().await
                    }
                },
            };
            let Some(job) = job else { break };
            if !self.shared.stop.load(Ordering::Acquire) {
                self.send(job).await;
            }
            self.pending.fetch_sub(1, Ordering::AcqRel);
        }
        self.client.close();
    }

    async fn send(&mut self, mut job: Job) {
        let shared = self.shared.clone();
        if shared.paced {
            let due = shared.clock.start + Duration::from_nanos(job.at_ns);
            if due > Instant::now() + EARLY {
                tokio::time::sleep_until(tokio::time::Instant::from_std(due)).await;
            }
            let lag = Instant::now().saturating_duration_since(due);
            let mut lags = shared.lags.lock().unwrap_or_else(|p| p.into_inner());
            lags.push(lag.as_micros() as u64);
        }
        let (bytes, head, idempotent) = match &mut job.request {
            Outgoing::Wire {
                bytes,
                head,
                idempotent,
            } => (&bytes[..], *head, *idempotent),
            Outgoing::Parsed(request) => {
                if let Some(sessions) = &shared.sessions {
                    let n = sessions.apply(request);
                    if n > 0 {
                        shared.substitutions.fetch_add(n as u64, Ordering::Relaxed);
                    }
                }
                self.wire.clear();
                wire::serialize(request, &shared.dest, &mut self.wire);
                (
                    &self.wire[..],
                    is_head(&request.method),
                    is_idempotent(&request.method),
                )
            }
        };
        let keep = if job.recorded.is_some() { KEEP_BODY } else { 0 };
        let started = Instant::now();
        let result = self
            .client
            .send_wire(&shared.dest.origin, bytes, head, idempotent, keep)
            .await;
        let ended = Instant::now();
        shared.sent.fetch_add(1, Ordering::Relaxed);
        let latency_us = Some(ended.saturating_duration_since(started).as_micros() as u64);
        let sample = match result {
            Ok(response) => {
                let recorded_status = job.recorded.as_ref().map(|r| r.status);
                let failure = (response.status >= 400 && recorded_status != Some(response.status))
                    .then(|| {
                        Box::new((FailureKind::Status, format!("status {}", response.status)))
                    });
                let bytes = response.bytes_received;
                if let Some(recorded) = &job.recorded {
                    let replayed = to_traffic(&response);
                    self.learn_and_compare(
                        job.endpoint,
                        head || response.body_truncated,
                        recorded,
                        &replayed,
                    );
                }
                Sample {
                    endpoint: job.endpoint,
                    at: shared.clock.offset(ended),
                    latency_us,
                    bytes,
                    failure,
                }
            }
            Err(f) => Sample {
                endpoint: job.endpoint,
                at: shared.clock.offset(ended),
                latency_us: None,
                bytes: 0,
                failure: Some(Box::new((f.kind, f.message))),
            },
        };
        shared.sink.push(self.shard, sample);
    }

    /// `no_body`: a HEAD request, or a replayed body cut at the keep limit: bodies are not
    /// compared.
    fn learn_and_compare(
        &self,
        endpoint: u32,
        no_body: bool,
        recorded: &mynah_traffic::Response,
        replayed: &mynah_traffic::Response,
    ) {
        let shared = &self.shared;
        if let Some(sessions) = &shared.sessions {
            sessions.learn(recorded, replayed);
        }
        let Some(comparer) = &shared.comparer else {
            return;
        };
        let mut recorded = recorded.clone();
        let mut cut;
        let replayed = if no_body {
            recorded.body.clear();
            cut = replayed.clone();
            cut.body.clear();
            &cut
        } else {
            replayed
        };
        let is_mapped =
            |a: &str, b: &str| shared.sessions.as_ref().is_some_and(|s| s.is_mapped(a, b));
        let diffs = comparer.compare(&recorded, replayed, &is_mapped);
        let (method, name) = {
            let table = shared.endpoints.read().unwrap_or_else(|p| p.into_inner());
            table.get(endpoint as usize).cloned().unwrap_or_default()
        };
        let mut acc = shared.compare.lock().unwrap_or_else(|p| p.into_inner());
        acc.compared += 1;
        if !diffs.is_empty() {
            acc.mismatched += 1;
        }
        let i = endpoint as usize;
        if acc.endpoints.len() <= i {
            acc.endpoints.resize(i + 1, None);
        }
        if acc.endpoints[i].is_none() {
            acc.order.push(endpoint);
            acc.endpoints[i] = Some(EndpointCompare {
                method: method.clone(),
                name: name.clone(),
                ..EndpointCompare::default()
            });
        }
        if let Some(e) = acc.endpoints[i].as_mut() {
            e.compared += 1;
            if !diffs.is_empty() {
                e.mismatched += 1;
            }
            for kind in [DiffKind::Status, DiffKind::Header, DiffKind::Body] {
                if diffs.iter().any(|d| d.kind == kind) {
                    e.by_kind[kind as usize] += 1;
                }
            }
        }
        for d in diffs {
            let kept = acc.examples.len();
            let per = acc.examples_per.entry(endpoint).or_default();
            if *per >= EXAMPLES_PER_ENDPOINT || kept >= EXAMPLES_MAX {
                break;
            }
            *per += 1;
            acc.examples.push(CompareExample {
                method: method.clone(),
                name: name.clone(),
                difference: d,
            });
        }
    }
}

/// The replayed response in the traffic model, for the session map and the comparer: body
/// de-chunked (so no Transfer-Encoding) but still content-coded, as `BodyForm::Wire` says.
pub(crate) fn to_traffic(r: &client::WireResponse) -> mynah_traffic::Response {
    let mut headers = Headers::new();
    for (name, value) in r.headers.iter() {
        if name.eq_ignore_ascii_case("transfer-encoding") {
            continue;
        }
        headers.push(name, value.to_vec());
    }
    mynah_traffic::Response {
        version: mynah_traffic::Version::Http11,
        status: r.status,
        reason: String::new(),
        headers,
        body: r.body.to_vec(),
        body_form: BodyForm::Wire,
    }
}

struct Collector {
    buf: Vec<Sample>,
    /// Where the statistics keep each endpoint of the table (see `collect::record`).
    slots: Vec<usize>,
    lag: hdrhistogram::Histogram<u64>,
    lag_buf: Vec<u64>,
    /// The worst lag (µs) since the last tick.
    tick_worst_lag: u64,
    next_tick: Instant,
    connections_max: u64,
    dropped_seen: u64,
    planned: Option<Duration>,
    concurrency: u64,
    rate: Option<f64>,
}

impl Collector {
    fn collect(
        &mut self,
        shared: &Shared,
        stats: &mut RunStats,
        observer: &mut dyn Observer,
        stopping: bool,
    ) {
        let lanes = shared.lanes.load(Ordering::Relaxed);
        self.connections_max = self.connections_max.max(lanes);
        stats.set_users(lanes);
        shared.sink.drain(&mut self.buf);
        {
            let table = shared.endpoints.read().unwrap_or_else(|p| p.into_inner());
            record(stats, &table, &mut self.slots, &shared.clock, &mut self.buf);
        }
        {
            let mut lags = shared.lags.lock().unwrap_or_else(|p| p.into_inner());
            std::mem::swap(&mut *lags, &mut self.lag_buf);
        }
        for us in self.lag_buf.drain(..) {
            self.lag.saturating_record(us.max(1));
            self.tick_worst_lag = self.tick_worst_lag.max(us);
        }
        let dropped = shared.dropped.load(Ordering::Relaxed);
        stats.record_dropped(dropped - self.dropped_seen);
        self.dropped_seen = dropped;
        let now = Instant::now();
        if now >= self.next_tick {
            self.next_tick = now + TICK_EVERY;
            let progress = self.progress(shared, stopping);
            // The generator-health watch: a lag that keeps growing means mynah, not the
            // target, is what the figures describe.
            observer.schedule_lag(Duration::from_micros(std::mem::take(
                &mut self.tick_worst_lag,
            )));
            observer.tick(stats, &progress);
        }
    }

    fn progress(&self, shared: &Shared, stopping: bool) -> Progress {
        Progress {
            elapsed: shared.clock.elapsed(),
            planned: self.planned,
            users: shared.lanes.load(Ordering::Relaxed),
            target_users: self.concurrency,
            arrival_rate: self.rate,
            dropped: shared.dropped.load(Ordering::Relaxed),
            stage: None,
            stopping,
            unit: Some("connections"),
        }
    }
}
