//! Scenario files for mynah: a YAML description of user classes, their tasks,
//! data feeds, load shape and thresholds, parsed into [`Scenario`] and
//! validated before any run so that mistakes surface with a file position.

mod model;
mod raw;
pub mod template;
mod validate;

#[cfg(test)]
mod tests;

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use model::*;

/// Why a scenario file was rejected.
///
/// Displays as `FILE:LINE:COLUMN: message` (or `FILE: message` when no
/// position is known).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScenarioError {
    /// The scenario file, as given to [`parse`].
    pub file: PathBuf,
    /// 1-based line, when known.
    pub line: Option<u64>,
    /// 1-based column, when known.
    pub column: Option<u64>,
    /// What was expected or what is wrong.
    pub message: String,
}

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let (Some(line), Some(column)) = (self.line, self.column) {
            write!(f, ":{line}:{column}")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ScenarioError {}

/// Parses and validates a scenario file's text; `file` is only used in errors.
pub fn parse(text: &str, file: &Path) -> Result<Scenario, ScenarioError> {
    let make = |loc: Option<serde_saphyr::Location>, message: String| ScenarioError {
        file: file.to_path_buf(),
        line: loc.map(|l| l.line()),
        column: loc.map(|l| l.column()),
        message,
    };
    let raw: serde_saphyr::Spanned<raw::RawScenario> =
        serde_saphyr::from_str(text).map_err(|e| make(e.location(), yaml_message(&e)))?;
    validate::scenario(raw.value, raw.referenced).map_err(|i| make(i.loc, i.msg))
}

/// The error text without serde-saphyr's own position suffix, plus a
/// did-you-mean hint for unknown keys and variants.
fn yaml_message(e: &serde_saphyr::Error) -> String {
    use serde_saphyr::Error as E;
    let inner = match e {
        E::WithSnippet { error, .. } => error.as_ref(),
        other => other,
    };
    match inner {
        E::SerdeUnknownField {
            field, expected, ..
        } => unknown("key", field, expected),
        E::SerdeUnknownVariant {
            variant, expected, ..
        } => unknown("value", variant, expected),
        E::SerdeInvalidType {
            unexpected,
            expected,
            ..
        } => format!("invalid type: {unexpected}, expected {expected}"),
        E::SerdeInvalidValue {
            unexpected,
            expected,
            ..
        } => format!("invalid value: {unexpected}, expected {expected}"),
        E::InvalidScalar { ty, .. } => format!("invalid value, expected {}", describe_scalar(ty)),
        E::Unexpected { expected, .. } => format!("expected {expected}"),
        E::SerdeMissingField { field, .. } => format!("missing required key `{field}`"),
        other => {
            let text = other.to_string();
            // The position is already in our prefix; drop the duplicate.
            match text.rfind(" at line ") {
                Some(i) => text[..i].to_string(),
                None => text,
            }
        }
    }
}

/// Reader-facing names for the Rust types serde-saphyr reports.
fn describe_scalar(ty: &str) -> String {
    match ty {
        "u8" | "u16" | "u32" | "u64" | "usize" => "a non-negative integer".into(),
        "i8" | "i16" | "i32" | "i64" | "isize" => "an integer".into(),
        "f32" | "f64" => "a number".into(),
        "bool" => "true or false".into(),
        other => other.into(),
    }
}

fn unknown(what: &str, found: &str, expected: &[&str]) -> String {
    let mut msg = format!("unknown {what} \"{found}\", expected one of: ");
    msg.push_str(&expected.join(", "));
    let best = expected
        .iter()
        .map(|k| (levenshtein(found, k), *k))
        .min_by_key(|(d, _)| *d);
    // Beyond a third of the word, a "suggestion" is more noise than help.
    if let Some((d, k)) = best {
        if d <= (found.chars().count() / 3).max(2) {
            msg.push_str(&format!("; did you mean \"{k}\"?"));
        }
    }
    msg
}

/// Edit distance (insertions, deletions, substitutions) between two strings.
fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Parses a duration such as `250ms`, `30s`, `1m` or `1h30m`.
///
/// Units are `ms`, `s`, `m` and `h`; each component is a whole number.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    const EXPECTED: &str = "a duration such as 30s, 250ms or 1h30m";
    let s = text.trim();
    if s.is_empty() {
        return Err(EXPECTED.into());
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(EXPECTED.into());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| EXPECTED.to_string())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let millis_per = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            _ => return Err(EXPECTED.into()),
        };
        rest = &rest[unit_len..];
        let part = n.checked_mul(millis_per).ok_or("duration too large")?;
        total = total
            .checked_add(Duration::from_millis(part))
            .ok_or("duration too large")?;
    }
    Ok(total)
}
