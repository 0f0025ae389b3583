//! `mynah replay`: recordings -> traffic pipeline -> replay engine -> statistics -> reports and
//! thresholds, with the same live view and report files as `mynah run`.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use mynah_engine::client::ClientConfig;
use mynah_engine::plan::BaseUrl;
use mynah_engine::replay::{self, Pace, ReplayOptions, ReplayOutcome, ReplayReport};
use mynah_stats::report::html::ReportMeta;
use mynah_stats::report::summary_json;
use mynah_stats::report::table::final_table_of;
use mynah_stats::{Threshold, ThresholdResult};
use mynah_traffic::{
    Exchange, ExchangeReader, Merge, Pipeline, PipelineOptions, PipelineReport, ReadError,
    ReadOptions, ReadReport,
};
use serde_json::{json, Value};

use super::run::{
    print_thresholds, raise_open_file_limit, stop_signal, threshold_json, write_reports,
    ThresholdsFailed,
};
use super::UsageError;
use crate::cli::{InputArgs, ReplayArgs};
use crate::live::LiveView;
use mynah_engine::RunControl;
use mynah_web::health::Tracker;
use mynah_web::{Mode, ReportInfo, Setup, Watch};

/// Default connections at `--max-speed` (wrk's and GoReplay's usual worker counts are near).
const MAX_SPEED_CONCURRENCY: usize = 50;
/// Default connection cap of paced replays.
const PACED_CONCURRENCY: usize = 10_000;
/// Distinct endpoints the dry run lists (like the statistics' cap).
const SCAN_ENDPOINTS: usize = 1000;

