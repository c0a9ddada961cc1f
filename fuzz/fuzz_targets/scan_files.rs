//! A layer built around fuzzed file contents, so the scanner's package
//! readers are reached past tar checksums, zip and ELF structure and
//! SQLite: dpkg status, apk installed, os-release, Python metadata, npm
//! package.json and lockfiles, gemspec names, jars (pom.properties, nested
//! jars), Go build information, cargo-auditable, rpmdb.sqlite header blobs.
//! The image is then stacked and matched against a few advisories, so
//! version orderings see the fuzzed versions.
//!
//! Input: a compression byte (plain, gzip, zstd), then records of a kind
//! byte and a u16-length-prefixed content.
#![no_main]

use std::sync::LazyLock;

use berth_fuzz::{Reader, elf, go_buildinfo, gzip, rpmdb_sqlite, tar_of, zip_of, zlib, zstd};
use berth_scan::{Advisory, Matcher};
use libfuzzer_sys::fuzz_target;

static MATCHER: LazyLock<Matcher> = LazyLock::new(|| {
    let advisories: Vec<Advisory> =
        serde_json::from_str(include_str!("../advisories.json")).expect("advisories.json");
    Matcher::new(advisories)
});

fn file(kind: u8, content: &[u8]) -> Option<(String, Vec<u8>, u32)> {
    let text = |path: &str| Some((path.to_string(), content.to_vec(), 0o644));
    match kind % 20 {
        0 => text("var/lib/dpkg/status"),
        1 => text("var/lib/dpkg/status.d/libc6"),
        2 => text("lib/apk/db/installed"),
        3 => text("etc/os-release"),
        4 => text("usr/lib/python3/site-packages/pkg-1.0.dist-info/METADATA"),
        5 => text("usr/lib/python3/site-packages/pkg.egg-info/PKG-INFO"),
        6 => text("app/node_modules/left-pad/package.json"),
        7 => text("app/node_modules/@scope/pkg/package.json"),
        8 => text("app/package-lock.json"),
        // The gem's name and version come from the file name.
        9 => {
            let name = String::from_utf8_lossy(content).replace(['/', '\0'], "_");
            Some((format!("usr/lib/ruby/gems/3.2.0/specifications/{name}.gemspec"), Vec::new(), 0o644))
        }
        10 => Some(("app/lib/raw.jar".into(), content.to_vec(), 0o644)),
        11 => Some((
            "app/lib/app.jar".into(),
            zip_of(&[("META-INF/maven/org.example/app/pom.properties", content)]),
            0o644,
        )),
        12 => {
            let inner = zip_of(&[("META-INF/maven/org.example/inner/pom.properties", content)]);
            Some(("app/app.war".into(), zip_of(&[("WEB-INF/lib/inner.jar", &inner)]), 0o644))
        }
        13 => Some(("usr/local/bin/raw".into(), content.to_vec(), 0o755)),
        14 => {
            let (version, modinfo) = match content.iter().position(|&b| b == b'\n') {
                Some(at) => (&content[..at], &content[at + 1..]),
                None => (&b"go1.22.1"[..], content),
            };
            let binary = elf(&[(".go.buildinfo", go_buildinfo(version, modinfo))]);
            Some(("usr/local/bin/gotool".into(), binary, 0o755))
        }
        15 => Some(("usr/local/bin/gosection".into(), elf(&[(".go.buildinfo", content.to_vec())]), 0o755)),
        16 => Some(("usr/local/bin/rusttool".into(), elf(&[(".dep-v0", zlib(content))]), 0o755)),
        17 => Some(("var/lib/rpm/rpmdb.sqlite".into(), rpmdb_sqlite(&[content]), 0o644)),
        18 => {
            let name = String::from_utf8_lossy(content).replace('\0', "_");
            Some((format!("{name}/.wh..wh..opq"), Vec::new(), 0o644))
        }
        _ => {
            // A path of its own, then the contents.
            let at = content.iter().position(|&b| b == b'\n').unwrap_or(content.len());
            let path = String::from_utf8_lossy(&content[..at]).replace('\0', "_");
            let rest = content.get(at + 1..).unwrap_or_default();
            Some((path, rest.to_vec(), 0o755))
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Reader::new(data);
    let Some(compression) = input.byte() else {
        return;
    };
    let mut files = Vec::new();
    while !input.is_empty() && files.len() < 16 {
        let Some(kind) = input.byte() else { break };
        let Some(content) = input.chunk() else { break };
        files.extend(file(kind, content));
    }
    let tar = tar_of(&files);
    let layer = match compression % 3 {
        0 => tar,
        1 => gzip(&tar),
        _ => zstd(&tar),
    };
    let inventory = berth_scan::scan_layer(&layer[..]).expect("a well-formed layer reads");
    let image = berth_scan::stack([&inventory]);
    let _ = berth_scan::lookups(&image);
    let _ = MATCHER.findings(&image);
});
