//! The validated scenario model: what a run needs, with defaults applied.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

/// A whole scenario file after parsing and validation.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    /// Base URL every request path is joined to.
    pub host: Option<String>,
    /// Headers sent with every request.
    pub headers: BTreeMap<String, String>,
    /// Connect and request timeouts.
    pub timeouts: Timeouts,
    /// Redirect policy.
    pub redirects: Redirects,
    /// Data feeds by name.
    pub data: BTreeMap<String, DataFeed>,
    /// User classes (at least one).
    pub users: Vec<UserClass>,
    /// Load shape, if the file gives one (the CLI may supply it instead).
    pub load: Option<Load>,
    /// Threshold expressions, kept verbatim.
    pub thresholds: Vec<String>,
}

/// Network timeouts; `None` means the runner's default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Timeouts {
    /// Time allowed to open a connection.
    pub connect: Option<Duration>,
    /// Time allowed for a whole request.
    pub request: Option<Duration>,
}

/// Redirect policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redirects {
    /// Whether 3xx responses are followed.
    pub follow: bool,
    /// Maximum redirects followed per request; `None` means the runner's default.
    pub max: Option<u32>,
}

impl Default for Redirects {
    fn default() -> Self {
        Redirects {
            follow: true,
            max: None,
        }
    }
}

/// A CSV data feed.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataFeed {
    /// Path of the CSV file, relative to the scenario file.
    pub csv: String,
    /// How rows are handed out.
    #[serde(default)]
    pub mode: FeedMode,
}

/// How a data feed hands rows to users.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FeedMode {
    /// Rows in file order, wrapping around.
    #[default]
    Sequential,
    /// A random row each time.
    Random,
    /// Each row at most once; the feed is exhausted afterwards.
    Unique,
}

/// A class of simulated users.
#[derive(Debug, Clone, PartialEq)]
pub struct UserClass {
    /// Class name, used in reports.
    pub name: String,
    /// How many users of this class are spawned.
    pub spawn: Spawn,
    /// Pause between tasks; `None` means no pause.
    pub wait_time: Option<WaitTime>,
    /// Tasks per session: after that many tasks the user ends its session (`on_stop`, then a
    /// new cookie jar, connections and variables, then `on_start` again). `None`: one session
    /// for the user's life, as in Locust.
    pub session_length: Option<SessionLength>,
    /// Users of the class play recorded sessions instead of tasks (`tasks`, `on_start`,
    /// `on_stop`, `wait_time` and `session_length` are then empty).
    pub replay: Option<ReplayClass>,
    /// Steps run once when a user starts.
    pub on_start: Vec<Step>,
    /// Steps run once when a user stops.
    pub on_stop: Vec<Step>,
    /// Tasks picked by weight (at least one).
    pub tasks: Vec<Task>,
}

/// How the user count of a class is decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spawn {
    /// Share of the total users, relative to other weighted classes.
    Weight(u32),
    /// Exactly this many users, regardless of the total.
    FixedCount(u32),
}

/// Pause between tasks, in seconds.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WaitTime {
    /// Uniformly random between the two bounds.
    Between(f64, f64),
    /// Always this long.
    Constant(f64),
    /// So that each task starts this long after the previous one started.
    ConstantPacing(f64),
    /// So that the user runs this many tasks per second.
    ConstantThroughput(f64),
    /// Drawn from an empirical distribution given by evenly spaced quantiles (the first is the
    /// minimum, the last the maximum): a uniform draw interpolated between neighbours. What
    /// `mynah synth` writes, because recorded think times are far from uniform.
    Quantiles(Vec<f64>),
}

/// A class whose users play recorded sessions (`replay: { file, session_key, pick }`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayClass {
    /// The recording, relative to the scenario file (any format mynah reads).
    pub file: String,
    /// How sessions are told apart: `auto`, `cookie:NAME`, `header:NAME` or `client-ip`.
    pub session_key: String,
    /// Which session a user plays next.
    pub pick: Pick,
}

/// Which recorded session a user plays next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Pick {
    /// Any, at random.
    #[default]
    Random,
    /// Each in turn, in recorded order, shared by the class's users.
    Sequential,
}

/// How many tasks a session of a user runs (`session_length`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionLength {
    /// Always this many tasks.
    Constant(f64),
    /// Drawn like a `quantiles` wait time (evenly spaced quantiles, minimum first), rounded to
    /// a whole number of tasks, at least 1.
    Quantiles(Vec<f64>),
}

impl SessionLength {
    /// The tasks of one session for the uniform value `u` in `[0, 1)`.
    pub fn tasks_at(&self, u: f64) -> u64 {
        let x = match self {
            SessionLength::Constant(n) => *n,
            SessionLength::Quantiles(q) => {
                WaitTime::Quantiles(q.clone()).quantile_at(u).unwrap_or(1.0)
            }
        };
        if x.is_finite() {
            x.round().max(1.0) as u64
        } else {
            1
        }
    }
}

/// Most values in a `quantiles` wait time.
pub const MAX_WAIT_QUANTILES: usize = 1001;

