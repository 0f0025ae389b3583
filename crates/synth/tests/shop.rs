//! The synthesis on the real shop capture: templates found, a scenario that mynah's parser
//! accepts, no secret in any output, a Locust file Python compiles, and fidelity against itself.

use std::path::{Path, PathBuf};

use mynah_synth::fidelity::{compare, Profile};
use mynah_synth::{learn, SynthOptions, TemplateLearner, WriteOptions};
use mynah_traffic::{Exchange, Pipeline, PipelineOptions, ReadOptions};

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/data/traffic/");

fn capture(rel: &str) -> PathBuf {
    let p = Path::new(DATA).join(rel);
    assert!(
        p.is_file(),
        "test capture not found at {} (the shared data set must be beside the repo)",
        p.display()
    );
    p
}

fn read(rel: &str) -> Vec<Exchange> {
    let path = capture(rel);
    let r =
        mynah_traffic::open(&path, None, &ReadOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    r.map(|x| x.unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .collect()
}

fn masked(rel: &str) -> Vec<Exchange> {
    let mut p = Pipeline::new(&PipelineOptions::default()).expect("default pipeline");
    read(rel).into_iter().filter_map(|x| p.apply(x)).collect()
}

fn opts() -> WriteOptions {
    WriteOptions {
        host: Some("http://127.0.0.1:18301".into()),
        data_dir: "data".into(),
    }
}

#[test]
fn shop_templates() {
    let xs = masked("gor/shop_capture.gor");
    let mut l = TemplateLearner::new();
    for x in &xs {
        l.add(&x.request);
    }
    let t = l.finish(0.001);
    let labels: Vec<String> = t.endpoints().iter().map(|e| e.label()).collect();
    println!("templates: {labels:#?}");
    for want in [
        "GET /",
        "GET /articles/{article_id}",
        "GET /users/{user_id}",
        "POST /api/cart",
        "GET /login?user={user}",
        "GET /search?page={page}&q={q}",
        "GET /missing/{missing_id}",
        "HEAD /articles/{article_id}",
    ] {
        assert!(
            labels.contains(&want.to_string()),
            "{want} not in {labels:?}"
        );
    }
}

#[test]
fn shop_scenario_parses_and_keeps_no_secret() {
    let raw = read("gor/shop_capture.gor");
    let xs = masked("gor/shop_capture.gor");
    let w = learn(&xs, &SynthOptions::default());
    let yaml = w.scenario_yaml(&opts());
    let files = w.data_files();
    let locust = w.locustfile(&opts());
    println!("{}", w.summary());
    println!("{yaml}");
    for (name, text) in &files {
        println!(
            "--- {name}\n{}",
            text.lines().take(5).collect::<Vec<_>>().join("\n")
        );
    }
    println!("{locust}");

    // For a manual run: MYNAH_SYNTH_OUT=DIR writes the files there.
    if let Some(dir) = std::env::var_os("MYNAH_SYNTH_OUT") {
        let dir = PathBuf::from(dir);
        std::fs::create_dir_all(dir.join("data")).expect("out dir");
        std::fs::write(dir.join("scenario.yaml"), &yaml).expect("write");
        std::fs::write(dir.join("locustfile.py"), &locust).expect("write");
        for (name, text) in &files {
            std::fs::write(dir.join("data").join(name), text).expect("write");
        }
    }

    // mynah's parser (with template validation) accepts it.
    let scenario = mynah_scenario::parse(&yaml, Path::new("synth.yaml"))
        .unwrap_or_else(|e| panic!("{e}\n{yaml}"));
    assert!(!scenario.users.is_empty());
    // Every feed the scenario declares is written.
    for feed in scenario.data.values() {
        let file = feed.csv.trim_start_matches("data/");
        assert!(files.iter().any(|(n, _)| n == file), "{file} not written");
    }
    // The validation is live: an undefined variable in the same file is refused.
    let broken = yaml.replacen("{{ token }}", "{{ nope }}", 1);
    let err = mynah_scenario::parse(&broken, Path::new("synth.yaml"))
        .expect_err("undefined variable accepted");
    assert!(
        err.message.contains("undefined template variable `nope`"),
        "{err}"
    );
    // The 15 recorded logins give 15 authenticated sessions.
    let auth: u64 = w
        .classes()
        .iter()
        .filter(|c| c.authenticated)
        .map(|c| c.sessions)
        .sum();
    assert_eq!(auth, 15, "{}", w.summary());

    // The logged-in sessions log in with a token extraction.
    assert!(yaml.contains("on_start:"), "{yaml}");
    assert!(yaml.contains("$.token"), "{yaml}");

    // No secret of the capture in any output.
    let mut secrets: Vec<String> = vec!["secret-token-".into(), "hunter2".into()];
    for x in &raw {
        for h in x.request.headers.iter() {
            if h.name.eq_ignore_ascii_case("authorization") || h.name.eq_ignore_ascii_case("cookie")
            {
                let v = h.value_str().to_string();
                secrets.push(v.clone());
                if let Some((_, rest)) = v.split_once(' ') {
                    secrets.push(rest.to_string());
                }
                if let Some((_, val)) = v.split_once('=') {
                    secrets.push(val.to_string());
                }
            }
        }
    }
    secrets.sort();
    secrets.dedup();
    let mut outputs = vec![
        ("scenario".to_string(), yaml.clone()),
        ("locustfile".into(), locust.clone()),
    ];
    outputs.extend(files.iter().cloned());
    for (name, text) in &outputs {
        for s in &secrets {
            assert!(!text.contains(s.as_str()), "{s:?} appears in {name}");
        }
    }

    // The Locust file compiles.
    let dir = std::env::temp_dir().join(format!("mynah-synth-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("locustfile.py");
    std::fs::write(&file, &locust).expect("write locustfile");
    match std::process::Command::new("python3")
        .args(["-m", "py_compile"])
        .arg(&file)
        .output()
    {
        Ok(out) => assert!(
            out.status.success(),
            "py_compile failed: {}\n{locust}",
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => println!("note: python3 not available ({e}); locustfile not compiled"),
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn shop_fidelity_against_itself_is_zero() {
    let xs = masked("gor/shop_capture.gor");
    let mut l = TemplateLearner::new();
    for x in &xs {
        l.add(&x.request);
    }
    let t = l.finish(0.001);
    let mut a = Profile::new();
    let mut b = Profile::new();
    for x in &xs {
        a.add(x, &t);
        b.add(x, &t);
    }
    let f = compare(&a, &b);
    println!("{}", f.table());
    println!("{}", f.to_json());
    for v in [
        f.endpoint_jsd,
        f.method_jsd,
        f.status_jsd,
        f.think_time_ks,
        f.request_size_ks,
        f.response_size_ks,
        f.session_length_ks,
    ] {
        assert_eq!(v, 0.0, "{}", f.table());
    }
}

#[test]
fn har_captures_do_not_break_the_model() {
    for rel in [
        "har/pagexray_304.har",
        "har/har2locust_reqres.in.har",
        "gor/datadog_ecommerce_requests_0.gor",
        "pcap/shop_capture.pcap",
        "pcap/pcapplusplus_http-packets.pcap",
    ] {
        let xs = masked(rel);
        let w = learn(&xs, &SynthOptions::default());
        let yaml = w.scenario_yaml(&WriteOptions::default());
        if let Err(e) = mynah_scenario::parse(&yaml, Path::new("synth.yaml")) {
            panic!("{rel}: {e}\n{yaml}");
        }
        let _ = w.locustfile(&WriteOptions::default());
        let _ = w.data_files();
        println!("{rel}:\n{}", w.summary());
    }
}
