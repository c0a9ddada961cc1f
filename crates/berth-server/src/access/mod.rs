//! Authorization: every ECR operation, every `/v2/` request and every IAM
//! call is decided here, by `berth_core::policy`, from the caller's identity
//! policies, the resource's policy and the request's context.
//!
//! What a caller may do is read from the store once and then trusted for a
//! few seconds (as credentials are), so that a busy client costs no store
//! round trip per request. Changes made through this node show at once; on
//! other nodes within [`CACHE_SECONDS`].

pub mod managed;
pub mod policies;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use berth_core::RepositoryName;
use berth_core::policy::{self, Caller, Context, Decision, Policies, Policy, PolicyKind};
use berth_store::{AccessStore, IamKind, LinkKind, MetadataStore, StoreError};

use crate::identity::{Principal, PrincipalKind};
use managed::managed_policy;

/// How long permissions and resource policies are trusted without reading the store.
pub const CACHE_SECONDS: i64 = 10;
/// Entries kept at most per cache; it starts over past it.
const CACHE_ENTRIES: usize = 10_000;

/// The registry policy's setting name.
pub const REGISTRY_POLICY: &str = "registry-policy";

/// Actions a registry policy governs (replication and pull-through cache), as on ECR.
const REGISTRY_POLICY_ACTIONS: &[&str] = &[
    "ecr:ReplicateImage",
    "ecr:BatchImportUpstreamImage",
    "ecr:CreateRepository",
];

#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    /// Not allowed; the message says who, what and on which resource.
    #[error("{0}")]
    Denied(String),
    #[error("internal error: {0}")]
    Internal(#[from] StoreError),
}

/// Facts about the request itself that conditions may test.
#[derive(Clone, Debug, Default)]
pub struct RequestFacts {
    pub source_ip: Option<IpAddr>,
    pub secure: bool,
    /// Tags the request sets (`aws:RequestTag/…`, and their keys in `aws:TagKeys`).
    pub request_tags: Vec<(String, String)>,
    /// Tag keys the request removes (in `aws:TagKeys`).
    pub tag_keys: Vec<String>,
}

/// What a caller's identity grants, resolved from the store.
struct Permissions {
    policies: Vec<Policy>,
    root: bool,
    session: Option<Policy>,
    caller: Caller,
    /// `aws:username`, `aws:userid`, `aws:PrincipalTag/…` …
    context: Context,
}

/// A repository's policy and resource tags.
#[derive(Default)]
struct RepositoryAccess {
    policy: Option<Policy>,
    tags: Vec<(String, String)>,
}

type Cache<T> = Mutex<HashMap<String, (Arc<T>, i64)>>;

pub struct Access {
    store: Arc<dyn MetadataStore>,
    pub account_id: String,
    pub region: String,
    permissions: Cache<Permissions>,
    repositories: Cache<RepositoryAccess>,
    registry_policy: Cache<Option<Policy>>,
}

fn cached<T>(cache: &Cache<T>, key: &str, now: i64) -> Option<Arc<T>> {
    let entries = cache.lock().expect("cache lock");
    entries
        .get(key)
        .filter(|(_, until)| now < *until)
        .map(|(value, _)| value.clone())
}

fn remember<T>(cache: &Cache<T>, key: &str, value: Arc<T>, now: i64) {
    let mut entries = cache.lock().expect("cache lock");
    if entries.len() >= CACHE_ENTRIES {
        entries.clear();
    }
    entries.insert(key.to_string(), (value, now + CACHE_SECONDS));
}

/// Parses a stored document; one that no longer parses (it was checked when
/// stored) grants nothing and is logged.
fn stored_policy(text: &str, kind: PolicyKind, what: &str) -> Option<Policy> {
    match Policy::parse(text, kind) {
        Ok(policy) => Some(policy),
        Err(e) => {
            tracing::error!(policy = what, error = %e, "a stored policy does not parse; ignored");
            None
        }
    }
}

impl Access {
    pub fn new(store: Arc<dyn MetadataStore>, account_id: String, region: String) -> Access {
        Access {
            store,
            account_id,
            region,
            permissions: Mutex::default(),
            repositories: Mutex::default(),
            registry_policy: Mutex::default(),
        }
    }

