//! Runs a [`Plan`]: spawns and stops users to follow the load shape, collects samples, calls the
//! [`Observer`] every second, and stops cleanly at the end or on request.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mynah_scenario::Load;
use mynah_stats::RunStats;
use tokio::task::JoinSet;

use crate::client;
use crate::collect::{record, Clock, Sample, Sink};
use crate::plan::{arrival_max_users, BaseUrl, Plan};
use crate::user::{Shared, User, UserCtl};

/// Run-time settings that are not part of the plan.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// After the run time (or a stop request), how long in-flight tasks may finish before they
    /// are abandoned.
    pub stop_timeout: Duration,
}

/// Where a run stands; given to the [`Observer`] every second.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    /// Time since the run started.
    pub elapsed: Duration,
    /// Planned run length, when the load shape has one.
    pub planned: Option<Duration>,
    /// Users running now.
    pub users: u64,
    /// Users the load shape wants now (closed model) or the cap (open model).
    pub target_users: u64,
    /// Open model: iterations started per second right now by the shape.
    pub arrival_rate: Option<f64>,
    /// Open model: iterations that could not start because every user was busy.
    pub dropped: u64,
    /// Current stage (0-based) and stage count, for staged shapes.
    pub stage: Option<(usize, usize)>,
    /// The run is past its end and waiting for in-flight tasks.
    pub stopping: bool,
    /// What `users` counts, for display: `None` for virtual users, `Some("connections")` for a
    /// replay.
    pub unit: Option<&'static str>,
}

/// Receives the statistics while a run goes on (the live terminal view, a dashboard).
///
/// Called from the collector thread: keep it quick, it delays the next tick.
pub trait Observer: Send {
    /// Called about once a second with the statistics so far.
    fn tick(&mut self, stats: &RunStats, progress: &Progress);
    /// Called once when the run is over, before reports are written.
    fn finish(&mut self, stats: &RunStats, progress: &Progress) {
        let _ = (stats, progress);
    }
    /// Open model (and replay): called just before each [`Observer::tick`] with the worst
    /// schedule lag seen since the previous tick: how late an iteration started compared with
    /// its scheduled time. A lag that keeps growing means the generator cannot keep its
    /// schedule, so the figures describe the generator rather than the target.
    fn schedule_lag(&mut self, worst: Duration) {
        let _ = worst;
    }
    /// Prints a one-line notice (a warning) in the middle of the run; a view that redraws in
    /// place clears itself first so the line stays readable.
    fn notice(&mut self, line: &str) {
        eprintln!("{line}");
    }
}

/// Steers a run from outside while it goes on (the web dashboard): change the user count, stop,
/// reset the statistics. Cheap to clone; every clone steers the same run.
///
/// Nothing here is on the request path: the controller and the collector look at it, the
/// virtual users never do.
#[derive(Clone, Default)]
pub struct RunControl {
    inner: Arc<ControlInner>,
}

#[derive(Default)]
struct ControlInner {
    /// The latest user-count change not yet applied by the controller.
    users: Mutex<Option<UsersChange>>,
    users_changed: tokio::sync::Notify,
    stop: std::sync::atomic::AtomicBool,
    stop_requested: tokio::sync::Notify,
    reset: std::sync::atomic::AtomicBool,
}

/// A user count set from outside: it replaces the load shape from then on (like Locust's web UI);
/// the run still ends at the shape's planned end, if it has one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct UsersChange {
    /// Users to run.
    pub users: u64,
    /// Users started (or stopped) per second on the way there; above 0.
    pub spawn_rate: f64,
}

impl RunControl {
    /// A new handle, not yet attached to a run (see [`run_controlled`]).
    pub fn new() -> RunControl {
        RunControl::default()
    }

    /// Moves a closed-model run to `change.users` at `change.spawn_rate` per second. Open-model
    /// runs (arrival rates) ignore it: their load is a rate, not a user count.
    pub fn set_users(&self, change: UsersChange) {
        *self.inner.users.lock().unwrap_or_else(|p| p.into_inner()) = Some(change);
        self.inner.users_changed.notify_one();
    }

    /// Stops the run as Ctrl-C would: users finish their current task within the stop timeout.
    pub fn stop(&self) {
        self.inner.stop.store(true, Ordering::Release);
        self.inner.stop_requested.notify_waiters();
    }

