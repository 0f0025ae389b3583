//! A virtual user: its variables, feed rows, random generator and HTTP client, and the loop that
//! runs its tasks (closed model) or the iterations handed to it (open model).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use mynah_scenario::WaitTime;
use mynah_stats::FailureKind;

use crate::check::{CheckFailure, LazyJson};
use crate::client::{self, Client};
use crate::collect::{Clock, Sample, Sink};
use crate::feed::{FeedError, RowId};
use crate::plan::{BodyPlan, Plan, StepPlan};
use crate::template::{Context, RenderError, Template};

/// After a task that could not even be built (a variable whose extraction failed), a user with
/// no wait time pauses this long, so a broken login cannot spin a core recording failures.
const BROKEN_TASK_PAUSE: Duration = Duration::from_secs(1);

/// What every user of a run shares.
pub(crate) struct Shared {
    pub plan: Arc<Plan>,
    pub client: Arc<client::Shared>,
    /// The client of `replay` classes: HTTP/1.1 only, no redirects followed.
    pub recorded_client: Arc<client::Shared>,
    pub sink: Sink,
    pub clock: Clock,
    /// A run-stopping error (a `unique` data feed ran out); the first one wins.
    pub fatal: Mutex<Option<String>>,
    pub fatal_raised: tokio::sync::Notify,
    /// Open model: users waiting for an iteration.
    pub idle: Mutex<Vec<Arc<UserCtl>>>,
    /// Open model: the worst schedule lag (µs) since the collector last took it; an atomic
    /// maximum once per iteration, never a lock.
    pub lag_max_us: AtomicU64,
}

impl Shared {
    pub fn raise_fatal(&self, message: String) {
        let mut f = self.fatal.lock().unwrap_or_else(|p| p.into_inner());
        if f.is_none() {
            *f = Some(message);
        }
        drop(f);
        self.fatal_raised.notify_one();
    }
}

/// How the runner talks to one user.
#[derive(Debug, Default)]
pub(crate) struct UserCtl {
    stop: AtomicBool,
    wake: tokio::sync::Notify,
    /// Open model: scheduled start of the next iteration, in ns since the run's start.
    next: AtomicU64,
}

impl UserCtl {
    /// Asks the user to stop after its current task (a wait is cut short).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Release);
        self.wake.notify_one();
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    /// Open model: hands the user an iteration scheduled at `at_ns` (since the run's start).
    pub fn start_iteration(&self, at_ns: u64) {
        self.next.store(at_ns, Ordering::Release);
        self.wake.notify_one();
    }
}

/// Where extracted variables go.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Scope {
    /// `on_start` / `on_stop`: kept for the user's life.
    User,
    /// A task: kept until the task ends.
    Task,
}

/// Why a task stopped early.
enum Abort {
    /// The request could not be built; already counted as a failure.
    Broken,
    /// The run must stop (fatal error raised).
    Fatal,
}

pub(crate) struct User {
    index: u64,
    class: usize,
    shard: usize,
    shared: Arc<Shared>,
    ctl: Arc<UserCtl>,
    client: Client,
    vars: Vec<(Box<str>, String)>,
    task_vars: Vec<(Box<str>, String)>,
    rows: Vec<Option<RowId>>,
    rng: fastrand::Rng,
}

impl Context for User {
    fn var(&self, name: &str) -> Option<&str> {
        self.task_vars
            .iter()
            .rev()
            .chain(self.vars.iter().rev())
            .find(|(k, _)| &**k == name)
            .map(|(_, v)| v.as_str())
    }

    fn feed_value(&mut self, feed: usize, column: usize) -> Result<&str, FeedError> {
        let feeds = &self.shared.plan.feeds;
        let row = match self.rows.get(feed).copied().flatten() {
            Some(row) => row,
            None => {
                let row = feeds.next_row(feed, &mut self.rng)?;
                if let Some(slot) = self.rows.get_mut(feed) {
                    *slot = Some(row);
                }
                row
            }
        };
        Ok(self.shared.plan.feeds.value(feed, row, column))
    }

    fn user_index(&self) -> u64 {
        self.index
    }

    fn rng(&mut self) -> &mut fastrand::Rng {
        &mut self.rng
    }
}

