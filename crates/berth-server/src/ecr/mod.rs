//! The ECR front door: AWS JSON 1.1 over SigV4 (`POST /` with
//! `X-Amz-Target: AmazonEC2ContainerRegistry_V20150921.<Operation>`).
//! It authenticates, checks input against botocore's model, translates to
//! registry calls and registry errors to ECR's `__type`s. No registry logic.

mod actions;
pub mod extension;
mod images;
mod layers;
mod lifecycle;
mod policies;
mod pullthrough;
mod replication;
mod repositories;
mod scanning;
mod secrets;
mod settings;
mod signing;
mod templates;

use std::sync::Arc;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use berth_store::now_millis;
use serde_json::{Value, json};

use crate::App;
use crate::access::{AccessError, RequestFacts};
use crate::identity::{AuthError, Principal};
use crate::model::{ECR as MODEL, InputError};
use crate::registry::RegistryError;

/// Whether an undeclared error is fatal (the test suites set it).
static CHECK_MODEL_ERRORS: std::sync::LazyLock<bool> =
    std::sync::LazyLock::new(|| std::env::var_os("BERTH_CHECK_MODEL_ERRORS").is_some());

/// The largest request body: an `UploadLayerPart` of 20 MiB, base64'd, with room.
const MAX_BODY: usize = 32 << 20;
const JSON_1_1: &str = "application/x-amz-json-1.1";
/// Secrets Manager's targets (`secretsmanager.CreateSecret` …), signed for `secretsmanager`.
const SECRETS_PREFIX: &str = "secretsmanager.";
const REQUEST_ID: HeaderName = HeaderName::from_static("x-amzn-requestid");
const ERROR_TYPE: HeaderName = HeaderName::from_static("x-amzn-errortype");

/// An ECR error: its `__type`, message and status.
#[derive(Debug)]
pub struct EcrError {
    pub kind: &'static str,
    pub message: String,
    pub status: StatusCode,
    /// Members the error shape has beyond `message`.
    pub extra: Option<Value>,
}

impl EcrError {
    /// An error of type `kind`, with the status the model gives it.
    pub fn new(kind: &'static str, message: impl Into<String>) -> EcrError {
        let status =
            StatusCode::from_u16(MODEL.error_status(kind)).unwrap_or(StatusCode::BAD_REQUEST);
        EcrError {
            kind,
            message: message.into(),
            status,
            extra: None,
        }
    }

    pub fn invalid_parameter(message: impl Into<String>) -> EcrError {
        EcrError::new("InvalidParameterException", message)
    }

    /// A storage failure: logged, and `ServerException` to the caller.
    pub fn internal(e: impl std::borrow::Borrow<berth_store::StoreError>) -> EcrError {
        let e = e.borrow();
        if matches!(e, berth_store::StoreError::Busy) {
            // Retried with back-off by every AWS SDK.
            return EcrError::new(
                "ThrottlingException",
                "berth is busy; retry the request later",
            );
        }
        tracing::error!(error = %e, "storage failure");
        EcrError::new("ServerException", "internal server error")
    }
}

impl From<AccessError> for EcrError {
    fn from(e: AccessError) -> EcrError {
        match e {
            AccessError::Denied(message) => EcrError::new("AccessDeniedException", message),
            AccessError::Internal(inner) => EcrError::internal(inner),
        }
    }
}

impl From<AuthError> for EcrError {
    fn from(e: AuthError) -> EcrError {
        let kind = match &e {
            AuthError::MissingAuthenticationToken(_) => "MissingAuthenticationTokenException",
            AuthError::IncompleteSignature(_) => "IncompleteSignatureException",
            AuthError::UnrecognizedClient => "UnrecognizedClientException",
            AuthError::InvalidSignature(_) => "InvalidSignatureException",
            AuthError::ExpiredToken => "ExpiredTokenException",
            AuthError::Internal(inner) => return EcrError::internal(inner),
        };
        let mut error = EcrError::new(kind, e.to_string());
        if kind == "MissingAuthenticationTokenException" {
            error.status = StatusCode::FORBIDDEN;
        }
        error
    }
}

