//! Every capture in `../shared/data/traffic` through the real binary, checked against the counts
//! tshark measured (MANIFEST.tsv).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::Value;

fn traffic_dir() -> PathBuf {
    let dir = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/data/traffic"
    ));
    assert!(
        dir.join("MANIFEST.tsv").is_file(),
        "the shared captures are missing: expected {} (a checkout of mynah needs ../shared beside it)",
        dir.display()
    );
    dir
}

fn mynah(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mynah"))
        .args(args)
        .output()
        .expect("run mynah")
}

fn inspect_json(path: &str, extra: &[&str]) -> Result<Value, (i32, String)> {
    let mut args = vec!["inspect", "--json", path];
    args.extend_from_slice(extra);
    let out = mynah(&args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if !out.status.success() {
        return Err((out.status.code().unwrap_or(-1), stderr));
    }
    Ok(serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{path}: bad JSON: {e}")))
}

struct ManifestEntry {
    file: String,
    what: String,
}

fn manifest() -> Vec<ManifestEntry> {
    let text =
        std::fs::read_to_string(traffic_dir().join("MANIFEST.tsv")).expect("read MANIFEST.tsv");
    text.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let cols: Vec<&str> = l.split('\t').collect();
            ManifestEntry {
                file: cols[0].to_string(),
                what: cols.last().unwrap_or(&"").to_string(),
            }
        })
        .collect()
}

/// The number right before `word` in `text` (`"14 entries"` → 14).
fn number_before(text: &str, word: &str) -> Option<u64> {
    let i = text.find(word)?;
    text[..i].split_whitespace().last()?.parse().ok()
}

/// What tshark (or the manifest's own count) says a file holds: (requests, responses incl. 1xx).
fn expected_counts(e: &ManifestEntry) -> Option<(u64, u64)> {
    let w = &e.what;
    // The shop_capture lines describe one traffic captured twice, in prose.
    if let Some(i) = w.find("tshark: ") {
        let t = &w[i..];
        let req = number_before(t, "requests")?;
        let fin = number_before(t, "final responses")?;
        let interim = number_before(t, "interim")?;
        if e.file.starts_with("pcap/") {
            return Some((req, fin + interim));
        }
        let g = &w[w.find("GoReplay wrote ")?..];
        return Some((
            number_before(g, "type-1 records")?,
            number_before(g, "type-2 records")?,
        ));
    }
    if e.file.starts_with("pcap/") {
        let req = number_before(w, "HTTP/1.x requests")?;
        let rest = &w[w.find("HTTP/1.x requests")?..];
        let resp = number_before(rest, "responses")?;
        Some((req, resp))
    } else if e.file.starts_with("har/") {
        // HARP files say "inside: ..., 1 entries".
        let entries = number_before(w, "entries")?;
        let zero = statuses(w).get("0").copied().unwrap_or(0);
        Some((entries, entries - zero))
    } else {
        let types = &w[w.find("(types ")? + 7..];
        let types = &types[..types.find(')')?];
        let mut req = 0;
        let mut resp = 0;
        for part in types.split(", ") {
            let mut it = part.split_whitespace();
            let n: u64 = it.next()?.parse().ok()?;
            match it.next()? {
                "1" => req += n,
                "2" => resp += n,
                _ => {}
            }
        }
        Some((req, resp))
    }
}

/// `statuses 10 200, 4 304` → {"200": 10, "304": 4}
fn statuses(what: &str) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    if let Some(i) = what.find("statuses ") {
        let s = &what[i + 9..];
        let s = &s[..s.find(';').unwrap_or(s.len())];
        for part in s.split(", ") {
            let mut it = part.split_whitespace();
            if let (Some(n), Some(code)) = (it.next().and_then(|n| n.parse().ok()), it.next()) {
                m.insert(code.to_string(), n);
            }
        }
    }
    m
}

