//! The scenario compiled for running: templates parsed, regexes and JSON paths compiled, data
//! feeds loaded, tags applied and every statistics name fixed, so that a mistake stops the run
//! before the first request and the hot path only renders and sends.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use http::uri::{Authority, Scheme};
use mynah_scenario::{Body, Load, Scenario, Spawn, WaitTime};

use crate::check::{Check, Extract};
use crate::client::ClientConfig;
use crate::feed::Feeds;
use crate::template::{JsonTemplate, Template};

/// Options applied while compiling; command-line values win over the file's.
#[derive(Debug, Clone, Default)]
pub struct PlanOptions {
    /// Base URL, replacing the scenario's `host`.
    pub host: Option<String>,
    /// Load shape, replacing the scenario's `load`.
    pub load: Option<Load>,
    /// Keep only tasks with at least one of these tags (none: keep all).
    pub tags: Vec<String>,
    /// Drop tasks with any of these tags.
    pub exclude_tags: Vec<String>,
    /// Folder that data feed paths are relative to (the scenario file's folder).
    pub base_dir: PathBuf,
    /// Accept any TLS certificate.
    pub insecure: bool,
    /// Use HTTP/2 with prior knowledge on `http://` hosts.
    pub http2: bool,
}

/// Why a scenario cannot be run. Displays as one message that says what to change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanError {
    /// What is wrong and how to fix it.
    pub message: String,
}

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for PlanError {}

fn plan_err(message: impl Into<String>) -> PlanError {
    PlanError {
        message: message.into(),
    }
}

/// The base URL requests are joined to.
#[derive(Debug, Clone)]
pub struct BaseUrl {
    /// `http` or `https`.
    pub scheme: Scheme,
    /// Host and port.
    pub authority: Authority,
    /// Path prefix without a trailing `/` (empty for none).
    pub prefix: String,
}

impl BaseUrl {
    /// Parses `http://host[:port][/prefix]`.
    pub fn parse(text: &str) -> Result<BaseUrl, String> {
        let uri: http::Uri = text
            .parse()
            .map_err(|e| format!("invalid host URL {text:?}: {e}"))?;
        let scheme = uri.scheme().cloned().ok_or_else(|| {
            format!("host URL {text:?} has no scheme: write http://{text} or https://{text}")
        })?;
        if scheme != Scheme::HTTP && scheme != Scheme::HTTPS {
            return Err(format!(
                "host URL {text:?}: only http:// and https:// are supported"
            ));
        }
        let authority = uri
            .authority()
            .cloned()
            .ok_or_else(|| format!("host URL {text:?} has no host"))?;
        let prefix = uri.path().trim_end_matches('/').to_string();
        Ok(BaseUrl {
            scheme,
            authority,
            prefix,
        })
    }

    /// `scheme://authority`, for messages.
    pub fn origin(&self) -> String {
        format!("{}://{}", self.scheme, self.authority)
    }
}

/// A compiled scenario, shared by every user of a run.
#[derive(Debug)]
pub struct Plan {
    /// Where relative request paths go; `None` when every path is an absolute URL.
    pub base: Option<BaseUrl>,
    /// Headers sent with every request (rendered per request).
    pub headers: Vec<(Template, Template)>,
    /// Client settings.
    pub client: ClientConfig,
    /// Data feeds.
    pub feeds: Arc<Feeds>,
    /// User classes left after tag filtering.
    pub classes: Vec<ClassPlan>,
    /// The load shape.
    pub load: Load,
    /// `(method, name)` of every statistics group, indexed by [`StepPlan::endpoint`].
    pub endpoints: Vec<(String, String)>,
    /// Threshold expressions from the file.
    pub thresholds: Vec<String>,
    /// Notes for the user (e.g. a class left without tasks by `--tags`).
    pub warnings: Vec<String>,
}

/// A user class, ready to run.
#[derive(Debug)]
pub struct ClassPlan {
    /// Class name.
    pub name: String,
    /// Weight or fixed count.
    pub spawn: Spawn,
    /// Pause between tasks.
    pub wait_time: Option<WaitTime>,
    /// Tasks per session (see [`mynah_scenario::UserClass::session_length`]).
    pub session_length: Option<mynah_scenario::SessionLength>,
    /// A `replay` class: its users play these recorded sessions instead of tasks.
    pub recorded: Option<Arc<crate::recorded::RecordedSessions>>,
    /// Steps run once when a user starts.
    pub on_start: Vec<StepPlan>,
    /// Steps run once when a user stops.
    pub on_stop: Vec<StepPlan>,
    /// Tasks with their weights.
    pub tasks: Vec<TaskPlan>,
    /// Running sums of task weights, for picking.
    cumulative: Vec<u64>,
}

