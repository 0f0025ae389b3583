//! `mynah run`: scenario file -> plan -> engine -> statistics -> reports and thresholds.

use std::fmt;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use mynah_engine::{Plan, PlanOptions, RunOptions};
use mynah_scenario::{Load, Scenario, Stage};
use mynah_stats::report::html::{html_report, ReportMeta};
use mynah_stats::report::table::final_table;
use mynah_stats::report::{summary_json, write_locust_csv};
use mynah_stats::threshold::junit_xml;
use mynah_stats::{RunStats, Threshold, ThresholdResult};

use super::UsageError;
use crate::cli::{ReportArgs, RunArgs};
use crate::live::LiveView;
use mynah_web::health::Tracker;
use mynah_web::Watch;

/// Some threshold did not hold (exit code 3).
#[derive(Debug)]
pub struct ThresholdsFailed {
    failed: usize,
    total: usize,
}

impl fmt::Display for ThresholdsFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} of {} thresholds failed", self.failed, self.total)
    }
}

impl std::error::Error for ThresholdsFailed {}

impl ThresholdsFailed {
    pub fn new(failed: usize, total: usize) -> ThresholdsFailed {
        ThresholdsFailed { failed, total }
    }
}

pub fn run(args: RunArgs) -> Result<()> {
    let text = std::fs::read_to_string(&args.scenario)
        .with_context(|| format!("cannot read scenario file {}", args.scenario.display()))?;
    let scenario = mynah_scenario::parse(&text, &args.scenario)?;

    // Thresholds: the file's (a mistake there is bad input) then the command line's (usage).
    let mut thresholds = Vec::new();
    for expr in &scenario.thresholds {
        thresholds.push(
            Threshold::parse(expr)
                .map_err(|e| anyhow!("{}: thresholds: {e}", args.scenario.display()))?,
        );
    }
    for expr in &args.reports.thresholds {
        thresholds
            .push(Threshold::parse(expr).map_err(|e| UsageError(format!("--threshold: {e}")))?);
    }

    if args.web.web {
        return super::web::run(args, scenario, thresholds);
    }
    let load = load_override(&scenario, &args)?;
    let options = plan_options(&args, load, args.host.clone());
    let plan = Plan::compile(&scenario, &options)
        .map_err(|e| anyhow!("{}: {e}", args.scenario.display()))?;
    for w in &plan.warnings {
        eprintln!("mynah: warning: {w}");
    }
    if let Some(warning) = raise_open_file_limit(plan.max_users()) {
        eprintln!("mynah: warning: {warning}");
    }
    let plan = Arc::new(plan);

    // The controller, collector and signals; virtual users get their own threads in the engine.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime
        .block_on(mynah_engine::runner::preflight(&plan))
        .map_err(|e| anyhow!("{e}"))?;

    let host = plan.base.as_ref().map(|b| b.origin());
    println!(
        "mynah run {}: {}",
        args.scenario.display(),
        describe(&plan, host.as_deref())
    );
    let name = args
        .scenario
        .file_stem()
        .map_or_else(|| "run".to_string(), |s| s.to_string_lossy().into_owned());
    let mut view = LiveView::new(std::io::stdout().is_terminal(), name.clone());
    let mut tracker = Tracker::new();
    let outcome = runtime.block_on(mynah_engine::run(
        plan.clone(),
        RunOptions {
            stop_timeout: args.stop_timeout,
        },
        &mut Watch::new(&mut view, &mut tracker, None),
        stop_signal(),
    ));
    // Users abandoned at the stop timeout may still hold sockets; do not wait for them.
    runtime.shutdown_timeout(Duration::from_millis(100));
    conclude(&args, &plan, &name, outcome, &thresholds, &tracker).2
}