/// What a handler knows about its call.
pub struct Call<'a> {
    pub app: &'a App,
    pub principal: Principal,
    /// `scheme://host[:port]` clients reach this registry at.
    pub endpoint: String,
}

impl Call<'_> {
    pub fn account(&self) -> &str {
        &self.app.identity.account_id
    }

    /// `host[:port]`, as in a `repositoryUri`.
    pub fn registry_host(&self) -> &str {
        self.endpoint
            .split_once("://")
            .map_or(&self.endpoint, |(_, host)| host)
    }

    pub fn repository_not_found(&self, name: &str) -> EcrError {
        EcrError::new(
            "RepositoryNotFoundException",
            format!(
                "The repository with name '{name}' does not exist in the registry with id '{}'",
                self.account()
            ),
        )
    }

    /// Maps a registry error for repository `name` to ECR's error and wording.
    pub fn registry_error(&self, e: RegistryError, name: &str) -> EcrError {
        let account = self.account();
        match e {
            e @ RegistryError::NameUnknown { .. } => {
                EcrError::new("RepositoryNotFoundException", e.to_string())
            }
            RegistryError::RepositoryAlreadyExists => EcrError::new(
                "RepositoryAlreadyExistsException",
                format!(
                    "The repository with name '{name}' already exists in the registry with id '{account}'"
                ),
            ),
            RegistryError::RepositoryNotEmpty => EcrError::new(
                "RepositoryNotEmptyException",
                format!(
                    "The repository with name '{name}' in registry with id '{account}' cannot be deleted because it still contains images"
                ),
            ),
            RegistryError::LimitExceeded(message) => {
                EcrError::new("LimitExceededException", message)
            }
            RegistryError::TooManyTags(limit) => EcrError::new(
                "TooManyTagsException",
                format!("A repository may carry at most {limit} tags"),
            ),
            RegistryError::Internal(inner) => EcrError::internal(inner),
            RegistryError::Upstream { message, .. } => {
                EcrError::new("UnableToGetUpstreamImageException", message)
            }
            other => EcrError::invalid_parameter(other.to_string()),
        }
    }

    /// The `registryId` of a request, which must be this registry's if given.
    pub fn check_registry_id(&self, input: &Value) -> Result<(), EcrError> {
        match input.get("registryId").and_then(Value::as_str) {
            Some(id) if id != self.account() => Err(EcrError::invalid_parameter(format!(
                "Invalid parameter at 'registryId' failed to satisfy constraint: this registry's id is '{}', not '{id}'",
                self.account()
            ))),
            _ => Ok(()),
        }
    }
}

/// Page size of listings when `maxResults` is not given.
const DEFAULT_PAGE: u32 = 100;

/// `maxResults` and the position a `nextToken` holds. Tokens are opaque to
/// clients: the last key returned, so a page is stable whatever changes,
/// with a MAC from the install's secret key, so a token berth did not issue
/// (forged, cut, or from another install) is refused, on any node.
pub fn page(call: &Call<'_>, input: &Value) -> Result<(u32, Option<String>), EcrError> {
    use base64::Engine as _;
    let limit = input["maxResults"]
        .as_u64()
        .map_or(DEFAULT_PAGE, |n| n as u32);
    let invalid =
        || EcrError::invalid_parameter("Invalid parameter at 'nextToken': the token is not valid");
    let after = match input["nextToken"].as_str() {
        Some(token) => {
            let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(token)
                .map_err(|_| invalid())?;
            if raw.len() < TOKEN_MAC {
                return Err(invalid());
            }
            let (mac, position) = raw.split_at(TOKEN_MAC);
            let expected = call.app.identity.page_token_mac(position);
            if !bool::from(subtle::ConstantTimeEq::ct_eq(mac, &expected[..TOKEN_MAC])) {
                return Err(invalid());
            }
            Some(String::from_utf8(position.to_vec()).map_err(|_| invalid())?)
        }
        None => None,
    };
    Ok((limit, after))
}

