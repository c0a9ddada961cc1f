//! IAM's Query door: users and their access keys, groups, roles, managed
//! and inline policies. Each operation needs `iam:<Operation>` on the entity
//! it names; the door authorizes, reads the input, calls the [`Iam`] service
//! and shapes its answer (paging, URL-encoded documents, seconds).

mod login;
mod tags;
mod versions;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use berth_store::{AccessKeyRecord, IamEntity, IamKind};
use serde_json::{Value, json};

use super::{Call, QueryError};
use crate::iam::{
    Details, Iam, IamError, ManagedPolicyRecord, NewGroup, NewPolicy, NewRole, NewUser,
    PolicyScope, kind_title,
};
use crate::identity::PrincipalKind;

pub async fn handle(call: &Call<'_>, action: &str, input: &Value) -> Result<Value, QueryError> {
    match action {
        "CreateUser" => create_user(call, input).await,
        "GetUser" => get_user(call, input).await,
        "ListUsers" => list_entities(call, IamKind::User, input).await,
        "DeleteUser" => delete_entity(call, IamKind::User, input).await,
        "CreateLoginProfile" => login::create(call, input).await,
        "GetLoginProfile" => login::get(call, input).await,
        "UpdateLoginProfile" => login::update(call, input).await,
        "DeleteLoginProfile" => login::delete(call, input).await,
        "ChangePassword" => login::change_password(call, input).await,
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
    }
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

fn str_of<'a>(input: &'a Value, member: &str) -> &'a str {
    input[member].as_str().unwrap_or_default()
}

fn string_of(input: &Value, member: &str) -> String {
    str_of(input, member).to_string()
}

fn seconds(millis: i64) -> Value {
    json!(millis / 1000)
}

/// Policy documents travel URL-encoded in IAM's answers (botocore decodes them).
fn encode_document(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC).to_string()
}

fn path_of(input: &Value) -> String {
    input["Path"].as_str().unwrap_or("/").to_string()
}

/// A `Tags` member: its well-formed tags.
fn tags_of(input: &Value) -> Vec<(String, String)> {
    crate::iam::tag_pairs(&input["Tags"])
}

fn tags_json(tags: &[(String, String)]) -> Value {
    tags.iter()
        .map(|(k, v)| json!({"Key": k, "Value": v}))
        .collect()
}

impl Call<'_> {
    fn iam(&self) -> &Iam {
        &self.app.iam
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
        self.authorize(&action, &self.iam().arn(kind, path, name))
            .await
    }

    /// Authorizes `iam:<action>` on the named entity (its ARN with its
    /// path if it exists) and returns the entity if it does.
    async fn authorize_on(
        &self,
        action: &str,
        kind: IamKind,
        name: &str,
    ) -> Result<Option<IamEntity>, QueryError> {
        let entity = self.iam().entity(kind, name).await?;
        let arn = entity
            .as_ref()
            .map_or_else(|| self.iam().arn(kind, "/", name), |e| e.arn.clone());
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
        Ok(self
            .authorize_on(action, kind, name)
            .await?
            .ok_or_else(|| IamError::no_such(kind, name))?)
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
    let tags = Details::of(e).tags;
    if !tags.is_empty() {
        user["Tags"] = tags_json(&tags);
    }
    user
}

fn group_json(e: &IamEntity) -> Value {
    json!({"Path": e.path, "GroupName": e.name, "GroupId": e.id, "Arn": e.arn,
           "CreateDate": seconds(e.created_at)})
}

