//! Metadata in PostgreSQL, for several berth nodes sharing one database.
//!
//! The same tables and statements as the SQLite backend, in PostgreSQL's
//! dialect. Migrations run on start; sqlx takes an advisory lock for them,
//! so nodes starting together migrate once.

use std::collections::BTreeSet;

use async_trait::async_trait;
use berth_core::{Digest, Reference, RepositoryName, Tag};
use bytes::Bytes;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Postgres, Transaction};

use crate::sqlite::{ImageRow, REPOSITORY_COLUMNS, RepositoryRow, image_from_row, parse_digest};
use crate::{
    DeleteManifestOutcome, DeleteRepositoryOutcome, ImageRecord, MetadataStore, NewEvent,
    NewManifest, PutManifestOutcome, Referrer, RepositoryRecord, Result, StoreError,
    StoredManifest, TagStatus, now_millis,
};

/// The SQL condition on manifest `m` for a tag status.
fn tag_status_condition(status: TagStatus) -> &'static str {
    match status {
        TagStatus::Tagged => {
            "EXISTS (SELECT 1 FROM tags x WHERE x.repository_id = m.repository_id AND x.manifest_digest = m.digest)"
        }
        TagStatus::Untagged => {
            "NOT EXISTS (SELECT 1 FROM tags x WHERE x.repository_id = m.repository_id AND x.manifest_digest = m.digest)"
        }
        TagStatus::Any => "TRUE",
    }
}

/// The tags of manifest `m`, newline-separated in order.
const TAGS_OF_M: &str = "(SELECT string_agg(x.name, E'\\n' ORDER BY x.name) FROM tags x
     WHERE x.repository_id = m.repository_id AND x.manifest_digest = m.digest)";

pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    /// A write transaction (see `SqliteStore::begin_write`).
    pub(crate) async fn begin_write(&self) -> Result<Transaction<'static, Postgres>> {
        Ok(self.pool.begin().await?)
    }

    /// Connects to `url` (`postgres://…`) and migrates the schema. A `schema`
    /// query parameter (berth's own) keeps berth's tables in that schema,
    /// created if needed, so one database can hold several registries.
    pub async fn connect(url: &str) -> Result<PgStore> {
        let (url, schema) = split_schema(url);
        let mut options: PgConnectOptions = url
            .parse()
            .map_err(|e: sqlx::Error| StoreError::Database(format!("invalid database URL: {e}")))?;
        if let Some(schema) = &schema {
            let admin = PgPoolOptions::new()
                .max_connections(1)
                .connect_with(options.clone())
                .await?;
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "CREATE SCHEMA IF NOT EXISTS \"{schema}\""
            )))
            .execute(&admin)
            .await?;
            admin.close().await;
            options = options.options([("search_path", schema.as_str())]);
        }
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .connect_with(options)
            .await?;
        sqlx::migrate!("migrations/postgres").run(&pool).await?;
        Ok(PgStore { pool })
    }

    async fn repository_id(
        tx: &mut Transaction<'_, Postgres>,
        name: &RepositoryName,
    ) -> Result<Option<i64>> {
        Ok(
            sqlx::query_scalar("SELECT id FROM repositories WHERE name = $1")
                .bind(name.as_str())
                .fetch_optional(&mut **tx)
                .await?,
        )
    }

    /// Serializes the writes that check-then-change a repository's manifests,
    /// tags and blob links (SQLite gets this from its single writer).
    async fn lock_repository(tx: &mut Transaction<'_, Postgres>, id: i64) -> Result<()> {
        sqlx::query("SELECT id FROM repositories WHERE id = $1 FOR UPDATE")
            .bind(id)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// Holds the repository row against deletion and against a manifest
    /// push (which takes it `FOR UPDATE`) until the transaction ends. Taken
    /// before any blob row, as `put_manifest` does.
    async fn share_repository(tx: &mut Transaction<'_, Postgres>, id: i64) -> Result<()> {
        sqlx::query("SELECT id FROM repositories WHERE id = $1 FOR KEY SHARE")
            .bind(id)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    async fn ensure_repository_id(
        tx: &mut Transaction<'_, Postgres>,
        name: &RepositoryName,
    ) -> Result<i64> {
        let created: Option<i64> = sqlx::query_scalar(
            "INSERT INTO repositories (name, created_at) VALUES ($1, $2)
             ON CONFLICT (name) DO NOTHING RETURNING id",
        )
        .bind(name.as_str())
        .bind(now_millis())
        .fetch_optional(&mut **tx)
        .await?;
        match created {
            Some(id) => Ok(id),
            None => Self::repository_id(tx, name)
                .await?
                .ok_or_else(|| StoreError::Database("repository vanished while created".into())),
        }
    }
}

/// `url` without berth's `schema=` parameter, and that parameter.
fn split_schema(url: &str) -> (String, Option<String>) {
    let Some((base, query)) = url.split_once('?') else {
        return (url.to_string(), None);
    };
    let mut schema = None;
    let rest: Vec<&str> = query
        .split('&')
        .filter(|pair| match pair.strip_prefix("schema=") {
            Some(name) => {
                schema = Some(name.to_string());
                false
            }
            None => true,
        })
        .collect();
    let url = if rest.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", rest.join("&"))
    };
    (
        url,
        schema
            .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')),
    )
}

