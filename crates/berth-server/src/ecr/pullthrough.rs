//! `CreatePullThroughCacheRule`, `DescribePullThroughCacheRules`,
//! `UpdatePullThroughCacheRule`, `DeletePullThroughCacheRule`,
//! `ValidatePullThroughCacheRule`: the pull-through service decides; this
//! translates.

use berth_store::PullThroughRule;
use serde_json::{Value, json};

use super::{Call, EcrError, page, token};
use crate::pullthrough::{NewRule, PullThroughError};

impl From<PullThroughError> for EcrError {
    fn from(e: PullThroughError) -> EcrError {
        let kind = match &e {
            PullThroughError::Invalid(_) => "ValidationException",
            PullThroughError::AlreadyExists => "PullThroughCacheRuleAlreadyExistsException",
            PullThroughError::NotFound => "PullThroughCacheRuleNotFoundException",
            PullThroughError::LimitExceeded => "LimitExceededException",
            PullThroughError::Unsupported => "UnsupportedUpstreamRegistryException",
            PullThroughError::SecretNotFound => "SecretNotFoundException",
            PullThroughError::Internal(inner) => return EcrError::internal(inner),
        };
        EcrError::new(kind, e.to_string())
    }
}

fn seconds(millis: i64) -> Value {
    json!(millis as f64 / 1000.0)
}

fn rule_json(call: &Call<'_>, rule: &PullThroughRule) -> Value {
    let mut out = json!({
        "ecrRepositoryPrefix": rule.prefix,
        "upstreamRegistryUrl": rule.upstream_registry_url,
        "createdAt": seconds(rule.created_at),
        "updatedAt": seconds(rule.updated_at),
        "registryId": call.account(),
        "upstreamRepositoryPrefix": rule.upstream_prefix,
    });
    for (key, value) in [
        ("upstreamRegistry", &rule.upstream_registry),
        ("credentialArn", &rule.credential_arn),
        ("customRoleArn", &rule.custom_role_arn),
    ] {
        if let Some(value) = value {
            out[key] = json!(value);
        }
    }
    out
}

fn text(input: &Value, key: &str) -> Option<String> {
    input[key].as_str().map(str::to_string)
}

pub async fn create(call: &Call<'_>, input: &Value) -> Result<Value, EcrError> {
    let rule = call
        .app
        .pull_through
        .create_rule(NewRule {
            prefix: text(input, "ecrRepositoryPrefix").unwrap_or_default(),
            upstream_registry_url: text(input, "upstreamRegistryUrl").unwrap_or_default(),
            upstream_registry: text(input, "upstreamRegistry"),
            upstream_prefix: text(input, "upstreamRepositoryPrefix"),
            credential_arn: text(input, "credentialArn"),
            custom_role_arn: text(input, "customRoleArn"),
        })
        .await?;
    let mut out = rule_json(call, &rule);
    out.as_object_mut().map(|o| o.remove("updatedAt"));
    Ok(out)
}

pub async fn describe(call: &Call<'_>, input: &Value) -> Result<Value, EcrError> {
    let mut rules = call.app.pull_through.rules().await?;
    if let Some(prefixes) = input["ecrRepositoryPrefixes"].as_array() {
        let wanted: Vec<String> = prefixes
            .iter()
            .filter_map(Value::as_str)
            .map(|p| p.trim_end_matches('/').to_string())
            .collect();
        if let Some(missing) = wanted
            .iter()
            .find(|w| !rules.iter().any(|r| &r.prefix == *w))
        {
            let _ = missing;
            return Err(PullThroughError::NotFound.into());
        }
        rules.retain(|r| wanted.contains(&r.prefix));
    }
    let (limit, after) = page(call, input)?;
    let rest: Vec<&PullThroughRule> = rules
        .iter()
        .filter(|r| after.as_deref().is_none_or(|a| r.prefix.as_str() > a))
        .collect();
    let shown: Vec<Value> = rest
        .iter()
        .take(limit as usize)
        .map(|r| rule_json(call, r))
        .collect();
    let mut out = json!({"pullThroughCacheRules": shown});
    if rest.len() > limit as usize
        && let Some(last) = rest.get(limit as usize - 1)
    {
        out["nextToken"] = token(call, &last.prefix);
    }
    Ok(out)
}

pub async fn update(call: &Call<'_>, input: &Value) -> Result<Value, EcrError> {
    let rule = call
        .app
        .pull_through
        .update_rule(
            input["ecrRepositoryPrefix"].as_str().unwrap_or_default(),
            text(input, "credentialArn"),
            text(input, "customRoleArn"),
        )
        .await?;
    let mut out = json!({
        "ecrRepositoryPrefix": rule.prefix,
        "registryId": call.account(),
        "updatedAt": seconds(rule.updated_at),
        "upstreamRepositoryPrefix": rule.upstream_prefix,
    });
    if let Some(arn) = &rule.credential_arn {
        out["credentialArn"] = json!(arn);
    }
    if let Some(arn) = &rule.custom_role_arn {
        out["customRoleArn"] = json!(arn);
    }
    Ok(out)
}

pub async fn delete(call: &Call<'_>, input: &Value) -> Result<Value, EcrError> {
    let rule = call
        .app
        .pull_through
        .delete_rule(input["ecrRepositoryPrefix"].as_str().unwrap_or_default())
        .await?;
    let mut out = rule_json(call, &rule);
    if let Some(o) = out.as_object_mut() {
        o.remove("updatedAt");
        o.remove("upstreamRegistry");
    }
    Ok(out)
}

pub async fn validate(call: &Call<'_>, input: &Value) -> Result<Value, EcrError> {
    let rule = call
        .app
        .pull_through
        .rule(input["ecrRepositoryPrefix"].as_str().unwrap_or_default())
        .await?;
    let verdict = call.app.pull_through.validate(&rule).await;
    let mut out = rule_json(call, &rule);
    if let Some(o) = out.as_object_mut() {
        for key in ["createdAt", "updatedAt", "upstreamRegistry"] {
            o.remove(key);
        }
    }
    out["isValid"] = json!(verdict.is_ok());
    if let Err(failure) = verdict {
        out["failure"] = json!(failure);
    }
    Ok(out)
}
