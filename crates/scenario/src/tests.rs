use std::path::Path;
use std::time::Duration;

use super::*;

const EXAMPLE: &str = r#"host: http://127.0.0.1:8080
data:
  accounts: { csv: accounts.csv, mode: unique }
users:
  - name: reader
    weight: 3
    wait_time: { between: [1, 3] }
    on_start:
      - request: { method: POST, path: /login, json: { user: "{{ accounts.user }}", password: "{{ accounts.password }}" } }
        extract: { token: { json: "$.token" } }
    tasks:
      - name: browse
        weight: 5
        sequence:
          - request: { method: GET, path: /search, query: { q: locust } }
          - request: { method: GET, path: /articles/1 }
  - name: buyer
    fixed_count: 2
    wait_time: { constant: 2 }
    tasks:
      - request: { method: POST, path: /api/cart, json: { item: "{{ random_int(1, 99) }}" } }
        checks: [ { status: [200, 201] }, { json: "$.received", exists: true } ]
load: { users: 50, spawn_rate: 10, run_time: 1m }
thresholds: [ "p95 < 300ms", "fail_rate < 1%" ]
"#;

fn p(text: &str) -> Result<Scenario, ScenarioError> {
    parse(text, Path::new("s.yaml"))
}

fn err(text: &str) -> String {
    match p(text) {
        Ok(s) => unreachable!("expected an error, parsed {s:?}"),
        Err(e) => e.to_string(),
    }
}

fn get(method: &str, path: &str) -> Request {
    Request {
        method: method.into(),
        path: path.into(),
        query: Default::default(),
        headers: Default::default(),
        body: None,
        name: None,
    }
}

fn step(request: Request) -> Step {
    Step {
        request,
        checks: vec![],
        extract: Default::default(),
    }
}

#[test]
fn example_parses_into_model() {
    let s = p(EXAMPLE).expect("example parses");
    assert_eq!(s.host.as_deref(), Some("http://127.0.0.1:8080"));
    assert_eq!(
        s.data["accounts"],
        DataFeed {
            csv: "accounts.csv".into(),
            mode: FeedMode::Unique
        }
    );
    assert_eq!(s.users.len(), 2);

    let reader = &s.users[0];
    assert_eq!(reader.name, "reader");
    assert_eq!(reader.spawn, Spawn::Weight(3));
    assert_eq!(reader.wait_time, Some(WaitTime::Between(1.0, 3.0)));
    let mut login = get("POST", "/login");
    login.body = Some(Body::Json(serde_json::json!({
        "user": "{{ accounts.user }}",
        "password": "{{ accounts.password }}"
    })));
    let mut login = step(login);
    login
        .extract
        .insert("token".into(), Extract::Json("$.token".into()));
    assert_eq!(reader.on_start, vec![login]);
    assert!(reader.on_stop.is_empty());
    let mut search = get("GET", "/search");
    search.query.insert("q".into(), "locust".into());
    assert_eq!(
        reader.tasks,
        vec![Task {
            name: "browse".into(),
            weight: 5,
            tags: vec![],
            body: TaskBody::Sequence(vec![step(search), step(get("GET", "/articles/1"))]),
        }]
    );

    let buyer = &s.users[1];
    assert_eq!(buyer.spawn, Spawn::FixedCount(2));
    assert_eq!(buyer.wait_time, Some(WaitTime::Constant(2.0)));
    let mut cart = get("POST", "/api/cart");
    cart.body = Some(Body::Json(
        serde_json::json!({ "item": "{{ random_int(1, 99) }}" }),
    ));
    let mut cart = step(cart);
    cart.checks = vec![
        Check::Status(vec![
            StatusRange { min: 200, max: 200 },
            StatusRange { min: 201, max: 201 },
        ]),
        Check::JsonExists {
            path: "$.received".into(),
            exists: true,
        },
    ];
    assert_eq!(
        buyer.tasks,
        vec![Task {
            name: "POST /api/cart".into(),
            weight: 1,
            tags: vec![],
            body: TaskBody::Request(cart),
        }]
    );

    assert_eq!(
        s.load,
        Some(Load::Users {
            users: 50,
            spawn_rate: 10.0,
            run_time: Some(Duration::from_secs(60)),
        })
    );
    assert_eq!(s.thresholds, vec!["p95 < 300ms", "fail_rate < 1%"]);
    assert_eq!(s.redirects, Redirects::default());
    assert_eq!(s.timeouts, Timeouts::default());
}

