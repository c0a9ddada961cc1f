//! Managed policies (the AWS ones built in, customer ones stored), their
//! attachments to users, groups and roles, and inline policies.

use berth_core::policy::PolicyKind;
use berth_store::{DeleteEntityOutcome, IamEntity, IamKind, IamLink, LinkKind};
use serde_json::json;

use super::versions::Versions;
use super::{
    Conflict, Details, Iam, IamError, MANAGED_POLICY_SIZE, Missing, checked_policy, tags_value,
};
use crate::access::managed::{AWS_POLICY_PREFIX, MANAGED_POLICIES, ManagedPolicy, managed_policy};

/// A customer managed policy to create.
#[derive(Clone, Debug, Default)]
pub struct NewPolicy {
    pub name: String,
    pub path: String,
    pub document: String,
    pub description: Option<String>,
    pub tags: Vec<(String, String)>,
}

/// A managed policy as IAM describes it: an AWS one or a customer one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManagedPolicyRecord {
    pub name: String,
    pub id: String,
    pub arn: String,
    pub path: String,
    pub default_version: String,
    /// Users, groups and roles it is attached to.
    pub attachments: usize,
    pub description: Option<String>,
    pub tags: Vec<(String, String)>,
    /// Milliseconds; 0 for AWS managed policies.
    pub created: i64,
    /// When its newest version was made, in milliseconds; 0 for AWS ones.
    pub updated: i64,
}

/// Which managed policies a listing shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PolicyScope {
    All,
    /// AWS managed policies only.
    Aws,
    /// Customer managed policies only.
    Local,
}

/// A managed policy attached to a user, group or role.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttachedPolicy {
    pub name: String,
    pub arn: String,
}

/// The users, groups and roles a managed policy is attached to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PolicyEntities {
    pub users: Vec<IamEntity>,
    pub groups: Vec<IamEntity>,
    pub roles: Vec<IamEntity>,
}

/// An inline policy of a user, group or role.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InlinePolicy {
    pub name: String,
    pub document: String,
}

/// Inline policy sizes per holder kind, as IAM limits them.
fn inline_limit(kind: IamKind) -> usize {
    match kind {
        IamKind::User => 2048,
        IamKind::Group => 5120,
        _ => 10240,
    }
}

fn no_such_policy(arn: &str) -> IamError {
    IamError::missing(Missing::Policy {
        arn: arn.to_string(),
    })
}

fn no_such_inline(kind: IamKind, policy: &str) -> IamError {
    IamError::missing(Missing::InlinePolicy {
        kind,
        name: policy.to_string(),
    })
}

fn aws_record(p: &ManagedPolicy, attachments: usize) -> ManagedPolicyRecord {
    ManagedPolicyRecord {
        name: p.name.to_string(),
        id: p.id.to_string(),
        arn: p.arn(),
        path: "/".to_string(),
        default_version: p.version.to_string(),
        attachments,
        description: Some(p.description.to_string()),
        tags: Vec::new(),
        created: 0,
        updated: 0,
    }
}

fn customer_record(e: &IamEntity, attachments: usize) -> ManagedPolicyRecord {
    let details = Details::of(e);
    let versions = Versions::of(e);
    let updated = versions
        .list
        .iter()
        .map(|v| v.created)
        .max()
        .unwrap_or(e.created_at);
    ManagedPolicyRecord {
        name: e.name.clone(),
        id: e.id.clone(),
        arn: e.arn.clone(),
        path: e.path.clone(),
        default_version: versions.default,
        attachments,
        description: details.description,
        tags: details.tags,
        created: e.created_at,
        updated,
    }
}

impl Iam {
    /// A customer managed policy's ARN names it by path and name.
    fn customer_policy_name(&self, arn: &str) -> Option<String> {
        let rest = arn.strip_prefix(&format!("arn:aws:iam::{}:policy/", self.account_id()))?;
        Some(rest.rsplit('/').next().unwrap_or(rest).to_string())
    }

    /// A customer managed policy by ARN, or `NoSuchEntity`.
    pub(super) async fn customer_policy(&self, arn: &str) -> Result<IamEntity, IamError> {
        let name = self
            .customer_policy_name(arn)
            .ok_or_else(|| no_such_policy(arn))?;
        self.store()
            .get_iam_entity(IamKind::Policy, &name)
            .await?
            .filter(|e| e.arn == arn)
            .ok_or_else(|| no_such_policy(arn))
    }

