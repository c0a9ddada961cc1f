//! Metadata in an embedded SQLite database (the default).
//!
//! WAL mode with one writer connection and a pool of readers: reads never wait
//! for writes, and writes queue in-process instead of failing with
//! `SQLITE_BUSY`. `synchronous = FULL`, because an acknowledged push must
//! survive a power cut, not only a crash.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use berth_core::{Digest, Reference, RepositoryName, Tag};
use bytes::Bytes;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, SqlitePool, Transaction};

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
        TagStatus::Any => "1",
    }
}

pub(crate) type ImageRow = (
    String,
    String,
    Option<String>,
    i64,
    Option<i64>,
    Option<String>,
    Vec<u8>,
    String,
    Option<i64>,
    Option<i64>,
);

/// Columns of a repository row, in the order `repository_from_row` reads them.
pub(crate) const REPOSITORY_COLUMNS: &str = "id, name, created_at, image_tag_mutability, scan_on_push, encryption_type, kms_key, tag_mutability_exclusions";
pub(crate) type RepositoryRow = (
    i64,
    String,
    i64,
    String,
    bool,
    String,
    Option<String>,
    Option<String>,
);

/// Exclusion filters as stored (one per line: filters hold no spaces), and back.
pub(crate) fn exclusions_to_column(filters: &[String]) -> Option<String> {
    (!filters.is_empty()).then(|| filters.join("\n"))
}

pub(crate) fn exclusions_from_column(column: Option<String>) -> Vec<String> {
    column
        .map(|text| text.lines().map(String::from).collect())
        .unwrap_or_default()
}

/// Reader connections. Each is a thread in sqlx's SQLite driver; on two cores
/// more than four brought nothing in `berth bench --scenario metadata`.
const READERS: u32 = 4;

pub struct SqliteStore {
    read: SqlitePool,
    write: SqlitePool,
    hot: HotReaders,
}

/// Most idle hot-read connections kept; more are opened while more threads
/// read at once (the runtime's workers: two here) and closed afterwards.
const HOT_IDLE: usize = 8;

/// Synchronous read-only connections for [`crate::HotReads`]: a hot read
/// (one indexed lookup, microseconds) runs on the calling thread instead of
/// a round trip through one of sqlx's connection threads, which cost a third
/// of the server's time in `berth bench --scenario metadata`.
struct HotReaders {
    path: std::path::PathBuf,
    /// Connections not in use, each with its own statement cache. Under load
    /// one per thread reading at once; at shutdown they close with the store.
    idle: std::sync::Mutex<Vec<rusqlite::Connection>>,
}

impl HotReaders {
    fn open(&self) -> rusqlite::Result<rusqlite::Connection> {
        use rusqlite::OpenFlags;
        let connection = rusqlite::Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        // Never wait on the runtime's thread: a busy database (rare in WAL
        // mode: a reader waits only while the WAL index is rebuilt) sends the
        // read to the pool, which may wait.
        connection.busy_timeout(Duration::ZERO)?;
        // Plans that do not depend on bound values: SQLite otherwise marks a
        // statement whose `LIMIT ?` it folded as expired at every new binding
        // and compiles it again at each step (8% of the server's time in a
        // `tags/list` burst), which defeats the statement cache.
        connection.set_db_config(
            rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
            true,
        )?;
        Ok(connection)
    }

    fn read<T>(
        &self,
        read: impl FnOnce(&rusqlite::Connection) -> rusqlite::Result<T>,
    ) -> Option<Result<T>> {
        let idle = self.idle.lock().expect("hot readers").pop();
        let connection = match idle.map_or_else(|| self.open(), Ok) {
            Ok(connection) => connection,
            Err(e) => {
                tracing::warn!(error = %e, "opening a hot-read SQLite connection; reading through the pool");
                return None;
            }
        };
        let outcome = read(&connection);
        let mut idle = self.idle.lock().expect("hot readers");
        if idle.len() < HOT_IDLE {
            idle.push(connection);
        }
        match outcome {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if matches!(
                    e.code,
                    rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
                ) =>
            {
                None
            }
            outcome => Some(outcome.map_err(StoreError::from)),
        }
    }
}

