//! IAM: users and their access keys, groups, roles, managed and inline
//! policies. Each operation needs `iam:<Operation>` on the entity it names.

mod tags;
mod versions;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use berth_core::policy::{Policy, PolicyKind};
use berth_store::{
    AccessKeyRecord, DeleteEntityOutcome, Dependent, IamEntity, IamKind, IamLink, LinkKind,
};
use serde_json::{Value, json};

use super::{Call, QueryError};
use crate::access::managed::{AWS_POLICY_PREFIX, MANAGED_POLICIES, managed_policy};
use crate::access::new_entity;
use crate::identity::PrincipalKind;

/// Long-term access keys per user, as on IAM.
const KEYS_PER_USER: usize = 2;
/// Policy sizes in characters, whitespace excluded, as IAM counts them.
const MANAGED_POLICY_SIZE: usize = 6144;

pub async fn handle(call: &Call<'_>, action: &str, input: &Value) -> Result<Value, QueryError> {
    let output = match action {
        "CreateUser" => create_user(call, input).await,
        "GetUser" => get_user(call, input).await,
        "ListUsers" => list_entities(call, IamKind::User, input).await,
        "DeleteUser" => delete_entity(call, IamKind::User, input).await,
        "CreateAccessKey" => create_access_key(call, input).await,
        "ListAccessKeys" => list_access_keys(call, input).await,
        "UpdateAccessKey" => update_access_key(call, input).await,
        "DeleteAccessKey" => delete_access_key(call, input).await,
        "CreateGroup" => create_group(call, input).await,
        "GetGroup" => get_group(call, input).await,
        "ListGroups" => list_entities(call, IamKind::Group, input).await,
        "DeleteGroup" => delete_entity(call, IamKind::Group, input).await,
        "AddUserToGroup" => add_user_to_group(call, input).await,
        "RemoveUserFromGroup" => remove_user_from_group(call, input).await,
        "ListGroupsForUser" => list_groups_for_user(call, input).await,
        "CreateRole" => create_role(call, input).await,
        "GetRole" => get_role(call, input).await,
        "ListRoles" => list_entities(call, IamKind::Role, input).await,
        "DeleteRole" => delete_entity(call, IamKind::Role, input).await,
        "UpdateAssumeRolePolicy" => update_assume_role_policy(call, input).await,
        "CreatePolicy" => create_policy(call, input).await,
        "GetPolicy" => get_policy(call, input).await,
        "GetPolicyVersion" => versions::get(call, input).await,
        "CreatePolicyVersion" => versions::create(call, input).await,
        "ListPolicyVersions" => versions::list(call, input).await,
        "DeletePolicyVersion" => versions::delete(call, input).await,
        "SetDefaultPolicyVersion" => versions::set_default(call, input).await,
        "ListEntitiesForPolicy" => list_entities_for_policy(call, input).await,
        "TagUser" | "UntagUser" => tags::change(call, IamKind::User, action, input).await,
        "TagRole" | "UntagRole" => tags::change(call, IamKind::Role, action, input).await,
        "ListUserTags" => tags::list(call, IamKind::User, action, input).await,
        "ListRoleTags" => tags::list(call, IamKind::Role, action, input).await,
        "ListPolicies" => list_policies(call, input).await,
        "DeletePolicy" => delete_policy(call, input).await,
        "AttachUserPolicy" | "AttachGroupPolicy" | "AttachRolePolicy" => {
            attach(call, holder_kind(action), input, true).await
        }
        "DetachUserPolicy" | "DetachGroupPolicy" | "DetachRolePolicy" => {
            attach(call, holder_kind(action), input, false).await
        }
        "ListAttachedUserPolicies" | "ListAttachedGroupPolicies" | "ListAttachedRolePolicies" => {
            list_attached(call, holder_kind(action), input).await
        }
        "PutUserPolicy" | "PutGroupPolicy" | "PutRolePolicy" => {
            put_inline(call, holder_kind(action), input).await
        }
        "GetUserPolicy" | "GetGroupPolicy" | "GetRolePolicy" => {
            get_inline(call, holder_kind(action), input).await
        }
        "DeleteUserPolicy" | "DeleteGroupPolicy" | "DeleteRolePolicy" => {
            delete_inline(call, holder_kind(action), input).await
        }
        "ListUserPolicies" | "ListGroupPolicies" | "ListRolePolicies" => {
            list_inline(call, holder_kind(action), input).await
        }
        other => Err(QueryError::new(
            "InvalidAction",
            format!("berth does not support the IAM operation {other} yet"),
        )),
    }?;
    if !action.starts_with("Get") && !action.starts_with("List") {
        // Identities or policies changed: decide afresh from now on.
        call.app.access.forget();
        call.app.identity.forget_checked();
    }
    Ok(output)
}

