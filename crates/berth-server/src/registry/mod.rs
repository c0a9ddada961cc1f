//! The registry service: repositories, blobs, uploads, manifests and tags.
//!
//! Every front door calls this; it owns the invariants (a blob is visible only
//! once its digest is verified; a manifest's references exist; a tag points at
//! a manifest of its repository) and knows nothing of HTTP.

use std::collections::HashMap;
use std::io;
use std::ops::Range;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use berth_core::manifest::{self, ManifestError};
use berth_core::{Algorithm, Digest, Hasher, Reference, RepositoryName, Tag};
use berth_store::{
    BlobStore, BlobStream, ByteStream, DeleteManifestOutcome, DeleteRepositoryOutcome, ImageRecord,
    MetadataStore, NewManifest, PutManifestOutcome, Referrer, RepositoryRecord, StoreError,
    StoredManifest, TagStatus, Upload, now_millis,
};
use bytes::Bytes;
use futures_util::Stream;

mod blobs;
mod discovery;
mod images;
mod manifests;
pub mod pull_times;
mod repositories;
mod uploads;
pub use uploads::LastChunk;

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// ECR's wording, on both front doors.
    #[error(
        "The repository with name '{name}' does not exist in the registry with id '{registry_id}'"
    )]
    NameUnknown { name: String, registry_id: String },
    #[error("blob unknown to registry")]
    BlobUnknown,
    #[error("blob upload unknown to registry")]
    UploadUnknown,
    #[error("blob upload invalid: {0}")]
    UploadInvalid(String),
    /// A chunk did not start where the upload ends.
    #[error("chunk must start at byte {size}")]
    RangeInvalid { size: u64 },
    #[error("requested range not satisfiable")]
    RangeNotSatisfiable { size: u64 },
    #[error("{0}")]
    DigestInvalid(String),
    #[error("{0}")]
    SizeInvalid(String),
    #[error("manifest unknown to registry")]
    ManifestUnknown,
    /// Archived (or being restored): not pulled until it is active, as on ECR.
    #[error(
        "the image {0} is archived: restore it with UpdateImageStorageClass (targetStorageClass STANDARD) first"
    )]
    ImageArchived(Digest),
    #[error(transparent)]
    ManifestInvalid(#[from] ManifestError),
    #[error("manifest references unknown blobs: {}", list(.0))]
    ManifestBlobUnknown(Vec<Digest>),
    #[error("manifest references unknown manifests: {}", list(.0))]
    ManifestChildUnknown(Vec<Digest>),
    #[error("manifest is referenced by index {0} and cannot be deleted")]
    ManifestReferenced(Digest),
    /// ECR's wording, which docker shows to the user.
    #[error(
        "The image tag '{tag}' already exists in the '{repository}' repository and cannot be overwritten because the repository is immutable."
    )]
    TagImmutable {
        tag: Tag,
        repository: RepositoryName,
    },
    #[error("a repository may carry at most {0} tags")]
    TooManyTags(usize),
    #[error("repository already exists")]
    RepositoryAlreadyExists,
    /// A quota would be exceeded (ECR: `LimitExceededException`).
    #[error("{0}")]
    LimitExceeded(String),
    #[error("repository still contains images")]
    RepositoryNotEmpty,
    /// The pull-through cache could not get what was asked from upstream;
    /// `code` is ECR's per-image failure code (`UpstreamAccessDenied`,
    /// `UpstreamTooManyRequests`, `UpstreamUnavailable`).
    #[error("{message}")]
    Upstream { code: &'static str, message: String },
    #[error("internal error: {0}")]
    Internal(#[from] StoreError),
}

fn list(digests: &[Digest]) -> String {
    digests
        .iter()
        .map(Digest::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

pub type Result<T, E = RegistryError> = std::result::Result<T, E>;

/// A page of a listing: its items, and whether more follow.
pub type Page<T> = (Vec<T>, bool);

/// The page in `items`, fetched with one more than `limit` to learn whether
/// more follow: the one place listings page.
fn page_of<T>(mut items: Vec<T>, limit: u32) -> Page<T> {
    let more = items.len() > limit as usize;
    items.truncate(limit as usize);
    (items, more)
}

/// Sizes of the manifests sized so far in one call (see [`Registry::image_size`]).
#[derive(Default)]
pub struct ImageSizes(std::collections::HashMap<Digest, u64>);

#[derive(Clone, Debug)]
pub struct RegistryConfig {
    /// The registry's id: its account's 12 digits.
    pub registry_id: String,
    /// An upload not written to for this long is abandoned and cleaned up.
    pub upload_timeout: Duration,
    /// Whether a push to a missing repository creates it (ECR: no).
    pub create_on_push: bool,
    /// Answer blob `GET`s with a redirect to the object store, where it can sign one.
    pub redirect_blob_pulls: bool,
    pub quotas: Quotas,
}

/// Limits on what the registry holds, with ECR's default service quotas.
/// Checked before each write: writers racing at the limit may overshoot it
/// by their number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quotas {
    pub repositories: u64,
    pub images_per_repository: u64,
    /// Bytes of one layer (blob).
    pub layer_size: u64,
}

impl Default for Quotas {
    fn default() -> Self {
        Quotas {
            repositories: 100_000,
            images_per_repository: 20_000,
            layer_size: 52_000 << 20,
        }
    }
}

impl Default for RegistryConfig {
    fn default() -> Self {
        RegistryConfig {
            registry_id: "000000000000".into(),
            upload_timeout: Duration::from_secs(24 * 3600),
            create_on_push: false,
            redirect_blob_pulls: false,
            quotas: Quotas::default(),
        }
    }
}

/// A stored manifest: its digest, its subject's, and the tags now pointing at it.
pub struct PutManifest {
    pub digest: Digest,
    pub subject: Option<Digest>,
    pub tags: Vec<Tag>,
}

/// A future a [`ReadMiss`] hook returns.
pub type MissFuture<'a> = Pin<Box<dyn std::future::Future<Output = Result<bool>> + Send + 'a>>;

/// A blob streamed while it is stored: its size when known, and its bytes.
pub type StreamedBlob = (Option<u64>, BlobStream);
/// A future [`ReadMiss::blob_stream`] returns.
pub type StreamMissFuture<'a> =
    Pin<Box<dyn std::future::Future<Output = Result<Option<StreamedBlob>>> + Send + 'a>>;

/// Asked when a read misses, for both doors: where the pull-through cache
/// plugs in. Answers `true` when it stored what was missing, and the read is
/// then tried once more.
pub trait ReadMiss: Send + Sync + 'static {
    fn manifest<'a>(
        &'a self,
        repository: &'a RepositoryName,
        reference: &'a Reference,
    ) -> MissFuture<'a>;
    fn blob<'a>(&'a self, repository: &'a RepositoryName, digest: &'a Digest) -> MissFuture<'a>;
    /// The missing blob as it is fetched and stored at once: its size (when
    /// known) and its bytes, which end in an error if what was fetched turns
    /// out not to be the blob (nothing is then stored). `None`: not this way
    /// (the read falls back to [`ReadMiss::blob`]).
    fn blob_stream<'a>(
        &'a self,
        _repository: &'a RepositoryName,
        _digest: &'a Digest,
    ) -> StreamMissFuture<'a> {
        Box::pin(async { Ok(None) })
    }
    /// Asked when a tag is found: `true` when it moved the tag (the read
    /// is then tried once more). A cache re-checks its upstream here.
    fn tag_found<'a>(
        &'a self,
        _repository: &'a RepositoryName,
        _tag: &'a Tag,
        _digest: &'a Digest,
    ) -> MissFuture<'a> {
        Box::pin(async { Ok(false) })
    }
}

