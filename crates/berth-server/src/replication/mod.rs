//! Replication, as ECR's `PutReplicationConfiguration` says: rules of
//! destinations and repository filters (`PREFIX_MATCH`). A destination —
//! ECR's region and registry id — stands for another berth or any OCI
//! registry, named at start-up (`--replication-destination
//! REGION/REGISTRY_ID=URL[,SECRET]`, the secret holding `{"username",
//! "accessToken"}`). Each push that a rule covers queues one job per
//! destination (through the outbox, so none is lost); the job copies the
//! image over the OCI API — child manifests, then blobs the destination
//! lacks (`HEAD` first, so nothing is sent twice), then the manifest by
//! digest and by tag — retried with back-off, its state per image and
//! destination kept for `DescribeImageReplicationStatus`. A destination
//! repository that does not exist is created through the destination's ECR
//! API (SigV4 with the same key), as ECR does.

use std::sync::Arc;

use base64::Engine as _;
use berth_core::{Digest, Reference, RepositoryName, sigv4};
use berth_store::{
    Job, MetadataStore, NewEvent, NewJob, ReplicationStatus, StoreError, now_millis,
};
use futures_util::TryStreamExt;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use crate::registry::{Registry, RegistryError};
use crate::secrets::Secrets;

pub mod backfill;

/// The job kind that copies one image to one destination.
pub const REPLICATE_JOB: &str = "replication.image";
/// The job kind that makes one destination agree after a delete (rules
/// with `deleteReplication`).
pub const REPLICATE_DELETE_JOB: &str = "replication.delete";
/// The event a finished copy emits.
pub const REPLICATION_ACTION: &str = "ECR Replication Action";
/// Where destinations put through the API are kept (settings
/// `<prefix><region>/<registry id>`, JSON `{"endpoint", "secretId"}`).
const DESTINATION_SETTING: &str = "replication_destination/";
/// Where the configuration is kept (a registry setting).
const SETTING: &str = "replication_configuration";
/// Attempts before an image is `FAILED` for a destination (with the job
/// queue's doubling back-off, about three hours).
const ATTEMPTS: i64 = 12;

/// A destination berth knows how to reach.
#[derive(Clone, Debug)]
pub struct Destination {
    pub region: String,
    pub registry_id: String,
    /// `http[s]://host[:port]`.
    pub endpoint: String,
    /// The secret (name or ARN) with the credentials, if any.
    pub secret: Option<String>,
}