/// Bytes of MAC a page token carries.
const TOKEN_MAC: usize = 12;

/// The `nextToken` of a page ending at `position`.
pub fn token(call: &Call<'_>, position: &str) -> Value {
    use base64::Engine as _;
    let mut raw = call.app.identity.page_token_mac(position.as_bytes())[..TOKEN_MAC].to_vec();
    raw.extend_from_slice(position.as_bytes());
    json!(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw))
}

impl From<crate::settings::SettingError> for EcrError {
    fn from(e: crate::settings::SettingError) -> EcrError {
        match e {
            crate::settings::SettingError::Invalid(m) => EcrError::invalid_parameter(m),
            crate::settings::SettingError::Internal(inner) => EcrError::internal(inner),
        }
    }
}

impl From<crate::registry::pull_times::ExclusionError> for EcrError {
    fn from(e: crate::registry::pull_times::ExclusionError) -> EcrError {
        use crate::registry::pull_times::ExclusionError;
        match e {
            ExclusionError::Internal(inner) => EcrError::internal(inner),
            e @ ExclusionError::AlreadyExists(_) => {
                EcrError::new("ExclusionAlreadyExistsException", e.to_string())
            }
            e @ ExclusionError::NotFound(_) => {
                EcrError::new("ExclusionNotFoundException", e.to_string())
            }
            e @ ExclusionError::LimitExceeded => {
                EcrError::new("LimitExceededException", e.to_string())
            }
        }
    }
}

/// True for requests addressed to this front door.
/// Every AWS JSON request (`POST /` with an `X-Amz-Target`) comes here: a
/// target of another service is this door's `UnknownOperationException`.
pub fn is_ecr_request(request: &Request) -> bool {
    request.uri().path() == "/" && request.headers().contains_key("x-amz-target")
}

pub async fn serve(app: Arc<App>, request: Request) -> Response {
    let request_id = request
        .extensions()
        .get::<crate::wrapper::RequestId>()
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), |id| id.0.clone());
    let operation = request
        .headers()
        .get("x-amz-target")
        .and_then(|t| t.to_str().ok())
        .and_then(|t| t.rsplit_once('.'))
        .map(|(_, name)| name.to_string())
        .unwrap_or_default();
    let (status, body, error_type) = match handle(&app, request).await {
        Ok(output) => (StatusCode::OK, output, None),
        Err(e) => {
            // Every error an operation answers should be one the model
            // declares for it: logged when not, and fatal where the test
            // suites ask (`BERTH_CHECK_MODEL_ERRORS`), so every call they make
            // is checked.
            if MODEL.operation(&operation).is_some() && !MODEL.declares_error(&operation, e.kind) {
                tracing::error!(
                    operation,
                    error = e.kind,
                    "an error the model does not declare"
                );
                assert!(
                    !*CHECK_MODEL_ERRORS,
                    "{operation} answered {}, which the model does not declare for it",
                    e.kind
                );
            }
            let mut body = e.extra.unwrap_or_else(|| json!({}));
            body["__type"] = json!(e.kind);
            body["message"] = json!(e.message);
            (e.status, body, Some(e.kind))
        }
    };
    let mut response = (status, body.to_string()).into_response();
    if MODEL.operation(&operation).is_some()
        || extension::OPERATIONS.contains(&operation.as_str())
        || crate::model::SECRETS.operation(&operation).is_some()
    {
        response
            .extensions_mut()
            .insert(crate::wrapper::Operation(operation));
    }
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON_1_1));
    if let Ok(id) = HeaderValue::from_str(&request_id) {
        headers.insert(REQUEST_ID, id);
    }
    if let Some(kind) = error_type {
        headers.insert(ERROR_TYPE, HeaderValue::from_static(kind));
    }
    response
}

