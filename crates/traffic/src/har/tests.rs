//! Reader and writer tests: the shared HAR captures, error positions, round trips, and a HAR 1.2
//! checker for what the writer produces.

use std::collections::HashMap;
use std::io::{BufRead, Cursor, Read};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use proptest::prelude::*;
use serde_json::{json, Value};

use super::text::{decode_base64, parse_timestamp};
use super::{HarReader, HarWriter};
use crate::error::{Location, ReadError};
use crate::model::{
    BodyForm, ConnectionInfo, Exchange, Headers, Incomplete, Request, Response, Timing, Version,
};
use crate::sink::{ExchangeWriter, Output};
use crate::source::{ExchangeReader, ReadOptions};

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/data/traffic/");

fn data_dir() -> std::path::PathBuf {
    let p = std::path::PathBuf::from(DATA);
    assert!(
        p.join("MANIFEST.tsv").is_file(),
        "test captures not found at {} (MANIFEST.tsv missing)",
        p.display()
    );
    p
}

fn reader_from(bytes: Vec<u8>, lenient: bool) -> HarReader {
    let input: Box<dyn BufRead + Send> = Box::new(Cursor::new(bytes));
    HarReader::new(
        input,
        ReadOptions {
            lenient,
            ..Default::default()
        },
    )
    .unwrap()
}

fn read_all(bytes: Vec<u8>) -> (Vec<Exchange>, Vec<ReadError>) {
    let mut ok = Vec::new();
    let mut errs = Vec::new();
    for r in reader_from(bytes, false) {
        match r {
            Ok(x) => ok.push(x),
            Err(e) => errs.push(e),
        }
    }
    (ok, errs)
}

fn write_all(xs: &[Exchange]) -> Vec<u8> {
    let mut w = HarWriter::new(Output::Memory(Vec::new())).unwrap();
    for x in xs {
        w.write(x).unwrap();
    }
    w.close().unwrap().unwrap()
}

/// One manifest line for a HAR file: what an independent tool counted.
struct Expect {
    name: String,
    entries: Option<usize>,
    statuses: Vec<(usize, u16)>,
    methods: Vec<(usize, String)>,
    json_error: Option<(u64, u64)>,
}

fn counts(desc: &str, key: &str) -> Vec<(usize, String)> {
    let Some(i) = desc.find(&format!("{key} ")) else {
        return Vec::new();
    };
    let rest = &desc[i + key.len() + 1..];
    let rest = rest.split(';').next().unwrap_or(rest);
    rest.split(", ")
        .filter_map(|p| {
            let (n, what) = p.trim().split_once(' ')?;
            Some((n.parse().ok()?, what.trim().to_string()))
        })
        .collect()
}

fn manifest() -> Vec<Expect> {
    let text = std::fs::read_to_string(data_dir().join("MANIFEST.tsv")).unwrap();
    let mut out = Vec::new();
    for line in text.lines() {
        let cols: Vec<&str> = line.split('\t').collect();
        let (Some(file), Some(desc)) = (cols.first(), cols.last()) else {
            continue;
        };
        let Some(name) = file.strip_prefix("har/") else {
            continue;
        };
        let entries = desc
            .find(" entries")
            .and_then(|i| desc[..i].rsplit(' ').next()?.parse().ok());
        let json_error = desc.find("line ").and_then(|i| {
            let mut w = desc[i..].split([' ', ')', '(']);
            let (_, l, _, c) = (w.next()?, w.next()?, w.next()?, w.next()?);
            Some((l.parse().ok()?, c.parse().ok()?))
        });
        out.push(Expect {
            name: name.to_string(),
            entries,
            statuses: counts(desc, "statuses")
                .into_iter()
                .filter_map(|(n, s)| Some((n, s.parse().ok()?)))
                .collect(),
            methods: counts(desc, "methods"),
            json_error: json_error.filter(|_| desc.contains("NOT parseable")),
        });
    }
    out
}

fn tally<K: std::hash::Hash + Eq>(it: impl Iterator<Item = K>) -> HashMap<K, usize> {
    let mut m = HashMap::new();
    for k in it {
        *m.entry(k).or_default() += 1;
    }
    m
}

#[test]
fn shared_hars_match_the_manifest() {
    let dir = data_dir();
    let expects = manifest();
    assert!(
        expects.len() >= 30,
        "manifest lists {} HAR files",
        expects.len()
    );
    let mut checked = 0;
    for ex in &expects {
        let bytes = std::fs::read(dir.join("har").join(&ex.name))
            .unwrap_or_else(|e| panic!("{}: {e}", ex.name));
        let (xs, errs) = read_all(bytes);
        if let Some((line, col)) = ex.json_error {
            assert_eq!(errs.len(), 1, "{}: {errs:?}", ex.name);
            let e = &errs[0];
            assert_eq!(
                e.location,
                Some(Location::LineColumn { line, column: col }),
                "{}: {e}",
                ex.name
            );
            let shown = e.to_string();
            assert!(
                shown.contains(&format!("line {line}, column {col}")),
                "{shown}"
            );
            assert!(shown.contains("not valid JSON"), "{shown}");
            assert!(!e.recoverable);
            assert_eq!(e.exchanges_read, 0);
            checked += 1;
            continue;
        }
        assert!(errs.is_empty(), "{}: {errs:?}", ex.name);
        let want = ex
            .entries
            .unwrap_or_else(|| panic!("{}: no entry count", ex.name));
        assert_eq!(xs.len(), want, "{}", ex.name);
        if !ex.statuses.is_empty() {
            let got = tally(
                xs.iter()
                    .map(|x| x.response.as_ref().map_or(0, |r| r.status)),
            );
            let want: HashMap<u16, usize> = ex.statuses.iter().map(|&(n, s)| (s, n)).collect();
            assert_eq!(got, want, "{} statuses", ex.name);
            for x in xs.iter().filter(|x| x.response.is_none()) {
                assert_eq!(x.incomplete, Some(Incomplete::NoResponse), "{}", ex.name);
            }
        }
        if !ex.methods.is_empty() {
            let got = tally(xs.iter().map(|x| x.request.method.clone()));
            let want: HashMap<String, usize> =
                ex.methods.iter().map(|(n, m)| (m.clone(), *n)).collect();
            assert_eq!(got, want, "{} methods", ex.name);
        }
        for w in xs.windows(2) {
            assert!(
                w[0].timing.request_start <= w[1].timing.request_start,
                "{}: not in time order",
                ex.name
            );
        }
        checked += 1;
    }
    let on_disk = std::fs::read_dir(dir.join("har")).unwrap().count();
    assert_eq!(
        checked, on_disk,
        "every .har on disk is in the manifest and checked"
    );
}