const MINIMAL_TASK: &str = "    tasks:\n      - request: { method: GET, path: / }\n";

#[test]
fn unknown_key_has_position_and_suggestion() {
    let text = format!("users:\n  - name: a\n    wait_tme: {{ constant: 1 }}\n{MINIMAL_TASK}");
    let e = err(&text);
    assert!(e.starts_with("s.yaml:3:5: unknown key \"wait_tme\""), "{e}");
    assert!(e.ends_with("did you mean \"wait_time\"?"), "{e}");
}

#[test]
fn unknown_key_far_from_everything_has_no_suggestion() {
    let e = err("zzzzzzzzzz: 1\n");
    assert!(e.starts_with("s.yaml:1:1: unknown key"), "{e}");
    assert!(!e.contains("did you mean"), "{e}");
}

#[test]
fn unknown_wait_time_kind_suggests() {
    let text = format!("users:\n  - name: a\n    wait_time: {{ constnt: 1 }}\n{MINIMAL_TASK}");
    let e = err(&text);
    assert!(e.starts_with("s.yaml:3:"), "{e}");
    assert!(e.contains("did you mean \"constant\"?"), "{e}");
}

#[test]
fn wrong_type_has_position() {
    let text = format!("users:\n  - name: a\n    weight: lots\n{MINIMAL_TASK}");
    let e = err(&text);
    assert_eq!(
        e,
        "s.yaml:3:13: invalid value, expected a non-negative integer"
    );
}

#[test]
fn bad_duration_has_position() {
    let text = format!("timeouts: {{ connect: 5 parsecs }}\nusers:\n  - name: a\n{MINIMAL_TASK}");
    let e = err(&text);
    assert!(e.starts_with("s.yaml:1:"), "{e}");
    assert!(e.contains("duration"), "{e}");
}

#[test]
fn bad_feed_mode_is_rejected() {
    let text = format!(
        "data:\n  a: {{ csv: a.csv, mode: shuffled }}\nusers:\n  - name: a\n{MINIMAL_TASK}"
    );
    let e = err(&text);
    assert!(e.starts_with("s.yaml:2:"), "{e}");
    assert!(e.contains("unique"), "{e}");
}

#[test]
fn weight_and_fixed_count_not_both() {
    let text = format!("users:\n  - name: a\n    weight: 1\n    fixed_count: 2\n{MINIMAL_TASK}");
    let e = err(&text);
    assert!(e.starts_with("s.yaml:2:"), "{e}");
    assert!(
        e.contains("users[0] (a): give `weight` or `fixed_count`, not both"),
        "{e}"
    );
}

#[test]
fn at_least_one_user_class() {
    assert!(err("host: http://x\n").contains("at least one user class"));
    assert!(err("users: []\n").contains("at least one user class"));
}

#[test]
fn user_class_needs_tasks() {
    assert!(err("users:\n  - name: a\n").contains("at least one task"));
}

#[test]
fn task_needs_exactly_one_of_request_or_sequence() {
    let none = "users:\n  - name: a\n    tasks:\n      - name: t\n        weight: 2\n";
    let e = err(none);
    assert!(e.starts_with("s.yaml:4:"), "{e}");
    assert!(
        e.contains("users[0] (a).tasks[0] (t): a task needs exactly one"),
        "{e}"
    );
    let both = "users:\n  - name: a\n    tasks:\n      - request: { method: GET, path: / }\n        sequence: [ { request: { method: GET, path: / } } ]\n";
    assert!(err(both).contains("exactly one of `request` or `sequence`"));
}

#[test]
fn between_needs_ordered_bounds() {
    let text = format!("users:\n  - name: a\n    wait_time: {{ between: [3, 1] }}\n{MINIMAL_TASK}");
    assert!(err(&text).contains("needs a <= b"));
}

#[test]
fn quantile_wait_times() {
    let ok = p(&format!(
        "users:\n  - name: a\n    wait_time: {{ quantiles: [0, 0.5, 0.5, 2] }}\n{MINIMAL_TASK}"
    ));
    let w = ok.unwrap().users[0].wait_time.clone().unwrap();
    assert_eq!(w, WaitTime::Quantiles(vec![0.0, 0.5, 0.5, 2.0]));
    // Three equal segments: 0..0.5, 0.5..0.5, 0.5..2.
    assert_eq!(w.quantile_at(0.0), Some(0.0));
    assert_eq!(w.quantile_at(1.0 / 6.0), Some(0.25));
    assert_eq!(w.quantile_at(0.5), Some(0.5));
    assert_eq!(w.quantile_at(1.0), Some(2.0));
    let bad = |list: &str| {
        err(&format!(
            "users:\n  - name: a\n    wait_time: {{ quantiles: {list} }}\n{MINIMAL_TASK}"
        ))
    };
    assert!(
        bad("[1]").contains("needs 2 to 1001 values"),
        "{}",
        bad("[1]")
    );
    assert!(bad("[2, 1]").contains("must not decrease"));
    assert!(bad("[-1, 1]").contains("non-negative"));
}

