//! `mynah demo`: the whole loop on the embedded demo shop, with nothing else to install or run.
//!
//! 1. start the demo shop on loopback (`mynah_demo::shop`);
//! 2. start `mynah proxy` in front of it, recording with the default masking;
//! 3. send it the built-in "production" traffic (`mynah_demo::production`, run by `mynah run`);
//! 4. `mynah synth` the recording into a scenario and a locustfile;
//! 5. `mynah run` that scenario with a warm-up / steady / spike / cooldown shape;
//! 6. `mynah replay` the recording with `--compare`;
//! 7. `mynah compare` the replay with the synthetic run.
//!
//! Each step is the real command, called with the arguments printed beside it, so that what the
//! demo does can be done by hand on real traffic.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Parser as _;
use mynah_capture::proxy::{Proxy, ProxyConfig, Recorder, RecorderOptions};
use mynah_demo::{production, shop::Shop};
use mynah_traffic::{Format, Pipeline, PipelineOptions};

use crate::cli::{Cli, Command, DemoArgs};

/// The load shape the demo adds to the synthesized scenario (`mynah synth` writes none: the
/// recording says what users do, not how many to run).
const SYNTH_LOAD: &str = "
# Added by `mynah demo`: warm-up, steady state, a spike, cooldown.
load:
  stages:
    - { duration: 5s, users: 20, spawn_rate: 10 }
    - { duration: 12s, users: 20, spawn_rate: 10 }
    - { duration: 6s, users: 60, spawn_rate: 30 }
    - { duration: 6s, users: 10, spawn_rate: 30 }
";

/// The same shape, shorter, for `--quick`.
const SYNTH_LOAD_QUICK: &str = "
# Added by `mynah demo --quick`: warm-up, steady state, a spike, cooldown.
load:
  stages:
    - { duration: 1s, users: 10, spawn_rate: 10 }
    - { duration: 2s, users: 10, spawn_rate: 10 }
    - { duration: 2s, users: 30, spawn_rate: 30 }
    - { duration: 1s, users: 5, spawn_rate: 30 }
";

/// The production traffic's shape for `--quick`.
const PRODUCTION_LOAD_QUICK: &str = "load:
  stages:
    - { duration: 2s, users: 16, spawn_rate: 16 }
    - { duration: 2s, users: 30, spawn_rate: 30 }
    - { duration: 2s, users: 16, spawn_rate: 30 }
";