impl User {
    pub fn new(shared: Arc<Shared>, ctl: Arc<UserCtl>, index: u64, class: usize) -> User {
        let feeds = shared.plan.feeds.len();
        let shard = (index as usize) % shared.sink.shards();
        let client = Client::new(shared.client.clone());
        User {
            index,
            class,
            shard,
            shared,
            ctl,
            client,
            vars: Vec::new(),
            task_vars: Vec::new(),
            rows: vec![None; feeds],
            rng: fastrand::Rng::new(),
        }
    }

    /// Closed model: on_start, then tasks and waits until asked to stop, then on_stop.
    pub async fn run_closed(mut self) {
        let plan = self.shared.plan.clone();
        let class = &plan.classes[self.class];
        if let Some(recorded) = &class.recorded {
            while !self.ctl.stopped() {
                // A session without a single response (the host is down) is not repeated at
                // full speed.
                if !self.play_session(recorded).await && !self.pause(BROKEN_TASK_PAUSE).await {
                    break;
                }
            }
            self.client.close();
            return;
        }
        self.begin_iteration();
        if let Err(Abort::Fatal) = self.run_steps(&class.on_start, Scope::User, None).await {
            return;
        }
        let mut session_left = self.session_tasks(class);
        while !self.ctl.stopped() {
            if session_left == Some(0) {
                // The session is over: it ends like a user does, and a new one begins with a
                // fresh cookie jar, connections and variables (feed rows stay: same user).
                if let Err(Abort::Fatal) = self.new_session(class).await {
                    return;
                }
                session_left = self.session_tasks(class);
                continue;
            }
            session_left = session_left.map(|n| n.saturating_sub(1));
            let task = class.pick_task(&mut self.rng);
            let started = Instant::now();
            self.begin_iteration();
            let outcome = self.run_steps(&task.steps, Scope::Task, None).await;
            let pause = match outcome {
                Err(Abort::Fatal) => return,
                Err(Abort::Broken) if class.wait_time.is_none() => Some(BROKEN_TASK_PAUSE),
                _ => wait_duration(class.wait_time.as_ref(), started, &mut self.rng),
            };
            if let Some(pause) = pause {
                if !self.pause(pause).await {
                    break;
                }
            }
        }
        self.finish(&plan).await;
    }

    /// Open model: on_start, then one task per iteration the runner hands over, until stopped.
    /// The first iteration starts right after on_start; later ones are timed from the moment
    /// the runner scheduled them, so queueing in the generator counts in the latency.
    pub async fn run_open(mut self) {
        let plan = self.shared.plan.clone();
        let class = &plan.classes[self.class];
        if let Some(recorded) = &class.recorded {
            // Each iteration the runner hands over is one recorded session.
            loop {
                self.play_session(recorded).await;
                if self.ctl.stopped() || self.next_iteration().await.is_none() {
                    break;
                }
            }
            self.client.close();
            return;
        }
        self.begin_iteration();
        if let Err(Abort::Fatal) = self.run_steps(&class.on_start, Scope::User, None).await {
            return;
        }
        let mut scheduled = None;
        loop {
            let task = class.pick_task(&mut self.rng);
            self.begin_iteration();
            if let Err(Abort::Fatal) = self.run_steps(&task.steps, Scope::Task, scheduled).await {
                return;
            }
            if self.ctl.stopped() {
                break;
            }
            match self.next_iteration().await {
                Some(at) => scheduled = Some(at),
                None => break,
            }
        }
        self.finish(&plan).await;
    }

