//! Bytes → one JSON-RPC message, and the targeted rewrite of a single string in it.
//!
//! The router parses only what routing needs: the envelope (`jsonrpc`, `id`, `method`) and, on
//! demand, one string member of `params` (`name` or `uri`) with its byte span. Everything else,
//! tool arguments included, is validated by a single scan but never built into a tree, and the
//! rewrite replaces only that span: every other byte of the body reaches the upstream unchanged
//! (big integers, key order, whitespace and escapes included).

use std::borrow::Cow;
use std::ops::Range;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;

use crate::mcp::code;

mod members;
mod scan;

/// An id as it came on the wire (a JSON string or number), kept verbatim for replies.
#[derive(Debug, Clone)]
pub struct OwnedId(Box<RawValue>);

impl OwnedId {
    /// The id's JSON text.
    pub fn get(&self) -> &str {
        self.0.get()
    }
}

impl From<&RawValue> for OwnedId {
    fn from(id: &RawValue) -> OwnedId {
        OwnedId(id.to_owned())
    }
}

impl std::ops::Deref for OwnedId {
    type Target = RawValue;
    fn deref(&self) -> &RawValue {
        &self.0
    }
}

impl PartialEq for OwnedId {
    fn eq(&self, other: &Self) -> bool {
        self.0.get() == other.0.get()
    }
}

/// What kind of message a body holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Has a method and an id: expects a response.
    Request,
    /// Has a method and no id.
    Notification,
    /// Has an id and a `result` or `error`: a client's answer to a server-to-client request.
    Response,
}

/// One parsed JSON-RPC message, borrowing from the body.
#[derive(Debug)]
pub struct Message<'a> {
    pub kind: Kind,
    pub id: Option<&'a RawValue>,
    /// Present for requests and notifications.
    pub method: Option<Cow<'a, str>>,
    /// `params`'s JSON text (validated), `None` when absent or `null`.
    params_text: Option<&'a str>,
    body: &'a str,
}

/// A string member of `params`, decoded, with the span its JSON literal (quotes included) covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target<'a> {
    pub value: Cow<'a, str>,
    pub span: Range<usize>,
}

/// Why a body is not one acceptable JSON-RPC message. Each maps to one JSON-RPC error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("body is not valid UTF-8")]
    NotUtf8,
    #[error("body is not valid JSON: {0}")]
    NotJson(String),
    #[error("JSON nesting is deeper than {MAX_DEPTH} levels")]
    TooDeep,
    #[error("batch requests are not supported")]
    Batch,
    #[error("invalid JSON-RPC message: {0}")]
    Invalid(String),
}

impl ParseError {
    /// The JSON-RPC error code for this failure.
    pub fn code(&self) -> i64 {
        match self {
            ParseError::NotUtf8 | ParseError::NotJson(_) | ParseError::TooDeep => code::PARSE_ERROR,
            ParseError::Batch | ParseError::Invalid(_) => code::INVALID_REQUEST,
        }
    }
}

/// Why a `params` member could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamsError {
    #[error("params must be an object")]
    NotObject,
    #[error("params.{0} is required")]
    Missing(&'static str),
    #[error("params.{0} must be a string")]
    NotString(&'static str),
    #[error("invalid params: {0}")]
    Invalid(String),
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow, default)]
    jsonrpc: Option<Cow<'a, str>>,
    /// Kept even when `null`, so that a null id is told apart from a missing one.
    #[serde(borrow, default, deserialize_with = "raw_keep_null")]
    id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    method: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    params: Option<&'a RawValue>,
    #[serde(borrow, default)]
    result: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "raw_keep_null")]
    error: Option<&'a RawValue>,
}

fn raw_keep_null<'de, D: Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(d).map(Some)
}

#[derive(Deserialize)]
struct NameOrUri<'a> {
    #[serde(borrow, default)]
    name: Option<&'a RawValue>,
    #[serde(borrow, default)]
    uri: Option<&'a RawValue>,
    #[serde(borrow, default, rename = "taskId")]
    task_id: Option<&'a RawValue>,
}

/// Deepest nesting of arrays and objects accepted (serde_json's own recursion limit).
pub const MAX_DEPTH: usize = 128;

