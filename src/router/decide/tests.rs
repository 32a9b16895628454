//! Table tests of the headers and body decisions.
use super::*;
use crate::catalog::{Health, ServerLists};
use std::collections::HashMap;

fn config() -> Config {
    Config::from_yaml(
        r#"
servers:
  - {name: ns/kube, url: 'http://kube:9999/mcp', hostname: kube.local, prefix: kube_}
  - {name: ns/ev, url: 'http://ev:3001/mcp', hostname: ev.local, prefix: ev_}
  - {name: ns/off, url: 'http://off/mcp', prefix: off_, state: Disabled}
virtualServers:
  - {name: ns/dev, tools: [kube_pods_list]}
"#,
    )
    .expect("config")
}

fn catalog(config: &Config) -> Catalog {
    let mut d = HashMap::new();
    d.insert(
        "ns/kube".into(),
        ServerLists {
            tools: vec![
                serde_json::json!({"name": "pods_list", "annotations": {"readOnlyHint": true}}),
                serde_json::json!({"name": "namespaces_list"}),
            ],
            resources: vec![serde_json::json!({"uri": "k8s://cluster", "name": "cluster"})],
            resource_templates: vec![
                serde_json::json!({"uriTemplate": "k8s://pods/{name}", "name": "pod"}),
            ],
            health: Health::Ready,
            ..Default::default()
        },
    );
    d.insert(
        "ns/ev".into(),
        ServerLists {
            tools: vec![serde_json::json!({"name": "echo"})],
            prompts: vec![serde_json::json!({"name": "simple"})],
            health: Health::Ready,
            ..Default::default()
        },
    );
    let mut c = Catalog::build(config, &d);
    c.broker_tools = vec!["discover_tools", "select_tools"];
    c
}

fn facts() -> RequestFacts {
    RequestFacts {
        method: http::Method::POST,
        path: MCP_PATH.into(),
        content_type: Some("application/json".into()),
        session_id: Some("s".into()),
        ..Default::default()
    }
}

#[test]
fn headers() {
    let c = config();
    let with = |f: fn(&mut RequestFacts)| {
        let mut x = facts();
        f(&mut x);
        decide_headers(&c, &x)
    };
    assert_eq!(with(|_| {}), HeadersDecision::NeedBody);
    assert_eq!(
        with(|f| f.content_type = Some("Application/JSON; charset=utf-8".into())),
        HeadersDecision::NeedBody
    );
    assert_eq!(
        with(|f| f.method = http::Method::GET),
        HeadersDecision::Broker
    );
    assert_eq!(
        with(|f| f.method = http::Method::DELETE),
        HeadersDecision::Broker
    );
    assert_eq!(
        with(|f| f.path = "/.well-known/oauth-protected-resource/mcp".into()),
        HeadersDecision::Broker
    );
    assert!(
        matches!(with(|f| f.content_type = Some("text/plain".into())), HeadersDecision::Reject(r) if r.status == 415)
    );
    assert!(
        matches!(with(|f| f.content_type = None), HeadersDecision::Reject(r) if r.status == 415)
    );
    assert!(
        matches!(with(|f| f.end_of_stream = true), HeadersDecision::Reject(r) if r.status == 400)
    );
    assert!(
        matches!(with(|f| f.hairpin_server = Some("ns/kube".into())), HeadersDecision::Hairpin(s, None) if &*s.name == "ns/kube")
    );
    let call = CallTarget {
        method: method::TOOLS_CALL.into(),
        kind: CallKind::Tool,
        name: "pods_list".into(),
        hints: None,
        verified_sub: None,
    };
    let mut hairpin = facts();
    hairpin.hairpin_server = Some("ns/kube".into());
    hairpin.hairpin_call = Some(call.clone());
    assert!(
        matches!(decide_headers(&c, &hairpin), HeadersDecision::Hairpin(s, Some(got)) if &*s.name == "ns/kube" && got == call),
        "the call of the key goes with the decision"
    );
    assert!(
        matches!(with(|f| f.hairpin_server = Some("ns/off".into())), HeadersDecision::Reject(r) if r.status == 404)
    );
    let resume = |f: &mut RequestFacts| {
        f.method = http::Method::GET;
        f.last_event_id = Some(crate::router::relay::tag("ns/ev", "7"));
    };
    assert!(
        matches!(with(resume), HeadersDecision::Resume(r) if &*r.server.name == "ns/ev" && r.last_event_id == "7")
    );
    assert_eq!(
        with(|f| {
            f.method = http::Method::GET;
            f.last_event_id = Some("7".into());
        }),
        HeadersDecision::Broker
    );
}