/// The entity kind an `…UserPolicy`/`…GroupPolicy`/`…RolePolicy` operation is about.
fn holder_kind(action: &str) -> IamKind {
    if action.contains("Group") {
        IamKind::Group
    } else if action.contains("Role") {
        IamKind::Role
    } else {
        IamKind::User
    }
}

fn kind_title(kind: IamKind) -> &'static str {
    match kind {
        IamKind::User => "User",
        IamKind::Group => "Group",
        IamKind::Role => "Role",
        IamKind::Policy => "Policy",
    }
}

fn str_of<'a>(input: &'a Value, member: &str) -> &'a str {
    input[member].as_str().unwrap_or_default()
}

fn seconds(millis: i64) -> Value {
    json!(millis / 1000)
}

fn attributes(entity: &IamEntity) -> Value {
    serde_json::from_str(&entity.attributes).unwrap_or_else(|_| json!({}))
}

/// Policy documents travel URL-encoded in IAM's answers (botocore decodes them).
fn encode_document(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC).to_string()
}

fn no_such(kind: IamKind, name: &str) -> QueryError {
    QueryError::new(
        "NoSuchEntity",
        format!(
            "The {} with name {name} cannot be found.",
            kind_title(kind).to_lowercase()
        ),
    )
}

fn path_of(input: &Value) -> String {
    input["Path"].as_str().unwrap_or("/").to_string()
}

/// Parses a policy document as IAM does, within `limit` characters.
fn checked_policy(text: &str, kind: PolicyKind, limit: usize) -> Result<(), QueryError> {
    let size = text.chars().filter(|c| !c.is_whitespace()).count();
    if size > limit {
        return Err(QueryError::new(
            "LimitExceeded",
            format!("Cannot exceed quota for PolicySize: {limit}"),
        ));
    }
    Policy::parse(text, kind)
        .map(|_| ())
        .map_err(|e| QueryError::new("MalformedPolicyDocument", e.0))
}

impl Call<'_> {
    fn arn(&self, kind: IamKind, path: &str, name: &str) -> String {
        format!(
            "arn:aws:iam::{}:{}{path}{name}",
            self.account(),
            kind.as_str()
        )
    }

    /// Authorizes `iam:Create<Kind>` on the ARN the new entity will have,
    /// its path included.
    async fn authorize_create(
        &self,
        kind: IamKind,
        path: &str,
        name: &str,
    ) -> Result<(), QueryError> {
        let action = format!("iam:Create{}", kind_title(kind));
        self.authorize(&action, &self.arn(kind, path, name)).await
    }

    /// Authorizes `iam:<action>` on the named entity (its ARN with its
    /// path if it exists) and returns the entity if it does.
    async fn authorize_on(
        &self,
        action: &str,
        kind: IamKind,
        name: &str,
    ) -> Result<Option<IamEntity>, QueryError> {
        let entity = self.app.access.store().get_iam_entity(kind, name).await?;
        let arn = entity
            .as_ref()
            .map_or_else(|| self.arn(kind, "/", name), |e| e.arn.clone());
        self.authorize(&format!("iam:{action}"), &arn).await?;
        Ok(entity)
    }

    /// Like `authorize_on`, for operations on an entity that must exist
    /// (`NoSuchEntity` otherwise).
    async fn authorize_existing(
        &self,
        action: &str,
        kind: IamKind,
        name: &str,
    ) -> Result<IamEntity, QueryError> {
        self.authorize_on(action, kind, name)
            .await?
            .ok_or_else(|| no_such(kind, name))
    }

    /// The user an operation names, or the caller when it names none.
    fn user_or_caller<'a>(&'a self, input: &'a Value) -> Result<Option<&'a str>, QueryError> {
        if let Some(name) = input["UserName"].as_str() {
            return Ok(Some(name));
        }
        match &self.principal.kind {
            PrincipalKind::User { name } => Ok(Some(name)),
            PrincipalKind::Root => Ok(None),
            _ => Err(QueryError::new(
                "ValidationError",
                "Must specify userName when calling with non-User credentials",
            )),
        }
    }
}

fn user_json(e: &IamEntity) -> Value {
    let mut user = json!({
        "Path": e.path, "UserName": e.name, "UserId": e.id, "Arn": e.arn,
        "CreateDate": seconds(e.created_at),
    });
    if let Some(tags) = attributes(e)["tags"].as_array().filter(|t| !t.is_empty()) {
        user["Tags"] = json!(tags);
    }
    user
}

fn group_json(e: &IamEntity) -> Value {
    json!({"Path": e.path, "GroupName": e.name, "GroupId": e.id, "Arn": e.arn,
           "CreateDate": seconds(e.created_at)})
}

fn role_json(e: &IamEntity) -> Value {
    let attrs = attributes(e);
    let mut role = json!({
        "Path": e.path, "RoleName": e.name, "RoleId": e.id, "Arn": e.arn,
        "CreateDate": seconds(e.created_at),
        "AssumeRolePolicyDocument": encode_document(e.document.as_deref().unwrap_or("")),
        "MaxSessionDuration": attrs["maxSessionDuration"].as_i64().unwrap_or(3600),
    });
    if let Some(description) = attrs["description"].as_str() {
        role["Description"] = json!(description);
    }
    if let Some(tags) = attrs["tags"].as_array().filter(|t| !t.is_empty()) {
        role["Tags"] = json!(tags);
    }
    role
}

