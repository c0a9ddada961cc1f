//! The console's project pages: the projects you are in (or may manage),
//! one project (its repositories and the form to request one, its members
//! and their rights, its robots), and their actions. Every action is the
//! IAM or ECR action it is, decided for the signed-in principal.

use std::sync::Arc;

use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use berth_core::RepositoryName;
use berth_store::{IamKind, RepositoryRecord};
use maud::html;

use super::{Visitor, allowed, csrf_field, html_response, internal, page, refused, visitor_of};
use crate::App;
use crate::projects::{Projects, Right, valid_name};

pub async fn list(State(app): State<Arc<App>>, request: Request) -> Response {
    let v = match visitor_of(&app, &request).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let names = match app.projects.names().await {
        Ok(n) => n,
        Err(e) => return internal(e),
    };
    let mine: Vec<String> = match &v.principal.kind {
        crate::identity::PrincipalKind::User { name } => match app.iam.groups_of(name).await {
            Ok(groups) => groups.into_iter().map(|g| g.name).collect(),
            Err(e) => return internal(e),
        },
        _ => Vec::new(),
    };
    let mut shown = Vec::new();
    for name in names {
        let member = [Right::Pull, Right::Push, Right::Admin]
            .iter()
            .any(|r| mine.contains(&Projects::group_name(&name, *r)));
        let arn = app.projects.group_arn(&name, Right::Admin);
        match allowed(&app, &v, "iam:GetGroup", &arn, None).await {
            Ok(manager) if member || manager => shown.push(name),
            Ok(_) => {}
            Err(r) => return r,
        }
    }
    html_response(
        StatusCode::OK,
        page(
            "Projects",
            Some(&v),
            html! {
                @if shown.is_empty() { p { "You are in no project yet." } } @else {
                    ul class="projects" {
                        @for name in &shown { li { a href={ "/console/projects/" (name) } { (name) } } }
                    }
                }
                form method="post" action="/console/projects-actions/create-project" class="card inline" {
                    (csrf_field(&v))
                    label for="project" { "New project" }
                    input id="project" name="project" required placeholder="acp";
                    button type="submit" { "Create project" }
                }
            },
        ),
    )
}

pub async fn show(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    request: Request,
) -> Response {
    let v = match visitor_of(&app, &request).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    project_page(&app, &v, &name, None).await
}

