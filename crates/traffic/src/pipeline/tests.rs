use std::net::SocketAddr;

use proptest::prelude::*;

use super::*;
use crate::model::{BodyForm, ConnectionInfo, Exchange, Headers, Request, Response};
use crate::wire;

fn opts() -> PipelineOptions {
    PipelineOptions {
        redact_key: Some("test-key".into()),
        ..Default::default()
    }
}

fn pipeline(o: PipelineOptions) -> Pipeline {
    Pipeline::new(&o).unwrap()
}

fn req(method: &str, target: &str, headers: &[(&str, &str)], body: &[u8]) -> Request {
    let mut h = Headers::new();
    for (n, v) in headers {
        h.push(*n, *v);
    }
    Request {
        method: method.into(),
        target: target.into(),
        headers: h,
        body: body.to_vec(),
        ..Default::default()
    }
}

fn resp(headers: &[(&str, &str)], body: &[u8]) -> Response {
    let mut h = Headers::new();
    for (n, v) in headers {
        h.push(*n, *v);
    }
    Response {
        status: 200,
        reason: "OK".into(),
        headers: h,
        body: body.to_vec(),
        ..Default::default()
    }
}

fn ex(r: Request) -> Exchange {
    Exchange::new(r, 1)
}

fn bytes_of(e: &Exchange) -> Vec<u8> {
    let mut out = wire::request_bytes(&e.request);
    if let Some(r) = &e.response {
        out.extend(wire::response_bytes(r));
    }
    out
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn err(o: PipelineOptions) -> String {
    Pipeline::new(&o).unwrap_err().to_string()
}

// -- errors -----------------------------------------------------------------------------------

#[test]
fn errors_name_the_flag_the_value_and_the_form() {
    let e = err(PipelineOptions {
        allow_header: vec!["Content-Type".into()],
        ..opts()
    });
    assert_eq!(
        e,
        "--allow-header \"Content-Type\": expected 'Name: REGEX', e.g. 'Content-Type: ^application/json'"
    );
    let cases: Vec<(PipelineOptions, &str)> = vec![
        (PipelineOptions { allow_url: vec!["(".into()], ..opts() }, "--allow-url \"(\": not a valid regular expression"),
        (PipelineOptions { deny_url: vec!["[a".into()], ..opts() }, "--deny-url"),
        (PipelineOptions { allow_method: vec!["GET POST".into()], ..opts() }, "--allow-method \"GET POST\": expected an HTTP method"),
        (PipelineOptions { deny_header: vec!["X: (".into()], ..opts() }, "--deny-header \"X: (\": not a valid regular expression"),
        (PipelineOptions { sample: Some("150%".into()), ..opts() }, "--sample \"150%\": expected a percentage from 0% to 100%"),
        (PipelineOptions { sample: Some("ten".into()), ..opts() }, "--sample \"ten\""),
        (PipelineOptions { sample_key: Some("ip".into()), ..opts() }, "--sample-key \"ip\": expected cookie:NAME, header:NAME or client-ip"),
        (PipelineOptions { sample_key: Some("cookie:".into()), ..opts() }, "--sample-key \"cookie:\": the name is missing"),
        (PipelineOptions { set_header: vec!["X-A".into()], ..opts() }, "--set-header \"X-A\": expected 'Name: value'"),
        (PipelineOptions { drop_header: vec!["a b".into()], ..opts() }, "--drop-header \"a b\": expected a header name"),
        (PipelineOptions { rewrite_url: vec!["/a:/b".into()], ..opts() }, "--rewrite-url \"/a:/b\": expected 'REGEX=>REPLACEMENT'"),
        (PipelineOptions { redact: vec!["body:x".into()], ..opts() }, "--redact \"body:x\": expected header:NAME, cookie:NAME, query:NAME, json:$.path, form:NAME or regex:PATTERN"),
        (PipelineOptions { redact: vec!["json:user.pw".into()], ..opts() }, "--redact \"json:user.pw\": expected a JSONPath"),
        (PipelineOptions { redact: vec!["regex:(".into()], ..opts() }, "--redact \"regex:(\": not a valid regular expression"),
        (PipelineOptions { redact: vec!["cookie:".into()], ..opts() }, "--redact \"cookie:\": the name is missing"),
        (PipelineOptions { redact_key: Some(String::new()), ..opts() }, "--redact-key \"\": expected a non-empty key"),
    ];
    for (o, want) in cases {
        let e = err(o);
        assert!(e.starts_with(want), "{e:?} should start with {want:?}");
    }
}

// -- filters ----------------------------------------------------------------------------------

#[test]
fn filters_url_method_and_headers() {
    let mut p = pipeline(PipelineOptions {
        allow_url: vec!["^/api/".into()],
        deny_url: vec!["debug=1".into()],
        allow_method: vec!["get,Post".into()],
        allow_header: vec!["Accept: json".into(), "Host: ^shop".into()],
        deny_header: vec!["User-Agent: (?i)bot".into()],
        no_default_redaction: true,
        ..opts()
    });
    let good = [("Accept", "application/json"), ("Host", "shop.example")];
    assert!(p.apply(ex(req("GET", "/api/x", &good, b""))).is_some());
    assert!(p
        .apply(ex(req("POST", "http://shop.example/api/x?a=1", &good, b"")))
        .is_some());
    assert!(p.apply(ex(req("DELETE", "/api/x", &good, b""))).is_none());
    assert!(p.apply(ex(req("GET", "/static/x", &good, b""))).is_none());
    assert!(p
        .apply(ex(req("GET", "/api/x?debug=1", &good, b"")))
        .is_none());
    assert!(p.apply(ex(req("GET", "/api/x", &good[..1], b""))).is_none());
    let bot = [good[0], good[1], ("User-Agent", "GoogleBot/2")];
    assert!(p.apply(ex(req("GET", "/api/x", &bot, b""))).is_none());
    let r = p.report();
    assert_eq!((r.seen, r.kept), (7, 2));
    assert_eq!(r.dropped.get("method"), Some(&1));
    assert_eq!(r.dropped.get("allow_url"), Some(&1));
    assert_eq!(r.dropped.get("deny_url"), Some(&1));
    assert_eq!(r.dropped.get("allow_header"), Some(&1));
    assert_eq!(r.dropped.get("deny_header"), Some(&1));
    assert!(
        r.to_string()
            .starts_with("pipeline: 7 seen, 2 kept; dropped 5"),
        "{r}"
    );
}

// -- sampling ---------------------------------------------------------------------------------

fn from_client(ip: &str, port: u16, cookie: Option<&str>) -> Exchange {
    let mut e = ex(req("GET", "/", &[], b""));
    if let Some(c) = cookie {
        e.request
            .headers
            .push("Cookie", format!("a=1; session={c}"));
    }
    e.connection = ConnectionInfo {
        client: Some(SocketAddr::new(ip.parse().unwrap(), port)),
        ..Default::default()
    };
    e
}

#[test]
fn sampling_is_deterministic_and_roughly_the_share() {
    let o = PipelineOptions {
        sample: Some("10%".into()),
        no_default_redaction: true,
        ..opts()
    };
    let mut a = pipeline(o.clone());
    let mut b = pipeline(o);
    let mut kept = 0;
    for i in 0..10_000u32 {
        let ip = format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255);
        let ka = a.apply(from_client(&ip, 1, None)).is_some();
        assert_eq!(ka, b.apply(from_client(&ip, 2, None)).is_some());
        kept += ka as u32;
    }
    assert!((800..1200).contains(&kept), "kept {kept} of 10000 at 10%");
    assert_eq!(a.report().sampled_out, 10_000 - kept as u64);
    for (share, want) in [("0%", 0), ("100", 50)] {
        let mut p = pipeline(PipelineOptions {
            sample: Some(share.into()),
            ..opts()
        });
        let n = (0..50)
            .filter(|i| {
                p.apply(from_client(&format!("10.0.0.{i}"), 1, None))
                    .is_some()
            })
            .count();
        assert_eq!(n, want, "{share}");
    }
}