impl Destination {
    /// `REGION/REGISTRY_ID=URL[,SECRET]`.
    pub fn parse(text: &str) -> Result<Destination, String> {
        let bad = || {
            format!("--replication-destination {text}: expected REGION/REGISTRY_ID=URL[,SECRET]")
        };
        let (key, rest) = text.split_once('=').ok_or_else(bad)?;
        let (region, registry_id) = key.split_once('/').ok_or_else(bad)?;
        let (endpoint, secret) = match rest.split_once(',') {
            Some((e, s)) => (e, Some(s.to_string())),
            None => (rest, None),
        };
        if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
            return Err(bad());
        }
        Ok(Destination {
            region: region.to_string(),
            registry_id: registry_id.to_string(),
            endpoint: endpoint.trim_end_matches('/').to_string(),
            secret,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReplicationError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Internal(#[from] StoreError),
}

pub struct Replication {
    store: Arc<dyn MetadataStore>,
    registry: Arc<Registry>,
    secrets: Arc<Secrets>,
    /// The destinations this node can reach (from its configuration).
    destinations: Vec<Destination>,
    http: reqwest::Client,
    account: String,
    region: String,
}

/// Whether `rule` covers `repository`: no filters, or a prefix that matches.
fn covers(rule: &Value, repository: &str) -> bool {
    match rule["repositoryFilters"].as_array() {
        None => true,
        Some(filters) if filters.is_empty() => true,
        Some(filters) => filters.iter().any(|f| {
            f["filterType"] == "PREFIX_MATCH"
                && f["filter"]
                    .as_str()
                    .is_some_and(|p| repository.starts_with(p))
        }),
    }
}

/// A destination as the API stored it.
fn stored_destination(region: &str, registry_id: &str, text: &str) -> Option<Destination> {
    let value: Value = serde_json::from_str(text).ok()?;
    Some(Destination {
        region: region.to_string(),
        registry_id: registry_id.to_string(),
        endpoint: value["endpoint"].as_str()?.to_string(),
        secret: value["secretId"].as_str().map(str::to_string),
    })
}

/// What a copy or delete job names (its JSON payload).
struct ImageJob {
    repository: String,
    digest: String,
    tag: Option<String>,
    region: String,
    id: String,
    /// The backfill a copy belongs to, if any.
    backfill: Option<String>,
}

impl ImageJob {
    fn of(job: &Job) -> Result<ImageJob, String> {
        let p: Value = serde_json::from_str(&job.payload).map_err(|e| e.to_string())?;
        let text = |k: &str| p[k].as_str().unwrap_or_default().to_string();
        let optional = |k: &str| p[k].as_str().map(str::to_string);
        Ok(ImageJob {
            repository: text("repository"),
            digest: text("digest"),
            tag: optional("tag"),
            region: text("region"),
            id: text("registryId"),
            backfill: optional("backfill"),
        })
    }
}

/// Whether `rule` replicates deletes (`deleteReplication.enabled`).
fn deletes(rule: &Value) -> bool {
    rule["deleteReplication"]["enabled"] == true
}

impl Replication {
    pub fn new(
        store: Arc<dyn MetadataStore>,
        registry: Arc<Registry>,
        secrets: Arc<Secrets>,
        destinations: Vec<Destination>,
        account: String,
        region: String,
    ) -> Arc<Replication> {
        Arc::new(Replication {
            store,
            registry,
            secrets,
            destinations,
            http: reqwest::Client::new(),
            account,
            region,
        })
    }

    /// The configuration (`{"rules": [...]}`; no rules when none was put).
    pub async fn configuration(&self) -> Result<Value, StoreError> {
        Ok(self
            .store
            .get_setting(SETTING)
            .await?
            .and_then(|text| serde_json::from_str(&text).ok())
            .unwrap_or_else(|| json!({"rules": []})))
    }

    pub async fn put_configuration(&self, config: Value) -> Result<Value, ReplicationError> {
        let rules = config["rules"].as_array().cloned().unwrap_or_default();
        let mut total = 0;
        for rule in &rules {
            for d in rule["destinations"].as_array().into_iter().flatten() {
                total += 1;
                let (region, id) = (
                    d["region"].as_str().unwrap_or_default(),
                    d["registryId"].as_str().unwrap_or_default(),
                );
                if region == self.region && id == self.account {
                    return Err(ReplicationError::Invalid(format!(
                        "Invalid parameter at 'replicationConfiguration': a rule cannot replicate to this registry's own region {region}"
                    )));
                }
                if self.destination(region, id).await?.is_none() {
                    return Err(ReplicationError::Invalid(format!(
                        "Invalid parameter at 'replicationConfiguration': berth does not know where registry {id} in {region} is; name it with PutReplicationDestination or start berth with --replication-destination {region}/{id}=URL"
                    )));
                }
            }
        }
        if total > 25 {
            return Err(ReplicationError::Invalid(
                "Invalid parameter at 'replicationConfiguration': at most 25 destinations in all rules".into(),
            ));
        }
        let config = json!({"rules": rules});
        self.store
            .put_setting(SETTING, Some(&config.to_string()))
            .await?;
        Ok(config)
    }

    /// Where `registry_id` in `region` is: as this node was started
    /// (`--replication-destination`, which wins), or as put through the API.
    async fn destination(
        &self,
        region: &str,
        registry_id: &str,
    ) -> Result<Option<Destination>, StoreError> {
        if let Some(d) = self
            .destinations
            .iter()
            .find(|d| d.region == region && d.registry_id == registry_id)
        {
            return Ok(Some(d.clone()));
        }
        Ok(self
            .store
            .get_setting(&format!("{DESTINATION_SETTING}{region}/{registry_id}"))
            .await?
            .and_then(|text| stored_destination(region, registry_id, &text)))
    }

    /// Every destination: (destination, `"configuration"` or `"api"`).
    pub async fn destinations(&self) -> Result<Vec<(Destination, &'static str)>, StoreError> {
        let mut all: Vec<_> = self
            .destinations
            .iter()
            .map(|d| (d.clone(), "configuration"))
            .collect();
        for (name, text) in self.store.settings_with_prefix(DESTINATION_SETTING).await? {
            let key = &name[DESTINATION_SETTING.len()..];
            let Some((region, id)) = key.split_once('/') else {
                continue;
            };
            if all
                .iter()
                .any(|(d, _)| d.region == region && d.registry_id == id)
            {
                continue;
            }
            if let Some(d) = stored_destination(region, id, &text) {
                all.push((d, "api"));
            }
        }
        Ok(all)
    }

    /// Names (or renames) a destination through the API: `http[s]://` URL,
    /// and the secret with its credentials. One this node was started with
    /// cannot be changed here.
    pub async fn put_destination(&self, d: Destination) -> Result<(), ReplicationError> {
        let field = |name: &str, value: &str, ok: bool| {
            if ok {
                Ok(())
            } else {
                Err(ReplicationError::Invalid(format!(
                    "Invalid parameter at '{name}': {value:?} is not valid"
                )))
            }
        };
        field(
            "region",
            &d.region,
            !d.region.is_empty()
                && d.region.len() <= 25
                && d.region
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
        )?;
        field(
            "registryId",
            &d.registry_id,
            d.registry_id.len() == 12 && d.registry_id.bytes().all(|b| b.is_ascii_digit()),
        )?;
        let url_ok = reqwest::Url::parse(&d.endpoint).is_ok_and(|u| {
            matches!(u.scheme(), "http" | "https")
                && u.host().is_some()
                && u.path() == "/"
                && u.query().is_none()
                // Credentials belong in the secret, never in a URL that is shown.
                && u.username().is_empty()
                && u.password().is_none()
        });
        field("endpoint", &d.endpoint, url_ok)?;
        if d.region == self.region && d.registry_id == self.account {
            return Err(ReplicationError::Invalid(format!(
                "Invalid parameter at 'registryId': {} in {} is this registry",
                d.registry_id, d.region
            )));
        }
        if self
            .destinations
            .iter()
            .any(|c| c.region == d.region && c.registry_id == d.registry_id)
        {
            return Err(ReplicationError::Invalid(format!(
                "Invalid parameter at 'registryId': {}/{} is named by --replication-destination where berth was started; change it there",
                d.region, d.registry_id
            )));
        }
        let value = json!({"endpoint": d.endpoint.trim_end_matches('/'), "secretId": d.secret});
        self.store
            .put_setting(
                &format!("{DESTINATION_SETTING}{}/{}", d.region, d.registry_id),
                Some(&value.to_string()),
            )
            .await?;
        Ok(())
    }

    /// Forgets a destination put through the API: refused while a rule of
    /// the configuration sends to it; false if there was none.
    pub async fn delete_destination(
        &self,
        region: &str,
        registry_id: &str,
    ) -> Result<bool, ReplicationError> {
        let config = self.configuration().await?;
        let used = config["rules"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|rule| {
                rule["destinations"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|d| d["region"] == region && d["registryId"] == registry_id)
            });
        if used {
            return Err(ReplicationError::Invalid(format!(
                "Invalid parameter at 'registryId': a rule of the replication configuration replicates to {registry_id} in {region}; change the configuration first"
            )));
        }
        Ok(self
            .store
            .put_setting(
                &format!("{DESTINATION_SETTING}{region}/{registry_id}"),
                None,
            )
            .await?)
    }

    /// Queues the copies a push calls for (one per destination of every
    /// rule that covers its repository).
    pub async fn on_push(
        &self,
        repository: &str,
        digest: &str,
        tag: Option<&str>,
    ) -> Result<(), StoreError> {
        let config = self.configuration().await?;
        let now = now_millis();
        for rule in config["rules"].as_array().into_iter().flatten() {
            if !covers(rule, repository) {
                continue;
            }
            for d in rule["destinations"].as_array().into_iter().flatten() {
                let (region, id) = (
                    d["region"].as_str().unwrap_or_default(),
                    d["registryId"].as_str().unwrap_or_default(),
                );
                let payload = json!({
                    "repository": repository, "digest": digest, "tag": tag,
                    "region": region, "registryId": id,
                })
                .to_string();
                let singleton = format!(
                    "{REPLICATE_JOB}:{repository}@{digest}:{}->{region}/{id}",
                    tag.unwrap_or("")
                );
                let status = ReplicationStatus {
                    repository: repository.to_string(),
                    digest: digest.to_string(),
                    region: region.to_string(),
                    registry_id: id.to_string(),
                    status: "IN_PROGRESS".into(),
                    failure_code: None,
                    updated_at: now,
                };
                let copy = NewJob {
                    kind: REPLICATE_JOB,
                    payload: &payload,
                    singleton: Some(&singleton),
                    max_attempts: ATTEMPTS,
                    run_after: now,
                };
                self.store
                    .put_replication_status(&status, &[], Some(&copy))
                    .await?;
            }
        }
        Ok(())
    }

    pub async fn statuses(
        &self,
        repository: &str,
        digest: &str,
    ) -> Result<Vec<ReplicationStatus>, StoreError> {
        self.store.replication_statuses(repository, digest).await
    }

    /// Runs one copy (the job): `Err` to try again later.
    pub async fn run(&self, job: &Job) -> Result<(), String> {
        let ImageJob {
            repository,
            digest,
            tag,
            region,
            id,
            backfill,
        } = ImageJob::of(job)?;
        let backfill = backfill.as_deref();
        let item = |status: &str, failure_code: Option<String>| berth_store::BackfillItem {
            repository: repository.clone(),
            digest: digest.clone(),
            tag: tag.clone().unwrap_or_default(),
            status: status.to_string(),
            failure_code,
        };
        if let Some(id) = backfill
            && self.backfill_stopped(id).await.map_err(|e| e.to_string())?
        {
            return self
                .finish_backfill_item(id, &item("SKIPPED", None))
                .await
                .map_err(|e| e.to_string());
        }
        let mut status = ReplicationStatus {
            repository: repository.clone(),
            digest: digest.clone(),
            region: region.clone(),
            registry_id: id.clone(),
            status: "COMPLETE".into(),
            failure_code: None,
            updated_at: now_millis(),
        };
        let destination = self
            .destination(&region, &id)
            .await
            .map_err(|e| e.to_string())?;
        let outcome = match &destination {
            None => Err(format!(
                "no destination {region}/{id} is configured on this node"
            )),
            Some(destination) => {
                self.copy(destination, &repository, &digest, tag.as_deref())
                    .await
            }
        };
        if let Err(e) = outcome {
            tracing::warn!(repository, digest, region, registry = id, error = %e, attempt = job.attempts, "replication failed");
            if job.attempts < job.max_attempts {
                return Err(e);
            }
            status.status = "FAILED".into();
            status.failure_code = Some(e.chars().take(256).collect());
        }
        status.updated_at = now_millis();
        if let Some(id) = backfill {
            self.finish_backfill_item(id, &item(&status.status, status.failure_code.clone()))
                .await
                .map_err(|e| e.to_string())?;
        }
        let detail = self.action_detail(
            "REPLICATE",
            status.status == "COMPLETE",
            &repository,
            &digest,
            tag.as_deref(),
            (&region, &id),
            status.failure_code.as_deref(),
        );
        let event = NewEvent {
            at: status.updated_at,
            detail_type: REPLICATION_ACTION.into(),
            detail: detail.to_string(),
        };
        self.store
            .put_replication_status(&status, &[event], None)
            .await
            .map_err(|e| e.to_string())?;
        // Deleted while it was being copied, under a rule that replicates
        // deletes: the copy must not outlive the image.
        if status.status == "COMPLETE"
            && self.replicates_deletes(&repository, &region, &id).await?
            && self.source_digest(&repository, &digest).await?.is_none()
        {
            self.enqueue_delete(&repository, &digest, None, &region, &id)
                .await
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// An `ECR Replication Action`'s detail: a copy (`REPLICATE`) or a
    /// delete (`DELETE`) at the destination (`region`, registry id).
    #[allow(clippy::too_many_arguments)]
    fn action_detail(
        &self,
        action: &str,
        succeeded: bool,
        repository: &str,
        digest: &str,
        tag: Option<&str>,
        (region, id): (&str, &str),
        failure: Option<&str>,
    ) -> Value {
        json!({
            "result": if succeeded { "SUCCESS" } else { "FAILURE" },
            "repository-name": repository,
            "image-digest": digest,
            "image-tag": tag,
            "action-type": action,
            "source-account": self.account,
            "source-region": self.region,
            "destination-account": id,
            "destination-region": region,
            "failure-code": failure,
        })
    }

    /// Whether a rule sending `repository` to the destination replicates deletes.
    async fn replicates_deletes(
        &self,
        repository: &str,
        region: &str,
        registry_id: &str,
    ) -> Result<bool, String> {
        let config = self.configuration().await.map_err(|e| e.to_string())?;
        Ok(config["rules"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|rule| {
                deletes(rule)
                    && covers(rule, repository)
                    && rule["destinations"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|d| d["region"] == region && d["registryId"] == registry_id)
            }))
    }

    /// Queues, for a delete (of an image, or of one tag) that rules with
    /// `deleteReplication` cover, one job per destination that makes the
    /// destination agree.
    pub async fn on_delete(
        &self,
        repository: &str,
        digest: &str,
        tag: Option<&str>,
    ) -> Result<(), StoreError> {
        let config = self.configuration().await?;
        let mut queued = std::collections::HashSet::new();
        for rule in config["rules"].as_array().into_iter().flatten() {
            if !deletes(rule) || !covers(rule, repository) {
                continue;
            }
            for d in rule["destinations"].as_array().into_iter().flatten() {
                let (region, id) = (
                    d["region"].as_str().unwrap_or_default(),
                    d["registryId"].as_str().unwrap_or_default(),
                );
                if queued.insert((region, id)) {
                    self.enqueue_delete(repository, digest, tag, region, id)
                        .await?;
                }
            }
        }
        Ok(())
    }

    async fn enqueue_delete(
        &self,
        repository: &str,
        digest: &str,
        tag: Option<&str>,
        region: &str,
        id: &str,
    ) -> Result<(), StoreError> {
        let now = now_millis();
        let payload = json!({
            "repository": repository, "digest": digest, "tag": tag,
            "region": region, "registryId": id,
        })
        .to_string();
        let singleton = format!(
            "{REPLICATE_DELETE_JOB}:{repository}@{digest}:{}->{region}/{id}",
            tag.unwrap_or("")
        );
        self.store
            .enqueue_job(
                &NewJob {
                    kind: REPLICATE_DELETE_JOB,
                    payload: &payload,
                    singleton: Some(&singleton),
                    max_attempts: ATTEMPTS,
                    run_after: now,
                },
                now,
            )
            .await?;
        Ok(())
    }

    /// The digest `reference` names in this registry now, if any.
    async fn source_digest(
        &self,
        repository: &str,
        reference: &str,
    ) -> Result<Option<String>, String> {
        let (Ok(name), Ok(reference)) = (
            repository.parse::<RepositoryName>(),
            reference.parse::<Reference>(),
        ) else {
            return Ok(None);
        };
        match self.registry.get_manifest(&name, &reference).await {
            Ok(m) => Ok(Some(m.digest.to_string())),
            Err(RegistryError::ManifestUnknown | RegistryError::NameUnknown { .. }) => Ok(None),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Runs one delete replication (the job): the destination is made to
    /// agree with this registry as it is now, so replays and reorderings do
    /// no harm — a tag removed here (and not put back) is removed there if
    /// it still names the same image; an image gone from here goes there,
    /// with its tags. `Err` to try again later.
    pub async fn run_delete(&self, job: &Job) -> Result<(), String> {
        let ImageJob {
            repository,
            digest,
            tag,
            region,
            id,
            ..
        } = ImageJob::of(job)?;
        let tag = tag.as_deref();
        let destination = self
            .destination(&region, &id)
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("no destination {region}/{id} is configured on this node"))?;
        let outcome = self
            .delete_at(&destination, &repository, &digest, tag)
            .await;
        let result = match &outcome {
            Ok(()) => "SUCCESS",
            Err(_) if job.attempts < job.max_attempts => return outcome,
            Err(_) => "FAILURE",
        };
        if let Err(e) = &outcome {
            tracing::warn!(repository, digest, region, registry = id, error = %e, "delete replication failed");
        }
        let failure = outcome
            .err()
            .map(|e| e.chars().take(256).collect::<String>());
        let detail = self.action_detail(
            "DELETE",
            result == "SUCCESS",
            &repository,
            &digest,
            tag,
            (&region, &id),
            failure.as_deref(),
        );
        self.store
            .record_event(now_millis(), REPLICATION_ACTION, &detail.to_string())
            .await
            .map_err(|e| e.to_string())
    }

    async fn delete_at(
        &self,
        d: &Destination,
        repository: &str,
        digest: &str,
        tag: Option<&str>,
    ) -> Result<(), String> {
        let target = self.target(d, repository).await?;
        let image_here = self.source_digest(repository, digest).await?.is_some();
        if let Some(tag) = tag
            && self.source_digest(repository, tag).await?.is_none()
            && target.digest_of(repository, tag).await?.as_deref() == Some(digest)
            && image_here
        {
            // Only the tag went; the image stays (with its other tags).
            return target.delete_manifest(repository, tag).await;
        }
        if !image_here {
            return target.delete_manifest(repository, digest).await;
        }
        Ok(())
    }

    /// The destination, ready to be spoken to about `repository` (its
    /// credentials from its secret, a token if it asks for one).
    async fn target<'a>(
        &'a self,
        d: &'a Destination,
        repository: &str,
    ) -> Result<Target<'a>, String> {
        let credentials = self.auth(d).await?;
        let basic = credentials.as_ref().map(|(u, t)| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{u}:{t}"))
            )
        });
        let mut target = Target {
            http: &self.http,
            d,
            basic,
            bearer: None,
            credentials,
        };
        target.authorize(repository).await?;
        Ok(target)
    }

    /// `Basic …` for the destination, from its secret.
    async fn auth(&self, d: &Destination) -> Result<Option<(String, String)>, String> {
        let Some(secret) = &d.secret else {
            return Ok(None);
        };
        let (_, value) = self
            .secrets
            .value(secret)
            .await
            .map_err(|e| format!("the destination's secret {secret}: {e}"))?;
        let json: Value = serde_json::from_str(&value.0).unwrap_or_default();
        match (json["username"].as_str(), json["accessToken"].as_str()) {
            (Some(u), Some(t)) => Ok(Some((u.to_string(), t.to_string()))),
            _ => Err(format!(
                "the secret {secret} must hold username and accessToken"
            )),
        }
    }

    async fn copy(
        &self,
        d: &Destination,
        repository: &str,
        digest: &str,
        tag: Option<&str>,
    ) -> Result<(), String> {
        let name: RepositoryName = repository.parse().map_err(|_| "invalid repository")?;
        let digest: Digest = digest.parse().map_err(|_| "invalid digest")?;
        let target = self.target(d, repository).await?;
        self.copy_manifest(&target, &name, &digest).await?;
        if let Some(tag) = tag {
            let stored = self
                .registry
                .get_manifest(&name, &Reference::Digest(digest.clone()))
                .await
                .map_err(|e| e.to_string())?;
            target
                .put_manifest(repository, tag, &stored.media_type, stored.content)
                .await?;
        }
        Ok(())
    }

    fn copy_manifest<'a>(
        &'a self,
        target: &'a Target<'a>,
        name: &'a RepositoryName,
        digest: &'a Digest,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send + 'a>> {
        Box::pin(async move {
            let stored = match self
                .registry
                .get_manifest(name, &Reference::Digest(digest.clone()))
                .await
            {
                Ok(m) => m,
                // Deleted meanwhile: nothing left to replicate.
                Err(RegistryError::ManifestUnknown | RegistryError::NameUnknown { .. }) => {
                    return Ok(());
                }
                Err(e) => return Err(e.to_string()),
            };
            let json: Value = serde_json::from_slice(&stored.content).unwrap_or_default();
            for child in json["manifests"].as_array().into_iter().flatten() {
                if let Some(child) = child["digest"]
                    .as_str()
                    .and_then(|d| d.parse::<Digest>().ok())
                {
                    self.copy_manifest(target, name, &child).await?;
                }
            }
            let blobs = std::iter::once(&json["config"])
                .chain(json["layers"].as_array().into_iter().flatten())
                .filter_map(|b| {
                    Some((
                        b["digest"].as_str()?.parse::<Digest>().ok()?,
                        b["size"].as_u64()?,
                    ))
                });
            for (blob, size) in blobs {
                target.ensure_blob(self, name.as_str(), &blob, size).await?;
            }
            target
                .put_manifest(
                    name.as_str(),
                    &digest.to_string(),
                    &stored.media_type,
                    stored.content,
                )
                .await
        })
    }
}

/// What a `HEAD` of a manifest accepts.
const MANIFEST_TYPES: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json";

/// One destination, as a copy reaches it.
struct Target<'a> {
    http: &'a reqwest::Client,
    d: &'a Destination,
    basic: Option<String>,
    /// `Bearer …` for the repository copied, when the destination's
    /// `/v2/` asks for a token (Docker Hub, GHCR, Quay, Distribution with
    /// token auth): fetched once per copy with the secret's credentials.
    bearer: Option<String>,
    credentials: Option<(String, String)>,
}

/// The parameters of a `WWW-Authenticate: Bearer k="v",…` challenge.
fn bearer_challenge(header: &str) -> Option<Vec<(String, String)>> {
    let (scheme, rest) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let mut params = Vec::new();
    let mut rest = rest.trim();
    while !rest.is_empty() {
        let (key, after) = rest.split_once('=')?;
        let after = after.trim_start();
        let (value, tail) = if let Some(quoted) = after.strip_prefix('"') {
            let end = quoted.find('"')?;
            (&quoted[..end], &quoted[end + 1..])
        } else {
            after.split_once(',').map_or((after, ""), |(v, t)| (v, t))
        };
        params.push((key.trim().to_ascii_lowercase(), value.to_string()));
        rest = tail.trim_start_matches([',', ' ']);
    }
    Some(params)
}

impl Target<'_> {
    fn request(&self, method: reqwest::Method, url: String) -> reqwest::RequestBuilder {
        let builder = self.http.request(method, url);
        match (&self.bearer, self.basic.as_deref()) {
            (Some(token), _) => builder.header("authorization", token.as_str()),
            (None, Some(auth)) => builder.header("authorization", auth),
            (None, None) => builder,
        }
    }

