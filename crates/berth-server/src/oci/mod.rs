//! The OCI Distribution front door (`/v2/…`): translates HTTP to registry
//! calls and registry errors to the spec's error bodies. No registry logic
//! lives here.

pub mod error;
pub mod route;

use std::io;
use std::ops::Range;
use std::sync::Arc;

use axum::body::{Body, HttpBody};
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use berth_core::manifest::{MAX_MANIFEST_BYTES, ManifestError, OCI_INDEX};
use berth_core::{Algorithm, Digest, RepositoryName, Tag};
use futures_util::TryStreamExt;
use serde_json::json;

use crate::App;
use crate::access::{AccessError, RequestFacts};
use crate::identity::{AuthError, Principal};
use crate::registry::{Registry, RegistryError};
use base64::Engine as _;
use berth_store::now_millis;
use error::{OciError, range_header};
use route::Route;

const API_VERSION: HeaderName = HeaderName::from_static("docker-distribution-api-version");
const CONTENT_DIGEST: HeaderName = HeaderName::from_static("docker-content-digest");
const UPLOAD_UUID: HeaderName = HeaderName::from_static("docker-upload-uuid");
const OCI_SUBJECT: HeaderName = HeaderName::from_static("oci-subject");
const OCI_TAG: HeaderName = HeaderName::from_static("oci-tag");
const OCI_FILTERS_APPLIED: HeaderName = HeaderName::from_static("oci-filters-applied");

type Answer = Result<Response, OciError>;

/// Serves every `/v2/` request.
pub async fn serve(app: Arc<App>, request: Request) -> Response {
    let operation = route::parse(request.uri().path())
        .ok()
        .flatten()
        .filter(|_| {
            matches!(
                *request.method(),
                Method::GET
                    | Method::HEAD
                    | Method::PUT
                    | Method::POST
                    | Method::PATCH
                    | Method::DELETE
            )
        })
        .map(|r| format!("{} {}", r.kind(), request.method()));
    let mut response = handle(&app, request)
        .await
        .unwrap_or_else(|refusal| refusal);
    if let Some(operation) = operation {
        response
            .extensions_mut()
            .insert(crate::wrapper::Operation(operation));
    }
    response
        .headers_mut()
        .insert(API_VERSION, HeaderValue::from_static("registry/2.0"));
    response
}

/// Who asks, as far as the handlers need to know.
struct Asker<'a> {
    principal: Option<&'a Principal>,
    facts: &'a RequestFacts,
}

async fn handle(app: &App, request: Request) -> Result<Response, Response> {
    let presigned = matches!(*request.method(), Method::GET | Method::HEAD)
        && request.uri().query().is_some_and(|q| {
            app.identity
                .check_presigned(request.uri().path(), q, now_millis() / 1000)
        });
    let principal = if presigned {
        Some(Principal::presigned())
    } else {
        authenticate(app, request.headers()).await?
    };
    if let Some(p) = &principal {
        tracing::Span::current().record("principal", tracing::field::display(&p.arn));
    }
    let route = match route::parse_request(request.method(), request.uri().path()) {
        Ok(Some(route)) => route,
        // Anonymous callers learn nothing before they log in.
        _ if principal.is_none() => return Err(challenge(app, request.headers())),
        Ok(None) => return Err(OciError::not_found().into_response()),
        Err(e) => return Err(e.into_response()),
    };
    if let Some(name) = route.repository() {
        tracing::Span::current().record("repository", tracing::field::display(name));
    }
    let facts = app.request_facts(&request);
    authorize(app, principal.as_ref(), &route, request.method(), &facts)
        .await
        .map_err(|refusal| match refusal {
            Refusal::LogIn => challenge(app, request.headers()),
            Refusal::Error(e) => e.into_response(),
        })?;
    let asker = Asker {
        principal: principal.as_ref(),
        facts: &facts,
    };
    let work = dispatch(app, &asker, route, request);
    let (response, stale) = match &principal {
        // Reads that miss may import through the pull-through cache, as this caller.
        Some(p) => crate::pullthrough::as_caller(p.clone(), facts.clone(), work).await,
        None => (work.await, false),
    };
    let mut response = response.unwrap_or_else(IntoResponse::into_response);
    if stale {
        response.headers_mut().insert(
            axum::http::header::WARNING,
            axum::http::HeaderValue::from_static(crate::pullthrough::STALE_WARNING),
        );
    }
    Ok(response)
}