/// Parses one JSON-RPC message. The whole body is validated (UTF-8, JSON syntax, nesting depth
/// up to [`MAX_DEPTH`]), but only the envelope is materialised.
pub fn parse(body: &[u8]) -> Result<Message<'_>, ParseError> {
    let body = std::str::from_utf8(body).map_err(|_| ParseError::NotUtf8)?;
    // The usual body: an object the scan reads whole, its depth checked on the way.
    let env = match scan_envelope(body) {
        Some(env) => env,
        None => envelope_by_serde(body)?,
    };
    if env.jsonrpc.as_deref() != Some("2.0") {
        return Err(ParseError::Invalid("jsonrpc must be \"2.0\"".into()));
    }
    if let Some(id) = env.id {
        if !is_valid_id(id) {
            return Err(ParseError::Invalid(
                "id must be a string or an integer".into(),
            ));
        }
    }
    let kind = match (&env.method, env.id, env.answered) {
        (Some(_), _, true) => {
            return Err(ParseError::Invalid(
                "a message cannot have both a method and a result or error".into(),
            ))
        }
        (Some(m), _, false) if m.is_empty() => {
            return Err(ParseError::Invalid("method must not be empty".into()))
        }
        (Some(_), Some(_), false) => Kind::Request,
        (Some(m), None, false) if !is_notification_method(m) => {
            // A request without an id would be dropped unanswered: refuse it instead.
            return Err(ParseError::Invalid(format!(
                "id is required: {m} is a request (only notifications/* go without an id)"
            )));
        }
        (Some(_), None, false) => Kind::Notification,
        (None, Some(_), true) => Kind::Response,
        (None, None, true) => return Err(ParseError::Invalid("a response needs an id".into())),
        (None, _, false) => return Err(ParseError::Invalid("method is required".into())),
    };
    Ok(Message {
        kind,
        id: env.id,
        method: env.method,
        params_text: env.params,
        body,
    })
}

/// The envelope as [`parse`] reads it.
struct Parts<'a> {
    jsonrpc: Option<Cow<'a, str>>,
    id: Option<&'a RawValue>,
    method: Option<Cow<'a, str>>,
    params: Option<&'a str>,
    /// A non-null `result`, or an `error`.
    answered: bool,
}

/// The envelope of `body` read by one validating scan ([`scan`]), when the scan can be sure.
fn scan_envelope(body: &str) -> Option<Parts<'_>> {
    let m = scan::envelope(body, MAX_DEPTH)?;
    // The id's text is one JSON value the scan has checked: a few bytes to read again.
    let id =
        m.id.map(serde_json::from_str::<&RawValue>)
            .transpose()
            .ok()?;
    Some(Parts {
        jsonrpc: m.jsonrpc.map(Cow::Borrowed),
        id,
        method: m.method.map(Cow::Borrowed),
        params: m.params,
        answered: m.answered,
    })
}

/// The envelope of `body` read by serde_json, which also words the error: the nesting depth
/// first, then anything but an object refused.
fn envelope_by_serde(body: &str) -> Result<Parts<'_>, ParseError> {
    check_depth(body.as_bytes())?;
    match body.trim_start().as_bytes().first() {
        Some(b'[') => {
            // Still reject bad JSON as a parse error first, as a client would expect.
            serde_json::from_str::<serde::de::IgnoredAny>(body)
                .map_err(|e| ParseError::NotJson(e.to_string()))?;
            return Err(ParseError::Batch);
        }
        Some(b'{') => {}
        None => return Err(ParseError::NotJson("empty body".into())),
        Some(_) => {
            serde_json::from_str::<serde::de::IgnoredAny>(body)
                .map_err(|e| ParseError::NotJson(e.to_string()))?;
            return Err(ParseError::Invalid("message must be a JSON object".into()));
        }
    }
    let env: Envelope<'_> = serde_json::from_str(body).map_err(|e| {
        if e.is_data() {
            ParseError::Invalid(e.to_string())
        } else {
            ParseError::NotJson(e.to_string())
        }
    })?;
    Ok(Parts {
        jsonrpc: env.jsonrpc,
        id: env.id,
        method: env.method,
        params: env.params.map(RawValue::get),
        answered: env.result.is_some() || env.error.is_some(),
    })
}