impl ClassPlan {
    /// Picks a task by weight.
    pub fn pick_task(&self, rng: &mut fastrand::Rng) -> &TaskPlan {
        let total = self.cumulative.last().copied().unwrap_or(1).max(1);
        let x = rng.u64(0..total);
        let i = self.cumulative.partition_point(|&c| c <= x);
        &self.tasks[i.min(self.tasks.len() - 1)]
    }
}

/// A task, ready to run.
#[derive(Debug)]
pub struct TaskPlan {
    /// Task name.
    pub name: String,
    /// Pick weight.
    pub weight: u32,
    /// Steps in order.
    pub steps: Vec<StepPlan>,
}

/// One request with its checks and extractions, compiled.
#[derive(Debug)]
pub struct StepPlan {
    /// Method.
    pub method: http::Method,
    /// Path or absolute URL.
    pub path: Template,
    /// Query parameters.
    pub query: Vec<(Template, Template)>,
    /// Headers (after the scenario-wide ones; same name replaces).
    pub headers: Vec<(Template, Template)>,
    /// Body.
    pub body: BodyPlan,
    /// The URL, built once when the path and query have no template.
    pub static_uri: Option<http::Uri>,
    /// The body, serialized once when it has no template.
    pub static_body: Option<bytes::Bytes>,
    /// Index into [`Plan::endpoints`].
    pub endpoint: u32,
    /// Checks.
    pub checks: Vec<Check>,
    /// Whether any check is on the status (otherwise status ≥ 400 fails the request).
    pub has_status_check: bool,
    /// Variables extracted from the response.
    pub extract: Vec<(String, Extract)>,
}

/// A compiled request body.
#[derive(Debug)]
pub enum BodyPlan {
    /// No body.
    None,
    /// JSON.
    Json(JsonTemplate),
    /// URL-encoded form.
    Form(Vec<(Template, Template)>),
    /// Raw text.
    Text(Template),
}

impl BodyPlan {
    /// The Content-Type the body is sent with unless the request sets one.
    pub fn content_type(&self) -> Option<http::HeaderValue> {
        match self {
            BodyPlan::Json(_) => Some(http::HeaderValue::from_static("application/json")),
            BodyPlan::Form(_) => Some(http::HeaderValue::from_static(
                "application/x-www-form-urlencoded",
            )),
            BodyPlan::None | BodyPlan::Text(_) => None,
        }
    }
}

/// Users started per second when neither the file nor the command line says.
pub const DEFAULT_SPAWN_RATE: f64 = 1.0;

