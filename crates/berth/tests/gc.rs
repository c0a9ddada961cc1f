//! Online garbage collection against the real binary: what it reclaims, what
//! it must never take, and a bounded race of pushers, deleters, lifecycle and
//! collection after which every image reported pushed is still whole.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;

/// Blob files on the local filesystem store, by digest.
fn stored_blobs(berth: &Berth) -> Vec<String> {
    let root = berth.data_dir.join("blobs").join("blobs").join("sha256");
    let mut found = Vec::new();
    for dir in std::fs::read_dir(&root).into_iter().flatten().flatten() {
        for file in std::fs::read_dir(dir.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            found.push(format!("sha256:{}", file.file_name().to_string_lossy()));
        }
    }
    found.sort();
    found
}

async fn blob_status(berth: &Berth, repo: &str, digest: &str) -> u16 {
    client()
        .get(berth.url(&format!("/v2/{repo}/blobs/{digest}")))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn wait_until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn unreferenced_blobs_go_after_the_grace_period_and_shared_ones_stay() {
    let berth = Berth::start(&["--gc-interval", "300ms", "--gc-grace", "2s"]);
    let shared = push_blob(&berth, "a", b"a layer two images share").await;
    let config_a = push_blob(&berth, "a", b"{\"config\":\"a\"}").await;
    let a = image_manifest((&config_a, 14), &[(&shared, 24)], "");
    assert_eq!(
        put_manifest(&berth, "a", "v1", &a, OCI_MANIFEST)
            .await
            .status(),
        201
    );
    let mount = client()
        .post(berth.url(&format!("/v2/b/blobs/uploads/?mount={shared}&from=a")))
        .send()
        .await
        .unwrap();
    assert_eq!(mount.status(), 201);
    let config_b = push_blob(&berth, "b", b"{\"config\":\"b\"}").await;
    let b = image_manifest((&config_b, 14), &[(&shared, 24)], "");
    assert_eq!(
        put_manifest(&berth, "b", "v1", &b, OCI_MANIFEST)
            .await
            .status(),
        201
    );
    // Uploaded for a manifest not pushed yet: kept for the grace period.
    let pending = push_blob(&berth, "a", b"waiting for its manifest").await;

    // Delete image a: its config is unreferenced now, the shared layer is not.
    let r = client()
        .delete(berth.url(&format!("/v2/a/manifests/{}", sha256(a.as_bytes()))))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(
        blob_status(&berth, "a", &config_a).await,
        200,
        "within grace"
    );
    assert_eq!(
        blob_status(&berth, "a", &pending).await,
        200,
        "within grace"
    );

    wait_until("the config to be reclaimed", || async {
        blob_status(&berth, "a", &config_a).await == 404
    })
    .await;
    wait_until("the pending blob to be reclaimed", || async {
        blob_status(&berth, "a", &pending).await == 404
    })
    .await;
    assert_eq!(blob_status(&berth, "a", &shared).await, 200);
    assert_eq!(blob_status(&berth, "b", &shared).await, 200);
    assert_eq!(blob_status(&berth, "b", &config_b).await, 200);
    if local_blobs() {
        let mut expected = vec![shared.clone(), config_b.clone()];
        expected.sort();
        assert_eq!(stored_blobs(&berth), expected);
    }
    let metrics = metrics_text(&berth).await;
    assert!(
        metrics.contains("berth_gc_reclaimed_blobs_total 2"),
        "{metrics}"
    );

    // A manifest pushed again over blobs re-uploaded works as before.
    push_blob(&berth, "a", b"{\"config\":\"a\"}").await;
    assert_eq!(
        put_manifest(&berth, "a", "v1", &a, OCI_MANIFEST)
            .await
            .status(),
        201
    );
    assert_eq!(blob_status(&berth, "a", &config_a).await, 200);
}

#[tokio::test]
async fn gc_dry_run_says_what_it_would_reclaim() {
    let berth = Berth::start(&["--gc-interval", "24h"]);
    let orphan = push_blob(&berth, "tools", b"never referenced").await;
    let run = |args: &[&str]| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_berth"));
        command
            .arg("gc")
            .arg("--data-dir")
            .arg(&berth.data_dir)
            .args(args);
        let out = command.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    if std::env::var_os("BERTH_TEST_DATABASE_URL").is_some() || !local_blobs() {
        return; // the command needs the server's --database/--storage; covered on SQLite
    }
    assert!(run(&["--grace", "1h", "--dry-run"]).contains("would reclaim 0 blob(s)"));
    let dry = run(&["--grace", "0s", "--dry-run"]);
    assert!(dry.contains(&format!("would reclaim {orphan}")), "{dry}");
    assert_eq!(blob_status(&berth, "tools", &orphan).await, 200);
    let done = run(&["--grace", "0s"]);
    assert!(done.contains("reclaimed 1 blob(s), 16 bytes"), "{done}");
    assert_eq!(blob_status(&berth, "tools", &orphan).await, 404);
    assert!(stored_blobs(&berth).is_empty());
}

/// Images by (repository, tag): the manifest and its blobs (digest, bytes).
type Images = HashMap<(String, String), (String, Vec<(String, Vec<u8>)>)>;

/// Pushers, deleters, lifecycle and collection at once, for a bounded time;
/// then every image reported pushed and not deleted is pulled and checked
/// byte for byte, and nothing unreferenced is left once the grace has passed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn gc_races_pushes_and_deletes_without_losing_an_image() {
    let berth = Arc::new(Berth::start(&[
        "--gc-interval",
        "100ms",
        "--gc-grace",
        "1s",
        "--lifecycle-interval",
        "300ms",
    ]));
    // A lifecycle policy on one more repository expires images as they come.
    let policy = r#"{"rules":[{"rulePriority":1,"description":"keep the newest two images","selection":{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":2},"action":{"type":"expire"}}]}"#;
    let body =
        serde_json::json!({"repositoryName": "race/lifecycle", "lifecyclePolicyText": policy});
    let r = ecr_call(
        &berth,
        "CreateRepository",
        r#"{"repositoryName":"race/lifecycle"}"#,
    )
    .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let r = ecr_call(&berth, "PutLifecyclePolicy", &body.to_string()).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let alive: Arc<Mutex<Images>> = Arc::default();
    let deadline = Instant::now() + Duration::from_secs(8);
    let mut workers = Vec::new();
    for worker in 0..4 {
        let (berth, alive) = (berth.clone(), alive.clone());
        workers.push(tokio::spawn(async move {
            let mut n = 0;
            while Instant::now() < deadline {
                n += 1;
                // Images in race/lifecycle may expire at any time: not tracked.
                let repo = match n % 4 {
                    3 => "race/lifecycle".to_string(),
                    i => format!("race/{i}"),
                };
                // Layers shared across workers and repositories, and one of its own.
                let shared = format!("shared layer {}", n % 5).into_bytes();
                let own = format!("own layer {worker}-{n}").into_bytes();
                let config = format!("{{\"worker\":{worker},\"n\":{n}}}").into_bytes();
                let mut blobs = Vec::new();
                let mut pushed = true;
                for bytes in [&config, &shared, &own] {
                    let digest = sha256(bytes);
                    let r = client()
                        .post(berth.url(&format!("/v2/{repo}/blobs/uploads/?digest={digest}")))
                        .body(bytes.clone())
                        .send()
                        .await
                        .unwrap();
                    pushed &= r.status() == 201;
                    blobs.push((digest, bytes.clone()));
                }
                if !pushed {
                    continue;
                }
                let manifest = image_manifest(
                    (&blobs[0].0, config.len()),
                    &[(&blobs[1].0, shared.len()), (&blobs[2].0, own.len())],
                    "",
                );
                let tag = format!("w{worker}-{n}");
                let r = put_manifest(&berth, &repo, &tag, &manifest, OCI_MANIFEST).await;
                // A blob collected between its upload and the manifest (slower
                // than the grace) makes the push fail cleanly; it is retried.
                if r.status() != 201 {
                    assert_eq!(error_code(r).await, "MANIFEST_BLOB_UNKNOWN");
                    continue;
                }
                if repo == "race/lifecycle" {
                    continue;
                }
                alive
                    .lock()
                    .unwrap()
                    .insert((repo.clone(), tag.clone()), (manifest, blobs));
                // Every third image is deleted again.
                if n % 3 == 0 {
                    let digest = sha256(
                        alive.lock().unwrap()[&(repo.clone(), tag.clone())]
                            .0
                            .as_bytes(),
                    );
                    alive.lock().unwrap().remove(&(repo.clone(), tag.clone()));
                    let r = client()
                        .delete(berth.url(&format!("/v2/{repo}/manifests/{digest}")))
                        .send()
                        .await
                        .unwrap();
                    assert!(r.status() == 202 || r.status() == 404, "{}", r.status());
                }
            }
        }));
    }
    for worker in workers {
        worker.await.unwrap();
    }

    // Every image reported pushed and not deleted is whole.
    let alive = alive.lock().unwrap().clone();
    assert!(alive.len() > 20, "only {} images pushed", alive.len());
    for ((repo, tag), (manifest, blobs)) in &alive {
        let r = client()
            .get(berth.url(&format!("/v2/{repo}/manifests/{tag}")))
            .header("accept", OCI_MANIFEST)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{repo}:{tag}");
        assert_eq!(r.text().await.unwrap(), *manifest);
        for (digest, bytes) in blobs {
            let r = client()
                .get(berth.url(&format!("/v2/{repo}/blobs/{digest}")))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "{repo}:{tag} {digest}");
            assert_eq!(r.bytes().await.unwrap().as_ref(), bytes.as_slice());
        }
    }

    // Past the grace period, the store holds exactly what live images
    // reference (and the two the lifecycle policy keeps).
    if local_blobs() {
        let mut wanted: Vec<String> = alive
            .values()
            .flat_map(|(_, blobs)| blobs.iter().map(|(d, _)| d.clone()))
            .collect();
        let tags = || async {
            client()
                .get(berth.url("/v2/race/lifecycle/tags/list"))
                .send()
                .await
                .unwrap()
                .json::<serde_json::Value>()
                .await
                .unwrap()["tags"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        };
        wait_until("the lifecycle policy to keep two images", || async {
            tags().await.len() <= 2
        })
        .await;
        let kept_tags = tags().await;
        for tag in kept_tags {
            let manifest: serde_json::Value = client()
                .get(berth.url(&format!(
                    "/v2/race/lifecycle/manifests/{}",
                    tag.as_str().unwrap()
                )))
                .header("accept", OCI_MANIFEST)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            wanted.push(manifest["config"]["digest"].as_str().unwrap().to_string());
            for layer in manifest["layers"].as_array().unwrap() {
                wanted.push(layer["digest"].as_str().unwrap().to_string());
            }
        }
        wanted.sort();
        wanted.dedup();
        wait_until("the store to hold only referenced blobs", || {
            let berth = berth.clone();
            let wanted = wanted.clone();
            async move { stored_blobs(&berth) == wanted }
        })
        .await;
    }
}
