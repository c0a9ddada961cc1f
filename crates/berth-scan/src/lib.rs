//! berth's image scanner. Pure and synchronous: the server streams layer
//! blobs in ([`scan_layer`]), keeps each layer's [`LayerInventory`] (so a
//! base layer shared by many images is read once), stacks an image's layers
//! ([`stack`]) and matches its packages against OSV advisories
//! ([`Matcher`]) with each ecosystem's own version ordering.
//!
//! Read: dpkg (`status`, distroless `status.d/`), apk, `/etc/os-release`,
//! Python `*.dist-info`/`*.egg-info`, npm `node_modules/*/package.json` and
//! `package-lock.json` (v2/v3), Ruby gem specifications, Maven
//! `pom.properties` in jars (and jars in jars), Go build information
//! (Go ≥ 1.18 binaries), cargo-auditable Rust binaries, the rpm database of
//! current RHEL/Fedora/Rocky/Alma (`rpmdb.sqlite`). Not read: the older rpm
//! Berkeley DB (`Packages`) and NDB (`Packages.db`) formats, Go binaries
//! older than 1.18.

mod cvss;
pub mod inventory;
mod layer;
pub mod osv;
pub mod parsers;
mod rpm;
pub mod version;

use std::collections::HashMap;

pub use inventory::{Image, LayerInventory, OsRelease, Package, Source, stack};
pub use layer::{ScanError, scan_layer};
pub use osv::Advisory;

/// Bumped whenever what [`scan_layer`] finds changes, so cached layer
/// inventories from an older scanner are read again.
pub const SCANNER_VERSION: i64 = 2;

/// ECR's severities, most severe first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Severity {
    Critical,
    High,
    Medium,
    Low,
    Informational,
    Undefined,
}

impl Severity {
    pub const ALL: [Severity; 6] = [
        Severity::Critical,
        Severity::High,
        Severity::Medium,
        Severity::Low,
        Severity::Informational,
        Severity::Undefined,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "CRITICAL",
            Severity::High => "HIGH",
            Severity::Medium => "MEDIUM",
            Severity::Low => "LOW",
            Severity::Informational => "INFORMATIONAL",
            Severity::Undefined => "UNDEFINED",
        }
    }

    pub fn parse(text: &str) -> Option<Severity> {
        Some(match text.to_ascii_uppercase().as_str() {
            "CRITICAL" => Severity::Critical,
            "HIGH" | "IMPORTANT" => Severity::High,
            "MEDIUM" | "MODERATE" => Severity::Medium,
            "LOW" => Severity::Low,
            "INFORMATIONAL" | "NEGLIGIBLE" | "UNIMPORTANT" | "NONE" => Severity::Informational,
            "UNDEFINED" | "UNKNOWN" => Severity::Undefined,
            _ => return None,
        })
    }

    /// CVSS v3 qualitative rating of a base score.
    pub fn of_score(score: f64) -> Severity {
        match score {
            s if s >= 9.0 => Severity::Critical,
            s if s >= 7.0 => Severity::High,
            s if s >= 4.0 => Severity::Medium,
            s if s > 0.0 => Severity::Low,
            _ => Severity::Informational,
        }
    }
}

/// One vulnerability in one package of an image.
#[derive(Clone, Debug, PartialEq)]
pub struct Finding {
    /// The advisory's id, or its CVE alias when it has one (as ECR names findings).
    pub name: String,
    pub advisory_id: String,
    pub description: String,
    pub uri: String,
    pub severity: Severity,
    pub cvss3_score: Option<f64>,
    pub cvss3_vector: Option<String>,
    pub package: Package,
    /// The ecosystem it was matched in (`Debian:12`, `PyPI`…).
    pub ecosystem: String,
    pub fixed_in: Option<String>,
    /// The advisory's last modification (RFC 3339).
    pub updated_at: String,
}

/// The OSV ecosystem a package is matched in, given the image's distribution.
pub fn ecosystem_of(package: &Package, os: Option<&OsRelease>) -> Option<String> {
    if package.source.is_os() {
        os.and_then(OsRelease::ecosystem)
    } else {
        package.source.ecosystem().map(str::to_string)
    }
}

