//! Where each image stands with each replication destination. Plain SQL
//! both databases accept ([`impl_replication_store`]).

use async_trait::async_trait;

use crate::Result;

#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct ReplicationStatus {
    pub repository: String,
    pub digest: String,
    pub region: String,
    pub registry_id: String,
    /// `IN_PROGRESS`, `COMPLETE` or `FAILED`.
    pub status: String,
    pub failure_code: Option<String>,
    pub updated_at: i64,
}

/// A replication backfill: the registry's existing images copied to one destination.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct Backfill {
    pub id: String,
    pub region: String,
    pub registry_id: String,
    /// `PREPARING`, `IN_PROGRESS`, `COMPLETE`, `FAILED`, `STOPPING` or `STOPPED`.
    pub status: String,
    pub failure_code: Option<String>,
    pub started_at: i64,
    pub ended_at: Option<i64>,
}

/// One image and tag a backfill copies.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct BackfillItem {
    pub repository: String,
    pub digest: String,
    /// `""` for an untagged image.
    pub tag: String,
    /// `PENDING`, `COMPLETE`, `FAILED` or `SKIPPED`.
    pub status: String,
    pub failure_code: Option<String>,
}

/// How far a backfill is: items by status, and the distinct failure codes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BackfillProgress {
    pub total: i64,
    pub complete: i64,
    pub failed: i64,
    pub pending: i64,
    pub failure_codes: Vec<String>,
}

/// Backfill states in which another may not start for the same region.
pub const BACKFILL_ACTIVE: [&str; 3] = ["PREPARING", "IN_PROGRESS", "STOPPING"];

#[async_trait]
pub trait ReplicationStore: Send + Sync + 'static {
    /// Records a new backfill unless one is active for its region: false then.
    /// Records a backfill and queues `job` (its preparation) in one
    /// transaction: false (and nothing done) while another backfill to
    /// that region is under way.
    async fn create_backfill(&self, b: &Backfill, job: &crate::NewJob<'_>) -> Result<bool>;
    async fn backfill(&self, id: &str) -> Result<Option<Backfill>>;
    /// Backfills under way or ended at or after `ended_since`, newest first,
    /// after the `(started_at, id)` position `after` in that order, at most `limit`.
    async fn backfills(
        &self,
        ended_since: i64,
        after: Option<(i64, &str)>,
        limit: u32,
    ) -> Result<Vec<Backfill>>;
    /// Moves a backfill from one of `from` to `to`: false if it was in none of them.
    async fn set_backfill_status(
        &self,
        id: &str,
        from: &[&str],
        to: &str,
        failure_code: Option<&str>,
        ended_at: Option<i64>,
    ) -> Result<bool>;
    /// Adds `PENDING` items (those already there stay as they are).
    async fn add_backfill_items(&self, id: &str, items: &[(String, String, String)]) -> Result<()>;
    /// Sets an item's outcome.
    async fn finish_backfill_item(&self, id: &str, item: &BackfillItem) -> Result<()>;
    /// Marks every `PENDING` item `SKIPPED`.
    async fn skip_backfill_items(&self, id: &str) -> Result<()>;
    async fn backfill_progress(&self, id: &str) -> Result<BackfillProgress>;
    /// Items with one of `statuses`, after `(repository, digest, tag)` `after`
    /// in that order, at most `limit`.
    async fn backfill_items(
        &self,
        id: &str,
        statuses: &[&str],
        after: Option<(&str, &str, &str)>,
        limit: u32,
    ) -> Result<Vec<BackfillItem>>;

    /// Sets an image's status with a destination; in the same transaction,
    /// records `events` and queues `job` (the copy that status awaits).
    async fn put_replication_status(
        &self,
        s: &ReplicationStatus,
        events: &[crate::NewEvent],
        job: Option<&crate::NewJob<'_>>,
    ) -> Result<()>;
    /// An image's statuses, by destination.
    async fn replication_statuses(
        &self,
        repository: &str,
        digest: &str,
    ) -> Result<Vec<ReplicationStatus>>;
}

