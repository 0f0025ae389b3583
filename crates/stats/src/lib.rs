//! Run statistics for mynah: per-endpoint exact latency histograms, failures by kind, one-second
//! time series, merging, thresholds and the reports built from them (Locust CSV, summary JSON, JUnit).
//!
//! The load loop records into [`RunStats`] and does nothing else on the hot path; everything else
//! (percentiles, reports, thresholds) reads a finished or snapshotted `RunStats`.

pub mod report;
pub mod stats;
pub mod threshold;

pub use stats::{EndpointStats, FailureKind, RunStats};
pub use threshold::{Threshold, ThresholdError, ThresholdResult};
