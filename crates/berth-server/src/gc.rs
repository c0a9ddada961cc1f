//! Online garbage collection: blobs that no manifest in any repository has
//! referenced for the grace period are reclaimed, bytes and rows, while
//! pushes and pulls go on (see `berth_store::gc` for why that is safe).

use std::sync::Arc;
use std::time::Duration;

use berth_core::Digest;
use berth_store::{BlobStore, MetadataStore, StoreError, now_millis};
use futures_util::FutureExt as _;

use crate::metrics::METRICS;

/// Candidates read per query.
const BATCH: u32 = 1000;

/// What a collection reclaimed (or, dry, would).
#[derive(Debug, Default)]
pub struct Report {
    pub blobs: Vec<(Digest, u64)>,
}

impl Report {
    pub fn bytes(&self) -> u64 {
        self.blobs.iter().map(|(_, size)| size).sum()
    }
}

pub struct Collector {
    store: Arc<dyn MetadataStore>,
    blobs: Arc<dyn BlobStore>,
}

impl Collector {
    pub fn new(store: Arc<dyn MetadataStore>, blobs: Arc<dyn BlobStore>) -> Collector {
        Collector { store, blobs }
    }

    /// Reclaims every blob unreferenced and untouched for `grace`; with
    /// `dry_run`, only says which.
    pub async fn collect(&self, grace: Duration, dry_run: bool) -> Result<Report, StoreError> {
        let cutoff = now_millis() - grace.as_millis() as i64;
        let mut report = Report::default();
        let mut after: Option<String> = None;
        loop {
            let batch = self
                .store
                .gc_candidates(cutoff, after.as_deref(), BATCH)
                .await?;
            let Some((last, _)) = batch.last() else { break };
            after = Some(last.to_string());
            for (digest, size) in batch {
                if dry_run {
                    report.blobs.push((digest, size));
                    continue;
                }
                let blobs = self.blobs.clone();
                let delete = move |d: Digest| {
                    let blobs = blobs.clone();
                    async move { blobs.delete(&d).await }.boxed()
                };
                if self.store.collect_blob(&digest, cutoff, &delete).await? {
                    tracing::debug!(digest = %digest, size, "garbage collection reclaimed a blob");
                    report.blobs.push((digest, size));
                }
            }
        }
        if !dry_run {
            METRICS.gc_runs.inc();
            METRICS.gc_blobs.add(report.blobs.len() as u64);
            METRICS.gc_bytes.add(report.bytes());
        }
        Ok(report)
    }
}
