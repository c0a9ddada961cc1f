//! Online garbage collection: blobs that no manifest in any repository has
//! referenced for the grace period are reclaimed, bytes and rows, while
//! pushes and pulls go on (see `berth_store::gc` for why that is safe).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use berth_core::Digest;
use berth_store::{BlobStore, MetadataStore, StoreError, now_millis};
use futures_util::FutureExt as _;

use crate::metrics::METRICS;

/// Candidates read per query.
const BATCH: u32 = 1000;
/// Candidates reclaimed per pair of write transactions: enough that a
/// collection keeps up with pushes competing for the writer, few enough that
/// the writer is not held for long while their bytes go.
const COLLECT_BATCH: usize = 100;

/// What a collection reclaimed (or, dry, would).
#[derive(Debug, Default)]
pub struct Report {
    pub blobs: u64,
    pub bytes: u64,
}

pub struct Collector {
    store: Arc<dyn MetadataStore>,
    blobs: Arc<dyn BlobStore>,
}

impl Collector {
    pub fn new(store: Arc<dyn MetadataStore>, blobs: Arc<dyn BlobStore>) -> Collector {
        Collector { store, blobs }
    }

    /// Reclaims every blob unreferenced and untouched for `grace`, telling
    /// `each` of every one reclaimed (with `dry_run`, only says which).
    pub async fn collect(
        &self,
        grace: Duration,
        dry_run: bool,
        mut each: impl FnMut(&Digest, u64) + Send,
    ) -> Result<Report, StoreError> {
        let cutoff = now_millis() - grace.as_millis() as i64;
        let mut report = Report::default();
        let mut after: Option<String> = None;
        let blobs = self.blobs.clone();
        let delete = move |d: Digest| {
            let blobs = blobs.clone();
            async move { blobs.delete(&d).await }.boxed()
        };
        loop {
            let batch = self
                .store
                .gc_candidates(cutoff, after.as_deref(), BATCH)
                .await?;
            let Some((last, _)) = batch.last() else { break };
            after = Some(last.to_string());
            for chunk in batch.chunks(COLLECT_BATCH) {
                let sizes: HashMap<&Digest, u64> = chunk.iter().map(|(d, s)| (d, *s)).collect();
                let reclaimed = if dry_run {
                    chunk.iter().map(|(d, _)| d.clone()).collect()
                } else {
                    let digests: Vec<Digest> = chunk.iter().map(|(d, _)| d.clone()).collect();
                    self.store.collect_blobs(&digests, cutoff, &delete).await?
                };
                for digest in &reclaimed {
                    let size = sizes.get(digest).copied().unwrap_or(0);
                    tracing::debug!(digest = %digest, size, "garbage collection reclaimed a blob");
                    report.blobs += 1;
                    report.bytes += size;
                    each(digest, size);
                }
            }
        }
        if !dry_run {
            METRICS.gc_runs.inc();
            METRICS.gc_blobs.add(report.blobs);
            METRICS.gc_bytes.add(report.bytes);
        }
        Ok(report)
    }
}
