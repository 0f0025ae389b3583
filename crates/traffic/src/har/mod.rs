//! HAR files (HTTP Archive 1.1, 1.2 and the 1.3 draft, plain or JSONP-wrapped as HARP): reading
//! them as exchanges and writing exchanges as HAR 1.2.
//!
//! Reading streams, with memory bounded by one entry plus the ordering window whatever the file
//! size: a parser thread scans the outer structure (`{"log": {"entries": [`) byte by byte, hands
//! each entry's bytes to serde_json whole, converts it and sends it through a bounded channel;
//! [`HarReader`] puts the exchanges in request-start order. A UTF-8 BOM and a JSONP callback
//! (`onInputData({...});`) are removed on the way. Invalid JSON is reported at the line and
//! column serde_json would give for the whole file; an entry that cannot be converted is a
//! recoverable error at the entry's own line and column.
//!
//! Writing streams too: [`HarWriter`] writes each exchange as one entry as it comes.
//!
//! HAR holds decoded bodies, so exchanges read from third-party HAR files have
//! [`BodyForm::Decoded`](crate::model::BodyForm::Decoded) bodies. Files mynah writes carry
//! underscore extensions (allowed by the spec; see [`HarWriter`]) with what HAR cannot say —
//! wire bodies, exact header bytes, the request target, interim responses, nanosecond timing —
//! so reading them back gives exactly the exchanges written.

mod entry;
mod input;
mod json;
mod read;
mod scan;
mod text;
mod write;

pub use read::{HarReader, MAX_ENTRY_BYTES, ORDER_WINDOW, ORDER_WINDOW_BYTES};
pub use write::HarWriter;

#[cfg(test)]
mod tests;
