//! Two berth nodes over one database and one blob directory: what one does,
//! the other sees at once. (Background jobs moving between nodes: `jobs.rs`.)

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

    // A tag moved on one node is seen at once on the other.
    let (_, other) = push_image(&b, "shared/app", "v1", "two").await;
    assert_ne!(other, digest);
    let r = client()
        .head(a.url("/v2/shared/app/manifests/v1"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["docker-content-digest"], other.as_str());
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