#[test]
fn sampling_by_cookie_keeps_sessions_whole_and_counts_fallbacks() {
    let mut p = pipeline(PipelineOptions {
        sample: Some("50%".into()),
        sample_key: Some("cookie:session".into()),
        ..opts()
    });
    for s in 0..200 {
        let sid = format!("sess{s}");
        let first = p.apply(from_client("10.0.0.1", s, Some(&sid))).is_some();
        for port in 0..5 {
            let again = p
                .apply(from_client(&format!("10.9.{s}.{port}"), port, Some(&sid)))
                .is_some();
            assert_eq!(first, again, "session {sid} split");
        }
    }
    // Without the cookie: the client IP decides, and it is counted.
    p.apply(from_client("10.0.0.1", 9, None));
    assert_eq!(p.report().sample_key_fallback, 1);
    // The response that issues the cookie goes with the session.
    let mut login = from_client("10.1.1.1", 1, None);
    login.response = Some(resp(&[("Set-Cookie", "session=sess7; Path=/")], b""));
    let kept7 = p.apply(from_client("10.0.0.1", 1, Some("sess7"))).is_some();
    assert_eq!(p.apply(login).is_some(), kept7);
}

#[test]
fn fnv_is_fnv1a_64() {
    assert_eq!(fnv1a64(b""), 0xcbf29ce484222325);
    assert_eq!(fnv1a64(b"a"), 0xaf63dc4c8601ec8c);
}

