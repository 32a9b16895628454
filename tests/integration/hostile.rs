//! Hostile input, by property: generated inputs (proptest), many cases, each rejected cleanly.
//!
//! - the JSON-RPC parser on arbitrary bytes, arbitrary JSON, deep nesting, huge bodies and
//!   invalid UTF-8: never a panic, every failure a parse (-32700) or request (-32600) error;
//! - the name rewrite on generated messages (any whitespace, key order, escapes, big numbers):
//!   every byte but the name literal is kept, and the name reads back;
//! - session ids: random strings, tampered tokens, `alg: none`, other keys, other algorithms,
//!   wrong claims, hairpin keys used as sessions (and back) are all refused;
//! - through the real Envoy: generated hostile bodies always get a JSON-RPC answer (never an
//!   empty 500, never a crash), and spoofed internal headers, however many and whatever their value, never
//!   reach the upstream.
//!
//! `HOSTILE_CASES` sets the number of cases of the cheap properties (default 10,000; the
//! expensive ones run a fraction of it), `HOSTILE_HTTP_CASES` the requests sent through Envoy
//! (default 300). The runs are bounded in time as well.
//!
//! cargo-fuzz was considered for the parser: it needs a nightly toolchain and libFuzzer, which
//! `make test` does not install; these properties run on stable in the normal test run.

use crate::common;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mcp_router::auth::session::SessionKeys;
use mcp_router::jsonrpc::{self, ParseError, TargetField};
use mcp_router::mcp::header;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{json, Value};

fn cases() -> u32 {
    std::env::var("HOSTILE_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000)
}

fn config(divide: u32) -> Config {
    Config {
        cases: (cases() / divide).max(1),
        max_shrink_time: 10_000,
        // Persisted failures would write into the source tree; a failure prints its input.
        failure_persistence: None,
        ..Config::default()
    }
}

/// Arbitrary JSON values, a few levels deep.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        any::<String>().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(any::<String>(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Whitespace JSON allows between tokens.
fn ws() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![Just(' '), Just('\n'), Just('\t'), Just('\r')],
        0..3,
    )
    .prop_map(|v| v.into_iter().collect())
}

/// A JSON string literal for `s`, each character written plainly or as a `\u` escape (with
/// surrogate pairs), as a client may.
fn literal(s: &str, escape: &[bool]) -> String {
    let mut out = String::from("\"");
    for (i, c) in s.chars().enumerate() {
        let must = c == '"' || c == '\\' || (c as u32) < 0x20;
        if must
            || escape
                .get(i % escape.len().max(1))
                .copied()
                .unwrap_or(false)
        {
            let mut buf = [0u16; 2];
            for unit in c.encode_utf16(&mut buf) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        } else {
            out.push(c);
        }
    }
    out.push('"');
    out
}

/// A `tools/call` written the way any client might: members in any order, any whitespace,
/// escapes in the name, big numbers and odd values in the arguments.
#[derive(Debug, Clone)]
struct Written {
    body: String,
    name: String,
    id: String,
}

fn written_call() -> impl Strategy<Value = Written> {
    (
        any::<String>(),
        prop::collection::vec(any::<bool>(), 1..8),
        prop_oneof![
            any::<i64>().prop_map(|i| i.to_string()),
            "[1-9][0-9]{18,39}",
            any::<String>().prop_map(|s| serde_json::to_string(&s).unwrap()),
        ],
        json_value(),
        prop::collection::vec(ws(), 16),
        any::<prop::sample::Index>(),
        any::<prop::sample::Index>(),
    )
        .prop_map(|(name, escape, id, args, w, envelope_at, name_at)| {
            let args = serde_json::to_string(&args).unwrap();
            let mut params = vec![
                format!("{}\"arguments\"{}:{}{args}", w[0], w[1], w[2]),
                format!("{}\"_meta\"{}:{}{{\"progressToken\":1}}", w[3], w[4], w[5]),
            ];
            params.insert(
                name_at.index(params.len() + 1),
                format!(
                    "{}\"name\"{}:{}{}{}",
                    w[6],
                    w[7],
                    w[8],
                    literal(&name, &escape),
                    w[9]
                ),
            );
            let mut envelope = vec![
                format!("\"jsonrpc\"{}:{}\"2.0\"", w[10], w[11]),
                format!("\"method\":{}\"tools/call\"", w[12]),
                format!("\"id\"{}:{id}", w[13]),
            ];
            envelope.insert(
                envelope_at.index(envelope.len() + 1),
                format!("\"params\":{{{}}}", params.join(",")),
            );
            Written {
                body: format!("{}{{{}}}{}", w[14], envelope.join(","), w[15]),
                name,
                id,
            }
        })
}