#[test]
fn replay_classes() {
    let ok = p("users:\n  - name: r\n    replay: { file: t.gor, pick: sequential }\n").unwrap();
    assert_eq!(
        ok.users[0].replay,
        Some(ReplayClass {
            file: "t.gor".into(),
            session_key: "auto".into(),
            pick: Pick::Sequential,
        })
    );
    assert!(ok.users[0].tasks.is_empty());
    let e = err(&format!(
        "users:\n  - name: r\n    replay: {{ file: t.gor }}\n{MINIMAL_TASK}"
    ));
    assert!(e.contains("remove its `tasks`"), "{e}");
    let e = err("users:\n  - name: r\n    replay: { file: t.gor, pick: shuffle }\n");
    assert!(e.contains("is not `random` or `sequential`"), "{e}");
    let e = err("users:\n  - name: r\n");
    assert!(e.contains("at least one task is required"), "{e}");
}

#[test]
fn session_lengths() {
    let ok = p(&format!(
        "users:\n  - name: a\n    session_length: {{ quantiles: [1, 2, 10] }}\n{MINIMAL_TASK}"
    ))
    .unwrap();
    let s = ok.users[0].session_length.clone().unwrap();
    assert_eq!(s.tasks_at(0.0), 1);
    assert_eq!(s.tasks_at(0.5), 2);
    assert_eq!(s.tasks_at(1.0), 10);
    let c = p(&format!(
        "users:\n  - name: a\n    session_length: {{ constant: 3 }}\n{MINIMAL_TASK}"
    ))
    .unwrap();
    assert_eq!(
        c.users[0].session_length.as_ref().map(|s| s.tasks_at(0.3)),
        Some(3)
    );
    let e = err(&format!(
        "users:\n  - name: a\n    session_length: {{ constant: 0 }}\n{MINIMAL_TASK}"
    ));
    assert!(
        e.contains("session_length: `constant` must be at least 1"),
        "{e}"
    );
    let e = err(&format!(
        "users:\n  - name: a\n    session_length: {{ quantiles: [3, 1] }}\n{MINIMAL_TASK}"
    ));
    assert!(e.contains("must not decrease"), "{e}");
}

#[test]
fn load_must_be_one_kind() {
    let base = format!("users:\n  - name: a\n{MINIMAL_TASK}");
    let e = err(&format!(
        "{base}load: {{ users: 5, stages: [ {{ duration: 1m, users: 5, spawn_rate: 1 }} ] }}\n"
    ));
    assert!(e.contains("load: give exactly one of"), "{e}");
    let stages = p(&format!(
        "{base}load: {{ stages: [ {{ duration: 1m30s, users: 5, spawn_rate: 1 }} ] }}\n"
    ))
    .expect("stages parse");
    assert_eq!(
        stages.load,
        Some(Load::Stages(vec![Stage {
            duration: Duration::from_secs(90),
            users: 5,
            spawn_rate: 1.0
        }]))
    );
    let arrival = p(&format!(
        "{base}load: {{ arrival: [ {{ duration: 10s, rate: 20, max_users: 100 }} ] }}\n"
    ))
    .expect("arrival parses");
    assert_eq!(
        arrival.load,
        Some(Load::Arrival(vec![ArrivalStage {
            duration: Duration::from_secs(10),
            rate: 20.0,
            max_users: Some(100)
        }]))
    );
}

#[test]
fn undefined_template_variable() {
    let text = "users:\n  - name: a\n    tasks:\n      - request: { method: GET, path: /x }\n      - sequence:\n          - request: { method: GET, path: \"/u/{{ id }}\" }\n            extract: { id: { json: \"$.id\" } }\n";
    let e = err(text);
    assert!(e.starts_with("s.yaml:6:"), "{e}");
    assert!(
        e.contains(
            "undefined template variable `id` in users[0] (a).tasks[1].sequence[0].request.path; defined here: random_int"
        ),
        "{e}"
    );
}

