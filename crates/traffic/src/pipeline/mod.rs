//! The traffic pipeline: what `convert`, `replay` and capture do to each exchange between reading
//! and writing it.
//!
//! In order, for each exchange:
//! 1. **filters** on the request (`--allow-method`, `--allow-url`, `--deny-url`, `--allow-header`,
//!    `--deny-header`): a dropped exchange is counted by the first filter that rejected it;
//! 2. **sampling** (`--sample 10%`, `--sample-key`): hash-based on a key, so every exchange that
//!    shares the key (a client, a session cookie, a token) is kept or dropped together;
//! 3. **masking** (`--redact`, and the default policy unless `--no-default-redaction`): secrets in
//!    header values, cookies, query strings, form and JSON bodies become stable pseudonyms;
//! 4. **rewrites** (`--drop-header`, `--set-header`, `--rewrite-url`) on the request, last, so a
//!    header the user sets on purpose (`--set-header 'Authorization: Bearer test'`) is not masked.
//!
//! Everything is pure and synchronous. The pipeline never panics on any input: bodies it cannot
//! decode or parse are left as they are and counted in the [`PipelineReport`].

mod filter;
mod jsonpath;
mod redact;
mod rewrite;
mod sample;
mod seen;

use std::collections::BTreeMap;
use std::fmt;

use crate::model::Exchange;

pub use sample::fnv1a64;

/// The pipeline's settings, one field per command-line flag (see the `mynah` CLI for the flags).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PipelineOptions {
    /// `--allow-url REGEX`: keep a request only if its path and query match one of these.
    pub allow_url: Vec<String>,
    /// `--deny-url REGEX`: drop a request whose path and query match any of these.
    pub deny_url: Vec<String>,
    /// `--allow-method M`: keep only these methods (case-insensitive; `GET,POST` also accepted).
    pub allow_method: Vec<String>,
    /// `--allow-header 'Name: REGEX'`: keep a request only if it matches every one of these.
    pub allow_header: Vec<String>,
    /// `--deny-header 'Name: REGEX'`: drop a request that matches any of these.
    pub deny_header: Vec<String>,
    /// `--sample 10%`: keep this share of the sample keys.
    pub sample: Option<String>,
    /// `--sample-key cookie:NAME | header:NAME | client-ip` (default `client-ip`).
    pub sample_key: Option<String>,
    /// `--set-header 'Name: value'`: replace (or add) a request header.
    pub set_header: Vec<String>,
    /// `--drop-header Name`: remove a request header.
    pub drop_header: Vec<String>,
    /// `--rewrite-url 'REGEX=>REPLACEMENT'` on the path and query (`$1`, `${name}` captures).
    pub rewrite_url: Vec<String>,
    /// `--redact header:NAME | cookie:NAME | query:NAME | json:$.path | form:NAME | regex:PATTERN`.
    pub redact: Vec<String>,
    /// `--no-default-redaction`: mask only what `--redact` names.
    pub no_default_redaction: bool,
    /// `--redact-key KEY`: the key of the pseudonyms (default: random for each process).
    pub redact_key: Option<String>,
}

/// A flag value the pipeline cannot use. The message names the flag, the value and the expected form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{flag} {value:?}: {message}")]
pub struct PipelineError {
    pub flag: &'static str,
    pub value: String,
    pub message: String,
}

impl PipelineError {
    pub(crate) fn new(flag: &'static str, value: &str, message: impl Into<String>) -> Self {
        PipelineError {
            flag,
            value: value.to_string(),
            message: message.into(),
        }
    }
}

/// What the pipeline did, in counts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PipelineReport {
    /// Exchanges given to [`Pipeline::apply`].
    pub seen: u64,
    /// Exchanges it returned.
    pub kept: u64,
    /// Exchanges dropped by a filter, by the filter (`method`, `allow_url`, `deny_url`,
    /// `allow_header`, `deny_header`).
    pub dropped: BTreeMap<&'static str, u64>,
    /// Exchanges dropped by `--sample`.
    pub sampled_out: u64,
    /// Sampled exchanges without the chosen key, sampled on the fallback key instead.
    pub sample_key_fallback: u64,
    /// Values replaced by a pseudonym, by rule kind (`header`, `cookie`, `query`, `form`, `json`,
    /// `regex`, `card`, and `seen_secret` for a value masked earlier found again elsewhere).
    pub redacted: BTreeMap<&'static str, u64>,
    /// Bodies that masking changed (stored decoded, framing headers fixed).
    pub bodies_rewritten: u64,
    /// Bodies masking could not look into and left as they were (`invalid_json`, `undecodable`).
    pub bodies_left: BTreeMap<&'static str, u64>,
    /// Requests whose URL a `--rewrite-url` rule changed.
    pub urls_rewritten: u64,
}