    /// Whether [`RunControl::stop`] was called.
    pub fn stop_requested(&self) -> bool {
        self.inner.stop.load(Ordering::Acquire)
    }

    /// Starts the statistics over at the next collection (within 100 ms): counts, percentiles,
    /// failures and the time series begin again from now, as in Locust's "Reset statistics".
    pub fn reset_stats(&self) {
        self.inner.reset.store(true, Ordering::Release);
    }

    /// Resolves once [`RunControl::stop`] was called (for runs driven by another engine, such
    /// as a replay, to add to their own stop condition).
    pub async fn stopped(&self) {
        loop {
            let notified = self.inner.stop_requested.notified();
            if self.stop_requested() {
                return;
            }
            notified.await;
        }
    }

    /// The next user-count change, waiting for one.
    async fn next_users(&self) -> UsersChange {
        loop {
            let notified = self.inner.users_changed.notified();
            if let Some(c) = self
                .inner
                .users
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take()
            {
                return c;
            }
            notified.await;
        }
    }

    fn take_reset(&self) -> bool {
        self.inner.reset.swap(false, Ordering::AcqRel)
    }
}

/// What a finished run produced.
#[derive(Debug)]
pub struct RunOutcome {
    /// Every request's outcome.
    pub stats: RunStats,
    /// The most users running at once.
    pub users_max: u64,
    /// The run was stopped early by the caller (Ctrl-C).
    pub interrupted: bool,
    /// The run was stopped by an error (e.g. a `unique` data feed ran out).
    pub fatal: Option<String>,
}

/// How often samples are folded into the statistics.
const COLLECT_EVERY: Duration = Duration::from_millis(100);
/// How often the observer is called.
const TICK_EVERY: Duration = Duration::from_secs(1);

/// Checks, before anything is sent, that the host accepts TCP connections, so an unreachable
/// host is reported at once instead of as thousands of failures.
pub async fn preflight(plan: &Plan) -> Result<(), String> {
    match &plan.base {
        Some(base) => {
            reachable(
                base,
                plan.client.connect_timeout,
                "is the server running? The host comes from --host or `host:` in the scenario",
            )
            .await
        }
        None => Ok(()),
    }
}

/// Whether `base`'s host accepts a TCP connection within `timeout`; the error says which origin,
/// why, and `hint`.
pub async fn reachable(base: &BaseUrl, timeout: Duration, hint: &str) -> Result<(), String> {
    let host = base.authority.host();
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = base
        .authority
        .port_u16()
        .unwrap_or(if base.scheme == http::uri::Scheme::HTTPS {
            443
        } else {
            80
        });
    let origin = base.origin();
    let attempt = async {
        let addrs: Vec<_> = tokio::net::lookup_host((host, port))
            .await
            .map_err(|e| format!("cannot resolve {host}: {e}"))?
            .collect();
        let mut last = format!("cannot resolve {host}");
        for addr in addrs {
            match tokio::net::TcpStream::connect(addr).await {
                Ok(_) => return Ok(()),
                Err(e) => last = e.to_string(),
            }
        }
        Err(last)
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(format!("cannot connect to {origin} ({e}): {hint}")),
        Err(_) => Err(format!(
            "cannot connect to {origin} (no answer within {}s): {hint}",
            timeout.as_secs_f64()
        )),
    }
}

/// Live figures the controller updates and the collector reads.
#[derive(Default)]
struct Live {
    users: AtomicU64,
    target: AtomicU64,
    dropped: AtomicU64,
    rate_milli: AtomicU64,
    stage: AtomicU64,
    stages: AtomicU64,
}

/// The users of a run, by class; only the controller and the stop path touch it.
#[derive(Default)]
struct Registry {
    running: Vec<Vec<Arc<UserCtl>>>,
    stopping: Vec<Arc<UserCtl>>,
    tasks: JoinSet<()>,
    next_index: u64,
    /// Where users run: one single-threaded runtime per core (see [`Workers`]).
    workers: Vec<tokio::runtime::Handle>,
}

impl Registry {
    fn running(&self) -> u64 {
        self.running.iter().map(|c| c.len() as u64).sum()
    }