/// After a run: the final table, thresholds, and the report files. Returns the statistics, the
/// most users, and the command's result (a fatal stop, a report that could not be written,
/// failed thresholds).
pub(crate) fn conclude(
    args: &RunArgs,
    plan: &Plan,
    name: &str,
    outcome: mynah_engine::RunOutcome,
    thresholds: &[Threshold],
    tracker: &Tracker,
) -> (RunStats, u64, Result<()>) {
    let host = plan.base.as_ref().map(|b| b.origin());
    let stats = outcome.stats;
    println!("{}", final_table(&stats, outcome.users_max));
    let results: Vec<ThresholdResult> = thresholds.iter().map(|t| t.evaluate(&stats)).collect();
    print_thresholds(&results);

    let mut meta = report_meta(args, plan, name);
    if outcome.interrupted {
        meta.warnings
            .push("the run was interrupted before its planned end".into());
    }
    if let Some(f) = &outcome.fatal {
        meta.warnings.push(format!("the run stopped early: {f}"));
    }
    meta.warnings.extend(tracker.report_warning());
    meta.host = host;
    meta.users_max = outcome.users_max;
    let mut summary = summary_json(&stats, outcome.users_max, &threshold_json(&results));
    summary["generator"] = tracker.summary_json();
    let report_error = write_reports(&args.reports, &summary, &stats, &meta, &results);

    let result = (|| {
        if let Some(f) = outcome.fatal {
            return Err(anyhow!("the run stopped early: {f}"));
        }
        report_error?;
        let failed = results.iter().filter(|r| !r.passed).count();
        if failed > 0 {
            return Err(ThresholdsFailed {
                failed,
                total: results.len(),
            }
            .into());
        }
        Ok(())
    })();
    (stats, outcome.users_max, result)
}

/// How to compile the scenario: `load` and `host` override the file's.
pub(crate) fn plan_options(
    args: &RunArgs,
    load: Option<Load>,
    host: Option<String>,
) -> PlanOptions {
    let base_dir = args
        .scenario
        .parent()
        .map(Path::to_path_buf)
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| PathBuf::from("."));
    PlanOptions {
        host,
        load,
        tags: args.tags.clone(),
        exclude_tags: args.exclude_tags.clone(),
        base_dir,
        insecure: args.insecure,
        http2: args.http2,
    }
}

/// Title, scenario, host and the plan's warnings, for the HTML report.
pub(crate) fn report_meta(args: &RunArgs, plan: &Plan, name: &str) -> ReportMeta {
    ReportMeta {
        title: format!("mynah run: {name}"),
        scenario: Some(args.scenario.display().to_string()),
        host: plan.base.as_ref().map(|b| b.origin()),
        users_max: 0,
        warnings: plan.warnings.clone(),
    }
}

/// Applies -u/-r/-t to the file's load shape.
pub(crate) fn load_override(scenario: &Scenario, args: &RunArgs) -> Result<Option<Load>> {
    let file = scenario.load.clone();
    if let Some(users) = args.users {
        let (spawn_rate, run_time) = match &file {
            Some(Load::Users {
                spawn_rate,
                run_time,
                ..
            }) => (*spawn_rate, *run_time),
            _ => (mynah_engine::plan::DEFAULT_SPAWN_RATE, None),
        };
        return Ok(Some(Load::Users {
            users,
            spawn_rate: args.spawn_rate.unwrap_or(spawn_rate),
            run_time: args.run_time.or(run_time),
        }));
    }
    if let Some(r) = args.spawn_rate {
        if !(r.is_finite() && r > 0.0) {
            return Err(UsageError("-r/--spawn-rate must be a number above 0".into()).into());
        }
    }
    match file {
        None if args.spawn_rate.is_some() || args.run_time.is_some() => Err(UsageError(
            "the scenario has no `load:`, so -u/--users is needed with -r/-t".into(),
        )
        .into()),
        None => Ok(None),
        Some(Load::Users {
            users,
            spawn_rate,
            run_time,
        }) => Ok(Some(Load::Users {
            users,
            spawn_rate: args.spawn_rate.unwrap_or(spawn_rate),
            run_time: args.run_time.or(run_time),
        })),
        Some(_) if args.spawn_rate.is_some() => Err(UsageError(
            "-r/--spawn-rate applies to a fixed user count; this scenario's stages give their own spawn_rate (or pass -u too)"
                .into(),
        )
        .into()),
        Some(Load::Stages(stages)) => Ok(Some(Load::Stages(match args.run_time {
            Some(t) => truncate(stages, t, |s| s.duration, |s, d| s.duration = d),
            None => stages,
        }))),
        Some(Load::Arrival(stages)) => Ok(Some(Load::Arrival(match args.run_time {
            Some(t) => truncate(stages, t, |s| s.duration, |s, d| s.duration = d),
            None => stages,
        }))),
    }
}

/// Cuts a staged shape at `limit`.
pub(crate) fn truncate<S>(
    stages: Vec<S>,
    limit: Duration,
    dur: impl Fn(&S) -> Duration,
    set: impl Fn(&mut S, Duration),
) -> Vec<S> {
    let mut left = limit;
    let mut out = Vec::new();
    for mut s in stages {
        if left.is_zero() {
            break;
        }
        let d = dur(&s).min(left);
        left -= d;
        set(&mut s, d);
        out.push(s);
    }
    out
}