/// Files where mynah's count differs from tshark's on purpose, each with the reason. A difference not
/// listed here fails the test.
fn known_differences() -> BTreeMap<&'static str, (u64, u64, &'static str)> {
    BTreeMap::from([
        // (file, (requests, responses incl. interim, why))
        ("gor/shop_capture.gor", (274, 262, "GoReplay merged the two pipelined GETs into one type-1 record; mynah splits it")),
        ("gor/shop_capture.gor.gz", (274, 262, "GoReplay merged the two pipelined GETs into one type-1 record; mynah splits it")),
        // Where a segment was lost, tshark drops the message; mynah keeps it, marked missing_segments.
        ("pcap/zeek_bro.org.pcap", (31, 31, "a response with a lost segment is kept (missing_segments)")),
        ("pcap/suricata_http-gap-simple.pcap", (3, 3, "the response with a sequence gap is kept (missing_segments)")),
        ("pcap/chrissanders_http_espn.pcapng", (61, 61, "a response with a lost segment is kept (missing_segments)")),
        ("pcap/suricata_tlpw1-snaplen-truncated.pcap", (1, 1, "the snaplen-cut response is kept, its cut bytes as a gap (missing_segments)")),
        ("pcap/pcapplusplus_unidirectional_tcp_stream_with_missing_packet.pcap", (2, 0,
            "two POSTs: tshark cannot frame the first across the lost segment and merges both; mynah keeps the first (missing_segments) and the second (no_response)")),
        // Where tshark's dissector gives up on out-of-order or retransmitted frames.
        ("pcap/suricata_http-range-file.pcap", (15, 15,
            "tshark flags 14 frames malformed after out-of-order segments; mynah reassembles all 15 206 responses, each body as long as its Content-Length")),
        ("pcap/pcapplusplus_example.pcap", (338, 338,
            "the UPnP SUBSCRIBE on port 5005 and its response (tshark needs -d tcp.port==5005,http), and one response on each of the connections from ports 44152 and 44153 that tshark loses among retransmissions; every body matches its Content-Length")),
        // Plain HTTP inside a CONNECT tunnel is parsed on; tshark misses the inner response.
        ("pcap/suricata_http-connect-simple.pcap", (2, 2, "the GET inside the CONNECT tunnel gets its response")),
    ])
}

fn is_broken(file: &str) -> bool {
    matches!(
        file,
        "har/harviewer_not-json.har"
            | "har/mitmproxy_brokenfile.har"
            | "pcap/suricata_http-mime-truncated.pcap"
    )
}

