//! Events as EventBridge delivers them (source `aws.ecr`): recorded in the
//! metadata store in the same transaction as the change they report (the
//! outbox), rendered with the envelope on the way out.

use berth_store::{Event, NewEvent, now_millis};
use serde_json::{Value, json};

pub const IMAGE_ACTION: &str = "ECR Image Action";

/// An `ECR Image Action` (`PUSH` or `DELETE`), as ECR sends it to
/// EventBridge, to record with the change it reports. `extra` adds fields
/// (`lifecycle-rule-priority`, berth's own, names the rule that expired an
/// image).
pub fn image_action(
    action: &str,
    repository: &str,
    digest: &str,
    tag: Option<&str>,
    extra: &[(&str, Value)],
) -> NewEvent {
    let mut detail = json!({
        "result": "SUCCESS",
        "repository-name": repository,
        "image-digest": digest,
        "action-type": action,
    });
    if let Some(tag) = tag {
        detail["image-tag"] = json!(tag);
    }
    for (key, value) in extra {
        detail[*key] = value.clone();
    }
    NewEvent {
        at: now_millis(),
        detail_type: IMAGE_ACTION.into(),
        detail: detail.to_string(),
    }
}

/// A successful push an event reports: (repository, digest, tag).
pub fn pushed(event: &Event) -> Option<(String, String, Option<String>)> {
    image_action_of(event, "PUSH")
}

/// A delete an event reports: (repository, digest, the tag when one tag
/// was removed — the image went too if it was its last).
pub fn deleted(event: &Event) -> Option<(String, String, Option<String>)> {
    image_action_of(event, "DELETE")
}

fn image_action_of(event: &Event, action: &str) -> Option<(String, String, Option<String>)> {
    if event.detail_type != IMAGE_ACTION {
        return None;
    }
    let detail: Value = serde_json::from_str(&event.detail).ok()?;
    if detail["action-type"] != action || detail["result"] != "SUCCESS" {
        return None;
    }
    Some((
        detail["repository-name"].as_str()?.to_string(),
        detail["image-digest"].as_str()?.to_string(),
        detail["image-tag"].as_str().map(str::to_string),
    ))
}

/// The event in EventBridge's envelope.
pub fn envelope(event: &Event, account: &str, region: &str) -> Value {
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_millis(event.at.max(0) as u64);
    json!({
        "version": "0",
        "id": format!("berth-{}", event.id),
        "detail-type": event.detail_type,
        "source": "aws.ecr",
        "account": account,
        "time": humantime::format_rfc3339_seconds(time).to_string(),
        "region": region,
        // Image actions name no resource; the others their repository.
        "resources": resources(event, account, region),
        "detail": serde_json::from_str::<Value>(&event.detail).unwrap_or(Value::Null),
    })
}

fn resources(event: &Event, account: &str, region: &str) -> Value {
    if event.detail_type == IMAGE_ACTION {
        return json!([]);
    }
    let detail: Value = serde_json::from_str(&event.detail).unwrap_or(Value::Null);
    match detail["repository-name"].as_str() {
        Some(name) => json!([format!("arn:aws:ecr:{region}:{account}:repository/{name}")]),
        None => json!([]),
    }
}
