//! Blobs in an S3-compatible object store (`--storage s3://bucket/prefix`).
//!
//! Layout under the prefix: `uploads/<id>/<piece>` holds each write of an
//! upload as its own object, under a name no other write has (S3 cannot
//! append), `blobs/<alg>/<xx>/<hex>` the committed blobs. The upload's record
//! lists the pieces its size is made of: a write that fails, or loses the
//! race to record itself, is never read, so committed bytes always hash to
//! their digest. Committing copies a single staged object server-side (up
//! to the 5 GiB one `CopyObject` may copy), or streams several (or a larger
//! one) into one, then removes every staged object.
//!
//! Endpoint, region and credentials come from the standard AWS environment
//! (`AWS_ENDPOINT_URL_S3` or `AWS_ENDPOINT_URL`, `AWS_REGION`,
//! `AWS_ACCESS_KEY_ID`, …); addressing is path-style, so MinIO-like
//! endpoints work as they are.

use std::io;
use std::ops::Range;
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use berth_core::Digest;
use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};

use crate::{BlobStore, BlobStream, ByteStream, Result, StoreError, Upload, UploadLock, Wanted};

/// Writes up to this size go up in one `PUT`; larger ones as multipart
/// uploads of parts this large.
const PART: usize = 8 << 20;
/// Parts of one multipart upload in flight at once.
const PARTS_IN_FLIGHT: usize = 2;
/// The largest object one `CopyObject` copies (AWS S3's limit); a larger
/// staged blob is streamed into place instead.
const COPY_MAX: u64 = 5 << 30;

pub struct S3BlobStore {
    store: Arc<AmazonS3>,
    prefix: String,
}

fn storage_error(e: object_store::Error) -> StoreError {
    match e {
        object_store::Error::NotFound { .. } => StoreError::NotFound,
        other => StoreError::Io(io::Error::other(other)),
    }
}