pub fn run(args: DemoArgs) -> Result<()> {
    let started = Instant::now();
    let dir = match args.out {
        Some(d) => d,
        None => PathBuf::from(format!(
            "mynah-demo-{}",
            time::OffsetDateTime::now_utc()
                .format(time::macros::format_description!(
                    "[year][month][day]-[hour][minute][second]"
                ))
                .unwrap_or_else(|_| "out".into())
        )),
    };
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("cannot create the demo folder {}", dir.display()))?;
    let total = 7;
    let mut step = 0;
    let mut say = |what: &str| {
        step += 1;
        eprintln!(
            "\n\x1b[1mmynah demo [{step}/{total}] {what}\x1b[0m ({:.0} s)",
            started.elapsed().as_secs_f64()
        );
    };

    say("starting the demo shop on loopback");
    let shop = Shop::start(([127, 0, 0, 1], 0).into()).context("cannot start the demo shop")?;
    let shop_url = format!("http://{}", shop.addr());
    eprintln!("  the shop: {shop_url} (home, articles, a search that is slow for some terms, sign-in, cart, a few errors)");

    say("recording production traffic through `mynah proxy`");
    let recording = dir.join("recording.gor");
    let production_dir = dir.join("production");
    let mut scenario_text = production::SCENARIO.to_string();
    if args.quick {
        let at = scenario_text
            .find("load:")
            .context("the built-in production scenario has no load section")?;
        scenario_text.truncate(at);
        scenario_text.push_str(PRODUCTION_LOAD_QUICK);
    }
    let production_scenario = production::write(&production_dir)
        .with_context(|| format!("cannot write {}", production_dir.display()))?;
    std::fs::write(&production_scenario, &scenario_text)
        .with_context(|| format!("cannot write {}", production_scenario.display()))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("mynah-demo-proxy")
        .enable_all()
        .build()
        .context("cannot start the proxy's runtime")?;
    let pipeline = Pipeline::new(&PipelineOptions::default())?;
    let recorder = Recorder::to_file(
        &recording,
        Format::Gor,
        pipeline,
        RecorderOptions::default(),
    )
    .with_context(|| format!("cannot create {}", recording.display()))?;
    let config = ProxyConfig::new(([127, 0, 0, 1], 0).into(), &shop_url)?;
    let proxy = rt.block_on(Proxy::start(config, recorder.sink()))?;
    let proxy_url = format!("http://{}", proxy.local_addr());
    eprintln!(
        "  mynah proxy --listen {} --upstream {shop_url} -o {}",
        proxy.local_addr(),
        recording.display()
    );
    eprintln!(
        "  visitors and shoppers (a steady period and a burst) sent to the proxy by: mynah run {} --host {proxy_url}",
        production_scenario.display()
    );
    let traffic = mynah(&[
        "run".into(),
        production_scenario.clone().into(),
        "--host".into(),
        proxy_url.clone().into(),
        "--summary-json".into(),
        production_dir.join("summary.json").into(),
    ]);
    let stats = rt.block_on(proxy.shutdown());
    let report = recorder
        .finish()
        .with_context(|| format!("writing {}", recording.display()))?;
    drop(rt);
    traffic.context("the production traffic failed")?;
    eprintln!(
        "  recorded {} exchanges ({} requests proxied) to {}; masked before writing: {}",
        report.stats.written,
        stats.requests,
        recording.display(),
        report.pipeline
    );
    if report.stats.written == 0 {
        bail!("nothing was recorded: the demo cannot go on");
    }

    say("synthesizing a scenario and a Locust locustfile from the recording");
    let synth_dir = dir.join("synth");
    let scenario = synth_dir.join("scenario.yaml");
    mynah(&[
        "synth".into(),
        recording.clone().into(),
        "-o".into(),
        scenario.clone().into(),
        "--locustfile".into(),
        synth_dir.join("locustfile.py").into(),
        "--host".into(),
        shop_url.clone().into(),
    ])?;
    let mut text = std::fs::read_to_string(&scenario)
        .with_context(|| format!("cannot read {}", scenario.display()))?;
    text.push_str(if args.quick {
        SYNTH_LOAD_QUICK
    } else {
        SYNTH_LOAD
    });
    std::fs::write(&scenario, text)
        .with_context(|| format!("cannot write {}", scenario.display()))?;
    eprintln!(
        "  {} (a warm-up / steady / spike / cooldown load shape added at its end)",
        scenario.display()
    );

    say("running the synthesized scenario against the shop");
    let synthetic = dir.join("synthetic");
    std::fs::create_dir_all(&synthetic)?;
    let mut run_args: Vec<OsString> = vec![
        "run".into(),
        scenario.clone().into(),
        "--summary-json".into(),
        synthetic.join("summary.json").into(),
        "--html".into(),
        synthetic.join("report.html").into(),
        "--csv".into(),
        synthetic.join("stats").into(),
    ];
    if args.web {
        // The page keeps the final numbers for a while, then the demo goes on.
        run_args.extend([
            "--web".into(),
            "--autostart".into(),
            "--autoquit".into(),
            "15".into(),
        ]);
    }
    // A failed threshold or check is part of what the demo shows, not a reason to stop.
    allow_thresholds(mynah(&run_args))?;

    say("replaying the recording against the shop, responses compared");
    let replayed = dir.join("replay");
    std::fs::create_dir_all(&replayed)?;
    allow_thresholds(mynah(&[
        "replay".into(),
        recording.clone().into(),
        "--target".into(),
        shop_url.clone().into(),
        "--compare".into(),
        "--endpoint-names".into(),
        "template".into(),
        "--summary-json".into(),
        replayed.join("summary.json").into(),
        "--html".into(),
        replayed.join("report.html").into(),
        "--csv".into(),
        replayed.join("stats").into(),
    ]))?;

    say("comparing the synthetic run with the replay");
    let comparison = dir.join("comparison.html");
    allow_thresholds(mynah(&[
        "compare".into(),
        replayed.join("summary.json").into(),
        synthetic.join("summary.json").into(),
        "--html".into(),
        comparison.clone().into(),
        "--json".into(),
        dir.join("comparison.json").into(),
    ]))?;

    say("done");
    let (served, errors) = shop.served();
    shop.stop();
    eprintln!(
        "  the shop served {served} requests ({errors} server errors) in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    print_files(&dir);
    Ok(())
}

/// Runs one mynah command in this process, as `mynah ARGS...` would.
fn mynah(args: &[OsString]) -> Result<()> {
    let mut argv: Vec<OsString> = vec!["mynah".into()];
    argv.extend(args.iter().cloned());
    let shown: Vec<String> = argv
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    eprintln!("  $ {}", shown.join(" "));
    let cli = Cli::try_parse_from(argv).context("the demo built a bad command line")?;
    match cli.command {
        Command::Run(a) => super::run::run(a),
        Command::Replay(a) => super::replay::run(*a),
        Command::Synth(a) => super::synth::run(*a),
        Command::Compare(a) => super::compare::run(a),
        _ => bail!("the demo runs only run, replay, synth and compare"),
    }
}

fn allow_thresholds(r: Result<()>) -> Result<()> {
    match r {
        Err(e) if e.downcast_ref::<super::run::ThresholdsFailed>().is_some() => {
            eprintln!("  ({e}; the demo goes on)");
            Ok(())
        }
        other => other,
    }
}

fn print_files(dir: &Path) {
    let show = |p: &str, what: &str| {
        let path = dir.join(p);
        if path.exists() {
            eprintln!("  {:<34} {what}", path.display());
        }
    };
    eprintln!("\nmynah demo: everything is in {}:", dir.display());
    show("recording.gor", "the recorded production traffic (masked)");
    show(
        "synth/scenario.yaml",
        "the synthesized scenario (mynah run)",
    );
    show("synth/locustfile.py", "the same workload for Locust");
    show("synthetic/report.html", "the synthetic run's report");
    show(
        "replay/report.html",
        "the replay's report (with response comparison)",
    );
    show(
        "comparison.html",
        "synthetic run vs replay, endpoint by endpoint",
    );
    eprintln!("Open the HTML files in a browser; replay your own traffic with the commands above.");
}