impl crate::HotReads for SqliteStore {
    fn hot<T>(
        &self,
        read: impl FnOnce(&rusqlite::Connection) -> rusqlite::Result<T>,
    ) -> Option<Result<T>> {
        self.hot.read(read)
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::PoolTimedOut => StoreError::Busy,
            other => StoreError::Database(other.to_string()),
        }
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        StoreError::Database(e.to_string())
    }
}

/// An image's tags, sorted, newline-separated.
const TAGS_OF_M: &str = "(SELECT group_concat(name, char(10)) FROM (SELECT name FROM tags x
     WHERE x.repository_id = m.repository_id AND x.manifest_digest = m.digest ORDER BY name))";

pub(crate) fn parse_digest(s: &str) -> Result<Digest> {
    s.parse()
        .map_err(|_| StoreError::Database(format!("corrupt digest in database: {s}")))
}

impl SqliteStore {
    /// A write transaction holding the database's write lock from its start
    /// (`BEGIN IMMEDIATE`): a deferred one that reads first cannot take the
    /// lock later once another process wrote meanwhile (SQLite answers
    /// "database is locked" at once, without waiting).
    pub(crate) async fn begin_write(&self) -> Result<Transaction<'static, Sqlite>> {
        Ok(self.write.begin_with("BEGIN IMMEDIATE").await?)
    }

    /// Nothing to take: SQLite's one writer already orders writers
    /// (PostgreSQL's `share_repository` takes the repository row).
    pub(crate) async fn share_repository(_: &mut Transaction<'_, Sqlite>, _: i64) -> Result<()> {
        Ok(())
    }

    /// Nothing to take, likewise (PostgreSQL's takes it `FOR UPDATE`).
    pub(crate) async fn lock_repository(_: &mut Transaction<'_, Sqlite>, _: i64) -> Result<()> {
        Ok(())
    }

    /// Opens (creating if needed) the database at `path` and migrates it.
    pub async fn open(path: &Path) -> Result<SqliteStore> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(30));
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone())
            .await?;
        sqlx::migrate!("migrations/sqlite").run(&write).await?;
        let read = SqlitePoolOptions::new()
            .max_connections(READERS)
            .connect_with(options.read_only(true))
            .await?;
        let hot = HotReaders {
            path: path.to_path_buf(),
            idle: std::sync::Mutex::new(Vec::new()),
        };
        Ok(SqliteStore { read, write, hot })
    }

    async fn repository_id(
        tx: &mut Transaction<'_, Sqlite>,
        name: &RepositoryName,
    ) -> Result<Option<i64>> {
        Ok(
            sqlx::query_scalar("SELECT id FROM repositories WHERE name = ?")
                .bind(name.as_str())
                .fetch_optional(&mut **tx)
                .await?,
        )
    }

    /// What a manifest's references lack, read outside the write
    /// transaction (which checks again, authoritatively): one query each.
    async fn missing_references(
        &self,
        repository: &RepositoryName,
        blobs: &BTreeSet<String>,
        children: &BTreeSet<String>,
    ) -> Result<Option<PutManifestOutcome>> {
        let missing = |table: &str, list: &BTreeSet<String>| {
            // Digests hold no character JSON would escape.
            let list = format!(
                "[{}]",
                list.iter()
                    .map(|d| format!("\"{d}\""))
                    .collect::<Vec<_>>()
                    .join(",")
            );
            let statement = format!(
                "SELECT j.value FROM json_each(?) j WHERE NOT EXISTS (
                   SELECT 1 FROM {table} x JOIN repositories r ON r.id = x.repository_id
                   WHERE r.name = ? AND x.digest = j.value)"
            );
            async move {
                let rows: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(statement))
                    .bind(list)
                    .bind(repository.as_str())
                    .fetch_all(&self.read)
                    .await?;
                rows.iter()
                    .map(|d| parse_digest(d))
                    .collect::<Result<Vec<_>>>()
            }
        };
        let blobs = missing("repository_blobs", blobs).await?;
        if !blobs.is_empty() {
            return Ok(Some(PutManifestOutcome::MissingBlobs(blobs)));
        }
        let children = missing("manifests", children).await?;
        Ok((!children.is_empty()).then_some(PutManifestOutcome::MissingManifests(children)))
    }

    async fn ensure_repository_id(
        tx: &mut Transaction<'_, Sqlite>,
        name: &RepositoryName,
    ) -> Result<i64> {
        if let Some(id) = Self::repository_id(tx, name).await? {
            return Ok(id);
        }
        Ok(sqlx::query_scalar(
            "INSERT INTO repositories (name, created_at) VALUES (?, ?) RETURNING id",
        )
        .bind(name.as_str())
        .bind(now_millis())
        .fetch_one(&mut **tx)
        .await?)
    }
}