#[test]
fn every_shared_capture_reads_with_the_manifest_counts() {
    let dir = traffic_dir();
    let entries = manifest();
    assert_eq!(entries.len(), 106, "MANIFEST.tsv should list 106 captures");
    let known = known_differences();
    let mut failures = Vec::new();
    for e in &entries {
        let path = dir.join(&e.file);
        let path = path.to_str().unwrap();
        let result = inspect_json(path, &["--lenient"]);
        if let Err((code, stderr)) = &result {
            if *code == 101 || stderr.contains("panicked") {
                failures.push(format!("{}: PANIC: {stderr}", e.file));
                continue;
            }
        }
        let Some((req, resp)) = expected_counts(e) else {
            if !is_broken(&e.file) {
                failures.push(format!(
                    "{}: manifest line has no counts: {}",
                    e.file, e.what
                ));
            }
            continue;
        };
        let v = match result {
            Ok(v) => v,
            Err((code, stderr)) => {
                failures.push(format!("{}: exit {code}: {stderr}", e.file));
                continue;
            }
        };
        let got_req = v["exchanges"].as_u64().unwrap();
        // tshark counts every response it sees, also those whose request was not captured.
        let orphans = v["skipped"]["response_without_request"]
            .as_u64()
            .unwrap_or(0);
        let got_resp = v["with_response"].as_u64().unwrap()
            + v["interim_responses"].as_u64().unwrap()
            + orphans;
        let (want_req, want_resp) = match known.get(e.file.as_str()) {
            Some((r, s, _why)) => (*r, *s),
            None => (req, resp),
        };
        if (got_req, got_resp) != (want_req, want_resp) {
            failures.push(format!(
                "{}: mynah read {got_req} requests / {got_resp} responses, expected {want_req} / {want_resp} (tshark: {req} / {resp}); incomplete {} skipped {}",
                e.file, v["incomplete"], v["skipped"]
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} captures differ:\n{}",
        failures.len(),
        entries.len(),
        failures.join("\n")
    );
}

#[test]
fn invalid_har_names_line_and_column() {
    let dir = traffic_dir();
    for (file, place) in [
        ("har/harviewer_not-json.har", "line 8, column 5"),
        ("har/mitmproxy_brokenfile.har", "line 5, column 1"),
    ] {
        let path = dir.join(file);
        let (code, stderr) =
            inspect_json(path.to_str().unwrap(), &[]).expect_err("invalid JSON must fail");
        assert_eq!(code, 1, "{file}: exit code for bad input");
        assert!(
            stderr.contains(place),
            "{file}: error should name {place}: {stderr}"
        );
        assert!(
            stderr.contains(file.rsplit('/').next().unwrap()),
            "{file}: error should name the file: {stderr}"
        );
        assert!(
            stderr.contains("0 exchanges read before it"),
            "{file}: {stderr}"
        );
    }
}

#[test]
fn truncated_pcap_is_an_error_unless_lenient() {
    let path = traffic_dir().join("pcap/suricata_http-mime-truncated.pcap");
    let path = path.to_str().unwrap();
    let (code, stderr) = inspect_json(path, &[]).expect_err("a file cut short must be reported");
    assert_eq!(code, 1);
    assert!(
        stderr.contains("suricata_http-mime-truncated.pcap"),
        "{stderr}"
    );
    // tshark counts the 2696 whole packets; the 2697th is the one cut short.
    assert!(stderr.contains("packet 2697"), "names the packet: {stderr}");
    assert!(stderr.contains("8 exchanges read before it"), "{stderr}");
    let v = inspect_json(path, &["--lenient"]).expect("lenient reads what is there");
    assert_eq!(v["exchanges"], 8);
    assert_eq!(v["with_response"], 8);
    assert_eq!(v["corrupt_skipped"], 1);
}

#[test]
fn shop_capture_pairs_every_request_with_its_final_response() {
    let path = traffic_dir().join("pcap/shop_capture.pcap");
    let v = inspect_json(path.to_str().unwrap(), &[]).expect("shop_capture.pcap reads");
    assert_eq!(v["exchanges"], 274);
    assert_eq!(v["with_response"], 274);
    assert_eq!(v["interim_responses"], 1);
    assert_eq!(v["incomplete"], serde_json::json!({}));
    for key in [
        "methods",
        "statuses",
        "hosts",
        "top_paths",
        "first_ts",
        "last_ts",
        "bytes",
        "connections",
        "skipped",
    ] {
        assert!(!v[key].is_null(), "inspect --json lacks {key}: {v}");
    }
    assert!(v["methods"]["HEAD"].as_u64().unwrap() > 0);
    assert_eq!(v["methods"]["PUT"], 1);
    assert!(v["first_ts"].as_str().unwrap().ends_with('Z'));
}

#[test]
fn exit_codes() {
    assert_eq!(mynah(&["--version"]).status.code(), Some(0));
    assert_eq!(mynah(&["inspect", "--help"]).status.code(), Some(0));
    assert_eq!(
        mynah(&["inspect"]).status.code(),
        Some(2),
        "missing FILE is a usage error"
    );
    assert_eq!(mynah(&["no-such-command"]).status.code(), Some(2));
    let out = mynah(&["inspect", "/nonexistent/file.pcap"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/file.pcap"));
    let path = traffic_dir().join("pcap/zeek_get.pcap");
    let out = mynah(&[
        "convert",
        path.to_str().unwrap(),
        "-o",
        "/tmp/x.unknown-ext",
    ]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "unknown output format is a usage error"
    );
}
