//! What scanning keeps: the advisory database (OSV records, indexed by the
//! packages they name, so every node matches against the same snapshot),
//! each layer's package inventory (read once per layer digest and scanner
//! version) and each image's latest scan. Plain SQL both databases accept,
//! implemented for both backends by [`impl_scan_store`].

use async_trait::async_trait;

use crate::Result;

/// An advisory to store: its id, `modified` time, OSV JSON, and the
/// (ecosystem base, package name) pairs it is found by.
#[derive(Clone, Debug)]
pub struct AdvisoryRow {
    pub id: String,
    pub modified: String,
    pub record: String,
    pub packages: Vec<(String, String)>,
}

/// An image's latest scan.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct ImageScanRecord {
    pub repository: String,
    pub digest: String,
    /// `IN_PROGRESS`, `COMPLETE`, `FAILED`, `UNSUPPORTED_IMAGE`…, as ECR's `ScanStatus`.
    pub status: String,
    pub description: String,
    /// Milliseconds.
    pub started_at: i64,
    pub completed_at: Option<i64>,
    /// When the advisory database the scan used was last updated.
    pub source_updated_at: Option<i64>,
    /// The findings, as the scanning service writes them (JSON).
    pub result: Option<String>,
    /// Whether it was asked for (`StartImageScan`) rather than on push.
    pub manual: bool,
}

#[async_trait]
pub trait ScanStore: Send + Sync + 'static {
    /// Adds or replaces advisories; returns how many were stored.
    async fn put_advisories(&self, rows: &[AdvisoryRow]) -> Result<u64>;
    /// The OSV records naming any of `names` in ecosystem `ecosystem` (its base: `Debian`, `PyPI`).
    async fn advisories_for(&self, ecosystem: &str, names: &[String]) -> Result<Vec<String>>;
    async fn advisory_count(&self) -> Result<i64>;
    /// A layer's cached inventory, if one was made by `scanner`.
    async fn layer_inventory(&self, digest: &str, scanner: i64) -> Result<Option<String>>;
    async fn put_layer_inventory(
        &self,
        digest: &str,
        scanner: i64,
        inventory: &str,
        now: i64,
    ) -> Result<()>;
    async fn image_scan(&self, repository: &str, digest: &str) -> Result<Option<ImageScanRecord>>;
    /// Scans of the given images of one repository (those that have one).
    async fn image_scans(
        &self,
        repository: &str,
        digests: &[String],
    ) -> Result<Vec<ImageScanRecord>>;
    /// Records an image's scan, replacing the one before, with the events
    /// it produces (the outbox: both commit or neither).
    async fn put_image_scan(
        &self,
        scan: &ImageScanRecord,
        events: &[crate::NewEvent],
    ) -> Result<()>;
}

pub(crate) const SCAN_COLUMNS: &str = "repository, digest, status, description, started_at, \
     completed_at, source_updated_at, result, manual";

