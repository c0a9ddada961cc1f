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

pub struct Registry {
    metadata: Arc<dyn MetadataStore>,
    blobs: Arc<dyn BlobStore>,
    config: RegistryConfig,
    upload_locks: KeyedLocks,
    /// This process, among the nodes sharing the database.
    node_id: String,
}

impl Registry {
    pub fn new(
        metadata: Arc<dyn MetadataStore>,
        blobs: Arc<dyn BlobStore>,
        config: RegistryConfig,
    ) -> Registry {
        Registry {
            metadata,
            blobs,
            config,
            upload_locks: KeyedLocks::default(),
            node_id: uuid::Uuid::new_v4().to_string(),
        }
    }

    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    /// Jobs in the durable queue by kind and state (all nodes).
    pub async fn job_counts(&self) -> std::result::Result<Vec<(String, String, i64)>, StoreError> {
        self.metadata.job_counts().await
    }

    pub async fn readiness(&self) -> (Result<(), StoreError>, Result<(), StoreError>) {
        (self.metadata.ping().await, self.blobs.ping().await)
    }

    pub fn config(&self) -> &RegistryConfig {
        &self.config
    }

    // ---- repositories ----

    pub fn name_unknown(&self, name: &RepositoryName) -> RegistryError {
        RegistryError::NameUnknown {
            name: name.to_string(),
            registry_id: self.config.registry_id.clone(),
        }
    }

    /// Whether a push to `repository` would create it (it is missing and
    /// repositories are created on push).
    pub async fn push_creates(&self, repository: &RepositoryName) -> Result<bool> {
        Ok(self.config.create_on_push && !self.metadata.repository_exists(repository).await?)
    }

    /// Refuses a push to a missing repository unless repositories are
    /// created on push (within the repository quota): then it creates it.
    /// The writes that follow never create a repository themselves, so one
    /// deleted while a push is in flight stays deleted.
    async fn check_pushable(&self, repository: &RepositoryName) -> Result<()> {
        if self.metadata.repository_exists(repository).await? {
            Ok(())
        } else if self.config.create_on_push {
            self.check_repository_quota().await?;
            Ok(self.metadata.ensure_repository(repository).await?)
        } else {
            Err(self.name_unknown(repository))
        }
    }

    async fn check_repository_quota(&self) -> Result<()> {
        let limit = self.config.quotas.repositories;
        if self.metadata.repository_count().await? >= limit {
            return Err(RegistryError::LimitExceeded(format!(
                "The maximum number of repositories ({limit}) in the registry with id '{}' has been reached",
                self.config.registry_id
            )));
        }
        Ok(())
    }

    pub async fn create_repository(&self, record: RepositoryRecord) -> Result<RepositoryRecord> {
        if self.metadata.repository_exists(&record.name).await? {
            return Err(RegistryError::RepositoryAlreadyExists);
        }
        self.check_repository_quota().await?;
        self.metadata
            .create_repository(&record)
            .await?
            .ok_or(RegistryError::RepositoryAlreadyExists)
    }

    pub async fn repository(&self, name: &RepositoryName) -> Result<RepositoryRecord> {
        self.metadata
            .get_repository(name)
            .await?
            .ok_or_else(|| self.name_unknown(name))
    }

    /// A page of repositories after `last`, and whether more follow.
    pub async fn repositories(
        &self,
        last: Option<&str>,
        limit: u32,
    ) -> Result<(Vec<RepositoryRecord>, bool)> {
        let mut page = self
            .metadata
            .list_repository_records(last, limit.saturating_add(1))
            .await?;
        let more = page.len() > limit as usize;
        page.truncate(limit as usize);
        Ok((page, more))
    }

    /// Changes the given settings of a repository.
    pub async fn update_repository_settings(
        &self,
        name: &RepositoryName,
        image_tag_mutability: Option<(&str, &[String])>,
        scan_on_push: Option<bool>,
    ) -> Result<RepositoryRecord> {
        self.metadata
            .update_repository_settings(name, image_tag_mutability, scan_on_push)
            .await?
            .ok_or_else(|| self.name_unknown(name))
    }

