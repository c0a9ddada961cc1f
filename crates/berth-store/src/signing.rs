//! Where each image stands with each signing profile. Plain SQL both
//! databases accept ([`impl_signing_store`]).

use async_trait::async_trait;

use crate::Result;

#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct SigningStatus {
    pub repository: String,
    pub digest: String,
    pub profile_arn: String,
    /// `IN_PROGRESS`, `COMPLETE` or `FAILED`.
    pub status: String,
    pub failure_code: Option<String>,
    pub failure_reason: Option<String>,
    pub updated_at: i64,
}

#[async_trait]
pub trait SigningStore: Send + Sync + 'static {
    /// Sets an image's status with a profile; queues `job` (the signing
    /// that status awaits) in the same transaction.
    async fn put_signing_status(
        &self,
        s: &SigningStatus,
        job: Option<&crate::NewJob<'_>>,
    ) -> Result<()>;
    /// An image's statuses, by profile.
    async fn signing_statuses(&self, repository: &str, digest: &str) -> Result<Vec<SigningStatus>>;
}

macro_rules! impl_signing_store {
    ($store:ty, $write:ident, $read:ident) => {
        #[async_trait::async_trait]
        impl $crate::signing::SigningStore for $store {
            async fn put_signing_status(
                &self,
                s: &$crate::signing::SigningStatus,
                job: Option<&$crate::NewJob<'_>>,
            ) -> $crate::Result<()> {
                let mut tx = self.begin_write().await?;
                sqlx::query(
                    "INSERT INTO signing_status (repository, digest, profile_arn, status, failure_code, failure_reason, updated_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7)
                     ON CONFLICT (repository, digest, profile_arn) DO UPDATE
                     SET status = excluded.status, failure_code = excluded.failure_code,
                         failure_reason = excluded.failure_reason, updated_at = excluded.updated_at",
                )
                .bind(&s.repository)
                .bind(&s.digest)
                .bind(&s.profile_arn)
                .bind(&s.status)
                .bind(&s.failure_code)
                .bind(&s.failure_reason)
                .bind(s.updated_at)
                .execute(&mut *tx)
                .await?;
                if let Some(job) = job {
                    $crate::jobs::insert_job!(&mut *tx, job, s.updated_at);
                }
                tx.commit().await?;
                Ok(())
            }

            async fn signing_statuses(
                &self,
                repository: &str,
                digest: &str,
            ) -> $crate::Result<Vec<$crate::signing::SigningStatus>> {
                Ok(sqlx::query_as(
                    "SELECT repository, digest, profile_arn, status, failure_code, failure_reason, updated_at
                     FROM signing_status WHERE repository = $1 AND digest = $2 ORDER BY profile_arn",
                )
                .bind(repository)
                .bind(digest)
                .fetch_all(&self.$read)
                .await?)
            }
        }
    };
}

pub(crate) use impl_signing_store;