fn role_json(e: &IamEntity) -> Value {
    let details = Details::of(e);
    let mut role = json!({
        "Path": e.path, "RoleName": e.name, "RoleId": e.id, "Arn": e.arn,
        "CreateDate": seconds(e.created_at),
        "AssumeRolePolicyDocument": encode_document(e.document.as_deref().unwrap_or("")),
        "MaxSessionDuration": details.max_session_duration,
    });
    if let Some(description) = details.description {
        role["Description"] = json!(description);
    }
    if !details.tags.is_empty() {
        role["Tags"] = tags_json(&details.tags);
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

async fn create_user(call: &Call<'_>, input: &Value) -> Result<Value, QueryError> {
    let name = str_of(input, "UserName");
    let path = path_of(input);
    call.authorize_create(IamKind::User, &path, name).await?;
    let user = call
        .iam()
        .create_user(NewUser {
            name: name.to_string(),
            path,
            tags: tags_of(input),
        })
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
    // One more than a page, to know whether it is the last.
    let found = call
        .iam()
        .list_entities(kind, prefix, after.as_deref(), limit.saturating_add(1))
        .await?;
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
    call.iam().delete_entity(kind, name).await?;
    Ok(json!({}))
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
    let created = call.iam().create_access_key(&owner).await?;
    let mut json = key_json(&created.key, &user);
    json["SecretAccessKey"] = json!(created.secret);
    Ok(json!({"AccessKey": json}))
}

async fn list_access_keys(call: &Call<'_>, input: &Value) -> Result<Value, QueryError> {
    let (owner, user) = key_owner(call, "ListAccessKeys", input).await?;
    let (limit, after) = page(input)?;
    let keys = call.iam().access_keys(&owner).await?;
    let (keys, extra) = paged(keys, |k| k.id.clone(), limit, after.as_deref());
    let list: Vec<Value> = keys.iter().map(|k| key_json(k, &user)).collect();
    Ok(merge(json!({"AccessKeyMetadata": list}), extra))
}

async fn update_access_key(call: &Call<'_>, input: &Value) -> Result<Value, QueryError> {
    let (owner, _) = key_owner(call, "UpdateAccessKey", input).await?;
    let active = str_of(input, "Status") == "Active";
    call.iam()
        .set_access_key_active(&owner, str_of(input, "AccessKeyId"), active)
        .await?;
    Ok(json!({}))
}

async fn delete_access_key(call: &Call<'_>, input: &Value) -> Result<Value, QueryError> {
    let (owner, _) = key_owner(call, "DeleteAccessKey", input).await?;
    call.iam()
        .delete_access_key(&owner, str_of(input, "AccessKeyId"))
        .await?;
    Ok(json!({}))
}

async fn create_group(call: &Call<'_>, input: &Value) -> Result<Value, QueryError> {
    let name = str_of(input, "GroupName");
    let path = path_of(input);
    call.authorize_create(IamKind::Group, &path, name).await?;
    let group = call
        .iam()
        .create_group(NewGroup {
            name: name.to_string(),
            path,
        })
        .await?;
    Ok(json!({"Group": group_json(&group)}))
}

async fn get_group(call: &Call<'_>, input: &Value) -> Result<Value, QueryError> {
    let name = str_of(input, "GroupName");
    let group = call
        .authorize_existing("GetGroup", IamKind::Group, name)
        .await?;
    let users = call.iam().group_members(name).await?;
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
    call.iam().add_user_to_group(group, user).await?;
    Ok(json!({}))
}

async fn remove_user_from_group(call: &Call<'_>, input: &Value) -> Result<Value, QueryError> {
    let (group, user) = (str_of(input, "GroupName"), str_of(input, "UserName"));
    call.authorize_existing("RemoveUserFromGroup", IamKind::Group, group)
        .await?;
    call.iam().remove_user_from_group(group, user).await?;
    Ok(json!({}))
}

async fn list_groups_for_user(call: &Call<'_>, input: &Value) -> Result<Value, QueryError> {
    let name = str_of(input, "UserName");
    call.authorize_existing("ListGroupsForUser", IamKind::User, name)
        .await?;
    let groups = call.iam().groups_of(name).await?;
    let (limit, after) = page(input)?;
    let (groups, extra) = paged(groups, |g| g.name.to_lowercase(), limit, after.as_deref());
    let list: Vec<Value> = groups.iter().map(group_json).collect();
    Ok(merge(json!({"Groups": list}), extra))
}

async fn create_role(call: &Call<'_>, input: &Value) -> Result<Value, QueryError> {
    let name = str_of(input, "RoleName");
    let path = path_of(input);
    call.authorize_create(IamKind::Role, &path, name).await?;
    let role = call
        .iam()
        .create_role(NewRole {
            name: name.to_string(),
            path,
            trust_document: string_of(input, "AssumeRolePolicyDocument"),
            description: input["Description"].as_str().map(str::to_string),
            max_session_duration: input["MaxSessionDuration"].as_i64(),
            tags: tags_of(input),
        })
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
    call.authorize_existing("UpdateAssumeRolePolicy", IamKind::Role, name)
        .await?;
    call.iam()
        .update_assume_role_policy(name, str_of(input, "PolicyDocument"))
        .await?;
    Ok(json!({}))
}

fn policy_json(p: &ManagedPolicyRecord) -> Value {
    let mut policy = json!({
        "PolicyName": p.name, "PolicyId": p.id, "Arn": p.arn, "Path": p.path,
        "DefaultVersionId": p.default_version, "AttachmentCount": p.attachments,
        "PermissionsBoundaryUsageCount": 0, "IsAttachable": true,
        "CreateDate": seconds(p.created), "UpdateDate": seconds(p.updated),
    });
    if let Some(description) = &p.description {
        policy["Description"] = json!(description);
    }
    if !p.tags.is_empty() {
        policy["Tags"] = tags_json(&p.tags);
    }
    policy
}

async fn create_policy(call: &Call<'_>, input: &Value) -> Result<Value, QueryError> {
    let name = str_of(input, "PolicyName");
    let path = path_of(input);
    call.authorize_create(IamKind::Policy, &path, name).await?;
    let policy = call
        .iam()
        .create_policy(NewPolicy {
            name: name.to_string(),
            path,
            document: string_of(input, "PolicyDocument"),
            description: input["Description"].as_str().map(str::to_string),
            tags: tags_of(input),
        })
        .await?;
    Ok(json!({"Policy": policy_json(&policy)}))
}

async fn get_policy(call: &Call<'_>, input: &Value) -> Result<Value, QueryError> {
    let arn = str_of(input, "PolicyArn");
    call.authorize("iam:GetPolicy", arn).await?;
    let policy = call.iam().policy(arn).await?;
    Ok(json!({"Policy": policy_json(&policy)}))
}

async fn list_policies(call: &Call<'_>, input: &Value) -> Result<Value, QueryError> {
    call.authorize("iam:ListPolicies", "*").await?;
    let scope = match input["Scope"].as_str() {
        Some("AWS") => PolicyScope::Aws,
        Some("Local") => PolicyScope::Local,
        _ => PolicyScope::All,
    };
    let only_attached = input["OnlyAttached"].as_bool().unwrap_or(false);
    let prefix = input["PathPrefix"].as_str().unwrap_or("/");
    let policies = call.iam().policies(scope, only_attached, prefix).await?;
    let (limit, after) = page(input)?;
    let (policies, extra) = paged(policies, |p| p.arn.clone(), limit, after.as_deref());
    let list: Vec<Value> = policies.iter().map(policy_json).collect();
    Ok(merge(json!({"Policies": list}), extra))
}

async fn delete_policy(call: &Call<'_>, input: &Value) -> Result<Value, QueryError> {
    let arn = str_of(input, "PolicyArn");
    call.authorize("iam:DeletePolicy", arn).await?;
    call.iam().delete_policy(arn).await?;
    Ok(json!({}))
}

/// The users, groups and roles a managed policy is attached to.
async fn list_entities_for_policy(call: &Call<'_>, input: &Value) -> Result<Value, QueryError> {
    let arn = str_of(input, "PolicyArn");
    call.authorize("iam:ListEntitiesForPolicy", arn).await?;
    // `LocalManagedPolicy` and `AWSManagedPolicy` filter nothing out.
    let only = match input["EntityFilter"].as_str() {
        Some("User") => Some(IamKind::User),
        Some("Group") => Some(IamKind::Group),
        Some("Role") => Some(IamKind::Role),
        _ => None,
    };
    let found = call.iam().entities_for_policy(arn, only).await?;
    let listed = |entities: &[IamEntity], title: &str| -> Vec<Value> {
        entities
            .iter()
            .map(|e| json!({format!("{title}Name"): e.name, format!("{title}Id"): e.id}))
            .collect()
    };
    Ok(json!({
        "PolicyUsers": listed(&found.users, "User"),
        "PolicyGroups": listed(&found.groups, "Group"),
        "PolicyRoles": listed(&found.roles, "Role"),
        "IsTruncated": false,
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
    if attach {
        call.iam().attach_policy(kind, name, arn).await?;
    } else {
        call.iam().detach_policy(kind, name, arn).await?;
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
    let attached = call.iam().attached_policies(kind, name).await?;
    let (limit, after) = page(input)?;
    let (attached, extra) = paged(attached, |p| p.arn.clone(), limit, after.as_deref());
    let list: Vec<Value> = attached
        .iter()
        .map(|p| json!({"PolicyName": p.name, "PolicyArn": p.arn}))
        .collect();
    Ok(merge(json!({"AttachedPolicies": list}), extra))
}

async fn put_inline(call: &Call<'_>, kind: IamKind, input: &Value) -> Result<Value, QueryError> {
    let name = holder_name(kind, input);
    call.authorize_existing(&format!("Put{}Policy", kind_title(kind)), kind, name)
        .await?;
    call.iam()
        .put_inline_policy(
            kind,
            name,
            str_of(input, "PolicyName"),
            str_of(input, "PolicyDocument"),
        )
        .await?;
    Ok(json!({}))
}

async fn get_inline(call: &Call<'_>, kind: IamKind, input: &Value) -> Result<Value, QueryError> {
    let name = holder_name(kind, input);
    let holder = call
        .authorize_existing(&format!("Get{}Policy", kind_title(kind)), kind, name)
        .await?;
    let policy = call
        .iam()
        .inline_policy(kind, name, str_of(input, "PolicyName"))
        .await?;
    Ok(json!({
        format!("{}Name", kind_title(kind)): holder.name,
        "PolicyName": policy.name,
        "PolicyDocument": encode_document(&policy.document),
    }))
}

async fn delete_inline(call: &Call<'_>, kind: IamKind, input: &Value) -> Result<Value, QueryError> {
    let name = holder_name(kind, input);
    call.authorize_existing(&format!("Delete{}Policy", kind_title(kind)), kind, name)
        .await?;
    call.iam()
        .delete_inline_policy(kind, name, str_of(input, "PolicyName"))
        .await?;
    Ok(json!({}))
}

async fn list_inline(call: &Call<'_>, kind: IamKind, input: &Value) -> Result<Value, QueryError> {
    let name = holder_name(kind, input);
    call.authorize_existing(&format!("List{}Policies", kind_title(kind)), kind, name)
        .await?;
    let names = call.iam().inline_policies(kind, name).await?;
    let (limit, after) = page(input)?;
    let (names, extra) = paged(names, String::clone, limit, after.as_deref());
    Ok(merge(json!({"PolicyNames": names}), extra))
}