    /// A `replay` class: plays one recorded session with a new client (fresh connections and
    /// cookies) and a new session map: its requests as recorded (masked), after their recorded
    /// pauses, with the values the server issued in the recording replaced by the ones the
    /// target issues now.
    ///
    /// Returns whether any request got a response.
    async fn play_session(&mut self, recorded: &crate::recorded::RecordedSessions) -> bool {
        let plan = self.shared.plan.clone();
        let Some(base) = &plan.base else {
            return false;
        };
        let Ok(origin) = format!("{}://{}/", base.scheme, base.authority).parse::<http::Uri>()
        else {
            return false;
        };
        let dest = crate::replay::wire::Destination {
            origin,
            authority: base.authority.as_str().to_string(),
            prefix: base.prefix.clone(),
            keep_host: false,
        };
        let steps = recorded.pick(&mut self.rng);
        self.client = Client::new(self.shared.recorded_client.clone());
        let map = crate::replay::session::SessionMap::new(10_000);
        let mut wire = Vec::new();
        let mut answered = false;
        for step in steps {
            if self.ctl.stopped() {
                return answered;
            }
            if !step.gap.is_zero() && !self.pause(step.gap).await {
                return answered;
            }
            let mut request = step.request.clone();
            map.apply(&mut request);
            wire.clear();
            crate::replay::wire::serialize(&request, &dest, &mut wire);
            let method = request.method.to_ascii_uppercase();
            let head = method == "HEAD";
            let idempotent = matches!(
                method.as_str(),
                "GET" | "HEAD" | "OPTIONS" | "TRACE" | "PUT" | "DELETE"
            );
            let keep = if step.recorded.is_some() { 1 << 20 } else { 0 };
            let started = Instant::now();
            let result = self
                .client
                .send_wire(&dest.origin, &wire, head, idempotent, keep)
                .await;
            let ended = Instant::now();
            let at = self.shared.clock.offset(ended);
            let latency_us = ended.saturating_duration_since(started).as_micros() as u64;
            let sample = match result {
                Ok(response) => {
                    answered = true;
                    let recorded_status = step.recorded.as_ref().map(|r| r.status);
                    let failure = (response.status >= 400
                        && recorded_status != Some(response.status))
                    .then(|| {
                        Box::new((FailureKind::Status, format!("status {}", response.status)))
                    });
                    if let Some(r) = &step.recorded {
                        map.learn(r, &crate::replay::to_traffic(&response));
                    }
                    Sample {
                        endpoint: step.endpoint,
                        at,
                        latency_us: Some(latency_us),
                        bytes: response.bytes_received,
                        failure,
                    }
                }
                Err(f) => Sample {
                    endpoint: step.endpoint,
                    at,
                    latency_us: (f.kind != FailureKind::Connect).then_some(latency_us),
                    bytes: 0,
                    failure: Some(Box::new((f.kind, f.message))),
                },
            };
            self.shared.sink.push(self.shard, sample);
        }
        answered
    }

    /// Tasks of the next session, when the class has a session length.
    fn session_tasks(&mut self, class: &crate::plan::ClassPlan) -> Option<u64> {
        class
            .session_length
            .as_ref()
            .map(|s| s.tasks_at(self.rng.f64()))
    }

    /// Ends the current session (`on_stop`) and starts a new one (`on_start`) with a new client.
    async fn new_session(&mut self, class: &crate::plan::ClassPlan) -> Result<(), Abort> {
        self.begin_iteration();
        if let Err(Abort::Fatal) = self.run_steps(&class.on_stop, Scope::User, None).await {
            return Err(Abort::Fatal);
        }
        self.client = Client::new(self.shared.client.clone());
        self.vars.clear();
        self.begin_iteration();
        self.run_steps(&class.on_start, Scope::User, None).await
    }

    /// Open model: waits idle for the runner to hand over an iteration; its scheduled start,
    /// or `None` when the user is stopped instead.
    async fn next_iteration(&self) -> Option<Instant> {
        self.shared
            .idle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(self.ctl.clone());
        self.ctl.wake.notified().await;
        if self.ctl.stopped() {
            return None;
        }
        let at = self.ctl.next.load(Ordering::Acquire);
        let at = self.shared.clock.start + Duration::from_nanos(at);
        let lag = Instant::now().saturating_duration_since(at).as_micros() as u64;
        self.shared.lag_max_us.fetch_max(lag, Ordering::Relaxed);
        Some(at)
    }

    async fn finish(&mut self, plan: &Plan) {
        let class = &plan.classes[self.class];
        self.begin_iteration();
        let _ = self.run_steps(&class.on_stop, Scope::User, None).await;
        self.client.close();
    }

    /// Sleeps unless asked to stop first; `false` when stopped.
    ///
    /// tokio's timer ticks every millisecond and rounds up, so even a zero sleep lasts about a
    /// millisecond: pauses under half a tick are not slept at all (the task only yields), which
    /// keeps the many near-zero think times of real sessions (a `quantiles` wait) near zero.
    async fn pause(&self, d: Duration) -> bool {
        if self.ctl.stopped() {
            return false;
        }
        if d < Duration::from_micros(500) {
            tokio::task::yield_now().await;
            return !self.ctl.stopped();
        }
        tokio::select! {
            _ = tokio::time::sleep(d) => {}
            _ = self.ctl.wake.notified() => {}
        }
        !self.ctl.stopped()
    }

