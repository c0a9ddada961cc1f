//! Versions of managed policies: `GetPolicyVersion`, `CreatePolicyVersion`,
//! `ListPolicyVersions`, `DeletePolicyVersion`, `SetDefaultPolicyVersion`.

use serde_json::{Value, json};

use super::{Call, QueryError, encode_document, merge, page, paged, str_of};
use crate::iam::PolicyVersion;

fn version_json(v: &PolicyVersion, with_document: bool) -> Value {
    let mut json = json!({
        "VersionId": v.id,
        "IsDefaultVersion": v.is_default,
        "CreateDate": v.created / 1000,
    });
    if with_document {
        json["Document"] = json!(encode_document(&v.document));
    }
    json
}

pub(super) async fn get(call: &Call<'_>, input: &Value) -> Result<Value, QueryError> {
    let arn = str_of(input, "PolicyArn");
    let id = str_of(input, "VersionId");
    call.authorize("iam:GetPolicyVersion", arn).await?;
    let version = call.iam().policy_version(arn, id).await?;
    Ok(json!({"PolicyVersion": version_json(&version, true)}))
}

pub(super) async fn create(call: &Call<'_>, input: &Value) -> Result<Value, QueryError> {
    let arn = str_of(input, "PolicyArn");
    call.authorize("iam:CreatePolicyVersion", arn).await?;
    let created = call
        .iam()
        .create_policy_version(
            arn,
            str_of(input, "PolicyDocument"),
            input["SetAsDefault"].as_bool().unwrap_or(false),
        )
        .await?;
    Ok(json!({"PolicyVersion": version_json(&created, false)}))
}

pub(super) async fn list(call: &Call<'_>, input: &Value) -> Result<Value, QueryError> {
    let arn = str_of(input, "PolicyArn");
    call.authorize("iam:ListPolicyVersions", arn).await?;
    // Newest first, as IAM lists them.
    let mut versions = call.iam().policy_versions(arn).await?;
    versions.reverse();
    let (limit, after) = page(input)?;
    let (versions, extra) = paged(versions, |v| v.id.clone(), limit, after.as_deref());
    let listed: Vec<Value> = versions.iter().map(|v| version_json(v, false)).collect();
    Ok(merge(json!({"Versions": listed}), extra))
}

pub(super) async fn delete(call: &Call<'_>, input: &Value) -> Result<Value, QueryError> {
    let arn = str_of(input, "PolicyArn");
    call.authorize("iam:DeletePolicyVersion", arn).await?;
    call.iam()
        .delete_policy_version(arn, str_of(input, "VersionId"))
        .await?;
    Ok(json!({}))
}

pub(super) async fn set_default(call: &Call<'_>, input: &Value) -> Result<Value, QueryError> {
    let arn = str_of(input, "PolicyArn");
    call.authorize("iam:SetDefaultPolicyVersion", arn).await?;
    call.iam()
        .set_default_policy_version(arn, str_of(input, "VersionId"))
        .await?;
    Ok(json!({}))
}
