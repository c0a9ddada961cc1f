//! berth's own operations on the AWS JSON door, under their own target
//! prefix (`BerthRegistry_20261130.<Operation>`), SigV4-signed like ECR's
//! and authorized as `berth:<Operation>` through the same policy engine:
//! scan-gated promotion rules and their decisions, privatizing images, and
//! builds from source bundles, and webhooks.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Value, json};

use super::{Call, EcrError};
use crate::access::RequestFacts;
use crate::builds::{BuildError, StartBuild};
use crate::promotion::{Ignored, PromotionError, PromotionRule, rules};
use crate::webhooks::{NewWebhook, WebhookError, webhook_json};

pub const TARGET_PREFIX: &str = "BerthRegistry_20261130";

/// berth's operations on this door.
pub const OPERATIONS: &[&str] = &[
    "PutPromotionRule",
    "DescribePromotionRules",
    "DeletePromotionRule",
    "DescribePromotions",
    "PrivatizeImage",
    "DescribePrivatizations",
    "StartBuild",
    "DescribeBuilds",
    "GetBuildLog",
    "PutWebhook",
    "DescribeWebhooks",
    "DeleteWebhook",
    "RotateSigningKey",
    "CreateReplicaRepository",
    "PutReplicationDestination",
    "DescribeReplicationDestinations",
    "DeleteReplicationDestination",
];

/// Operations authorized on the repository they name (the rest on `*`).
const ON_REPOSITORY: &[&str] = &["StartBuild", "DescribeBuilds", "GetBuildLog"];

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

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StartBuildInput {
    repository_name: String,
    image_tag: String,
    source_digest: String,
    #[serde(default)]
    build_args: BTreeMap<String, String>,
    target: Option<String>,
    platform: Option<String>,
    #[serde(default)]
    force: bool,
}

impl From<BuildError> for EcrError {
    fn from(e: BuildError) -> EcrError {
        match e {
            BuildError::Invalid(m) => EcrError::new("InvalidParameterException", m),
            BuildError::RepositoryNotFound(_) => {
                EcrError::new("RepositoryNotFoundException", e.to_string())
            }
            BuildError::SourceNotFound { .. } => {
                EcrError::new("LayersNotFoundException", e.to_string())
            }
            BuildError::BuildNotFound(_) => EcrError::new("BuildNotFoundException", e.to_string()),
            BuildError::NoBuilder => EcrError::new("UnsupportedOperationException", e.to_string()),
            BuildError::Internal(inner) => EcrError::internal(inner),
        }
    }
}

impl From<WebhookError> for EcrError {
    fn from(e: WebhookError) -> EcrError {
        match e {
            WebhookError::Invalid(m) => EcrError::new("InvalidParameterException", m),
            WebhookError::AlreadyExists(_) => {
                EcrError::new("WebhookAlreadyExistsException", e.to_string())
            }
            WebhookError::NotFound(_) => EcrError::new("WebhookNotFoundException", e.to_string()),
            WebhookError::Internal(inner) => EcrError::internal(inner),
        }
    }
}

fn build_json(b: &berth_store::Build) -> Value {
    let options: Value = serde_json::from_str(&b.options).unwrap_or_default();
    json!({
        "buildId": b.id,
        "repositoryName": b.repository,
        "imageTag": b.tag,
        "sourceDigest": b.source_digest,
        "sourceSize": b.source_size,
        "buildArgs": options["buildArgs"],
        "target": options["target"],
        "platform": options["platform"],
        "status": b.status,
        "reason": b.reason,
        "imageDigest": b.image_digest,
        "requestedBy": b.requested_by,
        "createdAt": b.created_at as f64 / 1000.0,
        "updatedAt": b.updated_at as f64 / 1000.0,
    })
}

fn privatization_json(p: &berth_store::Privatization) -> Value {
    json!({
        "id": p.id, "sourceImage": p.source, "destinationRepository": p.destination,
        "imageTag": p.tag, "status": p.status, "imageDigest": p.digest,
        "size": p.size, "reason": p.reason,
    })
}

