//! IAM as a service: users and their access keys, groups, roles, customer
//! managed policies and their versions, attachments, inline policies and
//! tags. Inputs are plain values and answers typed records; the service
//! checks what IAM checks (policy documents and their sizes, quotas,
//! existence, what still hangs on an entity being deleted), stores, and
//! forgets exactly the cached decisions a change touches. Who may call what
//! is the front door's to decide, and so are paging and wire shapes: the
//! Query door translates, a console would call the same methods.

mod policies;
mod tags;
mod versions;

use std::fmt;
use std::sync::Arc;

use berth_core::policy::{Policy, PolicyKind};
use berth_store::{
    AccessKeyRecord, AccessStore, DeleteEntityOutcome, Dependent, IamEntity, IamKind, IamLink,
    LinkKind, StoreError,
};
use serde_json::{Value, json};

use crate::access::{Access, new_entity};
use crate::identity::Identity;
pub use policies::{
    AttachedPolicy, InlinePolicy, ManagedPolicyRecord, NewPolicy, PolicyEntities, PolicyScope,
};
pub use tags::MAX_TAGS;
pub use versions::{MAX_VERSIONS, PolicyVersion};

/// Long-term access keys per user, as on IAM.
pub const KEYS_PER_USER: usize = 2;
/// Managed policies attached to one user, group or role (IAM's default quota).
pub const MAX_ATTACHED: usize = 10;
/// Policy sizes in characters, whitespace excluded, as IAM counts them.
pub const MANAGED_POLICY_SIZE: usize = 6144;
pub const TRUST_POLICY_SIZE: usize = 2048;
/// A role's longest session unless it says otherwise, in seconds.
pub const DEFAULT_MAX_SESSION_DURATION: i64 = 3600;

/// What an operation names that does not exist.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Missing {
    /// A user, group or role.
    Entity {
        kind: IamKind,
        name: String,
    },
    /// A managed policy, or one that cannot be attached.
    Policy {
        arn: String,
    },
    /// A managed policy the entity detaching it does not have attached.
    Attachment {
        arn: String,
    },
    /// An inline policy; `kind` is its holder's.
    InlinePolicy {
        kind: IamKind,
        name: String,
    },
    AccessKey {
        id: String,
    },
    PolicyVersion {
        arn: String,
        id: String,
    },
}

impl fmt::Display for Missing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Missing::Entity { kind, name } => {
                write!(f, "The {} with name {name} cannot be found.", kind.as_str())
            }
            Missing::Policy { arn } => {
                write!(f, "Policy {arn} does not exist or is not attachable.")
            }
            Missing::Attachment { arn } => write!(f, "Policy {arn} was not found."),
            Missing::InlinePolicy { kind, name } => write!(
                f,
                "The {} policy with name {name} cannot be found.",
                kind.as_str()
            ),
            Missing::AccessKey { id } => {
                write!(f, "The Access Key with id {id} cannot be found.")
            }
            Missing::PolicyVersion { arn, id } => write!(
                f,
                "Policy {arn} version {id} does not exist or is not attachable."
            ),
        }
    }
}

/// An IAM quota an operation would exceed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    AccessKeysPerUser,
    /// A policy document's size limit, in characters without whitespace.
    PolicySize(usize),
    TagsPerResource,
    PolicyVersions,
    /// Managed policies attached to one user, group or role.
    AttachedPolicies(IamKind),
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Limit::AccessKeysPerUser => write!(
                f,
                "Cannot exceed quota for AccessKeysPerUser: {KEYS_PER_USER}"
            ),
            Limit::PolicySize(limit) => write!(f, "Cannot exceed quota for PolicySize: {limit}"),
            Limit::TagsPerResource => {
                write!(f, "Cannot exceed quota for TagsPerResource: {MAX_TAGS}")
            }
            Limit::AttachedPolicies(kind) => write!(
                f,
                "Cannot exceed quota for PoliciesPer{}: {MAX_ATTACHED}",
                match kind {
                    IamKind::Group => "Group",
                    IamKind::Role => "Role",
                    _ => "User",
                }
            ),
            Limit::PolicyVersions => write!(
                f,
                "A managed policy can have up to {MAX_VERSIONS} versions. Before you create a new version, you must delete an existing version."
            ),
        }
    }
}

