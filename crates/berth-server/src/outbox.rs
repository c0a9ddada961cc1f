//! The outbox's readers: every event recorded with a change (see
//! `events.rs`) is handed, in order, to each consumer (scan on push now;
//! replication and webhooks later). Each consumer's position is kept in the
//! metadata store and moved with compare-and-set, so on many nodes a batch
//! is handed over by whichever node moves the position; a node that stops
//! between handing over and moving leaves the batch to be handed over again
//! (at least once: consumers queue jobs with singleton keys, which absorbs
//! a repeat).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use berth_store::{Event, MetadataStore};
use tokio::sync::watch;

/// Events read per round.
const BATCH: u32 = 100;

#[async_trait]
pub trait Consumer: Send + Sync + 'static {
    /// Names the consumer's position in the store; never change it.
    fn name(&self) -> &'static str;
    /// Handles one event; an error stops the round, to be retried.
    async fn on_event(&self, event: &Event) -> Result<(), String>;
}

/// Long-lived, one per node; stops at shutdown after its current round.
pub struct Outbox {
    store: Arc<dyn MetadataStore>,
    consumers: Vec<Arc<dyn Consumer>>,
    /// How often the events table is read.
    poll: Duration,
}

impl Outbox {
    pub fn new(
        store: Arc<dyn MetadataStore>,
        consumers: Vec<Arc<dyn Consumer>>,
        poll: Duration,
    ) -> Outbox {
        Outbox {
            store,
            consumers,
            poll,
        }
    }

    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        loop {
            for consumer in &self.consumers {
                if let Err(e) = self.round(consumer.as_ref()).await {
                    tracing::warn!(consumer = consumer.name(), error = %e, "outbox round failed; retried");
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(self.poll) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    }

    /// Hands the events after `consumer`'s position to it, then moves the position.
    async fn round(&self, consumer: &dyn Consumer) -> Result<(), String> {
        let name = consumer.name();
        let mut position = match self
            .store
            .outbox_position(name)
            .await
            .map_err(|e| e.to_string())?
        {
            Some(position) => position,
            None => {
                // A new consumer starts at the present, not at the beginning of history.
                let newest = self
                    .store
                    .recent_events(1)
                    .await
                    .map_err(|e| e.to_string())?;
                let start = newest.last().map_or(0, |e| e.id);
                self.store
                    .advance_outbox(name, None, start)
                    .await
                    .map_err(|e| e.to_string())?;
                return Ok(());
            }
        };
        loop {
            let events = self
                .store
                .events_after(position, BATCH)
                .await
                .map_err(|e| e.to_string())?;
            let Some(last) = events.last().map(|e| e.id) else {
                return Ok(());
            };
            for event in &events {
                consumer.on_event(event).await?;
            }
            if !self
                .store
                .advance_outbox(name, Some(position), last)
                .await
                .map_err(|e| e.to_string())?
            {
                // Another node moved it first.
                return Ok(());
            }
            position = last;
            if events.len() < BATCH as usize {
                return Ok(());
            }
        }
    }
}
