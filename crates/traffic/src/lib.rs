//! Captured HTTP traffic for mynah: the [`Exchange`] model and the formats it comes in.
//!
//! Readers turn `.gor`, HAR and pcap/pcapng files into exchanges in request-time order, with bounded
//! memory whatever the file size, and say exactly what they could not read: incomplete exchanges are
//! kept and marked, skipped traffic is counted by reason, corrupt input is an error that names the
//! byte offset or record. Writers produce `.gor` that GoReplay reads and HAR 1.2.
//!
//! This crate is pure and synchronous: it does no network I/O and sets no policy.

pub mod decode;
pub mod error;
pub mod gor;
pub mod har;
pub mod http1;
pub mod merge;
pub mod model;
pub mod order;
pub mod pcap;
pub mod pipeline;
pub mod sink;
pub mod source;
pub mod summary;
pub mod tcp;
pub mod wire;

pub use error::{Location, ReadError};
pub use merge::Merge;
pub use model::{
    BodyForm, ConnectionInfo, Exchange, Header, Headers, Incomplete, Nanos, Request, Response,
    Timing, Version,
};
pub use pipeline::{Pipeline, PipelineError, PipelineOptions, PipelineReport};
pub use sink::{ExchangeWriter, Output};
pub use source::{open, ExchangeReader, Format, ReadOptions, ReadReport};
pub use summary::Summary;