    /// Asks the destination how it wants to be spoken to: a `Bearer`
    /// challenge on `/v2/` means a token for `repository:<name>:pull,push`
    /// from its realm (with the secret's credentials as Basic, as `docker
    /// login` does); otherwise Basic (or nothing) as configured.
    async fn authorize(&mut self, repository: &str) -> Result<(), String> {
        let probe = self
            .request(reqwest::Method::GET, format!("{}/v2/", self.d.endpoint))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if probe.status() != reqwest::StatusCode::UNAUTHORIZED {
            return Ok(());
        }
        let Some(params) = probe
            .headers()
            .get("www-authenticate")
            .and_then(|h| h.to_str().ok())
            .and_then(bearer_challenge)
        else {
            return Ok(());
        };
        let param = |k: &str| {
            params
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
        };
        let realm = param("realm").ok_or("the destination's Bearer challenge names no realm")?;
        let mut url =
            reqwest::Url::parse(realm).map_err(|e| format!("the token realm {realm}: {e}"))?;
        {
            let mut query = url.query_pairs_mut();
            if let Some(service) = param("service") {
                query.append_pair("service", service);
            }
            query.append_pair("scope", &format!("repository:{repository}:pull,push"));
        }
        let mut ask = self.http.get(url);
        if let Some((user, secret)) = &self.credentials {
            ask = ask.basic_auth(user, Some(secret));
        }
        let answer = ask.send().await.map_err(|e| e.to_string())?;
        if !answer.status().is_success() {
            return Err(format!(
                "the destination's token service answered {}",
                answer.status()
            ));
        }
        let body: Value = answer.json().await.map_err(|e| e.to_string())?;
        let token = body["token"]
            .as_str()
            .or_else(|| body["access_token"].as_str())
            .ok_or("the destination's token service gave no token")?;
        self.bearer = Some(format!("Bearer {token}"));
        Ok(())
    }