/// The same file parsed independently (whole, with serde_json), for comparisons.
fn independent(bytes: &[u8]) -> Value {
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim_start_matches('\u{feff}').trim();
    let text = match text.find('(') {
        Some(i) if !text.starts_with('{') => text[i + 1..]
            .trim_end()
            .trim_end_matches(';')
            .trim_end()
            .trim_end_matches(')'),
        _ => text,
    };
    serde_json::from_str(text).unwrap()
}

#[test]
fn response_bodies_match_an_independent_parse() {
    let dir = data_dir().join("har");
    let mut base64_bodies = 0;
    for ex in manifest().iter().filter(|e| e.json_error.is_none()) {
        let bytes = std::fs::read(dir.join(&ex.name)).unwrap();
        let v = independent(&bytes);
        let mut want = Vec::new();
        for e in v["log"]["entries"].as_array().unwrap() {
            if e["response"]["status"].as_f64() == Some(0.0) {
                continue;
            }
            let c = &e["response"]["content"];
            let text = c["text"].as_str().unwrap_or("");
            want.push(if c["encoding"] == "base64" {
                base64_bodies += 1;
                decode_base64(text).unwrap()
            } else {
                text.as_bytes().to_vec()
            });
        }
        let (xs, errs) = read_all(bytes);
        assert!(errs.is_empty());
        let mut got: Vec<Vec<u8>> = xs
            .into_iter()
            .filter_map(|x| x.response)
            .map(|r| {
                assert_eq!(r.body_form, BodyForm::Decoded);
                r.body
            })
            .collect();
        want.sort();
        got.sort();
        assert!(got == want, "{}: response bodies differ", ex.name);
    }
    // firefox 1, safari 7, chrome 2, fiddler 4 + 64.
    assert_eq!(base64_bodies, 78);
}

#[test]
fn bom_and_jsonp_files_parse() {
    let dir = data_dir().join("har");
    for name in [
        "mitmproxy_with-bom.har",
        "harviewer_ie11.fiddler.har",
        "harviewer_jsonp.har",
        "harviewer_jsonp-1.har",
    ] {
        let bytes = std::fs::read(dir.join(name)).unwrap();
        let (xs, errs) = read_all(bytes);
        assert!(errs.is_empty(), "{name}: {errs:?}");
        assert!(!xs.is_empty(), "{name}");
    }
    let (xs, _) = read_all(std::fs::read(dir.join("harviewer_jsonp.har")).unwrap());
    assert_eq!(xs[0].request.method, "GET");
    assert_eq!(
        xs[0].timing.request_start,
        parse_timestamp("2010-06-06T09:40:21.181+02:00").unwrap()
    );
    // The POST body of the BOM file is the same as that of its BOM-less twin.
    let (a, _) = read_all(std::fs::read(dir.join("mitmproxy_with-bom.har")).unwrap());
    let (b, _) = read_all(std::fs::read(dir.join("mitmproxy_postdata.har")).unwrap());
    assert_eq!(a[0].request.body, b[0].request.body);
    assert!(!a[0].request.body.is_empty());
}

