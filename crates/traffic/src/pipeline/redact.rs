//! Masking: secrets become stable pseudonyms.
//!
//! A pseudonym is `mask-` and the first 8 bytes (16 lowercase hex digits) of HMAC-SHA256(key,
//! secret). HMAC-SHA256 rather than std's SipHash: it is a standard keyed PRF meant for exactly this
//! (SipHash's 64-bit output and "hash-table DoS" purpose would do, but HMAC-SHA256 leaves no doubt
//! that the pseudonym reveals nothing about the secret without the key). The key is `--redact-key`
//! when given, else random for each process. The pseudonym is ASCII letters, digits and `-`: safe in
//! header values, URLs, JSON strings and form values.
//!
//! What is hashed is the secret as the application sees it (percent-decoded for query and form
//! values, unescaped for JSON strings, digits only for card numbers, the credentials without the
//! scheme for `Authorization`), so one token seen in a header, a query and a JSON body gets one
//! pseudonym, and sessions stay distinguishable.

use std::borrow::Cow;
use std::cell::RefCell;

use hmac::{Hmac, Mac};
use regex::bytes::Regex;
use serde_json::Value;
use sha2::Sha256;

use super::jsonpath::JsonPath;
use super::seen::{Seen, MIN_SEEN};
use super::{PipelineError, PipelineOptions, PipelineReport};
use crate::model::{trim_ascii, BodyForm, Exchange, Headers};

/// Query, form and JSON names the default policy masks (case-insensitive).
pub(super) const SECRET_NAMES: &[&str] = &[
    "password",
    "passwd",
    "pwd",
    "token",
    "access_token",
    "refresh_token",
    "id_token",
    "api_key",
    "apikey",
    "secret",
    "client_secret",
    "signature",
    "sig",
    "session",
    "sessionid",
    "auth",
];

fn is_secret_name(name: &str) -> bool {
    SECRET_NAMES.iter().any(|s| s.eq_ignore_ascii_case(name))
}

/// Header names the default policy masks besides Authorization and the cookies: a secret name
/// with an optional `X-` prefix and `-` for `_` (`X-Api-Key`, `X-Access-Token`, `X-Session`).
fn is_secret_header(name: &str) -> bool {
    let lower = name.to_ascii_lowercase().replace('-', "_");
    let bare = lower.strip_prefix("x_").unwrap_or(&lower);
    is_secret_name(bare)
}

/// True for a pseudonym this module produced (never masked twice).
fn is_mask(s: &[u8]) -> bool {
    s.len() == 21 && s.starts_with(b"mask-") && s[5..].iter().all(|b| b.is_ascii_hexdigit())
}

#[derive(Debug, Clone)]
enum Rule {
    Header(String),
    Cookie(String),
    Query(String),
    Json(JsonPath),
    Form(String),
    Regex(Regex),
}

#[derive(Debug)]
pub(super) struct Redactor {
    key: Vec<u8>,
    /// The most recent secrets a rule masked (at least [`MIN_SEEN`] bytes, at most [`MAX_SEEN`] of
    /// them). They are masked wherever they appear again, in later header values, URLs and bodies:
    /// a session id echoed in a page, a token copied into a link. Applications echo what they
    /// issue, and a rule cannot know every place.
    seen: RefCell<Seen>,
    defaults: bool,
    headers: Vec<String>,
    cookies: Vec<String>,
    query: Vec<String>,
    form: Vec<String>,
    json: Vec<JsonPath>,
    regex: Vec<Regex>,
    card: Option<Regex>,
}

