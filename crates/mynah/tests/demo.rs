//! `mynah demo --quick`: the whole loop runs from the binary alone, and every step leaves what it
//! says it leaves.

use std::path::Path;
use std::process::Command;

fn json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{} is missing: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

#[test]
fn quick_demo_records_synthesizes_runs_replays_and_compares() {
    let dir = std::env::temp_dir().join(format!("mynah-demo-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let out = Command::new(env!("CARGO_BIN_EXE_mynah"))
        .args(["demo", "--quick", "-o"])
        .arg(&dir)
        .output()
        .expect("run mynah demo");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "mynah demo failed:\n{stderr}");
    for step in 1..=7 {
        assert!(
            stderr.contains(&format!("mynah demo [{step}/7]")),
            "step {step} not announced:\n{stderr}"
        );
    }

    // The production traffic went through the proxy and every proxied request was recorded.
    let production = json(&dir.join("production/summary.json"));
    let sent = production["total"]["requests"].as_u64().unwrap();
    assert!(sent > 20, "production traffic: {sent} requests");
    let recording = std::fs::read(dir.join("recording.gor")).unwrap();
    let records = recording.windows(3).filter(|w| w == b"\n1 ").count()
        + recording.starts_with(b"1 ") as usize;
    assert_eq!(
        records as u64, sent,
        "requests recorded vs sent by the production run"
    );
    // Sessions are masked before they reach the disk.
    let text = String::from_utf8_lossy(&recording);
    assert!(
        text.contains("Set-Cookie: session=mask-"),
        "session cookies not masked"
    );
    assert!(!text.contains("\"token\":\"") || text.contains("\"token\":\"mask-"));

    // The synthesized scenario ran with the added load shape; the replay replayed the recording.
    let scenario = std::fs::read_to_string(dir.join("synth/scenario.yaml")).unwrap();
    assert!(scenario.contains("Added by `mynah demo --quick`"));
    assert!(dir.join("synth/locustfile.py").exists());
    let synthetic = json(&dir.join("synthetic/summary.json"));
    assert!(synthetic["total"]["requests"].as_u64().unwrap() > 0);
    let replay = json(&dir.join("replay/summary.json"));
    assert_eq!(replay["kind"], "replay");
    assert_eq!(replay["replay"]["sent"].as_u64(), Some(sent));
    // `--endpoint-names template`: the replay's article pages are one endpoint, as in the
    // synthesized run, not one per recorded path.
    let names: Vec<&str> = replay["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["name"].as_str())
        .collect();
    assert!(names.contains(&"/articles/{article_id}"), "{names:?}");
    assert!(
        !names.iter().any(|n| n.starts_with("/articles/1")),
        "{names:?}"
    );
    for report in [
        "synthetic/report.html",
        "replay/report.html",
        "comparison.html",
    ] {
        let html = std::fs::read_to_string(dir.join(report)).unwrap();
        assert!(html.contains("<html"), "{report} is not HTML");
    }
    let comparison = json(&dir.join("comparison.json"));
    assert!(
        comparison.to_string().contains("/login"),
        "the comparison names the endpoints"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
