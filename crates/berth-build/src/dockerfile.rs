//! What a Dockerfile pulls: the images its stages start `FROM` and those
//! it copies `--from`, with `ARG`s before the first `FROM` (and the build
//! arguments given) substituted, as the builder would. A build fetches
//! them first and then runs with no network.

use std::collections::{BTreeMap, HashSet};

/// The images `dockerfile` needs, in order, each once: not `scratch`, not
/// a stage of its own, not a stage number.
pub fn base_images(dockerfile: &str, build_args: &BTreeMap<String, String>) -> Vec<String> {
    let mut globals: BTreeMap<String, String> = BTreeMap::new();
    let mut stages: HashSet<String> = HashSet::new();
    let mut seen_from = false;
    let mut images: Vec<String> = Vec::new();
    let add = |image: String, stages: &HashSet<String>, images: &mut Vec<String>| {
        let lower = image.to_ascii_lowercase();
        if image.is_empty()
            || lower == "scratch"
            || stages.contains(&lower)
            || image.chars().all(|c| c.is_ascii_digit())
            || images.contains(&image)
        {
            return;
        }
        images.push(image);
    };
    for line in instructions(dockerfile) {
        let mut words = line.split_whitespace();
        let Some(instruction) = words.next() else {
            continue;
        };
        let rest: Vec<&str> = words.collect();
        match instruction.to_ascii_uppercase().as_str() {
            "ARG" if !seen_from => {
                for arg in rest {
                    let (name, default) = arg.split_once('=').unwrap_or((arg, ""));
                    let value = build_args
                        .get(name)
                        .cloned()
                        .unwrap_or_else(|| unquote(default).to_string());
                    globals.insert(name.to_string(), value);
                }
            }
            "FROM" => {
                seen_from = true;
                let operands: Vec<&str> = rest
                    .iter()
                    .copied()
                    .filter(|w| !w.starts_with("--"))
                    .collect();
                if let Some(image) = operands.first() {
                    add(substitute(image, &globals), &stages, &mut images);
                }
                if operands.len() >= 3 && operands[1].eq_ignore_ascii_case("as") {
                    stages.insert(operands[2].to_ascii_lowercase());
                }
            }
            "COPY" | "ADD" => {
                for flag in rest.iter().take_while(|w| w.starts_with("--")) {
                    if let Some(from) = flag.strip_prefix("--from=") {
                        add(substitute(from, &globals), &stages, &mut images);
                    }
                }
            }
            _ => {}
        }
    }
    images
}

/// The Dockerfile's instructions, one per entry: continuation lines
/// joined, comments and blank lines dropped.
fn instructions(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if current.is_empty() && (trimmed.is_empty() || trimmed.starts_with('#')) {
            continue;
        }
        if let Some(head) = trimmed.strip_suffix('\\') {
            current.push_str(head);
            current.push(' ');
            continue;
        }
        current.push_str(trimmed);
        out.push(std::mem::take(&mut current));
    }
    if !current.trim().is_empty() {
        out.push(current);
    }
    out
}

fn unquote(value: &str) -> &str {
    value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(value)
}

/// `$NAME`, `${NAME}` and `${NAME:-default}` replaced from `vars` (unknown: empty).
fn substitute(word: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut chars = word.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '$' {
            out.push(c);
            continue;
        }
        let braced = chars.peek() == Some(&'{');
        if braced {
            chars.next();
        }
        let mut name = String::new();
        let mut default = None::<String>;
        while let Some(&n) = chars.peek() {
            if braced {
                chars.next();
                if n == '}' {
                    break;
                }
                if n == ':' && chars.peek() == Some(&'-') {
                    chars.next();
                    let mut d = String::new();
                    for m in chars.by_ref() {
                        if m == '}' {
                            break;
                        }
                        d.push(m);
                    }
                    default = Some(d);
                    break;
                }
                name.push(n);
            } else if n.is_ascii_alphanumeric() || n == '_' {
                name.push(n);
                chars.next();
            } else {
                break;
            }
        }
        match vars.get(&name).filter(|v| !v.is_empty()) {
            Some(value) => out.push_str(value),
            None => out.push_str(default.as_deref().unwrap_or_default()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_what_the_stages_pull() {
        let dockerfile = "# syntax=docker/dockerfile:1\nARG REGISTRY=example.com\nARG TAG\n\
            FROM --platform=linux/amd64 ${REGISTRY}/base:${TAG:-1} AS build\nRUN make \\\n  all\n\
            FROM build AS test\nFROM scratch\nCOPY --from=build /out /out\n\
            COPY --from=busybox:1.36 /bin/busybox /bin/\nCOPY --from=0 /x /x\n";
        let mut args = BTreeMap::new();
        assert_eq!(
            base_images(dockerfile, &args),
            ["example.com/base:1", "busybox:1.36"]
        );
        args.insert("TAG".to_string(), "2".to_string());
        args.insert("REGISTRY".to_string(), "127.0.0.1:5000".to_string());
        assert_eq!(base_images(dockerfile, &args)[0], "127.0.0.1:5000/base:2");
        assert!(base_images("FROM scratch\nCOPY a /a\n", &args).is_empty());
    }
}
