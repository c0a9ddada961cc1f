//! PostgreSQL's cache of the hottest reads: a manifest by tag or digest, a
//! blob's size in a repository, a page of tags — what a fleet rolling out one
//! image asks hundreds of times a second (README, "Performance").
//!
//! Correctness rests on one generation number. Every change to the tables
//! these reads come from bumps it: this process's own writes as they commit
//! (so a node sees its own tag move at once), and every other writer's
//! through a PostgreSQL notification that a trigger sends on commit (so the
//! other nodes see it within the notification's delay, milliseconds). An
//! entry is served only under the generation it was read in, only while the
//! notification listener is connected, and never after [`MAX_AGE`]: that
//! bounds what another node may serve after a change even when a
//! notification is lost. Only found rows are kept; a miss always asks the
//! database.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use sqlx::PgPool;
use sqlx::postgres::PgListener;

use crate::StoredManifest;

/// The longest an entry is served: the bound on another node's staleness.
pub const MAX_AGE: Duration = Duration::from_secs(1);
/// The channel the migration's trigger notifies, with the schema as payload.
const CHANNEL: &str = "berth_changes";
/// Bytes of manifests kept at most; past it the cache starts again empty.
const MAX_BYTES: usize = 32 << 20;
/// Entries kept at most, likewise.
const MAX_ENTRIES: usize = 20_000;

pub(crate) struct ReadCache {
    /// Bumped by every change; entries of an older one are dropped.
    generation: AtomicU64,
    /// Whether the listener is connected: nothing is served or kept while it
    /// is not (at start, and after it lost its connection).
    live: AtomicBool,
    entries: Mutex<Entries>,
    /// Told when the cache is dropped: the listener then ends at once.
    stop: Arc<tokio::sync::Notify>,
}

impl Drop for ReadCache {
    fn drop(&mut self) {
        // A permit waits for the listener if it is not waiting yet.
        self.stop.notify_one();
    }
}

/// A tag page's key: repository, the tag it starts after, its length.
type PageKey = (String, String, u32);

#[derive(Default)]
struct Entries {
    /// The generation these entries were read in.
    generation: u64,
    bytes: usize,
    manifests: HashMap<(String, String), (StoredManifest, Instant)>,
    blob_sizes: HashMap<(String, String), (u64, Instant)>,
    tag_pages: HashMap<PageKey, (Arc<Vec<String>>, Instant)>,
}

impl Entries {
    fn len(&self) -> usize {
        self.manifests.len() + self.blob_sizes.len() + self.tag_pages.len()
    }
}

fn fresh<T: Clone>(entry: Option<&(T, Instant)>) -> Option<T> {
    entry
        .filter(|(_, at)| at.elapsed() < MAX_AGE)
        .map(|(value, _)| value.clone())
}

impl ReadCache {
    /// A cache kept current by a listener on `pool`'s database, which runs
    /// until the cache is dropped. `schema`: the one this store's tables are
    /// in (`current_schema()`), the payload of its changes' notifications.
    pub fn start(pool: PgPool, schema: String) -> Arc<ReadCache> {
        let stop = Arc::new(tokio::sync::Notify::new());
        let cache = Arc::new(ReadCache {
            generation: AtomicU64::new(0),
            live: AtomicBool::new(false),
            entries: Mutex::new(Entries::default()),
            stop: stop.clone(),
        });
        tokio::spawn(listen(pool, Arc::downgrade(&cache), schema, stop));
        cache
    }

    /// The current generation, taken before a read whose result is kept.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Something the cached reads come from changed.
    pub fn changed(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// The entries, emptied first if the generation moved on; `None` while
    /// the listener is not connected.
    fn entries(&self) -> Option<std::sync::MutexGuard<'_, Entries>> {
        if !self.live.load(Ordering::Acquire) {
            return None;
        }
        let generation = self.generation();
        let mut entries = self.entries.lock().expect("read cache");
        if entries.generation != generation {
            *entries = Entries {
                generation,
                ..Entries::default()
            };
        }
        Some(entries)
    }

    /// The entries to add to, if what was read under `generation` still holds.
    fn to_keep(&self, generation: u64) -> Option<std::sync::MutexGuard<'_, Entries>> {
        let mut entries = self.entries()?;
        if entries.generation != generation {
            return None;
        }
        if entries.bytes > MAX_BYTES || entries.len() >= MAX_ENTRIES {
            *entries = Entries {
                generation,
                ..Entries::default()
            };
        }
        Some(entries)
    }

    pub fn manifest(&self, repository: &str, reference: &str) -> Option<StoredManifest> {
        let entries = self.entries()?;
        fresh(
            entries
                .manifests
                .get(&(repository.to_string(), reference.to_string())),
        )
    }

    pub fn keep_manifest(
        &self,
        generation: u64,
        repository: &str,
        reference: &str,
        manifest: &StoredManifest,
    ) {
        if let Some(mut entries) = self.to_keep(generation) {
            entries.bytes += manifest.content.len();
            entries.manifests.insert(
                (repository.to_string(), reference.to_string()),
                (manifest.clone(), Instant::now()),
            );
        }
    }

    pub fn blob_size(&self, repository: &str, digest: &str) -> Option<u64> {
        let entries = self.entries()?;
        fresh(
            entries
                .blob_sizes
                .get(&(repository.to_string(), digest.to_string())),
        )
    }

    pub fn keep_blob_size(&self, generation: u64, repository: &str, digest: &str, size: u64) {
        if let Some(mut entries) = self.to_keep(generation) {
            entries.blob_sizes.insert(
                (repository.to_string(), digest.to_string()),
                (size, Instant::now()),
            );
        }
    }

    pub fn tag_page(&self, repository: &str, last: &str, limit: u32) -> Option<Arc<Vec<String>>> {
        let entries = self.entries()?;
        fresh(
            entries
                .tag_pages
                .get(&(repository.to_string(), last.to_string(), limit)),
        )
    }

    pub fn keep_tag_page(
        &self,
        generation: u64,
        repository: &str,
        last: &str,
        limit: u32,
        tags: Arc<Vec<String>>,
    ) {
        if let Some(mut entries) = self.to_keep(generation) {
            entries.bytes += tags.iter().map(|t| t.len() + 24).sum::<usize>();
            entries.tag_pages.insert(
                (repository.to_string(), last.to_string(), limit),
                (tags, Instant::now()),
            );
        }
    }
}

