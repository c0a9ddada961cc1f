//! Version ordering per ecosystem, as each package manager orders its own
//! versions: dpkg (epochs, `~`), apk (`_rc`, `-r1`), rpm, PEP 440, semver
//! (npm, Go, crates.io), Maven and RubyGems. Well-kept crates where they
//! exist (debversion, rpm-version, pep440_rs, semver); apk, Maven and
//! RubyGems orderings are written here.

use std::cmp::Ordering;
use std::str::FromStr;

/// How an ecosystem orders its versions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    Dpkg,
    Apk,
    Rpm,
    Pep440,
    Semver,
    Maven,
    Gem,
}

impl Scheme {
    /// The ordering of an OSV ecosystem (`Debian:12`, `Alpine:v3.19`, `PyPI`…).
    pub fn of_ecosystem(ecosystem: &str) -> Option<Scheme> {
        let base = ecosystem.split(':').next().unwrap_or(ecosystem);
        Some(match base {
            "Debian" | "Ubuntu" => Scheme::Dpkg,
            "Alpine" | "Wolfi" | "Chainguard" => Scheme::Apk,
            "Red Hat" | "Rocky Linux" | "AlmaLinux" | "openSUSE" | "SUSE" | "Mageia" => Scheme::Rpm,
            "PyPI" => Scheme::Pep440,
            "npm" | "Go" | "crates.io" => Scheme::Semver,
            "Maven" => Scheme::Maven,
            "RubyGems" => Scheme::Gem,
            _ => return None,
        })
    }

    /// Orders `a` and `b`; `None` when either is not a version of this scheme.
    pub fn compare(self, a: &str, b: &str) -> Option<Ordering> {
        match self {
            Scheme::Dpkg => {
                let a = debversion::Version::from_str(a).ok()?;
                let b = debversion::Version::from_str(b).ok()?;
                Some(a.cmp(&b))
            }
            Scheme::Apk => Some(apk_compare(a, b)),
            Scheme::Rpm => Some(rpm_version::Evr::parse(a).cmp(&rpm_version::Evr::parse(b))),
            Scheme::Pep440 => {
                let a = pep440_rs::Version::from_str(a).ok()?;
                let b = pep440_rs::Version::from_str(b).ok()?;
                Some(a.cmp(&b))
            }
            Scheme::Semver => {
                let parse = |v: &str| semver::Version::parse(v.strip_prefix('v').unwrap_or(v));
                match (parse(a), parse(b)) {
                    (Ok(a), Ok(b)) => Some(a.cmp_precedence(&b)),
                    _ => Some(generic_compare(a, b)),
                }
            }
            Scheme::Maven => Some(maven_compare(a, b)),
            Scheme::Gem => Some(gem_compare(a, b)),
        }
    }
}

/// Dotted numbers compared numerically, anything else as text: for
/// versions a scheme's own parser refuses (`v1.2` in npm, say).
fn generic_compare(a: &str, b: &str) -> Ordering {
    let split = |v: &str| -> Vec<String> {
        v.trim_start_matches('v')
            .split(['.', '-', '+'])
            .map(str::to_string)
            .collect()
    };
    let (a, b) = (split(a), split(b));
    for (x, y) in a.iter().zip(&b) {
        let order = match (x.parse::<u64>(), y.parse::<u64>()) {
            (Ok(x), Ok(y)) => x.cmp(&y),
            _ => x.cmp(y),
        };
        if order != Ordering::Equal {
            return order;
        }
    }
    a.len().cmp(&b.len())
}

/// apk's suffixes, in order; a version without one sits between `_rc` and `_cvs`.
const APK_SUFFIXES: &[&str] = &[
    "alpha", "beta", "pre", "rc", "", "cvs", "svn", "git", "hg", "p",
];

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct ApkVersion {
    numbers: Vec<u64>,
    letter: Option<char>,
    /// (rank in `APK_SUFFIXES`, number), the missing suffix ranked as "".
    suffixes: Vec<(usize, u64)>,
    revision: u64,
}

fn leading_number(s: &str) -> (u64, &str) {
    let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    (s[..end].parse().unwrap_or(0), &s[end..])
}

fn apk_parse(v: &str) -> ApkVersion {
    let (v, revision) = match v.rsplit_once("-r") {
        Some((head, rev)) if rev.chars().all(|c| c.is_ascii_digit()) && !rev.is_empty() => {
            (head, rev.parse().unwrap_or(0))
        }
        _ => (v, 0),
    };
    let (body, suffix_text) = match v.find('_') {
        Some(at) => (&v[..at], &v[at + 1..]),
        None => (v, ""),
    };
    let mut numbers = Vec::new();
    let mut letter = None;
    for part in body.split('.') {
        let (n, rest) = leading_number(part);
        numbers.push(n);
        if let Some(c) = rest.chars().next().filter(char::is_ascii_lowercase) {
            letter = Some(c);
        }
    }
    let none_rank = APK_SUFFIXES.iter().position(|s| s.is_empty()).unwrap_or(4);
    let mut suffixes: Vec<(usize, u64)> = suffix_text
        .split('_')
        .filter(|s| !s.is_empty())
        .map(|s| {
            let name_end = s.find(|c: char| c.is_ascii_digit()).unwrap_or(s.len());
            let rank = APK_SUFFIXES
                .iter()
                .position(|known| !known.is_empty() && *known == &s[..name_end])
                .unwrap_or(none_rank);
            (rank, s[name_end..].parse().unwrap_or(0))
        })
        .collect();
    // A version that ends where the other has a suffix compares as "no suffix".
    suffixes.push((none_rank, 0));
    ApkVersion {
        numbers,
        letter,
        suffixes,
        revision,
    }
}

