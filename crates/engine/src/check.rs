//! Response checks and variable extraction, compiled at plan time (regexes, JSON paths,
//! templates) and evaluated against each [`Response`].
//!
//! Failure messages are short and stable so that reports group them well: they show the check
//! as written in the scenario (never a value that varies per request, apart from the status
//! code of a status check):
//!
//! | Check | Failure message |
//! |---|---|
//! | `status` | `status 503, expected 200-299` / `expected 200` / `expected [200, 201]` |
//! | `body_contains` | `body does not contain "article"` (the template as written) |
//! | `body_matches` | `body does not match /x+/` |
//! | `json`, `exists: true` | `$.received does not exist` |
//! | `json`, `exists: false` | `$.error exists` |
//! | `json`, `equals` | `$.id does not equal 4` (the value as written, compact JSON), or `$.id does not exist` |
//! | any `json` on a non-JSON body | `body is not JSON (checking $.id)` |
//! | `header`, `matches` | `header Content-Type missing` / `header Content-Type does not match /json/` |
//! | `max_latency` | `max_latency 500ms exceeded` |

use std::borrow::Cow;
use std::time::Duration;

use http::HeaderName;
use mynah_scenario::StatusRange;
use regex::Regex;
use serde_json::Value;
use serde_json_path::JsonPath;

use crate::client::Response;
use crate::feed::Feeds;
use crate::template::{Context, JsonTemplate, RenderError, Template};

/// Longest scenario text (a `body_contains` needle, an `equals` value) quoted in a message.
const MAX_SHOWN: usize = 80;

/// A response body parsed as JSON at most once, however many checks and extractions read it.
#[derive(Debug, Default)]
pub struct LazyJson {
    parsed: Option<Option<serde_json::Value>>,
}

impl LazyJson {
    /// The body as JSON, or `None` when it is not JSON.
    pub fn get(&mut self, body: &[u8]) -> Option<&serde_json::Value> {
        self.parsed
            .get_or_insert_with(|| serde_json::from_slice(body).ok())
            .as_ref()
    }
}

/// A compiled check.
#[derive(Debug, Clone)]
pub struct Check {
    kind: CheckKind,
}

#[derive(Debug, Clone)]
enum CheckKind {
    Status {
        ranges: Vec<StatusRange>,
        /// `200`, `200-299` or `[200, 201]`.
        expected: Box<str>,
    },
    BodyContains {
        text: Template,
        /// Failure message.
        message: Box<str>,
    },
    BodyMatches {
        regex: Regex,
        message: Box<str>,
    },
    JsonExists {
        path: JsonPath,
        shown: Box<str>,
        exists: bool,
    },
    JsonEquals {
        path: JsonPath,
        shown: Box<str>,
        expected: JsonTemplate,
        /// Whether `expected` has templates: their strings then also equal numbers with the
        /// same value, since a template can only produce strings.
        lenient: bool,
        message: Box<str>,
    },
    HeaderMatches {
        name: HeaderName,
        shown: Box<str>,
        regex: Regex,
    },
    MaxLatency {
        max: Duration,
        message: Box<str>,
    },
}

/// `text` cut to [`MAX_SHOWN`] characters, with `…` when cut.
fn shorten(text: &str) -> Cow<'_, str> {
    match text.char_indices().nth(MAX_SHOWN) {
        None => Cow::Borrowed(text),
        Some((cut, _)) => Cow::Owned(format!("{}…", &text[..cut])),
    }
}

/// `200`, `200-299`, or a bracketed list of those.
pub fn describe_statuses(ranges: &[StatusRange]) -> String {
    let one = |r: &StatusRange| {
        if r.min == r.max {
            r.min.to_string()
        } else {
            format!("{}-{}", r.min, r.max)
        }
    };
    match ranges {
        [r] => one(r),
        _ => format!(
            "[{}]",
            ranges.iter().map(one).collect::<Vec<_>>().join(", ")
        ),
    }
}