pub fn run(args: ReplayArgs) -> Result<()> {
    let thresholds = args
        .reports
        .thresholds
        .iter()
        .map(|e| Threshold::parse(e).map_err(|e| UsageError(format!("--threshold: {e}"))))
        .collect::<Result<Vec<_>, _>>()?;
    let pace = pace(&args)?;
    let web_options = match args.web.web {
        true => Some(super::web::web_options(&args.web)?),
        false => None,
    };
    let target = BaseUrl::parse(&args.target).map_err(|e| UsageError(format!("--target: {e}")))?;
    let compare = if args.compare {
        let mut ignore_json = Vec::new();
        for rule in &args.compare_ignore {
            match rule.strip_prefix("json:") {
                Some(path) => ignore_json.push(path.to_string()),
                None => {
                    return Err(UsageError(format!(
                        "--compare-ignore {rule:?}: expected json:$.path (headers: --compare-ignore-header NAME)"
                    ))
                    .into())
                }
            }
        }
        Some(replay::compare::CompareOptions {
            ignore_headers: args.compare_ignore_header.clone(),
            ignore_json,
        })
    } else {
        if !args.compare_ignore.is_empty() || !args.compare_ignore_header.is_empty() {
            return Err(UsageError(
                "--compare-ignore and --compare-ignore-header need --compare".into(),
            )
            .into());
        }
        None
    };
    let concurrency = match args.concurrency {
        Some(0) => return Err(UsageError("--concurrency must be at least 1".into()).into()),
        Some(n) => n,
        None if pace == Pace::MaxSpeed => MAX_SPEED_CONCURRENCY,
        None => PACED_CONCURRENCY,
    };

    // Every pass over the recording masks alike: one key for the whole replay.
    let mut pipeline_options = args.pipeline.options();
    if pipeline_options.redact_key.is_none() {
        pipeline_options.redact_key = Some(super::random_key());
    }
    Pipeline::new(&pipeline_options).map_err(|e| UsageError(e.to_string()))?;

    // A first pass: what would be sent, and from which hosts (nothing is sent before it ends).
    // It also spools the requests ready to send, when the replay can use that (see `--no-spool`).
    let mut spool = (!args.dry_run && !args.no_spool && compare.is_none())
        .then(|| replay::SpoolWriter::new(&target, args.keep_host, !args.no_session_mapping))
        .and_then(Result::ok);
    let scan = Scan::of(
        &args.files,
        &args.input,
        &pipeline_options,
        args.endpoint_names == "template",
        spool.as_mut(),
    )?;
    if args.dry_run {
        print_dry_run(&scan, pace, &args);
        return Ok(());
    }
    if !args.allow_recorded_host {
        if let Some(host) = scan.recorded_host_match(&target) {
            return Err(anyhow!(
                "the target {} is a recorded host ({host}): replaying there would send the recorded traffic to the system it was recorded on; pass --allow-recorded-host if that is intended",
                target.origin()
            ));
        }
    }
    if scan.requests == 0 {
        return Err(anyhow!(
            "nothing to replay: the recording holds no request the filters keep ({})",
            scan.pipeline
        ));
    }
    if let Some(warning) = raise_open_file_limit(concurrency as u64) {
        eprintln!("mynah: warning: {warning}");
    }

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let client = ClientConfig {
        request_timeout: args.timeout,
        insecure: args.insecure,
        ..ClientConfig::default()
    };
    runtime
        .block_on(mynah_engine::runner::reachable(
            &target,
            client.connect_timeout,
            "is the target running? (--target)",
        ))
        .map_err(|e| anyhow!("{e}"))?;

    let planned = planned(&scan, pace, &args);
    println!(
        "mynah replay {}: {} requests to {}, {}",
        names(&args.files),
        scan.requests,
        target.origin(),
        describe_pace(pace, planned, concurrency)
    );
    let options = ReplayOptions {
        target: target.clone(),
        pace,
        concurrency,
        looped: args.looped,
        duration: args.duration,
        max_requests: args.max_requests,
        keep_host: args.keep_host,
        session_mapping: !args.no_session_mapping,
        compare,
        client,
        stop_timeout: args.stop_timeout,
        planned,
        templates: scan.templates.clone(),
    };
    let recording = match spool.map(replay::SpoolWriter::finish) {
        Some(Ok(spool)) => replay::Recording::Spooled(spool),
        // Not spooled: the recording is read on each pass, as fast or not.
        _ => replay::Recording::Stream(opener(
            args.files.clone(),
            args.input.clone(),
            pipeline_options,
        )),
    };
    // With --web the page watches the replay and can stop it; the recording sets the load, so
    // it has no start or user controls.
    let control = RunControl::new();
    let dashboard = match &web_options {
        Some(o) => {
            let setup = Setup {
                mode: Mode::Replay,
                title: format!("replay {}", names(&args.files)),
                users: None,
                spawn_rate: None,
                host: Some(target.origin()),
                run_time_s: planned.map(|d| d.as_secs_f64()),
                shape: Some(describe_pace(pace, planned, concurrency)),
            };
            let d = runtime.block_on(super::web::serve(setup, o))?;
            d.run_started(
                control.clone(),
                None,
                ReportInfo {
                    meta: ReportMeta {
                        title: format!("mynah replay: {}", names(&args.files)),
                        scenario: Some(names(&args.files)),
                        host: Some(target.origin()),
                        ..ReportMeta::default()
                    },
                    thresholds: thresholds.clone(),
                    summary: [("kind".to_string(), json!("replay"))]
                        .into_iter()
                        .collect(),
                },
            );
            Some(d)
        }
        None => None,
    };
    let mut view = LiveView::new(std::io::stdout().is_terminal(), "replay".into());
    let mut tracker = Tracker::new();
    let stop = {
        let control = control.clone();
        async move {
            tokio::select! {
                _ = stop_signal() => {}
                _ = control.stopped() => {}
            }
        }
    };
    let outcome = runtime.block_on(replay::replay(
        recording,
        options,
        &mut Watch::new(&mut view, &mut tracker, dashboard.clone()),
        stop,
    ));

    let ReplayOutcome {
        stats,
        connections_max,
        interrupted,
        fatal,
        report,
    } = outcome;
    println!("{}", final_table_of(&stats, connections_max, "connections"));
    print_report(&report);
    let results: Vec<ThresholdResult> = thresholds.iter().map(|t| t.evaluate(&stats)).collect();
    print_thresholds(&results);
    eprintln!("mynah: {}", scan.pipeline);

    let mut warnings = Vec::new();
    if interrupted {
        warnings.push("the replay was interrupted before its end".to_string());
    }
    if let Some(f) = &fatal {
        warnings.push(format!("the replay stopped early: {f}"));
    }
    if report.dropped > 0 {
        warnings.push(format!(
            "{} requests could not be sent on schedule (dropped): the target or the generator was too slow",
            report.dropped
        ));
    }
    if let Some(c) = &report.compare {
        warnings.push(format!(
            "compare: {} of {} responses differ from the recording",
            c.mismatched, c.compared
        ));
    }
    // The dashboard adds the generator's warning to its downloads itself.
    let replay_warnings = warnings.clone();
    warnings.extend(tracker.report_warning());
    let meta = ReportMeta {
        title: format!("mynah replay: {}", names(&args.files)),
        scenario: Some(names(&args.files)),
        host: Some(target.origin()),
        users_max: connections_max,
        warnings,
    };
    let mut summary = summary_json(&stats, connections_max, &threshold_json(&results));
    summary["kind"] = json!("replay");
    summary["replay"] = replay_json(&report);
    summary["generator"] = tracker.summary_json();
    let report_error = write_reports(&args.reports, &summary, &stats, &meta, &results);
    if let Some(d) = dashboard {
        let message = fatal
            .as_ref()
            .map(|f| format!("the replay stopped early: {f}"));
        d.add_to_reports(
            [("replay".to_string(), summary["replay"].clone())]
                .into_iter()
                .collect(),
            replay_warnings,
        );
        d.run_finished(stats, connections_max, &tracker, message);
        if !interrupted || control.stop_requested() {
            eprintln!(
                "mynah: the dashboard keeps the replay's figures and downloads; Ctrl-C to quit"
            );
            runtime.block_on(stop_signal());
        }
    }
    // Connections abandoned at the stop timeout may still hold sockets; do not wait for them.
    runtime.shutdown_timeout(Duration::from_millis(100));

    if let Some(f) = fatal {
        return Err(anyhow!("the replay stopped early: {f}"));
    }
    report_error?;
    let failed = results.iter().filter(|r| !r.passed).count();
    if failed > 0 {
        return Err(ThresholdsFailed::new(failed, results.len()).into());
    }
    Ok(())
}

