//! `mynah compare A B`: two run/replay summaries side by side (regression gates), or two
//! recordings compared for fidelity (the second against the first, on the first's endpoint
//! templates).

use std::path::Path;

use anyhow::{Context, Result};
use mynah_synth::fidelity::{self, Profile};
use mynah_synth::TemplateLearner;

use super::UsageError;
use crate::cli::CompareArgs;

pub fn run(args: CompareArgs) -> Result<()> {
    match (is_summary(&args.a)?, is_summary(&args.b)?) {
        (true, true) => super::compare_summaries::run(
            &args.a,
            &args.b,
            args.html.as_deref(),
            args.json.as_deref(),
            &args.fail_on,
        ),
        (false, false) => {
            if !args.fail_on.is_empty() {
                return Err(UsageError("--fail-on applies to two summaries (--summary-json of run or replay), not to recordings".into()).into());
            }
            if args.html.is_some() {
                return Err(UsageError(
                    "--html applies to two summaries; for recordings use --json".into(),
                )
                .into());
            }
            recordings(&args)
        }
        _ => Err(UsageError(format!(
            "{} and {} are not of one kind: compare two summaries (--summary-json files) or two recordings",
            args.a.display(),
            args.b.display()
        ))
        .into()),
    }
}

/// A mynah summary JSON: a JSON object whose `tool` is `"mynah"`. The key can come after a large
/// `endpoints` array, so the object is read through (serde skips every other field without
/// keeping it, so a big HAR file costs time, not memory).
fn is_summary(path: &Path) -> Result<bool> {
    #[derive(serde::Deserialize)]
    struct Probe {
        tool: Option<String>,
    }
    let f = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut r = std::io::BufReader::new(f);
    let (starts_object, says_mynah) = {
        let head = std::io::BufRead::fill_buf(&mut r)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let text = String::from_utf8_lossy(head);
        (
            head.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{'),
            text.contains("\"tool\"") && text.contains("\"mynah\""),
        )
    };
    if !starts_object {
        return Ok(false);
    }
    Ok(match serde_json::from_reader::<_, Probe>(r) {
        Ok(p) => p.tool.is_some_and(|t| t == "mynah"),
        // A broken summary is still a summary (its error then names the file and the fault).
        Err(_) => says_mynah,
    })
}

/// Fidelity of recording B to recording A.
fn recordings(args: &CompareArgs) -> Result<()> {
    let files_a = [args.a.clone()];
    let files_b = [args.b.clone()];
    let mut learner = TemplateLearner::new();
    for item in super::open_inputs(&files_a, &args.input)?.by_ref() {
        learner.add(&item?.request);
    }
    let templates = learner.finish(0.0);
    let mut a = Profile::new();
    for item in super::open_inputs(&files_a, &args.input)?.by_ref() {
        a.add(&item?, &templates);
    }
    let mut b = Profile::new();
    for item in super::open_inputs(&files_b, &args.input)?.by_ref() {
        b.add(&item?, &templates);
    }
    let result = fidelity::compare(&a, &b);
    println!(
        "fidelity of {} to {} (0 = the same; JSD and KS distances in [0, 1]):",
        args.b.display(),
        args.a.display()
    );
    println!("{}", result.table());
    if let Some(path) = &args.json {
        let mut v = result.to_json();
        v["recorded"] = serde_json::json!(args.a.display().to_string());
        v["other"] = serde_json::json!(args.b.display().to_string());
        std::fs::write(
            path,
            serde_json::to_string_pretty(&v).unwrap_or_default() + "\n",
        )
        .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}
