//! Tags on users and roles (`TagUser`, `UntagUser`, `ListUserTags` and the
//! role twins): what `aws:PrincipalTag/…` conditions read.

use berth_store::IamKind;
use serde_json::{Value, json};

use super::{Call, QueryError, attributes, holder_name, page, paged};

/// Tags per user or role, as on IAM.
const MAX_TAGS: usize = 50;

/// `Tag…`/`Untag…`: sets or removes tags of the user or role.
pub(super) async fn change(
    call: &Call<'_>,
    kind: IamKind,
    action: &str,
    input: &Value,
) -> Result<Value, QueryError> {
    let name = holder_name(kind, input);
    let mut entity = call.authorize_existing(action, kind, name).await?;
    let mut attrs = attributes(&entity);
    let mut tags: Vec<(String, String)> = attrs["tags"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| {
            Some((
                t["Key"].as_str()?.to_string(),
                t["Value"].as_str()?.to_string(),
            ))
        })
        .collect();
    if action.starts_with("Untag") {
        let remove: Vec<&str> = input["TagKeys"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        tags.retain(|(k, _)| !remove.contains(&k.as_str()));
    } else {
        for tag in input["Tags"].as_array().into_iter().flatten() {
            let (Some(key), Some(value)) = (tag["Key"].as_str(), tag["Value"].as_str()) else {
                continue;
            };
            match tags.iter_mut().find(|(k, _)| k == key) {
                Some(existing) => existing.1 = value.to_string(),
                None => tags.push((key.to_string(), value.to_string())),
            }
        }
        if tags.len() > MAX_TAGS {
            return Err(QueryError::new(
                "LimitExceeded",
                format!("Cannot exceed quota for TagsPerResource: {MAX_TAGS}"),
            ));
        }
    }
    attrs["tags"] = tags
        .iter()
        .map(|(k, v)| json!({"Key": k, "Value": v}))
        .collect();
    entity.attributes = attrs.to_string();
    call.app.access.store().update_iam_entity(&entity).await?;
    Ok(json!({}))
}

pub(super) async fn list(
    call: &Call<'_>,
    kind: IamKind,
    action: &str,
    input: &Value,
) -> Result<Value, QueryError> {
    let name = holder_name(kind, input);
    let entity = call.authorize_existing(action, kind, name).await?;
    let tags: Vec<Value> = attributes(&entity)["tags"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let (limit, after) = page(input)?;
    let (tags, extra) = paged(
        tags,
        |t| t["Key"].as_str().unwrap_or_default().to_string(),
        limit,
        after.as_deref(),
    );
    Ok(super::merge(json!({"Tags": tags}), extra))
}