/// What keeps an entity, a policy or a policy version from being deleted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Conflict {
    /// The user still has access keys.
    AccessKeys,
    /// The managed policy is attached to users, groups or roles.
    PolicyAttached,
    /// The group still has members.
    GroupMembers,
    /// The user is still in groups.
    GroupMemberships,
    /// Managed policies are still attached to the entity.
    AttachedPolicies,
    /// The entity still has inline policies.
    InlinePolicies,
    /// The managed policy has versions besides its default one.
    PolicyVersions,
    /// The version is its policy's default.
    DefaultVersion,
}

impl Conflict {
    /// Why the store refused to delete an entity of `kind`.
    fn of(kind: IamKind, dependent: Dependent) -> Conflict {
        match (kind, dependent) {
            (_, Dependent::AccessKeys) => Conflict::AccessKeys,
            (IamKind::Policy, _) => Conflict::PolicyAttached,
            (IamKind::Group, Dependent::Link(LinkKind::Member)) => Conflict::GroupMembers,
            (_, Dependent::Link(LinkKind::Member)) => Conflict::GroupMemberships,
            (_, Dependent::Link(LinkKind::Attached)) => Conflict::AttachedPolicies,
            (_, Dependent::Link(LinkKind::Inline)) => Conflict::InlinePolicies,
        }
    }
}

impl fmt::Display for Conflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Conflict::AccessKeys => "Cannot delete entity, must delete access keys first.",
            Conflict::PolicyAttached => "Cannot delete a policy attached to entities.",
            Conflict::GroupMembers => "Cannot delete entity, must remove users from group first.",
            Conflict::GroupMemberships => {
                "Cannot delete entity, must remove user from all groups first."
            }
            Conflict::AttachedPolicies => "Cannot delete entity, must detach all policies first.",
            Conflict::InlinePolicies => "Cannot delete entity, must delete policies first.",
            Conflict::PolicyVersions => {
                "This policy has more than one version. Before you delete a policy, you must delete the policy's versions. The default version is deleted with the policy."
            }
            Conflict::DefaultVersion => "Cannot delete the default version of a policy.",
        })
    }
}

/// Why an IAM operation did not happen. The messages are IAM's own.
#[derive(Debug, thiserror::Error)]
pub enum IamError {
    #[error("{what}")]
    NoSuchEntity { what: Missing },
    #[error("{}", already_exists(*.kind, .name))]
    EntityAlreadyExists { kind: IamKind, name: String },
    #[error("{0}")]
    LimitExceeded(Limit),
    /// The document is not a valid policy of its kind; says why.
    #[error("{0}")]
    MalformedPolicyDocument(String),
    #[error("{0}")]
    DeleteConflict(Conflict),
    /// AWS managed policies are built in: they cannot be deleted.
    #[error("ARN {arn} is not valid: AWS managed policies cannot be deleted.")]
    AwsManagedPolicy { arn: String },
    #[error("internal error: {0}")]
    Internal(#[from] StoreError),
}

impl IamError {
    /// `NoSuchEntity` for the user, group or role `name`.
    pub fn no_such(kind: IamKind, name: &str) -> IamError {
        IamError::NoSuchEntity {
            what: Missing::Entity {
                kind,
                name: name.to_string(),
            },
        }
    }

    fn missing(what: Missing) -> IamError {
        IamError::NoSuchEntity { what }
    }
}

/// `User`, `Group`, `Role`, `Policy`: how IAM names a kind in operations.
pub fn kind_title(kind: IamKind) -> &'static str {
    match kind {
        IamKind::User => "User",
        IamKind::Group => "Group",
        IamKind::Role => "Role",
        IamKind::Policy => "Policy",
    }
}

fn already_exists(kind: IamKind, name: &str) -> String {
    match kind {
        IamKind::Policy => {
            format!("A policy called {name} already exists. Duplicate names are not allowed.")
        }
        _ => format!("{} with name {name} already exists.", kind_title(kind)),
    }
}