    fn spawn(&mut self, shared: &Arc<Shared>, class: usize, open: bool) -> Arc<UserCtl> {
        let ctl = Arc::new(UserCtl::default());
        let user = User::new(shared.clone(), ctl.clone(), self.next_index, class);
        self.next_index += 1;
        let worker = &self.workers[(self.next_index as usize) % self.workers.len()];
        if open {
            self.tasks.spawn_on(user.run_open(), worker);
        } else {
            self.tasks.spawn_on(user.run_closed(), worker);
        }
        self.running[class].push(ctl.clone());
        ctl
    }

    /// Starts one user of the class furthest below its share at `running + 1` users.
    fn spawn_next(&mut self, plan: &Plan, shared: &Arc<Shared>, open: bool) -> Arc<UserCtl> {
        let want = plan.class_counts(self.running() + 1);
        let class = self.pick(&want, |have, want| want.saturating_sub(have));
        self.spawn(shared, class, open)
    }

    /// Stops one user of the class furthest above its share at `running - 1` users.
    fn stop_next(&mut self, plan: &Plan) {
        let want = plan.class_counts(self.running().saturating_sub(1));
        let class = self.pick(&want, |have, want| have.saturating_sub(want));
        if let Some(ctl) = self.running[class].pop() {
            ctl.stop();
            self.stopping.push(ctl);
        }
    }

    fn pick(&self, want: &[u64], gap: impl Fn(u64, u64) -> u64) -> usize {
        (0..want.len())
            .max_by_key(|&i| {
                (
                    gap(self.running[i].len() as u64, want[i]),
                    std::cmp::Reverse(i),
                )
            })
            .unwrap_or(0)
    }

    fn stop_all(&mut self) {
        for class in &mut self.running {
            for ctl in class.drain(..) {
                ctl.stop();
                self.stopping.push(ctl);
            }
        }
    }
}

/// Runs `plan` to its end (or until `stop` resolves), calling `observer` every second.
pub async fn run(
    plan: Arc<Plan>,
    options: RunOptions,
    observer: &mut dyn Observer,
    stop: impl std::future::Future<Output = ()> + Send,
) -> RunOutcome {
    run_controlled(plan, options, observer, stop, &RunControl::new()).await
}