/// Orders two apk versions as apk-tools does (`1.2.3_rc1-r0 < 1.2.3-r0 < 1.2.3_p1-r0 < 1.2.3-r1`).
pub fn apk_compare(a: &str, b: &str) -> Ordering {
    let (a, b) = (apk_parse(a), apk_parse(b));
    // Numbers: component by component, a longer one wins a tie.
    for (x, y) in a.numbers.iter().zip(&b.numbers) {
        if x != y {
            return x.cmp(y);
        }
    }
    if a.numbers.len() != b.numbers.len() {
        return a.numbers.len().cmp(&b.numbers.len());
    }
    a.letter
        .cmp(&b.letter)
        .then_with(|| a.suffixes.cmp(&b.suffixes))
        .then(a.revision.cmp(&b.revision))
}

/// Maven's qualifier ranks (ComparableVersion); unknown qualifiers come after `sp`.
fn maven_qualifier(q: &str) -> (u8, String) {
    let q = q.to_ascii_lowercase();
    let rank = match q.as_str() {
        "alpha" | "a" => 0,
        "beta" | "b" => 1,
        "milestone" | "m" => 2,
        "rc" | "cr" => 3,
        "snapshot" => 4,
        "" | "ga" | "final" | "release" => 5,
        "sp" => 6,
        _ => 7,
    };
    (rank, if rank == 7 { q } else { String::new() })
}

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
enum MavenItem {
    // Declaration order is the ordering between kinds at the same position.
    Qualifier((u8, String)),
    Number(u64),
}

fn maven_items(v: &str) -> Vec<MavenItem> {
    let mut items = Vec::new();
    let mut current = String::new();
    let flush = |current: &mut String, items: &mut Vec<MavenItem>| {
        if current.is_empty() {
            return;
        }
        items.push(match current.parse::<u64>() {
            Ok(n) => MavenItem::Number(n),
            Err(_) => MavenItem::Qualifier(maven_qualifier(current)),
        });
        current.clear();
    };
    let mut last_digit = None;
    for c in v.chars() {
        if c == '.' || c == '-' || c == '_' {
            flush(&mut current, &mut items);
            last_digit = None;
            continue;
        }
        let digit = c.is_ascii_digit();
        if last_digit.is_some_and(|d| d != digit) {
            flush(&mut current, &mut items);
        }
        last_digit = Some(digit);
        current.push(c);
    }
    flush(&mut current, &mut items);
    // Trailing zeros and release qualifiers do not count (`1.0` = `1` = `1-ga`).
    while matches!(items.last(), Some(MavenItem::Number(0)))
        || matches!(items.last(), Some(MavenItem::Qualifier((5, _))))
    {
        items.pop();
    }
    items
}

/// Orders two Maven versions (`1.0-alpha1 < 1.0-rc1 < 1.0 < 1.0-sp1 < 1.0.1`).
pub fn maven_compare(a: &str, b: &str) -> Ordering {
    let (a, b) = (maven_items(a), maven_items(b));
    for i in 0..a.len().max(b.len()) {
        let order = match (a.get(i), b.get(i)) {
            (Some(x), Some(y)) => x.cmp(y),
            // Past the end: compared with 0, or with the release qualifier.
            (Some(x), None) => padding_cmp(x),
            (None, Some(y)) => padding_cmp(y).reverse(),
            (None, None) => Ordering::Equal,
        };
        if order != Ordering::Equal {
            return order;
        }
    }
    Ordering::Equal
}

fn padding_cmp(item: &MavenItem) -> Ordering {
    match item {
        MavenItem::Number(n) => n.cmp(&0),
        MavenItem::Qualifier((rank, _)) => rank.cmp(&5),
    }
}

