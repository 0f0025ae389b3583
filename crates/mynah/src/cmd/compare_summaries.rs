//! `mynah compare A.json B.json` on two run or replay summaries: reads both, prints the
//! side-by-side table and the `--fail-on` verdicts, writes `--json` and `--html` reports.

use std::path::Path;

use anyhow::{anyhow, Context, Result};
use mynah_stats::report::compare::{
    compare, comparison_html, comparison_json, comparison_table, parse_rules, parse_summary,
    Summary, Verdict,
};

use crate::cmd::run::ThresholdsFailed;
use crate::cmd::UsageError;

/// Compares summaries `a` (before, or synthetic) and `b` (after, or replayed).
///
/// Errors: a malformed `--fail-on` rule is a [`UsageError`] (exit 2, checked before any file is
/// read); an unreadable or invalid summary is a plain error naming the file (exit 1); a failed
/// rule is [`ThresholdsFailed`] (exit 3), after the table and the reports are written.
pub fn run(
    a: &Path,
    b: &Path,
    html: Option<&Path>,
    json: Option<&Path>,
    fail_on: &[String],
) -> Result<()> {
    let rules = parse_rules(fail_on).map_err(|e| UsageError(format!("--fail-on: {e}")))?;
    let sa = read_summary(a)?;
    let sb = read_summary(b)?;
    let comparison = compare(&sa, &sb);
    let verdicts: Vec<Verdict> = rules.iter().map(|r| r.evaluate(&comparison)).collect();
    print!("{}", comparison_table(&comparison, &verdicts));

    let mut first_error = None;
    if let Some(path) = json {
        let doc = comparison_json(&comparison, &verdicts);
        let text = serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n";
        if let Err(e) = std::fs::write(path, text) {
            first_error.get_or_insert(anyhow!("cannot write {}: {e}", path.display()));
        }
    }
    if let Some(path) = html {
        if let Err(e) = std::fs::write(path, comparison_html(&comparison, &verdicts)) {
            first_error.get_or_insert(anyhow!("cannot write {}: {e}", path.display()));
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    let failed = verdicts.iter().filter(|v| !v.passed).count();
    if failed > 0 {
        return Err(ThresholdsFailed::new(failed, verdicts.len()).into());
    }
    Ok(())
}

fn read_summary(path: &Path) -> Result<Summary> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read summary {}", path.display()))?;
    let value: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not valid JSON", path.display()))?;
    let label = path.display().to_string();
    Ok(parse_summary(&value, &label)?)
}
