//! Resource policies: `SetRepositoryPolicy`, `GetRepositoryPolicy`,
//! `DeleteRepositoryPolicy`, `PutRegistryPolicy`, `GetRegistryPolicy`,
//! `DeleteRegistryPolicy`. Documents are kept as sent and decided on by
//! `crate::access`.

use berth_core::policy::{Policy, PolicyKind};
use serde_json::{Value, json};

use super::{Call, EcrError, repositories::name_of};
use crate::access::REGISTRY_POLICY;

/// The policy text of a request, if it is a valid resource policy.
fn policy_text<'a>(input: &'a Value, what: &str) -> Result<&'a str, EcrError> {
    let text = input["policyText"].as_str().unwrap_or_default();
    Policy::parse(text, PolicyKind::Resource).map_err(|e| {
        EcrError::invalid_parameter(format!(
            "Invalid parameter at 'PolicyText' failed to satisfy constraint: 'Invalid {what} policy provided': {e}"
        ))
    })?;
    Ok(text)
}

pub async fn set_repository_policy(call: &Call<'_>, input: &Value) -> Result<Value, EcrError> {
    let name = name_of(input)?;
    let text = policy_text(input, "repository")?;
    let store = call.app.access.store();
    if !store
        .set_repository_policy(&name, Some(text))
        .await
        .map_err(EcrError::internal)?
    {
        return Err(call.repository_not_found(name.as_str()));
    }
    call.app.access.forget();
    Ok(json!({
        "registryId": call.account(),
        "repositoryName": name.as_str(),
        "policyText": text,
    }))
}

/// The repository's policy text, or ECR's errors for a missing repository or policy.
async fn current_repository_policy(
    call: &Call<'_>,
    name: &berth_core::RepositoryName,
) -> Result<String, EcrError> {
    let store = call.app.access.store();
    match store
        .get_repository_policy(name)
        .await
        .map_err(EcrError::internal)?
    {
        None => Err(call.repository_not_found(name.as_str())),
        Some(None) => Err(EcrError::new(
            "RepositoryPolicyNotFoundException",
            format!(
                "Repository policy does not exist for the repository with name '{name}' in the registry with id '{}'",
                call.account()
            ),
        )),
        Some(Some(text)) => Ok(text),
    }
}

pub async fn get_repository_policy(call: &Call<'_>, input: &Value) -> Result<Value, EcrError> {
    let name = name_of(input)?;
    let text = current_repository_policy(call, &name).await?;
    Ok(json!({
        "registryId": call.account(),
        "repositoryName": name.as_str(),
        "policyText": text,
    }))
}

pub async fn delete_repository_policy(call: &Call<'_>, input: &Value) -> Result<Value, EcrError> {
    let name = name_of(input)?;
    let text = current_repository_policy(call, &name).await?;
    call.app
        .access
        .store()
        .set_repository_policy(&name, None)
        .await
        .map_err(EcrError::internal)?;
    call.app.access.forget();
    Ok(json!({
        "registryId": call.account(),
        "repositoryName": name.as_str(),
        "policyText": text,
    }))
}

pub async fn put_registry_policy(call: &Call<'_>, input: &Value) -> Result<Value, EcrError> {
    let text = policy_text(input, "registry")?;
    call.app
        .access
        .store()
        .put_setting(REGISTRY_POLICY, Some(text))
        .await
        .map_err(EcrError::internal)?;
    call.app.access.forget();
    Ok(json!({"registryId": call.account(), "policyText": text}))
}

async fn current_registry_policy(call: &Call<'_>) -> Result<String, EcrError> {
    call.app
        .access
        .store()
        .get_setting(REGISTRY_POLICY)
        .await
        .map_err(EcrError::internal)?
        .ok_or_else(|| {
            EcrError::new(
                "RegistryPolicyNotFoundException",
                format!(
                    "Registry policy does not exist in the registry with id '{}'",
                    call.account()
                ),
            )
        })
}

pub async fn get_registry_policy(call: &Call<'_>) -> Result<Value, EcrError> {
    let text = current_registry_policy(call).await?;
    Ok(json!({"registryId": call.account(), "policyText": text}))
}

pub async fn delete_registry_policy(call: &Call<'_>) -> Result<Value, EcrError> {
    let text = current_registry_policy(call).await?;
    call.app
        .access
        .store()
        .put_setting(REGISTRY_POLICY, None)
        .await
        .map_err(EcrError::internal)?;
    call.app.access.forget();
    Ok(json!({"registryId": call.account(), "policyText": text}))
}
