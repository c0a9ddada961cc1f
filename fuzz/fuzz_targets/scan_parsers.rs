//! The scanner's text parsers called directly (faster than through a
//! layer), and the version orderings each ecosystem's versions are
//! compared with. Input: one byte choosing the parser, then the text; for
//! version orderings, two versions on two lines.
#![no_main]

use std::cmp::Ordering;

use berth_scan::version::{self, Scheme};
use berth_scan::{OsRelease, parsers};
use libfuzzer_sys::fuzz_target;

const SCHEMES: [Scheme; 7] = [
    Scheme::Dpkg,
    Scheme::Apk,
    Scheme::Rpm,
    Scheme::Pep440,
    Scheme::Semver,
    Scheme::Maven,
    Scheme::Gem,
];

fuzz_target!(|data: &[u8]| {
    let Some((&choice, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let path = "var/lib/x";
    match choice % 14 {
        0 => drop(parsers::dpkg(&text, path)),
        1 => drop(parsers::apk(&text, path)),
        2 => drop(parsers::python(&text, path)),
        3 => drop(parsers::npm_package(&text, path)),
        4 => drop(parsers::npm_lock(&text, path)),
        5 => drop(parsers::gemspec(&text, path)),
        6 => drop(parsers::pom_properties(&text, path)),
        7 => {
            let (go, modinfo) = text.split_once('\n').unwrap_or(("go1.22.1", &text));
            drop(parsers::go_modinfo(go, modinfo, path));
        }
        8 => drop(parsers::cargo_auditable(&text, path)),
        9 => {
            let os = OsRelease::parse(&text);
            let _ = os.ecosystem();
        }
        10 => drop(parsers::normalize_python(&text)),
        _ => {
            let (a, b) = text.split_once('\n').unwrap_or((&text, "1.0"));
            for scheme in SCHEMES {
                let ab = scheme.compare(a, b);
                let ba = scheme.compare(b, a);
                assert_eq!(ab, ba.map(Ordering::reverse), "{scheme:?} orders {a:?} and {b:?} inconsistently");
                if let Some(aa) = scheme.compare(a, a) {
                    assert_eq!(aa, Ordering::Equal, "{scheme:?}: {a:?} is not equal to itself");
                }
            }
            let _ = version::apk_compare(a, b);
            let _ = version::maven_compare(a, b);
            let _ = version::gem_compare(a, b);
        }
    }
});