#[test]
fn templates_see_earlier_extractions_and_on_start() {
    let text = "data:\n  acc: { csv: a.csv }\nusers:\n  - name: a\n    on_start:\n      - request: { method: POST, path: /login }\n        extract: { token: { header: X-Token } }\n    on_stop:\n      - request: { method: POST, path: \"/logout/{{ token }}\" }\n    tasks:\n      - sequence:\n          - request: { method: GET, path: \"/u/{{ acc.id }}\", headers: { Authorization: \"Bearer {{ token }}\" } }\n            extract: { id: { regex: \"id=(\\\\d+)\" } }\n          - request: { method: GET, path: \"/u/{{ id }}/{{ uuid() }}/{{ user_index }}/{{ random_string(8) }}/{{ timestamp() }}\" }\n";
    let s = p(text).expect("parses");
    assert_eq!(s.users[0].tasks[0].name, "GET /u/{{ acc.id }}");
}

#[test]
fn undeclared_feed_and_unknown_helper() {
    let task = |path: &str| {
        format!("users:\n  - name: a\n    tasks:\n      - request: {{ method: GET, path: \"{path}\" }}\n")
    };
    assert!(
        err(&task("/{{ accounts.user }}")).contains("undefined template variable `accounts.user`")
    );
    assert!(err(&task("/{{ nope() }}")).contains("unknown template helper `nope`"));
    assert!(err(&task("/{{ random_int(9, 1) }}")).contains("bad arguments"));
    assert!(err(&task("/{{ x")).contains("unclosed"));
}

#[test]
fn checks_and_extracts_are_validated() {
    let with = |step_extra: &str| {
        format!("users:\n  - name: a\n    tasks:\n      - request: {{ method: GET, path: / }}\n        {step_extra}\n")
    };
    assert!(
        err(&with("checks: [ { status: 200, body_contains: x } ]")).contains("a check is one of")
    );
    assert!(err(&with("checks: [ { body_matches: \"(\" } ]")).contains("invalid regex"));
    assert!(err(&with("checks: [ { status: \"299-200\" } ]")).contains("invalid value"));
    assert!(err(&with("extract: { v: { regex: \"abc\" } }")).contains("capture group"));
    assert!(err(&with("extract: { v: { json: \"$.a\", cookie: c } }")).contains("exactly one of"));
    let ok = with("checks: [ { status: \"200-299\" }, { header: Content-Type, matches: json }, { max_latency: 300ms }, { body_contains: ok }, { json: \"$.a\", equals: 3 } ]");
    let s = p(&ok).expect("checks parse");
    let TaskBody::Request(step) = &s.users[0].tasks[0].body else {
        unreachable!("single request task");
    };
    assert_eq!(
        step.checks[0],
        Check::Status(vec![StatusRange { min: 200, max: 299 }])
    );
    assert_eq!(
        step.checks[2],
        Check::MaxLatency(Duration::from_millis(300))
    );
    assert_eq!(
        step.checks[4],
        Check::JsonEquals {
            path: "$.a".into(),
            equals: serde_json::json!(3)
        }
    );
}

#[test]
fn body_kinds_are_exclusive() {
    let text = "users:\n  - name: a\n    tasks:\n      - request: { method: POST, path: /, body: x, form: { a: b } }\n";
    assert!(err(text).contains("at most one of `json`, `form` or `body`"));
}

#[test]
fn top_level_settings() {
    let text = format!("headers: {{ User-Agent: mynah }}\ntimeouts: {{ connect: 5s, request: 300ms }}\nredirects: {{ follow: false, max: 3 }}\nusers:\n  - name: a\n{MINIMAL_TASK}");
    let s = p(&text).expect("parses");
    assert_eq!(s.headers["User-Agent"], "mynah");
    assert_eq!(s.timeouts.connect, Some(Duration::from_secs(5)));
    assert_eq!(s.timeouts.request, Some(Duration::from_millis(300)));
    assert_eq!(
        s.redirects,
        Redirects {
            follow: false,
            max: Some(3)
        }
    );
}

#[test]
fn durations() {
    assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
    assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
    assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
    assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
    for bad in ["", "5", "s", "1x", "1.5s", "-1s", "99999999999999999999h"] {
        assert!(parse_duration(bad).is_err(), "{bad}");
    }
}

#[test]
fn levenshtein_distances() {
    assert_eq!(levenshtein("kitten", "sitting"), 3);
    assert_eq!(levenshtein("", "abc"), 3);
    assert_eq!(levenshtein("wait_tme", "wait_time"), 1);
}

