//! Scan-gated promotion (berth's own): when an image's scan completes, each
//! promotion rule whose source filter matches its repository decides: an
//! image that passes the rule's gate is copied into the destination (its
//! blobs linked, never copied; its tags with it) and stays there for the
//! rule's lifetime; one that fails stays where it is, with the reason kept.
//! Approved images past their lifetime are deleted or untagged; a rescan
//! that newly fails an approved image revokes it. Every decision is an
//! event, written with the decision.

pub mod rules;

use std::sync::Arc;

use berth_core::{Digest, Reference, RepositoryName, Tag};
use berth_store::{MetadataStore, NewEvent, PromotionRecord, StoreError, now_millis};
use serde_json::json;

use crate::registry::{Registry, RegistryError};
use crate::scanning::{IMAGE_SCAN_EVENT, Scanning};
pub use rules::{Ignored, PromotionRule};

/// The job kind that decides an image's promotions (`{"repository", "digest"}`).
pub const EVALUATE_JOB: &str = "promotion.evaluate";
/// The periodic job that ends approved images' lifetimes.
pub const EXPIRE_JOB: &str = "promotion.expire";
pub const PROMOTION_EVENT: &str = "Berth Image Promotion";
const RULES_SETTING: &str = "promotion-rules";

#[derive(Debug, thiserror::Error)]
pub enum PromotionError {
    #[error("{0}")]
    Invalid(String),
    #[error("no promotion rule is named {0}")]
    RuleNotFound(String),
    #[error("at most {} promotion rules", rules::MAX_RULES)]
    LimitExceeded,
    #[error("internal error: {0}")]
    Internal(#[from] StoreError),
}

/// Long-lived, one per node; keeps nothing between calls but its handles.
pub struct Promotion {
    store: Arc<dyn MetadataStore>,
    registry: Arc<Registry>,
    scanning: Arc<Scanning>,
}

impl Promotion {
    pub fn new(
        store: Arc<dyn MetadataStore>,
        registry: Arc<Registry>,
        scanning: Arc<Scanning>,
    ) -> Promotion {
        Promotion {
            store,
            registry,
            scanning,
        }
    }

    pub async fn rules(&self) -> Result<Vec<PromotionRule>, PromotionError> {
        Ok(self
            .store
            .get_setting(RULES_SETTING)
            .await?
            .and_then(|text| serde_json::from_str(&text).ok())
            .unwrap_or_default())
    }

    /// Adds a rule, or replaces the one of the same name.
    pub async fn put_rule(&self, rule: PromotionRule) -> Result<PromotionRule, PromotionError> {
        rule.check().map_err(PromotionError::Invalid)?;
        let mut rules = self.rules().await?;
        match rules.iter().position(|r| r.name == rule.name) {
            Some(at) => rules[at] = rule.clone(),
            None if rules.len() >= rules::MAX_RULES => return Err(PromotionError::LimitExceeded),
            None => rules.push(rule.clone()),
        }
        self.save(&rules).await?;
        Ok(rule)
    }

    pub async fn delete_rule(&self, name: &str) -> Result<PromotionRule, PromotionError> {
        let mut rules = self.rules().await?;
        let at = rules
            .iter()
            .position(|r| r.name == name)
            .ok_or_else(|| PromotionError::RuleNotFound(name.to_string()))?;
        let removed = rules.remove(at);
        self.save(&rules).await?;
        Ok(removed)
    }

    async fn save(&self, rules: &[PromotionRule]) -> Result<(), StoreError> {
        let text = serde_json::to_string(rules).expect("rules serialize");
        self.store.put_setting(RULES_SETTING, Some(&text)).await?;
        Ok(())
    }

    /// Decisions about images of `repository` (all when `None`), newest first.
    pub async fn decisions(
        &self,
        repository: Option<&str>,
        limit: u32,
    ) -> Result<Vec<PromotionRecord>, PromotionError> {
        Ok(self.store.promotions(repository, limit).await?)
    }

    /// Queues the decision about an image whose scan completed.
    async fn enqueue(&self, repository: &str, digest: &str) -> Result<(), StoreError> {
        crate::jobs::enqueue_for_image(self.store.as_ref(), EVALUATE_JOB, repository, digest, 5)
            .await
    }

