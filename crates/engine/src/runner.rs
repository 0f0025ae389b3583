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
        buf: Vec::new(),
        next_tick: clock.start + TICK_EVERY,
        users_max: 0,
        dropped_seen: 0,
        planned,
    };
    let controller = tokio::spawn(control(shared.clone(), registry.clone(), live.clone()));
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
    next_tick: Instant,
    users_max: u64,
    dropped_seen: u64,
    planned: Option<Duration>,
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
        stats.set_users(users);
        shared.sink.drain(&mut self.buf);
        record(stats, &shared.plan.endpoints, &shared.clock, &mut self.buf);
        let dropped = live.dropped.load(Ordering::Relaxed);
        stats.record_dropped(dropped - self.dropped_seen);
        self.dropped_seen = dropped;
        let now = Instant::now();
        if now >= self.next_tick {
            self.next_tick = now + TICK_EVERY;
            let progress = self.progress(shared, live, stopping);
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

/// Follows the load shape until it ends (never, for a run without a run time).
async fn control(shared: Arc<Shared>, registry: Arc<Mutex<Registry>>, live: Arc<Live>) {
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
