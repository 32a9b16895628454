//! The A2A passthrough (`--enable-a2a`), as in the seed gateway: requests under `/a2a/` keep
//! their own route to the agent (nothing is rerouted or rewritten), but the router lifts the
//! A2A metadata into headers that policies and telemetry can key on: `x-a2a-agent` (the first
//! path segment after `/a2a/`) and `x-a2a-method` (the JSON-RPC method, one of the A2A v1
//! methods or `other`, so that a client cannot make the label set unbounded). A client's own
//! copies of those two headers are removed. A POST whose body is not a JSON-RPC request with a
//! method is refused (-32700 when it is not JSON or absent, -32600 when it has no method), so
//! nothing reaches an agent unlabelled; a GET (the agent card) passes. Pure: the router calls
//! these from its headers and body phases.

pub const PATH_PREFIX: &str = "/a2a/";
pub const AGENT_HEADER: &str = "x-a2a-agent";
pub const METHOD_HEADER: &str = "x-a2a-method";
/// The router's own A2A headers: removed from every A2A request before they are set.
pub const OWN_HEADERS: [&str; 2] = [AGENT_HEADER, METHOD_HEADER];

const KNOWN_METHODS: [&str; 5] = [
    "SendMessage",
    "SendStreamingMessage",
    "GetTask",
    "CancelTask",
    "SubscribeToTask",
];

/// JSON-RPC codes of a refused A2A body.
pub const PARSE_ERROR: i64 = -32700;
pub const INVALID_REQUEST: i64 = -32600;

/// Whether a request path is A2A traffic.
pub fn is_a2a_path(path: &str) -> bool {
    path.starts_with(PATH_PREFIX)
}

/// The agent a path names: its first segment after `/a2a/` (none for `/a2a/` itself).
pub fn agent(path: &str) -> Option<&str> {
    let rest = path.strip_prefix(PATH_PREFIX)?;
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    Some(&rest[..end]).filter(|a| !a.is_empty())
}

/// A method label from a bounded set: a known A2A v1 method as it is, else `other`.
pub fn method_label(method: &str) -> &'static str {
    KNOWN_METHODS
        .iter()
        .find(|m| **m == method)
        .copied()
        .unwrap_or("other")
}

/// The `x-a2a-method` of a POST body, or the JSON-RPC code it is refused with.
pub fn judge_body(body: &[u8]) -> Result<&'static str, i64> {
    #[derive(serde::Deserialize)]
    struct Envelope {
        #[serde(default)]
        method: Option<String>,
    }
    // serde would read an array as a struct's fields in order: not an object, not a request.
    if body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
        return Err(PARSE_ERROR);
    }
    match serde_json::from_slice::<Option<Envelope>>(body) {
        Err(_) => Err(PARSE_ERROR),
        Ok(None) => Err(INVALID_REQUEST),
        Ok(Some(e)) => match e.method.as_deref() {
            None | Some("") => Err(INVALID_REQUEST),
            Some(m) => Ok(method_label(m)),
        },
    }
}

/// The JSON-RPC error body of a refused A2A request (the seed answers it with HTTP 200).
pub fn error_body(code: i64) -> Vec<u8> {
    crate::jsonrpc::error_body(None, code, "invalid json-rpc request", None)
}

/// The router's answer to an A2A request's headers (its own A2A headers removed from `m`'s
/// request, `x-a2a-agent` set; routing untouched), and whether its body is to be judged next.
/// A POST that has no body is refused at once.
pub fn on_headers(
    path: &str,
    method: &str,
    end_of_stream: bool,
    mut m: super::respond::Mutation,
) -> (super::answer::Answer, bool) {
    use super::respond;
    if method == "POST" && end_of_stream {
        return (respond::immediate(200, error_body(PARSE_ERROR)), false);
    }
    for h in OWN_HEADERS {
        m.remove(h);
    }
    if let Some(agent) = agent(path) {
        m.set(AGENT_HEADER, agent.as_bytes());
    }
    if method == "POST" {
        (
            respond::request_headers(m, false, respond::Skip::Nothing),
            true,
        )
    } else {
        (
            respond::request_headers(m, false, respond::Skip::BodyAndResponse),
            false,
        )
    }
}

/// The router's answer to an A2A POST body: `x-a2a-method` set, or the JSON-RPC refusal.
pub fn on_body(body: &[u8]) -> super::answer::Answer {
    use super::respond;
    match judge_body(body) {
        Ok(label) => {
            let mut m = respond::Mutation::default();
            m.set(METHOD_HEADER, label);
            respond::request_body(m, None, false)
        }
        Err(code) => respond::immediate(200, error_body(code)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_the_agent() {
        for (path, is, agent_) in [
            ("/a2a/billing", true, Some("billing")),
            ("/a2a/billing/", true, Some("billing")),
            ("/a2a/billing/v1/message", true, Some("billing")),
            ("/a2a/billing?x=1", true, Some("billing")),
            ("/a2a/", true, None),
            ("/a2a/?x", true, None),
            ("/a2a", false, None),
            ("/a2ab/x", false, None),
            ("/mcp", false, None),
        ] {
            assert_eq!(is_a2a_path(path), is, "{path}");
            assert_eq!(agent(path), agent_, "{path}");
        }
    }

    #[test]
    fn bodies_give_a_bounded_method_label_or_are_refused() {
        for (body, verdict) in [
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"SendMessage","params":{}}"#,
                Ok("SendMessage"),
            ),
            (
                r#"{"jsonrpc":"2.0","id":"a","method":"SendStreamingMessage"}"#,
                Ok("SendStreamingMessage"),
            ),
            (r#"{"method":"GetTask"}"#, Ok("GetTask")),
            (r#"{"method":"CancelTask"}"#, Ok("CancelTask")),
            (r#"{"method":"SubscribeToTask"}"#, Ok("SubscribeToTask")),
            (r#"{"method":"message/send"}"#, Ok("other")),
            (r#"{"method":"sendmessage"}"#, Ok("other")),
            (r#"{"jsonrpc":"2.0","id":1}"#, Err(INVALID_REQUEST)),
            (r#"{"method":""}"#, Err(INVALID_REQUEST)),
            ("null", Err(INVALID_REQUEST)),
            (r#"{"method":7}"#, Err(PARSE_ERROR)),
            ("[]", Err(PARSE_ERROR)),
            (r#" ["SendMessage"]"#, Err(PARSE_ERROR)),
            ("not json", Err(PARSE_ERROR)),
            ("", Err(PARSE_ERROR)),
        ] {
            assert_eq!(judge_body(body.as_bytes()), verdict, "{body}");
        }
        let e: serde_json::Value = serde_json::from_slice(&error_body(PARSE_ERROR)).expect("json");
        assert_eq!(
            e,
            serde_json::json!({"jsonrpc": "2.0", "id": null, "error": {"code": -32700, "message": "invalid json-rpc request"}})
        );
    }
}
