//! Committed bytes always hash to their digest: whatever concurrent writers
//! through several nodes do, whatever a crash takes from staged bytes, and a
//! repository deleted while a push is in flight stays deleted.

mod common;

use common::*;

/// Bytes a seeded writer sends: distinct per writer and round.
fn payload(seed: &str, round: usize, len: usize) -> Vec<u8> {
    let pattern = format!("{seed}-{round}-");
    pattern.bytes().cycle().take(len).collect()
}

fn upload_location(response: &reqwest::Response) -> String {
    match response.headers().get("location") {
        Some(location) => location.to_str().unwrap().to_string(),
        None => panic!("no upload location: {response:?}"),
    }
}

#[tokio::test]
async fn racing_writers_on_one_upload_through_two_nodes_never_commit_wrong_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let args = ["--create-on-push"];
    let a = Berth::start_in(&data, &args);
    let b = Berth::start_in(&data, &args);
    let (mut committed, mut refused) = (0, 0);
    for round in 0..25 {
        let r = client()
            .post(a.url("/v2/race/blobs/uploads/"))
            .send()
            .await
            .unwrap();
        let location = upload_location(&r);
        // Two writers of one upload, one through each node, both claiming
        // the first byte: sizes tell afterwards whose write was recorded.
        let (x, y) = (payload("x", round, 40_000), payload("y", round, 50_000));
        let patch = |node: &Berth, bytes: &Vec<u8>| {
            client()
                .patch(node.url(&location))
                .header("content-range", format!("0-{}", bytes.len() - 1))
                .header("content-type", "application/octet-stream")
                .body(bytes.clone())
                .send()
        };
        let (rx, ry) = tokio::join!(patch(&a, &x), patch(&b, &y));
        let (sx, sy) = (rx.unwrap().status(), ry.unwrap().status());
        assert!(
            sx.as_u16() == 202 || sy.as_u16() == 202 || (sx == 404 && sy == 404),
            "{sx} {sy}"
        );
        let status = client().get(b.url(&location)).send().await.unwrap();
        if status.status() == 404 {
            refused += 1;
            continue;
        }
        let range = status.headers()["range"].to_str().unwrap().to_string();
        let recorded = match range.as_str() {
            "0-39999" => &x,
            "0-49999" => &y,
            other => panic!("unexpected upload range {other}"),
        };
        // Commit through the node that did not record it, with its digest.
        let digest = sha256(recorded);
        let r = client()
            .put(a.url(&format!("{location}?digest={digest}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "round {round}");
        committed += 1;
        for node in [&a, &b] {
            let r = client()
                .get(node.url(&format!("/v2/race/blobs/{digest}")))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            let bytes = r.bytes().await.unwrap();
            assert_eq!(
                sha256(&bytes),
                digest,
                "round {round}: committed bytes differ"
            );
        }
    }
    assert!(committed > 0, "no round committed ({refused} refused)");
}

#[tokio::test]
async fn a_staged_tail_lost_in_a_crash_is_never_committed_as_zeros() {
    if !local_blobs() {
        return; // the emulated power loss truncates a local staging file
    }
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let berth = Berth::start_in(&data, &["--create-on-push"]);
    let whole = payload("power", 0, 2 << 20);
    let first = &whole[..1_572_864];
    let r = client()
        .post(berth.url("/v2/power/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    let location = upload_location(&r);
    let r = client()
        .patch(berth.url(&location))
        .header("content-range", "0-1572863")
        .body(first.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    berth.kill();

    // The machine lost the unsynced tail of the staging file.
    let id = location.rsplit('/').next().unwrap();
    let staged = data.join("blobs").join("uploads").join(id);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&staged)
        .unwrap()
        .set_len(786_432)
        .unwrap();

    let berth = Berth::start_in(&data, &["--create-on-push"]);
    let r = client().get(berth.url(&location)).send().await.unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(r.headers()["range"], "0-1572863");
    // The client sends the rest and commits: refused, the upload is gone,
    // and no blob exists under the digest.
    let digest = sha256(&whole);
    let r = client()
        .put(berth.url(&format!("{location}?digest={digest}")))
        .header("content-range", format!("1572864-{}", whole.len() - 1))
        .body(whole[1_572_864..].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(error_code(r).await, "BLOB_UPLOAD_UNKNOWN");
    let r = client().get(berth.url(&location)).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let r = client()
        .head(berth.url(&format!("/v2/power/blobs/{digest}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    // Pushed again from the start, it is stored whole.
    assert_eq!(push_blob(&berth, "power", &whole).await, digest);
    let r = client()
        .get(berth.url(&format!("/v2/power/blobs/{digest}")))
        .send()
        .await
        .unwrap();
    assert_eq!(sha256(&r.bytes().await.unwrap()), digest);
}

#[tokio::test]
async fn a_repository_deleted_during_a_push_stays_deleted() {
    // ECR's behaviour: pushes do not create repositories.
    let berth = Berth::start_fresh(&[]);
    let r = ecr_call(&berth, "CreateRepository", r#"{"repositoryName":"doomed"}"#).await;
    assert_eq!(r.status(), 200);
    let layer = b"a layer in flight".to_vec();
    let r = client()
        .post(berth.url("/v2/doomed/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let location = upload_location(&r);
    let r = client()
        .patch(berth.url(&location))
        .body(layer.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let config = br#"{"architecture":"amd64","os":"linux"}"#.to_vec();
    let config_digest = push_blob(&berth, "doomed", &config).await;

    let r = ecr_call(
        &berth,
        "DeleteRepository",
        r#"{"repositoryName":"doomed","force":true}"#,
    )
    .await;
    assert_eq!(r.status(), 200);

    // The upload finishes and the manifest arrives after the delete.
    let digest = sha256(&layer);
    let r = client()
        .put(berth.url(&format!("{location}?digest={digest}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let manifest = image_manifest(
        (&config_digest, config.len()),
        &[(&digest, layer.len())],
        "",
    );
    let r = put_manifest(&berth, "doomed", "v1", &manifest, OCI_MANIFEST).await;
    assert_eq!(r.status(), 404);
    assert_eq!(error_code(r).await, "NAME_UNKNOWN");
    let r = ecr_call(
        &berth,
        "DescribeRepositories",
        r#"{"repositoryNames":["doomed"]}"#,
    )
    .await;
    assert_eq!(r.status(), 400);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["__type"], "RepositoryNotFoundException");
}

/// Layers completing while a manifest that shares them is pushed: both take
/// the repository row before the blob rows (PostgreSQL), so none fails.
#[tokio::test]
async fn layers_completing_during_a_manifest_push_cannot_deadlock() {
    const LAYERS: usize = 6;
    let berth = Berth::start(&[]);
    let config = br#"{"architecture":"amd64","os":"linux"}"#.to_vec();
    let config_digest = push_blob(&berth, "lockorder", &config).await;
    for round in 0..6 {
        let mut layers = Vec::new();
        let mut locations = Vec::new();
        for n in 0..LAYERS {
            let layer = payload(&format!("layer{n}"), round, 4096);
            let digest = push_blob(&berth, "lockorder", &layer).await;
            // The same layer again, as a second pusher uploads it.
            let r = client()
                .post(berth.url("/v2/lockorder/blobs/uploads/"))
                .send()
                .await
                .unwrap();
            let location = upload_location(&r);
            let r = client()
                .patch(berth.url(&location))
                .body(layer.clone())
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 202);
            locations.push(format!("{location}?digest={digest}"));
            layers.push((digest, layer.len()));
        }
        let refs: Vec<(&str, usize)> = layers.iter().map(|(d, s)| (d.as_str(), *s)).collect();
        let manifest = image_manifest((&config_digest, config.len()), &refs, "");
        let tag = format!("r{round}");
        let completions = futures_util::future::join_all(
            locations
                .iter()
                .map(|location| client().put(berth.url(location)).send()),
        );
        let push = put_manifest(&berth, "lockorder", &tag, &manifest, OCI_MANIFEST);
        let (completed, pushed) = tokio::join!(completions, push);
        for r in completed {
            assert_eq!(r.unwrap().status(), 201, "round {round}");
        }
        assert_eq!(pushed.status(), 201, "round {round}");
    }
}

/// A blob pushed whole with its digest (`POST ?digest=`) goes, on S3,
/// straight to its key: only bytes that verify ever appear there, whether
/// many clients push it at once, it does not hash to its digest, or its
/// client goes away midway.
#[tokio::test]
async fn whole_blob_pushes_publish_only_bytes_that_verify() {
    let berth = Berth::start(&[]);
    let client = client();
    // Past one multipart part (8 MiB) on S3.
    let blob = payload("whole", 0, (12 << 20) + 5);
    let digest = sha256(&blob);
    let post = |digest: String, body: reqwest::Body| {
        client
            .post(berth.url(&format!("/v2/whole/app/blobs/uploads/?digest={digest}")))
            .body(body)
            .send()
    };

    // Bytes that are not the blob: refused, and nothing at its key.
    let mut wrong = blob.clone();
    wrong[7 << 20] ^= 1;
    let r = post(digest.clone(), wrong.into()).await.unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(error_code(r).await, "DIGEST_INVALID");
    let head = |digest: String| {
        client
            .head(berth.url(&format!("/v2/whole/app/blobs/{digest}")))
            .send()
    };
    assert_eq!(head(digest.clone()).await.unwrap().status(), 404);

    // A client that goes away after 9 MiB of a longer body.
    let sent = blob[..9 << 20].to_vec();
    let cut = futures_util::stream::iter([
        Ok::<_, std::io::Error>(bytes::Bytes::from(sent)),
        Err(std::io::Error::other("the client goes away")),
    ]);
    let _ = client
        .post(berth.url(&format!("/v2/whole/app/blobs/uploads/?digest={digest}")))
        .header("content-length", blob.len())
        .body(reqwest::Body::wrap_stream(cut))
        .send()
        .await;
    assert_eq!(head(digest.clone()).await.unwrap().status(), 404);

    // Eight clients pushing it at once: every one is acknowledged, and what
    // is read back is the blob.
    let pushes = (0..8).map(|_| post(digest.clone(), blob.clone().into()));
    for r in futures_util::future::join_all(pushes).await {
        assert_eq!(r.unwrap().status(), 201);
    }
    let r = client
        .get(berth.url(&format!("/v2/whole/app/blobs/{digest}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(sha256(&r.bytes().await.unwrap()), digest);
}
