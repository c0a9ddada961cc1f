//! Server-side image builds, one row each: what was asked (target, source
//! bundle digest, options), who asked, what became of it, and its log.
//! Plain SQL both databases accept ([`impl_build_store`]).

use async_trait::async_trait;

use crate::{NewEvent, NewJob, Result};

#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct Build {
    pub id: String,
    pub repository: String,
    pub tag: String,
    /// `sha256:…` of the source bundle.
    pub source_digest: String,
    pub source_size: i64,
    /// Digest of the source and every option that changes the result: a
    /// build whose key matches the last successful one is skipped.
    pub build_key: String,
    /// Build arguments, target stage, platform (JSON object text).
    pub options: String,
    /// `QUEUED`, `RUNNING`, `SUCCEEDED`, `SKIPPED` or `FAILED`.
    pub status: String,
    pub reason: Option<String>,
    pub image_digest: Option<String>,
    /// The ARN of the caller who started it.
    pub requested_by: String,
    /// The caller's access key: the build pulls and pushes as the caller.
    pub access_key_id: String,
    /// When temporary credentials stop working (Unix seconds).
    pub credential_expires_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[async_trait]
pub trait BuildStore: Send + Sync + 'static {
    /// Records a new build and queues its job, in one transaction.
    async fn queue_build(&self, build: &Build, job: &NewJob<'_>) -> Result<()>;
    /// Records a build that needs no job (skipped), with its event.
    async fn insert_build(&self, build: &Build, events: &[NewEvent]) -> Result<()>;
    /// Moves a build to its new state (status, reason, image digest), with its events.
    async fn update_build(&self, build: &Build, events: &[NewEvent]) -> Result<()>;
    async fn build(&self, id: &str) -> Result<Option<Build>>;
    /// Builds of `repository` (all when `None`), newest first, at most `limit`,
    /// older than `before` (created_at, id) when given.
    async fn builds(
        &self,
        repository: Option<&str>,
        before: Option<(i64, &str)>,
        limit: u32,
    ) -> Result<Vec<Build>>;
    /// The newest successful build of `repository:tag` with `build_key`.
    async fn last_built(
        &self,
        repository: &str,
        tag: &str,
        build_key: &str,
    ) -> Result<Option<Build>>;
    /// Adds `text` to a build's log, keeping at most its last `keep` bytes.
    async fn append_build_log(&self, id: &str, text: &str, keep: usize) -> Result<()>;
    /// A build's whole log.
    async fn build_log(&self, id: &str) -> Result<Option<String>>;
}

pub(crate) const BUILD_COLUMNS: &str = "id, repository, tag, source_digest, source_size, build_key, \
     options, status, reason, image_digest, requested_by, access_key_id, credential_expires_at, \
     created_at, updated_at";

