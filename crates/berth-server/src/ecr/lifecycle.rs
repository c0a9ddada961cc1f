//! Lifecycle policies: `PutLifecyclePolicy`, `GetLifecyclePolicy`,
//! `DeleteLifecyclePolicy`, `StartLifecyclePolicyPreview`,
//! `GetLifecyclePolicyPreview`. The work is the `Lifecycle` service's; this
//! door translates. A preview is evaluated when asked for, by the same code
//! enforcement runs, so it is complete at once.

use berth_core::RepositoryName;
use berth_store::LifecyclePolicyRecord;
use serde_json::{Value, json};

use super::{Call, EcrError, page, repositories::name_of, token};
use crate::lifecycle::LifecycleError;

/// ECR's error for a failed lifecycle-policy operation on repository `name`.
fn lifecycle_error(call: &Call<'_>, name: &RepositoryName, e: LifecycleError) -> EcrError {
    match e {
        LifecycleError::RepositoryNotFound => call.repository_not_found(name.as_str()),
        LifecycleError::PolicyNotFound => EcrError::new(
            "LifecyclePolicyNotFoundException",
            format!(
                "Lifecycle policy does not exist for the repository with name '{name}' in the registry with id '{}'",
                call.account()
            ),
        ),
        LifecycleError::PreviewNotFound => EcrError::new(
            "LifecyclePolicyPreviewNotFoundException",
            format!(
                "There is no dry run for the repository with name '{name}' in the registry with id '{}'",
                call.account()
            ),
        ),
        LifecycleError::Invalid(why) => EcrError::invalid_parameter(why),
        LifecycleError::Internal(inner) => EcrError::internal(inner),
    }
}

fn answer(call: &Call<'_>, name: &RepositoryName, record: &LifecyclePolicyRecord) -> Value {
    let mut output = json!({
        "registryId": call.account(),
        "repositoryName": name.as_str(),
        "lifecyclePolicyText": record.text,
    });
    if let Some(at) = record.evaluated_at {
        output["lastEvaluatedAt"] = json!(at as f64 / 1000.0);
    }
    output
}

pub async fn put(call: &Call<'_>, input: &Value) -> Result<Value, EcrError> {
    let name = name_of(input)?;
    let text = input["lifecyclePolicyText"].as_str().unwrap_or_default();
    call.app
        .lifecycle
        .put_policy(&name, text)
        .await
        .map_err(|e| lifecycle_error(call, &name, e))?;
    Ok(json!({
        "registryId": call.account(),
        "repositoryName": name.as_str(),
        "lifecyclePolicyText": text,
    }))
}

pub async fn get(call: &Call<'_>, input: &Value) -> Result<Value, EcrError> {
    let name = name_of(input)?;
    let record = call
        .app
        .lifecycle
        .policy(&name)
        .await
        .map_err(|e| lifecycle_error(call, &name, e))?;
    Ok(answer(call, &name, &record))
}

pub async fn delete(call: &Call<'_>, input: &Value) -> Result<Value, EcrError> {
    let name = name_of(input)?;
    let record = call
        .app
        .lifecycle
        .delete_policy(&name)
        .await
        .map_err(|e| lifecycle_error(call, &name, e))?;
    Ok(answer(call, &name, &record))
}

pub async fn start_preview(call: &Call<'_>, input: &Value) -> Result<Value, EcrError> {
    let name = name_of(input)?;
    let text = call
        .app
        .lifecycle
        .start_preview(&name, input["lifecyclePolicyText"].as_str())
        .await
        .map_err(|e| lifecycle_error(call, &name, e))?;
    Ok(json!({
        "registryId": call.account(),
        "repositoryName": name.as_str(),
        "lifecyclePolicyText": text,
        "status": "IN_PROGRESS",
    }))
}

pub async fn get_preview(call: &Call<'_>, input: &Value) -> Result<Value, EcrError> {
    let name = name_of(input)?;
    let (text, expired) = call
        .app
        .lifecycle
        .preview(&name)
        .await
        .map_err(|e| lifecycle_error(call, &name, e))?;
    let total = expired
        .iter()
        .filter(|e| e.action == berth_core::lifecycle::Action::Expire)
        .count();
    let archiving = expired.len() - total;

    let wanted: Vec<(Option<&str>, Option<&str>)> = input["imageIds"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|id| (id["imageDigest"].as_str(), id["imageTag"].as_str()))
        .collect();
    let tag_status = input["filter"]["tagStatus"].as_str().unwrap_or("ANY");
    let results: Vec<Value> = expired
        .into_iter()
        .filter(|e| match tag_status {
            "TAGGED" => !e.image.tags.is_empty(),
            "UNTAGGED" => e.image.tags.is_empty(),
            _ => true,
        })
        .filter(|e| {
            wanted.is_empty()
                || wanted.iter().any(|(digest, tag)| {
                    digest.is_none_or(|d| d == e.image.digest)
                        && tag.is_none_or(|t| e.image.tags.iter().any(|x| x == t))
                })
        })
        .map(|e| {
            json!({
                "imageTags": e.image.tags,
                "imageDigest": e.image.digest,
                "imagePushedAt": e.image.pushed_at as f64 / 1000.0,
                "action": match e.action {
                    berth_core::lifecycle::Action::Expire => json!({"type": "EXPIRE"}),
                    berth_core::lifecycle::Action::Archive => {
                        json!({"type": "TRANSITION", "targetStorageClass": "ARCHIVE"})
                    }
                },
                "appliedRulePriority": e.rule_priority,
                "storageClass": if e.image.image_status == "ACTIVE" { "STANDARD" } else { "ARCHIVE" },
            })
        })
        .collect();

    let (limit, after) = page(call, input)?;
    let start = match after {
        Some(position) => position
            .parse::<usize>()
            .map_err(|_| EcrError::invalid_parameter("Invalid parameter at 'nextToken'"))?,
        None => 0,
    };
    let end = (start + limit as usize).min(results.len());
    let mut output = json!({
        "registryId": call.account(),
        "repositoryName": name.as_str(),
        "lifecyclePolicyText": text,
        "status": "COMPLETE",
        "previewResults": results.get(start..end).unwrap_or_default(),
        "summary": {"expiringImageTotalCount": total},
    });
    if archiving > 0 {
        output["summary"]["transitioningImageTotalCounts"] =
            json!([{"targetStorageClass": "ARCHIVE", "imageTotalCount": archiving}]);
    }
    if end < results.len() {
        output["nextToken"] = token(call, &end.to_string());
    }
    Ok(output)
}
