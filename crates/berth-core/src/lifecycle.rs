//! ECR lifecycle policies: parsing with ECR's validation, and evaluation
//! (images + rules + now → what expires, and by which rule). Pure, so a
//! preview and the enforcement can never disagree.

use serde::Deserialize;

/// Policy documents are between these many characters, as on ECR.
pub const MIN_POLICY_LEN: usize = 100;
pub const MAX_POLICY_LEN: usize = 30_720;
pub const MAX_RULES: usize = 50;
const MAX_WILDCARDS: usize = 4;
const DAY_MILLIS: i64 = 24 * 3600 * 1000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TagStatus {
    Tagged,
    Untagged,
    Any,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Count {
    /// Keep the newest `n` images the rule selects; act on the rest.
    MoreThan(u64),
    /// Images pushed more than `n` days ago.
    SincePushedDays(u64),
    /// Images last pulled (or, never pulled, pushed) more than `n` days ago.
    SincePulledDays(u64),
    /// Archived images archived more than `n` days ago.
    SinceTransitionedDays(u64),
}

/// The storage class a rule selects from (`selection.storageClass`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StorageClass {
    Standard,
    Archive,
}

/// What a rule does to what it selects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Expire,
    /// Move to the archive storage class.
    Archive,
}

/// Archived images stay at least this long before a rule may expire them, as on ECR.
pub const MIN_ARCHIVE_DAYS: u64 = 90;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub priority: u64,
    pub description: Option<String>,
    pub tag_status: TagStatus,
    pub tag_prefixes: Vec<String>,
    pub tag_patterns: Vec<String>,
    pub storage_class: StorageClass,
    pub count: Count,
    pub action: Action,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    /// In priority order: the lowest `rulePriority` first.
    pub rules: Vec<Rule>,
}

