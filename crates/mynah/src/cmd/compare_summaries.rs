//! Placeholder until the summary comparison lands (being written in parallel).
use std::path::Path;

pub fn run(
    _a: &Path,
    _b: &Path,
    _html: Option<&Path>,
    _json: Option<&Path>,
    _fail_on: &[String],
) -> anyhow::Result<()> {
    Err(anyhow::anyhow!("comparing summaries is not built yet"))
}