/// A project's page; `new_key` shows a robot's new credentials once.
async fn project_page(
    app: &App,
    v: &Visitor,
    name: &str,
    new_key: Option<(String, String, String)>,
) -> Response {
    let project = match app.projects.get(name).await {
        Ok(Some(p)) => p,
        Ok(None) => {
            return html_response(
                StatusCode::NOT_FOUND,
                page(
                    "Not found",
                    Some(v),
                    html! { p { "No project " (name) "." } },
                ),
            );
        }
        Err(e) => return internal(e),
    };
    let prefix = format!("{name}/");
    let mut repositories: Vec<RepositoryRecord> = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let (page_of, more) = match app.registry.repositories(after.as_deref(), 1000).await {
            Ok(p) => p,
            Err(e) => return internal(e),
        };
        after = page_of.last().map(|r| r.name.to_string());
        for r in page_of {
            if r.name.as_str().starts_with(&prefix) {
                let arn = app.access.repository_arn(r.name.as_str());
                match allowed(app, v, "ecr:DescribeRepositories", &arn, Some(&r.name)).await {
                    Ok(true) => repositories.push(r),
                    Ok(false) => {}
                    Err(resp) => return resp,
                }
            }
        }
        if !more {
            break;
        }
    }
    let host = super::host_of(&v.endpoint).to_string();
    let action = |a: &str| format!("/console/projects-actions/{a}");
    html_response(
        StatusCode::OK,
        page(
            &format!("Project {name}"),
            Some(v),
            html! {
                @if let Some((robot, id, secret)) = &new_key {
                    div class="card notice" role="status" {
                        h2 { "Credentials of robot " (robot) }
                        p { "The secret is shown this once: copy it now into your CI's secrets." }
                        dl {
                            dt { "Access key ID" } dd { code id="robot-key-id" { (id) } }
                            dt { "Secret access key" } dd { code id="robot-key-secret" { (secret) } }
                        }
                        pre { code { "AWS_ACCESS_KEY_ID=" (id) " AWS_SECRET_ACCESS_KEY=… aws ecr get-login-password --region " (app.access.region) " --endpoint-url " (v.endpoint) " | docker login --username AWS --password-stdin " (host) } }
                    }
                }
                section aria-labelledby="repos" {
                    h2 id="repos" { "Repositories" }
                    @if repositories.is_empty() { p { "No repositories in this project yet." } } @else {
                        table {
                            thead { tr { th scope="col" { "Name" } th scope="col" { "URI" } th scope="col" { "Status" } } }
                            tbody { @for r in &repositories { tr {
                                td { a href={ "/console/repositories/" (r.name) } { (r.name) } }
                                td { code { (host) "/" (r.name) } }
                                td { span class="status active" { "Active" } }
                            } } }
                        }
                    }
                    form method="post" action=(action("request-repository")) class="card inline" {
                        (csrf_field(v))
                        input type="hidden" name="project" value=(name);
                        label for="repo" { "Request new docker repo: " (name) "/" }
                        input id="repo" name="repository" required placeholder="hello-world-app";
                        button type="submit" { "Request" }
                    }
                }
                section aria-labelledby="members" {
                    h2 id="members" { "Manage access: members" }
                    table {
                        thead { tr { th scope="col" { "User" } th scope="col" { "May" } th scope="col" { "Change" } } }
                        tbody { @for (user, right) in &project.members { tr {
                            td { (user.name) }
                            td { (right.as_str()) }
                            td {
                                form method="post" action=(action("set-member")) class="inline" {
                                    (csrf_field(v))
                                    input type="hidden" name="project" value=(name);
                                    input type="hidden" name="user" value=(user.name);
                                    label for={ "right-" (user.name) } class="visually-hidden" { "Right of " (user.name) }
                                    select id={ "right-" (user.name) } name="right" {
                                        @for r in ["pull", "push", "admin", "none"] {
                                            option value=(r) selected[r == right.as_str()] { (r) }
                                        }
                                    }
                                    button type="submit" { "Save" }
                                }
                            }
                        } } }
                    }
                    form method="post" action=(action("set-member")) class="card inline" {
                        (csrf_field(v))
                        input type="hidden" name="project" value=(name);
                        label for="member" { "Add member" }
                        input id="member" name="user" required placeholder="user name";
                        label for="member-right" { "may" }
                        select id="member-right" name="right" {
                            option value="pull" { "pull" } option value="push" { "pull and push" } option value="admin" { "administer" }
                        }
                        button type="submit" { "Add" }
                    }
                }
                section aria-labelledby="robots" {
                    h2 id="robots" { "Robots" }
                    @if project.robots.is_empty() { p { "No robots yet." } } @else {
                        table {
                            thead { tr { th scope="col" { "Robot" } th scope="col" { "May" } th scope="col" { "Actions" } } }
                            tbody { @for (robot, right) in &project.robots {
                                @let short = robot.name.strip_prefix(&format!("{name}-")).unwrap_or(&robot.name);
                                tr {
                                    td { (short) }
                                    td { (right.as_str()) }
                                    td {
                                        form method="post" action=(action("rotate-robot")) class="inline" {
                                            (csrf_field(v))
                                            input type="hidden" name="project" value=(name);
                                            input type="hidden" name="robot" value=(short);
                                            button type="submit" { "Rotate key" }
                                        }
                                        form method="post" action=(action("revoke-robot")) class="inline" {
                                            (csrf_field(v))
                                            input type="hidden" name="project" value=(name);
                                            input type="hidden" name="robot" value=(short);
                                            button type="submit" { "Revoke" }
                                        }
                                    }
                                }
                            } }
                        }
                    }
                    form method="post" action=(action("create-robot")) class="card inline" {
                        (csrf_field(v))
                        input type="hidden" name="project" value=(name);
                        label for="robot" { "New robot" }
                        input id="robot" name="robot" required placeholder="ci";
                        label for="robot-right" { "may" }
                        select id="robot-right" name="right" {
                            option value="push" { "pull and push" } option value="pull" { "pull" }
                        }
                        button type="submit" { "Create robot" }
                    }
                }
            },
        ),
    )
}

