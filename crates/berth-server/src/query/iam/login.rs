//! Console passwords: `CreateLoginProfile`, `GetLoginProfile`,
//! `UpdateLoginProfile`, `DeleteLoginProfile` (on the user they name) and
//! `ChangePassword` (a user's own). The passwords service decides.

use berth_store::{IamKind, LoginProfile};
use serde_json::{Value, json};

use super::{Call, QueryError, seconds, str_of};
use crate::console::passwords::PasswordError;
use crate::identity::PrincipalKind;

impl From<PasswordError> for QueryError {
    fn from(e: PasswordError) -> QueryError {
        let code = match &e {
            PasswordError::Iam(_) => {
                let PasswordError::Iam(inner) = e else {
                    return QueryError::new("ServiceFailure", "unreachable");
                };
                return inner.into();
            }
            PasswordError::NoLoginProfile(_) => "NoSuchEntity",
            PasswordError::AlreadyExists(_) => "EntityAlreadyExists",
            PasswordError::PolicyViolation(_) => "PasswordPolicyViolation",
            // IAM's word for a change its caller may not make this way.
            PasswordError::WrongOldPassword => "InvalidUserType",
        };
        QueryError::new(code, e.to_string())
    }
}

fn profile_json(p: &LoginProfile) -> Value {
    json!({"LoginProfile": {
        "UserName": p.user_name,
        "CreateDate": seconds(p.created_at),
        "PasswordResetRequired": p.reset_required,
    }})
}

/// The user an operation names (authorized for `action`), or the calling user.
async fn user_of(call: &Call<'_>, action: &str, input: &Value) -> Result<String, QueryError> {
    let Some(name) = call.user_or_caller(input)? else {
        return Err(QueryError::new(
            "ValidationError",
            "Must specify userName when calling with non-User credentials",
        ));
    };
    let user = call.authorize_existing(action, IamKind::User, name).await?;
    Ok(user.name)
}

pub async fn create(call: &Call<'_>, input: &Value) -> Result<Value, QueryError> {
    let user = user_of(call, "CreateLoginProfile", input).await?;
    let reset = input["PasswordResetRequired"].as_bool().unwrap_or(false)
        || str_of(input, "PasswordResetRequired") == "true";
    let profile = call
        .app
        .passwords
        .create(&user, str_of(input, "Password"), reset)
        .await?;
    Ok(profile_json(&profile))
}

pub async fn get(call: &Call<'_>, input: &Value) -> Result<Value, QueryError> {
    let user = user_of(call, "GetLoginProfile", input).await?;
    Ok(profile_json(&call.app.passwords.get(&user).await?))
}

pub async fn update(call: &Call<'_>, input: &Value) -> Result<Value, QueryError> {
    let user = user_of(call, "UpdateLoginProfile", input).await?;
    let reset = match &input["PasswordResetRequired"] {
        Value::Bool(b) => Some(*b),
        Value::String(s) => Some(s == "true"),
        _ => None,
    };
    call.app
        .passwords
        .update(&user, input["Password"].as_str(), reset)
        .await?;
    Ok(json!({}))
}

pub async fn delete(call: &Call<'_>, input: &Value) -> Result<Value, QueryError> {
    let user = user_of(call, "DeleteLoginProfile", input).await?;
    call.app.passwords.delete(&user).await?;
    Ok(json!({}))
}

pub async fn change_password(call: &Call<'_>, input: &Value) -> Result<Value, QueryError> {
    let PrincipalKind::User { name } = &call.principal.kind else {
        return Err(QueryError::new(
            "InvalidUserType",
            "Only IAM users can change their own password.",
        ));
    };
    call.authorize("iam:ChangePassword", &call.principal.arn)
        .await?;
    call.app
        .passwords
        .change(
            name,
            str_of(input, "OldPassword"),
            str_of(input, "NewPassword"),
        )
        .await?;
    Ok(json!({}))
}
