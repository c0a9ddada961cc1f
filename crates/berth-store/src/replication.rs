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

#[async_trait]
pub trait ReplicationStore: Send + Sync + 'static {
    async fn put_replication_status(&self, s: &ReplicationStatus) -> Result<()>;
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
            async fn put_replication_status(&self, s: &$crate::replication::ReplicationStatus) -> $crate::Result<()> {
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
                .execute(&self.$write)
                .await?;
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
        }
    };
}

pub(crate) use impl_replication_store;