impl S3BlobStore {
    /// Opens `s3://bucket[/prefix]`.
    pub fn open(url: &str) -> Result<S3BlobStore> {
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| StoreError::Io(io::Error::other(format!("not an s3:// URL: {url}"))))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        // Static credentials only, for now: without them the client would ask
        // an instance-metadata service, which is not what a self-hosted
        // registry wants to reach by surprise.
        if std::env::var_os("AWS_ACCESS_KEY_ID").is_none()
            || std::env::var_os("AWS_SECRET_ACCESS_KEY").is_none()
        {
            return Err(StoreError::Io(io::Error::other(
                "S3 storage needs AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the environment",
            )));
        }
        let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
        let endpoint = std::env::var("AWS_ENDPOINT_URL_S3")
            .or_else(|_| std::env::var("AWS_ENDPOINT_URL"))
            .unwrap_or_default();
        if endpoint.starts_with("http://") {
            builder = builder.with_allow_http(true);
        }
        let store = builder.build().map_err(storage_error)?;
        Ok(S3BlobStore {
            store: Arc::new(store),
            prefix: prefix.trim_matches('/').to_string(),
        })
    }

    fn path(&self, key: &str) -> Path {
        if self.prefix.is_empty() {
            Path::from(key)
        } else {
            Path::from(format!("{}/{key}", self.prefix))
        }
    }

    fn upload_dir(&self, id: &str) -> Path {
        self.path(&format!("uploads/{id}"))
    }

    fn blob_path(&self, digest: &Digest) -> Path {
        let hex = digest.hex();
        self.path(&format!(
            "blobs/{}/{}/{hex}",
            digest.algorithm().name(),
            &hex[..2]
        ))
    }

    /// The staged pieces `upload` records: (offset, size, path), in order,
    /// from the record alone (no listing: a piece's name begins with its
    /// offset). Objects no record names (a write that failed, or lost the
    /// race to record itself) are never read. Uploads recorded before pieces
    /// were named have objects named by their offset alone, found by listing.
    async fn pieces(&self, upload: &Upload) -> Result<Vec<(u64, u64, Path)>> {
        if !upload.pieces.is_empty() {
            let mut offset = 0;
            let mut pieces = Vec::with_capacity(upload.pieces.len());
            for (name, size) in upload.pieces.iter().zip(upload.piece_sizes()) {
                let path = self.path(&format!("uploads/{}/{name}", upload.id));
                pieces.push((offset, size, path));
                offset += size;
            }
            return Ok(pieces);
        }
        let mut legacy: Vec<(u64, u64, Path)> = self
            .store
            .list(Some(&self.upload_dir(&upload.id)))
            .map_err(storage_error)
            .try_filter_map(|meta| async move {
                let offset = meta.location.filename().and_then(|f| f.parse::<u64>().ok());
                Ok(offset.map(|o| (o, meta.size, meta.location)))
            })
            .try_collect()
            .await?;
        legacy.sort_by_key(|p| p.0);
        let mut pieces = Vec::new();
        let mut offset = 0u64;
        for (start, size, path) in legacy {
            if start == offset && offset < upload.size {
                pieces.push((start, size, path));
                offset += size;
            }
        }
        if offset < upload.size {
            return Err(StoreError::StagingLost(format!(
                "{offset} bytes staged, {} recorded",
                upload.size
            )));
        }
        Ok(pieces)
    }

    /// Streams the recorded bytes of `upload`.
    async fn staged_stream(&self, upload: &Upload) -> Result<BlobStream> {
        let pieces = self.pieces(upload).await?;
        let len = upload.size;
        let store = self.store.clone();
        let stream = futures_util::stream::iter(pieces)
            .take_while(move |(offset, _, _)| futures_util::future::ready(*offset < len))
            .then(move |(offset, size, path)| {
                let store = store.clone();
                async move {
                    let end = size.min(len - offset);
                    let options = GetOptions {
                        range: Some(GetRange::Bounded(0..end)),
                        ..Default::default()
                    };
                    match store.get_opts(&path, options).await {
                        Ok(result) => result.into_stream().map_err(io::Error::other).boxed(),
                        Err(e) => {
                            futures_util::stream::once(async move { Err(io::Error::other(e)) })
                                .boxed()
                        }
                    }
                }
            })
            .flatten();
        Ok(Box::pin(stream))
    }

    /// Writes `data` to `path`: one `PUT` if small, else a multipart upload.
    /// Returns the bytes written; a body error aborts and writes nothing.
    async fn put_stream(&self, path: &Path, data: &mut ByteStream<'_>) -> Result<u64> {
        self.put_stream_then(path, data, None).await
    }

    /// [`Self::put_stream`], running `wanted(size)` once all of `data` has
    /// come and before the object appears (its last `PUT` or the multipart
    /// upload's completion); if it fails, nothing appears.
    async fn put_stream_then(
        &self,
        path: &Path,
        data: &mut ByteStream<'_>,
        wanted: Option<Wanted<'_>>,
    ) -> Result<u64> {
        let mut buffered: Vec<Bytes> = Vec::new();
        let mut size = 0usize;
        while size < PART {
            match data.next().await {
                Some(Ok(chunk)) => {
                    size += chunk.len();
                    buffered.push(chunk);
                }
                Some(Err(e)) => return Err(StoreError::Body(e)),
                None => {
                    if let Some(wanted) = wanted {
                        wanted(size as u64).await?;
                    }
                    // Empty too: an empty blob is a blob.
                    self.store
                        .put(path, PutPayload::from_iter(buffered))
                        .await
                        .map_err(storage_error)?;
                    return Ok(size as u64);
                }
            }
        }
        let upload = self
            .store
            .put_multipart(path)
            .await
            .map_err(storage_error)?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART);
        for chunk in buffered {
            writer.put(chunk);
        }
        let mut written = size as u64;
        while let Some(item) = data.next().await {
            match item {
                Ok(chunk) => {
                    written += chunk.len() as u64;
                    if let Err(e) = writer.wait_for_capacity(PARTS_IN_FLIGHT).await {
                        return Err(storage_error(e));
                    }
                    writer.put(chunk);
                }
                Err(e) => {
                    let _ = writer.abort().await;
                    return Err(StoreError::Body(e));
                }
            }
        }
        if let Some(wanted) = wanted
            && let Err(e) = wanted(written).await
        {
            let _ = writer.abort().await;
            return Err(e);
        }
        writer.finish().await.map_err(storage_error)?;
        Ok(written)
    }
}

#[async_trait]
impl BlobStore for S3BlobStore {
    async fn lock_upload(&self, _id: &str) -> Result<UploadLock> {
        // Each write is an object of its own name; the record says which count.
        Ok(UploadLock(None))
    }

    async fn write_upload(
        &self,
        upload: &Upload,
        piece: &str,
        data: &mut ByteStream<'_>,
    ) -> Result<u64> {
        // A new object whatever else is staged: a concurrent writer's object
        // is never overwritten, and only what gets recorded is ever read.
        // A write that brings nothing stages nothing.
        let first = match data.next().await {
            None => return Ok(0),
            Some(Err(e)) => return Err(StoreError::Body(e)),
            Some(Ok(first)) => first,
        };
        let path = self.path(&format!("uploads/{}/{piece}", upload.id));
        let mut data = futures_util::stream::iter([Ok(first)]).chain(data);
        self.put_stream(&path, &mut data).await
    }

