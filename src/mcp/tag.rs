//! The gateway's tag on a value an upstream chose (an SSE event id, a server request's id, a
//! task id): `mcpgw.<server name, base64url>.<value>`, so that the client's later message naming
//! it (a resumed stream, a response, a `tasks/*` request) says which server it belongs to. Shared
//! by the router (which tags and routes by it) and the broker (which tags what its own streams
//! relay). Tags carry no secret. Pure.

use base64::Engine;

/// What every tag starts with.
pub const TAG: &str = "mcpgw.";

fn b64() -> &'static base64::engine::GeneralPurpose {
    &base64::engine::general_purpose::URL_SAFE_NO_PAD
}

/// The tag prefix for a server: `mcpgw.<name, base64url>.`.
pub fn tag_prefix(server: &str) -> String {
    format!("{TAG}{}.", b64().encode(server))
}

/// `value` tagged with its server.
pub fn tag(server: &str, value: &str) -> String {
    format!("{}{value}", tag_prefix(server))
}

/// The server and the original value of a tagged value; `None` for anything else.
pub fn untag(tagged: &str) -> Option<(String, &str)> {
    let rest = tagged.strip_prefix(TAG)?;
    let (server, value) = rest.split_once('.')?;
    let server = String::from_utf8(b64().decode(server).ok()?).ok()?;
    (!server.is_empty()).then_some((server, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tag_names_its_server_and_gives_the_value_back() {
        for (server, value) in [("s", "1"), ("ns/a", "task.with.dots"), ("x", "")] {
            assert_eq!(untag(&tag(server, value)), Some((server.to_owned(), value)));
        }
        for other in ["t-1", "mcpgw.", "mcpgw.!!.x", "mcpgw..x", "mcpgw.czE"] {
            assert_eq!(untag(other), None, "{other}");
        }
    }
}