#[async_trait]
impl MetadataStore for PgStore {
    async fn put_manifest(
        &self,
        repository: &RepositoryName,
        manifest: &NewManifest,
        tags: &[Tag],
        events: &[NewEvent],
    ) -> Result<PutManifestOutcome> {
        let mut tx = self.pool.begin().await?;
        let repository_id = Self::repository_id(&mut tx, repository)
            .await?
            .ok_or(StoreError::NotFound)?;
        Self::lock_repository(&mut tx, repository_id).await?;

        let blobs: BTreeSet<String> = manifest.blobs.iter().map(Digest::to_string).collect();
        let children: BTreeSet<String> = manifest.children.iter().map(Digest::to_string).collect();
        let mut missing_blobs = Vec::new();
        let now = now_millis();
        for digest in &blobs {
            // Marks the blob wanted (and locks its row) before looking, as
            // garbage collection expects (see `gc`).
            sqlx::query("UPDATE blobs SET last_linked_at = $1 WHERE digest = $2")
                .bind(now)
                .bind(digest)
                .execute(&mut *tx)
                .await?;
            let linked: Option<i64> = sqlx::query_scalar(
                "SELECT 1::BIGINT FROM repository_blobs WHERE repository_id = $1 AND digest = $2",
            )
            .bind(repository_id)
            .bind(digest)
            .fetch_optional(&mut *tx)
            .await?;
            if linked.is_none() {
                missing_blobs.push(parse_digest(digest)?);
            }
        }
        if !missing_blobs.is_empty() {
            return Ok(PutManifestOutcome::MissingBlobs(missing_blobs));
        }
        let mut missing_manifests = Vec::new();
        for digest in &children {
            let present: Option<i64> = sqlx::query_scalar(
                "SELECT 1::BIGINT FROM manifests WHERE repository_id = $1 AND digest = $2",
            )
            .bind(repository_id)
            .bind(digest)
            .fetch_optional(&mut *tx)
            .await?;
            if present.is_none() {
                missing_manifests.push(parse_digest(digest)?);
            }
        }
        if !missing_manifests.is_empty() {
            return Ok(PutManifestOutcome::MissingManifests(missing_manifests));
        }

        let digest = manifest.digest.to_string();
        let (mutability, exclusions): (String, Option<String>) = sqlx::query_as(
            "SELECT image_tag_mutability, tag_mutability_exclusions FROM repositories WHERE id = $1",
        )
        .bind(repository_id)
        .fetch_one(&mut *tx)
        .await?;
        let exclusions = crate::sqlite::exclusions_from_column(exclusions);
        {
            for tag in tags {
                if !berth_core::mutability::is_immutable(&mutability, &exclusions, tag.as_str()) {
                    continue;
                }
                let current: Option<String> = sqlx::query_scalar(
                    "SELECT manifest_digest FROM tags WHERE repository_id = $1 AND name = $2",
                )
                .bind(repository_id)
                .bind(tag.as_str())
                .fetch_optional(&mut *tx)
                .await?;
                if current.is_some_and(|c| c != digest) {
                    return Ok(PutManifestOutcome::TagImmutable(tag.clone()));
                }
            }
        }
        let now = now_millis();
        let inserted = sqlx::query(
            "INSERT INTO manifests (repository_id, digest, media_type, artifact_type, subject,
                                    size, pushed_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
        )
        .bind(repository_id)
        .bind(&digest)
        .bind(&manifest.media_type)
        .bind(&manifest.artifact_type)
        .bind(manifest.subject.as_ref().map(Digest::to_string))
        .bind(manifest.content.len() as i64)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if inserted {
            sqlx::query(
                "INSERT INTO manifest_contents (repository_id, digest, content, annotations)
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(repository_id)
            .bind(&digest)
            .bind(manifest.content.as_ref())
            .bind(&manifest.annotations)
            .execute(&mut *tx)
            .await?;
            let references = blobs
                .iter()
                .map(|d| (d, "blob"))
                .chain(children.iter().map(|d| (d, "manifest")));
            for (child, kind) in references {
                sqlx::query(
                    "INSERT INTO manifest_references (repository_id, manifest_digest, child_digest, child_kind)
                     VALUES ($1, $2, $3, $4)",
                )
                .bind(repository_id)
                .bind(&digest)
                .bind(child)
                .bind(kind)
                .execute(&mut *tx)
                .await?;
            }
        }
        for tag in tags {
            sqlx::query(
                "INSERT INTO tags (repository_id, name, manifest_digest, updated_at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (repository_id, name)
                 DO UPDATE SET manifest_digest = excluded.manifest_digest, updated_at = excluded.updated_at",
            )
            .bind(repository_id)
            .bind(tag.as_str())
            .bind(&digest)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        // The outbox: the events commit with the manifest, or neither does.
        crate::events::insert_events!(tx, events);
        tx.commit().await?;
        Ok(PutManifestOutcome::Stored)
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}

crate::access::impl_access_store!(PgStore, pool, pool);
crate::events::impl_event_store!(PgStore, pool, pool);
crate::gc::impl_gc_store!(PgStore, pool, pool);
crate::jobs::impl_job_store!(PgStore, pool, pool, "FOR UPDATE SKIP LOCKED");
crate::uploads::impl_upload_store!(PgStore, pool);
crate::links::impl_link_store!(PgStore, pool);
crate::manifests::impl_manifest_store!(PgStore, pool, pool);
crate::repositories::impl_repository_store!(PgStore, pool);
crate::quota::impl_quota_store!(PgStore, pool);
crate::lifecycle::impl_lifecycle_store!(PgStore, pool, pool);
