//! Online garbage collection's view of the metadata: which blobs no manifest
//! references, and reclaiming them safely while pushes go on.
//!
//! Safety rests on one row: every path that makes a blob wanted (an upload
//! about to commit its bytes, a mount, a manifest push, a manifest or
//! repository deletion that leaves it unreferenced) first writes the blob's
//! `last_linked_at`, which locks the row. [`GcStore::collect_blobs`] works only
//! on blobs still unreferenced and untouched for the grace period, re-checked
//! under that lock: it first unlinks them from every repository (committed),
//! then deletes their rows and removes their bytes before committing. Whoever
//! touches a row meanwhile waits, then finds it unlinked or gone (and uploads
//! the bytes again) or finds it kept. SQLite's single writer gives the same
//! order. A batch is taken in two transactions, not two per blob: under a
//! sustained push load the writers leave a collection few turns, and one
//! blob per turn could not keep up with the garbage they make.

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
    /// Reclaims those of `digests` that are still candidates: their links
    /// go, then their rows, with `delete_bytes` run for each before that
    /// commits (a failure keeps every row of the batch for the next pass).
    /// Rows someone holds locked (PostgreSQL) are left for the next pass
    /// rather than waited for. Returns the digests reclaimed.
    async fn collect_blobs(
        &self,
        digests: &[Digest],
        cutoff: i64,
        delete_bytes: DeleteBytes<'_>,
    ) -> Result<Vec<Digest>>;
    /// Whether a manifest that is not archived (in any repository)
    /// references the blob: such a blob stays in the hot store.
    async fn blob_in_active_use(&self, digest: &Digest) -> Result<bool>;
}

/// Byte deletions a collection runs at once.
pub(crate) const DELETES_AT_ONCE: usize = 16;

