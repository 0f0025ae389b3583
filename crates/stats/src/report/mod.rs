//! Reports built from a [`crate::RunStats`]: Locust-compatible CSV files and the summary JSON.

pub mod compare;
pub mod html;
pub mod locust_csv;
pub mod summary;
pub mod table;

pub use html::{html_report, ReportMeta};
pub use locust_csv::write_locust_csv;
pub use summary::summary_json;
pub use table::final_table;

/// Formats a microsecond latency as milliseconds with exact µs precision and no trailing zeros
/// (`1500` -> `1.5`, `2000` -> `2`), so reports carry the HDR value rather than Locust's rounding.
pub fn fmt_ms(us: u64) -> String {
    let (whole, frac) = (us / 1000, us % 1000);
    if frac == 0 {
        whole.to_string()
    } else {
        let s = format!("{whole}.{frac:03}");
        s.trim_end_matches('0').to_owned()
    }
}

/// Formats a fractional microsecond value (a mean) as milliseconds rounded to the microsecond.
pub fn fmt_ms_f(us: f64) -> String {
    if !us.is_finite() || us <= 0.0 {
        return "0".to_owned();
    }
    // Rounding to whole µs keeps the same precision as the other time columns.
    fmt_ms(us.round() as u64)
}

/// Formats a rate or a size: integers without a fraction, otherwise at most 6 decimals.
pub fn fmt_f(v: f64) -> String {
    if !v.is_finite() {
        return "0".to_owned();
    }
    let s = format!("{v:.6}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".to_owned()
    } else {
        s.to_owned()
    }
}