fn entity_json(e: &IamEntity) -> Value {
    match e.kind {
        IamKind::User => user_json(e),
        IamKind::Group => group_json(e),
        IamKind::Role => role_json(e),
        IamKind::Policy => json!({}),
    }
}

/// `MaxItems` and the position a `Marker` holds.
fn page(input: &Value) -> Result<(usize, Option<String>), QueryError> {
    let limit = input["MaxItems"].as_u64().unwrap_or(100) as usize;
    let after = match input["Marker"].as_str() {
        None => None,
        Some(marker) => Some(
            URL_SAFE_NO_PAD
                .decode(marker)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| QueryError::new("ValidationError", "Invalid Marker"))?,
        ),
    };
    Ok((limit, after))
}

/// A page of `items` (sorted by `key`) after `after`: the items and the
/// truncation members of IAM's list answers.
fn paged<T>(
    items: Vec<T>,
    key: impl Fn(&T) -> String,
    limit: usize,
    after: Option<&str>,
) -> (Vec<T>, Value) {
    let mut rest: Vec<T> = items
        .into_iter()
        .filter(|item| after.is_none_or(|a| key(item).as_str() > a))
        .collect();
    let truncated = rest.len() > limit;
    rest.truncate(limit);
    let mut extra = json!({"IsTruncated": truncated});
    if truncated && let Some(last) = rest.last() {
        extra["Marker"] = json!(URL_SAFE_NO_PAD.encode(key(last)));
    }
    (rest, extra)
}

fn merge(mut base: Value, extra: Value) -> Value {
    if let (Some(base), Some(extra)) = (base.as_object_mut(), extra.as_object()) {
        base.extend(extra.clone());
    }
    base
}

/// Tags of a create call, as stored in the entity's attributes.
fn tags_of(input: &Value) -> Value {
    input["Tags"]
        .as_array()
        .cloned()
        .map_or(json!([]), Value::Array)
}

async fn create_entity(
    call: &Call<'_>,
    kind: IamKind,
    name: &str,
    path: String,
    document: Option<String>,
    attributes: Value,
) -> Result<IamEntity, QueryError> {
    let entity = new_entity(call.account(), kind, name, &path, document, attributes);
    if !call.app.access.store().create_iam_entity(&entity).await? {
        let message = match kind {
            IamKind::Policy => {
                format!("A policy called {name} already exists. Duplicate names are not allowed.")
            }
            _ => format!("{} with name {name} already exists.", kind_title(kind)),
        };
        return Err(QueryError::new("EntityAlreadyExists", message));
    }
    Ok(entity)
}

async fn create_user(call: &Call<'_>, input: &Value) -> Result<Value, QueryError> {
    let name = str_of(input, "UserName");
    let path = path_of(input);
    call.authorize_create(IamKind::User, &path, name).await?;
    let user = create_entity(
        call,
        IamKind::User,
        name,
        path,
        None,
        json!({"tags": tags_of(input)}),
    )
    .await?;
    Ok(json!({"User": user_json(&user)}))
}

async fn get_user(call: &Call<'_>, input: &Value) -> Result<Value, QueryError> {
    let Some(name) = call.user_or_caller(input)? else {
        // The root user describes itself.
        call.authorize("iam:GetUser", &call.principal.arn).await?;
        return Ok(json!({"User": {
            "Path": "/", "UserName": "root", "UserId": call.account(),
            "Arn": call.principal.arn, "CreateDate": 0,
        }}));
    };
    let user = call
        .authorize_existing("GetUser", IamKind::User, name)
        .await?;
    Ok(json!({"User": user_json(&user)}))
}

async fn list_entities(call: &Call<'_>, kind: IamKind, input: &Value) -> Result<Value, QueryError> {
    call.authorize(&format!("iam:List{}s", kind_title(kind)), "*")
        .await?;
    let (limit, after) = page(input)?;
    let prefix = input["PathPrefix"].as_str().unwrap_or("/");
    let store = call.app.access.store();
    let mut found = Vec::new();
    let mut position = after.clone();
    // Fetch one more than a page to know whether it is the last; skip other paths.
    while found.len() <= limit {
        let batch = store
            .list_iam_entities(kind, position.as_deref(), 1000)
            .await?;
        let Some(last) = batch.last() else { break };
        position = Some(last.name.to_lowercase());
        found.extend(batch.into_iter().filter(|e| e.path.starts_with(prefix)));
    }
    let (entities, extra) = paged(found, |e| e.name.to_lowercase(), limit, after.as_deref());
    let list: Vec<Value> = entities.iter().map(entity_json).collect();
    Ok(merge(
        json!({format!("{}s", kind_title(kind)): list}),
        extra,
    ))
}

