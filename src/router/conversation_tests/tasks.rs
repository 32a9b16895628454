//! The Tasks extension through the router: a task id in a create result gets its server's tag,
//! and a later `tasks/get` naming that tagged id goes to that server with the server's own id, in
//! the body and in `Mcp-Name`, on a stream that knows nothing of the first.

use super::streams::new_body;
use super::{immediate, set_headers, stateless, Gateway, SERVERS};

const META: &str = r#""_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{"extensions":{"io.modelcontextprotocol/tasks":{}}}}"#;

#[tokio::test]
async fn a_task_is_asked_about_at_the_server_that_created_it() {
    let mut gw = Gateway::start(SERVERS).await;
    // ns/kube speaks 2026-07-28 only: no upstream session, for the anonymous stateless caller.
    gw.seed_as(&"caller:anonymous".into(), "ns/kube", None, "2026-07-28")
        .await;

    let mut envoy = gw.open().await;
    let h = envoy
        .request_headers(&stateless("tools/call", "kube_pods_list"), false)
        .await;
    assert_eq!(immediate(&h), None);
    let b = envoy
        .request_body(&format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"kube_pods_list","arguments":{{}},{META}}}}}"#
        ))
        .await;
    assert_eq!(immediate(&b), None, "routed");
    envoy
        .response_headers(&[(":status", "200"), ("content-type", "application/json")])
        .await;
    let created = envoy
        .response_body(
            r#"{"jsonrpc":"2.0","id":1,"result":{"resultType":"task","taskId":"t-1","status":"working"}}"#,
            true,
        )
        .await;
    let created: serde_json::Value =
        serde_json::from_str(&new_body(&created).expect("the task id tagged")).expect("json");
    let task = created["result"]["taskId"]
        .as_str()
        .expect("taskId")
        .to_owned();
    assert_eq!(task, crate::router::relay::tag("ns/kube", "t-1"));

    let mut envoy = gw.open().await;
    envoy
        .request_headers(&stateless("tasks/get", &task), false)
        .await;
    let b = envoy
        .request_body(&format!(
            r#"{{"jsonrpc":"2.0","id":2,"method":"tasks/get","params":{{"taskId":"{task}",{META}}}}}"#
        ))
        .await;
    assert_eq!(immediate(&b), None, "routed");
    let set = set_headers(&b);
    assert_eq!(
        set.get("x-mcp-servername").map(String::as_str),
        Some("ns/kube")
    );
    assert_eq!(set.get("mcp-name").map(String::as_str), Some("t-1"));
    let sent = new_body(&b).expect("the server's own id in the body");
    assert!(sent.contains(r#""taskId":"t-1""#), "{sent}");
    envoy
        .response_headers(&[(":status", "200"), ("content-type", "application/json")])
        .await;
    let got = envoy
        .response_body(
            r#"{"jsonrpc":"2.0","id":2,"result":{"resultType":"complete","taskId":"t-1","status":"completed"}}"#,
            true,
        )
        .await;
    let got = new_body(&got).expect("the task id tagged again");
    assert!(got.contains(&task), "{got}");

    // A task id that names no server of ours.
    let mut envoy = gw.open().await;
    envoy
        .request_headers(&stateless("tasks/get", "t-1"), false)
        .await;
    let b = envoy
        .request_body(&format!(
            r#"{{"jsonrpc":"2.0","id":3,"method":"tasks/get","params":{{"taskId":"t-1",{META}}}}}"#
        ))
        .await;
    let (_, body) = immediate(&b).expect("refused");
    assert_eq!(body["error"]["code"], -32602);
    assert_eq!(body["id"], 3);
}
