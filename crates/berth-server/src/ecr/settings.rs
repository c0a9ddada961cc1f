//! Repository settings and resource tags: `PutImageTagMutability`,
//! `PutImageScanningConfiguration`, `TagResource`, `UntagResource`,
//! `ListTagsForResource`.

use berth_core::RepositoryName;
use serde_json::{Value, json};

use super::{Call, EcrError, page, token};

/// Resource tags per repository, as on ECR.
pub const MAX_TAGS: usize = 50;

fn repository(input: &Value) -> Result<RepositoryName, EcrError> {
    super::repositories::name_of(input)
}

/// The repository an `arn:aws:ecr:<region>:<account>:repository/<name>` names.
fn repository_of_arn(call: &Call<'_>, input: &Value) -> Result<RepositoryName, EcrError> {
    let arn = input["resourceArn"].as_str().unwrap_or_default();
    let prefix = format!(
        "arn:aws:ecr:{}:{}:repository/",
        call.app.identity.region,
        call.account()
    );
    let invalid = || {
        EcrError::invalid_parameter(format!(
            "Invalid parameter at 'resourceArn' failed to satisfy constraint: 'Invalid ARN' ({arn})"
        ))
    };
    let name = arn.strip_prefix(&prefix).ok_or_else(invalid)?;
    name.parse().map_err(|_| invalid())
}

/// `[{Key, Value}]` as pairs; a key given twice is `InvalidTagParameterException`.
pub fn tag_pairs(tags: &Value) -> Result<Vec<(String, String)>, EcrError> {
    let mut pairs: Vec<(String, String)> = Vec::new();
    for tag in tags.as_array().into_iter().flatten() {
        let key = tag["Key"].as_str().unwrap_or_default().to_string();
        if pairs.iter().any(|(k, _)| *k == key) {
            return Err(EcrError::new(
                "InvalidTagParameterException",
                format!("Duplicate tag key '{key}'"),
            ));
        }
        pairs.push((key, tag["Value"].as_str().unwrap_or_default().to_string()));
    }
    if pairs.len() > MAX_TAGS {
        return Err(EcrError::new(
            "TooManyTagsException",
            format!("A repository may carry at most {MAX_TAGS} tags"),
        ));
    }
    Ok(pairs)
}

pub async fn put_image_tag_mutability(call: &Call<'_>, input: &Value) -> Result<Value, EcrError> {
    let name = repository(input)?;
    let mutability = input["imageTagMutability"].as_str().unwrap_or_default();
    let exclusions = super::repositories::tag_mutability(input, mutability)?;
    let record = call
        .app
        .registry
        .update_repository_settings(&name, Some((mutability, &exclusions)), None)
        .await
        .map_err(|e| call.registry_error(e, name.as_str()))?;
    let mut output = json!({
        "registryId": call.account(),
        "repositoryName": name.as_str(),
        "imageTagMutability": record.image_tag_mutability,
    });
    if !record.tag_mutability_exclusions.is_empty() {
        output["imageTagMutabilityExclusionFilters"] =
            super::repositories::exclusion_filters(&record.tag_mutability_exclusions);
    }
    Ok(output)
}

pub async fn put_image_scanning_configuration(
    call: &Call<'_>,
    input: &Value,
) -> Result<Value, EcrError> {
    let name = repository(input)?;
    let scan_on_push = input["imageScanningConfiguration"]["scanOnPush"]
        .as_bool()
        .unwrap_or(false);
    let record = call
        .app
        .registry
        .update_repository_settings(&name, None, Some(scan_on_push))
        .await
        .map_err(|e| call.registry_error(e, name.as_str()))?;
    Ok(json!({
        "registryId": call.account(),
        "repositoryName": name.as_str(),
        "imageScanningConfiguration": {"scanOnPush": record.scan_on_push},
    }))
}

pub async fn tag_resource(call: &Call<'_>, input: &Value) -> Result<Value, EcrError> {
    let name = repository_of_arn(call, input)?;
    let set = tag_pairs(&input["tags"])?;
    call.app
        .registry
        .retag_repository(&name, &set, &[], MAX_TAGS)
        .await
        .map_err(|e| call.registry_error(e, name.as_str()))?;
    call.app.access.forget_repository(&name);
    Ok(json!({}))
}

pub async fn untag_resource(call: &Call<'_>, input: &Value) -> Result<Value, EcrError> {
    let name = repository_of_arn(call, input)?;
    let remove: Vec<String> = input["tagKeys"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|k| k.as_str().map(String::from))
        .collect();
    call.app
        .registry
        .retag_repository(&name, &[], &remove, MAX_TAGS)
        .await
        .map_err(|e| call.registry_error(e, name.as_str()))?;
    call.app.access.forget_repository(&name);
    Ok(json!({}))
}

pub async fn list_tags_for_resource(call: &Call<'_>, input: &Value) -> Result<Value, EcrError> {
    let name = repository_of_arn(call, input)?;
    let record = call
        .app
        .registry
        .repository(&name)
        .await
        .map_err(|e| call.registry_error(e, name.as_str()))?;
    let tags: Vec<Value> = record
        .tags
        .iter()
        .map(|(k, v)| json!({"Key": k, "Value": v}))
        .collect();
    Ok(json!({"tags": tags}))
}

/// `RegisterPullTimeUpdateExclusion`.
pub async fn register_pull_time_exclusion(
    call: &Call<'_>,
    input: &Value,
) -> Result<Value, EcrError> {
    let arn = input["principalArn"].as_str().unwrap_or_default();
    let at = call
        .app
        .registry
        .pull_time_exclusions()
        .register(arn)
        .await?;
    Ok(json!({"principalArn": arn, "createdAt": at as f64 / 1000.0}))
}

/// `DeregisterPullTimeUpdateExclusion`.
pub async fn deregister_pull_time_exclusion(
    call: &Call<'_>,
    input: &Value,
) -> Result<Value, EcrError> {
    let arn = input["principalArn"].as_str().unwrap_or_default();
    call.app
        .registry
        .pull_time_exclusions()
        .deregister(arn)
        .await?;
    Ok(json!({"principalArn": arn}))
}

/// `ListPullTimeUpdateExclusions`, in ARN order, paged.
pub async fn list_pull_time_exclusions(call: &Call<'_>, input: &Value) -> Result<Value, EcrError> {
    let (limit, after) = page(call, input)?;
    let all = call.app.registry.pull_time_exclusions().all().await?;
    let rest: Vec<&String> = all
        .iter()
        .filter(|arn| after.as_deref().is_none_or(|a| arn.as_str() > a))
        .collect();
    let shown: Vec<&String> = rest.iter().take(limit as usize).copied().collect();
    let mut out = json!({"pullTimeUpdateExclusions": shown});
    if rest.len() > shown.len()
        && let Some(last) = shown.last()
    {
        out["nextToken"] = token(call, last);
    }
    Ok(out)
}