async fn delete_entity(call: &Call<'_>, kind: IamKind, input: &Value) -> Result<Value, QueryError> {
    let name = str_of(input, &format!("{}Name", kind_title(kind)));
    call.authorize_on(&format!("Delete{}", kind_title(kind)), kind, name)
        .await?;
    match call
        .app
        .access
        .store()
        .delete_iam_entity(kind, name)
        .await?
    {
        DeleteEntityOutcome::Deleted => Ok(json!({})),
        DeleteEntityOutcome::NotFound => Err(no_such(kind, name)),
        DeleteEntityOutcome::Conflict(dependent) => Err(delete_conflict(kind, dependent)),
    }
}

fn delete_conflict(kind: IamKind, dependent: Dependent) -> QueryError {
    let message = match (kind, dependent) {
        (_, Dependent::AccessKeys) => "Cannot delete entity, must delete access keys first.",
        (IamKind::Policy, _) => "Cannot delete a policy attached to entities.",
        (IamKind::Group, Dependent::Link(LinkKind::Member)) => {
            "Cannot delete entity, must remove users from group first."
        }
        (_, Dependent::Link(LinkKind::Member)) => {
            "Cannot delete entity, must remove user from all groups first."
        }
        (_, Dependent::Link(LinkKind::Attached)) => {
            "Cannot delete entity, must detach all policies first."
        }
        (_, Dependent::Link(LinkKind::Inline)) => {
            "Cannot delete entity, must delete policies first."
        }
    };
    QueryError::new("DeleteConflict", message)
}

/// The principal ARN whose keys an access key operation is about, and the
/// user name IAM shows with them.
async fn key_owner(
    call: &Call<'_>,
    action: &str,
    input: &Value,
) -> Result<(String, Option<String>), QueryError> {
    match call.user_or_caller(input)? {
        Some(name) => {
            let user = call.authorize_existing(action, IamKind::User, name).await?;
            Ok((user.arn, Some(user.name)))
        }
        None => {
            call.authorize(&format!("iam:{action}"), &call.principal.arn)
                .await?;
            Ok((call.principal.arn.clone(), None))
        }
    }
}

fn key_json(key: &AccessKeyRecord, user: &Option<String>) -> Value {
    let mut json = json!({
        "AccessKeyId": key.id,
        "Status": if key.active { "Active" } else { "Inactive" },
        "CreateDate": seconds(key.created_at),
    });
    if let Some(user) = user {
        json["UserName"] = json!(user);
    }
    json
}

async fn create_access_key(call: &Call<'_>, input: &Value) -> Result<Value, QueryError> {
    let (owner, user) = key_owner(call, "CreateAccessKey", input).await?;
    let store = call.app.access.store();
    if store.list_access_keys(&owner).await?.len() >= KEYS_PER_USER {
        return Err(QueryError::new(
            "LimitExceeded",
            format!("Cannot exceed quota for AccessKeysPerUser: {KEYS_PER_USER}"),
        ));
    }
    let (id, secret) = call.app.identity.create_access_key(&owner).await?;
    let key = store
        .get_access_key(&id)
        .await?
        .ok_or_else(|| QueryError::internal("a new access key vanished"))?;
    let mut json = key_json(&key, &user);
    json["SecretAccessKey"] = json!(secret);
    Ok(json!({"AccessKey": json}))
}

async fn list_access_keys(call: &Call<'_>, input: &Value) -> Result<Value, QueryError> {
    let (owner, user) = key_owner(call, "ListAccessKeys", input).await?;
    let (limit, after) = page(input)?;
    let keys = call.app.access.store().list_access_keys(&owner).await?;
    let (keys, extra) = paged(keys, |k| k.id.clone(), limit, after.as_deref());
    let list: Vec<Value> = keys.iter().map(|k| key_json(k, &user)).collect();
    Ok(merge(json!({"AccessKeyMetadata": list}), extra))
}

/// The access key an operation names, if it belongs to `owner`.
async fn owned_key(
    call: &Call<'_>,
    owner: &str,
    input: &Value,
) -> Result<AccessKeyRecord, QueryError> {
    let id = str_of(input, "AccessKeyId");
    call.app
        .access
        .store()
        .get_access_key(id)
        .await?
        .filter(|k| k.principal == owner && k.expires_at.is_none())
        .ok_or_else(|| {
            QueryError::new(
                "NoSuchEntity",
                format!("The Access Key with id {id} cannot be found."),
            )
        })
}

async fn update_access_key(call: &Call<'_>, input: &Value) -> Result<Value, QueryError> {
    let (owner, _) = key_owner(call, "UpdateAccessKey", input).await?;
    let mut key = owned_key(call, &owner, input).await?;
    key.active = str_of(input, "Status") == "Active";
    call.app.access.store().put_access_key(&key).await?;
    Ok(json!({}))
}

