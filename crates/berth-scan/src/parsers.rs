//! Package databases and manifests, each parsed from its bytes.

use crate::inventory::{Package, Source};

fn package(source: Source, name: &str, version: &str, path: &str) -> Package {
    Package {
        source,
        name: name.to_string(),
        version: version.to_string(),
        source_name: None,
        source_version: None,
        arch: None,
        path: path.to_string(),
    }
}

/// dpkg's `status` file (or one stanza of distroless `status.d/`): the
/// packages whose `Status` says installed.
pub fn dpkg(text: &str, path: &str) -> Vec<Package> {
    let mut out = Vec::new();
    for stanza in text.split("\n\n") {
        let mut name = None;
        let mut version = None;
        let mut source = None;
        let mut arch = None;
        let mut installed = true;
        for line in stanza.lines() {
            if line.starts_with([' ', '\t']) {
                continue;
            }
            let Some((key, value)) = line.split_once(':') else {
                continue;
            };
            let value = value.trim();
            match key {
                "Package" => name = Some(value),
                "Version" => version = Some(value),
                "Source" => source = Some(value),
                "Architecture" => arch = Some(value),
                "Status" => installed = value.ends_with(" installed"),
                _ => {}
            }
        }
        let (Some(name), Some(version)) = (name, version) else {
            continue;
        };
        if !installed {
            continue;
        }
        let mut p = package(Source::Dpkg, name, version, path);
        p.arch = arch.map(str::to_string);
        // `Source: glibc` or `Source: glibc (2.36-9+deb12u4)`.
        if let Some(source) = source {
            let (source_name, source_version) = match source.split_once(' ') {
                Some((n, v)) => (n, Some(v.trim_matches(['(', ')', ' ']))),
                None => (source, None),
            };
            if source_name != name {
                p.source_name = Some(source_name.to_string());
            }
            if let Some(v) = source_version.filter(|v| *v != version) {
                p.source_version = Some(v.to_string());
            }
        }
        out.push(p);
    }
    out
}

/// apk's `/lib/apk/db/installed`.
pub fn apk(text: &str, path: &str) -> Vec<Package> {
    let mut out = Vec::new();
    for stanza in text.split("\n\n") {
        let (mut name, mut version, mut origin, mut arch) = (None, None, None, None);
        for line in stanza.lines() {
            match line.split_once(':') {
                Some(("P", v)) => name = Some(v),
                Some(("V", v)) => version = Some(v),
                Some(("o", v)) => origin = Some(v),
                Some(("A", v)) => arch = Some(v),
                _ => {}
            }
        }
        let (Some(name), Some(version)) = (name, version) else {
            continue;
        };
        let mut p = package(Source::Apk, name, version, path);
        p.arch = arch.map(str::to_string);
        p.source_name = origin.filter(|o| *o != name).map(str::to_string);
        out.push(p);
    }
    out
}

/// A Python distribution's `METADATA` (or `PKG-INFO`): its `Name` and `Version` headers.
pub fn python(text: &str, path: &str) -> Vec<Package> {
    let (mut name, mut version) = (None, None);
    for line in text.lines() {
        if line.is_empty() {
            break;
        }
        match line.split_once(':') {
            Some(("Name", v)) => name = Some(v.trim()),
            Some(("Version", v)) => version = Some(v.trim()),
            _ => {}
        }
    }
    match (name, version) {
        (Some(n), Some(v)) => vec![package(Source::Python, n, v, path)],
        _ => Vec::new(),
    }
}

/// PEP 503's normal form, how PyPI and OSV name a project.
pub fn normalize_python(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut last_dash = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            if !last_dash {
                out.push('-');
            }
            last_dash = true;
        } else {
            out.push(c.to_ascii_lowercase());
            last_dash = false;
        }
    }
    out
}

/// A `node_modules/<name>/package.json`.
pub fn npm_package(text: &str, path: &str) -> Vec<Package> {
    let Ok(json) = serde_json::from_str::<serde_json::Value>(text) else {
        return Vec::new();
    };
    match (json["name"].as_str(), json["version"].as_str()) {
        (Some(n), Some(v)) => vec![package(Source::Npm, n, v, path)],
        _ => Vec::new(),
    }
}

/// A `package-lock.json` (lockfile version 2 or 3: its `packages` map).
pub fn npm_lock(text: &str, path: &str) -> Vec<Package> {
    let Ok(json) = serde_json::from_str::<serde_json::Value>(text) else {
        return Vec::new();
    };
    let Some(packages) = json["packages"].as_object() else {
        return Vec::new();
    };
    packages
        .iter()
        .filter_map(|(key, entry)| {
            let name = entry["name"]
                .as_str()
                .or_else(|| key.rsplit_once("node_modules/").map(|(_, n)| n))?;
            let version = entry["version"].as_str()?;
            Some(package(Source::Npm, name, version, path))
        })
        .collect()
}

/// A gem's `specifications/<name>-<version>[-<platform>].gemspec`, named by its file.
pub fn gemspec(file_name: &str, path: &str) -> Vec<Package> {
    let Some(stem) = file_name.strip_suffix(".gemspec") else {
        return Vec::new();
    };
    let parts: Vec<&str> = stem.split('-').collect();
    let Some(at) = parts
        .iter()
        .position(|p| p.starts_with(|c: char| c.is_ascii_digit()))
        .filter(|at| *at > 0)
    else {
        return Vec::new();
    };
    vec![package(
        Source::Gem,
        &parts[..at].join("-"),
        parts[at],
        path,
    )]
}