// -- rewrites ---------------------------------------------------------------------------------

#[test]
fn rewrites_headers_and_url() {
    let mut p = pipeline(PipelineOptions {
        set_header: vec!["X-Env: test".into(), "Authorization: Bearer replay".into()],
        drop_header: vec!["x-debug".into()],
        rewrite_url: vec!["^/v1/(\\w+)=>/v2/${1}x".into(), "a b=>c d".into()],
        ..opts()
    });
    let e = p
        .apply(ex(req(
            "GET",
            "http://h/v1/users?q=1",
            &[
                ("X-Env", "prod"),
                ("X-Debug", "1"),
                ("x-env", "dup"),
                ("Authorization", "Bearer secret"),
            ],
            b"",
        )))
        .unwrap();
    assert_eq!(e.request.target, "http://h/v2/usersx?q=1");
    let h: Vec<(String, String)> = e
        .request
        .headers
        .iter()
        .map(|h| (h.name.clone(), h.value_str().into_owned()))
        .collect();
    assert_eq!(
        h,
        vec![
            ("X-Env".to_string(), "test".to_string()),
            ("Authorization".to_string(), "Bearer replay".to_string()),
        ]
    );
    let e = p.apply(ex(req("GET", "/a b", &[], b""))).unwrap();
    assert_eq!(e.request.target, "/c%20d");
    assert_eq!(p.report().urls_rewritten, 2);
}

// -- masking ----------------------------------------------------------------------------------

