//! What an image holds: the packages each layer's package databases list,
//! and how layers stack (whiteouts hide what lower layers had).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Where a package was found: which package manager's records list it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Source {
    Dpkg,
    Apk,
    Rpm,
    Python,
    Npm,
    Go,
    Cargo,
    Maven,
    Gem,
}

impl Source {
    /// The name ECR's enhanced findings give the package manager.
    pub fn package_manager(self) -> &'static str {
        match self {
            Source::Dpkg => "OS",
            Source::Apk => "OS",
            Source::Rpm => "OS",
            Source::Python => "PYTHONPKG",
            Source::Npm => "NODEPKG",
            Source::Go => "GOBINARY",
            Source::Cargo => "CARGO",
            Source::Maven => "JAR",
            Source::Gem => "GEMSPEC",
        }
    }

    /// An OS package manager's packages are matched in the distribution's ecosystem.
    pub fn is_os(self) -> bool {
        matches!(self, Source::Dpkg | Source::Apk | Source::Rpm)
    }

    /// The OSV ecosystem of a language package.
    pub fn ecosystem(self) -> Option<&'static str> {
        Some(match self {
            Source::Python => "PyPI",
            Source::Npm => "npm",
            Source::Go => "Go",
            Source::Cargo => "crates.io",
            Source::Maven => "Maven",
            Source::Gem => "RubyGems",
            _ => return None,
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Package {
    pub source: Source,
    pub name: String,
    pub version: String,
    /// The source package advisories name, when it differs (dpkg `Source:`, apk origin).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_name: Option<String>,
    /// The source package's version, when it differs from the binary's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arch: Option<String>,
    /// The file that lists it, relative to the image root.
    pub path: String,
}

impl Package {
    /// The names advisories may know it by: its source package's (dpkg,
    /// apk), or for rpm either its source package's or its own (rpm
    /// distributions' advisories name either).
    pub fn advisory_names(&self) -> Vec<&str> {
        match (&self.source_name, self.source) {
            (Some(source), Source::Rpm) => vec![source.as_str(), self.name.as_str()],
            (Some(source), _) => vec![source.as_str()],
            (None, _) => vec![self.name.as_str()],
        }
    }

    /// The name and version advisories are keyed on.
    pub fn advisory_key(&self) -> (&str, &str) {
        (
            self.source_name.as_deref().unwrap_or(&self.name),
            self.source_version.as_deref().unwrap_or(&self.version),
        )
    }
}

/// `/etc/os-release`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OsRelease {
    pub id: String,
    pub version_id: String,
    #[serde(default)]
    pub pretty_name: String,
}

impl OsRelease {
    pub fn parse(text: &str) -> OsRelease {
        let mut os = OsRelease::default();
        for line in text.lines() {
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            let value = value
                .trim()
                .trim_matches('"')
                .trim_matches('\'')
                .to_string();
            match key.trim() {
                "ID" => os.id = value,
                "VERSION_ID" => os.version_id = value,
                "PRETTY_NAME" => os.pretty_name = value,
                _ => {}
            }
        }
        os
    }

    /// The OSV ecosystem of this distribution's packages (`Debian:12`,
    /// `Alpine:v3.19`, `Ubuntu:22.04`, `Rocky Linux:9` …).
    pub fn ecosystem(&self) -> Option<String> {
        let major = self.version_id.split('.').next().unwrap_or_default();
        let major_minor: String = self
            .version_id
            .split('.')
            .take(2)
            .collect::<Vec<_>>()
            .join(".");
        Some(match self.id.as_str() {
            "debian" if !major.is_empty() => format!("Debian:{major}"),
            "ubuntu" => format!("Ubuntu:{}", self.version_id),
            "alpine" => format!("Alpine:v{major_minor}"),
            "wolfi" => "Wolfi".to_string(),
            "chainguard" => "Chainguard".to_string(),
            "rocky" => format!("Rocky Linux:{major}"),
            "almalinux" => format!("AlmaLinux:{major}"),
            "rhel" => format!("Red Hat:{major}"),
            _ => return None,
        })
    }
}

/// What one package-database file says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Found {
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os: Option<OsRelease>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub packages: Vec<Package>,
}

