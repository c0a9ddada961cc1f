//! berth's storage: two small traits and their backends.
//!
//! [`MetadataStore`] keeps everything a request needs to decide (repositories,
//! blob links, manifests, tags, upload sessions) so that no request path ever
//! lists an object store. [`BlobStore`] keeps bytes: upload staging areas and
//! content-addressed blobs. The registry service combines them; neither knows
//! about HTTP.

use std::io;
use std::ops::Range;
use std::pin::Pin;
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use berth_core::{Digest, RepositoryName, Tag};
use bytes::Bytes;
use futures_util::Stream;

pub mod access;
pub mod builds;
pub mod console;
pub mod events;
pub mod fs;
pub mod gc;
pub mod jobs;
pub mod lifecycle;
pub mod links;
pub mod manifests;
pub mod postgres;
pub mod privatize;
pub mod promotions;
pub mod pull_through;
pub mod quota;
pub mod read_cache;
pub mod replication;
pub mod repositories;
pub mod s3;
pub mod scans;
pub mod secrets;
pub mod signing;
pub mod sqlite;
pub mod templates;
pub mod tiers;
pub mod uploads;
pub mod webhooks;

pub use access::{
    AccessKeyRecord, AccessStore, DeleteEntityOutcome, Dependent, IamEntity, IamKind, IamLink,
    LinkKind,
};
pub use builds::{Build, BuildStore};
pub use console::{ConsoleSession, ConsoleStore, LoginProfile};
pub use events::{Event, EventStore, NewEvent};
pub use fs::FsBlobStore;
pub use gc::GcStore;
pub use jobs::{Job, JobOutcome, JobStore, NewJob};
pub use lifecycle::{LifecycleImage, LifecyclePolicyRecord, LifecycleStore};
pub use links::LinkStore;
pub use manifests::ManifestStore;
pub use postgres::PgStore;
pub use privatize::{Privatization, PrivatizeStore};
pub use promotions::{PromotionRecord, PromotionStore};
pub use pull_through::{PullThroughRule, PullThroughStore};
pub use quota::QuotaStore;
pub use replication::{
    BACKFILL_ACTIVE, Backfill, BackfillItem, BackfillProgress, ReplicationStatus, ReplicationStore,
};
pub use repositories::RepositoryStore;
pub use s3::S3BlobStore;
pub use scans::{AdvisoryRow, ImageScanRecord, ScanStore};
pub use secrets::{SecretRecord, SecretStore};
pub use signing::{SigningStatus, SigningStore};
pub use sqlite::SqliteStore;
pub use templates::{TemplateRecord, TemplateStore};
pub use uploads::UploadStore;
pub use webhooks::{DeadLetter, Webhook, WebhookStore};

/// Bytes arriving from a client, borrowed for the length of one write.
pub type ByteStream<'a> = dyn Stream<Item = io::Result<Bytes>> + Send + Unpin + 'a;

/// Marks a blob of the given size wanted (see [`BlobStore::put_verified_blob`]).
pub type Wanted<'a> =
    &'a (dyn Fn(u64) -> futures_util::future::BoxFuture<'static, Result<()>> + Send + Sync);