/// Why a repository is about to be created without a `CreateRepository`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CreatedFor {
    /// A push to a repository that does not exist (ECR's `CREATE_ON_PUSH`).
    Push,
    /// A pull-through cache's first pull (`PULL_THROUGH_CACHE`).
    PullThrough,
    /// A replicated image's repository (`REPLICATION`).
    Replication,
}

/// A future a [`RepositoryCreator`] returns.
pub type CreateFuture<'a> = Pin<Box<dyn std::future::Future<Output = Result<bool>> + Send + 'a>>;

/// Asked before a repository is created on its own (a push, a cache, a
/// replica): where creation templates plug in.
pub trait RepositoryCreator: Send + Sync + 'static {
    /// Creates `name` as a template says; `false` when none applies (or the
    /// caller may not create it), and the registry goes on without one.
    fn create<'a>(&'a self, name: &'a RepositoryName, why: CreatedFor) -> CreateFuture<'a>;
}

/// The job kind that finishes restoring an archived image.
pub const RESTORE_JOB: &str = "image.restore";
/// The job kind that moves an archived image's blobs to the archive store.
pub const ARCHIVE_JOB: &str = "image.archive";

pub struct Registry {
    metadata: Arc<dyn MetadataStore>,
    blobs: Arc<dyn BlobStore>,
    config: RegistryConfig,
    upload_locks: KeyedLocks,
    /// This process, among the nodes sharing the database.
    node_id: String,
    /// Asked when a manifest or blob read misses; set once at start-up.
    read_miss: std::sync::OnceLock<Arc<dyn ReadMiss>>,
    /// Asked before a repository is created on its own; set once at start-up.
    creator: std::sync::OnceLock<Arc<dyn RepositoryCreator>>,
    /// Principals whose pulls leave `lastRecordedPullTime` alone.
    pull_time_exclusions: Arc<pull_times::PullTimeExclusions>,
    /// Images (repository, digest) whose pull this node is recording now: a
    /// burst of pulls of an image not pulled lately writes once per node, not
    /// once per puller. Each leaves once its write is done.
    pulls_recording: Arc<std::sync::Mutex<std::collections::HashSet<(String, String)>>>,
    /// Where archived images' blobs go (`--archive-storage`), if anywhere;
    /// set once at start-up. `blobs` reads through it already.
    archive_tier: std::sync::OnceLock<Arc<berth_store::tiers::TieredBlobStore>>,
}