fn pace(args: &ReplayArgs) -> Result<Pace> {
    if args.max_speed {
        return Ok(Pace::MaxSpeed);
    }
    if let Some(rate) = args.rate {
        if !(rate.is_finite() && rate > 0.0) {
            return Err(UsageError(
                "--rate must be a number of requests per second above 0".into(),
            )
            .into());
        }
        return Ok(Pace::Rate(rate));
    }
    let speed = match &args.speed {
        None => 1.0,
        Some(s) => parse_speed(s).ok_or_else(|| {
            UsageError(format!(
                "--speed {s:?}: expected a factor above 0 such as 2, 0.5 or 200%"
            ))
        })?,
    };
    Ok(Pace::Recorded { speed })
}

/// `2`, `0.5`, `2x`, `200%`.
fn parse_speed(s: &str) -> Option<f64> {
    let t = s.trim();
    let v = if let Some(p) = t.strip_suffix('%') {
        p.trim().parse::<f64>().ok()? / 100.0
    } else {
        t.strip_suffix(['x', 'X'])
            .unwrap_or(t)
            .trim()
            .parse::<f64>()
            .ok()?
    };
    (v.is_finite() && v > 0.0).then_some(v)
}

fn names(files: &[PathBuf]) -> String {
    files
        .iter()
        .map(|f| f.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Gives each input's connection ids their own range, so connections of two files never merge.
struct OffsetIds {
    inner: Box<dyn ExchangeReader>,
    offset: u64,
}

impl Iterator for OffsetIds {
    type Item = Result<Exchange, ReadError>;
    fn next(&mut self) -> Option<Self::Item> {
        self.inner.next().map(|r| {
            r.map(|mut e| {
                e.connection.id = e.connection.id.map(|id| id | self.offset);
                e
            })
        })
    }
}

impl ExchangeReader for OffsetIds {
    fn report(&self) -> ReadReport {
        self.inner.report()
    }
}

fn open_all(files: &[PathBuf], input: &InputArgs) -> Result<Box<dyn ExchangeReader>> {
    let format = input.from.as_deref().map(super::parse_format).transpose()?;
    let opts = ReadOptions {
        lenient: input.lenient,
        ports: input.port.clone(),
    };
    let mut readers: Vec<Box<dyn ExchangeReader>> = Vec::with_capacity(files.len());
    for (i, f) in files.iter().enumerate() {
        let inner = mynah_traffic::open(f, format, &opts)?;
        readers.push(Box::new(OffsetIds {
            inner,
            offset: (i as u64) << 48,
        }));
    }
    Ok(if readers.len() == 1 {
        readers.pop().expect("one reader")
    } else {
        Box::new(Merge::new(readers))
    })
}

/// Opens the recording through a fresh pipeline (same options, same masking key) on each call.
fn opener(
    files: Vec<PathBuf>,
    input: InputArgs,
    options: PipelineOptions,
) -> replay::OpenRecording {
    Box::new(move || {
        let reader = open_all(&files, &input).map_err(|e| format!("{e:#}"))?;
        let mut pipeline = Pipeline::new(&options).map_err(|e| e.to_string())?;
        let exchanges: replay::Exchanges = Box::new(reader.filter_map(move |item| match item {
            Ok(ex) => pipeline.apply(ex).map(Ok),
            Err(e) => Some(Err(e.to_string())),
        }));
        Ok(exchanges)
    })
}

/// What the recording holds after the pipeline.
struct Scan {
    requests: u64,
    skipped: BTreeMap<String, u64>,
    connections: HashSet<u64>,
    first_ns: Option<i64>,
    last_ns: Option<i64>,
    /// Recorded `host:port` pairs (lowercase; default ports filled in).
    hosts: BTreeSet<(String, u16)>,
    servers: HashSet<SocketAddr>,
    endpoints: BTreeMap<(String, String), u64>,
    pipeline: PipelineReport,
    /// Endpoint templates learnt from the kept requests (`--endpoint-names template`).
    templates: Option<Arc<mynah_synth::Templates>>,
}

impl Scan {
    fn of(
        files: &[PathBuf],
        input: &InputArgs,
        options: &PipelineOptions,
        learn_templates: bool,
        mut spool: Option<&mut replay::SpoolWriter>,
    ) -> Result<Scan> {
        let mut reader = open_all(files, input)?;
        let mut learner = learn_templates.then(mynah_synth::TemplateLearner::new);
        let mut pipeline = Pipeline::new(options).map_err(|e| UsageError(e.to_string()))?;
        let mut scan = Scan {
            requests: 0,
            skipped: BTreeMap::new(),
            connections: HashSet::new(),
            first_ns: None,
            last_ns: None,
            hosts: BTreeSet::new(),
            servers: HashSet::new(),
            endpoints: BTreeMap::new(),
            pipeline: PipelineReport::default(),
            templates: None,
        };
        for item in reader.by_ref() {
            let ex = item?;
            if let Some(addr) = ex.connection.server {
                if scan.servers.len() < 10_000 {
                    scan.servers.insert(addr);
                }
            }
            if let Some(host) = ex.request.host() {
                if scan.hosts.len() < 10_000 {
                    let default = if ex.connection.tls { 443 } else { 80 };
                    scan.hosts.insert(split_host(&host, default));
                }
            }
            let Some(ex) = pipeline.apply(ex) else {
                continue;
            };
            if let Some(spool) = spool.as_deref_mut() {
                spool.push(&ex);
            }
            if let Some(reason) = replay::unsendable(&ex.request) {
                *scan.skipped.entry(reason.to_string()).or_default() += 1;
                continue;
            }
            scan.requests += 1;
            if let Some(l) = &mut learner {
                l.add(&ex.request);
            }
            let t = ex.timing.request_start;
            scan.first_ns = Some(scan.first_ns.map_or(t, |f| f.min(t)));
            scan.last_ns = Some(scan.last_ns.map_or(t, |l| l.max(t)));
            if let Some(id) = ex.connection.id {
                scan.connections.insert(id);
            }
            let method = ex.request.method.to_ascii_uppercase();
            let key = if scan.endpoints.len() < SCAN_ENDPOINTS
                || scan
                    .endpoints
                    .contains_key(&(method.clone(), ex.request.path().to_string()))
            {
                (method, ex.request.path().to_string())
            } else {
                (method, replay::OTHER.to_string())
            };
            *scan.endpoints.entry(key).or_default() += 1;
        }
        scan.pipeline = pipeline.report();
        // The share below which `mynah synth` merges endpoints by default (0.1%).
        scan.templates = learner.map(|l| Arc::new(l.finish(0.001)));
        Ok(scan)
    }

    /// The recorded span from the first request to the last.
    fn span(&self) -> Duration {
        match (self.first_ns, self.last_ns) {
            (Some(f), Some(l)) if l > f => Duration::from_nanos((l - f) as u64),
            _ => Duration::ZERO,
        }
    }

    /// A recorded host (Host header or server address) that is the target.
    fn recorded_host_match(&self, target: &BaseUrl) -> Option<String> {
        let default = if target.scheme == http::uri::Scheme::HTTPS {
            443
        } else {
            80
        };
        let (host, port) = split_host(target.authority.as_str(), default);
        if self.hosts.contains(&(host.clone(), port)) {
            return Some(format!("{host}:{port}"));
        }
        let ip = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .ok()?;
        let addr = SocketAddr::new(ip, port);
        self.servers
            .contains(&addr)
            .then(|| format!("{addr}, the recorded server address"))
    }
}

/// `host[:port]` as a lowercase host (localhost as 127.0.0.1) and a port.
fn split_host(text: &str, default_port: u16) -> (String, u16) {
    let text = text.trim().to_ascii_lowercase();
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        // [v6]:port
        match rest.split_once(']') {
            Some((h, p)) => (
                format!("[{h}]"),
                p.strip_prefix(':').and_then(|p| p.parse().ok()),
            ),
            None => (text.clone(), None),
        }
    } else {
        match text.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') => (h.to_string(), p.parse().ok()),
            _ => (text.clone(), None),
        }
    };
    let host = match host.as_str() {
        "localhost" => "127.0.0.1".to_string(),
        "[::1]" => "[::1]".to_string(),
        _ => host,
    };
    (host, port.unwrap_or(default_port))
}