struct Case {
    body: &'static str,
    facts: fn(&mut RequestFacts),
    expect: Expect,
}

#[derive(Debug)]
enum Expect {
    Broker(&'static str),
    Relay {
        server: &'static str,
        upstream_id: &'static str,
    },
    Upstream {
        server: &'static str,
        name: &'static str,
        renamed: bool,
        hints: Option<&'static str>,
    },
    Reject {
        status: u16,
        code: i64,
        id: Option<&'static str>,
        needle: &'static str,
    },
}

#[test]
fn bodies() {
    let c = config();
    let cat = catalog(&c);
    let cases = [
        Case { body: r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}"#, facts: |_| {}, expect: Expect::Broker("initialize") },
        Case { body: r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#, facts: |f| f.session_id = None, expect: Expect::Broker("tools/list") },
        Case { body: r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#, facts: |_| {}, expect: Expect::Broker("notifications/initialized") },
        Case { body: r#"{"jsonrpc":"2.0","id":9,"result":{}}"#, facts: |_| {}, expect: Expect::Broker("") },
        Case { body: r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"kube_pods_list"}}"#, facts: |_| {},
               expect: Expect::Upstream { server: "ns/kube", name: "pods_list", renamed: true, hints: Some("readOnly=true,destructive=unspecified,idempotent=unspecified,openWorld=unspecified") } },
        Case { body: r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"kube_brand_new"}}"#, facts: |_| {},
               expect: Expect::Upstream { server: "ns/kube", name: "brand_new", renamed: true, hints: None } },
        Case { body: r#"{"jsonrpc":"2.0","id":1,"method":"prompts/get","params":{"name":"ev_simple"}}"#, facts: |_| {},
               expect: Expect::Upstream { server: "ns/ev", name: "simple", renamed: true, hints: None } },
        Case { body: r#"{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"k8s://cluster"}}"#, facts: |_| {},
               expect: Expect::Upstream { server: "ns/kube", name: "k8s://cluster", renamed: false, hints: None } },
        Case { body: r#"{"jsonrpc":"2.0","id":"x","method":"tools/call","params":{"name":"nope"}}"#, facts: |_| {},
               expect: Expect::Reject { status: 200, code: -32602, id: Some(r#""x""#), needle: "Unknown tool: nope" } },
        Case { body: r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"off_thing"}}"#, facts: |_| {},
               expect: Expect::Reject { status: 200, code: -32602, id: Some("2"), needle: "Unknown tool" } },
        Case { body: r#"{"jsonrpc":"2.0","id":3,"method":"resources/read","params":{"uri":"file:///nope"}}"#, facts: |_| {},
               expect: Expect::Reject { status: 200, code: -32602, id: Some("3"), needle: "Unknown resource" } },
        Case { body: r#"{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"arguments":{}}}"#, facts: |_| {},
               expect: Expect::Reject { status: 400, code: -32602, id: Some("4"), needle: "params.name is required" } },
        Case { body: r#"{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"kube_pods_list"}}"#, facts: |f| f.session_id = None,
               expect: Expect::Reject { status: 400, code: -32600, id: Some("5"), needle: "Mcp-Session-Id" } },
        Case { body: r#"{"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"name":"kube_pods_list"}}"#, facts: |f| f.virtual_server = Some("ns/dev".into()),
               expect: Expect::Upstream { server: "ns/kube", name: "pods_list", renamed: true, hints: Some("readOnly=true,destructive=unspecified,idempotent=unspecified,openWorld=unspecified") } },
        Case { body: r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"ev_echo"}}"#, facts: |f| f.virtual_server = Some("ns/dev".into()),
               expect: Expect::Reject { status: 200, code: -32602, id: Some("7"), needle: "not in virtual server" } },
        Case { body: r#"{"jsonrpc":"2.0","id":8,"method":"tools/call","params":{"name":"ev_echo"}}"#, facts: |f| f.virtual_server = Some("ns/none".into()),
               expect: Expect::Reject { status: 404, code: -32602, id: Some("8"), needle: "unknown virtual server" } },
        Case { body: r#"{"jsonrpc":"2.0","id":20,"method":"tools/call","params":{"name":"ev_echo"}}"#, facts: |f| { f.mcp_method = Some("tools/call".into()); f.mcp_name = Some("ev_echo".into()); },
               expect: Expect::Upstream { server: "ns/ev", name: "echo", renamed: true, hints: None } },
        Case { body: r#"{"jsonrpc":"2.0","id":21,"method":"tools/call","params":{"name":"ev_echo"}}"#, facts: |f| f.mcp_method = Some("tools/list".into()),
               expect: Expect::Reject { status: 400, code: -32020, id: Some("21"), needle: "Mcp-Method" } },
        Case { body: r#"{"jsonrpc":"2.0","id":22,"method":"tools/call","params":{"name":"ev_echo"}}"#, facts: |f| f.mcp_name = Some("kube_pods_list".into()),
               expect: Expect::Reject { status: 400, code: -32020, id: Some("22"), needle: "Mcp-Name" } },
        Case { body: r#"{"jsonrpc":"2.0","id":23,"method":"tools/list"}"#, facts: |f| f.mcp_method = Some("tools/call".into()),
               expect: Expect::Reject { status: 400, code: -32020, id: Some("23"), needle: "Mcp-Method" } },
        // 2026-07-28: Mcp-Method always, Mcp-Name for a call, and no removed methods.
        Case { body: r#"{"jsonrpc":"2.0","id":24,"method":"tools/list"}"#, facts: |f| f.protocol_version = Some("2026-07-28".into()),
               expect: Expect::Reject { status: 400, code: -32020, id: Some("24"), needle: "Mcp-Method header is required" } },
        Case { body: r#"{"jsonrpc":"2.0","id":25,"method":"tools/call","params":{"name":"ev_echo"}}"#, facts: |f| { f.protocol_version = Some("2026-07-28".into()); f.mcp_method = Some("tools/call".into()); },
               expect: Expect::Reject { status: 400, code: -32020, id: Some("25"), needle: "Mcp-Name header is required" } },
        Case { body: r#"{"jsonrpc":"2.0","id":26,"method":"tools/call","params":{"name":"ev_echo"}}"#, facts: |f| { f.protocol_version = Some("2026-07-28".into()); f.session_id = None; f.mcp_method = Some("tools/call".into()); f.mcp_name = Some("ev_echo".into()); },
               expect: Expect::Upstream { server: "ns/ev", name: "echo", renamed: true, hints: None } },
        Case { body: r#"{"jsonrpc":"2.0","id":27,"method":"resources/subscribe","params":{"uri":"k8s://cluster"}}"#, facts: |f| { f.protocol_version = Some("2026-07-28".into()); f.mcp_method = Some("resources/subscribe".into()); },
               expect: Expect::Reject { status: 404, code: -32601, id: Some("27"), needle: "Method not found" } },
        Case { body: r#"{"jsonrpc":"2.0","id":28,"method":"resources/read","params":{"uri":"nope://x"}}"#, facts: |_| {},
               expect: Expect::Reject { status: 200, code: -32602, id: Some("28"), needle: "Unknown resource: nope://x" } },
        // Resources by template; subscriptions and completions go where their target lives.
        Case { body: r#"{"jsonrpc":"2.0","id":30,"method":"resources/read","params":{"uri":"k8s://pods/web-1"}}"#, facts: |_| {},
               expect: Expect::Upstream { server: "ns/kube", name: "k8s://pods/web-1", renamed: false, hints: None } },
        Case { body: r#"{"jsonrpc":"2.0","id":31,"method":"resources/subscribe","params":{"uri":"k8s://cluster"}}"#, facts: |_| {},
               expect: Expect::Upstream { server: "ns/kube", name: "k8s://cluster", renamed: false, hints: None } },
        Case { body: r#"{"jsonrpc":"2.0","id":32,"method":"resources/unsubscribe","params":{"uri":"k8s://pods/a"}}"#, facts: |_| {},
               expect: Expect::Upstream { server: "ns/kube", name: "k8s://pods/a", renamed: false, hints: None } },
        Case { body: r#"{"jsonrpc":"2.0","id":33,"method":"resources/subscribe","params":{"uri":"k8s://nodes/a"}}"#, facts: |_| {},
               expect: Expect::Reject { status: 200, code: -32602, id: Some("33"), needle: "Unknown resource" } },
        Case { body: r#"{"jsonrpc":"2.0","id":34,"method":"completion/complete","params":{"ref":{"type":"ref/prompt","name":"ev_simple"},"argument":{"name":"a","value":"b"}}}"#, facts: |_| {},
               expect: Expect::Upstream { server: "ns/ev", name: "simple", renamed: true, hints: None } },
        Case { body: r#"{"jsonrpc":"2.0","id":35,"method":"completion/complete","params":{"ref":{"type":"ref/resource","uri":"k8s://pods/{name}"},"argument":{"name":"name","value":"w"}}}"#, facts: |_| {},
               expect: Expect::Upstream { server: "ns/kube", name: "k8s://pods/{name}", renamed: false, hints: None } },
        Case { body: r#"{"jsonrpc":"2.0","id":36,"method":"completion/complete","params":{"ref":{"type":"ref/tool","name":"ev_echo"}}}"#, facts: |_| {},
               expect: Expect::Reject { status: 400, code: -32602, id: Some("36"), needle: "ref/prompt" } },
        Case { body: r#"{"jsonrpc":"2.0","id":37,"method":"completion/complete","params":{"ref":{"type":"ref/prompt","name":"kube_nope"}}}"#, facts: |_| {},
               expect: Expect::Upstream { server: "ns/kube", name: "nope", renamed: true, hints: None } },
        Case { body: r#"{"jsonrpc":"2.0","id":38,"method":"completion/complete","params":{"ref":{"type":"ref/prompt","name":"nope"}}}"#, facts: |_| {},
               expect: Expect::Reject { status: 200, code: -32602, id: Some("38"), needle: "Unknown prompt: nope" } },
        // The broker's own tools go to it (2025 sessions); 2026-07-28 clients are not offered them.
        Case { body: r#"{"jsonrpc":"2.0","id":40,"method":"tools/call","params":{"name":"discover_tools"}}"#, facts: |_| {}, expect: Expect::Broker("tools/call") },
        Case { body: r#"{"jsonrpc":"2.0","id":41,"method":"tools/call","params":{"name":"select_tools","arguments":{"tools":[]}}}"#, facts: |_| {}, expect: Expect::Broker("tools/call") },
        Case { body: r#"{"jsonrpc":"2.0","id":42,"method":"tools/call","params":{"name":"list_tags"}}"#, facts: |_| {},
               expect: Expect::Reject { status: 200, code: -32602, id: Some("42"), needle: "Unknown tool: list_tags" } },
        Case { body: r#"{"jsonrpc":"2.0","id":43,"method":"tools/call","params":{"name":"discover_tools"}}"#, facts: |f| { f.session_id = None; f.protocol_version = Some("2026-07-28".into()); f.mcp_method = Some("tools/call".into()); f.mcp_name = Some("discover_tools".into()); },
               expect: Expect::Reject { status: 200, code: -32602, id: Some("43"), needle: "Unknown tool: discover_tools" } },
        Case { body: r#"{"jsonrpc":"2.0","id":44,"method":"tools/call","params":{"name":"discover_tools"}}"#, facts: |f| f.virtual_server = Some("ns/dev".into()),
               expect: Expect::Reject { status: 200, code: -32602, id: Some("44"), needle: "not in virtual server" } },
        // A client's answer to an upstream's request goes back to it; other answers to the broker.
        Case { body: r#"{"jsonrpc":"2.0","id":"mcpgw.bnMvZXY.5","result":{"action":"accept"}}"#, facts: |_| {},
               expect: Expect::Relay { server: "ns/ev", upstream_id: "5" } },
        Case { body: r#"{"jsonrpc":"2.0","id":"mcpgw.bnMvb2Zm.5","result":{}}"#, facts: |_| {}, expect: Expect::Broker("") },
    ];
    for case in cases {
        let mut f = facts();
        (case.facts)(&mut f);
        let msg = jsonrpc::parse(case.body.as_bytes()).expect(case.body);
        let d = decide_body(&c, &cat, &f, &msg);
        match (&case.expect, &d) {
            (Expect::Broker(m), Decision::Broker { method }) => {
                assert_eq!(method, m, "{}", case.body)
            }
            (
                Expect::Relay {
                    server,
                    upstream_id,
                },
                Decision::Relay(r),
            ) => {
                assert_eq!(&*r.server.name, *server, "{}", case.body);
                assert_eq!(r.upstream_id, *upstream_id, "{}", case.body);
            }
            (
                Expect::Upstream {
                    server,
                    name,
                    renamed,
                    hints,
                },
                Decision::Upstream(call),
            ) => {
                assert_eq!(&*call.server.name, *server, "{}", case.body);
                assert_eq!(call.upstream_name, *name, "{}", case.body);
                assert_eq!(call.rename.is_some(), *renamed, "{}", case.body);
                assert_eq!(call.hints.as_deref(), *hints, "{}", case.body);
                if let Some(span) = &call.rename {
                    assert!(case.body[span.clone()].starts_with('"'), "{}", case.body);
                }
            }
            (
                Expect::Reject {
                    status,
                    code,
                    id,
                    needle,
                },
                Decision::Reject(r),
            ) => {
                assert_eq!(r.status, *status, "{}", case.body);
                assert_eq!(r.code, *code, "{}", case.body);
                assert_eq!(r.id.as_ref().map(|i| i.get()), *id, "{}", case.body);
                assert!(r.message.contains(needle), "{}: {}", case.body, r.message);
            }
            (e, d) => panic!("{}: expected {e:?}, got {d:?}", case.body),
        }
    }
}

#[test]
fn body_sizes() {
    for (len, max, refused) in [(0, 10, false), (10, 10, false), (11, 10, true)] {
        let r = decide_size(len, max);
        assert_eq!(r.is_some(), refused, "{len} of {max}");
        if let Some(r) = r {
            assert_eq!((r.status, r.code), (413, code::REQUEST_TOO_LARGE));
        }
    }
}

/// Tasks-extension requests go to the server named by the tag in the task id.
#[test]
fn task_requests() {
    let c = config();
    let cat = catalog(&c);
    let ev = relay::tag("ns/ev", "t-1");
    let kube = relay::tag("ns/kube", "t-1");
    let off = relay::tag("ns/off", "t-1");
    let meta = r#""_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{"extensions":{"io.modelcontextprotocol/tasks":{}}}}"#;
    let no_ext = r#""_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}"#;
    let q = |s: &str| format!("{s:?}");
    struct Row<'a> {
        method: &'a str,
        task: String,
        meta: &'a str,
        name: Option<&'a str>,
        virtual_server: Option<&'a str>,
        /// Ok(server, upstream id) | Err(status, code)
        want: Result<(&'a str, &'a str), (u16, i64)>,
    }
    let row = |method, task: String, meta, name, want| Row {
        method,
        task,
        meta,
        name,
        virtual_server: None,
        want,
    };
    let rows: Vec<Row<'_>> = vec![
        row("tasks/get", q(&ev), meta, Some(&ev), Ok(("ns/ev", "t-1"))),
        row(
            "tasks/update",
            q(&ev),
            meta,
            Some(&ev),
            Ok(("ns/ev", "t-1")),
        ),
        row(
            "tasks/cancel",
            q(&kube),
            meta,
            Some(&kube),
            Ok(("ns/kube", "t-1")),
        ),
        // Not declared: the extension's -32021, HTTP 400.
        row("tasks/get", q(&ev), no_ext, Some(&ev), Err((400, -32021))),
        // Header and body disagree, or no header.
        row(
            "tasks/get",
            q(&ev),
            meta,
            Some("other"),
            Err((400, code::HEADER_MISMATCH)),
        ),
        row(
            "tasks/get",
            q(&ev),
            meta,
            None,
            Err((400, code::HEADER_MISMATCH)),
        ),
        // A task id not ours, of a disabled server, or not a string.
        row(
            "tasks/get",
            q("nonexistent-12345"),
            meta,
            Some("nonexistent-12345"),
            Err((200, code::INVALID_PARAMS)),
        ),
        row(
            "tasks/get",
            q(&off),
            meta,
            Some(&off),
            Err((200, code::INVALID_PARAMS)),
        ),
        row(
            "tasks/get",
            "7".into(),
            meta,
            Some("7"),
            Err((400, code::INVALID_PARAMS)),
        ),
        // A virtual server reaches the tasks of the servers whose tools it offers.
        Row {
            virtual_server: Some("ns/dev"),
            ..row(
                "tasks/get",
                q(&kube),
                meta,
                Some(&kube),
                Ok(("ns/kube", "t-1")),
            )
        },
        Row {
            virtual_server: Some("ns/dev"),
            ..row(
                "tasks/get",
                q(&ev),
                meta,
                Some(&ev),
                Err((200, code::INVALID_PARAMS)),
            )
        },
    ];
    for r in rows {
        let body = format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"{}","params":{{"taskId":{},{}}}}}"#,
            r.method, r.task, r.meta
        );
        let msg = jsonrpc::parse(body.as_bytes()).expect("json");
        let mut f = facts();
        f.session_id = None;
        f.protocol_version = Some("2026-07-28".into());
        f.virtual_server = r.virtual_server.map(str::to_owned);
        f.mcp_method = Some(r.method.into());
        f.mcp_name = r.name.map(str::to_owned);
        let got = decide_body(&c, &cat, &f, &msg);
        match (&got, r.want) {
            (Decision::Upstream(call), Ok((server, id))) => {
                assert_eq!(&*call.server.name, server, "{body}");
                assert_eq!(call.upstream_name, id, "{body}");
                assert_eq!(call.kind, CallKind::Task);
                assert_eq!(call.method, r.method);
                let span = call.rename.clone().expect("the id is renamed");
                assert_eq!(&body[span], r.task);
            }
            (Decision::Reject(x), Err((status, code))) => {
                assert_eq!((x.status, x.code), (status, code), "{body}: {x:?}");
            }
            _ => panic!("{body}: {got:?}, want {:?}", r.want),
        }
    }
    // A session client's tasks/*, and the methods the extension removed, are the broker's.
    for (method, modern) in [
        ("tasks/get", false),
        ("tasks/list", true),
        ("tasks/result", true),
    ] {
        let body = format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"{method}","params":{{"taskId":{},{meta}}}}}"#,
            q(&ev)
        );
        let msg = jsonrpc::parse(body.as_bytes()).expect("json");
        let mut f = facts();
        if modern {
            f.session_id = None;
            f.protocol_version = Some("2026-07-28".into());
            f.mcp_method = Some(method.into());
        }
        assert!(
            matches!(decide_body(&c, &cat, &f, &msg), Decision::Broker { .. }),
            "{method}"
        );
    }
}