#[test]
fn specific_shapes_in_the_shared_files() {
    let dir = data_dir().join("har");
    let read = |n: &str| read_all(std::fs::read(dir.join(n)).unwrap()).0;

    // Status-0 entries: no response, marked.
    let xs = read("mitmproxy_flows_incomplete_log.har");
    assert!(xs
        .iter()
        .all(|x| x.response.is_none() && x.incomplete == Some(Incomplete::NoResponse)));
    // POSTs with an empty postData (mimeType "", text "", params []): empty bodies.
    assert!(xs
        .iter()
        .filter(|x| x.request.method == "POST")
        .all(|x| x.request.body.is_empty()));

    // params only: urlencoded from params.
    let xs = read("har2locust_url-encoded-body-no-text-field.har");
    assert_eq!(xs[0].request.body, b"user=test&password=test");

    // HTTP/2 without Host: absolute-form target, pseudo-headers kept.
    let xs = read("mitmproxy_postdata.har");
    assert!(
        xs[0].request.target.starts_with("https://"),
        "{}",
        xs[0].request.target
    );
    assert_eq!(xs[0].request.version, Version::Http2);
    // HTTP/1.1 with Host: origin-form.
    let xs = read("harviewer_google.com.har");
    assert!(xs.iter().all(|x| x.request.target.starts_with('/')));

    // Versions as spelled in the wild.
    let vs = |n: &str| tally(read(n).into_iter().map(|x| x.request.version));
    assert_eq!(
        vs("pagexray_en.wikipedia.org.spdy-wpt.har")[&Version::Http11],
        102
    );
    assert_eq!(vs("mitmproxy_firefox.har")[&Version::Http3], 8);
    let yahoo = vs("chrome-har_www.yahoo.com.devtoolslog.har");
    assert_eq!(yahoo[&Version::Other("spdy".into())], 64);
    assert_eq!(yahoo[&Version::Http2], 30);
    let chrome = vs("mitmproxy_chrome.har");
    assert_eq!(chrome.get(&Version::Http3), Some(&1));

    // WebSocket: the 101 exchange is kept, its messages counted as skipped.
    let mut r = reader_from(
        std::fs::read(dir.join("mitmproxy_flows_websocket.har")).unwrap(),
        false,
    );
    let xs: Vec<_> = r.by_ref().map(Result::unwrap).collect();
    assert!(xs
        .iter()
        .all(|x| x.response.as_ref().unwrap().status == 101));
    let want: u64 = independent(&std::fs::read(dir.join("mitmproxy_flows_websocket.har")).unwrap())
        ["log"]["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["_webSocketMessages"].as_array().unwrap().len() as u64)
        .sum();
    assert!(want > 0);
    assert_eq!(r.report().skipped.get("websocket_messages"), Some(&want));

    // Connections: Chrome's connection ids and server addresses.
    let xs = read("pagexray_304.har");
    assert!(xs.iter().all(|x| x.connection.id.is_some()));
    assert!(xs.iter().all(|x| x.connection.server.is_some()));
    let per_conn = tally(xs.iter().map(|x| x.connection.id));
    assert!(per_conn.values().any(|&n| n > 1), "keep-alive connections");
    assert!(xs.iter().any(|x| x.connection.index > 0));
}

#[test]
fn cut_short_file_yields_what_came_before_then_the_error() {
    let bytes = std::fs::read(data_dir().join("har/pagexray_304.har")).unwrap();
    let cut = bytes[..bytes.len() / 2].to_vec();
    let (xs, errs) = read_all(cut);
    assert!(xs.len() > 50, "{}", xs.len());
    assert_eq!(errs.len(), 1);
    let e = &errs[0];
    assert!(!e.recoverable);
    assert_eq!(e.exchanges_read, xs.len() as u64);
    assert!(matches!(e.location, Some(Location::LineColumn { .. })));
    assert!(e.to_string().contains("EOF while parsing"), "{e}");
    assert!(e.hint.as_deref().unwrap().contains("cut short"));
}

#[test]
fn error_columns_count_a_jsonp_prefix_but_not_a_bom() {
    // The BOM is invisible in editors: columns start after it.
    let (_, errs) = read_all(b"\xef\xbb\xbf{x".to_vec());
    assert_eq!(
        errs[0].location,
        Some(Location::LineColumn { line: 1, column: 2 })
    );
    // A JSONP callback is text in the file: columns count it.
    let (_, errs) = read_all(b"cb({x});".to_vec());
    assert_eq!(
        errs[0].location,
        Some(Location::LineColumn { line: 1, column: 5 })
    );
    let (_, errs) = read_all(b"onInputData(\n{\"log\": {\"entries\": [\n  {]}});".to_vec());
    assert_eq!(
        errs[0].location,
        Some(Location::LineColumn { line: 3, column: 4 })
    );
}

#[test]
fn not_a_har_is_a_clear_error() {
    for (input, says) in [
        (&b"{\"foo\": 1}"[..], "no log.entries"),
        (b"[1, 2]", "top-level JSON value is an array"),
        (b"{\"log\": 5}", "\"log\" is a number"),
        (b"{\"log\": {\"entries\": {}}}", "log.entries is an object"),
        (b"", "empty"),
        (b"   ", "invalid JSON"),
        (b"<html></html>", "invalid JSON"),
    ] {
        let (xs, errs) = read_all(input.to_vec());
        assert!(xs.is_empty());
        assert_eq!(errs.len(), 1, "{input:?}");
        assert!(errs[0].to_string().contains(says), "{input:?}: {}", errs[0]);
    }
    // A syntax error beats "not a HAR" (mitmproxy_brokenfile.har: `log` is an array, then the
    // JSON breaks).
    let (_, errs) = read_all(b"{\"log\": [1], x}".to_vec());
    assert!(errs[0].to_string().contains("invalid JSON"), "{}", errs[0]);
    // Entries straight at the top level are accepted.
    let (xs, errs) = read_all(
        br#"{"entries": [{"startedDateTime": "2020-01-01T00:00:00Z",
            "request": {"method": "GET", "url": "http://a/"}, "response": {"status": 204}}]}"#
            .to_vec(),
    );
    assert!(errs.is_empty());
    assert_eq!(xs.len(), 1);
}

fn har_text(entries: &[Value]) -> String {
    let list: Vec<String> = entries.iter().map(|e| e.to_string()).collect();
    format!(
        "{{\"log\": {{\"version\": \"1.2\", \"entries\": [\n{}\n]}}}}",
        list.join(",\n")
    )
}

fn simple_entry(t: &str, path: &str) -> Value {
    json!({"startedDateTime": t, "request": {"method": "GET", "url": format!("http://h{path}"),
           "headers": [{"name": "Host", "value": "h"}]}, "response": {"status": 200}})
}

#[test]
fn bad_entries_are_recoverable_errors_at_their_position() {
    let mut bad = simple_entry("2020-01-01T00:00:02Z", "/bad");
    bad["request"].as_object_mut().unwrap().remove("method");
    let text = har_text(&[
        simple_entry("2020-01-01T00:00:01Z", "/a"),
        bad,
        simple_entry("2020-01-01T00:00:03Z", "/c"),
    ]);
    // Strict: the exchange before it, the error, then reading goes on.
    let got: Vec<_> = reader_from(text.clone().into_bytes(), false).collect();
    assert_eq!(got.len(), 3);
    assert_eq!(got[0].as_ref().unwrap().request.target, "/a");
    let e = got[1].as_ref().unwrap_err();
    assert!(e.recoverable);
    assert_eq!(
        e.location,
        Some(Location::LineColumn { line: 3, column: 1 })
    );
    assert_eq!(e.exchanges_read, 1);
    assert!(
        e.message.contains("entry 2: request.method is missing"),
        "{e}"
    );
    assert_eq!(got[2].as_ref().unwrap().request.target, "/c");
    // Lenient: skipped and counted.
    let mut r = reader_from(text.into_bytes(), true);
    let xs: Vec<_> = r.by_ref().map(Result::unwrap).collect();
    assert_eq!(xs.len(), 2);
    let rep = r.report();
    assert_eq!(rep.corrupt_skipped, 1);
    assert!(rep.first_corrupt.unwrap().contains("line 3, column 1"));
}

#[test]
fn entries_come_out_in_request_start_order() {
    let text = har_text(&[
        simple_entry("2020-01-01T00:00:03Z", "/3"),
        simple_entry("2020-01-01T00:00:01.5+00:00", "/1"),
        simple_entry("2020-01-01T01:00:02+01:00", "/2"),
        simple_entry("2020-01-01T00:00:01.5Z", "/1b"),
    ]);
    let (xs, _) = read_all(text.into_bytes());
    let order: Vec<_> = xs.iter().map(|x| x.request.target.as_str()).collect();
    assert_eq!(order, ["/1", "/1b", "/2", "/3"]);
}