fn planned(scan: &Scan, pace: Pace, args: &ReplayArgs) -> Option<Duration> {
    let one_pass = match pace {
        Pace::Recorded { speed } => Some(scan.span().div_f64(speed)),
        Pace::Rate(rate) => {
            let n = args.max_requests.map_or(scan.requests, |m| {
                if args.looped {
                    m
                } else {
                    m.min(scan.requests)
                }
            });
            Some(Duration::from_secs_f64(n as f64 / rate))
        }
        Pace::MaxSpeed => None,
    };
    match (args.duration, one_pass) {
        (Some(d), Some(p)) if !args.looped => Some(d.min(p)),
        (Some(d), _) => Some(d),
        (None, p) if !args.looped => p,
        _ => None,
    }
}

fn describe_pace(pace: Pace, planned: Option<Duration>, concurrency: usize) -> String {
    let how = match pace {
        Pace::Recorded { speed: 1.0 } => "recorded timing".to_string(),
        Pace::Recorded { speed } => format!("recorded timing at {speed}x speed"),
        Pace::Rate(r) => format!("{r} requests/s"),
        Pace::MaxSpeed => format!("as fast as the target answers on {concurrency} connections"),
    };
    match planned {
        Some(d) => format!("{how}, about {:.1}s", d.as_secs_f64()),
        None => how,
    }
}

