//! `berth privatize` copies, one row each: what was asked, what became of
//! it. Plain SQL both databases accept ([`impl_privatize_store`]).

use async_trait::async_trait;

use crate::Result;

#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct Privatization {
    pub id: String,
    /// The source reference as given (`quay.io/biocontainers/bcftools:1.16`).
    pub source: String,
    pub destination: String,
    pub tag: Option<String>,
    /// `QUEUED`, `RUNNING`, `COPIED`, `SKIPPED` or `FAILED`.
    pub status: String,
    pub digest: Option<String>,
    pub size: Option<i64>,
    pub reason: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[async_trait]
pub trait PrivatizeStore: Send + Sync + 'static {
    async fn put_privatization(&self, p: &Privatization) -> Result<()>;
    async fn privatization(&self, id: &str) -> Result<Option<Privatization>>;
}

pub(crate) const PRIVATIZE_COLUMNS: &str =
    "id, source, destination, tag, status, digest, size, reason, created_at, updated_at";

macro_rules! impl_privatize_store {
    ($store:ty, $write:ident, $read:ident) => {
        #[async_trait::async_trait]
        impl $crate::privatize::PrivatizeStore for $store {
            async fn put_privatization(&self, p: &$crate::privatize::Privatization) -> $crate::Result<()> {
                let sql = format!(
                    "INSERT INTO privatizations ({}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
                     ON CONFLICT (id) DO UPDATE SET status = excluded.status, digest = excluded.digest,
                       size = excluded.size, reason = excluded.reason, updated_at = excluded.updated_at",
                    $crate::privatize::PRIVATIZE_COLUMNS
                );
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(&p.id)
                    .bind(&p.source)
                    .bind(&p.destination)
                    .bind(&p.tag)
                    .bind(&p.status)
                    .bind(&p.digest)
                    .bind(p.size)
                    .bind(&p.reason)
                    .bind(p.created_at)
                    .bind(p.updated_at)
                    .execute(&self.$write)
                    .await?;
                Ok(())
            }

            async fn privatization(&self, id: &str) -> $crate::Result<Option<$crate::privatize::Privatization>> {
                let sql = format!(
                    "SELECT {} FROM privatizations WHERE id = $1",
                    $crate::privatize::PRIVATIZE_COLUMNS
                );
                Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .bind(id)
                    .fetch_optional(&self.$read)
                    .await?)
            }
        }
    };
}

pub(crate) use impl_privatize_store;
