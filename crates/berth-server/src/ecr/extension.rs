//! berth's own operations on the AWS JSON door, under their own target
//! prefix (`BerthRegistry_20261130.<Operation>`), SigV4-signed like ECR's
//! and authorized as `berth:<Operation>` through the same policy engine:
//! scan-gated promotion rules and their decisions, and privatizing images.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Value, json};

use super::{Call, EcrError};
use crate::access::RequestFacts;
use crate::promotion::{Ignored, PromotionError, PromotionRule, rules};

pub const TARGET_PREFIX: &str = "BerthRegistry_20261130";

/// berth's operations on this door.
pub const OPERATIONS: &[&str] = &[
    "PutPromotionRule",
    "DescribePromotionRules",
    "DeletePromotionRule",
    "DescribePromotions",
    "PrivatizeImage",
    "DescribePrivatizations",
];

impl From<PromotionError> for EcrError {
    fn from(e: PromotionError) -> EcrError {
        match e {
            PromotionError::Invalid(m) => EcrError::new("ValidationException", m),
            PromotionError::RuleNotFound(_) => {
                EcrError::new("PromotionRuleNotFoundException", e.to_string())
            }
            PromotionError::LimitExceeded => EcrError::new("LimitExceededException", e.to_string()),
            PromotionError::Internal(inner) => EcrError::internal(inner),
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct IgnoredInput {
    id: String,
    /// Seconds since the epoch.
    expires_at: f64,
    #[serde(default)]
    reason: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RuleInput {
    name: String,
    source_repository_filter: String,
    destination: String,
    #[serde(default)]
    max_findings: BTreeMap<String, u64>,
    #[serde(default)]
    ignored_findings: Vec<IgnoredInput>,
    approved_lifetime_seconds: Option<u64>,
    on_expiry: Option<String>,
    revoke_on_failure: Option<bool>,
}

pub fn rule_json(rule: &PromotionRule) -> Value {
    json!({
        "name": rule.name,
        "sourceRepositoryFilter": rule.source,
        "destination": rule.destination,
        "maxFindings": rule.max_findings,
        "ignoredFindings": rule.ignored.iter().map(|i| json!({
            "id": i.id, "expiresAt": i.expires_at as f64 / 1000.0, "reason": i.reason,
        })).collect::<Vec<_>>(),
        "approvedLifetimeSeconds": rule.lifetime_seconds,
        "onExpiry": rule.on_expiry,
        "revokeOnFailure": rule.revoke_on_failure,
    })
}

fn privatization_json(p: &berth_store::Privatization) -> Value {
    json!({
        "id": p.id, "sourceImage": p.source, "destinationRepository": p.destination,
        "imageTag": p.tag, "status": p.status, "imageDigest": p.digest,
        "size": p.size, "reason": p.reason,
    })
}

fn parse<T: for<'de> Deserialize<'de>>(input: &Value) -> Result<T, EcrError> {
    serde_json::from_value(input.clone())
        .map_err(|e| EcrError::new("ValidationException", format!("invalid request: {e}")))
}

pub async fn handle(
    call: &Call<'_>,
    operation: &str,
    input: &Value,
    facts: &RequestFacts,
) -> Result<Value, EcrError> {
    if !OPERATIONS.contains(&operation) {
        return Err(EcrError::new(
            "UnknownOperationException",
            format!("Unknown operation {TARGET_PREFIX}.{operation}"),
        ));
    }
    call.app
        .access
        .check(
            Some(&call.principal),
            &format!("berth:{operation}"),
            "*",
            None,
            facts,
        )
        .await?;
    let promotion = &call.app.promotion;
    match operation {
        "PrivatizeImage" => {
            let source = input["sourceImage"].as_str().unwrap_or_default();
            let namespaces: std::collections::HashMap<String, String> =
                serde_json::from_value(input["namespaces"].clone()).unwrap_or_default();
            let record = call
                .app
                .pull_through
                .start_privatize(source, &namespaces)
                .await?;
            Ok(json!({"privatization": privatization_json(&record)}))
        }
        "DescribePrivatizations" => {
            let mut out = Vec::new();
            for id in input["ids"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                if let Some(record) = call.app.pull_through.privatization(id).await? {
                    out.push(privatization_json(&record));
                }
            }
            Ok(json!({"privatizations": out}))
        }
        "PutPromotionRule" => {
            let input: RuleInput = parse(input)?;
            let rule = PromotionRule {
                name: input.name,
                source: input.source_repository_filter,
                destination: input.destination,
                max_findings: input.max_findings,
                ignored: input
                    .ignored_findings
                    .into_iter()
                    .map(|i| Ignored {
                        id: i.id,
                        expires_at: (i.expires_at * 1000.0) as i64,
                        reason: i.reason,
                    })
                    .collect(),
                lifetime_seconds: input
                    .approved_lifetime_seconds
                    .unwrap_or(rules::DEFAULT_LIFETIME_SECONDS),
                on_expiry: input.on_expiry.unwrap_or_else(|| "DELETE".into()),
                revoke_on_failure: input.revoke_on_failure.unwrap_or(true),
            };
            let rule = promotion.put_rule(rule).await?;
            Ok(json!({"rule": rule_json(&rule)}))
        }
        "DescribePromotionRules" => {
            let rules = promotion.rules().await?;
            Ok(json!({"rules": rules.iter().map(rule_json).collect::<Vec<_>>()}))
        }
        "DeletePromotionRule" => {
            let name = input["name"].as_str().unwrap_or_default();
            let rule = promotion.delete_rule(name).await?;
            Ok(json!({"rule": rule_json(&rule)}))
        }
        _ => {
            let limit = input["maxResults"].as_u64().unwrap_or(100).clamp(1, 1000) as u32;
            let decisions = promotion
                .decisions(input["repositoryName"].as_str(), limit)
                .await?;
            Ok(json!({"promotions": decisions.iter().map(|d| {
                let mut out = json!({
                    "sourceRepository": d.source_repository,
                    "imageDigest": d.digest,
                    "rule": d.rule,
                    "destinationRepository": d.destination,
                    "status": d.status,
                    "reason": d.reason,
                    "imageTags": serde_json::from_str::<Value>(&d.tags).unwrap_or_default(),
                    "decidedAt": d.decided_at as f64 / 1000.0,
                });
                if let Some(expires) = d.expires_at {
                    out["expiresAt"] = json!(expires as f64 / 1000.0);
                }
                out
            }).collect::<Vec<_>>()}))
        }
    }
}