/// A replicating registry's `CreateRepository`: the repository is made as a
/// `REPLICATION` creation template here says (default settings without
/// one), as ECR does at a replication destination. Authorized as ECR
/// authorizes a replication: `ecr:ReplicateImage` and
/// `ecr:CreateRepository` on the repository. An existing repository is
/// answered as it is (`created: false`).
async fn create_replica_repository(
    call: &Call<'_>,
    input: &Value,
    facts: &RequestFacts,
) -> Result<Value, EcrError> {
    let name = super::repositories::name_of(input)?;
    let arn = call.app.access.repository_arn(name.as_str());
    for action in ["ecr:ReplicateImage", "ecr:CreateRepository"] {
        call.app
            .access
            .check(Some(&call.principal), action, &arn, Some(&name), facts)
            .await?;
    }
    let registry = &call.app.registry;
    let existed = registry.repository(&name).await.is_ok();
    if !existed {
        registry
            .ensure_repository_for(&name, crate::registry::CreatedFor::Replication)
            .await
            .map_err(|e| call.registry_error(e, name.as_str()))?;
        call.app.access.forget_repository(&name);
    }
    let record = registry
        .repository(&name)
        .await
        .map_err(|e| call.registry_error(e, name.as_str()))?;
    Ok(json!({
        "repository": super::repositories::describe_record(call, &record),
        "created": !existed,
    }))
}

