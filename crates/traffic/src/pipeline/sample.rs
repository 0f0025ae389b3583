//! Hash-based sampling: the same key is always kept or always dropped.
//!
//! The hash is FNV-1a 64 of the key's bytes, followed by the SplitMix64 finaliser so that the low
//! digits are well mixed; an exchange is kept when `hash % 1_000_000 < share * 10_000`. It is fixed
//! (no per-process seed), so the same capture sampled twice keeps the same exchanges, and sampling
//! with a larger share keeps a superset.

use super::{PipelineError, PipelineOptions};
use crate::model::Exchange;

const SCALE: u64 = 1_000_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum SampleKey {
    Cookie(String),
    Header(String),
    ClientIp,
}

#[derive(Debug)]
pub(super) struct Sampler {
    /// Keep when `mix(fnv(key)) % SCALE < threshold`.
    threshold: u64,
    key: SampleKey,
}

/// FNV-1a, 64 bits.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

pub(super) fn parse_share(value: &str) -> Result<f64, PipelineError> {
    let bad = || {
        PipelineError::new(
            "--sample",
            value,
            "expected a percentage from 0% to 100%, e.g. 10% or 2.5%",
        )
    };
    let t = value.trim();
    let n: f64 = t
        .strip_suffix('%')
        .unwrap_or(t)
        .trim()
        .parse()
        .map_err(|_| bad())?;
    if !(0.0..=100.0).contains(&n) {
        return Err(bad());
    }
    Ok(n)
}

pub(super) fn parse_key(value: &str) -> Result<SampleKey, PipelineError> {
    let bad = |why: &str| {
        PipelineError::new(
            "--sample-key",
            value,
            format!("{why}expected cookie:NAME, header:NAME or client-ip"),
        )
    };
    let t = value.trim();
    if t.eq_ignore_ascii_case("client-ip") {
        return Ok(SampleKey::ClientIp);
    }
    let (kind, name) = t.split_once(':').ok_or_else(|| bad(""))?;
    let name = name.trim();
    if name.is_empty() {
        return Err(bad("the name is missing: "));
    }
    match kind.trim().to_ascii_lowercase().as_str() {
        "cookie" => Ok(SampleKey::Cookie(name.to_string())),
        "header" if super::filter::is_token(name) => Ok(SampleKey::Header(name.to_string())),
        "header" => Err(bad("not a header name: ")),
        _ => Err(bad("")),
    }
}

/// The value of cookie `name` in a `Cookie` header value (`a=1; b=2`).
pub(super) fn cookie_value<'a>(header: &'a [u8], name: &str) -> Option<&'a [u8]> {
    header.split(|&b| b == b';').find_map(|pair| {
        let pair = crate::model::trim_ascii(pair);
        let eq = pair.iter().position(|&b| b == b'=')?;
        (crate::model::trim_ascii(&pair[..eq]) == name.as_bytes()).then(|| &pair[eq + 1..])
    })
}

impl Sampler {
    pub(super) fn new(opts: &PipelineOptions) -> Result<Option<Sampler>, PipelineError> {
        let key = match &opts.sample_key {
            Some(k) => parse_key(k)?,
            None => SampleKey::ClientIp,
        };
        let Some(share) = &opts.sample else {
            return Ok(None);
        };
        let share = parse_share(share)?;
        Ok(Some(Sampler {
            threshold: (share * (SCALE as f64 / 100.0)).round() as u64,
            key,
        }))
    }

    /// The key's bytes, and whether a fallback was used. Fallbacks, in order: the client IP, the
    /// connection, the exchange's own start time (so unknown keys are sampled one by one).
    fn key(&self, ex: &Exchange) -> (Vec<u8>, bool) {
        let chosen = match &self.key {
            SampleKey::Cookie(name) => ex
                .request
                .headers
                .get_all("cookie")
                .find_map(|v| cookie_value(v, name))
                .or_else(|| {
                    // The response that issues the session cookie belongs to that session.
                    ex.response.as_ref().and_then(|r| {
                        r.headers.get_all("set-cookie").find_map(|v| {
                            let first = v.split(|&b| b == b';').next().unwrap_or(v);
                            cookie_value(first, name)
                        })
                    })
                })
                .filter(|v| !v.is_empty())
                .map(|v| [b"cookie=", v].concat()),
            SampleKey::Header(name) => ex
                .request
                .headers
                .get(name)
                .map(|v| [b"header=", v].concat()),
            SampleKey::ClientIp => None,
        };
        if let Some(k) = chosen {
            return (k, false);
        }
        let fallback = self.key != SampleKey::ClientIp;
        if let Some(c) = ex.connection.client {
            return (format!("ip={}", c.ip()).into_bytes(), fallback);
        }
        if let Some(id) = ex.connection.id {
            return (format!("conn={id}").into_bytes(), fallback);
        }
        (
            format!("exchange={}", ex.timing.request_start).into_bytes(),
            true,
        )
    }

    /// Whether to keep `ex`, and whether it was sampled on a fallback key.
    pub(super) fn keep(&self, ex: &Exchange) -> (bool, bool) {
        let (key, fallback) = self.key(ex);
        (mix(fnv1a64(&key)) % SCALE < self.threshold, fallback)
    }
}