enum Refusal {
    /// Anonymous and not let in: ask for credentials.
    LogIn,
    Error(OciError),
}

/// Checks the IAM actions the request needs on its repository (README,
/// "Access control"). Anonymous callers may pull where a repository policy
/// lets everyone; everything else asks them to log in.
async fn authorize(
    app: &App,
    principal: Option<&Principal>,
    route: &Route,
    method: &Method,
    facts: &RequestFacts,
) -> Result<(), Refusal> {
    let Some(actions) = route.actions(method) else {
        return match principal {
            Some(_) => Ok(()),
            None => Err(Refusal::LogIn),
        };
    };
    // Anonymous callers may pull where a repository policy lets them; for
    // anything else they are asked to log in first.
    if principal.is_none() && !matches!(*method, Method::GET | Method::HEAD) {
        return Err(Refusal::LogIn);
    }
    let name = route.repository().expect("repository routes name one");
    let arn = app.access.repository_arn(name.as_str());
    let mut actions = actions.to_vec();
    // A push that creates its repository needs the right to create it.
    let starts_push = matches!(
        (route, method),
        (Route::Uploads(_), &Method::POST) | (Route::Manifest(..), &Method::PUT)
    );
    if starts_push
        && principal.is_some()
        && app
            .registry
            .push_creates(name)
            .await
            .map_err(|e| Refusal::Error(e.into()))?
    {
        actions.push("ecr:CreateRepository");
    }
    for action in actions {
        match app
            .access
            .check(principal, action, &arn, Some(name), facts)
            .await
        {
            Ok(()) => {}
            Err(_) if principal.is_none() => return Err(Refusal::LogIn),
            Err(AccessError::Denied(message)) => {
                return Err(Refusal::Error(OciError::new(
                    StatusCode::FORBIDDEN,
                    "DENIED",
                    message,
                )));
            }
            Err(AccessError::Internal(inner)) => {
                return Err(Refusal::Error(RegistryError::Internal(inner).into()));
            }
        }
    }
    Ok(())
}

/// ECR's Basic challenge, which clients answer with credentials.
fn challenge(app: &App, headers: &HeaderMap) -> Response {
    let mut response = OciError::new(
        StatusCode::UNAUTHORIZED,
        "UNAUTHORIZED",
        "authentication required: log in with `aws ecr get-login-password`, user AWS",
    )
    .into_response();
    let challenge = format!(
        "Basic realm=\"{}/\",service=\"ecr.amazonaws.com\"",
        app.endpoint(headers)
    );
    insert(&mut response, header::WWW_AUTHENTICATE, challenge);
    response
}

/// HTTP Basic, as ECR takes it: user `AWS` with a password from
/// `GetAuthorizationToken`, or an access key id with its secret. `None`
/// when the request carries no credentials; wrong ones get ECR's challenge.
async fn authenticate(app: &App, headers: &HeaderMap) -> Result<Option<Principal>, Response> {
    let Some(authorization) = header_str(headers, header::AUTHORIZATION) else {
        return Ok(None);
    };
    // The scheme is case-insensitive (RFC 9110, 11.1).
    let credentials = authorization
        .split_once(' ')
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
        .map(|(_, b)| b)
        .and_then(|b| {
            base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .ok()
        })
        .and_then(|b| String::from_utf8(b).ok());
    let outcome = match credentials.as_deref().and_then(|c| c.split_once(':')) {
        Some((user, password)) => {
            app.identity
                .authenticate_basic(user, password, now_millis() / 1000)
                .await
        }
        None => Err(AuthError::MissingAuthenticationToken(
            "authentication required".into(),
        )),
    };
    outcome.map(Some).map_err(|e| match e {
        AuthError::ExpiredToken => OciError::new(
            StatusCode::FORBIDDEN,
            "DENIED",
            "Your authorization token has expired. Reauthenticate and try again.",
        )
        .into_response(),
        AuthError::Internal(inner) => {
            OciError::from(RegistryError::Internal(inner)).into_response()
        }
        _ => challenge(app, headers),
    })
}

