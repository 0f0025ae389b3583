//! The live web dashboard of mynah (`mynah run SCENARIO --web`, `mynah replay ... --web`).
//!
//! mynah serves the page itself, every asset embedded in the binary (no CDN: it works offline
//! and behind firewalls). The page starts a run, changes its user count, stops it, resets the
//! statistics, and watches it live through Server-Sent Events pushed once a second: the
//! statistics per endpoint, charts, failures, errors, task ratios and the generator's own health.
//! Reports (Locust-format CSVs, summary JSON, the HTML report) download at any time, from the
//! same writers `--csv`, `--summary-json` and `--html` use.
//!
//! The pieces:
//! - [`Dashboard`]: the shared state, the HTTP server ([`Dashboard::serve`]) and the hooks the
//!   command uses around each run ([`Dashboard::run_started`], [`Dashboard::run_finished`]);
//! - [`Watch`]: the [`Observer`] wrapper that feeds the page and the [`health::Tracker`] every
//!   second, off the request path;
//! - [`health`]: mynah's own CPU and memory, and the saturation warning.
//!
//! Security: the server binds to loopback by default and then refuses requests whose `Host` is
//! not a loopback name (DNS rebinding). Bound to any other address it needs [`Auth`]. Control
//! endpoints take POST with a JSON body only and refuse cross-site requests (`Origin`,
//! `Sec-Fetch-Site`), so another site open in the same browser cannot start or stop a run.

pub mod figures;
pub mod health;
mod server;

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mynah_engine::{Observer, Plan, Progress, RunControl};
use mynah_stats::report::html::{html_report, ReportMeta};
use mynah_stats::report::locust_csv::{
    write_exceptions, write_failures, write_history, write_stats,
};
use mynah_stats::report::summary_json;
use mynah_stats::{RunStats, Threshold, ThresholdResult};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot, watch};

use figures::{Figures, Point, MAX_POINTS};
use health::Tracker;

/// Who may use a dashboard bound to a non-loopback address.
#[derive(Clone, PartialEq, Eq)]
pub enum Auth {
    /// HTTP Basic authentication (the browser asks for the user and password).
    Basic {
        /// User name.
        user: String,
        /// Password.
        password: String,
    },
    /// A shared secret: `Authorization: Bearer SECRET`, or `?token=SECRET` in the page's URL.
    Token(String),
}

impl std::fmt::Debug for Auth {
    // Never print the secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Auth::Basic { user, .. } => write!(f, "Basic({user}:***)"),
            Auth::Token(_) => write!(f, "Token(***)"),
        }
    }
}

impl std::str::FromStr for Auth {
    type Err = String;

    /// `user:password` or `token:SECRET`.
    fn from_str(s: &str) -> Result<Auth, String> {
        let Some((a, b)) = s.split_once(':') else {
            return Err("--web-auth takes user:password or token:SECRET".into());
        };
        if b.is_empty() {
            return Err("--web-auth: the password (or token) after ':' is empty".into());
        }
        if a == "token" {
            return Ok(Auth::Token(b.to_string()));
        }
        if a.is_empty() {
            return Err("--web-auth: the user before ':' is empty".into());
        }
        Ok(Auth::Basic {
            user: a.to_string(),
            password: b.to_string(),
        })
    }
}

/// Where the dashboard listens and who may use it.
#[derive(Debug, Clone)]
pub struct WebOptions {
    /// Address to bind: an IP address or `localhost`.
    pub host: String,
    /// Port; 0 picks a free one (printed with the URL).
    pub port: u16,
    /// Required unless `host` is a loopback address.
    pub auth: Option<Auth>,
}

impl WebOptions {
    /// The address to bind, or why these options are refused.
    pub fn bind_addr(&self) -> Result<SocketAddr, String> {
        let ip: IpAddr = if self.host == "localhost" {
            IpAddr::from([127, 0, 0, 1])
        } else {
            self.host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse()
                .map_err(|_| {
                    format!(
                        "--web-host {}: not an IP address (use 127.0.0.1, ::1, 0.0.0.0 or an \
                         address of this machine)",
                        self.host
                    )
                })?
        };
        if !ip.is_loopback() && self.auth.is_none() {
            return Err(format!(
                "--web-host {}: the dashboard can start and stop load tests, so on a non-loopback \
                 address it needs --web-auth user:password or --web-auth token:SECRET",
                self.host
            ));
        }
        Ok(SocketAddr::new(ip, self.port))
    }
}

