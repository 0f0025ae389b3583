//! `mynah inspect`: what a capture holds.

use std::fmt::Write as _;
use std::io::Write;

use anyhow::Result;
use mynah_traffic::{Nanos, Summary};
use serde_json::{json, Map, Value};

use crate::cli::InspectArgs;

pub fn run(args: InspectArgs) -> Result<()> {
    let mut reader = super::open_inputs(&args.files, &args.input)?;
    let mut summary = Summary::new();
    for item in reader.by_ref() {
        summary.add(&item?);
    }
    let report = reader.report();
    summary.add_report(&report);
    // Written with `write!`, not `print!`: `mynah inspect ... | head` closes the pipe early, which
    // must end the command quietly (see `main`), not panic.
    let mut out = std::io::stdout().lock();
    if args.json {
        let mut v = to_json(&summary, args.top);
        if let Some(first) = &report.first_corrupt {
            v["first_corrupt"] = Value::String(first.clone());
        }
        writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
    } else {
        write!(out, "{}", to_table(&summary, args.top))?;
        if let Some(first) = &report.first_corrupt {
            writeln!(out, "first corrupt record skipped: {first}")?;
        }
    }
    out.flush()?;
    Ok(())
}

fn rfc3339(ns: Nanos) -> Option<String> {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(ns as i128).ok()?;
    t.format(&time::format_description::well_known::Rfc3339)
        .ok()
}

fn counts(map: &std::collections::BTreeMap<String, u64>) -> Value {
    Value::Object(
        map.iter()
            .map(|(k, v)| (k.clone(), json!(v)))
            .collect::<Map<_, _>>(),
    )
}

/// The `--json` document; its keys are documented in the README and are a stable interface.
pub fn to_json(s: &Summary, top: usize) -> Value {
    json!({
        "exchanges": s.exchanges,
        "with_response": s.with_response,
        "interim_responses": s.interim_responses,
        "incomplete": counts(&s.incomplete),
        "skipped": counts(&s.skipped),
        "corrupt_skipped": s.corrupt_skipped,
        "connections": s.connections(),
        "methods": counts(&s.methods),
        "statuses": counts(&s.statuses),
        "hosts": counts(&s.hosts),
        "top_paths": s.top_paths(top).into_iter()
            .map(|(path, count)| json!({"path": path, "count": count}))
            .collect::<Vec<_>>(),
        "first_ts": s.first_ts.and_then(rfc3339),
        "last_ts": s.last_ts.and_then(rfc3339),
        "bytes": s.bytes,
    })
}

fn to_table(s: &Summary, top: usize) -> String {
    let mut out = String::new();
    let mut line = |k: &str, v: String| {
        let _ = writeln!(out, "{k:<18} {v}");
    };
    line("exchanges", s.exchanges.to_string());
    line("with response", s.with_response.to_string());
    line("interim (1xx)", s.interim_responses.to_string());
    line(
        "incomplete",
        format!("{}{}", s.incomplete_total(), inline(&s.incomplete)),
    );
    let skipped: u64 = s.skipped.values().sum();
    line("skipped", format!("{skipped}{}", inline(&s.skipped)));
    if s.corrupt_skipped > 0 {
        line("corrupt (skipped)", s.corrupt_skipped.to_string());
    }
    line(
        "connections",
        s.connections()
            .map_or("unknown (the format does not record them)".into(), |c| {
                c.to_string()
            }),
    );
    line(
        "first request",
        s.first_ts.and_then(rfc3339).unwrap_or_else(|| "-".into()),
    );
    line(
        "last byte",
        s.last_ts.and_then(rfc3339).unwrap_or_else(|| "-".into()),
    );
    line("bytes", s.bytes.to_string());
    line("methods", inline_all(&s.methods));
    line("statuses", inline_all(&s.statuses));
    let mut hosts: Vec<_> = s.hosts.iter().collect();
    hosts.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let shown: Vec<String> = hosts
        .iter()
        .take(top)
        .map(|(h, n)| format!("{h} {n}"))
        .collect();
    let more = hosts.len().saturating_sub(top);
    line(
        "hosts",
        format!(
            "{}{}",
            shown.join(", "),
            if more > 0 {
                format!(" (+{more} more)")
            } else {
                String::new()
            }
        ),
    );
    let paths = s.top_paths(top);
    if !paths.is_empty() {
        let _ = writeln!(out, "\ntop paths:");
        let width = paths
            .iter()
            .map(|(_, c)| c.to_string().len())
            .max()
            .unwrap_or(1);
        for (p, c) in paths {
            let _ = writeln!(out, "  {c:>width$}  {p}");
        }
    }
    out
}

fn inline(map: &std::collections::BTreeMap<String, u64>) -> String {
    if map.is_empty() {
        String::new()
    } else {
        format!(" ({})", inline_all(map))
    }
}

fn inline_all(map: &std::collections::BTreeMap<String, u64>) -> String {
    if map.is_empty() {
        return "-".into();
    }
    map.iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}