/// serde_json skips the members it does not materialise without a depth limit, so when it reads
/// the body (the scan checks the depth itself), the limit is checked here first, in one pass that
/// tracks only whether it is inside a string. String contents are skipped with `memchr`.
fn check_depth(body: &[u8]) -> Result<(), ParseError> {
    let mut depth = 0usize;
    let mut i = 0;
    while let Some(&b) = body.get(i) {
        match b {
            b'"' => {
                // To the closing quote, stepping over escaped characters.
                i += 1;
                loop {
                    match memchr::memchr2(b'"', b'\\', body.get(i..).unwrap_or_default()) {
                        Some(at) if body.get(i + at) == Some(&b'\\') => i += at + 2,
                        Some(at) => {
                            i += at;
                            break;
                        }
                        // Unterminated: serde_json reports the syntax error.
                        None => return Ok(()),
                    }
                }
            }
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(ParseError::TooDeep);
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

/// Whether `method` is one a client sends as a notification (MCP names them all
/// `notifications/…`); any other method is a request and needs an id.
fn is_notification_method(method: &str) -> bool {
    method.starts_with("notifications/")
}

/// The id of a body that is not an acceptable message, when one can still be read from it (a
/// JSON object whose `id` is a string or an integer), so that the error reply can carry it.
pub fn readable_id(body: &[u8]) -> Option<OwnedId> {
    #[derive(Deserialize)]
    struct IdOnly<'a> {
        #[serde(borrow, default)]
        id: Option<&'a RawValue>,
    }
    let text = std::str::from_utf8(body).ok()?;
    if check_depth(text.as_bytes()).is_err() {
        return None;
    }
    let found: IdOnly<'_> = serde_json::from_str(text).ok()?;
    found
        .id
        .filter(|id| is_valid_id(id))
        .map(|id| OwnedId(id.to_owned()))
}

/// JSON-RPC allows string, number or null ids; MCP forbids null. Fractions are refused too.
fn is_valid_id(id: &RawValue) -> bool {
    let s = id.get();
    match s.as_bytes().first() {
        Some(b'"') => true,
        Some(b'-' | b'0'..=b'9') => !s.contains(['.', 'e', 'E']),
        _ => false,
    }
}

impl<'a> Message<'a> {
    /// The id, owned, for building a reply after the body is gone.
    pub fn owned_id(&self) -> Option<OwnedId> {
        self.id.map(|i| OwnedId(i.to_owned()))
    }

    /// Reads `params.name` (tools, prompts) or `params.uri` (resources) and where it stands.
    pub fn target(&self, field: TargetField) -> Result<Target<'a>, ParamsError> {
        let params = self.params_text.ok_or(ParamsError::Missing(field.name()))?;
        if !params.starts_with('{') {
            return Err(ParamsError::NotObject);
        }
        // One scan of the already validated params; serde_json where the scan cannot be sure.
        let [name, uri, task_id] = match members::members(params, ["name", "uri", "taskId"]) {
            Some(found) => found,
            None => {
                let p: NameOrUri<'a> = serde_json::from_str(params)
                    .map_err(|e| ParamsError::Invalid(e.to_string()))?;
                [p.name, p.uri, p.task_id].map(|v| v.map(RawValue::get))
            }
        };
        let raw = match field {
            TargetField::Name => name,
            TargetField::Uri => uri,
            TargetField::TaskId => task_id,
        }
        .ok_or(ParamsError::Missing(field.name()))?;
        if !raw.starts_with('"') {
            return Err(ParamsError::NotString(field.name()));
        }
        let value: Cow<'a, str> = match members::plain_string(raw) {
            Some(plain) => Cow::Borrowed(plain),
            None => serde_json::from_str(raw).map_err(|_| ParamsError::NotString(field.name()))?,
        };
        Ok(Target {
            value,
            span: span_in(self.body, raw),
        })
    }
}

#[derive(Deserialize)]
struct CompletionParams<'a> {
    #[serde(borrow, default, rename = "ref")]
    reference: Option<CompletionRef<'a>>,
}

#[derive(Deserialize)]
struct CompletionRef<'a> {
    #[serde(borrow, default, rename = "type")]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    name: Option<&'a RawValue>,
    #[serde(borrow, default)]
    uri: Option<&'a RawValue>,
}