#[test]
fn garbage_never_panics() {
    for text in [
        "",
        ":",
        "- - -",
        "users: 5",
        "{{",
        "users:\n  - [1, 2]\n",
        "\u{0}",
    ] {
        assert!(p(text).is_err(), "{text:?}");
    }
}

/// The JSON Schema shipped for editors (`crates/scenario/scenario.schema.json`).
const SCHEMA: &str = include_str!("../scenario.schema.json");

/// A key no struct in `raw.rs` has, and far enough from all of them that no hint is added.
const NOT_A_KEY: &str = "zzzz_not_a_key";

/// The keys (or enum values) the parser accepts at the spot where `doc` puts [`NOT_A_KEY`],
/// read from its "unknown key/value ..., expected one of: ..." error. serde lists the
/// struct's own field names there, so these sets follow `raw.rs` without a hand-kept copy.
fn parser_keys(doc: &str) -> std::collections::BTreeSet<String> {
    let e = err(doc);
    let Some((_, list)) = e.split_once("expected one of: ") else {
        unreachable!("not an unknown-key error for {doc:?}: {e}");
    };
    let list = list.split("; did you mean").next().unwrap_or_default();
    list.split(',').map(|k| k.trim().to_string()).collect()
}

/// Follows a local `$ref` (`#/$defs/...`), repeatedly.
fn resolve<'a>(root: &'a serde_json::Value, node: &'a serde_json::Value) -> &'a serde_json::Value {
    match node.get("$ref").and_then(serde_json::Value::as_str) {
        Some(r) => {
            let target = r
                .strip_prefix('#')
                .and_then(|ptr| root.pointer(ptr))
                .unwrap_or_else(|| unreachable!("unresolved $ref {r}"));
            resolve(root, target)
        }
        None => node,
    }
}

/// The schema node reached from the root through `path`: a property name, `[]` for
/// array items, `{}` for map values.
fn schema_at<'a>(root: &'a serde_json::Value, path: &[&str]) -> &'a serde_json::Value {
    path.iter().fold(root, |node, seg| {
        let node = resolve(root, node);
        let next = match *seg {
            "[]" => node.get("items"),
            "{}" => node.get("additionalProperties"),
            key => node.get("properties").and_then(|p| p.get(key)),
        };
        next.unwrap_or_else(|| unreachable!("schema has no {seg:?} along {path:?}"))
    })
}

/// Property names the schema allows at `path`; such objects must be closed like the
/// parser's `deny_unknown_fields` structs.
fn schema_keys(root: &serde_json::Value, path: &[&str]) -> std::collections::BTreeSet<String> {
    let node = resolve(root, schema_at(root, path));
    assert_eq!(
        node.get("additionalProperties"),
        Some(&serde_json::Value::Bool(false)),
        "schema object at {path:?} must set additionalProperties: false"
    );
    let Some(props) = node
        .get("properties")
        .and_then(serde_json::Value::as_object)
    else {
        unreachable!("schema object at {path:?} has no properties");
    };
    props.keys().cloned().collect()
}