macro_rules! impl_replication_store {
    ($store:ty, $write:ident, $read:ident) => {
        #[async_trait::async_trait]
        impl $crate::replication::ReplicationStore for $store {
            async fn put_replication_status(
                &self,
                s: &$crate::replication::ReplicationStatus,
                events: &[$crate::NewEvent],
                job: Option<&$crate::NewJob<'_>>,
            ) -> $crate::Result<()> {
                let mut tx = self.begin_write().await?;
                sqlx::query(
                    "INSERT INTO replication_status (repository, digest, region, registry_id, status, failure_code, updated_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7)
                     ON CONFLICT (repository, digest, region, registry_id) DO UPDATE
                     SET status = excluded.status, failure_code = excluded.failure_code, updated_at = excluded.updated_at",
                )
                .bind(&s.repository)
                .bind(&s.digest)
                .bind(&s.region)
                .bind(&s.registry_id)
                .bind(&s.status)
                .bind(&s.failure_code)
                .bind(s.updated_at)
                .execute(&mut *tx)
                .await?;
                $crate::events::insert_events!(tx, events);
                if let Some(job) = job {
                    $crate::jobs::insert_job!(&mut *tx, job, s.updated_at);
                }
                tx.commit().await?;
                Ok(())
            }

            async fn replication_statuses(
                &self,
                repository: &str,
                digest: &str,
            ) -> $crate::Result<Vec<$crate::replication::ReplicationStatus>> {
                Ok(sqlx::query_as(
                    "SELECT repository, digest, region, registry_id, status, failure_code, updated_at
                     FROM replication_status WHERE repository = $1 AND digest = $2 ORDER BY region, registry_id",
                )
                .bind(repository)
                .bind(digest)
                .fetch_all(&self.$read)
                .await?)
            }

            async fn create_backfill(
                &self,
                b: &$crate::replication::Backfill,
                job: &$crate::NewJob<'_>,
            ) -> $crate::Result<bool> {
                let mut tx = self.begin_write().await?;
                let done = sqlx::query(
                    "INSERT INTO replication_backfills (id, region, registry_id, status, failure_code, started_at, ended_at)
                     SELECT $1, $2, $3, $4, $5, $6, $7
                     WHERE NOT EXISTS (SELECT 1 FROM replication_backfills
                                       WHERE region = $2 AND status IN ($8, $9, $10))",
                )
                .bind(&b.id)
                .bind(&b.region)
                .bind(&b.registry_id)
                .bind(&b.status)
                .bind(&b.failure_code)
                .bind(b.started_at)
                .bind(b.ended_at)
                .bind($crate::replication::BACKFILL_ACTIVE[0])
                .bind($crate::replication::BACKFILL_ACTIVE[1])
                .bind($crate::replication::BACKFILL_ACTIVE[2])
                .execute(&mut *tx)
                .await?
                .rows_affected()
                    > 0;
                if done {
                    $crate::jobs::insert_job!(&mut *tx, job, b.started_at);
                }
                tx.commit().await?;
                Ok(done)
            }

            async fn backfill(&self, id: &str) -> $crate::Result<Option<$crate::replication::Backfill>> {
                Ok(sqlx::query_as(
                    "SELECT id, region, registry_id, status, failure_code, started_at, ended_at
                     FROM replication_backfills WHERE id = $1",
                )
                .bind(id)
                .fetch_optional(&self.$read)
                .await?)
            }

            async fn backfills(
                &self,
                ended_since: i64,
                after: Option<(i64, &str)>,
                limit: u32,
            ) -> $crate::Result<Vec<$crate::replication::Backfill>> {
                let (after_at, after_id) = after.unwrap_or((i64::MAX, ""));
                Ok(sqlx::query_as(
                    "SELECT id, region, registry_id, status, failure_code, started_at, ended_at
                     FROM replication_backfills
                     WHERE (ended_at IS NULL OR ended_at >= $1)
                       AND (started_at < $2 OR (started_at = $2 AND id > $3))
                     ORDER BY started_at DESC, id LIMIT $4",
                )
                .bind(ended_since)
                .bind(after_at)
                .bind(after_id)
                .bind(i64::from(limit))
                .fetch_all(&self.$read)
                .await?)
            }

            async fn set_backfill_status(
                &self,
                id: &str,
                from: &[&str],
                to: &str,
                failure_code: Option<&str>,
                ended_at: Option<i64>,
            ) -> $crate::Result<bool> {
                let mut done = 0;
                // One state at a time: each update is a compare-and-set.
                for state in from {
                    done += sqlx::query(
                        "UPDATE replication_backfills
                         SET status = $3, failure_code = COALESCE($4, failure_code), ended_at = COALESCE($5, ended_at)
                         WHERE id = $1 AND status = $2",
                    )
                    .bind(id)
                    .bind(state)
                    .bind(to)
                    .bind(failure_code)
                    .bind(ended_at)
                    .execute(&self.$write)
                    .await?
                    .rows_affected();
                    if done > 0 {
                        break;
                    }
                }
                Ok(done > 0)
            }

            async fn add_backfill_items(
                &self,
                id: &str,
                items: &[(String, String, String)],
            ) -> $crate::Result<()> {
                for chunk in items.chunks(200) {
                    let mut query = sqlx::QueryBuilder::new(
                        "INSERT INTO replication_backfill_items (backfill_id, repository, digest, tag, status) ",
                    );
                    query.push_values(chunk, |mut row, (repository, digest, tag)| {
                        row.push_bind(id)
                            .push_bind(repository)
                            .push_bind(digest)
                            .push_bind(tag)
                            .push_bind("PENDING");
                    });
                    query.push(" ON CONFLICT (backfill_id, repository, digest, tag) DO NOTHING");
                    query.build().execute(&self.$write).await?;
                }
                Ok(())
            }

            async fn finish_backfill_item(
                &self,
                id: &str,
                item: &$crate::replication::BackfillItem,
            ) -> $crate::Result<()> {
                sqlx::query(
                    "UPDATE replication_backfill_items SET status = $5, failure_code = $6
                     WHERE backfill_id = $1 AND repository = $2 AND digest = $3 AND tag = $4",
                )
                .bind(id)
                .bind(&item.repository)
                .bind(&item.digest)
                .bind(&item.tag)
                .bind(&item.status)
                .bind(&item.failure_code)
                .execute(&self.$write)
                .await?;
                Ok(())
            }

            async fn skip_backfill_items(&self, id: &str) -> $crate::Result<()> {
                sqlx::query(
                    "UPDATE replication_backfill_items SET status = 'SKIPPED'
                     WHERE backfill_id = $1 AND status = 'PENDING'",
                )
                .bind(id)
                .execute(&self.$write)
                .await?;
                Ok(())
            }

            async fn backfill_progress(&self, id: &str) -> $crate::Result<$crate::replication::BackfillProgress> {
                let counts: Vec<(String, i64)> = sqlx::query_as(
                    "SELECT status, COUNT(*) FROM replication_backfill_items WHERE backfill_id = $1 GROUP BY status",
                )
                .bind(id)
                .fetch_all(&self.$read)
                .await?;
                let codes: Vec<(String,)> = sqlx::query_as(
                    "SELECT DISTINCT failure_code FROM replication_backfill_items
                     WHERE backfill_id = $1 AND status = 'FAILED' AND failure_code IS NOT NULL
                     ORDER BY failure_code",
                )
                .bind(id)
                .fetch_all(&self.$read)
                .await?;
                let mut progress = $crate::replication::BackfillProgress {
                    failure_codes: codes.into_iter().map(|(c,)| c).collect(),
                    ..Default::default()
                };
                for (status, n) in counts {
                    match status.as_str() {
                        "COMPLETE" => progress.complete = n,
                        "FAILED" => progress.failed = n,
                        "PENDING" => progress.pending = n,
                        _ => {}
                    }
                    if status != "SKIPPED" {
                        progress.total += n;
                    }
                }
                Ok(progress)
            }

            async fn backfill_items(
                &self,
                id: &str,
                statuses: &[&str],
                after: Option<(&str, &str, &str)>,
                limit: u32,
            ) -> $crate::Result<Vec<$crate::replication::BackfillItem>> {
                if statuses.is_empty() {
                    return Ok(Vec::new());
                }
                let (repository, digest, tag) = after.unwrap_or(("", "", ""));
                let mut query = sqlx::QueryBuilder::new(
                    "SELECT repository, digest, tag, status, failure_code FROM replication_backfill_items WHERE backfill_id = ",
                );
                query.push_bind(id);
                query.push(" AND (repository, digest, tag) > (");
                query.push_bind(repository);
                query.push(", ");
                query.push_bind(digest);
                query.push(", ");
                query.push_bind(tag);
                query.push(") AND status IN (");
                let mut list = query.separated(", ");
                for status in statuses {
                    list.push_bind(*status);
                }
                query.push(") ORDER BY repository, digest, tag LIMIT ");
                query.push_bind(i64::from(limit));
                Ok(query.build_query_as().fetch_all(&self.$read).await?)
            }
        }
    };
}

pub(crate) use impl_replication_store;