impl WaitTime {
    /// A pause drawn from `Quantiles` for the uniform value `u` in `[0, 1)`; `None` for the
    /// other kinds or no values.
    pub fn quantile_at(&self, u: f64) -> Option<f64> {
        let WaitTime::Quantiles(q) = self else {
            return None;
        };
        let last = q.len().checked_sub(1)?;
        let x = u.clamp(0.0, 1.0) * last as f64;
        let i = (x.floor() as usize).min(last);
        let j = (i + 1).min(last);
        Some(q[i] + (q[j] - q[i]) * (x - i as f64))
    }
}

/// A task: one request or a sequence of steps, picked by weight.
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    /// Name (defaults to `METHOD path` of the first request).
    pub name: String,
    /// Relative pick weight (at least 1).
    pub weight: u32,
    /// Tags for `--tags` / `--exclude-tags` filtering.
    pub tags: Vec<String>,
    /// The steps run each time the task is picked.
    pub body: TaskBody,
}

/// What a task runs.
#[derive(Debug, Clone, PartialEq)]
pub enum TaskBody {
    /// A single request.
    Request(Step),
    /// Steps run in order; extracted variables flow to later steps.
    Sequence(Vec<Step>),
}

impl TaskBody {
    /// The steps in run order.
    pub fn steps(&self) -> &[Step] {
        match self {
            TaskBody::Request(step) => std::slice::from_ref(step),
            TaskBody::Sequence(steps) => steps,
        }
    }
}

/// One request with its checks and extractions.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// The request to send.
    pub request: Request,
    /// Checks on the response; any failure marks the request failed.
    pub checks: Vec<Check>,
    /// Variables taken from the response for later steps.
    pub extract: BTreeMap<String, Extract>,
}

/// An HTTP request template (strings may contain `{{ ... }}`).
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// HTTP method, upper case.
    pub method: String,
    /// Path (or absolute URL) of the request.
    pub path: String,
    /// Query parameters.
    pub query: BTreeMap<String, String>,
    /// Extra headers.
    pub headers: BTreeMap<String, String>,
    /// Request body, if any.
    pub body: Option<Body>,
    /// Name under which statistics are grouped (defaults to the path).
    pub name: Option<String>,
}

/// A request body.
#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    /// Serialized as JSON.
    Json(serde_json::Value),
    /// Sent as `application/x-www-form-urlencoded`.
    Form(BTreeMap<String, String>),
    /// Sent verbatim.
    Text(String),
}

/// A check on a response.
#[derive(Debug, Clone, PartialEq)]
pub enum Check {
    /// Status must fall in one of these inclusive ranges.
    Status(Vec<StatusRange>),
    /// Body must contain this text.
    BodyContains(String),
    /// Body must match this regex.
    BodyMatches(String),
    /// A JSON path must (or must not) exist.
    JsonExists {
        /// JSON path, starting with `$`.
        path: String,
        /// Whether the path must exist.
        exists: bool,
    },
    /// A JSON path must equal a value.
    JsonEquals {
        /// JSON path, starting with `$`.
        path: String,
        /// The expected value.
        equals: serde_json::Value,
    },
    /// A header must be present and match a regex.
    HeaderMatches {
        /// Header name.
        header: String,
        /// Regex the value must match.
        matches: String,
    },
    /// The request must complete within this time.
    MaxLatency(Duration),
}

/// An inclusive range of HTTP status codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusRange {
    /// Lowest accepted status.
    pub min: u16,
    /// Highest accepted status.
    pub max: u16,
}

/// Where an extracted variable comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Extract {
    /// A JSON path into the response body.
    Json(String),
    /// The first capture group of a regex over the body.
    Regex(String),
    /// A response header.
    Header(String),
    /// A cookie set by the response.
    Cookie(String),
}

/// The load shape.
#[derive(Debug, Clone, PartialEq)]
pub enum Load {
    /// A fixed user count, ramped up at `spawn_rate` users per second.
    Users {
        /// Target user count.
        users: u32,
        /// Users started per second while ramping.
        spawn_rate: f64,
        /// Run length; `None` means until stopped.
        run_time: Option<Duration>,
    },
    /// Closed model: user count changes stage by stage.
    Stages(Vec<Stage>),
    /// Open model: arrival rate changes stage by stage.
    Arrival(Vec<ArrivalStage>),
}

/// One stage of a closed-model load.
#[derive(Debug, Clone, PartialEq)]
pub struct Stage {
    /// How long the stage lasts.
    pub duration: Duration,
    /// Target user count.
    pub users: u32,
    /// Users started or stopped per second to reach the target.
    pub spawn_rate: f64,
}

/// One stage of an open-model load.
#[derive(Debug, Clone, PartialEq)]
pub struct ArrivalStage {
    /// How long the stage lasts.
    pub duration: Duration,
    /// New task iterations started per second.
    pub rate: f64,
    /// Cap on concurrently active users; `None` means the runner's default.
    pub max_users: Option<u32>,
}