macro_rules! impl_scan_store {
    ($store:ty, $write:ident, $read:ident) => {
        #[async_trait::async_trait]
        impl $crate::scans::ScanStore for $store {
            async fn put_advisories(&self, rows: &[$crate::scans::AdvisoryRow]) -> $crate::Result<u64> {
                let mut tx = self.$write.begin().await?;
                for row in rows {
                    sqlx::query(
                        "INSERT INTO advisories (id, modified, record) VALUES ($1, $2, $3)
                         ON CONFLICT (id) DO UPDATE SET modified = excluded.modified, record = excluded.record",
                    )
                    .bind(&row.id)
                    .bind(&row.modified)
                    .bind(&row.record)
                    .execute(&mut *tx)
                    .await?;
                    sqlx::query("DELETE FROM advisory_packages WHERE advisory_id = $1")
                        .bind(&row.id)
                        .execute(&mut *tx)
                        .await?;
                    for (ecosystem, name) in &row.packages {
                        sqlx::query(
                            "INSERT INTO advisory_packages (ecosystem, name, advisory_id) VALUES ($1, $2, $3)
                             ON CONFLICT DO NOTHING",
                        )
                        .bind(ecosystem)
                        .bind(name)
                        .bind(&row.id)
                        .execute(&mut *tx)
                        .await?;
                    }
                }
                tx.commit().await?;
                Ok(rows.len() as u64)
            }

            async fn advisories_for(&self, ecosystem: &str, names: &[String]) -> $crate::Result<Vec<String>> {
                let mut records = Vec::new();
                for chunk in names.chunks(200) {
                    let placeholders: Vec<String> =
                        (0..chunk.len()).map(|i| format!("${}", i + 2)).collect();
                    let sql = format!(
                        "SELECT a.record FROM advisories a WHERE a.id IN
                           (SELECT advisory_id FROM advisory_packages WHERE ecosystem = $1 AND name IN ({}))",
                        placeholders.join(", ")
                    );
                    let mut query = sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(sql)).bind(ecosystem);
                    for name in chunk {
                        query = query.bind(name);
                    }
                    records.extend(query.fetch_all(&self.$read).await?);
                }
                Ok(records)
            }

            async fn advisory_count(&self) -> $crate::Result<i64> {
                Ok(sqlx::query_scalar("SELECT COUNT(*) FROM advisories")
                    .fetch_one(&self.$read)
                    .await?)
            }

            async fn layer_inventory(&self, digest: &str, scanner: i64) -> $crate::Result<Option<String>> {
                Ok(sqlx::query_scalar(
                    "SELECT inventory FROM scan_layers WHERE digest = $1 AND scanner = $2",
                )
                .bind(digest)
                .bind(scanner)
                .fetch_optional(&self.$read)
                .await?)
            }

            async fn put_layer_inventory(
                &self,
                digest: &str,
                scanner: i64,
                inventory: &str,
                now: i64,
            ) -> $crate::Result<()> {
                sqlx::query(
                    "INSERT INTO scan_layers (digest, scanner, inventory, created_at) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (digest) DO UPDATE SET scanner = excluded.scanner,
                       inventory = excluded.inventory, created_at = excluded.created_at",
                )
                .bind(digest)
                .bind(scanner)
                .bind(inventory)
                .bind(now)
                .execute(&self.$write)
                .await?;
                Ok(())
            }

            async fn image_scan(
                &self,
                repository: &str,
                digest: &str,
            ) -> $crate::Result<Option<$crate::scans::ImageScanRecord>> {
                let sql = format!(
                    "SELECT {} FROM image_scans WHERE repository = $1 AND digest = $2",
                    $crate::scans::SCAN_COLUMNS
                );
                Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .bind(repository)
                    .bind(digest)
                    .fetch_optional(&self.$read)
                    .await?)
            }

            async fn image_scans(
                &self,
                repository: &str,
                digests: &[String],
            ) -> $crate::Result<Vec<$crate::scans::ImageScanRecord>> {
                let mut out = Vec::new();
                for chunk in digests.chunks(200) {
                    let placeholders: Vec<String> =
                        (0..chunk.len()).map(|i| format!("${}", i + 2)).collect();
                    let sql = format!(
                        "SELECT {} FROM image_scans WHERE repository = $1 AND digest IN ({})",
                        $crate::scans::SCAN_COLUMNS,
                        placeholders.join(", ")
                    );
                    let mut query = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(repository);
                    for digest in chunk {
                        query = query.bind(digest);
                    }
                    out.extend(query.fetch_all(&self.$read).await?);
                }
                Ok(out)
            }

            async fn put_image_scan(
                &self,
                scan: &$crate::scans::ImageScanRecord,
                events: &[$crate::NewEvent],
            ) -> $crate::Result<()> {
                let mut tx = self.$write.begin().await?;
                let sql = format!(
                    "INSERT INTO image_scans ({}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                     ON CONFLICT (repository, digest) DO UPDATE SET status = excluded.status,
                       description = excluded.description, started_at = excluded.started_at,
                       completed_at = excluded.completed_at,
                       source_updated_at = excluded.source_updated_at, result = excluded.result,
                       manual = excluded.manual",
                    $crate::scans::SCAN_COLUMNS
                );
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(&scan.repository)
                    .bind(&scan.digest)
                    .bind(&scan.status)
                    .bind(&scan.description)
                    .bind(scan.started_at)
                    .bind(scan.completed_at)
                    .bind(scan.source_updated_at)
                    .bind(&scan.result)
                    .bind(scan.manual)
                    .execute(&mut *tx)
                    .await?;
                $crate::events::insert_events!(tx, events);
                tx.commit().await?;
                Ok(())
            }
        }
    };
}

pub(crate) use impl_scan_store;
