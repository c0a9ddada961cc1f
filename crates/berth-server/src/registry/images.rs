//! Images: the ECR view of manifests.

#[allow(unused_imports)]
use super::*;
use berth_store::ImageStatusFilter;

impl Registry {
    pub(super) async fn existing(&self, repository: &RepositoryName) -> Result<()> {
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
        image_status: ImageStatusFilter,
    ) -> Result<Page<(Digest, Option<String>)>> {
        self.existing(repository).await?;
        let ids = self
            .metadata
            .list_image_ids(
                repository,
                after,
                limit.saturating_add(1),
                status,
                image_status,
            )
            .await?;
        Ok(page_of(ids, limit))
    }

    /// A page of images after digest `after`, and whether more follow.
    pub async fn images(
        &self,
        repository: &RepositoryName,
        after: Option<&str>,
        limit: u32,
        status: TagStatus,
        image_status: ImageStatusFilter,
    ) -> Result<Page<ImageRecord>> {
        self.existing(repository).await?;
        let images = self
            .metadata
            .list_images(
                repository,
                after,
                limit.saturating_add(1),
                status,
                image_status,
            )
            .await?;
        Ok(page_of(images, limit))
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
                    .get_manifest(repository, &Reference::Tag(tag.clone()))
                    .await
                {
                    Ok(m) => m.digest,
                    Err(RegistryError::ManifestUnknown | RegistryError::NameUnknown { .. }) => {
                        return Ok(None);
                    }
                    Err(e) => return Err(e),
                }
            }
            (None, None) => return Ok(None),
        };
        let mut image = self.metadata.image(repository, &digest).await?;
        if image.is_none()
            && self
                .manifest_fetched(repository, &Reference::Digest(digest.clone()))
                .await?
        {
            image = self.metadata.image(repository, &digest).await?;
        }
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
    /// Either way one `DELETE` event naming the tag is recorded with the
    /// change (replication of deletes and webhooks read it).
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
        let removed = crate::events::image_action(
            "DELETE",
            repository.as_str(),
            &manifest.digest.to_string(),
            Some(tag.as_str()),
            &[],
        );
        if let Some(image) = self.metadata.image(repository, &manifest.digest).await?
            && image.tags == [tag.as_str()]
        {
            match self
                .metadata
                .delete_manifest(repository, &manifest.digest, std::slice::from_ref(&removed))
                .await?
            {
                DeleteManifestOutcome::Deleted => return Ok(Some(manifest.digest)),
                DeleteManifestOutcome::NotFound => return Ok(None),
                // Listed by an index: it stays, untagged, as on ECR.
                DeleteManifestOutcome::ReferencedBy(_) => {}
            }
        }
        if !self
            .metadata
            .delete_tag(repository, tag, std::slice::from_ref(&removed))
            .await?
        {
            return Ok(None);
        }
        Ok(Some(manifest.digest))
    }
}
