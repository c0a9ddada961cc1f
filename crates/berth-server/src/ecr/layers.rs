//! Layers through the API: `InitiateLayerUpload`, `UploadLayerPart`,
//! `CompleteLayerUpload`, `BatchCheckLayerAvailability`,
//! `GetDownloadUrlForLayer`. The same uploads as `/v2/`'s, with ECR's rules.

use base64::Engine as _;
use berth_core::{Algorithm, Digest, RepositoryName};
use berth_store::now_millis;
use bytes::Bytes;
use serde_json::{Value, json};

use super::repositories::name_of;
use super::{Call, EcrError};
use crate::RegistryError;

/// Parts must be at least this large, except the last (as on ECR).
const MIN_PART: u64 = 5 << 20;
/// The part size ECR suggests.
const PART_SIZE: u64 = 10 << 20;
/// How long a download URL works.
const DOWNLOAD_URL_SECONDS: i64 = 3600;

/// The repository, which must exist: the API never creates one on push.
async fn repository(call: &Call<'_>, input: &Value) -> Result<RepositoryName, EcrError> {
    let name = name_of(input)?;
    call.app
        .registry
        .repository(&name)
        .await
        .map_err(|e| call.registry_error(e, name.as_str()))?;
    Ok(name)
}

fn upload_error(call: &Call<'_>, name: &RepositoryName, id: &str, e: RegistryError) -> EcrError {
    match e {
        RegistryError::UploadUnknown => EcrError::new(
            "UploadNotFoundException",
            format!(
                "Upload with id '{id}' is not found in repository '{name}' in registry with id '{}'",
                call.account()
            ),
        ),
        other => call.registry_error(other, name.as_str()),
    }
}

pub async fn initiate(call: &Call<'_>, input: &Value) -> Result<Value, EcrError> {
    let name = repository(call, input).await?;
    let upload = call
        .app
        .registry
        .start_upload(&name, Algorithm::Sha256)
        .await
        .map_err(|e| call.registry_error(e, name.as_str()))?;
    Ok(json!({"uploadId": upload.id, "partSize": PART_SIZE}))
}

pub async fn upload_part(call: &Call<'_>, input: &Value) -> Result<Value, EcrError> {
    let name = repository(call, input).await?;
    let id = input["uploadId"].as_str().unwrap_or_default();
    let first = input["partFirstByte"].as_u64().unwrap_or_default();
    let last = input["partLastByte"].as_u64().unwrap_or_default();
    let blob = base64::engine::general_purpose::STANDARD
        .decode(input["layerPartBlob"].as_str().unwrap_or_default())
        .map_err(|_| {
            EcrError::invalid_parameter("Invalid parameter at 'layerPartBlob': not base64")
        })?;
    let registry = &call.app.registry;
    let upload = registry
        .upload_status(&name, id)
        .await
        .map_err(|e| upload_error(call, &name, id, e))?;
    let invalid_part = |reason: String| {
        let mut e = EcrError::new("InvalidLayerPartException", reason);
        e.extra = Some(json!({
            "registryId": call.account(),
            "repositoryName": name.as_str(),
            "uploadId": id,
            "lastValidByteReceived": upload.size.saturating_sub(1),
        }));
        e
    };
    if first != upload.size {
        return Err(invalid_part(format!(
            "The part's first byte {first} does not follow the last byte received ({})",
            upload.size as i64 - 1
        )));
    }
    let part_len = last.checked_sub(first).and_then(|d| d.checked_add(1));
    if part_len != Some(blob.len() as u64) {
        return Err(invalid_part(format!(
            "The part holds {} bytes, not partLastByte - partFirstByte + 1",
            blob.len()
        )));
    }
    let mut data = futures_util::stream::iter([Ok::<_, std::io::Error>(Bytes::from(blob))]);
    let advanced = registry
        .write_upload(&name, id, Some(first), part_len, &mut data)
        .await
        .map_err(|e| upload_error(call, &name, id, e))?;
    Ok(json!({
        "registryId": call.account(),
        "repositoryName": name.as_str(),
        "uploadId": id,
        "lastByteReceived": advanced.size.saturating_sub(1),
    }))
}