/// `$n, $n+1, …`: `count` numbered placeholders from `first`, for an `IN` list.
pub(crate) fn placeholders(first: usize, count: usize) -> String {
    (first..first + count)
        .map(|n| format!("${n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Implements [`GcStore`] for a backend whose pools are `$write` and `$read`;
/// `$lock` ends a `SELECT` that must lock the rows it returns (empty on
/// SQLite, whose write transaction holds the whole database).
macro_rules! impl_gc_store {
    ($store:ty, $db:ty, $write:ident, $read:ident, $lock:literal) => {
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

            async fn collect_blobs(
                &self,
                digests: &[berth_core::Digest],
                cutoff: i64,
                delete_bytes: $crate::gc::DeleteBytes<'_>,
            ) -> $crate::Result<Vec<berth_core::Digest>> {
                use futures_util::{StreamExt as _, TryStreamExt as _};
                /// The batch's rows still garbage, locked (`$1` is the cutoff).
                fn still_garbage(count: usize) -> String {
                    format!(
                        "SELECT b.digest FROM blobs b
                         WHERE b.digest IN ({}) AND b.last_linked_at < $1
                           AND NOT EXISTS (SELECT 1 FROM manifest_references r
                                           WHERE r.child_digest = b.digest AND r.child_kind = 'blob')
                         ORDER BY b.digest{}",
                        $crate::gc::placeholders(2, count),
                        $lock
                    )
                }
                async fn lock_still_garbage(
                    tx: &mut sqlx::Transaction<'static, $db>,
                    digests: &[String],
                    cutoff: i64,
                ) -> $crate::Result<Vec<String>> {
                    let sql = still_garbage(digests.len());
                    let mut query = sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).bind(cutoff);
                    for digest in digests {
                        query = query.bind(digest);
                    }
                    Ok(query.fetch_all(&mut **tx).await?)
                }
                fn delete_rows(table: &str, count: usize) -> String {
                    format!(
                        "DELETE FROM {table} WHERE digest IN ({})",
                        $crate::gc::placeholders(1, count)
                    )
                }
                async fn delete_all(
                    tx: &mut sqlx::Transaction<'static, $db>,
                    table: &str,
                    digests: &[String],
                ) -> $crate::Result<()> {
                    let sql = delete_rows(table, digests.len());
                    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
                    for digest in digests {
                        query = query.bind(digest);
                    }
                    query.execute(&mut **tx).await?;
                    Ok(())
                }

                if digests.is_empty() {
                    return Ok(Vec::new());
                }
                let digests: Vec<String> = digests.iter().map(ToString::to_string).collect();
                // First unlink them from every repository, committed on its
                // own: from then on nothing can reference them without
                // uploading them again.
                let mut tx = self.begin_write().await?;
                let unlinked = lock_still_garbage(&mut tx, &digests, cutoff).await?;
                if unlinked.is_empty() {
                    tx.rollback().await?;
                    return Ok(Vec::new());
                }
                delete_all(&mut tx, "repository_blobs", &unlinked).await?;
                tx.commit().await?;
                $crate::HotReads::changed(self);
                // Then the rows and the bytes, the rows locked (and the
                // condition checked again) while the bytes go; a crash in
                // between leaves unlinked rows for the next pass.
                let mut tx = self.begin_write().await?;
                let gone = lock_still_garbage(&mut tx, &unlinked, cutoff).await?;
                if gone.is_empty() {
                    // Uploads wanted them meanwhile: they link them again themselves.
                    tx.rollback().await?;
                    return Ok(Vec::new());
                }
                delete_all(&mut tx, "blobs", &gone).await?;
                let gone = gone
                    .iter()
                    .map(|digest| $crate::sqlite::parse_digest(digest))
                    .collect::<$crate::Result<Vec<_>>>()?;
                futures_util::stream::iter(gone.iter().cloned().map(delete_bytes))
                    .buffer_unordered($crate::gc::DELETES_AT_ONCE)
                    .try_collect::<()>()
                    .await?;
                tx.commit().await?;
                Ok(gone)
            }
        }
    };
}

pub(crate) use impl_gc_store;

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use futures_util::FutureExt as _;

    use super::*;
    use crate::{SqliteStore, StoreError, now_millis};

    fn digest(n: u8) -> Digest {
        format!("sha256:{n:064x}").parse().unwrap()
    }

    async fn candidates(store: &SqliteStore, cutoff: i64) -> Vec<Digest> {
        let found = store.gc_candidates(cutoff, None, 100).await.unwrap();
        found.into_iter().map(|(d, _)| d).collect()
    }

    #[tokio::test]
    async fn a_batch_reclaims_its_garbage_keeps_the_rest_and_survives_a_failed_delete() {
        let (_dir, store) = crate::sqlite::tests::temp_store().await;
        for n in 1..=4 {
            store.touch_blob(&digest(n), 10).await.unwrap();
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        let cutoff = now_millis();
        // Touched after the cutoff: wanted again, so kept.
        store.touch_blob(&digest(4), 10).await.unwrap();
        let batch: Vec<Digest> = (1..=4).map(digest).collect();

        // One byte deletion fails: nothing of the batch is forgotten.
        let failing = |d: Digest| {
            async move {
                if d == digest(2) {
                    Err(StoreError::Io(std::io::Error::other("disk gone")))
                } else {
                    Ok(())
                }
            }
            .boxed()
        };
        assert!(store.collect_blobs(&batch, cutoff, &failing).await.is_err());
        assert_eq!(candidates(&store, cutoff).await, batch[..3]);

        let deleted = Mutex::new(Vec::new());
        let recording = |d: Digest| {
            deleted.lock().unwrap().push(d);
            async { Ok(()) }.boxed()
        };
        let reclaimed = store
            .collect_blobs(&batch, cutoff, &recording)
            .await
            .unwrap();
        assert_eq!(reclaimed, batch[..3]);
        let mut deleted = deleted.lock().unwrap().clone();
        deleted.sort_by_key(ToString::to_string);
        assert_eq!(deleted, batch[..3]);
        assert!(candidates(&store, cutoff).await.is_empty());
        assert_eq!(candidates(&store, now_millis() + 1).await, [digest(4)]);
        // Nothing left to take: an empty answer, no error.
        assert!(
            store
                .collect_blobs(&batch, cutoff, &recording)
                .await
                .unwrap()
                .is_empty()
        );
    }
}