async fn dispatch(app: &App, asker: &Asker<'_>, route: Route, request: Request) -> Answer {
    let registry = &*app.registry;
    let method = request.method().clone();
    match (route, method) {
        (Route::Base, Method::GET | Method::HEAD) => Ok(json_response(StatusCode::OK, json!({}))),
        (Route::Catalog, Method::GET) => catalog(app, asker, request.uri().query()).await,
        (Route::Tags(name), Method::GET) => tags(registry, &name, request.uri().query()).await,
        (Route::Manifest(name, reference), Method::GET | Method::HEAD) => {
            let manifest = registry.pull_manifest(&name, &reference).await?;
            if request.method() == Method::GET {
                registry.note_pull(
                    asker.principal,
                    &name,
                    &manifest.digest,
                    manifest.last_pulled_at,
                );
            }
            let headers = [
                (header::CONTENT_TYPE, manifest.media_type),
                (CONTENT_DIGEST, manifest.digest.to_string()),
                (header::ETAG, format!("\"{}\"", manifest.digest)),
            ];
            Ok((headers, manifest.content).into_response())
        }
        (Route::Manifest(name, reference), Method::PUT) => {
            let content_type =
                header_str(request.headers(), header::CONTENT_TYPE).map(String::from);
            let tags = query_pairs(request.uri().query())
                .filter(|(k, _)| k == "tag")
                .map(|(_, v)| v.parse::<Tag>().map_err(|_| tag_invalid(&v)))
                .collect::<Result<Vec<_>, _>>()?;
            let content = axum::body::to_bytes(request.into_body(), MAX_MANIFEST_BYTES)
                .await
                .map_err(|_| {
                    OciError::from(RegistryError::ManifestInvalid(ManifestError::TooLarge))
                })?;
            let stored = registry
                .put_manifest(&name, &reference, tags, content_type.as_deref(), content)
                .await?;
            let mut response = created(
                format!("/v2/{name}/manifests/{}", stored.digest),
                &stored.digest,
            );
            if let Some(subject) = stored.subject {
                insert(&mut response, OCI_SUBJECT, subject.to_string());
            }
            for tag in stored.tags {
                if let Ok(value) = HeaderValue::try_from(tag.as_str()) {
                    response.headers_mut().append(OCI_TAG, value);
                }
            }
            Ok(response)
        }
        (Route::Manifest(name, reference), Method::DELETE) => {
            registry.delete_manifest(&name, &reference).await?;
            Ok(StatusCode::ACCEPTED.into_response())
        }
        (Route::Blob(name, digest), Method::GET | Method::HEAD) => {
            let head = request.method() == Method::HEAD;
            get_blob(registry, &name, &digest, request.headers(), head).await
        }
        (Route::Blob(name, digest), Method::DELETE) => {
            registry.delete_blob(&name, &digest).await?;
            Ok(StatusCode::ACCEPTED.into_response())
        }
        (Route::Uploads(name), Method::POST) => start_upload(app, asker, &name, request).await,
        (Route::Upload(name, id), Method::GET) => {
            let upload = registry.upload_status(&name, &id).await?;
            Ok(upload_response(
                StatusCode::NO_CONTENT,
                &name,
                &id,
                upload.size,
            ))
        }
        (Route::Upload(name, id), Method::PATCH) => {
            let start = content_range_start(request.headers())?;
            // `end >= start`, and `end - start + 1` fits: checked when parsed.
            let len = start.map(|(start, end)| end - start + 1);
            let mut body = body_stream(request.into_body());
            let upload = registry
                .write_upload(&name, &id, start.map(|(s, _)| s), len, &mut body)
                .await?;
            Ok(upload_response(
                StatusCode::ACCEPTED,
                &name,
                &id,
                upload.size,
            ))
        }
        (Route::Upload(name, id), Method::PUT) => {
            let digest = query_digest(request.uri().query())?
                .ok_or_else(|| OciError::digest_invalid("digest query parameter is required"))?;
            // `end >= start`, and `end - start + 1` fits: checked when parsed.
            let range = content_range_start(request.headers())?;
            let empty = range.is_none() && declares_no_body(&request);
            let body = request.into_body();
            if empty || (range.is_none() && body.size_hint().exact() == Some(0)) {
                registry.finish_upload(&name, &id, &digest, None).await?;
            } else {
                let mut body = body_stream(body);
                let last = crate::registry::LastChunk {
                    start: range.map(|(start, _)| start),
                    len: range.map(|(start, end)| end - start + 1),
                    data: &mut body,
                };
                registry
                    .finish_upload(&name, &id, &digest, Some(last))
                    .await?;
            }
            Ok(created(format!("/v2/{name}/blobs/{digest}"), &digest))
        }
        (Route::Upload(name, id), Method::DELETE) => {
            registry.cancel_upload(&name, &id).await?;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        (Route::Referrers(name, digest), Method::GET) => {
            referrers(registry, &name, &digest, request.uri().query()).await
        }
        (_, method) => Err(OciError::unsupported(format!(
            "method {method} is not supported on this endpoint"
        ))),
    }
}

fn json_response(status: StatusCode, body: serde_json::Value) -> Response {
    (status, axum::Json(body)).into_response()
}

fn insert(response: &mut Response, name: HeaderName, value: String) {
    if let Ok(value) = HeaderValue::try_from(value) {
        response.headers_mut().insert(name, value);
    }
}

fn created(location: String, digest: &Digest) -> Response {
    let mut response = StatusCode::CREATED.into_response();
    insert(&mut response, header::LOCATION, location);
    insert(&mut response, CONTENT_DIGEST, digest.to_string());
    response
}

fn upload_response(status: StatusCode, name: &RepositoryName, id: &str, size: u64) -> Response {
    let mut response = status.into_response();
    insert(
        &mut response,
        header::LOCATION,
        format!("/v2/{name}/blobs/uploads/{id}"),
    );
    insert(&mut response, header::RANGE, range_header(size));
    insert(&mut response, UPLOAD_UUID, id.to_string());
    response
}

fn tag_invalid(tag: &str) -> OciError {
    OciError::new(
        StatusCode::BAD_REQUEST,
        "TAG_INVALID",
        format!("invalid tag '{tag}'"),
    )
}

fn header_str(headers: &HeaderMap, name: HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn body_stream(
    body: Body,
) -> impl futures_util::Stream<Item = io::Result<bytes::Bytes>> + Send + Unpin {
    body.into_data_stream().map_err(io::Error::other)
}

/// Whether the request says it has no body: `Content-Length: 0`, or (HTTP/1)
/// neither a length nor a transfer coding. Said from the headers because the
/// body's own size hint does not survive every layer of the wrapper (tower-http's
/// body timeout drops it), and an empty closing `PUT` taken as a chunk costs a
/// staged write (a sync on disk; on S3 an object that makes the commit a copy
/// through berth instead of one server-side copy).
fn declares_no_body(request: &Request) -> bool {
    let headers = request.headers();
    match headers.get(header::CONTENT_LENGTH) {
        Some(length) => length.as_bytes() == b"0",
        None => {
            request.version() <= axum::http::Version::HTTP_11
                && !headers.contains_key(header::TRANSFER_ENCODING)
        }
    }
}

fn query_pairs(query: Option<&str>) -> impl Iterator<Item = (String, String)> + '_ {
    form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
}

fn query_param(query: Option<&str>, key: &str) -> Option<String> {
    query_pairs(query).find(|(k, _)| k == key).map(|(_, v)| v)
}

fn query_digest(query: Option<&str>) -> Result<Option<Digest>, OciError> {
    query_param(query, "digest")
        .map(|d| {
            d.parse().map_err(|e: berth_core::digest::DigestError| {
                OciError::digest_invalid(e.to_string())
            })
        })
        .transpose()
}

/// The `Content-Range: <start>-<end>` of a chunk, if sent.
pub fn content_range_start(headers: &HeaderMap) -> Result<Option<(u64, u64)>, OciError> {
    let Some(value) = header_str(headers, header::CONTENT_RANGE) else {
        return Ok(None);
    };
    let invalid = || {
        OciError::new(
            StatusCode::RANGE_NOT_SATISFIABLE,
            "BLOB_UPLOAD_INVALID",
            format!("invalid Content-Range '{value}'"),
        )
    };
    let range = value
        .trim()
        .trim_start_matches("bytes ")
        .trim_start_matches("bytes=");
    let (start, end) = range.split_once('-').ok_or_else(invalid)?;
    let start: u64 = start.parse().map_err(|_| invalid())?;
    let end: u64 = end.parse().map_err(|_| invalid())?;
    if end < start || end - start == u64::MAX {
        return Err(invalid());
    }
    Ok(Some((start, end)))
}

/// The page size `n` and position `last` of a listing.
fn page(query: Option<&str>) -> Result<(u32, Option<String>), OciError> {
    let n = match query_param(query, "n") {
        Some(n) => n.parse::<u32>().map_err(|_| {
            OciError::new(
                StatusCode::BAD_REQUEST,
                "PAGINATION_NUMBER_INVALID",
                "n must be a non-negative integer",
            )
        })?,
        None => u32::MAX,
    };
    Ok((n, query_param(query, "last")))
}

fn link_next(path: &str, n: u32, last: &str) -> String {
    let last: String = form_urlencoded::byte_serialize(last.as_bytes()).collect();
    format!("<{path}?n={n}&last={last}>; rel=\"next\"")
}

async fn tags(registry: &Registry, name: &RepositoryName, query: Option<&str>) -> Answer {
    let (n, last) = page(query)?;
    let (tags, more) = if n == 0 {
        (Vec::new(), false)
    } else {
        registry.list_tags(name, last.as_deref(), n).await?
    };
    let next = more.then(|| {
        link_next(
            &format!("/v2/{name}/tags/list"),
            n,
            tags.last().map_or("", |t| t),
        )
    });
    let mut response = json_response(StatusCode::OK, json!({"name": name.as_str(), "tags": tags}));
    if let Some(next) = next {
        insert(&mut response, header::LINK, next);
    }
    Ok(response)
}

/// Repositories one `_catalog` page lists at most, whatever `n` asks: each
/// costs a policy decision. The `Link` to the next page says the `n` used.
const CATALOG_PAGE_MAX: u32 = 1000;

/// `GET /v2/_catalog`: the repositories the caller may describe
/// (`ecr:DescribeRepositories`); a page may hold fewer than `n` of them, and
/// its `Link` continues after the last repository looked at, so paging
/// always advances.
async fn catalog(app: &App, asker: &Asker<'_>, query: Option<&str>) -> Answer {
    let (n, last) = page(query)?;
    let n = n.min(CATALOG_PAGE_MAX);
    let (all, more) = if n == 0 {
        (Vec::new(), false)
    } else {
        app.registry.catalog(last.as_deref(), n).await?
    };
    let scanned_last = all.last().cloned();
    let mut names = Vec::with_capacity(all.len());
    for name in all {
        let Ok(repository) = name.parse::<RepositoryName>() else {
            continue;
        };
        let arn = app.access.repository_arn(&name);
        match app
            .access
            .check(
                asker.principal,
                "ecr:DescribeRepositories",
                &arn,
                Some(&repository),
                asker.facts,
            )
            .await
        {
            Ok(()) => names.push(name),
            Err(AccessError::Denied(_)) => {}
            Err(AccessError::Internal(inner)) => return Err(RegistryError::Internal(inner).into()),
        }
    }
    let next = match (more, scanned_last) {
        (true, Some(after)) => Some(link_next("/v2/_catalog", n, &after)),
        _ => None,
    };
    let mut response = json_response(StatusCode::OK, json!({"repositories": names}));
    if let Some(next) = next {
        insert(&mut response, header::LINK, next);
    }
    Ok(response)
}

async fn referrers(
    registry: &Registry,
    name: &RepositoryName,
    subject: &Digest,
    query: Option<&str>,
) -> Answer {
    let artifact_type = query_param(query, "artifactType");
    let found = registry
        .referrers(name, subject, artifact_type.as_deref())
        .await?;
    let manifests: Vec<serde_json::Value> = found
        .into_iter()
        .map(|r| {
            let mut entry = json!({
                "mediaType": r.media_type,
                "digest": r.digest.to_string(),
                "size": r.size,
            });
            if let Some(t) = r.artifact_type {
                entry["artifactType"] = json!(t);
            }
            if let Some(a) = r
                .annotations
                .and_then(|a| serde_json::from_str::<serde_json::Value>(&a).ok())
            {
                entry["annotations"] = a;
            }
            entry
        })
        .collect();
    let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests});
    let mut response = json_response(StatusCode::OK, index);
    insert(&mut response, header::CONTENT_TYPE, OCI_INDEX.to_string());
    if artifact_type.is_some() {
        insert(
            &mut response,
            OCI_FILTERS_APPLIED,
            "artifactType".to_string(),
        );
    }
    Ok(response)
}