async fn handle(app: &App, request: Request) -> Result<Value, EcrError> {
    let mut facts = app.request_facts(&request);
    let (parts, body) = request.into_parts();
    // Nobody's body is read: the key is checked from the headers first.
    let secrets_target = parts
        .headers
        .get("x-amz-target")
        .and_then(|t| t.to_str().ok())
        .and_then(|t| t.strip_prefix(SECRETS_PREFIX))
        .map(str::to_string);
    let service = if secrets_target.is_some() {
        "secretsmanager"
    } else {
        "ecr"
    };
    let pending = app.identity.authenticate_headers(&parts, service).await?;
    let body = axum::body::to_bytes(Body::new(body), MAX_BODY)
        .await
        .map_err(|_| {
            EcrError::new(
                "ValidationException",
                format!("request body is larger than {MAX_BODY} bytes"),
            )
        })?;

    let principal = app.identity.verify_body(pending, &parts, &body)?;
    tracing::Span::current().record("principal", tracing::field::display(&principal.arn));

    let target = parts
        .headers
        .get("x-amz-target")
        .and_then(|t| t.to_str().ok())
        .unwrap_or_default();
    if let Some(operation) = secrets_target {
        let input = json_body(&body)?;
        if let Some(op) = crate::model::SECRETS.operation(&operation) {
            crate::model::SECRETS
                .validate(op, &input)
                .map_err(|e| match e {
                    InputError::Serialization(m) => EcrError::new("SerializationException", m),
                    InputError::Validation(m) => EcrError::new("ValidationException", m),
                })?;
        }
        let call = Call {
            app,
            principal,
            endpoint: app.endpoint(&parts.headers),
        };
        return secrets::handle(&call, &operation, &input, &facts).await;
    }
    if let Some(operation) = target
        .strip_prefix(extension::TARGET_PREFIX)
        .and_then(|n| n.strip_prefix('.'))
    {
        let input = json_body(&body)?;
        let call = Call {
            app,
            principal,
            endpoint: app.endpoint(&parts.headers),
        };
        return extension::handle(&call, operation, &input, &facts).await;
    }
    let name = target
        .strip_prefix(MODEL.target_prefix())
        .and_then(|n| n.strip_prefix('.'))
        .unwrap_or_default();
    let operation = MODEL.operation(name).ok_or_else(|| {
        EcrError::new(
            "UnknownOperationException",
            format!("Unknown operation {target}"),
        )
    })?;
    let input = json_body(&body)?;
    MODEL.validate(operation, &input).map_err(|e| match e {
        InputError::Serialization(m) => EcrError::new("SerializationException", m),
        InputError::Validation(m) => EcrError::new("ValidationException", m),
    })?;

    let call = Call {
        app,
        principal,
        endpoint: app.endpoint(&parts.headers),
    };
    call.check_registry_id(&input)?;
    if let Some(repository) = input["repositoryName"].as_str() {
        tracing::Span::current().record("repository", tracing::field::display(repository));
    }
    authorize(&call, name, &input, &mut facts).await?;
    // Reads that miss may import through the pull-through cache, as this caller.
    let caller = call.principal.clone();
    crate::pullthrough::as_caller(caller, facts, operate(&call, name, &input))
        .await
        .0
}

/// A request's JSON body (`{}` when empty).
fn json_body(body: &[u8]) -> Result<Value, EcrError> {
    if body.is_empty() {
        return Ok(json!({}));
    }
    serde_json::from_slice(body).map_err(|e| {
        EcrError::new(
            "SerializationException",
            format!("request body is not valid JSON: {e}"),
        )
    })
}

