//! Whether the caller may make a routed call: with native auth, the tools and prompts its
//! verified token's roles list (resources are not limited by name; a task request needs a role
//! for some tool of the task's server). Pure.

use super::{CallKind, UpstreamCall};
use crate::auth::access::{self, Permissions};
use crate::auth::oidc::Identity;
use crate::config::auth::Auth;
use crate::mcp::code;
use crate::reply::Reject;

/// `None` when `call` may go on; else the 403 with the call's id. Without native auth (`auth`
/// `None`) every call may.
pub fn decide_access(
    auth: Option<&Auth>,
    identity: Option<&Identity>,
    call: &UpstreamCall,
) -> Option<Reject> {
    let auth = auth?;
    let kind = match call.kind {
        CallKind::Tool => access::Kind::Tool,
        CallKind::Prompt => access::Kind::Prompt,
        CallKind::Resource => return None,
        // The call that made the task was checked as a tool call, and the server that made it
        // knows who asks; here the caller must at least be one who may use that server.
        CallKind::Task => {
            let may = identity.is_some_and(|id| {
                !auth
                    .roles_claim
                    .names(&id.claims, &call.server.name)
                    .is_empty()
            });
            return (!may).then(|| {
                Reject::new(
                    403,
                    code::FORBIDDEN,
                    format!(
                        "Forbidden: you may use no tool of {}, so none of its tasks",
                        call.server.name
                    ),
                    Some(call.id.clone()),
                )
            });
        }
    };
    let permissions = Permissions {
        roles: identity.map(|id| (auth.roles_claim.clone(), id.claims.clone())),
        capabilities: None,
    };
    if permissions.allows(kind, &call.server.name, &call.upstream_name) {
        return None;
    }
    let noun = if kind == access::Kind::Tool {
        "tool"
    } else {
        "prompt"
    };
    Some(Reject::new(
        403,
        code::FORBIDDEN,
        format!(
            "Forbidden: you may not use {noun} {} of {}",
            call.upstream_name, call.server.name
        ),
        Some(call.id.clone()),
    ))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::config::Config;
    use crate::jsonrpc;

    #[test]
    fn roles_limit_tools_and_prompts_with_native_auth_only() {
        let config = Config::from_yaml(
            "auth: {issuer: 'http://issuer.example'}\nservers: [{name: ns/kube, url: 'http://kube/mcp', prefix: kube_}]",
        )
        .expect("config");
        let auth = config.auth.as_deref();
        let server = config.server("ns/kube").expect("server").clone();
        let id = jsonrpc::parse(br#"{"jsonrpc":"2.0","id":5,"method":"tools/call"}"#)
            .expect("parse")
            .owned_id()
            .expect("id");
        let call = |kind, name: &str| UpstreamCall {
            server: server.clone(),
            kind,
            method: "tools/call",
            upstream_name: name.into(),
            hints: None,
            rename: None,
            id: id.clone(),
            ui_prefix: None,
        };
        let alice = Identity {
            sub: "alice".into(),
            binding: "b".into(),
            claims: Arc::new(serde_json::json!({
                "resource_access": {"ns/kube": {"roles": ["pods_list", "greet"]}}
            })),
            exp: 4_000_000_000,
        };
        let bob = Identity {
            sub: "bob".into(),
            claims: Arc::new(serde_json::json!({
                "resource_access": {"ns/other": {"roles": ["pods_list"]}}
            })),
            ..alice.clone()
        };
        // (auth on, identity, kind, name, allowed)
        let cases = [
            (true, Some(&alice), CallKind::Tool, "pods_list", true),
            (true, Some(&alice), CallKind::Tool, "secrets_list", false),
            (true, Some(&alice), CallKind::Prompt, "greet", true),
            (true, Some(&alice), CallKind::Prompt, "other", false),
            (true, Some(&alice), CallKind::Resource, "k8s://x", true),
            // A task of a server the caller has roles for; no identity, no roles there.
            (true, Some(&alice), CallKind::Task, "t-1", true),
            (true, None, CallKind::Task, "t-1", false),
            (true, Some(&bob), CallKind::Task, "t-1", false),
            (false, None, CallKind::Task, "t-1", true),
            // Without native auth, no roles: every call may.
            (false, Some(&alice), CallKind::Tool, "secrets_list", true),
            (false, None, CallKind::Tool, "secrets_list", true),
        ];
        for (on, identity, kind, name, allowed) in cases {
            let got = decide_access(if on { auth } else { None }, identity, &call(kind, name));
            assert_eq!(got.is_none(), allowed, "{on} {kind:?} {name}");
            if let Some(r) = got {
                assert_eq!(
                    (r.status, r.code, r.id),
                    (403, code::FORBIDDEN, Some(id.clone()))
                );
                let named = if kind == CallKind::Task {
                    "ns/kube"
                } else {
                    name
                };
                assert!(r.message.contains(named), "{}", r.message);
            }
        }
    }
}