/// Parses a policy document as IAM does, within `limit` characters.
fn checked_policy(text: &str, kind: PolicyKind, limit: usize) -> Result<(), IamError> {
    let size = text.chars().filter(|c| !c.is_whitespace()).count();
    if size > limit {
        return Err(IamError::LimitExceeded(Limit::PolicySize(limit)));
    }
    Policy::parse(text, kind)
        .and_then(|policy| policy.check_for_writing())
        .map_err(|e| IamError::MalformedPolicyDocument(e.0))
}

/// An entity's stored attributes (a JSON object; `{}` if unreadable).
fn attributes(entity: &IamEntity) -> Value {
    serde_json::from_str(&entity.attributes).unwrap_or_else(|_| json!({}))
}

/// Tags as attributes keep them: `[{"Key": …, "Value": …}, …]`.
fn tags_value(tags: &[(String, String)]) -> Value {
    tags.iter()
        .map(|(k, v)| json!({"Key": k, "Value": v}))
        .collect()
}

fn tags_in(attributes: &Value) -> Vec<(String, String)> {
    tag_pairs(&attributes["tags"])
}

/// The well-formed `{"Key", "Value"}` pairs of a tag list (IAM's shape, in
/// requests and in what is stored).
pub(crate) fn tag_pairs(list: &Value) -> Vec<(String, String)> {
    list.as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| {
            Some((
                t["Key"].as_str()?.to_string(),
                t["Value"].as_str()?.to_string(),
            ))
        })
        .collect()
}

/// What a user, role or customer managed policy carries besides its name,
/// path and document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Details {
    pub description: Option<String>,
    /// In the order they were set.
    pub tags: Vec<(String, String)>,
    /// Roles: the longest session `AssumeRole` grants, in seconds.
    pub max_session_duration: i64,
}

impl Details {
    pub fn of(entity: &IamEntity) -> Details {
        let attributes = attributes(entity);
        Details {
            description: attributes["description"].as_str().map(str::to_string),
            tags: tags_in(&attributes),
            max_session_duration: attributes["maxSessionDuration"]
                .as_i64()
                .unwrap_or(DEFAULT_MAX_SESSION_DURATION),
        }
    }
}

/// A user to create.
#[derive(Clone, Debug, Default)]
pub struct NewUser {
    pub name: String,
    pub path: String,
    pub tags: Vec<(String, String)>,
}

/// A group to create.
#[derive(Clone, Debug, Default)]
pub struct NewGroup {
    pub name: String,
    pub path: String,
}

/// A role to create.
#[derive(Clone, Debug, Default)]
pub struct NewRole {
    pub name: String,
    pub path: String,
    /// Who may assume the role: a trust policy.
    pub trust_document: String,
    pub description: Option<String>,
    /// Seconds; [`DEFAULT_MAX_SESSION_DURATION`] if `None`.
    pub max_session_duration: Option<i64>,
    pub tags: Vec<(String, String)>,
}

/// A new access key: its record and its secret, shown this once.
#[derive(Clone, Debug)]
pub struct NewAccessKey {
    pub key: AccessKeyRecord,
    pub secret: String,
}

pub struct Iam {
    access: Arc<Access>,
    identity: Arc<Identity>,
}

impl Iam {
    pub fn new(access: Arc<Access>, identity: Arc<Identity>) -> Iam {
        Iam { access, identity }
    }

    pub fn account_id(&self) -> &str {
        &self.identity.account_id
    }

    fn store(&self) -> &dyn AccessStore {
        self.access.store()
    }

    /// Identities or policies changed: decisions are made afresh from now on.
    fn permissions_changed(&self) {
        self.access.forget();
    }

    /// Access keys changed: credentials are checked afresh from now on.
    fn keys_changed(&self) {
        self.identity.forget_checked();
    }

    /// The ARN an entity of `kind` named `name` has (or would have) at `path`.
    pub fn arn(&self, kind: IamKind, path: &str, name: &str) -> String {
        format!(
            "arn:aws:iam::{}:{}{path}{name}",
            self.account_id(),
            kind.as_str()
        )
    }

    /// The user, group, role or customer managed policy `name`, if it exists.
    pub async fn entity(&self, kind: IamKind, name: &str) -> Result<Option<IamEntity>, IamError> {
        Ok(self.store().get_iam_entity(kind, name).await?)
    }

