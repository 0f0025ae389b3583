//! The traffic pipeline through `mynah convert` on the shared captures: masking leaves no secret
//! behind and is stable under one key, filters and sampling keep what they say.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde_json::Value;

mod common;
use common::{mynah, ok, traffic};

fn tmp(name: &str) -> String {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("pipeline");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name).to_str().unwrap().to_string()
}

fn entries(har: &str) -> Vec<Value> {
    let v: Value = serde_json::from_slice(&std::fs::read(har).unwrap()).unwrap();
    v["log"]["entries"].as_array().unwrap().clone()
}

fn headers<'a>(msg: &'a Value) -> impl Iterator<Item = (String, &'a str)> + 'a {
    msg["headers"].as_array().into_iter().flatten().map(|h| {
        (
            h["name"].as_str().unwrap_or_default().to_ascii_lowercase(),
            h["value"].as_str().unwrap_or_default(),
        )
    })
}

/// The secrets of a capture converted without masking: Authorization credentials, every cookie
/// value, Set-Cookie values, and `password` fields of JSON and form request bodies.
fn secrets(har: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut add = |s: &str| {
        let s = s.trim();
        // Short values (`1`, `dark`) occur anywhere by chance; what is tested is real secrets.
        // A password spelled `password` cannot be told from the field's name.
        if s.len() >= 8 && !s.contains(['"', '\\']) && !s.eq_ignore_ascii_case("password") {
            out.insert(s.to_string());
        }
    };
    for e in entries(har) {
        for (name, value) in headers(&e["request"]) {
            match name.as_str() {
                "authorization" | "proxy-authorization" => {
                    add(value.split_once(' ').map_or(value, |(_, c)| c))
                }
                "cookie" => value
                    .split(';')
                    .filter_map(|p| p.split_once('='))
                    .for_each(|(_, v)| add(v)),
                _ => {}
            }
        }
        for (name, value) in headers(&e["response"]) {
            if name == "set-cookie" {
                let first = value.split(';').next().unwrap_or_default();
                if let Some((_, v)) = first.split_once('=') {
                    add(v);
                }
            }
        }
        if let Some(text) = e["request"]["postData"]["text"].as_str() {
            if let Ok(v) = serde_json::from_str::<Value>(text) {
                if let Some(pw) = v["password"].as_str() {
                    add(pw);
                }
            }
            for pair in text.split('&') {
                if let Some(("password", v)) = pair.split_once('=') {
                    add(v);
                }
            }
        }
    }
    out
}

/// The file with the id field of `.gor` meta lines (`1 ID TIMESTAMP LATENCY`) blanked.
fn without_gor_ids(bytes: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(bytes);
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let f: Vec<&str> = line.trim_end().split(' ').collect();
        if f.len() == 4 && ["1", "2", "3"].contains(&f[0]) && f[1].len() == 24 {
            out.push_str(&format!("{} ID {} {}\n", f[0], f[2], f[3]));
        } else {
            out.push_str(line);
        }
    }
    out.into_bytes()
}

const SECRET_CAPTURES: &[&str] = &[
    "pcap/shop_capture.pcap",
    "pcap/chrissanders_http_dvwa_clearlogin.pcapng",
    "pcap/chrissanders_http_post.pcapng",
    "har/har2locust_reqres.in.har",
    "har/harviewer_ie11.fiddler.har",
    "gor/isucon5_requests.gor",
];

#[test]
fn default_masking_leaves_no_secret_and_is_stable_under_a_key() {
    for (i, capture) in SECRET_CAPTURES.iter().enumerate() {
        let src = traffic(capture);
        let plain = tmp(&format!("plain{i}.har"));
        ok(&["convert", &src, "-o", &plain, "--no-default-redaction"]);
        let secrets = secrets(&plain);
        assert!(
            !secrets.is_empty(),
            "{capture}: no secrets found to test with"
        );
        for ext in ["har", "gor"] {
            let a = tmp(&format!("masked{i}a.{ext}"));
            let b = tmp(&format!("masked{i}b.{ext}"));
            let out = ok(&["convert", &src, "-o", &a, "--redact-key", "k1"]);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(stderr.contains("pipeline: "), "{stderr}");
            assert!(stderr.contains("masked "), "{stderr}");
            ok(&["convert", &src, "-o", &b, "--redact-key", "k1"]);
            let bytes = std::fs::read(&a).unwrap();
            // (.gor record ids are random per run, whatever the pipeline does.)
            assert!(
                without_gor_ids(&bytes) == without_gor_ids(&std::fs::read(&b).unwrap()),
                "{capture} -> {ext}: same key, different output"
            );
            let text = String::from_utf8_lossy(&bytes);
            for s in &secrets {
                assert!(
                    !text.contains(s.as_str()),
                    "{capture} -> {ext}: {s:?} survived masking"
                );
            }
            assert!(text.contains("mask-"), "{capture}");
        }
    }
    // The pseudonyms depend on the key.
    let src = traffic("pcap/shop_capture.pcap");
    let (k1, k2) = (tmp("k1.gor"), tmp("k2.gor"));
    ok(&["convert", &src, "-o", &k1, "--redact-key", "k1"]);
    ok(&["convert", &src, "-o", &k2, "--redact-key", "k2"]);
    assert!(
        without_gor_ids(&std::fs::read(&k1).unwrap())
            != without_gor_ids(&std::fs::read(&k2).unwrap())
    );
}