    /// Sends the blob unless the destination has it.
    async fn ensure_blob(
        &self,
        replication: &Replication,
        repository: &str,
        digest: &Digest,
        size: u64,
    ) -> Result<(), String> {
        let base = &self.d.endpoint;
        let head = self
            .request(
                reqwest::Method::HEAD,
                format!("{base}/v2/{repository}/blobs/{digest}"),
            )
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if head.status().is_success() {
            return Ok(());
        }
        let mut started = self
            .request(
                reqwest::Method::POST,
                format!("{base}/v2/{repository}/blobs/uploads/"),
            )
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if started.status() == reqwest::StatusCode::NOT_FOUND {
            self.create_repository(repository).await?;
            started = self
                .request(
                    reqwest::Method::POST,
                    format!("{base}/v2/{repository}/blobs/uploads/"),
                )
                .send()
                .await
                .map_err(|e| e.to_string())?;
        }
        if !started.status().is_success() {
            return Err(format!(
                "starting an upload of {digest}: {}",
                started.status()
            ));
        }
        let location = started
            .headers()
            .get("location")
            .and_then(|l| l.to_str().ok())
            .ok_or("the destination gave no upload location")?
            .to_string();
        let location = if location.starts_with("http") {
            location
        } else {
            format!("{base}{location}")
        };
        let separator = if location.contains('?') { '&' } else { '?' };
        let bytes = replication
            .registry
            .read_blob(digest, None)
            .await
            .map_err(|e| e.to_string())?;
        let put = self
            .request(
                reqwest::Method::PUT,
                format!("{location}{separator}digest={digest}"),
            )
            .header("content-type", "application/octet-stream")
            .header("content-length", size)
            .body(reqwest::Body::wrap_stream(
                bytes.map_err(std::io::Error::other),
            ))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !put.status().is_success() {
            return Err(format!("uploading {digest}: {}", put.status()));
        }
        Ok(())
    }

