//! What happened, as events in EventBridge's `detail-type`/`detail` shape
//! (source `aws.ecr`), kept in the database so that any node's events can be
//! read from any node. Plain SQL both databases accept, implemented for both
//! backends by [`impl_event_store`].

use async_trait::async_trait;

use crate::Result;

#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct Event {
    /// Increasing with time of recording.
    pub id: i64,
    /// Milliseconds.
    pub at: i64,
    /// `ECR Image Action`, …
    pub detail_type: String,
    /// The event's `detail` object, as JSON text.
    pub detail: String,
}

/// An event to record in the same transaction as the change it reports
/// (the outbox): both commit, or neither.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewEvent {
    /// Milliseconds.
    pub at: i64,
    pub detail_type: String,
    /// The `detail` object, as JSON text.
    pub detail: String,
}

/// Records `events` in transaction `tx` (the outbox), in both dialects.
macro_rules! insert_events {
    ($tx:expr, $events:expr) => {
        for event in $events {
            sqlx::query("INSERT INTO events (at, detail_type, detail) VALUES ($1, $2, $3)")
                .bind(event.at)
                .bind(&event.detail_type)
                .bind(&event.detail)
                .execute(&mut *$tx)
                .await?;
        }
    };
}

pub(crate) use insert_events;

#[async_trait]
pub trait EventStore: Send + Sync + 'static {
    async fn record_event(&self, at: i64, detail_type: &str, detail: &str) -> Result<()>;
    /// The newest `limit` events, oldest first.
    async fn recent_events(&self, limit: u32) -> Result<Vec<Event>>;
    /// Up to `limit` events after id `after`, oldest first.
    async fn events_after(&self, after: i64, limit: u32) -> Result<Vec<Event>>;
    /// The id of the last event `consumer` has read (`None` before it starts).
    async fn outbox_position(&self, consumer: &str) -> Result<Option<i64>>;
    /// Moves `consumer` from `from` (`None`: its start) to `to`; false if
    /// another node moved it first.
    async fn advance_outbox(&self, consumer: &str, from: Option<i64>, to: i64) -> Result<bool>;
    /// Forgets events recorded before `before` (ms) that every consumer
    /// (and every webhook that still exists) has read; how many went.
    async fn purge_events(&self, before: i64) -> Result<u64>;
}

/// Events deleted per statement by [`EventStore::purge_events`] (short
/// transactions: writers are never held up for long).
pub(crate) const PURGE_BATCH: i64 = 5_000;

macro_rules! impl_event_store {
    ($store:ty, $write:ident, $read:ident) => {
        #[async_trait::async_trait]
        impl $crate::events::EventStore for $store {
            async fn purge_events(&self, before: i64) -> $crate::Result<u64> {
                let mut purged = 0;
                loop {
                    let done = sqlx::query(
                        "DELETE FROM events WHERE id IN (
                             SELECT id FROM events
                             WHERE at < $1 AND id <= (
                                 SELECT COALESCE(MIN(c.position), 0) FROM outbox_cursors c
                                 WHERE c.consumer NOT LIKE 'webhook:%'
                                    OR EXISTS (SELECT 1 FROM webhooks w WHERE 'webhook:' || w.name = c.consumer))
                             ORDER BY id LIMIT $2)",
                    )
                    .bind(before)
                    .bind($crate::events::PURGE_BATCH)
                    .execute(&self.$write)
                    .await?
                    .rows_affected();
                    purged += done;
                    if (done as i64) < $crate::events::PURGE_BATCH {
                        return Ok(purged);
                    }
                }
            }

            async fn record_event(
                &self,
                at: i64,
                detail_type: &str,
                detail: &str,
            ) -> $crate::Result<()> {
                sqlx::query("INSERT INTO events (at, detail_type, detail) VALUES ($1, $2, $3)")
                    .bind(at)
                    .bind(detail_type)
                    .bind(detail)
                    .execute(&self.$write)
                    .await?;
                Ok(())
            }

            async fn events_after(
                &self,
                after: i64,
                limit: u32,
            ) -> $crate::Result<Vec<$crate::events::Event>> {
                Ok(sqlx::query_as(
                    "SELECT id, at, detail_type, detail FROM events WHERE id > $1 ORDER BY id LIMIT $2",
                )
                .bind(after)
                .bind(i64::from(limit))
                .fetch_all(&self.$read)
                .await?)
            }

            async fn outbox_position(&self, consumer: &str) -> $crate::Result<Option<i64>> {
                // Read from the writer: a position must not be read stale.
                Ok(sqlx::query_scalar("SELECT position FROM outbox_cursors WHERE consumer = $1")
                    .bind(consumer)
                    .fetch_optional(&self.$write)
                    .await?)
            }

            async fn advance_outbox(
                &self,
                consumer: &str,
                from: Option<i64>,
                to: i64,
            ) -> $crate::Result<bool> {
                let moved = if let Some(from) = from {
                    sqlx::query(
                        "UPDATE outbox_cursors SET position = $1 WHERE consumer = $2 AND position = $3",
                    )
                    .bind(to)
                    .bind(consumer)
                    .bind(from)
                    .execute(&self.$write)
                    .await?
                } else {
                    sqlx::query(
                        "INSERT INTO outbox_cursors (consumer, position) VALUES ($1, $2)
                         ON CONFLICT (consumer) DO NOTHING",
                    )
                    .bind(consumer)
                    .bind(to)
                    .execute(&self.$write)
                    .await?
                };
                Ok(moved.rows_affected() == 1)
            }

            async fn recent_events(
                &self,
                limit: u32,
            ) -> $crate::Result<Vec<$crate::events::Event>> {
                let mut events: Vec<$crate::events::Event> = sqlx::query_as(
                    "SELECT id, at, detail_type, detail FROM events ORDER BY id DESC LIMIT $1",
                )
                .bind(i64::from(limit))
                .fetch_all(&self.$read)
                .await?;
                events.reverse();
                Ok(events)
            }
        }
    };
}

pub(crate) use impl_event_store;