fn parse_rule(value: &str) -> Result<Rule, PipelineError> {
    let expected =
        "expected header:NAME, cookie:NAME, query:NAME, json:$.path, form:NAME or regex:PATTERN";
    let err = |m: String| PipelineError::new("--redact", value, m);
    let (kind, arg) = value.split_once(':').ok_or_else(|| err(expected.into()))?;
    let kind = kind.trim().to_ascii_lowercase();
    if kind != "regex" && arg.trim().is_empty() {
        return Err(err(format!("the name is missing: {expected}")));
    }
    let name = arg.trim().to_string();
    Ok(match kind.as_str() {
        "header" if super::filter::is_token(&name) => Rule::Header(name),
        "header" => return Err(err(format!("not a header name: {expected}"))),
        "cookie" => Rule::Cookie(name),
        "query" => Rule::Query(name),
        "form" => Rule::Form(name),
        "json" => Rule::Json(JsonPath::parse(&name).map_err(err)?),
        "regex" => {
            if arg.is_empty() {
                return Err(err(format!("the pattern is missing: {expected}")));
            }
            Rule::Regex(Regex::new(arg).map_err(|e| {
                let msg = e.to_string();
                let line = msg
                    .lines()
                    .rfind(|l| l.trim_start().starts_with("error:"))
                    .unwrap_or(&msg)
                    .trim()
                    .to_string();
                err(format!("not a valid regular expression: {line}"))
            })?)
        }
        _ => return Err(err(expected.into())),
    })
}

fn random_key() -> Vec<u8> {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    // RandomState is seeded from the OS's randomness once per process (and varied per instance).
    let mut key = Vec::with_capacity(32);
    for i in 0..4u64 {
        let mut h = RandomState::new().build_hasher();
        h.write_u64(i);
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default(),
        );
        h.write_u32(std::process::id());
        key.extend_from_slice(&h.finish().to_le_bytes());
    }
    key
}

fn count(report: &mut PipelineReport, kind: &'static str) {
    *report.redacted.entry(kind).or_default() += 1;
}

