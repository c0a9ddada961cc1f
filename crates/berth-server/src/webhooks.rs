//! Events delivered to HTTP webhooks: each webhook reads the outbox from
//! where it was created, in order, through its own position
//! (`webhook:<name>` in the outbox cursors), and posts each event it
//! wants — by `detail-type` and repository — as EventBridge shapes it,
//! signed: `Berth-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of
//! "<t>.<body>" with the webhook's secret>`, the event's id in
//! `Berth-Event-Id` for de-duplication. A failed delivery holds that
//! webhook's later events back (so each receiver sees them in order) and is
//! tried again with a doubling back-off; after [`ATTEMPTS`] the event is a
//! dead letter (kept, counted, shown) and delivery goes on. At least once:
//! a node that dies between posting and recording may post again.

use std::sync::Arc;
use std::time::Duration;

use berth_store::{DeadLetter, Event, MetadataStore, StoreError, Webhook, now_millis};
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::identity::Identity;

/// Deliveries of one event before it becomes a dead letter.
pub const ATTEMPTS: i64 = 8;
/// The longest wait between two deliveries of one event.
const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// How long a receiver may take to answer.
const TIMEOUT: Duration = Duration::from_secs(10);
/// How often idle webhooks look for new events.
const POLL: Duration = Duration::from_millis(500);

#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("{0}")]
    Invalid(String),
    #[error("The webhook '{0}' already exists")]
    AlreadyExists(String),
    #[error("The webhook '{0}' does not exist")]
    NotFound(String),
    #[error(transparent)]
    Internal(#[from] StoreError),
}

/// What a caller asks to be told about.
pub struct NewWebhook {
    pub name: String,
    pub url: String,
    pub secret: String,
    pub detail_types: Vec<String>,
    pub repository_filter: Option<String>,
}

pub struct Webhooks {
    store: Arc<dyn MetadataStore>,
    identity: Arc<Identity>,
    http: reqwest::Client,
    account: String,
    region: String,
    /// The first retry's wait; each next one twice as long (at most [`MAX_BACKOFF`]).
    backoff: Duration,
}

fn cursor(name: &str) -> String {
    format!("webhook:{name}")
}

/// Whether `webhook` wants `event`.
fn wants(webhook: &Webhook, event: &Event) -> bool {
    let types: Vec<String> = serde_json::from_str(&webhook.detail_types).unwrap_or_default();
    if !types.is_empty() && !types.contains(&event.detail_type) {
        return false;
    }
    let Some(filter) = &webhook.repository_filter else {
        return true;
    };
    let detail: Value = serde_json::from_str(&event.detail).unwrap_or_default();
    let repository = detail["repository-name"].as_str().unwrap_or_default();
    match filter.strip_suffix('*') {
        Some(prefix) => repository.starts_with(prefix),
        None => repository == filter,
    }
}

/// The signature header of `body` sent at `t` (Unix seconds).
pub fn signature(secret: &str, t: i64, body: &str) -> String {
    let mac = crate::identity::hmac_sha256(secret.as_bytes(), format!("{t}.{body}").as_bytes());
    format!("t={t},v1={}", hex::encode(mac))
}

impl Webhooks {
    pub fn new(
        store: Arc<dyn MetadataStore>,
        identity: Arc<Identity>,
        account: String,
        region: String,
        backoff: Duration,
    ) -> Arc<Webhooks> {
        Arc::new(Webhooks {
            store,
            identity,
            http: reqwest::Client::builder()
                .timeout(TIMEOUT)
                .build()
                .expect("an HTTP client"),
            account,
            region,
            backoff,
        })
    }

    pub async fn create(&self, new: NewWebhook) -> Result<Webhook, WebhookError> {
        let valid_name = !new.name.is_empty()
            && new.name.len() <= 64
            && new
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !valid_name {
            return Err(WebhookError::Invalid(
                "A webhook's name is 1 to 64 letters, digits, '-' and '_'".into(),
            ));
        }
        if !(new.url.starts_with("https://") || new.url.starts_with("http://")) {
            return Err(WebhookError::Invalid(
                "A webhook's url is http:// or https://".into(),
            ));
        }
        if new.secret.len() < 16 {
            return Err(WebhookError::Invalid(
                "A webhook's signing secret is at least 16 characters".into(),
            ));
        }
        let now = now_millis();
        let webhook = Webhook {
            name: new.name,
            url: new.url,
            sealed_secret: self.identity.seal(&new.secret),
            detail_types: serde_json::to_string(&new.detail_types).expect("strings"),
            repository_filter: new.repository_filter,
            failures: 0,
            retry_at: 0,
            last_error: None,
            created_at: now,
        };
        // Delivered from the present on.
        let newest = self.store.recent_events(1).await?;
        let start = newest.last().map_or(0, |e| e.id);
        if !self.store.create_webhook(&webhook).await? {
            return Err(WebhookError::AlreadyExists(webhook.name));
        }
        let key = cursor(&webhook.name);
        let from = self.store.outbox_position(&key).await?;
        self.store.advance_outbox(&key, from, start).await?;
        Ok(webhook)
    }

