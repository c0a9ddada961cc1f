//! Manifests and tags: push, read, delete. Plain SQL both databases
//! accept, implemented for both backends by [`impl_manifest_store`] (the
//! statements resolve their types, and `TAGS_OF_M`, the dialect's way of
//! listing an image's tags, where the macro is used). Manifest bytes and
//! annotations live in `manifest_contents`, out of the hot `manifests` rows.
//! Pushing a manifest checks its references on the read side first where
//! the store has a single writer (`missing_references`, SQLite; a no-op on
//! PostgreSQL), then again, authoritatively, in its transaction.

use async_trait::async_trait;
use berth_core::{Digest, RepositoryName, Tag};

use crate::{
    DeleteManifestOutcome, ImageRecord, ImageStatusFilter, NewEvent, NewManifest,
    PutManifestOutcome, Referrer, Result, StoredManifest, TagStatus,
};

#[async_trait]
pub trait ManifestStore: Send + Sync + 'static {
    /// Stores the manifest (idempotently) and points `tags` at it, if every
    /// blob and child it references is in the repository.
    async fn put_manifest(
        &self,
        repository: &RepositoryName,
        manifest: &NewManifest,
        tags: &[Tag],
        events: &[NewEvent],
    ) -> Result<PutManifestOutcome>;
    async fn get_manifest(
        &self,
        repository: &RepositoryName,
        reference: &berth_core::Reference,
    ) -> Result<Option<StoredManifest>>;
    /// Records that the manifest was pulled at `at`.
    async fn record_pull(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
        at: i64,
    ) -> Result<()>;
    /// Deletes the manifest and every tag pointing at it.
    async fn delete_manifest(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
        events: &[NewEvent],
    ) -> Result<DeleteManifestOutcome>;
    /// Removes one tag, recording `events` with it; false (and nothing
    /// recorded) if it did not exist.
    async fn delete_tag(
        &self,
        repository: &RepositoryName,
        tag: &Tag,
        events: &[NewEvent],
    ) -> Result<bool>;
    /// Tags after `last`, in lexical order, at most `limit`.
    async fn list_tags(
        &self,
        repository: &RepositoryName,
        last: Option<&str>,
        limit: u32,
    ) -> Result<Vec<String>>;
    async fn referrers(
        &self,
        repository: &RepositoryName,
        subject: &Digest,
    ) -> Result<Vec<Referrer>>;
    /// `(digest, tag)` pairs after `after` in that order, at most `limit`: one
    /// per tag, and one with no tag per untagged image.
    async fn list_image_ids(
        &self,
        repository: &RepositoryName,
        after: Option<(&str, &str)>,
        limit: u32,
        status: TagStatus,
        image_status: ImageStatusFilter,
    ) -> Result<Vec<(Digest, Option<String>)>>;
    /// Images after digest `after`, in digest order, at most `limit`.
    async fn list_images(
        &self,
        repository: &RepositoryName,
        after: Option<&str>,
        limit: u32,
        status: TagStatus,
        image_status: ImageStatusFilter,
    ) -> Result<Vec<ImageRecord>>;
    /// Moves an image from one of the states `from` to `to` (`ACTIVE`,
    /// `ARCHIVED`, `ACTIVATING`), stamping when it was archived or made
    /// active: false if it is in none of them, or not there.
    /// Moves an image from one of `from` to `to`, queueing `job` in the
    /// same transaction when it moved: false (nothing done) otherwise.
    async fn set_image_status(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
        from: &[&str],
        to: &str,
        at: i64,
        job: Option<&crate::NewJob<'_>>,
    ) -> Result<bool>;
    async fn image(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
    ) -> Result<Option<ImageRecord>>;
}

/// A manifest by repository name (`$1`) and tag (`$2`), as `get_manifest` reads it.
pub(crate) const MANIFEST_BY_TAG: &str =
    "SELECT m.digest, m.media_type, c.content, m.last_pulled_at, m.image_status FROM repositories r
     JOIN tags t ON t.repository_id = r.id
     JOIN manifests m ON m.repository_id = r.id AND m.digest = t.manifest_digest
     JOIN manifest_contents c ON c.repository_id = m.repository_id AND c.digest = m.digest
     WHERE r.name = $1 AND t.name = $2";

/// A manifest by repository name (`$1`) and digest (`$2`).
pub(crate) const MANIFEST_BY_DIGEST: &str =
    "SELECT m.digest, m.media_type, c.content, m.last_pulled_at, m.image_status FROM repositories r
     JOIN manifests m ON m.repository_id = r.id
     JOIN manifest_contents c ON c.repository_id = m.repository_id AND c.digest = m.digest
     WHERE r.name = $1 AND m.digest = $2";