#[test]
fn the_parser_never_panics_and_every_failure_has_a_json_rpc_code() {
    let started = Instant::now();
    let mut runner = TestRunner::new(config(1));
    runner
        .run(&prop::collection::vec(any::<u8>(), 0..2048), |bytes| {
            if let Err(e) = jsonrpc::parse(&bytes) {
                prop_assert!(matches!(e.code(), -32700 | -32600), "{e:?}");
            }
            Ok(())
        })
        .unwrap();
    // Arbitrary JSON as a whole body, and as the members of an envelope.
    let mut runner = TestRunner::new(config(4));
    runner
        .run(
            &(json_value(), json_value(), json_value(), json_value()),
            |(whole, id, method, params)| {
                let whole = serde_json::to_vec(&whole).unwrap();
                if let Ok(m) = jsonrpc::parse(&whole) {
                    let _ = m.target(TargetField::Name);
                    let _ = m.target(TargetField::Uri);
                }
                let body = serde_json::to_vec(
                    &json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}),
                )
                .unwrap();
                match jsonrpc::parse(&body) {
                    Ok(m) => {
                        prop_assert!(method.is_string(), "a non-string method was accepted");
                        let _ = m.target(TargetField::Name);
                        let _ = m.target(TargetField::Uri);
                    }
                    Err(e) => prop_assert!(matches!(e.code(), -32700 | -32600), "{e:?}"),
                }
                Ok(())
            },
        )
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(300),
        "bounded: {:?}",
        started.elapsed()
    );
}

#[test]
fn the_name_rewrite_keeps_every_other_byte() {
    let mut runner = TestRunner::new(config(2));
    runner
        .run(&(written_call(), any::<String>()), |(w, new_name)| {
            let body = w.body.as_bytes();
            let m = jsonrpc::parse(body)
                .map_err(|e| TestCaseError::fail(format!("{e}: {}", w.body)))?;
            prop_assert_eq!(m.id.map(|id| id.get().to_owned()), Some(w.id.clone()));
            let t = m.target(TargetField::Name).expect("name");
            prop_assert_eq!(t.value.as_ref(), w.name.as_str());
            let spliced = jsonrpc::splice_string(body, t.span.clone(), &new_name);
            let (before, after) = (&body[..t.span.start], &body[t.span.end..]);
            prop_assert!(spliced.starts_with(before), "bytes before the name kept");
            prop_assert!(spliced.ends_with(after), "bytes after the name kept");
            let middle = &spliced[before.len()..spliced.len() - after.len()];
            prop_assert_eq!(
                serde_json::from_slice::<String>(middle).expect("one string literal"),
                new_name.clone()
            );
            let m2 = jsonrpc::parse(&spliced).expect("the rewritten body parses");
            let target = m2.target(TargetField::Name).expect("name");
            prop_assert_eq!(target.value.as_ref(), new_name.as_str());
            prop_assert_eq!(m2.id.map(|id| id.get().to_owned()), Some(w.id.clone()));
            Ok(())
        })
        .unwrap();
}

