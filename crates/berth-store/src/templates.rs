//! Repository creation templates, one row each: the template's settings
//! as a JSON document (the service reads and checks it), by prefix. Plain
//! SQL both databases accept ([`impl_template_store`]).

use async_trait::async_trait;

use crate::Result;

#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct TemplateRecord {
    /// A repository namespace (`prod/team`), or `ROOT`.
    pub prefix: String,
    /// The settings, as JSON text.
    pub document: String,
    pub created_at: i64,
    pub updated_at: i64,
}

#[async_trait]
pub trait TemplateStore: Send + Sync + 'static {
    /// Adds a template; false if its prefix has one already.
    async fn create_template(&self, t: &TemplateRecord) -> Result<bool>;
    /// Replaces a template's document; false if there is none.
    async fn update_template(&self, t: &TemplateRecord) -> Result<bool>;
    /// Every template, by prefix.
    async fn templates(&self) -> Result<Vec<TemplateRecord>>;
    /// Removes a template; false if there was none.
    async fn delete_template(&self, prefix: &str) -> Result<bool>;
}

macro_rules! impl_template_store {
    ($store:ty, $write:ident, $read:ident) => {
        #[async_trait::async_trait]
        impl $crate::templates::TemplateStore for $store {
            async fn create_template(&self, t: &$crate::templates::TemplateRecord) -> $crate::Result<bool> {
                let done = sqlx::query(
                    "INSERT INTO repository_templates (prefix, document, created_at, updated_at)
                     VALUES ($1, $2, $3, $4) ON CONFLICT (prefix) DO NOTHING",
                )
                .bind(&t.prefix)
                .bind(&t.document)
                .bind(t.created_at)
                .bind(t.updated_at)
                .execute(&self.$write)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn update_template(&self, t: &$crate::templates::TemplateRecord) -> $crate::Result<bool> {
                let done = sqlx::query(
                    "UPDATE repository_templates SET document = $1, updated_at = $2 WHERE prefix = $3",
                )
                .bind(&t.document)
                .bind(t.updated_at)
                .bind(&t.prefix)
                .execute(&self.$write)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn templates(&self) -> $crate::Result<Vec<$crate::templates::TemplateRecord>> {
                Ok(sqlx::query_as(
                    "SELECT prefix, document, created_at, updated_at FROM repository_templates ORDER BY prefix",
                )
                .fetch_all(&self.$read)
                .await?)
            }

            async fn delete_template(&self, prefix: &str) -> $crate::Result<bool> {
                let done = sqlx::query("DELETE FROM repository_templates WHERE prefix = $1")
                    .bind(prefix)
                    .execute(&self.$write)
                    .await?;
                Ok(done.rows_affected() == 1)
            }
        }
    };
}

pub(crate) use impl_template_store;