    async fn read_upload(&self, upload: &Upload) -> Result<BlobStream> {
        self.staged_stream(upload).await
    }

    /// Straight to the blob's key: a multipart upload (or, if small, one
    /// `PUT` of what was buffered) appears only when it is completed, after
    /// the whole body verified. This saves the staged copy and the server-side
    /// copy of it that a commit makes.
    async fn put_verified_blob(
        &self,
        digest: &Digest,
        data: &mut ByteStream<'_>,
        wanted: Wanted<'_>,
    ) -> Result<Option<u64>> {
        let target = self.blob_path(digest);
        match self.store.head(&target).await {
            Ok(_) => return Ok(None),
            Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(storage_error(e)),
        }
        self.put_stream_then(&target, data, Some(wanted))
            .await
            .map(Some)
    }

    async fn commit_upload(&self, upload: &Upload, digest: &Digest) -> Result<()> {
        let target = self.blob_path(digest);
        let exists = match self.store.head(&target).await {
            Ok(_) => true,
            Err(object_store::Error::NotFound { .. }) => false,
            Err(e) => return Err(storage_error(e)),
        };
        let pieces = self.pieces(upload).await?;
        if !exists {
            let lost = |e: object_store::Error| match e {
                object_store::Error::NotFound { path, .. } => {
                    StoreError::StagingLost(format!("staged piece {path} is gone"))
                }
                other => storage_error(other),
            };
            match pieces.as_slice() {
                [(0, size, path)] if *size == upload.size && *size <= COPY_MAX => {
                    self.store.copy(path, &target).await.map_err(lost)?;
                }
                _ => {
                    // Every recorded piece is there before any is streamed.
                    for (_, _, path) in &pieces {
                        self.store.head(path).await.map_err(lost)?;
                    }
                    let mut staged = self.staged_stream(upload).await?;
                    self.put_stream(&target, &mut staged).await?;
                }
            }
        }
        // The recorded pieces, by name; a losing writer's leftovers go with
        // the clean-up of stale staging objects.
        for (_, _, path) in pieces {
            match self.store.delete(&path).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(storage_error(e)),
            }
        }
        Ok(())
    }

    async fn delete_upload(&self, id: &str) -> Result<()> {
        let staged: Vec<Path> = self
            .store
            .list(Some(&self.upload_dir(id)))
            .map_ok(|meta| meta.location)
            .map_err(storage_error)
            .try_collect()
            .await?;
        for path in staged {
            match self.store.delete(&path).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(storage_error(e)),
            }
        }
        Ok(())
    }

    async fn stale_uploads(&self, cutoff: SystemTime) -> Result<Vec<String>> {
        let cutoff = cutoff
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let uploads = self.path("uploads");
        // The newest write of each upload, in seconds since the epoch.
        let mut newest: std::collections::HashMap<String, i64> = Default::default();
        let mut listing = self.store.list(Some(&uploads));
        while let Some(meta) = listing.next().await {
            let meta = meta.map_err(storage_error)?;
            let mut parts = meta.location.prefix_match(&uploads).into_iter().flatten();
            if let Some(id) = parts.next() {
                let at = meta.last_modified.timestamp();
                let entry = newest.entry(id.as_ref().to_string()).or_insert(at);
                *entry = (*entry).max(at);
            }
        }
        Ok(newest
            .into_iter()
            .filter(|(_, at)| *at < cutoff)
            .map(|(id, _)| id)
            .collect())
    }

    async fn read(&self, digest: &Digest, range: Option<Range<u64>>) -> Result<BlobStream> {
        let options = GetOptions {
            range: range.map(GetRange::Bounded),
            ..Default::default()
        };
        let result = self
            .store
            .get_opts(&self.blob_path(digest), options)
            .await
            .map_err(storage_error)?;
        Ok(Box::pin(result.into_stream().map_err(io::Error::other)))
    }

    async fn delete(&self, digest: &Digest) -> Result<()> {
        match self.store.delete(&self.blob_path(digest)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(storage_error(e)),
        }
    }

    async fn direct_url(
        &self,
        digest: &Digest,
        valid_for: std::time::Duration,
    ) -> Result<Option<String>> {
        use object_store::signer::{Method, Signer};
        let url = self
            .store
            .signed_url(Method::GET, &self.blob_path(digest), valid_for)
            .await
            .map_err(storage_error)?;
        Ok(Some(url.to_string()))
    }

    async fn ping(&self) -> Result<()> {
        match self.store.head(&self.path(".berth-ping")).await {
            Ok(_) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(storage_error(e)),
        }
    }
}
