//! Repositories: their settings, resource tags and deletion. Plain SQL both
//! databases accept, implemented for both backends by [`impl_repository_store`]
//! (the statements resolve their types where the macro is used); the one
//! difference, how a missing repository is created, is the store's
//! `ensure_repository_id`.

use async_trait::async_trait;
use berth_core::RepositoryName;

use crate::{DeleteRepositoryOutcome, RepositoryRecord, Result};

#[async_trait]
pub trait RepositoryStore: Send + Sync + 'static {
    /// Creates the repository if it does not exist.
    async fn ensure_repository(&self, name: &RepositoryName) -> Result<()>;
    async fn repository_exists(&self, name: &RepositoryName) -> Result<bool>;
    /// Repository names after `last`, in lexical order, at most `limit`.
    async fn list_repositories(&self, last: Option<&str>, limit: u32) -> Result<Vec<String>>;
    /// Creates a repository with its settings; `None` if it already exists.
    async fn create_repository(
        &self,
        record: &RepositoryRecord,
    ) -> Result<Option<RepositoryRecord>>;
    async fn get_repository(&self, name: &RepositoryName) -> Result<Option<RepositoryRecord>>;
    /// Repositories after `last` in name order, at most `limit`.
    async fn list_repository_records(
        &self,
        last: Option<&str>,
        limit: u32,
    ) -> Result<Vec<RepositoryRecord>>;
    /// Deletes a repository and everything in it; without `force`, only if it holds no image.
    async fn delete_repository(
        &self,
        name: &RepositoryName,
        force: bool,
    ) -> Result<DeleteRepositoryOutcome>;
    /// Changes a repository's settings (those given; tag mutability with its
    /// exclusion filters); `None` if it does not exist.
    async fn update_repository_settings(
        &self,
        name: &RepositoryName,
        image_tag_mutability: Option<(&str, &[String])>,
        scan_on_push: Option<bool>,
    ) -> Result<Option<RepositoryRecord>>;
    /// Adds or overwrites resource tags, and removes the `remove` keys; false
    /// if the repository does not exist. Fails with `TooManyTags` past `limit`.
    async fn retag_repository(
        &self,
        name: &RepositoryName,
        set: &[(String, String)],
        remove: &[String],
        limit: usize,
    ) -> Result<bool>;
}