async fn delete_access_key(call: &Call<'_>, input: &Value) -> Result<Value, QueryError> {
    let (owner, _) = key_owner(call, "DeleteAccessKey", input).await?;
    let key = owned_key(call, &owner, input).await?;
    call.app.access.store().delete_access_key(&key.id).await?;
    Ok(json!({}))
}

async fn create_group(call: &Call<'_>, input: &Value) -> Result<Value, QueryError> {
    let name = str_of(input, "GroupName");
    let path = path_of(input);
    call.authorize_create(IamKind::Group, &path, name).await?;
    let group = create_entity(call, IamKind::Group, name, path, None, json!({})).await?;
    Ok(json!({"Group": group_json(&group)}))
}

async fn get_group(call: &Call<'_>, input: &Value) -> Result<Value, QueryError> {
    let name = str_of(input, "GroupName");
    let group = call
        .authorize_existing("GetGroup", IamKind::Group, name)
        .await?;
    let store = call.app.access.store();
    let mut users = Vec::new();
    for link in store
        .list_iam_links(LinkKind::Member, None, Some(&IamKind::Group.key(name)))
        .await?
    {
        let user_name = link.subject.trim_start_matches("user:");
        if let Some(user) = store.get_iam_entity(IamKind::User, user_name).await? {
            users.push(user);
        }
    }
    users.sort_by_key(|u| u.name.to_lowercase());
    let (limit, after) = page(input)?;
    let (users, extra) = paged(users, |u| u.name.to_lowercase(), limit, after.as_deref());
    let list: Vec<Value> = users.iter().map(user_json).collect();
    Ok(merge(
        json!({"Group": group_json(&group), "Users": list}),
        extra,
    ))
}

async fn add_user_to_group(call: &Call<'_>, input: &Value) -> Result<Value, QueryError> {
    let (group, user) = (str_of(input, "GroupName"), str_of(input, "UserName"));
    call.authorize_existing("AddUserToGroup", IamKind::Group, group)
        .await?;
    let link = IamLink {
        kind: LinkKind::Member,
        subject: IamKind::User.key(user),
        object: IamKind::Group.key(group),
        document: None,
    };
    let requires = [(IamKind::User, user), (IamKind::Group, group)];
    if !call
        .app
        .access
        .store()
        .put_iam_link(&link, &requires)
        .await?
    {
        return Err(no_such(IamKind::User, user));
    }
    Ok(json!({}))
}

async fn remove_user_from_group(call: &Call<'_>, input: &Value) -> Result<Value, QueryError> {
    let (group, user) = (str_of(input, "GroupName"), str_of(input, "UserName"));
    call.authorize_existing("RemoveUserFromGroup", IamKind::Group, group)
        .await?;
    let removed = call
        .app
        .access
        .store()
        .delete_iam_link(
            LinkKind::Member,
            &IamKind::User.key(user),
            &IamKind::Group.key(group),
        )
        .await?;
    if !removed {
        return Err(no_such(IamKind::User, user));
    }
    Ok(json!({}))
}

async fn list_groups_for_user(call: &Call<'_>, input: &Value) -> Result<Value, QueryError> {
    let name = str_of(input, "UserName");
    call.authorize_existing("ListGroupsForUser", IamKind::User, name)
        .await?;
    let store = call.app.access.store();
    let mut groups = Vec::new();
    for link in store
        .list_iam_links(LinkKind::Member, Some(&IamKind::User.key(name)), None)
        .await?
    {
        let group_name = link.object.trim_start_matches("group:");
        if let Some(group) = store.get_iam_entity(IamKind::Group, group_name).await? {
            groups.push(group);
        }
    }
    let (limit, after) = page(input)?;
    let (groups, extra) = paged(groups, |g| g.name.to_lowercase(), limit, after.as_deref());
    let list: Vec<Value> = groups.iter().map(group_json).collect();
    Ok(merge(json!({"Groups": list}), extra))
}

async fn create_role(call: &Call<'_>, input: &Value) -> Result<Value, QueryError> {
    let name = str_of(input, "RoleName");
    call.authorize_create(IamKind::Role, &path_of(input), name)
        .await?;
    let trust = str_of(input, "AssumeRolePolicyDocument");
    checked_policy(trust, PolicyKind::Trust, 2048)?;
    let mut attributes = json!({
        "maxSessionDuration": input["MaxSessionDuration"].as_i64().unwrap_or(3600),
        "tags": tags_of(input),
    });
    if let Some(description) = input["Description"].as_str() {
        attributes["description"] = json!(description);
    }
    let role = create_entity(
        call,
        IamKind::Role,
        name,
        path_of(input),
        Some(trust.to_string()),
        attributes,
    )
    .await?;
    Ok(json!({"Role": role_json(&role)}))
}

