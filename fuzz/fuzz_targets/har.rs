//! The har reader on arbitrary bytes: it may return errors, never panic, never hang.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mynah_traffic::ReadOptions;

fuzz_target!(|data: &[u8]| {
    for lenient in [false, true] {
        let input = Box::new(std::io::Cursor::new(data.to_vec()));
        let opts = ReadOptions {
            lenient,
            ..Default::default()
        };
        if let Ok(reader) = mynah_traffic::har::HarReader::new(input, opts) {
            for item in reader {
                let _ = item;
            }
        }
    }
});