#[test]
fn deep_nesting_huge_bodies_and_invalid_utf8_are_parse_errors() {
    // Nesting: arrays and objects mixed, at any depth up to 20,000.
    let mut runner = TestRunner::new(config(20));
    runner
        .run(
            &(prop::collection::vec(any::<bool>(), 1..64), 0usize..20_000, any::<bool>()),
            |(pattern, depth, closed)| {
                let (mut open, mut close) = (String::new(), String::new());
                for i in 0..depth {
                    if pattern[i % pattern.len()] {
                        open.push('[');
                        close.insert(0, ']');
                    } else {
                        open.push_str("{\"a\":");
                        close.insert(0, '}');
                    }
                }
                let body = format!(
                    r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"x","arguments":{open}1{}}}}}"#,
                    if closed { close.as_str() } else { "" }
                );
                // The envelope and params are two levels; the arguments add `depth`.
                let too_deep = depth + 2 > jsonrpc::MAX_DEPTH;
                // At depth 0 there is nothing to close: the body is whole either way.
                let complete = closed || depth == 0;
                match jsonrpc::parse(body.as_bytes()) {
                    Ok(_) => prop_assert!(complete && !too_deep, "depth {depth} accepted"),
                    Err(e) if too_deep => prop_assert_eq!(e, ParseError::TooDeep),
                    Err(e) => {
                        prop_assert!(!complete, "a valid body of depth {depth} refused: {e}");
                        prop_assert_eq!(e.code(), -32700);
                    }
                }
                Ok(())
            },
        )
        .unwrap();

    // Invalid UTF-8 anywhere in a string (lone continuation bytes, overlong forms, surrogates,
    // truncated sequences, 0xFF).
    let bad_sequences: &[&[u8]] = &[
        b"\x80",
        b"\xbf",
        b"\xc0\xaf",
        b"\xe0\x80\xaf",
        b"\xed\xa0\x80",
        b"\xf4\x90\x80\x80",
        b"\xf8\x88\x80\x80\x80",
        b"\xff",
        b"\xfe",
        b"\xe2\x82",
        b"\xf0\x9f\x98",
    ];
    let mut runner = TestRunner::new(config(4));
    runner
        .run(
            &(
                written_call(),
                0..bad_sequences.len(),
                any::<prop::sample::Index>(),
            ),
            |(w, which, at)| {
                let mut body = w.body.into_bytes();
                let at = at.index(body.len());
                body.splice(at..at, bad_sequences[which].iter().copied());
                let e = jsonrpc::parse(&body).expect_err("invalid UTF-8 accepted");
                prop_assert_eq!(e.code(), -32700);
                Ok(())
            },
        )
        .unwrap();

    // Huge: a few bodies of megabytes parse (the size limit is Envoy's and the router's, not
    // the parser's) and still find the name; a huge truncated one is an error.
    let mut runner = TestRunner::new(Config {
        cases: 12,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&(1usize..8, any::<bool>()), |(mib, truncated)| {
            let filler = "é\\\"x".repeat(mib * 1024 * 1024 / 5);
            let body = format!(
                r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"arguments":{{"s":"{filler}"}},"name":"fx_echo"}}}}"#
            );
            let body = if truncated { &body[..body.len() - 3] } else { body.as_str() };
            match jsonrpc::parse(body.as_bytes()) {
                Ok(m) => {
                    prop_assert!(!truncated);
                    let target = m.target(TargetField::Name).expect("name");
                    prop_assert_eq!(target.value.as_ref(), "fx_echo");
                }
                Err(e) => {
                    prop_assert!(truncated, "{e}");
                    prop_assert_eq!(e.code(), -32700);
                }
            }
            Ok(())
        })
        .unwrap();
}

const KEY: &[u8] = b"hostile-test-signing-key-0123456789abcdef";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn b64(v: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v)
}

