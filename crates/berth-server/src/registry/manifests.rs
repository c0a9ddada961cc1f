//! Manifests: push (with its event), pull, delete.

#[allow(unused_imports)]
use super::*;
use crate::identity::Principal;

impl Registry {
    pub async fn get_manifest(
        &self,
        repository: &RepositoryName,
        reference: &Reference,
    ) -> Result<StoredManifest> {
        if let Some(m) = self.metadata.get_manifest(repository, reference).await? {
            if let (Reference::Tag(tag), Some(hook)) = (reference, self.read_miss.get()) {
                match hook.tag_found(repository, tag, &m.digest).await {
                    Ok(true) => {
                        if let Some(moved) =
                            self.metadata.get_manifest(repository, reference).await?
                        {
                            return Ok(moved);
                        }
                    }
                    Ok(false) => {}
                    // What is cached is served; the hook said why it could not check.
                    Err(e) => tracing::debug!(error = %e, "tag re-check failed"),
                }
            }
            return Ok(m);
        }
        if self.manifest_fetched(repository, reference).await?
            && let Some(m) = self.metadata.get_manifest(repository, reference).await?
        {
            return Ok(m);
        }
        Err(self
            .missing(repository, RegistryError::ManifestUnknown)
            .await?)
    }

    /// Records a pull of `digest` (last recorded at `last_pulled_at`) by
    /// `puller` in the background, at most hourly, as ECR refreshes
    /// `lastRecordedPullTime`; not when the puller is excluded.
    pub fn note_pull(
        &self,
        puller: Option<&Principal>,
        repository: &RepositoryName,
        digest: &Digest,
        last_pulled_at: Option<i64>,
    ) {
        const REFRESH_MILLIS: i64 = 3600 * 1000;
        let now = now_millis();
        if last_pulled_at.is_some_and(|at| now - at < REFRESH_MILLIS) {
            return;
        }
        let recording = self.pulls_recording.clone();
        let key = (repository.to_string(), digest.to_string());
        let (metadata, repository, digest) =
            (self.metadata.clone(), repository.clone(), digest.clone());
        let exclusions = self.pull_time_exclusions.clone();
        let puller = puller.cloned();
        tokio::spawn(async move {
            if let Some(puller) = &puller
                && exclusions.excludes(puller).await
            {
                return;
            }
            // Another puller's write of the same pull is under way.
            if !recording
                .lock()
                .expect("pulls recording")
                .insert(key.clone())
            {
                return;
            }
            if let Err(e) = metadata.record_pull(&repository, &digest, now).await {
                tracing::warn!(error = %e, "could not record a pull");
            }
            recording.lock().expect("pulls recording").remove(&key);
        });
    }

    /// `err` if the repository exists, else `NameUnknown`.
    pub(super) async fn missing(
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
        self.store_manifest(
            repository,
            reference,
            extra_tags,
            content_type,
            content,
            false,
        )
        .await
    }

    /// Stores a manifest whose blobs may come later: a cache's, whose
    /// blobs are fetched as they are asked for (child manifests must be here).
    pub async fn put_manifest_blobs_to_follow(
        &self,
        repository: &RepositoryName,
        reference: &Reference,
        content_type: Option<&str>,
        content: Bytes,
    ) -> Result<PutManifest> {
        self.store_manifest(
            repository,
            reference,
            Vec::new(),
            content_type,
            content,
            true,
        )
        .await
    }

    /// Stores a manifest a pull-through cache or a copy brought, with
    /// `also` (its `ECR Pull Through Cache Action`) recorded in the same
    /// transaction; `blobs_follow` as [`Registry::put_manifest_blobs_to_follow`].
    pub async fn put_fetched_manifest(
        &self,
        repository: &RepositoryName,
        reference: &Reference,
        content_type: Option<&str>,
        content: Bytes,
        blobs_follow: bool,
        also: Vec<berth_store::NewEvent>,
    ) -> Result<PutManifest> {
        self.store_manifest_noting(
            repository,
            reference,
            Vec::new(),
            content_type,
            content,
            blobs_follow,
            also,
        )
        .await
    }