impl Registry {
    pub fn new(
        metadata: Arc<dyn MetadataStore>,
        blobs: Arc<dyn BlobStore>,
        config: RegistryConfig,
    ) -> Registry {
        Registry {
            pull_time_exclusions: Arc::new(pull_times::PullTimeExclusions::new(metadata.clone())),
            pulls_recording: Arc::default(),
            metadata,
            blobs,
            config,
            upload_locks: KeyedLocks::default(),
            node_id: uuid::Uuid::new_v4().to_string(),
            read_miss: std::sync::OnceLock::new(),
            creator: std::sync::OnceLock::new(),
            archive_tier: std::sync::OnceLock::new(),
        }
    }

    /// The principals whose pulls are not recorded.
    pub fn pull_time_exclusions(&self) -> &pull_times::PullTimeExclusions {
        &self.pull_time_exclusions
    }

    /// Names the archive store archived images' blobs move to (once; the
    /// blob store given to [`Registry::new`] must be this same tiered one).
    pub fn on_archive_tier(&self, tier: Arc<berth_store::tiers::TieredBlobStore>) {
        let _ = self.archive_tier.set(tier);
    }

    /// Installs the hook asked when reads miss (once; later calls are ignored).
    pub fn on_read_miss(&self, hook: Arc<dyn ReadMiss>) {
        let _ = self.read_miss.set(hook);
    }

    /// Installs the hook asked before a repository is created on its own
    /// (once; later calls are ignored).
    pub fn on_create(&self, hook: Arc<dyn RepositoryCreator>) {
        let _ = self.creator.set(hook);
    }

    /// Whether the creation hook created `name` (as a template says).
    async fn created_by_hook(&self, name: &RepositoryName, why: CreatedFor) -> Result<bool> {
        match self.creator.get() {
            Some(hook) => hook.create(name, why).await,
            None => Ok(false),
        }
    }

    /// Whether the read-miss hook stored the missing manifest.
    async fn manifest_fetched(
        &self,
        repository: &RepositoryName,
        reference: &Reference,
    ) -> Result<bool> {
        match self.read_miss.get() {
            Some(hook) => hook.manifest(repository, reference).await,
            None => Ok(false),
        }
    }

    /// Whether the read-miss hook stored the missing blob.
    async fn blob_fetched(&self, repository: &RepositoryName, digest: &Digest) -> Result<bool> {
        match self.read_miss.get() {
            Some(hook) => hook.blob(repository, digest).await,
            None => Ok(false),
        }
    }

    /// A missing blob streamed from where the read-miss hook fetches it
    /// (stored as it passes), if the hook can.
    pub async fn stream_missing_blob(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
    ) -> Result<Option<StreamedBlob>> {
        match self.read_miss.get() {
            Some(hook) => hook.blob_stream(repository, digest).await,
            None => Ok(None),
        }
    }

    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    pub async fn readiness(&self) -> (Result<(), StoreError>, Result<(), StoreError>) {
        (self.metadata.ping().await, self.blobs.ping().await)
    }

    pub fn config(&self) -> &RegistryConfig {
        &self.config
    }
}

/// Feeds every frame that passes through to a hasher, and fails the stream
/// (`FileTooLarge`) past `allowed` bytes.
struct Hashing<'a, 'b> {
    inner: &'a mut ByteStream<'b>,
    hasher: &'a mut Hasher,
    allowed: u64,
}

