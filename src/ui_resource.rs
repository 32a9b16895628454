//! `ui://` resources of MCP Apps, federated as the seed gateway does: only `ui://` URIs are
//! prefixed, in their authority (`ui://tpl.html` of a server with prefix `kube_` is
//! `ui://kube_tpl.html`; a prefix without a trailing `_` gets one), so that two servers' apps
//! cannot collide; other URIs keep their own form. A tool's `_meta.ui.resourceUri` names such a
//! resource and is prefixed the same way. Pure string work: the catalog and the router use it.

use serde_json::Value;

const SCHEME: &str = "ui://";

/// The prefix with its separator: `kube` and `kube_` both give `kube_`; empty stays empty.
fn separated(prefix: &str) -> String {
    if prefix.is_empty() || prefix.ends_with('_') {
        prefix.to_owned()
    } else {
        format!("{prefix}_")
    }
}

/// Splits a `ui://` URI into its authority (without any user info) and the rest.
fn split(uri: &str) -> Option<(&str, &str)> {
    let rest = uri.get(..SCHEME.len())?;
    if !rest.eq_ignore_ascii_case(SCHEME) {
        return None;
    }
    let rest = &uri[SCHEME.len()..];
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    // Credentials in a URI are never handed on to clients.
    let host = authority.rsplit('@').next().unwrap_or(authority);
    Some((host, tail))
}

/// The client-facing form of an upstream's `ui://` URI, or `None` for any other URI.
pub fn inject(uri: &str, prefix: &str) -> Option<String> {
    let (host, tail) = split(uri)?;
    Some(format!("{SCHEME}{}{host}{tail}", separated(prefix)))
}

/// The upstream's form of a client-facing `ui://` URI of the server with `prefix`, or `None`
/// when it is not a `ui://` URI whose authority starts with that prefix.
pub fn strip(uri: &str, prefix: &str) -> Option<String> {
    let (host, tail) = split(uri)?;
    let p = separated(prefix);
    if p.is_empty() {
        return Some(format!("{SCHEME}{host}{tail}"));
    }
    let bare = host.strip_prefix(p.as_str()).filter(|h| !h.is_empty())?;
    Some(format!("{SCHEME}{bare}{tail}"))
}

/// The authority of a `ui://` URI (for matching a server by prefix).
pub fn authority(uri: &str) -> Option<&str> {
    split(uri).map(|(h, _)| h)
}

/// Whether a `ui://` URI's authority carries `prefix` (with its separator).
pub fn has_prefix(uri: &str, prefix: &str) -> bool {
    let p = separated(prefix);
    !p.is_empty() && authority(uri).is_some_and(|a| a.len() > p.len() && a.starts_with(&p))
}

/// Prefixes a tool's `_meta.ui.resourceUri` in place when it is a `ui://` URI; whether it did.
pub fn prefix_tool_meta(tool: &mut Value, prefix: &str) -> bool {
    let Some(slot) = tool.pointer_mut("/_meta/ui/resourceUri") else {
        return false;
    };
    let Some(new) = slot.as_str().and_then(|u| inject(u, prefix)) else {
        return false;
    };
    *slot = Value::String(new);
    true
}

