//! Discovery: tags, catalog, referrers.

#[allow(unused_imports)]
use super::*;

impl Registry {
    /// A page of tags after `last`, and whether more follow.
    pub async fn list_tags(
        &self,
        repository: &RepositoryName,
        last: Option<&str>,
        limit: u32,
    ) -> Result<Page<String>> {
        let tags = self
            .metadata
            .list_tags(repository, last, limit.saturating_add(1))
            .await?;
        if tags.is_empty() && !self.metadata.repository_exists(repository).await? {
            return Err(self.name_unknown(repository));
        }
        Ok(page_of(tags, limit))
    }

    /// A page of repository names after `last`, and whether more follow.
    pub async fn catalog(&self, last: Option<&str>, limit: u32) -> Result<Page<String>> {
        let names = self
            .metadata
            .list_repositories(last, limit.saturating_add(1))
            .await?;
        Ok(page_of(names, limit))
    }

    /// Manifests whose subject is `subject`, optionally only of one artifact type.
    pub async fn referrers(
        &self,
        repository: &RepositoryName,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Vec<Referrer>> {
        // A repository that does not exist has no referrers: an empty
        // index, as the OCI conformance suite expects (not NAME_UNKNOWN).
        let mut referrers = self.metadata.referrers(repository, subject).await?;
        if let Some(wanted) = artifact_type {
            referrers.retain(|r| r.artifact_type.as_deref() == Some(wanted));
        }
        Ok(referrers)
    }
}
