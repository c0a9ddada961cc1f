//! Secrets (a Secrets Manager subset): named values sealed with the
//! install's key, such as the upstream credentials of pull-through cache
//! rules. Plain SQL both databases accept ([`impl_secret_store`]).

use async_trait::async_trait;

use crate::Result;

#[derive(Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct SecretRecord {
    pub name: String,
    pub arn: String,
    /// The value, sealed (never stored or logged in the clear).
    pub sealed: Vec<u8>,
    pub description: Option<String>,
    pub version_id: String,
    pub created_at: i64,
    pub updated_at: i64,
}

impl std::fmt::Debug for SecretRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretRecord")
            .field("name", &self.name)
            .field("arn", &self.arn)
            .field("version_id", &self.version_id)
            .finish_non_exhaustive()
    }
}

#[async_trait]
pub trait SecretStore: Send + Sync + 'static {
    /// Adds a secret; false if its name is taken.
    async fn create_secret(&self, secret: &SecretRecord) -> Result<bool>;
    async fn secret(&self, name: &str) -> Result<Option<SecretRecord>>;
    /// Secrets after `after` by name, at most `limit`.
    async fn secrets(&self, after: Option<&str>, limit: u32) -> Result<Vec<SecretRecord>>;
    /// Replaces a secret's value; false if it does not exist.
    async fn update_secret(&self, secret: &SecretRecord) -> Result<bool>;
    async fn delete_secret(&self, name: &str) -> Result<bool>;
}

pub(crate) const SECRET_COLUMNS: &str =
    "name, arn, sealed, description, version_id, created_at, updated_at";

macro_rules! impl_secret_store {
    ($store:ty, $write:ident, $read:ident) => {
        #[async_trait::async_trait]
        impl $crate::secrets::SecretStore for $store {
            async fn create_secret(&self, s: &$crate::secrets::SecretRecord) -> $crate::Result<bool> {
                let sql = format!(
                    "INSERT INTO secrets ({}) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (name) DO NOTHING",
                    $crate::secrets::SECRET_COLUMNS
                );
                let done = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(&s.name)
                    .bind(&s.arn)
                    .bind(&s.sealed)
                    .bind(&s.description)
                    .bind(&s.version_id)
                    .bind(s.created_at)
                    .bind(s.updated_at)
                    .execute(&self.$write)
                    .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn secret(&self, name: &str) -> $crate::Result<Option<$crate::secrets::SecretRecord>> {
                let sql = format!(
                    "SELECT {} FROM secrets WHERE name = $1",
                    $crate::secrets::SECRET_COLUMNS
                );
                Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .bind(name)
                    .fetch_optional(&self.$read)
                    .await?)
            }

            async fn secrets(
                &self,
                after: Option<&str>,
                limit: u32,
            ) -> $crate::Result<Vec<$crate::secrets::SecretRecord>> {
                let sql = format!(
                    "SELECT {} FROM secrets WHERE name > $1 ORDER BY name LIMIT $2",
                    $crate::secrets::SECRET_COLUMNS
                );
                Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .bind(after.unwrap_or(""))
                    .bind(i64::from(limit))
                    .fetch_all(&self.$read)
                    .await?)
            }

            async fn update_secret(&self, s: &$crate::secrets::SecretRecord) -> $crate::Result<bool> {
                let done = sqlx::query(
                    "UPDATE secrets SET sealed = $1, version_id = $2, updated_at = $3 WHERE name = $4",
                )
                .bind(&s.sealed)
                .bind(&s.version_id)
                .bind(s.updated_at)
                .bind(&s.name)
                .execute(&self.$write)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn delete_secret(&self, name: &str) -> $crate::Result<bool> {
                let done = sqlx::query("DELETE FROM secrets WHERE name = $1")
                    .bind(name)
                    .execute(&self.$write)
                    .await?;
                Ok(done.rows_affected() == 1)
            }
        }
    };
}

pub(crate) use impl_secret_store;