    /// Like [`Iam::entity`], `NoSuchEntity` if it does not exist.
    async fn existing(&self, kind: IamKind, name: &str) -> Result<IamEntity, IamError> {
        self.entity(kind, name)
            .await?
            .ok_or_else(|| IamError::no_such(kind, name))
    }

    async fn create(
        &self,
        kind: IamKind,
        name: &str,
        path: &str,
        document: Option<String>,
        attributes: Value,
    ) -> Result<IamEntity, IamError> {
        let entity = new_entity(self.account_id(), kind, name, path, document, attributes);
        if !self.store().create_iam_entity(&entity).await? {
            return Err(IamError::EntityAlreadyExists {
                kind,
                name: name.to_string(),
            });
        }
        self.permissions_changed();
        Ok(entity)
    }

    pub async fn create_user(&self, user: NewUser) -> Result<IamEntity, IamError> {
        let attributes = json!({"tags": tags_value(&user.tags)});
        self.create(IamKind::User, &user.name, &user.path, None, attributes)
            .await
    }

    pub async fn create_group(&self, group: NewGroup) -> Result<IamEntity, IamError> {
        self.create(IamKind::Group, &group.name, &group.path, None, json!({}))
            .await
    }

    /// Creates a role; its trust policy must parse, within IAM's size.
    pub async fn create_role(&self, role: NewRole) -> Result<IamEntity, IamError> {
        checked_policy(&role.trust_document, PolicyKind::Trust, TRUST_POLICY_SIZE)?;
        let mut attributes = json!({
            "maxSessionDuration": role.max_session_duration.unwrap_or(DEFAULT_MAX_SESSION_DURATION),
            "tags": tags_value(&role.tags),
        });
        if let Some(description) = &role.description {
            attributes["description"] = json!(description);
        }
        self.create(
            IamKind::Role,
            &role.name,
            &role.path,
            Some(role.trust_document),
            attributes,
        )
        .await
    }

    /// Entities of `kind` whose path starts with `path_prefix`, in name
    /// order (without regard to case) after the name `after`: at least
    /// `wanted` of them when there are as many (the last batch read may
    /// bring more).
    pub async fn list_entities(
        &self,
        kind: IamKind,
        path_prefix: &str,
        after: Option<&str>,
        wanted: usize,
    ) -> Result<Vec<IamEntity>, IamError> {
        let store = self.store();
        let mut found = Vec::new();
        let mut position = after.map(str::to_string);
        // Other paths are skipped.
        while found.len() < wanted {
            let batch = store
                .list_iam_entities(kind, position.as_deref(), 1000)
                .await?;
            let Some(last) = batch.last() else { break };
            position = Some(last.name.to_lowercase());
            found.extend(
                batch
                    .into_iter()
                    .filter(|e| e.path.starts_with(path_prefix)),
            );
        }
        Ok(found)
    }

    /// Deletes a user, group or role nothing hangs on any more.
    pub async fn delete_entity(&self, kind: IamKind, name: &str) -> Result<(), IamError> {
        match self.store().delete_iam_entity(kind, name).await? {
            DeleteEntityOutcome::Deleted => {
                self.permissions_changed();
                Ok(())
            }
            DeleteEntityOutcome::NotFound => Err(IamError::no_such(kind, name)),
            DeleteEntityOutcome::Conflict(dependent) => {
                Err(IamError::DeleteConflict(Conflict::of(kind, dependent)))
            }
        }
    }

    /// The users in group `group`, by name (without regard to case).
    pub async fn group_members(&self, group: &str) -> Result<Vec<IamEntity>, IamError> {
        let store = self.store();
        let mut users = Vec::new();
        for link in store
            .list_iam_links(LinkKind::Member, None, Some(&IamKind::Group.key(group)))
            .await?
        {
            let user_name = link.subject.trim_start_matches("user:");
            if let Some(user) = store.get_iam_entity(IamKind::User, user_name).await? {
                users.push(user);
            }
        }
        users.sort_by_key(|u| u.name.to_lowercase());
        Ok(users)
    }

    /// The groups user `user` is in.
    pub async fn groups_of(&self, user: &str) -> Result<Vec<IamEntity>, IamError> {
        let store = self.store();
        let mut groups = Vec::new();
        for link in store
            .list_iam_links(LinkKind::Member, Some(&IamKind::User.key(user)), None)
            .await?
        {
            let group_name = link.object.trim_start_matches("group:");
            if let Some(group) = store.get_iam_entity(IamKind::Group, group_name).await? {
                groups.push(group);
            }
        }
        Ok(groups)
    }

