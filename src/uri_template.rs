//! Whether a URI is an expansion of an RFC 6570 URI template (`test://items/{id}/data`), so that
//! `resources/read`, `resources/subscribe` and completions of a templated resource reach the
//! server that offers the template. Pure; bounded (templates with at most [`MAX_EXPRESSIONS`]
//! expressions, URIs up to [`MAX_URI`] bytes).

/// Templates with more expressions than this never match (bounds the backtracking).
pub const MAX_EXPRESSIONS: usize = 8;
/// Longer URIs never match.
pub const MAX_URI: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part<'a> {
    Literal(&'a str),
    /// An expression's operator: `'\0'` for a simple one, else `+ # . / ; ? &`.
    Expression(char),
}

fn parse(template: &str) -> Option<Vec<Part<'_>>> {
    let mut parts = Vec::new();
    let mut rest = template;
    while !rest.is_empty() {
        match rest.find('{') {
            Some(0) => {
                let end = rest.find('}')?;
                let body = &rest[1..end];
                let op = match body.chars().next()? {
                    c @ ('+' | '#' | '.' | '/' | ';' | '?' | '&') => c,
                    _ => '\0',
                };
                parts.push(Part::Expression(op));
                rest = &rest[end + 1..];
            }
            Some(i) => {
                parts.push(Part::Literal(&rest[..i]));
                rest = &rest[i..];
            }
            None => {
                if rest.contains('}') {
                    return None;
                }
                parts.push(Part::Literal(rest));
                rest = "";
            }
        }
    }
    let expressions = parts
        .iter()
        .filter(|p| matches!(p, Part::Expression(_)))
        .count();
    (expressions <= MAX_EXPRESSIONS).then_some(parts)
}

/// For an expression with operator `op` starting at the start of `rest`: the shortest and the
/// longest expansion it can be. What an expression may contain is closed under prefixes, so every
/// length in between fits too (the query operators may also expand to nothing).
fn extent(op: char, rest: &str) -> Option<(usize, usize, bool)> {
    let (lead, bad): (Option<char>, &[char]) = match op {
        '\0' => (None, &['/', '?', '#']),
        '+' => (None, &[]),
        '#' => (Some('#'), &[]),
        '.' => (Some('.'), &['/', '?', '#']),
        '/' => (Some('/'), &['?', '#']),
        ';' => (Some(';'), &['/', '?', '#']),
        '?' => (Some('?'), &['#']),
        '&' => (Some('&'), &['#']),
        _ => return None,
    };
    let may_be_empty = matches!(op, '?' | '&');
    let body_start = match lead {
        Some(c) if rest.starts_with(c) => c.len_utf8(),
        Some(_) => return may_be_empty.then_some((0, 0, true)),
        None => 0,
    };
    let body = &rest[body_start..];
    let longest = body_start + body.find(bad).unwrap_or(body.len());
    // A value must not be empty, except for `;name` and the query operators.
    let shortest = if matches!(op, ';' | '?' | '&') {
        body_start
    } else {
        body_start + body.chars().next().map_or(usize::MAX, char::len_utf8)
    };
    (shortest <= longest).then_some((shortest, longest, may_be_empty))
}

/// Whether `parts[i..]` match `uri[pos..]`; `failed` remembers the states already refuted, which
/// keeps the search within parts × URI length states.
fn matches_from(
    parts: &[Part<'_>],
    i: usize,
    uri: &str,
    pos: usize,
    failed: &mut std::collections::HashSet<(usize, usize)>,
) -> bool {
    if failed.contains(&(i, pos)) {
        return false;
    }
    let rest = &uri[pos..];
    let ok = match parts.get(i) {
        None => rest.is_empty(),
        Some(Part::Literal(l)) => {
            rest.starts_with(l) && matches_from(parts, i + 1, uri, pos + l.len(), failed)
        }
        Some(Part::Expression(op)) => match extent(*op, rest) {
            None => false,
            Some((shortest, longest, may_be_empty)) => {
                (may_be_empty && matches_from(parts, i + 1, uri, pos, failed))
                    || (shortest..=longest)
                        .rev()
                        .filter(|&end| rest.is_char_boundary(end))
                        .any(|end| matches_from(parts, i + 1, uri, pos + end, failed))
            }
        },
    };
    if !ok {
        failed.insert((i, pos));
    }
    ok
}

/// Whether `uri` is an expansion of `template`. A template without expressions matches only
/// itself; a malformed template matches nothing.
pub fn matches(template: &str, uri: &str) -> bool {
    if uri.len() > MAX_URI {
        return false;
    }
    parse(template)
        .is_some_and(|parts| matches_from(&parts, 0, uri, 0, &mut std::collections::HashSet::new()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expansions_are_recognised() {
        for (template, uri, expected) in [
            (
                "test://template/{id}/data",
                "test://template/123/data",
                true,
            ),
            (
                "test://template/{id}/data",
                "test://template/a%2Fb/data",
                true,
            ),
            (
                "test://template/{id}/data",
                "test://template/1/2/data",
                false,
            ),
            ("test://template/{id}/data", "test://template//data", false),
            (
                "test://template/{id}/data",
                "test://template/123/data/more",
                false,
            ),
            ("test://template/{id}/data", "test://other/123/data", false),
            ("file:///{+path}", "file:///home/me/notes.txt", true),
            ("file:///{+path}", "file:///", false),
            (
                "repo://{owner}/{repo}/issues",
                "repo://me/proj/issues",
                true,
            ),
            ("repo://{owner}/{repo}/issues", "repo://me/issues", false),
            ("db://tables{/table}", "db://tables/users", true),
            ("db://tables{/table}", "db://tables", false),
            (
                "search://items{?q,limit}",
                "search://items?q=x&limit=2",
                true,
            ),
            ("search://items{?q,limit}", "search://items", true),
            ("search://items{?q}", "search://items#frag", false),
            ("doc://{name}{.ext}", "doc://readme.md", true),
            ("doc://page{#section}", "doc://page#intro", true),
            ("static://fixed", "static://fixed", true),
            ("static://fixed", "static://fixed2", false),
            ("broken://{id", "broken://{id", false),
            ("broken://id}", "broken://id}", false),
            ("uni://{name}", "uni://café", true),
        ] {
            assert_eq!(matches(template, uri), expected, "{template} ~ {uri}");
        }
    }

    #[test]
    fn work_is_bounded() {
        let many = "{a}".repeat(MAX_EXPRESSIONS + 1);
        assert!(!matches(&many, "abcdefghij"));
        assert!(!matches(
            "x://{+a}",
            &format!("x://{}", "y".repeat(MAX_URI))
        ));
        // The worst case within the bounds still answers quickly.
        let worst = format!("x://{}z", "{+a}".repeat(MAX_EXPRESSIONS));
        let started = std::time::Instant::now();
        assert!(!matches(&worst, &format!("x://{}", "y".repeat(40))));
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
    }
}
