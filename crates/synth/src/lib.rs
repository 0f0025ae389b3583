//! Workload synthesis for mynah: learn a workload from recorded traffic and write it out as a
//! runnable mynah scenario, CSV data feeds and a Locust file, and measure how faithful a
//! replay is ([`fidelity`]).
//!
//! # Passes
//!
//! 1. [`TemplateLearner`] reads every request and learns endpoint templates
//!    (`GET /users/{user_id}`): identifier-looking segments (numbers, UUIDs, hex ids, dates,
//!    slugs, masked pseudonyms) and high-cardinality positions become placeholders named after
//!    the preceding segment; query parameters whose values vary become variables. Endpoints
//!    under `min_share` of the requests are merged into a catch-all that replays recorded
//!    examples, so nothing observed disappears from the mix.
//! 2. [`WorkloadBuilder`] reads the exchanges again, in order, and builds sessions (by a
//!    [`SessionKey`], closed after an idle gap), user classes (anonymous / authenticated, split
//!    by client kind when a kind is common and behaves differently), per-class endpoint mixes,
//!    first-order transitions with start and end states, think-time and session-length samples,
//!    login flows, and per-endpoint data pools.
//!
//! Both passes use bounded memory whatever the recording's size; the bounds are documented on
//! each module's constants.
//!
//! # How the order of requests is expressed
//!
//! A mynah user picks a task at random by weight, then waits `wait_time`, forever: there is no
//! notion of a session ending or of a next-task distribution. A full Markov chain therefore
//! cannot be replayed as such, and whole-session sequences would replay every session's
//! requests without think time between them. The generated scenario uses **frequent
//! fragments**: when B follows A in at least 60% of A's outgoing transitions (and at least 3
//! times), the pair becomes a two-step `sequence` task weighted by the pair's count (steps of a
//! sequence run back to back, which fits the typical page-then-subrequest pairs); every other
//! request becomes a single-request task weighted by its remaining count. Each recorded request
//! is counted once, so each class's endpoint mix is the recorded one; the chain itself (top
//! transitions, start and end states) and the session-length distribution are written as
//! comments for reference and available in [`ClassModel`]. `wait_time` is `between` the p10
//! and p90 of the recorded gaps between a response and the session's next request (`constant`
//! when they coincide).
//!
//! # Secrets
//!
//! The model only sees what it is given: run the exchanges through the masking pipeline
//! (`mynah_traffic::Pipeline`) first. Recorded credentials are never written as headers: the
//! login request is replayed in `on_start` with values from `accounts.csv` (masked values, to be
//! replaced by real test accounts), tokens are extracted from its response, and cookies are
//! left to the runner's cookie jar.

#![warn(missing_docs)]

pub mod fidelity;
mod model;
pub mod sample;
pub mod templates;
mod write;

pub use model::{
    is_session_cookie, learn, BodyModel, BodyPiece, ClassModel, ClientKind, Column, ColumnSource,
    EndpointData, LoginKind, OtherMethod, SessionKey, SynthOptions, TaskId, Workload,
    WorkloadBuilder, MAX_EVENTS, MAX_EXAMPLES, MAX_LEAVES, MAX_ROWS, MAX_TRANSITIONS, RESERVOIR,
};
pub use templates::{
    Endpoint, EndpointId, Matched, QueryParam, Segment, TemplateLearner, Templates,
};
pub use write::{WriteOptions, MAX_CSV_ROWS};

#[cfg(test)]
mod tests;