impl<'a> Message<'a> {
    /// `params` (absent when `null`), read from its validated text when asked for.
    pub fn params(&self) -> Option<&'a RawValue> {
        self.params_text
            .and_then(|text| serde_json::from_str::<&RawValue>(text).ok())
    }

    /// `params`'s JSON text, `None` when absent or `null`.
    pub fn params_text(&self) -> Option<&'a str> {
        self.params_text
    }

    /// The span the id's JSON text covers in the body.
    pub fn id_span(&self) -> Option<Range<usize>> {
        self.id.map(|id| span_in(self.body, id.get()))
    }

    /// The span of a member of `params` (any JSON value), when `params` is an object that has it.
    pub fn param_span(&self, key: &str) -> Option<Range<usize>> {
        let params = self.params_text?;
        let members: std::collections::HashMap<Cow<'a, str>, &'a RawValue> =
            serde_json::from_str(params).ok()?;
        members.get(key).map(|v| span_in(self.body, v.get()))
    }

    /// What a `completion/complete` completes: `params.ref.name` of a `ref/prompt`
    /// ([`TargetField::Name`]) or `params.ref.uri` of a `ref/resource` ([`TargetField::Uri`]).
    pub fn completion_ref(&self) -> Result<(TargetField, Target<'a>), ParamsError> {
        let params = self.params_text.ok_or(ParamsError::Missing("ref"))?;
        if !params.starts_with('{') {
            return Err(ParamsError::NotObject);
        }
        let p: CompletionParams<'a> =
            serde_json::from_str(params).map_err(|e| ParamsError::Invalid(e.to_string()))?;
        let r = p.reference.ok_or(ParamsError::Missing("ref"))?;
        let (field, raw, name) = match r.kind.as_deref() {
            Some("ref/prompt") => (TargetField::Name, r.name, "ref.name"),
            Some("ref/resource") => (TargetField::Uri, r.uri, "ref.uri"),
            _ => {
                return Err(ParamsError::Invalid(
                    "params.ref.type must be \"ref/prompt\" or \"ref/resource\"".into(),
                ))
            }
        };
        let raw = raw.ok_or(ParamsError::Missing(name))?;
        let value: Cow<'a, str> = (raw.get().starts_with('"'))
            .then(|| serde_json::from_str(raw.get()).ok())
            .flatten()
            .ok_or(ParamsError::NotString(name))?;
        Ok((
            field,
            Target {
                value,
                span: span_in(self.body, raw.get()),
            },
        ))
    }
}

/// Which string member of `params` names the target of a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetField {
    Name,
    Uri,
    /// `params.taskId` of the Tasks extension's `tasks/*` requests.
    TaskId,
}

impl TargetField {
    fn name(self) -> &'static str {
        match self {
            TargetField::Name => "name",
            TargetField::Uri => "uri",
            TargetField::TaskId => "taskId",
        }
    }
}

/// The byte range `part` (a sub-slice borrowed from `whole`) covers in `whole`.
fn span_in(whole: &str, part: &str) -> Range<usize> {
    let start = (part.as_ptr() as usize).saturating_sub(whole.as_ptr() as usize);
    debug_assert!(start + part.len() <= whole.len());
    start..start + part.len()
}

/// Returns `body` with `span` replaced by `value` encoded as a JSON string literal.
pub fn splice_string(body: &[u8], span: Range<usize>, value: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + value.len() + 2);
    out.extend_from_slice(&body[..span.start]);
    write_json_string(&mut out, value);
    out.extend_from_slice(&body[span.end..]);
    out
}

/// `value` as a JSON string literal, as serde_json writes it. Text without a control character,
/// a quote or a backslash (every tool name MCP allows, most log values) is its own literal
/// between quotes, which serde_json would only have checked byte by byte; it writes the rest.
pub fn write_json_string(out: &mut Vec<u8>, value: &str) {
    if value.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push(b'"');
        out.extend_from_slice(value.as_bytes());
        out.push(b'"');
        return;
    }
    // serde_json's escaping of a &str into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, value);
}

#[derive(Serialize)]
struct ErrorReply<'a> {
    jsonrpc: &'static str,
    id: &'a RawValue,
    error: ErrorObject<'a>,
}

#[derive(Serialize)]
struct ErrorObject<'a> {
    code: i64,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<&'a serde_json::Value>,
}

#[derive(Serialize)]
struct ResultReply<'a, T: Serialize> {
    jsonrpc: &'static str,
    id: &'a RawValue,
    result: T,
}

fn null_id() -> &'static RawValue {
    // A literal that is always valid JSON.
    static NULL: std::sync::OnceLock<Box<RawValue>> = std::sync::OnceLock::new();
    NULL.get_or_init(|| RawValue::from_string("null".to_owned()).unwrap_or_else(|_| unreachable!()))
}

/// A JSON-RPC error reply; `id` is `null` when the request had none (or it could not be read).
pub fn error_body(
    id: Option<&RawValue>,
    code: i64,
    message: &str,
    data: Option<&serde_json::Value>,
) -> Vec<u8> {
    let id: &RawValue = match id {
        Some(i) => i,
        None => null_id(),
    };
    let reply = ErrorReply {
        jsonrpc: "2.0",
        id,
        error: ErrorObject {
            code,
            message,
            data,
        },
    };
    serde_json::to_vec(&reply).unwrap_or_default()
}

