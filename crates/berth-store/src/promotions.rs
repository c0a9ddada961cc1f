//! Scan-gated promotions: for each image and promotion rule, the latest
//! decision (approved into the destination until it expires, rejected with
//! the reason, expired, revoked). Plain SQL both databases accept,
//! implemented for both backends by [`impl_promotion_store`].

use async_trait::async_trait;

use crate::{NewEvent, Result};

#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct PromotionRecord {
    pub source_repository: String,
    pub digest: String,
    pub rule: String,
    pub destination: String,
    /// `APPROVED`, `REJECTED`, `FAILED`, `EXPIRED` or `REVOKED`.
    pub status: String,
    pub reason: String,
    /// The tags it was approved with (JSON array).
    pub tags: String,
    /// Milliseconds.
    pub decided_at: i64,
    /// When an approved image leaves the destination.
    pub expires_at: Option<i64>,
}

#[async_trait]
pub trait PromotionStore: Send + Sync + 'static {
    /// Records a decision with the events it produces (both commit or neither).
    async fn put_promotion(&self, record: &PromotionRecord, events: &[NewEvent]) -> Result<()>;
    async fn promotion(
        &self,
        source_repository: &str,
        digest: &str,
        rule: &str,
    ) -> Result<Option<PromotionRecord>>;
    /// Decisions about images of `source_repository` (all when `None`), newest first.
    async fn promotions(
        &self,
        source_repository: Option<&str>,
        limit: u32,
    ) -> Result<Vec<PromotionRecord>>;
    /// Approved images whose lifetime ended by `now`.
    async fn expired_promotions(&self, now: i64, limit: u32) -> Result<Vec<PromotionRecord>>;
}

pub(crate) const PROMOTION_COLUMNS: &str = "source_repository, digest, rule, destination, status, \
     reason, tags, decided_at, expires_at";

macro_rules! impl_promotion_store {
    ($store:ty, $write:ident, $read:ident) => {
        #[async_trait::async_trait]
        impl $crate::promotions::PromotionStore for $store {
            async fn put_promotion(
                &self,
                record: &$crate::promotions::PromotionRecord,
                events: &[$crate::NewEvent],
            ) -> $crate::Result<()> {
                let mut tx = self.$write.begin().await?;
                let sql = format!(
                    "INSERT INTO promotions ({}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                     ON CONFLICT (source_repository, digest, rule) DO UPDATE SET
                       destination = excluded.destination, status = excluded.status,
                       reason = excluded.reason, tags = excluded.tags,
                       decided_at = excluded.decided_at, expires_at = excluded.expires_at",
                    $crate::promotions::PROMOTION_COLUMNS
                );
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(&record.source_repository)
                    .bind(&record.digest)
                    .bind(&record.rule)
                    .bind(&record.destination)
                    .bind(&record.status)
                    .bind(&record.reason)
                    .bind(&record.tags)
                    .bind(record.decided_at)
                    .bind(record.expires_at)
                    .execute(&mut *tx)
                    .await?;
                $crate::events::insert_events!(tx, events);
                tx.commit().await?;
                Ok(())
            }

            async fn promotion(
                &self,
                source_repository: &str,
                digest: &str,
                rule: &str,
            ) -> $crate::Result<Option<$crate::promotions::PromotionRecord>> {
                let sql = format!(
                    "SELECT {} FROM promotions WHERE source_repository = $1 AND digest = $2 AND rule = $3",
                    $crate::promotions::PROMOTION_COLUMNS
                );
                Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .bind(source_repository)
                    .bind(digest)
                    .bind(rule)
                    .fetch_optional(&self.$read)
                    .await?)
            }

            async fn promotions(
                &self,
                source_repository: Option<&str>,
                limit: u32,
            ) -> $crate::Result<Vec<$crate::promotions::PromotionRecord>> {
                let sql = format!(
                    "SELECT {} FROM promotions WHERE ($1 IS NULL OR source_repository = $1)
                     ORDER BY decided_at DESC LIMIT $2",
                    $crate::promotions::PROMOTION_COLUMNS
                );
                Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .bind(source_repository)
                    .bind(i64::from(limit))
                    .fetch_all(&self.$read)
                    .await?)
            }

            async fn expired_promotions(
                &self,
                now: i64,
                limit: u32,
            ) -> $crate::Result<Vec<$crate::promotions::PromotionRecord>> {
                let sql = format!(
                    "SELECT {} FROM promotions WHERE status = 'APPROVED' AND expires_at <= $1
                     ORDER BY expires_at LIMIT $2",
                    $crate::promotions::PROMOTION_COLUMNS
                );
                Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .bind(now)
                    .bind(i64::from(limit))
                    .fetch_all(&self.$read)
                    .await?)
            }
        }
    };
}

pub(crate) use impl_promotion_store;
