//! Metadata in PostgreSQL, for several berth nodes sharing one database.
//!
//! The same tables as the SQLite backend, and the same statements: the
//! stores' SQL is written once (`impl_*_store!` in the modules beside this
//! one); this file holds the connection, the migrations and the dialect
//! hooks (row locks, creating a missing repository). Migrations run on
//! start; sqlx takes an advisory lock for them, so nodes starting together
//! migrate once.

use std::collections::BTreeSet;

use async_trait::async_trait;
use berth_core::{Digest, Reference, RepositoryName, Tag};
use bytes::Bytes;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Postgres, Transaction};

use crate::sqlite::{ImageRow, REPOSITORY_COLUMNS, RepositoryRow, image_from_row, parse_digest};
use crate::{
    DeleteManifestOutcome, DeleteRepositoryOutcome, ImageRecord, ImageStatusFilter, MetadataStore,
    NewEvent, NewManifest, PutManifestOutcome, Referrer, RepositoryRecord, Result, StoreError,
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
    /// The hot reads' cache; its listener holds one connection of the pool.
    cache: std::sync::Arc<crate::read_cache::ReadCache>,
}

impl crate::HotReads for PgStore {
    fn cache(&self) -> Option<&crate::read_cache::ReadCache> {
        Some(&self.cache)
    }
}

impl PgStore {
    /// Nothing to look up before the transaction: PostgreSQL's writers do not
    /// wait for each other across repositories (see `SqliteStore`'s).
    async fn missing_references(
        &self,
        _: &RepositoryName,
        _: &BTreeSet<String>,
        _: &BTreeSet<String>,
    ) -> Result<Option<PutManifestOutcome>> {
        Ok(None)
    }

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
        let schema: String = sqlx::query_scalar("SELECT current_schema()")
            .fetch_one(&pool)
            .await?;
        let cache = crate::read_cache::ReadCache::start(pool.clone(), schema);
        Ok(PgStore { pool, cache })
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
    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}

crate::access::impl_access_store!(PgStore, pool, pool);
crate::events::impl_event_store!(PgStore, pool, pool);
crate::gc::impl_gc_store!(
    PgStore,
    sqlx::Postgres,
    pool,
    pool,
    " FOR UPDATE OF b SKIP LOCKED"
);
crate::jobs::impl_job_store!(
    PgStore,
    pool,
    pool,
    "FOR UPDATE SKIP LOCKED",
    "SELECT json_array_elements_text(CAST($K AS json))"
);
crate::uploads::impl_upload_store!(PgStore, pool);
crate::links::impl_link_store!(PgStore, pool);
crate::manifests::impl_manifest_store!(PgStore, pool, pool);
crate::repositories::impl_repository_store!(PgStore, pool);
crate::quota::impl_quota_store!(PgStore, pool);
crate::lifecycle::impl_lifecycle_store!(PgStore, pool, pool);
crate::scans::impl_scan_store!(PgStore, pool, pool);
crate::promotions::impl_promotion_store!(PgStore, pool, pool);
crate::pull_through::impl_pull_through_store!(PgStore, pool, pool);
crate::secrets::impl_secret_store!(PgStore, pool, pool);
crate::builds::impl_build_store!(PgStore, pool, pool);
crate::templates::impl_template_store!(PgStore, pool, pool);
crate::console::impl_console_store!(PgStore, pool, pool);
crate::replication::impl_replication_store!(PgStore, pool, pool);
crate::signing::impl_signing_store!(PgStore, pool, pool);
crate::webhooks::impl_webhook_store!(PgStore, pool, pool);
crate::privatize::impl_privatize_store!(PgStore, pool, pool);