/// A HAR generated on the fly, never in memory whole; entries jittered out of order.
struct Generated {
    head: Vec<u8>,
    pos: usize,
    n: u64,
    total: u64,
    dropped: Arc<AtomicBool>,
    /// Dropping takes a while (set before `dropped`).
    slow_drop: bool,
}

impl Read for Generated {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.pos == self.head.len() {
            self.head.clear();
            self.pos = 0;
            if self.n == u64::MAX {
                return Ok(0);
            }
            if self.n == self.total {
                self.head.extend_from_slice(b"]}}");
                self.n = u64::MAX;
            } else {
                let i = self.n;
                // Up to 1000 entries early or late: well inside the ordering window.
                let i = i as i64;
                let t = i * 1_000 + (i * 7919 % 1000) * 1_000 - 500_000;
                let e = format!(
                    "{}{{\"startedDateTime\":\"{}\",\"request\":{{\"method\":\"GET\",\"url\":\"http://h/{i}\",\"headers\":[]}},\"response\":{{\"status\":200,\"content\":{{\"text\":\"{}\"}}}}}}",
                    if i == 0 { "{\"log\":{\"entries\":[" } else { "," },
                    super::text::format_timestamp(1_600_000_000_000_000_000 + t * 1000),
                    "x".repeat(100)
                );
                self.head.extend_from_slice(e.as_bytes());
                self.n += 1;
            }
        }
        let n = buf.len().min(self.head.len() - self.pos);
        buf[..n].copy_from_slice(&self.head[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl Drop for Generated {
    fn drop(&mut self) {
        if self.slow_drop {
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        self.dropped.store(true, Ordering::SeqCst);
    }
}

fn generated(total: u64) -> (HarReader, Arc<AtomicBool>) {
    generated_with(total, false)
}

fn generated_with(total: u64, slow_drop: bool) -> (HarReader, Arc<AtomicBool>) {
    let dropped = Arc::new(AtomicBool::new(false));
    let g = Generated {
        head: Vec::new(),
        pos: 0,
        n: 0,
        total,
        dropped: dropped.clone(),
        slow_drop,
    };
    let r = HarReader::new(Box::new(std::io::BufReader::new(g)), ReadOptions::default()).unwrap();
    (r, dropped)
}

#[test]
fn large_generated_file_streams_in_order() {
    let (r, _) = generated(30_000);
    let mut n = 0;
    let mut last = i64::MIN;
    for x in r {
        let x = x.unwrap();
        assert!(x.timing.request_start >= last);
        last = x.timing.request_start;
        n += 1;
    }
    assert_eq!(n, 30_000);
}

#[test]
fn a_reader_read_to_the_end_has_joined_its_parser_thread() {
    // Found by `cargo fuzz run har` (LeakSanitizer): the parser thread was never joined, so it
    // could still be exiting (its thread-locals alive) after the iterator had returned `None`.
    // The input here takes its time to drop, as a file closing on a slow disk would.
    let (r, dropped) = generated_with(10, true);
    let mut n = 0;
    for x in r {
        x.unwrap();
        n += 1;
    }
    assert_eq!(n, 10);
    assert!(
        dropped.load(Ordering::SeqCst),
        "the parser thread was still running after the last exchange"
    );
}

#[test]
fn dropping_the_reader_stops_the_parser_thread() {
    let (mut r, dropped) = generated(u64::MAX - 1);
    for _ in 0..10 {
        r.next().unwrap().unwrap();
    }
    drop(r);
    for _ in 0..500 {
        if dropped.load(Ordering::SeqCst) {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    panic!("the parser thread kept running after the reader was dropped");
}

// ---------------------------------------------------------------------------------------------
// Writing.

/// Checks a HAR 1.2 document's required fields and types (http://www.softwareishard.com/blog/har-12-spec/),
/// and that every field not in the spec is an underscore extension.
fn check_har12(v: &Value) -> Result<usize, String> {
    fn obj<'a>(
        v: &'a Value,
        at: &str,
        required: &[(&str, &str)],
        optional: &[(&str, &str)],
    ) -> Result<&'a serde_json::Map<String, Value>, String> {
        let o = v.as_object().ok_or(format!("{at} is not an object"))?;
        let ty = |x: &Value, t: &str| match t {
            "string" => x.is_string(),
            "number" => x.is_number(),
            "int" => x.is_i64() || x.is_u64(),
            "object" => x.is_object(),
            "array" => x.is_array(),
            "bool" => x.is_boolean(),
            _ => false,
        };
        for (k, t) in required {
            let x = o.get(*k).ok_or(format!("{at}.{k} is missing"))?;
            if !ty(x, t) {
                return Err(format!("{at}.{k} is not {t}: {x}"));
            }
        }
        for (k, x) in o {
            if k.starts_with('_') || required.iter().any(|(r, _)| r == k) {
                continue;
            }
            match optional.iter().find(|(o, _)| o == k) {
                Some((_, t)) if ty(x, t) => {}
                Some((_, t)) => return Err(format!("{at}.{k} is not {t}: {x}")),
                None => return Err(format!("{at}.{k} is not a HAR 1.2 field")),
            }
        }
        Ok(o)
    }
    let nv = |v: &Value, at: &str| -> Result<(), String> {
        for (i, x) in v
            .as_array()
            .ok_or(format!("{at} is not an array"))?
            .iter()
            .enumerate()
        {
            obj(
                x,
                &format!("{at}[{i}]"),
                &[("name", "string"), ("value", "string")],
                &[("comment", "string")],
            )?;
        }
        Ok(())
    };
    let cookies = |v: &Value, at: &str| -> Result<(), String> {
        for (i, x) in v
            .as_array()
            .ok_or(format!("{at} is not an array"))?
            .iter()
            .enumerate()
        {
            obj(
                x,
                &format!("{at}[{i}]"),
                &[("name", "string"), ("value", "string")],
                &[
                    ("path", "string"),
                    ("domain", "string"),
                    ("expires", "string"),
                    ("httpOnly", "bool"),
                    ("secure", "bool"),
                    ("comment", "string"),
                ],
            )?;
        }
        Ok(())
    };
    let iso = |s: &str| parse_timestamp(s).is_some() && s.contains('T');
    let top = obj(v, "", &[("log", "object")], &[])?;
    let log = obj(
        &top["log"],
        "log",
        &[
            ("version", "string"),
            ("creator", "object"),
            ("entries", "array"),
        ],
        &[
            ("browser", "object"),
            ("pages", "array"),
            ("comment", "string"),
        ],
    )?;
    if log["version"] != "1.2" {
        return Err("log.version is not 1.2".into());
    }
    obj(
        &log["creator"],
        "log.creator",
        &[("name", "string"), ("version", "string")],
        &[("comment", "string")],
    )?;
    let entries = log["entries"].as_array().unwrap();
    for (i, e) in entries.iter().enumerate() {
        let at = format!("entries[{i}]");
        let o = obj(
            e,
            &at,
            &[
                ("startedDateTime", "string"),
                ("time", "number"),
                ("request", "object"),
                ("response", "object"),
                ("cache", "object"),
                ("timings", "object"),
            ],
            &[
                ("pageref", "string"),
                ("serverIPAddress", "string"),
                ("connection", "string"),
                ("comment", "string"),
            ],
        )?;
        if !iso(o["startedDateTime"].as_str().unwrap()) {
            return Err(format!("{at}.startedDateTime is not ISO 8601"));
        }
        let rq = obj(
            &o["request"],
            &format!("{at}.request"),
            &[
                ("method", "string"),
                ("url", "string"),
                ("httpVersion", "string"),
                ("cookies", "array"),
                ("headers", "array"),
                ("queryString", "array"),
                ("headersSize", "int"),
                ("bodySize", "int"),
            ],
            &[("postData", "object"), ("comment", "string")],
        )?;
        let url = rq["url"].as_str().unwrap();
        if super::text::UrlParts::parse(url).is_none() {
            return Err(format!("{at}.request.url {url:?} is not absolute"));
        }
        cookies(&rq["cookies"], &format!("{at}.request.cookies"))?;
        nv(&rq["headers"], &format!("{at}.request.headers"))?;
        nv(&rq["queryString"], &format!("{at}.request.queryString"))?;
        if let Some(pd) = rq.get("postData") {
            obj(
                pd,
                &format!("{at}.request.postData"),
                &[("mimeType", "string")],
                &[
                    ("params", "array"),
                    ("text", "string"),
                    ("comment", "string"),
                ],
            )?;
        }
        let rs = obj(
            &o["response"],
            &format!("{at}.response"),
            &[
                ("status", "int"),
                ("statusText", "string"),
                ("httpVersion", "string"),
                ("cookies", "array"),
                ("headers", "array"),
                ("content", "object"),
                ("redirectURL", "string"),
                ("headersSize", "int"),
                ("bodySize", "int"),
            ],
            &[("comment", "string")],
        )?;
        cookies(&rs["cookies"], &format!("{at}.response.cookies"))?;
        nv(&rs["headers"], &format!("{at}.response.headers"))?;
        obj(
            &rs["content"],
            &format!("{at}.response.content"),
            &[("size", "int"), ("mimeType", "string")],
            &[
                ("compression", "int"),
                ("text", "string"),
                ("encoding", "string"),
                ("comment", "string"),
            ],
        )?;
        obj(
            &o["cache"],
            &format!("{at}.cache"),
            &[],
            &[
                ("beforeRequest", "object"),
                ("afterRequest", "object"),
                ("comment", "string"),
            ],
        )?;
        let t = obj(
            &o["timings"],
            &format!("{at}.timings"),
            &[
                ("send", "number"),
                ("wait", "number"),
                ("receive", "number"),
            ],
            &[
                ("blocked", "number"),
                ("dns", "number"),
                ("connect", "number"),
                ("ssl", "number"),
                ("comment", "string"),
            ],
        )?;
        for k in ["send", "wait", "receive"] {
            if t[k].as_f64().unwrap() < 0.0 {
                return Err(format!("{at}.timings.{k} is negative"));
            }
        }
        for k in ["blocked", "dns", "connect", "ssl"] {
            if let Some(x) = t.get(k).and_then(Value::as_f64) {
                if x < 0.0 && x != -1.0 {
                    return Err(format!("{at}.timings.{k} is negative but not -1"));
                }
            }
        }
    }
    Ok(entries.len())
}

#[test]
fn checker_rejects_what_it_should() {
    let good = write_all(&[sample_exchanges()[0].clone()]);
    let v: Value = serde_json::from_slice(&good).unwrap();
    assert_eq!(check_har12(&v), Ok(1));
    for (ptr, bad) in [
        ("/log/entries/0/request/method", json!(1)),
        ("/log/entries/0/timings/send", json!(-1)),
        ("/log/entries/0/response/status", json!("200")),
        ("/log/entries/0/startedDateTime", json!("yesterday")),
        ("/log/entries/0/request/url", json!("/relative")),
    ] {
        let mut v = v.clone();
        *v.pointer_mut(ptr).unwrap() = bad;
        assert!(check_har12(&v).is_err(), "{ptr}");
    }
    let mut v2 = v.clone();
    v2["log"]["entries"][0]["request"]["extra"] = json!(1);
    assert!(check_har12(&v2).is_err());
    let mut v3 = v;
    v3["log"]["entries"][0]["response"]
        .as_object_mut()
        .unwrap()
        .remove("content");
    assert!(check_har12(&v3).is_err());
}

fn headers(pairs: &[(&str, &[u8])]) -> Headers {
    let mut h = Headers::new();
    for (n, v) in pairs {
        h.push(*n, v.to_vec());
    }
    h
}

/// Exchanges with the awkward cases: wire-form chunked+gzip bodies, binary bodies and header
/// values, interim responses, incomplete exchanges, nanosecond timing, odd targets.
fn sample_exchanges() -> Vec<Exchange> {
    let t0 = 1_700_000_000_123_456_789;
    let gz = crate::decode::encode_coding("gzip", b"{\"ok\":true}").unwrap();
    let mut out = Vec::new();

    let mut a = Exchange::new(
        Request {
            method: "POST".into(),
            target: "/api/items?x=1&y=%20".into(),
            version: Version::Http11,
            headers: headers(&[
                ("Host", b"shop.example:8080"),
                ("Cookie", b"session=abc; theme=dark"),
                ("X-Latin1", b"caf\xe9"),
                ("X-Folded", b"a\r\n b"),
                ("Content-Type", b"application/json"),
            ]),
            body: b"{\"name\":\"\xc3\xa9\"}".to_vec(),
            body_form: BodyForm::Wire,
        },
        t0,
    );
    a.interim.push(Response {
        version: Version::Http11,
        status: 100,
        reason: "Continue".into(),
        ..Default::default()
    });
    a.response = Some(Response {
        version: Version::Http11,
        status: 201,
        reason: "Created".into(),
        headers: headers(&[
            ("Transfer-Encoding", b"chunked"),
            ("Content-Encoding", b"gzip"),
            (
                "Set-Cookie",
                b"id=1; Path=/; Expires=Wed, 21 Oct 2015 07:28:00 GMT; HttpOnly",
            ),
            ("Set-Cookie", b"b=2"),
        ]),
        body: crate::decode::chunk(&gz),
        body_form: BodyForm::Wire,
    });
    a.timing = Timing {
        request_start: t0,
        request_end: Some(t0 + 1_001),
        response_start: Some(t0 + 5_000_123),
        response_end: Some(t0 + 5_999_999),
    };
    a.connection = ConnectionInfo {
        client: Some("10.0.0.1:50000".parse().unwrap()),
        server: Some("10.0.0.2:8080".parse().unwrap()),
        id: Some(0),
        index: 0,
        tls: false,
    };
    out.push(a);

    // No response; binary decoded request body; absolute-form target; IPv6 server on 443.
    let mut b = Exchange::new(
        Request {
            method: "PUT".into(),
            target: "http://proxy.example/x".into(),
            version: Version::Http10,
            headers: headers(&[("Content-Type", b"application/octet-stream")]),
            body: vec![0, 159, 146, 150, 255],
            body_form: BodyForm::Decoded,
        },
        t0 + 10,
    );
    b.incomplete = Some(Incomplete::CaptureEnded);
    b.timing.request_end = Some(t0 + 5);
    b.connection.server = Some("[2001:db8::1]:443".parse().unwrap());
    b.connection.id = Some(1);
    out.push(b);

    // HTTP/2 with pseudo-headers; undecodable wire body (bad gzip); truncated; unknown send,
    // negative wait (early response).
    let mut c = Exchange::new(
        Request {
            method: "GET".into(),
            target: "/h2".into(),
            version: Version::Http2,
            headers: headers(&[(":authority", b"h2.example"), (":scheme", b"https")]),
            ..Default::default()
        },
        t0 + 20,
    );
    c.response = Some(Response {
        version: Version::Http2,
        status: 200,
        headers: headers(&[("content-encoding", b"gzip")]),
        body: b"not gzip".to_vec(),
        body_form: BodyForm::Wire,
        ..Default::default()
    });
    c.incomplete = Some(Incomplete::TruncatedBody);
    c.timing.response_start = Some(t0 + 19);
    c.connection.id = Some(0);
    c.connection.index = 1;
    c.connection.server = Some("10.0.0.2:8080".parse().unwrap());
    // An h2 exchange is TLS in practice; the URL says so from the model's flag alone.
    c.connection.tls = true;
    out.push(c);

    // Odd targets with no host at all.
    for (i, (m, t)) in [("OPTIONS", "*"), ("CONNECT", "db.example:443")]
        .iter()
        .enumerate()
    {
        let mut x = Exchange::new(
            Request {
                method: m.to_string(),
                target: t.to_string(),
                version: Version::Other("spdy".into()),
                ..Default::default()
            },
            t0 + 30 + i as i64,
        );
        x.response = Some(Response {
            version: Version::Http09,
            status: 204,
            reason: "No Content ünïcode".into(),
            ..Default::default()
        });
        out.push(x);
    }
    out
}

/// What a HAR file cannot tell apart: an exchange without a response is always marked
/// incomplete.
fn normalize(mut x: Exchange) -> Exchange {
    if x.response.is_none() && x.incomplete.is_none() {
        x.incomplete = Some(Incomplete::NoResponse);
    }
    x
}

/// The fields in which two exchanges differ (bodies by length, to keep messages short).
fn diff(a: &Exchange, b: &Exchange) -> String {
    let mut out = Vec::new();
    let mut cmp = |what: &str, x: String, y: String| {
        if x != y {
            out.push(format!("{what}: {x} != {y}"));
        }
    };
    let body =
        |b: &[u8], f: BodyForm| format!("{} bytes {f:?} {:?}", b.len(), &b[..b.len().min(40)]);
    cmp("method", a.request.method.clone(), b.request.method.clone());
    cmp("target", a.request.target.clone(), b.request.target.clone());
    cmp(
        "version",
        format!("{:?}", a.request.version),
        format!("{:?}", b.request.version),
    );
    cmp(
        "headers",
        format!("{:?}", a.request.headers),
        format!("{:?}", b.request.headers),
    );
    cmp(
        "body",
        body(&a.request.body, a.request.body_form),
        body(&b.request.body, b.request.body_form),
    );
    match (&a.response, &b.response) {
        (Some(r), Some(s)) => {
            cmp(
                "status",
                format!("{} {:?} {:?}", r.status, r.reason, r.version),
                format!("{} {:?} {:?}", s.status, s.reason, s.version),
            );
            cmp(
                "resp headers",
                format!("{:?}", r.headers),
                format!("{:?}", s.headers),
            );
            cmp(
                "resp body",
                body(&r.body, r.body_form),
                body(&s.body, s.body_form),
            );
        }
        (r, s) => cmp(
            "response",
            format!("{:?}", r.is_some()),
            format!("{:?}", s.is_some()),
        ),
    }
    cmp(
        "interim",
        format!("{:?}", a.interim),
        format!("{:?}", b.interim),
    );
    cmp(
        "timing",
        format!("{:?}", a.timing),
        format!("{:?}", b.timing),
    );
    cmp(
        "connection",
        format!("{:?}", a.connection),
        format!("{:?}", b.connection),
    );
    cmp(
        "incomplete",
        format!("{:?}", a.incomplete),
        format!("{:?}", b.incomplete),
    );
    out.join("; ")
}

fn round_trip(xs: &[Exchange]) -> (Vec<Exchange>, Vec<u8>) {
    let bytes = write_all(xs);
    let v: Value = serde_json::from_slice(&bytes).expect("writer output is JSON");
    assert_eq!(check_har12(&v), Ok(xs.len()));
    let (back, errs) = read_all(bytes.clone());
    assert!(errs.is_empty(), "{errs:?}");
    (back, bytes)
}

#[test]
fn write_then_read_gives_the_same_exchanges() {
    let xs = sample_exchanges();
    let (back, bytes) = round_trip(&xs);
    assert_eq!(back.len(), xs.len());
    for (a, b) in xs.into_iter().zip(back) {
        assert_eq!(normalize(a), b);
    }
    // Standard fields say what they can, for other tools.
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    let e0 = &v["log"]["entries"][0];
    assert_eq!(
        e0["request"]["url"],
        "http://shop.example:8080/api/items?x=1&y=%20"
    );
    assert_eq!(
        e0["request"]["queryString"][1],
        json!({"name": "y", "value": "%20"})
    );
    assert_eq!(
        e0["request"]["cookies"][1],
        json!({"name": "theme", "value": "dark"})
    );
    assert_eq!(e0["request"]["postData"]["text"], "{\"name\":\"é\"}");
    // The request body was wire form and decodes to itself: said so, not duplicated.
    assert_eq!(e0["request"]["_bodyForm"], "wire");
    assert!(e0["request"].get("_wireBody").is_none());
    assert_eq!(e0["response"]["content"]["text"], "{\"ok\":true}");
    assert_eq!(e0["response"]["content"]["size"], 11);
    assert!(e0["response"]["_wireBody"].is_string());
    assert_eq!(
        e0["response"]["cookies"][0]["expires"],
        "2015-10-21T07:28:00.000Z"
    );
    assert_eq!(e0["response"]["cookies"][0]["httpOnly"], true);
    assert_eq!(e0["request"]["headers"][2]["value"], "caf\u{fffd}");
    assert_eq!(e0["request"]["headers"][2]["_valueBase64"], "Y2Fm6Q==");
    assert_eq!(e0["startedDateTime"], "2023-11-14T22:13:20.123456789Z");
    assert_eq!(e0["timings"]["send"], 0.001001);
    assert_eq!(e0["serverIPAddress"], "10.0.0.2");
    assert!(e0.get("_serverPort").is_none());
    let e1 = &v["log"]["entries"][1];
    assert_eq!(e1["response"]["status"], 0);
    assert_eq!(e1["_incomplete"], "capture_ended");
    assert_eq!(e1["request"]["url"], "http://proxy.example/x");
    assert_eq!(e1["request"]["postData"]["_encoding"], "base64");
    assert_eq!(e1["serverIPAddress"], "2001:db8::1");
    assert_eq!(e1["_serverPort"], 443);
    let e2 = &v["log"]["entries"][2];
    assert_eq!(e2["request"]["url"], "https://h2.example/h2");
    assert_eq!(e2["timings"]["send"], 0);
    assert_eq!(e2["timings"]["_send"], Value::Null);
    assert_eq!(e2["timings"]["wait"], 0);
    assert_eq!(e2["timings"]["_wait"], -0.000001);
    assert!(e2["response"]["_decodeError"].is_string());
    assert_eq!(
        v["log"]["entries"][3]["request"]["url"],
        "http://unknown.invalid/"
    );
    assert_eq!(
        v["log"]["entries"][4]["request"]["url"],
        "https://db.example:443"
    );
}

#[test]
fn shared_hars_survive_a_write_read_cycle() {
    let dir = data_dir().join("har");
    for ex in manifest().iter().filter(|e| e.json_error.is_none()) {
        let (xs, _) = read_all(std::fs::read(dir.join(&ex.name)).unwrap());
        let (back, _) = round_trip(&xs);
        assert_eq!(back.len(), xs.len(), "{}", ex.name);
        let xs: Vec<_> = xs.into_iter().map(normalize).collect();
        for (i, (a, b)) in xs.iter().zip(&back).enumerate() {
            assert!(a == b, "{} exchange {i}: {}", ex.name, diff(a, b));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Properties.

fn arb_version() -> impl Strategy<Value = Version> {
    prop_oneof![
        Just(Version::Http09),
        Just(Version::Http10),
        Just(Version::Http11),
        Just(Version::Http2),
        Just(Version::Http3),
        Just(Version::Other("spdy".into())),
    ]
}

fn arb_headers() -> impl Strategy<Value = Headers> {
    let name = prop_oneof![
        "[A-Za-z][A-Za-z0-9-]{0,12}",
        Just("Host".to_string()),
        Just("Content-Encoding".to_string()),
        Just("Transfer-Encoding".to_string()),
        Just(":authority".to_string()),
    ];
    let value = prop_oneof![
        "[ -~]{0,20}".prop_map(String::into_bytes),
        Just(b"gzip".to_vec()),
        Just(b"chunked".to_vec()),
        proptest::collection::vec(any::<u8>(), 0..12),
    ];
    proptest::collection::vec((name, value), 0..6).prop_map(|hs| {
        let mut h = Headers::new();
        for (n, v) in hs {
            h.push(n, v);
        }
        h
    })
}

fn arb_form() -> impl Strategy<Value = BodyForm> {
    prop_oneof![Just(BodyForm::Wire), Just(BodyForm::Decoded)]
}

fn arb_response(status: std::ops::RangeInclusive<u16>) -> impl Strategy<Value = Response> {
    (
        arb_version(),
        status,
        "\\PC{0,12}",
        arb_headers(),
        proptest::collection::vec(any::<u8>(), 0..40),
        arb_form(),
    )
        .prop_map(
            |(version, status, reason, headers, body, body_form)| Response {
                version,
                status,
                reason,
                headers,
                body,
                body_form,
            },
        )
}

fn arb_exchange() -> impl Strategy<Value = Exchange> {
    let target = prop_oneof![
        "/[a-zA-Z0-9/?=&%._~-]{0,24}",
        "https?://[a-z]{1,8}(:[0-9]{1,5})?/[a-z0-9?=&]{0,10}",
        Just("*".to_string()),
        "[a-z]{1,8}:[0-9]{1,5}",
    ];
    let request = (
        "[A-Z]{1,8}",
        target,
        arb_version(),
        arb_headers(),
        proptest::collection::vec(any::<u8>(), 0..40),
        arb_form(),
    )
        .prop_map(
            |(method, target, version, headers, body, body_form)| Request {
                method,
                target,
                version,
                headers,
                body,
                body_form,
            },
        );
    let delta = proptest::option::of(-1_000_000_000i64..1_000_000_000_000);
    let addr = proptest::option::of(prop_oneof![
        (any::<[u8; 4]>(), any::<u16>()).prop_map(|(ip, p)| std::net::SocketAddr::from((ip, p))),
        (any::<[u16; 8]>(), any::<u16>()).prop_map(|(ip, p)| std::net::SocketAddr::from((ip, p))),
    ]);
    (
        request,
        proptest::option::of(arb_response(1..=999)),
        proptest::collection::vec(arb_response(100..=199), 0..2),
        (
            -4_000_000_000_000_000_000i64..4_000_000_000_000_000_000,
            delta.clone(),
            delta.clone(),
            delta,
        ),
        (addr.clone(), addr, proptest::option::of(0u64..3)),
        proptest::option::of(proptest::sample::select(Incomplete::ALL.to_vec())),
    )
        .prop_map(
            |(request, response, interim, (t0, d1, d2, d3), (client, server, conn), incomplete)| {
                let mut at = t0;
                let mut step = |d: Option<i64>| {
                    d.map(|d| {
                        at += d;
                        at
                    })
                };
                let request_end = step(d1);
                // Response times exist only with a response (the model's invariant, and HAR's).
                let (response_start, response_end) = if response.is_some() {
                    (step(d2), step(d3))
                } else {
                    (None, None)
                };
                let timing = Timing {
                    request_start: t0,
                    request_end,
                    response_start,
                    response_end,
                };
                Exchange {
                    request,
                    response,
                    interim,
                    timing,
                    connection: ConnectionInfo {
                        client,
                        server,
                        id: conn,
                        index: 0,
                        tls: false,
                    },
                    incomplete,
                }
            },
        )
}

/// Sorts by start time and numbers connections the way a reader would.
fn as_read(mut xs: Vec<Exchange>) -> Vec<Exchange> {
    xs.sort_by_key(|x| x.timing.request_start);
    let mut ids: HashMap<u64, (u64, u32, Option<std::net::SocketAddr>)> = HashMap::new();
    for x in &mut xs {
        if let Some(id) = x.connection.id {
            let n = ids.len() as u64;
            let slot = ids.entry(id).or_insert((n, 0, x.connection.server));
            x.connection.id = Some(slot.0);
            x.connection.index = slot.1;
            // One connection, one server.
            x.connection.server = slot.2;
            slot.1 += 1;
        }
    }
    xs.into_iter().map(normalize).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn prop_write_read_round_trip(xs in proptest::collection::vec(arb_exchange(), 0..6)) {
        let xs = as_read(xs);
        let (back, _) = round_trip(&xs);
        prop_assert_eq!(back.len(), xs.len());
        for (a, b) in xs.iter().zip(&back) {
            prop_assert!(a == b, "{}", diff(a, b));
        }
    }

    #[test]
    fn prop_reader_never_panics_on_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        for lenient in [false, true] {
            let n = reader_from(bytes.clone(), lenient).take(100).count();
            prop_assert!(n < 100);
        }
    }

    #[test]
    fn prop_reader_never_panics_on_json(v in arb_har_like()) {
        let text = v.to_string();
        for lenient in [false, true] {
            let _ = reader_from(text.clone().into_bytes(), lenient).take(100).count();
        }
        // And cut anywhere.
        let cut = text.len() / 2;
        let _ = reader_from(text.as_bytes()[..cut].to_vec(), false).count();
    }
}

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        "\\PC{0,10}".prop_map(Value::String),
        Just(json!("2020-01-01T00:00:00Z")),
        Just(json!("aGVsbG8=")),
        Just(json!("base64")),
        Just(json!(-1)),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::vec(
                (
                    prop_oneof![
                        "[a-z_]{0,8}",
                        proptest::sample::select(vec![
                            "method",
                            "url",
                            "status",
                            "headers",
                            "name",
                            "value",
                            "text",
                            "encoding",
                            "postData",
                            "params",
                            "content",
                            "timings",
                            "send",
                            "_wireBody",
                            "_target",
                            "_interim",
                            "_incomplete",
                            "_valueBase64",
                            "serverIPAddress",
                            "connection",
                            "httpVersion",
                            "mimeType",
                        ])
                        .prop_map(str::to_string),
                    ],
                    inner
                ),
                0..5
            )
            .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// JSON shaped like a HAR, with arbitrary values where the fields are.
fn arb_har_like() -> impl Strategy<Value = Value> {
    let entry = (
        arb_json(),
        arb_json(),
        arb_json(),
        arb_json(),
        arb_json(),
        arb_json(),
    )
        .prop_map(|(started, method, url, headers, response, timings)| {
            json!({
                "startedDateTime": started,
                "request": {"method": method, "url": url, "headers": headers,
                            "postData": {"text": url, "params": headers}},
                "response": response,
                "timings": timings,
                "_interim": [response],
                "serverIPAddress": method,
            })
        });
    prop_oneof![
        arb_json(),
        proptest::collection::vec(prop_oneof![entry, arb_json()], 0..4)
            .prop_map(|es| json!({"log": {"version": "1.2", "entries": es}})),
    ]
}
