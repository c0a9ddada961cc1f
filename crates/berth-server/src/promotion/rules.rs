//! Promotion rules: which repositories' images are promoted where, through
//! which gate, for how long. Pure: matching, destinations, gate decisions.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Rules per registry.
pub const MAX_RULES: usize = 50;
/// An approved image's lifetime when the rule does not say.
pub const DEFAULT_LIFETIME_SECONDS: u64 = 30 * 24 * 3600;

const SEVERITIES: [&str; 6] = [
    "CRITICAL",
    "HIGH",
    "MEDIUM",
    "LOW",
    "INFORMATIONAL",
    "UNDEFINED",
];

/// An advisory the gate does not count, until `expires_at`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Ignored {
    /// The finding's name (`CVE-…`) or its advisory id.
    pub id: String,
    /// Milliseconds; counted again from then on.
    pub expires_at: i64,
    pub reason: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PromotionRule {
    pub name: String,
    /// Wildcard filter on the source repository (`staging/*`).
    pub source: String,
    /// The destination repository; `{1}`, `{2}` … are what the source's `*`s matched.
    pub destination: String,
    /// At most this many findings of each severity (absent: any number).
    pub max_findings: BTreeMap<String, u64>,
    #[serde(default)]
    pub ignored: Vec<Ignored>,
    pub lifetime_seconds: u64,
    /// `DELETE` the approved image when its lifetime ends, or `UNTAG` it.
    pub on_expiry: String,
    /// Remove an approved image from the destination when a rescan fails the gate.
    pub revoke_on_failure: bool,
}

impl PromotionRule {
    pub fn check(&self) -> Result<(), String> {
        if self.name.is_empty()
            || self.name.len() > 64
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err("A rule name has 1 to 64 letters, digits, '-', '_' or '.'".into());
        }
        if self.source.is_empty() || self.source.len() > 256 {
            return Err("sourceRepositoryFilter must have 1 to 256 characters".into());
        }
        let stars = self.source.matches('*').count();
        let mut rest = self.destination.as_str();
        while let Some(at) = rest.find('{') {
            let end = rest[at..]
                .find('}')
                .ok_or("destination has an unclosed '{'")?;
            let n: usize = rest[at + 1..at + end]
                .parse()
                .map_err(|_| "destination placeholders are {1}, {2} …".to_string())?;
            if n == 0 || n > stars {
                return Err(format!(
                    "destination names {{{n}}} but the source filter has {stars} '*'"
                ));
            }
            rest = &rest[at + end + 1..];
        }
        let example = self.destination.replace(['{', '}'], "");
        if example.parse::<berth_core::RepositoryName>().is_err() {
            return Err(format!(
                "destination '{}' is not a repository name",
                self.destination
            ));
        }
        // A destination the source filter also matches would promote its own copies.
        let mut sample = String::new();
        let mut rest = self.destination.as_str();
        while let Some(at) = rest.find('{') {
            sample.push_str(&rest[..at]);
            sample.push('x');
            rest = rest[at..].find('}').map_or("", |end| &rest[at + end + 1..]);
        }
        sample.push_str(rest);
        if capture(&self.source, &sample).is_some() {
            return Err(format!(
                "the destination '{}' falls under the source filter '{}'",
                self.destination, self.source
            ));
        }
        for severity in self.max_findings.keys() {
            if !SEVERITIES.contains(&severity.as_str()) {
                return Err(format!("Unknown severity '{severity}' in maxFindings"));
            }
        }
        if self.on_expiry != "DELETE" && self.on_expiry != "UNTAG" {
            return Err("onExpiry is DELETE or UNTAG".into());
        }
        if self.lifetime_seconds == 0 {
            return Err("approvedLifetimeSeconds must be positive".into());
        }
        Ok(())
    }

    /// The destination of an image of `repository`, if this rule applies to it.
    pub fn destination_of(&self, repository: &str) -> Option<String> {
        let captures = capture(&self.source, repository)?;
        let mut out = self.destination.clone();
        for (i, text) in captures.iter().enumerate() {
            out = out.replace(&format!("{{{}}}", i + 1), text);
        }
        (out != repository).then_some(out)
    }

    /// Whether findings (name, advisory id, severity) pass the gate at `now`;
    /// the reason when they do not.
    pub fn gate(&self, findings: &[(String, String, String)], now: i64) -> Result<(), String> {
        let mut counted: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (name, advisory, severity) in findings {
            let ignored = self
                .ignored
                .iter()
                .any(|i| (i.id == *name || i.id == *advisory) && i.expires_at > now);
            if !ignored {
                counted.entry(severity).or_default().push(name);
            }
        }
        let mut reasons = Vec::new();
        for severity in SEVERITIES {
            let (Some(max), Some(names)) = (self.max_findings.get(severity), counted.get(severity))
            else {
                continue;
            };
            if names.len() as u64 > *max {
                let mut shown: Vec<&str> = names.iter().take(5).copied().collect();
                if names.len() > 5 {
                    shown.push("…");
                }
                reasons.push(format!(
                    "{} {severity} finding{} where at most {max} {} allowed ({})",
                    names.len(),
                    if names.len() == 1 { "" } else { "s" },
                    if *max == 1 { "is" } else { "are" },
                    shown.join(", ")
                ));
            }
        }
        if reasons.is_empty() {
            Ok(())
        } else {
            Err(reasons.join("; "))
        }
    }
}

