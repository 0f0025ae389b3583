//! Filters on the request: URL (path and query), method, headers.

use regex::Regex;

use super::{PipelineError, PipelineOptions};
use crate::model::Request;

#[derive(Debug, Default)]
pub(super) struct Filter {
    allow_url: Vec<Regex>,
    deny_url: Vec<Regex>,
    methods: Vec<String>,
    allow_header: Vec<(String, Regex)>,
    deny_header: Vec<(String, Regex)>,
}

pub(super) fn compile(
    flag: &'static str,
    value: &str,
    pattern: &str,
) -> Result<Regex, PipelineError> {
    Regex::new(pattern).map_err(|e| {
        PipelineError::new(
            flag,
            value,
            format!(
                "not a valid regular expression: {}",
                first_line(&e.to_string())
            ),
        )
    })
}

fn first_line(s: &str) -> String {
    // regex errors span several lines (pattern, caret, message); keep it to the message.
    s.lines()
        .rfind(|l| l.trim_start().starts_with("error:"))
        .unwrap_or_else(|| s.lines().next().unwrap_or(s))
        .trim()
        .to_string()
}

/// True for a valid header field name (an RFC 9110 token).
pub(super) fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Parses `Name: REGEX`.
pub(super) fn header_rule(
    flag: &'static str,
    value: &str,
) -> Result<(String, Regex), PipelineError> {
    let expected = "expected 'Name: REGEX', e.g. 'Content-Type: ^application/json'";
    let (name, pattern) = value
        .split_once(':')
        .ok_or_else(|| PipelineError::new(flag, value, expected))?;
    let name = name.trim();
    if !is_token(name) {
        return Err(PipelineError::new(flag, value, expected));
    }
    Ok((
        name.to_string(),
        compile(flag, value, pattern.trim_start())?,
    ))
}

fn header_matches(req: &Request, (name, re): &(String, Regex)) -> bool {
    req.headers
        .get_all(name)
        .any(|v| re.is_match(&String::from_utf8_lossy(v)))
}

impl Filter {
    pub(super) fn new(opts: &PipelineOptions) -> Result<Filter, PipelineError> {
        let mut f = Filter::default();
        for v in &opts.allow_url {
            f.allow_url.push(compile("--allow-url", v, v)?);
        }
        for v in &opts.deny_url {
            f.deny_url.push(compile("--deny-url", v, v)?);
        }
        for v in &opts.allow_method {
            for m in v.split(',').map(str::trim) {
                if !is_token(m) {
                    return Err(PipelineError::new(
                        "--allow-method",
                        v,
                        "expected an HTTP method such as GET or POST (repeat the flag or separate with commas)",
                    ));
                }
                f.methods.push(m.to_ascii_uppercase());
            }
        }
        for v in &opts.allow_header {
            f.allow_header.push(header_rule("--allow-header", v)?);
        }
        for v in &opts.deny_header {
            f.deny_header.push(header_rule("--deny-header", v)?);
        }
        Ok(f)
    }

    /// The reason to drop `req`, or `None` to keep it.
    pub(super) fn reject(&self, req: &Request) -> Option<&'static str> {
        if !self.methods.is_empty()
            && !self
                .methods
                .iter()
                .any(|m| m.eq_ignore_ascii_case(&req.method))
        {
            return Some("method");
        }
        let pq = req.path_and_query();
        if !self.allow_url.is_empty() && !self.allow_url.iter().any(|r| r.is_match(pq)) {
            return Some("allow_url");
        }
        if self.deny_url.iter().any(|r| r.is_match(pq)) {
            return Some("deny_url");
        }
        if !self.allow_header.iter().all(|r| header_matches(req, r)) {
            return Some("allow_header");
        }
        if self.deny_header.iter().any(|r| header_matches(req, r)) {
            return Some("deny_header");
        }
        None
    }
}
