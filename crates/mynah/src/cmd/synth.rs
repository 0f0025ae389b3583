//! `mynah synth`: recordings -> traffic pipeline -> templates (first pass) -> workload model
//! (second pass) -> scenario YAML, CSV feeds and a locustfile.

use std::path::{Component, Path, PathBuf};

use anyhow::{anyhow, Context, Result};
use mynah_synth::{SessionKey, SynthOptions, TemplateLearner, WorkloadBuilder, WriteOptions};
use mynah_traffic::{Exchange, Pipeline, PipelineOptions};

use super::UsageError;
use crate::cli::{InputArgs, SynthArgs};

pub fn run(args: SynthArgs) -> Result<()> {
    let session_key = SessionKey::parse(&args.session_key)
        .map_err(|e| UsageError(format!("--session-key {:?}: {e}", args.session_key)))?;
    let min_share = parse_share(&args.min_share).ok_or_else(|| {
        UsageError(format!(
            "--min-share {:?}: expected a share such as 0.1% or 0.001",
            args.min_share
        ))
    })?;
    if let Some(host) = &args.host {
        mynah_engine::plan::BaseUrl::parse(host).map_err(|e| UsageError(format!("--host: {e}")))?;
    }
    // Both passes must mask alike: one key for the whole command.
    let mut pipeline_options = args.pipeline.options();
    if pipeline_options.redact_key.is_none() {
        pipeline_options.redact_key = Some(super::random_key());
    }
    Pipeline::new(&pipeline_options).map_err(|e| UsageError(e.to_string()))?;

    let options = SynthOptions {
        session_key,
        min_share,
        ..SynthOptions::default()
    };
    let mut learner = TemplateLearner::new();
    each_exchange(&args.files, &args.input, &pipeline_options, |ex| {
        learner.add(&ex.request)
    })?;
    let templates = learner.finish(min_share);
    let mut builder = WorkloadBuilder::new(templates, options);
    let report = each_exchange(&args.files, &args.input, &pipeline_options, |ex| {
        builder.add(&ex)
    })?;
    let workload = builder.finish();
    if !workload.has_tasks() {
        return Err(anyhow!(
            "nothing to synthesize: the recording holds no request the filters keep ({report})"
        ));
    }

    let scenario_dir = parent_dir(&args.output);
    let data_dir = match &args.data_dir {
        Some(d) => d.clone(),
        None => {
            let stem = args
                .output
                .file_stem()
                .map_or_else(|| "scenario".into(), |s| s.to_string_lossy().into_owned());
            scenario_dir.join(format!("{stem}-data"))
        }
    };
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("cannot create the data directory {}", data_dir.display()))?;
    let files = workload.data_files();
    for (name, text) in &files {
        let path = data_dir.join(name);
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    let scenario = workload.scenario_yaml(&WriteOptions {
        host: args.host.clone(),
        data_dir: relative(&scenario_dir, &data_dir),
    });
    std::fs::write(&args.output, scenario)
        .with_context(|| format!("cannot write {}", args.output.display()))?;
    if let Some(locustfile) = &args.locustfile {
        let text = workload.locustfile(&WriteOptions {
            host: args.host.clone(),
            data_dir: relative(&parent_dir(locustfile), &data_dir),
        });
        std::fs::write(locustfile, text)
            .with_context(|| format!("cannot write {}", locustfile.display()))?;
    }

    println!("{}", workload.summary());
    println!("wrote {}", args.output.display());
    if let Some(l) = &args.locustfile {
        println!("wrote {}", l.display());
    }
    println!(
        "wrote {} data files under {}",
        files.len(),
        data_dir.display()
    );
    eprintln!("mynah: {report}");
    println!(
        "next: mynah run {}{}",
        args.output.display(),
        if args.host.is_none() {
            " --host http://TEST-HOST:PORT"
        } else {
            ""
        }
    );
    Ok(())
}

/// Reads every input once through a fresh pipeline, calling `f` with each kept exchange;
/// returns the pipeline's report.
fn each_exchange(
    files: &[PathBuf],
    input: &InputArgs,
    options: &PipelineOptions,
    mut f: impl FnMut(Exchange),
) -> Result<mynah_traffic::PipelineReport> {
    let mut pipeline = Pipeline::new(options).map_err(|e| UsageError(e.to_string()))?;
    let mut reader = super::open_inputs(files, input)?;
    for item in reader.by_ref() {
        if let Some(ex) = pipeline.apply(item?) {
            f(ex);
        }
    }
    Ok(pipeline.report())
}

/// `0.1%` or `0.001`.
fn parse_share(s: &str) -> Option<f64> {
    let t = s.trim();
    let v = match t.strip_suffix('%') {
        Some(p) => p.trim().parse::<f64>().ok()? / 100.0,
        None => t.parse::<f64>().ok()?,
    };
    (v.is_finite() && (0.0..1.0).contains(&v)).then_some(v)
}

fn parent_dir(file: &Path) -> PathBuf {
    file.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// `to` relative to the directory `from` when one is inside the other's tree as written (both
/// relative or both absolute), else `to` made absolute; `/` separated, as the generated files
/// want it.
fn relative(from: &Path, to: &Path) -> String {
    let norm = |p: &Path| -> Vec<String> {
        p.components()
            .filter(|c| !matches!(c, Component::CurDir))
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect()
    };
    if from.is_absolute() == to.is_absolute() {
        let (f, t) = (norm(from), norm(to));
        if !f.iter().any(|c| c == "..") && !t.iter().any(|c| c == "..") {
            let common = f.iter().zip(&t).take_while(|(a, b)| a == b).count();
            let mut parts: Vec<String> = vec!["..".to_string(); f.len() - common];
            parts.extend(t[common..].iter().cloned());
            return parts.join("/");
        }
    }
    std::path::absolute(to)
        .unwrap_or_else(|_| to.to_path_buf())
        .to_string_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares() {
        assert_eq!(parse_share("0.1%"), Some(0.001));
        assert_eq!(parse_share("0.01"), Some(0.01));
        assert_eq!(parse_share("0"), Some(0.0));
        assert_eq!(parse_share("100%"), None);
        assert_eq!(parse_share("x"), None);
    }

    #[test]
    fn relative_paths() {
        assert_eq!(relative(Path::new("out"), Path::new("out/data")), "data");
        assert_eq!(relative(Path::new("."), Path::new("data")), "data");
        assert_eq!(relative(Path::new("a/b"), Path::new("a/data")), "../data");
        assert_eq!(relative(Path::new("/x/y"), Path::new("/x/y/d")), "d");
    }
}