impl Stream for Hashing<'_, '_> {
    type Item = io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let polled = Pin::new(&mut *this.inner).poll_next(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            let Some(left) = this.allowed.checked_sub(frame.len() as u64) else {
                return Poll::Ready(Some(Err(io::Error::new(
                    io::ErrorKind::FileTooLarge,
                    "the layer size quota is exceeded",
                ))));
            };
            this.allowed = left;
            this.hasher.update(frame);
        }
        polled
    }
}

/// Why a [`Verifying`] stream failed at its end.
#[derive(Debug, thiserror::Error)]
pub(crate) enum NotTheBlob {
    #[error("upload content has digest {0}, not {1}")]
    Digest(Digest, Digest),
    #[error("received {0} bytes, expected {1}")]
    Size(u64, u64),
}

/// A body that checks itself as it passes: fails (`FileTooLarge`) past
/// `allowed` bytes, and at its end fails (`InvalidData`, [`NotTheBlob`])
/// instead of ending when its bytes are not `expected` (or not `len` long).
/// Whoever writes it therefore sees the end only of bytes that are the blob.
struct Verifying<'a, 'b> {
    inner: &'a mut ByteStream<'b>,
    hasher: Option<Hasher>,
    expected: Digest,
    len: Option<u64>,
    seen: u64,
    allowed: u64,
}

impl Stream for Verifying<'_, '_> {
    type Item = io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let Some(hasher) = this.hasher.as_mut() else {
            return Poll::Ready(None);
        };
        match Pin::new(&mut *this.inner).poll_next(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                this.seen += frame.len() as u64;
                if this.seen > this.allowed {
                    this.hasher = None;
                    return Poll::Ready(Some(Err(io::Error::new(
                        io::ErrorKind::FileTooLarge,
                        "the layer size quota is exceeded",
                    ))));
                }
                hasher.update(&frame);
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(None) => {
                let computed = this.hasher.take().map(Hasher::finish);
                let wrong = match (computed, this.len) {
                    (_, Some(len)) if len != this.seen => Some(NotTheBlob::Size(this.seen, len)),
                    (Some(computed), _) if computed != this.expected => {
                        Some(NotTheBlob::Digest(computed, this.expected.clone()))
                    }
                    _ => None,
                };
                Poll::Ready(wrong.map(|e| Err(io::Error::new(io::ErrorKind::InvalidData, e))))
            }
            other => {
                if let Poll::Ready(Some(Err(_))) = other {
                    this.hasher = None;
                }
                other
            }
        }
    }
}

/// One async mutex per key, held only while someone uses it: serializes the
/// writes to one upload on this node.
#[derive(Default)]
pub(crate) struct KeyedLocks {
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

pub(crate) struct KeyedGuard<'a> {
    owner: &'a KeyedLocks,
    key: String,
    _guard: tokio::sync::OwnedMutexGuard<()>,
}

impl KeyedLocks {
    pub(crate) async fn lock(&self, key: &str) -> KeyedGuard<'_> {
        let lock = self
            .locks
            .lock()
            .expect("lock map poisoned")
            .entry(key.to_string())
            .or_default()
            .clone();
        KeyedGuard {
            owner: self,
            key: key.to_string(),
            _guard: lock.lock_owned().await,
        }
    }

    fn is_locked(&self, key: &str) -> bool {
        self.locks
            .lock()
            .expect("lock map poisoned")
            .contains_key(key)
    }
}