/// Why a policy document was refused (ECR: `InvalidParameterException`).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("Invalid parameter at 'LifecyclePolicyText' failed to satisfy constraint: '{0}'")]
pub struct PolicyError(pub String);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    rules: Vec<RawRule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawRule {
    rule_priority: i64,
    description: Option<String>,
    selection: RawSelection,
    action: RawAction,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawSelection {
    tag_status: String,
    tag_prefix_list: Option<Vec<String>>,
    tag_pattern_list: Option<Vec<String>>,
    storage_class: Option<String>,
    count_type: String,
    count_unit: Option<String>,
    count_number: i64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawAction {
    #[serde(rename = "type")]
    kind: String,
    target_storage_class: Option<String>,
}

fn invalid(reason: impl Into<String>) -> PolicyError {
    PolicyError(reason.into())
}

impl Policy {
    /// Parses and validates a lifecycle policy document.
    pub fn parse(text: &str) -> Result<Policy, PolicyError> {
        let len = text.chars().count();
        if !(MIN_POLICY_LEN..=MAX_POLICY_LEN).contains(&len) {
            return Err(invalid(format!(
                "Lifecycle policy text must be between {MIN_POLICY_LEN} and {MAX_POLICY_LEN} characters"
            )));
        }
        let raw: RawPolicy = serde_json::from_str(text)
            .map_err(|e| invalid(format!("Lifecycle policy is not valid: {e}")))?;
        if raw.rules.is_empty() || raw.rules.len() > MAX_RULES {
            return Err(invalid(format!(
                "A lifecycle policy has between 1 and {MAX_RULES} rules"
            )));
        }
        let mut rules = Vec::with_capacity(raw.rules.len());
        for raw_rule in raw.rules {
            rules.push(Rule::from_raw(raw_rule)?);
        }
        rules.sort_by_key(|r| r.priority);
        if rules.windows(2).any(|w| w[0].priority == w[1].priority) {
            return Err(invalid("rulePriority must be unique across rules"));
        }
        if rules
            .iter()
            .filter(|r| r.tag_status == TagStatus::Untagged)
            .count()
            > 1
        {
            return Err(invalid(
                "A lifecycle policy may have only one rule with tagStatus untagged",
            ));
        }
        if let Some(any) = rules.iter().position(|r| r.tag_status == TagStatus::Any)
            && any != rules.len() - 1
        {
            return Err(invalid(
                "A rule with tagStatus any must have the highest rulePriority value (the lowest priority)",
            ));
        }
        Ok(Policy { rules })
    }
}

impl Rule {
    fn from_raw(raw: RawRule) -> Result<Rule, PolicyError> {
        if raw.rule_priority < 1 {
            return Err(invalid("rulePriority must be a positive integer"));
        }
        let s = raw.selection;
        let storage_class = match s.storage_class.as_deref() {
            None | Some("standard") => StorageClass::Standard,
            Some("archive") => StorageClass::Archive,
            Some(other) => {
                return Err(invalid(format!(
                    "storageClass '{other}' must be standard or archive"
                )));
            }
        };
        let action = match (
            raw.action.kind.as_str(),
            raw.action.target_storage_class.as_deref(),
        ) {
            ("expire", None) => Action::Expire,
            ("expire", Some(_)) => {
                return Err(invalid(
                    "targetStorageClass goes only with action type transition",
                ));
            }
            ("transition", Some("archive")) => Action::Archive,
            ("transition", Some(other)) => {
                return Err(invalid(format!(
                    "targetStorageClass '{other}' must be archive"
                )));
            }
            ("transition", None) => {
                return Err(invalid(
                    "action type transition needs targetStorageClass archive",
                ));
            }
            (other, _) => {
                return Err(invalid(format!(
                    "action type '{other}' must be expire or transition"
                )));
            }
        };
        if action == Action::Archive && storage_class == StorageClass::Archive {
            return Err(invalid(
                "a transition to archive selects from storageClass standard",
            ));
        }
        let tag_status = match s.tag_status.as_str() {
            "tagged" => TagStatus::Tagged,
            "untagged" => TagStatus::Untagged,
            "any" => TagStatus::Any,
            other => {
                return Err(invalid(format!(
                    "tagStatus '{other}' must be tagged, untagged or any"
                )));
            }
        };
        let prefixes = s.tag_prefix_list.unwrap_or_default();
        let patterns = s.tag_pattern_list.unwrap_or_default();
        match tag_status {
            TagStatus::Tagged if prefixes.is_empty() && patterns.is_empty() => {
                return Err(invalid(
                    "A rule with tagStatus tagged needs a tagPrefixList or a tagPatternList",
                ));
            }
            TagStatus::Tagged if !prefixes.is_empty() && !patterns.is_empty() => {
                return Err(invalid(
                    "A rule may have a tagPrefixList or a tagPatternList, not both",
                ));
            }
            TagStatus::Untagged | TagStatus::Any
                if !prefixes.is_empty() || !patterns.is_empty() =>
            {
                return Err(invalid(
                    "tagPrefixList and tagPatternList go only with tagStatus tagged",
                ));
            }
            _ => {}
        }
        if let Some(p) = patterns
            .iter()
            .find(|p| p.matches('*').count() > MAX_WILDCARDS)
        {
            return Err(invalid(format!(
                "The tag pattern '{p}' has more than {MAX_WILDCARDS} wildcards"
            )));
        }
        if s.count_number < 1 {
            return Err(invalid("countNumber must be greater than 0"));
        }
        let n = s.count_number as u64;
        let count = match (s.count_type.as_str(), s.count_unit.as_deref()) {
            ("imageCountMoreThan", None) => Count::MoreThan(n),
            ("imageCountMoreThan", Some(_)) => {
                return Err(invalid(
                    "countUnit goes only with countType sinceImagePushed, sinceImagePulled or sinceImageTransitioned",
                ));
            }
            (kind @ ("sinceImagePushed" | "sinceImagePulled" | "sinceImageTransitioned"), unit) => {
                match unit {
                    Some("days") => {}
                    Some(unit) => {
                        return Err(invalid(format!("countUnit '{unit}' must be days")));
                    }
                    None => return Err(invalid(format!("countType {kind} needs countUnit days"))),
                }
                match kind {
                    "sinceImagePushed" => Count::SincePushedDays(n),
                    "sinceImagePulled" => Count::SincePulledDays(n),
                    _ => Count::SinceTransitionedDays(n),
                }
            }
            (other, _) => {
                return Err(invalid(format!(
                    "countType '{other}' must be imageCountMoreThan, sinceImagePushed, sinceImagePulled or sinceImageTransitioned"
                )));
            }
        };
        match (storage_class, &count) {
            (StorageClass::Standard, Count::SinceTransitionedDays(_)) => {
                return Err(invalid(
                    "countType sinceImageTransitioned goes only with storageClass archive",
                ));
            }
            (StorageClass::Archive, Count::SinceTransitionedDays(days))
                if *days < MIN_ARCHIVE_DAYS =>
            {
                return Err(invalid(format!(
                    "archived images stay at least {MIN_ARCHIVE_DAYS} days: countNumber must be {MIN_ARCHIVE_DAYS} or more"
                )));
            }
            (StorageClass::Archive, Count::SinceTransitionedDays(_)) => {}
            (StorageClass::Archive, _) => {
                return Err(invalid(format!(
                    "a rule on storageClass archive counts sinceImageTransitioned (at least {MIN_ARCHIVE_DAYS} days)"
                )));
            }
            _ => {}
        }
        Ok(Rule {
            priority: raw.rule_priority as u64,
            description: raw.description,
            tag_status,
            tag_prefixes: prefixes,
            tag_patterns: patterns,
            storage_class,
            count,
            action,
        })
    }

    /// Whether the rule's selection takes an image with these tags: every
    /// prefix (or pattern) of the rule must match some tag of the image.
    fn selects(&self, tags: &[String]) -> bool {
        match self.tag_status {
            TagStatus::Any => true,
            TagStatus::Untagged => tags.is_empty(),
            TagStatus::Tagged => {
                !tags.is_empty()
                    && self
                        .tag_prefixes
                        .iter()
                        .all(|p| tags.iter().any(|t| t.starts_with(p.as_str())))
                    && self
                        .tag_patterns
                        .iter()
                        .all(|p| tags.iter().any(|t| wildcard_match(p, t)))
            }
        }
    }
}

/// `*` matches any run of characters (possibly empty); everything else itself.
pub fn wildcard_match(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first)
        || !text[first.len()..].ends_with(last)
        || text.len() < first.len() + last.len()
    {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(at) => rest = &rest[at + middle.len()..],
            None => return false,
        }
    }
    true
}