/// [`run`], steered by `control` as well: user-count changes, a stop, statistics resets.
pub async fn run_controlled(
    plan: Arc<Plan>,
    options: RunOptions,
    observer: &mut dyn Observer,
    stop: impl std::future::Future<Output = ()> + Send,
    control: &RunControl,
) -> RunOutcome {
    let clock = Clock::new();
    // `replay` classes send recorded HTTP/1.x heads as they are: their client offers only
    // HTTP/1.1 over TLS (see `Shared::new_http1`), with no redirects followed and no HTTP/2.
    let recorded_config = client::ClientConfig {
        follow_redirects: false,
        http2_prior_knowledge: false,
        ..plan.client.clone()
    };
    let clients = client::Shared::new(plan.client.clone())
        .and_then(|c| Ok((c, client::Shared::new_http1(recorded_config)?)));
    let (client, recorded_client) = match clients {
        Ok(c) => c,
        Err(e) => {
            return RunOutcome {
                stats: RunStats::new(clock.start_unix_ns),
                users_max: 0,
                interrupted: false,
                fatal: Some(e),
            }
        }
    };
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let shared = Arc::new(Shared {
        plan: plan.clone(),
        client,
        recorded_client,
        sink: Sink::new(threads * 4),
        clock,
        fatal: Mutex::new(None),
        fatal_raised: tokio::sync::Notify::new(),
        idle: Mutex::new(Vec::new()),
        lag_max_us: AtomicU64::new(0),
    });
    let live = Arc::new(Live::default());
    let workers = match Workers::start(threads) {
        Ok(w) => w,
        Err(e) => {
            return RunOutcome {
                stats: RunStats::new(clock.start_unix_ns),
                users_max: 0,
                interrupted: false,
                fatal: Some(format!("cannot start worker threads: {e}")),
            }
        }
    };
    let registry = Arc::new(Mutex::new(Registry {
        running: vec![Vec::new(); plan.classes.len()],
        workers: workers.handles.clone(),
        ..Registry::default()
    }));
    let planned = plan.planned_duration();

    let mut stats = RunStats::new(clock.start_unix_ns);
    let mut collector = Collector {
        slots: Vec::new(),
        buf: Vec::new(),
        next_tick: clock.start + TICK_EVERY,
        users_max: 0,
        dropped_seen: 0,
        planned,
        control: control.clone(),
    };
    let controller = tokio::spawn(steer(
        shared.clone(),
        registry.clone(),
        live.clone(),
        control.clone(),
    ));
    let mut controller = std::pin::pin!(controller);
    let mut stop = std::pin::pin!(stop);
    let mut interval = tokio::time::interval(COLLECT_EVERY);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut interrupted = false;
    loop {
        tokio::select! {
            _ = interval.tick() => {
                collector.collect(&shared, &live, &mut stats, observer, false);
                reap(&shared, &registry);
            }
            _ = &mut controller => break,
            _ = &mut stop => { interrupted = true; break; }
            _ = control.stopped() => { interrupted = true; break; }
            _ = shared.fatal_raised.notified() => break,
        }
    }
    controller.abort();

    // Stop: users finish their current task (waits are cut short) and run on_stop, for at most
    // the stop timeout; whatever is still running then is abandoned.
    let mut tasks = {
        let mut reg = registry.lock().unwrap_or_else(|p| p.into_inner());
        reg.stop_all();
        std::mem::take(&mut reg.tasks)
    };
    for ctl in shared
        .idle
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .drain(..)
    {
        ctl.stop();
    }
    let deadline = tokio::time::Instant::now() + options.stop_timeout;
    loop {
        tokio::select! {
            _ = interval.tick() => collector.collect(&shared, &live, &mut stats, observer, true),
            next = tasks.join_next() => match next {
                None => break,
                Some(result) => check_panic(&shared, result),
            },
            _ = tokio::time::sleep_until(deadline) => break,
        }
    }
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
    live.users.store(0, Ordering::Relaxed);
    collector.collect(&shared, &live, &mut stats, observer, true);
    stats.finish(clock.unix_ns(clock.offset(Instant::now())));
    let progress = collector.progress(&shared, &live, true);
    observer.finish(&stats, &progress);
    let fatal = shared
        .fatal
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take();
    RunOutcome {
        stats,
        users_max: collector.users_max,
        interrupted,
        fatal,
    }
}

/// Collects users that ended; a user that panicked stops the run with an error, so a bug can
/// never pass as a quiet run with fewer requests.
fn reap(shared: &Shared, registry: &Mutex<Registry>) {
    let mut reg = registry.lock().unwrap_or_else(|p| p.into_inner());
    while let Some(result) = reg.tasks.try_join_next() {
        check_panic(shared, result);
    }
}

fn check_panic(shared: &Shared, result: Result<(), tokio::task::JoinError>) {
    if let Err(e) = result {
        if e.is_panic() {
            let payload = e.into_panic();
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            shared.raise_fatal(format!(
                "a virtual user crashed (a bug in mynah, please report it): {message}"
            ));
        }
    }
}

