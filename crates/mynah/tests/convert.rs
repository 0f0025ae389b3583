//! `mynah convert` through the real binary: what goes in comes out, in time order, readable again.

use std::path::{Path, PathBuf};

use serde_json::Value;

mod common;
use common::{mynah, ok, traffic};

fn inspect(path: &Path) -> Value {
    let out = ok(&["inspect", "--json", path.to_str().unwrap()]);
    serde_json::from_slice(&out.stdout).unwrap()
}

fn tmp(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("convert");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

#[test]
fn pcap_to_gor_and_har_keeps_every_exchange() {
    let src = traffic("pcap/shop_capture.pcap");
    for (name, connections_known) in [
        ("shop.gor", false),
        ("shop.gor.gz", false),
        ("shop.har", true),
    ] {
        let out = tmp(name);
        ok(&["convert", &src, "-o", out.to_str().unwrap()]);
        let v = inspect(&out);
        assert_eq!(v["exchanges"], 274, "{name}: {v}");
        assert_eq!(v["with_response"], 274, "{name}: {v}");
        assert_eq!(v["interim_responses"], 1, "{name}: {v}");
        assert_eq!(
            v["connections"].is_null(),
            !connections_known,
            "{name}: {v}"
        );
    }
    // gzip is real gzip, not a renamed file.
    let gz = std::fs::read(tmp("shop.gor.gz")).unwrap();
    assert_eq!(&gz[..2], &[0x1f, 0x8b]);
}

#[test]
fn several_inputs_merge_in_time_order() {
    let a = traffic("pcap/zeek_get.pcap");
    let b = traffic("har/har2locust_reqres.in.har");
    let c = traffic("gor/etg_mapmaker_requests.gor");
    let out = tmp("merged.har");
    ok(&["convert", &a, &b, &c, "-o", out.to_str().unwrap()]);
    let har: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    let entries = har["log"]["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 1 + 2 + 1);
    let starts: Vec<&str> = entries
        .iter()
        .map(|e| e["startedDateTime"].as_str().unwrap())
        .collect();
    let mut sorted = starts.clone();
    sorted.sort();
    assert_eq!(starts, sorted, "entries must be in time order");
    assert_eq!(har["log"]["version"], "1.2");
}

#[test]
fn corrupt_input_still_writes_a_valid_file_and_fails() {
    let src = traffic("pcap/suricata_http-mime-truncated.pcap");
    let out = tmp("truncated.gor");
    let res = mynah(&["convert", &src, "-o", out.to_str().unwrap()]);
    assert_eq!(
        res.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    // What was read is written whole.
    assert_eq!(inspect(&out)["exchanges"], 8);
}