    /// A new task iteration: task variables go, and rows of non-`unique` feeds are drawn anew.
    fn begin_iteration(&mut self) {
        self.task_vars.clear();
        let feeds = &self.shared.plan.feeds;
        for (i, row) in self.rows.iter_mut().enumerate() {
            if !feeds.is_unique(i) {
                *row = None;
            }
        }
    }

    async fn run_steps(
        &mut self,
        steps: &[StepPlan],
        scope: Scope,
        mut scheduled: Option<Instant>,
    ) -> Result<(), Abort> {
        for step in steps {
            self.step(step, scope, scheduled.take()).await?;
        }
        Ok(())
    }

    async fn step(
        &mut self,
        step: &StepPlan,
        scope: Scope,
        scheduled: Option<Instant>,
    ) -> Result<(), Abort> {
        let request = match self.build(step) {
            Ok(r) => r,
            Err(BuildError::Render(RenderError::Feed(e))) => {
                self.shared.raise_fatal(e.message);
                return Err(Abort::Fatal);
            }
            Err(BuildError::Render(RenderError::MissingVar(name))) => {
                self.fail_now(
                    step,
                    FailureKind::Check,
                    format!("variable `{name}` is not set (its extraction failed earlier)"),
                );
                return Err(Abort::Broken);
            }
            Err(BuildError::Invalid(message)) => {
                self.fail_now(step, FailureKind::Protocol, message);
                return Err(Abort::Broken);
            }
        };
        let started = scheduled.unwrap_or_else(Instant::now);
        // Inline, not boxed: the client keeps this future small (its rare large parts are
        // boxed inside), so a copy into the heap per request would cost more than it saves.
        let result = self.client.send(request).await;
        let ended = Instant::now();
        let latency = ended.saturating_duration_since(started);
        let latency_us = latency.as_micros() as u64;
        let at = self.shared.clock.offset(ended);
        let response = match result {
            Ok(r) => r,
            Err(f) => {
                let latency_us = (f.kind != FailureKind::Connect).then_some(latency_us);
                self.push(step, at, latency_us, 0, Some((f.kind, f.message)));
                return Ok(());
            }
        };
        let mut failure: Option<(FailureKind, String)> = None;
        if !step.has_status_check && response.status >= 400 {
            failure = Some((FailureKind::Status, format!("status {}", response.status)));
        }
        let mut json = LazyJson::default();
        for check in &step.checks {
            if failure.is_some() {
                break;
            }
            match check.evaluate(&response, latency, &mut json, self) {
                Ok(()) => {}
                Err(CheckFailure::Failed(message)) => {
                    let kind = if check.is_status() {
                        FailureKind::Status
                    } else {
                        FailureKind::Check
                    };
                    failure = Some((kind, message));
                }
                Err(CheckFailure::Render(RenderError::Feed(e))) => {
                    self.shared.raise_fatal(e.message);
                    return Err(Abort::Fatal);
                }
                Err(CheckFailure::Render(RenderError::MissingVar(name))) => {
                    failure = Some((
                        FailureKind::Check,
                        format!("variable `{name}` is not set (its extraction failed earlier)"),
                    ));
                }
            }
        }
        for (name, extract) in &step.extract {
            match extract.apply(&response, &mut json) {
                Some(value) => {
                    let vars = match scope {
                        Scope::User => &mut self.vars,
                        Scope::Task => &mut self.task_vars,
                    };
                    match vars.iter_mut().find(|(k, _)| &**k == name) {
                        Some(slot) => slot.1 = value,
                        None => vars.push((name.as_str().into(), value)),
                    }
                }
                None => {
                    failure.get_or_insert_with(|| {
                        (
                            FailureKind::Check,
                            format!("could not extract `{name}` ({})", extract.describe()),
                        )
                    });
                }
            }
        }
        self.push(step, at, Some(latency_us), response.bytes_received, failure);
        Ok(())
    }

    fn fail_now(&mut self, step: &StepPlan, kind: FailureKind, message: String) {
        let at = self.shared.clock.offset(Instant::now());
        self.push(step, at, None, 0, Some((kind, message)));
    }

    fn push(
        &self,
        step: &StepPlan,
        at: u64,
        latency_us: Option<u64>,
        bytes: u64,
        failure: Option<(FailureKind, String)>,
    ) {
        self.shared.sink.push(
            self.shard,
            Sample {
                endpoint: step.endpoint,
                at,
                latency_us,
                bytes,
                failure: failure.map(Box::new),
            },
        );
    }