/// One line saying what is about to run.
pub(crate) fn describe(plan: &Plan, host: Option<&str>) -> String {
    let classes = |total: u64| {
        let counts = plan.class_counts(total);
        plan.classes
            .iter()
            .zip(counts)
            .map(|(c, n)| format!("{n} {}", c.name))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let shape = match &plan.load {
        Load::Users {
            users,
            spawn_rate,
            run_time,
        } => format!(
            "{users} users ({}) started at {spawn_rate}/s, {}",
            classes(u64::from(*users)),
            run_time.map_or("until stopped (Ctrl-C)".to_string(), |t| format!(
                "for {}",
                fmt_dur(t)
            ))
        ),
        Load::Stages(stages) => format!(
            "{} stages up to {} users, for {}",
            stages.len(),
            stages.iter().map(|s: &Stage| s.users).max().unwrap_or(0),
            fmt_dur(stages.iter().map(|s| s.duration).sum())
        ),
        Load::Arrival(stages) => format!(
            "open model, {} arrival stages up to {}/s, for {}",
            stages.len(),
            stages.iter().map(|s| s.rate).fold(0.0, f64::max),
            fmt_dur(stages.iter().map(|s| s.duration).sum())
        ),
    };
    match host {
        Some(h) => format!("{h}, {shape}"),
        None => shape,
    }
}

pub(crate) fn fmt_dur(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s >= 60.0 && s % 60.0 == 0.0 {
        format!("{}m", s / 60.0)
    } else {
        format!("{s}s")
    }
}

pub fn print_thresholds(results: &[ThresholdResult]) {
    if results.is_empty() {
        return;
    }
    println!("Thresholds:");
    for r in results {
        let value = r
            .value
            .map_or_else(|| "no requests in scope".to_string(), |v| format!("{v:.3}"));
        let mark = if r.passed { "pass" } else { "FAIL" };
        println!("  {mark}  {}  (measured {value})", r.expr);
    }
}

/// The threshold results as the summary JSON lists them.
pub fn threshold_json(results: &[ThresholdResult]) -> serde_json::Value {
    serde_json::Value::Array(
        results
            .iter()
            .map(|r| serde_json::json!({"expr": r.expr, "passed": r.passed, "value": r.value}))
            .collect(),
    )
}

/// Writes every requested report (`summary` is the summary JSON); returns the first error after
/// trying them all.
pub fn write_reports(
    args: &ReportArgs,
    summary: &serde_json::Value,
    stats: &RunStats,
    meta: &ReportMeta,
    results: &[ThresholdResult],
) -> Result<()> {
    let mut first: Option<anyhow::Error> = None;
    let mut note = |r: Result<()>| {
        if let Err(e) = r {
            eprintln!("mynah: error: {e:#}");
            first.get_or_insert(e);
        }
    };
    if let Some(path) = &args.summary_json {
        note(write(
            path,
            serde_json::to_string_pretty(summary).unwrap_or_default() + "\n",
        ));
    }
    if let Some(prefix) = &args.csv {
        note(
            write_locust_csv(prefix, stats)
                .with_context(|| format!("cannot write CSV files {}_*.csv", prefix.display())),
        );
    }
    if let Some(path) = &args.html {
        note(write(path, html_report(stats, meta, results)));
    }
    if let Some(path) = &args.junit {
        note(write(path, junit_xml(results, stats.duration_s())));
    }
    match first {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn write(path: &Path, text: String) -> Result<()> {
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

/// Each user holds a socket: raises the soft open-file limit to the hard one (as Locust does),
/// and warns when even that is too low for the users the load shape can start.
#[cfg(unix)]
pub fn raise_open_file_limit(users: u64) -> Option<String> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed by pointer.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return None;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit = raised;
            }
        }
    }
    let needed = users.saturating_add(64);
    // rlim_t is u64 on 64-bit Linux but not everywhere.
    #[allow(clippy::useless_conversion)]
    let current = u64::from(limit.rlim_cur);
    (current < needed).then(|| {
        format!(
            "up to {users} users may each hold a connection, but the open-file limit is {}: \
             connections beyond it fail as `connect` failures; raise it (ulimit -n, or \
             LimitNOFILE= for a service)",
            limit.rlim_cur
        )
    })
}

#[cfg(not(unix))]
pub fn raise_open_file_limit(_users: u64) -> Option<String> {
    None
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn stop_signal() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
