//! Lifecycle policies: the document on each repository, the preview asked
//! for, and the images as lifecycle rules see them. Plain SQL both databases
//! accept, implemented for both backends by [`impl_lifecycle_store`].

use async_trait::async_trait;
use berth_core::RepositoryName;

use crate::Result;

/// A repository's lifecycle policy and when it was last applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LifecyclePolicyRecord {
    pub text: String,
    /// Milliseconds; `None` until enforcement first ran.
    pub evaluated_at: Option<i64>,
}

/// An image as lifecycle rules see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LifecycleImage {
    pub digest: String,
    pub tags: Vec<String>,
    pub pushed_at: i64,
    /// Listed by an index of the repository.
    pub referenced: bool,
    pub last_pulled_at: Option<i64>,
    /// `ACTIVE`, `ARCHIVED` or `ACTIVATING`.
    pub image_status: String,
    pub last_archived_at: Option<i64>,
}

/// A manifest row as `lifecycle_images` reads it: digest, pushed, last
/// pulled, status, last archived.
pub(crate) type LifecycleRow = (String, i64, Option<i64>, String, Option<i64>);

#[async_trait]
pub trait LifecycleStore: Send + Sync + 'static {
    /// The repository's policy: `None` if the repository does not exist.
    async fn get_lifecycle_policy(
        &self,
        name: &RepositoryName,
    ) -> Result<Option<Option<LifecyclePolicyRecord>>>;
    /// Sets or (with `None`) removes it; false if the repository does not exist.
    async fn set_lifecycle_policy(&self, name: &RepositoryName, text: Option<&str>)
    -> Result<bool>;
    async fn mark_lifecycle_evaluated(&self, name: &RepositoryName, at: i64) -> Result<()>;
    /// Repositories with a lifecycle policy, in name order.
    async fn lifecycle_repositories(&self) -> Result<Vec<RepositoryName>>;
    /// The policy text a preview was started with: `None` if the repository
    /// does not exist, `Some(None)` if no preview was started.
    async fn get_lifecycle_preview(&self, name: &RepositoryName) -> Result<Option<Option<String>>>;
    async fn set_lifecycle_preview(&self, name: &RepositoryName, text: &str) -> Result<bool>;
    /// Every image of the repository with its tags, for rule evaluation.
    async fn lifecycle_images(&self, name: &RepositoryName) -> Result<Vec<LifecycleImage>>;
}

/// Joins the rows of `lifecycle_images`' three queries.
pub(crate) fn assemble_images(
    manifests: Vec<LifecycleRow>,
    tags: Vec<(String, String)>,
    referenced: Vec<(String,)>,
) -> Vec<LifecycleImage> {
    use std::collections::{HashMap, HashSet};
    let mut tags_of: HashMap<String, Vec<String>> = HashMap::new();
    for (digest, tag) in tags {
        tags_of.entry(digest).or_default().push(tag);
    }
    let referenced: HashSet<String> = referenced.into_iter().map(|(d,)| d).collect();
    manifests
        .into_iter()
        .map(
            |(digest, pushed_at, last_pulled_at, image_status, last_archived_at)| LifecycleImage {
                tags: tags_of.remove(&digest).unwrap_or_default(),
                referenced: referenced.contains(&digest),
                digest,
                pushed_at,
                last_pulled_at,
                image_status,
                last_archived_at,
            },
        )
        .collect()
}

