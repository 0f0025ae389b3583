//! One module per command. Each only wires library crates together.

pub mod compare;
pub mod compare_summaries;
pub mod convert;
pub mod demo;
pub mod inspect;
pub mod proxy;
pub mod record;
pub mod replay;
pub mod run;
pub mod synth;
pub mod web;

use std::fmt;

use anyhow::Result;
use mynah_traffic::{ExchangeReader, Format, Merge, ReadOptions};

use crate::cli::InputArgs;

/// A mistake in how mynah was called (exit code 2), as opposed to bad input (exit code 1).
#[derive(Debug)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

pub fn parse_format(s: &str) -> Result<Format> {
    Format::parse(s).ok_or_else(|| {
        UsageError(format!("unknown format {s:?}: expected gor, har or pcap")).into()
    })
}

/// The format of a capture file mynah writes (`.gor`, `.gor.gz`, `.har`), from its name.
pub fn output_format(path: &std::path::Path) -> Result<Format> {
    Format::from_path(path)
        .filter(|f| *f != Format::Pcap)
        .ok_or_else(|| {
            UsageError(format!(
                "cannot tell the output format from {path:?}: name it .gor, .gor.gz or .har"
            ))
            .into()
        })
}

/// Opens every input and merges them into one stream in request-time order.
pub fn open_inputs(
    files: &[std::path::PathBuf],
    args: &InputArgs,
) -> Result<Box<dyn ExchangeReader>> {
    let format = args.from.as_deref().map(parse_format).transpose()?;
    let opts = ReadOptions {
        lenient: args.lenient,
        ports: args.port.clone(),
    };
    let mut readers = Vec::with_capacity(files.len());
    for f in files {
        readers.push(mynah_traffic::open(f, format, &opts)?);
    }
    if readers.len() == 1 {
        Ok(readers.pop().expect("one reader"))
    } else {
        Ok(Box::new(Merge::new(readers)))
    }
}

/// A random key for the masking pipeline when none is given, so that the passes of one command
/// over the same recording mask alike (a fresh key per command, like `convert`'s default).
pub fn random_key() -> String {
    use std::hash::{BuildHasher, Hasher};
    let a = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    let b = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    format!("{a:016x}{b:016x}")
}