async fn get_role(call: &Call<'_>, input: &Value) -> Result<Value, QueryError> {
    let name = str_of(input, "RoleName");
    let role = call
        .authorize_existing("GetRole", IamKind::Role, name)
        .await?;
    Ok(json!({"Role": role_json(&role)}))
}

async fn update_assume_role_policy(call: &Call<'_>, input: &Value) -> Result<Value, QueryError> {
    let name = str_of(input, "RoleName");
    let mut role = call
        .authorize_existing("UpdateAssumeRolePolicy", IamKind::Role, name)
        .await?;
    let trust = str_of(input, "PolicyDocument");
    checked_policy(trust, PolicyKind::Trust, 2048)?;
    role.document = Some(trust.to_string());
    call.app.access.store().update_iam_entity(&role).await?;
    Ok(json!({}))
}

/// A customer managed policy's ARN names it by path and name.
fn customer_policy_name(call: &Call<'_>, arn: &str) -> Option<String> {
    let rest = arn.strip_prefix(&format!("arn:aws:iam::{}:policy/", call.account()))?;
    Some(rest.rsplit('/').next().unwrap_or(rest).to_string())
}

async fn attachment_count(call: &Call<'_>, arn: &str) -> Result<usize, QueryError> {
    Ok(call
        .app
        .access
        .store()
        .list_iam_links(LinkKind::Attached, None, Some(arn))
        .await?
        .len())
}

fn customer_policy_json(e: &IamEntity, attachments: usize) -> Value {
    let attrs = attributes(e);
    let versions = versions::Versions::of(e);
    let updated = versions
        .list
        .iter()
        .map(|v| v.created)
        .max()
        .unwrap_or(e.created_at);
    let mut policy = json!({
        "PolicyName": e.name, "PolicyId": e.id, "Arn": e.arn, "Path": e.path,
        "DefaultVersionId": versions.default, "AttachmentCount": attachments,
        "PermissionsBoundaryUsageCount": 0, "IsAttachable": true,
        "CreateDate": seconds(e.created_at), "UpdateDate": seconds(updated),
    });
    if let Some(description) = attrs["description"].as_str() {
        policy["Description"] = json!(description);
    }
    if let Some(tags) = attrs["tags"].as_array().filter(|t| !t.is_empty()) {
        policy["Tags"] = json!(tags);
    }
    policy
}

fn aws_policy_json(p: &crate::access::managed::ManagedPolicy, attachments: usize) -> Value {
    json!({
        "PolicyName": p.name, "PolicyId": p.id, "Arn": p.arn(), "Path": "/",
        "DefaultVersionId": p.version, "AttachmentCount": attachments,
        "PermissionsBoundaryUsageCount": 0, "IsAttachable": true,
        "Description": p.description, "CreateDate": 0, "UpdateDate": 0,
    })
}

fn no_such_policy(arn: &str) -> QueryError {
    QueryError::new(
        "NoSuchEntity",
        format!("Policy {arn} does not exist or is not attachable."),
    )
}

async fn create_policy(call: &Call<'_>, input: &Value) -> Result<Value, QueryError> {
    let name = str_of(input, "PolicyName");
    let path = path_of(input);
    call.authorize_create(IamKind::Policy, &path, name).await?;
    let document = str_of(input, "PolicyDocument");
    checked_policy(document, PolicyKind::Identity, MANAGED_POLICY_SIZE)?;
    let mut attributes = json!({"tags": tags_of(input)});
    if let Some(description) = input["Description"].as_str() {
        attributes["description"] = json!(description);
    }
    let policy = create_entity(
        call,
        IamKind::Policy,
        name,
        path,
        Some(document.to_string()),
        attributes,
    )
    .await?;
    Ok(json!({"Policy": customer_policy_json(&policy, 0)}))
}

/// A customer managed policy by ARN, or `NoSuchEntity`.
async fn customer_policy(call: &Call<'_>, arn: &str) -> Result<IamEntity, QueryError> {
    let name = customer_policy_name(call, arn).ok_or_else(|| no_such_policy(arn))?;
    call.app
        .access
        .store()
        .get_iam_entity(IamKind::Policy, &name)
        .await?
        .filter(|e| e.arn == arn)
        .ok_or_else(|| no_such_policy(arn))
}

async fn get_policy(call: &Call<'_>, input: &Value) -> Result<Value, QueryError> {
    let arn = str_of(input, "PolicyArn");
    call.authorize("iam:GetPolicy", arn).await?;
    let attachments = attachment_count(call, arn).await?;
    if let Some(aws) = managed_policy(arn) {
        return Ok(json!({"Policy": aws_policy_json(aws, attachments)}));
    }
    let policy = customer_policy(call, arn).await?;
    Ok(json!({"Policy": customer_policy_json(&policy, attachments)}))
}

