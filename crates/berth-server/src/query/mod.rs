//! The Query-protocol front door: IAM and STS, as `aws iam`, `aws sts` and
//! the SDKs call them (`POST /`, form-encoded `Action=…&Version=…`, SigV4
//! scoped to `iam` or `sts`, XML answers). Input is decoded and checked
//! against botocore's models; handlers work on JSON values like the ECR ones.

mod iam;
mod sts;

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use berth_core::sigv4::Authorization;
use serde_json::Value;

use crate::App;
use crate::access::{AccessError, RequestFacts};
use crate::iam::IamError;
use crate::identity::{AuthError, Principal};
use crate::model::{IAM, InputError, Model, STS, xml_escape};

/// Policy documents are the largest inputs (IAM allows up to 128 KiB).
const MAX_BODY: usize = 1 << 20;
const FORM: &str = "application/x-www-form-urlencoded";

/// An error as the Query protocol returns it.
#[derive(Debug)]
pub struct QueryError {
    pub code: &'static str,
    pub message: String,
    /// Overrides the status the model gives the code.
    pub status: Option<StatusCode>,
}

impl QueryError {
    pub fn new(code: &'static str, message: impl Into<String>) -> QueryError {
        QueryError {
            code,
            message: message.into(),
            status: None,
        }
    }

    pub fn internal(e: impl std::fmt::Display) -> QueryError {
        tracing::error!(error = %e, "IAM/STS call failed on storage");
        QueryError::new("ServiceFailure", "internal server error")
    }
}

impl From<berth_store::StoreError> for QueryError {
    fn from(e: berth_store::StoreError) -> QueryError {
        match e {
            // Retried with back-off by every AWS SDK.
            berth_store::StoreError::Busy => {
                QueryError::new("Throttling", "berth is busy; retry the request later")
            }
            other => QueryError::internal(other),
        }
    }
}

impl From<AccessError> for QueryError {
    fn from(e: AccessError) -> QueryError {
        match e {
            AccessError::Denied(message) => QueryError {
                status: Some(StatusCode::FORBIDDEN),
                ..QueryError::new("AccessDenied", message)
            },
            AccessError::Internal(inner) => QueryError::internal(inner),
        }
    }
}

impl From<IamError> for QueryError {
    fn from(e: IamError) -> QueryError {
        let code = match e {
            IamError::Internal(inner) => return inner.into(),
            IamError::NoSuchEntity { .. } => "NoSuchEntity",
            IamError::EntityAlreadyExists { .. } => "EntityAlreadyExists",
            IamError::LimitExceeded(_) => "LimitExceeded",
            IamError::MalformedPolicyDocument(_) => "MalformedPolicyDocument",
            IamError::DeleteConflict(_) => "DeleteConflict",
            IamError::AwsManagedPolicy { .. } => "InvalidInput",
        };
        QueryError::new(code, e.to_string())
    }
}

impl From<AuthError> for QueryError {
    fn from(e: AuthError) -> QueryError {
        let code = match &e {
            AuthError::MissingAuthenticationToken(_) => "MissingAuthenticationToken",
            AuthError::IncompleteSignature(_) => "IncompleteSignature",
            AuthError::UnrecognizedClient => "InvalidClientTokenId",
            AuthError::InvalidSignature(_) => "SignatureDoesNotMatch",
            AuthError::ExpiredToken => "ExpiredToken",
            AuthError::Internal(inner) => return QueryError::internal(inner),
        };
        QueryError {
            code,
            message: e.to_string(),
            // AWS's common errors: a malformed signature is the caller's
            // mistake (400); the rest are refusals (403).
            status: Some(if code == "IncompleteSignature" {
                StatusCode::BAD_REQUEST
            } else {
                StatusCode::FORBIDDEN
            }),
        }
    }
}

/// What a handler knows about its call.
pub struct Call<'a> {
    pub app: &'a App,
    pub principal: Principal,
    pub facts: RequestFacts,
}

impl Call<'_> {
    pub fn account(&self) -> &str {
        &self.app.identity.account_id
    }

    /// Checks that the caller may do `action` on `resource`.
    pub async fn authorize(&self, action: &str, resource: &str) -> Result<(), QueryError> {
        Ok(self
            .app
            .access
            .check(Some(&self.principal), action, resource, None, &self.facts)
            .await?)
    }
}

