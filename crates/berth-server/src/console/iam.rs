//! The console's IAM editors, for account admins: customer managed
//! policies (create, edit as a new default version, delete), one user's,
//! group's or role's page (managed policies attached and detached, inline
//! policies written and deleted, a role's trust policy, a user's groups),
//! and roles (create with a trust policy, delete). Every action is the IAM
//! action the Query door would check, on the same ARN, through the same
//! `Iam` service, so the console can do nothing `aws iam` could not.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use berth_store::IamKind;
use maud::{Markup, html};

use super::{Visitor, allowed, csrf_field, html_response, internal, page, refused, visitor_of};
use crate::App;
use crate::iam::{IamError, NewPolicy, NewRole, PolicyScope};

/// A document to start a new policy from.
const EXAMPLE_POLICY: &str = r#"{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Effect": "Allow",
      "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
      "Resource": "*"
    }
  ]
}"#;

/// What a form sent back to show again: an error, the texts typed.
#[derive(Default)]
pub(super) struct Typed {
    error: Option<String>,
    texts: HashMap<String, String>,
}

fn kind_of(segment: &str) -> Option<IamKind> {
    match segment {
        "users" => Some(IamKind::User),
        "groups" => Some(IamKind::Group),
        "roles" => Some(IamKind::Role),
        _ => None,
    }
}

fn segment_of(kind: IamKind) -> &'static str {
    match kind {
        IamKind::User => "users",
        IamKind::Group => "groups",
        _ => "roles",
    }
}

/// IAM's action names for a holder kind: `User`, `Group`, `Role`.
fn noun(kind: IamKind) -> &'static str {
    match kind {
        IamKind::User => "User",
        IamKind::Group => "Group",
        _ => "Role",
    }
}

/// IAM's names: letters, digits and `+=,.@_-`, at most `max`.
fn name_ok(name: &str, max: usize) -> bool {
    !name.is_empty()
        && name.len() <= max
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b))
}

fn not_allowed(v: &Visitor, action: &str) -> Response {
    html_response(
        StatusCode::FORBIDDEN,
        page(
            "Not allowed",
            Some(v),
            html! { p { "Your policies do not allow " (action) "." } },
        ),
    )
}

fn not_found(v: &Visitor, what: &str) -> Response {
    html_response(
        StatusCode::NOT_FOUND,
        page("Not found", Some(v), html! { p { "No " (what) "." } }),
    )
}

/// `GET /console/iam/policies`: the customer managed policies.
pub async fn policies(State(app): State<Arc<App>>, request: Request) -> Response {
    let v = match visitor_of(&app, &request).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    policies_view(&app, &v, Typed::default()).await
}

async fn policies_view(app: &App, v: &Visitor, typed: Typed) -> Response {
    match allowed(app, v, "iam:ListPolicies", "*", None).await {
        Ok(true) => {}
        Ok(false) => return not_allowed(v, "iam:ListPolicies"),
        Err(r) => return r,
    }
    let listed = match app.iam.policies(PolicyScope::Local, false, "/").await {
        Ok(l) => l,
        Err(e) => return internal(e),
    };
    let text = |k: &str, default: &str| {
        typed
            .texts
            .get(k)
            .cloned()
            .unwrap_or_else(|| default.to_string())
    };
    html_response(
        StatusCode::OK,
        page(
            "Policies",
            Some(v),
            html! {
                p { a href="/console/iam" { "← Users and groups" } }
                @if let Some(error) = &typed.error { p class="error" role="alert" { (error) } }
                section aria-labelledby="customer-policies" {
                    h2 id="customer-policies" { "Customer managed policies" }
                    @if listed.is_empty() { p { "None yet." } } @else {
                        table {
                            thead { tr { th scope="col" { "Policy" } th scope="col" { "Default version" } th scope="col" { "Attached to" } th scope="col" { "Description" } } }
                            tbody {
                                @for p in &listed {
                                    tr class="policy" {
                                        th scope="row" { a href={ "/console/iam/policies/" (p.name) } { (p.name) } }
                                        td { (p.default_version) }
                                        td { (p.attachments) }
                                        td { (p.description.clone().unwrap_or_default()) }
                                    }
                                }
                            }
                        }
                    }
                }
                section aria-labelledby="new-policy" {
                    h2 id="new-policy" { "New policy" }
                    form method="post" action="/console/actions/iam-create-policy" class="card" {
                        (csrf_field(v))
                        label for="policy-name" { "Name" }
                        input id="policy-name" name="policy" required pattern="[A-Za-z0-9+=,.@_-]{1,128}" value=(text("policy", ""));
                        label for="policy-description" { "Description" }
                        input id="policy-description" name="description" value=(text("description", ""));
                        label for="policy-document" { "Document (IAM policy JSON)" }
                        textarea id="policy-document" name="document" rows="14" cols="80" { (text("document", EXAMPLE_POLICY)) }
                        button type="submit" { "Create policy" }
                    }
                }
            },
        ),
    )
}

