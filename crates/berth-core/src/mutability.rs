//! ECR's image tag mutability: `MUTABLE`, `IMMUTABLE`, and the variants
//! with exclusion filters (`IMMUTABLE_WITH_EXCLUSION`: immutable except tags
//! matching a filter; `MUTABLE_WITH_EXCLUSION`: mutable except those).

use crate::lifecycle::wildcard_match;

pub const SETTINGS: &[&str] = &[
    "MUTABLE",
    "IMMUTABLE",
    "IMMUTABLE_WITH_EXCLUSION",
    "MUTABLE_WITH_EXCLUSION",
];

/// Whether `tag` may not be moved once it names an image.
pub fn is_immutable(setting: &str, exclusions: &[String], tag: &str) -> bool {
    let excluded = || exclusions.iter().any(|f| wildcard_match(f, tag));
    match setting {
        "IMMUTABLE" => true,
        "IMMUTABLE_WITH_EXCLUSION" => !excluded(),
        "MUTABLE_WITH_EXCLUSION" => excluded(),
        _ => false,
    }
}

/// Filters go with the `_WITH_EXCLUSION` settings, and only with them.
pub fn check(setting: &str, exclusions: &[String]) -> Result<(), String> {
    if !SETTINGS.contains(&setting) {
        return Err(format!(
            "'{setting}' is not an image tag mutability setting"
        ));
    }
    match (setting.ends_with("_WITH_EXCLUSION"), exclusions.is_empty()) {
        (true, true) => Err(format!(
            "imageTagMutabilityExclusionFilters are required with {setting}"
        )),
        (false, false) => Err(format!(
            "imageTagMutabilityExclusionFilters are only allowed with IMMUTABLE_WITH_EXCLUSION or MUTABLE_WITH_EXCLUSION, not {setting}"
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exclusions_flip_the_setting_for_matching_tags() {
        let filters = vec!["latest".to_string(), "dev-*".to_string()];
        assert!(is_immutable("IMMUTABLE", &[], "v1"));
        assert!(!is_immutable("MUTABLE", &[], "v1"));
        assert!(is_immutable("IMMUTABLE_WITH_EXCLUSION", &filters, "v1"));
        assert!(!is_immutable(
            "IMMUTABLE_WITH_EXCLUSION",
            &filters,
            "latest"
        ));
        assert!(!is_immutable(
            "IMMUTABLE_WITH_EXCLUSION",
            &filters,
            "dev-42"
        ));
        assert!(!is_immutable("MUTABLE_WITH_EXCLUSION", &filters, "v1"));
        assert!(is_immutable("MUTABLE_WITH_EXCLUSION", &filters, "dev-42"));
        assert!(check("IMMUTABLE_WITH_EXCLUSION", &filters).is_ok());
        assert!(check("IMMUTABLE_WITH_EXCLUSION", &[]).is_err());
        assert!(check("MUTABLE", &filters).is_err());
        assert!(check("SOMETIMES", &[]).is_err());
    }
}