    async fn put_manifest(
        &self,
        repository: &str,
        reference: &str,
        media_type: &str,
        content: bytes::Bytes,
    ) -> Result<(), String> {
        let response = self
            .request(
                reqwest::Method::PUT,
                format!("{}/v2/{repository}/manifests/{reference}", self.d.endpoint),
            )
            .header("content-type", media_type)
            .body(content)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !response.status().is_success() {
            let status = response.status();
            let body = response.text().await.unwrap_or_default();
            return Err(format!("putting the manifest {reference}: {status} {body}"));
        }
        Ok(())
    }

    /// The digest `tag` names at the destination (`HEAD`), if any.
    async fn digest_of(&self, repository: &str, tag: &str) -> Result<Option<String>, String> {
        let response = self
            .request(
                reqwest::Method::HEAD,
                format!("{}/v2/{repository}/manifests/{tag}", self.d.endpoint),
            )
            .header("accept", MANIFEST_TYPES)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        match response.status() {
            s if s.is_success() => Ok(response
                .headers()
                .get("docker-content-digest")
                .and_then(|h| h.to_str().ok())
                .map(str::to_string)),
            reqwest::StatusCode::NOT_FOUND => Ok(None),
            s => Err(format!(
                "asking the destination for {repository}:{tag}: {s}"
            )),
        }
    }