/// A duration as a scenario would write it: `2s`, `500ms`, or finer units when needed.
fn describe_duration(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else if d.subsec_nanos().is_multiple_of(1_000_000) {
        format!("{}ms", d.as_millis())
    } else {
        format!("{d:?}")
    }
}

fn compile_regex(re: &str) -> Result<Regex, String> {
    Regex::new(re).map_err(|e| format!("invalid regex /{re}/: {e}"))
}

fn compile_path(path: &str) -> Result<JsonPath, String> {
    JsonPath::parse(path).map_err(|e| format!("invalid JSON path `{path}`: {e}"))
}

fn compile_header(name: &str) -> Result<HeaderName, String> {
    HeaderName::from_bytes(name.as_bytes()).map_err(|_| format!("invalid header name `{name}`"))
}

impl Check {
    /// Compiles a scenario check.
    pub fn compile(check: &mynah_scenario::Check, feeds: &Feeds) -> Result<Check, String> {
        use mynah_scenario::Check as C;
        let kind = match check {
            C::Status(ranges) => CheckKind::Status {
                expected: describe_statuses(ranges).into(),
                ranges: ranges.clone(),
            },
            C::BodyContains(text) => CheckKind::BodyContains {
                text: Template::parse(text, feeds)?,
                message: format!("body does not contain {:?}", shorten(text)).into(),
            },
            C::BodyMatches(re) => CheckKind::BodyMatches {
                regex: compile_regex(re)?,
                message: format!("body does not match /{}/", shorten(re)).into(),
            },
            C::JsonExists { path, exists } => CheckKind::JsonExists {
                path: compile_path(path)?,
                shown: path.as_str().into(),
                exists: *exists,
            },
            C::JsonEquals { path, equals } => {
                let expected = JsonTemplate::parse(equals, feeds)?;
                CheckKind::JsonEquals {
                    path: compile_path(path)?,
                    shown: path.as_str().into(),
                    lenient: expected.as_static().is_none(),
                    expected,
                    message: format!("{path} does not equal {}", shorten(&equals.to_string()))
                        .into(),
                }
            }
            C::HeaderMatches { header, matches } => CheckKind::HeaderMatches {
                name: compile_header(header)?,
                shown: header.as_str().into(),
                regex: compile_regex(matches)?,
            },
            C::MaxLatency(max) => CheckKind::MaxLatency {
                max: *max,
                message: format!("max_latency {} exceeded", describe_duration(*max)).into(),
            },
        };
        Ok(Check { kind })
    }

    /// Whether the check is on the status code (such checks replace the default "status < 400"
    /// rule for the request).
    pub fn is_status(&self) -> bool {
        matches!(self.kind, CheckKind::Status { .. })
    }