/// Bytes of a stored blob, read lazily.
pub type BlobStream = Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send + 'static>>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    /// The client's body failed mid-stream; nothing was recorded.
    #[error("request body: {0}")]
    Body(io::Error),
    #[error("blob storage: {0}")]
    Io(#[from] io::Error),
    #[error("metadata database: {0}")]
    Database(String),
    /// A repository would carry more resource tags than allowed.
    #[error("too many tags")]
    TooManyTags,
    /// Bytes an upload's record covers are no longer staged (lost in a
    /// crash, or removed behind berth's back): the upload cannot go on.
    #[error("staged upload bytes are missing: {0}")]
    StagingLost(String),
    /// Every database connection stayed busy for the pool's whole wait: the
    /// caller should come back later (never a server error).
    #[error("the metadata database is busy")]
    Busy,
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// The hottest reads — a manifest, a blob's size, a page of tags: what a
/// fleet's pulls ask — on a path of their own where the backend has one. On
/// SQLite that is a connection used on the calling thread, which spares the
/// driver's worker-thread round trips (README, "Performance"). `None`: no such
/// path, or it could not answer at once; the caller then asks its pool.
pub(crate) trait HotReads {
    fn hot<T>(
        &self,
        _read: impl FnOnce(&rusqlite::Connection) -> rusqlite::Result<T>,
    ) -> Option<Result<T>> {
        None
    }

    /// The cache of these reads, where the backend keeps one (PostgreSQL,
    /// whose every read is a round trip to another process).
    fn cache(&self) -> Option<&read_cache::ReadCache> {
        None
    }

    /// A write that may change what the hot reads answer has committed.
    fn changed(&self) {
        if let Some(cache) = self.cache() {
            cache.changed();
        }
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Database(e.to_string())
    }
}

/// Milliseconds since the Unix epoch: the one time unit in the metadata store.
pub fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Blob bytes: upload staging areas and content-addressed blobs.
///
/// A blob becomes readable only through [`BlobStore::commit_upload`], after the
/// service verified its digest; the metadata store decides who may see it.
#[async_trait]
pub trait BlobStore: Send + Sync + 'static {
    /// Holds off other writers of upload `id`, in any process sharing this
    /// store, until the guard is dropped: the caller reads the upload's
    /// recorded state, writes and records under it. Stores whose pieces are
    /// separate objects need no lock and return a guard that holds nothing.
    async fn lock_upload(&self, id: &str) -> Result<UploadLock>;

    /// Writes `data` as the piece named `piece` of upload `id`, from where
    /// the upload's recorded state `upload` ends, durably: when this returns,
    /// the bytes survive a crash. Anything staged past that point that the
    /// record does not cover (a write that failed or lost) is discarded or
    /// ignored. Returns the number of bytes written (a write of none may
    /// stage nothing, and the caller records no piece for it); fails with
    /// [`StoreError::StagingLost`] if staged bytes the record covers are gone.
    async fn write_upload(
        &self,
        upload: &Upload,
        piece: &str,
        data: &mut ByteStream<'_>,
    ) -> Result<u64>;

    /// Writes a blob whose digest the caller knows before its bytes arrive
    /// straight to where blobs are read from, where this store can do so
    /// without staging it first. `data` verifies itself: it ends in an error,
    /// not its end, when its bytes are not the blob's. Nothing becomes
    /// readable unless it ends well, and only after `wanted(size)` has run
    /// (marking the blob wanted, so a collection cannot remove it). Returns
    /// the size written, or `None`, having read nothing of `data`, when this
    /// store stages instead (the default) or the blob is already there.
    async fn put_verified_blob(
        &self,
        _digest: &Digest,
        _data: &mut ByteStream<'_>,
        _wanted: Wanted<'_>,
    ) -> Result<Option<u64>> {
        Ok(None)
    }

    /// The staged bytes of `upload`, as recorded (its pieces, its size).
    async fn read_upload(&self, upload: &Upload) -> Result<BlobStream>;

    /// Makes the staged bytes of `upload`, as recorded, the content of
    /// `digest`, durably, and drops the staging area. If the blob already
    /// exists, the staged bytes are dropped. Fails with
    /// [`StoreError::StagingLost`] if recorded bytes are missing: nothing
    /// is ever zero-filled.
    async fn commit_upload(&self, upload: &Upload, digest: &Digest) -> Result<()>;

    /// Drops upload `id`'s staging area, if any.
    async fn delete_upload(&self, id: &str) -> Result<()>;

    /// Staging areas last written before `cutoff` (for the clean-up of
    /// uploads whose metadata never got written or was already removed).
    async fn stale_uploads(&self, cutoff: SystemTime) -> Result<Vec<String>>;

    /// Streams a committed blob, or the byte `range` of it.
    async fn read(&self, digest: &Digest, range: Option<Range<u64>>) -> Result<BlobStream>;

    /// Removes a committed blob. Only garbage collection calls this.
    async fn delete(&self, digest: &Digest) -> Result<()>;

    /// Answers if the storage is reachable and writable (for readiness checks).
    async fn ping(&self) -> Result<()>;

    /// A URL from which `digest` downloads directly, without berth, for
    /// `valid_for` (an S3 presigned URL); `None` where the store has none.
    async fn direct_url(
        &self,
        digest: &Digest,
        valid_for: std::time::Duration,
    ) -> Result<Option<String>>;
}