    async fn attachment_count(&self, arn: &str) -> Result<usize, IamError> {
        Ok(self
            .store()
            .list_iam_links(LinkKind::Attached, None, Some(arn))
            .await?
            .len())
    }

    /// Creates a customer managed policy; its document must parse, within
    /// IAM's size.
    pub async fn create_policy(&self, policy: NewPolicy) -> Result<ManagedPolicyRecord, IamError> {
        checked_policy(&policy.document, PolicyKind::Identity, MANAGED_POLICY_SIZE)?;
        let mut attributes = json!({"tags": tags_value(&policy.tags)});
        if let Some(description) = &policy.description {
            attributes["description"] = json!(description);
        }
        let entity = self
            .create(
                IamKind::Policy,
                &policy.name,
                &policy.path,
                Some(policy.document),
                attributes,
            )
            .await?;
        Ok(customer_record(&entity, 0))
    }

    /// The managed policy with `arn`, AWS or customer.
    pub async fn policy(&self, arn: &str) -> Result<ManagedPolicyRecord, IamError> {
        let attachments = self.attachment_count(arn).await?;
        if let Some(aws) = managed_policy(arn) {
            return Ok(aws_record(aws, attachments));
        }
        let policy = self.customer_policy(arn).await?;
        Ok(customer_record(&policy, attachments))
    }

    /// The managed policies in `scope` whose path starts with
    /// `path_prefix` (and that are attached somewhere, if
    /// `only_attached`), by ARN.
    pub async fn policies(
        &self,
        scope: PolicyScope,
        only_attached: bool,
        path_prefix: &str,
    ) -> Result<Vec<ManagedPolicyRecord>, IamError> {
        let mut policies = Vec::new();
        if scope != PolicyScope::Local {
            for aws in MANAGED_POLICIES {
                let attachments = self.attachment_count(&aws.arn()).await?;
                policies.push(aws_record(aws, attachments));
            }
        }
        if scope != PolicyScope::Aws {
            let store = self.store();
            let mut after: Option<String> = None;
            loop {
                let batch = store
                    .list_iam_entities(IamKind::Policy, after.as_deref(), 1000)
                    .await?;
                let Some(last) = batch.last() else { break };
                after = Some(last.name.to_lowercase());
                for policy in batch {
                    let attachments = self.attachment_count(&policy.arn).await?;
                    policies.push(customer_record(&policy, attachments));
                }
            }
        }
        policies
            .retain(|p| p.path.starts_with(path_prefix) && (!only_attached || p.attachments > 0));
        policies.sort_by(|a, b| a.arn.cmp(&b.arn));
        Ok(policies)
    }

    /// Deletes a customer managed policy that has no version besides its
    /// default and is attached nowhere.
    pub async fn delete_policy(&self, arn: &str) -> Result<(), IamError> {
        if arn.starts_with(AWS_POLICY_PREFIX) {
            return Err(IamError::AwsManagedPolicy {
                arn: arn.to_string(),
            });
        }
        let policy = self.customer_policy(arn).await?;
        if Versions::of(&policy).list.len() > 1 {
            return Err(IamError::DeleteConflict(Conflict::PolicyVersions));
        }
        match self
            .store()
            .delete_iam_entity(IamKind::Policy, &policy.name)
            .await?
        {
            DeleteEntityOutcome::Deleted => {
                self.permissions_changed();
                Ok(())
            }
            DeleteEntityOutcome::NotFound => Err(no_such_policy(arn)),
            DeleteEntityOutcome::Conflict(dependent) => Err(IamError::DeleteConflict(
                Conflict::of(IamKind::Policy, dependent),
            )),
        }
    }

    /// The users, groups and roles managed policy `arn` is attached to;
    /// only those of kind `only` if given.
    pub async fn entities_for_policy(
        &self,
        arn: &str,
        only: Option<IamKind>,
    ) -> Result<PolicyEntities, IamError> {
        if managed_policy(arn).is_none() {
            self.customer_policy(arn).await?;
        }
        let store = self.store();
        let mut found = PolicyEntities::default();
        for link in store
            .list_iam_links(LinkKind::Attached, None, Some(arn))
            .await?
        {
            let Some((kind, name)) = link.subject.split_once(':') else {
                continue;
            };
            let (kind, list) = match kind {
                "user" => (IamKind::User, &mut found.users),
                "group" => (IamKind::Group, &mut found.groups),
                _ => (IamKind::Role, &mut found.roles),
            };
            if only.is_some_and(|only| only != kind) {
                continue;
            }
            if let Some(entity) = store.get_iam_entity(kind, name).await? {
                list.push(entity);
            }
        }
        Ok(found)
    }

