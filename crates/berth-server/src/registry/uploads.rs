//! Uploads: sessions, writes (hashed as they stream), commits.

#[allow(unused_imports)]
use super::*;

impl Registry {
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
        self.known_shape(repository, id).await?;
        match self.metadata.get_upload(repository, id).await? {
            Some(upload) => Ok(upload),
            None => Err(self
                .missing(repository, RegistryError::UploadUnknown)
                .await?),
        }
    }

    /// Upload ids are the UUIDs berth hands out; anything else names no
    /// upload (in a repository that is not there: no repository), and never
    /// reaches storage, where an id becomes a file or object name.
    async fn known_shape(&self, repository: &RepositoryName, id: &str) -> Result<()> {
        match uuid::Uuid::try_parse(id) {
            Ok(uuid) if uuid.hyphenated().to_string() == id => Ok(()),
            _ => Err(self
                .missing(repository, RegistryError::UploadUnknown)
                .await?),
        }
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
        self.known_shape(repository, id).await?;
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
    pub(super) fn repository_gone(
        &self,
        e: StoreError,
        repository: &RepositoryName,
    ) -> RegistryError {
        match e {
            StoreError::NotFound => self.name_unknown(repository),
            other => other.into(),
        }
    }

    /// An upload whose staged bytes are gone cannot go on: it is discarded,
    /// and the client starts over (`BLOB_UPLOAD_UNKNOWN`).
    pub(super) async fn staging_lost(&self, id: &str, why: &str) -> Result<RegistryError> {
        tracing::warn!(
            upload = id,
            why,
            "an upload's staged bytes are gone; it is discarded"
        );
        self.discard_upload(id).await?;
        Ok(RegistryError::UploadUnknown)
    }

    pub(super) async fn append(
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
            // Past the layer quota, or fewer bytes than the request said it
            // carries (`SIZE_INVALID`).
            Err(StoreError::Body(e)) => {
                return Err(body_error(e, self.config.quotas.layer_size));
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
        // A write that brought nothing staged nothing (see
        // `BlobStore::write_upload`): no piece to record.
        if written > 0 {
            pieces.push(piece);
        }
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
        last_chunk: Option<LastChunk<'_, '_>>,
    ) -> Result<()> {
        self.known_shape(repository, id).await?;
        let _guard = self.upload_locks.lock(id).await;
        let _staging = self.blobs.lock_upload(id).await?;
        let mut upload = self.upload_status(repository, id).await?;
        if let Some(LastChunk { start, len, data }) = last_chunk {
            if let Some(start) = start
                && start != upload.size
            {
                return Err(RegistryError::RangeInvalid { size: upload.size });
            }
            // The whole blob in this request, its digest known: where the
            // store can, straight to where it is read from.
            if upload.size == 0 && self.put_verified(&upload, digest, len, data).await? {
                return Ok(());
            }
            upload = self.append(upload, len, data).await?;
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

    /// Writes the whole blob of the empty upload `upload` with
    /// [`BlobStore::put_verified_blob`] and completes the upload. False,
    /// having read nothing of `data`, where the store stages instead.
    async fn put_verified(
        &self,
        upload: &Upload,
        digest: &Digest,
        len: Option<u64>,
        data: &mut ByteStream<'_>,
    ) -> Result<bool> {
        let mut verifying = Verifying {
            inner: data,
            hasher: Some(Hasher::new(digest.algorithm())),
            expected: digest.clone(),
            len,
            seen: 0,
            allowed: self.config.quotas.layer_size,
        };
        let metadata = self.metadata.clone();
        let wanted_digest = digest.clone();
        // Wanted from before the bytes appear: garbage collection leaves them alone.
        let wanted = move |size: u64| -> futures_util::future::BoxFuture<'static, _> {
            let (metadata, digest) = (metadata.clone(), wanted_digest.clone());
            Box::pin(async move { metadata.touch_blob(&digest, size).await })
        };
        let size = match self
            .blobs
            .put_verified_blob(digest, &mut verifying, &wanted)
            .await
        {
            Ok(Some(size)) => size,
            Ok(None) => return Ok(false),
            Err(StoreError::Body(e)) => {
                let error = body_error(e, self.config.quotas.layer_size);
                // As when staged bytes do not verify: nothing of it stays.
                if matches!(error, RegistryError::DigestInvalid(_)) {
                    self.discard_upload(&upload.id).await?;
                }
                return Err(error);
            }
            Err(e) => return Err(e.into()),
        };
        let upload = Upload {
            size,
            ..upload.clone()
        };
        match self.metadata.complete_upload(&upload, digest).await {
            Ok(()) => Ok(true),
            // The upload went with its repository, deleted meanwhile.
            Err(StoreError::NotFound) => Err(RegistryError::UploadUnknown),
            Err(e) => Err(e.into()),
        }
    }

    /// The digest of the upload's bytes with `algorithm`: from the saved hash
    /// when it was computed with that algorithm, else by reading them back.
    pub(super) async fn digest_of(&self, upload: &Upload, algorithm: Algorithm) -> Result<Digest> {
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
            .finish_upload(
                repository,
                &upload.id,
                digest,
                Some(LastChunk {
                    start: None,
                    len: None,
                    data,
                }),
            )
            .await;
        if result.is_err() {
            self.discard_upload(&upload.id).await?;
        }
        result
    }

    pub async fn cancel_upload(&self, repository: &RepositoryName, id: &str) -> Result<()> {
        self.known_shape(repository, id).await?;
        let _guard = self.upload_locks.lock(id).await;
        self.upload_status(repository, id).await?;
        self.discard_upload(id).await
    }

    pub(super) async fn discard_upload(&self, id: &str) -> Result<()> {
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
}

/// What a body's error means for the client: the layer quota, bytes that
/// are not the blob ([`NotTheBlob`]), or a body that ended early.
fn body_error(e: io::Error, layer_size: u64) -> RegistryError {
    if e.kind() == io::ErrorKind::FileTooLarge {
        return RegistryError::LimitExceeded(format!("a layer may be at most {layer_size} bytes"));
    }
    match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<NotTheBlob>())
    {
        Some(wrong @ NotTheBlob::Digest(..)) => RegistryError::DigestInvalid(wrong.to_string()),
        Some(wrong @ NotTheBlob::Size(..)) => RegistryError::SizeInvalid(wrong.to_string()),
        None => {
            RegistryError::SizeInvalid(format!("the request body ended before its length: {e}"))
        }
    }
}

/// The last piece of an upload, sent with the request that completes it.
pub struct LastChunk<'a, 'b> {
    /// Where the client says it starts (`Content-Range`): must be where the upload ends.
    pub start: Option<u64>,
    /// How long the client says it is: must be what arrives.
    pub len: Option<u64>,
    pub data: &'a mut ByteStream<'b>,
}
