//! `mynah convert`: any reader to any writer, inputs merged by time, through the traffic pipeline
//! (filters, sampling, masking, rewrites).

use anyhow::{Context, Result};
use mynah_traffic::{sink, Format, Pipeline};

use super::UsageError;
use crate::cli::ConvertArgs;

pub fn run(args: ConvertArgs) -> Result<()> {
    let format = match args.to.as_deref() {
        Some(f) => super::parse_format(f)?,
        None => Format::from_path(&args.output).ok_or_else(|| {
            UsageError(format!(
                "cannot tell the output format from {:?}: name it .gor, .gor.gz or .har, or pass --to",
                args.output
            ))
        })?,
    };
    if format == Format::Pcap {
        return Err(UsageError("mynah writes .gor and .har, not pcap".into()).into());
    }
    let mut pipeline =
        Pipeline::new(&args.pipeline.options()).map_err(|e| UsageError(e.to_string()))?;
    let mut reader = super::open_inputs(&args.inputs, &args.input)?;
    let mut writer = sink::create(&args.output, format)
        .with_context(|| format!("cannot create {}", args.output.display()))?;
    let mut written = 0u64;
    let mut incomplete = 0u64;
    let mut failure = None;
    for item in reader.by_ref() {
        match item {
            Ok(ex) => {
                let Some(ex) = pipeline.apply(ex) else {
                    continue;
                };
                incomplete += ex.incomplete.is_some() as u64;
                writer
                    .write(&ex)
                    .with_context(|| format!("writing {}", args.output.display()))?;
                written += 1;
            }
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    // Even when an input is corrupt, what was read is written out whole: a valid file, nothing lost.
    writer
        .finish()
        .with_context(|| format!("writing {}", args.output.display()))?;
    let report = reader.report();
    eprintln!(
        "mynah: wrote {written} exchanges ({incomplete} incomplete) to {}{}",
        args.output.display(),
        if report.corrupt_skipped > 0 {
            format!("; skipped {} corrupt records", report.corrupt_skipped)
        } else {
            String::new()
        }
    );
    eprintln!("mynah: {}", pipeline.report());
    match failure {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}