    /// Deletes a manifest by digest (with its tags) or one tag at the
    /// destination; one that is not there is done already, and one an index
    /// there still lists is left (as it would be here).
    async fn delete_manifest(&self, repository: &str, reference: &str) -> Result<(), String> {
        let response = self
            .request(
                reqwest::Method::DELETE,
                format!("{}/v2/{repository}/manifests/{reference}", self.d.endpoint),
            )
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status();
        if status.is_success() || status == reqwest::StatusCode::NOT_FOUND {
            return Ok(());
        }
        let body = response.text().await.unwrap_or_default();
        if status == reqwest::StatusCode::CONFLICT || body.contains("ImageReferencedByManifestList")
        {
            tracing::info!(
                repository,
                reference,
                "delete replication: the destination's index still lists it"
            );
            return Ok(());
        }
        Err(format!(
            "deleting {repository}@{reference} at the destination: {status} {body}"
        ))
    }

    /// Creates the repository at the destination, as ECR's replication
    /// does: a berth is asked with `CreateReplicaRepository`, so that its
    /// `REPLICATION` creation templates apply; any other registry with an
    /// ECR API with `CreateRepository`. SigV4 with the destination's key.
    async fn create_repository(&self, repository: &str) -> Result<(), String> {
        let body = json!({"repositoryName": repository}).to_string();
        let (status, text) = self
            .ecr_call(
                &format!(
                    "{}.CreateReplicaRepository",
                    crate::ecr::extension::TARGET_PREFIX
                ),
                &body,
            )
            .await?;
        if status.is_success() {
            return Ok(());
        }
        let (status, text) = if text.contains("UnknownOperationException") {
            self.ecr_call(
                "AmazonEC2ContainerRegistry_V20150921.CreateRepository",
                &body,
            )
            .await?
        } else {
            (status, text)
        };
        if status.is_success() || text.contains("RepositoryAlreadyExistsException") {
            Ok(())
        } else {
            Err(format!(
                "creating {repository} at the destination: {status} {text}"
            ))
        }
    }