/// An upload session, as recorded after its last successful write.
#[derive(Clone, Debug)]
pub struct Upload {
    pub id: String,
    pub repository: RepositoryName,
    /// Bytes received so far.
    pub size: u64,
    /// The saved incremental hash of those bytes ([`berth_core::Hasher::save`]).
    pub hash_state: Vec<u8>,
    /// Bytes of the last write.
    pub last_part: u64,
    pub updated_at: i64,
    /// The staged pieces that make up `size`, in order, as the blob store
    /// named them: bytes a losing or failed writer staged are never read.
    pub pieces: Vec<String>,
}

impl Upload {
    /// The size of each recorded write, in order, from the offsets that
    /// begin the pieces' names (`<offset:020>-…`).
    pub fn piece_sizes(&self) -> Vec<u64> {
        let offsets: Vec<u64> = self
            .pieces
            .iter()
            .filter_map(|p| p.split('-').next()?.parse().ok())
            .collect();
        offsets
            .iter()
            .enumerate()
            .map(|(i, start)| offsets.get(i + 1).copied().unwrap_or(self.size) - start)
            .collect()
    }
}

/// Held while one writer reads, writes and records an upload (see
/// [`BlobStore::lock_upload`]); dropping it lets the next writer in.
pub struct UploadLock(pub Option<Box<dyn std::any::Any + Send + Sync>>);

/// An upload's recorded pieces, from their stored form.
pub fn split_pieces(stored: &str) -> Vec<String> {
    stored.split_whitespace().map(str::to_string).collect()
}

#[derive(Clone, Debug)]
pub struct StoredManifest {
    pub digest: Digest,
    pub media_type: String,
    pub content: Bytes,
    /// When it was last pulled, as last recorded.
    pub last_pulled_at: Option<i64>,
    /// `ACTIVE`, `ARCHIVED` or `ACTIVATING`: only an active image is pulled.
    pub image_status: String,
}

/// A manifest to record, with what it references.
#[derive(Clone, Debug)]
pub struct NewManifest {
    pub digest: Digest,
    pub media_type: String,
    pub content: Bytes,
    pub artifact_type: Option<String>,
    pub subject: Option<Digest>,
    /// The manifest's `annotations` object as JSON text.
    pub annotations: Option<String>,
    /// Blobs that must be linked to the repository.
    pub blobs: Vec<Digest>,
    /// Manifests that must exist in the repository.
    pub children: Vec<Digest>,
    /// The blobs may come later (a pull-through cache stores a manifest
    /// first and its blobs as they are asked for): not required linked.
    pub blobs_follow: bool,
}

#[derive(Debug, PartialEq, Eq)]
pub enum PutManifestOutcome {
    Stored,
    /// The repository's tags are immutable and this tag already names another manifest.
    TagImmutable(Tag),
    MissingBlobs(Vec<Digest>),
    MissingManifests(Vec<Digest>),
}

#[derive(Debug, PartialEq, Eq)]
pub enum DeleteManifestOutcome {
    Deleted,
    NotFound,
    /// An index in the repository still lists it.
    ReferencedBy(Digest),
}

/// Which images a listing includes, by whether they carry tags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TagStatus {
    Tagged,
    Untagged,
    Any,
}