/// Parses a single `bytes=` range against a blob of `size` bytes.
/// `Ok(None)`: serve the whole blob (no range, or one we do not interpret).
pub fn requested_range(
    headers: &HeaderMap,
    size: u64,
) -> Result<Option<Range<u64>>, RegistryError> {
    let Some(spec) = header_str(headers, header::RANGE).and_then(|r| r.strip_prefix("bytes="))
    else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None); // multiple ranges: answer with the whole blob, as RFC 9110 allows
    }
    let Some((start, end)) = spec.trim().split_once('-') else {
        return Ok(None);
    };
    let unsatisfiable = RegistryError::RangeNotSatisfiable { size };
    let range = match (start.parse::<u64>(), end.parse::<u64>()) {
        // A last position past the end means "to the end" (RFC 9110).
        (Ok(start), Ok(end)) if start <= end => start..end.saturating_add(1).min(size),
        // A backwards range is unsatisfiable, as Go's and nginx's file servers answer.
        (Ok(_), Ok(_)) => return Err(unsatisfiable),
        (Ok(start), Err(_)) if end.is_empty() => start..size,
        (Err(_), Ok(suffix)) if start.is_empty() => size.saturating_sub(suffix)..size,
        _ => return Ok(None),
    };
    if range.start >= size || range.is_empty() {
        return Err(unsatisfiable);
    }
    Ok(Some(range))
}

