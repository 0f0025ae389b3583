//! Request rewrites: `--drop-header`, `--set-header`, `--rewrite-url`, applied in that order.

use regex::Regex;

use super::filter::{compile, is_token};
use super::{PipelineError, PipelineOptions};
use crate::model::Request;

#[derive(Debug, Default)]
pub(super) struct Rewrite {
    drop: Vec<String>,
    set: Vec<(String, Vec<u8>)>,
    url: Vec<(Regex, String)>,
}

impl Rewrite {
    pub(super) fn new(opts: &PipelineOptions) -> Result<Rewrite, PipelineError> {
        let mut r = Rewrite::default();
        for v in &opts.drop_header {
            let name = v.trim();
            if !is_token(name) {
                return Err(PipelineError::new(
                    "--drop-header",
                    v,
                    "expected a header name, e.g. X-Debug",
                ));
            }
            r.drop.push(name.to_string());
        }
        for v in &opts.set_header {
            let expected = "expected 'Name: value', e.g. 'X-Test: 1'";
            let (name, value) = v
                .split_once(':')
                .ok_or_else(|| PipelineError::new("--set-header", v, expected))?;
            let name = name.trim();
            let value = value.trim_start();
            if !is_token(name) || value.contains(['\r', '\n']) {
                return Err(PipelineError::new("--set-header", v, expected));
            }
            r.set.push((name.to_string(), value.as_bytes().to_vec()));
        }
        for v in &opts.rewrite_url {
            let (pattern, replacement) = v.split_once("=>").ok_or_else(|| {
                PipelineError::new(
                    "--rewrite-url",
                    v,
                    "expected 'REGEX=>REPLACEMENT', e.g. '^/v1/(.*)=>/v2/$1'",
                )
            })?;
            r.url.push((
                compile("--rewrite-url", v, pattern)?,
                replacement.to_string(),
            ));
        }
        Ok(r)
    }

    /// Applies the rewrites; true when the URL changed.
    pub(super) fn apply(&self, req: &mut Request) -> bool {
        for name in &self.drop {
            req.headers.remove(name);
        }
        for (name, value) in &self.set {
            // Replace the first, drop the others, so the header ends up with exactly one value.
            let mut seen = false;
            req.headers.0.retain_mut(|h| {
                if !h.name.eq_ignore_ascii_case(name) {
                    return true;
                }
                if seen {
                    return false;
                }
                seen = true;
                h.value = value.clone();
                true
            });
            if !seen {
                req.headers.push(name.clone(), value.clone());
            }
        }
        if self.url.is_empty() {
            return false;
        }
        let pq = req.path_and_query();
        if !pq.starts_with('/') {
            return false; // authority-form (CONNECT) and `*`: nothing to rewrite
        }
        let prefix = req.target[..req.target.len() - pq.len()].to_string();
        let mut new = pq.to_string();
        for (re, replacement) in &self.url {
            new = re.replace_all(&new, replacement.as_str()).into_owned();
        }
        if new == pq {
            return false;
        }
        // A request target cannot hold spaces or control characters: percent-encode them.
        let mut safe = String::with_capacity(new.len());
        for c in new.chars() {
            if (c as u32) <= 0x20 || c == '\u{7f}' {
                safe.push_str(&format!("%{:02X}", c as u32));
            } else {
                safe.push(c);
            }
        }
        req.target = prefix + &safe;
        true
    }
}