    /// Where identities, credentials and policies are kept.
    pub fn store(&self) -> &dyn AccessStore {
        &*self.store
    }

    pub fn repository_arn(&self, name: &str) -> String {
        format!(
            "arn:aws:ecr:{}:{}:repository/{name}",
            self.region, self.account_id
        )
    }

    /// Forgets what was read about identities and policies, after a change.
    pub fn forget(&self) {
        self.permissions.lock().expect("cache lock").clear();
        self.repositories.lock().expect("cache lock").clear();
        self.registry_policy.lock().expect("cache lock").clear();
    }

    /// Forgets the registry policy read, after it changed.
    pub fn forget_registry_policy(&self) {
        self.registry_policy.lock().expect("cache lock").clear();
    }

    /// Forgets what was read about repository `name` (its policy and tags),
    /// after it was created, deleted or retagged.
    pub fn forget_repository(&self, name: &RepositoryName) {
        self.repositories
            .lock()
            .expect("cache lock")
            .remove(name.as_str());
    }

    /// Decides whether `principal` (`None`: anonymous) may do `action` on
    /// `resource` (an ARN, or `*`). `repository` brings its policy and tags
    /// into the decision.
    pub async fn check(
        &self,
        principal: Option<&Principal>,
        action: &str,
        resource: &str,
        repository: Option<&RepositoryName>,
        facts: &RequestFacts,
    ) -> Result<(), AccessError> {
        self.check_with(principal, action, resource, repository, None, facts)
            .await
    }

    /// As [`Access::check`]; `trust` is the trust policy of a role being
    /// assumed, which must admit the caller (see [`Policies::trust`]).
    pub async fn check_with(
        &self,
        principal: Option<&Principal>,
        action: &str,
        resource: &str,
        repository: Option<&RepositoryName>,
        trust: Option<&Policy>,
        facts: &RequestFacts,
    ) -> Result<(), AccessError> {
        match principal.map(|p| &p.kind) {
            // Authorized when the URL was issued.
            Some(PrincipalKind::Presigned) => return Ok(()),
            // A key whose principal berth does not recognise is allowed nothing.
            Some(PrincipalKind::Unknown) => {
                return Err(AccessError::Denied(format!(
                    "User: {} is not authorized to perform: {action} on resource: {resource}",
                    principal.map_or("", |p| p.arn.as_str())
                )));
            }
            _ => {}
        }
        let now = berth_store::now_millis() / 1000;
        let permissions = match principal {
            Some(p) => Some(self.permissions(p, now).await?),
            None => None,
        };
        let repository = match repository {
            Some(name) => Some(self.repository_access(name, now).await?),
            None => None,
        };
        let registry = if REGISTRY_POLICY_ACTIONS.contains(&action) {
            self.registry_policy(now).await?
        } else {
            Arc::new(None)
        };

        let mut context = permissions
            .as_ref()
            .map(|p| p.context.clone())
            .unwrap_or_default();
        if let Some(ip) = facts.source_ip {
            context.set("aws:SourceIp", &ip.to_string());
        }
        context.set(
            "aws:SecureTransport",
            if facts.secure { "true" } else { "false" },
        );
        context.set("aws:CurrentTime", &humantime_now());
        context.set("aws:EpochTime", &now.to_string());
        context.set("aws:RequestedRegion", &self.region);
        if let Some(repository) = &repository {
            for (key, value) in &repository.tags {
                context.set(&format!("aws:ResourceTag/{key}"), value);
                context.set(&format!("ecr:ResourceTag/{key}"), value);
            }
        }
        for (key, value) in &facts.request_tags {
            context.set(&format!("aws:RequestTag/{key}"), value);
        }
        let tag_keys: Vec<String> = facts
            .request_tags
            .iter()
            .map(|(k, _)| k.clone())
            .chain(facts.tag_keys.iter().cloned())
            .collect();
        if !tag_keys.is_empty() {
            context.set_list("aws:TagKeys", tag_keys);
        }

        let mut resource_policies: Vec<&Policy> = Vec::new();
        if let Some(policy) = repository.as_ref().and_then(|r| r.policy.as_ref()) {
            resource_policies.push(policy);
        }
        if let Some(policy) = registry.as_ref() {
            resource_policies.push(policy);
        }
        let resource_policies: Vec<Policy> = resource_policies.into_iter().cloned().collect();
        let policies = Policies {
            identity: permissions.as_ref().map_or(&[], |p| p.policies.as_slice()),
            root: permissions.as_ref().is_some_and(|p| p.root),
            session: permissions.as_ref().and_then(|p| p.session.as_ref()),
            resource: &resource_policies,
            trust,
        };
        let request = policy::Request {
            action,
            resource,
            caller: permissions.as_ref().map(|p| &p.caller),
            context: &context,
        };
        let decision = policy::authorize(&policies, &request);
        if decision == Decision::Allow {
            return Ok(());
        }
        let who = match principal {
            Some(p) => format!("User: {}", p.arn),
            None => "Anonymous user".to_string(),
        };
        let why = match decision {
            Decision::ExplicitDeny => "with an explicit deny".to_string(),
            _ if policies.session.is_some() => {
                format!("because no session policy allows the {action} action")
            }
            _ => format!("because no identity-based policy allows the {action} action"),
        };
        Err(AccessError::Denied(format!(
            "{who} is not authorized to perform: {action} on resource: {resource} {why}"
        )))
    }

