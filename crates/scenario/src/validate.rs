//! Turns the raw file shape into the model, checking what serde cannot.

use std::collections::BTreeMap;

use serde_saphyr::{Location, Spanned};

use crate::model::*;
use crate::raw::*;
use crate::template::{self, Expr, Piece, TemplateError};

/// A validation failure: where, and what is wrong.
pub(crate) struct Invalid {
    pub loc: Option<Location>,
    pub msg: String,
}

type R<T> = Result<T, Invalid>;

fn err<T>(loc: Location, msg: impl Into<String>) -> R<T> {
    Err(Invalid {
        loc: Some(loc),
        msg: msg.into(),
    })
}

/// What a template may refer to at a given point.
#[derive(Clone)]
struct Scope<'a> {
    feeds: &'a BTreeMap<String, DataFeed>,
    vars: Vec<String>,
}

impl Scope<'_> {
    fn describe(&self) -> String {
        let mut parts: Vec<String> = self.vars.clone();
        parts.extend(self.feeds.keys().map(|f| format!("{f}.<column>")));
        parts.push(template::HELPERS.to_string());
        parts.join(", ")
    }

    /// Checks every `{{ ... }}` in `text`; `what` names the field for messages.
    fn check(&self, text: &str, what: &str, loc: Location) -> R<()> {
        let pieces = match template::pieces(text) {
            Ok(p) => p,
            Err(TemplateError::Unclosed) => return err(loc, format!("unclosed `{{{{` in {what}")),
            Err(TemplateError::Expr(problem)) => {
                return err(
                    loc,
                    format!("{problem} in {what}; defined here: {}", self.describe()),
                )
            }
        };
        for piece in pieces {
            let undefined = match piece {
                Piece::Expr(Expr::Var(v)) if !self.vars.iter().any(|x| x == v) => v.to_string(),
                Piece::Expr(Expr::Feed { feed, column }) if !self.feeds.contains_key(feed) => {
                    format!("{feed}.{column}")
                }
                _ => continue,
            };
            return err(
                loc,
                format!(
                    "undefined template variable `{undefined}` in {what}; defined here: {}",
                    self.describe()
                ),
            );
        }
        Ok(())
    }

    fn check_json(&self, v: &serde_json::Value, what: &str, loc: Location) -> R<()> {
        match v {
            serde_json::Value::String(s) => self.check(s, what, loc),
            serde_json::Value::Array(items) => items
                .iter()
                .try_for_each(|item| self.check_json(item, what, loc)),
            serde_json::Value::Object(map) => map.iter().try_for_each(|(k, item)| {
                self.check(k, what, loc)?;
                self.check_json(item, what, loc)
            }),
            _ => Ok(()),
        }
    }

    fn check_map(&self, map: &BTreeMap<String, String>, what: &str, loc: Location) -> R<()> {
        map.iter().try_for_each(|(k, v)| {
            self.check(k, what, loc)?;
            self.check(v, what, loc)
        })
    }
}

pub(crate) fn scenario(raw: RawScenario, whole: Location) -> R<Scenario> {
    if raw.users.is_empty() {
        return err(whole, "at least one user class is required under `users`");
    }
    let global = Scope {
        feeds: &raw.data,
        vars: Vec::new(),
    };
    // Global headers are rendered before any extraction can have happened,
    // so only feeds and helpers are in scope there.
    global.check_map(&raw.headers, "headers", whole)?;
    let mut users = Vec::with_capacity(raw.users.len());
    for (i, user) in raw.users.into_iter().enumerate() {
        users.push(user_class(user, &format!("users[{i}]"), &global)?);
    }
    let load = raw.load.map(load).transpose()?;
    Ok(Scenario {
        host: raw.host,
        headers: raw.headers,
        timeouts: Timeouts {
            connect: raw.timeouts.connect.map(|d| d.0),
            request: raw.timeouts.request.map(|d| d.0),
        },
        redirects: Redirects {
            follow: raw.redirects.follow.unwrap_or(true),
            max: raw.redirects.max,
        },
        data: raw.data,
        users,
        load,
        thresholds: raw.thresholds,
    })
}

