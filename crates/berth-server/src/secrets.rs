//! Secrets as a service (a Secrets Manager subset: what the ECR
//! pull-through cache tutorial uses): named values sealed with the install's
//! key, read back only through `GetSecretValue` and by the pull-through
//! cache. A value never appears in `Debug`, logs or other answers.

use std::sync::Arc;

use berth_store::{MetadataStore, SecretRecord, StoreError, now_millis};

use crate::identity::Identity;

#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error("Secrets Manager can't find the specified secret.")]
    NotFound,
    #[error("The operation failed because the secret {0} already exists.")]
    Exists(String),
    #[error("{0}")]
    Invalid(String),
    #[error("internal error: {0}")]
    Internal(#[from] StoreError),
}

/// A secret's value, kept out of `Debug`.
pub struct SecretValue(pub String);

impl std::fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretValue(…)")
    }
}

/// Long-lived, one per node; holds nothing but its handles.
pub struct Secrets {
    store: Arc<dyn MetadataStore>,
    identity: Arc<Identity>,
    account: String,
    region: String,
}

fn version_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

impl Secrets {
    pub fn new(
        store: Arc<dyn MetadataStore>,
        identity: Arc<Identity>,
        account: String,
        region: String,
    ) -> Secrets {
        Secrets {
            store,
            identity,
            account,
            region,
        }
    }

    /// The ARN of secret `name` without the random suffix AWS adds.
    pub fn arn_base(&self, name: &str) -> String {
        format!(
            "arn:aws:secretsmanager:{}:{}:secret:{name}",
            self.region, self.account
        )
    }

    pub async fn create(
        &self,
        name: &str,
        value: &str,
        description: Option<String>,
    ) -> Result<SecretRecord, SecretsError> {
        if name.is_empty() || name.len() > 512 {
            return Err(SecretsError::Invalid("Invalid name. Must be a valid name containing alphanumeric characters, or any of the following: -/_+=.@!".into()));
        }
        let suffix: String = uuid::Uuid::new_v4()
            .simple()
            .to_string()
            .chars()
            .take(6)
            .collect();
        let now = now_millis();
        let record = SecretRecord {
            name: name.to_string(),
            arn: format!("{}-{suffix}", self.arn_base(name)),
            sealed: self.identity.seal(value),
            description,
            version_id: version_id(),
            created_at: now,
            updated_at: now,
        };
        if !self.store.create_secret(&record).await? {
            return Err(SecretsError::Exists(name.to_string()));
        }
        Ok(record)
    }

    /// The secret an id names: its name, its ARN, or its ARN without the suffix.
    pub async fn find(&self, id: &str) -> Result<SecretRecord, SecretsError> {
        let prefix = format!(
            "arn:aws:secretsmanager:{}:{}:secret:",
            self.region, self.account
        );
        let Some(rest) = id.strip_prefix(&prefix) else {
            if id.starts_with("arn:") {
                return Err(SecretsError::NotFound);
            }
            return self.store.secret(id).await?.ok_or(SecretsError::NotFound);
        };
        if let Some(found) = self.store.secret(rest).await? {
            return Ok(found);
        }
        // `name-AbCdEf`: the name, then the six characters AWS appends.
        match rest.rsplit_once('-') {
            Some((name, suffix)) if suffix.len() == 6 => self
                .store
                .secret(name)
                .await?
                .filter(|s| s.arn == id)
                .ok_or(SecretsError::NotFound),
            _ => Err(SecretsError::NotFound),
        }
    }

    pub async fn value(&self, id: &str) -> Result<(SecretRecord, SecretValue), SecretsError> {
        let record = self.find(id).await?;
        let value = self
            .identity
            .unseal(&record.sealed)
            .map_err(|e| SecretsError::Internal(StoreError::Database(e.to_string())))?;
        Ok((record, SecretValue(value)))
    }

    pub async fn put_value(&self, id: &str, value: &str) -> Result<SecretRecord, SecretsError> {
        let mut record = self.find(id).await?;
        record.sealed = self.identity.seal(value);
        record.version_id = version_id();
        record.updated_at = now_millis();
        if !self.store.update_secret(&record).await? {
            return Err(SecretsError::NotFound);
        }
        Ok(record)
    }

    pub async fn list(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<SecretRecord>, SecretsError> {
        Ok(self.store.secrets(after, limit).await?)
    }

    pub async fn delete(&self, id: &str) -> Result<SecretRecord, SecretsError> {
        let record = self.find(id).await?;
        if !self.store.delete_secret(&record.name).await? {
            return Err(SecretsError::NotFound);
        }
        Ok(record)
    }
}
