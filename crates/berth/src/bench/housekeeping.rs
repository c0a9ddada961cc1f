//! `berth bench --scenario housekeeping`: berth's own background work at
//! scale, in-process on the embedded backends: one lifecycle evaluation of a
//! repository of `--housekeeping-images` images, and one garbage-collection
//! pass over `--housekeeping-blobs` blobs of which 1% are garbage. The data is
//! seeded with bulk SQL (the schema's own tables), not through the API, so the
//! run measures the work, not the seeding.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use berth_core::RepositoryName;
use berth_core::lifecycle::Policy;
use berth_server::gc::Collector;
use berth_server::lifecycle::Lifecycle;
use berth_server::{Registry, RegistryConfig};
use berth_store::{BlobStore, FsBlobStore, MetadataStore, SqliteStore};
use serde::Serialize;

/// Blobs each seeded manifest references.
const BLOBS_PER_MANIFEST: u64 = 100;
/// Garbage blobs that have bytes on disk (the others exist only as rows).
const GARBAGE_FILES: u64 = 1_000;

#[derive(Serialize)]
pub struct HousekeepingReport {
    pub images: u64,
    pub lifecycle_seconds: f64,
    pub lifecycle_expired: usize,
    pub blobs: u64,
    pub gc_seconds: f64,
    pub gc_reclaimed: u64,
    pub peak_rss_mib_before: f64,
    pub peak_rss_mib_after_lifecycle: f64,
    pub peak_rss_mib_after_gc: f64,
}

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
            let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kib / 1024.0)
        })
        .unwrap_or(0.0)
}

async fn seed(path: &std::path::Path, images: u64, blobs: u64) -> anyhow::Result<()> {
    use sqlx::ConnectOptions as _;
    use sqlx::sqlite::{SqliteConnectOptions, SqliteSynchronous};
    let options = SqliteConnectOptions::new()
        .filename(path)
        .synchronous(SqliteSynchronous::Off)
        .disable_statement_logging();
    let pool = sqlx::SqlitePool::connect_with(options).await?;
    let mut tx = pool.begin().await?;
    let policy = LIFECYCLE_POLICY;
    sqlx::query("INSERT INTO repositories (name, created_at, lifecycle_policy) VALUES ('bench/lifecycle', 0, ?), ('bench/gc', 0, NULL)")
        .bind(policy)
        .execute(&mut *tx)
        .await?;
    // Images pushed a second apart; every other one tagged, a tenth `release-…`.
    sqlx::query(
        "WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < ?)
         INSERT INTO manifests (repository_id, digest, media_type, size, pushed_at)
         SELECT r.id, printf('sha256:%064x', n), 'application/vnd.oci.image.manifest.v1+json', 2, n * 1000
         FROM seq, repositories r WHERE r.name = 'bench/lifecycle'",
    )
    .bind(images as i64)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO tags (repository_id, name, manifest_digest, updated_at)
         SELECT m.repository_id,
                CASE WHEN m.pushed_at % 10000 = 0 THEN 'release-' ELSE 'build-' END || (m.pushed_at / 1000),
                m.digest, 0
         FROM manifests m JOIN repositories r ON r.id = m.repository_id
         WHERE r.name = 'bench/lifecycle' AND m.pushed_at % 2000 = 0",
    )
    .execute(&mut *tx)
    .await?;
    // Blobs: 99% referenced by manifests of bench/gc, 1% garbage.
    let referenced = blobs - blobs / 100;
    let manifests = referenced.div_ceil(BLOBS_PER_MANIFEST);
    sqlx::query(
        "WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < ?)
         INSERT INTO blobs (digest, size, created_at, last_linked_at)
         SELECT printf('sha256:%064x', n), 1000, 0, 0 FROM seq",
    )
    .bind(blobs as i64)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < ?)
         INSERT INTO manifests (repository_id, digest, media_type, size, pushed_at)
         SELECT r.id, printf('sha256:f%063x', n), 'application/vnd.oci.image.manifest.v1+json', 2, 0
         FROM seq, repositories r WHERE r.name = 'bench/gc'",
    )
    .bind(manifests as i64)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO manifest_contents (repository_id, digest, content)
         SELECT repository_id, digest, X'7B7D' FROM manifests",
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < ?)
         INSERT INTO manifest_references (repository_id, manifest_digest, child_digest, child_kind)
         SELECT r.id, printf('sha256:f%063x', (n - 1) / ? + 1), printf('sha256:%064x', n), 'blob'
         FROM seq, repositories r WHERE r.name = 'bench/gc'",
    )
    .bind(referenced as i64)
    .bind(BLOBS_PER_MANIFEST as i64)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    pool.close().await;
    Ok(())
}