fn user_class(raw: Spanned<RawUser>, path: &str, global: &Scope) -> R<UserClass> {
    let loc = raw.referenced;
    let u = raw.value;
    let path = format!("{path} ({})", u.name);
    let spawn = match (u.weight, u.fixed_count) {
        (Some(_), Some(_)) => {
            return err(
                loc,
                format!("{path}: give `weight` or `fixed_count`, not both"),
            )
        }
        (None, Some(n)) => Spawn::FixedCount(n),
        (Some(0), None) => return err(loc, format!("{path}: `weight` must be at least 1")),
        (w, None) => Spawn::Weight(w.unwrap_or(1)),
    };
    if let Some(w) = &u.wait_time {
        wait_time(w).map_err(|m| Invalid {
            loc: Some(loc),
            msg: format!("{path}.wait_time: {m}"),
        })?;
    }
    if let Some(s) = &u.session_length {
        session_length(s).map_err(|m| Invalid {
            loc: Some(loc),
            msg: format!("{path}.session_length: {m}"),
        })?;
    }
    let replay = match u.replay {
        None => None,
        Some(r) => {
            let rloc = r.referenced;
            let r = r.value;
            if !u.tasks.is_empty()
                || !u.on_start.is_empty()
                || !u.on_stop.is_empty()
                || u.wait_time.is_some()
                || u.session_length.is_some()
            {
                return err(
                    rloc,
                    format!("{path}: a `replay` class plays recorded sessions: remove its `tasks`, `on_start`, `on_stop`, `wait_time` and `session_length` (they come from the recording)"),
                );
            }
            if r.file.trim().is_empty() {
                return err(rloc, format!("{path}.replay: `file` names the recording"));
            }
            let pick = match r.pick.as_deref().map(str::trim) {
                None | Some("random") => Pick::Random,
                Some("sequential") => Pick::Sequential,
                Some(other) => {
                    return err(
                        rloc,
                        format!("{path}.replay.pick: {other:?} is not `random` or `sequential`"),
                    )
                }
            };
            Some(ReplayClass {
                file: r.file,
                session_key: r.session_key.unwrap_or_else(|| "auto".into()),
                pick,
            })
        }
    };
    if u.tasks.is_empty() && replay.is_none() {
        return err(loc, format!("{path}: at least one task is required (or `replay: {{ file: ... }}` to play recorded sessions)"));
    }
    let mut scope = global.clone();
    let on_start = steps(u.on_start, &format!("{path}.on_start"), &mut scope)?;
    // on_start variables are visible to every task and to on_stop.
    let on_stop = steps(u.on_stop, &format!("{path}.on_stop"), &mut scope.clone())?;
    let mut tasks = Vec::with_capacity(u.tasks.len());
    for (i, t) in u.tasks.into_iter().enumerate() {
        tasks.push(task(t, &format!("{path}.tasks[{i}]"), &scope)?);
    }
    Ok(UserClass {
        name: u.name,
        spawn,
        wait_time: u.wait_time,
        session_length: u.session_length,
        replay,
        on_start,
        on_stop,
        tasks,
    })
}

fn session_length(s: &SessionLength) -> Result<(), String> {
    match s {
        SessionLength::Constant(n) if !(n.is_finite() && *n >= 1.0) => {
            Err("`constant` must be at least 1 task".into())
        }
        SessionLength::Constant(_) => Ok(()),
        SessionLength::Quantiles(q) => wait_time(&WaitTime::Quantiles(q.clone()))
            .map_err(|e| e.replace("seconds", "task counts")),
    }
}

fn wait_time(w: &WaitTime) -> Result<(), String> {
    let ok = |x: f64| x.is_finite() && x >= 0.0;
    match *w {
        WaitTime::Between(a, b) if !(ok(a) && ok(b)) => {
            Err("`between` bounds must be non-negative seconds".into())
        }
        WaitTime::Between(a, b) if a > b => Err(format!("`between: [{a}, {b}]` needs a <= b")),
        WaitTime::Constant(s) | WaitTime::ConstantPacing(s) if !ok(s) => {
            Err("seconds must be non-negative".into())
        }
        WaitTime::ConstantThroughput(n) if !(n.is_finite() && n > 0.0) => {
            Err("`constant_throughput` must be positive".into())
        }
        WaitTime::Quantiles(ref q) if q.len() < 2 || q.len() > crate::model::MAX_WAIT_QUANTILES => {
            Err(format!(
                "`quantiles` needs 2 to {} values (the minimum, evenly spaced quantiles, the maximum), not {}",
                crate::model::MAX_WAIT_QUANTILES,
                q.len()
            ))
        }
        WaitTime::Quantiles(ref q) if !q.iter().all(|&x| ok(x)) => {
            Err("`quantiles` values must be non-negative seconds".into())
        }
        WaitTime::Quantiles(ref q) if q.windows(2).any(|w| w[0] > w[1]) => {
            Err("`quantiles` values must not decrease (they are quantiles, smallest first)".into())
        }
        _ => Ok(()),
    }
}