#[test]
fn allow_method_keeps_only_posts() {
    let src = traffic("gor/isucon5_requests.gor");
    let out = tmp("posts.har");
    let res = ok(&["convert", &src, "-o", &out, "--allow-method", "POST"]);
    let e = entries(&out);
    assert_eq!(e.len(), 77);
    assert!(e.iter().all(|e| e["request"]["method"] == "POST"));
    let stderr = String::from_utf8_lossy(&res.stderr);
    assert!(
        stderr.contains("1051 seen, 77 kept; dropped 974 (method 974)"),
        "{stderr}"
    );
}

#[test]
fn url_and_header_filters_and_rewrites() {
    let src = traffic("pcap/shop_capture.pcap");
    let out = tmp("filtered.har");
    ok(&[
        "convert",
        &src,
        "-o",
        &out,
        "--deny-url",
        "\\.(css|js|png)$",
        "--allow-header",
        "Authorization: ^Bearer ",
        "--set-header",
        "X-Replay: 1",
        "--drop-header",
        "User-Agent",
        "--rewrite-url",
        "^/(.*)=>/shop/$1",
    ]);
    let e = entries(&out);
    assert!(!e.is_empty());
    for e in &e {
        let h: BTreeMap<String, &str> = headers(&e["request"]).collect();
        assert!(h["authorization"].starts_with("Bearer mask-"), "{h:?}");
        assert_eq!(h["x-replay"], "1");
        assert!(!h.contains_key("user-agent"));
        let url = e["request"]["url"].as_str().unwrap();
        assert!(url.contains("/shop/"), "{url}");
    }
}

#[test]
fn sampling_by_client_ip_keeps_whole_clients() {
    let files = [
        "pcap/pcapplusplus_example.pcap",
        "pcap/chrissanders_http_espn.pcapng",
        "pcap/pcapplusplus_http-packets.pcap",
        "pcap/pcapplusplus_http-packets2.pcap",
        "pcap/suricata_http-protocol-nodup.pcap",
        "pcap/suricata_http-range-file.pcap",
        "pcap/suricata_filestore-filecontainer-http.pcap",
        "pcap/pcapplusplus_tcp-reassembly.pcap",
        "pcap/arkime_80211http.pcap",
        "pcap/chrissanders_http_dvwa_clearlogin.pcapng",
        "pcap/pcapplusplus_four_ipv6_http_streams.pcap",
        "pcap/chrissanders_http_ip4and6.pcapng",
        "pcap/arkime_http-post-upload.pcap",
        "pcap/suricata_http-sticky-start.pcap",
        "pcap/zeek_get.pcap",
        "pcap/zeek_post.pcap",
    ];
    let srcs: Vec<String> = files.iter().map(|f| traffic(f)).collect();
    let per_client = |har: &str| {
        let mut m: BTreeMap<String, usize> = BTreeMap::new();
        for e in entries(har) {
            let c = e["_client"].as_str().unwrap_or("?");
            *m.entry(c.rsplit_once(':').map_or(c, |(ip, _)| ip).to_string())
                .or_default() += 1;
        }
        m
    };
    let all = tmp("all.har");
    let mut args: Vec<&str> = vec!["convert"];
    args.extend(srcs.iter().map(String::as_str));
    args.extend(["-o", &all, "--no-default-redaction"]);
    ok(&args);
    let full = per_client(&all);
    assert!(full.len() >= 10, "{full:?}");

    let half = tmp("half.har");
    let mut args: Vec<&str> = vec!["convert"];
    args.extend(srcs.iter().map(String::as_str));
    args.extend(["-o", &half, "--sample", "50%", "--sample-key", "client-ip"]);
    let res = ok(&args);
    let kept = per_client(&half);
    for (ip, n) in &kept {
        assert_eq!(Some(n), full.get(ip), "client {ip} was split by sampling");
    }
    assert!(
        !kept.is_empty() && kept.len() < full.len(),
        "kept {kept:?} of {full:?}"
    );
    let stderr = String::from_utf8_lossy(&res.stderr);
    assert!(stderr.contains("sampled out "), "{stderr}");
}

#[test]
fn bad_flag_values_are_usage_errors() {
    let src = traffic("pcap/zeek_get.pcap");
    let out = tmp("bad.har");
    for (flag, value, want) in [
        ("--allow-header", "Content-Type", "expected 'Name: REGEX'"),
        ("--sample", "150%", "expected a percentage"),
        (
            "--sample-key",
            "session",
            "expected cookie:NAME, header:NAME or client-ip",
        ),
        ("--redact", "password", "expected header:NAME, cookie:NAME"),
        ("--rewrite-url", "/a", "expected 'REGEX=>REPLACEMENT'"),
        ("--deny-url", "(", "not a valid regular expression"),
    ] {
        let res = mynah(&["convert", &src, "-o", &out, flag, value]);
        let stderr = String::from_utf8_lossy(&res.stderr);
        assert_eq!(res.status.code(), Some(2), "{flag} {value}: {stderr}");
        assert!(
            stderr.contains(&format!("{flag} {value:?}")) && stderr.contains(want),
            "{flag} {value}: {stderr}"
        );
    }
}
