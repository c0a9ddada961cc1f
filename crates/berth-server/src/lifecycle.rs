//! Lifecycle policies applied: previews and enforcement both evaluate with
//! `berth_core::lifecycle::evaluate` over the same image list, so they cannot
//! disagree. Enforcement deletes each expired image as `BatchDeleteImage`
//! would, and records it (an event and a log line) with the rule that
//! expired it.

use std::sync::Arc;

use berth_core::lifecycle::{self, Image, Policy};
use berth_core::{Digest, Reference, RepositoryName};
use berth_store::{LifecycleImage, MetadataStore, StoreError};

use crate::registry::{Registry, RegistryError};

/// An image a policy expires, and the rule that does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expired {
    pub repository: RepositoryName,
    pub image: LifecycleImage,
    pub rule_priority: u64,
    /// Expired, or moved to the archive.
    pub action: lifecycle::Action,
}

/// Why a lifecycle-policy operation did not happen.
#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    #[error("the repository does not exist")]
    RepositoryNotFound,
    #[error("no lifecycle policy is set")]
    PolicyNotFound,
    #[error("no preview was started")]
    PreviewNotFound,
    /// The document is not a valid lifecycle policy; says why.
    #[error("{0}")]
    Invalid(String),
    #[error("internal error: {0}")]
    Internal(#[from] berth_store::StoreError),
}

/// Checks `text` as a lifecycle policy; says what is wrong with it.
pub fn check_policy(text: &str) -> Result<(), LifecycleError> {
    checked(text).map(drop)
}

fn checked(text: &str) -> Result<Policy, LifecycleError> {
    Policy::parse(text).map_err(|e| LifecycleError::Invalid(e.to_string()))
}

pub struct Lifecycle {
    store: Arc<dyn MetadataStore>,
    registry: Arc<Registry>,
}

impl Lifecycle {
    pub fn new(store: Arc<dyn MetadataStore>, registry: Arc<Registry>) -> Lifecycle {
        Lifecycle { store, registry }
    }

    /// Where policies and previews are kept.
    /// Sets repository `name`'s lifecycle policy.
    pub async fn put_policy(
        &self,
        name: &RepositoryName,
        text: &str,
    ) -> Result<(), LifecycleError> {
        checked(text)?;
        if !self.store.set_lifecycle_policy(name, Some(text)).await? {
            return Err(LifecycleError::RepositoryNotFound);
        }
        Ok(())
    }

    /// Repository `name`'s lifecycle policy (text and last evaluation).
    pub async fn policy(
        &self,
        name: &RepositoryName,
    ) -> Result<berth_store::LifecyclePolicyRecord, LifecycleError> {
        match self.store.get_lifecycle_policy(name).await? {
            None => Err(LifecycleError::RepositoryNotFound),
            Some(None) => Err(LifecycleError::PolicyNotFound),
            Some(Some(record)) => Ok(record),
        }
    }

    /// Removes repository `name`'s lifecycle policy; returns what it was.
    pub async fn delete_policy(
        &self,
        name: &RepositoryName,
    ) -> Result<berth_store::LifecyclePolicyRecord, LifecycleError> {
        let record = self.policy(name).await?;
        self.store.set_lifecycle_policy(name, None).await?;
        Ok(record)
    }

    /// Starts a preview of `text` (default: the repository's policy) on
    /// repository `name`; returns the text previewed.
    pub async fn start_preview(
        &self,
        name: &RepositoryName,
        text: Option<&str>,
    ) -> Result<String, LifecycleError> {
        let text = match text {
            Some(text) => text.to_string(),
            None => self.policy(name).await?.text,
        };
        checked(&text)?;
        if !self.store.set_lifecycle_preview(name, &text).await? {
            return Err(LifecycleError::RepositoryNotFound);
        }
        Ok(text)
    }

    /// The preview of repository `name`: its policy text and what it would
    /// expire now, evaluated as enforcement does.
    pub async fn preview(
        &self,
        name: &RepositoryName,
    ) -> Result<(String, Vec<Expired>), LifecycleError> {
        let text = match self.store.get_lifecycle_preview(name).await? {
            None => return Err(LifecycleError::RepositoryNotFound),
            Some(None) => return Err(LifecycleError::PreviewNotFound),
            Some(Some(text)) => text,
        };
        let policy = checked(&text)?;
        let expired = self
            .evaluate(name, &policy, berth_store::now_millis())
            .await?;
        Ok((text, expired))
    }

