//! `PutReplicationConfiguration`, the configuration in `DescribeRegistry`,
//! and `DescribeImageReplicationStatus`: the replication service decides;
//! this translates.

use serde_json::{Value, json};

use super::images::image_id;
use super::repositories::name_of;
use super::{Call, EcrError};
use crate::replication::ReplicationError;

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