macro_rules! impl_repository_store {
    ($store:ty, $read:ident) => {
        #[async_trait::async_trait]
        impl $crate::repositories::RepositoryStore for $store {
            async fn ensure_repository(&self, name: &RepositoryName) -> Result<()> {
                let mut tx = self.begin_write().await?;
                Self::ensure_repository_id(&mut tx, name).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn repository_exists(&self, name: &RepositoryName) -> Result<bool> {
                let found: Option<i64> = sqlx::query_scalar("SELECT id FROM repositories WHERE name = $1")
                    .bind(name.as_str())
                    .fetch_optional(&self.$read)
                    .await?;
                Ok(found.is_some())
            }

            async fn list_repositories(&self, last: Option<&str>, limit: u32) -> Result<Vec<String>> {
                Ok(sqlx::query_scalar(
                    "SELECT name FROM repositories WHERE name > $1 ORDER BY name LIMIT $2",
                )
                .bind(last.unwrap_or(""))
                .bind(i64::from(limit))
                .fetch_all(&self.$read)
                .await?)
            }

            async fn create_repository(
                &self,
                record: &RepositoryRecord,
            ) -> Result<Option<RepositoryRecord>> {
                let mut tx = self.begin_write().await?;
                let id: Option<i64> = sqlx::query_scalar(
                    "INSERT INTO repositories (name, created_at, image_tag_mutability, scan_on_push, encryption_type, kms_key,
                                               tag_mutability_exclusions)
                     VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (name) DO NOTHING RETURNING id",
                )
                .bind(record.name.as_str())
                .bind(record.created_at)
                .bind(&record.image_tag_mutability)
                .bind(record.scan_on_push)
                .bind(&record.encryption_type)
                .bind(&record.kms_key)
                .bind(crate::sqlite::exclusions_to_column(
                    &record.tag_mutability_exclusions,
                ))
                .fetch_optional(&mut *tx)
                .await?;
                let Some(id) = id else {
                    return Ok(None);
                };
                for (key, value) in &record.tags {
                    sqlx::query(
                        "INSERT INTO repository_tags (repository_id, key, value) VALUES ($1, $2, $3)",
                    )
                    .bind(id)
                    .bind(key)
                    .bind(value)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(Some(record.clone()))
            }

            async fn get_repository(&self, name: &RepositoryName) -> Result<Option<RepositoryRecord>> {
                let row: Option<RepositoryRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {REPOSITORY_COLUMNS} FROM repositories WHERE name = $1"
                )))
                .bind(name.as_str())
                .fetch_optional(&self.$read)
                .await?;
                match row {
                    Some(row) => Ok(Some(self.repository_from_row(row).await?)),
                    None => Ok(None),
                }
            }

            async fn list_repository_records(
                &self,
                last: Option<&str>,
                limit: u32,
            ) -> Result<Vec<RepositoryRecord>> {
                let rows: Vec<RepositoryRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {REPOSITORY_COLUMNS} FROM repositories WHERE name > $1 ORDER BY name LIMIT $2"
                )))
                .bind(last.unwrap_or(""))
                .bind(i64::from(limit))
                .fetch_all(&self.$read)
                .await?;
                let mut records = Vec::with_capacity(rows.len());
                for row in rows {
                    records.push(self.repository_from_row(row).await?);
                }
                Ok(records)
            }

            async fn delete_repository(
                &self,
                name: &RepositoryName,
                force: bool,
            ) -> Result<DeleteRepositoryOutcome> {
                let Some(record) = self.get_repository(name).await? else {
                    return Ok(DeleteRepositoryOutcome::NotFound);
                };
                let mut tx = self.begin_write().await?;
                let Some(id) = Self::repository_id(&mut tx, name).await? else {
                    return Ok(DeleteRepositoryOutcome::NotFound);
                };
                if !force {
                    let images: i64 =
                        sqlx::query_scalar("SELECT COUNT(*) FROM manifests WHERE repository_id = $1")
                            .bind(id)
                            .fetch_one(&mut *tx)
                            .await?;
                    if images > 0 {
                        return Ok(DeleteRepositoryOutcome::NotEmpty);
                    }
                }
                // Its blobs get a grace period from now before garbage collection may take them.
                sqlx::query(
                    "UPDATE blobs SET last_linked_at = $1 WHERE digest IN
                       (SELECT digest FROM repository_blobs WHERE repository_id = $2)",
                )
                .bind(now_millis())
                .bind(id)
                .execute(&mut *tx)
                .await?;
                // Tags and references point at manifests; remove them first so the
                // cascade never meets a dangling row.
                for statement in [
                    "DELETE FROM tags WHERE repository_id = $1",
                    "DELETE FROM manifest_references WHERE repository_id = $1",
                    "DELETE FROM repositories WHERE id = $1",
                ] {
                    sqlx::query(statement).bind(id).execute(&mut *tx).await?;
                }
                for statement in [
                    "DELETE FROM image_scans WHERE repository = $1",
                    "DELETE FROM promotions WHERE source_repository = $1",
                ] {
                    sqlx::query(statement).bind(name.as_str()).execute(&mut *tx).await?;
                }
                tx.commit().await?;
                $crate::HotReads::changed(self);
                Ok(DeleteRepositoryOutcome::Deleted(record))
            }

            async fn update_repository_settings(
                &self,
                name: &RepositoryName,
                image_tag_mutability: Option<(&str, &[String])>,
                scan_on_push: Option<bool>,
            ) -> Result<Option<RepositoryRecord>> {
                let mut tx = self.begin_write().await?;
                let exists: Option<i64> = sqlx::query_scalar("SELECT id FROM repositories WHERE name = $1")
                    .bind(name.as_str())
                    .fetch_optional(&mut *tx)
                    .await?;
                if exists.is_none() {
                    return Ok(None);
                }
                if let Some((setting, exclusions)) = image_tag_mutability {
                    sqlx::query(
                        "UPDATE repositories SET image_tag_mutability = $1, tag_mutability_exclusions = $2
                         WHERE name = $3",
                    )
                    .bind(setting)
                    .bind(crate::sqlite::exclusions_to_column(exclusions))
                    .bind(name.as_str())
                    .execute(&mut *tx)
                    .await?;
                }
                if let Some(scan_on_push) = scan_on_push {
                    sqlx::query("UPDATE repositories SET scan_on_push = $1 WHERE name = $2")
                        .bind(scan_on_push)
                        .bind(name.as_str())
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                self.get_repository(name).await
            }

            async fn retag_repository(
                &self,
                name: &RepositoryName,
                set: &[(String, String)],
                remove: &[String],
                limit: usize,
            ) -> Result<bool> {
                let mut tx = self.begin_write().await?;
                let Some(id) = Self::repository_id(&mut tx, name).await? else {
                    return Ok(false);
                };
                for (key, value) in set {
                    sqlx::query(
                        "INSERT INTO repository_tags (repository_id, key, value) VALUES ($1, $2, $3)
                         ON CONFLICT (repository_id, key) DO UPDATE SET value = excluded.value",
                    )
                    .bind(id)
                    .bind(key)
                    .bind(value)
                    .execute(&mut *tx)
                    .await?;
                }
                for key in remove {
                    sqlx::query("DELETE FROM repository_tags WHERE repository_id = $1 AND key = $2")
                        .bind(id)
                        .bind(key)
                        .execute(&mut *tx)
                        .await?;
                }
                let count: i64 =
                    sqlx::query_scalar("SELECT COUNT(*) FROM repository_tags WHERE repository_id = $1")
                        .bind(id)
                        .fetch_one(&mut *tx)
                        .await?;
                if count as usize > limit {
                    return Err(StoreError::TooManyTags); // dropping `tx` rolls back
                }
                tx.commit().await?;
                Ok(true)
            }

        }

        impl $store {
            async fn repository_from_row(&self, row: RepositoryRow) -> Result<RepositoryRecord> {
                let (
                    id,
                    name,
                    created_at,
                    image_tag_mutability,
                    scan_on_push,
                    encryption_type,
                    kms_key,
                    exclusions,
                ) = row;
                let tags: Vec<(String, String)> = sqlx::query_as(
                    "SELECT key, value FROM repository_tags WHERE repository_id = $1 ORDER BY key",
                )
                .bind(id)
                .fetch_all(&self.$read)
                .await?;
                Ok(RepositoryRecord {
                    name: name
                        .parse()
                        .map_err(|_| StoreError::Database(format!("corrupt repository name: {name}")))?,
                    created_at,
                    image_tag_mutability,
                    tag_mutability_exclusions: crate::sqlite::exclusions_from_column(exclusions),
                    scan_on_push,
                    encryption_type,
                    kms_key,
                    tags,
                })
            }
        }

    };
}

pub(crate) use impl_repository_store;