/// Orders two RubyGems versions (`1.0.a < 1.0 = 1.0.0 < 1.0.1`).
pub fn gem_compare(a: &str, b: &str) -> Ordering {
    let segments = |v: &str| -> Vec<Result<u64, String>> {
        let mut out: Vec<Result<u64, String>> = Vec::new();
        for part in v.split(['.', '-']) {
            // `1.0a` is `1.0.a`.
            let mut current = String::new();
            let mut digits = None;
            for c in part.chars() {
                let d = c.is_ascii_digit();
                if digits.is_some_and(|x| x != d) {
                    out.push(current.parse().map_err(|_| current.clone()));
                    current.clear();
                }
                digits = Some(d);
                current.push(c);
            }
            if !current.is_empty() {
                out.push(current.parse().map_err(|_| current.clone()));
            }
        }
        while matches!(out.last(), Some(Ok(0))) {
            out.pop();
        }
        out
    };
    let (a, b) = (segments(a), segments(b));
    for i in 0..a.len().max(b.len()) {
        let order = match (a.get(i), b.get(i)) {
            (Some(Ok(x)), Some(Ok(y))) => x.cmp(y),
            (Some(Err(x)), Some(Err(y))) => x.cmp(y),
            (Some(Ok(_)), Some(Err(_))) => Ordering::Greater,
            (Some(Err(_)), Some(Ok(_))) => Ordering::Less,
            (Some(Ok(x)), None) => x.cmp(&0),
            (Some(Err(_)), None) => Ordering::Less,
            (None, Some(Ok(y))) => 0.cmp(y),
            (None, Some(Err(_))) => Ordering::Greater,
            (None, None) => Ordering::Equal,
        };
        if order != Ordering::Equal {
            return order;
        }
    }
    Ordering::Equal
}

#[cfg(test)]
mod tests {
    use super::*;
    use Ordering::*;

    fn check(scheme: Scheme, pairs: &[(&str, &str, Ordering)]) {
        for (a, b, want) in pairs {
            assert_eq!(scheme.compare(a, b), Some(*want), "{scheme:?}: {a} vs {b}");
            assert_eq!(
                scheme.compare(b, a),
                Some(want.reverse()),
                "{scheme:?}: {b} vs {a}"
            );
        }
    }

    #[test]
    fn dpkg_epochs_and_tildes() {
        check(
            Scheme::Dpkg,
            &[
                ("1:1.0", "2.0", Greater),
                ("1.0~rc1", "1.0", Less),
                ("1.0~~", "1.0~", Less),
                ("1.2.3-1", "1.2.3-1+deb12u1", Less),
                ("2.36-9+deb12u4", "2.36-9+deb12u10", Less),
                ("1.0-1", "1.0-1", Equal),
            ],
        );
    }

    #[test]
    fn apk_suffixes_and_revisions() {
        check(
            Scheme::Apk,
            &[
                ("1.2.3_rc1-r0", "1.2.3-r0", Less),
                ("1.2.3-r0", "1.2.3-r1", Less),
                ("1.2.3_p1-r0", "1.2.3-r0", Greater),
                ("1.2.3_alpha", "1.2.3_beta", Less),
                ("1.2.3a-r0", "1.2.3-r5", Greater),
                ("3.1.4-r5", "3.1.4-r5", Equal),
                ("1.10-r0", "1.9-r0", Greater),
                ("1.2", "1.2.1", Less),
                ("3.0.8-r3", "3.0.12-r0", Less),
            ],
        );
    }

    #[test]
    fn rpm_ordering() {
        check(
            Scheme::Rpm,
            &[
                ("1.0-1.el9", "1.0-2.el9", Less),
                ("1:1.0-1", "2.0-1", Greater),
                ("1.0~rc1-1", "1.0-1", Less),
                ("2.34-60.el9", "2.34-100.el9", Less),
            ],
        );
    }

    #[test]
    fn pep440_pre_releases() {
        check(
            Scheme::Pep440,
            &[
                ("2.0.0rc1", "2.0.0", Less),
                ("2.0.0a1", "2.0.0b1", Less),
                ("2.0.0.dev1", "2.0.0a1", Less),
                ("2.0.0", "2.0.0.post1", Less),
                ("1.0", "1.0.0", Equal),
                ("2.31.0", "2.4.0", Greater),
            ],
        );
    }

    #[test]
    fn semver_and_go() {
        check(
            Scheme::Semver,
            &[
                ("1.2.3-beta.1", "1.2.3", Less),
                ("v0.9.0", "v0.10.0", Less),
                ("1.2.3+build", "1.2.3", Equal),
                ("v0.0.0-20220101000000-abcdef", "v0.1.0", Less),
            ],
        );
    }

    #[test]
    fn maven_and_gems() {
        check(
            Scheme::Maven,
            &[
                ("1.0-alpha1", "1.0-rc1", Less),
                ("1.0-rc1", "1.0", Less),
                ("1.0", "1.0.0", Equal),
                ("1.0", "1.0-sp1", Less),
                ("2.17.0", "2.17.1", Less),
                ("2.9.10.8", "2.10.0", Less),
            ],
        );
        check(
            Scheme::Gem,
            &[
                ("1.0.a", "1.0", Less),
                ("1.0", "1.0.0", Equal),
                ("1.13.10", "1.13.9", Greater),
                ("1.0.0.rc1", "1.0.0.rc2", Less),
            ],
        );
    }
}