/// Holds a `LISTEN` on [`CHANNEL`] and bumps the generation at every change
/// in `schema`; reconnects after a lost connection (the cache is off until
/// then, and starts empty). Ends when `stop` is told (the cache is gone).
async fn listen(
    pool: PgPool,
    cache: Weak<ReadCache>,
    schema: String,
    stop: Arc<tokio::sync::Notify>,
) {
    const RETRY: Duration = Duration::from_secs(5);
    loop {
        let connect = async {
            let mut listener = PgListener::connect_with(&pool).await?;
            listener.listen(CHANNEL).await?;
            Ok::<_, sqlx::Error>(listener)
        };
        let connected = tokio::select! {
            _ = stop.notified() => return,
            connected = connect => connected,
        };
        let mut listener = match connected {
            Ok(listener) => listener,
            Err(e) => {
                tracing::warn!(error = %e, "read cache off: cannot listen for changes");
                tokio::select! {
                    _ = stop.notified() => return,
                    _ = tokio::time::sleep(RETRY) => continue,
                }
            }
        };
        {
            let Some(cache) = cache.upgrade() else { return };
            cache.changed();
            cache.live.store(true, Ordering::Release);
        }
        loop {
            let received = tokio::select! {
                _ = stop.notified() => return,
                received = listener.try_recv() => received,
            };
            let Some(cache) = cache.upgrade() else { return };
            match received {
                Ok(Some(notification)) => {
                    if notification.payload() == schema {
                        cache.changed();
                    }
                }
                // The connection was lost: what changes meanwhile goes
                // unheard, so the cache is off until a new listener is up.
                outcome => {
                    cache.live.store(false, Ordering::Release);
                    cache.changed();
                    if let Err(e) = outcome {
                        tracing::warn!(error = %e, "read cache off: lost the change listener");
                    }
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(live: bool) -> ReadCache {
        ReadCache {
            generation: AtomicU64::new(0),
            live: AtomicBool::new(live),
            entries: Mutex::new(Entries::default()),
            stop: Arc::default(),
        }
    }

    fn manifest() -> StoredManifest {
        StoredManifest {
            digest: berth_core::Digest::of(berth_core::Algorithm::Sha256, b"m"),
            media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            content: bytes::Bytes::from_static(b"m"),
            last_pulled_at: None,
            image_status: "ACTIVE".into(),
        }
    }

    #[test]
    fn a_change_drops_what_was_read_before_it() {
        let cache = cache(true);
        let read_in = cache.generation();
        cache.keep_manifest(read_in, "app", "v1", &manifest());
        cache.keep_blob_size(read_in, "app", "sha256:x", 7);
        assert!(cache.manifest("app", "v1").is_some());
        assert_eq!(cache.blob_size("app", "sha256:x"), Some(7));
        cache.changed();
        assert!(cache.manifest("app", "v1").is_none());
        assert_eq!(cache.blob_size("app", "sha256:x"), None);
    }

    #[test]
    fn a_read_that_a_change_overtook_is_not_kept() {
        let cache = cache(true);
        let read_in = cache.generation();
        // The write commits while the read is under way.
        cache.changed();
        cache.keep_manifest(read_in, "app", "v1", &manifest());
        let tags = Arc::new(vec!["v1".to_string()]);
        cache.keep_tag_page(read_in, "app", "", 100, tags);
        assert!(cache.manifest("app", "v1").is_none());
        assert!(cache.tag_page("app", "", 100).is_none());
    }

    #[test]
    fn nothing_is_served_or_kept_without_the_listener() {
        let cache = cache(false);
        cache.keep_manifest(cache.generation(), "app", "v1", &manifest());
        assert!(cache.manifest("app", "v1").is_none());
        cache.live.store(true, Ordering::Release);
        assert!(cache.manifest("app", "v1").is_none());
    }

    #[test]
    fn entries_are_not_served_past_their_age() {
        let cache = cache(true);
        cache.keep_blob_size(cache.generation(), "app", "sha256:x", 7);
        cache
            .entries
            .lock()
            .unwrap()
            .blob_sizes
            .values_mut()
            .for_each(|(_, at)| *at -= MAX_AGE);
        assert_eq!(cache.blob_size("app", "sha256:x"), None);
    }
}