fn percent_decode(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < s.len() => {
                let hex = |b: u8| (b as char).to_digit(16);
                match (hex(s[i + 1]), hex(s[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push((h * 16 + l) as u8);
                        i += 3;
                        continue;
                    }
                    _ => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    out
}

/// Separated digits must be grouped the way cards are printed: fours with a shorter last group
/// (`4111 1111 1111 1111`), or 4-6-5 / 4-6-4 (Amex, Diners). This keeps two numbers that happen
/// to be next to each other (`X-Varnish: 944084190 943735057`) from looking like one card.
fn card_grouping(run: &[u8]) -> bool {
    let groups: Vec<usize> = run
        .split(|b| !b.is_ascii_digit())
        .map(<[u8]>::len)
        .collect();
    match groups.split_last() {
        None => false,
        Some((_, [])) => true,
        Some((last, init)) => {
            (init.iter().all(|&g| g == 4) && (1..=4).contains(last))
                || groups == [4, 6, 5]
                || groups == [4, 6, 4]
        }
    }
}

/// Card numbers start with an issuer digit from 2 to 6 (Mastercard 2 and 5, Amex, Diners and
/// JCB 3, Visa 4, Discover and UnionPay 6), and only Visa ever issued 13 digits. Without this,
/// one in ten 13-digit millisecond timestamps (`1795683846616`, which start with 1) passes Luhn
/// and would be masked as a card.
fn card_issuer(digits: &[u8]) -> bool {
    match digits {
        [b'4', ..] => true,
        [b'2'..=b'6', ..] => digits.len() > 13,
        _ => false,
    }
}

fn luhn(digits: &[u8]) -> bool {
    let mut sum = 0u32;
    for (i, d) in digits.iter().rev().enumerate() {
        let mut v = (d - b'0') as u32;
        if i % 2 == 1 {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
    }
    sum.is_multiple_of(10)
}

impl Redactor {
    pub(super) fn new(opts: &PipelineOptions) -> Result<Redactor, PipelineError> {
        let key = match &opts.redact_key {
            Some(k) if k.is_empty() => {
                return Err(PipelineError::new(
                    "--redact-key",
                    k,
                    "expected a non-empty key (any text)",
                ))
            }
            Some(k) => k.as_bytes().to_vec(),
            None => random_key(),
        };
        let mut r = Redactor {
            key,
            seen: RefCell::new(Seen::default()),
            defaults: !opts.no_default_redaction,
            headers: Vec::new(),
            cookies: Vec::new(),
            query: Vec::new(),
            form: Vec::new(),
            json: Vec::new(),
            regex: Vec::new(),
            card: None,
        };
        if r.defaults {
            r.card = Some(
                Regex::new(r"(?-u:\b)(?:[0-9][ -]?){12,18}[0-9](?-u:\b)").expect("card pattern"),
            );
        }
        for v in &opts.redact {
            match parse_rule(v)? {
                Rule::Header(n) => r.headers.push(n),
                Rule::Cookie(n) => r.cookies.push(n),
                Rule::Query(n) => r.query.push(n),
                Rule::Form(n) => r.form.push(n),
                Rule::Json(p) => r.json.push(p),
                Rule::Regex(re) => r.regex.push(re),
            }
        }
        Ok(r)
    }

    /// The pseudonym of `secret`, remembering the secret (see [`Redactor::seen`]).
    fn mask(&self, secret: &[u8]) -> String {
        // A value spelled like a secret's name (`password=password`) is not looked for elsewhere:
        // it would mask the name of every field.
        let named = std::str::from_utf8(secret).is_ok_and(is_secret_name);
        if secret.len() >= MIN_SEEN && !is_mask(secret) && !named {
            self.seen.borrow_mut().insert(secret);
        }
        self.pseudonym(secret)
    }

    /// The pseudonym of `secret`.
    pub(super) fn pseudonym(&self, secret: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(secret);
        let out = mac.finalize().into_bytes();
        let mut s = String::with_capacity(21);
        s.push_str("mask-");
        for b in &out[..8] {
            s.push_str(&format!("{b:02x}"));
        }
        s
    }

    fn masks_nothing(&self) -> bool {
        !self.defaults
            && self.headers.is_empty()
            && self.cookies.is_empty()
            && self.query.is_empty()
            && self.form.is_empty()
            && self.json.is_empty()
            && self.regex.is_empty()
            && self.seen.borrow().is_empty()
    }

    fn body_rules(&self) -> bool {
        self.defaults
            || !self.json.is_empty()
            || !self.form.is_empty()
            || !self.regex.is_empty()
            || !self.seen.borrow().is_empty()
    }

    pub(super) fn apply(&self, ex: &mut Exchange, report: &mut PipelineReport) {
        // With nothing to mask (`--no-default-redaction` and no `--redact`) nothing is looked at:
        // a replay at full speed passes every exchange through here.
        if self.masks_nothing() {
            return;
        }
        // Every header first (the secrets they carry are then looked for in the URL and bodies of
        // the same exchange: a login form echoed back in a Set-Cookie), then the URL, then bodies.
        self.headers(&mut ex.request.headers, report);
        for resp in ex.interim.iter_mut().chain(ex.response.as_mut()) {
            self.headers(&mut resp.headers, report);
        }
        let req = &mut ex.request;
        if let Some(t) = self.target(&req.target, report) {
            req.target = t;
        }
        self.body(&mut req.headers, &mut req.body, &mut req.body_form, report);
        for resp in ex.interim.iter_mut().chain(ex.response.as_mut()) {
            self.body(
                &mut resp.headers,
                &mut resp.body,
                &mut resp.body_form,
                report,
            );
        }
    }

    // -- headers ---------------------------------------------------------------------------

    fn headers(&self, headers: &mut Headers, report: &mut PipelineReport) {
        for h in headers.0.iter_mut() {
            let lname = h.name.to_ascii_lowercase();
            let whole = self.headers.iter().any(|n| n.eq_ignore_ascii_case(&h.name))
                || (self.defaults
                    && (lname == "authorization"
                        || lname == "proxy-authorization"
                        || is_secret_header(&lname)));
            if whole {
                if let Some(v) = self.mask_header_value(&lname, &h.value) {
                    h.value = v;
                    count(report, "header");
                }
                continue;
            }
            if lname == "cookie" || lname == "set-cookie" {
                if let Some(v) = self.cookies(&h.value, lname == "set-cookie", report) {
                    h.value = v;
                }
            }
            if matches!(lname.as_str(), "referer" | "location" | "content-location") {
                if let Some(q) = h.value.iter().position(|&b| b == b'?') {
                    if let Some(v) = self.pairs(&h.value[q + 1..], &self.query, "query", report) {
                        h.value.truncate(q + 1);
                        h.value.extend_from_slice(&v);
                    }
                }
            }
            if let Some(v) = self.text(&h.value, report) {
                h.value = v;
            }
        }
    }

    /// The masked value of a header masked whole; `Authorization` keeps its scheme.
    fn mask_header_value(&self, lname: &str, value: &[u8]) -> Option<Vec<u8>> {
        let v = trim_ascii(value);
        if v.is_empty() || is_mask(v) {
            return None;
        }
        if lname.ends_with("authorization") {
            if let Some(sp) = v.iter().position(|&b| b == b' ') {
                let cred = trim_ascii(&v[sp..]);
                if !cred.is_empty() && !is_mask(cred) {
                    let mut out = v[..sp + 1].to_vec();
                    out.extend_from_slice(self.mask(cred).as_bytes());
                    return Some(out);
                }
                return None;
            }
        }
        Some(self.mask(v).into_bytes())
    }

    /// Masks cookie values in a `Cookie` value (every pair) or a `Set-Cookie` value (the first
    /// pair; the attributes are not secret). Names are kept.
    fn cookies(
        &self,
        value: &[u8],
        set_cookie: bool,
        report: &mut PipelineReport,
    ) -> Option<Vec<u8>> {
        let mut out = Vec::with_capacity(value.len());
        let mut changed = false;
        for (i, part) in value.split(|&b| b == b';').enumerate() {
            if i > 0 {
                out.push(b';');
            }
            let eligible = !set_cookie || i == 0;
            let eq = part.iter().position(|&b| b == b'=');
            match eq {
                Some(eq) if eligible => {
                    let name = String::from_utf8_lossy(trim_ascii(&part[..eq]));
                    let raw = trim_ascii(&part[eq + 1..]);
                    let wanted = self.defaults || self.cookies.iter().any(|c| *c == name);
                    if wanted && !raw.is_empty() && !is_mask(raw) {
                        out.extend_from_slice(&part[..eq + 1]);
                        out.extend_from_slice(self.mask(raw).as_bytes());
                        count(report, "cookie");
                        changed = true;
                        continue;
                    }
                    out.extend_from_slice(part);
                }
                _ => out.extend_from_slice(part),
            }
        }
        changed.then_some(out)
    }

    // -- query and form ----------------------------------------------------------------------

    /// Masks the values of `name=value` pairs (separated by `&`) whose decoded name is a default
    /// secret name (with the default policy) or one of `names`.
    fn pairs(
        &self,
        input: &[u8],
        names: &[String],
        kind: &'static str,
        report: &mut PipelineReport,
    ) -> Option<Vec<u8>> {
        if !self.defaults && names.is_empty() {
            return None;
        }
        let mut out = Vec::with_capacity(input.len());
        let mut changed = false;
        for (i, pair) in input.split(|&b| b == b'&').enumerate() {
            if i > 0 {
                out.push(b'&');
            }
            if let Some(eq) = pair.iter().position(|&b| b == b'=') {
                let name = percent_decode(&pair[..eq]);
                let name = String::from_utf8_lossy(&name);
                let name = name.trim();
                let raw = &pair[eq + 1..];
                let wanted = (self.defaults && is_secret_name(name))
                    || names.iter().any(|n| n.eq_ignore_ascii_case(name));
                if wanted && !raw.is_empty() && !is_mask(raw) {
                    out.extend_from_slice(&pair[..eq + 1]);
                    out.extend_from_slice(self.mask(&percent_decode(raw)).as_bytes());
                    count(report, kind);
                    changed = true;
                    continue;
                }
            }
            out.extend_from_slice(pair);
        }
        changed.then_some(out)
    }

    fn target(&self, target: &str, report: &mut PipelineReport) -> Option<String> {
        let mut t: Cow<'_, [u8]> = Cow::Borrowed(target.as_bytes());
        if let Some(q) = t.iter().position(|&b| b == b'?') {
            let end = t[q..]
                .iter()
                .position(|&b| b == b'#')
                .map_or(t.len(), |e| q + e);
            if let Some(v) = self.pairs(&t[q + 1..end], &self.query, "query", report) {
                let mut n = t[..q + 1].to_vec();
                n.extend_from_slice(&v);
                n.extend_from_slice(&t[end..]);
                t = Cow::Owned(n);
            }
        }
        if let Some(v) = self.text(&t, report) {
            t = Cow::Owned(v);
        }
        match t {
            Cow::Borrowed(_) => None,
            Cow::Owned(v) => Some(String::from_utf8_lossy(&v).into_owned()),
        }
    }

    // -- free text: regex rules and card numbers ------------------------------------------------

    /// Applies `regex:` rules (group 1 if the pattern has one, else the whole match) and, with the
    /// default policy, card-number masking.
    fn text(&self, input: &[u8], report: &mut PipelineReport) -> Option<Vec<u8>> {
        let mut cur: Cow<'_, [u8]> = Cow::Borrowed(input);
        for re in &self.regex {
            let mut out = Vec::new();
            let mut last = 0;
            let mut n = 0;
            for caps in re.captures_iter(&cur) {
                let Some(m) = caps.get(1).or_else(|| caps.get(0)) else {
                    continue;
                };
                if m.start() < last || m.is_empty() || is_mask(m.as_bytes()) {
                    continue;
                }
                out.extend_from_slice(&cur[last..m.start()]);
                out.extend_from_slice(self.mask(m.as_bytes()).as_bytes());
                last = m.end();
                n += 1;
            }
            if n > 0 {
                out.extend_from_slice(&cur[last..]);
                *report.redacted.entry("regex").or_default() += n;
                cur = Cow::Owned(out);
            }
        }
        if let Some(card) = &self.card {
            let mut out = Vec::new();
            let mut last = 0;
            let mut n = 0;
            for m in card.find_iter(&cur) {
                let digits: Vec<u8> = m
                    .as_bytes()
                    .iter()
                    .copied()
                    .filter(u8::is_ascii_digit)
                    .collect();
                if !(13..=19).contains(&digits.len())
                    || !card_issuer(&digits)
                    || !card_grouping(m.as_bytes())
                    || !luhn(&digits)
                {
                    continue;
                }
                out.extend_from_slice(&cur[last..m.start()]);
                out.extend_from_slice(self.mask(&digits).as_bytes());
                last = m.end();
                n += 1;
            }
            if n > 0 {
                out.extend_from_slice(&cur[last..]);
                *report.redacted.entry("card").or_default() += n;
                cur = Cow::Owned(out);
            }
        }
        if let Some((v, n)) = self.seen.borrow().replace(&cur, |s| self.pseudonym(s)) {
            *report.redacted.entry("seen_secret").or_default() += n;
            cur = Cow::Owned(v);
        }
        match cur {
            Cow::Borrowed(_) => None,
            Cow::Owned(v) => Some(v),
        }
    }

    // -- bodies --------------------------------------------------------------------------------

    fn body(
        &self,
        headers: &mut Headers,
        body: &mut Vec<u8>,
        form: &mut BodyForm,
        report: &mut PipelineReport,
    ) {
        if body.is_empty() || !self.body_rules() {
            return;
        }
        let decoded = match crate::decode::decoded_body(headers, body, *form) {
            Ok(d) => d,
            Err(_) => {
                *report.bodies_left.entry("undecodable").or_default() += 1;
                return;
            }
        };
        let ct = headers
            .get_str("content-type")
            .map(|c| c.to_ascii_lowercase())
            .unwrap_or_default();
        let says_json = ct.contains("json");
        let looks_json = matches!(trim_ascii(&decoded).first(), Some(b'{') | Some(b'['))
            && (ct.is_empty() || ct.starts_with("text/"));
        let mut new = None;
        let mut done = false;
        if says_json || looks_json {
            match serde_json::from_slice::<Value>(&decoded) {
                Ok(mut v) => {
                    if self.json_value(&mut v, report) {
                        new = serde_json::to_vec(&v).ok();
                    }
                    done = true;
                }
                Err(_) if says_json => {
                    *report.bodies_left.entry("invalid_json").or_default() += 1;
                    return;
                }
                Err(_) => {}
            }
        }
        if !done {
            let mut cur: Cow<'_, [u8]> = Cow::Borrowed(&decoded);
            if ct.contains("application/x-www-form-urlencoded") {
                if let Some(v) = self.pairs(&cur, &self.form, "form", report) {
                    cur = Cow::Owned(v);
                }
            }
            if let Some(v) = self.text(&cur, report) {
                cur = Cow::Owned(v);
            }
            if let Cow::Owned(v) = cur {
                new = Some(v);
            }
        }
        let Some(new) = new else {
            return;
        };
        headers.remove("content-encoding");
        headers.remove("transfer-encoding");
        headers.set("Content-Length", new.len().to_string());
        *body = new;
        *form = BodyForm::Decoded;
        report.bodies_rewritten += 1;
    }

    /// Masks a JSON document in place; true if anything changed.
    fn json_value(&self, v: &mut Value, report: &mut PipelineReport) -> bool {
        let mut changed = false;
        for path in &self.json {
            path.for_each_mut(v, &mut |n| changed |= self.json_leaves(n, report));
        }
        if self.defaults {
            changed |= self.json_default_keys(v, report);
        }
        if !self.regex.is_empty() || self.card.is_some() || !self.seen.borrow().is_empty() {
            changed |= self.json_text(v, report);
        }
        changed
    }

    /// Masks every string and number at or below `v`.
    fn json_leaves(&self, v: &mut Value, report: &mut PipelineReport) -> bool {
        match v {
            Value::String(s) if !s.is_empty() && !is_mask(s.as_bytes()) => {
                *s = self.mask(s.as_bytes());
                count(report, "json");
                true
            }
            Value::Number(n) => {
                let m = self.mask(n.to_string().as_bytes());
                *v = Value::String(m);
                count(report, "json");
                true
            }
            Value::Array(a) => a
                .iter_mut()
                .fold(false, |c, x| self.json_leaves(x, report) | c),
            Value::Object(o) => o
                .values_mut()
                .fold(false, |c, x| self.json_leaves(x, report) | c),
            _ => false,
        }
    }

    fn json_default_keys(&self, v: &mut Value, report: &mut PipelineReport) -> bool {
        match v {
            Value::Object(o) => o.iter_mut().fold(false, |c, (k, x)| {
                let r = if is_secret_name(k) {
                    self.json_leaves(x, report)
                } else {
                    self.json_default_keys(x, report)
                };
                r | c
            }),
            Value::Array(a) => a
                .iter_mut()
                .fold(false, |c, x| self.json_default_keys(x, report) | c),
            _ => false,
        }
    }

    /// Regex rules and card numbers inside JSON strings (and card numbers written as numbers).
    fn json_text(&self, v: &mut Value, report: &mut PipelineReport) -> bool {
        match v {
            Value::String(s) => match self.text(s.as_bytes(), report) {
                Some(t) => {
                    *s = String::from_utf8_lossy(&t).into_owned();
                    true
                }
                None => false,
            },
            Value::Number(n) => {
                let text = n.to_string();
                match self.text(text.as_bytes(), report) {
                    Some(t) => {
                        *v = Value::String(String::from_utf8_lossy(&t).into_owned());
                        true
                    }
                    None => false,
                }
            }
            Value::Array(a) => a
                .iter_mut()
                .fold(false, |c, x| self.json_text(x, report) | c),
            Value::Object(o) => o
                .values_mut()
                .fold(false, |c, x| self.json_text(x, report) | c),
            _ => false,
        }
    }
}
