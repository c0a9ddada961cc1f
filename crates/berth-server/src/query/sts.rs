//! STS: `GetCallerIdentity`, `GetSessionToken` and `AssumeRole`. Temporary
//! credentials are access keys with an expiry and a session token; they stop
//! working at their expiry with `ExpiredToken`, and so do registry tokens
//! issued from them.

use berth_core::policy::{Policy, PolicyKind};
use berth_store::{IamKind, now_millis};
use serde_json::{Value, json};

use super::{Call, QueryError};
use crate::iam::Details;
use crate::identity::{PrincipalKind, TemporaryCredentials};

/// `GetSessionToken` durations (seconds): IAM users, and the root user.
const SESSION_DEFAULT: i64 = 43_200;
const SESSION_MAX: i64 = 129_600;
const SESSION_MAX_ROOT: i64 = 3_600;
const DURATION_MIN: i64 = 900;
/// A role session started from another role session lasts at most an hour.
const CHAINED_MAX: i64 = 3_600;
/// Live temporary credentials at most per caller (`GetSessionToken`) and
/// per role (`AssumeRole`), so that no principal grows the key table without
/// bound; expired ones are purged in the background.
pub const LIVE_SESSIONS: u64 = 1000;
/// Session policies, packed, as STS limits them.
const SESSION_POLICY_SIZE: usize = 2048;

pub async fn handle(call: &Call<'_>, action: &str, input: &Value) -> Result<Value, QueryError> {
    match action {
        "GetCallerIdentity" => get_caller_identity(call).await,
        "GetSessionToken" => get_session_token(call, input).await,
        "AssumeRole" => assume_role(call, input).await,
        other => Err(QueryError::new(
            "InvalidAction",
            format!("berth does not support the STS operation {other} yet"),
        )),
    }
}

fn credentials_json(c: &TemporaryCredentials) -> Value {
    json!({
        "AccessKeyId": c.access_key_id,
        "SecretAccessKey": c.secret_access_key,
        "SessionToken": c.session_token,
        "Expiration": c.expiration,
    })
}

/// `aws:userid`: the account for the root user, the user's id, or
/// `<role id>:<session>`.
async fn user_id(call: &Call<'_>) -> Result<String, QueryError> {
    let iam = &call.app.iam;
    Ok(match &call.principal.kind {
        PrincipalKind::User { name } => iam
            .entity(IamKind::User, name)
            .await?
            .map_or_else(|| name.clone(), |u| u.id),
        PrincipalKind::RoleSession { role, session } => {
            let id = iam
                .entity(IamKind::Role, role)
                .await?
                .map_or_else(|| role.clone(), |r| r.id);
            format!("{id}:{session}")
        }
        _ => call.account().to_string(),
    })
}

/// Needs no permission, as on AWS.
async fn get_caller_identity(call: &Call<'_>) -> Result<Value, QueryError> {
    Ok(json!({
        "UserId": user_id(call).await?,
        "Account": call.account(),
        "Arn": call.principal.arn,
    }))
}

fn duration(input: &Value, default: i64, max: i64) -> Result<i64, QueryError> {
    let seconds = input["DurationSeconds"].as_i64().unwrap_or(default);
    if !(DURATION_MIN..=max).contains(&seconds) {
        return Err(QueryError::new(
            "ValidationError",
            format!(
                "1 validation error detected: Value '{seconds}' at 'durationSeconds' failed to satisfy constraint: Member must have value between {DURATION_MIN} and {max}"
            ),
        ));
    }
    Ok(seconds)
}

/// Refuses a new session when `principal` (an ARN, or a role's session ARN
/// prefix) already has [`LIVE_SESSIONS`] live ones.
async fn live_sessions_below_limit(call: &Call<'_>, principal: &str) -> Result<(), QueryError> {
    let live = call
        .app
        .identity
        .live_temporary_credentials(principal)
        .await?;
    if live >= LIVE_SESSIONS {
        return Err(QueryError::new(
            "LimitExceeded",
            format!(
                "Cannot exceed quota for live sessions: {LIVE_SESSIONS} (let some expire first)"
            ),
        ));
    }
    Ok(())
}

