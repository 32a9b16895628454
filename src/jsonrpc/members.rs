//! Members of a JSON object's text that serde_json has already validated, found in one scan
//! instead of a second parse: the router reads `params.name` of every call, and `params` holds
//! the call's arguments, often most of the body. String contents are stepped over with `memchr`.
//!
//! The scan answers only when it is sure to agree with serde_json deserialising the same text
//! into a struct with those fields: a key written with an escape (which serde_json would decode
//! and might match), an asked-for key seen twice (which serde_json refuses), or text that is not
//! the expected shape gives `None`, and the caller parses with serde_json instead.

/// The raw text of each of `keys` among the top-level members of `object` (an object's JSON
/// text, already validated), `None` in the array for a key that is absent or `null`; `None` overall when
/// serde_json must decide (see the module docs).
pub(super) fn members<'a, const N: usize>(
    object: &'a str,
    keys: [&str; N],
) -> Option<[Option<&'a str>; N]> {
    let b = object.as_bytes();
    let mut found = [None; N];
    let mut seen = [false; N];
    let mut i = skip_ws(b, 0);
    if b.get(i) != Some(&b'{') {
        return None;
    }
    i = skip_ws(b, i + 1);
    if b.get(i) == Some(&b'}') {
        return Some(found);
    }
    loop {
        if b.get(i) != Some(&b'"') {
            return None;
        }
        let (end, escaped) = string_end(b, i)?;
        if escaped {
            return None;
        }
        let key = object.get(i + 1..end)?;
        i = skip_ws(b, end + 1);
        if b.get(i) != Some(&b':') {
            return None;
        }
        i = skip_ws(b, i + 1);
        let stop = value_end(b, i)?;
        if let Some(k) = keys.iter().position(|k| *k == key) {
            if seen[k] {
                return None;
            }
            seen[k] = true;
            // serde_json reads a `null` member into an `Option` as absent.
            found[k] = Some(object.get(i..stop)?).filter(|v| *v != "null");
        }
        i = skip_ws(b, stop);
        match b.get(i) {
            Some(b',') => i = skip_ws(b, i + 1),
            Some(b'}') => return Some(found),
            _ => return None,
        }
    }
}

/// The content of a JSON string literal (quotes included in `literal`) when it has no escape:
/// the text between the quotes, borrowed.
pub(super) fn plain_string(literal: &str) -> Option<&str> {
    let inner = literal.strip_prefix('"')?.strip_suffix('"')?;
    (!inner.contains(['\\', '"'])).then_some(inner)
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while matches!(b.get(i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        i += 1;
    }
    i
}

/// The index of the closing quote of the string that opens at `open`, and whether it has escapes.
fn string_end(b: &[u8], open: usize) -> Option<(usize, bool)> {
    let mut i = open + 1;
    let mut escaped = false;
    loop {
        let at = i + memchr::memchr2(b'"', b'\\', b.get(i..)?)?;
        if b[at] == b'\\' {
            escaped = true;
            i = at + 2;
        } else {
            return Some((at, escaped));
        }
    }
}

/// Where the value that starts at `i` ends (exclusive).
fn value_end(b: &[u8], i: usize) -> Option<usize> {
    match b.get(i)? {
        b'"' => string_end(b, i).map(|(end, _)| end + 1),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut j = i;
            loop {
                match b.get(j)? {
                    b'"' => {
                        j = string_end(b, j)?.0;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth = depth.checked_sub(1)?;
                        if depth == 0 {
                            return Some(j + 1);
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
        }
        _ => {
            // A number, true, false or null: up to the next delimiter.
            let len = b
                .get(i..)?
                .iter()
                .position(|c| matches!(c, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r'))
                .unwrap_or(b.len() - i);
            (len > 0).then_some(i + len)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What serde_json makes of the same text, into the struct `Message::target` falls back on.
    fn by_serde(object: &str) -> Result<[Option<String>; 3], String> {
        let t: super::super::NameOrUri<'_> =
            serde_json::from_str(object).map_err(|e| e.to_string())?;
        Ok([t.name, t.uri, t.task_id].map(|v| v.map(|v| v.get().to_owned())))
    }

    #[test]
    fn agrees_with_serde_json_or_leaves_it_to_serde_json() {
        // (object text, whether the scan answers)
        let cases = [
            (
                r#"{"name":"kube_pods_list","arguments":{"namespace":"default"}}"#,
                true,
            ),
            (r#"{}"#, true),
            (r#" { } "#, true),
            (
                r#"{"arguments":{"a":[1,2,{"name":"inner"}],"b":"}\"]"},"name":"t"}"#,
                true,
            ),
            (r#"{ "uri" : "file:///a" , "name" : null }"#, true),
            (r#"{"name":12,"uri":true,"taskId":"t-1"}"#, true),
            (r#"{"name":-1.5e3,"x":false,"y":null,"z":[]}"#, true),
            (r#"{"name":"a\"b\\c","uri":"\u00e9"}"#, true),
            (r#"{"x":"é — ünïcode","name":"ok"}"#, true),
            ("{\n\t\"name\"\r\n:\t\"spaced\"\n}", true),
            (
                r#"{"_meta":{"progressToken":1},"name":"t","arguments":{}}"#,
                true,
            ),
            // An escaped key could be "name": serde_json decides.
            (r#"{"n\u0061me":"escaped"}"#, false),
            (r#"{"na\"me":"x"}"#, false),
            // A key asked for twice: serde_json refuses it.
            (r#"{"name":"a","name":"b"}"#, false),
            (r#"{"uri":"a","name":"x","uri":"b"}"#, false),
            (r#"{"name":null,"name":"b"}"#, false),
            // Not an object.
            (r#"["name"]"#, false),
            (r#""name""#, false),
        ];
        for (text, answers) in cases {
            let scanned = members(text, ["name", "uri", "taskId"]);
            assert_eq!(scanned.is_some(), answers, "{text}");
            if let Some(found) = scanned {
                let found = found.map(|v| v.map(str::to_owned));
                assert_eq!(Ok(found), by_serde(text), "{text}");
            }
        }
    }

    #[test]
    fn cut_or_broken_text_gets_no_answer_and_no_panic() {
        let whole = r#"{"name":"t","arguments":{"a":[1,{"b":"x\"y"}],"c":true}}"#;
        for end in 0..whole.len() {
            if let Some(cut) = whole.get(..end) {
                assert!(members(cut, ["name", "uri"]).is_none(), "{cut}");
            }
        }
        for broken in [
            r#"{"name" "t"}"#,
            r#"{"name":}"#,
            r#"{"name":"t";}"#,
            r#"{name:"t"}"#,
        ] {
            assert!(members(broken, ["name"]).is_none(), "{broken}");
        }
    }

    #[test]
    fn plain_strings_are_borrowed_and_escaped_ones_left_to_serde() {
        assert_eq!(plain_string(r#""kube_pods_list""#), Some("kube_pods_list"));
        assert_eq!(plain_string(r#""""#), Some(""));
        assert_eq!(plain_string(r#""a\"b""#), None);
        assert_eq!(plain_string(r#""\u00e9""#), None);
        assert_eq!(plain_string("12"), None);
        assert_eq!(plain_string("\""), None);
    }
}