#[async_trait]
impl MetadataStore for SqliteStore {
    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.read).await?;
        Ok(())
    }
}

crate::access::impl_access_store!(SqliteStore, write, read);
crate::events::impl_event_store!(SqliteStore, write, read);
crate::gc::impl_gc_store!(SqliteStore, sqlx::Sqlite, write, read, "");
crate::jobs::impl_job_store!(
    SqliteStore,
    write,
    read,
    "",
    "SELECT value FROM json_each($K)"
);
crate::uploads::impl_upload_store!(SqliteStore, read);
crate::links::impl_link_store!(SqliteStore, read);
crate::manifests::impl_manifest_store!(SqliteStore, write, read);
crate::repositories::impl_repository_store!(SqliteStore, read);
crate::quota::impl_quota_store!(SqliteStore, read);
crate::lifecycle::impl_lifecycle_store!(SqliteStore, write, read);
crate::scans::impl_scan_store!(SqliteStore, write, read);
crate::promotions::impl_promotion_store!(SqliteStore, write, read);
crate::pull_through::impl_pull_through_store!(SqliteStore, write, read);
crate::secrets::impl_secret_store!(SqliteStore, write, read);
crate::builds::impl_build_store!(SqliteStore, write, read);
crate::templates::impl_template_store!(SqliteStore, write, read);
crate::console::impl_console_store!(SqliteStore, write, read);
crate::replication::impl_replication_store!(SqliteStore, write, read);
crate::signing::impl_signing_store!(SqliteStore, write, read);
crate::webhooks::impl_webhook_store!(SqliteStore, write, read);
crate::privatize::impl_privatize_store!(SqliteStore, write, read);

pub(crate) fn image_from_row(row: ImageRow) -> Result<ImageRecord> {
    let (
        digest,
        media_type,
        artifact_type,
        pushed_at,
        last_pulled_at,
        tags,
        content,
        image_status,
        last_archived_at,
        last_activated_at,
    ) = row;
    Ok(ImageRecord {
        digest: parse_digest(&digest)?,
        media_type,
        artifact_type,
        pushed_at,
        last_pulled_at,
        tags: {
            let mut tags: Vec<String> = tags
                .map(|t| t.split('\n').map(String::from).collect())
                .unwrap_or_default();
            tags.sort();
            tags
        },
        content: Bytes::from(content),
        image_status,
        last_archived_at,
        last_activated_at,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A store in a fresh directory (kept while the `TempDir` lives).
    pub(crate) async fn temp_store() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("metadata.db"))
            .await
            .unwrap();
        (dir, store)
    }

    /// A page of names, as `tags/list` asks: `LIMIT ?` is what SQLite folds.
    const PAGE: &str = "SELECT name FROM repositories WHERE name > ?1 ORDER BY name LIMIT ?2";

    fn pages(c: &rusqlite::Connection) -> rusqlite::Result<i32> {
        let mut statement = c.prepare_cached(PAGE)?;
        for (last, limit) in [("", 10), ("a", 20), ("b", 30)] {
            let _: Vec<String> = statement
                .query_map((last, limit), |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
        }
        Ok(statement.get_status(rusqlite::StatementStatus::RePrepare))
    }

    #[tokio::test]
    async fn hot_reads_keep_their_compiled_statements() {
        let (dir, store) = temp_store().await;
        let plain = rusqlite::Connection::open(dir.path().join("metadata.db")).unwrap();
        assert!(
            pages(&plain).unwrap() > 0,
            "without the flag SQLite recompiles at each new LIMIT (if this changes, so may the flag's reason)"
        );
        assert_eq!(store.hot.read(pages).unwrap().unwrap(), 0);
    }
}