/// Runs one authorized operation.
async fn operate(call: &Call<'_>, name: &str, input: &Value) -> Result<Value, EcrError> {
    match name {
        "CreateRepository" => repositories::create(call, input).await,
        "DescribeRepositories" => repositories::describe(call, input).await,
        "DeleteRepository" => repositories::delete(call, input).await,
        "DescribeRegistry" => replication::describe_registry(call).await,
        "GetAccountSetting" => {
            let name = input["name"].as_str().unwrap_or_default();
            let value = call.app.account_settings.get(name).await?;
            Ok(json!({"name": name, "value": value}))
        }
        "PutAccountSetting" => {
            let name = input["name"].as_str().unwrap_or_default();
            let value = call
                .app
                .account_settings
                .put(name, input["value"].as_str().unwrap_or_default())
                .await?;
            Ok(json!({"name": name, "value": value}))
        }
        "ListImageReferrers" => images::list_referrers(call, input).await,
        "RegisterPullTimeUpdateExclusion" => {
            settings::register_pull_time_exclusion(call, input).await
        }
        "DeregisterPullTimeUpdateExclusion" => {
            settings::deregister_pull_time_exclusion(call, input).await
        }
        "ListPullTimeUpdateExclusions" => settings::list_pull_time_exclusions(call, input).await,
        "PutReplicationConfiguration" => replication::put_configuration(call, input).await,
        "DescribeImageReplicationStatus" => replication::describe_status(call, input).await,
        "PutSigningConfiguration" => signing::put_configuration(call, input).await,
        "GetSigningConfiguration" => signing::get_configuration(call).await,
        "DeleteSigningConfiguration" => signing::delete_configuration(call).await,
        "DescribeImageSigningStatus" => signing::describe_status(call, input).await,
        "StartReplicationBackfill" => replication::start_backfill(call, input).await,
        "StopReplicationBackfill" => replication::stop_backfill(call, input).await,
        "ListReplicationBackfills" => replication::list_backfills(call, input).await,
        "DescribeReplicationBackfillResults" => {
            replication::describe_backfill_results(call, input).await
        }
        "GetAuthorizationToken" => Ok(authorization_token(call)),
        "ListImages" => images::list(call, input).await,
        "InitiateLayerUpload" => layers::initiate(call, input).await,
        "UploadLayerPart" => layers::upload_part(call, input).await,
        "CompleteLayerUpload" => layers::complete(call, input).await,
        "BatchCheckLayerAvailability" => layers::batch_check(call, input).await,
        "GetDownloadUrlForLayer" => layers::download_url(call, input).await,
        "DescribeImages" => images::describe(call, input).await,
        "UpdateImageStorageClass" => images::update_storage_class(call, input).await,
        "BatchGetImage" => images::batch_get(call, input).await,
        "BatchDeleteImage" => images::batch_delete(call, input).await,
        "PutImage" => images::put(call, input).await,
        "PutImageTagMutability" => settings::put_image_tag_mutability(call, input).await,
        "PutImageScanningConfiguration" => {
            settings::put_image_scanning_configuration(call, input).await
        }
        "TagResource" => settings::tag_resource(call, input).await,
        "UntagResource" => settings::untag_resource(call, input).await,
        "ListTagsForResource" => settings::list_tags_for_resource(call, input).await,
        "PutRegistryScanningConfiguration" => {
            scanning::put_registry_configuration(call, input).await
        }
        "GetRegistryScanningConfiguration" => scanning::get_registry_configuration(call).await,
        "BatchGetRepositoryScanningConfiguration" => {
            scanning::batch_get_repository_configuration(call, input).await
        }
        "StartImageScan" => scanning::start_scan(call, input).await,
        "CreatePullThroughCacheRule" => pullthrough::create(call, input).await,
        "DescribePullThroughCacheRules" => pullthrough::describe(call, input).await,
        "UpdatePullThroughCacheRule" => pullthrough::update(call, input).await,
        "DeletePullThroughCacheRule" => pullthrough::delete(call, input).await,
        "ValidatePullThroughCacheRule" => pullthrough::validate(call, input).await,
        "CreateRepositoryCreationTemplate" => templates::create(call, input).await,
        "DescribeRepositoryCreationTemplates" => templates::describe(call, input).await,
        "UpdateRepositoryCreationTemplate" => templates::update(call, input).await,
        "DeleteRepositoryCreationTemplate" => templates::delete(call, input).await,
        "DescribeImageScanFindings" => scanning::describe_findings(call, input).await,
        "PutLifecyclePolicy" => lifecycle::put(call, input).await,
        "GetLifecyclePolicy" => lifecycle::get(call, input).await,
        "DeleteLifecyclePolicy" => lifecycle::delete(call, input).await,
        "StartLifecyclePolicyPreview" => lifecycle::start_preview(call, input).await,
        "GetLifecyclePolicyPreview" => lifecycle::get_preview(call, input).await,
        "SetRepositoryPolicy" => policies::set_repository_policy(call, input).await,
        "GetRepositoryPolicy" => policies::get_repository_policy(call, input).await,
        "DeleteRepositoryPolicy" => policies::delete_repository_policy(call, input).await,
        "PutRegistryPolicy" => policies::put_registry_policy(call, input).await,
        "GetRegistryPolicy" => policies::get_registry_policy(call).await,
        "DeleteRegistryPolicy" => policies::delete_registry_policy(call).await,
        other => Err(EcrError::new(
            "UnsupportedOperationException",
            format!("berth does not support the ECR operation {other} yet"),
        )),
    }
}

