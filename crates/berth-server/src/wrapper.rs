//! The one wrapper around every front door: a request id on every response
//! (`x-amzn-RequestId` on the AWS doors, `X-Request-Id` elsewhere), a
//! `tracing` span per request (door, operation, repository, principal,
//! status, duration) in which the door logs, and request counters and
//! latency histograms per door and operation on `/metrics`.
//!
//! A request over HTTP/2 names its host in the `:authority` pseudo-header
//! and carries no `Host` (the Go SDK and the ECR credential helper send
//! none); the wrapper gives it the `Host` that authority stands for, as an
//! HTTP/1.1 intermediary would (RFC 9113, 8.3.1), so SigV4 verification,
//! `repositoryUri` and every other reader of `Host` see one thing.
//!
//! Doors name what they did by putting an [`Operation`] into the response's
//! extensions, and record the principal and repository into the request's
//! span once they know them.

use std::time::Instant;

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

use crate::metrics::METRICS;

/// This request's id, for doors that put it into their bodies.
#[derive(Clone, Debug)]
pub struct RequestId(pub String);

/// What a request was, as the door names it (`PutImage`, `manifest GET` …).
#[derive(Clone, Debug)]
pub struct Operation(pub String);

/// Which front door a request is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Door {
    Oci,
    Ecr,
    Query,
    Other,
}

impl Door {
    pub fn of(request: &Request) -> Door {
        let path = request.uri().path();
        if crate::ecr::is_ecr_request(request) {
            Door::Ecr
        } else if crate::query::is_query_request(request) {
            Door::Query
        } else if path == "/v2" || path.starts_with("/v2/") {
            Door::Oci
        } else {
            Door::Other
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Door::Oci => "oci",
            Door::Ecr => "ecr",
            Door::Query => "iam-sts",
            Door::Other => "other",
        }
    }
}

/// Gives a request without `Host` the one its URI's authority names.
fn host_from_authority(request: &mut Request) {
    if request.headers().contains_key(axum::http::header::HOST) {
        return;
    }
    let Some(authority) = request.uri().authority() else {
        return;
    };
    if let Ok(host) = HeaderValue::from_str(authority.as_str()) {
        request.headers_mut().insert(axum::http::header::HOST, host);
    }
}

const AWS_REQUEST_ID: HeaderName = HeaderName::from_static("x-amzn-requestid");
const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Wraps one request; the door it is for goes into its extensions, so the
/// router dispatches on it without classifying the request again.
pub async fn wrap(mut request: Request, next: Next) -> Response {
    host_from_authority(&mut request);
    let door = Door::of(&request);
    let id = uuid::Uuid::new_v4().to_string();
    request.extensions_mut().insert(RequestId(id.clone()));
    request.extensions_mut().insert(door);
    let span = tracing::info_span!(
        "request",
        id = %id,
        door = door.as_str(),
        method = %request.method(),
        path = %request.uri().path(),
        operation = tracing::field::Empty,
        repository = tracing::field::Empty,
        principal = tracing::field::Empty,
        status = tracing::field::Empty,
        ms = tracing::field::Empty,
    );
    let started = Instant::now();
    let mut response = next.run(request).instrument(span.clone()).await;
    let elapsed = started.elapsed();
    let operation = response
        .extensions()
        .get::<Operation>()
        .map_or_else(|| "other".to_string(), |o| o.0.clone());
    let status = response.status().as_u16();
    span.record("operation", tracing::field::display(&operation));
    span.record("status", status);
    span.record("ms", elapsed.as_secs_f64() * 1000.0);
    METRICS
        .requests
        .observe(door.as_str(), &operation, status, elapsed);
    let header = match door {
        Door::Ecr | Door::Query => AWS_REQUEST_ID,
        Door::Oci | Door::Other => REQUEST_ID,
    };
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(header, value);
    }
    match status {
        500.. => tracing::warn!(parent: &span, "request failed"),
        400..=499 => tracing::info!(parent: &span, "request refused"),
        _ => tracing::debug!(parent: &span, "request served"),
    }
    response
}