    fn render(&mut self, t: &Template, out: &mut String) -> Result<(), RenderError> {
        match t.as_static() {
            Some(s) => {
                out.push_str(s);
                Ok(())
            }
            None => t.render(self, out),
        }
    }

    fn build(&mut self, step: &StepPlan) -> Result<client::Request, BuildError> {
        let plan = self.shared.plan.clone();
        let uri = match &step.static_uri {
            Some(uri) => uri.clone(),
            None => {
                let mut path = String::new();
                self.render(&step.path, &mut path)?;
                let mut url = String::with_capacity(path.len() + 32);
                join_url(plan.base.as_ref(), &path, &mut url).map_err(BuildError::Invalid)?;
                let mut sep = if url.contains('?') { '&' } else { '?' };
                let mut buf = String::new();
                for (k, v) in &step.query {
                    url.push(sep);
                    sep = '&';
                    buf.clear();
                    self.render(k, &mut buf)?;
                    encode_component(&buf, &mut url);
                    url.push('=');
                    buf.clear();
                    self.render(v, &mut buf)?;
                    encode_component(&buf, &mut url);
                }
                url.parse()
                    .map_err(|e| BuildError::Invalid(format!("invalid request URL: {e}")))?
            }
        };

        let mut headers = http::HeaderMap::new();
        for (k, v) in plan.headers.iter().chain(step.headers.iter()) {
            let (name, value) = self.header(k, v)?;
            headers.insert(name, value);
        }
        if let Some(ct) = step.body.content_type() {
            headers.entry(http::header::CONTENT_TYPE).or_insert(ct);
        }
        let body = match (&step.static_body, &step.body) {
            (Some(body), _) => body.clone(),
            (None, BodyPlan::None) => Bytes::new(),
            (None, BodyPlan::Text(t)) => {
                let mut s = String::new();
                self.render(t, &mut s)?;
                Bytes::from(s)
            }
            (None, BodyPlan::Json(t)) => {
                let value = t.render(self)?;
                Bytes::from(serde_json::to_vec(&value).unwrap_or_default())
            }
            (None, BodyPlan::Form(pairs)) => {
                let mut s = String::new();
                let mut buf = String::new();
                for (i, (k, v)) in pairs.iter().enumerate() {
                    if i > 0 {
                        s.push('&');
                    }
                    buf.clear();
                    self.render(k, &mut buf)?;
                    encode_component(&buf, &mut s);
                    s.push('=');
                    buf.clear();
                    self.render(v, &mut buf)?;
                    encode_component(&buf, &mut s);
                }
                Bytes::from(s)
            }
        };
        Ok(client::Request {
            method: step.method.clone(),
            uri,
            headers,
            body,
        })
    }

    fn header(
        &mut self,
        k: &Template,
        v: &Template,
    ) -> Result<(http::HeaderName, http::HeaderValue), BuildError> {
        let name = match k.as_static() {
            Some(s) => http::HeaderName::from_bytes(s.as_bytes()),
            None => {
                let mut s = String::new();
                self.render(k, &mut s)?;
                http::HeaderName::from_bytes(s.as_bytes())
            }
        }
        .map_err(|_| BuildError::Invalid("invalid header name".into()))?;
        let mut s = String::new();
        self.render(v, &mut s)?;
        let value = http::HeaderValue::from_str(&s)
            .map_err(|_| BuildError::Invalid(format!("invalid value for header {name}")))?;
        Ok((name, value))
    }
}

enum BuildError {
    Render(RenderError),
    Invalid(String),
}

impl From<RenderError> for BuildError {
    fn from(e: RenderError) -> Self {
        BuildError::Render(e)
    }
}

/// Joins a rendered path to the base URL (or takes it as is when absolute), percent-encoding
/// what a URL cannot hold.
pub(crate) fn join_url(
    base: Option<&crate::plan::BaseUrl>,
    path: &str,
    url: &mut String,
) -> Result<(), String> {
    if path.starts_with("http://") || path.starts_with("https://") {
        encode_path(path, url);
    } else if let Some(base) = base {
        url.push_str(base.scheme.as_str());
        url.push_str("://");
        url.push_str(base.authority.as_str());
        url.push_str(&base.prefix);
        if !path.starts_with('/') {
            url.push('/');
        }
        encode_path(path, url);
    } else {
        return Err(format!("path {path:?} is relative and no host is set"));
    }
    Ok(())
}