    /// One call on the destination's AWS JSON door: (status, body).
    async fn ecr_call(
        &self,
        target: &str,
        body: &str,
    ) -> Result<(reqwest::StatusCode, String), String> {
        let Some((key, secret)) = &self.credentials else {
            return Err(
                "the destination has no such repository and no credentials to create it".into(),
            );
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let amz_date = sigv4::format_amz_date(now);
        let host = self
            .d
            .endpoint
            .split("://")
            .nth(1)
            .unwrap_or_default()
            .to_string();
        let headers = vec![
            ("host".to_string(), host),
            ("x-amz-date".to_string(), amz_date.clone()),
            ("x-amz-target".to_string(), target.to_string()),
        ];
        let payload = hex::encode(Sha256::digest(body.as_bytes()));
        let request = sigv4::Request {
            method: "POST",
            path: "/",
            query: "",
            headers: &headers,
            payload_sha256: &payload,
        };
        let authorization =
            sigv4::authorization_header(&request, &amz_date, key, secret, &self.d.region, "ecr");
        let response = self
            .http
            .post(format!("{}/", self.d.endpoint))
            .header("x-amz-date", amz_date)
            .header("x-amz-target", target)
            .header("content-type", "application/x-amz-json-1.1")
            .header("authorization", authorization)
            .body(body.to_string())
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status();
        Ok((status, response.text().await.unwrap_or_default()))
    }
}

/// Queues replication for pushes, and for deletes where rules say so (an
/// outbox consumer).
pub struct ReplicateOnPush(pub Arc<Replication>);

#[async_trait::async_trait]
impl crate::outbox::Consumer for ReplicateOnPush {
    fn name(&self) -> &'static str {
        "replicate-on-push"
    }

