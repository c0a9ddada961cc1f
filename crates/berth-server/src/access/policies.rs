//! Resource policies as a service: a repository's policy and the registry
//! policy, validated as IAM does, stored, and forgotten from the decision
//! caches when they change. The ECR door translates; a console would call
//! the same methods.

use berth_core::RepositoryName;
use berth_core::policy::{Policy, PolicyKind};
use berth_store::StoreError;

use super::{Access, REGISTRY_POLICY};

/// Why a policy operation did not happen.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("the repository does not exist")]
    RepositoryNotFound,
    #[error("no policy is set")]
    PolicyNotFound,
    /// The document is not a valid resource policy; says why.
    #[error("{0}")]
    Invalid(String),
    #[error("internal error: {0}")]
    Internal(#[from] StoreError),
}

/// Checks `text` as a resource policy; says what is wrong with it.
pub fn check_resource_policy(text: &str) -> Result<(), PolicyError> {
    checked(text)
}

/// Checks `text` as a resource policy.
fn checked(text: &str) -> Result<(), PolicyError> {
    Policy::parse(text, PolicyKind::Resource)
        .and_then(|policy| policy.check_for_writing())
        .map_err(|e| PolicyError::Invalid(e.to_string()))
}

impl Access {
    /// Sets repository `name`'s policy; decisions use it at once on this node.
    pub async fn set_repository_policy(
        &self,
        name: &RepositoryName,
        text: &str,
    ) -> Result<(), PolicyError> {
        checked(text)?;
        if !self.store.set_repository_policy(name, Some(text)).await? {
            return Err(PolicyError::RepositoryNotFound);
        }
        self.forget_repository(name);
        Ok(())
    }

    /// Repository `name`'s policy text.
    pub async fn repository_policy(&self, name: &RepositoryName) -> Result<String, PolicyError> {
        match self.store.get_repository_policy(name).await? {
            None => Err(PolicyError::RepositoryNotFound),
            Some(None) => Err(PolicyError::PolicyNotFound),
            Some(Some(text)) => Ok(text),
        }
    }

    /// Removes repository `name`'s policy; returns the text it had.
    pub async fn delete_repository_policy(
        &self,
        name: &RepositoryName,
    ) -> Result<String, PolicyError> {
        let text = self.repository_policy(name).await?;
        self.store.set_repository_policy(name, None).await?;
        self.forget_repository(name);
        Ok(text)
    }

    /// Sets the registry policy.
    pub async fn put_registry_policy(&self, text: &str) -> Result<(), PolicyError> {
        checked(text)?;
        self.store.put_setting(REGISTRY_POLICY, Some(text)).await?;
        self.forget_registry_policy();
        Ok(())
    }

    /// The registry policy's text.
    pub async fn registry_policy_text(&self) -> Result<String, PolicyError> {
        self.store
            .get_setting(REGISTRY_POLICY)
            .await?
            .ok_or(PolicyError::PolicyNotFound)
    }

    /// Removes the registry policy; returns the text it had.
    pub async fn delete_registry_policy(&self) -> Result<String, PolicyError> {
        let text = self.registry_policy_text().await?;
        self.store.put_setting(REGISTRY_POLICY, None).await?;
        self.forget_registry_policy();
        Ok(text)
    }
}
