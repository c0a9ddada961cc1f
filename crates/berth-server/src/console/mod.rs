//! The web console at `/console`: server-rendered pages (readable without
//! JavaScript; none is needed) compiled into the binary. Sign-in with a
//! console password (an IAM login profile) or an access key; a session is a
//! random cookie (`HttpOnly`, `SameSite=Strict`, `Secure` under TLS) whose
//! hash is kept in the database, with an idle and an absolute expiry; every
//! form carries the session's CSRF token. Every action goes through the same
//! services and policy engine as the APIs, as the signed-in principal.
//!
//! Pages: repositories (and creating one), a repository (its images, how to
//! push and pull), projects (members, robots; see `projects.rs`), connected
//! identities (your access keys). Policy editors come next.

mod iam;
pub mod passwords;
mod projects;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use berth_core::RepositoryName;
use berth_store::{ConsoleSession, IamKind, RepositoryRecord, TagStatus, now_millis};
use maud::{DOCTYPE, Markup, html};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq;

use crate::App;
use crate::access::{AccessError, RequestFacts};
use crate::identity::{Principal, PrincipalKind};

const COOKIE: &str = "berth_console";
/// A session unused for this long ends.
const IDLE_MS: i64 = 30 * 60 * 1000;
/// A session ends this long after sign-in, used or not.
const ABSOLUTE_MS: i64 = 12 * 3600 * 1000;
/// `seen_at` is written at most this often per session.
const TOUCH_MS: i64 = 60 * 1000;
/// Failed sign-ins allowed per user name and per address within [`FAILURE_WINDOW_MS`].
const MAX_FAILURES: u32 = 5;
const FAILURE_WINDOW_MS: i64 = 5 * 60 * 1000;
/// The largest form accepted.
const MAX_FORM: usize = 64 * 1024;
const STYLE: &str = include_str!("style.css");

/// Failed sign-ins on this node: by `user:NAME` and `ip:ADDRESS`, how many
/// within the window that started when.
#[derive(Default)]
pub struct Throttle(Mutex<HashMap<String, (u32, i64)>>);

impl Throttle {
    fn blocked(&self, keys: &[String], now: i64) -> bool {
        let map = self.0.lock().expect("throttle lock");
        keys.iter().any(|k| {
            map.get(k)
                .is_some_and(|(n, since)| *n >= MAX_FAILURES && now - since < FAILURE_WINDOW_MS)
        })
    }

    fn failed(&self, keys: &[String], now: i64) {
        let mut map = self.0.lock().expect("throttle lock");
        if map.len() > 100_000 {
            map.clear();
        }
        for k in keys {
            let entry = map.entry(k.clone()).or_insert((0, now));
            if now - entry.1 >= FAILURE_WINDOW_MS {
                *entry = (0, now);
            }
            entry.0 += 1;
        }
    }
}

/// The console's routes, under `/console`.
pub fn router() -> axum::Router<Arc<App>> {
    use axum::routing::{get, post};
    axum::Router::new()
        .route("/console", get(home))
        .route("/console/", get(home))
        .route("/console/style.css", get(style))
        .route("/console/sign-in", get(sign_in_page).post(sign_in))
        .route("/console/sign-out", post(sign_out))
        .route("/console/repositories/{*name}", get(repository_page))
        .route("/console/identities", get(identities_page))
        .route("/console/iam", get(iam_page))
        .route("/console/iam/policies", get(iam::policies))
        .route("/console/iam/policies/{name}", get(iam::policy))
        .route("/console/iam/{kind}/{name}", get(iam::holder))
        .route("/console/actions/{action}", post(act))
        .route("/console/projects", get(projects::list))
        .route("/console/projects/{name}", get(projects::show))
        .route("/console/projects-actions/{action}", post(projects::act))
}

/// The signed-in caller of a request.
struct Visitor {
    principal: Principal,
    session: ConsoleSession,
    facts: RequestFacts,
    endpoint: String,
}

fn random_token() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the system's random source");
    URL_SAFE_NO_PAD.encode(bytes)
}

fn hashed(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn cookie_of(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_string())
}

fn session_cookie(app: &App, value: &str, max_age: i64) -> HeaderValue {
    let secure = if app.scheme == "https" {
        "; Secure"
    } else {
        ""
    };
    HeaderValue::from_str(&format!(
        "{COOKIE}={value}; Path=/console; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"
    ))
    .expect("a valid cookie")
}

/// The session's visitor, or `None` (signed out, expired, revoked).
async fn visitor(
    app: &App,
    headers: &HeaderMap,
    facts: RequestFacts,
) -> Result<Option<Visitor>, Response> {
    let Some(token) = cookie_of(headers) else {
        return Ok(None);
    };
    let id_hash = hashed(&token);
    let store = &app.passwords;
    let Some(session) = store.session(&id_hash).await.map_err(internal)? else {
        return Ok(None);
    };
    let now = now_millis();
    if now - session.seen_at > IDLE_MS || now - session.created_at > ABSOLUTE_MS {
        let _ = store.delete_session(&id_hash).await;
        return Ok(None);
    }
    let principal = match (&session.access_key_id, &session.user_name) {
        (Some(key), _) => match app.identity.principal_of_key(key).await {
            Ok(p) => p,
            Err(_) => return Ok(None),
        },
        (None, Some(user)) => match app.iam.entity(IamKind::User, user).await {
            Ok(Some(entity)) => Principal {
                arn: entity.arn,
                access_key_id: String::new(),
                kind: PrincipalKind::User { name: user.clone() },
                session_policy: None,
                expires_at: None,
            },
            _ => return Ok(None),
        },
        (None, None) => return Ok(None),
    };
    if now - session.seen_at > TOUCH_MS {
        let _ = store.touch_session(&id_hash, now).await;
    }
    Ok(Some(Visitor {
        principal,
        session,
        facts,
        endpoint: app.endpoint(headers),
    }))
}

/// The signed-in visitor of a page, or the way to the sign-in page.
fn visitor_of<'a>(
    app: &'a App,
    request: &Request,
) -> impl std::future::Future<Output = Result<Visitor, Response>> + Send + 'a {
    // What is needed of the request, taken before waiting (its body is not `Sync`).
    let facts = app.request_facts(request);
    let headers = request.headers().clone();
    async move {
        match visitor(app, &headers, facts).await? {
            Some(v) => Ok(v),
            None => Err(to_sign_in()),
        }
    }
}

fn internal(e: impl std::fmt::Display) -> Response {
    tracing::error!(error = %e, "console request failed");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        page(
            "Error",
            None,
            html! { p { "Something went wrong; it has been logged." } },
        ),
    )
        .into_response()
}

fn to_sign_in() -> Response {
    Redirect::to("/console/sign-in").into_response()
}