impl Plan {
    /// Compiles a scenario.
    pub fn compile(scenario: &Scenario, options: &PlanOptions) -> Result<Plan, PlanError> {
        let host = options.host.as_ref().or(scenario.host.as_ref());
        let base = host
            .map(|h| BaseUrl::parse(h))
            .transpose()
            .map_err(plan_err)?;
        let feeds =
            Feeds::load(&scenario.data, &options.base_dir).map_err(|e| plan_err(e.message))?;
        let load = options.load.clone().or_else(|| scenario.load.clone()).ok_or_else(|| {
            plan_err("no load shape: add `load:` to the scenario (e.g. `load: { users: 10, spawn_rate: 2, run_time: 1m }`) or pass -u/--users and -t/--run-time")
        })?;
        check_load(&load)?;

        let mut endpoints: Vec<(String, String)> = Vec::new();
        let mut warnings = Vec::new();
        let mut classes = Vec::new();
        for (ci, class) in scenario.users.iter().enumerate() {
            let what = format!("users[{ci}] ({})", class.name);
            if let Some(r) = &class.replay {
                if base.is_none() {
                    return Err(plan_err(format!(
                        "{what}: a `replay` class sends its recorded requests to the host: set `host:` in the scenario or pass --host"
                    )));
                }
                let sessions = crate::recorded::RecordedSessions::load(
                    &options.base_dir,
                    &r.file,
                    &r.session_key,
                    r.pick,
                    &mut endpoints,
                )
                .map_err(|e| plan_err(format!("{what}.{e}")))?;
                classes.push(ClassPlan {
                    name: class.name.clone(),
                    spawn: class.spawn,
                    wait_time: None,
                    session_length: None,
                    recorded: Some(Arc::new(sessions)),
                    on_start: Vec::new(),
                    on_stop: Vec::new(),
                    tasks: Vec::new(),
                    cumulative: Vec::new(),
                });
                continue;
            }
            let mut ctx = Compiler {
                feeds: &feeds,
                endpoints: &mut endpoints,
                base: base.as_ref(),
            };
            let mut tasks = Vec::new();
            for (ti, task) in class.tasks.iter().enumerate() {
                if !keep_task(&task.tags, &options.tags, &options.exclude_tags) {
                    continue;
                }
                let steps = task
                    .body
                    .steps()
                    .iter()
                    .enumerate()
                    .map(|(si, s)| ctx.step(s, &format!("{what}.tasks[{ti}] step {si}")))
                    .collect::<Result<Vec<_>, _>>()?;
                tasks.push(TaskPlan {
                    name: task.name.clone(),
                    weight: task.weight,
                    steps,
                });
            }
            if tasks.is_empty() {
                warnings.push(format!(
                    "user class {:?} has no task left after --tags/--exclude-tags and is not run",
                    class.name
                ));
                continue;
            }
            let on_start = class
                .on_start
                .iter()
                .enumerate()
                .map(|(i, s)| ctx.step(s, &format!("{what}.on_start[{i}]")))
                .collect::<Result<Vec<_>, _>>()?;
            let on_stop = class
                .on_stop
                .iter()
                .enumerate()
                .map(|(i, s)| ctx.step(s, &format!("{what}.on_stop[{i}]")))
                .collect::<Result<Vec<_>, _>>()?;
            let cumulative = tasks
                .iter()
                .scan(0u64, |sum, t| {
                    *sum += u64::from(t.weight.max(1));
                    Some(*sum)
                })
                .collect();
            classes.push(ClassPlan {
                name: class.name.clone(),
                spawn: class.spawn,
                wait_time: class.wait_time.clone(),
                session_length: class.session_length.clone(),
                recorded: None,
                on_start,
                on_stop,
                tasks,
                cumulative,
            });
        }
        if classes.is_empty() {
            return Err(plan_err(
                "no task is left to run after --tags/--exclude-tags: check the tags in the scenario",
            ));
        }

        let headers = scenario
            .headers
            .iter()
            .map(|(k, v)| {
                Ok((
                    header_name_template(k, &feeds, "headers")?,
                    template(v, &feeds, "headers")?,
                ))
            })
            .collect::<Result<Vec<_>, PlanError>>()?;

        let client = ClientConfig {
            connect_timeout: scenario
                .timeouts
                .connect
                .unwrap_or(ClientConfig::default().connect_timeout),
            request_timeout: scenario
                .timeouts
                .request
                .unwrap_or(ClientConfig::default().request_timeout),
            follow_redirects: scenario.redirects.follow,
            max_redirects: scenario
                .redirects
                .max
                .unwrap_or(ClientConfig::default().max_redirects),
            insecure: options.insecure,
            http2_prior_knowledge: options.http2,
            ..ClientConfig::default()
        };
        Ok(Plan {
            base,
            headers,
            client,
            feeds: Arc::new(feeds),
            classes,
            load,
            endpoints,
            thresholds: scenario.thresholds.clone(),
            warnings,
        })
    }

    /// Planned run length, when the load shape has one.
    pub fn planned_duration(&self) -> Option<Duration> {
        match &self.load {
            Load::Users { run_time, .. } => *run_time,
            Load::Stages(stages) => Some(stages.iter().map(|s| s.duration).sum()),
            Load::Arrival(stages) => Some(stages.iter().map(|s| s.duration).sum()),
        }
    }