#[test]
fn schema_keys_match_parser_keys() {
    let schema: serde_json::Value = serde_json::from_str(SCHEMA).expect("schema is valid JSON");
    let k = NOT_A_KEY;
    let user = "users:\n  - name: a\n";
    let task = format!("{user}    tasks:\n      - request: {{ method: GET, path: / }}\n");
    let cases: Vec<(&str, String, Vec<&str>)> = vec![
        ("top level", format!("{k}: 1\n"), vec![]),
        ("user class", format!("{user}    {k}: 1\n"), vec!["users", "[]"]),
        (
            "task",
            format!("{user}    tasks:\n      - {k}: 1\n"),
            vec!["users", "[]", "tasks", "[]"],
        ),
        (
            "step in sequence",
            format!("{user}    tasks:\n      - sequence:\n          - {k}: 1\n"),
            vec!["users", "[]", "tasks", "[]", "sequence", "[]"],
        ),
        (
            "step in on_start",
            format!("{user}    on_start:\n      - {k}: 1\n"),
            vec!["users", "[]", "on_start", "[]"],
        ),
        (
            "step in on_stop",
            format!("{user}    on_stop:\n      - {k}: 1\n"),
            vec!["users", "[]", "on_stop", "[]"],
        ),
        (
            "request in task",
            format!("{user}    tasks:\n      - request: {{ {k}: 1 }}\n"),
            vec!["users", "[]", "tasks", "[]", "request"],
        ),
        (
            "request in step",
            format!("{user}    tasks:\n      - sequence:\n          - request: {{ {k}: 1 }}\n"),
            vec!["users", "[]", "tasks", "[]", "sequence", "[]", "request"],
        ),
        (
            "check in task",
            format!("{task}        checks: [ {{ {k}: 1 }} ]\n"),
            vec!["users", "[]", "tasks", "[]", "checks", "[]"],
        ),
        (
            "check in step",
            format!("{user}    on_start:\n      - request: {{ method: GET, path: / }}\n        checks: [ {{ {k}: 1 }} ]\n"),
            vec!["users", "[]", "on_start", "[]", "checks", "[]"],
        ),
        (
            "extract in task",
            format!("{task}        extract: {{ v: {{ {k}: 1 }} }}\n"),
            vec!["users", "[]", "tasks", "[]", "extract", "{}"],
        ),
        (
            "extract in step",
            format!("{user}    on_start:\n      - request: {{ method: GET, path: / }}\n        extract: {{ v: {{ {k}: 1 }} }}\n"),
            vec!["users", "[]", "on_start", "[]", "extract", "{}"],
        ),
        (
            "wait_time",
            format!("{user}    wait_time: {{ {k}: 1 }}\n"),
            vec!["users", "[]", "wait_time"],
        ),
        ("timeouts", format!("timeouts: {{ {k}: 1 }}\n"), vec!["timeouts"]),
        ("redirects", format!("redirects: {{ {k}: 1 }}\n"), vec!["redirects"]),
        ("data feed", format!("data: {{ f: {{ {k}: 1 }} }}\n"), vec!["data", "{}"]),
        ("load", format!("load: {{ {k}: 1 }}\n"), vec!["load"]),
        (
            "load stage",
            format!("load: {{ stages: [ {{ {k}: 1 }} ] }}\n"),
            vec!["load", "stages", "[]"],
        ),
        (
            "arrival stage",
            format!("load: {{ arrival: [ {{ {k}: 1 }} ] }}\n"),
            vec!["load", "arrival", "[]"],
        ),
    ];
    for (what, doc, path) in cases {
        let parser = parser_keys(&doc);
        assert!(parser.len() > 1, "{what}: too few keys read: {parser:?}");
        assert_eq!(schema_keys(&schema, &path), parser, "{what} keys differ");
    }

    // Feed modes are an enum of values, not keys.
    let modes = parser_keys(&format!("data: {{ f: {{ csv: f.csv, mode: {k} }} }}\n"));
    let mode = resolve(&schema, schema_at(&schema, &["data", "{}", "mode"]));
    let Some(values) = mode.get("enum").and_then(serde_json::Value::as_array) else {
        unreachable!("mode has no enum");
    };
    let values: std::collections::BTreeSet<String> = values
        .iter()
        .filter_map(|v| v.as_str().map(String::from))
        .collect();
    assert_eq!(values, modes);
}

#[test]
fn schema_is_well_formed() {
    use serde_json::Value;
    let schema: Value = serde_json::from_str(SCHEMA).expect("schema is valid JSON");
    assert_eq!(
        schema["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
    let Some(defs) = schema["$defs"].as_object() else {
        unreachable!("schema has no $defs");
    };
    // Every $ref resolves, every `required` key is a declared property, every def is used.
    let mut used = std::collections::BTreeSet::new();
    let mut stack = vec![&schema];
    while let Some(node) = stack.pop() {
        match node {
            Value::Object(map) => {
                if let Some(r) = map.get("$ref") {
                    let r = r.as_str().unwrap_or_default();
                    let name = r.strip_prefix("#/$defs/").unwrap_or_default();
                    assert!(defs.contains_key(name), "unresolved $ref {r:?}");
                    used.insert(name.to_string());
                }
                if let (Some(Value::Array(req)), Some(Value::Object(props))) =
                    (map.get("required"), map.get("properties"))
                {
                    for key in req {
                        let key = key.as_str().unwrap_or_default();
                        assert!(
                            props.contains_key(key),
                            "required {key:?} is not a property"
                        );
                    }
                }
                stack.extend(map.values());
            }
            Value::Array(items) => stack.extend(items),
            _ => {}
        }
    }
    let unused: Vec<&String> = defs.keys().filter(|d| !used.contains(*d)).collect();
    assert!(unused.is_empty(), "unused $defs: {unused:?}");
}
