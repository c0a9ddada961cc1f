//! The outbox: a manifest push (or delete) and the event it produces commit
//! together. A failure injected between them (a trigger refusing the event)
//! leaves neither; on both databases when PostgreSQL is configured.

use std::sync::Arc;

use berth_core::{Algorithm, Digest, Reference, RepositoryName};
use berth_store::{MetadataStore, NewEvent, NewManifest, PgStore, PutManifestOutcome, SqliteStore};

fn manifest(seed: &str) -> NewManifest {
    let content = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[],"annotations":{{"seed":"{seed}"}}}}"#
    );
    NewManifest {
        digest: Digest::of(Algorithm::Sha256, content.as_bytes()),
        media_type: "application/vnd.oci.image.index.v1+json".into(),
        content: content.into_bytes().into(),
        artifact_type: None,
        subject: None,
        annotations: None,
        blobs: Vec::new(),
        children: Vec::new(),
        blobs_follow: false,
    }
}

fn event(what: &str) -> NewEvent {
    NewEvent {
        at: 1,
        detail_type: "ECR Image Action".into(),
        detail: format!(r#"{{"action-type":"{what}"}}"#),
    }
}

async fn push_and_event_commit_together(
    store: Arc<dyn MetadataStore>,
    inject: impl AsyncFnOnce(),
    heal: impl AsyncFnOnce(),
) {
    let repo: RepositoryName = "outbox/app".parse().unwrap();
    store.ensure_repository(&repo).await.unwrap();
    let before = store.recent_events(100).await.unwrap().len();

    // Both commit.
    let kept = manifest("kept");
    let outcome = store
        .put_manifest(&repo, &kept, &[], &[event("PUSH")])
        .await
        .unwrap();
    assert_eq!(outcome, PutManifestOutcome::Stored);
    assert_eq!(store.recent_events(100).await.unwrap().len(), before + 1);

    // The event cannot be written: the manifest is not stored either.
    inject().await;
    let lost = manifest("lost");
    assert!(
        store
            .put_manifest(&repo, &lost, &[], &[event("PUSH")])
            .await
            .is_err()
    );
    let found = store
        .get_manifest(&repo, &Reference::Digest(lost.digest.clone()))
        .await
        .unwrap();
    assert!(found.is_none(), "the manifest committed without its event");
    // Nor is a delete.
    assert!(
        store
            .delete_manifest(&repo, &kept.digest, &[event("DELETE")])
            .await
            .is_err()
    );
    let found = store
        .get_manifest(&repo, &Reference::Digest(kept.digest.clone()))
        .await
        .unwrap();
    assert!(found.is_some(), "the delete committed without its event");
    heal().await;
    assert_eq!(store.recent_events(100).await.unwrap().len(), before + 1);
}

#[tokio::test]
async fn sqlite_push_and_event_commit_together() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("metadata.db");
    let store = Arc::new(SqliteStore::open(&path).await.unwrap());
    let url = format!("sqlite://{}", path.display());
    let side = sqlx::SqlitePool::connect(&url).await.unwrap();
    push_and_event_commit_together(
        store,
        async || {
            sqlx::query(
                "CREATE TRIGGER refuse_events BEFORE INSERT ON events
                 BEGIN SELECT RAISE(ABORT, 'injected failure'); END",
            )
            .execute(&side)
            .await
            .unwrap();
        },
        async || {
            sqlx::query("DROP TRIGGER refuse_events")
                .execute(&side)
                .await
                .unwrap();
        },
    )
    .await;
}

