//! Where a Tasks-extension request (`tasks/get`, `tasks/update`, `tasks/cancel`) goes: to the
//! server that created the task, read from the task id itself. Pure.
//!
//! The id a client sees is the server's id tagged with the server (`mcpgw.<server>.<id>`, the
//! tag of [`super::relay`]), put there by the router when the create result (or a `tasks/get`
//! answer, or a status notification) passes through ([`crate::router::tasks`]). So any replica
//! routes any task request with no shared state and no lookup: nothing to write when a task is
//! created, nothing to expire with its ttl, nothing lost when a replica or the shared store
//! restarts, and no window where a replica has not yet learnt a task another one saw created
//! (the extension requires a `tasks/get` right after the create result to resolve). A task id
//! that carries no tag of a configured server is an unknown task (-32602), as the extension says.

use crate::catalog::Catalog;
use crate::config::Config;
use crate::jsonrpc::{Kind, Message, TargetField};
use crate::mcp::{code, tasks, CallKind};
use crate::reply::Reject;
use crate::router::facts::RequestFacts;

use super::{relay, Decision, UpstreamCall, UNKNOWN_TARGET_STATUS};

/// The decision on a stateless client's `tasks/*` request; `None` for any other message (and
/// for a session client's, which the broker answers as before).
pub(super) fn decide_task(
    config: &Config,
    catalog: &Catalog,
    facts: &RequestFacts,
    msg: &Message<'_>,
    m: &str,
) -> Option<Decision> {
    if msg.kind != Kind::Request || !crate::mcp::is_modern(facts.protocol_version.as_deref()) {
        return None;
    }
    let method = tasks::routed_method(m)?;
    let id = msg.owned_id();
    let reject = |status, code, message: String| {
        Some(Decision::Reject(Reject::new(
            status,
            code,
            message,
            id.clone(),
        )))
    };
    if !tasks::declares_extension(msg.params_text()) {
        let r = Reject::new(
            400,
            tasks::MISSING_REQUIRED_CLIENT_CAPABILITY,
            format!(
                "{m} needs the client capability extensions[{:?}] in params._meta",
                tasks::EXTENSION
            ),
            id.clone(),
        );
        return Some(Decision::Reject(
            r.with_data(tasks::required_capabilities()),
        ));
    }
    let target = match msg.target(TargetField::TaskId) {
        Ok(t) => t,
        Err(e) => return reject(400, code::INVALID_PARAMS, e.to_string()),
    };
    match facts.mcp_name.as_deref() {
        Some(h) if h != target.value => {
            return reject(
                400,
                code::HEADER_MISMATCH,
                format!(
                    "Mcp-Name header {h:?} does not match the body's taskId {:?}",
                    &*target.value
                ),
            )
        }
        None => {
            return reject(
                400,
                code::HEADER_MISMATCH,
                format!(
                    "Mcp-Name header is required (protocol version 2026-07-28); the body names task {:?}",
                    &*target.value
                ),
            )
        }
        Some(_) => {}
    }
    let server = relay::untag(&target.value).and_then(|(server, upstream_id)| {
        let s = config.server(&server).filter(|s| s.enabled)?;
        Some((s.clone(), upstream_id.to_owned()))
    });
    let Some((server, upstream_id)) = server else {
        return reject(
            UNKNOWN_TARGET_STATUS,
            code::INVALID_PARAMS,
            format!("Unknown task: {}", target.value),
        );
    };
    if let Some(vs_name) = &facts.virtual_server {
        // A virtual server's caller reaches the tasks of the servers whose tools it offers.
        let offers = config.virtual_server(vs_name).is_some_and(|vs| {
            vs.tools.iter().any(|t| {
                catalog
                    .find_tool(t)
                    .is_some_and(|r| r.server.name == server.name)
            })
        });
        if !offers {
            return reject(
                UNKNOWN_TARGET_STATUS,
                code::INVALID_PARAMS,
                format!(
                    "Unknown task: {} (not of a server of virtual server {vs_name})",
                    target.value
                ),
            );
        }
    }
    Some(Decision::Upstream(UpstreamCall {
        server,
        kind: CallKind::Task,
        method,
        upstream_name: upstream_id,
        hints: None,
        rename: Some(target.span.clone()),
        id: id?,
        ui_prefix: None,
    }))
}