/// The (ecosystem base, lookup name) pairs whose advisories an image needs.
pub fn lookups(image: &Image) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = image
        .packages
        .iter()
        .filter_map(|p| {
            let ecosystem = ecosystem_of(p, image.os.as_ref())?;
            let base = ecosystem.split(':').next().unwrap_or_default().to_string();
            Some(
                p.advisory_names()
                    .into_iter()
                    .map(|name| (base.clone(), osv::lookup_name(&base, name)))
                    .collect::<Vec<_>>(),
            )
        })
        .flatten()
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Severity and CVSS v3 of an advisory for one affected package.
fn rate(
    advisory: &Advisory,
    ecosystem: &str,
    name: &str,
) -> (Severity, Option<f64>, Option<String>) {
    let affected = advisory.affected.iter().find(|a| {
        a.package
            .as_ref()
            .is_some_and(|p| osv::ecosystem_covers(&p.ecosystem, ecosystem) && p.name == name)
    });
    let scores = affected
        .into_iter()
        .flat_map(|a| &a.severity)
        .chain(&advisory.severity);
    let mut vector = None;
    let mut label = None;
    for s in scores {
        match s.kind.as_str() {
            "CVSS_V3" if vector.is_none() => vector = Some(s.score.clone()),
            // Ubuntu's and others' own ratings.
            _ => label = label.or_else(|| Severity::parse(&s.score)),
        }
    }
    let label = label.or_else(|| {
        let specific = affected.map(|a| [&a.ecosystem_specific, &a.database_specific]);
        specific
            .into_iter()
            .flatten()
            .chain([&advisory.database_specific])
            .find_map(|v| v["severity"].as_str().and_then(Severity::parse))
    });
    let score = vector.as_deref().and_then(cvss::base_score_v3);
    let severity = label
        .or_else(|| score.map(Severity::of_score))
        .unwrap_or(Severity::Undefined);
    (severity, score, vector)
}

/// Advisories indexed for matching.
pub struct Matcher {
    by_name: HashMap<String, Vec<Advisory>>,
}

impl Matcher {
    pub fn new(advisories: impl IntoIterator<Item = Advisory>) -> Matcher {
        let mut by_name: HashMap<String, Vec<Advisory>> = HashMap::new();
        for advisory in advisories {
            let names: Vec<String> = advisory.packages().into_iter().map(|(_, n)| n).collect();
            for name in names.iter().collect::<std::collections::BTreeSet<_>>() {
                by_name
                    .entry(name.to_string())
                    .or_default()
                    .push(advisory.clone());
            }
        }
        Matcher { by_name }
    }

    /// The findings of an image, most severe first.
    pub fn findings(&self, image: &Image) -> Vec<Finding> {
        let mut out = Vec::new();
        for package in &image.packages {
            let Some(ecosystem) = ecosystem_of(package, image.os.as_ref()) else {
                continue;
            };
            let base = ecosystem.split(':').next().unwrap_or_default();
            let version = package.advisory_key().1;
            for (name, advisory) in package.advisory_names().into_iter().flat_map(|name| {
                let key = osv::lookup_name(base, name);
                self.by_name
                    .get(&key)
                    .into_iter()
                    .flatten()
                    .map(move |a| (name, a))
            }) {
                let Some(fixed_in) = advisory.affects(&ecosystem, name, version) else {
                    continue;
                };
                let (severity, cvss3_score, cvss3_vector) = rate(advisory, &ecosystem, name);
                let cve = advisory
                    .aliases
                    .iter()
                    .chain(&advisory.upstream)
                    .find(|a| a.starts_with("CVE-"));
                let display = cve.cloned().unwrap_or_else(|| advisory.id.clone());
                let uri = advisory
                    .references
                    .iter()
                    .find(|r| r.kind == "ADVISORY")
                    .or(advisory.references.first())
                    .map(|r| r.url.clone())
                    .unwrap_or_else(|| format!("https://osv.dev/vulnerability/{}", advisory.id));
                out.push(Finding {
                    name: display,
                    advisory_id: advisory.id.clone(),
                    description: advisory
                        .summary
                        .clone()
                        .or_else(|| advisory.details.clone())
                        .unwrap_or_default(),
                    uri,
                    severity,
                    cvss3_score,
                    cvss3_vector,
                    package: package.clone(),
                    ecosystem: ecosystem.clone(),
                    fixed_in,
                    updated_at: advisory.modified.clone(),
                });
            }
        }
        out.sort_by(|a, b| {
            (a.severity, &a.name, &a.package.name).cmp(&(b.severity, &b.name, &b.package.name))
        });
        // One advisory per package once, even when two databases list it.
        out.dedup_by(|a, b| {
            a.advisory_id == b.advisory_id
                && a.package.name == b.package.name
                && a.package.version == b.package.version
        });
        out
    }
}