    /// `Ok` when the response passes; otherwise a short, stable message that groups well in
    /// reports, e.g. `status 503, expected [200, 201]`, `body does not contain "article"`,
    /// `$.received does not exist`, `max_latency 500ms exceeded` (the module documentation
    /// lists every form).
    ///
    /// JSON checks fail on a body that is not JSON, `exists: false` included: an API answering
    /// with an HTML error page should not pass silently.
    pub fn evaluate(
        &self,
        response: &Response,
        latency: Duration,
        json: &mut LazyJson,
        ctx: &mut dyn Context,
    ) -> Result<(), CheckFailure> {
        let fail = |m: &str| Err(CheckFailure::Failed(m.to_string()));
        match &self.kind {
            CheckKind::Status { ranges, expected } => {
                let s = response.status;
                if ranges.iter().any(|r| r.min <= s && s <= r.max) {
                    Ok(())
                } else {
                    fail(&format!("status {s}, expected {expected}"))
                }
            }
            CheckKind::BodyContains { text, message } => {
                let needle: Cow<'_, str> = match text.as_static() {
                    Some(s) => Cow::Borrowed(s),
                    None => Cow::Owned(text.render_to_string(ctx).map_err(CheckFailure::Render)?),
                };
                if String::from_utf8_lossy(&response.body).contains(&*needle) {
                    Ok(())
                } else {
                    fail(message)
                }
            }
            CheckKind::BodyMatches { regex, message } => {
                if regex.is_match(&String::from_utf8_lossy(&response.body)) {
                    Ok(())
                } else {
                    fail(message)
                }
            }
            CheckKind::JsonExists {
                path,
                shown,
                exists,
            } => {
                let Some(value) = json.get(&response.body) else {
                    return fail(&format!("body is not JSON (checking {shown})"));
                };
                match (path.query(value).first().is_some(), exists) {
                    (true, true) | (false, false) => Ok(()),
                    (false, true) => fail(&format!("{shown} does not exist")),
                    (true, false) => fail(&format!("{shown} exists")),
                }
            }
            CheckKind::JsonEquals {
                path,
                shown,
                expected,
                lenient,
                message,
            } => {
                let want = expected.render(ctx).map_err(CheckFailure::Render)?;
                let Some(value) = json.get(&response.body) else {
                    return fail(&format!("body is not JSON (checking {shown})"));
                };
                match path.query(value).first() {
                    None => fail(&format!("{shown} does not exist")),
                    Some(got) if json_equal(&want, got, *lenient) => Ok(()),
                    Some(_) => fail(message),
                }
            }
            CheckKind::HeaderMatches { name, shown, regex } => {
                let mut values = response.headers.get_all(name.as_str()).peekable();
                if values.peek().is_none() {
                    return fail(&format!("header {shown} missing"));
                }
                if values.any(|v| regex.is_match(&String::from_utf8_lossy(v))) {
                    Ok(())
                } else {
                    fail(&format!(
                        "header {shown} does not match /{}/",
                        regex.as_str()
                    ))
                }
            }
            CheckKind::MaxLatency { max, message } => {
                if latency <= *max {
                    Ok(())
                } else {
                    fail(message)
                }
            }
        }
    }
}

/// JSON equality where numbers compare by value (`1 == 1.0`). With `lenient`, an expected
/// string also equals a number it parses to (`"42"` equals `42`).
fn json_equal(want: &Value, got: &Value, lenient: bool) -> bool {
    match (want, got) {
        (Value::Number(a), Value::Number(b)) => numbers_equal(a, b),
        (Value::String(s), Value::Number(b)) if lenient => s
            .parse::<serde_json::Number>()
            .is_ok_and(|a| numbers_equal(&a, b)),
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| json_equal(x, y, lenient))
        }
        (Value::Object(a), Value::Object(b)) => {
            a.len() == b.len()
                && a.iter()
                    .all(|(k, x)| b.get(k).is_some_and(|y| json_equal(x, y, lenient)))
        }
        _ => want == got,
    }
}

fn numbers_equal(a: &serde_json::Number, b: &serde_json::Number) -> bool {
    if let (Some(x), Some(y)) = (a.as_i64(), b.as_i64()) {
        return x == y;
    }
    if let (Some(x), Some(y)) = (a.as_u64(), b.as_u64()) {
        return x == y;
    }
    if a.is_f64() || b.is_f64() {
        return match (a.as_f64(), b.as_f64()) {
            (Some(x), Some(y)) => x == y,
            _ => false,
        };
    }
    // One is a negative i64, the other a u64 above i64::MAX.
    false
}

/// Why a check did not pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckFailure {
    /// The response failed the check.
    Failed(String),
    /// The check's own template could not be rendered.
    Render(RenderError),
}

/// A compiled extraction.
#[derive(Debug, Clone)]
pub struct Extract {
    kind: ExtractKind,
}

#[derive(Debug, Clone)]
enum ExtractKind {
    Json { path: JsonPath, shown: Box<str> },
    Regex(Regex),
    Header { name: HeaderName, shown: Box<str> },
    Cookie(Box<str>),
}