/// What one layer holds, independent of the layers below it: cached per
/// layer digest, so a shared base layer is read once for every image.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerInventory {
    pub files: Vec<Found>,
    /// Paths this layer deletes from the layers below (`.wh.<name>`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub whiteouts: Vec<String>,
    /// Directories whose lower-layer contents this layer hides (`.wh..wh..opq`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub opaque: Vec<String>,
    /// Files too large or unreadable, skipped (path, reason).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<(String, String)>,
}

/// An image's packages: its layers stacked.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Image {
    pub os: Option<OsRelease>,
    pub packages: Vec<Package>,
}

fn under(path: &str, dir: &str) -> bool {
    dir.is_empty()
        || path
            .strip_prefix(dir)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// Stacks layers, lowest first, as the container's root filesystem would see them.
pub fn stack<'a>(layers: impl IntoIterator<Item = &'a LayerInventory>) -> Image {
    let mut files: BTreeMap<&str, &Found> = BTreeMap::new();
    for layer in layers {
        files.retain(|path, _| {
            !layer
                .whiteouts
                .iter()
                .any(|w| *path == w.as_str() || under(path, w))
                && !layer.opaque.iter().any(|dir| under(path, dir))
        });
        for found in &layer.files {
            files.insert(&found.path, found);
        }
    }
    let os = ["etc/os-release", "usr/lib/os-release"]
        .iter()
        .find_map(|p| files.get(p).and_then(|f| f.os.clone()));
    let mut packages: Vec<Package> = files
        .values()
        .flat_map(|f| f.packages.iter().cloned())
        .collect();
    packages.sort_by(|a, b| {
        (a.source, &a.name, &a.version, &a.path).cmp(&(b.source, &b.name, &b.version, &b.path))
    });
    packages.dedup_by(|a, b| a.source == b.source && a.name == b.name && a.version == b.version);
    Image { os, packages }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkg(name: &str, path: &str) -> Package {
        Package {
            source: Source::Python,
            name: name.into(),
            version: "1.0".into(),
            source_name: None,
            source_version: None,
            arch: None,
            path: path.into(),
        }
    }

    fn layer(files: &[(&str, &str)], whiteouts: &[&str], opaque: &[&str]) -> LayerInventory {
        LayerInventory {
            files: files
                .iter()
                .map(|(path, name)| Found {
                    path: path.to_string(),
                    os: None,
                    packages: vec![pkg(name, path)],
                })
                .collect(),
            whiteouts: whiteouts.iter().map(|s| s.to_string()).collect(),
            opaque: opaque.iter().map(|s| s.to_string()).collect(),
            skipped: Vec::new(),
        }
    }

    #[test]
    fn whiteouts_hide_lower_layers_only() {
        let base = layer(
            &[
                ("app/a.dist-info/METADATA", "a"),
                ("app/b.dist-info/METADATA", "b"),
                ("opt/c.dist-info/METADATA", "c"),
                ("opt2/d.dist-info/METADATA", "d"),
            ],
            &[],
            &[],
        );
        let top = layer(
            &[("opt/e.dist-info/METADATA", "e")],
            &["app/a.dist-info"],
            &["opt"],
        );
        let image = stack([&base, &top]);
        let names: Vec<&str> = image.packages.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["b", "d", "e"]);
    }

    #[test]
    fn os_release_ecosystems() {
        let os = |id: &str, v: &str| OsRelease {
            id: id.into(),
            version_id: v.into(),
            pretty_name: String::new(),
        };
        assert_eq!(os("debian", "12").ecosystem().unwrap(), "Debian:12");
        assert_eq!(os("alpine", "3.19.1").ecosystem().unwrap(), "Alpine:v3.19");
        assert_eq!(os("ubuntu", "22.04").ecosystem().unwrap(), "Ubuntu:22.04");
        assert_eq!(os("rocky", "9.3").ecosystem().unwrap(), "Rocky Linux:9");
        assert!(os("plan9", "4").ecosystem().is_none());
    }
}
