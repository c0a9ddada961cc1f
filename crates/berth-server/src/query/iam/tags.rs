//! Tags on users and roles (`TagUser`, `UntagUser`, `ListUserTags` and the
//! role twins).

use berth_store::IamKind;
use serde_json::{Value, json};

use super::{Call, QueryError, holder_name, merge, page, paged, tags_json, tags_of};
use crate::iam::Details;

/// `Tag…`/`Untag…`: sets or removes tags of the user or role.
pub(super) async fn change(
    call: &Call<'_>,
    kind: IamKind,
    action: &str,
    input: &Value,
) -> Result<Value, QueryError> {
    let name = holder_name(kind, input);
    call.authorize_existing(action, kind, name).await?;
    if action.starts_with("Untag") {
        let keys: Vec<String> = input["TagKeys"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect();
        call.iam().untag(kind, name, &keys).await?;
    } else {
        call.iam().tag(kind, name, &tags_of(input)).await?;
    }
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
    let tags = Details::of(&entity).tags;
    let (limit, after) = page(input)?;
    let (tags, extra) = paged(tags, |(key, _)| key.clone(), limit, after.as_deref());
    Ok(merge(json!({"Tags": tags_json(&tags)}), extra))
}