    /// How many users of each class run when `total` users run: fixed counts first (in file
    /// order), the rest shared by weight (largest remainder, so counts are exact at any total).
    pub fn class_counts(&self, total: u64) -> Vec<u64> {
        let mut counts = vec![0u64; self.classes.len()];
        let mut left = total;
        for (i, c) in self.classes.iter().enumerate() {
            if let Spawn::FixedCount(n) = c.spawn {
                let n = u64::from(n).min(left);
                counts[i] = n;
                left -= n;
            }
        }
        let weights: Vec<(usize, u64)> = self
            .classes
            .iter()
            .enumerate()
            .filter_map(|(i, c)| match c.spawn {
                Spawn::Weight(w) => Some((i, u64::from(w))),
                Spawn::FixedCount(_) => None,
            })
            .collect();
        let total_weight: u64 = weights.iter().map(|(_, w)| w).sum();
        if total_weight == 0 || left == 0 {
            return counts;
        }
        let mut given = 0;
        let mut remainders = Vec::with_capacity(weights.len());
        for &(i, w) in &weights {
            let exact = u128::from(left) * u128::from(w);
            let share = (exact / u128::from(total_weight)) as u64;
            counts[i] = share;
            given += share;
            remainders.push((exact % u128::from(total_weight), i));
        }
        // Largest remainder first; ties to the class listed first.
        remainders.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        for &(_, i) in remainders.iter().take((left - given) as usize) {
            counts[i] += 1;
        }
        counts
    }

    /// The users the load shape can ever run: the fixed counts plus the largest user target.
    pub fn max_users(&self) -> u64 {
        match &self.load {
            Load::Users { users, .. } => u64::from(*users),
            Load::Stages(s) => s.iter().map(|s| u64::from(s.users)).max().unwrap_or(0),
            Load::Arrival(s) => s
                .iter()
                .map(|s| u64::from(arrival_max_users(s)))
                .max()
                .unwrap_or(0),
        }
    }
}

/// The open model's user cap for a stage: `max_users`, or ten seconds of arrivals (at least 100).
pub fn arrival_max_users(stage: &mynah_scenario::ArrivalStage) -> u32 {
    stage
        .max_users
        .unwrap_or_else(|| (stage.rate * 10.0).ceil().clamp(100.0, 100_000.0) as u32)
}

fn check_load(load: &Load) -> Result<(), PlanError> {
    let bad_rate = |r: f64| !r.is_finite() || r <= 0.0;
    match load {
        Load::Users { spawn_rate, .. } if bad_rate(*spawn_rate) => {
            Err(plan_err("spawn rate must be a number above 0"))
        }
        Load::Stages(stages) if stages.iter().any(|s| bad_rate(s.spawn_rate)) => Err(plan_err(
            "every stage's spawn_rate must be a number above 0",
        )),
        Load::Arrival(stages) if stages.iter().any(|s| !s.rate.is_finite() || s.rate < 0.0) => {
            Err(plan_err("every arrival stage's rate must be a number ≥ 0"))
        }
        _ => Ok(()),
    }
}

/// Locust's tag rules: with `--tags`, only tagged tasks that match run; `--exclude-tags` wins.
fn keep_task(task_tags: &[String], tags: &[String], exclude: &[String]) -> bool {
    if task_tags.iter().any(|t| exclude.contains(t)) {
        return false;
    }
    tags.is_empty() || task_tags.iter().any(|t| tags.contains(t))
}

fn template(text: &str, feeds: &Feeds, what: &str) -> Result<Template, PlanError> {
    Template::parse(text, feeds).map_err(|e| plan_err(format!("{what}: {e}")))
}

/// A header name: checked now when it has no template, so a typo fails before the run.
fn header_name_template(text: &str, feeds: &Feeds, what: &str) -> Result<Template, PlanError> {
    let t = template(text, feeds, what)?;
    if let Some(s) = t.as_static() {
        http::HeaderName::from_bytes(s.as_bytes())
            .map_err(|_| plan_err(format!("{what}: {s:?} is not a valid header name")))?;
    }
    Ok(t)
}

struct Compiler<'a> {
    feeds: &'a Feeds,
    endpoints: &'a mut Vec<(String, String)>,
    base: Option<&'a BaseUrl>,
}