/// An image as lifecycle rules see it.
#[derive(Clone, Debug)]
pub struct Image {
    pub digest: String,
    pub tags: Vec<String>,
    /// Milliseconds since the Unix epoch.
    pub pushed_at: i64,
    /// Listed by an index: never expired on its own.
    pub referenced: bool,
    /// Milliseconds since the Unix epoch, as last recorded.
    pub pulled_at: Option<i64>,
    /// Where the image is: rules on `standard` see active images, rules on
    /// `archive` archived ones; one being restored is left alone.
    pub status: ImageStatus,
    /// When it was last archived.
    pub archived_at: Option<i64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageStatus {
    Active,
    Archived,
    Activating,
}

impl ImageStatus {
    pub fn parse(text: &str) -> ImageStatus {
        match text {
            "ARCHIVED" => ImageStatus::Archived,
            "ACTIVATING" => ImageStatus::Activating,
            _ => ImageStatus::Active,
        }
    }
}

/// An image a rule expires.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expiry {
    pub digest: String,
    pub rule_priority: u64,
    /// Expire it, or move it to the archive.
    pub action: Action,
}

/// What `policy` expires among `images` at `now` (milliseconds). Rules apply
/// in priority order; an image is taken by the first rule whose selection
/// matches it, and no later rule sees it, whether that rule expires it or not.
pub fn evaluate(policy: &Policy, images: &[Image], now: i64) -> Vec<Expiry> {
    let mut taken = vec![false; images.len()];
    let mut expired = Vec::new();
    for rule in &policy.rules {
        let class = match rule.storage_class {
            StorageClass::Standard => ImageStatus::Active,
            StorageClass::Archive => ImageStatus::Archived,
        };
        let mut selected: Vec<usize> = (0..images.len())
            .filter(|&i| {
                !taken[i]
                    && !images[i].referenced
                    && images[i].status == class
                    && rule.selects(&images[i].tags)
            })
            .collect();
        for &i in &selected {
            taken[i] = true;
        }
        // Newest first; ties broken by digest so the outcome is the same every time.
        selected.sort_by(|&a, &b| {
            images[b]
                .pushed_at
                .cmp(&images[a].pushed_at)
                .then_with(|| images[a].digest.cmp(&images[b].digest))
        });
        let expiring: Vec<usize> = match rule.count {
            Count::MoreThan(keep) => selected.into_iter().skip(keep as usize).collect(),
            Count::SincePushedDays(days)
            | Count::SincePulledDays(days)
            | Count::SinceTransitionedDays(days) => {
                // Saturating: a count of days past the epoch keeps everything
                // (wrapping would have expired nearly everything).
                let cutoff = now.saturating_sub(
                    i64::try_from(days)
                        .unwrap_or(i64::MAX)
                        .saturating_mul(DAY_MILLIS),
                );
                let since = |image: &Image| match rule.count {
                    Count::SincePulledDays(_) => image.pulled_at.unwrap_or(image.pushed_at),
                    Count::SinceTransitionedDays(_) => image.archived_at.unwrap_or(image.pushed_at),
                    _ => image.pushed_at,
                };
                selected
                    .into_iter()
                    .filter(|&i| since(&images[i]) < cutoff)
                    .collect()
            }
        };
        expired.extend(expiring.into_iter().map(|i| Expiry {
            digest: images[i].digest.clone(),
            rule_priority: rule.priority,
            action: rule.action,
        }));
    }
    expired
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(rules: &str) -> Result<Policy, PolicyError> {
        // Pad to ECR's minimum length the way real documents are: with a description.
        let text = format!(r#"{{"rules":[{rules}]}}"#);
        let padded = if text.len() < MIN_POLICY_LEN {
            text.replacen(
                r#""rulePriority""#,
                &format!(
                    r#""description":"{}","rulePriority""#,
                    "x".repeat(MIN_POLICY_LEN)
                ),
                1,
            )
        } else {
            text
        };
        Policy::parse(&padded)
    }

    fn rule(priority: u64, selection: &str) -> String {
        format!(
            r#"{{"rulePriority":{priority},"selection":{{{selection}}},"action":{{"type":"expire"}}}}"#
        )
    }

    fn image(digest: &str, tags: &[&str], days_old: i64) -> Image {
        Image {
            digest: digest.into(),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            pushed_at: NOW - days_old * DAY_MILLIS,
            referenced: false,
            pulled_at: None,
            status: ImageStatus::Active,
            archived_at: None,
        }
    }

    const NOW: i64 = 1_800_000_000_000;

    fn expired(p: &Policy, images: &[Image]) -> Vec<String> {
        let mut d: Vec<String> = evaluate(p, images, NOW)
            .into_iter()
            .map(|e| e.digest)
            .collect();
        d.sort();
        d
    }

    #[test]
    fn keeps_the_newest_n() {
        let p = policy(&rule(
            10,
            r#""tagStatus":"any","countType":"imageCountMoreThan","countNumber":3"#,
        ))
        .unwrap();
        let images: Vec<Image> = (0..10).map(|i| image(&format!("d{i}"), &[], i)).collect();
        assert_eq!(
            expired(&p, &images),
            ["d3", "d4", "d5", "d6", "d7", "d8", "d9"]
        );
    }

    #[test]
    fn expires_untagged_after_days_and_spares_index_children() {
        let p = policy(&rule(
            1,
            r#""tagStatus":"untagged","countType":"sinceImagePushed","countUnit":"days","countNumber":14"#,
        ))
        .unwrap();
        let mut child = image("child", &[], 30);
        child.referenced = true;
        let images = [
            image("old", &[], 15),
            image("new", &[], 13),
            image("tagged", &["v1"], 100),
            child,
        ];
        assert_eq!(expired(&p, &images), ["old"]);
    }

    #[test]
    fn prefixes_and_patterns_must_all_match_some_tag() {
        let p = policy(&rule(
            1,
            r#""tagStatus":"tagged","tagPrefixList":["prod","release"],"countType":"imageCountMoreThan","countNumber":1"#,
        ))
        .unwrap();
        let images = [
            image("both-new", &["prod-1", "release-1"], 1),
            image("both-old", &["prod-0", "release-0"], 2),
            image("only-prod", &["prod-9"], 3),
        ];
        assert_eq!(expired(&p, &images), ["both-old"]);
        let p = policy(&rule(
            1,
            r#""tagStatus":"tagged","tagPatternList":["pr-*-build"],"countType":"sinceImagePushed","countUnit":"days","countNumber":7"#,
        ))
        .unwrap();
        let images = [
            image("a", &["pr-12-build"], 8),
            image("b", &["pr-12-other"], 8),
            image("c", &["pr-1-build"], 1),
        ];
        assert_eq!(expired(&p, &images), ["a"]);
    }

    #[test]
    fn a_higher_priority_selection_protects_images_from_lower_rules() {
        // Rule 1 keeps 5 prod images (selecting all 3, expiring none);
        // rule 2 would expire everything older than a day, but not those.
        let rules = [
            rule(1, r#""tagStatus":"tagged","tagPrefixList":["prod"],"countType":"imageCountMoreThan","countNumber":5"#),
            rule(2, r#""tagStatus":"any","countType":"sinceImagePushed","countUnit":"days","countNumber":1"#),
        ]
        .join(",");
        let p = policy(&rules).unwrap();
        let images = [
            image("p1", &["prod-1"], 10),
            image("p2", &["prod-2"], 20),
            image("dev", &["dev"], 10),
            image("fresh", &["dev2"], 0),
        ];
        let result = evaluate(&p, &images, NOW);
        assert_eq!(
            result,
            vec![Expiry {
                digest: "dev".into(),
                rule_priority: 2,
                action: Action::Expire,
            }]
        );
    }

    #[test]
    fn wildcards() {
        assert!(wildcard_match("prod*", "prod-1"));
        assert!(wildcard_match("*", "anything"));
        assert!(wildcard_match("a*b*c", "aXXbYYc"));
        assert!(!wildcard_match("a*b*c", "aXXcYYb"));
        assert!(!wildcard_match("v1", "v10"));
        assert!(wildcard_match("*-rc", "1.0-rc"));
        assert!(!wildcard_match("ab*ba", "aba"));
    }

    #[test]
    fn validation_as_ecr_words_it() {
        let bad = |rules: &str| policy(rules).unwrap_err().0;
        let any = r#""tagStatus":"any","countType":"imageCountMoreThan","countNumber":1"#;
        assert!(bad(&[rule(1, any), rule(1, any)].join(",")).contains("unique"));
        assert!(
            bad(&[
                rule(1, any),
                rule(
                    2,
                    r#""tagStatus":"untagged","countType":"imageCountMoreThan","countNumber":1"#
                )
            ]
            .join(","))
            .contains("highest rulePriority")
        );
        assert!(
            bad(&rule(
                1,
                r#""tagStatus":"tagged","countType":"imageCountMoreThan","countNumber":1"#
            ))
            .contains("needs a tagPrefixList")
        );
        assert!(bad(&rule(1, r#""tagStatus":"untagged","tagPrefixList":["x"],"countType":"imageCountMoreThan","countNumber":1"#)).contains("only with tagStatus tagged"));
        assert!(
            bad(&rule(
                1,
                r#""tagStatus":"any","countType":"imageCountMoreThan","countNumber":0"#
            ))
            .contains("greater than 0")
        );
        assert!(
            bad(&rule(
                1,
                r#""tagStatus":"any","countType":"sinceImagePushed","countNumber":3"#
            ))
            .contains("needs countUnit")
        );
        assert!(bad(&rule(1, r#""tagStatus":"any","countType":"imageCountMoreThan","countUnit":"days","countNumber":3"#)).contains("only with countType sinceImagePushed"));
        assert!(bad(&rule(1, r#""tagStatus":"tagged","tagPatternList":["a*b*c*d*e*f"],"countType":"imageCountMoreThan","countNumber":1"#)).contains("wildcards"));
        assert!(bad(&rule(1, r#""tagStatus":"TAGGED","tagPrefixList":["x"],"countType":"imageCountMoreThan","countNumber":1"#)).contains("tagStatus"));
        assert!(Policy::parse(r#"{"rules":[]}"#).is_err()); // too short, and no rules
        let typo = rule(1, any).replace("countNumber", "countNumbr");
        assert!(bad(&typo).contains("not valid"));
    }

    #[test]
    fn transitions_pull_times_and_archive_rules() {
        let archive_after = |count: &str| {
            format!(
                r#"{{"rulePriority":1,"description":"{}","selection":{{"tagStatus":"any",{count}}},"action":{{"type":"transition","targetStorageClass":"archive"}}}}"#,
                "x".repeat(60)
            )
        };
        let p = Policy::parse(&format!(
            r#"{{"rules":[{}]}}"#,
            archive_after(r#""countType":"sinceImagePulled","countUnit":"days","countNumber":30"#)
        ))
        .unwrap();
        let mut pulled_lately = image("pulled", &[], 100);
        pulled_lately.pulled_at = Some(NOW - 2 * DAY_MILLIS);
        let mut pulled_long_ago = image("stale", &[], 100);
        pulled_long_ago.pulled_at = Some(NOW - 40 * DAY_MILLIS);
        let never = image("never", &[], 31);
        let young = image("young", &[], 3);
        let mut archived = image("archived", &[], 200);
        archived.status = ImageStatus::Archived;
        let got = evaluate(
            &p,
            &[pulled_lately, pulled_long_ago, never, young, archived],
            NOW,
        );
        let mut digests: Vec<&str> = got.iter().map(|e| e.digest.as_str()).collect();
        digests.sort();
        assert_eq!(digests, ["never", "stale"]);
        assert!(got.iter().all(|e| e.action == Action::Archive));

        // Archived images expire after 90 days in the archive at the least.
        let expire_archived = |n: u64| {
            format!(
                r#"{{"rules":[{{"rulePriority":1,"description":"{}","selection":{{"tagStatus":"any","storageClass":"archive","countType":"sinceImageTransitioned","countUnit":"days","countNumber":{n}}},"action":{{"type":"expire"}}}}]}}"#,
                "x".repeat(40)
            )
        };
        assert!(Policy::parse(&expire_archived(30)).is_err());
        let p = Policy::parse(&expire_archived(90)).unwrap();
        let mut old = image("old", &[], 400);
        old.status = ImageStatus::Archived;
        old.archived_at = Some(NOW - 100 * DAY_MILLIS);
        let mut recent = image("recent", &[], 400);
        recent.status = ImageStatus::Archived;
        recent.archived_at = Some(NOW - 10 * DAY_MILLIS);
        let mut restoring = image("restoring", &[], 400);
        restoring.status = ImageStatus::Activating;
        let active = image("active", &[], 400);
        assert_eq!(expired(&p, &[old, recent, restoring, active]), ["old"]);

        // What ECR refuses.
        for bad in [
            archive_after(
                r#""countType":"sinceImageTransitioned","countUnit":"days","countNumber":5"#,
            ),
            archive_after(r#""countType":"sinceImagePulled","countNumber":5"#),
            archive_after(
                r#""storageClass":"archive","countType":"sinceImagePushed","countUnit":"days","countNumber":5"#,
            ),
            archive_after(
                r#""storageClass":"glacier","countType":"sinceImagePushed","countUnit":"days","countNumber":5"#,
            ),
            archive_after(r#""countType":"sinceImagePushed","countUnit":"days","countNumber":5"#)
                .replace(r#","targetStorageClass":"archive""#, ""),
            archive_after(r#""countType":"sinceImagePushed","countUnit":"days","countNumber":5"#)
                .replace(r#""type":"transition""#, r#""type":"expire""#),
        ] {
            assert!(
                Policy::parse(&format!(r#"{{"rules":[{bad}]}}"#)).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_count_of_days_past_any_date_keeps_everything() {
        // The fuzzer's find: 106,751,991,168 days overflowed the cutoff
        // (a panic in debug; in release it wrapped and expired nearly all).
        for n in [106_751_991_168_i64, 213_503_982_337, i64::MAX] {
            let p = policy(&rule(
                1,
                &format!(
                    r#""tagStatus":"any","countType":"sinceImagePushed","countUnit":"days","countNumber":{n}"#
                ),
            ))
            .unwrap();
            assert!(expired(&p, &[image("old", &[], 3), image("older", &[], 9000)]).is_empty());
        }
    }
}
