//! `CreateRepository`, `DescribeRepositories`, `DeleteRepository`.

use berth_core::RepositoryName;
use berth_store::{RepositoryRecord, now_millis};
use serde_json::{Value, json};

use super::{Call, EcrError};

pub fn name_of(input: &Value) -> Result<RepositoryName, EcrError> {
    let name = input["repositoryName"].as_str().unwrap_or_default();
    name.parse().map_err(|_| {
        EcrError::invalid_parameter(format!(
            "Invalid parameter at 'repositoryName': '{name}' is not a valid repository name"
        ))
    })
}

/// The exclusion filters of a request, checked against its mutability setting.
pub fn tag_mutability(input: &Value, setting: &str) -> Result<Vec<String>, EcrError> {
    let filters: Vec<String> = input["imageTagMutabilityExclusionFilters"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| f["filter"].as_str().map(String::from))
        .collect();
    berth_core::mutability::check(setting, &filters).map_err(EcrError::invalid_parameter)?;
    Ok(filters)
}

/// Exclusion filters as ECR shows them.
pub fn exclusion_filters(filters: &[String]) -> Value {
    filters
        .iter()
        .map(|f| json!({"filterType": "WILDCARD", "filter": f}))
        .collect()
}

/// A repository as ECR describes it.
pub fn describe_record(call: &Call<'_>, r: &RepositoryRecord) -> Value {
    let mut encryption = json!({"encryptionType": r.encryption_type});
    if let Some(key) = &r.kms_key {
        encryption["kmsKey"] = json!(key);
    }
    let mut repository = json!({
        "repositoryArn": format!("arn:aws:ecr:{}:{}:repository/{}", call.app.identity.region, call.account(), r.name),
        "registryId": call.account(),
        "repositoryName": r.name.as_str(),
        "repositoryUri": format!("{}/{}", call.registry_host(), r.name),
        "createdAt": r.created_at as f64 / 1000.0,
        "imageTagMutability": r.image_tag_mutability,
        "imageScanningConfiguration": {"scanOnPush": r.scan_on_push},
        "encryptionConfiguration": encryption,
    });
    if !r.tag_mutability_exclusions.is_empty() {
        repository["imageTagMutabilityExclusionFilters"] =
            exclusion_filters(&r.tag_mutability_exclusions);
    }
    repository
}

pub async fn create(call: &Call<'_>, input: &Value) -> Result<Value, EcrError> {
    let name = name_of(input)?;
    let mutability = input["imageTagMutability"].as_str().unwrap_or("MUTABLE");
    let exclusions = tag_mutability(input, mutability)?;
    let encryption_type = input["encryptionConfiguration"]["encryptionType"]
        .as_str()
        .unwrap_or("AES256")
        .to_string();
    let kms_key = input["encryptionConfiguration"]["kmsKey"]
        .as_str()
        .map(String::from);
    if kms_key.is_some() && encryption_type == "AES256" {
        return Err(EcrError::invalid_parameter(
            "Invalid parameter at 'encryptionConfiguration': kmsKey can only be given with encryptionType KMS or KMS_DSSE",
        ));
    }
    let tags = super::settings::tag_pairs(&input["tags"])?;
    let record = RepositoryRecord {
        name: name.clone(),
        created_at: now_millis(),
        image_tag_mutability: mutability.to_string(),
        tag_mutability_exclusions: exclusions,
        scan_on_push: input["imageScanningConfiguration"]["scanOnPush"]
            .as_bool()
            .unwrap_or(false),
        encryption_type,
        kms_key,
        tags,
    };
    let created = call
        .app
        .registry
        .create_repository(record)
        .await
        .map_err(|e| call.registry_error(e, name.as_str()))?;
    call.app.access.forget_repository(&name);
    Ok(json!({"repository": describe_record(call, &created)}))
}

pub async fn describe(call: &Call<'_>, input: &Value) -> Result<Value, EcrError> {
    let names = input["repositoryNames"].as_array();
    let paging = input.get("maxResults").is_some() || input.get("nextToken").is_some();
    if let Some(names) = names {
        if paging {
            return Err(EcrError::invalid_parameter(
                "Invalid parameter at 'maxResults, nextToken': cannot be used with repositoryNames",
            ));
        }
        let mut found = Vec::with_capacity(names.len());
        for name in names {
            let name = name.as_str().unwrap_or_default();
            let parsed: RepositoryName = name.parse().map_err(|_| {
                let unknown = crate::RegistryError::NameUnknown {
                    name: name.to_string(),
                    registry_id: call.account().to_string(),
                };
                call.registry_error(unknown, name)
            })?;
            let record = call
                .app
                .registry
                .repository(&parsed)
                .await
                .map_err(|e| call.registry_error(e, name))?;
            found.push(describe_record(call, &record));
        }
        return Ok(json!({"repositories": found}));
    }
    let (limit, after) = super::page(call, input)?;
    let (page, more) = call
        .app
        .registry
        .repositories(after.as_deref(), limit)
        .await
        .map_err(|e| call.registry_error(e, ""))?;
    let mut output =
        json!({"repositories": page.iter().map(|r| describe_record(call, r)).collect::<Vec<_>>()});
    if more && let Some(last) = page.last() {
        // The token is the last name returned: stable whatever is created or deleted meanwhile.
        output["nextToken"] = super::token(call, last.name.as_str());
    }
    Ok(output)
}

pub async fn delete(call: &Call<'_>, input: &Value) -> Result<Value, EcrError> {
    let name = name_of(input)?;
    let force = input["force"].as_bool().unwrap_or(false);
    let deleted = call
        .app
        .registry
        .delete_repository(&name, force)
        .await
        .map_err(|e| call.registry_error(e, name.as_str()))?;
    call.app.access.forget_repository(&name);
    Ok(json!({"repository": describe_record(call, &deleted)}))
}
