//! Serde shapes of the file as written; `validate` turns them into the model.
//! Kept separate so the public model can use enums where the file uses
//! "exactly one of these keys" maps.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::model::{DataFeed, SessionLength, StatusRange, WaitTime};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawScenario {
    pub host: Option<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub timeouts: RawTimeouts,
    #[serde(default)]
    pub redirects: RawRedirects,
    #[serde(default)]
    pub data: BTreeMap<String, DataFeed>,
    #[serde(default)]
    pub users: Vec<Spanned<RawUser>>,
    pub load: Option<Spanned<RawLoad>>,
    #[serde(default)]
    pub thresholds: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTimeouts {
    pub connect: Option<Dur>,
    pub request: Option<Dur>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRedirects {
    pub follow: Option<bool>,
    pub max: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawUser {
    pub name: String,
    pub weight: Option<u32>,
    pub fixed_count: Option<u32>,
    pub wait_time: Option<WaitTime>,
    pub session_length: Option<SessionLength>,
    pub replay: Option<Spanned<RawReplay>>,
    #[serde(default)]
    pub on_start: Vec<Spanned<RawStep>>,
    #[serde(default)]
    pub on_stop: Vec<Spanned<RawStep>>,
    #[serde(default)]
    pub tasks: Vec<Spanned<RawTask>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawReplay {
    pub file: String,
    pub session_key: Option<String>,
    pub pick: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTask {
    pub name: Option<String>,
    pub weight: Option<u32>,
    #[serde(default)]
    pub tags: Vec<String>,
    pub request: Option<RawRequest>,
    pub checks: Option<Vec<Spanned<RawCheck>>>,
    pub extract: Option<BTreeMap<String, Spanned<RawExtract>>>,
    pub sequence: Option<Vec<Spanned<RawStep>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawStep {
    pub request: RawRequest,
    #[serde(default)]
    pub checks: Vec<Spanned<RawCheck>>,
    #[serde(default)]
    pub extract: BTreeMap<String, Spanned<RawExtract>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRequest {
    pub method: String,
    pub path: String,
    #[serde(default)]
    pub query: BTreeMap<String, String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    pub json: Option<serde_json::Value>,
    pub form: Option<BTreeMap<String, String>>,
    pub body: Option<String>,
    pub name: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCheck {
    pub status: Option<Status>,
    pub body_contains: Option<String>,
    pub body_matches: Option<String>,
    pub json: Option<String>,
    pub exists: Option<bool>,
    pub equals: Option<serde_json::Value>,
    pub header: Option<String>,
    pub matches: Option<String>,
    pub max_latency: Option<Dur>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawExtract {
    pub json: Option<String>,
    pub regex: Option<String>,
    pub header: Option<String>,
    pub cookie: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLoad {
    pub users: Option<u32>,
    pub spawn_rate: Option<f64>,
    pub run_time: Option<Dur>,
    pub stages: Option<Vec<RawStage>>,
    pub arrival: Option<Vec<RawArrival>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawStage {
    pub duration: Dur,
    pub users: u32,
    pub spawn_rate: f64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawArrival {
    pub duration: Dur,
    pub rate: f64,
    pub max_users: Option<u32>,
}

/// A duration written as `1h30m`, `250ms`, or a number of seconds; parsed
/// during deserialization so a bad value is reported at its own position.
pub(crate) struct Dur(pub Duration);

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Dur;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a duration such as 30s, 250ms or 1h30m")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Dur, E> {
                crate::parse_duration(s)
                    .map(Dur)
                    .map_err(|e| E::invalid_value(de::Unexpected::Str(s), &e.as_str()))
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Dur, E> {
                Ok(Dur(Duration::from_secs(n)))
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Dur, E> {
                u64::try_from(n)
                    .map(|n| Dur(Duration::from_secs(n)))
                    .map_err(|_| E::invalid_value(de::Unexpected::Signed(n), &self))
            }
            fn visit_f64<E: de::Error>(self, n: f64) -> Result<Dur, E> {
                Duration::try_from_secs_f64(n)
                    .map(Dur)
                    .map_err(|_| E::invalid_value(de::Unexpected::Float(n), &self))
            }
        }
        d.deserialize_any(V)
    }
}

/// Accepted statuses: `[200, 201]`, `200`, or `"200-299"`.
pub(crate) struct Status(pub Vec<StatusRange>);

fn status_code<E: de::Error>(n: u64) -> Result<u16, E> {
    match u16::try_from(n) {
        Ok(code) if (100..=599).contains(&code) => Ok(code),
        _ => Err(E::invalid_value(
            de::Unexpected::Unsigned(n),
            &"an HTTP status between 100 and 599",
        )),
    }
}

impl<'de> Deserialize<'de> for Status {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Status;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a status, a list of statuses, or a range like \"200-299\"")
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Status, E> {
                let code = status_code(n)?;
                Ok(Status(vec![StatusRange {
                    min: code,
                    max: code,
                }]))
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Status, E> {
                Err(E::invalid_value(de::Unexpected::Signed(n), &self))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Status, E> {
                let bad = || E::invalid_value(de::Unexpected::Str(s), &self);
                let (a, b) = s.split_once('-').unwrap_or((s, s));
                let a: u64 = a.trim().parse().map_err(|_| bad())?;
                let b: u64 = b.trim().parse().map_err(|_| bad())?;
                let (min, max) = (status_code(a)?, status_code(b)?);
                if min > max {
                    return Err(bad());
                }
                Ok(Status(vec![StatusRange { min, max }]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Status, A::Error> {
                let mut out = Vec::new();
                while let Some(n) = seq.next_element::<u64>()? {
                    let code = status_code(n)?;
                    out.push(StatusRange {
                        min: code,
                        max: code,
                    });
                }
                if out.is_empty() {
                    return Err(de::Error::invalid_length(0, &self));
                }
                Ok(Status(out))
            }
        }
        d.deserialize_any(V)
    }
}
