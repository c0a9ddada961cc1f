//! Which repositories a blob belongs to: links made by uploads (see
//! `uploads.rs`) and mounts, removed by blob deletes. Plain SQL both
//! databases accept, implemented for both backends by [`impl_link_store`];
//! the row locks PostgreSQL needs (`lock_repository`, `share_repository`) are
//! no-ops on SQLite, whose writer is single.

use async_trait::async_trait;
use berth_core::{Digest, RepositoryName};

use crate::Result;

#[async_trait]
pub trait LinkStore: Send + Sync + 'static {
    /// The size of a blob linked to `repository`.
    async fn blob_size(&self, repository: &RepositoryName, digest: &Digest) -> Result<Option<u64>>;
    /// Links a blob of `from` into `repository` (which must exist); its size,
    /// or `None` if `from` has no such blob.
    async fn mount_blob(
        &self,
        repository: &RepositoryName,
        from: &RepositoryName,
        digest: &Digest,
    ) -> Result<Option<u64>>;
    /// Removes the blob's link from `repository`; false if there was none.
    async fn unlink_blob(&self, repository: &RepositoryName, digest: &Digest) -> Result<bool>;
    /// Whether a manifest of `repository` references the blob.
    async fn blob_referenced(&self, repository: &RepositoryName, digest: &Digest) -> Result<bool>;
}

/// The size of blob `$2` if it is linked to repository `$1` (by name).
pub(crate) const LINKED_BLOB_SIZE: &str = "SELECT b.size FROM repositories r
     JOIN repository_blobs rb ON rb.repository_id = r.id
     JOIN blobs b ON b.digest = rb.digest
     WHERE r.name = $1 AND rb.digest = $2";

macro_rules! impl_link_store {
    ($store:ty, $read:ident) => {
        #[async_trait::async_trait]
        impl $crate::links::LinkStore for $store {
            async fn blob_size(
                &self,
                repository: &berth_core::RepositoryName,
                digest: &berth_core::Digest,
            ) -> $crate::Result<Option<u64>> {
                let digest = digest.to_string();
                let cache = $crate::HotReads::cache(self);
                if let Some(hit) = cache.and_then(|c| c.blob_size(repository.as_str(), &digest)) {
                    return Ok(Some(hit));
                }
                let generation = cache.map(|c| c.generation());
                let hot = $crate::HotReads::hot(self, |c| {
                    use rusqlite::OptionalExtension;
                    c.prepare_cached($crate::links::LINKED_BLOB_SIZE)?
                        .query_row((repository.as_str(), digest.as_str()), |r| r.get(0))
                        .optional()
                });
                let size: Option<i64> = match hot {
                    Some(size) => size?,
                    None => sqlx::query_scalar($crate::links::LINKED_BLOB_SIZE)
                        .bind(repository.as_str())
                        .bind(&digest)
                        .fetch_optional(&self.$read)
                        .await?,
                };
                let size = size.map(|s| s as u64);
                if let (Some(cache), Some(generation), Some(size)) = (cache, generation, size) {
                    cache.keep_blob_size(generation, repository.as_str(), &digest, size);
                }
                Ok(size)
            }

            async fn mount_blob(
                &self,
                repository: &berth_core::RepositoryName,
                from: &berth_core::RepositoryName,
                digest: &berth_core::Digest,
            ) -> $crate::Result<Option<u64>> {
                let mut tx = self.begin_write().await?;
                // Repository row before blob row, as `put_manifest` takes them.
                let repository_id = Self::repository_id(&mut tx, repository)
                    .await?
                    .ok_or($crate::StoreError::NotFound)?;
                Self::share_repository(&mut tx, repository_id).await?;
                // Marks the blob wanted (and locks its row) before looking:
                // garbage collection either reclaimed it already or now
                // leaves it alone.
                sqlx::query("UPDATE blobs SET last_linked_at = $1 WHERE digest = $2")
                    .bind($crate::now_millis())
                    .bind(digest.to_string())
                    .execute(&mut *tx)
                    .await?;
                let size: Option<i64> = sqlx::query_scalar(
                    $crate::links::LINKED_BLOB_SIZE,
                )
                .bind(from.as_str())
                .bind(digest.to_string())
                .fetch_optional(&mut *tx)
                .await?;
                let Some(size) = size else {
                    return Ok(None);
                };
                sqlx::query(
                    "INSERT INTO repository_blobs (repository_id, digest, linked_at) VALUES ($1, $2, $3)
                     ON CONFLICT DO NOTHING",
                )
                .bind(repository_id)
                .bind(digest.to_string())
                .bind($crate::now_millis())
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(Some(size as u64))
            }

            async fn unlink_blob(
                &self,
                repository: &berth_core::RepositoryName,
                digest: &berth_core::Digest,
            ) -> $crate::Result<bool> {
                let mut tx = self.begin_write().await?;
                let Some(repository_id) = Self::repository_id(&mut tx, repository).await? else {
                    return Ok(false);
                };
                Self::lock_repository(&mut tx, repository_id).await?;
                let done = sqlx::query(
                    "DELETE FROM repository_blobs WHERE repository_id = $1 AND digest = $2",
                )
                .bind(repository_id)
                .bind(digest.to_string())
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                $crate::HotReads::changed(self);
                Ok(done.rows_affected() > 0)
            }

            async fn blob_referenced(
                &self,
                repository: &berth_core::RepositoryName,
                digest: &berth_core::Digest,
            ) -> $crate::Result<bool> {
                let found: Option<i64> = sqlx::query_scalar(
                    "SELECT CAST(1 AS BIGINT) FROM manifest_references mr
                     JOIN repositories r ON r.id = mr.repository_id
                     WHERE r.name = $1 AND mr.child_digest = $2 AND mr.child_kind = 'blob' LIMIT 1",
                )
                .bind(repository.as_str())
                .bind(digest.to_string())
                .fetch_optional(&self.$read)
                .await?;
                Ok(found.is_some())
            }
        }
    };
}

pub(crate) use impl_link_store;