    /// Decides an image's promotions under every rule that applies to it.
    pub async fn evaluate(&self, repository: &str, digest: &str) -> Result<(), String> {
        let rules = self.rules().await.map_err(|e| e.to_string())?;
        let (Ok(name), Ok(digest)) = (
            repository.parse::<RepositoryName>(),
            digest.parse::<Digest>(),
        ) else {
            return Ok(());
        };
        let applicable: Vec<(PromotionRule, String)> = rules
            .into_iter()
            .filter_map(|r| r.destination_of(repository).map(|d| (r, d)))
            .collect();
        if applicable.is_empty() {
            return Ok(());
        }
        let Some(scan) = self
            .scanning
            .scan(&name, &digest)
            .await
            .map_err(|e| e.to_string())?
        else {
            return Ok(());
        };
        if scan.record.status != "COMPLETE" {
            return Ok(());
        }
        let findings: Vec<(String, String, String)> = scan
            .result
            .iter()
            .flat_map(|r| &r.findings)
            .map(|f| (f.name.clone(), f.advisory_id.clone(), f.severity.clone()))
            .collect();
        let image = match self.registry.find_image(&name, Some(&digest), None).await {
            Ok(Some(image)) => image,
            Ok(None) | Err(RegistryError::NameUnknown { .. }) => return Ok(()),
            Err(e) => return Err(e.to_string()),
        };
        let now = now_millis();
        for (rule, destination) in applicable {
            let before = self
                .store
                .promotion(repository, &digest.to_string(), &rule.name)
                .await
                .map_err(|e| e.to_string())?;
            let mut record = PromotionRecord {
                source_repository: repository.to_string(),
                digest: digest.to_string(),
                rule: rule.name.clone(),
                destination: destination.clone(),
                status: String::new(),
                reason: String::new(),
                tags: json!(image.tags).to_string(),
                decided_at: now,
                expires_at: None,
            };
            match rule.gate(&findings, now) {
                Ok(()) => match match destination.parse::<RepositoryName>() {
                    Ok(to) => self.copy(&name, &image, &to).await,
                    Err(_) => Err(RegistryError::UploadInvalid(format!(
                        "'{destination}' is not a repository name"
                    ))),
                } {
                    Ok(()) => {
                        record.status = "APPROVED".into();
                        record.reason = format!("passed the gate of rule {}", rule.name);
                        record.expires_at = Some(now + (rule.lifetime_seconds as i64) * 1000);
                    }
                    Err(RegistryError::Internal(e)) => return Err(e.to_string()),
                    Err(e) => {
                        record.status = "FAILED".into();
                        record.reason = format!("could not copy into {destination}: {e}");
                    }
                },
                Err(reason) => {
                    let was_approved = before.as_ref().is_some_and(|b| b.status == "APPROVED");
                    if was_approved && rule.revoke_on_failure {
                        self.withdraw(&rule, before.as_ref().expect("approved before"))
                            .await
                            .map_err(|e| e.to_string())?;
                        record.status = "REVOKED".into();
                    } else {
                        record.status = "REJECTED".into();
                    }
                    record.reason = reason;
                }
            }
            let event = event(&record);
            self.store
                .put_promotion(&record, &[event])
                .await
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// Copies an image into `destination`: blobs linked, manifest and tags put.
    async fn copy(
        &self,
        source: &RepositoryName,
        image: &berth_store::ImageRecord,
        destination: &RepositoryName,
    ) -> Result<(), RegistryError> {
        self.registry.ensure_repository(destination).await?;
        let manifest: serde_json::Value =
            serde_json::from_slice(&image.content).unwrap_or_default();
        let blobs = std::iter::once(&manifest["config"])
            .chain(manifest["layers"].as_array().into_iter().flatten())
            .filter_map(|d| d["digest"].as_str())
            .filter_map(|d| d.parse::<Digest>().ok());
        for blob in blobs {
            self.registry.mount_blob(destination, source, &blob).await?;
        }
        let tags: Vec<Tag> = image.tags.iter().filter_map(|t| t.parse().ok()).collect();
        self.registry
            .put_manifest(
                destination,
                &Reference::Digest(image.digest.clone()),
                tags,
                Some(&image.media_type),
                image.content.clone(),
            )
            .await?;
        Ok(())
    }

    /// Takes an approved image out of its destination, as its rule says.
    async fn withdraw(
        &self,
        rule: &PromotionRule,
        record: &PromotionRecord,
    ) -> Result<(), RegistryError> {
        let Ok(destination) = record.destination.parse::<RepositoryName>() else {
            return Ok(());
        };
        let Ok(digest) = record.digest.parse::<Digest>() else {
            return Ok(());
        };
        let result = if rule.on_expiry == "UNTAG" {
            let tags: Vec<String> = serde_json::from_str(&record.tags).unwrap_or_default();
            for tag in tags.iter().filter_map(|t| t.parse::<Tag>().ok()) {
                // Only where the tag still names this image.
                if let Ok(Some(image)) = self
                    .registry
                    .find_image(&destination, Some(&digest), Some(&tag))
                    .await
                    && image.digest == digest
                {
                    // That tag only: the image stays, reachable by digest.
                    self.registry
                        .delete_manifest_noting(&destination, &Reference::Tag(tag), &[])
                        .await?;
                }
            }
            Ok(())
        } else {
            self.registry
                .delete_manifest_noting(
                    &destination,
                    &Reference::Digest(digest),
                    &[("berth-promotion-rule", json!(rule.name))],
                )
                .await
        };
        match result {
            Err(RegistryError::ManifestUnknown | RegistryError::NameUnknown { .. }) => Ok(()),
            other => other,
        }
    }

    /// Ends the lifetime of approved images whose time has come.
    pub async fn expire(&self) -> Result<usize, String> {
        let rules = self.rules().await.map_err(|e| e.to_string())?;
        let now = now_millis();
        let due = self
            .store
            .expired_promotions(now, 500)
            .await
            .map_err(|e| e.to_string())?;
        for mut record in due.iter().cloned() {
            let rule = rules
                .iter()
                .find(|r| r.name == record.rule)
                .cloned()
                .unwrap_or_else(|| PromotionRule {
                    name: record.rule.clone(),
                    source: String::new(),
                    destination: record.destination.clone(),
                    max_findings: Default::default(),
                    ignored: Vec::new(),
                    lifetime_seconds: rules::DEFAULT_LIFETIME_SECONDS,
                    on_expiry: "DELETE".into(),
                    revoke_on_failure: true,
                });
            self.withdraw(&rule, &record)
                .await
                .map_err(|e| e.to_string())?;
            record.status = "EXPIRED".into();
            record.reason = format!(
                "approved for {} under rule {}; {} from the destination",
                humantime::format_duration(std::time::Duration::from_secs(rule.lifetime_seconds)),
                rule.name,
                if rule.on_expiry == "UNTAG" {
                    "untagged"
                } else {
                    "deleted"
                }
            );
            record.decided_at = now;
            let event = event(&record);
            self.store
                .put_promotion(&record, &[event])
                .await
                .map_err(|e| e.to_string())?;
        }
        Ok(due.len())
    }
}

fn event(record: &PromotionRecord) -> NewEvent {
    let mut detail = json!({
        "action": record.status,
        "rule": record.rule,
        "repository-name": record.source_repository,
        "destination-repository": record.destination,
        "image-digest": record.digest,
        "image-tags": serde_json::from_str::<serde_json::Value>(&record.tags).unwrap_or_default(),
        "reason": record.reason,
    });
    if let Some(expires) = record.expires_at {
        detail["expires-at"] = json!(
            humantime::format_rfc3339_seconds(
                std::time::UNIX_EPOCH + std::time::Duration::from_millis(expires.max(0) as u64)
            )
            .to_string()
        );
    }
    NewEvent {
        at: now_millis(),
        detail_type: PROMOTION_EVENT.into(),
        detail: detail.to_string(),
    }
}

/// The outbox consumer that queues promotion decisions when scans complete.
pub struct PromoteOnScan(pub Arc<Promotion>);

#[async_trait::async_trait]
impl crate::outbox::Consumer for PromoteOnScan {
    fn name(&self) -> &'static str {
        "promotion"
    }

    async fn on_event(&self, event: &berth_store::Event) -> Result<(), String> {
        if event.detail_type != IMAGE_SCAN_EVENT {
            return Ok(());
        }
        let detail: serde_json::Value = serde_json::from_str(&event.detail).unwrap_or_default();
        if detail["scan-status"] != "COMPLETE" {
            return Ok(());
        }
        let (Some(repository), Some(digest)) = (
            detail["repository-name"].as_str(),
            detail["image-digest"].as_str(),
        ) else {
            return Ok(());
        };
        let rules = self.0.rules().await.map_err(|e| e.to_string())?;
        if !rules.iter().any(|r| r.destination_of(repository).is_some()) {
            return Ok(());
        }
        self.0
            .enqueue(repository, digest)
            .await
            .map_err(|e| e.to_string())
    }
}
