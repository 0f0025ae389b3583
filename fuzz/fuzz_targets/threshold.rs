//! Threshold expressions on arbitrary UTF-8 text: parse, and evaluate what parses on an empty run
//! (no requests: every threshold must fail cleanly, never panic).
#![no_main]

use libfuzzer_sys::fuzz_target;
use mynah_stats::{RunStats, Threshold};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Threshold::parse(text) {
        Ok(t) => {
            let _ = t.to_string();
            let result = t.evaluate(&RunStats::new(0));
            let _ = mynah_stats::threshold::junit_xml(&[result], 0.0);
        }
        Err(e) => {
            // The column points into the expression (1-based, in characters).
            assert!(e.column >= 1 && e.column <= text.chars().count() + 1, "{e}");
            let _ = e.to_string();
        }
    }
});