/// True for requests addressed to this front door.
pub fn is_query_request(request: &Request) -> bool {
    request.method() == axum::http::Method::POST
        && request.uri().path() == "/"
        && !request.headers().contains_key("x-amz-target")
        && request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with(FORM))
}

pub async fn serve(app: Arc<App>, request: Request) -> Response {
    let request_id = request
        .extensions()
        .get::<crate::wrapper::RequestId>()
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), |id| id.0.clone());
    let mut operation = None;
    // The credential scope says which service the caller means.
    let service = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| Authorization::parse(v).ok())
        .map(|a| a.service);
    let model: &Model = if service.as_deref() == Some("sts") {
        &STS
    } else {
        &IAM
    };
    let answer = handle(
        &app,
        request,
        service.as_deref(),
        model,
        &request_id,
        &mut operation,
    )
    .await;
    let (status, body) = match answer {
        Ok(xml) => (StatusCode::OK, xml),
        Err(e) => {
            let status = e.status.unwrap_or_else(|| {
                StatusCode::from_u16(model.error_status(e.code)).unwrap_or(StatusCode::BAD_REQUEST)
            });
            let fault = if status.is_server_error() {
                "Receiver"
            } else {
                "Sender"
            };
            let xml = format!(
                "<ErrorResponse xmlns=\"{}\"><Error><Type>{fault}</Type><Code>{}</Code><Message>{}</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>",
                model.xml_namespace(),
                e.code,
                xml_escape(&e.message)
            );
            (status, xml)
        }
    };
    let mut response = (status, body).into_response();
    if let Some(action) = operation {
        let name = format!("{}:{action}", service.as_deref().unwrap_or("iam"));
        response
            .extensions_mut()
            .insert(crate::wrapper::Operation(name));
    }
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/xml"));
    if let Ok(id) = HeaderValue::from_str(&request_id) {
        headers.insert("x-amzn-requestid", id);
    }
    response
}

async fn handle(
    app: &App,
    request: Request,
    service: Option<&str>,
    model: &Model,
    request_id: &str,
    operation_name: &mut Option<String>,
) -> Result<String, QueryError> {
    let facts = app.request_facts(&request);
    let (parts, body) = request.into_parts();
    let service = match service {
        Some(s @ ("iam" | "sts")) => s,
        Some(other) => {
            return Err(QueryError {
                code: "SignatureDoesNotMatch",
                message: format!("Credential should be scoped to correct service: not '{other}'."),
                status: Some(StatusCode::FORBIDDEN),
            });
        }
        None => "iam",
    };
    // Nobody's body is read: the key is checked from the headers first.
    let pending = app.identity.authenticate_headers(&parts, service).await?;
    let body = axum::body::to_bytes(Body::new(body), MAX_BODY)
        .await
        .map_err(|_| {
            QueryError::new(
                "ValidationError",
                format!("request body is larger than {MAX_BODY} bytes"),
            )
        })?;
    let principal = app.identity.verify_body(pending, &parts, &body)?;
    tracing::Span::current().record("principal", tracing::field::display(&principal.arn));

    let params: HashMap<String, String> = form_urlencoded::parse(&body)
        .chain(form_urlencoded::parse(
            parts.uri.query().unwrap_or("").as_bytes(),
        ))
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let action = params.get("Action").cloned().unwrap_or_default();
    let version = params.get("Version").map(String::as_str);
    let operation = model
        .operation(&action)
        .filter(|_| version.is_none_or(|v| v == model.api_version()))
        .ok_or_else(|| {
            // Not recorded as an operation: the label set stays what the model names.
            QueryError::new(
                "InvalidAction",
                format!(
                    "Could not find operation {action} for version {}",
                    params.get("Version").map_or("", String::as_str)
                ),
            )
        })?;
    *operation_name = Some(action.clone());
    let input = model
        .decode_query(operation, &params)
        .and_then(|input| model.validate(operation, &input).map(|()| input))
        .map_err(|e| match e {
            InputError::Serialization(m) | InputError::Validation(m) => {
                QueryError::new("ValidationError", m)
            }
        })?;

    let call = Call {
        app,
        principal,
        facts,
    };
    tracing::debug!(service, action, principal = %call.principal.arn, "query call");
    let output: Value = match service {
        "sts" => sts::handle(&call, &action, &input).await?,
        _ => iam::handle(&call, &action, &input).await?,
    };
    Ok(model.encode_query_response(&action, operation, &output, request_id))
}
