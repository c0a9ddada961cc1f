//! The counts quotas are checked against. Plain SQL both databases accept,
//! implemented for both backends by [`impl_quota_store`].

use async_trait::async_trait;
use berth_core::{Digest, RepositoryName};

use crate::Result;

#[async_trait]
pub trait QuotaStore: Send + Sync + 'static {
    async fn repository_count(&self) -> Result<u64>;
    /// Images (manifests) in the repository; 0 if it does not exist.
    async fn image_count(&self, name: &RepositoryName) -> Result<u64>;
    async fn has_image(&self, name: &RepositoryName, digest: &Digest) -> Result<bool>;
}

macro_rules! impl_quota_store {
    ($store:ty, $read:ident) => {
        #[async_trait::async_trait]
        impl $crate::quota::QuotaStore for $store {
            async fn repository_count(&self) -> $crate::Result<u64> {
                let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM repositories")
                    .fetch_one(&self.$read)
                    .await?;
                Ok(n as u64)
            }

            async fn image_count(&self, name: &berth_core::RepositoryName) -> $crate::Result<u64> {
                let (n,): (i64,) = sqlx::query_as(
                    "SELECT COUNT(*) FROM manifests
                     WHERE repository_id = (SELECT id FROM repositories WHERE name = $1)",
                )
                .bind(name.as_str())
                .fetch_one(&self.$read)
                .await?;
                Ok(n as u64)
            }

            async fn has_image(
                &self,
                name: &berth_core::RepositoryName,
                digest: &berth_core::Digest,
            ) -> $crate::Result<bool> {
                let found: Option<(String,)> = sqlx::query_as(
                    "SELECT m.digest FROM manifests m JOIN repositories r ON r.id = m.repository_id
                     WHERE r.name = $1 AND m.digest = $2",
                )
                .bind(name.as_str())
                .bind(digest.to_string())
                .fetch_optional(&self.$read)
                .await?;
                Ok(found.is_some())
            }
        }
    };
}

pub(crate) use impl_quota_store;