    async fn store_manifest(
        &self,
        repository: &RepositoryName,
        reference: &Reference,
        extra_tags: Vec<Tag>,
        content_type: Option<&str>,
        content: Bytes,
        blobs_follow: bool,
    ) -> Result<PutManifest> {
        self.store_manifest_noting(
            repository,
            reference,
            extra_tags,
            content_type,
            content,
            blobs_follow,
            Vec::new(),
        )
        .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn store_manifest_noting(
        &self,
        repository: &RepositoryName,
        reference: &Reference,
        extra_tags: Vec<Tag>,
        content_type: Option<&str>,
        content: Bytes,
        blobs_follow: bool,
        also: Vec<berth_store::NewEvent>,
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
            blobs_follow,
        };
        let pushed = crate::events::image_action(
            "PUSH",
            repository.as_str(),
            &digest.to_string(),
            tags.first().map(Tag::as_str),
            &[],
        );
        let events: Vec<_> = std::iter::once(pushed).chain(also).collect();
        match self
            .metadata
            .put_manifest(repository, &record, &tags, &events)
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

    /// A manifest for a client to pull: an archived image, or one being
    /// restored, is refused (`/v2/` answers 404, as ECR does).
    pub async fn pull_manifest(
        &self,
        repository: &RepositoryName,
        reference: &Reference,
    ) -> Result<StoredManifest> {
        let manifest = self.get_manifest(repository, reference).await?;
        if manifest.image_status != "ACTIVE" {
            return Err(RegistryError::ImageArchived(manifest.digest));
        }
        Ok(manifest)
    }

    /// Moves an active image to the archive storage class: false if it was
    /// not active (archived already, being restored, or gone). With an
    /// archive store, a job ([`ARCHIVE_JOB`], queued with the change) then
    /// moves its blobs there.
    pub async fn archive_image(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
    ) -> Result<bool> {
        let now = now_millis();
        let (payload, singleton) = image_job(ARCHIVE_JOB, repository, digest);
        let job = berth_store::NewJob {
            kind: ARCHIVE_JOB,
            payload: &payload,
            singleton: Some(&singleton),
            max_attempts: 10,
            run_after: now,
        };
        let job = self.archive_tier.get().map(|_| &job);
        Ok(self
            .metadata
            .set_image_status(repository, digest, &["ACTIVE"], "ARCHIVED", now, job)
            .await?)
    }

    /// The blobs of an image manifest (its config and layers; none for an
    /// index, whose children are images of their own).
    async fn image_blobs(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
    ) -> Result<Vec<Digest>> {
        let Some(stored) = self
            .metadata
            .get_manifest(repository, &Reference::Digest(digest.clone()))
            .await?
        else {
            return Ok(Vec::new());
        };
        Ok(manifest::parse(&stored.content, Some(&stored.media_type))
            .map(|parsed| parsed.blobs.into_iter().map(|b| b.digest).collect())
            .unwrap_or_default())
    }

    /// The archiving job: each blob of the archived image that no image
    /// which is not archived uses moves to the archive store. An image
    /// restored (or deleted) meanwhile moves nothing.
    pub async fn finish_archive(&self, job: &berth_store::Job) -> std::result::Result<(), String> {
        let Some(tier) = self.archive_tier.get() else {
            return Ok(());
        };
        let Some((repository, digest)) = job_image(job) else {
            return Ok(());
        };
        let still_archived =
            |m: Option<StoredManifest>| m.is_some_and(|m| m.image_status == "ARCHIVED");
        let mut moved = 0;
        for blob in self
            .image_blobs(&repository, &digest)
            .await
            .map_err(|e| e.to_string())?
        {
            let current = self
                .metadata
                .get_manifest(&repository, &Reference::Digest(digest.clone()))
                .await
                .map_err(|e| e.to_string())?;
            if !still_archived(current) {
                return Ok(());
            }
            if self
                .metadata
                .blob_in_active_use(&blob)
                .await
                .map_err(|e| e.to_string())?
            {
                continue;
            }
            if tier.to_cold(&blob).await.map_err(|e| e.to_string())? {
                moved += 1;
            }
        }
        tracing::info!(repository = %repository, digest = %digest, blobs = moved, "archived image's blobs moved to the archive store");
        Ok(())
    }

    /// Starts restoring an archived image (`ACTIVATING`; the job
    /// [`RESTORE_JOB`] makes it `ACTIVE`). Asked again while it is being
    /// restored, queues the job again (it is a singleton): a restore whose
    /// job was lost still finishes. False if it was neither.
    pub async fn restore_image(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
    ) -> Result<bool> {
        let now = now_millis();
        let (payload, singleton) = image_job(RESTORE_JOB, repository, digest);
        let job = berth_store::NewJob {
            kind: RESTORE_JOB,
            payload: &payload,
            singleton: Some(&singleton),
            max_attempts: 10,
            run_after: now,
        };
        // The job is queued with the change (a singleton: asked again, once).
        let moved = self
            .metadata
            .set_image_status(
                repository,
                digest,
                &["ARCHIVED", "ACTIVATING"],
                "ACTIVATING",
                now,
                Some(&job),
            )
            .await?;
        Ok(moved)
    }

    /// The restore job: the image's blobs come back from the archive store
    /// (those that went there), then the image is active again.
    pub async fn finish_restore(&self, job: &berth_store::Job) -> std::result::Result<(), String> {
        let Some((repository, digest)) = job_image(job) else {
            return Ok(());
        };
        if let Some(tier) = self.archive_tier.get() {
            for blob in self
                .image_blobs(&repository, &digest)
                .await
                .map_err(|e| e.to_string())?
            {
                tier.to_hot(&blob).await.map_err(|e| e.to_string())?;
            }
        }
        self.metadata
            .set_image_status(
                &repository,
                &digest,
                &["ACTIVATING"],
                "ACTIVE",
                now_millis(),
                None,
            )
            .await
            .map_err(|e| e.to_string())?;
        Ok(())
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
                let named = self
                    .metadata
                    .get_manifest(repository, reference)
                    .await?
                    .map(|m| m.digest);
                let removed = named.map(|digest| {
                    crate::events::image_action(
                        "DELETE",
                        repository.as_str(),
                        &digest.to_string(),
                        Some(tag.as_str()),
                        extra,
                    )
                });
                if self
                    .metadata
                    .delete_tag(repository, tag, removed.as_slice())
                    .await?
                {
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
}

/// An archive or restore job's payload and singleton key, for one image.
fn image_job(kind: &str, repository: &RepositoryName, digest: &Digest) -> (String, String) {
    (
        serde_json::json!({"repository": repository.as_str(), "digest": digest.to_string()})
            .to_string(),
        format!("{kind}:{repository}@{digest}"),
    )
}

/// The image an archive or restore job names.
fn job_image(job: &berth_store::Job) -> Option<(RepositoryName, Digest)> {
    let p: serde_json::Value = serde_json::from_str(&job.payload).ok()?;
    Some((
        p["repository"].as_str()?.parse().ok()?,
        p["digest"].as_str()?.parse().ok()?,
    ))
}
