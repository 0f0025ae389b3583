//! The gor reader on arbitrary bytes: it may return errors, never panic, never hang.
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
        for item in mynah_traffic::gor::GorReader::new(input, opts) {
            let _ = item;
        }
    }
});