async fn list_policies(call: &Call<'_>, input: &Value) -> Result<Value, QueryError> {
    call.authorize("iam:ListPolicies", "*").await?;
    let scope = input["Scope"].as_str().unwrap_or("All");
    let only_attached = input["OnlyAttached"].as_bool().unwrap_or(false);
    let prefix = input["PathPrefix"].as_str().unwrap_or("/");
    let mut policies: Vec<(String, Value)> = Vec::new();
    if scope != "Local" {
        for aws in MANAGED_POLICIES {
            let attachments = attachment_count(call, &aws.arn()).await?;
            policies.push((aws.arn(), aws_policy_json(aws, attachments)));
        }
    }
    if scope != "AWS" {
        let store = call.app.access.store();
        let mut after: Option<String> = None;
        loop {
            let batch = store
                .list_iam_entities(IamKind::Policy, after.as_deref(), 1000)
                .await?;
            let Some(last) = batch.last() else { break };
            after = Some(last.name.to_lowercase());
            for policy in batch {
                let attachments = attachment_count(call, &policy.arn).await?;
                policies.push((
                    policy.arn.clone(),
                    customer_policy_json(&policy, attachments),
                ));
            }
        }
    }
    policies.retain(|(_, p)| {
        p["Path"].as_str().unwrap_or("/").starts_with(prefix)
            && (!only_attached || p["AttachmentCount"].as_u64().unwrap_or(0) > 0)
    });
    policies.sort_by(|a, b| a.0.cmp(&b.0));
    let (limit, after) = page(input)?;
    let (policies, extra) = paged(policies, |(arn, _)| arn.clone(), limit, after.as_deref());
    let list: Vec<Value> = policies.into_iter().map(|(_, p)| p).collect();
    Ok(merge(json!({"Policies": list}), extra))
}

async fn delete_policy(call: &Call<'_>, input: &Value) -> Result<Value, QueryError> {
    let arn = str_of(input, "PolicyArn");
    call.authorize("iam:DeletePolicy", arn).await?;
    if arn.starts_with(AWS_POLICY_PREFIX) {
        return Err(QueryError::new(
            "InvalidInput",
            format!("ARN {arn} is not valid: AWS managed policies cannot be deleted."),
        ));
    }
    let policy = customer_policy(call, arn).await?;
    if versions::Versions::of(&policy).list.len() > 1 {
        return Err(QueryError::new(
            "DeleteConflict",
            "This policy has more than one version. Before you delete a policy, you must delete the policy's versions. The default version is deleted with the policy.",
        ));
    }
    match call
        .app
        .access
        .store()
        .delete_iam_entity(IamKind::Policy, &policy.name)
        .await?
    {
        DeleteEntityOutcome::Deleted => Ok(json!({})),
        DeleteEntityOutcome::NotFound => Err(no_such_policy(arn)),
        DeleteEntityOutcome::Conflict(dependent) => {
            Err(delete_conflict(IamKind::Policy, dependent))
        }
    }
}

/// The users, groups and roles a managed policy is attached to.
async fn list_entities_for_policy(call: &Call<'_>, input: &Value) -> Result<Value, QueryError> {
    let arn = str_of(input, "PolicyArn");
    call.authorize("iam:ListEntitiesForPolicy", arn).await?;
    if managed_policy(arn).is_none() {
        customer_policy(call, arn).await?;
    }
    let filter = input["EntityFilter"].as_str();
    let store = call.app.access.store();
    let (mut users, mut groups, mut roles) = (Vec::new(), Vec::new(), Vec::new());
    for link in store
        .list_iam_links(LinkKind::Attached, None, Some(arn))
        .await?
    {
        let Some((kind, name)) = link.subject.split_once(':') else {
            continue;
        };
        let (kind, list, title, wanted) = match kind {
            "user" => (IamKind::User, &mut users, "User", "User"),
            "group" => (IamKind::Group, &mut groups, "Group", "Group"),
            _ => (IamKind::Role, &mut roles, "Role", "Role"),
        };
        if filter
            .is_some_and(|f| f != wanted && f != "LocalManagedPolicy" && f != "AWSManagedPolicy")
        {
            continue;
        }
        if let Some(entity) = store.get_iam_entity(kind, name).await? {
            list.push(
                json!({format!("{title}Name"): entity.name, format!("{title}Id"): entity.id}),
            );
        }
    }
    Ok(json!({
        "PolicyUsers": users, "PolicyGroups": groups, "PolicyRoles": roles, "IsTruncated": false,
    }))
}

fn holder_name(kind: IamKind, input: &Value) -> &str {
    str_of(input, &format!("{}Name", kind_title(kind)))
}