impl Extract {
    /// Compiles a scenario extraction.
    pub fn compile(extract: &mynah_scenario::Extract) -> Result<Extract, String> {
        use mynah_scenario::Extract as E;
        let kind = match extract {
            E::Json(path) => ExtractKind::Json {
                path: compile_path(path)?,
                shown: path.as_str().into(),
            },
            E::Regex(re) => {
                let regex = compile_regex(re)?;
                if regex.captures_len() < 2 {
                    return Err(format!("regex /{re}/ needs a capture group"));
                }
                ExtractKind::Regex(regex)
            }
            E::Header(name) => ExtractKind::Header {
                name: compile_header(name)?,
                shown: name.as_str().into(),
            },
            E::Cookie(name) => ExtractKind::Cookie(name.as_str().into()),
        };
        Ok(Extract { kind })
    }

    /// The extracted value, or `None` when the response does not hold it. JSON strings are
    /// taken without quotes; other JSON values as their JSON text.
    ///
    /// A JSON path takes its first match; a regex its first capture group of the first match
    /// (over the body decoded as lossy UTF-8); a header its first value; a cookie the last
    /// `Set-Cookie` with that name.
    pub fn apply(&self, response: &Response, json: &mut LazyJson) -> Option<String> {
        match &self.kind {
            ExtractKind::Json { path, .. } => {
                let value = json.get(&response.body)?;
                match path.query(value).first()? {
                    Value::String(s) => Some(s.clone()),
                    other => Some(other.to_string()),
                }
            }
            ExtractKind::Regex(regex) => {
                let body = String::from_utf8_lossy(&response.body);
                let caps = regex.captures(&body)?;
                Some(caps.get(1)?.as_str().to_string())
            }
            ExtractKind::Header { name, .. } => {
                let value = response.headers.get(name.as_str())?;
                Some(String::from_utf8_lossy(value).into_owned())
            }
            ExtractKind::Cookie(name) => response
                .set_cookies
                .iter()
                .rev()
                .find(|(n, _)| n == &**name)
                .map(|(_, v)| v.clone()),
        }
    }