#[test]
fn pseudonyms_are_stable_per_key_and_distinct_per_secret() {
    let a = pipeline(opts());
    let b = pipeline(opts());
    let c = pipeline(PipelineOptions {
        redact_key: Some("other".into()),
        ..opts()
    });
    let r1 = pipeline(PipelineOptions::default());
    let m = a.pseudonym(b"tok1");
    assert!(m.starts_with("mask-") && m.len() == 21, "{m}");
    assert!(m[5..]
        .bytes()
        .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
    assert_eq!(m, b.pseudonym(b"tok1"));
    assert_ne!(m, a.pseudonym(b"tok2"));
    assert_ne!(m, c.pseudonym(b"tok1"));
    assert_ne!(
        m,
        r1.pseudonym(b"tok1"),
        "a random key differs from a given one"
    );
}

#[test]
fn default_policy_masks_auth_cookies_query_and_keeps_names() {
    let mut p = pipeline(opts());
    let mut e = ex(req(
        "GET",
        "/cb?code=1&access_token=abc%2Fdef&Password=hunter2&x=2",
        &[
            ("Authorization", "Bearer s3cr3t-token"),
            ("Proxy-Authorization", "Basic dXNlcjpwYXNz"),
            ("Cookie", "sid=AAA111; theme=dark"),
            ("X-Api-Key", "k-123"),
            ("Referer", "http://h/login?token=T0K&next=/"),
            ("Accept", "text/html"),
        ],
        b"",
    ));
    e.response = Some(resp(
        &[
            ("Set-Cookie", "sid=BBB222; Path=/; HttpOnly"),
            ("Location", "/home?sig=zz"),
        ],
        b"",
    ));
    let out = p.apply(e).unwrap();
    let keyed = pipeline(opts());
    let m = |s: &str| keyed.pseudonym(s.as_bytes());
    let h = &out.request.headers;
    assert_eq!(
        h.get_str("authorization").unwrap(),
        format!("Bearer {}", m("s3cr3t-token"))
    );
    assert_eq!(
        h.get_str("proxy-authorization").unwrap(),
        format!("Basic {}", m("dXNlcjpwYXNz"))
    );
    assert_eq!(
        h.get_str("cookie").unwrap(),
        format!("sid={}; theme={}", m("AAA111"), m("dark"))
    );
    assert_eq!(h.get_str("x-api-key").unwrap(), m("k-123"));
    assert_eq!(
        h.get_str("referer").unwrap(),
        format!("http://h/login?token={}&next=/", m("T0K"))
    );
    assert_eq!(h.get_str("accept").unwrap(), "text/html");
    assert_eq!(
        out.request.target,
        format!(
            "/cb?code=1&access_token={}&Password={}&x=2",
            m("abc/def"),
            m("hunter2")
        )
    );
    let rh = &out.response.as_ref().unwrap().headers;
    assert_eq!(
        rh.get_str("set-cookie").unwrap(),
        format!("sid={}; Path=/; HttpOnly", m("BBB222"))
    );
    assert_eq!(
        rh.get_str("location").unwrap(),
        format!("/home?sig={}", m("zz"))
    );
    let r = p.report();
    assert_eq!(r.redacted.get("header"), Some(&3));
    assert_eq!(r.redacted.get("cookie"), Some(&3));
    assert_eq!(r.redacted.get("query"), Some(&4));
}

#[test]
fn json_bodies_are_masked_at_any_depth_and_content_length_fixed() {
    let mut p = pipeline(opts());
    let body = br#"{"user": {"name": "ann", "Password": "pw1"}, "items": [{"token": "t1"}, {"api_key": 12345}], "n": 1}"#;
    let mut e = ex(req(
        "POST",
        "/login",
        &[
            ("Content-Type", "application/json"),
            ("Content-Length", &body.len().to_string()),
        ],
        body,
    ));
    e.response = Some(resp(
        &[("Content-Type", "application/json; charset=utf-8")],
        br#"{"access_token":"AT","refresh_token":"RT","expires_in":3600}"#,
    ));
    let out = p.apply(e).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.request.body).unwrap();
    assert_eq!(v["user"]["name"], "ann");
    assert_eq!(v["user"]["Password"], p.pseudonym(b"pw1"));
    assert_eq!(v["items"][0]["token"], p.pseudonym(b"t1"));
    assert_eq!(v["items"][1]["api_key"], p.pseudonym(b"12345"));
    assert_eq!(v["n"], 1);
    assert_eq!(
        out.request.headers.get_str("content-length").unwrap(),
        out.request.body.len().to_string()
    );
    let r = out.response.unwrap();
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["access_token"], p.pseudonym(b"AT"));
    assert_eq!(v["expires_in"], 3600);
    assert_eq!(
        r.headers.get_str("content-length").unwrap(),
        r.body.len().to_string()
    );
    assert_eq!(p.report().bodies_rewritten, 2);
}

#[test]
fn gzip_chunked_body_is_masked_and_stored_decoded() {
    let plain = br#"{"password":"gz-secret-value","ok":true}"#;
    let gz = crate::decode::encode_coding("gzip", plain).unwrap();
    let mut r = resp(
        &[
            ("Content-Type", "application/json"),
            ("Content-Encoding", "gzip"),
            ("Transfer-Encoding", "chunked"),
        ],
        &crate::decode::chunk(&gz),
    );
    r.body_form = BodyForm::Wire;
    let mut e = ex(req("GET", "/", &[], b""));
    e.response = Some(r);
    let mut p = pipeline(opts());
    let out = p.apply(e).unwrap();
    let r = out.response.unwrap();
    assert!(!r.headers.contains("content-encoding"));
    assert!(!r.headers.contains("transfer-encoding"));
    assert_eq!(
        r.headers.get_str("content-length").unwrap(),
        r.body.len().to_string()
    );
    let v: serde_json::Value = serde_json::from_slice(&r.decoded_body().unwrap()).unwrap();
    assert_eq!(v["password"], p.pseudonym(b"gz-secret-value"));
    let wire = wire::response_bytes(&r);
    assert!(!contains(&wire, b"gz-secret-value"));
    // And it parses back with the right length.
    let (back, head) = wire::parse_response_head(&wire).unwrap();
    assert_eq!(&wire[head..], &r.body[..]);
    assert_eq!(back.status, 200);
}