/// `GET /console/iam/policies/{name}`: one customer managed policy.
pub async fn policy(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    request: Request,
) -> Response {
    let v = match visitor_of(&app, &request).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    policy_view(&app, &v, &name, Typed::default()).await
}

async fn policy_view(app: &App, v: &Visitor, name: &str, typed: Typed) -> Response {
    let arn = app.iam.arn(IamKind::Policy, "/", name);
    match allowed(app, v, "iam:GetPolicyVersion", &arn, None).await {
        Ok(true) => {}
        Ok(false) => return not_allowed(v, "iam:GetPolicyVersion"),
        Err(r) => return r,
    }
    let found = async {
        let record = app.iam.policy(&arn).await?;
        let versions = app.iam.policy_versions(&arn).await?;
        let entities = app.iam.entities_for_policy(&arn, None).await?;
        Ok::<_, IamError>((record, versions, entities))
    };
    let (record, versions, entities) = match found.await {
        Ok(found) => found,
        Err(IamError::Internal(e)) => return internal(e),
        Err(_) => return not_found(v, "such policy"),
    };
    let current = versions
        .iter()
        .find(|version| version.is_default)
        .map(|version| pretty(&version.document))
        .unwrap_or_default();
    let document = typed.texts.get("document").cloned().unwrap_or(current);
    let holders: Vec<(IamKind, &str)> = entities
        .users
        .iter()
        .map(|e| (IamKind::User, e.name.as_str()))
        .chain(
            entities
                .groups
                .iter()
                .map(|e| (IamKind::Group, e.name.as_str())),
        )
        .chain(
            entities
                .roles
                .iter()
                .map(|e| (IamKind::Role, e.name.as_str())),
        )
        .collect();
    html_response(
        StatusCode::OK,
        page(
            &format!("Policy {name}"),
            Some(v),
            html! {
                p { a href="/console/iam/policies" { "← Policies" } }
                @if let Some(error) = &typed.error { p class="error" role="alert" { (error) } }
                p { "ARN: " code { (record.arn) } }
                section aria-labelledby="document" {
                    h2 id="document" { "Document (default version " (record.default_version) ")" }
                    form method="post" action="/console/actions/iam-edit-policy" class="card" {
                        (csrf_field(v))
                        input type="hidden" name="policy" value=(name);
                        label for="edit-document" { "Saving makes a new version the default (IAM keeps 5)." }
                        textarea id="edit-document" name="document" rows="16" cols="80" { (document) }
                        button type="submit" { "Save as new version" }
                    }
                }
                section aria-labelledby="versions" {
                    h2 id="versions" { "Versions" }
                    ul { @for version in &versions { li class="version" { (version.id) @if version.is_default { " (default)" } } } }
                }
                section aria-labelledby="holders" {
                    h2 id="holders" { "Attached to" }
                    @if holders.is_empty() { p { "Nothing." } } @else {
                        ul { @for (kind, holder) in &holders {
                            li { a href={ "/console/iam/" (segment_of(*kind)) "/" (holder) } { (kind.as_str()) " " (holder) } }
                        } }
                    }
                }
                form method="post" action="/console/actions/iam-delete-policy" class="inline danger" {
                    (csrf_field(v))
                    input type="hidden" name="policy" value=(name);
                    button type="submit" { "Delete policy" }
                }
            },
        ),
    )
}