const LIFECYCLE_POLICY: &str = r#"{"rules":[
 {"rulePriority":1,"description":"keep 100 releases","selection":{"tagStatus":"tagged","tagPrefixList":["release-"],"countType":"imageCountMoreThan","countNumber":100},"action":{"type":"expire"}},
 {"rulePriority":2,"description":"builds live 7 days","selection":{"tagStatus":"tagged","tagPatternList":["build-*"],"countType":"sinceImagePushed","countUnit":"days","countNumber":7},"action":{"type":"expire"}},
 {"rulePriority":3,"description":"untagged: keep 1000","selection":{"tagStatus":"untagged","countType":"imageCountMoreThan","countNumber":1000},"action":{"type":"expire"}}]}"#;

pub async fn run(
    work_dir: &std::path::Path,
    images: u64,
    blobs: u64,
    json: bool,
) -> anyhow::Result<HousekeepingReport> {
    let data = work_dir.join("housekeeping");
    std::fs::create_dir_all(&data)?;
    let db = data.join("metadata.db");
    let store: Arc<dyn MetadataStore> = Arc::new(SqliteStore::open(&db).await?);
    let blob_store: Arc<dyn BlobStore> = Arc::new(FsBlobStore::open(data.join("blobs"))?);
    if !json {
        eprintln!("housekeeping: seeding {images} images and {blobs} blobs");
    }
    seed(&db, images, blobs).await.context("seeding")?;
    // Bytes for some of the garbage, so collection removes real files.
    let garbage_start = blobs - blobs / 100 + 1;
    for n in garbage_start..garbage_start + GARBAGE_FILES.min(blobs / 100) {
        let digest: berth_core::Digest = format!("sha256:{n:064x}").parse()?;
        let id = format!("seed-{n}");
        let mut body = futures_util::stream::iter([Ok::<_, std::io::Error>(
            bytes::Bytes::from_static(b"garbage"),
        )]);
        let mut upload = berth_store::Upload {
            id,
            repository: "seed".parse()?,
            size: 0,
            hash_state: Vec::new(),
            last_part: 0,
            updated_at: 0,
            pieces: Vec::new(),
        };
        upload.size = blob_store.write_upload(&upload, "seed", &mut body).await?;
        upload.pieces.push("seed".into());
        blob_store.commit_upload(&upload, &digest).await?;
    }

    let before = peak_rss_mib();
    let registry = Arc::new(Registry::new(
        store.clone(),
        blob_store.clone(),
        RegistryConfig::default(),
    ));
    let lifecycle = Lifecycle::new(store.clone(), registry);
    let repository: RepositoryName = "bench/lifecycle".parse()?;
    let policy = Policy::parse(LIFECYCLE_POLICY).map_err(|e| anyhow::anyhow!("{e}"))?;
    let now = (images as i64 + 30 * 86_400) * 1000;
    let started = Instant::now();
    let expired = lifecycle.evaluate(&repository, &policy, now).await?;
    let lifecycle_seconds = started.elapsed().as_secs_f64();
    let after_lifecycle = peak_rss_mib();

    let started = Instant::now();
    let report = Collector::new(store, blob_store)
        .collect(Duration::from_secs(3600), false, |_, _| {})
        .await?;
    let gc_seconds = started.elapsed().as_secs_f64();
    Ok(HousekeepingReport {
        images,
        lifecycle_seconds,
        lifecycle_expired: expired.len(),
        blobs,
        gc_seconds,
        gc_reclaimed: report.blobs,
        peak_rss_mib_before: before,
        peak_rss_mib_after_lifecycle: after_lifecycle,
        peak_rss_mib_after_gc: peak_rss_mib(),
    })
}