    /// Sets and removes a repository's resource tags, at most `limit` in all.
    pub async fn retag_repository(
        &self,
        name: &RepositoryName,
        set: &[(String, String)],
        remove: &[String],
        limit: usize,
    ) -> Result<()> {
        match self
            .metadata
            .retag_repository(name, set, remove, limit)
            .await
        {
            Ok(true) => Ok(()),
            Ok(false) => Err(self.name_unknown(name)),
            Err(StoreError::TooManyTags) => Err(RegistryError::TooManyTags(limit)),
            Err(e) => Err(e.into()),
        }
    }

    /// Deletes a repository; with `force`, together with its images.
    pub async fn delete_repository(
        &self,
        name: &RepositoryName,
        force: bool,
    ) -> Result<RepositoryRecord> {
        match self.metadata.delete_repository(name, force).await? {
            DeleteRepositoryOutcome::Deleted(record) => Ok(record),
            DeleteRepositoryOutcome::NotFound => Err(self.name_unknown(name)),
            DeleteRepositoryOutcome::NotEmpty => Err(RegistryError::RepositoryNotEmpty),
        }
    }

    // ---- blobs ----

    /// The size of a blob linked to `repository`.
    pub async fn blob_size(&self, repository: &RepositoryName, digest: &Digest) -> Result<u64> {
        self.metadata
            .blob_size(repository, digest)
            .await?
            .ok_or(RegistryError::BlobUnknown)
    }

    /// Streams a blob (or `range` of it, already checked against its size).
    pub async fn read_blob(
        &self,
        digest: &Digest,
        range: Option<Range<u64>>,
    ) -> Result<BlobStream> {
        match self.blobs.read(digest, range).await {
            Err(StoreError::NotFound) => Err(RegistryError::BlobUnknown),
            other => Ok(other?),
        }
    }

    /// A URL on the object store from which the blob downloads directly, if
    /// the store can sign one.
    pub async fn direct_blob_url(
        &self,
        digest: &Digest,
        valid_for: Duration,
    ) -> Result<Option<String>> {
        Ok(self.blobs.direct_url(digest, valid_for).await?)
    }

    /// Removes the blob from `repository`. The bytes stay until garbage
    /// collection finds nothing referencing them.
    pub async fn delete_blob(&self, repository: &RepositoryName, digest: &Digest) -> Result<()> {
        if self.metadata.unlink_blob(repository, digest).await? {
            Ok(())
        } else {
            Err(RegistryError::BlobUnknown)
        }
    }

    /// Whether an image of `repository` references the blob.
    pub async fn blob_referenced(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
    ) -> Result<bool> {
        Ok(self.metadata.blob_referenced(repository, digest).await?)
    }

    /// Links a blob of `from` into `repository`; `None` if `from` lacks it.
    pub async fn mount_blob(
        &self,
        repository: &RepositoryName,
        from: &RepositoryName,
        digest: &Digest,
    ) -> Result<Option<u64>> {
        self.check_pushable(repository).await?;
        self.metadata
            .mount_blob(repository, from, digest)
            .await
            .map_err(|e| self.repository_gone(e, repository))
    }

    // ---- uploads ----

    /// Opens an upload session hashing with `algorithm` (the algorithm of the
    /// digest the client will give, if it said).
    pub async fn start_upload(
        &self,
        repository: &RepositoryName,
        algorithm: Algorithm,
    ) -> Result<Upload> {
        self.check_pushable(repository).await?;
        let upload = Upload {
            // Hyphenated: ECR's model requires it of upload ids.
            id: uuid::Uuid::new_v4().to_string(),
            repository: repository.clone(),
            size: 0,
            hash_state: Hasher::new(algorithm).save(),
            last_part: 0,
            updated_at: now_millis(),
            pieces: Vec::new(),
        };
        self.metadata
            .create_upload(&upload)
            .await
            .map_err(|e| self.repository_gone(e, repository))?;
        Ok(upload)
    }

    pub async fn upload_status(&self, repository: &RepositoryName, id: &str) -> Result<Upload> {
        self.metadata
            .get_upload(repository, id)
            .await?
            .ok_or(RegistryError::UploadUnknown)
    }