/// The threads virtual users run on: one single-threaded tokio runtime per core, each driving
/// its own sockets and timers. A user stays on its thread for life, so the hot path has no
/// work-stealing queues or cross-thread wake-ups (the multi-threaded scheduler cost about a
/// tenth of the CPU per request in `bench/run_throughput.sh`).
pub(crate) struct Workers {
    pub(crate) handles: Vec<tokio::runtime::Handle>,
    stops: Vec<tokio::sync::oneshot::Sender<()>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Workers {
    pub(crate) fn start(n: usize) -> std::io::Result<Workers> {
        let mut w = Workers {
            handles: Vec::new(),
            stops: Vec::new(),
            threads: Vec::new(),
        };
        for i in 0..n.max(1) {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            w.handles.push(rt.handle().clone());
            w.stops.push(stop);
            w.threads.push(
                std::thread::Builder::new()
                    .name(format!("mynah-users-{i}"))
                    .spawn(move || {
                        rt.block_on(async {
                            let _ = stopped.await;
                        });
                        // Users abandoned at the stop timeout may still hold sockets.
                        rt.shutdown_timeout(Duration::from_millis(100));
                    })?,
            );
        }
        Ok(w)
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        for stop in self.stops.drain(..) {
            let _ = stop.send(());
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

struct Collector {
    buf: Vec<Sample>,
    /// Where the statistics keep each plan endpoint (see `collect::record`).
    slots: Vec<usize>,
    next_tick: Instant,
    users_max: u64,
    dropped_seen: u64,
    planned: Option<Duration>,
    control: RunControl,
}

impl Collector {
    fn collect(
        &mut self,
        shared: &Shared,
        live: &Live,
        stats: &mut RunStats,
        observer: &mut dyn Observer,
        stopping: bool,
    ) {
        let users = live.users.load(Ordering::Relaxed);
        self.users_max = self.users_max.max(users);
        if self.control.take_reset() {
            // Samples already buffered belong to before the reset: dropped with the old stats.
            shared.sink.drain(&mut self.buf);
            self.buf.clear();
            *stats = RunStats::new(shared.clock.unix_ns(shared.clock.offset(Instant::now())));
        }
        stats.set_users(users);
        shared.sink.drain(&mut self.buf);
        record(
            stats,
            &shared.plan.endpoints,
            &mut self.slots,
            &shared.clock,
            &mut self.buf,
        );
        let dropped = live.dropped.load(Ordering::Relaxed);
        stats.record_dropped(dropped - self.dropped_seen);
        self.dropped_seen = dropped;
        let now = Instant::now();
        if now >= self.next_tick {
            self.next_tick = now + TICK_EVERY;
            let progress = self.progress(shared, live, stopping);
            if matches!(shared.plan.load, Load::Arrival(_)) {
                let lag = shared.lag_max_us.swap(0, Ordering::Relaxed);
                observer.schedule_lag(Duration::from_micros(lag));
            }
            observer.tick(stats, &progress);
        }
    }

    fn progress(&self, shared: &Shared, live: &Live, stopping: bool) -> Progress {
        let stages = live.stages.load(Ordering::Relaxed) as usize;
        let rate = live.rate_milli.load(Ordering::Relaxed);
        Progress {
            elapsed: shared.clock.elapsed(),
            planned: self.planned,
            users: live.users.load(Ordering::Relaxed),
            target_users: live.target.load(Ordering::Relaxed),
            arrival_rate: matches!(shared.plan.load, Load::Arrival(_))
                .then(|| rate as f64 / 1000.0),
            dropped: live.dropped.load(Ordering::Relaxed),
            stage: (stages > 1).then(|| (live.stage.load(Ordering::Relaxed) as usize, stages)),
            stopping,
            unit: None,
        }
    }
}

/// Follows the load shape until it ends, or until a user count is set from outside: from then on
/// that count, until the shape's planned end (never, for a run without a run time).
async fn steer(
    shared: Arc<Shared>,
    registry: Arc<Mutex<Registry>>,
    live: Arc<Live>,
    control: RunControl,
) {
    let end = shared
        .plan
        .planned_duration()
        .map(|d| tokio::time::Instant::from_std(shared.clock.start) + d);
    let open = matches!(shared.plan.load, Load::Arrival(_));
    let mut change = tokio::select! {
        _ = follow_shape(shared.clone(), registry.clone(), live.clone()) => return,
        c = control.next_users(), if !open => c,
    };
    live.stages.store(1, Ordering::Relaxed);
    live.stage.store(0, Ordering::Relaxed);
    loop {
        let left = end.map(|e| e.saturating_duration_since(tokio::time::Instant::now()));
        let rate = if change.spawn_rate.is_finite() && change.spawn_rate > 0.0 {
            change.spawn_rate
        } else {
            crate::plan::DEFAULT_SPAWN_RATE
        };
        tokio::select! {
            _ = closed_stage(&shared, &registry, &live, change.users, rate, left) => return,
            c = control.next_users() => change = c,
        }
    }
}

/// Follows the load shape until it ends (never, for a run without a run time).
async fn follow_shape(shared: Arc<Shared>, registry: Arc<Mutex<Registry>>, live: Arc<Live>) {
    let plan = shared.plan.clone();
    match &plan.load {
        Load::Users {
            users,
            spawn_rate,
            run_time,
        } => {
            live.stages.store(1, Ordering::Relaxed);
            closed_stage(
                &shared,
                &registry,
                &live,
                u64::from(*users),
                *spawn_rate,
                *run_time,
            )
            .await;
        }
        Load::Stages(stages) => {
            live.stages.store(stages.len() as u64, Ordering::Relaxed);
            for (i, s) in stages.iter().enumerate() {
                live.stage.store(i as u64, Ordering::Relaxed);
                closed_stage(
                    &shared,
                    &registry,
                    &live,
                    u64::from(s.users),
                    s.spawn_rate,
                    Some(s.duration),
                )
                .await;
            }
        }
        Load::Arrival(stages) => {
            live.stages.store(stages.len() as u64, Ordering::Relaxed);
            for (i, s) in stages.iter().enumerate() {
                live.stage.store(i as u64, Ordering::Relaxed);
                arrival_stage(&shared, &registry, &live, s).await;
            }
        }
    }
}

/// Closed model: moves the user count to `target` at `rate` users per second (the first change
/// at once), then holds it until the stage ends.
async fn closed_stage(
    shared: &Arc<Shared>,
    registry: &Mutex<Registry>,
    live: &Live,
    target: u64,
    rate: f64,
    duration: Option<Duration>,
) {
    let plan = &shared.plan;
    live.target.store(target, Ordering::Relaxed);
    let start = tokio::time::Instant::now();
    let end = duration.map(|d| start + d);
    let mut done = 0u64;
    loop {
        let now = tokio::time::Instant::now();
        if end.is_some_and(|e| now >= e) {
            return;
        }
        let due = ((now - start).as_secs_f64() * rate).floor() as u64 + 1;
        let running = {
            let mut reg = registry.lock().unwrap_or_else(|p| p.into_inner());
            let mut running = reg.running();
            while done < due && running != target {
                if running < target {
                    reg.spawn_next(plan, shared, false);
                } else {
                    reg.stop_next(plan);
                }
                done += 1;
                running = reg.running();
            }
            running
        };
        live.users.store(running, Ordering::Relaxed);
        if running == target {
            match end {
                Some(e) => tokio::time::sleep_until(e).await,
                None => std::future::pending::<()>().await,
            }
            return;
        }
        let next =
            start + Duration::try_from_secs_f64(done as f64 / rate).unwrap_or(Duration::MAX / 4);
        let next = end.map_or(next, |e| next.min(e));
        tokio::time::sleep_until(next).await;
    }
}

/// Open model: starts iterations at `stage.rate` per second on a fixed schedule, handing each to
/// an idle user, or a new one while under the cap, or counting it as dropped.
async fn arrival_stage(
    shared: &Arc<Shared>,
    registry: &Mutex<Registry>,
    live: &Live,
    stage: &mynah_scenario::ArrivalStage,
) {
    let cap = u64::from(arrival_max_users(stage));
    live.target.store(cap, Ordering::Relaxed);
    live.rate_milli
        .store((stage.rate * 1000.0) as u64, Ordering::Relaxed);
    let start = tokio::time::Instant::now();
    let end = start + stage.duration;
    if stage.rate <= 0.0 {
        tokio::time::sleep_until(end).await;
        return;
    }
    let interval = 1.0 / stage.rate;
    let mut k = 0u64;
    loop {
        let at =
            start + Duration::try_from_secs_f64(k as f64 * interval).unwrap_or(Duration::MAX / 4);
        if at >= end {
            tokio::time::sleep_until(end).await;
            return;
        }
        tokio::time::sleep_until(at).await;
        // Every iteration due by now, each with its own scheduled time.
        let now = tokio::time::Instant::now();
        loop {
            let at = start
                + Duration::try_from_secs_f64(k as f64 * interval).unwrap_or(Duration::MAX / 4);
            if at > now || at >= end {
                break;
            }
            k += 1;
            let at_ns = shared.clock.offset(at.into_std());
            let idle = shared.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
            match idle {
                Some(ctl) => ctl.start_iteration(at_ns),
                None => {
                    let mut reg = registry.lock().unwrap_or_else(|p| p.into_inner());
                    if reg.running() < cap {
                        reg.spawn_next(&shared.plan, shared, true);
                        live.users.store(reg.running(), Ordering::Relaxed);
                    } else {
                        live.dropped.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A keep-alive HTTP/1.1 server on loopback answering every request `200` with no body.
    async fn ok_server() -> std::net::SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    let mut head = Vec::new();
                    loop {
                        let Ok(n) = s.read(&mut buf).await else {
                            return;
                        };
                        if n == 0 {
                            return;
                        }
                        head.extend_from_slice(&buf[..n]);
                        while let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
                            head.drain(..end + 4);
                            let reply = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
                            if s.write_all(reply).await.is_err() {
                                return;
                            }
                        }
                    }
                });
            }
        });
        addr
    }

    fn plan(addr: std::net::SocketAddr, load: &str) -> Arc<Plan> {
        let text = format!(
            "host: http://{addr}\nusers:\n  - name: u\n    wait_time: {{ constant: 0.02 }}\n    tasks:\n      - request: {{ method: GET, path: / }}\nload: {load}\n"
        );
        let scenario = mynah_scenario::parse(&text, std::path::Path::new("t.yaml")).unwrap();
        let options = crate::PlanOptions {
            host: None,
            load: None,
            tags: Vec::new(),
            exclude_tags: Vec::new(),
            base_dir: ".".into(),
            insecure: false,
            http2: false,
        };
        Arc::new(Plan::compile(&scenario, &options).unwrap())
    }

    /// Steers the run from inside the observer, one step per condition met, as the dashboard
    /// would from outside.
    struct Steer {
        control: RunControl,
        step: usize,
        before_reset: u64,
        lags: usize,
    }

    impl Observer for Steer {
        fn tick(&mut self, stats: &RunStats, progress: &Progress) {
            let requests = stats.total().requests();
            match self.step {
                0 if progress.users == 1 && requests > 0 => {
                    self.control.set_users(UsersChange {
                        users: 3,
                        spawn_rate: 100.0,
                    });
                    self.step = 1;
                }
                1 if progress.users == 3 && progress.target_users == 3 => {
                    self.before_reset = requests;
                    self.control.reset_stats();
                    self.step = 2;
                }
                2 => {
                    // The reset took effect: counting started over.
                    assert!(
                        requests < self.before_reset,
                        "{requests} >= {}",
                        self.before_reset
                    );
                    self.control.stop();
                    self.step = 3;
                }
                _ => {}
            }
        }
        fn schedule_lag(&mut self, _worst: Duration) {
            self.lags += 1;
        }
    }

    #[tokio::test]
    async fn control_changes_users_resets_and_stops() {
        let addr = ok_server().await;
        let control = RunControl::new();
        let mut steer = Steer {
            control: control.clone(),
            step: 0,
            before_reset: 0,
            lags: 0,
        };
        let outcome = tokio::time::timeout(
            Duration::from_secs(60),
            run_controlled(
                plan(addr, "{ users: 1, spawn_rate: 100, run_time: 10m }"),
                RunOptions {
                    stop_timeout: Duration::from_secs(2),
                },
                &mut steer,
                std::future::pending(),
                &control,
            ),
        )
        .await
        .expect("the run stops when asked");
        assert_eq!(steer.step, 3);
        assert!(outcome.interrupted);
        assert_eq!(outcome.users_max, 3);
        assert!(control.stop_requested());
        // Closed model: no schedule to lag behind.
        assert_eq!(steer.lags, 0);
    }

    #[tokio::test]
    async fn open_model_reports_schedule_lag_and_ignores_user_counts() {
        let addr = ok_server().await;
        let control = RunControl::new();
        control.set_users(UsersChange {
            users: 50,
            spawn_rate: 100.0,
        });
        let mut steer = Steer {
            control: RunControl::new(),
            step: 99,
            before_reset: 0,
            lags: 0,
        };
        let outcome = run_controlled(
            plan(addr, "{ arrival: [ { duration: 2s, rate: 20 } ] }"),
            RunOptions {
                stop_timeout: Duration::from_secs(2),
            },
            &mut steer,
            std::future::pending(),
            &control,
        )
        .await;
        assert!(!outcome.interrupted);
        assert!(outcome.stats.total().requests() > 0);
        assert!(outcome.users_max < 50, "{}", outcome.users_max);
        assert!(steer.lags >= 1);
    }
}