fn task(raw: Spanned<RawTask>, path: &str, scope: &Scope) -> R<Task> {
    let loc = raw.referenced;
    let t = raw.value;
    let path = match &t.name {
        Some(n) => format!("{path} ({n})"),
        None => path.to_string(),
    };
    if t.weight == Some(0) {
        return err(loc, format!("{path}: `weight` must be at least 1"));
    }
    let body = match (t.request, t.sequence) {
        (Some(_), Some(_)) | (None, None) => {
            return err(
                loc,
                format!("{path}: a task needs exactly one of `request` or `sequence`"),
            )
        }
        (Some(request), None) => {
            let raw_step = RawStep {
                request,
                checks: t.checks.unwrap_or_default(),
                extract: t.extract.unwrap_or_default(),
            };
            let spanned = Spanned::new(raw_step, loc, raw.defined);
            TaskBody::Request(step(spanned, &path, &mut scope.clone())?)
        }
        (None, Some(seq)) => {
            if t.checks.is_some() || t.extract.is_some() {
                return err(
                    loc,
                    format!("{path}: `checks`/`extract` belong to steps inside `sequence`"),
                );
            }
            if seq.is_empty() {
                return err(loc, format!("{path}: `sequence` is empty"));
            }
            TaskBody::Sequence(steps(seq, &format!("{path}.sequence"), &mut scope.clone())?)
        }
    };
    let name = t.name.unwrap_or_else(|| {
        let first = &body.steps()[0].request;
        format!("{} {}", first.method, first.path)
    });
    Ok(Task {
        name,
        weight: t.weight.unwrap_or(1),
        tags: t.tags,
        body,
    })
}

/// Steps in order; each step's extractions are added to `scope` for the next.
fn steps(raw: Vec<Spanned<RawStep>>, path: &str, scope: &mut Scope) -> R<Vec<Step>> {
    raw.into_iter()
        .enumerate()
        .map(|(i, s)| step(s, &format!("{path}[{i}]"), scope))
        .collect()
}

fn step(raw: Spanned<RawStep>, path: &str, scope: &mut Scope) -> R<Step> {
    let loc = raw.referenced;
    let s = raw.value;
    let request = request(s.request, &format!("{path}.request"), loc, scope)?;
    let checks = s
        .checks
        .into_iter()
        .enumerate()
        .map(|(i, c)| check(c, &format!("{path}.checks[{i}]"), scope))
        .collect::<R<Vec<_>>>()?;
    let mut extract = BTreeMap::new();
    for (var, e) in s.extract {
        let what = format!("{path}.extract.{var}");
        if !template::is_ident(&var) {
            return err(
                e.referenced,
                format!("{what}: variable names are letters, digits and `_`"),
            );
        }
        extract.insert(var.clone(), extraction(e, &what)?);
        scope.vars.push(var);
    }
    Ok(Step {
        request,
        checks,
        extract,
    })
}

fn request(r: RawRequest, path: &str, loc: Location, scope: &Scope) -> R<Request> {
    let method = r.method.to_ascii_uppercase();
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_alphabetic()) {
        return err(
            loc,
            format!("{path}.method: `{}` is not an HTTP method", r.method),
        );
    }
    scope.check(&r.path, &format!("{path}.path"), loc)?;
    scope.check_map(&r.query, &format!("{path}.query"), loc)?;
    scope.check_map(&r.headers, &format!("{path}.headers"), loc)?;
    let body = match (r.json, r.form, r.body) {
        (None, None, None) => None,
        (Some(j), None, None) => {
            scope.check_json(&j, &format!("{path}.json"), loc)?;
            Some(Body::Json(j))
        }
        (None, Some(f), None) => {
            scope.check_map(&f, &format!("{path}.form"), loc)?;
            Some(Body::Form(f))
        }
        (None, None, Some(b)) => {
            scope.check(&b, &format!("{path}.body"), loc)?;
            Some(Body::Text(b))
        }
        _ => {
            return err(
                loc,
                format!("{path}: give at most one of `json`, `form` or `body`"),
            )
        }
    };
    Ok(Request {
        method,
        path: r.path,
        query: r.query,
        headers: r.headers,
        body,
        name: r.name,
    })
}

fn regex_ok(re: &str, what: &str, loc: Location) -> R<()> {
    match regex::Regex::new(re) {
        Ok(_) => Ok(()),
        Err(e) => err(loc, format!("{what}: invalid regex: {e}")),
    }
}

fn json_path_ok(p: &str, what: &str, loc: Location) -> R<()> {
    if p.starts_with('$') {
        Ok(())
    } else {
        err(loc, format!("{what}: JSON path `{p}` must start with `$`"))
    }
}