/// Checks that the caller may make this call: the operation's IAM action on
/// each repository it names, or on `"*"` for registry-level operations.
async fn authorize(
    call: &Call<'_>,
    operation: &str,
    input: &Value,
    facts: &mut RequestFacts,
) -> Result<(), EcrError> {
    let access = &call.app.access;
    let action = actions::ecr_action(operation);
    let mut names: Vec<String> = Vec::new();
    if !actions::is_registry_level(operation) {
        if let Some(name) = input["repositoryName"].as_str() {
            names.push(name.to_string());
        } else if let Some(arn) = input["resourceArn"].as_str() {
            let prefix = access.repository_arn("");
            names.push(arn.strip_prefix(&prefix).unwrap_or(arn).to_string());
        } else if let Some(list) = input["repositoryNames"].as_array() {
            names.extend(list.iter().filter_map(Value::as_str).map(String::from));
        } else if operation == "DescribeRepositories" {
            names.push("*".to_string());
        }
    }
    for tag in input["tags"].as_array().into_iter().flatten() {
        if let (Some(key), Some(value)) = (tag["Key"].as_str(), tag["Value"].as_str()) {
            facts
                .request_tags
                .push((key.to_string(), value.to_string()));
        }
    }
    for key in input["tagKeys"].as_array().into_iter().flatten() {
        if let Some(key) = key.as_str() {
            facts.tag_keys.push(key.to_string());
        }
    }
    let principal = Some(&call.principal);
    if names.is_empty() {
        return Ok(access.check(principal, &action, "*", None, facts).await?);
    }
    for name in names {
        let repository = name.parse::<berth_core::RepositoryName>().ok();
        let arn = access.repository_arn(&name);
        access
            .check(principal, &action, &arn, repository.as_ref(), facts)
            .await?;
    }
    Ok(())
}

/// `GetAuthorizationToken`: a registry password for the caller, valid 12 hours,
/// as `base64("AWS:" + password)`.
fn authorization_token(call: &Call<'_>) -> Value {
    use base64::Engine as _;
    let (password, expires) = call
        .app
        .identity
        .issue_registry_token(&call.principal, now_millis() / 1000);
    let token = base64::engine::general_purpose::STANDARD.encode(format!("AWS:{password}"));
    json!({"authorizationData": [{
        "authorizationToken": token,
        "expiresAt": expires,
        "proxyEndpoint": call.endpoint,
    }]})
}
