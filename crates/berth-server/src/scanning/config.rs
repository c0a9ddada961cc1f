//! The registry's scanning configuration (`PutRegistryScanningConfiguration`):
//! a scan type and at most two rules whose wildcard filters pick the
//! repositories scanned on push or continuously; the rest are scanned on
//! request only, unless their own (older) `scanOnPush` switch is on.

use berth_core::lifecycle::wildcard_match;
use berth_store::{MetadataStore, StoreError};
use serde::{Deserialize, Serialize};

const SETTING: &str = "registry-scanning-configuration";
/// Rules per registry, as on ECR.
const MAX_RULES: usize = 2;
/// Filters per rule, as on ECR.
const MAX_FILTERS: usize = 100;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Frequency {
    Manual,
    OnPush,
    Continuous,
}

impl Frequency {
    pub fn as_str(self) -> &'static str {
        match self {
            Frequency::Manual => "MANUAL",
            Frequency::OnPush => "SCAN_ON_PUSH",
            Frequency::Continuous => "CONTINUOUS_SCAN",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanRule {
    /// `SCAN_ON_PUSH`, `CONTINUOUS_SCAN` or `MANUAL`.
    pub scan_frequency: String,
    /// Wildcard filters (`*` matches any run of characters).
    pub filters: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistryScanning {
    /// `BASIC` or `ENHANCED`.
    pub scan_type: String,
    pub rules: Vec<ScanRule>,
}

impl Default for RegistryScanning {
    fn default() -> Self {
        RegistryScanning {
            scan_type: "BASIC".into(),
            rules: Vec::new(),
        }
    }
}

impl RegistryScanning {
    /// Checks the configuration as ECR does.
    pub fn check(&self) -> Result<(), String> {
        if self.scan_type != "BASIC" && self.scan_type != "ENHANCED" {
            return Err(format!("Invalid scan type '{}'", self.scan_type));
        }
        if self.rules.len() > MAX_RULES {
            return Err(format!(
                "A registry may have at most {MAX_RULES} scanning rules"
            ));
        }
        for rule in &self.rules {
            match rule.scan_frequency.as_str() {
                "SCAN_ON_PUSH" | "MANUAL" => {}
                "CONTINUOUS_SCAN" if self.scan_type == "ENHANCED" => {}
                "CONTINUOUS_SCAN" => {
                    return Err(
                        "CONTINUOUS_SCAN frequency is not supported for BASIC scan type".into(),
                    );
                }
                other => return Err(format!("Invalid scan frequency '{other}'")),
            }
            if rule.filters.is_empty() || rule.filters.len() > MAX_FILTERS {
                return Err(format!(
                    "A scanning rule needs between 1 and {MAX_FILTERS} repository filters"
                ));
            }
            for filter in &rule.filters {
                if filter.is_empty()
                    || filter.len() > 255
                    || !filter.chars().all(|c| {
                        c.is_ascii_lowercase() || c.is_ascii_digit() || "._-/*".contains(c)
                    })
                {
                    return Err(format!("Invalid repository filter '{filter}'"));
                }
            }
        }
        Ok(())
    }

    /// How repository `name` is scanned, and the filters that decided it.
    /// Continuous scanning wins over scan on push; the repository's own
    /// `scanOnPush` applies where no rule does.
    pub fn frequency(&self, name: &str, scan_on_push: bool) -> (Frequency, Vec<String>) {
        for wanted in ["CONTINUOUS_SCAN", "SCAN_ON_PUSH"] {
            for rule in self.rules.iter().filter(|r| r.scan_frequency == wanted) {
                let matched: Vec<String> = rule
                    .filters
                    .iter()
                    .filter(|f| wildcard_match(f, name))
                    .cloned()
                    .collect();
                if !matched.is_empty() {
                    let frequency = if wanted == "CONTINUOUS_SCAN" {
                        Frequency::Continuous
                    } else {
                        Frequency::OnPush
                    };
                    return (frequency, matched);
                }
            }
        }
        if scan_on_push {
            (Frequency::OnPush, Vec::new())
        } else {
            (Frequency::Manual, Vec::new())
        }
    }
}

pub(super) async fn load(store: &dyn MetadataStore) -> Result<RegistryScanning, StoreError> {
    Ok(store
        .get_setting(SETTING)
        .await?
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or_default())
}

pub(super) async fn save(
    store: &dyn MetadataStore,
    configuration: &RegistryScanning,
) -> Result<(), StoreError> {
    let text = serde_json::to_string(configuration).expect("a configuration serializes");
    store.put_setting(SETTING, Some(&text)).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continuous_wins_then_push_then_the_repository_switch() {
        let config = RegistryScanning {
            scan_type: "ENHANCED".into(),
            rules: vec![
                ScanRule {
                    scan_frequency: "SCAN_ON_PUSH".into(),
                    filters: vec!["staging/*".into(), "prod*".into()],
                },
                ScanRule {
                    scan_frequency: "CONTINUOUS_SCAN".into(),
                    filters: vec!["prod*".into()],
                },
            ],
        };
        assert!(config.check().is_ok());
        assert_eq!(
            config.frequency("staging/alice", false).0,
            Frequency::OnPush
        );
        assert_eq!(config.frequency("prod/app", false).0, Frequency::Continuous);
        assert_eq!(config.frequency("other", false).0, Frequency::Manual);
        assert_eq!(config.frequency("other", true).0, Frequency::OnPush);
        let basic = RegistryScanning {
            scan_type: "BASIC".into(),
            rules: vec![ScanRule {
                scan_frequency: "CONTINUOUS_SCAN".into(),
                filters: vec!["*".into()],
            }],
        };
        assert!(basic.check().is_err());
    }
}