async fn get_session_token(call: &Call<'_>, input: &Value) -> Result<Value, QueryError> {
    if call.principal.is_temporary() {
        return Err(QueryError::new(
            "AccessDenied",
            "Cannot call GetSessionToken with session credentials",
        ));
    }
    let max = if call.principal.kind == PrincipalKind::Root {
        SESSION_MAX_ROOT
    } else {
        SESSION_MAX
    };
    let seconds = duration(input, SESSION_DEFAULT.min(max), max)?;
    live_sessions_below_limit(call, &call.principal.arn).await?;
    let expiration = now_millis() / 1000 + seconds;
    let credentials = call
        .app
        .identity
        .issue_temporary_credentials(&call.principal.arn, expiration, None)
        .await?;
    Ok(json!({"Credentials": credentials_json(&credentials)}))
}

async fn assume_role(call: &Call<'_>, input: &Value) -> Result<Value, QueryError> {
    let role_arn = input["RoleArn"].as_str().unwrap_or_default();
    let session = input["RoleSessionName"].as_str().unwrap_or_default();
    if input.get("PolicyArns").is_some() || input.get("Tags").is_some() {
        return Err(QueryError::new(
            "ValidationError",
            "berth does not support PolicyArns or Tags in AssumeRole yet",
        ));
    }
    let denied = || {
        QueryError::new(
            "AccessDenied",
            format!(
                "User: {} is not authorized to perform: sts:AssumeRole on resource: {role_arn}",
                call.principal.arn
            ),
        )
    };
    // The account's root user cannot assume roles, as on AWS.
    if call.principal.kind == PrincipalKind::Root {
        return Err(QueryError {
            status: Some(axum::http::StatusCode::FORBIDDEN),
            ..QueryError::new("AccessDenied", "Roles may not be assumed by root accounts.")
        });
    }
    let role_name = role_arn
        .strip_prefix(&format!("arn:aws:iam::{}:role/", call.account()))
        .map(|rest| rest.rsplit('/').next().unwrap_or(rest))
        .ok_or_else(denied)?;
    let role = call
        .app
        .iam
        .entity(IamKind::Role, role_name)
        .await?
        .filter(|r| r.arn == role_arn)
        .ok_or_else(denied)?;
    let trust = Policy::parse(role.document.as_deref().unwrap_or(""), PolicyKind::Trust)
        .map_err(|_| denied())?;
    call.app
        .access
        .check_with(
            Some(&call.principal),
            "sts:AssumeRole",
            role_arn,
            None,
            Some(&trust),
            &call.facts,
        )
        .await
        .map_err(|_| denied())?;

    let role_max = Details::of(&role).max_session_duration;
    let chained = matches!(call.principal.kind, PrincipalKind::RoleSession { .. });
    let max = if chained { CHAINED_MAX } else { role_max };
    let seconds = input["DurationSeconds"].as_i64().unwrap_or(3600.min(max));
    if seconds > max {
        let message = if chained {
            "The requested DurationSeconds exceeds the 1 hour session limit for roles assumed by role chaining."
        } else {
            "The requested DurationSeconds exceeds the MaxSessionDuration set for this role."
        };
        return Err(QueryError::new("ValidationError", message));
    }
    let seconds = duration(input, seconds, max)?;

    let session_policy = input["Policy"].as_str();
    let mut packed = 0;
    if let Some(text) = session_policy {
        Policy::parse(text, PolicyKind::Identity)
            .map_err(|e| QueryError::new("MalformedPolicyDocument", e.0))?;
        let size = text.chars().filter(|c| !c.is_whitespace()).count();
        packed = size * 100 / SESSION_POLICY_SIZE;
        if size > SESSION_POLICY_SIZE {
            return Err(QueryError::new(
                "PackedPolicyTooLarge",
                format!("Packed size of the session policy is {packed}% of the allowed size"),
            ));
        }
    }
    let session_arn = format!(
        "arn:aws:sts::{}:assumed-role/{}/{session}",
        call.account(),
        role.name
    );
    let role_sessions = format!(
        "arn:aws:sts::{}:assumed-role/{}/",
        call.account(),
        role.name
    );
    live_sessions_below_limit(call, &role_sessions).await?;
    let expiration = now_millis() / 1000 + seconds;
    let credentials = call
        .app
        .identity
        .issue_temporary_credentials(&session_arn, expiration, session_policy)
        .await?;
    let mut output = json!({
        "Credentials": credentials_json(&credentials),
        "AssumedRoleUser": {
            "AssumedRoleId": format!("{}:{session}", role.id),
            "Arn": session_arn,
        },
    });
    if session_policy.is_some() {
        output["PackedPolicySize"] = json!(packed);
    }
    Ok(output)
}
