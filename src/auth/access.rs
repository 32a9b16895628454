//! What a caller may use: the pure rules, from the verified token's claims (native auth) and
//! from the trusted `x-mcp-authorized` header a policy engine sets. No I/O.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use serde_json::Value;

use crate::config::auth::ClaimPath;

/// Capabilities granted by a policy engine, by server name, unprefixed names
/// (the seed's `allowed-capabilities` claim).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capabilities {
    pub tools: HashMap<String, HashSet<String>>,
    pub prompts: HashMap<String, HashSet<String>>,
}

impl Capabilities {
    /// Parses the claim's JSON text: `{"tools":{"ns/name":["tool",…]},"prompts":{…}}`.
    pub fn parse(text: &str) -> Option<Capabilities> {
        let v: Value = serde_json::from_str(text).ok()?;
        if !v.is_object() {
            return None;
        }
        let section = |name: &str| -> Option<HashMap<String, HashSet<String>>> {
            match v.get(name) {
                None | Some(Value::Null) => Some(HashMap::new()),
                Some(Value::Object(m)) => m
                    .iter()
                    .map(|(server, names)| {
                        let names = names.as_array()?;
                        let set = names
                            .iter()
                            .map(|n| n.as_str().map(str::to_owned))
                            .collect::<Option<HashSet<String>>>()?;
                        Some((server.clone(), set))
                    })
                    .collect(),
                Some(_) => None,
            }
        };
        Some(Capabilities {
            tools: section("tools")?,
            prompts: section("prompts")?,
        })
    }
}

/// Everything that limits one caller. Each present source must allow a name.
#[derive(Debug, Clone, Default)]
pub struct Permissions {
    /// Native auth: the token's claims and where the names are listed.
    pub roles: Option<(ClaimPath, Arc<Value>)>,
    /// A policy engine's verdict.
    pub capabilities: Option<Arc<Capabilities>>,
}

/// The kinds of names permissions cover.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Tool,
    Prompt,
}

impl Permissions {
    /// No limits at all (no native auth, no trusted header).
    pub fn unrestricted(&self) -> bool {
        self.roles.is_none() && self.capabilities.is_none()
    }

    /// Whether some tool or prompt (`kind`) of `server` may be listed and used: whether there
    /// is anything of it for this caller at all.
    pub fn allows_any(&self, kind: Kind, server: &str) -> bool {
        let by_caps = self.capabilities.as_ref().map(|c| {
            let section = match kind {
                Kind::Tool => &c.tools,
                Kind::Prompt => &c.prompts,
            };
            section.get(server)
        });
        match (&self.roles, by_caps) {
            (None, None) => true,
            (None, Some(names)) => names.is_some_and(|n| !n.is_empty()),
            (Some((path, claims)), None) => !path.names(claims, server).is_empty(),
            // Both must allow the same name.
            (Some((path, claims)), Some(names)) => names.is_some_and(|n| {
                path.names(claims, server)
                    .iter()
                    .any(|r| n.iter().any(|c| c == r))
            }),
        }
    }

    /// Whether `name` (as the upstream knows it) of `server` may be listed and used.
    pub fn allows(&self, kind: Kind, server: &str, name: &str) -> bool {
        let by_roles = self
            .roles
            .as_ref()
            .is_none_or(|(path, claims)| path.names(claims, server).contains(&name));
        let by_caps = self.capabilities.as_ref().is_none_or(|c| {
            let section = match kind {
                Kind::Tool => &c.tools,
                Kind::Prompt => &c.prompts,
            };
            section
                .get(server)
                .is_some_and(|names| names.contains(name))
        });
        by_roles && by_caps
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::auth::DEFAULT_ROLES_CLAIM;
    use serde_json::json;

    #[test]
    fn capabilities_claims() {
        let c = Capabilities::parse(r#"{"tools":{"ns/a":["x","y"]},"prompts":{"ns/a":["p"]}}"#)
            .expect("parses");
        assert!(c.tools["ns/a"].contains("y"));
        assert!(c.prompts["ns/a"].contains("p"));
        assert_eq!(
            Capabilities::parse(r#"{"tools":{}}"#),
            Some(Capabilities::default())
        );
        for bad in [
            "",
            "[]",
            r#"{"tools":[]}"#,
            r#"{"tools":{"a":[1]}}"#,
            r#"{"tools":{"a":"x"}}"#,
        ] {
            assert_eq!(Capabilities::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn every_source_must_allow() {
        let claims = Arc::new(json!({"resource_access": {"ns/a": {"roles": ["x", "y"]}}}));
        let roles = Some((ClaimPath::parse(DEFAULT_ROLES_CLAIM).expect("path"), claims));
        let caps = Some(Arc::new(
            Capabilities::parse(r#"{"tools":{"ns/a":["y","z"]},"prompts":{"ns/a":["y"]}}"#)
                .expect("caps"),
        ));
        let none = Permissions::default();
        let only_roles = Permissions {
            roles: roles.clone(),
            capabilities: None,
        };
        let only_caps = Permissions {
            roles: None,
            capabilities: caps.clone(),
        };
        let both = Permissions {
            roles,
            capabilities: caps,
        };
        for (p, kind, server, name, want) in [
            (&none, Kind::Tool, "ns/a", "anything", true),
            (&only_roles, Kind::Tool, "ns/a", "x", true),
            (&only_roles, Kind::Tool, "ns/a", "z", false),
            (&only_roles, Kind::Tool, "ns/b", "x", false),
            (&only_roles, Kind::Prompt, "ns/a", "x", true),
            (&only_caps, Kind::Tool, "ns/a", "z", true),
            (&only_caps, Kind::Tool, "ns/a", "x", false),
            (&only_caps, Kind::Prompt, "ns/a", "z", false),
            (&both, Kind::Tool, "ns/a", "y", true),
            (&both, Kind::Tool, "ns/a", "x", false),
            (&both, Kind::Tool, "ns/a", "z", false),
        ] {
            assert_eq!(
                p.allows(kind, server, name),
                want,
                "{kind:?} {server} {name}"
            );
        }
        assert!(none.unrestricted());
        assert!(!both.unrestricted());
        // Whether anything of a server is allowed: by the same rule, for some name.
        let disjoint = Permissions {
            roles: both.roles.clone(),
            capabilities: Some(Arc::new(
                Capabilities::parse(r#"{"tools":{"ns/a":["z"]}}"#).expect("caps"),
            )),
        };
        for (p, kind, server, want) in [
            (&none, Kind::Tool, "ns/a", true),
            (&only_roles, Kind::Tool, "ns/a", true),
            (&only_roles, Kind::Tool, "ns/b", false),
            (&only_caps, Kind::Tool, "ns/a", true),
            (&only_caps, Kind::Tool, "ns/b", false),
            (&only_caps, Kind::Prompt, "ns/a", true),
            (&both, Kind::Tool, "ns/a", true),
            (&both, Kind::Tool, "ns/b", false),
            (&disjoint, Kind::Tool, "ns/a", false),
        ] {
            assert_eq!(p.allows_any(kind, server), want, "{kind:?} {server}");
        }
    }
}
