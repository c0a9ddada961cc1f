//! Who may do what: IAM entities (users, groups, roles, managed policies),
//! the links between them, access keys and temporary credentials, and the
//! resource policies on repositories and the registry.
//!
//! The statements are plain SQL that SQLite and PostgreSQL both accept
//! (`$n` parameters, `BIGINT`-sized integers, text), so one implementation
//! serves both backends through [`impl_access_store`].

use async_trait::async_trait;
use berth_core::RepositoryName;

use crate::Result;

/// The kinds of IAM entity berth keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IamKind {
    User,
    Group,
    Role,
    /// A customer managed policy (AWS managed policies are built in, not stored).
    Policy,
}

impl IamKind {
    pub fn as_str(self) -> &'static str {
        match self {
            IamKind::User => "user",
            IamKind::Group => "group",
            IamKind::Role => "role",
            IamKind::Policy => "policy",
        }
    }

    /// How links name an entity of this kind: `user:<lower-case name>`. IAM
    /// names are unique without regard to case.
    pub fn key(self, name: &str) -> String {
        format!("{}:{}", self.as_str(), name.to_lowercase())
    }
}

/// A user, group, role or customer managed policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IamEntity {
    pub kind: IamKind,
    pub name: String,
    /// `AIDA…`, `AGPA…`, `AROA…`, `ANPA…`.
    pub id: String,
    pub path: String,
    pub arn: String,
    pub created_at: i64,
    /// A role's trust policy, a managed policy's document.
    pub document: Option<String>,
    /// Everything else, as JSON (description, tags, maximum session duration …).
    pub attributes: String,
}

/// The relations between entities.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkKind {
    /// A user (subject) in a group (object, `group:<name>`).
    Member,
    /// A managed policy (object, its ARN) attached to a user, group or role.
    Attached,
    /// An inline policy (object, its name; the link holds the document).
    Inline,
}

