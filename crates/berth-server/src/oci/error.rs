//! The distribution-spec error body and status for every registry failure.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::registry::RegistryError;

/// An error as the `/v2/` API sends it.
#[derive(Debug)]
pub struct OciError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// `Range` header for 416 answers to out-of-order chunks.
    pub range: Option<String>,
}

impl OciError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> OciError {
        OciError {
            status,
            code,
            message: message.into(),
            range: None,
        }
    }

    pub fn name_invalid() -> OciError {
        OciError::new(
            StatusCode::BAD_REQUEST,
            "NAME_INVALID",
            "invalid repository name",
        )
    }

    pub fn digest_invalid(message: impl Into<String>) -> OciError {
        OciError::new(StatusCode::BAD_REQUEST, "DIGEST_INVALID", message)
    }

    pub fn not_found() -> OciError {
        OciError::new(StatusCode::NOT_FOUND, "NOT_FOUND", "no such endpoint")
    }

    pub fn unsupported(message: impl Into<String>) -> OciError {
        OciError::new(StatusCode::METHOD_NOT_ALLOWED, "UNSUPPORTED", message)
    }
}

impl From<RegistryError> for OciError {
    fn from(e: RegistryError) -> OciError {
        use RegistryError as E;
        let message = e.to_string();
        let (status, code) = match &e {
            E::NameUnknown { .. } => (StatusCode::NOT_FOUND, "NAME_UNKNOWN"),
            E::BlobUnknown => (StatusCode::NOT_FOUND, "BLOB_UNKNOWN"),
            E::UploadUnknown => (StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN"),
            E::UploadInvalid(_) => (StatusCode::BAD_REQUEST, "BLOB_UPLOAD_INVALID"),
            E::RangeInvalid { size } => {
                return OciError {
                    range: Some(range_header(*size)),
                    ..OciError::new(
                        StatusCode::RANGE_NOT_SATISFIABLE,
                        "BLOB_UPLOAD_INVALID",
                        message,
                    )
                };
            }
            E::RangeNotSatisfiable { .. } => (StatusCode::RANGE_NOT_SATISFIABLE, "BLOB_UNKNOWN"),
            E::DigestInvalid(_) => (StatusCode::BAD_REQUEST, "DIGEST_INVALID"),
            E::SizeInvalid(_) => (StatusCode::BAD_REQUEST, "SIZE_INVALID"),
            E::ManifestUnknown | E::ImageArchived(_) => (StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN"),
            E::ManifestInvalid(berth_core::manifest::ManifestError::TooLarge) => {
                (StatusCode::PAYLOAD_TOO_LARGE, "MANIFEST_INVALID")
            }
            E::ManifestInvalid(_) => (StatusCode::BAD_REQUEST, "MANIFEST_INVALID"),
            E::ManifestBlobUnknown(_) | E::ManifestChildUnknown(_) => {
                (StatusCode::BAD_REQUEST, "MANIFEST_BLOB_UNKNOWN")
            }
            E::ManifestReferenced(_) => (StatusCode::CONFLICT, "DENIED"),
            E::RepositoryAlreadyExists | E::RepositoryNotEmpty => (StatusCode::CONFLICT, "DENIED"),
            E::TagImmutable { .. } => (StatusCode::BAD_REQUEST, "TAG_INVALID"),
            E::TooManyTags(_) => (StatusCode::BAD_REQUEST, "DENIED"),
            E::LimitExceeded(_) => (StatusCode::FORBIDDEN, "DENIED"),
            // What the pull-through cache's upstream answered, passed on.
            E::Upstream { code, .. } => match *code {
                "UpstreamTooManyRequests" => (StatusCode::TOO_MANY_REQUESTS, "TOOMANYREQUESTS"),
                "UpstreamAccessDenied" => (StatusCode::BAD_GATEWAY, "DENIED"),
                _ => (StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE"),
            },
            E::Internal(berth_store::StoreError::Busy) => {
                return OciError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "TOOMANYREQUESTS",
                    "berth is busy; retry the request later",
                );
            }
            E::Internal(inner) => {
                tracing::error!(error = %inner, "storage failure");
                return OciError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "UNKNOWN",
                    "internal server error",
                );
            }
        };
        OciError::new(status, code, message)
    }
}

/// The `Range` header of an upload holding `size` bytes: the inclusive range
/// received, `0-0` when nothing was.
pub fn range_header(size: u64) -> String {
    format!("0-{}", size.saturating_sub(1))
}

impl IntoResponse for OciError {
    fn into_response(self) -> Response {
        let body =
            json!({"errors": [{"code": self.code, "message": self.message, "detail": null}]});
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(range) = self.range.and_then(|r| HeaderValue::from_str(&r).ok()) {
            response.headers_mut().insert(header::RANGE, range);
        }
        response
    }
}