async fn attach(
    call: &Call<'_>,
    kind: IamKind,
    input: &Value,
    attach: bool,
) -> Result<Value, QueryError> {
    let name = holder_name(kind, input);
    let verb = if attach { "Attach" } else { "Detach" };
    let arn = str_of(input, "PolicyArn");
    call.authorize_existing(&format!("{verb}{}Policy", kind_title(kind)), kind, name)
        .await?;
    let store = call.app.access.store();
    if attach {
        let customer = customer_policy_name(call, arn);
        let mut requires = vec![(kind, name)];
        if managed_policy(arn).is_none() {
            let Some(policy) = customer.as_deref() else {
                return Err(no_such_policy(arn));
            };
            customer_policy(call, arn).await?;
            requires.push((IamKind::Policy, policy));
        }
        let link = IamLink {
            kind: LinkKind::Attached,
            subject: kind.key(name),
            object: arn.to_string(),
            document: None,
        };
        if !store.put_iam_link(&link, &requires).await? {
            return Err(no_such_policy(arn));
        }
    } else if !store
        .delete_iam_link(LinkKind::Attached, &kind.key(name), arn)
        .await?
    {
        return Err(QueryError::new(
            "NoSuchEntity",
            format!("Policy {arn} was not found."),
        ));
    }
    Ok(json!({}))
}

async fn list_attached(call: &Call<'_>, kind: IamKind, input: &Value) -> Result<Value, QueryError> {
    let name = holder_name(kind, input);
    call.authorize_existing(
        &format!("ListAttached{}Policies", kind_title(kind)),
        kind,
        name,
    )
    .await?;
    let links = call
        .app
        .access
        .store()
        .list_iam_links(LinkKind::Attached, Some(&kind.key(name)), None)
        .await?;
    let (limit, after) = page(input)?;
    let (links, extra) = paged(links, |l| l.object.clone(), limit, after.as_deref());
    let list: Vec<Value> = links
        .iter()
        .map(|l| {
            json!({"PolicyName": l.object.rsplit('/').next().unwrap_or(&l.object),
                   "PolicyArn": l.object})
        })
        .collect();
    Ok(merge(json!({"AttachedPolicies": list}), extra))
}

/// Inline policy sizes per holder kind, as IAM limits them.
fn inline_limit(kind: IamKind) -> usize {
    match kind {
        IamKind::User => 2048,
        IamKind::Group => 5120,
        _ => 10240,
    }
}

async fn put_inline(call: &Call<'_>, kind: IamKind, input: &Value) -> Result<Value, QueryError> {
    let name = holder_name(kind, input);
    call.authorize_existing(&format!("Put{}Policy", kind_title(kind)), kind, name)
        .await?;
    let document = str_of(input, "PolicyDocument");
    checked_policy(document, PolicyKind::Identity, inline_limit(kind))?;
    let link = IamLink {
        kind: LinkKind::Inline,
        subject: kind.key(name),
        object: str_of(input, "PolicyName").to_string(),
        document: Some(document.to_string()),
    };
    if !call
        .app
        .access
        .store()
        .put_iam_link(&link, &[(kind, name)])
        .await?
    {
        return Err(no_such(kind, name));
    }
    Ok(json!({}))
}

fn no_such_inline(kind: IamKind, policy: &str) -> QueryError {
    QueryError::new(
        "NoSuchEntity",
        format!(
            "The {} policy with name {policy} cannot be found.",
            kind_title(kind).to_lowercase()
        ),
    )
}

async fn get_inline(call: &Call<'_>, kind: IamKind, input: &Value) -> Result<Value, QueryError> {
    let name = holder_name(kind, input);
    let holder = call
        .authorize_existing(&format!("Get{}Policy", kind_title(kind)), kind, name)
        .await?;
    let policy = str_of(input, "PolicyName");
    let link = call
        .app
        .access
        .store()
        .list_iam_links(LinkKind::Inline, Some(&kind.key(name)), Some(policy))
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| no_such_inline(kind, policy))?;
    Ok(json!({
        format!("{}Name", kind_title(kind)): holder.name,
        "PolicyName": link.object,
        "PolicyDocument": encode_document(link.document.as_deref().unwrap_or("")),
    }))
}

async fn delete_inline(call: &Call<'_>, kind: IamKind, input: &Value) -> Result<Value, QueryError> {
    let name = holder_name(kind, input);
    call.authorize_existing(&format!("Delete{}Policy", kind_title(kind)), kind, name)
        .await?;
    let policy = str_of(input, "PolicyName");
    if !call
        .app
        .access
        .store()
        .delete_iam_link(LinkKind::Inline, &kind.key(name), policy)
        .await?
    {
        return Err(no_such_inline(kind, policy));
    }
    Ok(json!({}))
}

async fn list_inline(call: &Call<'_>, kind: IamKind, input: &Value) -> Result<Value, QueryError> {
    let name = holder_name(kind, input);
    call.authorize_existing(&format!("List{}Policies", kind_title(kind)), kind, name)
        .await?;
    let links = call
        .app
        .access
        .store()
        .list_iam_links(LinkKind::Inline, Some(&kind.key(name)), None)
        .await?;
    let (limit, after) = page(input)?;
    let (links, extra) = paged(links, |l| l.object.clone(), limit, after.as_deref());
    let names: Vec<Value> = links.into_iter().map(|l| json!(l.object)).collect();
    Ok(merge(json!({"PolicyNames": names}), extra))
}
