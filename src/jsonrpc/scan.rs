//! The envelope of a JSON-RPC body read in one validating scan instead of serde_json.
//!
//! serde_json reads the envelope into a struct and steps over `params` (tool arguments, often
//! most of the body) with its own string scan, 8 bytes a step. This scan validates the whole
//! body as serde_json does when it reads the envelope, stepping over string contents with
//! `memchr`, and notes where the envelope's members lie.
//!
//! It answers only when it is sure to agree with serde_json: a body it accepts is one serde_json
//! accepts too, with the same members. Anything else (text that is not JSON, a key or an
//! envelope string written with an escape, a member of the envelope given twice or of the wrong
//! type) gives `None`, and the caller parses with serde_json, which also words the error. The
//! differential tests below hold it to that.

/// The envelope's members as the scan found them: the raw JSON text of each value.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Members<'a> {
    /// `jsonrpc`, unquoted (a string without escapes), `None` when absent or `null`.
    pub(super) jsonrpc: Option<&'a str>,
    /// `id`'s text, `null` included.
    pub(super) id: Option<&'a str>,
    /// `method`, unquoted, `None` when absent or `null`.
    pub(super) method: Option<&'a str>,
    /// `params`'s text, `None` when absent or `null`.
    pub(super) params: Option<&'a str>,
    /// Whether the body has a non-null `result` or any `error` (`null` included).
    pub(super) answered: bool,
}

/// The members of the envelope of `body` (a whole JSON-RPC body), or `None` when serde_json must
/// decide (see the module docs). A body nested deeper than `max_depth` levels (the envelope is
/// the first) also gives `None`.
pub(super) fn envelope(body: &str, max_depth: usize) -> Option<Members<'_>> {
    // One bit per level below the envelope (`value_end`).
    let limit = u32::try_from(max_depth.saturating_sub(1))
        .unwrap_or(u32::MAX)
        .min(128);
    let b = body.as_bytes();
    let mut found = Members::default();
    let mut seen = [false; 6];
    let mut i = ws(b, 0);
    if b.get(i) != Some(&b'{') {
        return None;
    }
    i = ws(b, i + 1);
    if b.get(i) == Some(&b'}') {
        return (ws(b, i + 1) == b.len()).then_some(found);
    }
    loop {
        let key_end = string_end(b, i)?;
        let key = body.get(i + 1..key_end - 1)?;
        if key.contains('\\') {
            return None;
        }
        i = ws(b, key_end);
        if b.get(i) != Some(&b':') {
            return None;
        }
        i = ws(b, i + 1);
        let end = value_end(b, i, limit)?;
        let value = body.get(i..end)?;
        let slot = ["jsonrpc", "id", "method", "params", "result", "error"]
            .iter()
            .position(|k| *k == key);
        if let Some(k) = slot {
            // serde_json refuses a struct field given twice.
            if std::mem::replace(&mut seen[k], true) {
                return None;
            }
            let not_null = (value != "null").then_some(value);
            match k {
                0 => found.jsonrpc = plain_or_null(value)?,
                1 => found.id = Some(value),
                2 => found.method = plain_or_null(value)?,
                3 => found.params = not_null,
                4 => found.answered |= not_null.is_some(),
                _ => found.answered = true,
            }
        }
        i = ws(b, end);
        match b.get(i) {
            Some(b',') => i = ws(b, i + 1),
            Some(b'}') => return (ws(b, i + 1) == b.len()).then_some(found),
            _ => return None,
        }
    }
}

/// A string member of the envelope as serde_json reads it into an `Option<Cow<str>>`: `null` is
/// absent; a string without escapes is borrowed; anything else is for serde_json (an escaped
/// string it decodes, another type it refuses).
fn plain_or_null(value: &str) -> Option<Option<&str>> {
    if value == "null" {
        return Some(None);
    }
    let inner = value.strip_prefix('"')?.strip_suffix('"')?;
    (!inner.contains('\\')).then_some(Some(inner))
}