/// A whole page; `visitor` shows the navigation and the sign-out form.
fn page(title: &str, visitor: Option<&Visitor>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · berth" }
                link rel="stylesheet" href="/console/style.css";
            }
            body {
                header {
                    a class="brand" href="/console" { "berth" }
                    @if let Some(v) = visitor {
                        nav aria-label="Main" {
                            a href="/console" { "Repositories" }
                            a href="/console/projects" { "Projects" }
                            a href="/console/identities" { "Connected identities" }
                            a href="/console/iam" { "Users and groups" }
                        }
                        form method="post" action="/console/sign-out" class="signout" {
                            input type="hidden" name="csrf" value=(v.session.csrf);
                            span class="who" { (v.principal.arn) }
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main { h1 { (title) } (body) }
            }
        }
    }
}

fn html_response(status: StatusCode, markup: Markup) -> Response {
    let mut response = (status, markup.into_string()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response.headers_mut().insert(
        "content-security-policy",
        HeaderValue::from_static("default-src 'self'; form-action 'self'; frame-ancestors 'none'"),
    );
    response
        .headers_mut()
        .insert("x-frame-options", HeaderValue::from_static("DENY"));
    response
}

async fn style() -> Response {
    let mut response = STYLE.into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/css"));
    response
}

fn sign_in_form(message: Option<&str>) -> Markup {
    page(
        "Sign in",
        None,
        html! {
            @if let Some(m) = message { p class="error" role="alert" { (m) } }
            form method="post" action="/console/sign-in" class="card" {
                h2 { "With your console password" }
                label for="user" { "User name" }
                input id="user" name="user" autocomplete="username";
                label for="password" { "Password" }
                input id="password" name="password" type="password" autocomplete="current-password";
                button type="submit" { "Sign in" }
            }
            form method="post" action="/console/sign-in" class="card" {
                h2 { "With an access key" }
                label for="key" { "Access key ID" }
                input id="key" name="access_key_id" autocomplete="off";
                label for="secret" { "Secret access key" }
                input id="secret" name="secret_access_key" type="password" autocomplete="off";
                button type="submit" { "Sign in" }
            }
        },
    )
}

async fn sign_in_page() -> Response {
    html_response(StatusCode::OK, sign_in_form(None))
}

async fn read_form(body: axum::body::Body) -> Result<HashMap<String, String>, Response> {
    let bytes = axum::body::to_bytes(body, MAX_FORM)
        .await
        .map_err(|_| (StatusCode::PAYLOAD_TOO_LARGE, "form too large").into_response())?;
    Ok(form_urlencoded::parse(&bytes).into_owned().collect())
}

async fn sign_in(State(app): State<Arc<App>>, request: Request) -> Response {
    let facts = app.request_facts(&request);
    let form = match read_form(request.into_body()).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let field = |k: &str| {
        form.get(k)
            .map(|v| v.trim().to_string())
            .unwrap_or_default()
    };
    let (user, password, key, secret) = (
        field("user"),
        form.get("password").cloned().unwrap_or_default(),
        field("access_key_id"),
        form.get("secret_access_key").cloned().unwrap_or_default(),
    );
    let now = now_millis();
    let who = if user.is_empty() { &key } else { &user };
    let keys = vec![
        format!("user:{who}"),
        format!(
            "ip:{}",
            facts.source_ip.map(|ip| ip.to_string()).unwrap_or_default()
        ),
    ];
    if app.console_throttle.blocked(&keys, now) {
        return html_response(
            StatusCode::TOO_MANY_REQUESTS,
            sign_in_form(Some(
                "Too many failed sign-ins. Wait a few minutes and try again.",
            )),
        );
    }
    let signed_in: Option<(String, Option<String>, Option<String>)> = if !user.is_empty() {
        match app.passwords.check(&user, &password).await {
            Ok(true) => match app.iam.entity(IamKind::User, &user).await {
                Ok(Some(entity)) => Some((entity.arn, Some(user.clone()), None)),
                _ => None,
            },
            Ok(false) => None,
            Err(e) => return internal(e),
        }
    } else {
        match app.identity.authenticate_secret(&key, &secret).await {
            Ok(principal) => Some((principal.arn, None, Some(key.clone()))),
            Err(_) => None,
        }
    };
    let Some((arn, user_name, access_key_id)) = signed_in else {
        app.console_throttle.failed(&keys, now);
        tracing::info!(user = %who, "console sign-in refused");
        return html_response(
            StatusCode::UNAUTHORIZED,
            sign_in_form(Some(
                "The user name and password (or key and secret) do not match.",
            )),
        );
    };
    let token = random_token();
    let session = ConsoleSession {
        id_hash: hashed(&token),
        principal: arn,
        user_name,
        access_key_id,
        csrf: random_token(),
        created_at: now,
        seen_at: now,
    };
    if let Err(e) = app.passwords.create_session(&session).await {
        return internal(e);
    }
    let mut response = Redirect::to("/console").into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        session_cookie(&app, &token, ABSOLUTE_MS / 1000),
    );
    response
}

/// The visitor of a form post whose CSRF token matches its session's.
async fn poster(
    app: &App,
    request: Request,
) -> Result<(Visitor, HashMap<String, String>), Response> {
    let facts = app.request_facts(&request);
    let (parts, body) = request.into_parts();
    let Some(visitor) = visitor(app, &parts.headers, facts).await? else {
        return Err(to_sign_in());
    };
    let form = read_form(body).await?;
    let given = form.get("csrf").map(String::as_str).unwrap_or_default();
    if !bool::from(given.as_bytes().ct_eq(visitor.session.csrf.as_bytes())) {
        return Err(html_response(
            StatusCode::FORBIDDEN,
            page(
                "Refused",
                Some(&visitor),
                html! { p { "This form has expired or did not come from this console. Go back, reload and try again." } },
            ),
        ));
    }
    Ok((visitor, form))
}

async fn sign_out(State(app): State<Arc<App>>, request: Request) -> Response {
    let (visitor, _) = match poster(&app, request).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let _ = app.passwords.delete_session(&visitor.session.id_hash).await;
    let mut response = Redirect::to("/console/sign-in").into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, session_cookie(&app, "", 0));
    response
}

/// Whether the visitor may do `action` on `resource` (a repository's ARN when `repository`).
async fn allowed(
    app: &App,
    v: &Visitor,
    action: &str,
    resource: &str,
    repository: Option<&RepositoryName>,
) -> Result<bool, Response> {
    match app
        .access
        .check(Some(&v.principal), action, resource, repository, &v.facts)
        .await
    {
        Ok(()) => Ok(true),
        Err(AccessError::Denied(_)) => Ok(false),
        Err(AccessError::Internal(e)) => Err(internal(e)),
    }
}