/// The URL of a request whose path and query have no template, built once at plan time.
pub(crate) fn static_url(
    base: Option<&crate::plan::BaseUrl>,
    path: &str,
    query: &[(&str, &str)],
) -> Option<http::Uri> {
    let mut url = String::new();
    join_url(base, path, &mut url).ok()?;
    let mut sep = if url.contains('?') { '&' } else { '?' };
    for (k, v) in query {
        url.push(sep);
        sep = '&';
        encode_component(k, &mut url);
        url.push('=');
        encode_component(v, &mut url);
    }
    url.parse().ok()
}

/// The pause after a task, per Locust's `wait_time` meanings.
fn wait_duration(
    wait: Option<&WaitTime>,
    task_started: Instant,
    rng: &mut fastrand::Rng,
) -> Option<Duration> {
    let secs = |s: f64| Duration::try_from_secs_f64(s.max(0.0)).unwrap_or(Duration::ZERO);
    match wait? {
        &WaitTime::Between(a, b) => Some(secs(a + rng.f64() * (b - a))),
        &WaitTime::Constant(c) => Some(secs(c)),
        &WaitTime::ConstantPacing(p) => Some(secs(p).saturating_sub(task_started.elapsed())),
        &WaitTime::ConstantThroughput(t) if t > 0.0 => {
            Some(secs(1.0 / t).saturating_sub(task_started.elapsed()))
        }
        WaitTime::ConstantThroughput(_) => None,
        w @ WaitTime::Quantiles(_) => w.quantile_at(rng.f64()).map(secs),
    }
}

/// Percent-encodes what may not appear in a URL as is (spaces, quotes, non-ASCII...), keeping
/// `/`, `?`, `&`, `=`, `%` and the other characters a path or query may hold, like a browser.
fn encode_path(s: &str, out: &mut String) {
    for b in s.bytes() {
        let keep = b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/?%#[]".contains(&b);
        if keep {
            out.push(b as char);
        } else {
            push_pct(b, out);
        }
    }
}

/// Percent-encodes a query or form key or value: everything but the unreserved characters.
fn encode_component(s: &str, out: &mut String) {
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            push_pct(b, out);
        }
    }
}

fn push_pct(b: u8, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.push('%');
    out.push(HEX[usize::from(b >> 4)] as char);
    out.push(HEX[usize::from(b & 15)] as char);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding() {
        let mut s = String::new();
        encode_path("/a b/é?x=1&y=\"q\"", &mut s);
        assert_eq!(s, "/a%20b/%C3%A9?x=1&y=%22q%22");
        let mut s = String::new();
        encode_component("a b&c=d/é", &mut s);
        assert_eq!(s, "a%20b%26c%3Dd%2F%C3%A9");
    }

    #[test]
    fn wait_times_follow_locust() {
        let mut rng = fastrand::Rng::with_seed(1);
        let now = Instant::now();
        assert_eq!(wait_duration(None, now, &mut rng), None);
        assert_eq!(
            wait_duration(Some(&WaitTime::Constant(2.0)), now, &mut rng),
            Some(Duration::from_secs(2))
        );
        for _ in 0..100 {
            let d = wait_duration(Some(&WaitTime::Between(1.0, 3.0)), now, &mut rng).unwrap();
            assert!(d >= Duration::from_secs(1) && d <= Duration::from_secs(3));
        }
        let long_ago = Instant::now() - Duration::from_secs(10);
        assert_eq!(
            wait_duration(Some(&WaitTime::ConstantPacing(5.0)), long_ago, &mut rng),
            Some(Duration::ZERO)
        );
        let d = wait_duration(Some(&WaitTime::ConstantThroughput(0.5)), now, &mut rng).unwrap();
        assert!(d <= Duration::from_secs(2) && d > Duration::from_millis(1900));
        // Quantiles: 90% of the pauses under 0.1 s, the rest up to 5 s.
        let q = WaitTime::Quantiles(
            [
                0.0, 0.02, 0.04, 0.06, 0.08, 0.09, 0.09, 0.09, 0.09, 0.1, 5.0,
            ]
            .to_vec(),
        );
        let draws: Vec<Duration> = (0..10_000)
            .map(|_| wait_duration(Some(&q), now, &mut rng).unwrap())
            .collect();
        let short = draws
            .iter()
            .filter(|d| **d <= Duration::from_millis(100))
            .count();
        assert!((8_800..=9_200).contains(&short), "{short}");
        assert!(draws.iter().all(|d| *d <= Duration::from_secs(5)));
    }
}