macro_rules! impl_manifest_store {
    ($store:ty, $write:ident, $read:ident) => {
        #[async_trait::async_trait]
        impl $crate::manifests::ManifestStore for $store {
            async fn put_manifest(
                &self,
                repository: &RepositoryName,
                manifest: &NewManifest,
                tags: &[Tag],
                events: &[NewEvent],
            ) -> Result<PutManifestOutcome> {
                let blobs: std::collections::BTreeSet<String> = manifest.blobs.iter().map(Digest::to_string).collect();
                let children: std::collections::BTreeSet<String> = manifest.children.iter().map(Digest::to_string).collect();
                // Looked up first without the write lock (SQLite; a no-op on
                // PostgreSQL): a manifest naming thousands of unknown references never
                // holds up other writers.
                let required = if manifest.blobs_follow { Default::default() } else { blobs.clone() };
                if let Some(missing) = self
                    .missing_references(repository, &required, &children)
                    .await?
                {
                    return Ok(missing);
                }
                let mut tx = self.begin_write().await?;
                let repository_id = Self::repository_id(&mut tx, repository)
                    .await?
                    .ok_or(StoreError::NotFound)?;
                Self::lock_repository(&mut tx, repository_id).await?;

                let mut missing_blobs = Vec::new();
                let now = now_millis();
                for digest in &blobs {
                    // Marks the blob wanted (and locks its row) before looking, as
                    // garbage collection expects (see `gc`).
                    sqlx::query("UPDATE blobs SET last_linked_at = $1 WHERE digest = $2")
                        .bind(now)
                        .bind(digest)
                        .execute(&mut *tx)
                        .await?;
                    let linked: Option<i64> = sqlx::query_scalar(
                        "SELECT CAST(1 AS BIGINT) FROM repository_blobs WHERE repository_id = $1 AND digest = $2",
                    )
                    .bind(repository_id)
                    .bind(digest)
                    .fetch_optional(&mut *tx)
                    .await?;
                    if linked.is_none() && !manifest.blobs_follow {
                        missing_blobs.push(parse_digest(digest)?);
                    }
                }
                if !missing_blobs.is_empty() {
                    return Ok(PutManifestOutcome::MissingBlobs(missing_blobs));
                }
                let mut missing_manifests = Vec::new();
                for digest in &children {
                    let present: Option<i64> = sqlx::query_scalar(
                        "SELECT CAST(1 AS BIGINT) FROM manifests WHERE repository_id = $1 AND digest = $2",
                    )
                    .bind(repository_id)
                    .bind(digest)
                    .fetch_optional(&mut *tx)
                    .await?;
                    if present.is_none() {
                        missing_manifests.push(parse_digest(digest)?);
                    }
                }
                if !missing_manifests.is_empty() {
                    return Ok(PutManifestOutcome::MissingManifests(missing_manifests));
                }

                let digest = manifest.digest.to_string();
                let (mutability, exclusions): (String, Option<String>) = sqlx::query_as(
                    "SELECT image_tag_mutability, tag_mutability_exclusions FROM repositories WHERE id = $1",
                )
                .bind(repository_id)
                .fetch_one(&mut *tx)
                .await?;
                let exclusions = crate::sqlite::exclusions_from_column(exclusions);
                {
                    for tag in tags {
                        if !berth_core::mutability::is_immutable(&mutability, &exclusions, tag.as_str()) {
                            continue;
                        }
                        let current: Option<String> = sqlx::query_scalar(
                            "SELECT manifest_digest FROM tags WHERE repository_id = $1 AND name = $2",
                        )
                        .bind(repository_id)
                        .bind(tag.as_str())
                        .fetch_optional(&mut *tx)
                        .await?;
                        if current.is_some_and(|c| c != digest) {
                            return Ok(PutManifestOutcome::TagImmutable(tag.clone()));
                        }
                    }
                }
                let now = now_millis();
                let inserted = sqlx::query(
                    "INSERT INTO manifests (repository_id, digest, media_type, artifact_type, subject,
                                            size, pushed_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
                )
                .bind(repository_id)
                .bind(&digest)
                .bind(&manifest.media_type)
                .bind(&manifest.artifact_type)
                .bind(manifest.subject.as_ref().map(Digest::to_string))
                .bind(manifest.content.len() as i64)
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                    == 1;
                if !inserted {
                    // Pushed again: an archived image is active again, as on ECR.
                    sqlx::query(
                        "UPDATE manifests SET image_status = 'ACTIVE', last_activated_at = $3
                         WHERE repository_id = $1 AND digest = $2 AND image_status <> 'ACTIVE'",
                    )
                    .bind(repository_id)
                    .bind(&digest)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                }
                if inserted {
                    sqlx::query(
                        "INSERT INTO manifest_contents (repository_id, digest, content, annotations)
                         VALUES ($1, $2, $3, $4)",
                    )
                    .bind(repository_id)
                    .bind(&digest)
                    .bind(manifest.content.as_ref())
                    .bind(&manifest.annotations)
                    .execute(&mut *tx)
                    .await?;
                    let references = blobs
                        .iter()
                        .map(|d| (d, "blob"))
                        .chain(children.iter().map(|d| (d, "manifest")));
                    for (child, kind) in references {
                        sqlx::query(
                            "INSERT INTO manifest_references (repository_id, manifest_digest, child_digest, child_kind)
                             VALUES ($1, $2, $3, $4)",
                        )
                        .bind(repository_id)
                        .bind(&digest)
                        .bind(child)
                        .bind(kind)
                        .execute(&mut *tx)
                        .await?;
                    }
                }
                for tag in tags {
                    sqlx::query(
                        "INSERT INTO tags (repository_id, name, manifest_digest, updated_at) VALUES ($1, $2, $3, $4)
                         ON CONFLICT (repository_id, name)
                         DO UPDATE SET manifest_digest = excluded.manifest_digest, updated_at = excluded.updated_at",
                    )
                    .bind(repository_id)
                    .bind(tag.as_str())
                    .bind(&digest)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                }
                // The outbox: the events commit with the manifest, or neither does.
                crate::events::insert_events!(tx, events);
                tx.commit().await?;
                $crate::HotReads::changed(self);
                Ok(PutManifestOutcome::Stored)
            }

            async fn get_manifest(
                &self,
                repository: &RepositoryName,
                reference: &Reference,
            ) -> Result<Option<StoredManifest>> {
                type Row = (String, String, Vec<u8>, Option<i64>, String);
                let (statement, key) = match reference {
                    Reference::Tag(tag) => ($crate::manifests::MANIFEST_BY_TAG, tag.to_string()),
                    Reference::Digest(digest) => {
                        ($crate::manifests::MANIFEST_BY_DIGEST, digest.to_string())
                    }
                };
                let cache = $crate::HotReads::cache(self);
                if let Some(hit) = cache.and_then(|c| c.manifest(repository.as_str(), &key)) {
                    return Ok(Some(hit));
                }
                let generation = cache.map(|c| c.generation());
                let hot = $crate::HotReads::hot(self, |c| {
                    use rusqlite::OptionalExtension;
                    c.prepare_cached(statement)?
                        .query_row((repository.as_str(), key.as_str()), |r| {
                            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                        })
                        .optional()
                });
                let row: Option<Row> = match hot {
                    Some(row) => row?,
                    None => sqlx::query_as(statement)
                        .bind(repository.as_str())
                        .bind(key.as_str())
                        .fetch_optional(&self.$read)
                        .await?,
                };
                let manifest: Option<StoredManifest> = row
                    .map(|(digest, media_type, content, last_pulled_at, image_status)| {
                        Ok::<_, StoreError>(StoredManifest {
                            digest: parse_digest(&digest)?,
                            media_type,
                            content: Bytes::from(content),
                            last_pulled_at,
                            image_status,
                        })
                    })
                    .transpose()?;
                if let (Some(cache), Some(generation), Some(manifest)) = (cache, generation, &manifest) {
                    cache.keep_manifest(generation, repository.as_str(), &key, manifest);
                }
                Ok(manifest)
            }

            async fn record_pull(
                &self,
                repository: &RepositoryName,
                digest: &Digest,
                at: i64,
            ) -> Result<()> {
                sqlx::query(
                    "UPDATE manifests SET last_pulled_at = $1
                     WHERE repository_id = (SELECT id FROM repositories WHERE name = $2) AND digest = $3",
                )
                .bind(at)
                .bind(repository.as_str())
                .bind(digest.to_string())
                .execute(&self.$write)
                .await?;
                $crate::HotReads::changed(self);
                Ok(())
            }

            async fn delete_manifest(
                &self,
                repository: &RepositoryName,
                digest: &Digest,
                events: &[NewEvent],
            ) -> Result<DeleteManifestOutcome> {
                let mut tx = self.begin_write().await?;
                let Some(repository_id) = Self::repository_id(&mut tx, repository).await? else {
                    return Ok(DeleteManifestOutcome::NotFound);
                };
                Self::lock_repository(&mut tx, repository_id).await?;
                let digest = digest.to_string();
                let parent: Option<String> = sqlx::query_scalar(
                    "SELECT manifest_digest FROM manifest_references
                     WHERE repository_id = $1 AND child_digest = $2 AND child_kind = 'manifest' LIMIT 1",
                )
                .bind(repository_id)
                .bind(&digest)
                .fetch_optional(&mut *tx)
                .await?;
                if let Some(parent) = parent {
                    return Ok(DeleteManifestOutcome::ReferencedBy(parse_digest(&parent)?));
                }
                // Its blobs get a grace period from now before garbage collection may take them.
                sqlx::query(
                    "UPDATE blobs SET last_linked_at = $1 WHERE digest IN
                       (SELECT child_digest FROM manifest_references
                        WHERE repository_id = $2 AND manifest_digest = $3 AND child_kind = 'blob')",
                )
                .bind(now_millis())
                .bind(repository_id)
                .bind(&digest)
                .execute(&mut *tx)
                .await?;
                let deleted = sqlx::query("DELETE FROM manifests WHERE repository_id = $1 AND digest = $2")
                    .bind(repository_id)
                    .bind(&digest)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if deleted == 1 {
                    crate::events::insert_events!(tx, events);
                }
                tx.commit().await?;
                $crate::HotReads::changed(self);
                Ok(if deleted == 1 {
                    DeleteManifestOutcome::Deleted
                } else {
                    DeleteManifestOutcome::NotFound
                })
            }

            async fn delete_tag(
                &self,
                repository: &RepositoryName,
                tag: &Tag,
                events: &[NewEvent],
            ) -> Result<bool> {
                let mut tx = self.begin_write().await?;
                let done = sqlx::query(
                    "DELETE FROM tags
                     WHERE repository_id = (SELECT id FROM repositories WHERE name = $1) AND name = $2",
                )
                .bind(repository.as_str())
                .bind(tag.as_str())
                .execute(&mut *tx)
                .await?
                .rows_affected()
                    > 0;
                if done {
                    crate::events::insert_events!(tx, events);
                }
                tx.commit().await?;
                $crate::HotReads::changed(self);
                Ok(done)
            }

            async fn list_tags(
                &self,
                repository: &RepositoryName,
                last: Option<&str>,
                limit: u32,
            ) -> Result<Vec<String>> {
                let statement = "SELECT t.name FROM tags t JOIN repositories r ON r.id = t.repository_id
                     WHERE r.name = $1 AND t.name > $2 ORDER BY t.name LIMIT $3";
                let last = last.unwrap_or("");
                let cache = $crate::HotReads::cache(self);
                if let Some(hit) = cache.and_then(|c| c.tag_page(repository.as_str(), last, limit)) {
                    return Ok(hit.to_vec());
                }
                let generation = cache.map(|c| c.generation());
                let hot = $crate::HotReads::hot(self, |c| {
                    c.prepare_cached(statement)?
                        .query_map((repository.as_str(), last, i64::from(limit)), |r| r.get(0))?
                        .collect()
                });
                let tags: Vec<String> = match hot {
                    Some(tags) => tags?,
                    None => sqlx::query_scalar(statement)
                        .bind(repository.as_str())
                        .bind(last)
                        .bind(i64::from(limit))
                        .fetch_all(&self.$read)
                        .await?,
                };
                if let (Some(cache), Some(generation)) = (cache, generation) {
                    let page = std::sync::Arc::new(tags.clone());
                    cache.keep_tag_page(generation, repository.as_str(), last, limit, page);
                }
                Ok(tags)
            }

            async fn referrers(
                &self,
                repository: &RepositoryName,
                subject: &Digest,
            ) -> Result<Vec<Referrer>> {
                let rows: Vec<(String, String, i64, Option<String>, Option<String>)> = sqlx::query_as(
                    "SELECT m.digest, m.media_type, m.size, m.artifact_type, c.annotations
                     FROM repositories r JOIN manifests m ON m.repository_id = r.id
                     JOIN manifest_contents c ON c.repository_id = m.repository_id AND c.digest = m.digest
                     WHERE r.name = $1 AND m.subject = $2 ORDER BY m.digest",
                )
                .bind(repository.as_str())
                .bind(subject.to_string())
                .fetch_all(&self.$read)
                .await?;
                rows.into_iter()
                    .map(|(digest, media_type, size, artifact_type, annotations)| {
                        Ok(Referrer {
                            digest: parse_digest(&digest)?,
                            media_type,
                            size: size as u64,
                            artifact_type,
                            annotations,
                        })
                    })
                    .collect()
            }

            async fn list_image_ids(
                &self,
                repository: &RepositoryName,
                after: Option<(&str, &str)>,
                limit: u32,
                status: TagStatus,
                image_status: ImageStatusFilter,
            ) -> Result<Vec<(Digest, Option<String>)>> {
                let image_filter = image_status.condition();
                let tag_filter = match status {
                    TagStatus::Tagged => "AND t.name IS NOT NULL",
                    TagStatus::Untagged => "AND t.name IS NULL",
                    TagStatus::Any => "",
                };
                let (after_digest, after_tag) = after.unwrap_or(("", ""));
                let rows: Vec<(String, Option<String>)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT m.digest, t.name FROM repositories r
                     JOIN manifests m ON m.repository_id = r.id
                     LEFT JOIN tags t ON t.repository_id = m.repository_id AND t.manifest_digest = m.digest
                     WHERE r.name = $1 AND (m.digest, COALESCE(t.name, '')) > ($2, $3) {tag_filter} {image_filter}
                     ORDER BY m.digest, COALESCE(t.name, '') LIMIT $4"
                )))
                .bind(repository.as_str())
                .bind(after_digest)
                .bind(after_tag)
                .bind(i64::from(limit))
                .fetch_all(&self.$read)
                .await?;
                rows.into_iter()
                    .map(|(digest, tag)| Ok((parse_digest(&digest)?, tag)))
                    .collect()
            }

            async fn list_images(
                &self,
                repository: &RepositoryName,
                after: Option<&str>,
                limit: u32,
                status: TagStatus,
                image_status: ImageStatusFilter,
            ) -> Result<Vec<ImageRecord>> {
                let rows: Vec<ImageRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT m.digest, m.media_type, m.artifact_type, m.pushed_at, m.last_pulled_at,
                            {TAGS_OF_M},
                            c.content, m.image_status, m.last_archived_at, m.last_activated_at
                     FROM repositories r JOIN manifests m ON m.repository_id = r.id
                     JOIN manifest_contents c ON c.repository_id = m.repository_id AND c.digest = m.digest
                     WHERE r.name = $1 AND m.digest > $2 AND {} {}
                     ORDER BY m.digest LIMIT $3",
                    tag_status_condition(status),
                    image_status.condition()
                )))
                .bind(repository.as_str())
                .bind(after.unwrap_or(""))
                .bind(i64::from(limit))
                .fetch_all(&self.$read)
                .await?;
                rows.into_iter().map(image_from_row).collect()
            }

            async fn set_image_status(
                &self,
                repository: &RepositoryName,
                digest: &Digest,
                from: &[&str],
                to: &str,
                at: i64,
                job: Option<&crate::NewJob<'_>>,
            ) -> Result<bool> {
                // ACTIVATING stamps nothing: `at` goes into a condition that always holds.
                let set = match to {
                    "ARCHIVED" => "image_status = 'ARCHIVED', last_archived_at = $1",
                    "ACTIVE" => "image_status = 'ACTIVE', last_activated_at = $1",
                    "ACTIVATING" => "image_status = 'ACTIVATING'",
                    _ => return Ok(false),
                };
                let mut tx = self.begin_write().await?;
                for state in from {
                    let done = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "UPDATE manifests SET {set}
                         WHERE repository_id = (SELECT id FROM repositories WHERE name = $2)
                           AND digest = $3 AND image_status = $4 AND $1 >= 0"
                    )))
                    .bind(at)
                    .bind(repository.as_str())
                    .bind(digest.to_string())
                    .bind(state)
                    .execute(&mut *tx)
                    .await?;
                    if done.rows_affected() > 0 {
                        if let Some(job) = job {
                            crate::jobs::insert_job!(&mut *tx, job, at);
                        }
                        tx.commit().await?;
                        $crate::HotReads::changed(self);
                        return Ok(true);
                    }
                }
                Ok(false)
            }

            async fn image(
                &self,
                repository: &RepositoryName,
                digest: &Digest,
            ) -> Result<Option<ImageRecord>> {
                let row: Option<ImageRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT m.digest, m.media_type, m.artifact_type, m.pushed_at, m.last_pulled_at,
                            {TAGS_OF_M},
                            c.content, m.image_status, m.last_archived_at, m.last_activated_at
                     FROM repositories r JOIN manifests m ON m.repository_id = r.id
                     JOIN manifest_contents c ON c.repository_id = m.repository_id AND c.digest = m.digest
                     WHERE r.name = $1 AND m.digest = $2"
                )))
                .bind(repository.as_str())
                .bind(digest.to_string())
                .fetch_optional(&self.$read)
                .await?;
                row.map(image_from_row).transpose()
            }

        }
    };
}

pub(crate) use impl_manifest_store;
