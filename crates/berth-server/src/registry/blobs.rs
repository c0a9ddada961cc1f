//! Blobs: reads, links, mounts.

#[allow(unused_imports)]
use super::*;

impl Registry {
    /// The size of a blob linked to `repository`.
    pub async fn blob_size(&self, repository: &RepositoryName, digest: &Digest) -> Result<u64> {
        if let Some(size) = self.metadata.blob_size(repository, digest).await? {
            return Ok(size);
        }
        if self.blob_fetched(repository, digest).await?
            && let Some(size) = self.metadata.blob_size(repository, digest).await?
        {
            return Ok(size);
        }
        Err(self.missing(repository, RegistryError::BlobUnknown).await?)
    }

    /// The size of a blob linked to `repository`, without asking the read-miss hook.
    pub async fn stored_blob_size(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
    ) -> Result<Option<u64>> {
        Ok(self.metadata.blob_size(repository, digest).await?)
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
            Err(self.missing(repository, RegistryError::BlobUnknown).await?)
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
}
