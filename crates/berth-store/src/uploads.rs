//! Upload sessions: their recorded size, hash state and staged pieces, and
//! the step that turns a verified upload into a linked blob. Plain SQL both
//! databases accept (`$n` parameters, each first used in order), implemented
//! for both backends by [`impl_upload_store`]; the one difference, taking the
//! repository row before blob rows on PostgreSQL, is the store's
//! `share_repository` (a no-op on SQLite, whose writer is single).

use async_trait::async_trait;
use berth_core::{Digest, RepositoryName};

use crate::{Result, Upload};

#[async_trait]
pub trait UploadStore: Send + Sync + 'static {
    /// Opens an upload in its (existing) repository; `NotFound` if the
    /// repository is gone.
    async fn create_upload(&self, upload: &Upload) -> Result<()>;
    async fn get_upload(&self, repository: &RepositoryName, id: &str) -> Result<Option<Upload>>;
    /// Records a write that took the upload from `from_size` to `upload.size`;
    /// false if the upload is gone or moved on meanwhile.
    async fn advance_upload(&self, upload: &Upload, from_size: u64) -> Result<bool>;
    /// Records the verified blob, links it into the upload's repository and
    /// ends the upload, in one step; `NotFound` if the upload (and so its
    /// repository) is gone.
    async fn complete_upload(&self, upload: &Upload, digest: &Digest) -> Result<()>;
    async fn delete_upload(&self, id: &str) -> Result<bool>;
    /// Uploads last written before `cutoff_millis`.
    async fn stale_uploads(&self, cutoff_millis: i64) -> Result<Vec<String>>;
}

macro_rules! impl_upload_store {
    ($store:ty, $read:ident) => {
        #[async_trait::async_trait]
        impl $crate::uploads::UploadStore for $store {
            async fn create_upload(&self, upload: &$crate::Upload) -> $crate::Result<()> {
                let mut tx = self.begin_write().await?;
                let repository_id = Self::repository_id(&mut tx, &upload.repository)
                    .await?
                    .ok_or($crate::StoreError::NotFound)?;
                sqlx::query(
                    "INSERT INTO uploads (id, repository_id, size, hash_state, updated_at)
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(&upload.id)
                .bind(repository_id)
                .bind(upload.size as i64)
                .bind(&upload.hash_state)
                .bind(upload.updated_at)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn get_upload(
                &self,
                repository: &berth_core::RepositoryName,
                id: &str,
            ) -> $crate::Result<Option<$crate::Upload>> {
                let row: Option<(i64, Vec<u8>, i64, i64, String)> = sqlx::query_as(
                    "SELECT u.size, u.hash_state, u.last_part, u.updated_at, u.pieces FROM uploads u
                     JOIN repositories r ON r.id = u.repository_id
                     WHERE u.id = $1 AND r.name = $2",
                )
                .bind(id)
                .bind(repository.as_str())
                .fetch_optional(&self.$read)
                .await?;
                Ok(row.map(|(size, hash_state, last_part, updated_at, pieces)| $crate::Upload {
                    id: id.to_string(),
                    repository: repository.clone(),
                    size: size as u64,
                    hash_state,
                    last_part: last_part as u64,
                    updated_at,
                    pieces: $crate::split_pieces(&pieces),
                }))
            }

            async fn advance_upload(
                &self,
                upload: &$crate::Upload,
                from_size: u64,
            ) -> $crate::Result<bool> {
                let mut tx = self.begin_write().await?;
                let done = sqlx::query(
                    "UPDATE uploads SET size = $1, hash_state = $2, last_part = $3, updated_at = $4,
                         pieces = $5
                     WHERE id = $6 AND size = $7",
                )
                .bind(upload.size as i64)
                .bind(&upload.hash_state)
                .bind(upload.last_part as i64)
                .bind(upload.updated_at)
                .bind(upload.pieces.join(" "))
                .bind(&upload.id)
                .bind(from_size as i64)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(done.rows_affected() == 1)
            }

            async fn complete_upload(
                &self,
                upload: &$crate::Upload,
                digest: &berth_core::Digest,
            ) -> $crate::Result<()> {
                let mut tx = self.begin_write().await?;
                // The upload's own repository: gone with it if the repository
                // was deleted meanwhile, which then stays deleted.
                let repository_id: i64 =
                    sqlx::query_scalar("SELECT repository_id FROM uploads WHERE id = $1")
                        .bind(&upload.id)
                        .fetch_optional(&mut *tx)
                        .await?
                        .ok_or($crate::StoreError::NotFound)?;
                // Repository row before blob row, the order `put_manifest`
                // takes them in: the two cannot deadlock.
                Self::share_repository(&mut tx, repository_id).await?;
                let now = $crate::now_millis();
                sqlx::query(
                    "INSERT INTO blobs (digest, size, created_at, last_linked_at) VALUES ($1, $2, $3, $3)
                     ON CONFLICT (digest) DO UPDATE SET last_linked_at = excluded.last_linked_at",
                )
                .bind(digest.to_string())
                .bind(upload.size as i64)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "INSERT INTO repository_blobs (repository_id, digest, linked_at) VALUES ($1, $2, $3)
                     ON CONFLICT DO NOTHING",
                )
                .bind(repository_id)
                .bind(digest.to_string())
                .bind(now)
                .execute(&mut *tx)
                .await?;
                sqlx::query("DELETE FROM uploads WHERE id = $1")
                    .bind(&upload.id)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn delete_upload(&self, id: &str) -> $crate::Result<bool> {
                let mut tx = self.begin_write().await?;
                let done = sqlx::query("DELETE FROM uploads WHERE id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(done.rows_affected() > 0)
            }

            async fn stale_uploads(&self, cutoff_millis: i64) -> $crate::Result<Vec<String>> {
                Ok(
                    sqlx::query_scalar("SELECT id FROM uploads WHERE updated_at < $1")
                        .bind(cutoff_millis)
                        .fetch_all(&self.$read)
                        .await?,
                )
            }
        }
    };
}

pub(crate) use impl_upload_store;