/// Whether the page can start runs and change users (`run`) or only watch and stop (`replay`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// `mynah run`: every control.
    Run,
    /// `mynah replay`: the recording sets the load; the page watches and can stop.
    Replay,
}

/// What the start form is prefilled with, and how the page introduces the test.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Setup {
    /// `run` or `replay`.
    pub mode: Mode,
    /// Page title, e.g. the scenario's name.
    pub title: String,
    /// Users (closed model with a fixed count).
    pub users: Option<u64>,
    /// Users started per second.
    pub spawn_rate: Option<f64>,
    /// Target host.
    pub host: Option<String>,
    /// Run time, seconds.
    pub run_time_s: Option<f64>,
    /// The scenario's own load shape when it is not a fixed user count (stages, arrival rates),
    /// described in words: used when the form's user count is left empty.
    pub shape: Option<String>,
}

/// A start request from the page; empty fields keep the scenario's (or command line's) values.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StartRequest {
    /// Users: a fixed user count replacing the scenario's load shape.
    #[serde(default)]
    pub users: Option<u64>,
    /// Users started per second.
    #[serde(default)]
    pub spawn_rate: Option<f64>,
    /// Target host (base URL).
    #[serde(default)]
    pub host: Option<String>,
    /// Run time: `90`, `30s`, `5m`, `1h30m`; empty runs until stopped.
    #[serde(default)]
    pub run_time: Option<String>,
}

/// Parses `90` (seconds), `30s`, `5m`, `1h30m`, `250ms`.
pub fn parse_run_time(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    if let Ok(s) = t.parse::<f64>() {
        return Duration::try_from_secs_f64(s)
            .map_err(|_| format!("run time {t:?}: not a duration"));
    }
    let mut total = 0.0;
    let mut num = String::new();
    let mut chars = t.chars().peekable();
    let bad = || format!("run time {t:?}: use e.g. 90, 30s, 5m or 1h30m");
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            num.push(c);
            continue;
        }
        let n: f64 = num.parse().map_err(|_| bad())?;
        num.clear();
        let unit = match (c, chars.peek()) {
            ('m', Some('s')) => {
                chars.next();
                0.001
            }
            ('h', _) => 3600.0,
            ('m', _) => 60.0,
            ('s', _) => 1.0,
            _ => return Err(bad()),
        };
        total += n * unit;
    }
    if !num.is_empty() || t.is_empty() {
        return Err(bad());
    }
    Duration::try_from_secs_f64(total).map_err(|_| bad())
}

/// Where the current (or last) run stands, for the page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// No run yet: the page shows the start form.
    Waiting,
    /// A start was requested; the run is being prepared.
    Starting,
    /// A run is going on.
    Running,
    /// The run is stopping (in-flight tasks finishing).
    Stopping,
    /// The last run ended; its figures and reports stay available.
    Finished,
}

/// How the reports of a run are titled and judged; given by the command at each start.
#[derive(Debug, Clone, Default)]
pub struct ReportInfo {
    /// Title, scenario, host and warnings of the HTML report.
    pub meta: ReportMeta,
    /// Thresholds evaluated in the downloaded reports.
    pub thresholds: Vec<Threshold>,
    /// Top-level fields added to the downloaded summary JSON, as the command adds them to
    /// `--summary-json` (a replay's `"kind"` and `"replay"` section).
    pub summary: serde_json::Map<String, Value>,
}

type Job = Box<dyn FnOnce(&RunStats, u64) + Send>;

/// A finished run, kept for downloads until the next one starts.
struct Finished {
    stats: RunStats,
    users_max: u64,
}

struct RunState {
    phase: Phase,
    number: u64,
    control: Option<RunControl>,
    open_model: bool,
    plan: Option<Arc<Plan>>,
    message: Option<String>,
    stats: Value,
    users_max: u64,
    report: ReportInfo,
    generator: Value,
    generator_warning: Option<String>,
    health: health::Health,
    jobs: Vec<Job>,
    finished: Option<Finished>,
    history: VecDeque<Point>,
}

struct Inner {
    setup: Setup,
    auth: Option<Auth>,
    loopback: bool,
    bound: Mutex<Option<SocketAddr>>,
    state: Mutex<RunState>,
    updates: watch::Sender<Arc<str>>,
    start_tx: mpsc::Sender<StartRequest>,
    start_rx: tokio::sync::Mutex<mpsc::Receiver<StartRequest>>,
}