    async fn on_event(&self, event: &berth_store::Event) -> Result<(), String> {
        if let Some((repository, digest, tag)) = crate::events::pushed(event) {
            self.0
                .on_push(&repository, &digest, tag.as_deref())
                .await
                .map_err(|e| e.to_string())?;
        }
        if let Some((repository, digest, tag)) = crate::events::deleted(event) {
            self.0
                .on_delete(&repository, &digest, tag.as_deref())
                .await
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::bearer_challenge;

    #[test]
    fn bearer_challenges_as_registries_send_them() {
        let got = bearer_challenge(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/ubuntu:pull""#,
        )
        .unwrap();
        assert_eq!(
            got,
            [
                (
                    "realm".to_string(),
                    "https://auth.docker.io/token".to_string()
                ),
                ("service".to_string(), "registry.docker.io".to_string()),
                (
                    "scope".to_string(),
                    "repository:library/ubuntu:pull".to_string()
                ),
            ]
        );
        assert_eq!(
            bearer_challenge("bearer realm=http://127.0.0.1:1/token, service=x").unwrap()[1],
            ("service".to_string(), "x".to_string())
        );
        assert!(bearer_challenge(r#"Basic realm="x""#).is_none());
        assert!(bearer_challenge(r#"Bearer realm="unterminated"#).is_none());
    }
}
