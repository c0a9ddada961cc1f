//! Lifecycle policies applied: previews and enforcement both evaluate with
//! `berth_core::lifecycle::evaluate` over the same image list, so they cannot
//! disagree. Enforcement deletes each expired image as `BatchDeleteImage`
//! would, and records it (an event and a log line) with the rule that
//! expired it.

use std::sync::Arc;

use berth_core::lifecycle::{self, Image, Policy};
use berth_core::{Digest, Reference, RepositoryName};
use berth_store::{LifecycleImage, LifecycleStore, MetadataStore, StoreError};

use crate::registry::{Registry, RegistryError};

/// An image a policy expires, and the rule that does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expired {
    pub repository: RepositoryName,
    pub image: LifecycleImage,
    pub rule_priority: u64,
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
    pub fn store(&self) -> &dyn LifecycleStore {
        &*self.store
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