    /// Puts user `user` in group `group`; both must exist.
    pub async fn add_user_to_group(&self, group: &str, user: &str) -> Result<(), IamError> {
        let link = IamLink {
            kind: LinkKind::Member,
            subject: IamKind::User.key(user),
            object: IamKind::Group.key(group),
            document: None,
        };
        let requires = [(IamKind::User, user), (IamKind::Group, group)];
        if !self.store().put_iam_link(&link, &requires).await? {
            return Err(IamError::no_such(IamKind::User, user));
        }
        self.permissions_changed();
        Ok(())
    }

    pub async fn remove_user_from_group(&self, group: &str, user: &str) -> Result<(), IamError> {
        let removed = self
            .store()
            .delete_iam_link(
                LinkKind::Member,
                &IamKind::User.key(user),
                &IamKind::Group.key(group),
            )
            .await?;
        if !removed {
            return Err(IamError::no_such(IamKind::User, user));
        }
        self.permissions_changed();
        Ok(())
    }

    /// Replaces role `role`'s trust policy.
    pub async fn update_assume_role_policy(
        &self,
        role: &str,
        document: &str,
    ) -> Result<(), IamError> {
        checked_policy(document, PolicyKind::Trust, TRUST_POLICY_SIZE)?;
        let mut role = self.existing(IamKind::Role, role).await?;
        role.document = Some(document.to_string());
        self.store().update_iam_entity(&role).await?;
        self.permissions_changed();
        Ok(())
    }

    /// A new long-term access key for `owner` (a principal's ARN), within
    /// [`KEYS_PER_USER`].
    pub async fn create_access_key(&self, owner: &str) -> Result<NewAccessKey, IamError> {
        let store = self.store();
        if store.list_access_keys(owner).await?.len() >= KEYS_PER_USER {
            return Err(IamError::LimitExceeded(Limit::AccessKeysPerUser));
        }
        let (id, secret) = self.identity.create_access_key(owner).await?;
        self.keys_changed();
        let key = store.get_access_key(&id).await?.ok_or_else(|| {
            IamError::Internal(StoreError::Database("a new access key vanished".into()))
        })?;
        Ok(NewAccessKey { key, secret })
    }

    /// `owner`'s long-term access keys, oldest first.
    pub async fn access_keys(&self, owner: &str) -> Result<Vec<AccessKeyRecord>, IamError> {
        Ok(self.store().list_access_keys(owner).await?)
    }

    /// Long-term access key `id`, if it belongs to `owner`.
    async fn owned_key(&self, owner: &str, id: &str) -> Result<AccessKeyRecord, IamError> {
        self.store()
            .get_access_key(id)
            .await?
            .filter(|k| k.principal == owner && k.expires_at.is_none())
            .ok_or_else(|| IamError::missing(Missing::AccessKey { id: id.to_string() }))
    }

    /// Activates or deactivates `owner`'s access key `id`.
    pub async fn set_access_key_active(
        &self,
        owner: &str,
        id: &str,
        active: bool,
    ) -> Result<(), IamError> {
        let mut key = self.owned_key(owner, id).await?;
        key.active = active;
        self.store().put_access_key(&key).await?;
        self.keys_changed();
        Ok(())
    }

