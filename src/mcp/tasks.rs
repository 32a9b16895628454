//! The Tasks extension (`io.modelcontextprotocol/tasks`, SEP-2663) as the gateway sees it: a
//! server may answer a `tools/call` with a task (`"resultType":"task"` and a `taskId`); the
//! client then asks about it with `tasks/get`, answers its input requests with `tasks/update` and
//! stops it with `tasks/cancel`, each naming the task in `params.taskId` and in the `Mcp-Name`
//! header. `tasks/list` and `tasks/result` are gone from the extension (-32601). A client that
//! did not declare the extension in its request's `_meta` client capabilities may not use the
//! `tasks/*` methods (-32021). Pure.

use serde_json::Value;

use super::modern::META_CLIENT_CAPABILITIES;

/// The extension's identifier, under `capabilities.extensions`.
pub const EXTENSION: &str = "io.modelcontextprotocol/tasks";
pub const GET: &str = "tasks/get";
pub const UPDATE: &str = "tasks/update";
pub const CANCEL: &str = "tasks/cancel";
/// 2026-07-28: the request needs a client capability its `_meta` did not declare (HTTP 400).
pub const MISSING_REQUIRED_CLIENT_CAPABILITY: i64 = -32021;

/// The `tasks/*` method a request names that goes to the server of its task (static, for
/// headers and metrics); `None` for any other method.
pub fn routed_method(method: &str) -> Option<&'static str> {
    [GET, UPDATE, CANCEL].into_iter().find(|m| *m == method)
}

/// Whether a request's `params._meta` client capabilities declare the extension.
pub fn declares_extension(params: Option<&str>) -> bool {
    let Some(params) = params.and_then(|p| serde_json::from_str::<Value>(p).ok()) else {
        return false;
    };
    params
        .pointer("/_meta")
        .and_then(|m| m.get(META_CLIENT_CAPABILITIES))
        .and_then(|c| c.get("extensions"))
        .and_then(|e| e.get(EXTENSION))
        .is_some()
}

/// The `data` of the -32021 error: what the client must declare.
pub fn required_capabilities() -> Value {
    serde_json::json!({"requiredCapabilities": {"extensions": {EXTENSION: {}}}})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_extension_is_declared_in_the_request_meta() {
        let cases: &[(Option<&str>, bool)] = &[
            (None, false),
            (Some(r#"{"taskId":"t"}"#), false),
            (
                Some(
                    r#"{"_meta":{"io.modelcontextprotocol/clientCapabilities":{"extensions":{"io.modelcontextprotocol/tasks":{}}}}}"#,
                ),
                true,
            ),
            (
                Some(
                    r#"{"_meta":{"io.modelcontextprotocol/clientCapabilities":{"extensions":{"other":{}}}}}"#,
                ),
                false,
            ),
            (
                Some(r#"{"_meta":{"io.modelcontextprotocol/clientCapabilities":{"sampling":{}}}}"#),
                false,
            ),
            (Some("[1]"), false),
        ];
        for (params, want) in cases {
            assert_eq!(declares_extension(*params), *want, "{params:?}");
        }
    }

    #[test]
    fn only_get_update_and_cancel_are_routed() {
        for (m, want) in [
            ("tasks/get", Some(GET)),
            ("tasks/update", Some(UPDATE)),
            ("tasks/cancel", Some(CANCEL)),
            ("tasks/list", None),
            ("tasks/result", None),
            ("tools/call", None),
        ] {
            assert_eq!(routed_method(m), want, "{m}");
        }
    }
}
