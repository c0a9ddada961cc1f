//! `CreateRepositoryCreationTemplate`, `DescribeRepositoryCreationTemplates`,
//! `UpdateRepositoryCreationTemplate`, `DeleteRepositoryCreationTemplate`:
//! the templates service decides and applies; this checks the request's
//! shapes ECR's way and translates.

use serde_json::{Value, json};

use super::{Call, EcrError, page, token};
use crate::templates::{Template, TemplateError, normal_prefix};

impl From<TemplateError> for EcrError {
    fn from(e: TemplateError) -> EcrError {
        let kind = match &e {
            TemplateError::Invalid(_) => "InvalidParameterException",
            TemplateError::AlreadyExists(_) => "TemplateAlreadyExistsException",
            TemplateError::NotFound(_) => "TemplateNotFoundException",
            TemplateError::Internal(inner) => return EcrError::internal(inner),
        };
        EcrError::new(kind, e.to_string())
    }
}

/// The members a template keeps (all but `prefix` and its dates).
const SETTINGS: &[&str] = &[
    "description",
    "encryptionConfiguration",
    "resourceTags",
    "imageTagMutability",
    "imageTagMutabilityExclusionFilters",
    "repositoryPolicy",
    "lifecyclePolicy",
    "appliedFor",
    "customRoleArn",
];

/// The request's settings, checked as `CreateRepository` checks them.
fn settings(input: &Value) -> Result<serde_json::Map<String, Value>, EcrError> {
    let mut out = serde_json::Map::new();
    for key in SETTINGS {
        if let Some(value) = input.get(*key).filter(|v| !v.is_null()) {
            out.insert((*key).to_string(), value.clone());
        }
    }
    if let Some(mutability) = input["imageTagMutability"].as_str() {
        super::repositories::tag_mutability(input, mutability)?;
    }
    if out.contains_key("resourceTags") {
        super::settings::tag_pairs(&input["resourceTags"])?;
    }
    let encryption = &input["encryptionConfiguration"];
    if encryption["kmsKey"].is_string() && encryption["encryptionType"] == "AES256" {
        return Err(EcrError::invalid_parameter(
            "Invalid parameter at 'encryptionConfiguration': kmsKey can only be given with encryptionType KMS or KMS_DSSE",
        ));
    }
    if let Some(applied) = out.get_mut("appliedFor").and_then(Value::as_array_mut) {
        applied.dedup();
    }
    Ok(out)
}

fn template_json(t: &Template) -> Value {
    let mut out = Value::Object(t.settings.clone());
    out["prefix"] = json!(t.prefix);
    out["createdAt"] = json!(t.created_at as f64 / 1000.0);
    out["updatedAt"] = json!(t.updated_at as f64 / 1000.0);
    if out.get("imageTagMutability").is_none() {
        out["imageTagMutability"] = json!("MUTABLE");
    }
    if out.get("encryptionConfiguration").is_none() {
        out["encryptionConfiguration"] = json!({"encryptionType": "AES256"});
    }
    if out.get("resourceTags").is_none() {
        out["resourceTags"] = json!([]);
    }
    out
}

fn prefix_of(input: &Value) -> String {
    input["prefix"].as_str().unwrap_or_default().to_string()
}

pub async fn create(call: &Call<'_>, input: &Value) -> Result<Value, EcrError> {
    let template = call
        .app
        .templates
        .create(&prefix_of(input), settings(input)?)
        .await?;
    Ok(
        json!({"registryId": call.account(), "repositoryCreationTemplate": template_json(&template)}),
    )
}

pub async fn update(call: &Call<'_>, input: &Value) -> Result<Value, EcrError> {
    let template = call
        .app
        .templates
        .update(&prefix_of(input), settings(input)?)
        .await?;
    Ok(
        json!({"registryId": call.account(), "repositoryCreationTemplate": template_json(&template)}),
    )
}

pub async fn delete(call: &Call<'_>, input: &Value) -> Result<Value, EcrError> {
    let template = call.app.templates.delete(&prefix_of(input)).await?;
    Ok(
        json!({"registryId": call.account(), "repositoryCreationTemplate": template_json(&template)}),
    )
}

pub async fn describe(call: &Call<'_>, input: &Value) -> Result<Value, EcrError> {
    let mut templates = call.app.templates.all().await?;
    if let Some(prefixes) = input["prefixes"].as_array() {
        let wanted: Vec<String> = prefixes
            .iter()
            .filter_map(Value::as_str)
            .map(normal_prefix)
            .collect();
        templates.retain(|t| wanted.contains(&t.prefix));
    }
    let (limit, after) = page(call, input)?;
    let rest: Vec<&Template> = templates
        .iter()
        .filter(|t| after.as_deref().is_none_or(|a| t.prefix.as_str() > a))
        .collect();
    let shown: Vec<Value> = rest
        .iter()
        .take(limit as usize)
        .map(|t| template_json(t))
        .collect();
    let mut out = json!({"registryId": call.account(), "repositoryCreationTemplates": shown});
    if rest.len() > limit as usize
        && let Some(last) = rest.get(limit as usize - 1)
    {
        out["nextToken"] = token(call, &last.prefix);
    }
    Ok(out)
}
