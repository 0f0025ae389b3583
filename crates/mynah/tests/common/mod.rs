//! Helpers shared by the integration tests that drive the `mynah` binary on the shared captures.
// Each test file uses a different subset.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Output};

/// The path of a shared capture, or a clear failure when `../shared` is not beside the checkout.
pub fn traffic(file: &str) -> String {
    let p = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/data/traffic"
    ))
    .join(file);
    assert!(
        p.is_file(),
        "shared capture missing: {} (a checkout of mynah needs ../shared beside it)",
        p.display()
    );
    p.to_str().unwrap().to_string()
}

/// Runs the binary and returns its output, whatever its exit code.
pub fn mynah(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mynah"))
        .args(args)
        .output()
        .expect("run mynah")
}

/// Runs the binary and fails the test unless it succeeds.
pub fn ok(args: &[&str]) -> Output {
    let out = mynah(args);
    assert!(
        out.status.success(),
        "mynah {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}