/// The dashboard: shared by the HTTP server, the command driving runs, and the [`Watch`]
/// observer of the current run. Cheap to clone.
#[derive(Clone)]
pub struct Dashboard {
    inner: Arc<Inner>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Dashboard {
    /// A dashboard not yet serving (tests drive its router directly).
    pub fn new(setup: Setup, options: &WebOptions) -> Result<Dashboard, String> {
        let addr = options.bind_addr()?;
        let (start_tx, start_rx) = mpsc::channel(4);
        let (updates, _) = watch::channel::<Arc<str>>(Arc::from("{}"));
        let d = Dashboard {
            inner: Arc::new(Inner {
                setup,
                auth: options.auth.clone(),
                loopback: addr.ip().is_loopback(),
                bound: Mutex::new(None),
                state: Mutex::new(RunState {
                    phase: Phase::Waiting,
                    number: 0,
                    control: None,
                    open_model: false,
                    plan: None,
                    message: None,
                    stats: Value::Null,
                    users_max: 0,
                    report: ReportInfo::default(),
                    generator: Value::Null,
                    generator_warning: None,
                    health: health::Health::default(),
                    jobs: Vec::new(),
                    finished: None,
                    history: VecDeque::new(),
                }),
                updates,
                start_tx,
                start_rx: tokio::sync::Mutex::new(start_rx),
            }),
        };
        d.publish();
        Ok(d)
    }

    /// Binds (see [`WebOptions::bind_addr`]) and serves the page on the current tokio runtime;
    /// returns the dashboard and the address it listens on.
    pub async fn serve(
        setup: Setup,
        options: &WebOptions,
    ) -> Result<(Dashboard, SocketAddr), String> {
        let d = Dashboard::new(setup, options)?;
        let addr = options.bind_addr()?;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| format!("--web-host/--web-port: cannot listen on {addr}: {e}"))?;
        let local = listener
            .local_addr()
            .map_err(|e| format!("cannot read the dashboard's address: {e}"))?;
        *lock(&d.inner.bound) = Some(local);
        let app = server::router(d.clone());
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                eprintln!("mynah: error: the web dashboard stopped: {e}");
            }
        });
        // Between runs nothing ticks: keep the health panel moving once a second.
        let idle = d.clone();
        tokio::spawn(async move {
            let mut cpu = health::CpuSampler::new();
            let mut every = tokio::time::interval(Duration::from_secs(1));
            loop {
                every.tick().await;
                let (cpu_percent, rss) = cpu.sample();
                let mut st = lock(&idle.inner.state);
                if matches!(st.phase, Phase::Running | Phase::Stopping) {
                    continue;
                }
                st.health = health::Health {
                    cpu_percent,
                    cores: cpu.cores(),
                    rss_bytes: rss,
                    lag_ms: None,
                    saturated: None,
                };
                drop(st);
                idle.publish();
            }
        });
        Ok((d, local))
    }

    /// The page's address, for the terminal (the secret of token auth is not printed).
    pub fn url(addr: SocketAddr, auth: Option<&Auth>) -> String {
        let host = match addr.ip() {
            IpAddr::V6(ip) => format!("[{ip}]"),
            IpAddr::V4(ip) if ip.is_unspecified() => "127.0.0.1".to_string(),
            IpAddr::V4(ip) => ip.to_string(),
        };
        let suffix = match auth {
            Some(Auth::Token(_)) => "?token=SECRET",
            _ => "",
        };
        format!("http://{host}:{}/{suffix}", addr.port())
    }

    /// Waits for the page's Start button (with the form's values).
    pub async fn next_start(&self) -> StartRequest {
        let mut rx = self.inner.start_rx.lock().await;
        match rx.recv().await {
            Some(r) => r,
            // The sender lives in `inner`, so the channel never closes while `self` exists.
            None => std::future::pending().await,
        }
    }

    /// Called when a run begins: the page switches to it; `control` steers it; `plan` gives the
    /// task ratios (none for a replay).
    pub fn run_started(&self, control: RunControl, plan: Option<Arc<Plan>>, report: ReportInfo) {
        let mut st = lock(&self.inner.state);
        st.phase = Phase::Running;
        st.number += 1;
        st.open_model = plan
            .as_ref()
            .is_some_and(|p| matches!(p.load, mynah_scenario::Load::Arrival(_)));
        st.control = Some(control);
        st.plan = plan;
        st.message = None;
        st.stats = Value::Null;
        st.users_max = 0;
        st.report = report;
        st.generator = Value::Null;
        st.generator_warning = None;
        st.finished = None;
        st.history.clear();
        drop(st);
        self.publish();
    }

    /// Called when a start request could not become a run (bad host, unreachable target...):
    /// the page shows `message` and the start form again.
    pub fn start_failed(&self, message: String) {
        let mut st = lock(&self.inner.state);
        st.phase = if st.number == 0 {
            Phase::Waiting
        } else {
            Phase::Finished
        };
        st.message = Some(message);
        drop(st);
        self.publish();
    }

    /// Adds what the command learnt at the end of the run to its downloaded reports: summary
    /// fields (a replay's `"replay"` section) and HTML warnings. Call before [`run_finished`](Self::run_finished).
    pub fn add_to_reports(
        &self,
        summary: serde_json::Map<String, Value>,
        warnings: impl IntoIterator<Item = String>,
    ) {
        let mut st = lock(&self.inner.state);
        st.report.summary.extend(summary);
        st.report.meta.warnings.extend(warnings);
    }

    /// Called when a run is over, with its final statistics and the generator's health record;
    /// downloads serve these until the next run. `message` says how it ended, when notable.
    pub fn run_finished(
        &self,
        stats: RunStats,
        users_max: u64,
        tracker: &Tracker,
        message: Option<String>,
    ) {
        let mut st = lock(&self.inner.state);
        st.phase = Phase::Finished;
        st.control = None;
        st.message = message;
        st.users_max = users_max;
        st.generator = tracker.summary_json();
        st.generator_warning = tracker.report_warning();
        for job in std::mem::take(&mut st.jobs) {
            job(&stats, users_max);
        }
        st.finished = Some(Finished { stats, users_max });
        drop(st);
        self.publish();
    }

    /// Sends the page its update now (also called once a second by the run's [`Watch`]).
    pub fn publish(&self) {
        let text = {
            let st = lock(&self.inner.state);
            json!({
                "phase": st.phase,
                "run": st.number,
                "message": st.message,
                "open_model": st.open_model,
                "health": st.health,
                "generator_warning": st.generator_warning,
                "stats": st.stats,
                "point": st.history.back(),
            })
            .to_string()
        };
        self.inner.updates.send_replace(Arc::from(text));
    }

    fn history_json(&self) -> String {
        let st = lock(&self.inner.state);
        json!({"run": st.number, "points": st.history}).to_string()
    }

    /// Renders a download from the current run's statistics (at its next tick, within a second)
    /// or the last run's.
    async fn download(&self, kind: Download) -> Result<String, (u16, String)> {
        let (tx, rx) = oneshot::channel();
        {
            let mut st = lock(&self.inner.state);
            let info = (
                st.report.clone(),
                st.generator.clone(),
                st.generator_warning.clone(),
            );
            if let Some(f) = &st.finished {
                return Ok(render(
                    kind,
                    &f.stats,
                    f.users_max,
                    &info.0,
                    &info.1,
                    &info.2,
                ));
            }
            if st.control.is_none() {
                return Err((404, "no run yet: start one first".into()));
            }
            let job: Job = Box::new(move |stats, users_max| {
                let _ = tx.send(render(kind, stats, users_max, &info.0, &info.1, &info.2));
            });
            st.jobs.push(job);
        }
        match tokio::time::timeout(Duration::from_secs(10), rx).await {
            Ok(Ok(body)) => Ok(body),
            _ => Err((503, "the run did not answer in time; try again".into())),
        }
    }
}

