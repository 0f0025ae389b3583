//! Capturing live HTTP traffic, the first step of mynah's workflow.
//!
//! Two ways in, as users need them: [`sniff`] reads packets from a network interface through
//! libpcap (no change to the application; needs root or CAP_NET_RAW), and [`proxy`] is a recording
//! reverse proxy (works behind TLS termination and needs no privileges). Both hand their exchanges
//! to the same traffic pipeline and writers as `mynah convert`, so filtering and masking happen
//! before anything reaches disk.

pub mod proxy;
#[cfg(feature = "live")]
pub mod sniff;
