//! Replication backfills (`StartReplicationBackfill`,
//! `StopReplicationBackfill`, `ListReplicationBackfills`,
//! `DescribeReplicationBackfillResults`): the images already in the
//! registry that its rules send to one destination, copied by the same
//! jobs as pushes.
//!
//! Starting records the backfill `PREPARING` and queues a job that lists
//! the images — one item per image and tag, as ECR counts — queues one copy
//! per item and moves the backfill `IN_PROGRESS`. Each copy records its
//! item's outcome; the one that finds nothing left pending makes the
//! backfill `COMPLETE`. Stopping skips the items not yet copied and ends the
//! backfill `STOPPED` at once; copies under way finish. Ended backfills are
//! listed for 90 days.

use berth_core::RepositoryName;
use berth_store::{
    Backfill, BackfillItem, BackfillProgress, ImageStatusFilter, Job, NewJob, StoreError,
    TagStatus, now_millis,
};
use serde_json::{Value, json};

use super::{ATTEMPTS, REPLICATE_JOB, Replication, covers};

/// The job that lists what a backfill copies.
pub const BACKFILL_JOB: &str = "replication.backfill";
/// How long an ended backfill stays listed.
const KEEP_MILLIS: i64 = 90 * 24 * 3600 * 1000;
/// Rows read at a time while listing.
const PAGE: u32 = 1000;

#[derive(Debug, thiserror::Error)]
pub enum BackfillError {
    #[error("{0}")]
    Invalid(String),
    #[error("A replication backfill to registry {1} in {0} is already in progress")]
    InProgress(String, String),
    #[error("The replication backfill with id '{0}' does not exist in the registry")]
    NotFound(String),
    #[error(
        "The replication backfill with id '{0}' is {1}: only one PREPARING or IN_PROGRESS can be stopped"
    )]
    InvalidStatus(String, String),
    #[error(transparent)]
    Internal(#[from] StoreError),
}

/// A backfill with how far it is (`None` while it is being prepared).
pub struct BackfillView {
    pub backfill: Backfill,
    pub progress: Option<BackfillProgress>,
}

/// Whether a backfill has ended (its per-image results are final).
pub fn is_terminal(status: &str) -> bool {
    matches!(status, "COMPLETE" | "FAILED" | "STOPPED")
}

/// The rules of `config` with `region`/`registry_id` among their destinations.
fn rules_to<'a>(config: &'a Value, region: &str, registry_id: &str) -> Vec<&'a Value> {
    config["rules"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|rule| {
            rule["destinations"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|d| d["region"] == region && d["registryId"] == registry_id)
        })
        .collect()
}

impl Replication {
    /// Starts a backfill to a destination of the replication configuration.
    pub async fn start_backfill(
        &self,
        region: &str,
        registry_id: &str,
    ) -> Result<Backfill, BackfillError> {
        let config = self.configuration().await?;
        if rules_to(&config, region, registry_id).is_empty() {
            return Err(BackfillError::Invalid(format!(
                "Invalid parameter at 'destination': no rule of the replication configuration replicates to registry {registry_id} in {region}"
            )));
        }
        let now = now_millis();
        let backfill = Backfill {
            id: uuid::Uuid::new_v4().to_string(),
            region: region.to_string(),
            registry_id: registry_id.to_string(),
            status: "PREPARING".into(),
            failure_code: None,
            started_at: now,
            ended_at: None,
        };
        let payload = json!({"backfill": backfill.id}).to_string();
        let singleton = format!("{BACKFILL_JOB}:{}", backfill.id);
        let prepare = NewJob {
            kind: BACKFILL_JOB,
            payload: &payload,
            singleton: Some(&singleton),
            max_attempts: ATTEMPTS,
            run_after: now,
        };
        if !self.store.create_backfill(&backfill, &prepare).await? {
            return Err(BackfillError::InProgress(
                region.to_string(),
                registry_id.to_string(),
            ));
        }
        Ok(backfill)
    }

    /// The preparing job: lists the items, queues their copies.
    pub async fn prepare_backfill(&self, job: &Job) -> Result<(), String> {
        let p: Value = serde_json::from_str(&job.payload).map_err(|e| e.to_string())?;
        let id = p["backfill"].as_str().unwrap_or_default();
        self.prepare(id).await.map_err(|e| e.to_string())
    }