impl LinkKind {
    fn as_str(self) -> &'static str {
        match self {
            LinkKind::Member => "member",
            LinkKind::Attached => "attached",
            LinkKind::Inline => "inline",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<LinkKind> {
        Some(match s {
            "member" => LinkKind::Member,
            "attached" => LinkKind::Attached,
            "inline" => LinkKind::Inline,
            _ => return None,
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IamLink {
    pub kind: LinkKind,
    /// `IamKind::key` of the user, group or role.
    pub subject: String,
    pub object: String,
    pub document: Option<String>,
}

/// What still hangs on an entity that cannot be deleted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dependent {
    AccessKeys,
    Link(LinkKind),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeleteEntityOutcome {
    Deleted,
    NotFound,
    Conflict(Dependent),
}

/// An access key: its sealed secret and the principal it authenticates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessKeyRecord {
    pub id: String,
    /// The secret, sealed by the identity service; the store never sees it in clear.
    pub sealed_secret: Vec<u8>,
    /// The principal's ARN.
    pub principal: String,
    pub active: bool,
    pub created_at: i64,
    /// Temporary credentials only: when they stop working (Unix milliseconds),
    /// the SHA-256 of their session token, and the session policy that narrows them.
    pub expires_at: Option<i64>,
    pub session_token_hash: Option<String>,
    pub session_policy: Option<String>,
}

/// The store of identities, credentials and resource policies.
#[async_trait]
pub trait AccessStore: Send + Sync + 'static {
    /// Stores an access key, replacing one with the same id.
    async fn put_access_key(&self, key: &AccessKeyRecord) -> Result<()>;
    async fn get_access_key(&self, id: &str) -> Result<Option<AccessKeyRecord>>;
    /// The long-term keys of `principal` (an ARN), oldest first.
    async fn list_access_keys(&self, principal: &str) -> Result<Vec<AccessKeyRecord>>;
    async fn delete_access_key(&self, id: &str) -> Result<bool>;
    /// Forgets temporary credentials that expired before `cutoff` (ms).
    async fn delete_expired_access_keys(&self, cutoff: i64) -> Result<u64>;
    /// How many temporary credentials of `principal` are still live at `now`
    /// (ms). `principal` is an ARN, or an ARN prefix ending in `/` (every
    /// session of a role).
    async fn count_live_temporary_keys(&self, principal: &str, now: i64) -> Result<u64>;

    /// False if an entity of that kind and name (in any case) exists.
    async fn create_iam_entity(&self, entity: &IamEntity) -> Result<bool>;
    async fn get_iam_entity(&self, kind: IamKind, name: &str) -> Result<Option<IamEntity>>;
    /// Replaces document and attributes; false if the entity does not exist.
    async fn update_iam_entity(&self, entity: &IamEntity) -> Result<bool>;
    /// Entities of `kind` after the name `after` (lower-cased order), at most `limit`.
    async fn list_iam_entities(
        &self,
        kind: IamKind,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<IamEntity>>;
    /// Deletes an entity that nothing hangs on (no access keys, memberships,
    /// attached or inline policies, attachments of it).
    async fn delete_iam_entity(&self, kind: IamKind, name: &str) -> Result<DeleteEntityOutcome>;

    /// Adds or replaces a link if every entity in `requires` exists; false otherwise.
    async fn put_iam_link(&self, link: &IamLink, requires: &[(IamKind, &str)]) -> Result<bool>;
    async fn delete_iam_link(&self, kind: LinkKind, subject: &str, object: &str) -> Result<bool>;
    /// Links of `kind`, filtered by subject and/or object, ordered by object.
    async fn list_iam_links(
        &self,
        kind: LinkKind,
        subject: Option<&str>,
        object: Option<&str>,
    ) -> Result<Vec<IamLink>>;

    /// A repository's policy: `None` if the repository does not exist.
    async fn get_repository_policy(&self, name: &RepositoryName) -> Result<Option<Option<String>>>;
    /// Sets or (with `None`) removes it; false if the repository does not exist.
    async fn set_repository_policy(
        &self,
        name: &RepositoryName,
        policy: Option<&str>,
    ) -> Result<bool>;
    /// A registry-wide setting (the registry policy …).
    async fn get_setting(&self, name: &str) -> Result<Option<String>>;
    /// Sets or (with `None`) removes a setting; false if there was nothing to remove.
    async fn put_setting(&self, name: &str, value: Option<&str>) -> Result<bool>;
    /// Adds a setting that is not there yet: false (and nothing changed) if it is.
    async fn insert_setting(&self, name: &str, value: &str) -> Result<bool>;
    /// The settings whose names start with `prefix`, in name order.
    async fn settings_with_prefix(&self, prefix: &str) -> Result<Vec<(String, String)>>;
}

pub(crate) type AccessKeyRow = (
    String,
    Vec<u8>,
    String,
    String,
    i64,
    Option<i64>,
    Option<String>,
    Option<String>,
);
pub(crate) const ACCESS_KEY_COLUMNS: &str =
    "id, secret, principal, status, created_at, expires_at, session_token_hash, session_policy";

pub(crate) fn access_key_from_row(row: AccessKeyRow) -> AccessKeyRecord {
    let (id, sealed_secret, principal, status, created_at, expires_at, hash, policy) = row;
    AccessKeyRecord {
        id,
        sealed_secret,
        principal,
        active: status == "Active",
        created_at,
        expires_at,
        session_token_hash: hash,
        session_policy: policy,
    }
}

pub(crate) type EntityRow = (
    String,
    String,
    String,
    String,
    String,
    i64,
    Option<String>,
    String,
);
pub(crate) const ENTITY_COLUMNS: &str =
    "kind, name, id, path, arn, created_at, document, attributes";

pub(crate) fn entity_from_row(row: EntityRow) -> Result<IamEntity> {
    let (kind, name, id, path, arn, created_at, document, attributes) = row;
    let kind = match kind.as_str() {
        "user" => IamKind::User,
        "group" => IamKind::Group,
        "role" => IamKind::Role,
        "policy" => IamKind::Policy,
        other => {
            return Err(crate::StoreError::Database(format!(
                "corrupt IAM entity kind: {other}"
            )));
        }
    };
    Ok(IamEntity {
        kind,
        name,
        id,
        path,
        arn,
        created_at,
        document,
        attributes,
    })
}

pub(crate) fn link_from_row(row: (String, String, String, Option<String>)) -> Result<IamLink> {
    let (kind, subject, object, document) = row;
    Ok(IamLink {
        kind: LinkKind::parse(&kind)
            .ok_or_else(|| crate::StoreError::Database(format!("corrupt IAM link kind: {kind}")))?,
        subject,
        object,
        document,
    })
}

pub(crate) fn link_kind_str(kind: LinkKind) -> &'static str {
    kind.as_str()
}

/// Implements [`AccessStore`] for a backend whose pools are `$write` (for
/// statements that change data) and `$read`.
macro_rules! impl_access_store {
    ($store:ty, $write:ident, $read:ident) => {
        #[async_trait::async_trait]
        impl $crate::access::AccessStore for $store {
            async fn put_access_key(&self, key: &$crate::access::AccessKeyRecord) -> $crate::Result<()> {
                sqlx::query(
                    "INSERT INTO access_keys (id, secret, principal, status, created_at, expires_at, session_token_hash, session_policy)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                     ON CONFLICT (id) DO UPDATE SET secret = excluded.secret, principal = excluded.principal,
                         status = excluded.status, expires_at = excluded.expires_at,
                         session_token_hash = excluded.session_token_hash, session_policy = excluded.session_policy",
                )
                .bind(&key.id)
                .bind(&key.sealed_secret)
                .bind(&key.principal)
                .bind(if key.active { "Active" } else { "Inactive" })
                .bind(key.created_at)
                .bind(key.expires_at)
                .bind(&key.session_token_hash)
                .bind(&key.session_policy)
                .execute(&self.$write)
                .await?;
                Ok(())
            }

            async fn get_access_key(&self, id: &str) -> $crate::Result<Option<$crate::access::AccessKeyRecord>> {
                let row: Option<$crate::access::AccessKeyRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {} FROM access_keys WHERE id = $1",
                    $crate::access::ACCESS_KEY_COLUMNS
                )))
                .bind(id)
                .fetch_optional(&self.$read)
                .await?;
                Ok(row.map($crate::access::access_key_from_row))
            }

            async fn list_access_keys(&self, principal: &str) -> $crate::Result<Vec<$crate::access::AccessKeyRecord>> {
                let rows: Vec<$crate::access::AccessKeyRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {} FROM access_keys WHERE principal = $1 AND expires_at IS NULL ORDER BY created_at, id",
                    $crate::access::ACCESS_KEY_COLUMNS
                )))
                .bind(principal)
                .fetch_all(&self.$read)
                .await?;
                Ok(rows.into_iter().map($crate::access::access_key_from_row).collect())
            }

            async fn delete_access_key(&self, id: &str) -> $crate::Result<bool> {
                let done = sqlx::query("DELETE FROM access_keys WHERE id = $1")
                    .bind(id)
                    .execute(&self.$write)
                    .await?;
                Ok(done.rows_affected() > 0)
            }

            async fn delete_expired_access_keys(&self, cutoff: i64) -> $crate::Result<u64> {
                let done = sqlx::query("DELETE FROM access_keys WHERE expires_at < $1")
                    .bind(cutoff)
                    .execute(&self.$write)
                    .await?;
                Ok(done.rows_affected())
            }

            async fn count_live_temporary_keys(&self, principal: &str, now: i64) -> $crate::Result<u64> {
                // A prefix is compared over its length; an ARN over the whole column.
                let length = if principal.ends_with('/') { principal.chars().count() as i32 } else { i32::MAX };
                let (count,): (i64,) = sqlx::query_as(
                    "SELECT COUNT(*) FROM access_keys
                     WHERE expires_at > $1 AND substr(principal, 1, $2) = $3",
                )
                .bind(now)
                .bind(length)
                .bind(principal)
                .fetch_one(&self.$read)
                .await?;
                Ok(count as u64)
            }

            async fn create_iam_entity(&self, e: &$crate::access::IamEntity) -> $crate::Result<bool> {
                let done = sqlx::query(
                    "INSERT INTO iam_entities (kind, key, name, id, path, arn, created_at, document, attributes)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (kind, key) DO NOTHING",
                )
                .bind(e.kind.as_str())
                .bind(e.name.to_lowercase())
                .bind(&e.name)
                .bind(&e.id)
                .bind(&e.path)
                .bind(&e.arn)
                .bind(e.created_at)
                .bind(&e.document)
                .bind(&e.attributes)
                .execute(&self.$write)
                .await?;
                Ok(done.rows_affected() > 0)
            }

            async fn get_iam_entity(
                &self,
                kind: $crate::access::IamKind,
                name: &str,
            ) -> $crate::Result<Option<$crate::access::IamEntity>> {
                let row: Option<$crate::access::EntityRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {} FROM iam_entities WHERE kind = $1 AND key = $2",
                    $crate::access::ENTITY_COLUMNS
                )))
                .bind(kind.as_str())
                .bind(name.to_lowercase())
                .fetch_optional(&self.$read)
                .await?;
                row.map($crate::access::entity_from_row).transpose()
            }

            async fn update_iam_entity(&self, e: &$crate::access::IamEntity) -> $crate::Result<bool> {
                let done = sqlx::query(
                    "UPDATE iam_entities SET document = $1, attributes = $2 WHERE kind = $3 AND key = $4",
                )
                .bind(&e.document)
                .bind(&e.attributes)
                .bind(e.kind.as_str())
                .bind(e.name.to_lowercase())
                .execute(&self.$write)
                .await?;
                Ok(done.rows_affected() > 0)
            }

            async fn list_iam_entities(
                &self,
                kind: $crate::access::IamKind,
                after: Option<&str>,
                limit: u32,
            ) -> $crate::Result<Vec<$crate::access::IamEntity>> {
                let rows: Vec<$crate::access::EntityRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {} FROM iam_entities WHERE kind = $1 AND key > $2 ORDER BY key LIMIT $3",
                    $crate::access::ENTITY_COLUMNS
                )))
                .bind(kind.as_str())
                .bind(after.map(str::to_lowercase).unwrap_or_default())
                .bind(i64::from(limit))
                .fetch_all(&self.$read)
                .await?;
                rows.into_iter().map($crate::access::entity_from_row).collect()
            }

            async fn delete_iam_entity(
                &self,
                kind: $crate::access::IamKind,
                name: &str,
            ) -> $crate::Result<$crate::access::DeleteEntityOutcome> {
                use $crate::access::{DeleteEntityOutcome, Dependent, LinkKind};
                let mut tx = self.begin_write().await?;
                let arn: Option<(String,)> =
                    sqlx::query_as("SELECT arn FROM iam_entities WHERE kind = $1 AND key = $2")
                        .bind(kind.as_str())
                        .bind(name.to_lowercase())
                        .fetch_optional(&mut *tx)
                        .await?;
                let Some((arn,)) = arn else {
                    return Ok(DeleteEntityOutcome::NotFound);
                };
                let keys: Option<(String,)> = sqlx::query_as(
                    "SELECT id FROM access_keys WHERE principal = $1 AND expires_at IS NULL LIMIT 1",
                )
                .bind(&arn)
                .fetch_optional(&mut *tx)
                .await?;
                if keys.is_some() {
                    return Ok(DeleteEntityOutcome::Conflict(Dependent::AccessKeys));
                }
                let key = kind.key(name);
                // A policy is the object of its attachments; a group, of its memberships.
                let object = if kind == $crate::access::IamKind::Policy { arn.clone() } else { key.clone() };
                let link: Option<(String,)> = sqlx::query_as(
                    "SELECT kind FROM iam_links WHERE subject = $1 OR object = $2 ORDER BY kind LIMIT 1",
                )
                .bind(&key)
                .bind(&object)
                .fetch_optional(&mut *tx)
                .await?;
                if let Some((link,)) = link {
                    let kind = LinkKind::parse(&link).ok_or_else(|| {
                        $crate::StoreError::Database(format!("corrupt IAM link kind: {link}"))
                    })?;
                    return Ok(DeleteEntityOutcome::Conflict(Dependent::Link(kind)));
                }
                sqlx::query("DELETE FROM iam_entities WHERE kind = $1 AND key = $2")
                    .bind(kind.as_str())
                    .bind(name.to_lowercase())
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(DeleteEntityOutcome::Deleted)
            }

            async fn put_iam_link(
                &self,
                link: &$crate::access::IamLink,
                requires: &[($crate::access::IamKind, &str)],
            ) -> $crate::Result<bool> {
                let mut tx = self.begin_write().await?;
                for (kind, name) in requires {
                    let found: Option<(String,)> =
                        sqlx::query_as("SELECT kind FROM iam_entities WHERE kind = $1 AND key = $2")
                            .bind(kind.as_str())
                            .bind(name.to_lowercase())
                            .fetch_optional(&mut *tx)
                            .await?;
                    if found.is_none() {
                        return Ok(false);
                    }
                }
                sqlx::query(
                    "INSERT INTO iam_links (kind, subject, object, document) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (kind, subject, object) DO UPDATE SET document = excluded.document",
                )
                .bind($crate::access::link_kind_str(link.kind))
                .bind(&link.subject)
                .bind(&link.object)
                .bind(&link.document)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(true)
            }

            async fn delete_iam_link(
                &self,
                kind: $crate::access::LinkKind,
                subject: &str,
                object: &str,
            ) -> $crate::Result<bool> {
                let done = sqlx::query(
                    "DELETE FROM iam_links WHERE kind = $1 AND subject = $2 AND object = $3",
                )
                .bind($crate::access::link_kind_str(kind))
                .bind(subject)
                .bind(object)
                .execute(&self.$write)
                .await?;
                Ok(done.rows_affected() > 0)
            }

            async fn list_iam_links(
                &self,
                kind: $crate::access::LinkKind,
                subject: Option<&str>,
                object: Option<&str>,
            ) -> $crate::Result<Vec<$crate::access::IamLink>> {
                let rows: Vec<(String, String, String, Option<String>)> = sqlx::query_as(
                    "SELECT kind, subject, object, document FROM iam_links
                     WHERE kind = $1 AND ($2 IS NULL OR subject = $2) AND ($3 IS NULL OR object = $3)
                     ORDER BY object, subject",
                )
                .bind($crate::access::link_kind_str(kind))
                .bind(subject)
                .bind(object)
                .fetch_all(&self.$read)
                .await?;
                rows.into_iter().map($crate::access::link_from_row).collect()
            }

            async fn get_repository_policy(
                &self,
                name: &berth_core::RepositoryName,
            ) -> $crate::Result<Option<Option<String>>> {
                let row: Option<(Option<String>,)> =
                    sqlx::query_as("SELECT policy FROM repositories WHERE name = $1")
                        .bind(name.as_str())
                        .fetch_optional(&self.$read)
                        .await?;
                Ok(row.map(|(policy,)| policy))
            }

            async fn set_repository_policy(
                &self,
                name: &berth_core::RepositoryName,
                policy: Option<&str>,
            ) -> $crate::Result<bool> {
                let done = sqlx::query("UPDATE repositories SET policy = $1 WHERE name = $2")
                    .bind(policy)
                    .bind(name.as_str())
                    .execute(&self.$write)
                    .await?;
                Ok(done.rows_affected() > 0)
            }

            async fn get_setting(&self, name: &str) -> $crate::Result<Option<String>> {
                let row: Option<(String,)> = sqlx::query_as("SELECT value FROM settings WHERE name = $1")
                    .bind(name)
                    .fetch_optional(&self.$read)
                    .await?;
                Ok(row.map(|(value,)| value))
            }

            async fn put_setting(&self, name: &str, value: Option<&str>) -> $crate::Result<bool> {
                let done = match value {
                    Some(value) => sqlx::query(
                        "INSERT INTO settings (name, value) VALUES ($1, $2)
                         ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                    )
                    .bind(name)
                    .bind(value)
                    .execute(&self.$write)
                    .await?,
                    None => sqlx::query("DELETE FROM settings WHERE name = $1")
                        .bind(name)
                        .execute(&self.$write)
                        .await?,
                };
                Ok(done.rows_affected() > 0)
            }

            async fn insert_setting(&self, name: &str, value: &str) -> $crate::Result<bool> {
                let done = sqlx::query(
                    "INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
                )
                .bind(name)
                .bind(value)
                .execute(&self.$write)
                .await?;
                Ok(done.rows_affected() > 0)
            }

            async fn settings_with_prefix(
                &self,
                prefix: &str,
            ) -> $crate::Result<Vec<(String, String)>> {
                // Not LIKE: names may hold `%` and `_`. The table is small.
                Ok(sqlx::query_as(
                    "SELECT name, value FROM settings WHERE substr(name, 1, $2) = $1 ORDER BY name",
                )
                .bind(prefix)
                .bind(i32::try_from(prefix.chars().count()).unwrap_or(i32::MAX))
                .fetch_all(&self.$read)
                .await?)
            }
        }
    };
}

pub(crate) use impl_access_store;