impl Drop for KeyedGuard<'_> {
    fn drop(&mut self) {
        let mut locks = self.owner.locks.lock().expect("lock map poisoned");
        // Two references left (the map's and this guard's): nobody else waits.
        if locks
            .get(&self.key)
            .is_some_and(|l| Arc::strong_count(l) <= 2)
        {
            locks.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_store::{FsBlobStore, NewManifest, SqliteStore};

    /// Stores an empty index as whatever manifest is asked for by digest,
    /// and counts the misses it is asked about.
    struct Fetcher {
        metadata: Arc<dyn MetadataStore>,
        content: Bytes,
        asked: Mutex<Vec<String>>,
    }

    impl ReadMiss for Fetcher {
        fn manifest<'a>(
            &'a self,
            repository: &'a RepositoryName,
            reference: &'a Reference,
        ) -> MissFuture<'a> {
            Box::pin(async move {
                self.asked.lock().unwrap().push(reference.to_string());
                let Reference::Digest(digest) = reference else {
                    return Ok(false);
                };
                if *digest != Digest::of(Algorithm::Sha256, &self.content) {
                    return Ok(false);
                }
                self.metadata.ensure_repository(repository).await?;
                let manifest = NewManifest {
                    digest: digest.clone(),
                    media_type: manifest::OCI_INDEX.into(),
                    content: self.content.clone(),
                    artifact_type: None,
                    subject: None,
                    annotations: None,
                    blobs: Vec::new(),
                    children: Vec::new(),
                    blobs_follow: false,
                };
                self.metadata
                    .put_manifest(repository, &manifest, &[], &[])
                    .await?;
                Ok(true)
            })
        }

        fn blob<'a>(&'a self, _: &'a RepositoryName, digest: &'a Digest) -> MissFuture<'a> {
            Box::pin(async move {
                self.asked.lock().unwrap().push(digest.to_string());
                Ok(false)
            })
        }
    }

    /// SQLite and a blob directory in `dir`.
    async fn stores_in(dir: &tempfile::TempDir) -> (Arc<dyn MetadataStore>, Arc<dyn BlobStore>) {
        let metadata: Arc<dyn MetadataStore> =
            Arc::new(SqliteStore::open(&dir.path().join("m.db")).await.unwrap());
        let blobs: Arc<dyn BlobStore> = Arc::new(FsBlobStore::open(dir.path().join("b")).unwrap());
        (metadata, blobs)
    }

    #[tokio::test]
    async fn reads_that_miss_ask_the_hook_once() {
        let dir = tempfile::tempdir().unwrap();
        let (metadata, blobs) = stores_in(&dir).await;
        let registry = Registry::new(metadata.clone(), blobs, RegistryConfig::default());
        let content = Bytes::from_static(
            br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#,
        );
        let fetcher = Arc::new(Fetcher {
            metadata,
            content: content.clone(),
            asked: Mutex::default(),
        });
        registry.on_read_miss(fetcher.clone());
        let repo: RepositoryName = "cache/app".parse().unwrap();
        let digest = Digest::of(Algorithm::Sha256, &content);

        let found = registry
            .get_manifest(&repo, &Reference::Digest(digest.clone()))
            .await
            .unwrap();
        assert_eq!(found.content, content);
        // Found now without asking.
        registry
            .get_manifest(&repo, &Reference::Digest(digest.clone()))
            .await
            .unwrap();
        let tag: Reference = "missing".parse().unwrap();
        assert!(matches!(
            registry.get_manifest(&repo, &tag).await,
            Err(RegistryError::ManifestUnknown)
        ));
        let other = Digest::of(Algorithm::Sha256, b"layer");
        assert!(matches!(
            registry.blob_size(&repo, &other).await,
            Err(RegistryError::BlobUnknown)
        ));
        assert_eq!(
            *fetcher.asked.lock().unwrap(),
            [digest.to_string(), "missing".to_string(), other.to_string()]
        );
    }

    #[tokio::test]
    async fn a_write_that_brings_nothing_records_no_piece() {
        let dir = tempfile::tempdir().unwrap();
        let (metadata, blobs) = stores_in(&dir).await;
        let config = RegistryConfig {
            create_on_push: true,
            ..RegistryConfig::default()
        };
        let registry = Registry::new(metadata, blobs, config);
        let repo: RepositoryName = "app".parse().unwrap();
        let upload = registry
            .start_upload(&repo, Algorithm::Sha256)
            .await
            .unwrap();
        let layer = Bytes::from_static(b"a layer");
        let mut body = futures_util::stream::iter([Ok(layer.clone())]);
        let written = registry
            .write_upload(&repo, &upload.id, Some(0), None, &mut body)
            .await
            .unwrap();
        assert_eq!((written.size, written.pieces.len()), (7, 1));
        let mut nothing = futures_util::stream::iter(Vec::<io::Result<Bytes>>::new());
        let after = registry
            .write_upload(&repo, &upload.id, Some(7), Some(0), &mut nothing)
            .await
            .unwrap();
        // One piece still: a store that commits a single piece by copying it
        // (S3) keeps doing so.
        assert_eq!(after.pieces, written.pieces);
        let digest = Digest::of(Algorithm::Sha256, &layer);
        registry
            .finish_upload(&repo, &upload.id, &digest, None)
            .await
            .unwrap();
        assert_eq!(registry.blob_size(&repo, &digest).await.unwrap(), 7);
    }
}