/// A JSON-RPC response whose `result._meta.ui.resourceUri` (a `ui://` URI) gets the server's
/// prefix, every other byte as it was; `None` when there is nothing to rewrite.
pub fn prefix_result_meta(body: &[u8], prefix: &str) -> Option<Vec<u8>> {
    use std::borrow::Cow;
    use std::collections::HashMap;

    use serde_json::value::RawValue;

    #[derive(serde::Deserialize)]
    struct Reply<'a> {
        #[serde(borrow)]
        result: Option<&'a RawValue>,
    }
    let text = std::str::from_utf8(body).ok()?;
    let reply: Reply<'_> = serde_json::from_str(text).ok()?;
    let mut raw = reply.result?;
    for key in ["_meta", "ui", "resourceUri"] {
        if !raw.get().starts_with('{') {
            return None;
        }
        let members: HashMap<Cow<'_, str>, &RawValue> = serde_json::from_str(raw.get()).ok()?;
        raw = members.get(key).copied()?;
    }
    let uri: String = serde_json::from_str(raw.get()).ok()?;
    let new = inject(&uri, prefix).filter(|n| *n != uri)?;
    let new = serde_json::to_string(&new).ok()?;
    // `raw` borrows from `text`: its offset is the distance between the two.
    let start = (raw.get().as_ptr() as usize).checked_sub(text.as_ptr() as usize)?;
    let end = start + raw.get().len();
    let mut out = Vec::with_capacity(body.len() + new.len());
    out.extend_from_slice(&body[..start]);
    out.extend_from_slice(new.as_bytes());
    out.extend_from_slice(&body[end..]);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ui_uris_are_prefixed_in_their_authority_and_others_left_alone() {
        for (uri, prefix, injected) in [
            ("ui://tpl.html", "kube_", Some("ui://kube_tpl.html")),
            ("ui://tpl.html", "kube", Some("ui://kube_tpl.html")),
            (
                "ui://widgets/chart.html?x=1",
                "k_",
                Some("ui://k_widgets/chart.html?x=1"),
            ),
            ("ui://user:pw@tpl.html/a", "k_", Some("ui://k_tpl.html/a")),
            ("UI://tpl.html", "k_", Some("ui://k_tpl.html")),
            ("ui://tpl.html", "", Some("ui://tpl.html")),
            ("file:///tpl.html", "k_", None),
            ("https://x/ui://y", "k_", None),
            ("ui:", "k_", None),
        ] {
            assert_eq!(inject(uri, prefix).as_deref(), injected, "{uri} {prefix}");
        }
        for (uri, prefix, stripped) in [
            ("ui://kube_tpl.html", "kube_", Some("ui://tpl.html")),
            ("ui://kube_tpl.html", "kube", Some("ui://tpl.html")),
            (
                "ui://k_widgets/chart.html?x=1",
                "k_",
                Some("ui://widgets/chart.html?x=1"),
            ),
            ("ui://other_tpl.html", "kube_", None),
            ("ui://kube_", "kube_", None),
            ("ui://tpl.html", "", Some("ui://tpl.html")),
            ("k8s://kube_x", "kube_", None),
        ] {
            assert_eq!(strip(uri, prefix).as_deref(), stripped, "{uri} {prefix}");
        }
        assert!(has_prefix("ui://kube_tpl.html", "kube_"));
        assert!(has_prefix("ui://kube_tpl.html", "kube"));
        assert!(!has_prefix("ui://kube_tpl.html", ""));
        assert!(!has_prefix("ui://kube_", "kube_"));
        assert!(!has_prefix("k8s://kube_tpl", "kube_"));
    }

    #[test]
    fn a_tools_app_resource_is_prefixed_in_its_meta() {
        let mut t = json!({"name": "chart", "_meta": {"ui": {"resourceUri": "ui://chart.html", "x": 1}, "other": "ui://keep"}});
        assert!(prefix_tool_meta(&mut t, "kube_"));
        assert_eq!(
            t,
            json!({"name": "chart", "_meta": {"ui": {"resourceUri": "ui://kube_chart.html", "x": 1}, "other": "ui://keep"}})
        );
        for mut t in [
            json!({"name": "plain"}),
            json!({"name": "n", "_meta": {"ui": {"resourceUri": "https://x/app.html"}}}),
            json!({"name": "n", "_meta": {"ui": {"resourceUri": 3}}}),
        ] {
            let before = t.clone();
            assert!(!prefix_tool_meta(&mut t, "kube_"));
            assert_eq!(t, before);
        }
    }

    #[test]
    fn a_results_app_resource_is_prefixed_and_nothing_else_changes() {
        for (body, out) in [
            (
                r#"{"jsonrpc":"2.0","id":1,"result":{"content":[],"_meta":{"x":1,"ui":{"resourceUri":"ui://chart.html","y":[1]}}}}"#,
                Some(
                    r#"{"jsonrpc":"2.0","id":1,"result":{"content":[],"_meta":{"x":1,"ui":{"resourceUri":"ui://app_chart.html","y":[1]}}}}"#,
                ),
            ),
            (
                r#"{"jsonrpc":"2.0","id":1, "result" : { "_meta" : { "ui" : { "resourceUri" : "ui://a" } } } }"#,
                Some(
                    r#"{"jsonrpc":"2.0","id":1, "result" : { "_meta" : { "ui" : { "resourceUri" : "ui://app_a" } } } }"#,
                ),
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"result":{"_meta":{"ui":{"resourceUri":"https://x"}}}}"#,
                None,
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"result":{"_meta":{"ui":{"resourceUri":7}}}}"#,
                None,
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"result":{"_meta":{"ui":"ui://a"}}}"#,
                None,
            ),
            (r#"{"jsonrpc":"2.0","id":1,"result":{"content":[]}}"#, None),
            (
                r#"{"jsonrpc":"2.0","id":1,"error":{"code":1,"message":"m"}}"#,
                None,
            ),
            ("not json", None),
        ] {
            let got = prefix_result_meta(body.as_bytes(), "app_");
            assert_eq!(
                got.as_deref()
                    .map(|b| std::str::from_utf8(b).expect("utf8")),
                out,
                "{body}"
            );
        }
        let b = r#"{"jsonrpc":"2.0","id":1,"result":{"_meta":{"ui":{"resourceUri":"ui://a"}}}}"#;
        assert_eq!(prefix_result_meta(b.as_bytes(), ""), None);
    }
}