    /// Appends `data` to the upload. `start`, when the client sent a
    /// `Content-Range`, must be where the upload ends; `len`, when it sent a
    /// length, must be what arrives.
    pub async fn write_upload(
        &self,
        repository: &RepositoryName,
        id: &str,
        start: Option<u64>,
        len: Option<u64>,
        data: &mut ByteStream<'_>,
    ) -> Result<Upload> {
        let _guard = self.upload_locks.lock(id).await;
        // Read, write and record under the staging lock: another node's writer
        // waits, then sees what this one recorded.
        let _staging = self.blobs.lock_upload(id).await?;
        let upload = self.upload_status(repository, id).await?;
        if let Some(start) = start
            && start != upload.size
        {
            return Err(RegistryError::RangeInvalid { size: upload.size });
        }
        self.append(upload, len, data).await
    }

    /// A store's `NotFound` while writing into `repository`: the repository
    /// was deleted meanwhile (and stays deleted).
    fn repository_gone(&self, e: StoreError, repository: &RepositoryName) -> RegistryError {
        match e {
            StoreError::NotFound => self.name_unknown(repository),
            other => other.into(),
        }
    }

    /// An upload whose staged bytes are gone cannot go on: it is discarded,
    /// and the client starts over (`BLOB_UPLOAD_UNKNOWN`).
    async fn staging_lost(&self, id: &str, why: &str) -> Result<RegistryError> {
        tracing::warn!(
            upload = id,
            why,
            "an upload's staged bytes are gone; it is discarded"
        );
        self.discard_upload(id).await?;
        Ok(RegistryError::UploadUnknown)
    }

    async fn append(
        &self,
        upload: Upload,
        len: Option<u64>,
        data: &mut ByteStream<'_>,
    ) -> Result<Upload> {
        let mut hasher =
            Hasher::restore(&upload.hash_state).map_err(|e| StoreError::Database(e.to_string()))?;
        let mut hashing = Hashing {
            inner: data,
            hasher: &mut hasher,
            allowed: self.config.quotas.layer_size.saturating_sub(upload.size),
        };
        // Named uniquely, so that the record says which staged bytes count.
        let piece = format!("{:020}-{}", upload.size, uuid::Uuid::new_v4().simple());
        let written = match self.blobs.write_upload(&upload, &piece, &mut hashing).await {
            Err(StoreError::StagingLost(why)) => {
                return Err(self.staging_lost(&upload.id, &why).await?);
            }
            Err(StoreError::Body(e)) if e.kind() == io::ErrorKind::FileTooLarge => {
                return Err(RegistryError::LimitExceeded(format!(
                    "a layer may be at most {} bytes",
                    self.config.quotas.layer_size
                )));
            }
            Err(StoreError::Body(e)) => {
                return Err(RegistryError::UploadInvalid(format!(
                    "request body ended early: {e}"
                )));
            }
            other => other?,
        };
        if let Some(len) = len
            && len != written
        {
            return Err(RegistryError::SizeInvalid(format!(
                "received {written} bytes, expected {len}"
            )));
        }
        let mut pieces = upload.pieces.clone();
        pieces.push(piece);
        let advanced = Upload {
            size: upload.size + written,
            hash_state: hasher.save(),
            last_part: written,
            updated_at: now_millis(),
            pieces,
            ..upload
        };
        if !self.metadata.advance_upload(&advanced, upload.size).await? {
            return Err(RegistryError::UploadUnknown);
        }
        Ok(advanced)
    }

