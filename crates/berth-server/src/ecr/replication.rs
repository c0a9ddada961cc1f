//! `PutReplicationConfiguration`, the configuration in `DescribeRegistry`,
//! `DescribeImageReplicationStatus` and the backfills: the replication
//! service decides; this translates.

use serde_json::{Value, json};

use super::images::image_id;
use super::repositories::name_of;
use super::{Call, EcrError, page, token};
use crate::replication::ReplicationError;
use crate::replication::backfill::{BackfillError, BackfillView};
use berth_store::Backfill;

impl From<ReplicationError> for EcrError {
    fn from(e: ReplicationError) -> EcrError {
        match e {
            ReplicationError::Invalid(m) => EcrError::invalid_parameter(m),
            ReplicationError::Internal(inner) => EcrError::internal(inner),
        }
    }
}

pub async fn put_configuration(call: &Call<'_>, input: &Value) -> Result<Value, EcrError> {
    let config = call
        .app
        .replication
        .put_configuration(input["replicationConfiguration"].clone())
        .await?;
    Ok(json!({"replicationConfiguration": config}))
}

pub async fn describe_registry(call: &Call<'_>) -> Result<Value, EcrError> {
    let config = call
        .app
        .replication
        .configuration()
        .await
        .map_err(EcrError::internal)?;
    Ok(json!({"registryId": call.account(), "replicationConfiguration": config}))
}

pub async fn describe_status(call: &Call<'_>, input: &Value) -> Result<Value, EcrError> {
    let name = name_of(input)?;
    let image = super::scanning::image_of(call, &name, &input["imageId"]).await?;
    let statuses = call
        .app
        .replication
        .statuses(name.as_str(), &image.digest.to_string())
        .await
        .map_err(EcrError::internal)?;
    Ok(json!({
        "repositoryName": name.as_str(),
        "imageId": image_id(&image.digest, input["imageId"]["imageTag"].as_str()),
        "replicationStatuses": statuses.iter().map(|s| {
            let mut out = json!({"region": s.region, "registryId": s.registry_id, "status": s.status});
            if let Some(code) = &s.failure_code {
                out["failureCode"] = json!(code);
            }
            out
        }).collect::<Vec<_>>(),
    }))
}

impl From<BackfillError> for EcrError {
    fn from(e: BackfillError) -> EcrError {
        match e {
            BackfillError::Invalid(m) => EcrError::invalid_parameter(m),
            BackfillError::Internal(inner) => EcrError::internal(inner),
            e @ BackfillError::InProgress(..) => {
                EcrError::new("ReplicationBackfillInProgressException", e.to_string())
            }
            e @ BackfillError::NotFound(_) => {
                EcrError::new("ReplicationBackfillNotFoundException", e.to_string())
            }
            e @ BackfillError::InvalidStatus(..) => {
                EcrError::new("ReplicationBackfillInvalidStatusException", e.to_string())
            }
        }
    }
}

fn millis(at: i64) -> Value {
    json!(at as f64 / 1000.0)
}

/// The fields every backfill answer has.
fn backfill_json(b: &Backfill) -> Value {
    let mut out = json!({
        "replicationBackfillId": b.id,
        "destination": {"region": b.region, "registryId": b.registry_id},
        "status": b.status,
        "startedAt": millis(b.started_at),
    });
    if let Some(code) = &b.failure_code {
        out["failureCode"] = json!(code);
    }
    if let Some(at) = b.ended_at {
        out["endedAt"] = millis(at);
    }
    out
}

fn view_json(view: &BackfillView) -> Value {
    let mut out = backfill_json(&view.backfill);
    if let Some(p) = &view.progress {
        out["progress"] = json!({
            "totalReplicationCount": p.total,
            "completedReplicationCount": p.complete,
            "failedReplicationCount": p.failed,
            "failureCodes": p.failure_codes,
        });
    }
    out
}

/// `StartReplicationBackfill`.
pub async fn start_backfill(call: &Call<'_>, input: &Value) -> Result<Value, EcrError> {
    let destination = &input["destination"];
    let backfill = call
        .app
        .replication
        .start_backfill(
            destination["region"].as_str().unwrap_or_default(),
            destination["registryId"].as_str().unwrap_or_default(),
        )
        .await?;
    let mut out = backfill_json(&backfill);
    out["registryId"] = json!(call.account());
    Ok(out)
}

/// `StopReplicationBackfill`.
pub async fn stop_backfill(call: &Call<'_>, input: &Value) -> Result<Value, EcrError> {
    let id = input["replicationBackfillId"].as_str().unwrap_or_default();
    let backfill = call.app.replication.stop_backfill(id).await?;
    let mut out = backfill_json(&backfill);
    out["registryId"] = json!(call.account());
    Ok(out)
}

/// `ListReplicationBackfills`: newest first, paged.
pub async fn list_backfills(call: &Call<'_>, input: &Value) -> Result<Value, EcrError> {
    let (limit, after) = page(call, input)?;
    let after = match after.as_deref().map(|a| a.split_once('\n')) {
        None => None,
        Some(Some((at, id))) => Some((at.parse::<i64>().map_err(|_| bad_token())?, id)),
        Some(None) => return Err(bad_token()),
    };
    let views = call
        .app
        .replication
        .backfills(after, limit + 1)
        .await
        .map_err(EcrError::internal)?;
    let shown = &views[..views.len().min(limit as usize)];
    let mut out = json!({
        "registryId": call.account(),
        "backfills": shown.iter().map(view_json).collect::<Vec<_>>(),
    });
    if views.len() > shown.len()
        && let Some(last) = shown.last()
    {
        out["nextToken"] = token(
            call,
            &format!("{}\n{}", last.backfill.started_at, last.backfill.id),
        );
    }
    Ok(out)
}

/// `DescribeReplicationBackfillResults`: status and progress, and the
/// per-image results once the backfill has ended, paged.
pub async fn describe_backfill_results(call: &Call<'_>, input: &Value) -> Result<Value, EcrError> {
    let id = input["replicationBackfillId"].as_str().unwrap_or_default();
    let (limit, after) = page(call, input)?;
    let after: Option<Vec<&str>> = after.as_deref().map(|a| a.split('\n').collect());
    let after = match after.as_deref() {
        None => None,
        Some([repository, digest, tag]) => Some((*repository, *digest, *tag)),
        Some(_) => return Err(bad_token()),
    };
    let (view, results) = call
        .app
        .replication
        .backfill_results(id, input["resultStatusFilter"].as_str(), after, limit + 1)
        .await?;
    let shown = &results[..results.len().min(limit as usize)];
    let mut out = view_json(&view);
    out["registryId"] = json!(call.account());
    out["results"] = shown
        .iter()
        .map(|item| {
            let mut r = json!({
                "repositoryName": item.repository,
                "imageId": image_id_of(&item.digest, &item.tag),
                "status": item.status,
            });
            if let Some(code) = &item.failure_code {
                r["failureCode"] = json!(code);
            }
            r
        })
        .collect();
    if results.len() > shown.len()
        && let Some(last) = shown.last()
    {
        out["nextToken"] = token(
            call,
            &format!("{}\n{}\n{}", last.repository, last.digest, last.tag),
        );
    }
    Ok(out)
}

fn image_id_of(digest: &str, tag: &str) -> Value {
    let mut id = json!({"imageDigest": digest});
    if !tag.is_empty() {
        id["imageTag"] = json!(tag);
    }
    id
}

fn bad_token() -> EcrError {
    EcrError::invalid_parameter("Invalid parameter at 'nextToken': the token is not valid")
}
