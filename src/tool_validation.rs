//! Which tools of an upstream's `tools/list` are valid, and what `--invalid-tool-policy` does
//! with a server that advertises an invalid one. Pure: discovery applies it to each report.
//!
//! A tool is invalid, as in the seed gateway, when its name is empty, its `inputSchema` is
//! missing, not an object or not `type: "object"`, a property of it is not an object or has a
//! `type` that is not a JSON Schema type name, or its `outputSchema` (when it has a `type` or
//! `properties`) breaks the same rules. Beyond the seed: a name must follow the 2025-11-25 rule
//! (`[A-Za-z0-9_.-]{1,128}`), and a second tool with a name already listed by the same server
//! is invalid (the first is kept).

use std::collections::HashSet;

use serde::Serialize;
use serde_json::{Map, Value};

/// What to do with a server that advertises an invalid tool (`--invalid-tool-policy`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum InvalidToolPolicy {
    /// Serve its valid tools; leave the invalid ones out (the seed's default).
    #[default]
    #[value(name = "FilterOut")]
    FilterOut,
    /// Serve none of its tools while any is invalid.
    #[value(name = "RejectServer")]
    RejectServer,
}

/// One invalid tool and why, as `/status` shows it (the seed's `invalidToolList` entries).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InvalidTool {
    pub name: String,
    pub errors: Vec<String>,
}

const JSON_SCHEMA_TYPES: &[&str] = &[
    "string", "number", "integer", "boolean", "array", "object", "null",
];

