//! Versions of customer managed policies: `CreatePolicyVersion`,
//! `ListPolicyVersions`, `DeletePolicyVersion`, `SetDefaultPolicyVersion`
//! (and the version side of `GetPolicyVersion`). At most five versions; the
//! entity's document is always the default version's, which is what
//! authorization reads.

use berth_core::policy::PolicyKind;
use berth_store::{IamEntity, now_millis};
use serde_json::{Value, json};

use super::{
    Call, MANAGED_POLICY_SIZE, QueryError, attributes, checked_policy, customer_policy,
    encode_document, page, paged, str_of,
};
use crate::access::managed::managed_policy;

/// Versions a managed policy may have, as on IAM.
const MAX_VERSIONS: usize = 5;

pub(super) struct Version {
    pub id: String,
    pub document: String,
    /// Milliseconds.
    pub created: i64,
}

/// A policy's versions, oldest first, and which is the default.
pub(super) struct Versions {
    pub list: Vec<Version>,
    pub default: String,
    next: u64,
}

impl Versions {
    /// The versions kept in the entity's attributes (a policy created with
    /// its first version only has none there: `v1` is its document).
    pub fn of(policy: &IamEntity) -> Versions {
        let attrs = attributes(policy);
        let list: Vec<Version> = attrs["versions"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| {
                Some(Version {
                    id: v["id"].as_str()?.to_string(),
                    document: v["document"].as_str()?.to_string(),
                    created: v["created"].as_i64()?,
                })
            })
            .collect();
        if list.is_empty() {
            return Versions {
                list: vec![Version {
                    id: "v1".into(),
                    document: policy.document.clone().unwrap_or_default(),
                    created: policy.created_at,
                }],
                default: "v1".into(),
                next: 2,
            };
        }
        Versions {
            default: attrs["defaultVersion"].as_str().unwrap_or("v1").to_string(),
            next: attrs["nextVersion"]
                .as_u64()
                .unwrap_or(list.len() as u64 + 1),
            list,
        }
    }

    pub fn get(&self, id: &str) -> Option<&Version> {
        self.list.iter().find(|v| v.id == id)
    }

    pub fn default_version(&self) -> &Version {
        self.get(&self.default).unwrap_or(&self.list[0])
    }

    /// Writes the versions back, the default's document as the policy's.
    async fn save(&self, call: &Call<'_>, mut policy: IamEntity) -> Result<(), QueryError> {
        let mut attrs = attributes(&policy);
        attrs["versions"] = self
            .list
            .iter()
            .map(|v| json!({"id": v.id, "document": v.document, "created": v.created}))
            .collect();
        attrs["defaultVersion"] = json!(self.default);
        attrs["nextVersion"] = json!(self.next);
        policy.attributes = attrs.to_string();
        policy.document = Some(self.default_version().document.clone());
        call.app.access.store().update_iam_entity(&policy).await?;
        Ok(())
    }
}

fn version_json(v: &Version, default: &str, with_document: bool) -> Value {
    let mut json = json!({
        "VersionId": v.id,
        "IsDefaultVersion": v.id == default,
        "CreateDate": v.created / 1000,
    });
    if with_document {
        json["Document"] = json!(encode_document(&v.document));
    }
    json
}

fn no_such_version(arn: &str, id: &str) -> QueryError {
    QueryError::new(
        "NoSuchEntity",
        format!("Policy {arn} version {id} does not exist or is not attachable."),
    )
}

pub(super) async fn get(call: &Call<'_>, input: &Value) -> Result<Value, QueryError> {
    let arn = str_of(input, "PolicyArn");
    let id = str_of(input, "VersionId");
    call.authorize("iam:GetPolicyVersion", arn).await?;
    if let Some(aws) = managed_policy(arn) {
        if id != aws.version {
            return Err(no_such_version(arn, id));
        }
        let version = Version {
            id: id.to_string(),
            document: aws.document.to_string(),
            created: 0,
        };
        return Ok(json!({"PolicyVersion": version_json(&version, aws.version, true)}));
    }
    let versions = Versions::of(&customer_policy(call, arn).await?);
    let version = versions.get(id).ok_or_else(|| no_such_version(arn, id))?;
    Ok(json!({"PolicyVersion": version_json(version, &versions.default, true)}))
}

pub(super) async fn create(call: &Call<'_>, input: &Value) -> Result<Value, QueryError> {
    let arn = str_of(input, "PolicyArn");
    call.authorize("iam:CreatePolicyVersion", arn).await?;
    let policy = customer_policy(call, arn).await?;
    let document = str_of(input, "PolicyDocument");
    checked_policy(document, PolicyKind::Identity, MANAGED_POLICY_SIZE)?;
    let mut versions = Versions::of(&policy);
    if versions.list.len() >= MAX_VERSIONS {
        return Err(QueryError::new(
            "LimitExceeded",
            format!(
                "A managed policy can have up to {MAX_VERSIONS} versions. Before you create a new version, you must delete an existing version."
            ),
        ));
    }
    let id = format!("v{}", versions.next);
    versions.next += 1;
    versions.list.push(Version {
        id: id.clone(),
        document: document.to_string(),
        created: now_millis(),
    });
    if input["SetAsDefault"].as_bool().unwrap_or(false) {
        versions.default = id.clone();
    }
    versions.save(call, policy).await?;
    let created = versions.get(&id).expect("just added");
    Ok(json!({"PolicyVersion": version_json(created, &versions.default, false)}))
}

pub(super) async fn list(call: &Call<'_>, input: &Value) -> Result<Value, QueryError> {
    let arn = str_of(input, "PolicyArn");
    call.authorize("iam:ListPolicyVersions", arn).await?;
    let listed: Vec<Value> = match managed_policy(arn) {
        Some(aws) => vec![version_json(
            &Version {
                id: aws.version.to_string(),
                document: String::new(),
                created: 0,
            },
            aws.version,
            false,
        )],
        None => {
            let versions = Versions::of(&customer_policy(call, arn).await?);
            versions
                .list
                .iter()
                .rev()
                .map(|v| version_json(v, &versions.default, false))
                .collect()
        }
    };
    let (limit, after) = page(input)?;
    let (listed, extra) = paged(
        listed,
        |v| v["VersionId"].as_str().unwrap_or_default().to_string(),
        limit,
        after.as_deref(),
    );
    Ok(super::merge(json!({"Versions": listed}), extra))
}

pub(super) async fn delete(call: &Call<'_>, input: &Value) -> Result<Value, QueryError> {
    let arn = str_of(input, "PolicyArn");
    let id = str_of(input, "VersionId");
    call.authorize("iam:DeletePolicyVersion", arn).await?;
    let policy = customer_policy(call, arn).await?;
    let mut versions = Versions::of(&policy);
    versions.get(id).ok_or_else(|| no_such_version(arn, id))?;
    if versions.default == id {
        return Err(QueryError::new(
            "DeleteConflict",
            "Cannot delete the default version of a policy.",
        ));
    }
    versions.list.retain(|v| v.id != id);
    versions.save(call, policy).await?;
    Ok(json!({}))
}

pub(super) async fn set_default(call: &Call<'_>, input: &Value) -> Result<Value, QueryError> {
    let arn = str_of(input, "PolicyArn");
    let id = str_of(input, "VersionId");
    call.authorize("iam:SetDefaultPolicyVersion", arn).await?;
    let policy = customer_policy(call, arn).await?;
    let mut versions = Versions::of(&policy);
    versions.get(id).ok_or_else(|| no_such_version(arn, id))?;
    versions.default = id.to_string();
    versions.save(call, policy).await?;
    Ok(json!({}))
}