/// A policy document indented for reading (as written if it is not JSON).
fn pretty(document: &str) -> String {
    serde_json::from_str::<serde_json::Value>(document)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| document.to_string())
}

/// `GET /console/iam/{users|groups|roles}/{name}`: one holder of policies.
pub async fn holder(
    State(app): State<Arc<App>>,
    Path((segment, name)): Path<(String, String)>,
    request: Request,
) -> Response {
    let v = match visitor_of(&app, &request).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let Some(kind) = kind_of(&segment) else {
        return not_found(&v, "such page");
    };
    holder_view(&app, &v, kind, &name, Typed::default()).await
}

async fn holder_view(app: &App, v: &Visitor, kind: IamKind, name: &str, typed: Typed) -> Response {
    let arn = app.iam.arn(kind, "/", name);
    let read = format!("iam:Get{}", noun(kind));
    match allowed(app, v, &read, &arn, None).await {
        Ok(true) => {}
        Ok(false) => return not_allowed(v, &read),
        Err(r) => return r,
    }
    let found = async {
        let Some(entity) = app.iam.entity(kind, name).await? else {
            return Ok(None);
        };
        let attached = app.iam.attached_policies(kind, name).await?;
        let mut inline = Vec::new();
        for policy in app.iam.inline_policies(kind, name).await? {
            let document = app.iam.inline_policy(kind, name, &policy).await?.document;
            inline.push((policy, pretty(&document)));
        }
        let groups = if kind == IamKind::User {
            app.iam.groups_of(name).await?
        } else {
            Vec::new()
        };
        let customer = app.iam.policies(PolicyScope::Local, false, "/").await?;
        Ok::<_, IamError>(Some((entity, attached, inline, groups, customer)))
    };
    let (entity, attached, inline, groups, customer) = match found.await {
        Ok(Some(found)) => found,
        Ok(None) => return not_found(v, &format!("{} {name}", kind.as_str())),
        Err(e) => return internal(e),
    };
    let segment = segment_of(kind);
    let kind_name = kind.as_str();
    let typed_text = |k: &str| typed.texts.get(k).cloned();
    html_response(
        StatusCode::OK,
        page(
            &format!("{kind_name} {name}"),
            Some(v),
            html! {
                p { a href="/console/iam" { "← Users and groups" } }
                @if let Some(error) = &typed.error { p class="error" role="alert" { (error) } }
                p { "ARN: " code { (entity.arn) } }
                section aria-labelledby="managed" {
                    h2 id="managed" { "Managed policies" }
                    @if attached.is_empty() { p { "None attached." } } @else {
                        table {
                            thead { tr { th scope="col" { "Policy" } th scope="col" { span class="visually-hidden" { "Actions" } } } }
                            tbody {
                                @for p in &attached {
                                    tr class="attached" {
                                        th scope="row" { (p.name) }
                                        td {
                                            form method="post" action="/console/actions/iam-detach" class="inline danger" {
                                                (csrf_field(v))
                                                input type="hidden" name="kind" value=(segment);
                                                input type="hidden" name="name" value=(name);
                                                input type="hidden" name="policy" value=(p.arn);
                                                button type="submit" aria-label={ "Detach " (p.name) } { "Detach" }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                    form method="post" action="/console/actions/iam-attach-to" class="card" {
                        (csrf_field(v))
                        input type="hidden" name="kind" value=(segment);
                        input type="hidden" name="name" value=(name);
                        label for="attach-managed" { "Managed policy" }
                        select id="attach-managed" name="policy" {
                            @for p in &customer { option value=(p.arn) { (p.name) " (customer)" } }
                            @for p in crate::access::managed::MANAGED_POLICIES { option value=(p.arn()) { (p.name) } }
                        }
                        button type="submit" { "Attach" }
                    }
                }
                section aria-labelledby="inline" {
                    h2 id="inline" { "Inline policies" }
                    @for (policy, document) in &inline {
                        form method="post" action="/console/actions/iam-put-inline" class="card inline-policy" {
                            (csrf_field(v))
                            input type="hidden" name="kind" value=(segment);
                            input type="hidden" name="name" value=(name);
                            input type="hidden" name="policy" value=(policy);
                            label for={ "inline-" (policy) } { (policy) }
                            textarea id={ "inline-" (policy) } name="document" rows="10" cols="80" { (document) }
                            button type="submit" { "Save " (policy) }
                        }
                        form method="post" action="/console/actions/iam-delete-inline" class="inline danger" {
                            (csrf_field(v))
                            input type="hidden" name="kind" value=(segment);
                            input type="hidden" name="name" value=(name);
                            input type="hidden" name="policy" value=(policy);
                            button type="submit" aria-label={ "Delete inline policy " (policy) } { "Delete " (policy) }
                        }
                    }
                    form method="post" action="/console/actions/iam-put-inline" class="card" {
                        (csrf_field(v))
                        input type="hidden" name="kind" value=(segment);
                        input type="hidden" name="name" value=(name);
                        label for="new-inline-name" { "New inline policy name" }
                        input id="new-inline-name" name="policy" required pattern="[A-Za-z0-9+=,.@_-]{1,128}" value=(typed_text("policy").unwrap_or_default());
                        label for="new-inline-document" { "Document (IAM policy JSON)" }
                        textarea id="new-inline-document" name="document" rows="10" cols="80" { (typed_text("document").unwrap_or_else(|| EXAMPLE_POLICY.into())) }
                        button type="submit" { "Add inline policy" }
                    }
                }
                @if kind == IamKind::Role {
                    section aria-labelledby="trust" {
                        h2 id="trust" { "Trust policy (who may assume it)" }
                        form method="post" action="/console/actions/iam-trust" class="card" {
                            (csrf_field(v))
                            input type="hidden" name="name" value=(name);
                            label for="trust-document" { "Document" }
                            textarea id="trust-document" name="document" rows="12" cols="80" {
                                (typed_text("trust").unwrap_or_else(|| pretty(entity.document.as_deref().unwrap_or_default())))
                            }
                            button type="submit" { "Save trust policy" }
                        }
                    }
                    form method="post" action="/console/actions/iam-delete-role" class="inline danger" {
                        (csrf_field(v))
                        input type="hidden" name="name" value=(name);
                        button type="submit" { "Delete role" }
                    }
                }
                @if kind == IamKind::User {
                    section aria-labelledby="user-groups" {
                        h2 id="user-groups" { "Groups" }
                        @if groups.is_empty() { p { "In no group." } }
                        ul { @for group in &groups {
                            li class="member-of" {
                                a href={ "/console/iam/groups/" (group.name) } { (group.name) } " "
                                form method="post" action="/console/actions/iam-remove-from-group" class="inline danger" {
                                    (csrf_field(v))
                                    input type="hidden" name="name" value=(name);
                                    input type="hidden" name="group" value=(group.name);
                                    button type="submit" aria-label={ "Remove from " (group.name) } { "Remove" }
                                }
                            }
                        } }
                    }
                }
            },
        ),
    )
}

/// The role a new role's form starts from: assumable by this account's principals.
pub(super) fn example_trust(account: &str) -> String {
    format!(
        r#"{{
  "Version": "2012-10-17",
  "Statement": [
    {{
      "Effect": "Allow",
      "Principal": {{"AWS": "arn:aws:iam::{account}:root"}},
      "Action": "sts:AssumeRole"
    }}
  ]
}}"#
    )
}

/// The form for a new role (on the users and groups page).
pub(super) fn new_role_form(v: &Visitor, account: &str) -> Markup {
    html! {
        form method="post" action="/console/actions/iam-create-role" class="card" {
            (csrf_field(v))
            label for="new-role" { "New role" }
            input id="new-role" name="name" required pattern="[A-Za-z0-9+=,.@_-]{1,64}";
            label for="new-role-trust" { "Trust policy (who may assume it)" }
            textarea id="new-role-trust" name="document" rows="12" cols="80" { (example_trust(account)) }
            button type="submit" { "Create role" }
        }
    }
}

/// Deletes a customer managed policy as the AWS console does, its older
/// versions first (which takes `iam:DeletePolicyVersion` too); one still
/// attached is refused (detaching is left to the reader, on purpose).
async fn delete_policy(app: &App, v: &Visitor, arn: &str) -> Result<(), IamError> {
    let record = app.iam.policy(arn).await?;
    if record.attachments > 0 {
        return Err(IamError::DeleteConflict(
            crate::iam::Conflict::PolicyAttached,
        ));
    }
    let versions = app.iam.policy_versions(arn).await?;
    if versions.iter().any(|version| !version.is_default) {
        match allowed(app, v, "iam:DeletePolicyVersion", arn, None).await {
            Ok(true) => {}
            _ => {
                return Err(IamError::DeleteConflict(
                    crate::iam::Conflict::PolicyVersions,
                ));
            }
        }
        for version in versions.iter().filter(|version| !version.is_default) {
            app.iam.delete_policy_version(arn, &version.id).await?;
        }
    }
    app.iam.delete_policy(arn).await
}

/// The IAM editors' actions (`/console/actions/iam-…`): `None` when
/// `action` is none of them.
pub(super) async fn act(
    app: &App,
    v: &Visitor,
    action: &str,
    form: &HashMap<String, String>,
) -> Option<Response> {
    let field = |k: &str| {
        form.get(k)
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    };
    let document = form.get("document").cloned().unwrap_or_default();
    let (name, policy) = (field("name"), field("policy"));
    let kind = kind_of(&field("kind"));
    // (the IAM action, its resource, where the answer goes back to)
    enum Back {
        Policies,
        Policy,
        Holder(IamKind),
        Iam,
    }
    let policy_arn = |policy: &str| app.iam.arn(IamKind::Policy, "/", policy);
    let (permission, resource, back) = match (action, kind) {
        ("iam-create-policy", _) => (
            "iam:CreatePolicy".to_string(),
            policy_arn(&policy),
            Back::Policies,
        ),
        ("iam-edit-policy", _) => (
            "iam:CreatePolicyVersion".to_string(),
            policy_arn(&policy),
            Back::Policy,
        ),
        ("iam-delete-policy", _) => (
            "iam:DeletePolicy".to_string(),
            policy_arn(&policy),
            Back::Policy,
        ),
        ("iam-attach-to", Some(k)) => (
            format!("iam:Attach{}Policy", noun(k)),
            app.iam.arn(k, "/", &name),
            Back::Holder(k),
        ),
        ("iam-detach", Some(k)) => (
            format!("iam:Detach{}Policy", noun(k)),
            app.iam.arn(k, "/", &name),
            Back::Holder(k),
        ),
        ("iam-put-inline", Some(k)) => (
            format!("iam:Put{}Policy", noun(k)),
            app.iam.arn(k, "/", &name),
            Back::Holder(k),
        ),
        ("iam-delete-inline", Some(k)) => (
            format!("iam:Delete{}Policy", noun(k)),
            app.iam.arn(k, "/", &name),
            Back::Holder(k),
        ),
        ("iam-trust", _) => (
            "iam:UpdateAssumeRolePolicy".to_string(),
            app.iam.arn(IamKind::Role, "/", &name),
            Back::Holder(IamKind::Role),
        ),
        ("iam-create-role", _) => (
            "iam:CreateRole".to_string(),
            app.iam.arn(IamKind::Role, "/", &name),
            Back::Iam,
        ),
        ("iam-delete-role", _) => (
            "iam:DeleteRole".to_string(),
            app.iam.arn(IamKind::Role, "/", &name),
            Back::Iam,
        ),
        ("iam-remove-from-group", _) => (
            "iam:RemoveUserFromGroup".to_string(),
            app.iam.arn(IamKind::Group, "/", &field("group")),
            Back::Holder(IamKind::User),
        ),
        ("iam-attach-to" | "iam-detach" | "iam-put-inline" | "iam-delete-inline", None) => {
            return Some(refused(
                v,
                StatusCode::BAD_REQUEST,
                "No such kind of IAM entity.",
            ));
        }
        _ => return None,
    };
    match allowed(app, v, &permission, &resource, None).await {
        Ok(true) => {}
        Ok(false) => {
            return Some(refused(
                v,
                StatusCode::FORBIDDEN,
                &format!("Your policies do not allow {permission} on {resource}."),
            ));
        }
        Err(r) => return Some(r),
    }
    let names_ok = match action {
        "iam-create-policy" | "iam-edit-policy" | "iam-delete-policy" => name_ok(&policy, 128),
        "iam-put-inline" | "iam-delete-inline" => name_ok(&name, 128) && name_ok(&policy, 128),
        _ => name_ok(&name, 128),
    };
    let error = if !names_ok {
        Some("A name is letters, digits and +=,.@_- (128 characters at most).".to_string())
    } else {
        let done = match (action, kind) {
            ("iam-create-policy", _) => app
                .iam
                .create_policy(NewPolicy {
                    name: policy.clone(),
                    path: "/".into(),
                    document: document.clone(),
                    description: Some(field("description")).filter(|d| !d.is_empty()),
                    tags: Vec::new(),
                })
                .await
                .map(drop),
            ("iam-edit-policy", _) => app
                .iam
                .create_policy_version(&policy_arn(&policy), &document, true)
                .await
                .map(drop),
            ("iam-delete-policy", _) => delete_policy(app, v, &policy_arn(&policy)).await,
            ("iam-attach-to", Some(k)) => app.iam.attach_policy(k, &name, &policy).await,
            ("iam-detach", Some(k)) => app.iam.detach_policy(k, &name, &policy).await,
            ("iam-put-inline", Some(k)) => {
                app.iam
                    .put_inline_policy(k, &name, &policy, &document)
                    .await
            }
            ("iam-delete-inline", Some(k)) => app.iam.delete_inline_policy(k, &name, &policy).await,
            ("iam-trust", _) => app.iam.update_assume_role_policy(&name, &document).await,
            ("iam-create-role", _) => app
                .iam
                .create_role(NewRole {
                    name: name.clone(),
                    path: "/".into(),
                    trust_document: document.clone(),
                    description: None,
                    max_session_duration: None,
                    tags: Vec::new(),
                })
                .await
                .map(drop),
            ("iam-delete-role", _) => app.iam.delete_entity(IamKind::Role, &name).await,
            _ => app.iam.remove_user_from_group(&field("group"), &name).await,
        };
        match done {
            Ok(()) => None,
            Err(IamError::Internal(e)) => return Some(internal(e)),
            Err(e) => Some(e.to_string()),
        }
    };
    let Some(error) = error else {
        let to = match (&back, action) {
            (Back::Policy, "iam-delete-policy") | (Back::Policies, _) => {
                "/console/iam/policies".to_string()
            }
            (Back::Policy, _) => format!("/console/iam/policies/{policy}"),
            (Back::Holder(_), "iam-remove-from-group") => format!("/console/iam/users/{name}"),
            (Back::Holder(k), _) => format!("/console/iam/{}/{name}", segment_of(*k)),
            (Back::Iam, _) => "/console/iam".to_string(),
        };
        return Some(Redirect::to(&to).into_response());
    };
    // Shown again where it was typed, with what was typed.
    let mut texts = HashMap::new();
    texts.insert(
        if action == "iam-trust" {
            "trust"
        } else {
            "document"
        }
        .to_string(),
        document,
    );
    texts.insert("policy".into(), policy.clone());
    texts.insert("description".into(), field("description"));
    let typed = Typed {
        error: Some(error),
        texts,
    };
    Some(match back {
        Back::Policies => policies_view(app, v, typed).await,
        Back::Policy => policy_view(app, v, &policy, typed).await,
        Back::Holder(k) => holder_view(app, v, k, &name, typed).await,
        Back::Iam => super::iam_view(app, v, typed.error).await,
    })
}