    pub async fn delete_access_key(&self, owner: &str, id: &str) -> Result<(), IamError> {
        let key = self.owned_key(owner, id).await?;
        self.store().delete_access_key(&key.id).await?;
        self.keys_changed();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use berth_store::{MetadataStore, SqliteStore};

    use super::*;
    use crate::access::RequestFacts;
    use crate::identity::{Principal, PrincipalKind};

    const ALLOW_ALL: &str =
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#;
    const TRUST: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:root"},"Action":"sts:AssumeRole"}]}"#;

    async fn iam(dir: &std::path::Path) -> (Iam, Arc<Access>) {
        let store: Arc<dyn MetadataStore> =
            Arc::new(SqliteStore::open(&dir.join("m.db")).await.unwrap());
        let account = "123456789012".to_string();
        let region = "us-east-1".to_string();
        let access = Arc::new(Access::new(store.clone(), account.clone(), region.clone()));
        let identity = Arc::new(Identity::new(store, [7; 32], account, region));
        (Iam::new(access.clone(), identity), access)
    }

    fn user(name: &str) -> NewUser {
        NewUser {
            name: name.into(),
            path: "/".into(),
            tags: Vec::new(),
        }
    }

    #[test]
    fn messages_are_iams() {
        let cases: Vec<(IamError, &str)> = vec![
            (
                IamError::no_such(IamKind::Role, "r"),
                "The role with name r cannot be found.",
            ),
            (
                IamError::EntityAlreadyExists {
                    kind: IamKind::User,
                    name: "u".into(),
                },
                "User with name u already exists.",
            ),
            (
                IamError::EntityAlreadyExists {
                    kind: IamKind::Policy,
                    name: "p".into(),
                },
                "A policy called p already exists. Duplicate names are not allowed.",
            ),
            (
                IamError::missing(Missing::InlinePolicy {
                    kind: IamKind::Group,
                    name: "p".into(),
                }),
                "The group policy with name p cannot be found.",
            ),
            (
                IamError::LimitExceeded(Limit::PolicySize(2048)),
                "Cannot exceed quota for PolicySize: 2048",
            ),
            (
                IamError::LimitExceeded(Limit::AccessKeysPerUser),
                "Cannot exceed quota for AccessKeysPerUser: 2",
            ),
            (
                IamError::DeleteConflict(Conflict::of(
                    IamKind::Group,
                    Dependent::Link(LinkKind::Member),
                )),
                "Cannot delete entity, must remove users from group first.",
            ),
            (
                IamError::DeleteConflict(Conflict::of(
                    IamKind::User,
                    Dependent::Link(LinkKind::Member),
                )),
                "Cannot delete entity, must remove user from all groups first.",
            ),
            (
                IamError::AwsManagedPolicy {
                    arn: "arn:aws:iam::aws:policy/X".into(),
                },
                "ARN arn:aws:iam::aws:policy/X is not valid: AWS managed policies cannot be deleted.",
            ),
        ];
        for (error, message) in cases {
            assert_eq!(error.to_string(), message);
        }
    }

    #[tokio::test]
    async fn users_keys_and_what_hangs_on_them() {
        let dir = tempfile::tempdir().unwrap();
        let (iam, _) = iam(dir.path()).await;
        let alice = iam.create_user(user("alice")).await.unwrap();
        assert_eq!(alice.arn, "arn:aws:iam::123456789012:user/alice");
        assert!(matches!(
            iam.create_user(user("ALICE")).await,
            Err(IamError::EntityAlreadyExists { .. })
        ));
        let first = iam.create_access_key(&alice.arn).await.unwrap();
        iam.create_access_key(&alice.arn).await.unwrap();
        assert!(matches!(
            iam.create_access_key(&alice.arn).await,
            Err(IamError::LimitExceeded(Limit::AccessKeysPerUser))
        ));
        assert!(matches!(
            iam.delete_entity(IamKind::User, "alice").await,
            Err(IamError::DeleteConflict(Conflict::AccessKeys))
        ));
        iam.set_access_key_active(&alice.arn, &first.key.id, false)
            .await
            .unwrap();
        assert!(matches!(
            iam.delete_access_key("arn:aws:iam::123456789012:user/bob", &first.key.id)
                .await,
            Err(IamError::NoSuchEntity {
                what: Missing::AccessKey { .. }
            })
        ));
        for key in iam.access_keys(&alice.arn).await.unwrap() {
            iam.delete_access_key(&alice.arn, &key.id).await.unwrap();
        }
        iam.delete_entity(IamKind::User, "alice").await.unwrap();
        assert!(iam.entity(IamKind::User, "alice").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn roles_tags_and_policy_versions() {
        let dir = tempfile::tempdir().unwrap();
        let (iam, _) = iam(dir.path()).await;
        assert!(matches!(
            iam.create_role(NewRole {
                name: "r".into(),
                path: "/".into(),
                trust_document: "{}".into(),
                ..NewRole::default()
            })
            .await,
            Err(IamError::MalformedPolicyDocument(_))
        ));
        let role = iam
            .create_role(NewRole {
                name: "r".into(),
                path: "/ci/".into(),
                trust_document: TRUST.into(),
                description: Some("builds".into()),
                max_session_duration: None,
                tags: vec![("team".into(), "a".into())],
            })
            .await
            .unwrap();
        let details = Details::of(&role);
        assert_eq!(details.max_session_duration, DEFAULT_MAX_SESSION_DURATION);
        assert_eq!(details.description.as_deref(), Some("builds"));
        iam.tag(IamKind::Role, "r", &[("team".into(), "b".into())])
            .await
            .unwrap();
        let many: Vec<(String, String)> = (0..MAX_TAGS)
            .map(|i| (format!("k{i}"), String::new()))
            .collect();
        assert!(matches!(
            iam.tag(IamKind::Role, "r", &many).await,
            Err(IamError::LimitExceeded(Limit::TagsPerResource))
        ));
        iam.untag(IamKind::Role, "r", &["nothing".into()])
            .await
            .unwrap();
        let role = iam.entity(IamKind::Role, "r").await.unwrap().unwrap();
        assert_eq!(
            Details::of(&role).tags,
            vec![("team".to_string(), "b".to_string())]
        );

        let policy = iam
            .create_policy(NewPolicy {
                name: "p".into(),
                path: "/".into(),
                document: ALLOW_ALL.into(),
                ..NewPolicy::default()
            })
            .await
            .unwrap();
        for _ in 1..MAX_VERSIONS {
            iam.create_policy_version(&policy.arn, ALLOW_ALL, true)
                .await
                .unwrap();
        }
        assert!(matches!(
            iam.create_policy_version(&policy.arn, ALLOW_ALL, false)
                .await,
            Err(IamError::LimitExceeded(Limit::PolicyVersions))
        ));
        assert!(matches!(
            iam.delete_policy_version(&policy.arn, "v5").await,
            Err(IamError::DeleteConflict(Conflict::DefaultVersion))
        ));
        assert!(matches!(
            iam.delete_policy(&policy.arn).await,
            Err(IamError::DeleteConflict(Conflict::PolicyVersions))
        ));
        let versions = iam.policy_versions(&policy.arn).await.unwrap();
        assert_eq!(versions.len(), MAX_VERSIONS);
        assert!(versions.last().unwrap().is_default);
        for v in ["v1", "v2", "v3", "v4"] {
            iam.delete_policy_version(&policy.arn, v).await.unwrap();
        }
        iam.attach_policy(IamKind::Role, "r", &policy.arn)
            .await
            .unwrap();
        assert_eq!(iam.policy(&policy.arn).await.unwrap().attachments, 1);
        assert!(matches!(
            iam.delete_policy(&policy.arn).await,
            Err(IamError::DeleteConflict(Conflict::PolicyAttached))
        ));
        iam.detach_policy(IamKind::Role, "r", &policy.arn)
            .await
            .unwrap();
        iam.delete_policy(&policy.arn).await.unwrap();
    }

    #[tokio::test]
    async fn changes_show_in_decisions_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let (iam, access) = iam(dir.path()).await;
        let alice = iam.create_user(user("alice")).await.unwrap();
        let principal = Principal {
            arn: alice.arn.clone(),
            access_key_id: "AKIAALICE".into(),
            kind: PrincipalKind::User {
                name: "alice".into(),
            },
            session_policy: None,
            expires_at: None,
        };
        let check = || async {
            access
                .check(
                    Some(&principal),
                    "ecr:DescribeRepositories",
                    "*",
                    None,
                    &RequestFacts::default(),
                )
                .await
                .is_ok()
        };
        // Denied, and the decision's inputs are now cached.
        assert!(!check().await);
        iam.put_inline_policy(IamKind::User, "alice", "all", ALLOW_ALL)
            .await
            .unwrap();
        assert!(check().await);
        iam.delete_inline_policy(IamKind::User, "alice", "all")
            .await
            .unwrap();
        assert!(!check().await);
        iam.attach_policy(
            IamKind::User,
            "alice",
            "arn:aws:iam::aws:policy/AdministratorAccess",
        )
        .await
        .unwrap();
        assert!(check().await);
    }
}
