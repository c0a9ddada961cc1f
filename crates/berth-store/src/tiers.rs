//! Two places for committed blobs: the store every write and read goes to
//! (hot), and a colder one the operator names for archived images
//! (`--archive-storage`: another directory, or another S3 bucket or prefix,
//! whose bucket lifecycle may move objects to a cheaper storage class).
//!
//! Reads look in the hot store first and in the cold one only when the
//! blob is not there, so a blob is readable wherever it is — in the middle
//! of a move, or when an image pushed later shares a layer an archived
//! image sent away. A move copies the blob (its digest verified as it
//! streams), makes the copy durable, and only then removes the original: a
//! crash leaves it in both places, never in neither. Garbage collection
//! deletes from both.

use std::ops::Range;
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use berth_core::{Digest, Hasher};
use futures_util::StreamExt;

use crate::{BlobStore, BlobStream, ByteStream, Result, StoreError, Upload, UploadLock, Wanted};

pub struct TieredBlobStore {
    hot: Arc<dyn BlobStore>,
    cold: Arc<dyn BlobStore>,
}

impl TieredBlobStore {
    pub fn new(hot: Arc<dyn BlobStore>, cold: Arc<dyn BlobStore>) -> TieredBlobStore {
        TieredBlobStore { hot, cold }
    }

    /// Moves `digest` to the cold store: false when the hot store does not
    /// have it (moved already, or gone).
    pub async fn to_cold(&self, digest: &Digest) -> Result<bool> {
        move_blob(self.hot.as_ref(), self.cold.as_ref(), digest).await
    }

    /// Brings `digest` back to the hot store: false when the cold store
    /// does not have it (never moved, or back already).
    pub async fn to_hot(&self, digest: &Digest) -> Result<bool> {
        move_blob(self.cold.as_ref(), self.hot.as_ref(), digest).await
    }

    /// Whether the cold store holds `digest` (for tests and the operator).
    pub async fn in_cold(&self, digest: &Digest) -> Result<bool> {
        present(self.cold.as_ref(), digest).await
    }
}

