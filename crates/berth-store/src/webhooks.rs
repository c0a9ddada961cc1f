//! Webhooks events are delivered to, and the events each gave up on (its
//! dead letters). Plain SQL both databases accept ([`impl_webhook_store`]).

use async_trait::async_trait;

use crate::Result;

#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct Webhook {
    pub name: String,
    pub url: String,
    /// The signing secret, sealed with the install's key.
    pub sealed_secret: Vec<u8>,
    /// JSON array of `detail-type`s (empty: all).
    pub detail_types: String,
    /// Repositories whose events go (`prefix*` or an exact name; none: all).
    pub repository_filter: Option<String>,
    /// Failed attempts at the event it is stuck on.
    pub failures: i64,
    /// Not tried again before (ms).
    pub retry_at: i64,
    pub last_error: Option<String>,
    pub created_at: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct DeadLetter {
    pub webhook: String,
    pub event_id: i64,
    pub reason: String,
    pub at: i64,
}

#[async_trait]
pub trait WebhookStore: Send + Sync + 'static {
    /// Adds a webhook; false if its name is taken.
    async fn create_webhook(&self, w: &Webhook) -> Result<bool>;
    async fn webhooks(&self) -> Result<Vec<Webhook>>;
    async fn delete_webhook(&self, name: &str) -> Result<bool>;
    /// Records how delivery to `name` is going.
    async fn webhook_progress(
        &self,
        name: &str,
        failures: i64,
        retry_at: i64,
        last_error: Option<&str>,
    ) -> Result<()>;
    async fn add_dead_letter(&self, d: &DeadLetter) -> Result<()>;
    /// `name`'s newest dead letters, newest first.
    async fn dead_letters(&self, name: &str, limit: u32) -> Result<Vec<DeadLetter>>;
}

pub(crate) const WEBHOOK_COLUMNS: &str = "name, url, sealed_secret, detail_types, repository_filter, \
     failures, retry_at, last_error, created_at";

macro_rules! impl_webhook_store {
    ($store:ty, $write:ident, $read:ident) => {
        #[async_trait::async_trait]
        impl $crate::webhooks::WebhookStore for $store {
            async fn create_webhook(&self, w: &$crate::webhooks::Webhook) -> $crate::Result<bool> {
                let sql = format!(
                    "INSERT INTO webhooks ({}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (name) DO NOTHING",
                    $crate::webhooks::WEBHOOK_COLUMNS
                );
                let done = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(&w.name)
                    .bind(&w.url)
                    .bind(&w.sealed_secret)
                    .bind(&w.detail_types)
                    .bind(&w.repository_filter)
                    .bind(w.failures)
                    .bind(w.retry_at)
                    .bind(&w.last_error)
                    .bind(w.created_at)
                    .execute(&self.$write)
                    .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn webhooks(&self) -> $crate::Result<Vec<$crate::webhooks::Webhook>> {
                let sql = format!("SELECT {} FROM webhooks ORDER BY name", $crate::webhooks::WEBHOOK_COLUMNS);
                Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql)).fetch_all(&self.$read).await?)
            }

            async fn delete_webhook(&self, name: &str) -> $crate::Result<bool> {
                let mut tx = self.begin_write().await?;
                let done = sqlx::query("DELETE FROM webhooks WHERE name = $1")
                    .bind(name)
                    .execute(&mut *tx)
                    .await?;
                // Its place in the outbox goes with it: a webhook made again
                // under the name starts at the present, and old events are
                // not kept for one that is gone.
                sqlx::query("DELETE FROM outbox_cursors WHERE consumer = $1")
                    .bind(format!("webhook:{name}"))
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(done.rows_affected() == 1)
            }

            async fn webhook_progress(
                &self,
                name: &str,
                failures: i64,
                retry_at: i64,
                last_error: Option<&str>,
            ) -> $crate::Result<()> {
                sqlx::query("UPDATE webhooks SET failures = $1, retry_at = $2, last_error = $3 WHERE name = $4")
                    .bind(failures)
                    .bind(retry_at)
                    .bind(last_error)
                    .bind(name)
                    .execute(&self.$write)
                    .await?;
                Ok(())
            }

            async fn add_dead_letter(&self, d: &$crate::webhooks::DeadLetter) -> $crate::Result<()> {
                sqlx::query(
                    "INSERT INTO webhook_dead_letters (webhook, event_id, reason, at) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (webhook, event_id) DO NOTHING",
                )
                .bind(&d.webhook)
                .bind(d.event_id)
                .bind(&d.reason)
                .bind(d.at)
                .execute(&self.$write)
                .await?;
                Ok(())
            }

            async fn dead_letters(&self, name: &str, limit: u32) -> $crate::Result<Vec<$crate::webhooks::DeadLetter>> {
                Ok(sqlx::query_as(
                    "SELECT webhook, event_id, reason, at FROM webhook_dead_letters WHERE webhook = $1
                     ORDER BY event_id DESC LIMIT $2",
                )
                .bind(name)
                .bind(i64::from(limit))
                .fetch_all(&self.$read)
                .await?)
            }
        }
    };
}

pub(crate) use impl_webhook_store;