#[test]
fn forged_session_ids_are_refused() {
    use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
    let keys = SessionKeys::new(KEY, Duration::from_secs(3600));
    let (good, _) = keys.mint().unwrap();
    assert!(keys.verify(&good).is_ok());
    let hairpin = keys.mint_hairpin("test/fixture", None).unwrap();
    assert!(
        keys.verify(&hairpin).is_err(),
        "a hairpin key is no session"
    );
    assert_eq!(
        keys.verify_hairpin(&good),
        None,
        "a session is no hairpin key"
    );

    // Random strings, and JWT-shaped random strings.
    let mut runner = TestRunner::new(config(4));
    runner
        .run(
            &prop_oneof![
                any::<String>(),
                "[A-Za-z0-9_-]{0,60}\\.[A-Za-z0-9_-]{0,200}\\.[A-Za-z0-9_-]{0,60}",
            ],
            |token| {
                prop_assert!(keys.verify(&token).is_err());
                prop_assert_eq!(keys.verify_hairpin(&token), None);
                Ok(())
            },
        )
        .unwrap();

    // The good token with one character of its header or claims changed.
    let signed_part = good.rfind('.').unwrap();
    let mut runner = TestRunner::new(config(4));
    runner
        .run(&(0..signed_part, "[A-Za-z0-9_-]"), |(at, c)| {
            let mut t = good.clone().into_bytes();
            prop_assume!(t[at] != b'.' && t[at] != c.as_bytes()[0]);
            t[at] = c.as_bytes()[0];
            let t = String::from_utf8(t).unwrap();
            prop_assert!(keys.verify(&t).is_err(), "tampered token accepted: {t}");
            Ok(())
        })
        .unwrap();

    // Well-formed claims, forged every other way: `alg: none` (any signature), another key,
    // another algorithm with the right key, wrong issuer or audience, expired, missing claims.
    #[derive(Debug, Clone)]
    enum Forgery {
        AlgNone(String),
        OtherKey(Vec<u8>),
        OtherAlgorithm(bool),
        Claims(Value),
    }
    let claims = |iss: &str, aud: &str, exp: u64| json!({"iss": iss, "aud": aud, "jti": "j", "iat": now(), "exp": exp});
    let forgery = prop_oneof![
        "[A-Za-z0-9_-]{0,43}".prop_map(Forgery::AlgNone),
        prop::collection::vec(any::<u8>(), 32..64).prop_map(Forgery::OtherKey),
        any::<bool>().prop_map(Forgery::OtherAlgorithm),
        prop_oneof![
            "[a-z-]{0,12}".prop_map(move |iss| claims(&iss, "mcp-gateway", now() + 600)),
            "[a-z-]{0,12}".prop_map(move |aud| claims("mcp-gateway", &aud, now() + 600)),
            (60u64..1_000_000).prop_map(move |ago| claims(
                "mcp-gateway",
                "mcp-gateway",
                now() - ago
            )),
            Just(json!({"iss": "mcp-gateway", "aud": "mcp-gateway", "jti": "j"})),
            Just(json!({"iss": "mcp-gateway", "aud": "mcp-gateway", "jti": "j", "exp": "never"})),
        ]
        .prop_filter("actually wrong", |c| {
            !(c["iss"] == "mcp-gateway"
                && c["aud"] == "mcp-gateway"
                && c["exp"].as_u64().is_some_and(|e| e > now()))
        })
        .prop_map(Forgery::Claims),
    ];
    let valid = claims("mcp-gateway", "mcp-gateway", now() + 600);
    let mut runner = TestRunner::new(config(20));
    runner
        .run(&forgery, |f| {
            let token = match &f {
                Forgery::AlgNone(sig) => format!(
                    "{}.{}.{sig}",
                    b64(br#"{"alg":"none","typ":"JWT"}"#),
                    b64(valid.to_string().as_bytes())
                ),
                Forgery::OtherKey(k) => encode(
                    &Header::new(Algorithm::HS256),
                    &valid,
                    &EncodingKey::from_secret(k),
                )
                .unwrap(),
                Forgery::OtherAlgorithm(h384) => encode(
                    &Header::new(if *h384 {
                        Algorithm::HS384
                    } else {
                        Algorithm::HS512
                    }),
                    &valid,
                    &EncodingKey::from_secret(KEY),
                )
                .unwrap(),
                Forgery::Claims(c) => encode(
                    &Header::new(Algorithm::HS256),
                    c,
                    &EncodingKey::from_secret(KEY),
                )
                .unwrap(),
            };
            prop_assert!(keys.verify(&token).is_err(), "{f:?} accepted");
            Ok(())
        })
        .unwrap();
    // The control: the same construction with nothing wrong is accepted.
    let token = encode(
        &Header::new(Algorithm::HS256),
        &valid,
        &EncodingKey::from_secret(KEY),
    )
    .unwrap();
    assert!(keys.verify(&token).is_ok());
}

#[test]
fn every_client_sent_internal_header_name_is_stripped() {
    let mut runner = TestRunner::new(config(1));
    runner
        .run(&"[a-z0-9-]{0,24}", |rest| {
            let name = format!("x-mcp-{rest}");
            let allowed = name == header::X_MCP_VIRTUALSERVER || name == header::X_MCP_AUTHORIZED;
            prop_assert_eq!(header::is_internal(&name), !allowed, "{}", name);
            Ok(())
        })
        .unwrap();
    for name in header::INTERNAL {
        assert!(header::is_internal(name));
    }
}

// Through the real Envoy.

/// Bodies a hostile client might send: random bytes, truncations, wrong types, deep nesting,
/// invalid UTF-8, and valid calls with junk in them.
fn hostile_body() -> impl Strategy<Value = Vec<u8>> {
    let member = prop_oneof![
        json_value(),
        Just(json!("fx_echo")),
        Just(json!("tools/call")),
    ];
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..300),
        written_call().prop_map(|w| w.body.into_bytes()),
        (written_call(), any::<prop::sample::Index>()).prop_map(|(w, at)| {
            let b = w.body.into_bytes();
            b[..at.index(b.len())].to_vec()
        }),
        (member.clone(), member.clone(), member.clone(), member).prop_map(|(id, method, params, name)| {
            let mut m = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
            if let Some(p) = m["params"].as_object_mut() {
                p.insert("name".into(), name);
            }
            serde_json::to_vec(&m).unwrap()
        }),
        (100usize..3000).prop_map(|d| format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"fx_echo","arguments":{}{}}}}}"#,
            "[".repeat(d),
            "]".repeat(d)
        )
        .into_bytes()),
        written_call().prop_map(|w| {
            let mut b = w.body.into_bytes();
            let at = b.len() / 2;
            b.splice(at..at, [0xffu8, 0xc0]);
            b
        }),
    ]
}