fn destination_json(d: &crate::replication::Destination, source: &str) -> Value {
    json!({
        "region": d.region, "registryId": d.registry_id, "endpoint": d.endpoint,
        "secretId": d.secret, "source": source,
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
    if operation == "CreateReplicaRepository" {
        return create_replica_repository(call, input, facts).await;
    }
    // A build is known by its id; it is authorized on its repository.
    let mut build = None;
    if operation == "GetBuildLog" || (operation == "DescribeBuilds" && input["buildIds"].is_array())
    {
        let id = input["buildId"]
            .as_str()
            .or_else(|| input["buildIds"][0].as_str())
            .unwrap_or_default();
        build = Some(call.app.builds.build(id).await?);
    }
    let repository = match (&build, input["repositoryName"].as_str()) {
        (Some(b), _) => Some(b.repository.clone()),
        (None, Some(r)) => Some(r.to_string()),
        (None, None) => None,
    };
    let (resource, named) = match &repository {
        Some(r) if ON_REPOSITORY.contains(&operation) => (
            call.app.access.repository_arn(r),
            r.parse::<berth_core::RepositoryName>().ok(),
        ),
        _ => ("*".to_string(), None),
    };
    call.app
        .access
        .check(
            Some(&call.principal),
            &format!("berth:{operation}"),
            &resource,
            named.as_ref(),
            facts,
        )
        .await?;
    let promotion = &call.app.promotion;
    match operation {
        "PutWebhook" => {
            let text = |k: &str| input[k].as_str().unwrap_or_default().to_string();
            let webhook = call
                .app
                .webhooks
                .create(NewWebhook {
                    name: text("name"),
                    url: text("url"),
                    secret: text("signingSecret"),
                    detail_types: input["detailTypes"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|t| t.as_str().map(str::to_string))
                        .collect(),
                    repository_filter: input["repositoryFilter"].as_str().map(str::to_string),
                })
                .await?;
            Ok(json!({"webhook": webhook_json(&webhook, &[])}))
        }
        "DescribeWebhooks" => {
            let listed = call.app.webhooks.list().await?;
            Ok(
                json!({"webhooks": listed.iter().map(|(w, d)| webhook_json(w, d)).collect::<Vec<_>>()}),
            )
        }
        "DeleteWebhook" => {
            call.app
                .webhooks
                .delete(input["name"].as_str().unwrap_or_default())
                .await?;
            Ok(json!({}))
        }
        "StartBuild" => {
            let input: StartBuildInput = parse(input)?;
            let invalid = |what: &str| {
                EcrError::new(
                    "InvalidParameterException",
                    format!("Invalid parameter: {what}"),
                )
            };
            let started = call
                .app
                .builds
                .start(
                    &call.principal,
                    StartBuild {
                        repository: input
                            .repository_name
                            .parse()
                            .map_err(|_| invalid("repositoryName"))?,
                        tag: input.image_tag.parse().map_err(|_| invalid("imageTag"))?,
                        source: input
                            .source_digest
                            .parse()
                            .map_err(|_| invalid("sourceDigest"))?,
                        build_args: input.build_args,
                        target: input.target,
                        platform: input.platform,
                        force: input.force,
                    },
                )
                .await?;
            Ok(json!({"build": build_json(&started)}))
        }
        "DescribeBuilds" => {
            if let Some(ids) = input["buildIds"].as_array() {
                let mut out = Vec::new();
                for id in ids.iter().filter_map(Value::as_str) {
                    let b = call.app.builds.build(id).await?;
                    // Every build named must be on the repository authorized above.
                    if Some(&b.repository) != repository.as_ref() {
                        return Err(EcrError::new(
                            "InvalidParameterException",
                            "Invalid parameter: the builds named must be of one repository",
                        ));
                    }
                    out.push(build_json(&b));
                }
                return Ok(json!({"builds": out}));
            }
            let limit = input["maxResults"].as_u64().unwrap_or(100).clamp(1, 1000) as u32;
            let (page, next) = call
                .app
                .builds
                .list(repository.as_deref(), input["nextToken"].as_str(), limit)
                .await?;
            let mut out = json!({"builds": page.iter().map(build_json).collect::<Vec<_>>()});
            if let Some(next) = next {
                out["nextToken"] = json!(next);
            }
            Ok(out)
        }
        "GetBuildLog" => {
            let offset = input["startOffset"].as_u64().unwrap_or(0) as usize;
            let id = input["buildId"].as_str().unwrap_or_default();
            let (b, text) = call.app.builds.log(id, offset).await?;
            Ok(json!({
                "build": build_json(&b),
                "log": text,
                "nextOffset": offset + text.len(),
            }))
        }
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
        "PutReplicationDestination" => {
            let text = |k: &str| input[k].as_str().unwrap_or_default().to_string();
            let destination = crate::replication::Destination {
                region: text("region"),
                registry_id: text("registryId"),
                endpoint: text("endpoint"),
                secret: input["secretId"].as_str().map(str::to_string),
            };
            if let Some(secret) = &destination.secret {
                // Named as the Secrets Manager subset names it, or refused now.
                call.app.secrets.find(secret).await.map_err(|_| {
                    EcrError::new(
                        "SecretNotFoundException",
                        format!("The secret {secret} does not exist"),
                    )
                })?;
            }
            call.app
                .replication
                .put_destination(destination.clone())
                .await?;
            Ok(json!({"destination": destination_json(&destination, "api")}))
        }
        "DescribeReplicationDestinations" => {
            let all = call
                .app
                .replication
                .destinations()
                .await
                .map_err(EcrError::internal)?;
            Ok(
                json!({"destinations": all.iter().map(|(d, source)| destination_json(d, source)).collect::<Vec<_>>()}),
            )
        }
        "DeleteReplicationDestination" => {
            let (region, id) = (
                input["region"].as_str().unwrap_or_default(),
                input["registryId"].as_str().unwrap_or_default(),
            );
            if !call.app.replication.delete_destination(region, id).await? {
                return Err(EcrError::new(
                    "DestinationNotFoundException",
                    format!("No destination {id} in {region} was put through the API"),
                ));
            }
            Ok(json!({"region": region, "registryId": id}))
        }
        "RotateSigningKey" => {
            let profile = input["signingProfileArn"].as_str().unwrap_or_default();
            let pattern = regex::Regex::new(
                r"^arn:aws(-[a-z]+)*:signer:[a-z0-9-]+:[0-9]{12}:/signing-profiles/[a-zA-Z0-9_]{2,}$",
            )
            .expect("a valid pattern");
            if !pattern.is_match(profile) {
                return Err(EcrError::new(
                    "ValidationException",
                    format!(
                        "Value '{profile}' at 'signingProfileArn' failed to satisfy constraint: Member must be a signing profile ARN"
                    ),
                ));
            }
            let certificate = call
                .app
                .signing
                .rotate(profile)
                .await
                .map_err(|e| EcrError::new("ServerException", e))?;
            Ok(json!({"signingProfileArn": profile, "certificate": certificate}))
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
