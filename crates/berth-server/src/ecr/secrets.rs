//! The Secrets Manager subset on the AWS JSON door (`X-Amz-Target:
//! secretsmanager.*`, SigV4 scoped to `secretsmanager`): `CreateSecret`,
//! `DescribeSecret`, `GetSecretValue`, `PutSecretValue`, `ListSecrets`,
//! `DeleteSecret`, each authorized as `secretsmanager:<Operation>` on the
//! secret's ARN. Other operations answer `UnsupportedOperationException`.

use serde_json::{Value, json};

use super::{Call, EcrError};
use crate::access::RequestFacts;
use crate::model::SECRETS;
use crate::secrets::SecretsError;

impl From<SecretsError> for EcrError {
    fn from(e: SecretsError) -> EcrError {
        let kind = match &e {
            SecretsError::NotFound => "ResourceNotFoundException",
            SecretsError::Exists(_) => "ResourceExistsException",
            SecretsError::Invalid(_) => "InvalidParameterException",
            SecretsError::Internal(inner) => return EcrError::internal(inner),
        };
        EcrError::new(kind, e.to_string())
    }
}

fn seconds(millis: i64) -> Value {
    json!(millis as f64 / 1000.0)
}

fn secret_string(input: &Value) -> Result<&str, EcrError> {
    if input.get("SecretBinary").is_some() {
        return Err(EcrError::new(
            "InvalidParameterException",
            "berth keeps SecretString values only",
        ));
    }
    input["SecretString"].as_str().ok_or_else(|| {
        EcrError::new(
            "InvalidParameterException",
            "You must provide either SecretString or SecretBinary.",
        )
    })
}

pub async fn handle(
    call: &Call<'_>,
    operation: &str,
    input: &Value,
    facts: &RequestFacts,
) -> Result<Value, EcrError> {
    let secrets = &call.app.secrets;
    let id = input["SecretId"].as_str().unwrap_or_default();
    // Authorized on the secret's ARN (a new secret's, or `*` to list).
    let resource = match operation {
        "CreateSecret" => format!(
            "{}-*",
            secrets.arn_base(input["Name"].as_str().unwrap_or_default())
        ),
        "ListSecrets" => "*".to_string(),
        _ => match secrets.find(id).await {
            Ok(found) => found.arn,
            Err(SecretsError::NotFound) => secrets.arn_base(id),
            Err(e) => return Err(e.into()),
        },
    };
    call.app
        .access
        .check(
            Some(&call.principal),
            &format!("secretsmanager:{operation}"),
            &resource,
            None,
            facts,
        )
        .await?;
    match operation {
        "CreateSecret" => {
            let name = input["Name"].as_str().unwrap_or_default();
            let value = secret_string(input)?;
            let record = secrets
                .create(
                    name,
                    value,
                    input["Description"].as_str().map(str::to_string),
                )
                .await?;
            Ok(json!({"ARN": record.arn, "Name": record.name, "VersionId": record.version_id}))
        }
        "DescribeSecret" => {
            let record = secrets.find(id).await?;
            let mut out = json!({
                "ARN": record.arn, "Name": record.name,
                "CreatedDate": seconds(record.created_at),
                "LastChangedDate": seconds(record.updated_at),
                "VersionIdsToStages": {record.version_id.clone(): ["AWSCURRENT"]},
            });
            if let Some(d) = &record.description {
                out["Description"] = json!(d);
            }
            Ok(out)
        }
        "GetSecretValue" => {
            let (record, value) = secrets.value(id).await?;
            Ok(json!({
                "ARN": record.arn, "Name": record.name, "VersionId": record.version_id,
                "SecretString": value.0, "VersionStages": ["AWSCURRENT"],
                "CreatedDate": seconds(record.updated_at),
            }))
        }
        "PutSecretValue" => {
            let value = secret_string(input)?;
            let record = secrets.put_value(id, value).await?;
            Ok(
                json!({"ARN": record.arn, "Name": record.name, "VersionId": record.version_id,
                      "VersionStages": ["AWSCURRENT"]}),
            )
        }
        "ListSecrets" => {
            use base64::Engine as _;
            let limit = input["MaxResults"].as_u64().unwrap_or(100).clamp(1, 100) as u32;
            let after = match input["NextToken"].as_str() {
                Some(t) => Some(
                    base64::engine::general_purpose::URL_SAFE_NO_PAD
                        .decode(t)
                        .ok()
                        .and_then(|b| String::from_utf8(b).ok())
                        .ok_or_else(|| {
                            EcrError::new(
                                "InvalidNextTokenException",
                                "The NextToken value is not valid.",
                            )
                        })?,
                ),
                None => None,
            };
            let mut records = secrets.list(after.as_deref(), limit + 1).await?;
            let more = records.len() > limit as usize;
            records.truncate(limit as usize);
            let list: Vec<Value> = records
                .iter()
                .map(|r| {
                    let mut e = json!({"ARN": r.arn, "Name": r.name,
                                       "CreatedDate": seconds(r.created_at),
                                       "LastChangedDate": seconds(r.updated_at)});
                    if let Some(d) = &r.description {
                        e["Description"] = json!(d);
                    }
                    e
                })
                .collect();
            let mut out = json!({"SecretList": list});
            if more && let Some(last) = records.last() {
                out["NextToken"] =
                    json!(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&last.name));
            }
            Ok(out)
        }
        "DeleteSecret" => {
            let record = secrets.delete(id).await?;
            Ok(
                json!({"ARN": record.arn, "Name": record.name, "DeletionDate": seconds(berth_store::now_millis())}),
            )
        }
        other if SECRETS.operation(other).is_some() => Err(EcrError::new(
            "UnsupportedOperationException",
            format!("berth does not support the Secrets Manager operation {other}"),
        )),
        other => Err(EcrError::new(
            "UnknownOperationException",
            format!("Unknown operation secretsmanager.{other}"),
        )),
    }
}