fn check(raw: Spanned<RawCheck>, what: &str, scope: &Scope) -> R<Check> {
    let loc = raw.referenced;
    let c = raw.value;
    let kinds = [
        c.status.is_some(),
        c.body_contains.is_some(),
        c.body_matches.is_some(),
        c.json.is_some(),
        c.header.is_some(),
        c.max_latency.is_some(),
    ];
    let shape_err = || {
        err(
            loc,
            format!(
                "{what}: a check is one of `status`, `body_contains`, `body_matches`, \
                 `json` with `exists` or `equals`, `header` with `matches`, `max_latency`"
            ),
        )
    };
    if kinds.iter().filter(|k| **k).count() != 1 {
        return shape_err();
    }
    let for_json = c.exists.is_some() || c.equals.is_some();
    if (for_json && c.json.is_none()) || (c.matches.is_some() && c.header.is_none()) {
        return shape_err();
    }
    if let Some(s) = c.status {
        return Ok(Check::Status(s.0));
    }
    if let Some(s) = c.body_contains {
        scope.check(&s, what, loc)?;
        return Ok(Check::BodyContains(s));
    }
    if let Some(re) = c.body_matches {
        regex_ok(&re, what, loc)?;
        return Ok(Check::BodyMatches(re));
    }
    if let Some(path) = c.json {
        json_path_ok(&path, what, loc)?;
        return match (c.exists, c.equals) {
            (Some(exists), None) => Ok(Check::JsonExists { path, exists }),
            (None, Some(equals)) => {
                scope.check_json(&equals, what, loc)?;
                Ok(Check::JsonEquals { path, equals })
            }
            // A bare path most likely means "must exist".
            (None, None) => Ok(Check::JsonExists { path, exists: true }),
            (Some(_), Some(_)) => err(loc, format!("{what}: give `exists` or `equals`, not both")),
        };
    }
    if let Some(header) = c.header {
        let Some(matches) = c.matches else {
            return err(loc, format!("{what}: `header` check needs `matches`"));
        };
        regex_ok(&matches, what, loc)?;
        return Ok(Check::HeaderMatches { header, matches });
    }
    match c.max_latency {
        Some(d) => Ok(Check::MaxLatency(d.0)),
        None => shape_err(),
    }
}

fn extraction(raw: Spanned<RawExtract>, what: &str) -> R<Extract> {
    let loc = raw.referenced;
    match raw.value {
        RawExtract {
            json: Some(p),
            regex: None,
            header: None,
            cookie: None,
        } => {
            json_path_ok(&p, what, loc)?;
            Ok(Extract::Json(p))
        }
        RawExtract {
            json: None,
            regex: Some(re),
            header: None,
            cookie: None,
        } => match regex::Regex::new(&re) {
            Ok(compiled) if compiled.captures_len() > 1 => Ok(Extract::Regex(re)),
            Ok(_) => err(loc, format!("{what}: regex needs a capture group")),
            Err(e) => err(loc, format!("{what}: invalid regex: {e}")),
        },
        RawExtract {
            json: None,
            regex: None,
            header: Some(h),
            cookie: None,
        } => Ok(Extract::Header(h)),
        RawExtract {
            json: None,
            regex: None,
            header: None,
            cookie: Some(c),
        } => Ok(Extract::Cookie(c)),
        _ => err(
            loc,
            format!("{what}: give exactly one of `json`, `regex`, `header`, `cookie`"),
        ),
    }
}

fn load(raw: Spanned<RawLoad>) -> R<Load> {
    let loc = raw.referenced;
    let l = raw.value;
    let simple = l.users.is_some() || l.spawn_rate.is_some() || l.run_time.is_some();
    let rate_ok = |r: f64| r.is_finite() && r > 0.0;
    match (simple, l.stages, l.arrival) {
        (true, None, None) => {
            let Some(users) = l.users else {
                return err(
                    loc,
                    "load: `users` is required with `spawn_rate`/`run_time`",
                );
            };
            let spawn_rate = l.spawn_rate.unwrap_or(1.0);
            if !rate_ok(spawn_rate) {
                return err(loc, "load: `spawn_rate` must be positive");
            }
            Ok(Load::Users {
                users,
                spawn_rate,
                run_time: l.run_time.map(|d| d.0),
            })
        }
        (false, Some(stages), None) if !stages.is_empty() => {
            if stages.iter().any(|s| !rate_ok(s.spawn_rate)) {
                return err(loc, "load.stages: `spawn_rate` must be positive");
            }
            Ok(Load::Stages(
                stages
                    .into_iter()
                    .map(|s| Stage {
                        duration: s.duration.0,
                        users: s.users,
                        spawn_rate: s.spawn_rate,
                    })
                    .collect(),
            ))
        }
        (false, None, Some(arrival)) if !arrival.is_empty() => {
            if arrival
                .iter()
                .any(|a| !(a.rate.is_finite() && a.rate >= 0.0))
            {
                return err(loc, "load.arrival: `rate` must be non-negative");
            }
            Ok(Load::Arrival(
                arrival
                    .into_iter()
                    .map(|a| ArrivalStage {
                        duration: a.duration.0,
                        rate: a.rate,
                        max_users: a.max_users,
                    })
                    .collect(),
            ))
        }
        _ => err(
            loc,
            "load: give exactly one of `users`/`spawn_rate`/`run_time`, \
             a non-empty `stages` list, or a non-empty `arrival` list",
        ),
    }
}