    async fn permissions(
        &self,
        principal: &Principal,
        now: i64,
    ) -> Result<Arc<Permissions>, StoreError> {
        // By access key (a role session's policy is its key's); a principal
        // without one (a console password's) by its ARN, never shared.
        let key = if principal.access_key_id.is_empty() {
            format!("arn:{}", principal.arn)
        } else {
            principal.access_key_id.clone()
        };
        if let Some(permissions) = cached(&self.permissions, &key, now) {
            return Ok(permissions);
        }
        let permissions = Arc::new(self.resolve(principal).await?);
        remember(&self.permissions, &key, permissions.clone(), now);
        Ok(permissions)
    }

    /// Reads what `principal`'s identity grants: its own policies, its
    /// groups' (users) or its role's (role sessions).
    async fn resolve(&self, principal: &Principal) -> Result<Permissions, StoreError> {
        let account = self.account_id.clone();
        let mut context = Context::new();
        context.set("aws:PrincipalAccount", &account);
        let mut caller = Caller {
            arn: principal.arn.clone(),
            account: account.clone(),
            role_arn: None,
        };
        let mut holders = Vec::new();
        let mut root = false;
        match &principal.kind {
            PrincipalKind::Root | PrincipalKind::Presigned | PrincipalKind::Unknown => {
                root = principal.kind == PrincipalKind::Root;
                context.set("aws:userid", &account);
                context.set("aws:PrincipalArn", &principal.arn);
                context.set("aws:PrincipalType", "Account");
            }
            PrincipalKind::User { name } => {
                context.set("aws:username", name);
                context.set("aws:PrincipalArn", &principal.arn);
                context.set("aws:PrincipalType", "User");
                if let Some(user) = self.store.get_iam_entity(IamKind::User, name).await? {
                    context.set("aws:userid", &user.id);
                    set_principal_tags(&mut context, &user.attributes);
                    holders.push(IamKind::User.key(name));
                    for group in self
                        .store
                        .list_iam_links(LinkKind::Member, Some(&IamKind::User.key(name)), None)
                        .await?
                    {
                        holders.push(group.object);
                    }
                }
            }
            PrincipalKind::RoleSession { role, session } => {
                context.set("aws:PrincipalType", "AssumedRole");
                if let Some(entity) = self.store.get_iam_entity(IamKind::Role, role).await? {
                    context.set("aws:userid", &format!("{}:{session}", entity.id));
                    context.set("aws:PrincipalArn", &entity.arn);
                    set_principal_tags(&mut context, &entity.attributes);
                    caller.role_arn = Some(entity.arn);
                    holders.push(IamKind::Role.key(role));
                }
            }
        }
        let mut policies = Vec::new();
        for holder in &holders {
            for inline in self
                .store
                .list_iam_links(LinkKind::Inline, Some(holder), None)
                .await?
            {
                if let Some(text) = &inline.document {
                    policies.extend(stored_policy(text, PolicyKind::Identity, &inline.object));
                }
            }
            for attached in self
                .store
                .list_iam_links(LinkKind::Attached, Some(holder), None)
                .await?
            {
                policies.extend(self.managed_document(&attached.object).await?);
            }
        }
        let session = principal
            .session_policy
            .as_deref()
            .and_then(|text| stored_policy(text, PolicyKind::Identity, "session policy"));
        Ok(Permissions {
            policies,
            root,
            session,
            caller,
            context,
        })
    }

