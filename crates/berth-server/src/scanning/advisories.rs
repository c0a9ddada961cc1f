//! The advisory database: OSV records loaded from an export (a directory
//! of `.json` files, or OSV's per-ecosystem `all.zip`), kept in the
//! metadata store so that every node matches against the same snapshot.

use std::io::Read;
use std::path::Path;

use berth_scan::Advisory;
use berth_store::{AdvisoryRow, MetadataStore, NewJob, StoreError, now_millis};

use super::{RESCAN_JOB, VULNDB_UPDATED};

/// Records written per transaction.
const BATCH: usize = 500;
/// One OSV record larger than this is skipped.
const MAX_RECORD: u64 = 4 << 20;

#[derive(Debug, Default)]
pub struct ImportReport {
    pub stored: u64,
    /// Files that were not OSV records (name, why).
    pub skipped: Skipped,
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0} is not a zip archive: {1}")]
    Zip(String, String),
    #[error("storage: {0}")]
    Store(#[from] StoreError),
}

fn row(text: &str) -> Result<AdvisoryRow, String> {
    let advisory: Advisory = serde_json::from_str(text).map_err(|e| e.to_string())?;
    if advisory.id.is_empty() {
        return Err("no id".into());
    }
    // Stored as read, so fields berth does not use yet are kept.
    let record: serde_json::Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    Ok(AdvisoryRow {
        id: advisory.id.clone(),
        modified: advisory.modified.clone(),
        packages: advisory
            .packages()
            .into_iter()
            .map(|(ecosystem, name)| {
                let base = ecosystem.split(':').next().unwrap_or_default().to_string();
                (base, name)
            })
            .collect(),
        record: record.to_string(),
    })
}

/// Files that were not read as advisories: (name, why).
type Skipped = Vec<(String, String)>;

/// Reads every OSV record under `path` (a directory, a zip, or one file).
fn read_all(path: &Path) -> Result<(Vec<AdvisoryRow>, Skipped), ImportError> {
    let mut rows = Vec::new();
    let mut skipped = Vec::new();
    fn take(
        rows: &mut Vec<AdvisoryRow>,
        skipped: &mut Vec<(String, String)>,
        name: String,
        text: &str,
    ) {
        match row(text) {
            Ok(r) => rows.push(r),
            Err(why) => skipped.push((name, why)),
        }
    }
    if path.is_dir() {
        let mut stack = vec![path.to_path_buf()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir)? {
                let entry = entry?;
                let p = entry.path();
                if entry.file_type()?.is_dir() {
                    stack.push(p);
                } else if p.extension().is_some_and(|e| e == "zip") {
                    let (more, more_skipped) = read_all(&p)?;
                    rows.extend(more);
                    skipped.extend(more_skipped);
                } else if p.extension().is_some_and(|e| e == "json") {
                    if entry.metadata()?.len() > MAX_RECORD {
                        skipped.push((p.display().to_string(), "too large".into()));
                        continue;
                    }
                    take(
                        &mut rows,
                        &mut skipped,
                        p.display().to_string(),
                        &std::fs::read_to_string(&p)?,
                    );
                }
            }
        }
    } else if path.extension().is_some_and(|e| e == "zip") {
        let file = std::fs::File::open(path)?;
        let mut archive = zip::ZipArchive::new(file)
            .map_err(|e| ImportError::Zip(path.display().to_string(), e.to_string()))?;
        for i in 0..archive.len() {
            let Ok(mut member) = archive.by_index(i) else {
                continue;
            };
            let name = member.name().map(|n| n.into_owned()).unwrap_or_default();
            if !name.ends_with(".json") {
                continue;
            }
            if member.size() > MAX_RECORD {
                skipped.push((name, "too large".into()));
                continue;
            }
            let mut text = String::new();
            // The declared size may lie: read no more than a record may hold.
            if let Err(e) = member.by_ref().take(MAX_RECORD).read_to_string(&mut text) {
                skipped.push((name, e.to_string()));
                continue;
            }
            take(&mut rows, &mut skipped, name, &text);
        }
    } else {
        take(
            &mut rows,
            &mut skipped,
            path.display().to_string(),
            &std::fs::read_to_string(path)?,
        );
    }
    Ok((rows, skipped))
}

/// Loads the OSV records under `path` into the store, marks the database
/// changed, and queues the rescan of continuously scanned repositories.
pub async fn import(store: &dyn MetadataStore, path: &Path) -> Result<ImportReport, ImportError> {
    let owned = path.to_path_buf();
    let (rows, skipped) = tokio::task::spawn_blocking(move || read_all(&owned))
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))??;
    let mut stored = 0;
    for batch in rows.chunks(BATCH) {
        stored += store.put_advisories(batch).await?;
    }
    let now = now_millis();
    store
        .put_setting(VULNDB_UPDATED, Some(&now.to_string()))
        .await?;
    store
        .enqueue_job(
            &NewJob {
                kind: RESCAN_JOB,
                payload: "{}",
                singleton: Some(RESCAN_JOB),
                max_attempts: 3,
                run_after: now,
            },
            now,
        )
        .await?;
    Ok(ImportReport { stored, skipped })
}
