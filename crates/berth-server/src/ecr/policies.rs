//! Resource policies: `SetRepositoryPolicy`, `GetRepositoryPolicy`,
//! `DeleteRepositoryPolicy`, `PutRegistryPolicy`, `GetRegistryPolicy`,
//! `DeleteRegistryPolicy`. The work is `Access`'s (`access::policies`); this
//! door translates inputs and errors.

use berth_core::RepositoryName;
use serde_json::{Value, json};

use super::{Call, EcrError, repositories::name_of};
use crate::access::policies::PolicyError;

/// ECR's error for a failed policy operation on repository `name` (`None`:
/// the registry policy).
fn policy_error(call: &Call<'_>, name: Option<&RepositoryName>, e: PolicyError) -> EcrError {
    let what = if name.is_some() {
        "repository"
    } else {
        "registry"
    };
    match (e, name) {
        (PolicyError::RepositoryNotFound, Some(name)) => call.repository_not_found(name.as_str()),
        (PolicyError::PolicyNotFound, Some(name)) => EcrError::new(
            "RepositoryPolicyNotFoundException",
            format!(
                "Repository policy does not exist for the repository with name '{name}' in the registry with id '{}'",
                call.account()
            ),
        ),
        (PolicyError::PolicyNotFound | PolicyError::RepositoryNotFound, None) => EcrError::new(
            "RegistryPolicyNotFoundException",
            format!(
                "Registry policy does not exist in the registry with id '{}'",
                call.account()
            ),
        ),
        (PolicyError::Invalid(why), _) => EcrError::invalid_parameter(format!(
            "Invalid parameter at 'PolicyText' failed to satisfy constraint: 'Invalid {what} policy provided': {why}"
        )),
        (PolicyError::Internal(inner), _) => EcrError::internal(inner),
    }
}

fn policy_text(input: &Value) -> &str {
    input["policyText"].as_str().unwrap_or_default()
}

pub async fn set_repository_policy(call: &Call<'_>, input: &Value) -> Result<Value, EcrError> {
    let name = name_of(input)?;
    let text = policy_text(input);
    call.app
        .access
        .set_repository_policy(&name, text)
        .await
        .map_err(|e| policy_error(call, Some(&name), e))?;
    Ok(json!({
        "registryId": call.account(),
        "repositoryName": name.as_str(),
        "policyText": text,
    }))
}

pub async fn get_repository_policy(call: &Call<'_>, input: &Value) -> Result<Value, EcrError> {
    let name = name_of(input)?;
    let text = call
        .app
        .access
        .repository_policy(&name)
        .await
        .map_err(|e| policy_error(call, Some(&name), e))?;
    Ok(json!({
        "registryId": call.account(),
        "repositoryName": name.as_str(),
        "policyText": text,
    }))
}

pub async fn delete_repository_policy(call: &Call<'_>, input: &Value) -> Result<Value, EcrError> {
    let name = name_of(input)?;
    let text = call
        .app
        .access
        .delete_repository_policy(&name)
        .await
        .map_err(|e| policy_error(call, Some(&name), e))?;
    Ok(json!({
        "registryId": call.account(),
        "repositoryName": name.as_str(),
        "policyText": text,
    }))
}

pub async fn put_registry_policy(call: &Call<'_>, input: &Value) -> Result<Value, EcrError> {
    let text = policy_text(input);
    call.app
        .access
        .put_registry_policy(text)
        .await
        .map_err(|e| policy_error(call, None, e))?;
    Ok(json!({"registryId": call.account(), "policyText": text}))
}

pub async fn get_registry_policy(call: &Call<'_>) -> Result<Value, EcrError> {
    let text = call
        .app
        .access
        .registry_policy_text()
        .await
        .map_err(|e| policy_error(call, None, e))?;
    Ok(json!({"registryId": call.account(), "policyText": text}))
}

pub async fn delete_registry_policy(call: &Call<'_>) -> Result<Value, EcrError> {
    let text = call
        .app
        .access
        .delete_registry_policy()
        .await
        .map_err(|e| policy_error(call, None, e))?;
    Ok(json!({"registryId": call.account(), "policyText": text}))
}