/// What each `*` of `pattern` matched in `text`, if it matches.
pub fn capture(pattern: &str, text: &str) -> Option<Vec<String>> {
    fn go(p: &[u8], t: &[u8], out: &mut Vec<String>) -> bool {
        match p.split_first() {
            None => t.is_empty(),
            Some((b'*', rest)) => {
                // Shortest first, so `a/*/*` splits as early as it can.
                for i in 0..=t.len() {
                    out.push(String::from_utf8_lossy(&t[..i]).into_owned());
                    if go(rest, &t[i..], out) {
                        return true;
                    }
                    out.pop();
                }
                false
            }
            Some((c, rest)) => t.first() == Some(c) && go(rest, &t[1..], out),
        }
    }
    let mut out = Vec::new();
    go(pattern.as_bytes(), text.as_bytes(), &mut out).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule() -> PromotionRule {
        PromotionRule {
            name: "staging".into(),
            source: "staging/*".into(),
            destination: "approved/{1}".into(),
            max_findings: [("CRITICAL".to_string(), 0), ("HIGH".to_string(), 1)].into(),
            ignored: vec![Ignored {
                id: "CVE-2".into(),
                expires_at: 1000,
                reason: "not reachable".into(),
            }],
            lifetime_seconds: DEFAULT_LIFETIME_SECONDS,
            on_expiry: "DELETE".into(),
            revoke_on_failure: true,
        }
    }

    #[test]
    fn destinations_and_gates() {
        let r = rule();
        assert!(r.check().is_ok());
        assert_eq!(
            r.destination_of("staging/alice").as_deref(),
            Some("approved/alice")
        );
        assert_eq!(
            r.destination_of("staging/team/app").as_deref(),
            Some("approved/team/app")
        );
        assert_eq!(r.destination_of("prod/x"), None);
        let f = |n: &str, s: &str| (n.to_string(), n.to_string(), s.to_string());
        assert!(r.gate(&[f("CVE-1", "HIGH"), f("CVE-3", "LOW")], 0).is_ok());
        let why = r.gate(&[f("CVE-1", "CRITICAL")], 0).unwrap_err();
        assert_eq!(
            why,
            "1 CRITICAL finding where at most 0 are allowed (CVE-1)"
        );
        // Ignored until it expires.
        assert!(r.gate(&[f("CVE-2", "CRITICAL")], 999).is_ok());
        assert!(r.gate(&[f("CVE-2", "CRITICAL")], 1000).is_err());
        let mut bad = rule();
        bad.destination = "approved/{2}".into();
        assert!(bad.check().is_err());
        let mut looping = rule();
        looping.source = "*".into();
        looping.destination = "mirror/{1}".into();
        assert!(looping.check().is_err());
        assert_eq!(
            capture("a/*/x/*", "a/b/x/c/d"),
            Some(vec!["b".into(), "c/d".into()])
        );
    }
}
