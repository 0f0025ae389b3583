//! `mynah run SCENARIO --web`: the run driven from the live dashboard (docs/web.md).
//!
//! Like Locust's web UI: the page starts a run (users, spawn rate, host, run time, prefilled
//! from the scenario and the command line), changes the user count while it runs, stops it,
//! and resets the statistics. After a run the page keeps its final figures and downloads until
//! Ctrl-C, and can start the next run. Each run's reports (--csv, --html...) are written as
//! without --web, overwriting the previous run's.

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use mynah_engine::{Plan, RunControl, RunOptions};
use mynah_scenario::{Load, Scenario};
use mynah_stats::Threshold;
use mynah_web::health::Tracker;
use mynah_web::{
    parse_run_time, Auth, Dashboard, Mode, ReportInfo, Setup, StartRequest, Watch, WebOptions,
};

use super::run::{
    conclude, describe, fmt_dur, load_override, plan_options, raise_open_file_limit, report_meta,
    stop_signal, truncate,
};
use super::UsageError;
use crate::cli::{RunArgs, WebArgs};
use crate::live::LiveView;

/// The dashboard's address and access from the command line; usage errors name the flag.
pub fn web_options(args: &WebArgs) -> Result<WebOptions> {
    let auth = match &args.web_auth {
        Some(a) => Some(a.parse::<Auth>().map_err(UsageError)?),
        None => None,
    };
    let options = WebOptions {
        host: args.web_host.clone(),
        port: args.web_port,
        auth,
    };
    options.bind_addr().map_err(UsageError)?;
    Ok(options)
}

/// Serves the dashboard on the current runtime and prints its URL on stderr.
pub async fn serve(setup: Setup, options: &WebOptions) -> Result<Dashboard> {
    let (dashboard, addr) = Dashboard::serve(setup, options)
        .await
        .map_err(|e| anyhow!("{e}"))?;
    eprintln!(
        "mynah: dashboard: {} (Ctrl-C to quit)",
        Dashboard::url(addr, options.auth.as_ref())
    );
    Ok(dashboard)
}

/// `mynah run --web`: serves the page and runs what it asks for, until Ctrl-C.
pub fn run(args: RunArgs, scenario: Scenario, thresholds: Vec<Threshold>) -> Result<()> {
    let options = web_options(&args.web)?;
    let base_load = load_override(&scenario, &args)?;
    // Compiled once up front so a broken scenario stops here, not at the first Start.
    let first = Plan::compile(
        &scenario,
        &plan_options(&args, base_load.clone(), args.host.clone()),
    )
    .map_err(|e| anyhow!("{}: {e}", args.scenario.display()))?;
    for w in &first.warnings {
        eprintln!("mynah: warning: {w}");
    }
    let name = args
        .scenario
        .file_stem()
        .map_or_else(|| "run".to_string(), |s| s.to_string_lossy().into_owned());
    let setup = setup_of(&first, &name);

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let result = runtime.block_on(async {
        let dashboard = serve(setup, &options).await?;
        let mut autostart = args.autostart;
        let mut last: Result<()> = Ok(());
        loop {
            let request = if autostart {
                autostart = false;
                StartRequest::default()
            } else {
                eprintln!("mynah: waiting for Start on the dashboard (Ctrl-C to quit)");
                tokio::select! {
                    r = dashboard.next_start() => r,
                    _ = stop_signal() => break,
                }
            };
            let plan = match plan_for(&scenario, &args, &base_load, &request) {
                Ok(p) => p,
                Err(e) => {
                    eprintln!("mynah: error: {e:#}");
                    dashboard.start_failed(format!("{e:#}"));
                    continue;
                }
            };
            if let Err(e) = mynah_engine::runner::preflight(&plan).await {
                eprintln!("mynah: error: {e}");
                dashboard.start_failed(e);
                continue;
            }
            if let Some(warning) = raise_open_file_limit(plan.max_users()) {
                eprintln!("mynah: warning: {warning}");
            }
            let host = plan.base.as_ref().map(|b| b.origin());
            println!(
                "mynah run {}: {}",
                args.scenario.display(),
                describe(&plan, host.as_deref())
            );
            let control = RunControl::new();
            dashboard.run_started(
                control.clone(),
                Some(plan.clone()),
                ReportInfo {
                    meta: report_meta(&args, &plan, &name),
                    thresholds: thresholds.clone(),
                    ..ReportInfo::default()
                },
            );
            let mut view = LiveView::new(std::io::stdout().is_terminal(), name.clone());
            let mut tracker = Tracker::new();
            let outcome = mynah_engine::run_controlled(
                plan.clone(),
                RunOptions {
                    stop_timeout: args.stop_timeout,
                },
                &mut Watch::new(&mut view, &mut tracker, Some(dashboard.clone())),
                stop_signal(),
                &control,
            )
            .await;
            let ctrl_c = outcome.interrupted && !control.stop_requested();
            let fatal = outcome.fatal.clone();
            let (stats, users_max, result) =
                conclude(&args, &plan, &name, outcome, &thresholds, &tracker);
            let message = match (&fatal, &result) {
                (Some(f), _) => Some(format!("the run stopped early: {f}")),
                (None, Err(e)) => Some(format!("{e:#}")),
                _ => None,
            };
            dashboard.run_finished(stats, users_max, &tracker, message);
            last = result;
            if ctrl_c {
                break;
            }
            if let Some(secs) = args.autoquit {
                eprintln!("mynah: dashboard: quitting in {secs} s (--autoquit)");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(secs)) => {}
                    _ = stop_signal() => {}
                }
                break;
            }
        }
        last
    });
    // Users abandoned at the stop timeout may still hold sockets; do not wait for them.
    runtime.shutdown_timeout(Duration::from_millis(100));
    result
}