    /// Appends the last chunk (if any), verifies the whole upload against
    /// `digest` and makes it a blob of the repository. On a mismatch the upload
    /// is discarded: nothing of it stays.
    pub async fn finish_upload(
        &self,
        repository: &RepositoryName,
        id: &str,
        digest: &Digest,
        last_chunk: Option<(Option<u64>, &mut ByteStream<'_>)>,
    ) -> Result<()> {
        let _guard = self.upload_locks.lock(id).await;
        let _staging = self.blobs.lock_upload(id).await?;
        let mut upload = self.upload_status(repository, id).await?;
        if let Some((start, data)) = last_chunk {
            if let Some(start) = start
                && start != upload.size
            {
                return Err(RegistryError::RangeInvalid { size: upload.size });
            }
            upload = self.append(upload, None, data).await?;
        }
        let computed = match self.digest_of(&upload, digest.algorithm()).await {
            Err(RegistryError::Internal(StoreError::StagingLost(why))) => {
                return Err(self.staging_lost(id, &why).await?);
            }
            other => other?,
        };
        if &computed != digest {
            self.discard_upload(id).await?;
            return Err(RegistryError::DigestInvalid(format!(
                "upload content has digest {computed}, not {digest}"
            )));
        }
        // Committing runs to its end even if the client goes away meanwhile
        // (the server then drops this future): a blob on disk whose upload
        // was never completed would make every retry fail.
        let (blobs, metadata) = (self.blobs.clone(), self.metadata.clone());
        let digest = digest.clone();
        let committed = tokio::spawn(async move {
            // Wanted from now on: garbage collection leaves the bytes alone.
            metadata.touch_blob(&digest, upload.size).await?;
            blobs.commit_upload(&upload, &digest).await?;
            metadata.complete_upload(&upload, &digest).await
        })
        .await
        .map_err(|e| StoreError::Database(format!("blob commit task failed: {e}")))?;
        match committed {
            Ok(()) => Ok(()),
            Err(StoreError::StagingLost(why)) => Err(self.staging_lost(id, &why).await?),
            // The upload went with its repository, deleted meanwhile.
            Err(StoreError::NotFound) => Err(RegistryError::UploadUnknown),
            Err(e) => Err(e.into()),
        }
    }

    /// The digest of the upload's bytes with `algorithm`: from the saved hash
    /// when it was computed with that algorithm, else by reading them back.
    async fn digest_of(&self, upload: &Upload, algorithm: Algorithm) -> Result<Digest> {
        let hasher =
            Hasher::restore(&upload.hash_state).map_err(|e| StoreError::Database(e.to_string()))?;
        if hasher.algorithm() == algorithm {
            return Ok(hasher.finish());
        }
        let mut hasher = Hasher::new(algorithm);
        if upload.size > 0 {
            let mut staged = self.blobs.read_upload(upload).await?;
            while let Some(frame) = futures_util::StreamExt::next(&mut staged).await {
                hasher.update(&frame.map_err(StoreError::Io)?);
            }
        }
        Ok(hasher.finish())
    }

    /// Pushes a whole blob in one request.
    pub async fn put_blob(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
        data: &mut ByteStream<'_>,
    ) -> Result<()> {
        let upload = self.start_upload(repository, digest.algorithm()).await?;
        let result = self
            .finish_upload(repository, &upload.id, digest, Some((None, data)))
            .await;
        if result.is_err() {
            self.discard_upload(&upload.id).await?;
        }
        result
    }

    pub async fn cancel_upload(&self, repository: &RepositoryName, id: &str) -> Result<()> {
        let _guard = self.upload_locks.lock(id).await;
        self.upload_status(repository, id).await?;
        self.discard_upload(id).await
    }

    async fn discard_upload(&self, id: &str) -> Result<()> {
        self.metadata.delete_upload(id).await?;
        self.blobs.delete_upload(id).await?;
        Ok(())
    }

    /// Removes uploads not written to within the upload timeout, and staging
    /// data that no upload owns. Returns how many were removed.
    pub async fn clean_stale_uploads(&self) -> Result<usize> {
        let timeout = self.config.upload_timeout;
        let cutoff = now_millis() - timeout.as_millis() as i64;
        let mut removed = 0;
        for id in self.metadata.stale_uploads(cutoff).await? {
            let _guard = self.upload_locks.lock(&id).await;
            self.discard_upload(&id).await?;
            removed += 1;
        }
        // Staging data whose metadata was never written (a crash between the
        // two) or already removed. Its age is well past any live upload's.
        let orphan_cutoff = SystemTime::now() - timeout;
        for id in self.blobs.stale_uploads(orphan_cutoff).await? {
            if self.upload_locks.is_locked(&id) {
                continue;
            }
            self.blobs.delete_upload(&id).await?;
            removed += 1;
        }
        Ok(removed)
    }

    // ---- manifests ----

    pub async fn get_manifest(
        &self,
        repository: &RepositoryName,
        reference: &Reference,
    ) -> Result<StoredManifest> {
        match self.metadata.get_manifest(repository, reference).await? {
            Some(m) => Ok(m),
            None => Err(self
                .missing(repository, RegistryError::ManifestUnknown)
                .await?),
        }
    }

    /// Records a pull of `digest` (last recorded at `last_pulled_at`) in
    /// the background, at most hourly, as ECR refreshes `lastRecordedPullTime`.
    pub fn note_pull(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
        last_pulled_at: Option<i64>,
    ) {
        const REFRESH_MILLIS: i64 = 3600 * 1000;
        let now = now_millis();
        if last_pulled_at.is_some_and(|at| now - at < REFRESH_MILLIS) {
            return;
        }
        let (metadata, repository, digest) =
            (self.metadata.clone(), repository.clone(), digest.clone());
        tokio::spawn(async move {
            if let Err(e) = metadata.record_pull(&repository, &digest, now).await {
                tracing::warn!(error = %e, "could not record a pull");
            }
        });
    }

    /// `err` if the repository exists, else `NameUnknown`.
    async fn missing(
        &self,
        repository: &RepositoryName,
        err: RegistryError,
    ) -> Result<RegistryError> {
        Ok(if self.metadata.repository_exists(repository).await? {
            err
        } else {
            self.name_unknown(repository)
        })
    }

    /// Stores a manifest pushed by `reference`, tagging it with the tag of
    /// the reference or, when pushed by digest, with `extra_tags`.
    pub async fn put_manifest(
        &self,
        repository: &RepositoryName,
        reference: &Reference,
        extra_tags: Vec<Tag>,
        content_type: Option<&str>,
        content: Bytes,
    ) -> Result<PutManifest> {
        self.check_pushable(repository).await?;
        let parsed = manifest::parse(&content, content_type)?;
        let (digest, tags) = match reference {
            Reference::Digest(expected) => {
                let actual = Digest::of(expected.algorithm(), &content);
                if &actual != expected {
                    return Err(RegistryError::DigestInvalid(format!(
                        "manifest has digest {actual}, not {expected}"
                    )));
                }
                (actual, extra_tags)
            }
            Reference::Tag(tag) => (Digest::of(Algorithm::Sha256, &content), vec![tag.clone()]),
        };
        let limit = self.config.quotas.images_per_repository;
        if !self.metadata.has_image(repository, &digest).await?
            && self.metadata.image_count(repository).await? >= limit
        {
            return Err(RegistryError::LimitExceeded(format!(
                "The maximum number of images ({limit}) in the repository '{repository}' has been reached"
            )));
        }
        let subject = parsed.subject.as_ref().map(|s| s.digest.clone());
        let record = NewManifest {
            digest: digest.clone(),
            media_type: parsed.media_type,
            content,
            artifact_type: parsed.artifact_type,
            subject: subject.clone(),
            annotations: parsed
                .annotations
                .map(|a| serde_json::Value::Object(a).to_string()),
            blobs: parsed.blobs.into_iter().map(|d| d.digest).collect(),
            children: parsed.children.into_iter().map(|d| d.digest).collect(),
        };
        let pushed = crate::events::image_action(
            "PUSH",
            repository.as_str(),
            &digest.to_string(),
            tags.first().map(Tag::as_str),
            &[],
        );
        match self
            .metadata
            .put_manifest(repository, &record, &tags, std::slice::from_ref(&pushed))
            .await
            .map_err(|e| self.repository_gone(e, repository))?
        {
            PutManifestOutcome::Stored => Ok(PutManifest {
                digest,
                subject,
                tags,
            }),
            PutManifestOutcome::TagImmutable(tag) => Err(RegistryError::TagImmutable {
                tag,
                repository: repository.clone(),
            }),
            PutManifestOutcome::MissingBlobs(d) => Err(RegistryError::ManifestBlobUnknown(d)),
            PutManifestOutcome::MissingManifests(d) => Err(RegistryError::ManifestChildUnknown(d)),
        }
    }

    /// Deletes a tag (by tag) or a manifest with all its tags (by digest).
    pub async fn delete_manifest(
        &self,
        repository: &RepositoryName,
        reference: &Reference,
    ) -> Result<()> {
        self.delete_manifest_noting(repository, reference, &[])
            .await
    }

    /// As [`Registry::delete_manifest`]; a deleted manifest's `DELETE` event
    /// carries `extra` (why it was deleted).
    pub async fn delete_manifest_noting(
        &self,
        repository: &RepositoryName,
        reference: &Reference,
        extra: &[(&str, serde_json::Value)],
    ) -> Result<()> {
        match reference {
            Reference::Tag(tag) => {
                if self.metadata.delete_tag(repository, tag).await? {
                    Ok(())
                } else {
                    Err(self
                        .missing(repository, RegistryError::ManifestUnknown)
                        .await?)
                }
            }
            Reference::Digest(digest) => {
                let deleted = crate::events::image_action(
                    "DELETE",
                    repository.as_str(),
                    &digest.to_string(),
                    None,
                    extra,
                );
                match self
                    .metadata
                    .delete_manifest(repository, digest, std::slice::from_ref(&deleted))
                    .await?
                {
                    DeleteManifestOutcome::Deleted => Ok(()),
                    DeleteManifestOutcome::NotFound => Err(self
                        .missing(repository, RegistryError::ManifestUnknown)
                        .await?),
                    DeleteManifestOutcome::ReferencedBy(parent) => {
                        Err(RegistryError::ManifestReferenced(parent))
                    }
                }
            }
        }
    }

    // ---- images (the ECR view of manifests) ----

    async fn existing(&self, repository: &RepositoryName) -> Result<()> {
        if self.metadata.repository_exists(repository).await? {
            Ok(())
        } else {
            Err(self.name_unknown(repository))
        }
    }

    /// A page of `(digest, tag)` ids after `after`, and whether more follow.
    pub async fn image_ids(
        &self,
        repository: &RepositoryName,
        after: Option<(&str, &str)>,
        limit: u32,
        status: TagStatus,
    ) -> Result<(Vec<(Digest, Option<String>)>, bool)> {
        self.existing(repository).await?;
        let mut ids = self
            .metadata
            .list_image_ids(repository, after, limit.saturating_add(1), status)
            .await?;
        let more = ids.len() > limit as usize;
        ids.truncate(limit as usize);
        Ok((ids, more))
    }

    /// A page of images after digest `after`, and whether more follow.
    pub async fn images(
        &self,
        repository: &RepositoryName,
        after: Option<&str>,
        limit: u32,
        status: TagStatus,
    ) -> Result<(Vec<ImageRecord>, bool)> {
        self.existing(repository).await?;
        let mut images = self
            .metadata
            .list_images(repository, after, limit.saturating_add(1), status)
            .await?;
        let more = images.len() > limit as usize;
        images.truncate(limit as usize);
        Ok((images, more))
    }

    /// The image a digest and/or a tag names; `None` when there is none (or
    /// the tag names another digest than the one given).
    pub async fn find_image(
        &self,
        repository: &RepositoryName,
        digest: Option<&Digest>,
        tag: Option<&Tag>,
    ) -> Result<Option<ImageRecord>> {
        let digest = match (digest, tag) {
            (Some(d), _) => d.clone(),
            (None, Some(tag)) => {
                match self
                    .metadata
                    .get_manifest(repository, &Reference::Tag(tag.clone()))
                    .await?
                {
                    Some(m) => m.digest,
                    None => return Ok(None),
                }
            }
            (None, None) => return Ok(None),
        };
        let image = self.metadata.image(repository, &digest).await?;
        Ok(image.filter(|i| tag.is_none_or(|t| i.tags.iter().any(|x| x == t.as_str()))))
    }

    /// An image's size as ECR reports it: its layers' compressed sizes; an
    /// index, its largest child's.
    /// An image's size as ECR reports it: its layers' sizes, or for an
    /// index its largest child's. `sizes` remembers every manifest sized in
    /// one call, so each is sized once however often indexes list it.
    pub async fn image_size(
        &self,
        repository: &RepositoryName,
        image: &ImageRecord,
        sizes: &mut ImageSizes,
    ) -> Result<u64> {
        if let Some(size) = sizes.0.get(&image.digest) {
            return Ok(*size);
        }
        let Ok(parsed) = manifest::parse(&image.content, Some(&image.media_type)) else {
            return Ok(image.content.len() as u64);
        };
        let size = match parsed.kind {
            manifest::ManifestKind::Image => {
                let config = parsed.config.as_ref().map(|c| &c.digest);
                parsed
                    .blobs
                    .iter()
                    .filter(|b| Some(&b.digest) != config)
                    .map(|b| b.size)
                    .fold(0u64, u64::saturating_add)
            }
            manifest::ManifestKind::Index => {
                let mut largest = 0;
                let children: std::collections::HashSet<&Digest> =
                    parsed.children.iter().map(|c| &c.digest).collect();
                for child in children {
                    let known = sizes.0.get(child).copied();
                    let size = match known {
                        Some(size) => size,
                        None => match self.metadata.image(repository, child).await? {
                            Some(child) => {
                                Box::pin(self.image_size(repository, &child, sizes)).await?
                            }
                            None => 0,
                        },
                    };
                    largest = largest.max(size);
                }
                largest
            }
        };
        sizes.0.insert(image.digest.clone(), size);
        Ok(size)
    }

    /// Removes a tag; when it was the image's last, the image goes too,
    /// unless an index still lists it. Returns the digest the tag named.
    pub async fn untag_image(
        &self,
        repository: &RepositoryName,
        tag: &Tag,
    ) -> Result<Option<Digest>> {
        let Some(manifest) = self
            .metadata
            .get_manifest(repository, &Reference::Tag(tag.clone()))
            .await?
        else {
            return Ok(None);
        };
        if !self.metadata.delete_tag(repository, tag).await? {
            return Ok(None);
        }
        if let Some(image) = self.metadata.image(repository, &manifest.digest).await?
            && image.tags.is_empty()
        {
            // Referenced by an index: it stays, untagged, as on ECR.
            let deleted = crate::events::image_action(
                "DELETE",
                repository.as_str(),
                &manifest.digest.to_string(),
                Some(tag.as_str()),
                &[],
            );
            self.metadata
                .delete_manifest(repository, &manifest.digest, &[deleted])
                .await?;
        }
        Ok(Some(manifest.digest))
    }

    // ---- discovery ----

    /// A page of tags after `last`, and whether more follow.
    pub async fn list_tags(
        &self,
        repository: &RepositoryName,
        last: Option<&str>,
        limit: u32,
    ) -> Result<(Vec<String>, bool)> {
        let mut tags = self
            .metadata
            .list_tags(repository, last, limit.saturating_add(1))
            .await?;
        if tags.is_empty() && !self.metadata.repository_exists(repository).await? {
            return Err(self.name_unknown(repository));
        }
        let more = tags.len() > limit as usize;
        tags.truncate(limit as usize);
        Ok((tags, more))
    }

    /// A page of repository names after `last`, and whether more follow.
    pub async fn catalog(&self, last: Option<&str>, limit: u32) -> Result<(Vec<String>, bool)> {
        let mut names = self
            .metadata
            .list_repositories(last, limit.saturating_add(1))
            .await?;
        let more = names.len() > limit as usize;
        names.truncate(limit as usize);
        Ok((names, more))
    }

    /// Manifests whose subject is `subject`, optionally only of one artifact type.
    pub async fn referrers(
        &self,
        repository: &RepositoryName,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Vec<Referrer>> {
        let mut referrers = self.metadata.referrers(repository, subject).await?;
        if let Some(wanted) = artifact_type {
            referrers.retain(|r| r.artifact_type.as_deref() == Some(wanted));
        }
        Ok(referrers)
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

/// One async mutex per key, held only while someone uses it: serializes the
/// writes to one upload on this node.
#[derive(Default)]
struct KeyedLocks {
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

struct KeyedGuard<'a> {
    owner: &'a KeyedLocks,
    key: String,
    _guard: tokio::sync::OwnedMutexGuard<()>,
}

impl KeyedLocks {
    async fn lock(&self, key: &str) -> KeyedGuard<'_> {
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
