//! The small languages inside policy documents: `*`/`?` wildcards, ARN
//! matching component by component, and policy variables (`${aws:username}`).

use super::Context;

/// Whether `text` matches `pattern`, where `*` is any run of characters and
/// `?` any one character. Linear in practice (greedy with one backtrack point).
pub fn wildcard_match(pattern: &str, text: &str, ignore_case: bool) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let same = |a: char, b: char| {
        if ignore_case {
            a.to_lowercase().eq(b.to_lowercase())
        } else {
            a == b
        }
    };
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || (p[pi] != '*' && same(p[pi], t[ti]))) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// `ArnLike`/`ArnEquals`: both split into their six `:`-separated components
/// (the last keeps its own colons), each matched with wildcards. A pattern
/// with fewer components matches nothing.
pub fn arn_match(pattern: &str, arn: &str) -> bool {
    let (Some(p), Some(a)) = (arn_parts(pattern), arn_parts(arn)) else {
        return false;
    };
    p.iter()
        .zip(a.iter())
        .all(|(p, a)| wildcard_match(p, a, false))
}

fn arn_parts(arn: &str) -> Option<[&str; 6]> {
    let mut parts = arn.splitn(6, ':');
    let arn_prefix = parts.next()?;
    if arn_prefix != "arn" && arn_prefix != "*" {
        return None;
    }
    Some([
        arn_prefix,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
    ])
}

/// Replaces the policy variables in `text` from `context`: `${aws:username}`,
/// `${aws:PrincipalTag/team}`, `${key, 'default'}`, and the escapes `${*}`,
/// `${?}`, `${$}`. `None` when a variable has no value and no default: the
/// element then matches nothing, as on AWS. An escaped `*` or `?` comes back
/// as `\u{0}`/`\u{1}` so that the caller can match it literally; see
/// [`literal_wildcards`].
pub fn substitute(text: &str, context: &Context) -> Option<String> {
    if !text.contains("${") {
        return Some(text.to_string());
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[start..]);
            return Some(out);
        };
        let inner = &after[..end];
        match inner {
            "*" => out.push(ESCAPED_STAR),
            "?" => out.push(ESCAPED_QUESTION),
            "$" => out.push('$'),
            _ => {
                let (key, default) = match inner.split_once(',') {
                    Some((key, default)) => {
                        let default = default.trim();
                        let default = default
                            .strip_prefix('\'')
                            .and_then(|d| d.strip_suffix('\''))
                            .unwrap_or(default);
                        (key.trim(), Some(default))
                    }
                    None => (inner.trim(), None),
                };
                match context.single(key).or(default) {
                    Some(value) => out.push_str(value),
                    None => return None,
                }
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Some(out)
}

const ESCAPED_STAR: char = '\u{0}';
const ESCAPED_QUESTION: char = '\u{1}';

/// Matches `text` against a substituted pattern, treating escaped `${*}` and
/// `${?}` as the literal characters.
pub fn literal_wildcards(pattern: &str, text: &str, ignore_case: bool) -> bool {
    if !pattern.contains([ESCAPED_STAR, ESCAPED_QUESTION]) {
        return wildcard_match(pattern, text, ignore_case);
    }
    // Split the pattern at escaped characters: they must match themselves.
    let escaped_text: String = text
        .chars()
        .map(|c| match c {
            '*' => ESCAPED_STAR,
            '?' => ESCAPED_QUESTION,
            c => c,
        })
        .collect();
    wildcard_match(pattern, &escaped_text, ignore_case)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        assert!(wildcard_match("*", "", false));
        assert!(wildcard_match("ecr:*", "ecr:PutImage", false));
        assert!(wildcard_match(
            "ecr:Batch*Image",
            "ecr:BatchGetImage",
            false
        ));
        assert!(!wildcard_match(
            "ecr:Batch*Image",
            "ecr:BatchGetImages",
            false
        ));
        assert!(wildcard_match("ecr:?utImage", "ecr:PutImage", false));
        assert!(!wildcard_match("ecr:?utImage", "ecr:utImage", false));
        assert!(wildcard_match("ECR:putimage", "ecr:PutImage", true));
        assert!(!wildcard_match("ECR:putimage", "ecr:PutImage", false));
        assert!(wildcard_match("a*b*c", "aXXbYYbZc", false));
        assert!(wildcard_match("**", "abc", false));
    }

    #[test]
    fn arns_match_by_component() {
        let repo = "arn:aws:ecr:us-east-1:123456789012:repository/team/app";
        assert!(arn_match(
            "arn:aws:ecr:*:123456789012:repository/team/*",
            repo
        ));
        assert!(arn_match("arn:aws:ecr:us-east-1:*:*", repo));
        assert!(!arn_match(
            "arn:aws:ecr:us-west-2:123456789012:repository/team/*",
            repo
        ));
        assert!(!arn_match("arn:aws:ecr:*", repo));
        assert!(arn_match(
            "arn:aws:sts::123456789012:assumed-role/ci/*",
            "arn:aws:sts::123456789012:assumed-role/ci/build-7"
        ));
    }

    #[test]
    fn variables() {
        let context = Context::new()
            .with("aws:username", "johndoe")
            .with("aws:PrincipalTag/team", "web");
        assert_eq!(
            substitute("repository/${aws:username}/*", &context).as_deref(),
            Some("repository/johndoe/*")
        );
        assert_eq!(
            substitute("${aws:principaltag/TEAM}", &context).as_deref(),
            Some("web")
        );
        assert_eq!(substitute("${aws:userid}", &context), None);
        assert_eq!(
            substitute("${aws:userid, 'nobody'}", &context).as_deref(),
            Some("nobody")
        );
        let literal = substitute("a${*}b", &context).unwrap();
        assert!(literal_wildcards(&literal, "a*b", false));
        assert!(!literal_wildcards(&literal, "axb", false));
        assert_eq!(substitute("cost${$}", &context).as_deref(), Some("cost$"));
    }
}
