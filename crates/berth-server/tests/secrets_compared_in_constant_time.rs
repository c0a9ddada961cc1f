//! A guard over the source: secrets (keys, signatures, tokens, MACs, CSRF
//! tokens, password hashes) are compared with `subtle`'s `ct_eq`, never
//! with `==`/`!=`, whose time depends on where the first difference is.
//! Any comparison whose operand is named like a secret fails this test;
//! one that compares something public under such a name (a length, an
//! option's presence) says so with `// public:` on its line.

use std::path::Path;

const SECRET_WORDS: &[&str] = &["secret", "signature", "token", "csrf", "password", "mac"];

/// The identifier-ish operand next to position `at` in `line`, walking
/// `backwards` or forwards (paths, fields and calls included).
fn operand(line: &str, at: usize, backwards: bool) -> String {
    let is_part = |c: char| c.is_ascii_alphanumeric() || "_.:()&*[]".contains(c);
    if backwards {
        line[..at]
            .trim_end()
            .chars()
            .rev()
            .take_while(|&c| is_part(c))
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect()
    } else {
        line[at..]
            .trim_start()
            .chars()
            .take_while(|&c| is_part(c))
            .collect()
    }
}

fn secret_named(operand: &str) -> bool {
    let lower = operand.to_ascii_lowercase();
    // The last path segment names what is compared (`token.len()` is a length).
    let last = lower
        .trim_end_matches("()")
        .rsplit(['.', ':'])
        .next()
        .unwrap_or_default()
        .to_string();
    if ["len", "is_empty", "is_some", "is_none", "kind", "status"].contains(&last.as_str()) {
        return false;
    }
    SECRET_WORDS.iter().any(|w| {
        last.split('_')
            .any(|part| part == *w || part == format!("{w}s"))
    })
}

fn scan(dir: &Path, found: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).expect("source directory") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            scan(&path, found);
            continue;
        }
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("source file");
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or_default();
            if line.contains("// public:") {
                continue;
            }
            for op in ["==", "!="] {
                let mut from = 0;
                while let Some(i) = code[from..].find(op) {
                    let at = from + i;
                    let (left, right) = (operand(code, at, true), operand(code, at + 2, false));
                    if secret_named(&left) || secret_named(&right) {
                        found.push(format!("{}:{}: {}", path.display(), n + 1, line.trim()));
                    }
                    from = at + 2;
                }
            }
        }
    }
}

#[test]
fn secrets_are_compared_in_constant_time() {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut found = Vec::new();
    for krate in ["berth-core", "berth-server", "berth-store", "berth"] {
        scan(&crates.join(krate).join("src"), &mut found);
    }
    assert!(
        found.is_empty(),
        "secrets compared with == or != (use subtle's ct_eq):\n{}",
        found.join("\n")
    );
}

#[test]
fn the_guard_sees_what_it_guards_against() {
    let line = "if given_token == session.csrf { ok() }";
    let at = line.find("==").unwrap();
    assert!(secret_named(&operand(line, at, true)));
    assert!(secret_named(&operand(line, at + 2, false)));
    assert!(!secret_named("token.len()"));
    assert!(!secret_named("tokenizer"));
    assert!(!secret_named("machine"));
}