/// A JSON-RPC success reply.
pub fn result_body<T: Serialize>(id: &RawValue, result: T) -> Vec<u8> {
    serde_json::to_vec(&ResultReply {
        jsonrpc: "2.0",
        id,
        result,
    })
    .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_ok(s: &str) -> Message<'_> {
        parse(s.as_bytes()).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn kinds_are_told_apart() {
        for (body, kind, id, method) in [
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#,
                Kind::Request,
                Some("1"),
                Some("ping"),
            ),
            (
                r#"{"jsonrpc":"2.0","id":"a-b","method":"x"}"#,
                Kind::Request,
                Some(r#""a-b""#),
                Some("x"),
            ),
            (
                r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
                Kind::Notification,
                None,
                Some("notifications/initialized"),
            ),
            (
                r#"{"jsonrpc":"2.0","id":7,"result":{}}"#,
                Kind::Response,
                Some("7"),
                None,
            ),
            (
                r#"{"jsonrpc":"2.0","id":7,"error":{"code":1,"message":"m"}}"#,
                Kind::Response,
                Some("7"),
                None,
            ),
            (
                " \n{\"method\":\"m\",\"jsonrpc\":\"2.0\",\"id\":12345678901234567890}",
                Kind::Request,
                Some("12345678901234567890"),
                Some("m"),
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"tools\/call"}"#,
                Kind::Request,
                Some("1"),
                Some("tools/call"),
            ),
        ] {
            let m = parse_ok(body);
            assert_eq!(m.kind, kind, "{body}");
            assert_eq!(m.id.map(|i| i.get()), id, "{body}");
            assert_eq!(m.method.as_deref(), method, "{body}");
        }
    }

    #[test]
    fn the_id_of_a_refused_message_is_read_where_it_can_be() {
        for (body, id) in [
            (r#"{"jsonrpc":"1.0","id":7,"method":"ping"}"#, Some("7")),
            (r#"{"jsonrpc":"2.0","id":"a-1"}"#, Some(r#""a-1""#)),
            (r#"{"jsonrpc":2.0,"id":8,"method":"ping"}"#, Some("8")),
            (
                r#"{"jsonrpc":"2.0","id":9,"method":"a","method":"b"}"#,
                Some("9"),
            ),
            (r#"{"jsonrpc":"2.0","id":1.5,"method":"ping"}"#, None),
            (r#"{"jsonrpc":"2.0","id":null,"method":"ping"}"#, None),
            (r#"{"jsonrpc":"2.0","id":{},"method":"ping"}"#, None),
            (r#"{"jsonrpc":"2.0","method":"ping"}"#, None),
            (r#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#, None),
            (r#"{"jsonrpc":"2.0","id":1"#, None),
            ("not json", None),
            ("", None),
        ] {
            assert_eq!(
                readable_id(body.as_bytes()).as_ref().map(OwnedId::get),
                id,
                "{body}"
            );
        }
        let deep = format!(
            "{}{}",
            "[".repeat(MAX_DEPTH + 10),
            "]".repeat(MAX_DEPTH + 10)
        );
        let deep = format!(r#"{{"id":1,"x":{deep}}}"#);
        assert_eq!(readable_id(deep.as_bytes()), None, "too deep: not read");
    }

    #[test]
    fn bad_messages_get_the_right_error() {
        for (body, expected_code, needle) in [
            ("", code::PARSE_ERROR, "empty"),
            ("   ", code::PARSE_ERROR, "empty"),
            ("{", code::PARSE_ERROR, "EOF"),
            ("{\"jsonrpc\":\"2.0\",}", code::PARSE_ERROR, ""),
            ("not json", code::PARSE_ERROR, ""),
            (
                r#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#,
                code::INVALID_REQUEST,
                "batch",
            ),
            ("[", code::PARSE_ERROR, ""),
            ("42", code::INVALID_REQUEST, "object"),
            (r#""x""#, code::INVALID_REQUEST, "object"),
            (
                r#"{"id":1,"method":"ping"}"#,
                code::INVALID_REQUEST,
                "jsonrpc",
            ),
            (
                r#"{"jsonrpc":"1.0","id":1,"method":"ping"}"#,
                code::INVALID_REQUEST,
                "jsonrpc",
            ),
            (
                r#"{"jsonrpc":2.0,"id":1,"method":"ping"}"#,
                code::INVALID_REQUEST,
                "",
            ),
            (
                r#"{"jsonrpc":"2.0","id":1}"#,
                code::INVALID_REQUEST,
                "method",
            ),
            (r#"{"jsonrpc":"2.0"}"#, code::INVALID_REQUEST, "method"),
            (
                r#"{"jsonrpc":"2.0","id":null,"method":"ping"}"#,
                code::INVALID_REQUEST,
                "id",
            ),
            (
                r#"{"jsonrpc":"2.0","id":1.5,"method":"ping"}"#,
                code::INVALID_REQUEST,
                "id",
            ),
            (
                r#"{"jsonrpc":"2.0","id":{},"method":"ping"}"#,
                code::INVALID_REQUEST,
                "id",
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":""}"#,
                code::INVALID_REQUEST,
                "empty",
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":5}"#,
                code::INVALID_REQUEST,
                "",
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"a","method":"b"}"#,
                code::INVALID_REQUEST,
                "duplicate",
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"a","result":{}}"#,
                code::INVALID_REQUEST,
                "both",
            ),
            (
                r#"{"jsonrpc":"2.0","result":{}}"#,
                code::INVALID_REQUEST,
                "id",
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"a"} trailing"#,
                code::PARSE_ERROR,
                "",
            ),
            // A request without an id would go unanswered.
            (
                r#"{"jsonrpc":"2.0","method":"tools/call","params":{"name":"x"}}"#,
                code::INVALID_REQUEST,
                "id is required",
            ),
            (
                r#"{"jsonrpc":"2.0","method":"ping"}"#,
                code::INVALID_REQUEST,
                "id is required",
            ),
        ] {
            let err = parse(body.as_bytes()).expect_err(body);
            assert_eq!(err.code(), expected_code, "{body}: {err}");
            assert!(err.to_string().contains(needle), "{body}: {err}");
        }
    }

    #[test]
    fn invalid_utf8_is_a_parse_error() {
        let body =
            b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\",\"params\":{\"a\":\"\xff\"}}";
        assert_eq!(parse(body).expect_err("utf8"), ParseError::NotUtf8);
    }

    #[test]
    fn nesting_beyond_the_limit_is_rejected_not_overflowed() {
        let deep = format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"t","arguments":{}{}}}}}"#,
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        assert_eq!(
            parse(deep.as_bytes()).expect_err("deep"),
            ParseError::TooDeep
        );
        let ok = format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"m","params":{{"s":"[[[[{{","a":{}{}}}}}"#,
            "[".repeat(120),
            "]".repeat(120)
        );
        assert!(
            parse(ok.as_bytes()).is_ok(),
            "brackets in strings do not count"
        );
    }

    #[test]
    fn the_scan_and_serde_json_read_the_same_envelope_and_depth() {
        let nest = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        // The body's depth counts the envelope: params may nest MAX_DEPTH - 1 levels.
        let at = |n: usize| {
            format!(
                r#"{{"jsonrpc":"2.0","id":1,"method":"m","params":{}}}"#,
                nest(n)
            )
        };
        assert!(parse(at(MAX_DEPTH - 1).as_bytes()).is_ok());
        assert_eq!(
            parse(at(MAX_DEPTH).as_bytes()).expect_err("deep"),
            ParseError::TooDeep
        );
        for body in [
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"kube_x","arguments":{"s":"é\"\u0041"}}}"#,
            r#"{"jsonrpc":"2.0","id":"a","result":null,"error":null}"#,
            r#"{"jsonrpc":"2.0","id":null,"method":"m","params":null}"#,
            r#" {"method":"notifications/x","jsonrpc":"2.0"} "#,
            r#"{"jsonrpc":"2.0","id":-0,"result":[1,{"a":[]}]}"#,
        ] {
            let scanned = scan_envelope(body).expect("the scan reads it");
            let by_serde = envelope_by_serde(body).expect("serde_json reads it");
            assert_eq!(scanned.jsonrpc, by_serde.jsonrpc, "{body}");
            assert_eq!(
                scanned.id.map(RawValue::get),
                by_serde.id.map(RawValue::get),
                "{body}"
            );
            assert_eq!(scanned.method, by_serde.method, "{body}");
            assert_eq!(scanned.params, by_serde.params, "{body}");
            assert_eq!(scanned.answered, by_serde.answered, "{body}");
        }
    }

    #[test]
    fn depth_counts_only_brackets_outside_strings() {
        let nest = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        let cases: &[(String, bool)] = &[
            (nest(MAX_DEPTH), true),
            (nest(MAX_DEPTH + 1), false),
            (format!(r#"["{}"]"#, "[".repeat(500)), true),
            // An escaped quote does not end the string; an escaped backslash does not escape it.
            (format!(r#"["\"{}"]"#, "[".repeat(500)), true),
            (format!(r#"["\\", {}]"#, nest(MAX_DEPTH - 1)), true),
            (format!(r#"["\\", {}]"#, nest(MAX_DEPTH)), false),
            (format!(r#"["\\\"{}", 1]"#, "{".repeat(500)), true),
            // Unterminated strings and a trailing backslash end the scan (serde_json reports them).
            (r#"["abc"#.to_owned(), true),
            (r#"["abc\"#.to_owned(), true),
            (String::new(), true),
        ];
        for (text, ok) in cases {
            assert_eq!(check_depth(text.as_bytes()).is_ok(), *ok, "{text:.80}");
        }
    }

    #[test]
    fn targets_are_found_with_their_spans() {
        for (body, field, value) in [
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"kube_x","arguments":{}}}"#,
                TargetField::Name,
                "kube_x",
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"arguments":{"name":"decoy"},"name":"ev_echo"}}"#,
                TargetField::Name,
                "ev_echo",
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{ "name" : "ev_\u0065cho" }}"#,
                TargetField::Name,
                "ev_echo",
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"file:///a b"}}"#,
                TargetField::Uri,
                "file:///a b",
            ),
        ] {
            let m = parse_ok(body);
            let t = m.target(field).unwrap_or_else(|e| panic!("{body}: {e}"));
            assert_eq!(t.value, value, "{body}");
            let literal = &body[t.span.clone()];
            assert_eq!(
                serde_json::from_str::<String>(literal).ok().as_deref(),
                Some(value),
                "{body}"
            );
        }
    }

    #[test]
    fn a_target_that_is_not_one_string_is_refused() {
        // (params, the refusal) for params.name: the scan answers the first ones, serde_json the
        // repeated and escaped keys.
        for (params, want) in [
            (r#"{"arguments":{}}"#, ParamsError::Missing("name")),
            (r#"{"name":null}"#, ParamsError::Missing("name")),
            (r#"{"name":7}"#, ParamsError::NotString("name")),
            (r#"{"name":["a"]}"#, ParamsError::NotString("name")),
            (r#"["name"]"#, ParamsError::NotObject),
        ] {
            let body =
                format!(r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{params}}}"#);
            let got = parse_ok(&body).target(TargetField::Name);
            assert_eq!(got.err(), Some(want), "{params}");
        }
        for params in [
            r#"{"name":"a","name":"b"}"#,
            r#"{"n\u0061me":"a","name":"b"}"#,
        ] {
            let body =
                format!(r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{params}}}"#);
            let got = parse_ok(&body).target(TargetField::Name);
            assert!(
                matches!(got, Err(ParamsError::Invalid(ref e)) if e.contains("duplicate field")),
                "{params}: {got:?}"
            );
        }
    }

    #[test]
    fn completion_refs_and_member_spans_are_found() {
        for (body, field, value) in [
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"completion/complete","params":{"ref":{"type":"ref/prompt","name":"ev_p"},"argument":{"name":"a","value":"x"}}}"#,
                Some(TargetField::Name),
                "ev_p",
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"completion/complete","params":{"argument":{"name":"uri"},"ref":{"uri":"test://t/{id}","type":"ref/resource"}}}"#,
                Some(TargetField::Uri),
                "test://t/{id}",
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"completion/complete","params":{"ref":{"type":"ref/other","name":"x"}}}"#,
                None,
                "",
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"completion/complete","params":{"ref":{"type":"ref/prompt","name":3}}}"#,
                None,
                "",
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"completion/complete","params":{}}"#,
                None,
                "",
            ),
        ] {
            let m = parse_ok(body);
            match (m.completion_ref(), field) {
                (Ok((f, t)), Some(expected)) => {
                    assert_eq!(f, expected, "{body}");
                    assert_eq!(t.value, value, "{body}");
                    assert_eq!(
                        serde_json::from_str::<String>(&body[t.span.clone()])
                            .ok()
                            .as_deref(),
                        Some(value),
                        "{body}"
                    );
                }
                (Err(_), None) => {}
                (r, _) => panic!("{body}: {r:?}"),
            }
        }
        let body = r#"{"jsonrpc":"2.0","id":"abc","method":"notifications/cancelled","params":{"requestId": 12,"reason":"x"}}"#;
        let m = parse_ok(body);
        assert_eq!(&body[m.id_span().expect("id")], r#""abc""#);
        assert_eq!(&body[m.param_span("requestId").expect("requestId")], "12");
        assert_eq!(m.param_span("nothing"), None);
    }

    #[test]
    fn bad_params_are_reported() {
        for (body, err) in [
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"tools/call"}"#,
                ParamsError::Missing("name"),
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":[]}"#,
                ParamsError::NotObject,
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{}}"#,
                ParamsError::Missing("name"),
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":3}}"#,
                ParamsError::NotString("name"),
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","name":"b"}}"#,
                ParamsError::Invalid("duplicate field `name` at line 1 column 18".into()),
            ),
        ] {
            assert_eq!(
                parse_ok(body).target(TargetField::Name).expect_err(body),
                err,
                "{body}"
            );
        }
    }

    #[test]
    fn splice_keeps_every_other_byte() {
        let body = "{\"jsonrpc\":\"2.0\", \"id\":12345678901234567890,\"method\":\"tools/call\",\n  \"params\":{\"arguments\":{\"n\":123456789012345678901234567890,\"f\":1.0000000000000000001,\"s\":\"\\u00e9\\n\"},\"name\":\"kube_pods_list\"}}";
        let m = parse_ok(body);
        let t = m.target(TargetField::Name).expect("target");
        let out = splice_string(body.as_bytes(), t.span.clone(), "pods_list");
        let expected = body.replace("\"kube_pods_list\"", "\"pods_list\"");
        assert_eq!(String::from_utf8(out).expect("utf8"), expected);
    }

    /// The literal written for a value is serde_json's, whether it is written directly (no
    /// control character, quote or backslash) or by serde_json (everything else).
    #[test]
    fn string_literals_are_serde_jsons() {
        let cases = [
            "",
            "pods_list",
            "a.b-c_D9",
            " ~!#$%&'()*+,/:;<=>?@[]^`{|}",
            "quote\"",
            "back\\slash",
            "tab\tnew\nline",
            "nul\u{0}",
            "del\u{7f}",
            "é",
            "𝄞",
            "\u{2028}",
        ];
        for value in cases {
            let mut out = Vec::new();
            write_json_string(&mut out, value);
            assert_eq!(
                out,
                serde_json::to_vec(value).expect("serde_json"),
                "{value:?}"
            );
        }
    }

    #[test]
    fn splice_escapes_what_needs_escaping() {
        let body = br#"{"name":"x"}"#;
        let out = splice_string(body, 8..11, "a\"b\\c\n");
        assert_eq!(&out, br#"{"name":"a\"b\\c\n"}"#);
    }

    #[test]
    fn error_bodies_echo_the_id_verbatim() {
        let m = parse_ok(r#"{"jsonrpc":"2.0","id":12345678901234567890,"method":"x"}"#);
        let body = error_body(m.id, -32601, "Method not found", None);
        assert_eq!(
            String::from_utf8(body).expect("utf8"),
            r#"{"jsonrpc":"2.0","id":12345678901234567890,"error":{"code":-32601,"message":"Method not found"}}"#
        );
        let body = error_body(None, -32700, "Parse error", None);
        assert_eq!(
            String::from_utf8(body).expect("utf8"),
            r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse error"}}"#
        );
    }

    mod props {
        use super::super::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2000))]

            #[test]
            fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
                let _ = parse(&bytes);
            }

            #[test]
            fn parse_never_panics_on_jsonish(s in r#"[\[\]{}":,0-9a-z\\ .-]{0,200}"#) {
                if let Ok(m) = parse(s.as_bytes()) {
                    let _ = m.target(TargetField::Name);
                    let _ = m.target(TargetField::Uri);
                }
            }

            #[test]
            fn strip_then_readd_prefix_is_identity(
                prefix in "[a-z0-9][a-z0-9_]{0,8}",
                name in r#"[A-Za-z0-9_.\-"\\/ é]{1,40}"#,
                args in r#"\{("[a-z]{1,5}":(-?[0-9]{1,30}|"[a-z\\ ]{0,10}"|true|null),?){0,4}\}"#,
            ) {
                let args = args.replace(",}", "}");
                let prefixed = format!("{prefix}{name}");
                let original = format!(
                    r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"arguments":{args},"name":{}}}}}"#,
                    serde_json::to_string(&prefixed).expect("encode")
                );
                let Ok(m) = parse(original.as_bytes()) else { return Ok(()); };
                let t = m.target(TargetField::Name).expect("target");
                prop_assert_eq!(t.value.as_ref(), prefixed.as_str());
                let stripped = splice_string(original.as_bytes(), t.span.clone(), &name);
                let m2 = parse(&stripped).expect("stripped parses");
                let t2 = m2.target(TargetField::Name).expect("target");
                prop_assert_eq!(t2.value.as_ref(), name.as_str());
                let readded = splice_string(&stripped, t2.span.clone(), &prefixed);
                prop_assert_eq!(readded, original.into_bytes());
            }
        }
    }
}
