//! Test servers for mynah's integration tests and benchmarks.
//!
//! * [`app`]: a small HTTP API (HTTP/1.1 keep-alive and h2c) with login,
//!   bearer tokens, delays, a serialised route and a latency-accuracy route
//!   whose true percentiles are known ([`app::ACCURACY_TRUTH_MS`]).
//! * [`hostile`]: raw TCP servers that misbehave on purpose (RST, garbage,
//!   slow, endless body, truncated response, silence).
//! * [`mix`]: a known mix of HTTP/1.1 traffic (keep-alive, pipelining, HEAD,
//!   chunked gzip, a 1 MB upload with `Expect: 100-continue`, seeded secrets)
//!   and the nginx locations that serve it, for capture tests.
//! * [`nginx`]: a harness that runs the real nginx binary as an independent
//!   witness and reads back its access log.
//! * [`record`]: makes real recordings for replay tests: sends requests over
//!   real TCP connections with planned timing and returns them as
//!   `mynah_traffic::Exchange`s, to be written as `.har` or `.gor`.
//!
//! Every server runs on its own OS thread with its own tokio runtime, so a
//! test can start it from synchronous or asynchronous code alike, and every
//! handle stops its server when dropped.

pub mod app;
pub mod hostile;
pub mod mix;
pub mod nginx;
pub mod record;
mod util;