impl PipelineReport {
    pub fn dropped_total(&self) -> u64 {
        self.dropped.values().sum()
    }

    pub fn redacted_total(&self) -> u64 {
        self.redacted.values().sum()
    }
}

fn join_counts(m: &BTreeMap<&'static str, u64>) -> String {
    m.iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl fmt::Display for PipelineReport {
    /// One line: `pipeline: 274 seen, 120 kept; dropped 154 (method 150, deny_url 4); ...`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pipeline: {} seen, {} kept", self.seen, self.kept)?;
        if !self.dropped.is_empty() {
            write!(
                f,
                "; dropped {} ({})",
                self.dropped_total(),
                join_counts(&self.dropped)
            )?;
        }
        if self.sampled_out > 0 || self.sample_key_fallback > 0 {
            write!(f, "; sampled out {}", self.sampled_out)?;
            if self.sample_key_fallback > 0 {
                write!(f, " ({} without the sample key)", self.sample_key_fallback)?;
            }
        }
        write!(f, "; masked {} values", self.redacted_total())?;
        if !self.redacted.is_empty() {
            write!(f, " ({})", join_counts(&self.redacted))?;
        }
        if self.bodies_rewritten > 0 {
            write!(f, "; {} bodies rewritten", self.bodies_rewritten)?;
        }
        if !self.bodies_left.is_empty() {
            write!(f, "; bodies left as is: {}", join_counts(&self.bodies_left))?;
        }
        if self.urls_rewritten > 0 {
            write!(f, "; {} URLs rewritten", self.urls_rewritten)?;
        }
        Ok(())
    }
}

/// Filters, samples, masks and rewrites exchanges; see the module documentation.
#[derive(Debug)]
pub struct Pipeline {
    filter: filter::Filter,
    sampler: Option<sample::Sampler>,
    redactor: redact::Redactor,
    rewrite: rewrite::Rewrite,
    report: PipelineReport,
}

impl Pipeline {
    /// Checks and compiles every option; the error names the first bad flag value.
    pub fn new(opts: &PipelineOptions) -> Result<Pipeline, PipelineError> {
        Ok(Pipeline {
            filter: filter::Filter::new(opts)?,
            sampler: sample::Sampler::new(opts)?,
            redactor: redact::Redactor::new(opts)?,
            rewrite: rewrite::Rewrite::new(opts)?,
            report: PipelineReport::default(),
        })
    }

    /// Runs one exchange through the pipeline: `None` when a filter or the sampling dropped it.
    pub fn apply(&mut self, mut exchange: Exchange) -> Option<Exchange> {
        self.report.seen += 1;
        if let Some(reason) = self.filter.reject(&exchange.request) {
            *self.report.dropped.entry(reason).or_default() += 1;
            return None;
        }
        if let Some(sampler) = &self.sampler {
            let (keep, fallback) = sampler.keep(&exchange);
            self.report.sample_key_fallback += fallback as u64;
            if !keep {
                self.report.sampled_out += 1;
                return None;
            }
        }
        self.redactor.apply(&mut exchange, &mut self.report);
        if self.rewrite.apply(&mut exchange.request) {
            self.report.urls_rewritten += 1;
        }
        self.report.kept += 1;
        Some(exchange)
    }

    /// The counts so far.
    pub fn report(&self) -> PipelineReport {
        self.report.clone()
    }

    /// The pseudonym this pipeline gives `secret` (`mask-` and 16 lowercase hex digits), for
    /// callers that must mask values the pipeline does not see (logs, reports).
    pub fn pseudonym(&self, secret: &[u8]) -> String {
        self.redactor.pseudonym(secret)
    }
}

#[cfg(test)]
mod tests;