/// The start form's prefill: the load the command line and the scenario give.
fn setup_of(plan: &Plan, name: &str) -> Setup {
    let (users, spawn_rate, run_time_s, shape) = match &plan.load {
        Load::Users {
            users,
            spawn_rate,
            run_time,
        } => (
            Some(u64::from(*users)),
            Some(*spawn_rate),
            run_time.map(|t| t.as_secs_f64()),
            None,
        ),
        other => (
            None,
            Some(mynah_engine::plan::DEFAULT_SPAWN_RATE),
            None,
            Some(match other {
                Load::Stages(s) => format!(
                    "{} stages up to {} users over {}",
                    s.len(),
                    s.iter().map(|s| s.users).max().unwrap_or(0),
                    fmt_dur(s.iter().map(|s| s.duration).sum())
                ),
                Load::Arrival(s) => format!(
                    "open model, {} arrival stages up to {}/s over {}",
                    s.len(),
                    s.iter().map(|s| s.rate).fold(0.0, f64::max),
                    fmt_dur(s.iter().map(|s| s.duration).sum())
                ),
                Load::Users { .. } => String::new(),
            }),
        ),
    };
    Setup {
        mode: Mode::Run,
        title: name.to_string(),
        users,
        spawn_rate,
        host: plan
            .base
            .as_ref()
            .map(|b| format!("{}{}", b.origin(), b.prefix)),
        run_time_s,
        shape,
    }
}

/// The plan of one start: the form's users, spawn rate, host and run time over the command
/// line's and the scenario's.
fn plan_for(
    scenario: &Scenario,
    args: &RunArgs,
    base: &Option<Load>,
    request: &StartRequest,
) -> Result<Arc<Plan>> {
    let run_time = match request.run_time.as_deref().map(str::trim) {
        Some(t) if !t.is_empty() => Some(parse_run_time(t).map_err(|e| anyhow!("{e}"))?),
        _ => None,
    };
    let load = match (request.users, base) {
        (Some(users), _) => Some(Load::Users {
            users: u32::try_from(users).map_err(|_| anyhow!("users: {users} is too many"))?,
            spawn_rate: request
                .spawn_rate
                .or(match base {
                    Some(Load::Users { spawn_rate, .. }) => Some(*spawn_rate),
                    _ => None,
                })
                .unwrap_or(mynah_engine::plan::DEFAULT_SPAWN_RATE),
            run_time,
        }),
        (None, Some(Load::Users { .. })) | (None, None) if request == &StartRequest::default() => {
            base.clone()
        }
        (None, Some(Load::Stages(s))) => Some(Load::Stages(match run_time {
            Some(t) => truncate(s.clone(), t, |s| s.duration, |s, d| s.duration = d),
            None => s.clone(),
        })),
        (None, Some(Load::Arrival(s))) => Some(Load::Arrival(match run_time {
            Some(t) => truncate(s.clone(), t, |s| s.duration, |s, d| s.duration = d),
            None => s.clone(),
        })),
        (
            None,
            Some(Load::Users {
                users, spawn_rate, ..
            }),
        ) => Some(Load::Users {
            users: *users,
            spawn_rate: request.spawn_rate.unwrap_or(*spawn_rate),
            run_time,
        }),
        (None, None) => None,
    };
    let host = request
        .host
        .as_deref()
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .map(str::to_string)
        .or_else(|| args.host.clone());
    let plan = Plan::compile(scenario, &plan_options(args, load, host))
        .map_err(|e| anyhow!("{}: {e}", args.scenario.display()))?;
    Ok(Arc::new(plan))
}