#[tokio::test]
async fn postgres_push_and_event_commit_together() {
    let Ok(url) = std::env::var("BERTH_TEST_DATABASE_URL") else {
        return; // PostgreSQL is not configured for this run
    };
    let schema = format!("outbox_{}", std::process::id());
    let sep = if url.contains('?') { '&' } else { '?' };
    let store = Arc::new(
        PgStore::connect(&format!("{url}{sep}schema={schema}"))
            .await
            .unwrap(),
    );
    let side = sqlx::PgPool::connect(url.split('?').next().unwrap())
        .await
        .unwrap();
    push_and_event_commit_together(
        store,
        async || {
            for statement in [
                format!(
                    "CREATE FUNCTION {schema}.refuse() RETURNS trigger LANGUAGE plpgsql
                     AS $$ BEGIN RAISE EXCEPTION 'injected failure'; END $$"
                ),
                format!(
                    "CREATE TRIGGER refuse_events BEFORE INSERT ON {schema}.events
                     FOR EACH ROW EXECUTE FUNCTION {schema}.refuse()"
                ),
            ] {
                sqlx::query(sqlx::AssertSqlSafe(statement))
                    .execute(&side)
                    .await
                    .unwrap();
            }
        },
        async || {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP TRIGGER refuse_events ON {schema}.events"
            )))
            .execute(&side)
            .await
            .unwrap();
        },
    )
    .await;
}

/// Old events go once every consumer has read them; a webhook that no
/// longer exists holds nothing back, one that exists does.
async fn read_events_are_purged(store: Arc<dyn MetadataStore>, add_webhook: impl AsyncFnOnce()) {
    for at in 1..=4 {
        store
            .record_event(at, "ECR Image Action", "{}")
            .await
            .unwrap();
    }
    let ids: Vec<i64> = store
        .recent_events(10)
        .await
        .unwrap()
        .iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(ids.len(), 4);
    // Nobody has read anything yet: nothing goes.
    assert_eq!(store.purge_events(i64::MAX).await.unwrap(), 0);
    assert!(
        store
            .advance_outbox("scan-on-push", None, ids[2])
            .await
            .unwrap()
    );
    assert!(
        store
            .advance_outbox("webhook:gone", None, ids[0])
            .await
            .unwrap()
    );
    // Only what was recorded before the cutoff, and read by every consumer.
    assert_eq!(store.purge_events(2).await.unwrap(), 1);
    assert_eq!(store.purge_events(i64::MAX).await.unwrap(), 2);
    assert_eq!(store.recent_events(10).await.unwrap().len(), 1);
    // A webhook that exists, behind the others, holds the rest back.
    add_webhook().await;
    assert!(store.advance_outbox("webhook:live", None, 0).await.unwrap());
    store
        .record_event(5, "ECR Image Action", "{}")
        .await
        .unwrap();
    assert!(
        store
            .advance_outbox("scan-on-push", Some(ids[2]), ids[3] + 1)
            .await
            .unwrap()
    );
    assert_eq!(store.purge_events(i64::MAX).await.unwrap(), 0);
}

const LIVE_WEBHOOK: &str = "INSERT INTO webhooks (name, url, sealed_secret, detail_types, repository_filter, failures, retry_at, last_error, created_at)
     VALUES ('live', 'http://127.0.0.1:9/', x'00', '[]', NULL, 0, 0, NULL, 0)";

#[tokio::test]
async fn sqlite_read_events_are_purged() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("metadata.db");
    let store = Arc::new(SqliteStore::open(&path).await.unwrap());
    let side = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    read_events_are_purged(store, async || {
        sqlx::query(LIVE_WEBHOOK).execute(&side).await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn postgres_read_events_are_purged() {
    let Ok(url) = std::env::var("BERTH_TEST_DATABASE_URL") else {
        return; // PostgreSQL is not configured for this run
    };
    let schema = format!("purge_{}", std::process::id());
    let sep = if url.contains('?') { '&' } else { '?' };
    let store = Arc::new(
        PgStore::connect(&format!("{url}{sep}schema={schema}"))
            .await
            .unwrap(),
    );
    let side = sqlx::PgPool::connect(url.split('?').next().unwrap())
        .await
        .unwrap();
    read_events_are_purged(store, async || {
        let insert = LIVE_WEBHOOK
            .replace(
                "INSERT INTO webhooks",
                &format!("INSERT INTO {schema}.webhooks"),
            )
            .replace("x'00'", "'\\x00'::bytea");
        sqlx::query(sqlx::AssertSqlSafe(insert))
            .execute(&side)
            .await
            .unwrap();
    })
    .await;
}