    pub async fn list(&self) -> Result<Vec<(Webhook, Vec<DeadLetter>)>, WebhookError> {
        let mut out = Vec::new();
        for webhook in self.store.webhooks().await? {
            let dead = self.store.dead_letters(&webhook.name, 20).await?;
            out.push((webhook, dead));
        }
        Ok(out)
    }

    pub async fn delete(&self, name: &str) -> Result<(), WebhookError> {
        if !self.store.delete_webhook(name).await? {
            return Err(WebhookError::NotFound(name.to_string()));
        }
        Ok(())
    }

    /// Delivers until `stop` turns true.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        loop {
            match self.store.webhooks().await {
                Ok(webhooks) => {
                    for webhook in webhooks {
                        if webhook.retry_at > now_millis() {
                            continue;
                        }
                        if let Err(e) = self.deliver(&webhook).await {
                            tracing::warn!(webhook = %webhook.name, error = %e, "webhook round failed");
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "could not read the webhooks"),
            }
            tokio::select! {
                _ = tokio::time::sleep(POLL) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    }

    /// Posts `webhook`'s next events, in order, until one fails.
    async fn deliver(&self, webhook: &Webhook) -> Result<(), StoreError> {
        let key = cursor(&webhook.name);
        let Some(position) = self.store.outbox_position(&key).await? else {
            return Ok(());
        };
        let events = self.store.events_after(position, 100).await?;
        let mut done = position;
        let mut failures = webhook.failures;
        let mut failed = None;
        for event in &events {
            if wants(webhook, event) {
                match self.post(webhook, event).await {
                    Ok(()) => failures = 0,
                    Err(reason) => {
                        failures += 1;
                        if failures < ATTEMPTS {
                            failed = Some(reason);
                            break;
                        }
                        // Given up on: kept, counted, and delivery goes on.
                        crate::metrics::METRICS.webhook_dead_letter();
                        tracing::warn!(webhook = %webhook.name, event = event.id, %reason, "an event became a dead letter");
                        self.store
                            .add_dead_letter(&DeadLetter {
                                webhook: webhook.name.clone(),
                                event_id: event.id,
                                reason,
                                at: now_millis(),
                            })
                            .await?;
                        failures = 0;
                    }
                }
            }
            done = event.id;
        }
        if done != position
            && !self
                .store
                .advance_outbox(&key, Some(position), done)
                .await?
        {
            // Another node moved it first; it delivers from there.
            return Ok(());
        }
        let retry_at = match &failed {
            Some(_) => {
                let wait = self
                    .backoff
                    .saturating_mul(1 << (failures.clamp(1, 20) - 1))
                    .min(MAX_BACKOFF);
                now_millis() + wait.as_millis() as i64
            }
            None => 0,
        };
        if failures != webhook.failures || failed.is_some() || webhook.last_error.is_some() {
            self.store
                .webhook_progress(&webhook.name, failures, retry_at, failed.as_deref())
                .await?;
        }
        Ok(())
    }

    async fn post(&self, webhook: &Webhook, event: &Event) -> Result<(), String> {
        let secret = self
            .identity
            .unseal(&webhook.sealed_secret)
            .map_err(|e| e.to_string())?;
        let body = crate::events::envelope(event, &self.account, &self.region).to_string();
        let t = now_millis() / 1000;
        let response = self
            .http
            .post(&webhook.url)
            .header("content-type", "application/json")
            .header("user-agent", "berth-webhooks")
            .header("berth-event-id", format!("berth-{}", event.id))
            .header("berth-signature", signature(&secret, t, &body))
            .body(body)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(format!("the receiver answered {}", response.status()))
        }
    }
}

/// A webhook as the API shows it (never its secret).
pub fn webhook_json(webhook: &Webhook, dead: &[DeadLetter]) -> Value {
    json!({
        "name": webhook.name,
        "url": webhook.url,
        "detailTypes": serde_json::from_str::<Value>(&webhook.detail_types).unwrap_or_default(),
        "repositoryFilter": webhook.repository_filter,
        "failures": webhook.failures,
        "lastError": webhook.last_error,
        "createdAt": webhook.created_at as f64 / 1000.0,
        "deadLetters": dead.iter().map(|d| json!({
            "eventId": format!("berth-{}", d.event_id), "reason": d.reason, "at": d.at as f64 / 1000.0,
        })).collect::<Vec<_>>(),
    })
}
