//! A routed call whose answer is not MCP: Envoy's own reply when the upstream cannot be reached
//! (`503 text/plain`, "upstream connect error …"), a timeout, or an upstream's bare 5xx page.
//! The client gets a JSON-RPC error with its request's id instead, naming the server, like every
//! other failure the gateway answers.

use crate::mcp::code;

/// The JSON-RPC error (HTTP status, code, message) for a routed call answered with `status`
/// and `content_type`, or `None` when the answer is the upstream's to give (any non-5xx, or a
/// 5xx that carries JSON or an SSE stream).
pub fn classify(
    status: &str,
    content_type: Option<&str>,
    server: &str,
) -> Option<(u16, i64, String)> {
    let status: u16 = status.parse().ok()?;
    if !(500..600).contains(&status) {
        return None;
    }
    let media = content_type
        .and_then(|c| c.split(';').next())
        .map(|c| c.trim().to_ascii_lowercase());
    if matches!(
        media.as_deref(),
        Some("application/json" | "text/event-stream")
    ) {
        return None;
    }
    Some(if status == 504 {
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
    fn only_bare_5xx_answers_become_json_rpc_errors() {
        type Row<'a> = (&'a str, Option<&'a str>, Option<(u16, i64)>);
        let s = "ns/srv";
        let table: &[Row] = &[
            ("200", Some("application/json"), None),
            ("200", Some("text/plain"), None),
            ("404", Some("text/plain"), None),
            ("503", Some("text/plain"), Some((502, -32002))),
            ("503", None, Some((502, -32002))),
            ("502", Some("text/html; charset=utf-8"), Some((502, -32002))),
            ("500", Some(""), Some((502, -32002))),
            ("504", Some("text/plain"), Some((504, -32003))),
            ("503", Some("application/json"), None),
            ("500", Some("Application/JSON; charset=utf-8"), None),
            ("500", Some("text/event-stream"), None),
            ("", Some("text/plain"), None),
            ("abc", None, None),
        ];
        for (status, ct, want) in table {
            let got = classify(status, *ct, s);
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
