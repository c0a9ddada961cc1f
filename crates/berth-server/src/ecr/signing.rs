//! Managed signing through the ECR door: the signing service decides; this translates.

use serde_json::{Value, json};

use super::images::image_id;
use super::repositories::name_of;
use super::{Call, EcrError};
use crate::signing::SigningError;

impl From<SigningError> for EcrError {
    fn from(e: SigningError) -> EcrError {
        match e {
            SigningError::Invalid(m) => EcrError::invalid_parameter(m),
            SigningError::Internal(inner) => EcrError::internal(inner),
            e @ SigningError::NotFound(_) => {
                EcrError::new("SigningConfigurationNotFoundException", e.to_string())
            }
        }
    }
}

pub async fn put_configuration(call: &Call<'_>, input: &Value) -> Result<Value, EcrError> {
    let config = call
        .app
        .signing
        .put_configuration(input["signingConfiguration"].clone())
        .await?;
    Ok(json!({"signingConfiguration": config}))
}

pub async fn get_configuration(call: &Call<'_>) -> Result<Value, EcrError> {
    let config = call.app.signing.configuration().await?;
    Ok(json!({"registryId": call.account(), "signingConfiguration": config}))
}

pub async fn delete_configuration(call: &Call<'_>) -> Result<Value, EcrError> {
    let config = call.app.signing.delete_configuration().await?;
    Ok(json!({"registryId": call.account(), "signingConfiguration": config}))
}

pub async fn describe_status(call: &Call<'_>, input: &Value) -> Result<Value, EcrError> {
    let name = name_of(input)?;
    let image = super::scanning::image_of(call, &name, &input["imageId"]).await?;
    let statuses = call
        .app
        .signing
        .statuses(name.as_str(), &image.digest.to_string())
        .await
        .map_err(EcrError::internal)?;
    Ok(json!({
        "repositoryName": name.as_str(),
        "imageId": image_id(&image.digest, input["imageId"]["imageTag"].as_str()),
        "registryId": call.account(),
        "signingStatuses": statuses.iter().map(|s| {
            let mut out = json!({"signingProfileArn": s.profile_arn, "status": s.status});
            if let Some(code) = &s.failure_code {
                out["failureCode"] = json!(code);
            }
            if let Some(reason) = &s.failure_reason {
                out["failureReason"] = json!(reason);
            }
            out
        }).collect::<Vec<_>>(),
    }))
}
