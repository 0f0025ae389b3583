//! The load engine of mynah: it turns a validated [`mynah_scenario::Scenario`] into virtual
//! users that send real HTTP requests, shapes the load (closed-model stages or open-model
//! arrival rates), and records every outcome into [`mynah_stats::RunStats`].
//!
//! The pieces, in the order data flows through them:
//! - [`plan`]: the scenario compiled once before the run (templates parsed, regexes and JSON
//!   paths compiled, data feeds loaded, tags applied), so mistakes stop the run before it starts;
//! - [`template`], [`feed`], [`check`]: what a virtual user evaluates for each request;
//! - [`client`]: a per-user HTTP client owning its own connections (hyper at connection level,
//!   rustls, HTTP/1.1 keep-alive and HTTP/2);
//! - [`runner`]: user lifecycles and load shapes, the stop protocol, and the collector that
//!   folds samples into statistics off the hot path.

pub mod check;
pub mod client;
pub mod feed;
pub mod plan;
pub mod recorded;
pub mod replay;
pub mod runner;
pub mod template;

mod collect;
mod user;

pub use plan::{Plan, PlanError, PlanOptions};
pub use runner::{
    run, run_controlled, Observer, Progress, RunControl, RunOptions, RunOutcome, UsersChange,
};
