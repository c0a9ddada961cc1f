//! Online garbage collection's view of the metadata: which blobs no manifest
//! references, and reclaiming one safely while pushes go on.
//!
//! Safety rests on one row: every path that makes a blob wanted (an upload
//! about to commit its bytes, a mount, a manifest push, a manifest or
//! repository deletion that leaves it unreferenced) first writes the blob's
//! `last_linked_at`, which locks the row. [`GcStore::collect_blob`] works only
//! while the blob is still unreferenced and untouched for the grace period,
//! re-checked under that lock: it first unlinks the blob from every
//! repository (committed), then deletes the row and removes the bytes before
//! committing. Whoever touches the row meanwhile waits, then finds it unlinked
//! or gone (and uploads the bytes again) or finds it kept. SQLite's single
//! writer gives the same order.

use async_trait::async_trait;
use berth_core::Digest;
use futures_util::future::BoxFuture;

use crate::Result;

/// Removes a blob's bytes; called by [`GcStore::collect_blob`] inside its transaction.
pub type DeleteBytes<'a> = &'a (dyn Fn(Digest) -> BoxFuture<'static, Result<()>> + Send + Sync);

#[async_trait]
pub trait GcStore: Send + Sync + 'static {
    /// Marks the blob wanted now, creating its row if needed (before its
    /// bytes are committed, so a collection cannot remove them underneath).
    async fn touch_blob(&self, digest: &Digest, size: u64) -> Result<()>;
    /// Blobs no manifest references and nothing touched since `cutoff` (ms),
    /// after `after` in digest order, at most `limit`, with their sizes.
    async fn gc_candidates(
        &self,
        cutoff: i64,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<(Digest, u64)>>;
    /// Reclaims one blob if it is still a candidate: its links go, then its
    /// row, with `delete_bytes` run before that commits (a failure keeps the
    /// row for the next pass). True if it was reclaimed.
    async fn collect_blob(
        &self,
        digest: &Digest,
        cutoff: i64,
        delete_bytes: DeleteBytes<'_>,
    ) -> Result<bool>;
    /// Whether a manifest that is not archived (in any repository)
    /// references the blob: such a blob stays in the hot store.
    async fn blob_in_active_use(&self, digest: &Digest) -> Result<bool>;
}

/// Implements [`GcStore`] for a backend whose pools are `$write` and `$read`.
macro_rules! impl_gc_store {
    ($store:ty, $write:ident, $read:ident) => {
        #[async_trait::async_trait]
        impl $crate::gc::GcStore for $store {
            async fn blob_in_active_use(&self, digest: &berth_core::Digest) -> $crate::Result<bool> {
                let found: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM (
                         SELECT 1 FROM manifest_references r
                         JOIN manifests m ON m.repository_id = r.repository_id AND m.digest = r.manifest_digest
                         WHERE r.child_digest = $1 AND r.child_kind = 'blob' AND m.image_status <> 'ARCHIVED'
                         LIMIT 1) AS used",
                )
                .bind(digest.to_string())
                .fetch_one(&self.$read)
                .await?;
                Ok(found > 0)
            }

            async fn touch_blob(&self, digest: &berth_core::Digest, size: u64) -> $crate::Result<()> {
                let now = $crate::now_millis();
                sqlx::query(
                    "INSERT INTO blobs (digest, size, created_at, last_linked_at) VALUES ($1, $2, $3, $3)
                     ON CONFLICT (digest) DO UPDATE SET last_linked_at = excluded.last_linked_at",
                )
                .bind(digest.to_string())
                .bind(size as i64)
                .bind(now)
                .execute(&self.$write)
                .await?;
                Ok(())
            }

            async fn gc_candidates(
                &self,
                cutoff: i64,
                after: Option<&str>,
                limit: u32,
            ) -> $crate::Result<Vec<(berth_core::Digest, u64)>> {
                let rows: Vec<(String, i64)> = sqlx::query_as(
                    "SELECT b.digest, b.size FROM blobs b
                     WHERE b.last_linked_at < $1 AND b.digest > $2
                       AND NOT EXISTS (SELECT 1 FROM manifest_references r
                                       WHERE r.child_digest = b.digest AND r.child_kind = 'blob')
                     ORDER BY b.digest LIMIT $3",
                )
                .bind(cutoff)
                .bind(after.unwrap_or(""))
                .bind(i64::from(limit))
                .fetch_all(&self.$read)
                .await?;
                rows.into_iter()
                    .map(|(digest, size)| Ok(($crate::sqlite::parse_digest(&digest)?, size as u64)))
                    .collect()
            }

            async fn collect_blob(
                &self,
                digest: &berth_core::Digest,
                cutoff: i64,
                delete_bytes: $crate::gc::DeleteBytes<'_>,
            ) -> $crate::Result<bool> {
                const STILL_GARBAGE: &str = "digest = $1 AND last_linked_at < $2
                    AND NOT EXISTS (SELECT 1 FROM manifest_references r
                                    WHERE r.child_digest = $1 AND r.child_kind = 'blob')";
                // First unlink it from every repository, committed on its own:
                // from then on nothing can reference it without uploading it
                // again. The no-op UPDATE takes the row's lock and checks the
                // condition on the row as it is then.
                let mut tx = self.begin_write().await?;
                let locked: Option<(String,)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "UPDATE blobs SET last_linked_at = last_linked_at WHERE {STILL_GARBAGE} RETURNING digest"
                )))
                .bind(digest.to_string())
                .bind(cutoff)
                .fetch_optional(&mut *tx)
                .await?;
                if locked.is_none() {
                    tx.rollback().await?;
                    return Ok(false);
                }
                sqlx::query("DELETE FROM repository_blobs WHERE digest = $1")
                    .bind(digest.to_string())
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                $crate::HotReads::changed(self);
                // Then the row and the bytes, the row locked (and the condition
                // checked again) while the bytes go; a crash in between leaves
                // an unlinked row for the next pass.
                let mut tx = self.begin_write().await?;
                let gone: Option<(String,)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "DELETE FROM blobs WHERE {STILL_GARBAGE} RETURNING digest"
                )))
                .bind(digest.to_string())
                .bind(cutoff)
                .fetch_optional(&mut *tx)
                .await?;
                if gone.is_none() {
                    // An upload wanted it meanwhile: it links it again itself.
                    tx.rollback().await?;
                    return Ok(false);
                }
                delete_bytes(digest.clone()).await?;
                tx.commit().await?;
                Ok(true)
            }
        }
    };
}

pub(crate) use impl_gc_store;