fn ws(b: &[u8], mut i: usize) -> usize {
    while matches!(b.get(i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        i += 1;
    }
    i
}

/// Bytes of a string looked at one by one before `memchr2` takes over.
const SHORT: usize = 24;

/// The index of the next `"` or `\` at or after `i` in a string's contents, and whether a
/// control character (below 0x20) comes before it. The first bytes are looked at one by one (keys
/// and names end among them), the rest by `memchr2`, whose call costs about a hundred
/// instructions before its first byte.
fn next_quote_or_backslash(b: &[u8], i: usize) -> Option<(usize, bool)> {
    for (k, &c) in b.get(i..)?.iter().take(SHORT).enumerate() {
        if c == b'"' || c == b'\\' {
            return Some((i + k, false));
        }
        if c < 0x20 {
            return Some((i + k, true));
        }
    }
    let from = (i + SHORT).min(b.len());
    let rest = b.get(from..)?;
    let found = memchr::memchr2(b'"', b'\\', rest)?;
    // A fold without an early exit vectorises; a control character is below 0x20.
    let control = rest.get(..found)?.iter().fold(u8::MAX, |m, &c| m.min(c)) < 0x20;
    Some((from + found, control))
}

/// The index after the string literal that opens at `open`, checked as serde_json checks a string
/// it steps over: no control character, and escapes `\" \\ \/ \b \f \n \r \t \uXXXX`.
fn string_end(b: &[u8], open: usize) -> Option<usize> {
    if b.get(open) != Some(&b'"') {
        return None;
    }
    let mut i = open + 1;
    loop {
        let (at, control) = next_quote_or_backslash(b, i)?;
        if control {
            return None;
        }
        i = at;
        if b.get(i) == Some(&b'"') {
            return Some(i + 1);
        }
        match b.get(i + 1)? {
            b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => i += 2,
            b'u' => {
                if !b.get(i + 2..i + 6)?.iter().all(u8::is_ascii_hexdigit) {
                    return None;
                }
                i += 6;
            }
            _ => return None,
        }
    }
}

fn digits(b: &[u8], mut i: usize) -> usize {
    while matches!(b.get(i), Some(b'0'..=b'9')) {
        i += 1;
    }
    i
}

/// The index after the number that starts at `i` (serde_json's grammar: no leading zeros, a
/// digit after `.` and after the exponent's sign).
fn number_end(b: &[u8], mut i: usize) -> Option<usize> {
    if b.get(i) == Some(&b'-') {
        i += 1;
    }
    match b.get(i)? {
        b'0' => {
            i += 1;
            if matches!(b.get(i), Some(b'0'..=b'9')) {
                return None;
            }
        }
        b'1'..=b'9' => i = digits(b, i + 1),
        _ => return None,
    }
    if b.get(i) == Some(&b'.') {
        let after = digits(b, i + 1);
        if after == i + 1 {
            return None;
        }
        i = after;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let after = digits(b, i);
        if after == i {
            return None;
        }
        i = after;
    }
    Some(i)
}

/// The index after the JSON value that starts at `i`, the whole value checked, `None` past `limit`
/// levels of nesting; the levels are kept as one bit each (set: an object), so `limit` ≤ 128.
fn value_end(b: &[u8], mut i: usize, limit: u32) -> Option<usize> {
    let mut objects: u128 = 0;
    let mut depth: u32 = 0;
    loop {
        // A value starts at `i`.
        i = match b.get(i)? {
            b'"' => string_end(b, i)?,
            b'-' | b'0'..=b'9' => number_end(b, i)?,
            b't' => literal(b, i, b"true")?,
            b'f' => literal(b, i, b"false")?,
            b'n' => literal(b, i, b"null")?,
            open @ (b'{' | b'[') => {
                if depth >= limit.min(128) {
                    return None;
                }
                let object = *open == b'{';
                objects = (objects << 1) | u128::from(object);
                depth += 1;
                i = ws(b, i + 1);
                let close = if object { b'}' } else { b']' };
                if b.get(i) == Some(&close) {
                    objects >>= 1;
                    depth -= 1;
                    i + 1
                } else {
                    if object {
                        i = member_value(b, i)?;
                    }
                    continue;
                }
            }
            _ => return None,
        };
        // After a value: the end, the next item of the enclosing container, or its close.
        loop {
            if depth == 0 {
                return Some(i);
            }
            let object = objects & 1 == 1;
            i = ws(b, i);
            match b.get(i)? {
                b',' => {
                    i = ws(b, i + 1);
                    if object {
                        i = member_value(b, i)?;
                    }
                    break;
                }
                b'}' if object => {}
                b']' if !object => {}
                _ => return None,
            }
            objects >>= 1;
            depth -= 1;
            i += 1;
        }
    }
}

/// From a member's key at `i` to where its value starts.
fn member_value(b: &[u8], i: usize) -> Option<usize> {
    let i = ws(b, string_end(b, i)?);
    (b.get(i) == Some(&b':')).then(|| ws(b, i + 1))
}

fn literal(b: &[u8], i: usize, word: &[u8]) -> Option<usize> {
    (b.get(i..i + word.len())? == word).then_some(i + word.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;

    /// `jsonrpc`, `id`, `method`, `params`, and whether the body answers.
    type Read = (
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
        bool,
    );

    /// serde_json's reading, in the scan's terms; `None` when serde_json refuses the body.
    fn by_serde(body: &str) -> Option<Read> {
        // The struct `jsonrpc::parse` reads the envelope into when the scan gives no answer.
        let e: crate::jsonrpc::Envelope<'_> = serde_json::from_str(body).ok()?;
        Some((
            e.jsonrpc.map(Cow::into_owned),
            e.id.map(|v| v.get().to_owned()),
            e.method.map(Cow::into_owned),
            e.params.map(|v| v.get().to_owned()),
            e.result.is_some() || e.error.is_some(),
        ))
    }

    fn scanned(body: &str) -> Option<Read> {
        let m = envelope(body, crate::jsonrpc::MAX_DEPTH)?;
        Some((
            m.jsonrpc.map(str::to_owned),
            m.id.map(str::to_owned),
            m.method.map(str::to_owned),
            m.params.map(str::to_owned),
            m.answered,
        ))
    }

    /// The scan's promise: whatever it accepts, serde_json accepts with the same members.
    fn agrees(body: &str) -> bool {
        match scanned(body) {
            Some(s) => by_serde(body) == Some(s),
            None => true,
        }
    }

    #[test]
    fn usual_bodies_are_read_by_the_scan_as_serde_json_reads_them() {
        for body in [
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"kube_pods_list","arguments":{"namespace":"default"}}}"#,
            r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
            r#"{"jsonrpc":"2.0","id":"a-1","result":{"content":[{"type":"text","text":"x\"y\\z\u00e9\n"}]}}"#,
            r#"{"jsonrpc":"2.0","id":7,"error":{"code":-32601,"message":"nope","data":null}}"#,
            " {\n\t\"jsonrpc\" : \"2.0\" ,\r\n \"id\" : -0.5e+10 , \"method\":\"m\", \"params\" : [ 1 , true , false , null , [ ] , { } ] } \n",
            r#"{"jsonrpc":"2.0","id":null,"method":"m","params":null,"x":{"method":"inner","id":2}}"#,
            r#"{"jsonrpc":null,"method":null,"result":null,"error":null}"#,
            r#"{}"#,
            r#"{"id":12345678901234567890123,"method":"é — ünïcode","params":{"a":"\ud800"}}"#,
            r#"{"unknown":1,"unknown":2,"method":"m"}"#,
        ] {
            assert!(scanned(body).is_some(), "the scan should read {body}");
            assert_eq!(scanned(body), by_serde(body), "{body}");
        }
    }

    #[test]
    fn what_the_scan_leaves_to_serde_json() {
        for body in [
            // Escapes in keys and envelope strings: serde_json decodes them.
            r#"{"meth\u006fd":"m"}"#,
            r#"{"method":"tools\/call"}"#,
            r#"{"jsonrpc":"2\u002e0"}"#,
            // A member of the envelope given twice, or of the wrong type.
            r#"{"method":"a","method":"b"}"#,
            r#"{"id":1,"id":2}"#,
            r#"{"method":1}"#,
            r#"{"jsonrpc":2.0}"#,
            // Not JSON, or not an object.
            r#"{"method":"m",}"#,
            r#"{"method":"m" "id":1}"#,
            r#"{"params":[1,]}"#,
            r#"{"params":{"a":1,}}"#,
            r#"{"params":{"a"}}"#,
            r#"{"params":{1:2}}"#,
            r#"{"params":01}"#,
            r#"{"params":1.}"#,
            r#"{"params":1e}"#,
            r#"{"params":-}"#,
            r#"{"params":.5}"#,
            r#"{"params":+1}"#,
            r#"{"params":tru}"#,
            r#"{"params":nul}"#,
            r#"{"params":"\x"}"#,
            r#"{"params":"\u12g4"}"#,
            "{\"params\":\"a\tb\"}",
            "{\"params\":\"\u{1}\"}",
            r#"{"params":[}"#,
            r#"{"params":{]}"#,
            r#"{"method":"m"} x"#,
            r#"{"method":"m"}}"#,
            r#"{"method":"m""#,
            r#"["method"]"#,
            r#""m""#,
            "",
        ] {
            assert_eq!(
                scanned(body),
                None,
                "the scan should leave {body:?} to serde_json"
            );
            assert!(agrees(body), "{body:?}");
        }
    }

    #[test]
    fn nesting_past_128_levels_is_left_to_serde_json() {
        let nest = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        let at = |n: usize| format!(r#"{{"params":{}}}"#, nest(n));
        // The envelope is the first level: params may nest 127 more.
        assert!(scanned(&at(127)).is_some());
        assert!(scanned(&at(128)).is_none());
        assert!(agrees(&at(127)) && agrees(&at(128)));
        // The limit is the caller's, up to the 128 levels the scan can keep.
        assert!(envelope(&at(3), 4).is_some());
        assert!(envelope(&at(4), 4).is_none());
        assert!(envelope(&at(128), usize::MAX).is_some());
        assert!(envelope(&at(129), usize::MAX).is_none());
    }

    #[test]
    fn every_cut_of_a_body_is_refused_or_agreed_on() {
        let whole = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t","arguments":{"a":[1,-2.5e3,{"b":"x\"y\u0041"}],"c":true,"d":null}}}"#;
        for end in 0..whole.len() {
            let cut = &whole[..end];
            assert_eq!(scanned(cut), None, "{cut}");
        }
        for (at, _) in whole.char_indices() {
            let mut broken = whole.to_owned();
            broken.remove(at);
            assert!(agrees(&broken), "{broken}");
        }
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        /// JSON values from a small grammar, with spacing and escapes.
        fn value() -> impl Strategy<Value = String> {
            let leaf = prop_oneof![
                Just("null".to_owned()),
                Just("true".to_owned()),
                Just("false".to_owned()),
                r"-?(0|[1-9][0-9]{0,3})(\.[0-9]{1,3})?([eE][+-]?[0-9]{1,2})?",
                r#""([a-z /é]|\\[nt"\\/]|\\u00[0-9a-f]{2}){0,8}""#,
            ];
            leaf.prop_recursive(4, 24, 4, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..4)
                        .prop_map(|v| format!("[{}]", v.join(","))),
                    prop::collection::vec(("[a-z]{0,3}", inner), 0..4).prop_map(|m| {
                        let members: Vec<String> = m
                            .into_iter()
                            .map(|(k, v)| format!("\"{k}\" : {v}"))
                            .collect();
                        format!("{{ {} }}", members.join(" ,"))
                    }),
                ]
            })
        }

        /// An envelope: some of its members (a value or a plain string), in any order, maybe twice.
        fn body() -> impl Strategy<Value = String> {
            let key = prop_oneof![
                Just("jsonrpc"),
                Just("id"),
                Just("method"),
                Just("params"),
                Just("result"),
                Just("error"),
                Just("other"),
            ];
            let member_value = prop_oneof![value(), r#""[a-z/.0-9]{0,6}""#];
            prop::collection::vec((key, member_value), 0..6).prop_map(|m| {
                let members: Vec<String> =
                    m.into_iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
                format!("{{{}}}", members.join(","))
            })
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(3000))]

            #[test]
            fn the_scan_agrees_with_serde_json_on_bodies(body in body()) {
                prop_assert!(agrees(&body), "{}", body);
                // A body serde_json reads without escapes in the envelope and with each member
                // once is one the scan reads too.
                if by_serde(&body).is_some() && !body.contains('\\') {
                    let once = ["jsonrpc", "id", "method", "params", "result", "error"]
                        .iter()
                        .all(|k| body.matches(&format!("\"{k}\":")).count() <= 1);
                    let strings_or_null = |k: &str| {
                        !body.contains(&format!("\"{k}\":"))
                            || body.contains(&format!("\"{k}\":\""))
                            || body.contains(&format!("\"{k}\":null"))
                    };
                    if once && strings_or_null("jsonrpc") && strings_or_null("method") {
                        prop_assert!(scanned(&body).is_some(), "{}", body);
                    }
                }
            }

            #[test]
            fn the_scan_agrees_with_serde_json_on_broken_bodies(
                body in body(),
                at in any::<prop::sample::Index>(),
                with in r#"[\[\]{}":,0-9a-z\\ .eE+\-\t\n]|\x01|"#,
            ) {
                let mut broken = body.clone();
                let mut cut = at.index(body.len() + 1);
                while !broken.is_char_boundary(cut) {
                    cut -= 1;
                }
                broken.insert_str(cut, &with);
                prop_assert!(agrees(&broken), "{}", broken);
                let mut removed = body;
                if cut < removed.len() {
                    removed.remove(cut);
                    prop_assert!(agrees(&removed), "{}", removed);
                }
            }

            #[test]
            fn the_scan_never_panics(s in r#"[\[\]{}":,0-9a-z\\ .eE+\-]{0,200}"#) {
                let _ = envelope(&s, crate::jsonrpc::MAX_DEPTH);
            }
        }
    }
}