fn print_dry_run(scan: &Scan, pace: Pace, args: &ReplayArgs) {
    // A closed pipe (`| head`) ends the listing quietly instead of panicking in println!.
    let _ = write_dry_run(&mut std::io::stdout().lock(), scan, pace, args);
}

fn write_dry_run(
    out: &mut dyn std::io::Write,
    scan: &Scan,
    pace: Pace,
    args: &ReplayArgs,
) -> std::io::Result<()> {
    let span = scan.span().as_secs_f64();
    let rate = if span > 0.0 {
        format!("{:.1} req/s", scan.requests as f64 / span)
    } else {
        "all at once".into()
    };
    let connections = if scan.connections.is_empty() {
        "no recorded connection identity (.gor): any idle connection".to_string()
    } else {
        format!("{} connections", scan.connections.len())
    };
    writeln!(
        out,
        "mynah replay (dry run): {} requests on {connections}, recorded over {span:.3}s ({rate}); nothing sent",
        scan.requests
    )?;
    let planned = planned(scan, pace, args);
    writeln!(
        out,
        "  would send to {}: {}",
        args.target,
        describe_pace(
            pace,
            planned,
            args.concurrency.unwrap_or(match pace {
                Pace::MaxSpeed => MAX_SPEED_CONCURRENCY,
                _ => PACED_CONCURRENCY,
            })
        )
    )?;
    if !scan.skipped.is_empty() {
        let s: Vec<String> = scan
            .skipped
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        writeln!(out, "  not replayable, skipped: {}", s.join(", "))?;
    }
    writeln!(out, "  {}", scan.pipeline)?;
    let mut endpoints: Vec<_> = scan.endpoints.iter().collect();
    endpoints.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    writeln!(out, "  {:>9}  endpoint", "requests")?;
    for ((method, path), n) in endpoints {
        writeln!(out, "  {n:>9}  {method} {path}")?;
    }
    Ok(())
}