async fn get_blob(
    registry: &Registry,
    name: &RepositoryName,
    digest: &Digest,
    headers: &HeaderMap,
    head: bool,
) -> Answer {
    let size = match registry.stored_blob_size(name, digest).await? {
        Some(size) => size,
        None => {
            // A miss a cache can fill: the bytes reach the client as they
            // are fetched and stored (whole reads only).
            if !head
                && !headers.contains_key(header::RANGE)
                && let Some((size, stream)) = registry.stream_missing_blob(name, digest).await?
            {
                return Ok(blob_response(
                    StatusCode::OK,
                    Body::from_stream(stream),
                    size,
                    digest,
                ));
            }
            registry.blob_size(name, digest).await?
        }
    };
    if !head
        && registry.config().redirect_blob_pulls
        && let Some(url) = registry
            .direct_blob_url(digest, std::time::Duration::from_secs(15 * 60))
            .await?
    {
        // As ECR does: the client fetches the bytes from the object store.
        let mut response = StatusCode::TEMPORARY_REDIRECT.into_response();
        insert(&mut response, header::LOCATION, url);
        insert(&mut response, CONTENT_DIGEST, digest.to_string());
        return Ok(response);
    }
    let range = match requested_range(headers, size) {
        Ok(range) => range,
        Err(e) => {
            let mut response = OciError::from(e).into_response();
            insert(
                &mut response,
                header::CONTENT_RANGE,
                format!("bytes */{size}"),
            );
            return Ok(response);
        }
    };
    let (status, len) = match &range {
        Some(r) => (StatusCode::PARTIAL_CONTENT, r.end - r.start),
        None => (StatusCode::OK, size),
    };
    let body = if head {
        Body::empty()
    } else {
        Body::from_stream(registry.read_blob(digest, range.clone()).await?)
    };
    let mut response = blob_response(status, body, Some(len), digest);
    insert(&mut response, header::ACCEPT_RANGES, "bytes".into());
    if let Some(r) = range {
        insert(
            &mut response,
            header::CONTENT_RANGE,
            format!("bytes {}-{}/{size}", r.start, r.end - 1),
        );
    }
    Ok(response)
}