fn host_of(endpoint: &str) -> &str {
    endpoint.split("://").nth(1).unwrap_or(endpoint)
}

fn when(ms: i64) -> String {
    let secs = ms / 1000;
    let days = secs.div_euclid(86400);
    let rem = secs.rem_euclid(86400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        rem / 3600,
        (rem % 3600) / 60
    )
}

fn human(bytes: u64) -> String {
    match bytes {
        n if n >= 1 << 30 => format!("{:.1} GiB", n as f64 / (1u64 << 30) as f64),
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64),
        n if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
}

fn csrf_field(v: &Visitor) -> Markup {
    html! { input type="hidden" name="csrf" value=(v.session.csrf); }
}

async fn home(State(app): State<Arc<App>>, request: Request) -> Response {
    let facts = app.request_facts(&request);
    let v = match visitor(&app, request.headers(), facts).await {
        Ok(Some(v)) => v,
        Ok(None) => return to_sign_in(),
        Err(r) => return r,
    };
    let after = request
        .uri()
        .query()
        .and_then(|q| form_urlencoded::parse(q.as_bytes()).find(|(k, _)| k == "after"))
        .map(|(_, v)| v.into_owned());
    let (records, more) = match app.registry.repositories(after.as_deref(), 100).await {
        Ok(page) => page,
        Err(e) => return internal(e),
    };
    let mut shown: Vec<RepositoryRecord> = Vec::new();
    for record in records {
        let arn = app.access.repository_arn(record.name.as_str());
        match allowed(
            &app,
            &v,
            "ecr:DescribeRepositories",
            &arn,
            Some(&record.name),
        )
        .await
        {
            Ok(true) => shown.push(record),
            Ok(false) => {}
            Err(r) => return r,
        }
    }
    let next = more
        .then(|| shown.last().map(|r| r.name.to_string()))
        .flatten();
    let host = host_of(&v.endpoint).to_string();
    html_response(
        StatusCode::OK,
        page(
            "Repositories",
            Some(&v),
            html! {
                form method="post" action="/console/actions/create-repository" class="card inline" {
                    (csrf_field(&v))
                    label for="name" { "New repository name" }
                    input id="name" name="name" required placeholder="team/app";
                    button type="submit" { "Create repository" }
                }
                @if shown.is_empty() {
                    p { "No repositories you may see yet." }
                } @else {
                    table {
                        caption { "Repositories you may see" }
                        thead { tr { th scope="col" { "Name" } th scope="col" { "URI" } th scope="col" { "Tags" } th scope="col" { "Created" } th scope="col" { "Status" } } }
                        tbody {
                            @for r in &shown {
                                tr {
                                    td { a href={ "/console/repositories/" (r.name) } { (r.name) } }
                                    td { code { (host) "/" (r.name) } }
                                    td { (r.image_tag_mutability.to_lowercase().replace('_', " ")) }
                                    td { (when(r.created_at)) }
                                    td { span class="status active" { "Active" } }
                                }
                            }
                        }
                    }
                }
                @if let Some(next) = next {
                    p { a href={ "/console?after=" (next) } { "More repositories" } }
                }
            },
        ),
    )
}