fn print_report(r: &ReplayReport) {
    let mut line = format!("Replay: {} sent", r.sent);
    if r.passes > 1 {
        line.push_str(&format!(" in {} passes", r.passes));
    }
    line.push_str(&format!(", {} dropped", r.dropped));
    if r.lag.count > 0 {
        line.push_str(&format!(
            "; schedule lag p50 {} p99 {} max {}",
            ms(r.lag.p50_us),
            ms(r.lag.p99_us),
            ms(r.lag.max_us)
        ));
    }
    println!("{line}");
    if !r.skipped.is_empty() {
        let s: Vec<String> = r.skipped.iter().map(|(k, v)| format!("{k} {v}")).collect();
        println!("  not replayable, skipped: {}", s.join(", "));
    }
    if r.mapped_values > 0 || r.substitutions > 0 {
        println!(
            "  sessions: {} recorded values mapped to the target's, {} substitutions",
            r.mapped_values, r.substitutions
        );
    }
    if let Some(c) = &r.compare {
        if c.compared == 0 {
            println!("  compare: nothing compared (the recording holds no responses)");
        } else {
            println!(
                "  compare: {} of {} responses differ from the recording",
                c.mismatched, c.compared
            );
        }
        for e in c.endpoints.iter().filter(|e| e.mismatched > 0) {
            println!(
                "    {} {}: {} of {} differ (status {}, header {}, body {})",
                e.method,
                e.name,
                e.mismatched,
                e.compared,
                e.by_kind[0],
                e.by_kind[1],
                e.by_kind[2]
            );
        }
        for x in c.examples.iter().take(10) {
            let d = &x.difference;
            println!(
                "    e.g. {} {}: {} {}: recorded {} / replayed {}",
                x.method,
                x.name,
                d.kind.as_str(),
                d.field,
                d.recorded,
                d.replayed
            );
        }
    }
}

fn ms(us: u64) -> String {
    format!("{:.3}ms", us as f64 / 1000.0)
}

fn lag_json(r: &ReplayReport) -> Value {
    if r.lag.count == 0 {
        return json!({"p50": null, "p99": null, "max": null});
    }
    let ms = |us: u64| json!(us as f64 / 1000.0);
    json!({"p50": ms(r.lag.p50_us), "p99": ms(r.lag.p99_us), "max": ms(r.lag.max_us)})
}

/// The `replay` section of the summary JSON (documented in docs/replay.md).
fn replay_json(r: &ReplayReport) -> Value {
    let compare = r.compare.as_ref().map_or(Value::Null, |c| {
        json!({
            "compared": c.compared,
            "mismatched": c.mismatched,
            "endpoints": c.endpoints.iter().map(|e| json!({
                "method": e.method,
                "name": e.name,
                "compared": e.compared,
                "mismatched": e.mismatched,
                "by_kind": {"status": e.by_kind[0], "header": e.by_kind[1], "body": e.by_kind[2]},
            })).collect::<Vec<_>>(),
            "examples": c.examples.iter().map(|x| json!({
                "method": x.method,
                "name": x.name,
                "kind": x.difference.kind.as_str(),
                "field": x.difference.field,
                "recorded": x.difference.recorded,
                "replayed": x.difference.replayed,
            })).collect::<Vec<_>>(),
        })
    });
    json!({
        "sent": r.sent,
        "skipped": r.skipped,
        "dropped": r.dropped,
        "passes": r.passes,
        "spooled": r.spooled,
        "schedule_lag_ms": lag_json(r),
        "sessions": {"mapped_values": r.mapped_values, "substitutions": r.substitutions},
        "compare": compare,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn speeds() {
        assert_eq!(parse_speed("2"), Some(2.0));
        assert_eq!(parse_speed("200%"), Some(2.0));
        assert_eq!(parse_speed("0.5x"), Some(0.5));
        assert_eq!(parse_speed("0"), None);
        assert_eq!(parse_speed("-1"), None);
        assert_eq!(parse_speed("fast"), None);
        assert_eq!(parse_speed("inf"), None);
    }

    #[test]
    fn hosts() {
        assert_eq!(split_host("Example.com", 80), ("example.com".into(), 80));
        assert_eq!(split_host("localhost:8080", 80), ("127.0.0.1".into(), 8080));
        assert_eq!(split_host("[::1]:9", 80), ("[::1]".into(), 9));
        assert_eq!(split_host("h:bad", 443), ("h".into(), 443));
    }
}