/// The files the page offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Download {
    /// Locust `_stats.csv`.
    StatsCsv,
    /// Locust `_stats_history.csv`.
    HistoryCsv,
    /// Locust `_failures.csv`.
    FailuresCsv,
    /// Locust `_exceptions.csv`.
    ExceptionsCsv,
    /// The summary JSON of `--summary-json`.
    Summary,
    /// The HTML report of `--html`.
    Html,
}

impl Download {
    /// From the file name the page links to.
    pub fn from_name(name: &str) -> Option<Download> {
        Some(match name {
            "mynah_stats.csv" => Download::StatsCsv,
            "mynah_stats_history.csv" => Download::HistoryCsv,
            "mynah_failures.csv" => Download::FailuresCsv,
            "mynah_exceptions.csv" => Download::ExceptionsCsv,
            "summary.json" => Download::Summary,
            "report.html" => Download::Html,
            _ => return None,
        })
    }

    /// The `Content-Type` of the file.
    pub fn content_type(self) -> &'static str {
        match self {
            Download::Summary => "application/json",
            Download::Html => "text/html; charset=utf-8",
            _ => "text/csv; charset=utf-8",
        }
    }
}

/// The threshold results as the summary JSON lists them (as `mynah run` writes them).
pub fn threshold_json(results: &[ThresholdResult]) -> Value {
    Value::Array(
        results
            .iter()
            .map(|r| json!({"expr": r.expr, "passed": r.passed, "value": r.value}))
            .collect(),
    )
}