/// Inserts build `b` in transaction `tx`, in both dialects.
macro_rules! insert_build_row {
    ($tx:expr, $b:expr) => {
        let b: &$crate::builds::Build = $b;
        let sql = format!(
            "INSERT INTO builds ({}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
            $crate::builds::BUILD_COLUMNS
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(&b.id)
            .bind(&b.repository)
            .bind(&b.tag)
            .bind(&b.source_digest)
            .bind(b.source_size)
            .bind(&b.build_key)
            .bind(&b.options)
            .bind(&b.status)
            .bind(&b.reason)
            .bind(&b.image_digest)
            .bind(&b.requested_by)
            .bind(&b.access_key_id)
            .bind(b.credential_expires_at)
            .bind(b.created_at)
            .bind(b.updated_at)
            .execute(&mut *$tx)
            .await?;
    };
}

pub(crate) use insert_build_row;

macro_rules! impl_build_store {
    ($store:ty, $write:ident, $read:ident) => {
        #[async_trait::async_trait]
        impl $crate::builds::BuildStore for $store {
            async fn queue_build(
                &self,
                build: &$crate::builds::Build,
                job: &$crate::NewJob<'_>,
            ) -> $crate::Result<()> {
                let mut tx = self.begin_write().await?;
                $crate::builds::insert_build_row!(tx, build);
                $crate::jobs::insert_job!(&mut *tx, job, build.created_at);
                tx.commit().await?;
                Ok(())
            }

            async fn insert_build(
                &self,
                build: &$crate::builds::Build,
                events: &[$crate::NewEvent],
            ) -> $crate::Result<()> {
                let mut tx = self.begin_write().await?;
                $crate::builds::insert_build_row!(tx, build);
                $crate::events::insert_events!(tx, events);
                tx.commit().await?;
                Ok(())
            }

            async fn update_build(
                &self,
                b: &$crate::builds::Build,
                events: &[$crate::NewEvent],
            ) -> $crate::Result<()> {
                let mut tx = self.begin_write().await?;
                sqlx::query(
                    "UPDATE builds SET status = $1, reason = $2, image_digest = $3, updated_at = $4 WHERE id = $5",
                )
                .bind(&b.status)
                .bind(&b.reason)
                .bind(&b.image_digest)
                .bind(b.updated_at)
                .bind(&b.id)
                .execute(&mut *tx)
                .await?;
                $crate::events::insert_events!(tx, events);
                tx.commit().await?;
                Ok(())
            }

            async fn build(&self, id: &str) -> $crate::Result<Option<$crate::builds::Build>> {
                let sql = format!("SELECT {} FROM builds WHERE id = $1", $crate::builds::BUILD_COLUMNS);
                Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .bind(id)
                    .fetch_optional(&self.$read)
                    .await?)
            }

            async fn builds(
                &self,
                repository: Option<&str>,
                before: Option<(i64, &str)>,
                limit: u32,
            ) -> $crate::Result<Vec<$crate::builds::Build>> {
                let (at, id) = before.unwrap_or((i64::MAX, ""));
                let sql = format!(
                    "SELECT {} FROM builds
                     WHERE ($1 IS NULL OR repository = $1)
                       AND (created_at < $2 OR (created_at = $2 AND id < $3) OR $3 = '')
                     ORDER BY created_at DESC, id DESC LIMIT $4",
                    $crate::builds::BUILD_COLUMNS
                );
                Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .bind(repository)
                    .bind(at)
                    .bind(id)
                    .bind(i64::from(limit))
                    .fetch_all(&self.$read)
                    .await?)
            }

            async fn last_built(
                &self,
                repository: &str,
                tag: &str,
                build_key: &str,
            ) -> $crate::Result<Option<$crate::builds::Build>> {
                let sql = format!(
                    "SELECT {} FROM builds
                     WHERE repository = $1 AND tag = $2 AND build_key = $3 AND status = 'SUCCEEDED'
                     ORDER BY created_at DESC LIMIT 1",
                    $crate::builds::BUILD_COLUMNS
                );
                Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .bind(repository)
                    .bind(tag)
                    .bind(build_key)
                    .fetch_optional(&self.$read)
                    .await?)
            }

            async fn append_build_log(&self, id: &str, text: &str, keep: usize) -> $crate::Result<()> {
                let mut tx = self.begin_write().await?;
                let log: Option<String> = sqlx::query_scalar("SELECT log FROM builds WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?;
                let Some(mut log) = log else {
                    return Ok(());
                };
                log.push_str(text);
                if log.len() > keep {
                    let mut cut = log.len() - keep;
                    while !log.is_char_boundary(cut) {
                        cut += 1;
                    }
                    log.drain(..cut);
                }
                sqlx::query("UPDATE builds SET log = $1 WHERE id = $2")
                    .bind(&log)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn build_log(&self, id: &str) -> $crate::Result<Option<String>> {
                Ok(sqlx::query_scalar("SELECT log FROM builds WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&self.$read)
                    .await?)
            }
        }
    };
}

pub(crate) use impl_build_store;