    /// The document of a managed policy: an AWS one built in, or a customer one.
    async fn managed_document(&self, arn: &str) -> Result<Option<Policy>, StoreError> {
        if let Some(aws) = managed_policy(arn) {
            return Ok(stored_policy(aws.document, PolicyKind::Identity, arn));
        }
        let name = arn.rsplit('/').next().unwrap_or(arn);
        let entity = self.store.get_iam_entity(IamKind::Policy, name).await?;
        Ok(entity
            .filter(|e| e.arn == arn)
            .and_then(|e| e.document)
            .and_then(|text| stored_policy(&text, PolicyKind::Identity, arn)))
    }

    async fn repository_access(
        &self,
        name: &RepositoryName,
        now: i64,
    ) -> Result<Arc<RepositoryAccess>, StoreError> {
        if let Some(found) = cached(&self.repositories, name.as_str(), now) {
            return Ok(found);
        }
        let access = match self.store.get_repository(name).await? {
            None => RepositoryAccess::default(),
            Some(record) => RepositoryAccess {
                policy: self
                    .store
                    .get_repository_policy(name)
                    .await?
                    .flatten()
                    .and_then(|text| stored_policy(&text, PolicyKind::Resource, name.as_str())),
                tags: record.tags,
            },
        };
        let access = Arc::new(access);
        remember(&self.repositories, name.as_str(), access.clone(), now);
        Ok(access)
    }

    async fn registry_policy(&self, now: i64) -> Result<Arc<Option<Policy>>, StoreError> {
        if let Some(found) = cached(&self.registry_policy, REGISTRY_POLICY, now) {
            return Ok(found);
        }
        let policy = self
            .store
            .get_setting(REGISTRY_POLICY)
            .await?
            .and_then(|text| stored_policy(&text, PolicyKind::Resource, "registry policy"));
        let policy = Arc::new(policy);
        remember(&self.registry_policy, REGISTRY_POLICY, policy.clone(), now);
        Ok(policy)
    }
}

/// A new IAM entity of account `account`, with a fresh id in IAM's shape
/// (`AIDA…`, `AGPA…`, `AROA…`, `ANPA…`; 21 characters) and its ARN.
pub fn new_entity(
    account: &str,
    kind: IamKind,
    name: &str,
    path: &str,
    document: Option<String>,
    attributes: serde_json::Value,
) -> berth_store::IamEntity {
    let prefix = match kind {
        IamKind::User => "AIDA",
        IamKind::Group => "AGPA",
        IamKind::Role => "AROA",
        IamKind::Policy => "ANPA",
    };
    berth_store::IamEntity {
        kind,
        name: name.to_string(),
        id: crate::identity::random_id(prefix, 21),
        arn: format!("arn:aws:iam::{account}:{}{path}{name}", kind.as_str()),
        path: path.to_string(),
        created_at: berth_store::now_millis(),
        document,
        attributes: attributes.to_string(),
    }
}

/// `aws:PrincipalTag/…` from an entity's attributes (`{"tags": [[k, v], …]}`).
fn set_principal_tags(context: &mut Context, attributes: &str) {
    let Ok(attributes) = serde_json::from_str::<serde_json::Value>(attributes) else {
        return;
    };
    for tag in attributes["tags"].as_array().into_iter().flatten() {
        if let (Some(key), Some(value)) = (tag["Key"].as_str(), tag["Value"].as_str()) {
            context.set(&format!("aws:PrincipalTag/{key}"), value);
        }
    }
}

fn humantime_now() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}