/// A jar's `META-INF/maven/<group>/<artifact>/pom.properties`.
pub fn pom_properties(text: &str, path: &str) -> Vec<Package> {
    let (mut group, mut artifact, mut version) = (None, None, None);
    for line in text.lines() {
        match line.split_once('=') {
            Some(("groupId", v)) => group = Some(v.trim()),
            Some(("artifactId", v)) => artifact = Some(v.trim()),
            Some(("version", v)) => version = Some(v.trim()),
            _ => {}
        }
    }
    match (group, artifact, version) {
        (Some(g), Some(a), Some(v)) => vec![package(Source::Maven, &format!("{g}:{a}"), v, path)],
        _ => Vec::new(),
    }
}

/// Go's build information (`go version -m`): the toolchain as `stdlib`,
/// the main module and every dependency, replacements applied.
pub fn go_modinfo(go_version: &str, modinfo: &str, path: &str) -> Vec<Package> {
    let mut out = Vec::new();
    if let Some(v) = go_version.strip_prefix("go") {
        // `go1.21.5` (or `go1.22.0 X:…` experiments): OSV names the toolchain `stdlib`.
        let v = v.split_whitespace().next().unwrap_or(v);
        out.push(package(Source::Go, "stdlib", &format!("v{v}"), path));
    }
    for line in modinfo.lines() {
        let fields: Vec<&str> = line.split('\t').collect();
        match fields.as_slice() {
            ["mod" | "dep", module, version, ..] if *version != "(devel)" => {
                out.push(package(Source::Go, module, version, path));
            }
            ["=>", module, version, ..] => {
                // Replaces the dependency listed just before it.
                if let Some(last) = out.last_mut() {
                    last.name = module.to_string();
                    last.version = version.to_string();
                }
            }
            _ => {}
        }
    }
    out
}

/// cargo-auditable's dependency list (the JSON in an executable's `.dep-v0` section).
pub fn cargo_auditable(json: &str, path: &str) -> Vec<Package> {
    let Ok(value) = serde_json::from_str::<serde_json::Value>(json) else {
        return Vec::new();
    };
    value["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["source"].as_str() == Some("crates.io"))
        .filter_map(|p| {
            Some(package(
                Source::Cargo,
                p["name"].as_str()?,
                p["version"].as_str()?,
                path,
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dpkg_status_with_sources() {
        let status = "Package: libc6\nStatus: install ok installed\nArchitecture: amd64\nSource: glibc\nVersion: 2.36-9+deb12u4\nDescription: x\n multi line\n\nPackage: gone\nStatus: deinstall ok config-files\nVersion: 1\n\nPackage: libssl3\nStatus: install ok installed\nSource: openssl (3.0.11-1~deb12u2)\nVersion: 3.0.11-1~deb12u2+b1\n";
        let p = dpkg(status, "var/lib/dpkg/status");
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].advisory_key(), ("glibc", "2.36-9+deb12u4"));
        assert_eq!(p[0].arch.as_deref(), Some("amd64"));
        assert_eq!(p[1].advisory_key(), ("openssl", "3.0.11-1~deb12u2"));
    }

    #[test]
    fn apk_installed_with_origin() {
        let db = "C:Q1abc=\nP:libcrypto3\nV:3.1.4-r5\nA:x86_64\no:openssl\n\nP:musl\nV:1.2.4-r2\no:musl\n";
        let p = apk(db, "lib/apk/db/installed");
        assert_eq!(p[0].advisory_key(), ("openssl", "3.1.4-r5"));
        assert_eq!(p[1].advisory_key(), ("musl", "1.2.4-r2"));
    }

    #[test]
    fn language_manifests() {
        assert_eq!(
            python(
                "Metadata-Version: 2.1\nName: Requests\nVersion: 2.19.0\n\nbody",
                "x"
            )[0]
            .name,
            "Requests"
        );
        assert_eq!(normalize_python("Foo_Bar.baz"), "foo-bar-baz");
        assert_eq!(
            npm_package(r#"{"name":"lodash","version":"4.17.15"}"#, "x")[0].version,
            "4.17.15"
        );
        let lock = r#"{"lockfileVersion":3,"packages":{"":{"name":"app"},"node_modules/minimist":{"version":"1.2.5"},"node_modules/@babel/core":{"version":"7.0.0"}}}"#;
        let names: Vec<String> = npm_lock(lock, "x").into_iter().map(|p| p.name).collect();
        assert_eq!(names, ["@babel/core", "minimist"]);
        let gem = gemspec("nokogiri-1.15.4-x86_64-linux.gemspec", "x");
        assert_eq!(
            (gem[0].name.as_str(), gem[0].version.as_str()),
            ("nokogiri", "1.15.4")
        );
        let gem = gemspec("google-protobuf-3.24.0.gemspec", "x");
        assert_eq!(gem[0].name, "google-protobuf");
        let pom = pom_properties(
            "#x\ngroupId=org.apache.logging.log4j\nartifactId=log4j-core\nversion=2.14.1\n",
            "x",
        );
        assert_eq!(pom[0].name, "org.apache.logging.log4j:log4j-core");
    }

    #[test]
    fn go_build_info() {
        let info = "path\texample.com/app\nmod\texample.com/app\t(devel)\t\ndep\tgolang.org/x/net\tv0.7.0\th1:x\ndep\tgithub.com/a/b\tv1.0.0\th1:y\n=>\tgithub.com/c/b\tv1.1.0\th1:z\n";
        let p = go_modinfo("go1.20.1", info, "app");
        let got: Vec<(&str, &str)> = p
            .iter()
            .map(|p| (p.name.as_str(), p.version.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("stdlib", "v1.20.1"),
                ("golang.org/x/net", "v0.7.0"),
                ("github.com/c/b", "v1.1.0")
            ]
        );
    }
}