    async fn prepare(&self, id: &str) -> Result<(), StoreError> {
        let Some(backfill) = self.store.backfill(id).await? else {
            return Ok(());
        };
        if backfill.status != "PREPARING" {
            return Ok(());
        }
        let config = self.configuration().await?;
        let rules = rules_to(&config, &backfill.region, &backfill.registry_id);
        let mut items: Vec<(String, String, String)> = Vec::new();
        let mut last_repository: Option<String> = None;
        loop {
            let repositories = self
                .store
                .list_repositories(last_repository.as_deref(), PAGE)
                .await?;
            for repository in &repositories {
                if !rules.iter().any(|rule| covers(rule, repository)) {
                    continue;
                }
                let Ok(name) = repository.parse::<RepositoryName>() else {
                    continue;
                };
                let mut after: Option<(String, String)> = None;
                loop {
                    let ids = self
                        .store
                        .list_image_ids(
                            &name,
                            after.as_ref().map(|(d, t)| (d.as_str(), t.as_str())),
                            PAGE,
                            TagStatus::Any,
                            ImageStatusFilter::Active,
                        )
                        .await?;
                    for (digest, tag) in &ids {
                        items.push((
                            repository.clone(),
                            digest.to_string(),
                            tag.clone().unwrap_or_default(),
                        ));
                    }
                    match ids.last() {
                        Some((digest, tag)) if ids.len() == PAGE as usize => {
                            after = Some((digest.to_string(), tag.clone().unwrap_or_default()));
                        }
                        _ => break,
                    }
                }
            }
            if repositories.len() < PAGE as usize {
                break;
            }
            last_repository = repositories.last().cloned();
        }
        self.store.add_backfill_items(id, &items).await?;
        let now = now_millis();
        for (repository, digest, tag) in &items {
            let payload = json!({
                "repository": repository, "digest": digest,
                "tag": if tag.is_empty() { Value::Null } else { json!(tag) },
                "region": backfill.region, "registryId": backfill.registry_id,
                "backfill": id,
            })
            .to_string();
            let singleton = format!("{REPLICATE_JOB}:backfill:{id}:{repository}@{digest}:{tag}");
            self.store
                .enqueue_job(
                    &NewJob {
                        kind: REPLICATE_JOB,
                        payload: &payload,
                        singleton: Some(&singleton),
                        max_attempts: ATTEMPTS,
                        run_after: now,
                    },
                    now,
                )
                .await?;
        }
        self.store
            .set_backfill_status(id, &["PREPARING"], "IN_PROGRESS", None, None)
            .await?;
        // Copies may all have finished already (or there were none).
        self.finish_backfill_if_done(id).await
    }

    /// Whether a copy for backfill `id` should be skipped: it was stopped.
    pub(super) async fn backfill_stopped(&self, id: &str) -> Result<bool, StoreError> {
        Ok(self
            .store
            .backfill(id)
            .await?
            .is_none_or(|b| b.status == "STOPPED"))
    }

    /// Records one item's outcome, and ends the backfill when it was the last.
    pub(super) async fn finish_backfill_item(
        &self,
        id: &str,
        item: &BackfillItem,
    ) -> Result<(), StoreError> {
        self.store.finish_backfill_item(id, item).await?;
        self.finish_backfill_if_done(id).await
    }

    async fn finish_backfill_if_done(&self, id: &str) -> Result<(), StoreError> {
        if self.store.backfill_progress(id).await?.pending == 0 {
            self.store
                .set_backfill_status(id, &["IN_PROGRESS"], "COMPLETE", None, Some(now_millis()))
                .await?;
        }
        Ok(())
    }

    /// Stops a backfill: what has not been copied is skipped.
    pub async fn stop_backfill(&self, id: &str) -> Result<Backfill, BackfillError> {
        let Some(backfill) = self.store.backfill(id).await? else {
            return Err(BackfillError::NotFound(id.to_string()));
        };
        if !matches!(backfill.status.as_str(), "PREPARING" | "IN_PROGRESS") {
            return Err(BackfillError::InvalidStatus(
                id.to_string(),
                backfill.status,
            ));
        }
        let stopped = self
            .store
            .set_backfill_status(
                id,
                &["PREPARING", "IN_PROGRESS"],
                "STOPPED",
                None,
                Some(now_millis()),
            )
            .await?;
        self.store.skip_backfill_items(id).await?;
        let now = self
            .store
            .backfill(id)
            .await?
            .ok_or_else(|| BackfillError::NotFound(id.to_string()))?;
        if !stopped {
            // It ended meanwhile.
            return Err(BackfillError::InvalidStatus(id.to_string(), now.status));
        }
        Ok(now)
    }

    async fn view(&self, backfill: Backfill) -> Result<BackfillView, StoreError> {
        let progress = match backfill.status.as_str() {
            "PREPARING" => None,
            _ => Some(self.store.backfill_progress(&backfill.id).await?),
        };
        Ok(BackfillView { backfill, progress })
    }

    /// Backfills newest first, after `after` (`(started_at, id)`).
    pub async fn backfills(
        &self,
        after: Option<(i64, &str)>,
        limit: u32,
    ) -> Result<Vec<BackfillView>, StoreError> {
        let since = now_millis() - KEEP_MILLIS;
        let mut views = Vec::new();
        for backfill in self.store.backfills(since, after, limit).await? {
            views.push(self.view(backfill).await?);
        }
        Ok(views)
    }

    /// A backfill with its per-image results once it has ended: those with
    /// `status` (`COMPLETE` or `FAILED`; both when `None`), after `after`
    /// (`(repository, digest, tag)`), at most `limit`.
    pub async fn backfill_results(
        &self,
        id: &str,
        status: Option<&str>,
        after: Option<(&str, &str, &str)>,
        limit: u32,
    ) -> Result<(BackfillView, Vec<BackfillItem>), BackfillError> {
        let Some(backfill) = self.store.backfill(id).await? else {
            return Err(BackfillError::NotFound(id.to_string()));
        };
        let results = if is_terminal(&backfill.status) {
            let statuses = match status {
                Some(s) => vec![s],
                None => vec!["COMPLETE", "FAILED"],
            };
            self.store
                .backfill_items(id, &statuses, after, limit)
                .await?
        } else {
            Vec::new()
        };
        Ok((self.view(backfill).await?, results))
    }
}
