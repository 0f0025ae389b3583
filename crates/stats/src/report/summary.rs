//! The machine-readable run summary (`summary.json`).

use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::stats::{EndpointStats, RunStats};

fn ms(us: u64) -> Value {
    json!(us as f64 / 1000.0)
}

/// Latency figures in milliseconds (floats with µs precision); every field null without samples.
fn latency_ms(e: &EndpointStats) -> Value {
    let p = |q: f64| e.percentile_us(q).map_or(Value::Null, ms);
    json!({
        "min": e.min_us().map_or(Value::Null, ms),
        // Rounded to the µs like the other figures.
        "mean": e.mean_us().map_or(Value::Null, |m| json!(m.round() / 1000.0)),
        "p50": p(50.0),
        "p90": p(90.0),
        "p95": p(95.0),
        "p99": p(99.0),
        "p999": p(99.9),
        "max": e.max_us().map_or(Value::Null, ms),
    })
}

/// The run summary: totals, per-endpoint figures, grouped failures and the threshold results
/// passed in (kept verbatim).
pub fn summary_json(stats: &RunStats, users_max: u64, thresholds: &Value) -> Value {
    let started_at = OffsetDateTime::from_unix_timestamp_nanos(i128::from(stats.started_at_ns()))
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .map_or(Value::Null, Value::String);
    let total = stats.total();
    let endpoints: Vec<Value> = stats
        .endpoints()
        .map(|(method, name, e)| {
            json!({
                "method": method,
                "name": name,
                "requests": e.requests(),
                "failures": e.failures(),
                "rps": stats.rps(e),
                "latency_ms": latency_ms(e),
            })
        })
        .collect();
    let failures: Vec<Value> = stats
        .failures()
        .map(|f| {
            json!({
                "method": f.method,
                "name": f.name,
                "kind": f.kind.as_str(),
                "message": f.message,
                "count": f.count,
            })
        })
        .collect();
    json!({
        "tool": "mynah",
        "version": env!("CARGO_PKG_VERSION"),
        "kind": "run",
        "started_at": started_at,
        "duration_s": stats.duration_s(),
        "users_max": users_max,
        "total": {
            "requests": total.requests(),
            "failures": total.failures(),
            "dropped": stats.dropped(),
            "rps": stats.rps(total),
            "bytes_received": total.bytes_received(),
            "latency_ms": latency_ms(total),
        },
        "endpoints": endpoints,
        "failures": failures,
        "thresholds": thresholds.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::FailureKind;

    #[test]
    fn shape_and_values() {
        let s0 = 1_700_000_000 * 1_000_000_000i64;
        let mut s = RunStats::new(s0);
        s.record_success("GET", "/a", s0 + 1, 1_234, 10);
        s.record_failure("POST", "/b", s0 + 2, None, FailureKind::Timeout, "deadline");
        s.record_dropped(2);
        s.finish(s0 + 4_000_000_000);
        let v = summary_json(&s, 7, &json!([{"ok": true}]));
        assert_eq!(v["tool"], "mynah");
        assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
        assert_eq!(v["kind"], "run");
        assert_eq!(v["started_at"], "2023-11-14T22:13:20Z");
        assert_eq!(v["duration_s"], 4.0);
        assert_eq!(v["users_max"], 7);
        let t = &v["total"];
        assert_eq!(
            (t["requests"].as_u64(), t["failures"].as_u64()),
            (Some(2), Some(1))
        );
        assert_eq!(
            (t["dropped"].as_u64(), t["bytes_received"].as_u64()),
            (Some(2), Some(10))
        );
        assert_eq!(t["rps"], 0.5);
        assert_eq!(t["latency_ms"]["p99"], 1.234);
        assert_eq!(t["latency_ms"]["mean"], 1.234);
        let keys: Vec<&String> = t["latency_ms"].as_object().unwrap().keys().collect();
        assert_eq!(keys.len(), 8);
        let eps = v["endpoints"].as_array().unwrap();
        assert_eq!(eps.len(), 2);
        assert_eq!(eps[1]["method"], "POST");
        assert_eq!(eps[1]["latency_ms"]["p50"], Value::Null);
        assert_eq!(eps[1]["latency_ms"]["min"], Value::Null);
        assert_eq!(
            v["failures"],
            json!([{"method":"POST","name":"/b","kind":"timeout","message":"deadline","count":1}])
        );
        assert_eq!(v["thresholds"], json!([{"ok": true}]));
    }
}