fn robot_name_ok(name: &str) -> bool {
    (1..=32).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

pub async fn act(
    State(app): State<Arc<App>>,
    Path(action): Path<String>,
    request: Request,
) -> Response {
    let (v, form) = match super::poster(&app, request).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let field = |k: &str| {
        form.get(k)
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    };
    let project = field("project");
    if !valid_name(&project) {
        return refused(
            &v,
            StatusCode::BAD_REQUEST,
            "A project name is 2 to 40 lower-case letters, digits and '-'.",
        );
    }
    let back = Redirect::to(&format!("/console/projects/{project}")).into_response();
    let ask = |action: &'static str, resource: String| {
        let (app, v) = (&app, &v);
        async move {
            match allowed(app, v, action, &resource, None).await {
                Ok(true) => Ok(()),
                Ok(false) => Err(refused(
                    v,
                    StatusCode::FORBIDDEN,
                    &format!("Your policies do not allow {action} on {resource}."),
                )),
                Err(r) => Err(r),
            }
        }
    };
    let iam_error = |e: crate::iam::IamError| match e {
        crate::iam::IamError::Internal(inner) => internal(inner),
        other => refused(&v, StatusCode::CONFLICT, &other.to_string()),
    };
    match action.as_str() {
        "create-project" => {
            for right in [Right::Pull, Right::Push, Right::Admin] {
                let arn = app.projects.group_arn(&project, right);
                if let Err(r) = ask("iam:CreateGroup", arn.clone()).await {
                    return r;
                }
                if let Err(r) = ask("iam:PutGroupPolicy", arn).await {
                    return r;
                }
            }
            match app.projects.create(&project).await {
                Ok(()) => back,
                Err(e) => iam_error(e),
            }
        }
        "request-repository" => {
            let Ok(name) = format!("{project}/{}", field("repository")).parse::<RepositoryName>()
            else {
                return refused(
                    &v,
                    StatusCode::BAD_REQUEST,
                    "A repository name is lower-case letters, digits and separators.",
                );
            };
            let arn = app.access.repository_arn(name.as_str());
            match allowed(&app, &v, "ecr:CreateRepository", &arn, Some(&name)).await {
                Ok(true) => {}
                Ok(false) => {
                    return refused(
                        &v,
                        StatusCode::FORBIDDEN,
                        &format!("Your policies do not allow ecr:CreateRepository on {name}."),
                    );
                }
                Err(r) => return r,
            }
            let record = RepositoryRecord::new(
                name.clone(),
                vec![("berth:project".into(), project.clone())],
            );
            match app.registry.create_repository(record).await {
                Ok(_) => {
                    app.access.forget_repository(&name);
                    back
                }
                Err(crate::RegistryError::Internal(e)) => internal(e),
                Err(e) => refused(&v, StatusCode::CONFLICT, &e.to_string()),
            }
        }
        "set-member" => {
            let user = field("user");
            let right = Right::parse(&field("right"));
            // Each group the change touches must allow it.
            for r in [Right::Pull, Right::Push, Right::Admin] {
                let verb = if Some(r) == right {
                    "iam:AddUserToGroup"
                } else {
                    "iam:RemoveUserFromGroup"
                };
                if let Err(resp) = ask(verb, app.projects.group_arn(&project, r)).await {
                    return resp;
                }
            }
            match app.iam.entity(IamKind::User, &user).await {
                Ok(Some(_)) => {}
                Ok(None) => {
                    return refused(
                        &v,
                        StatusCode::NOT_FOUND,
                        &format!("There is no user {user}."),
                    );
                }
                Err(e) => return iam_error(e),
            }
            match app.projects.set_member(&project, &user, right).await {
                Ok(()) => back,
                Err(e) => iam_error(e),
            }
        }
        "create-robot" | "rotate-robot" | "revoke-robot" => {
            let robot = field("robot");
            if !robot_name_ok(&robot) {
                return refused(
                    &v,
                    StatusCode::BAD_REQUEST,
                    "A robot's name is 1 to 32 lower-case letters, digits and '-'.",
                );
            }
            let arn = app.projects.robot_arn(&project, &robot);
            let needed: &[&'static str] = match action.as_str() {
                "create-robot" => &[
                    "iam:CreateUser",
                    "iam:CreateAccessKey",
                    "iam:AddUserToGroup",
                ],
                "rotate-robot" => &["iam:CreateAccessKey", "iam:DeleteAccessKey"],
                _ => &[
                    "iam:DeleteAccessKey",
                    "iam:RemoveUserFromGroup",
                    "iam:DeleteUser",
                ],
            };
            for verb in needed {
                if let Err(resp) = ask(verb, arn.clone()).await {
                    return resp;
                }
            }
            let key = match action.as_str() {
                "create-robot" => {
                    let right = match field("right").as_str() {
                        "pull" => Right::Pull,
                        _ => Right::Push,
                    };
                    if let Err(resp) = ask(
                        "iam:AddUserToGroup",
                        app.projects.group_arn(&project, right),
                    )
                    .await
                    {
                        return resp;
                    }
                    app.projects
                        .create_robot(&project, &robot, right)
                        .await
                        .map(Some)
                }
                "rotate-robot" => app.projects.rotate_robot(&project, &robot).await.map(Some),
                _ => app
                    .projects
                    .revoke_robot(&project, &robot)
                    .await
                    .map(|()| None),
            };
            match key {
                Ok(Some((id, secret))) => {
                    project_page(&app, &v, &project, Some((robot, id, secret))).await
                }
                Ok(None) => back,
                Err(e) => iam_error(e),
            }
        }
        _ => html_response(
            StatusCode::NOT_FOUND,
            page("Not found", Some(&v), html! { p { "No such action." } }),
        ),
    }
}