/// Implements [`LifecycleStore`] for a backend whose pools are `$write` and `$read`.
macro_rules! impl_lifecycle_store {
    ($store:ty, $write:ident, $read:ident) => {
        #[async_trait::async_trait]
        impl $crate::lifecycle::LifecycleStore for $store {
            async fn get_lifecycle_policy(
                &self,
                name: &berth_core::RepositoryName,
            ) -> $crate::Result<Option<Option<$crate::lifecycle::LifecyclePolicyRecord>>> {
                let row: Option<(Option<String>, Option<i64>)> = sqlx::query_as(
                    "SELECT lifecycle_policy, lifecycle_evaluated_at FROM repositories WHERE name = $1",
                )
                .bind(name.as_str())
                .fetch_optional(&self.$read)
                .await?;
                Ok(row.map(|(text, evaluated_at)| {
                    text.map(|text| $crate::lifecycle::LifecyclePolicyRecord { text, evaluated_at })
                }))
            }

            async fn set_lifecycle_policy(
                &self,
                name: &berth_core::RepositoryName,
                text: Option<&str>,
            ) -> $crate::Result<bool> {
                let done = sqlx::query(
                    "UPDATE repositories SET lifecycle_policy = $1, lifecycle_evaluated_at = NULL WHERE name = $2",
                )
                .bind(text)
                .bind(name.as_str())
                .execute(&self.$write)
                .await?;
                Ok(done.rows_affected() > 0)
            }

            async fn mark_lifecycle_evaluated(
                &self,
                name: &berth_core::RepositoryName,
                at: i64,
            ) -> $crate::Result<()> {
                sqlx::query("UPDATE repositories SET lifecycle_evaluated_at = $1 WHERE name = $2")
                    .bind(at)
                    .bind(name.as_str())
                    .execute(&self.$write)
                    .await?;
                Ok(())
            }

            async fn lifecycle_repositories(&self) -> $crate::Result<Vec<berth_core::RepositoryName>> {
                let rows: Vec<(String,)> = sqlx::query_as(
                    "SELECT name FROM repositories WHERE lifecycle_policy IS NOT NULL ORDER BY name",
                )
                .fetch_all(&self.$read)
                .await?;
                rows.into_iter()
                    .map(|(name,)| {
                        name.parse().map_err(|_| {
                            $crate::StoreError::Database(format!("corrupt repository name: {name}"))
                        })
                    })
                    .collect()
            }

            async fn get_lifecycle_preview(
                &self,
                name: &berth_core::RepositoryName,
            ) -> $crate::Result<Option<Option<String>>> {
                let row: Option<(Option<String>,)> =
                    sqlx::query_as("SELECT lifecycle_preview FROM repositories WHERE name = $1")
                        .bind(name.as_str())
                        .fetch_optional(&self.$read)
                        .await?;
                Ok(row.map(|(text,)| text))
            }

            async fn set_lifecycle_preview(
                &self,
                name: &berth_core::RepositoryName,
                text: &str,
            ) -> $crate::Result<bool> {
                let done = sqlx::query("UPDATE repositories SET lifecycle_preview = $1 WHERE name = $2")
                    .bind(text)
                    .bind(name.as_str())
                    .execute(&self.$write)
                    .await?;
                Ok(done.rows_affected() > 0)
            }

            async fn lifecycle_images(
                &self,
                name: &berth_core::RepositoryName,
            ) -> $crate::Result<Vec<$crate::lifecycle::LifecycleImage>> {
                // One read transaction, so the three lists agree.
                let mut tx = self.$read.begin().await?;
                let id: Option<(i64,)> = sqlx::query_as("SELECT id FROM repositories WHERE name = $1")
                    .bind(name.as_str())
                    .fetch_optional(&mut *tx)
                    .await?;
                let Some((id,)) = id else {
                    return Ok(Vec::new());
                };
                let manifests: Vec<$crate::lifecycle::LifecycleRow> = sqlx::query_as(
                    "SELECT digest, pushed_at, last_pulled_at, image_status, last_archived_at
                     FROM manifests WHERE repository_id = $1",
                )
                .bind(id)
                .fetch_all(&mut *tx)
                .await?;
                let tags: Vec<(String, String)> = sqlx::query_as(
                    "SELECT manifest_digest, name FROM tags WHERE repository_id = $1 ORDER BY name",
                )
                .bind(id)
                .fetch_all(&mut *tx)
                .await?;
                let referenced: Vec<(String,)> = sqlx::query_as(
                    "SELECT DISTINCT child_digest FROM manifest_references
                     WHERE repository_id = $1 AND child_kind = 'manifest'",
                )
                .bind(id)
                .fetch_all(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok($crate::lifecycle::assemble_images(manifests, tags, referenced))
            }
        }
    };
}

pub(crate) use impl_lifecycle_store;