pub async fn complete(call: &Call<'_>, input: &Value) -> Result<Value, EcrError> {
    let name = repository(call, input).await?;
    let id = input["uploadId"].as_str().unwrap_or_default();
    let given = input["layerDigests"][0].as_str().unwrap_or_default();
    let digest: Digest = given.parse().map_err(|_| {
        EcrError::new(
            "InvalidLayerException",
            format!("The layer digest '{given}' is not a valid digest"),
        )
    })?;
    let registry = &call.app.registry;
    let upload = registry
        .upload_status(&name, id)
        .await
        .map_err(|e| upload_error(call, &name, id, e))?;
    if upload.size == 0 {
        return Err(EcrError::new(
            "EmptyUploadException",
            format!("The upload with id '{id}' has no layer parts"),
        ));
    }
    // Parts of at least 5 MiB but the last, checked on completion as ECR's
    // model has it.
    let sizes = upload.piece_sizes();
    if sizes.iter().rev().skip(1).any(|size| *size < MIN_PART) {
        return Err(EcrError::new(
            "LayerPartTooSmallException",
            format!("Layer parts must be at least {MIN_PART} bytes, except the last"),
        ));
    }
    if registry.blob_size(&name, &digest).await.is_ok() {
        registry
            .cancel_upload(&name, id)
            .await
            .map_err(|e| upload_error(call, &name, id, e))?;
        return Err(EcrError::new(
            "LayerAlreadyExistsException",
            format!(
                "The layer '{digest}' already exists in the repository with name '{name}' in registry with id '{}'",
                call.account()
            ),
        ));
    }
    match registry.finish_upload(&name, id, &digest, None).await {
        Ok(()) => Ok(json!({
            "registryId": call.account(),
            "repositoryName": name.as_str(),
            "uploadId": id,
            "layerDigest": digest.to_string(),
        })),
        Err(RegistryError::DigestInvalid(reason)) => {
            Err(EcrError::new("InvalidLayerException", reason))
        }
        Err(e) => Err(upload_error(call, &name, id, e)),
    }
}

pub async fn batch_check(call: &Call<'_>, input: &Value) -> Result<Value, EcrError> {
    let name = repository(call, input).await?;
    let (mut layers, mut failures) = (Vec::new(), Vec::new());
    for given in input["layerDigests"].as_array().into_iter().flatten() {
        let given = given.as_str().unwrap_or_default();
        let Ok(digest) = given.parse::<Digest>() else {
            failures.push(json!({
                "layerDigest": given,
                "failureCode": "InvalidLayerDigest",
                "failureReason": format!("The layer digest '{given}' is not a valid digest"),
            }));
            continue;
        };
        match call.app.registry.blob_size(&name, &digest).await {
            Ok(size) => layers.push(json!({
                "layerDigest": given,
                "layerAvailability": "AVAILABLE",
                "layerSize": size,
            })),
            Err(RegistryError::BlobUnknown) => failures.push(json!({
                "layerDigest": given,
                "failureCode": "MissingLayerDigest",
                "failureReason": "Could not find layer",
            })),
            Err(e) => return Err(call.registry_error(e, name.as_str())),
        }
    }
    Ok(json!({"layers": layers, "failures": failures}))
}

pub async fn download_url(call: &Call<'_>, input: &Value) -> Result<Value, EcrError> {
    let name = repository(call, input).await?;
    let given = input["layerDigest"].as_str().unwrap_or_default();
    let not_found = || {
        EcrError::new(
            "LayersNotFoundException",
            format!(
                "The layer with digest '{given}' does not exist in the repository with name '{name}'"
            ),
        )
    };
    let digest: Digest = given.parse().map_err(|_| not_found())?;
    let registry = &call.app.registry;
    registry
        .blob_size(&name, &digest)
        .await
        .map_err(|e| match e {
            crate::RegistryError::Upstream { message, .. } => {
                EcrError::new("UnableToGetUpstreamLayerException", message)
            }
            _ => not_found(),
        })?;
    if !registry
        .blob_referenced(&name, &digest)
        .await
        .map_err(|e| call.registry_error(e, name.as_str()))?
    {
        return Err(EcrError::new(
            "LayerInaccessibleException",
            format!(
                "The layer '{digest}' is not referenced by any image in the repository with name '{name}'"
            ),
        ));
    }
    // From the object store itself where it signs URLs (as ECR hands out S3's),
    // else from berth, presigned.
    let direct = registry
        .direct_blob_url(
            &digest,
            std::time::Duration::from_secs(DOWNLOAD_URL_SECONDS as u64),
        )
        .await
        .map_err(|e| call.registry_error(e, name.as_str()))?;
    let url = match direct {
        Some(url) => url,
        None => {
            let path = format!("/v2/{name}/blobs/{digest}");
            let query = call
                .app
                .identity
                .presign(&path, now_millis() / 1000 + DOWNLOAD_URL_SECONDS);
            format!("{}{path}?{query}", call.endpoint)
        }
    };
    Ok(json!({"downloadUrl": url, "layerDigest": digest.to_string()}))
}