/// A blob's bytes (`len` of them when known) with its headers.
fn blob_response(status: StatusCode, body: Body, len: Option<u64>, digest: &Digest) -> Response {
    let mut response = (status, body).into_response();
    if let Some(len) = len {
        insert(&mut response, header::CONTENT_LENGTH, len.to_string());
    }
    insert(
        &mut response,
        header::CONTENT_TYPE,
        "application/octet-stream".into(),
    );
    insert(&mut response, CONTENT_DIGEST, digest.to_string());
    response
}

/// `POST …/blobs/uploads/`: a mount, a whole blob (`?digest=`), or a new session.
/// A mount needs the pull permission on the source repository too; without
/// it the client pushes the blob in a normal upload.
async fn start_upload(
    app: &App,
    asker: &Asker<'_>,
    name: &RepositoryName,
    request: Request,
) -> Answer {
    let registry = &*app.registry;
    let query = request.uri().query().map(String::from);
    let query = query.as_deref();
    let mounting = app
        .account_settings
        .blob_mounting()
        .await
        .map_err(RegistryError::Internal)?;
    if let Some(mount) = query_param(query, "mount").filter(|_| mounting) {
        let from = query_param(query, "from").and_then(|f| f.parse::<RepositoryName>().ok());
        if let (Ok(digest), Some(from)) = (mount.parse::<Digest>(), from) {
            let source = app.access.repository_arn(from.as_str());
            let readable = match app
                .access
                .check(
                    asker.principal,
                    "ecr:GetDownloadUrlForLayer",
                    &source,
                    Some(&from),
                    asker.facts,
                )
                .await
            {
                Ok(()) => true,
                Err(AccessError::Denied(_)) => false,
                Err(AccessError::Internal(inner)) => {
                    return Err(RegistryError::Internal(inner).into());
                }
            };
            if readable && registry.mount_blob(name, &from, &digest).await?.is_some() {
                return Ok(created(format!("/v2/{name}/blobs/{digest}"), &digest));
            }
        }
        // Nothing to mount from: the client pushes the blob in a normal upload.
    } else if let Some(digest) = query_digest(query)? {
        let mut body = body_stream(request.into_body());
        registry.put_blob(name, &digest, &mut body).await?;
        return Ok(created(format!("/v2/{name}/blobs/{digest}"), &digest));
    }
    let upload = registry.start_upload(name, Algorithm::Sha256).await?;
    Ok(upload_response(StatusCode::ACCEPTED, name, &upload.id, 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_says_a_request_has_no_body() {
        let request = |version, headers: &[(&str, &str)]| {
            let mut builder = Request::builder().method(Method::PUT).version(version);
            for (name, value) in headers {
                builder = builder.header(*name, *value);
            }
            builder.body(Body::empty()).unwrap()
        };
        use axum::http::Version;
        assert!(declares_no_body(&request(
            Version::HTTP_11,
            &[("content-length", "0")]
        )));
        assert!(declares_no_body(&request(Version::HTTP_11, &[])));
        assert!(declares_no_body(&request(
            Version::HTTP_2,
            &[("content-length", "0")]
        )));
        assert!(!declares_no_body(&request(Version::HTTP_2, &[])));
        assert!(!declares_no_body(&request(
            Version::HTTP_11,
            &[("content-length", "7")]
        )));
        assert!(!declares_no_body(&request(
            Version::HTTP_11,
            &[("transfer-encoding", "chunked")]
        )));
    }

    fn range(value: &str, size: u64) -> Result<Option<Range<u64>>, RegistryError> {
        let mut headers = HeaderMap::new();
        headers.insert(header::RANGE, HeaderValue::from_str(value).unwrap());
        requested_range(&headers, size)
    }

    #[test]
    fn byte_ranges() {
        assert_eq!(range("bytes=0-9", 100).unwrap(), Some(0..10));
        assert_eq!(range("bytes=90-200", 100).unwrap(), Some(90..100));
        assert_eq!(range("bytes=50-", 100).unwrap(), Some(50..100));
        assert_eq!(range("bytes=-10", 100).unwrap(), Some(90..100));
        assert_eq!(range("bytes=0-1,5-6", 100).unwrap(), None);
        assert_eq!(range("items=0-1", 100).unwrap(), None);
        assert!(range("bytes=100-", 100).is_err());
        assert!(range("bytes=500-0", 1000).is_err());
        assert!(range("bytes=-0", 100).is_err());
        assert!(range("bytes=0-0", 0).is_err());
        assert_eq!(
            range("bytes=0-18446744073709551615", 100).unwrap(),
            Some(0..100)
        );
        assert_eq!(
            range("bytes=-18446744073709551615", 100).unwrap(),
            Some(0..100)
        );
    }

    #[test]
    fn content_ranges() {
        let mut headers = HeaderMap::new();
        assert_eq!(content_range_start(&headers).unwrap(), None);
        headers.insert(header::CONTENT_RANGE, HeaderValue::from_static("0-99"));
        assert_eq!(content_range_start(&headers).unwrap(), Some((0, 99)));
        headers.insert(
            header::CONTENT_RANGE,
            HeaderValue::from_static("bytes 10-19"),
        );
        assert_eq!(content_range_start(&headers).unwrap(), Some((10, 19)));
        headers.insert(header::CONTENT_RANGE, HeaderValue::from_static("9-1"));
        assert!(content_range_start(&headers).is_err());
        headers.insert(
            header::CONTENT_RANGE,
            "0-18446744073709551615".parse().unwrap(),
        );
        assert!(content_range_start(&headers).is_err());
    }
}
