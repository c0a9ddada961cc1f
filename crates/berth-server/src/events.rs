//! Events as EventBridge delivers them (source `aws.ecr`): recorded in the
//! metadata store, rendered with the envelope on the way out.

use berth_store::{Event, EventStore, StoreError, now_millis};
use serde_json::{Value, json};

pub const IMAGE_ACTION: &str = "ECR Image Action";

/// Records an `ECR Image Action` for an image deleted by a lifecycle rule;
/// `lifecycle-rule-priority` (berth's own field) names the rule.
pub async fn record_lifecycle_expiry(
    store: &dyn EventStore,
    repository: &str,
    digest: &str,
    tags: &[String],
    rule_priority: u64,
) -> Result<(), StoreError> {
    let mut detail = json!({
        "result": "SUCCESS",
        "repository-name": repository,
        "image-digest": digest,
        "action-type": "DELETE",
        "lifecycle-rule-priority": rule_priority,
    });
    if let Some(tag) = tags.first() {
        detail["image-tag"] = json!(tag);
    }
    store
        .record_event(now_millis(), IMAGE_ACTION, &detail.to_string())
        .await
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
        "resources": [],
        "detail": serde_json::from_str::<Value>(&event.detail).unwrap_or(Value::Null),
    })
}