    /// What `policy` expires in `repository` at `now` (ms), oldest first.
    pub async fn evaluate(
        &self,
        repository: &RepositoryName,
        policy: &Policy,
        now: i64,
    ) -> Result<Vec<Expired>, StoreError> {
        let images = self.store.lifecycle_images(repository).await?;
        let view: Vec<Image> = images
            .iter()
            .map(|i| Image {
                digest: i.digest.clone(),
                tags: i.tags.clone(),
                pushed_at: i.pushed_at,
                referenced: i.referenced,
                pulled_at: i.last_pulled_at,
                status: lifecycle::ImageStatus::parse(&i.image_status),
                archived_at: i.last_archived_at,
            })
            .collect();
        let position: std::collections::HashMap<&str, usize> = images
            .iter()
            .enumerate()
            .map(|(i, image)| (image.digest.as_str(), i))
            .collect();
        let mut expired: Vec<Expired> = lifecycle::evaluate(policy, &view, now)
            .into_iter()
            .filter_map(|expiry| {
                let image = images[*position.get(expiry.digest.as_str())?].clone();
                Some(Expired {
                    repository: repository.clone(),
                    image,
                    rule_priority: expiry.rule_priority,
                    action: expiry.action,
                })
            })
            .collect();
        expired.sort_by(|a, b| {
            (a.image.pushed_at, &a.image.digest).cmp(&(b.image.pushed_at, &b.image.digest))
        });
        Ok(expired)
    }

    /// Applies `repository`'s policy at `now`: deletes what it expires and
    /// returns it. `dry_run` only says what would go.
    pub async fn enforce(
        &self,
        repository: &RepositoryName,
        now: i64,
        dry_run: bool,
    ) -> Result<Vec<Expired>, RegistryError> {
        let Some(Some(record)) = self.store.get_lifecycle_policy(repository).await? else {
            return Ok(Vec::new());
        };
        let policy = match Policy::parse(&record.text) {
            Ok(policy) => policy,
            Err(e) => {
                tracing::error!(repository = %repository, error = %e, "stored lifecycle policy does not parse; skipped");
                return Ok(Vec::new());
            }
        };
        let expired = self.evaluate(repository, &policy, now).await?;
        if dry_run {
            return Ok(expired);
        }
        let mut done = Vec::with_capacity(expired.len());
        for item in expired {
            let Ok(digest) = item.image.digest.parse::<Digest>() else {
                continue;
            };
            if item.action == lifecycle::Action::Archive {
                match self.registry.archive_image(repository, &digest).await {
                    Ok(true) => {
                        tracing::info!(
                            repository = %repository,
                            digest = %item.image.digest,
                            rule = item.rule_priority,
                            "lifecycle policy archived an image"
                        );
                        done.push(item);
                    }
                    // Pulled back, restored or gone meanwhile: nothing to do.
                    Ok(false) => {}
                    Err(e) => return Err(e),
                }
                continue;
            }
            // The DELETE event names the rule, and commits with the delete.
            let mut noted = vec![(
                "lifecycle-rule-priority",
                serde_json::json!(item.rule_priority),
            )];
            if let Some(tag) = item.image.tags.first() {
                noted.push(("image-tag", serde_json::json!(tag)));
            }
            match self
                .registry
                .delete_manifest_noting(repository, &Reference::Digest(digest), &noted)
                .await
            {
                Ok(()) => {
                    tracing::info!(
                        repository = %repository,
                        digest = %item.image.digest,
                        tags = ?item.image.tags,
                        rule = item.rule_priority,
                        "lifecycle policy expired an image"
                    );
                    crate::metrics::METRICS.lifecycle_expired.inc();
                    done.push(item);
                }
                // Gone meanwhile, or newly listed by an index: nothing to do.
                Err(RegistryError::ManifestUnknown | RegistryError::ManifestReferenced(_)) => {}
                Err(e) => return Err(e),
            }
        }
        self.store.mark_lifecycle_evaluated(repository, now).await?;
        Ok(done)
    }

    /// Applies every repository's policy once.
    pub async fn enforce_all(
        &self,
        now: i64,
        dry_run: bool,
    ) -> Result<Vec<Expired>, RegistryError> {
        let mut all = Vec::new();
        for repository in self.store.lifecycle_repositories().await? {
            all.extend(self.enforce(&repository, now, dry_run).await?);
        }
        Ok(all)
    }
}