#[test]
fn invalid_json_and_undecodable_bodies_are_left_and_counted() {
    let mut p = pipeline(opts());
    let bad = b"{\"password\": \"x\", oops \xff";
    let out = p
        .apply(ex(req(
            "POST",
            "/",
            &[("Content-Type", "application/json")],
            bad,
        )))
        .unwrap();
    assert_eq!(out.request.body, bad);
    let out = p
        .apply(ex(req(
            "POST",
            "/",
            &[("Content-Encoding", "gzip")],
            b"not gzip at all",
        )))
        .unwrap();
    assert_eq!(out.request.body, b"not gzip at all");
    let r = p.report();
    assert_eq!(r.bodies_left.get("invalid_json"), Some(&1));
    assert_eq!(r.bodies_left.get("undecodable"), Some(&1));
    assert!(r.to_string().contains("invalid_json 1"), "{r}");
}

#[test]
fn form_bodies_and_cards() {
    let mut p = pipeline(opts());
    let body = b"user=ann&passwd=p%40ss+word&card=4111+1111+1111+1111&n=4111111111111112";
    let out = p
        .apply(ex(req(
            "POST",
            "/pay?pan=5555-5555-5555-4444",
            &[
                ("Content-Type", "application/x-www-form-urlencoded"),
                ("X-Card", "378282246310005"),
            ],
            body,
        )))
        .unwrap();
    let text = String::from_utf8(out.request.body.clone()).unwrap();
    assert_eq!(
        text,
        format!(
            "user=ann&passwd={}&card=4111+1111+1111+1111&n=4111111111111112",
            p.pseudonym(b"p@ss word")
        )
    );
    // `+` is not a card separator (only space and dash); Luhn-invalid runs stay.
    assert_eq!(
        out.request.target,
        format!("/pay?pan={}", p.pseudonym(b"5555555555554444"))
    );
    assert_eq!(
        out.request.headers.get_str("x-card").unwrap(),
        p.pseudonym(b"378282246310005")
    );
    let out = p
        .apply(ex(req(
            "POST",
            "/",
            &[("Content-Type", "text/plain")],
            b"card 4111 1111 1111 1111, ts 1700000000000",
        )))
        .unwrap();
    assert_eq!(
        out.request.body,
        format!(
            "card {}, ts 1700000000000",
            p.pseudonym(b"4111111111111111")
        )
        .into_bytes()
    );
    // Numbers that only happen to sit next to each other are not a card, nor is a run from 0,
    // nor a Luhn-valid millisecond timestamp (no issuer starts with 1).
    let text = b"X 944084190 943735057, 0000000000000000, 1795683846616, amex 3782 822463 10005";
    let out = p
        .apply(ex(req(
            "POST",
            "/",
            &[("Content-Type", "text/plain")],
            text,
        )))
        .unwrap();
    assert_eq!(
        out.request.body,
        format!(
            "X 944084190 943735057, 0000000000000000, 1795683846616, amex {}",
            p.pseudonym(b"378282246310005")
        )
        .into_bytes()
    );
    assert_eq!(p.report().redacted.get("card"), Some(&4));
}