/// Whether `store` has `digest`.
async fn present(store: &dyn BlobStore, digest: &Digest) -> Result<bool> {
    match store.read(digest, None).await {
        Ok(_) => Ok(true),
        Err(StoreError::NotFound) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Copies `digest` from `from` into `to` through `to`'s own upload path
/// (verified against the digest as it streams, committed durably), then
/// removes it from `from`.
async fn move_blob(from: &dyn BlobStore, to: &dyn BlobStore, digest: &Digest) -> Result<bool> {
    let source = match from.read(digest, None).await {
        Ok(stream) => stream,
        Err(StoreError::NotFound) => return Ok(false),
        Err(e) => return Err(e),
    };
    let id = uuid::Uuid::new_v4().to_string();
    let _lock = to.lock_upload(&id).await?;
    let mut upload = Upload {
        id: id.clone(),
        repository: "berth/archive".parse().expect("a valid repository name"),
        size: 0,
        hash_state: Vec::new(),
        last_part: 0,
        updated_at: crate::now_millis(),
        pieces: Vec::new(),
    };
    let piece = format!("{:020}-{}", 0, uuid::Uuid::new_v4().simple());
    let hasher = Arc::new(std::sync::Mutex::new(Hasher::new(digest.algorithm())));
    let seen = hasher.clone();
    let mut hashed = source.map(move |frame| {
        if let Ok(bytes) = &frame {
            seen.lock().expect("hasher lock").update(bytes);
        }
        frame
    });
    let outcome = async {
        let written = to
            .write_upload(&upload, &piece, &mut hashed as &mut ByteStream<'_>)
            .await?;
        let got = std::mem::replace(
            &mut *hasher.lock().expect("hasher lock"),
            Hasher::new(digest.algorithm()),
        )
        .finish();
        if &got != digest {
            return Err(StoreError::Io(std::io::Error::other(format!(
                "the blob {digest} read back as {got}: not moved"
            ))));
        }
        upload.size = written;
        upload.last_part = written;
        upload.pieces = vec![piece.clone()];
        to.commit_upload(&upload, digest).await
    }
    .await;
    if let Err(e) = outcome {
        to.delete_upload(&id).await.ok();
        return Err(e);
    }
    from.delete(digest).await?;
    Ok(true)
}

#[async_trait]
impl BlobStore for TieredBlobStore {
    async fn lock_upload(&self, id: &str) -> Result<UploadLock> {
        self.hot.lock_upload(id).await
    }

    async fn write_upload(
        &self,
        upload: &Upload,
        piece: &str,
        data: &mut ByteStream<'_>,
    ) -> Result<u64> {
        self.hot.write_upload(upload, piece, data).await
    }

    async fn read_upload(&self, upload: &Upload) -> Result<BlobStream> {
        self.hot.read_upload(upload).await
    }

    async fn commit_upload(&self, upload: &Upload, digest: &Digest) -> Result<()> {
        self.hot.commit_upload(upload, digest).await
    }

    async fn put_verified_blob(
        &self,
        digest: &Digest,
        data: &mut ByteStream<'_>,
        wanted: Wanted<'_>,
    ) -> Result<Option<u64>> {
        self.hot.put_verified_blob(digest, data, wanted).await
    }

    async fn delete_upload(&self, id: &str) -> Result<()> {
        self.hot.delete_upload(id).await
    }

    async fn stale_uploads(&self, cutoff: SystemTime) -> Result<Vec<String>> {
        self.hot.stale_uploads(cutoff).await
    }

    async fn read(&self, digest: &Digest, range: Option<Range<u64>>) -> Result<BlobStream> {
        match self.hot.read(digest, range.clone()).await {
            Err(StoreError::NotFound) => self.cold.read(digest, range).await,
            other => other,
        }
    }

    async fn delete(&self, digest: &Digest) -> Result<()> {
        let hot = self.hot.delete(digest).await;
        let cold = self.cold.delete(digest).await;
        hot.and(cold)
    }

    async fn ping(&self) -> Result<()> {
        self.hot.ping().await?;
        self.cold.ping().await
    }

    async fn direct_url(
        &self,
        digest: &Digest,
        valid_for: std::time::Duration,
    ) -> Result<Option<String>> {
        self.hot.direct_url(digest, valid_for).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use berth_core::{Algorithm, Digest};
    use bytes::Bytes;
    use futures_util::TryStreamExt;

    use super::{TieredBlobStore, present};
    use crate::fs::FsBlobStore;
    use crate::{BlobStore, Upload};

    async fn put(store: &dyn BlobStore, digest: &Digest, data: &'static [u8]) {
        let upload = Upload {
            id: "u1".into(),
            repository: "t/x".parse().unwrap(),
            size: 0,
            hash_state: Vec::new(),
            last_part: 0,
            updated_at: 0,
            pieces: Vec::new(),
        };
        let piece = format!("{:020}-p", 0);
        let mut body =
            futures_util::stream::iter([Ok::<_, std::io::Error>(Bytes::from_static(data))]);
        let written = store
            .write_upload(&upload, &piece, &mut body)
            .await
            .unwrap();
        let upload = Upload {
            size: written,
            pieces: vec![piece],
            ..upload
        };
        store.commit_upload(&upload, digest).await.unwrap();
    }

    async fn read(store: &dyn BlobStore, digest: &Digest) -> Vec<u8> {
        let frames: Vec<Bytes> = store
            .read(digest, None)
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        frames.concat()
    }

    #[tokio::test]
    async fn blobs_move_between_tiers_and_read_from_either() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let hot: Arc<dyn BlobStore> = Arc::new(FsBlobStore::open(a.path()).unwrap());
        let cold: Arc<dyn BlobStore> = Arc::new(FsBlobStore::open(b.path()).unwrap());
        let tiers = TieredBlobStore::new(hot.clone(), cold.clone());
        let digest = Digest::of(Algorithm::Sha256, b"layer bytes");
        put(hot.as_ref(), &digest, b"layer bytes").await;

        assert!(tiers.to_cold(&digest).await.unwrap());
        assert!(!present(hot.as_ref(), &digest).await.unwrap());
        assert!(tiers.in_cold(&digest).await.unwrap());
        assert_eq!(read(&tiers, &digest).await, b"layer bytes");
        assert!(!tiers.to_cold(&digest).await.unwrap(), "moved once");

        assert!(tiers.to_hot(&digest).await.unwrap());
        assert!(!tiers.in_cold(&digest).await.unwrap());
        assert_eq!(read(hot.as_ref(), &digest).await, b"layer bytes");

        tiers.to_cold(&digest).await.unwrap();
        tiers.delete(&digest).await.unwrap();
        assert!(!present(&tiers, &digest).await.unwrap());
    }

    #[tokio::test]
    async fn bytes_that_do_not_hash_to_their_digest_are_not_moved() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let hot: Arc<dyn BlobStore> = Arc::new(FsBlobStore::open(a.path()).unwrap());
        let cold: Arc<dyn BlobStore> = Arc::new(FsBlobStore::open(b.path()).unwrap());
        let tiers = TieredBlobStore::new(hot.clone(), cold);
        // Stored under a digest they do not hash to (a corrupted disk).
        let digest = Digest::of(Algorithm::Sha256, b"what was pushed");
        put(hot.as_ref(), &digest, b"what the disk now says").await;
        assert!(tiers.to_cold(&digest).await.is_err());
        assert!(!tiers.in_cold(&digest).await.unwrap());
        assert!(
            present(hot.as_ref(), &digest).await.unwrap(),
            "the original stays"
        );
    }
}