impl Compiler<'_> {
    fn step(&mut self, step: &mynah_scenario::Step, what: &str) -> Result<StepPlan, PlanError> {
        let r = &step.request;
        let method = http::Method::from_bytes(r.method.as_bytes())
            .map_err(|_| plan_err(format!("{what}: invalid method {:?}", r.method)))?;
        let path = template(&r.path, self.feeds, &format!("{what} path"))?;
        let absolute = r.path.starts_with("http://") || r.path.starts_with("https://");
        if !absolute && self.base.is_none() {
            return Err(plan_err(format!(
                "{what}: path {:?} is relative but no host is set: add `host: http://...` to the scenario or pass --host",
                r.path
            )));
        }
        if !absolute && !r.path.starts_with('/') && !r.path.starts_with("{{") {
            return Err(plan_err(format!(
                "{what}: path {:?} must start with / (or be an absolute http:// URL)",
                r.path
            )));
        }
        let pairs = |map: &std::collections::BTreeMap<String, String>,
                     part: &str,
                     header: bool|
         -> Result<Vec<(Template, Template)>, PlanError> {
            map.iter()
                .map(|(k, v)| {
                    let w = format!("{what} {part}");
                    let key = if header {
                        header_name_template(k, self.feeds, &w)?
                    } else {
                        template(k, self.feeds, &w)?
                    };
                    Ok((key, template(v, self.feeds, &w)?))
                })
                .collect()
        };
        let query = pairs(&r.query, "query", false)?;
        let headers = pairs(&r.headers, "headers", true)?;
        let body = match &r.body {
            None => BodyPlan::None,
            Some(Body::Json(v)) => BodyPlan::Json(
                JsonTemplate::parse(v, self.feeds)
                    .map_err(|e| plan_err(format!("{what} json: {e}")))?,
            ),
            Some(Body::Form(map)) => BodyPlan::Form(pairs(map, "form", false)?),
            Some(Body::Text(t)) => {
                BodyPlan::Text(template(t, self.feeds, &format!("{what} body"))?)
            }
        };
        // Without `name`, requests group under the path as written (templates unrendered), so a
        // random id cannot create one statistics row (and histogram) per value.
        let name = r.name.clone().unwrap_or_else(|| r.path.clone());
        let key = (method.as_str().to_string(), name);
        let endpoint = match self.endpoints.iter().position(|e| *e == key) {
            Some(i) => i,
            None => {
                self.endpoints.push(key);
                self.endpoints.len() - 1
            }
        } as u32;
        let checks = step
            .checks
            .iter()
            .map(|c| {
                Check::compile(c, self.feeds).map_err(|e| plan_err(format!("{what} check: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let has_status_check = checks.iter().any(Check::is_status);
        let extract = step
            .extract
            .iter()
            .map(|(name, e)| {
                Extract::compile(e)
                    .map(|x| (name.clone(), x))
                    .map_err(|e| plan_err(format!("{what} extract {name}: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let static_query: Option<Vec<(&str, &str)>> = query
            .iter()
            .map(|(k, v)| Some((k.as_static()?, v.as_static()?)))
            .collect();
        let static_uri = match (path.as_static(), static_query) {
            (Some(p), Some(q)) => crate::user::static_url(self.base, p, &q),
            _ => None,
        };
        let static_body = match &body {
            BodyPlan::None => Some(bytes::Bytes::new()),
            BodyPlan::Text(t) => t.as_static().map(|s| bytes::Bytes::from(s.to_string())),
            BodyPlan::Json(j) => j
                .as_static()
                .and_then(|v| serde_json::to_vec(v).ok())
                .map(bytes::Bytes::from),
            BodyPlan::Form(_) => None,
        };
        Ok(StepPlan {
            method,
            path,
            query,
            headers,
            body,
            static_uri,
            static_body,
            endpoint,
            checks,
            has_status_check,
            extract,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_url_forms() {
        let b = BaseUrl::parse("http://127.0.0.1:8080").unwrap();
        assert_eq!(b.authority.as_str(), "127.0.0.1:8080");
        assert_eq!(b.prefix, "");
        let b = BaseUrl::parse("https://example.test/api/").unwrap();
        assert_eq!(b.prefix, "/api");
        assert!(BaseUrl::parse("127.0.0.1:8080")
            .unwrap_err()
            .contains("no scheme"));
        assert!(BaseUrl::parse("ftp://x").is_err());
    }

    #[test]
    fn tags_follow_locust() {
        let t = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(keep_task(&t(&[]), &[], &[]));
        assert!(!keep_task(&t(&[]), &t(&["a"]), &[]));
        assert!(keep_task(&t(&["a", "b"]), &t(&["a"]), &[]));
        assert!(!keep_task(&t(&["a", "b"]), &t(&["a"]), &t(&["b"])));
        assert!(!keep_task(&t(&["b"]), &[], &t(&["b"])));
    }
}