#[test]
fn explicit_rules_without_defaults() {
    let mut p = pipeline(PipelineOptions {
        no_default_redaction: true,
        redact: vec![
            "header:X-Trace".into(),
            "cookie:sid".into(),
            "query:email".into(),
            "json:$.user.ssn".into(),
            "json:$..pin".into(),
            "form:name".into(),
            "regex:acct-(\\d+)".into(),
            "regex:SECRET[0-9]+".into(),
        ],
        ..opts()
    });
    let keyed = pipeline(opts());
    let m = |s: &str| keyed.pseudonym(s.as_bytes());
    let mut e = ex(req(
        "POST",
        "/u?email=a%40b.c&password=kept",
        &[
            ("Authorization", "Bearer kept"),
            ("X-Trace", "abc"),
            ("Cookie", "sid=1; other=2"),
            ("X-Note", "acct-42 and SECRET99"),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        b"name=Ann&password=kept",
    ));
    e.response = Some(resp(
        &[("Content-Type", "application/json")],
        br#"{"user":{"ssn":"123-45","pin":1},"a":[{"pin":"2"}],"password":"kept"}"#,
    ));
    let out = p.apply(e).unwrap();
    let h = &out.request.headers;
    assert_eq!(h.get_str("authorization").unwrap(), "Bearer kept");
    assert_eq!(h.get_str("x-trace").unwrap(), m("abc"));
    assert_eq!(
        h.get_str("cookie").unwrap(),
        format!("sid={}; other=2", m("1"))
    );
    assert_eq!(
        h.get_str("x-note").unwrap(),
        format!("acct-{} and {}", m("42"), m("SECRET99"))
    );
    assert_eq!(
        out.request.target,
        format!("/u?email={}&password=kept", m("a@b.c"))
    );
    assert_eq!(
        out.request.body,
        format!("name={}&password=kept", m("Ann")).into_bytes()
    );
    let v: serde_json::Value = serde_json::from_slice(&out.response.unwrap().body).unwrap();
    assert_eq!(v["user"]["ssn"], m("123-45"));
    assert_eq!(v["user"]["pin"], m("1"));
    assert_eq!(v["a"][0]["pin"], m("2"));
    assert_eq!(v["password"], "kept");
}

#[test]
fn nothing_changes_without_rules() {
    let mut p = pipeline(PipelineOptions {
        no_default_redaction: true,
        ..opts()
    });
    let mut e = ex(req(
        "POST",
        "/?password=x",
        &[
            ("Authorization", "Basic x"),
            ("Content-Type", "application/json"),
        ],
        b"{\"password\":\"x\"}",
    ));
    e.response = Some(resp(&[("Set-Cookie", "a=b")], b"4111111111111111"));
    assert_eq!(p.apply(e.clone()).unwrap(), e);
    assert_eq!(p.report().redacted_total(), 0);
}

// -- properties -------------------------------------------------------------------------------

fn secret() -> impl Strategy<Value = String> {
    // Upper-case letters never occur in a pseudonym or in the rest of the generated exchange.
    "[A-Z]{4}[A-Za-z0-9_.~-]{6,24}"
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn masked_exchanges_never_contain_the_secrets(
        bearer in secret(), basic in secret(), c1 in secret(), c2 in secret(), sc in secret(),
        qtok in secret(), pw in secret(), jtok in secret(), rtok in secret(),
        gzip_resp in any::<bool>(), chunked_req in any::<bool>(), key in "[a-z]{1,8}",
    ) {
        let form = format!("user=ann&password={pw}&x=1");
        let json_req = format!(r#"{{"login":{{"password":"{pw}","deep":[{{"token":"{jtok}"}}]}}}}"#);
        let (ct, body) = if chunked_req { ("application/json", json_req.into_bytes()) } else { ("application/x-www-form-urlencoded", form.into_bytes()) };
        let mut r = req(
            "POST",
            &format!("/login?next=/&api_key={qtok}"),
            &[
                ("Authorization", &format!("Bearer {bearer}")),
                ("Proxy-Authorization", &format!("Basic {basic}")),
                ("Cookie", &format!("sid={c1}; pref={c2}")),
                ("Content-Type", ct),
            ],
            &body,
        );
        if chunked_req {
            r.headers.push("Transfer-Encoding", "chunked");
            r.body = crate::decode::chunk(&r.body);
        }
        let mut e = ex(r);
        let json_resp = format!(r#"{{"session":{{"id":"{sc}"}},"refresh_token":"{rtok}"}}"#).into_bytes();
        let mut rs = resp(&[("Set-Cookie", &format!("sid={sc}; Path=/")), ("Content-Type", "application/json")], &json_resp);
        if gzip_resp {
            rs.headers.push("Content-Encoding", "gzip");
            rs.body = crate::decode::encode_coding("gzip", &json_resp).unwrap();
        }
        e.response = Some(rs);
        let mut p = pipeline(PipelineOptions { redact_key: Some(key), ..Default::default() });
        let out = p.apply(e).unwrap();
        let bytes = bytes_of(&out);
        let mut decoded = out.request.decoded_body().unwrap().into_owned();
        decoded.extend_from_slice(&out.response.as_ref().unwrap().decoded_body().unwrap());
        for s in [&bearer, &basic, &c1, &c2, &sc, &qtok, &pw, &jtok, &rtok] {
            prop_assert!(!contains(&bytes, s.as_bytes()), "{} survived in {}", s, String::from_utf8_lossy(&bytes));
            prop_assert!(!contains(&decoded, s.as_bytes()), "{} survived decoded", s);
        }
        // Framing is right: the request parses back whole.
        let back = wire::parse_request(&wire::request_bytes(&out.request)).unwrap();
        prop_assert_eq!(back.request.decoded_body().unwrap().len(), out.request.decoded_body().unwrap().len());
    }

    #[test]
    fn sampling_keeps_or_drops_a_key_whole(
        share in 0u32..=100, keys in proptest::collection::vec("[a-z0-9]{1,12}", 1..20), key_header in any::<bool>(),
    ) {
        let sample_key = if key_header { "header:X-User" } else { "cookie:session" };
        let mut p = pipeline(PipelineOptions { sample: Some(format!("{share}%")), sample_key: Some(sample_key.into()), ..opts() });
        for k in &keys {
            let mut decisions = Vec::new();
            for port in 0..4u16 {
                let mut e = from_client(&format!("10.0.{port}.1"), port, None);
                if key_header { e.request.headers.push("X-User", k.as_str()); } else { e.request.headers.push("Cookie", format!("session={k}")); }
                decisions.push(p.apply(e).is_some());
            }
            prop_assert!(decisions.iter().all(|d| *d == decisions[0]), "{:?}", decisions);
        }
    }

    #[test]
    fn the_pipeline_never_panics(
        method in "[A-Za-z]{0,8}", target in "\\PC{0,40}", hname in "[A-Za-z-]{1,12}",
        hval in proptest::collection::vec(any::<u8>(), 0..40), body in proptest::collection::vec(any::<u8>(), 0..200),
        ct in prop_oneof![Just("application/json"), Just("application/x-www-form-urlencoded"), Just("text/plain"), Just("")],
        enc in prop_oneof![Just(""), Just("gzip"), Just("br"), Just("chunked")],
    ) {
        let mut p = pipeline(PipelineOptions {
            allow_url: vec![".".into()], deny_url: vec!["zzz".into()], allow_header: vec![format!("{hname}: .*")],
            sample: Some("100%".into()), redact: vec!["json:$..a".into(), "regex:[0-9]+".into(), "form:a".into(), "query:a".into(), "cookie:a".into()],
            set_header: vec!["X: y".into()], rewrite_url: vec!["(.)=>$1".into()],
            ..opts()
        });
        let mut r = Request { method, target, ..Default::default() };
        r.headers.0.push(crate::model::Header::new(hname.clone(), hval));
        r.headers.push("Cookie", "a=1;;=;b");
        if !ct.is_empty() { r.headers.push("Content-Type", ct); }
        match enc { "" => {}, "chunked" => r.headers.push("Transfer-Encoding", "chunked"), e => r.headers.push("Content-Encoding", e) }
        r.body = body.clone();
        let mut e = ex(r.clone());
        e.response = Some(Response { headers: r.headers.clone(), body, ..Default::default() });
        let _ = p.apply(e);
        prop_assert_eq!(p.report().seen, 1);
    }
}

#[test]
fn secrets_seen_once_are_masked_where_they_appear_again() {
    let mut p = pipeline(opts());
    // The session id the server issues is echoed in the page of the same exchange and in a link
    // of a later one; the short value `dark` is not looked for elsewhere.
    let mut e = ex(req(
        "POST",
        "/login",
        &[("Content-Type", "text/plain")],
        b"sid is SID-123456789",
    ));
    e.response = Some(resp(
        &[
            ("Set-Cookie", "sid=SID-123456789; Path=/"),
            ("Set-Cookie", "theme=dark"),
            ("Content-Type", "text/html"),
        ],
        b"<p>your session: SID-123456789, theme dark</p>",
    ));
    let out = p.apply(e).unwrap();
    let m = p.pseudonym(b"SID-123456789");
    assert_eq!(out.request.body, format!("sid is {m}").into_bytes());
    assert_eq!(
        out.response.unwrap().body,
        format!("<p>your session: {m}, theme dark</p>").into_bytes()
    );
    let out = p
        .apply(ex(req(
            "GET",
            "/next?s=SID-123456789",
            &[("X-Echo", "SID-123456789")],
            b"",
        )))
        .unwrap();
    assert_eq!(out.request.target, format!("/next?s={m}"));
    assert_eq!(out.request.headers.get_str("x-echo").unwrap(), m);
    assert_eq!(p.report().redacted.get("seen_secret"), Some(&4));
}