    /// Attaches managed policy `arn` to the user, group or role `name`.
    pub async fn attach_policy(
        &self,
        kind: IamKind,
        name: &str,
        arn: &str,
    ) -> Result<(), IamError> {
        let customer = self.customer_policy_name(arn);
        let mut requires = vec![(kind, name)];
        if managed_policy(arn).is_none() {
            let Some(policy) = customer.as_deref() else {
                return Err(no_such_policy(arn));
            };
            self.customer_policy(arn).await?;
            requires.push((IamKind::Policy, policy));
        }
        let attached = self
            .store()
            .list_iam_links(LinkKind::Attached, Some(&kind.key(name)), None)
            .await?;
        // Attaching one already attached changes nothing, as on IAM.
        if attached.len() >= super::MAX_ATTACHED && !attached.iter().any(|l| l.object == arn) {
            return Err(IamError::LimitExceeded(super::Limit::AttachedPolicies(
                kind,
            )));
        }
        let link = IamLink {
            kind: LinkKind::Attached,
            subject: kind.key(name),
            object: arn.to_string(),
            document: None,
        };
        if !self.store().put_iam_link(&link, &requires).await? {
            return Err(no_such_policy(arn));
        }
        self.permissions_changed();
        Ok(())
    }

    /// Detaches managed policy `arn` from the user, group or role `name`.
    pub async fn detach_policy(
        &self,
        kind: IamKind,
        name: &str,
        arn: &str,
    ) -> Result<(), IamError> {
        if !self
            .store()
            .delete_iam_link(LinkKind::Attached, &kind.key(name), arn)
            .await?
        {
            return Err(IamError::missing(Missing::Attachment {
                arn: arn.to_string(),
            }));
        }
        self.permissions_changed();
        Ok(())
    }

    /// The managed policies attached to the user, group or role `name`, by ARN.
    pub async fn attached_policies(
        &self,
        kind: IamKind,
        name: &str,
    ) -> Result<Vec<AttachedPolicy>, IamError> {
        let links = self
            .store()
            .list_iam_links(LinkKind::Attached, Some(&kind.key(name)), None)
            .await?;
        Ok(links
            .into_iter()
            .map(|l| AttachedPolicy {
                name: l.object.rsplit('/').next().unwrap_or(&l.object).to_string(),
                arn: l.object,
            })
            .collect())
    }

    /// Sets inline policy `policy` of the user, group or role `name`; its
    /// document must parse, within IAM's size for the holder's kind.
    pub async fn put_inline_policy(
        &self,
        kind: IamKind,
        name: &str,
        policy: &str,
        document: &str,
    ) -> Result<(), IamError> {
        checked_policy(document, PolicyKind::Identity, inline_limit(kind))?;
        let link = IamLink {
            kind: LinkKind::Inline,
            subject: kind.key(name),
            object: policy.to_string(),
            document: Some(document.to_string()),
        };
        if !self.store().put_iam_link(&link, &[(kind, name)]).await? {
            return Err(IamError::no_such(kind, name));
        }
        self.permissions_changed();
        Ok(())
    }

    /// Inline policy `policy` of the user, group or role `name`.
    pub async fn inline_policy(
        &self,
        kind: IamKind,
        name: &str,
        policy: &str,
    ) -> Result<InlinePolicy, IamError> {
        let link = self
            .store()
            .list_iam_links(LinkKind::Inline, Some(&kind.key(name)), Some(policy))
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| no_such_inline(kind, policy))?;
        Ok(InlinePolicy {
            name: link.object,
            document: link.document.unwrap_or_default(),
        })
    }

    pub async fn delete_inline_policy(
        &self,
        kind: IamKind,
        name: &str,
        policy: &str,
    ) -> Result<(), IamError> {
        if !self
            .store()
            .delete_iam_link(LinkKind::Inline, &kind.key(name), policy)
            .await?
        {
            return Err(no_such_inline(kind, policy));
        }
        self.permissions_changed();
        Ok(())
    }

    /// The names of the inline policies of the user, group or role `name`, in order.
    pub async fn inline_policies(
        &self,
        kind: IamKind,
        name: &str,
    ) -> Result<Vec<String>, IamError> {
        Ok(self
            .store()
            .list_iam_links(LinkKind::Inline, Some(&kind.key(name)), None)
            .await?
            .into_iter()
            .map(|l| l.object)
            .collect())
    }
}