fn http_cases() -> u32 {
    std::env::var("HOSTILE_HTTP_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_bodies_and_spoofed_headers_through_envoy_are_answered_cleanly() {
    use proptest::strategy::ValueTree;
    let fx = common::fixture::Fixture::start(&["echo"]).await;
    let g = common::start_gateway(
        "hostile",
        &[common::Upstream::new("test/fixture", "fx_", fx.port)],
        &[],
    )
    .await;
    let mut c = common::Client::new(&g.url());
    c.initialize().await;
    let session = c.session.clone().unwrap();
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let mut runner = TestRunner::deterministic();
    let strategy = hostile_body();
    let started = Instant::now();
    let mut statuses = std::collections::BTreeMap::new();
    for i in 0..http_cases() {
        if started.elapsed() > Duration::from_secs(120) {
            break; // bounded in time as well as count
        }
        let body = strategy.new_tree(&mut runner).unwrap().current();
        let resp = http
            .post(g.url())
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-session-id", &session)
            .body(body.clone())
            .send()
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "case {i}: no answer ({e}) to {:?}",
                    String::from_utf8_lossy(&body)
                )
            });
        let status = resp.status().as_u16();
        let ct = common::content_type(resp.headers());
        let text = resp.text().await.unwrap();
        *statuses.entry(status).or_insert(0u32) += 1;
        let what = || {
            format!(
                "case {i}: HTTP {status} {ct:?} {text:?} for {:?}",
                String::from_utf8_lossy(&body)
                    .chars()
                    .take(300)
                    .collect::<String>()
            )
        };
        assert!(status < 500, "{}", what());
        if status == 202 {
            continue; // a notification (no id): accepted, no body
        }
        let v: Value = if ct.starts_with("text/event-stream") {
            text.lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .find_map(|d| serde_json::from_str(d.trim()).ok())
                .unwrap_or(Value::Null)
        } else {
            assert!(ct.starts_with("application/json"), "{}", what());
            serde_json::from_str(&text).unwrap_or(Value::Null)
        };
        assert_eq!(v["jsonrpc"], "2.0", "{}", what());
        assert!(
            v.get("result").is_some() || v["error"]["code"].is_i64(),
            "{}",
            what()
        );
        if status >= 400 {
            assert!(v["error"]["code"].is_i64(), "{}", what());
        }
    }
    eprintln!("hostile bodies through Envoy: statuses {statuses:?}");

    // Spoofed internal headers, repeated, with any value (names are lower-cased on the wire by
    // the client library and by Envoy, so letter case is not a way around the router): the
    // upstream sees only what the router set.
    let names: Vec<&str> = header::INTERNAL.to_vec();
    let spoof = (prop::collection::vec((0..names.len(), "[ -~]{0,40}"), 1..6),);
    let before = fx.calls().len();
    for i in 0..(http_cases() / 3).max(1) {
        let (headers,) = spoof.new_tree(&mut runner).unwrap().current();
        let mut req = http
            .post(g.url())
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-session-id", &session)
            .body(format!(r#"{{"jsonrpc":"2.0","id":{i},"method":"tools/call","params":{{"name":"fx_echo","arguments":{{}}}}}}"#));
        for (n, value) in &headers {
            req = req.header(names[*n], value.trim());
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 200, "spoof case {i}: {headers:?}");
    }
    let calls = fx.calls();
    assert_eq!(calls.len() - before, (http_cases() / 3).max(1) as usize);
    for s in &calls[before..] {
        let all = |k: &str| {
            s.headers
                .get_all(k)
                .iter()
                .map(|v| v.to_str().unwrap_or("").to_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(all("x-mcp-servername"), ["test/fixture"]);
        assert_eq!(all("x-mcp-toolname"), ["echo"]);
        assert_eq!(all("x-mcp-method"), ["tools/call"]);
        for gone in [
            "x-mcp-promptname",
            "x-mcp-resourceuri",
            "mcp-init-host",
            "x-mcp-router-key",
        ] {
            assert!(
                all(gone).is_empty(),
                "{gone} reached the upstream: {:?}",
                all(gone)
            );
        }
    }
    // And the router is still there.
    assert_eq!(c.call_tool(1, "fx_echo", json!({})).await.status, 200);
}
