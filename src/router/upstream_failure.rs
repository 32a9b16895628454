//! A routed call whose answer is not MCP: Envoy's own reply when the upstream cannot be reached
//! (`503 text/plain`, "upstream connect error …"), a timeout, an upstream's bare 5xx page, or a
//! bare 403 (a gateway policy behind the router, such as an RBAC filter or an AuthPolicy,
//! refusing the call). The client gets a JSON-RPC error with its request's id instead, naming
//! the server, like every other failure the gateway answers.

use super::facts::ResponseFacts;
use crate::mcp::{code, MediaType};

/// The JSON-RPC error (HTTP status, code, message) for a routed call answered with `status`
/// and `content_type`, or `None` when the answer is the upstream's to give: any answer that
/// carries JSON or an SSE stream, any status but 403 and 5xx, and a 403 with a
/// `WWW-Authenticate` challenge (`challenged`: a step-up request the client must see as sent).
pub fn classify(facts: &ResponseFacts, server: &str) -> Option<(u16, i64, String)> {
    let status = facts.status;
    let forbidden = status == 403 && !facts.challenged;
    if !forbidden && !(500..600).contains(&status) {
        return None;
    }
    if facts.media != MediaType::Other {
        return None;
    }
    Some(if forbidden {
        (
            403,
            code::FORBIDDEN,
            format!("Forbidden: a gateway policy or upstream {server} refused the call (HTTP 403)"),
        )
    } else if status == 504 {
        (
            504,
            code::UPSTREAM_TIMEOUT,
            format!("upstream {server} did not answer in time (HTTP 504)"),
        )
    } else {
        (
            502,
            code::UPSTREAM_UNAVAILABLE,
            format!("upstream {server} is unavailable (HTTP {status} without an MCP answer): retry later"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_bare_5xx_and_unchallenged_403_answers_become_json_rpc_errors() {
        type Row<'a> = (&'a str, Option<&'a str>, bool, Option<(u16, i64)>);
        let s = "ns/srv";
        let table: &[Row] = &[
            ("200", Some("application/json"), false, None),
            ("200", Some("text/plain"), false, None),
            ("404", Some("text/plain"), false, None),
            ("401", Some("text/plain"), false, None),
            ("401", Some("text/plain"), true, None),
            ("503", Some("text/plain"), false, Some((502, -32002))),
            ("503", None, false, Some((502, -32002))),
            (
                "502",
                Some("text/html; charset=utf-8"),
                false,
                Some((502, -32002)),
            ),
            ("500", Some(""), false, Some((502, -32002))),
            ("504", Some("text/plain"), false, Some((504, -32003))),
            ("503", Some("application/json"), false, None),
            ("500", Some("Application/JSON; charset=utf-8"), false, None),
            ("500", Some("text/event-stream"), false, None),
            // A policy's refusal (Envoy RBAC: "RBAC: access denied", text/plain).
            ("403", Some("text/plain"), false, Some((403, -32006))),
            ("403", None, false, Some((403, -32006))),
            // A step-up challenge, or the upstream's own JSON-RPC error: theirs to give.
            ("403", Some("text/plain"), true, None),
            ("403", Some("application/json"), false, None),
            ("", Some("text/plain"), false, None),
            ("abc", None, false, None),
        ];
        for (status, ct, challenged, want) in table {
            let facts = ResponseFacts {
                status: status.parse().unwrap_or(0),
                media: crate::mcp::media_type(*ct),
                challenged: *challenged,
            };
            let got = classify(&facts, s);
            assert_eq!(
                got.as_ref().map(|(h, c, _)| (*h, *c)),
                *want,
                "{status} {ct:?}"
            );
            if let Some((_, _, m)) = got {
                assert!(m.contains(s), "{m}");
            }
        }
    }
}
