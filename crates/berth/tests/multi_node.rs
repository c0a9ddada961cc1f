//! Two berth nodes over one database and one blob directory: what one does,
//! it sees at once, and the other within the README's bound (at once on
//! SQLite; within 1 s on PostgreSQL, whose nodes cache the hottest reads).
//! (Background jobs moving between nodes: `jobs.rs`.)

mod common;

use common::*;

async fn jobs(berth: &Berth) -> Vec<String> {
    let r = anonymous().get(berth.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["database"], "ok");
    assert_eq!(body["storage"], "ok");
    serde_json::from_value(body["jobs"].clone()).unwrap()
}

#[tokio::test]
async fn two_nodes_share_one_registry() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let args = ["--create-on-push", "--upload-timeout", "2s"];
    let a = Berth::start_in(&data, &args);
    let b = Berth::start_in(&data, &args);

    // Pushed through one, pulled through the other.
    let (manifest, digest) = push_image(&a, "shared/app", "v1", "one").await;
    let r = client()
        .get(b.url("/v2/shared/app/manifests/v1"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), manifest);

    // A chunked upload whose requests alternate between the nodes.
    let r = client()
        .post(a.url("/v2/shared/app/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    let location = r.headers()["location"].to_str().unwrap().to_string();
    for (node, chunk, range) in [
        (&b, "hello ", "0-5"),
        (&a, "multi ", "6-11"),
        (&b, "node", "12-15"),
    ] {
        let r = client()
            .patch(node.url(&location))
            .header("content-range", range)
            .body(chunk)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202, "{range}");
    }
    let blob = sha256(b"hello multi node");
    let r = client()
        .put(a.url(&format!("{location}?digest={blob}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let r = client()
        .get(b.url(&format!("/v2/shared/app/blobs/{blob}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.bytes().await.unwrap().as_ref(), b"hello multi node");

    // A tag moved on one node is seen at once there, and on the other within
    // the bound the README states (PostgreSQL's read cache: 1 s at most,
    // milliseconds as a rule); node `a` has just read the old one.
    let head = |node: &Berth, path: String| {
        let request = client().head(node.url(&path));
        async move { request.send().await.unwrap() }
    };
    let digest_of = |r: &reqwest::Response| {
        r.headers()
            .get("docker-content-digest")
            .map(|v| v.to_str().unwrap().to_string())
    };
    let r = head(&a, "/v2/shared/app/manifests/v1".into()).await;
    assert_eq!(digest_of(&r).as_deref(), Some(digest.as_str()));
    let (_, other) = push_image(&b, "shared/app", "v1", "two").await;
    assert_ne!(other, digest);
    let r = head(&b, "/v2/shared/app/manifests/v1".into()).await;
    assert_eq!(digest_of(&r).as_deref(), Some(other.as_str()));
    let seen = within_bound(|| async {
        let r = head(&a, "/v2/shared/app/manifests/v1".into()).await;
        digest_of(&r).as_deref() == Some(other.as_str())
    })
    .await;
    assert!(seen, "node a still serves the old tag after the bound");

    // A deleted image is gone at once from the node that deleted it, and
    // from the other within the same bound.
    let path = format!("/v2/shared/app/manifests/{other}");
    assert_eq!(head(&a, path.clone()).await.status(), 200);
    let r = client().delete(b.url(&path)).send().await.unwrap();
    assert_eq!(r.status(), 202);
    assert_eq!(head(&b, path.clone()).await.status(), 404);
    let gone = within_bound(|| async { head(&a, path.clone()).await.status() == 404 }).await;
    assert!(gone, "node a still serves a deleted image after the bound");
}

/// Whether `check` holds within the README's bound on what another node may
/// still serve after a change (1 s), with a little slack for the test itself.
async fn within_bound<F, Fut>(check: F) -> bool
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = std::time::Instant::now();
    while start.elapsed() < std::time::Duration::from_millis(1500) {
        if check().await {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    false
}

#[tokio::test]
async fn health_and_readiness_need_no_credentials() {
    let berth = Berth::start(&[]);
    let r = anonymous().get(berth.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    // At most its workers' jobs run on a node.
    assert!(jobs(&berth).await.len() <= 2);
}

#[tokio::test]
async fn blob_pulls_redirect_to_the_object_store_when_asked() {
    let berth = Berth::start(&["--redirect-blob-pulls"]);
    let digest = push_blob(&berth, "redirect", b"fetched from elsewhere").await;
    let no_follow = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .default_headers(
            [(
                reqwest::header::AUTHORIZATION,
                client_authorization().parse().unwrap(),
            )]
            .into_iter()
            .collect(),
        )
        .build()
        .unwrap();
    let r = no_follow
        .get(berth.url(&format!("/v2/redirect/blobs/{digest}")))
        .send()
        .await
        .unwrap();
    if local_blobs() {
        // Files have no URL of their own: berth streams them.
        assert_eq!(r.status(), 200);
        assert_eq!(r.bytes().await.unwrap().as_ref(), b"fetched from elsewhere");
        return;
    }
    assert_eq!(r.status(), 307);
    assert_eq!(r.headers()["docker-content-digest"], digest.as_str());
    let location = r.headers()["location"].to_str().unwrap().to_string();
    assert!(!location.starts_with(&berth.base), "{location}");
    let fetched = anonymous().get(&location).send().await.unwrap();
    assert_eq!(fetched.status(), 200);
    assert_eq!(
        fetched.bytes().await.unwrap().as_ref(),
        b"fetched from elsewhere"
    );
    // HEAD still answers from berth.
    let r = no_follow
        .head(berth.url(&format!("/v2/redirect/blobs/{digest}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}
