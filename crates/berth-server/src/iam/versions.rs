//! Versions of managed policies. A customer managed policy has at most
//! [`MAX_VERSIONS`]; its entity's document is always the default version's,
//! which is what authorization reads. An AWS managed policy shows its one
//! current version.

use berth_core::policy::PolicyKind;
use berth_store::{IamEntity, now_millis};
use serde_json::json;

use super::{
    Conflict, Iam, IamError, Limit, MANAGED_POLICY_SIZE, Missing, attributes, checked_policy,
};
use crate::access::managed::managed_policy;

/// Versions a managed policy may have, as on IAM.
pub const MAX_VERSIONS: usize = 5;

/// A version of a managed policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyVersion {
    /// `v1`, `v2` …
    pub id: String,
    pub document: String,
    /// Milliseconds; 0 for AWS managed policies.
    pub created: i64,
    pub is_default: bool,
}

pub(super) struct Version {
    pub id: String,
    pub document: String,
    /// Milliseconds.
    pub created: i64,
}

/// A customer managed policy's versions, oldest first, and which is the default.
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

    fn get(&self, id: &str) -> Option<&Version> {
        self.list.iter().find(|v| v.id == id)
    }

    fn default_version(&self) -> &Version {
        self.get(&self.default).unwrap_or(&self.list[0])
    }

    fn record(&self, v: &Version) -> PolicyVersion {
        PolicyVersion {
            id: v.id.clone(),
            document: v.document.clone(),
            created: v.created,
            is_default: v.id == self.default,
        }
    }

    /// Version `id`, or `NoSuchEntity` naming policy `arn`.
    fn existing(&self, arn: &str, id: &str) -> Result<&Version, IamError> {
        self.get(id).ok_or_else(|| no_such_version(arn, id))
    }
}

fn no_such_version(arn: &str, id: &str) -> IamError {
    IamError::missing(Missing::PolicyVersion {
        arn: arn.to_string(),
        id: id.to_string(),
    })
}

impl Iam {
    /// Writes `versions` back into `policy`, the default's document as the
    /// policy's, and forgets the decisions that read it.
    async fn save_versions(
        &self,
        versions: &Versions,
        mut policy: IamEntity,
    ) -> Result<(), IamError> {
        let mut attrs = attributes(&policy);
        attrs["versions"] = versions
            .list
            .iter()
            .map(|v| json!({"id": v.id, "document": v.document, "created": v.created}))
            .collect();
        attrs["defaultVersion"] = json!(versions.default);
        attrs["nextVersion"] = json!(versions.next);
        policy.attributes = attrs.to_string();
        policy.document = Some(versions.default_version().document.clone());
        self.store().update_iam_entity(&policy).await?;
        self.permissions_changed();
        Ok(())
    }

    /// Version `id` of managed policy `arn`, its document included.
    pub async fn policy_version(&self, arn: &str, id: &str) -> Result<PolicyVersion, IamError> {
        if let Some(aws) = managed_policy(arn) {
            if id != aws.version {
                return Err(no_such_version(arn, id));
            }
            return Ok(PolicyVersion {
                id: id.to_string(),
                document: aws.document.to_string(),
                created: 0,
                is_default: true,
            });
        }
        let versions = Versions::of(&self.customer_policy(arn).await?);
        let version = versions.existing(arn, id)?;
        Ok(versions.record(version))
    }

    /// The versions of managed policy `arn`, oldest first.
    pub async fn policy_versions(&self, arn: &str) -> Result<Vec<PolicyVersion>, IamError> {
        if let Some(aws) = managed_policy(arn) {
            return Ok(vec![PolicyVersion {
                id: aws.version.to_string(),
                document: aws.document.to_string(),
                created: 0,
                is_default: true,
            }]);
        }
        let versions = Versions::of(&self.customer_policy(arn).await?);
        Ok(versions.list.iter().map(|v| versions.record(v)).collect())
    }

    /// Adds a version to customer managed policy `arn` (its default, if
    /// `set_as_default`), within [`MAX_VERSIONS`].
    pub async fn create_policy_version(
        &self,
        arn: &str,
        document: &str,
        set_as_default: bool,
    ) -> Result<PolicyVersion, IamError> {
        let policy = self.customer_policy(arn).await?;
        checked_policy(document, PolicyKind::Identity, MANAGED_POLICY_SIZE)?;
        let mut versions = Versions::of(&policy);
        if versions.list.len() >= MAX_VERSIONS {
            return Err(IamError::LimitExceeded(Limit::PolicyVersions));
        }
        let id = format!("v{}", versions.next);
        versions.next += 1;
        versions.list.push(Version {
            id: id.clone(),
            document: document.to_string(),
            created: now_millis(),
        });
        if set_as_default {
            versions.default = id.clone();
        }
        self.save_versions(&versions, policy).await?;
        let created = versions.get(&id).expect("just added");
        Ok(versions.record(created))
    }

    /// Deletes version `id` of customer managed policy `arn`; not its default.
    pub async fn delete_policy_version(&self, arn: &str, id: &str) -> Result<(), IamError> {
        let policy = self.customer_policy(arn).await?;
        let mut versions = Versions::of(&policy);
        versions.existing(arn, id)?;
        if versions.default == id {
            return Err(IamError::DeleteConflict(Conflict::DefaultVersion));
        }
        versions.list.retain(|v| v.id != id);
        self.save_versions(&versions, policy).await
    }

    /// Makes version `id` customer managed policy `arn`'s default: what
    /// authorization reads from now on.
    pub async fn set_default_policy_version(&self, arn: &str, id: &str) -> Result<(), IamError> {
        let policy = self.customer_policy(arn).await?;
        let mut versions = Versions::of(&policy);
        versions.existing(arn, id)?;
        versions.default = id.to_string();
        self.save_versions(&versions, policy).await
    }
}