/// Whether `name` follows the 2025-11-25 tool name rule: 1 to 128 of `A-Z a-z 0-9 _ - .`.
pub fn valid_tool_name(name: &str) -> bool {
    (1..=128).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// Why one tool is invalid (empty: it is valid). Duplicates are judged by [`check_tools`].
pub fn tool_errors(tool: &Value) -> Vec<String> {
    let mut errors = Vec::new();
    let Some(obj) = tool.as_object() else {
        return vec![format!("a tool must be a JSON object, got {}", kind(tool))];
    };
    match obj.get("name") {
        Some(Value::String(n)) if n.is_empty() => errors.push("name must not be empty".into()),
        Some(Value::String(n)) if !valid_tool_name(n) => errors
            .push("name must be 1 to 128 characters of A-Z, a-z, 0-9, '_', '-' and '.'".into()),
        Some(Value::String(_)) => {}
        Some(other) => errors.push(format!("name must be a string, got {}", kind(other))),
        None => errors.push("name must not be empty".into()),
    }
    match obj.get("inputSchema") {
        None | Some(Value::Null) => errors.push("inputSchema is required".into()),
        Some(Value::Object(schema)) => schema_errors(&mut errors, "inputSchema", schema),
        Some(other) => errors.push(format!(
            "inputSchema must be a JSON object, got {}",
            kind(other)
        )),
    }
    // As the seed: an outputSchema is checked when it says anything (a type or properties).
    if let Some(Value::Object(schema)) = obj.get("outputSchema") {
        if schema.contains_key("type") || schema.contains_key("properties") {
            schema_errors(&mut errors, "outputSchema", schema);
        }
    }
    errors
}

fn schema_errors(errors: &mut Vec<String>, what: &str, schema: &Map<String, Value>) {
    match schema.get("type") {
        Some(Value::String(t)) if t == "object" => {}
        Some(Value::String(t)) => errors.push(format!("{what}.type must be \"object\", got {t:?}")),
        None => errors.push(format!("{what}.type must be \"object\", got \"\"")),
        Some(other) => errors.push(format!(
            "{what}.type must be \"object\", got {}",
            kind(other)
        )),
    }
    let Some(Value::Object(properties)) = schema.get("properties") else {
        return;
    };
    for (name, property) in properties {
        let Some(property) = property.as_object() else {
            errors.push(format!(
                "{what}.properties[{name:?}] must be an object, got {}",
                kind(property)
            ));
            continue;
        };
        match property.get("type") {
            None => {}
            Some(Value::String(t)) if JSON_SCHEMA_TYPES.contains(&t.as_str()) => {}
            Some(Value::String(t)) => errors.push(format!(
                "{what}.properties[{name:?}].type {t:?} is not a valid JSON Schema type"
            )),
            Some(other) => errors.push(format!(
                "{what}.properties[{name:?}].type must be a string, got {}",
                kind(other)
            )),
        }
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Splits a server's tool list into the valid tools (in order) and the invalid ones with why.
pub fn check_tools(tools: &[Value]) -> (Vec<Value>, Vec<InvalidTool>) {
    let mut valid = Vec::with_capacity(tools.len());
    let mut invalid = Vec::new();
    let mut seen: HashSet<&str> = HashSet::with_capacity(tools.len());
    for tool in tools {
        let name = tool.get("name").and_then(Value::as_str).unwrap_or("");
        let mut errors = tool_errors(tool);
        if !name.is_empty() && !seen.insert(name) {
            errors.push("duplicate name: the server lists another tool by this name".into());
        }
        if errors.is_empty() {
            valid.push(tool.clone());
        } else {
            invalid.push(InvalidTool {
                name: name.to_owned(),
                errors,
            });
        }
    }
    (valid, invalid)
}

/// What a server's tools become under `policy`.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// The tools to serve.
    pub tools: Vec<Value>,
    pub invalid: Vec<InvalidTool>,
    /// `RejectServer` with an invalid tool: none of its tools are served.
    pub rejected: bool,
}

/// Applies `policy` to a server's tool list.
pub fn judge(policy: InvalidToolPolicy, tools: &[Value]) -> Verdict {
    let (valid, invalid) = check_tools(tools);
    let rejected = policy == InvalidToolPolicy::RejectServer && !invalid.is_empty();
    Verdict {
        tools: if rejected { Vec::new() } else { valid },
        invalid,
        rejected,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj() -> Value {
        json!({"type": "object"})
    }

    #[test]
    fn tools_are_judged_as_the_seed_judges_them_plus_the_name_rule() {
        let long = "a".repeat(129);
        let max = "a".repeat(128);
        for (tool, errors) in [
            (json!({"name": "ok", "inputSchema": obj()}), &[][..]),
            (
                json!({"name": "a.b-c_D9", "inputSchema": {"type": "object", "properties": {"x": {"type": "string"}, "y": {}}}}),
                &[][..],
            ),
            (json!({"name": max, "inputSchema": obj()}), &[][..]),
            (
                json!({"name": "", "inputSchema": obj()}),
                &["name must not be empty"][..],
            ),
            (
                json!({"inputSchema": obj()}),
                &["name must not be empty"][..],
            ),
            (
                json!({"name": 7, "inputSchema": obj()}),
                &["name must be a string, got a number"][..],
            ),
            (
                json!({"name": "has space", "inputSchema": obj()}),
                &["name must be 1 to 128 characters of A-Z, a-z, 0-9, '_', '-' and '.'"][..],
            ),
            (
                json!({"name": "ns/tool", "inputSchema": obj()}),
                &["name must be 1 to 128 characters of A-Z, a-z, 0-9, '_', '-' and '.'"][..],
            ),
            (
                json!({"name": long, "inputSchema": obj()}),
                &["name must be 1 to 128 characters of A-Z, a-z, 0-9, '_', '-' and '.'"][..],
            ),
            (json!({"name": "t"}), &["inputSchema is required"][..]),
            (
                json!({"name": "t", "inputSchema": null}),
                &["inputSchema is required"][..],
            ),
            (
                json!({"name": "t", "inputSchema": "object"}),
                &["inputSchema must be a JSON object, got a string"][..],
            ),
            (
                json!({"name": "t", "inputSchema": {}}),
                &["inputSchema.type must be \"object\", got \"\""][..],
            ),
            (
                json!({"name": "t", "inputSchema": {"type": "array"}}),
                &["inputSchema.type must be \"object\", got \"array\""][..],
            ),
            (
                json!({"name": "t", "inputSchema": {"type": "object", "properties": {"x": 3}}}),
                &["inputSchema.properties[\"x\"] must be an object, got a number"][..],
            ),
            (
                json!({"name": "t", "inputSchema": {"type": "object", "properties": {"x": {"type": "text"}}}}),
                &["inputSchema.properties[\"x\"].type \"text\" is not a valid JSON Schema type"][..],
            ),
            (
                json!({"name": "t", "inputSchema": {"type": "object", "properties": {"x": {"type": ["string", "null"]}}}}),
                &["inputSchema.properties[\"x\"].type must be a string, got an array"][..],
            ),
            // An outputSchema is checked only when it says something.
            (
                json!({"name": "t", "inputSchema": obj(), "outputSchema": {}}),
                &[][..],
            ),
            (
                json!({"name": "t", "inputSchema": obj(), "outputSchema": {"type": "string"}}),
                &["outputSchema.type must be \"object\", got \"string\""][..],
            ),
            (
                json!({"name": "t", "inputSchema": obj(), "outputSchema": {"properties": {"r": {"type": "number"}}}}),
                &["outputSchema.type must be \"object\", got \"\""][..],
            ),
            (
                json!("a string"),
                &["a tool must be a JSON object, got a string"][..],
            ),
            (
                json!({"name": "", "inputSchema": []}),
                &[
                    "name must not be empty",
                    "inputSchema must be a JSON object, got an array",
                ][..],
            ),
        ] {
            assert_eq!(tool_errors(&tool), errors, "{tool}");
        }
    }

    #[test]
    fn duplicates_keep_the_first_and_the_policy_decides_what_is_served() {
        let tools = vec![
            json!({"name": "a", "inputSchema": obj()}),
            json!({"name": "bad", "inputSchema": {"type": "string"}}),
            json!({"name": "a", "inputSchema": obj(), "description": "second"}),
            json!({"name": "b", "inputSchema": obj()}),
        ];
        let names = |v: &Verdict| -> Vec<String> {
            v.tools
                .iter()
                .map(|t| t["name"].as_str().unwrap_or("").to_owned())
                .collect()
        };
        let filtered = judge(InvalidToolPolicy::FilterOut, &tools);
        assert_eq!(names(&filtered), ["a", "b"]);
        assert!(!filtered.rejected);
        assert_eq!(
            filtered
                .invalid
                .iter()
                .map(|i| i.name.as_str())
                .collect::<Vec<_>>(),
            ["bad", "a"]
        );
        assert!(filtered.invalid[1].errors[0].starts_with("duplicate name"));

        let rejected = judge(InvalidToolPolicy::RejectServer, &tools);
        assert!(rejected.rejected);
        assert!(rejected.tools.is_empty());
        assert_eq!(rejected.invalid, filtered.invalid);

        // All valid: both policies serve everything.
        let good = &tools[..1];
        for policy in [
            InvalidToolPolicy::FilterOut,
            InvalidToolPolicy::RejectServer,
        ] {
            let v = judge(policy, good);
            assert_eq!(v.tools, good);
            assert!(v.invalid.is_empty() && !v.rejected);
        }
    }
}