fn render(
    kind: Download,
    stats: &RunStats,
    users_max: u64,
    report: &ReportInfo,
    generator: &Value,
    generator_warning: &Option<String>,
) -> String {
    let csv = |f: fn(&mut dyn std::io::Write, &RunStats) -> std::io::Result<()>| {
        let mut out = Vec::new();
        // Writing to a Vec cannot fail.
        let _ = f(&mut out, stats);
        String::from_utf8_lossy(&out).into_owned()
    };
    let results: Vec<ThresholdResult> = report
        .thresholds
        .iter()
        .map(|t| t.evaluate(stats))
        .collect();
    match kind {
        Download::StatsCsv => csv(write_stats),
        Download::HistoryCsv => csv(write_history),
        Download::FailuresCsv => csv(write_failures),
        Download::ExceptionsCsv => csv(write_exceptions),
        Download::Summary => {
            let mut v = summary_json(stats, users_max, &threshold_json(&results));
            if let Some(o) = v.as_object_mut() {
                o.extend(report.summary.clone());
                if !generator.is_null() {
                    o.insert("generator".into(), generator.clone());
                }
            }
            serde_json::to_string_pretty(&v).unwrap_or_default() + "\n"
        }
        Download::Html => {
            let mut meta = report.meta.clone();
            meta.users_max = meta.users_max.max(users_max);
            meta.warnings.extend(generator_warning.iter().cloned());
            html_report(stats, &meta, &results)
        }
    }
}

/// The observer of a run: keeps the terminal view (`inner`) and the generator-health
/// [`Tracker`] going and, with a dashboard, sends the page its update every second.
///
/// Works without a dashboard too, so the saturation warning reaches the terminal and the
/// reports of every run.
pub struct Watch<'a> {
    inner: &'a mut dyn Observer,
    tracker: &'a mut Tracker,
    dashboard: Option<Dashboard>,
    figures: Figures,
}

impl<'a> Watch<'a> {
    /// Wraps `inner`; `dashboard` is the page to feed, if any.
    pub fn new(
        inner: &'a mut dyn Observer,
        tracker: &'a mut Tracker,
        dashboard: Option<Dashboard>,
    ) -> Watch<'a> {
        Watch {
            inner,
            tracker,
            dashboard,
            figures: Figures::default(),
        }
    }

    fn update_page(&mut self, stats: &RunStats, progress: &Progress) {
        let Some(d) = &self.dashboard else {
            return;
        };
        let plan = lock(&d.inner.state).plan.clone();
        let (value, point) = self.figures.update(stats, progress, plan.as_deref());
        let mut st = lock(&d.inner.state);
        st.stats = value;
        st.users_max = st.users_max.max(progress.users);
        st.health = self.tracker.current().clone();
        if st.phase == Phase::Running && progress.stopping {
            st.phase = Phase::Stopping;
        }
        st.history.push_back(point);
        while st.history.len() > MAX_POINTS {
            st.history.pop_front();
        }
        let users_max = st.users_max;
        for job in std::mem::take(&mut st.jobs) {
            job(stats, users_max);
        }
        drop(st);
        d.publish();
    }
}

impl Observer for Watch<'_> {
    fn tick(&mut self, stats: &RunStats, progress: &Progress) {
        if let Some(line) = self.tracker.sample(progress.elapsed) {
            self.inner.notice(&line);
        }
        self.inner.tick(stats, progress);
        self.update_page(stats, progress);
    }

    fn finish(&mut self, stats: &RunStats, progress: &Progress) {
        self.inner.finish(stats, progress);
        self.update_page(stats, progress);
    }

    fn schedule_lag(&mut self, worst: Duration) {
        self.tracker.schedule_lag(worst);
        self.inner.schedule_lag(worst);
    }

    fn notice(&mut self, line: &str) {
        self.inner.notice(line);
    }
}

#[cfg(test)]
mod tests;