async fn repository_page(
    State(app): State<Arc<App>>,
    axum::extract::Path(name): axum::extract::Path<String>,
    request: Request,
) -> Response {
    let facts = app.request_facts(&request);
    let v = match visitor(&app, request.headers(), facts).await {
        Ok(Some(v)) => v,
        Ok(None) => return to_sign_in(),
        Err(r) => return r,
    };
    let Ok(name) = name.parse::<RepositoryName>() else {
        return html_response(
            StatusCode::NOT_FOUND,
            page("Not found", Some(&v), html! { p { "No such repository." } }),
        );
    };
    let arn = app.access.repository_arn(name.as_str());
    match allowed(&app, &v, "ecr:DescribeImages", &arn, Some(&name)).await {
        Ok(true) => {}
        Ok(false) => {
            return html_response(
                StatusCode::FORBIDDEN,
                page(
                    "Not allowed",
                    Some(&v),
                    html! { p { "Your policies do not let you see " (name) "." } },
                ),
            );
        }
        Err(r) => return r,
    }
    let query: HashMap<String, String> =
        form_urlencoded::parse(request.uri().query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    if let Some(digest) = query.get("image") {
        return image_page(&app, &v, &name, digest).await;
    }
    if query.contains_key("settings") {
        return settings_page(&app, &v, &name, Edits::default()).await;
    }
    let after = query.get("after").cloned();
    let (images, more) = match app
        .registry
        .images(
            &name,
            after.as_deref(),
            IMAGES_PER_PAGE,
            TagStatus::Any,
            berth_store::ImageStatusFilter::Any,
        )
        .await
    {
        Ok(page) => page,
        Err(crate::RegistryError::NameUnknown { .. }) => {
            return html_response(
                StatusCode::NOT_FOUND,
                page(
                    "Not found",
                    Some(&v),
                    html! { p { "No repository " (name) "." } },
                ),
            );
        }
        Err(e) => return internal(e),
    };
    let mut sizes = crate::registry::ImageSizes::default();
    let mut rows = Vec::new();
    for image in &images {
        let size = app
            .registry
            .image_size(&name, image, &mut sizes)
            .await
            .unwrap_or(0);
        rows.push((image, size));
    }
    let host = host_of(&v.endpoint).to_string();
    let region = app.access.region.clone();
    let login = format!(
        "aws ecr get-login-password --region {region} --endpoint-url {} | docker login --username AWS --password-stdin {host}",
        v.endpoint
    );
    html_response(
        StatusCode::OK,
        page(
            name.as_str(),
            Some(&v),
            html! {
                p { a href={ "/console/repositories/" (name) "?settings" } { "Lifecycle and access policies" } }
                section aria-labelledby="push" {
                    h2 id="push" { "How to push" }
                    pre { code { (login) "\n"
                        "docker tag IMAGE " (host) "/" (name) ":TAG\n"
                        "docker push " (host) "/" (name) ":TAG" } }
                }
                section aria-labelledby="images" {
                    h2 id="images" { "Images" }
                    @if rows.is_empty() { p { "No images yet." } } @else {
                        table {
                            thead { tr { th scope="col" { "Tags" } th scope="col" { "Digest" } th scope="col" { "Size" } th scope="col" { "Pushed" } th scope="col" { "Last pulled" } th scope="col" { "Pull" } } }
                            tbody {
                                @for (image, size) in &rows {
                                    tr class="image" {
                                        td { @if image.tags.is_empty() { em { "untagged" } } @else { (image.tags.join(", ")) }
                                             @if image.image_status != "ACTIVE" { " " span class="badge" { (image.image_status.to_lowercase()) } } }
                                        td { a href={ "/console/repositories/" (name) "?image=" (image.digest) } { code { (image.digest.to_string().chars().take(19).collect::<String>()) "…" } } }
                                        td { (human(*size)) }
                                        td { (when(image.pushed_at)) }
                                        td { @if let Some(at) = image.last_pulled_at { (when(at)) } @else { "never" } }
                                        td { code { "docker pull " (host) "/" (name) "@" (image.digest) } }
                                    }
                                }
                            }
                        }
                        @if more && let Some((last, _)) = rows.last() {
                            p { a rel="next" href={ "/console/repositories/" (name) "?after=" (last.digest) } { "Next " (IMAGES_PER_PAGE) " images" } }
                        }
                    }
                }
                form method="post" action="/console/actions/delete-repository" class="card danger" {
                    (csrf_field(&v))
                    input type="hidden" name="name" value=(name);
                    label { input type="checkbox" name="force" value="true"; " Delete its images too" }
                    button type="submit" { "Delete repository" }
                }
            },
        ),
    )
}

/// `GET /console/iam`: the account's users (their groups and managed
/// policies), groups (members, policies) and roles, and forms to create a
/// user or group, add a user to a group, attach an AWS managed policy, and
/// delete a user — each decided by the same IAM actions as `aws iam`.
async fn iam_page(State(app): State<Arc<App>>, request: Request) -> Response {
    let facts = app.request_facts(&request);
    let v = match visitor(&app, request.headers(), facts).await {
        Ok(Some(v)) => v,
        Ok(None) => return to_sign_in(),
        Err(r) => return r,
    };
    iam_view(&app, &v, None).await
}

/// An IAM entity's ARN before it exists (path `/`).
fn iam_arn(app: &App, kind: IamKind, name: &str) -> String {
    app.iam.arn(kind, "/", name)
}

async fn iam_view(app: &App, v: &Visitor, error: Option<String>) -> Response {
    for action in ["iam:ListUsers", "iam:ListGroups", "iam:ListRoles"] {
        match allowed(app, v, action, "*", None).await {
            Ok(true) => {}
            Ok(false) => {
                return html_response(
                    StatusCode::FORBIDDEN,
                    page(
                        "Not allowed",
                        Some(v),
                        html! { p { "Your policies do not allow " (action) "." } },
                    ),
                );
            }
            Err(r) => return r,
        }
    }
    let listed = async {
        let users = app
            .iam
            .list_entities(IamKind::User, "/", None, 1000)
            .await?;
        let groups = app
            .iam
            .list_entities(IamKind::Group, "/", None, 1000)
            .await?;
        let roles = app
            .iam
            .list_entities(IamKind::Role, "/", None, 1000)
            .await?;
        let mut user_rows = Vec::new();
        for user in users {
            let groups = app.iam.groups_of(&user.name).await?;
            let policies = app.iam.attached_policies(IamKind::User, &user.name).await?;
            user_rows.push((user, groups, policies));
        }
        let mut group_rows = Vec::new();
        for group in groups {
            let members = app.iam.group_members(&group.name).await?;
            let policies = app
                .iam
                .attached_policies(IamKind::Group, &group.name)
                .await?;
            group_rows.push((group, members, policies));
        }
        let mut role_rows = Vec::new();
        for role in roles {
            let policies = app.iam.attached_policies(IamKind::Role, &role.name).await?;
            role_rows.push((role, policies));
        }
        Ok::<_, crate::iam::IamError>((user_rows, group_rows, role_rows))
    };
    let (users, groups, roles) = match listed.await {
        Ok(lists) => lists,
        Err(e) => return internal(e),
    };
    let names = |policies: &[crate::iam::AttachedPolicy]| {
        policies
            .iter()
            .map(|p| p.name.clone())
            .collect::<Vec<_>>()
            .join(", ")
    };
    html_response(
        StatusCode::OK,
        page(
            "Users and groups",
            Some(v),
            html! {
                @if let Some(error) = &error { p class="error" role="alert" { (error) } }
                section aria-labelledby="users" {
                    h2 id="users" { "Users" }
                    table {
                        thead { tr { th scope="col" { "User" } th scope="col" { "Groups" } th scope="col" { "Managed policies" } th scope="col" { "Created" } th scope="col" { span class="visually-hidden" { "Actions" } } } }
                        tbody {
                            @for (user, groups, policies) in &users {
                                tr class="user" {
                                    th scope="row" { a href={ "/console/iam/users/" (user.name) } { (user.name) } }
                                    td { (groups.iter().map(|g| g.name.clone()).collect::<Vec<_>>().join(", ")) }
                                    td { (names(policies)) }
                                    td { (when(user.created_at)) }
                                    td {
                                        form method="post" action="/console/actions/iam-delete-user" class="inline danger" {
                                            (csrf_field(v))
                                            input type="hidden" name="user" value=(user.name);
                                            button type="submit" aria-label={ "Delete " (user.name) } { "Delete" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                    form method="post" action="/console/actions/iam-create-user" class="card" {
                        (csrf_field(v))
                        label for="new-user" { "New user" }
                        input id="new-user" name="user" required pattern="[A-Za-z0-9+=,.@_-]{1,64}";
                        button type="submit" { "Create user" }
                    }
                    form method="post" action="/console/actions/iam-attach" class="card" {
                        (csrf_field(v))
                        label for="attach-user" { "User" }
                        select id="attach-user" name="user" { @for (user, _, _) in &users { option { (user.name) } } }
                        label for="attach-policy" { "AWS managed policy" }
                        select id="attach-policy" name="policy" {
                            @for policy in crate::access::managed::MANAGED_POLICIES { option value=(policy.arn()) { (policy.name) } }
                        }
                        button type="submit" { "Attach" }
                    }
                }
                section aria-labelledby="groups" {
                    h2 id="groups" { "Groups" }
                    table {
                        thead { tr { th scope="col" { "Group" } th scope="col" { "Members" } th scope="col" { "Managed policies" } } }
                        tbody {
                            @for (group, members, policies) in &groups {
                                tr class="group" {
                                    th scope="row" { a href={ "/console/iam/groups/" (group.name) } { (group.name) } }
                                    td { (members.iter().map(|m| m.name.clone()).collect::<Vec<_>>().join(", ")) }
                                    td { (names(policies)) }
                                }
                            }
                        }
                    }
                    form method="post" action="/console/actions/iam-create-group" class="card" {
                        (csrf_field(v))
                        label for="new-group" { "New group" }
                        input id="new-group" name="group" required pattern="[A-Za-z0-9+=,.@_-]{1,128}";
                        button type="submit" { "Create group" }
                    }
                    form method="post" action="/console/actions/iam-add-to-group" class="card" {
                        (csrf_field(v))
                        label for="member-user" { "User" }
                        select id="member-user" name="user" { @for (user, _, _) in &users { option { (user.name) } } }
                        label for="member-group" { "Group" }
                        select id="member-group" name="group" { @for (group, _, _) in &groups { option { (group.name) } } }
                        button type="submit" { "Add to group" }
                    }
                }
                p { a href="/console/iam/policies" { "Customer managed policies →" } }
                section aria-labelledby="roles" {
                    h2 id="roles" { "Roles" }
                    @if roles.is_empty() { p { "No roles." } } @else {
                        table {
                            thead { tr { th scope="col" { "Role" } th scope="col" { "Managed policies" } } }
                            tbody {
                                @for (role, policies) in &roles {
                                    tr class="role" { th scope="row" { a href={ "/console/iam/roles/" (role.name) } { (role.name) } } td { (names(policies)) } }
                                }
                            }
                        }
                    }
                    (iam::new_role_form(v, &app.identity.account_id))
                }
            },
        ),
    )
}

/// What a settings form sent back: texts to show again, a preview, a message.
#[derive(Default)]
struct Edits {
    lifecycle: Option<String>,
    policy: Option<String>,
    preview: Option<Vec<crate::lifecycle::Expired>>,
    error: Option<String>,
}

/// A repository's lifecycle policy (with a preview of what it would do
/// now, evaluated as enforcement does) and its repository policy, each
/// shown to whoever may read it and saved by whoever may set it.
async fn settings_page(app: &App, v: &Visitor, name: &RepositoryName, edits: Edits) -> Response {
    let arn = app.access.repository_arn(name.as_str());
    let mut may = HashMap::new();
    for action in [
        "ecr:GetLifecyclePolicy",
        "ecr:PutLifecyclePolicy",
        "ecr:GetRepositoryPolicy",
        "ecr:SetRepositoryPolicy",
    ] {
        match allowed(app, v, action, &arn, Some(name)).await {
            Ok(yes) => {
                may.insert(action, yes);
            }
            Err(r) => return r,
        }
    }
    let lifecycle = match edits.lifecycle {
        Some(text) => Some(text),
        None if may["ecr:GetLifecyclePolicy"] => match app.lifecycle.policy(name).await {
            Ok(record) => Some(record.text),
            Err(crate::lifecycle::LifecycleError::PolicyNotFound) => None,
            Err(crate::lifecycle::LifecycleError::RepositoryNotFound) => {
                return html_response(
                    StatusCode::NOT_FOUND,
                    page(
                        "Not found",
                        Some(v),
                        html! { p { "No repository " (name) "." } },
                    ),
                );
            }
            Err(e) => return internal(e),
        },
        None => None,
    };
    let policy = match edits.policy {
        Some(text) => Some(text),
        None if may["ecr:GetRepositoryPolicy"] => match app.access.repository_policy(name).await {
            Ok(text) => Some(text),
            Err(crate::access::policies::PolicyError::PolicyNotFound) => None,
            Err(e) => return internal(e),
        },
        None => None,
    };
    html_response(
        StatusCode::OK,
        page(
            &format!("{name}: policies"),
            Some(v),
            html! {
                p { a href={ "/console/repositories/" (name) } { "← " (name) } }
                @if let Some(error) = &edits.error { p class="error" role="alert" { (error) } }
                section aria-labelledby="lifecycle" {
                    h2 id="lifecycle" { "Lifecycle policy" }
                    @if !may["ecr:GetLifecyclePolicy"] { p { "Your policies do not let you read it." } } @else {
                        form method="post" action="/console/actions/lifecycle" class="card" {
                            (csrf_field(v))
                            input type="hidden" name="name" value=(name);
                            label for="lifecycle-text" { "Rules (ECR's lifecycle policy JSON)" }
                            textarea id="lifecycle-text" name="text" rows="12" cols="80" { (lifecycle.clone().unwrap_or_default()) }
                            button type="submit" name="do" value="preview" { "Preview" }
                            @if may["ecr:PutLifecyclePolicy"] { " " button type="submit" name="do" value="save" { "Save" } }
                        }
                        @if let Some(preview) = &edits.preview {
                            section aria-labelledby="preview" {
                                h3 id="preview" { "What it would do now" }
                                @if preview.is_empty() { p { "Nothing: every image stays." } } @else {
                                    table {
                                        thead { tr { th scope="col" { "Image" } th scope="col" { "Tags" } th scope="col" { "Pushed" } th scope="col" { "Action" } th scope="col" { "Rule" } } }
                                        tbody {
                                            @for item in preview {
                                                tr class="preview" {
                                                    td { code { (item.image.digest.chars().take(19).collect::<String>()) "…" } }
                                                    td { (item.image.tags.join(", ")) }
                                                    td { (when(item.image.pushed_at)) }
                                                    td { @match item.action { berth_core::lifecycle::Action::Expire => "expire", berth_core::lifecycle::Action::Archive => "archive" } }
                                                    td { (item.rule_priority) }
                                                }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
                section aria-labelledby="policy" {
                    h2 id="policy" { "Repository policy" }
                    @if !may["ecr:GetRepositoryPolicy"] { p { "Your policies do not let you read it." } } @else {
                        form method="post" action="/console/actions/repository-policy" class="card" {
                            (csrf_field(v))
                            input type="hidden" name="name" value=(name);
                            label for="policy-text" { "Who else may do what here (an IAM resource policy)" }
                            textarea id="policy-text" name="text" rows="12" cols="80" { (policy.clone().unwrap_or_default()) }
                            @if may["ecr:SetRepositoryPolicy"] { button type="submit" { "Save" } }
                        }
                    }
                }
            },
        ),
    )
}

/// Images on one page of a repository's listing.
const IMAGES_PER_PAGE: u32 = 100;
/// Findings listed on an image's page (the counts cover them all).
const FINDINGS_SHOWN: usize = 200;
/// The largest image configuration read for its page.
const CONFIG_LIMIT: u64 = 1 << 20;

/// One image: what it is made of (layers and configuration, or the
/// platforms of an index), its scan findings, and what refers to it.
async fn image_page(app: &App, v: &Visitor, name: &RepositoryName, digest: &str) -> Response {
    let not_found = || {
        html_response(
            StatusCode::NOT_FOUND,
            page(
                "Not found",
                Some(v),
                html! { p { "No image " (digest) " in " (name) "." } },
            ),
        )
    };
    let Ok(digest) = digest.parse::<berth_core::Digest>() else {
        return not_found();
    };
    let image = match app.registry.find_image(name, Some(&digest), None).await {
        Ok(Some(image)) => image,
        Ok(None) | Err(crate::RegistryError::NameUnknown { .. }) => return not_found(),
        Err(e) => return internal(e),
    };
    let manifest: serde_json::Value = serde_json::from_slice(&image.content).unwrap_or_default();
    let size = app
        .registry
        .image_size(name, &image, &mut crate::registry::ImageSizes::default())
        .await
        .unwrap_or(0);
    // The configuration, read when it is small, for what the image runs.
    let mut config = serde_json::Value::Null;
    if let Some(config_digest) = manifest["config"]["digest"]
        .as_str()
        .and_then(|d| d.parse::<berth_core::Digest>().ok())
        && manifest["config"]["size"]
            .as_u64()
            .is_some_and(|n| n <= CONFIG_LIMIT)
        && let Ok(mut stream) = app.registry.read_blob(&config_digest, None).await
    {
        use futures_util::StreamExt as _;
        let mut bytes = Vec::new();
        while let Some(Ok(piece)) = stream.next().await {
            bytes.extend_from_slice(&piece);
            if bytes.len() as u64 > CONFIG_LIMIT {
                break;
            }
        }
        config = serde_json::from_slice(&bytes).unwrap_or_default();
    }
    let scan = app.scanning.scan(name, &digest).await.ok().flatten();
    let referrers = app
        .registry
        .referrers(name, &digest, None)
        .await
        .unwrap_or_default();
    let host = host_of(&v.endpoint).to_string();
    let text = |value: &serde_json::Value| match value {
        serde_json::Value::Null => String::new(),
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Array(items) => items
            .iter()
            .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_string))
            .collect::<Vec<_>>()
            .join(" "),
        other => other.to_string(),
    };
    let run = &config["config"];
    let mut findings: Vec<&crate::scanning::StoredFinding> = scan
        .as_ref()
        .and_then(|s| s.result.as_ref())
        .map(|r| r.findings.iter().collect())
        .unwrap_or_default();
    let rank = |s: &str| {
        ["CRITICAL", "HIGH", "MEDIUM", "LOW", "INFORMATIONAL"]
            .iter()
            .position(|x| *x == s)
            .unwrap_or(5)
    };
    findings.sort_by(|a, b| {
        rank(&a.severity)
            .cmp(&rank(&b.severity))
            .then(a.name.cmp(&b.name))
    });
    let title = format!(
        "{name}@{}…",
        digest.to_string().chars().take(19).collect::<String>()
    );
    html_response(
        StatusCode::OK,
        page(
            &title,
            Some(v),
            html! {
                p { a href={ "/console/repositories/" (name) } { "← " (name) } }
                dl class="facts" {
                    dt { "Digest" } dd { code { (digest) } }
                    dt { "Tags" } dd { @if image.tags.is_empty() { em { "untagged" } } @else { (image.tags.join(", ")) } }
                    dt { "Status" } dd { (image.image_status) }
                    dt { "Media type" } dd { code { (image.media_type) } }
                    @if let Some(artifact) = &image.artifact_type { dt { "Artifact type" } dd { code { (artifact) } } }
                    dt { "Size" } dd { (human(size)) }
                    dt { "Pushed" } dd { (when(image.pushed_at)) }
                    dt { "Last pulled" } dd { @if let Some(at) = image.last_pulled_at { (when(at)) } @else { "never" } }
                    dt { "Pull" } dd { code { "docker pull " (host) "/" (name) "@" (digest) } }
                }
                @if let Some(children) = manifest["manifests"].as_array() {
                    section aria-labelledby="platforms" {
                        h2 id="platforms" { "Platforms" }
                        table {
                            thead { tr { th scope="col" { "Platform" } th scope="col" { "Digest" } th scope="col" { "Size" } } }
                            tbody {
                                @for child in children {
                                    tr {
                                        td { (text(&child["platform"]["os"])) "/" (text(&child["platform"]["architecture"]))
                                             @if !child["platform"]["variant"].is_null() { "/" (text(&child["platform"]["variant"])) } }
                                        td { a href={ "/console/repositories/" (name) "?image=" (text(&child["digest"])) } { code { (text(&child["digest"])) } } }
                                        td { (human(child["size"].as_u64().unwrap_or(0))) }
                                    }
                                }
                            }
                        }
                    }
                }
                @if !config.is_null() {
                    section aria-labelledby="config" {
                        h2 id="config" { "Configuration" }
                        dl class="facts" {
                            dt { "Platform" } dd { (text(&config["os"])) "/" (text(&config["architecture"])) }
                            @if !config["created"].is_null() { dt { "Created" } dd { (text(&config["created"])) } }
                            @if !run["Entrypoint"].is_null() { dt { "Entrypoint" } dd { code { (text(&run["Entrypoint"])) } } }
                            @if !run["Cmd"].is_null() { dt { "Command" } dd { code { (text(&run["Cmd"])) } } }
                            @if !run["WorkingDir"].is_null() { dt { "Working directory" } dd { code { (text(&run["WorkingDir"])) } } }
                            @if !run["User"].is_null() { dt { "User" } dd { code { (text(&run["User"])) } } }
                            @if let Some(ports) = run["ExposedPorts"].as_object() { dt { "Ports" } dd { (ports.keys().cloned().collect::<Vec<_>>().join(", ")) } }
                        }
                    }
                }
                @if let Some(layers) = manifest["layers"].as_array() {
                    section aria-labelledby="layers" {
                        h2 id="layers" { "Layers" }
                        table {
                            thead { tr { th scope="col" { "#" } th scope="col" { "Digest" } th scope="col" { "Media type" } th scope="col" { "Size" } } }
                            tbody {
                                @for (i, layer) in layers.iter().enumerate() {
                                    tr class="layer" {
                                        td { (i + 1) }
                                        td { code { (text(&layer["digest"])) } }
                                        td { code { (text(&layer["mediaType"])) } }
                                        td { (human(layer["size"].as_u64().unwrap_or(0))) }
                                    }
                                }
                            }
                        }
                    }
                }
                section aria-labelledby="findings" {
                    h2 id="findings" { "Vulnerabilities" }
                    @match &scan {
                        None => p { "Not scanned." }
                        Some(scan) => {
                            p { "Scan " (scan.record.status.to_lowercase())
                                @if let Some(at) = scan.record.completed_at { ", " (when(at)) } "." }
                            @if let Some(result) = &scan.result {
                                @if result.findings.is_empty() { p { "No findings." } } @else {
                                    p class="counts" {
                                        @for (severity, n) in result.severity_counts() { span class="badge" { (severity.to_lowercase()) ": " (n) } " " }
                                    }
                                    table {
                                        thead { tr { th scope="col" { "Severity" } th scope="col" { "Finding" } th scope="col" { "Package" } th scope="col" { "Fixed in" } } }
                                        tbody {
                                            @for f in findings.iter().take(FINDINGS_SHOWN) {
                                                tr class="finding" {
                                                    td { (f.severity.to_lowercase()) }
                                                    td { @if f.uri.starts_with("https://") || f.uri.starts_with("http://") { a href=(f.uri) rel="noreferrer" { (f.name) } } @else { (f.name) } }
                                                    td { (f.package_name) " " (f.package_version) }
                                                    td { (f.fixed_in.as_deref().unwrap_or("")) }
                                                }
                                            }
                                        }
                                    }
                                    @if findings.len() > FINDINGS_SHOWN { p { "The first " (FINDINGS_SHOWN) " of " (findings.len()) " findings, most severe first." } }
                                }
                            }
                        }
                    }
                }
                @if !referrers.is_empty() {
                    section aria-labelledby="referrers" {
                        h2 id="referrers" { "Signatures and other referrers" }
                        table {
                            thead { tr { th scope="col" { "Artifact type" } th scope="col" { "Digest" } th scope="col" { "Size" } } }
                            tbody {
                                @for r in &referrers {
                                    tr class="referrer" {
                                        td { code { (r.artifact_type.as_deref().unwrap_or(&r.media_type)) } }
                                        td { a href={ "/console/repositories/" (name) "?image=" (r.digest) } { code { (r.digest) } } }
                                        td { (human(r.size)) }
                                    }
                                }
                            }
                        }
                    }
                }
            },
        ),
    )
}

async fn identities_page(State(app): State<Arc<App>>, request: Request) -> Response {
    let facts = app.request_facts(&request);
    let v = match visitor(&app, request.headers(), facts).await {
        Ok(Some(v)) => v,
        Ok(None) => return to_sign_in(),
        Err(r) => return r,
    };
    identities(&app, &v, None).await
}

/// The visitor's access keys, with a new key's secret shown once.
async fn identities(app: &App, v: &Visitor, new_key: Option<(String, String)>) -> Response {
    let keys = match allowed(app, v, "iam:ListAccessKeys", &v.principal.arn, None).await {
        Ok(true) => match app.iam.access_keys(&v.principal.arn).await {
            Ok(keys) => Some(keys),
            Err(e) => return internal(e),
        },
        Ok(false) => None,
        Err(r) => return r,
    };
    html_response(
        StatusCode::OK,
        page(
            "Connected identities",
            Some(v),
            html! {
                p { "Signed in as " code { (v.principal.arn) } }
                @if let Some((id, secret)) = &new_key {
                    div class="card notice" role="status" {
                        h2 { "Your new access key" }
                        p { "The secret is shown this once: copy it now." }
                        dl {
                            dt { "Access key ID" } dd { code id="new-key-id" { (id) } }
                            dt { "Secret access key" } dd { code id="new-key-secret" { (secret) } }
                        }
                    }
                }
                @match &keys {
                    None => p { "Your policies do not let you list your access keys." },
                    Some(keys) => {
                        table {
                            caption { "Your access keys" }
                            thead { tr { th scope="col" { "Access key ID" } th scope="col" { "Status" } th scope="col" { "Created" } th scope="col" { "Actions" } } }
                            tbody {
                                @for k in keys {
                                    tr {
                                        td { code { (k.id) } }
                                        td { @if k.active { "Active" } @else { "Inactive" } }
                                        td { (when(k.created_at)) }
                                        td {
                                            form method="post" action="/console/actions/toggle-key" class="inline" {
                                                (csrf_field(v))
                                                input type="hidden" name="id" value=(k.id);
                                                button type="submit" { @if k.active { "Deactivate" } @else { "Activate" } }
                                            }
                                            form method="post" action="/console/actions/delete-key" class="inline" {
                                                (csrf_field(v))
                                                input type="hidden" name="id" value=(k.id);
                                                button type="submit" { "Delete" }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
                form method="post" action="/console/actions/create-key" class="card inline" {
                    (csrf_field(v))
                    button type="submit" { "Create access key" }
                }
            },
        ),
    )
}

/// The page an action that was refused or failed shows.
fn refused(v: &Visitor, status: StatusCode, message: &str) -> Response {
    html_response(
        status,
        page(
            "Not done",
            Some(v),
            html! { p class="error" role="alert" { (message) } p { a href="/console" { "Back to repositories" } } },
        ),
    )
}

/// Goes on only if `v` may do `permission` on `resource`: otherwise the
/// page that says so (`shown` names the resource to the reader).
async fn require(
    app: &App,
    v: &Visitor,
    permission: &str,
    resource: &str,
    repository: Option<&RepositoryName>,
    shown: &str,
) -> Result<(), Response> {
    match allowed(app, v, permission, resource, repository).await? {
        true => Ok(()),
        false => Err(refused(
            v,
            StatusCode::FORBIDDEN,
            &format!("Your policies do not allow {permission} on {shown}."),
        )),
    }
}

async fn act(
    State(app): State<Arc<App>>,
    axum::extract::Path(action): axum::extract::Path<String>,
    request: Request,
) -> Response {
    if request.method() != Method::POST {
        return StatusCode::METHOD_NOT_ALLOWED.into_response();
    }
    let (v, form) = match poster(&app, request).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let field = |k: &str| {
        form.get(k)
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    };
    match action.as_str() {
        "create-repository" | "delete-repository" => {
            let Ok(name) = field("name").parse::<RepositoryName>() else {
                return refused(
                    &v,
                    StatusCode::BAD_REQUEST,
                    "A repository name is lower-case letters, digits and separators (`.`, `_`, `-`, `/`), 2 to 256 characters.",
                );
            };
            let arn = app.access.repository_arn(name.as_str());
            let creating = action == "create-repository";
            let permission = if creating {
                "ecr:CreateRepository"
            } else {
                "ecr:DeleteRepository"
            };
            if let Err(r) = require(&app, &v, permission, &arn, Some(&name), name.as_str()).await {
                return r;
            }
            let done = if creating {
                let record = RepositoryRecord::new(name.clone(), Vec::new());
                app.registry.create_repository(record).await.map(drop)
            } else {
                app.registry
                    .delete_repository(&name, field("force") == "true")
                    .await
                    .map(drop)
            };
            app.access.forget_repository(&name);
            match done {
                Ok(()) if creating => {
                    Redirect::to(&format!("/console/repositories/{name}")).into_response()
                }
                Ok(()) => Redirect::to("/console").into_response(),
                Err(crate::RegistryError::Internal(e)) => internal(e),
                Err(e) => refused(&v, StatusCode::CONFLICT, &e.to_string()),
            }
        }
        "lifecycle" | "repository-policy" => {
            let Ok(name) = field("name").parse::<RepositoryName>() else {
                return refused(&v, StatusCode::BAD_REQUEST, "No such repository.");
            };
            let text = form.get("text").cloned().unwrap_or_default();
            let arn = app.access.repository_arn(name.as_str());
            let permission = match (action.as_str(), field("do").as_str()) {
                ("lifecycle", "preview") => "ecr:StartLifecyclePolicyPreview",
                ("lifecycle", _) => "ecr:PutLifecyclePolicy",
                _ => "ecr:SetRepositoryPolicy",
            };
            if let Err(r) = require(&app, &v, permission, &arn, Some(&name), name.as_str()).await {
                return r;
            }
            let saved = match permission {
                "ecr:StartLifecyclePolicyPreview" => {
                    let edits = match berth_core::lifecycle::Policy::parse(&text) {
                        Err(e) => Edits {
                            error: Some(e.to_string()),
                            ..Edits::default()
                        },
                        Ok(policy) => {
                            match app.lifecycle.evaluate(&name, &policy, now_millis()).await {
                                Ok(preview) => Edits {
                                    preview: Some(preview),
                                    ..Edits::default()
                                },
                                Err(e) => return internal(e),
                            }
                        }
                    };
                    return settings_page(
                        &app,
                        &v,
                        &name,
                        Edits {
                            lifecycle: Some(text),
                            ..edits
                        },
                    )
                    .await;
                }
                "ecr:PutLifecyclePolicy" => app
                    .lifecycle
                    .put_policy(&name, &text)
                    .await
                    .map_err(|e| e.to_string()),
                _ => {
                    let done = app
                        .access
                        .set_repository_policy(&name, &text)
                        .await
                        .map_err(|e| e.to_string());
                    app.access.forget_repository(&name);
                    done
                }
            };
            match saved {
                Ok(()) => {
                    Redirect::to(&format!("/console/repositories/{name}?settings")).into_response()
                }
                Err(error) => {
                    let mut edits = Edits {
                        error: Some(error),
                        ..Edits::default()
                    };
                    if action == "lifecycle" {
                        edits.lifecycle = Some(text);
                    } else {
                        edits.policy = Some(text);
                    }
                    settings_page(&app, &v, &name, edits).await
                }
            }
        }
        other
            if other.starts_with("iam-")
                && !matches!(
                    other,
                    "iam-create-user"
                        | "iam-create-group"
                        | "iam-delete-user"
                        | "iam-attach"
                        | "iam-add-to-group"
                ) =>
        {
            match iam::act(&app, &v, other, &form).await {
                Some(response) => response,
                None => refused(&v, StatusCode::NOT_FOUND, "No such action."),
            }
        }
        "iam-create-user" | "iam-create-group" | "iam-delete-user" | "iam-attach"
        | "iam-add-to-group" => {
            let (user, group) = (field("user"), field("group"));
            // IAM's names: letters, digits and `+=,.@_-`, 64 (users) or 128 (groups) at most.
            let name_ok = |name: &str, max: usize| {
                !name.is_empty()
                    && name.len() <= max
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b))
            };
            let needs_user = action != "iam-create-group";
            let needs_group = matches!(action.as_str(), "iam-create-group" | "iam-add-to-group");
            if (needs_user && !name_ok(&user, 64)) || (needs_group && !name_ok(&group, 128)) {
                return iam_view(
                    &app,
                    &v,
                    Some("A name is letters, digits and +=,.@_- (users 64 characters at most, groups 128).".into()),
                )
                .await;
            }
            let (permission, resource) = match action.as_str() {
                "iam-create-user" => ("iam:CreateUser", iam_arn(&app, IamKind::User, &user)),
                "iam-create-group" => ("iam:CreateGroup", iam_arn(&app, IamKind::Group, &group)),
                "iam-delete-user" => ("iam:DeleteUser", iam_arn(&app, IamKind::User, &user)),
                "iam-attach" => ("iam:AttachUserPolicy", iam_arn(&app, IamKind::User, &user)),
                _ => ("iam:AddUserToGroup", iam_arn(&app, IamKind::Group, &group)),
            };
            if let Err(r) = require(&app, &v, permission, &resource, None, &resource).await {
                return r;
            }
            let done = match action.as_str() {
                "iam-create-user" => app
                    .iam
                    .create_user(crate::iam::NewUser {
                        name: user,
                        path: "/".into(),
                        tags: Vec::new(),
                    })
                    .await
                    .map(drop),
                "iam-create-group" => app
                    .iam
                    .create_group(crate::iam::NewGroup {
                        name: group,
                        path: "/".into(),
                    })
                    .await
                    .map(drop),
                "iam-delete-user" => app.iam.delete_entity(IamKind::User, &user).await,
                "iam-attach" => {
                    app.iam
                        .attach_policy(IamKind::User, &user, &field("policy"))
                        .await
                }
                _ => app.iam.add_user_to_group(&group, &user).await,
            };
            match done {
                Ok(()) => Redirect::to("/console/iam").into_response(),
                Err(crate::iam::IamError::Internal(e)) => internal(e),
                Err(e) => iam_view(&app, &v, Some(e.to_string())).await,
            }
        }
        "create-key" | "toggle-key" | "delete-key" => {
            let permission = match action.as_str() {
                "create-key" => "iam:CreateAccessKey",
                "toggle-key" => "iam:UpdateAccessKey",
                _ => "iam:DeleteAccessKey",
            };
            match allowed(&app, &v, permission, &v.principal.arn, None).await {
                Ok(true) => {}
                Ok(false) => {
                    return refused(
                        &v,
                        StatusCode::FORBIDDEN,
                        &format!("Your policies do not allow {permission} on your own user."),
                    );
                }
                Err(r) => return r,
            }
            let owner = v.principal.arn.clone();
            let id = field("id");
            let done = match action.as_str() {
                "create-key" => match app.iam.create_access_key(&owner).await {
                    Ok(created) => {
                        return identities(&app, &v, Some((created.key.id, created.secret))).await;
                    }
                    Err(e) => Err(e),
                },
                "toggle-key" => {
                    let active = app
                        .iam
                        .access_keys(&owner)
                        .await
                        .map(|keys| keys.iter().any(|k| k.id == id && k.active));
                    match active {
                        Ok(active) => app.iam.set_access_key_active(&owner, &id, !active).await,
                        Err(e) => Err(e),
                    }
                }
                _ => app.iam.delete_access_key(&owner, &id).await,
            };
            match done {
                Ok(()) => Redirect::to("/console/identities").into_response(),
                Err(crate::iam::IamError::Internal(e)) => internal(e),
                Err(e) => refused(&v, StatusCode::CONFLICT, &e.to_string()),
            }
        }
        _ => html_response(
            StatusCode::NOT_FOUND,
            page("Not found", Some(&v), html! { p { "No such action." } }),
        ),
    }
}
