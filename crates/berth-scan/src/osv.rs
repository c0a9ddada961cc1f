//! OSV advisories (<https://ossf.github.io/osv-schema/>): our own serde
//! structs, lenient where records differ (an unknown ecosystem or range type
//! loses that part, not the record), and matching with each ecosystem's
//! own version ordering.

use serde::{Deserialize, Serialize};

use crate::parsers::normalize_python;
use crate::version::Scheme;

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Advisory {
    pub id: String,
    #[serde(default)]
    pub modified: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub withdrawn: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub upstream: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub severity: Vec<SeverityScore>,
    #[serde(default)]
    pub affected: Vec<Affected>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub references: Vec<Reference>,
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub database_specific: serde_json::Value,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct SeverityScore {
    #[serde(rename = "type")]
    pub kind: String,
    pub score: String,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Affected {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub package: Option<AffectedPackage>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ranges: Vec<Range>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub versions: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub severity: Vec<SeverityScore>,
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub ecosystem_specific: serde_json::Value,
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub database_specific: serde_json::Value,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct AffectedPackage {
    #[serde(default)]
    pub ecosystem: String,
    #[serde(default)]
    pub name: String,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Range {
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub events: Vec<Event>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Event {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub introduced: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fixed: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_affected: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Reference {
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub url: String,
}

/// The name a package is looked up by in an ecosystem (PyPI names are
/// compared in PEP 503's normal form).
pub fn lookup_name(ecosystem: &str, name: &str) -> String {
    if ecosystem == "PyPI" {
        normalize_python(name)
    } else {
        name.to_string()
    }
}

/// Whether an advisory's ecosystem covers a package's: the same, or a
/// variant of it (`Ubuntu:22.04:LTS` covers `Ubuntu:22.04`).
pub fn ecosystem_covers(advisory: &str, package: &str) -> bool {
    advisory == package
        || advisory
            .strip_prefix(package)
            .is_some_and(|rest| rest.starts_with(':'))
}

/// Where a version falls in an affected range: `Some(fixed)` when affected
/// (`fixed` being the version that fixes it, if any).
fn in_range(scheme: Scheme, range: &Range, version: &str) -> Option<Option<String>> {
    if range.kind != "ECOSYSTEM" && range.kind != "SEMVER" {
        return None;
    }
    let le = |a: &str, b: &str| scheme.compare(a, b).is_some_and(|o| o.is_le());
    let lt = |a: &str, b: &str| scheme.compare(a, b).is_some_and(|o| o.is_lt());
    let mut introduced: Option<&str> = None;
    for event in &range.events {
        if let Some(start) = &event.introduced {
            introduced = Some(start);
            continue;
        }
        let Some(start) = introduced else { continue };
        let after_start = start == "0" || le(start, version);
        if let Some(fixed) = &event.fixed {
            if after_start && lt(version, fixed) {
                return Some(Some(fixed.clone()));
            }
            introduced = None;
        } else if let Some(last) = &event.last_affected {
            if after_start && le(version, last) {
                return Some(None);
            }
            introduced = None;
        } else if let Some(limit) = &event.limit {
            if after_start && lt(version, limit) {
                return Some(None);
            }
            introduced = None;
        }
    }
    // An interval left open runs to the newest version.
    let start = introduced?;
    (start == "0" || le(start, version)).then_some(None)
}

impl Advisory {
    /// Whether the package `name` at `version` in `ecosystem` is affected;
    /// `Some(fixed)` if it is.
    pub fn affects(&self, ecosystem: &str, name: &str, version: &str) -> Option<Option<String>> {
        if self.withdrawn.is_some() {
            return None;
        }
        let scheme = Scheme::of_ecosystem(ecosystem)?;
        let wanted = lookup_name(ecosystem, name);
        for affected in &self.affected {
            let Some(package) = &affected.package else {
                continue;
            };
            if !ecosystem_covers(&package.ecosystem, ecosystem)
                || lookup_name(ecosystem, &package.name) != wanted
            {
                continue;
            }
            if affected.versions.iter().any(|v| v == version) {
                let fixed = affected
                    .ranges
                    .iter()
                    .flat_map(|r| &r.events)
                    .find_map(|e| e.fixed.clone());
                return Some(fixed);
            }
            for range in &affected.ranges {
                if let Some(fixed) = in_range(scheme, range, version) {
                    return Some(fixed);
                }
            }
        }
        None
    }

    /// The (ecosystem, lookup name) pairs this advisory is about.
    pub fn packages(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = self
            .affected
            .iter()
            .filter_map(|a| a.package.as_ref())
            .map(|p| {
                let base = p.ecosystem.split(':').next().unwrap_or_default();
                (p.ecosystem.clone(), lookup_name(base, &p.name))
            })
            .collect();
        out.sort();
        out.dedup();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn advisory(ecosystem: &str, name: &str, events: serde_json::Value) -> Advisory {
        serde_json::from_value(serde_json::json!({
            "id": "TEST-1",
            "affected": [{"package": {"ecosystem": ecosystem, "name": name},
                          "ranges": [{"type": "ECOSYSTEM", "events": events}]}],
        }))
        .unwrap()
    }

    #[test]
    fn ranges_with_each_ordering() {
        let deb = advisory(
            "Debian:12",
            "openssl",
            serde_json::json!([{"introduced": "0"}, {"fixed": "3.0.11-1~deb12u2"}]),
        );
        assert_eq!(
            deb.affects("Debian:12", "openssl", "3.0.11-1~deb12u1"),
            Some(Some("3.0.11-1~deb12u2".into()))
        );
        assert_eq!(
            deb.affects("Debian:12", "openssl", "3.0.11-1~deb12u2"),
            None
        );
        assert_eq!(deb.affects("Debian:11", "openssl", "1.0"), None);
        // `~` sorts before the end: 3.0.11-1~deb12u2 < 3.0.11-1.
        assert_eq!(deb.affects("Debian:12", "openssl", "3.0.11-1"), None);
        let epoch = advisory(
            "Debian:12",
            "x",
            serde_json::json!([{"introduced": "0"}, {"fixed": "1:1.0-1"}]),
        );
        assert!(epoch.affects("Debian:12", "x", "9.9-1").is_some());

        let apk = advisory(
            "Alpine:v3.19",
            "openssl",
            serde_json::json!([{"introduced": "0"}, {"fixed": "3.1.4-r1"}]),
        );
        assert!(
            apk.affects("Alpine:v3.19", "openssl", "3.1.4_rc1-r0")
                .is_some()
        );
        assert!(apk.affects("Alpine:v3.19", "openssl", "3.1.4-r0").is_some());
        assert!(apk.affects("Alpine:v3.19", "openssl", "3.1.4-r1").is_none());

        let py = advisory(
            "PyPI",
            "Django",
            serde_json::json!([{"introduced": "4.0"}, {"fixed": "4.1.2"}, {"introduced": "4.2a1"}, {"last_affected": "4.2.1"}]),
        );
        assert!(py.affects("PyPI", "django", "4.1.2rc1").is_some());
        assert!(py.affects("PyPI", "django", "4.1.2").is_none());
        assert!(py.affects("PyPI", "django", "3.2").is_none());
        assert_eq!(py.affects("PyPI", "django", "4.2.1"), Some(None));
        assert!(py.affects("PyPI", "django", "4.2.2").is_none());

        let open = advisory("npm", "x", serde_json::json!([{"introduced": "2.0.0"}]));
        assert!(open.affects("npm", "x", "9.0.0").is_some());
        assert!(open.affects("npm", "x", "1.0.0").is_none());

        let ubuntu = advisory(
            "Ubuntu:22.04:LTS",
            "curl",
            serde_json::json!([{"introduced": "0"}, {"fixed": "7.81.0-1ubuntu1.15"}]),
        );
        assert!(
            ubuntu
                .affects("Ubuntu:22.04", "curl", "7.81.0-1ubuntu1.14")
                .is_some()
        );
    }

    #[test]
    fn unknown_parts_are_tolerated() {
        let text = r#"{"id":"X-1","schema_version":"1.6.0","affected":[{"package":{"ecosystem":"SomethingNew","name":"y"},"ranges":[{"type":"GIT","repo":"r","events":[{"introduced":"abc"}]}]}]}"#;
        let a: Advisory = serde_json::from_str(text).unwrap();
        assert!(a.affects("SomethingNew", "y", "1").is_none());
    }
}
