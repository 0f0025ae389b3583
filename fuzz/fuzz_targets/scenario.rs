//! The scenario parser (YAML, then validation) on arbitrary UTF-8 text: it may reject the text,
//! never panic, never hang.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = mynah_scenario::parse(text, std::path::Path::new("fuzz.yaml"));
    }
});