/// An image (a manifest) with its tags, as the ECR image operations show it.
#[derive(Clone, Debug)]
pub struct ImageRecord {
    pub digest: Digest,
    pub media_type: String,
    pub artifact_type: Option<String>,
    pub pushed_at: i64,
    pub last_pulled_at: Option<i64>,
    /// In lexical order.
    pub tags: Vec<String>,
    pub content: Bytes,
    /// `ACTIVE`, `ARCHIVED` or `ACTIVATING`.
    pub image_status: String,
    pub last_archived_at: Option<i64>,
    pub last_activated_at: Option<i64>,
}

/// Which images a listing shows by status (ECR's `imageStatus` filter):
/// without one, only active images, as on ECR.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ImageStatusFilter {
    #[default]
    Active,
    Archived,
    Activating,
    Any,
}

impl ImageStatusFilter {
    /// `ACTIVE`, `ARCHIVED`, `ACTIVATING` or `ANY`.
    pub fn parse(text: &str) -> Option<ImageStatusFilter> {
        Some(match text {
            "ACTIVE" => ImageStatusFilter::Active,
            "ARCHIVED" => ImageStatusFilter::Archived,
            "ACTIVATING" => ImageStatusFilter::Activating,
            "ANY" => ImageStatusFilter::Any,
            _ => return None,
        })
    }

    /// The SQL condition on `m.image_status` (`m`: the manifests row).
    pub(crate) fn condition(self) -> &'static str {
        match self {
            ImageStatusFilter::Active => "AND m.image_status = 'ACTIVE'",
            ImageStatusFilter::Archived => "AND m.image_status = 'ARCHIVED'",
            ImageStatusFilter::Activating => "AND m.image_status = 'ACTIVATING'",
            ImageStatusFilter::Any => "",
        }
    }
}

/// A repository's ECR settings and resource tags.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RepositoryRecord {
    pub name: RepositoryName,
    pub created_at: i64,
    /// `MUTABLE`, `IMMUTABLE`, `IMMUTABLE_WITH_EXCLUSION` or `MUTABLE_WITH_EXCLUSION`.
    pub image_tag_mutability: String,
    /// Wildcard filters of the `_WITH_EXCLUSION` settings.
    pub tag_mutability_exclusions: Vec<String>,
    pub scan_on_push: bool,
    /// `AES256`, `KMS` or `KMS_DSSE`.
    pub encryption_type: String,
    pub kms_key: Option<String>,
    pub tags: Vec<(String, String)>,
}

impl RepositoryRecord {
    /// A new repository with ECR's default settings (mutable tags, AES256,
    /// no scan on push) and `tags`, created now.
    pub fn new(name: RepositoryName, tags: Vec<(String, String)>) -> RepositoryRecord {
        RepositoryRecord {
            name,
            created_at: now_millis(),
            image_tag_mutability: "MUTABLE".into(),
            tag_mutability_exclusions: Vec::new(),
            scan_on_push: false,
            encryption_type: "AES256".into(),
            kms_key: None,
            tags,
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum DeleteRepositoryOutcome {
    Deleted(RepositoryRecord),
    NotFound,
    /// It still holds images and `force` was not given.
    NotEmpty,
}

/// One entry of the referrers API's index.
#[derive(Clone, Debug)]
pub struct Referrer {
    pub digest: Digest,
    pub media_type: String,
    pub size: u64,
    pub artifact_type: Option<String>,
    pub annotations: Option<String>,
}

/// Registry metadata. Every method is one atomic step. Identities and
/// policies live in the same database, behind [`AccessStore`]; lifecycle
/// policies behind [`LifecycleStore`].
#[async_trait]
pub trait MetadataStore:
    AccessStore
    + BuildStore
    + WebhookStore
    + ReplicationStore
    + SigningStore
    + ConsoleStore
    + TemplateStore
    + EventStore
    + GcStore
    + JobStore
    + LifecycleStore
    + LinkStore
    + ManifestStore
    + PrivatizeStore
    + PromotionStore
    + PullThroughStore
    + QuotaStore
    + RepositoryStore
    + ScanStore
    + SecretStore
    + UploadStore
    + Send
    + Sync
    + 'static
{
    /// Answers if the database does (for readiness checks).
    async fn ping(&self) -> Result<()>;
}
