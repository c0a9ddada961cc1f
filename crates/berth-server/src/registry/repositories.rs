//! Repositories: create, describe, settings, tags, delete, quotas.

#[allow(unused_imports)]
use super::*;

impl Registry {
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
    pub(super) async fn check_pushable(&self, repository: &RepositoryName) -> Result<()> {
        if self.metadata.repository_exists(repository).await?
            || self.created_by_hook(repository, CreatedFor::Push).await?
        {
            Ok(())
        } else if self.config.create_on_push {
            self.check_repository_quota().await?;
            Ok(self.metadata.ensure_repository(repository).await?)
        } else {
            Err(self.name_unknown(repository))
        }
    }

    /// Creates repository `name` unless it exists: as a creation template
    /// for `why` says, else with default settings.
    pub async fn ensure_repository_for(
        &self,
        name: &RepositoryName,
        why: CreatedFor,
    ) -> Result<()> {
        if self.metadata.repository_exists(name).await? || self.created_by_hook(name, why).await? {
            return Ok(());
        }
        self.ensure_repository(name).await
    }

    /// Creates repository `name` with default settings unless it exists.
    pub async fn ensure_repository(&self, name: &RepositoryName) -> Result<()> {
        if self.metadata.repository_exists(name).await? {
            return Ok(());
        }
        self.check_repository_quota().await?;
        Ok(self.metadata.ensure_repository(name).await?)
    }

    pub(super) async fn check_repository_quota(&self) -> Result<()> {
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
    ) -> Result<Page<RepositoryRecord>> {
        let page = self
            .metadata
            .list_repository_records(last, limit.saturating_add(1))
            .await?;
        Ok(page_of(page, limit))
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
}