    /// A description for failure messages, e.g. `json $.token` or `cookie sessionid`.
    pub fn describe(&self) -> String {
        match &self.kind {
            ExtractKind::Json { shown, .. } => format!("json {shown}"),
            ExtractKind::Regex(regex) => format!("regex /{}/", shorten(regex.as_str())),
            ExtractKind::Header { shown, .. } => format!("header {shown}"),
            ExtractKind::Cookie(name) => format!("cookie {name}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::tests::TestCtx;
    use bytes::Bytes;
    use mynah_scenario::{Check as C, Extract as E, FeedMode};
    use serde_json::json;

    fn response(status: u16, body: &str) -> Response {
        Response {
            status,
            headers: Default::default(),
            body: Bytes::from(body.to_string()),
            body_truncated: false,
            bytes_received: body.len() as u64,
            set_cookies: Vec::new(),
        }
    }

    fn feeds() -> Feeds {
        let mut feeds = Feeds::default();
        feeds
            .add_csv(
                "acc",
                "acc.csv",
                "acc.csv",
                FeedMode::Sequential,
                &b"id,name\n4,article\n"[..],
            )
            .unwrap();
        feeds
    }

    fn eval_with(
        check: &C,
        r: &Response,
        latency: Duration,
        ctx: &mut TestCtx,
    ) -> Result<(), String> {
        let c = Check::compile(check, &ctx.feeds).unwrap();
        c.evaluate(r, latency, &mut LazyJson::default(), ctx)
            .map_err(|e| match e {
                CheckFailure::Failed(m) => m,
                CheckFailure::Render(e) => format!("render: {e}"),
            })
    }

    fn eval(check: &C, r: &Response) -> Result<(), String> {
        eval_with(check, r, Duration::ZERO, &mut TestCtx::new(feeds()))
    }

    fn range(min: u16, max: u16) -> StatusRange {
        StatusRange { min, max }
    }

    #[test]
    fn status() {
        let ok = C::Status(vec![range(200, 299)]);
        assert!(Check::compile(&ok, &feeds()).unwrap().is_status());
        assert_eq!(eval(&ok, &response(204, "")), Ok(()));
        assert_eq!(
            eval(&ok, &response(503, "")),
            Err("status 503, expected 200-299".into())
        );
        let list = C::Status(vec![range(200, 200), range(201, 201)]);
        assert_eq!(eval(&list, &response(201, "")), Ok(()));
        assert_eq!(
            eval(&list, &response(404, "")),
            Err("status 404, expected [200, 201]".into())
        );
        let single = C::Status(vec![range(200, 200)]);
        assert_eq!(
            eval(&single, &response(500, "")),
            Err("status 500, expected 200".into())
        );
        assert!(
            !Check::compile(&C::MaxLatency(Duration::from_secs(1)), &feeds())
                .unwrap()
                .is_status()
        );
    }

    #[test]
    fn body_contains_renders_template_but_reports_source() {
        let check = C::BodyContains("{{ acc.name }}".into());
        assert_eq!(eval(&check, &response(200, "an article here")), Ok(()));
        assert_eq!(
            eval(&check, &response(200, "nothing")),
            Err("body does not contain \"{{ acc.name }}\"".into())
        );
        let plain = C::BodyContains("article".into());
        assert_eq!(
            eval(&plain, &response(200, "x")),
            Err("body does not contain \"article\"".into())
        );
        let missing = C::BodyContains("{{ gone }}".into());
        let mut ctx = TestCtx::new(feeds());
        let c = Check::compile(&missing, &ctx.feeds).unwrap();
        assert_eq!(
            c.evaluate(
                &response(200, ""),
                Duration::ZERO,
                &mut LazyJson::default(),
                &mut ctx
            ),
            Err(CheckFailure::Render(RenderError::MissingVar("gone".into())))
        );
        let long = C::BodyContains("a".repeat(200));
        let e = eval(&long, &response(200, "")).unwrap_err();
        assert!(e.len() < 120 && e.ends_with("…\""), "{e}");
        assert!(Check::compile(&C::BodyContains("{{ acc.zz }}".into()), &feeds()).is_err());
    }

    #[test]
    fn body_matches() {
        let check = C::BodyMatches("x+y".into());
        assert_eq!(eval(&check, &response(200, "aaxxy")), Ok(()));
        assert_eq!(
            eval(&check, &response(200, "abc")),
            Err("body does not match /x+y/".into())
        );
        // Invalid UTF-8 is matched lossily, never a panic.
        let mut r = response(200, "");
        r.body = Bytes::from_static(b"\xffxy\xfe");
        assert_eq!(eval(&check, &r), Ok(()));
        assert!(Check::compile(&C::BodyMatches("(".into()), &feeds()).is_err());
    }

    #[test]
    fn json_exists() {
        let exists = C::JsonExists {
            path: "$.received".into(),
            exists: true,
        };
        let absent = C::JsonExists {
            path: "$.error".into(),
            exists: false,
        };
        assert_eq!(
            eval(&exists, &response(200, r#"{"received": null}"#)),
            Ok(())
        );
        assert_eq!(
            eval(&exists, &response(200, r#"{"other": 1}"#)),
            Err("$.received does not exist".into())
        );
        assert_eq!(eval(&absent, &response(200, r#"{"ok": 1}"#)), Ok(()));
        assert_eq!(
            eval(&absent, &response(200, r#"{"error": "x"}"#)),
            Err("$.error exists".into())
        );
        assert_eq!(
            eval(&exists, &response(200, "<html>")),
            Err("body is not JSON (checking $.received)".into())
        );
        assert_eq!(
            eval(&absent, &response(200, "<html>")),
            Err("body is not JSON (checking $.error)".into())
        );
        let bad = C::JsonExists {
            path: "$[".into(),
            exists: true,
        };
        assert!(Check::compile(&bad, &feeds())
            .unwrap_err()
            .contains("invalid JSON path"));
    }

    #[test]
    fn json_equals() {
        let eq = |path: &str, v: Value| C::JsonEquals {
            path: path.into(),
            equals: v,
        };
        let body = r#"{"id": 4, "f": 1.0, "s": "x", "o": {"a": [1, 2.0]}, "big": 18446744073709551615, "neg": -1}"#;
        let r = response(200, body);
        assert_eq!(eval(&eq("$.id", json!(4)), &r), Ok(()));
        assert_eq!(eval(&eq("$.id", json!(4.0)), &r), Ok(()));
        assert_eq!(eval(&eq("$.f", json!(1)), &r), Ok(()));
        assert_eq!(eval(&eq("$.s", json!("x")), &r), Ok(()));
        assert_eq!(eval(&eq("$.o", json!({"a": [1.0, 2]})), &r), Ok(()));
        assert_eq!(eval(&eq("$.big", json!(u64::MAX)), &r), Ok(()));
        assert_eq!(
            eval(&eq("$.neg", json!(u64::MAX)), &r),
            Err("$.neg does not equal 18446744073709551615".into())
        );
        assert_eq!(
            eval(&eq("$.id", json!(5)), &r),
            Err("$.id does not equal 5".into())
        );
        // A literal string does not equal a number...
        assert_eq!(
            eval(&eq("$.id", json!("4")), &r),
            Err("$.id does not equal \"4\"".into())
        );
        // ...but a templated one does, since templates only produce strings.
        assert_eq!(eval(&eq("$.id", json!("{{ acc.id }}")), &r), Ok(()));
        assert_eq!(
            eval(&eq("$.s", json!("{{ acc.id }}")), &r).unwrap_err(),
            "$.s does not equal \"{{ acc.id }}\""
        );
        assert_eq!(
            eval(&eq("$.nope", json!(1)), &r),
            Err("$.nope does not exist".into())
        );
        assert_eq!(
            eval(&eq("$.id", json!(1)), &response(200, "oops")),
            Err("body is not JSON (checking $.id)".into())
        );
        assert_eq!(
            eval(&eq("$.id", json!("{{ gone }}")), &r),
            Err("render: variable `gone` is not set".into())
        );
    }

    #[test]
    fn header_matches() {
        let check = C::HeaderMatches {
            header: "Content-Type".into(),
            matches: "json".into(),
        };
        let mut r = response(200, "");
        assert_eq!(eval(&check, &r), Err("header Content-Type missing".into()));
        r.headers = [("content-type", "text/html")].into_iter().collect();
        assert_eq!(
            eval(&check, &r),
            Err("header Content-Type does not match /json/".into())
        );
        r.headers = [
            ("content-type", "text/html"),
            ("Content-Type", "application/json"),
        ]
        .into_iter()
        .collect();
        assert_eq!(eval(&check, &r), Ok(()));
        let bad = C::HeaderMatches {
            header: "bad header".into(),
            matches: "x".into(),
        };
        assert!(Check::compile(&bad, &feeds()).is_err());
    }

    #[test]
    fn max_latency() {
        let check = C::MaxLatency(Duration::from_millis(500));
        let r = response(200, "");
        let mut ctx = TestCtx::new(feeds());
        assert_eq!(
            eval_with(&check, &r, Duration::from_millis(500), &mut ctx),
            Ok(())
        );
        assert_eq!(
            eval_with(&check, &r, Duration::from_millis(1200), &mut ctx),
            Err("max_latency 500ms exceeded".into())
        );
        let secs = C::MaxLatency(Duration::from_secs(2));
        assert_eq!(
            eval_with(&secs, &r, Duration::from_secs(3), &mut ctx),
            Err("max_latency 2s exceeded".into())
        );
        assert_eq!(describe_duration(Duration::from_micros(1500)), "1.5ms");
    }

    #[test]
    fn lazy_json_parses_once() {
        let mut lazy = LazyJson::default();
        assert_eq!(lazy.get(br#"{"a":1}"#), Some(&json!({"a": 1})));
        // The first parse is kept, whatever body comes next.
        assert_eq!(lazy.get(b"not json"), Some(&json!({"a": 1})));
        assert_eq!(LazyJson::default().get(b"not json"), None);
    }

    #[test]
    fn extract_json() {
        let r = response(
            200,
            r#"{"token": "abc", "n": 3, "obj": {"a": [1, "x"]}, "items": [{"id": 7}, {"id": 8}]}"#,
        );
        let get = |p: &str| {
            let e = Extract::compile(&E::Json(p.into())).unwrap();
            e.apply(&r, &mut LazyJson::default())
        };
        assert_eq!(get("$.token").as_deref(), Some("abc"));
        assert_eq!(get("$.n").as_deref(), Some("3"));
        assert_eq!(get("$.obj").as_deref(), Some(r#"{"a":[1,"x"]}"#));
        assert_eq!(get("$.items[*].id").as_deref(), Some("7"));
        assert_eq!(get("$.missing"), None);
        let e = Extract::compile(&E::Json("$.token".into())).unwrap();
        assert_eq!(e.describe(), "json $.token");
        assert_eq!(
            e.apply(&response(200, "<html>"), &mut LazyJson::default()),
            None
        );
        assert!(Extract::compile(&E::Json("$[".into())).is_err());
    }

    #[test]
    fn extract_regex() {
        let r = response(200, r#"<input name="csrf" value="t0k"> value="other""#);
        let e = Extract::compile(&E::Regex(r#"value="([^"]+)""#.into())).unwrap();
        assert_eq!(
            e.apply(&r, &mut LazyJson::default()).as_deref(),
            Some("t0k")
        );
        assert_eq!(e.describe(), r#"regex /value="([^"]+)"/"#);
        assert_eq!(
            e.apply(&response(200, "none"), &mut LazyJson::default()),
            None
        );
        // A group that did not take part in the match gives nothing.
        let opt = Extract::compile(&E::Regex("a(b)?".into())).unwrap();
        assert_eq!(
            opt.apply(&response(200, "a"), &mut LazyJson::default()),
            None
        );
        assert!(Extract::compile(&E::Regex("no group".into()))
            .unwrap_err()
            .contains("capture group"));
        assert!(Extract::compile(&E::Regex("(".into())).is_err());
    }

    #[test]
    fn extract_header_and_cookie() {
        let mut r = response(200, "");
        r.headers = [("X-Request-Id", "r-1")].into_iter().collect();
        r.set_cookies = vec![
            ("sessionid".into(), "old".into()),
            ("other".into(), "o".into()),
            ("sessionid".into(), "new".into()),
        ];
        let h = Extract::compile(&E::Header("X-Request-Id".into())).unwrap();
        assert_eq!(
            h.apply(&r, &mut LazyJson::default()).as_deref(),
            Some("r-1")
        );
        assert_eq!(h.describe(), "header X-Request-Id");
        let missing = Extract::compile(&E::Header("X-Nope".into())).unwrap();
        assert_eq!(missing.apply(&r, &mut LazyJson::default()), None);
        assert!(Extract::compile(&E::Header("bad name".into())).is_err());

        let c = Extract::compile(&E::Cookie("sessionid".into())).unwrap();
        assert_eq!(
            c.apply(&r, &mut LazyJson::default()).as_deref(),
            Some("new")
        );
        assert_eq!(c.describe(), "cookie sessionid");
        let none = Extract::compile(&E::Cookie("csrftoken".into())).unwrap();
        assert_eq!(none.apply(&r, &mut LazyJson::default()), None);
    }

    #[test]
    fn describes_statuses() {
        assert_eq!(describe_statuses(&[range(200, 299)]), "200-299");
        assert_eq!(describe_statuses(&[range(204, 204)]), "204");
        assert_eq!(
            describe_statuses(&[range(200, 200), range(301, 302)]),
            "[200, 301-302]"
        );
        assert_eq!(describe_statuses(&[]), "[]");
    }
}
