//! The `/v2/` API end to end: the real binary over HTTP.

mod common;

use common::*;
use reqwest::StatusCode;

#[tokio::test]
async fn base_endpoint_and_unknown_paths() {
    let berth = Berth::start(&[]);
    let r = client().get(berth.url("/v2/")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["docker-distribution-api-version"],
        "registry/2.0"
    );

    let r = client().get(berth.url("/v2/nope")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(error_code(r).await, "NOT_FOUND");
    let r = client().get(berth.url("/elsewhere")).send().await.unwrap();
    assert_eq!(r.status(), 404);

    let r = client()
        .get(berth.url("/v2/Bad_Name/tags/list"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(error_code(r).await, "NAME_INVALID");
    let r = client()
        .get(berth.url("/v2/missing/tags/list"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(error_code(r).await, "NAME_UNKNOWN");
    let r = client()
        .get(berth.url("/v2/missing/manifests/latest"))
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(r).await, "NAME_UNKNOWN");
    let r = client()
        .post(berth.url("/v2/x/tags/list"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(error_code(r).await, "UNSUPPORTED");
}

#[tokio::test]
async fn monolithic_push_verifies_the_digest_and_keeps_nothing_wrong() {
    let berth = Berth::start(&[]);
    let digest = push_blob(&berth, "team/app", b"hello").await;

    let r = client()
        .head(berth.url(&format!("/v2/team/app/blobs/{digest}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-length"], "5");
    assert_eq!(r.headers()["docker-content-digest"], digest.as_str());
    let r = client()
        .get(berth.url(&format!("/v2/team/app/blobs/{digest}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.bytes().await.unwrap().as_ref(), b"hello");

    // Wrong digest: refused, and the blob never becomes visible.
    let wrong = sha256(b"something else");
    let r = client()
        .post(berth.url(&format!("/v2/team/app/blobs/uploads/?digest={wrong}")))
        .body("hello!")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(error_code(r).await, "DIGEST_INVALID");
    for d in [wrong, sha256(b"hello!")] {
        let r = client()
            .head(berth.url(&format!("/v2/team/app/blobs/{d}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404);
    }
    // A malformed or unsupported digest is DIGEST_INVALID.
    for bad in ["sha256:123", "md5:d41d8cd98f00b204e9800998ecf8427e"] {
        let r = client()
            .post(berth.url(&format!("/v2/team/app/blobs/uploads/?digest={bad}")))
            .body("x")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
        assert_eq!(error_code(r).await, "DIGEST_INVALID");
    }
    // A blob in one repository is not visible in another: one that does
    // not exist (NAME_UNKNOWN), or one that does (BLOB_UNKNOWN).
    let r = client()
        .get(berth.url(&format!("/v2/other/blobs/{digest}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(error_code(r).await, "NAME_UNKNOWN");
    push_blob(&berth, "other", b"something else").await;
    let r = client()
        .get(berth.url(&format!("/v2/other/blobs/{digest}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(error_code(r).await, "BLOB_UNKNOWN");
}

async fn start_upload(berth: &Berth, repo: &str) -> String {
    let r = client()
        .post(berth.url(&format!("/v2/{repo}/blobs/uploads/")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    assert_eq!(r.headers()["range"], "0-0");
    assert!(r.headers().contains_key("docker-upload-uuid"));
    berth.url(r.headers()["location"].to_str().unwrap())
}

async fn patch(location: &str, body: &'static [u8], range: Option<&str>) -> reqwest::Response {
    let mut request = client().patch(location).body(body);
    if let Some(range) = range {
        request = request.header("content-range", range);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn chunked_upload_in_order_and_out_of_order() {
    let berth = Berth::start(&[]);
    let location = start_upload(&berth, "chunks").await;

    let r = patch(&location, b"01234", Some("0-4")).await;
    assert_eq!(r.status(), 202);
    assert_eq!(r.headers()["range"], "0-4");

    // A chunk that does not start at the end is 416 with the current range.
    let r = patch(&location, b"zzzzz", Some("3-7")).await;
    assert_eq!(r.status(), 416);
    assert_eq!(r.headers()["range"], "0-4");
    // A Content-Range that disagrees with the body's length changes nothing.
    let r = patch(&location, b"56", Some("5-9")).await;
    assert_eq!(r.status(), 400);
    assert_eq!(error_code(r).await, "SIZE_INVALID");

    // Streamed chunk, no Content-Range.
    let r = patch(&location, b"56789", None).await;
    assert_eq!(r.status(), 202);
    assert_eq!(r.headers()["range"], "0-9");

    let r = client().get(&location).send().await.unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(r.headers()["range"], "0-9");

    // The final PUT carries the last chunk.
    let digest = sha256(b"0123456789abc");
    let r = client()
        .put(format!("{location}?digest={digest}"))
        .header("content-range", "10-12")
        .body("abc")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(r.headers()["docker-content-digest"], digest.as_str());
    let r = client()
        .get(berth.url(&format!("/v2/chunks/blobs/{digest}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.bytes().await.unwrap().as_ref(), b"0123456789abc");
    // The session is gone.
    let r = client().get(&location).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(error_code(r).await, "BLOB_UPLOAD_UNKNOWN");
}

#[tokio::test]
async fn upload_errors() {
    let berth = Berth::start(&[]);
    let location = start_upload(&berth, "errs").await;
    patch(&location, b"data", None).await;

    let r = client().put(&location).send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(error_code(r).await, "DIGEST_INVALID");

    // A wrong digest ends the upload: nothing of it stays.
    let r = client()
        .put(format!("{location}?digest={}", sha256(b"other")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(error_code(r).await, "DIGEST_INVALID");
    let r = client().get(&location).send().await.unwrap();
    assert_eq!(r.status(), 404);

    // Cancel.
    let location = start_upload(&berth, "errs").await;
    let r = client().delete(&location).send().await.unwrap();
    assert_eq!(r.status(), 204);
    let r = patch(&location, b"more", None).await;
    assert_eq!(r.status(), 404);
    assert_eq!(error_code(r).await, "BLOB_UPLOAD_UNKNOWN");

    // Another repository's upload id is unknown here.
    let location = start_upload(&berth, "errs").await;
    let elsewhere = location.replace("/errs/", "/elsewhere/");
    let r = client().get(&elsewhere).send().await.unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn sha512_blobs_work_chunked_and_monolithic() {
    use sha2::{Digest as _, Sha512};
    let berth = Berth::start(&[]);
    let digest = format!("sha512:{}", hex::encode(Sha512::digest(b"sixty-four")));
    let location = start_upload(&berth, "five12").await;
    patch(&location, b"sixty-", None).await;
    let r = client()
        .put(format!("{location}?digest={digest}"))
        .body("four")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let r = client()
        .get(berth.url(&format!("/v2/five12/blobs/{digest}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["docker-content-digest"], digest.as_str());
    assert_eq!(r.bytes().await.unwrap().as_ref(), b"sixty-four");
}

#[tokio::test]
async fn range_requests() {
    let berth = Berth::start(&[]);
    let digest = push_blob(&berth, "ranges", b"0123456789").await;
    let url = berth.url(&format!("/v2/ranges/blobs/{digest}"));
    let get = |range: &'static str| client().get(&url).header("range", range).send();

    let r = get("bytes=2-5").await.unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(r.headers()["content-range"], "bytes 2-5/10");
    assert_eq!(r.bytes().await.unwrap().as_ref(), b"2345");
    let r = get("bytes=7-").await.unwrap();
    assert_eq!(r.bytes().await.unwrap().as_ref(), b"789");
    let r = get("bytes=-2").await.unwrap();
    assert_eq!(r.bytes().await.unwrap().as_ref(), b"89");
    let r = get("bytes=10-").await.unwrap();
    assert_eq!(r.status(), 416);
    assert_eq!(r.headers()["content-range"], "bytes */10");
}

#[tokio::test]
async fn cross_repository_mount() {
    let berth = Berth::start(&[]);
    let digest = push_blob(&berth, "source", b"shared layer").await;
    let r = client()
        .post(berth.url(&format!(
            "/v2/target/blobs/uploads/?mount={digest}&from=source"
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(
        r.headers()["location"],
        format!("/v2/target/blobs/{digest}").as_str()
    );
    let r = client()
        .get(berth.url(&format!("/v2/target/blobs/{digest}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.bytes().await.unwrap().as_ref(), b"shared layer");

    // Nothing to mount: an ordinary upload session starts instead.
    let missing = sha256(b"not here");
    let r = client()
        .post(berth.url(&format!(
            "/v2/target/blobs/uploads/?mount={missing}&from=source"
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    assert!(r.headers().contains_key("docker-upload-uuid"));
}

#[tokio::test]
async fn manifests_by_tag_and_digest() {
    let berth = Berth::start(&[]);
    let (manifest, digest) = push_image(&berth, "app", "v1", "one").await;

    for reference in ["v1", digest.as_str()] {
        let url = berth.url(&format!("/v2/app/manifests/{reference}"));
        let r = client().head(&url).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(
            r.headers()["content-length"],
            manifest.len().to_string().as_str()
        );
        assert_eq!(r.headers()["docker-content-digest"], digest.as_str());
        let r = client().get(&url).send().await.unwrap();
        assert_eq!(r.headers()["content-type"], OCI_MANIFEST);
        assert_eq!(r.text().await.unwrap(), manifest);
    }

    // Docker schema 2 is stored and served byte-exact, with its media type.
    let docker_type = "application/vnd.docker.distribution.manifest.v2+json";
    let docker = manifest.replace(OCI_MANIFEST, docker_type);
    let r = put_manifest(&berth, "app", "docker", &docker, docker_type).await;
    assert_eq!(r.status(), 201);
    let r = client()
        .get(berth.url("/v2/app/manifests/docker"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-type"], docker_type);
    assert_eq!(r.text().await.unwrap(), docker);

    // Push by digest: the digest must match the bytes.
    let r = put_manifest(&berth, "app", &digest, &manifest, OCI_MANIFEST).await;
    assert_eq!(r.status(), 201);
    let r = put_manifest(&berth, "app", &sha256(b"x"), &manifest, OCI_MANIFEST).await;
    assert_eq!(r.status(), 400);
    assert_eq!(error_code(r).await, "DIGEST_INVALID");

    let r = client()
        .get(berth.url("/v2/app/manifests/nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(error_code(r).await, "MANIFEST_UNKNOWN");
}

#[tokio::test]
async fn invalid_manifests_are_refused() {
    let berth = Berth::start(&[]);
    let (manifest, _) = push_image(&berth, "bad", "ok", "seed").await;

    let missing_layer = image_manifest(
        (
            &sha256(br#"{"architecture":"amd64","os":"linux","seed":"seed"}"#),
            49,
        ),
        &[(&sha256(b"never pushed"), 12)],
        "",
    );
    let r = put_manifest(&berth, "bad", "t", &missing_layer, OCI_MANIFEST).await;
    assert_eq!(r.status(), 400);
    assert_eq!(error_code(r).await, "MANIFEST_BLOB_UNKNOWN");

    let r = put_manifest(&berth, "bad", "t", "{not json", OCI_MANIFEST).await;
    assert_eq!(error_code(r).await, "MANIFEST_INVALID");
    let schema1 = r#"{"schemaVersion":1,"name":"bad","tag":"t","fsLayers":[]}"#;
    let r = put_manifest(
        &berth,
        "bad",
        "t",
        schema1,
        "application/vnd.docker.distribution.manifest.v1+prettyjws",
    )
    .await;
    assert_eq!(r.status(), 400);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["errors"][0]["code"], "MANIFEST_INVALID");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("schema 1")
    );

    let r = put_manifest(&berth, "bad", "t", &manifest, OCI_INDEX).await;
    assert_eq!(error_code(r).await, "MANIFEST_INVALID");

    let huge = format!(
        r#"{},"annotations":{{"pad":"{}"}}}}"#,
        &manifest[..manifest.len() - 1],
        "x".repeat(4 << 20)
    );
    let r = put_manifest(&berth, "bad", "t", &huge, OCI_MANIFEST).await;
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);

    let r = put_manifest(&berth, "bad", "-bad-tag", &manifest, OCI_MANIFEST).await;
    assert_eq!(error_code(r).await, "TAG_INVALID");

    // None of these left a tag behind.
    let r = client()
        .get(berth.url("/v2/bad/tags/list"))
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["tags"], serde_json::json!(["ok"]));
}

#[tokio::test]
async fn index_needs_its_children_and_protects_them() {
    let berth = Berth::start(&[]);
    let (amd, amd_digest) = push_image(&berth, "multi", "amd", "amd64").await;
    let (arm, arm_digest) = push_image(&berth, "multi", "arm", "arm64").await;
    let entry = |d: &str, len: usize, arch: &str| {
        format!(
            r#"{{"mediaType":"{OCI_MANIFEST}","digest":"{d}","size":{len},"platform":{{"os":"linux","architecture":"{arch}"}}}}"#
        )
    };
    let index = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{},{}]}}"#,
        entry(&amd_digest, amd.len(), "amd64"),
        entry(&arm_digest, arm.len(), "arm64")
    );
    let dangling = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{}]}}"#,
        entry(&sha256(b"no such manifest"), 10, "s390x")
    );
    let r = put_manifest(&berth, "multi", "broken", &dangling, OCI_INDEX).await;
    assert_eq!(error_code(r).await, "MANIFEST_BLOB_UNKNOWN");

    let r = put_manifest(&berth, "multi", "latest", &index, OCI_INDEX).await;
    assert_eq!(r.status(), 201);

    // A child of an index cannot be deleted while the index lists it.
    let r = client()
        .delete(berth.url(&format!("/v2/multi/manifests/{amd_digest}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    let r = client()
        .delete(berth.url(&format!("/v2/multi/manifests/{}", sha256(index.as_bytes()))))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let r = client()
        .delete(berth.url(&format!("/v2/multi/manifests/{amd_digest}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
}

#[tokio::test]
async fn deleting_a_tag_keeps_the_manifest_and_its_other_tags() {
    let berth = Berth::start(&[]);
    let (manifest, digest) = push_image(&berth, "del", "a", "s").await;
    put_manifest(&berth, "del", "b", &manifest, OCI_MANIFEST).await;

    let r = client()
        .delete(berth.url("/v2/del/manifests/a"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let r = client()
        .get(berth.url("/v2/del/manifests/b"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = client()
        .get(berth.url("/v2/del/manifests/a"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    // By digest: the manifest and all its tags go.
    let r = client()
        .delete(berth.url(&format!("/v2/del/manifests/{digest}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let r = client()
        .get(berth.url("/v2/del/manifests/b"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = client()
        .delete(berth.url(&format!("/v2/del/manifests/{digest}")))
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(r).await, "MANIFEST_UNKNOWN");

    // Blob delete removes the blob from the repository.
    let blob = push_blob(&berth, "del", b"bye").await;
    let url = berth.url(&format!("/v2/del/blobs/{blob}"));
    assert_eq!(client().delete(&url).send().await.unwrap().status(), 202);
    assert_eq!(client().head(&url).send().await.unwrap().status(), 404);
    let r = client().delete(&url).send().await.unwrap();
    assert_eq!(error_code(r).await, "BLOB_UNKNOWN");
}

#[tokio::test]
async fn tag_and_catalog_pagination() {
    let berth = Berth::start(&[]);
    let (manifest, _) = push_image(&berth, "pages", "t00", "p").await;
    for i in 1..25 {
        let r = put_manifest(
            &berth,
            "pages",
            &format!("t{i:02}"),
            &manifest,
            OCI_MANIFEST,
        )
        .await;
        assert_eq!(r.status(), 201);
    }
    let tags = |query: &str| {
        let url = berth.url(&format!("/v2/pages/tags/list{query}"));
        async move { client().get(url).send().await.unwrap() }
    };

    let r = tags("").await;
    assert!(!r.headers().contains_key("link"));
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["name"], "pages");
    assert_eq!(body["tags"].as_array().unwrap().len(), 25);

    // Walk the pages by following Link headers.
    let mut seen = Vec::new();
    let mut next = Some("/v2/pages/tags/list?n=10".to_string());
    while let Some(path) = next {
        let r = client().get(berth.url(&path)).send().await.unwrap();
        next = r.headers().get("link").map(|l| {
            let l = l.to_str().unwrap();
            assert!(l.ends_with(r#">; rel="next""#), "{l}");
            l[1..l.find('>').unwrap()].to_string()
        });
        let body: serde_json::Value = r.json().await.unwrap();
        seen.extend(
            body["tags"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t.as_str().unwrap().to_string()),
        );
    }
    let expected: Vec<String> = (0..25).map(|i| format!("t{i:02}")).collect();
    assert_eq!(seen, expected);

    let body: serde_json::Value = tags("?n=3&last=t10").await.json().await.unwrap();
    assert_eq!(body["tags"], serde_json::json!(["t11", "t12", "t13"]));
    let body: serde_json::Value = tags("?last=t24").await.json().await.unwrap();
    assert_eq!(body["tags"], serde_json::json!([]));
    let body: serde_json::Value = tags("?n=0").await.json().await.unwrap();
    assert_eq!(body["tags"], serde_json::json!([]));
    let r = tags("?n=-1").await;
    assert_eq!(r.status(), 400);

    for repo in ["b/x", "a", "c"] {
        push_blob(&berth, repo, b"x").await;
    }
    let r = client()
        .get(berth.url("/v2/_catalog?n=2"))
        .send()
        .await
        .unwrap();
    assert!(r.headers()["link"].to_str().unwrap().contains("last=b%2Fx"));
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["repositories"], serde_json::json!(["a", "b/x"]));
    let r = client()
        .get(berth.url("/v2/_catalog?n=2&last=b%2Fx"))
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["repositories"], serde_json::json!(["c", "pages"]));
}

#[tokio::test]
async fn referrers_and_subject() {
    let berth = Berth::start(&[]);
    let (subject, subject_digest) = push_image(&berth, "ref", "v1", "s").await;
    let empty = push_blob(&berth, "ref", b"{}").await;
    let sbom = push_blob(&berth, "ref", b"sbom contents").await;
    let artifact = |kind: &str| {
        image_manifest(
            (&empty, 2),
            &[(&sbom, 13)],
            &format!(
                r#","artifactType":"{kind}","subject":{{"mediaType":"{OCI_MANIFEST}","digest":"{subject_digest}","size":{}}},"annotations":{{"org.example":"{kind}"}}"#,
                subject.len()
            ),
        )
        .replace("application/vnd.oci.image.config.v1+json", "application/vnd.oci.empty.v1+json")
    };
    let sbom_manifest = artifact("application/spdx+json");
    let sig_manifest = artifact("application/vnd.example.signature");
    for m in [&sbom_manifest, &sig_manifest] {
        let r = put_manifest(&berth, "ref", &sha256(m.as_bytes()), m, OCI_MANIFEST).await;
        assert_eq!(r.status(), 201);
        assert_eq!(r.headers()["oci-subject"], subject_digest.as_str());
    }

    let url = berth.url(&format!("/v2/ref/referrers/{subject_digest}"));
    let r = client().get(&url).send().await.unwrap();
    assert_eq!(r.headers()["content-type"], OCI_INDEX);
    assert!(!r.headers().contains_key("oci-filters-applied"));
    let index: serde_json::Value = r.json().await.unwrap();
    assert_eq!(index["mediaType"], OCI_INDEX);
    assert_eq!(index["manifests"].as_array().unwrap().len(), 2);

    let r = client()
        .get(format!("{url}?artifactType=application/spdx%2Bjson"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["oci-filters-applied"], "artifactType");
    let index: serde_json::Value = r.json().await.unwrap();
    let only = &index["manifests"][0];
    assert_eq!(index["manifests"].as_array().unwrap().len(), 1);
    assert_eq!(only["digest"], sha256(sbom_manifest.as_bytes()).as_str());
    assert_eq!(only["artifactType"], "application/spdx+json");
    assert_eq!(only["annotations"]["org.example"], "application/spdx+json");
    assert_eq!(only["size"], sbom_manifest.len());

    // No referrers: an empty index, not an error.
    let r = client()
        .get(berth.url(&format!("/v2/ref/referrers/{}", sha256(b"none"))))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let index: serde_json::Value = r.json().await.unwrap();
    assert_eq!(index["manifests"], serde_json::json!([]));
}

#[tokio::test]
async fn concurrent_pushes_of_one_blob_and_one_tag() {
    let berth = Berth::start(&[]);
    let data: &'static [u8] = &[7u8; 300_000];
    let pushes: Vec<_> = (0..8)
        .map(|_| {
            let url = berth.url(&format!("/v2/race/blobs/uploads/?digest={}", sha256(data)));
            tokio::spawn(
                async move { client().post(url).body(data).send().await.unwrap().status() },
            )
        })
        .collect();
    for p in pushes {
        assert_eq!(p.await.unwrap(), 201);
    }
    let r = client()
        .get(berth.url(&format!("/v2/race/blobs/{}", sha256(data))))
        .send()
        .await
        .unwrap();
    assert_eq!(r.bytes().await.unwrap().as_ref(), data);

    // Eight images raced onto one tag: the tag ends at one of them, whole.
    let mut digests = Vec::new();
    let mut manifests = Vec::new();
    for i in 0..8 {
        let (m, d) = push_image(&berth, "race", &format!("img{i}"), &format!("seed{i}")).await;
        manifests.push(m);
        digests.push(d);
    }
    let puts: Vec<_> = manifests
        .into_iter()
        .map(|m| {
            let url = berth.url("/v2/race/manifests/latest");
            tokio::spawn(async move {
                client()
                    .put(url)
                    .header("content-type", OCI_MANIFEST)
                    .body(m)
                    .send()
                    .await
                    .unwrap()
                    .status()
            })
        })
        .collect();
    for p in puts {
        assert_eq!(p.await.unwrap(), 201);
    }
    let r = client()
        .get(berth.url("/v2/race/manifests/latest"))
        .send()
        .await
        .unwrap();
    let served = r.headers()["docker-content-digest"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(digests.contains(&served));
    assert_eq!(sha256(&r.bytes().await.unwrap()), served);
}

#[tokio::test]
async fn chunked_upload_survives_a_restart() {
    let berth = Berth::start(&[]);
    let location_path = {
        let location = start_upload(&berth, "resume").await;
        let r = patch(&location, b"first half, ", Some("0-11")).await;
        assert_eq!(r.status(), 202);
        location.trim_start_matches(&berth.base).to_string()
    };
    // A crash, not a clean stop.
    let data_dir = berth.data_dir.clone();
    let tmp = berth.kill();
    let berth = Berth::start_in(&data_dir, &[]);

    let location = berth.url(&location_path);
    let r = client().get(&location).send().await.unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(r.headers()["range"], "0-11");
    let r = patch(&location, b"second half", Some("12-22")).await;
    assert_eq!(r.status(), 202);
    let digest = sha256(b"first half, second half");
    let r = client()
        .put(format!("{location}?digest={digest}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let r = client()
        .get(berth.url(&format!("/v2/resume/blobs/{digest}")))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.bytes().await.unwrap().as_ref(),
        b"first half, second half"
    );
    drop(berth);
    drop(tmp);
}

#[tokio::test]
async fn abandoned_uploads_are_cleaned_up() {
    let berth = Berth::start(&["--upload-timeout", "1s"]);
    let location = start_upload(&berth, "stale").await;
    patch(&location, b"forgotten", None).await;
    // Staging data is checked where we can see it: on the local filesystem.
    let staging = berth.data_dir.join("blobs/uploads");
    let staged = || {
        if local_blobs() {
            std::fs::read_dir(&staging).unwrap().count()
        } else {
            0
        }
    };
    assert_eq!(staged(), if local_blobs() { 1 } else { 0 });

    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let r = client().get(&location).send().await.unwrap();
        if r.status() == 404 && staged() == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "upload not cleaned up"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn sigterm_lets_a_request_in_flight_finish() {
    let berth = Berth::start(&[]);
    let location = start_upload(&berth, "graceful").await;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(1);
    let body = reqwest::Body::wrap_stream(futures_stream(rx));
    let request = tokio::spawn(client().patch(&location).body(body).send());
    tx.send(Ok(b"before ".to_vec())).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;

    let base = berth.base.clone();
    let stopping = tokio::task::spawn_blocking(move || berth.terminate());
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    tx.send(Ok(b"after".to_vec())).await.unwrap();
    drop(tx);
    let r = request.await.unwrap().unwrap();
    assert_eq!(r.status(), 202);
    assert_eq!(r.headers()["range"], "0-11");
    assert!(stopping.await.unwrap().success());
    // And no new requests are taken.
    assert!(client().get(format!("{base}/v2/")).send().await.is_err());
}

#[tokio::test]
async fn v2_needs_credentials_and_answers_with_ecrs_challenge() {
    use base64::Engine as _;
    let berth = Berth::start(&[]);
    let challenge = format!(
        r#"Basic realm="{}/",service="ecr.amazonaws.com""#,
        berth.base
    );
    for path in ["/v2/", "/v2/x/tags/list", "/v2/nope"] {
        let r = anonymous().get(berth.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 401, "{path}");
        assert_eq!(r.headers()["www-authenticate"], challenge.as_str());
        assert_eq!(error_code(r).await, "UNAUTHORIZED");
    }
    let basic = |user: &str, password: &str| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
        )
    };
    for (user, password) in [
        (ROOT_KEY_ID, "wrong secret"),
        ("AKIANOSUCHKEY0000000", ROOT_SECRET),
        ("AWS", "not-a-token"),
        ("AWS", "berth1.forged.token"),
    ] {
        let r = anonymous()
            .get(berth.url("/v2/"))
            .header("authorization", basic(user, password))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{user}");
    }
    let r = anonymous()
        .get(berth.url("/v2/"))
        .header("authorization", basic(ROOT_KEY_ID, ROOT_SECRET))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn push_to_a_missing_repository_is_name_unknown_unless_created_on_push() {
    let berth = Berth::start_fresh(&["--account-id", "123456789012"]);
    let r = client()
        .post(berth.url("/v2/absent/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["errors"][0]["code"], "NAME_UNKNOWN");
    assert_eq!(
        body["errors"][0]["message"],
        "The repository with name 'absent' does not exist in the registry with id '123456789012'"
    );
    let r = client()
        .post(berth.url(&format!(
            "/v2/absent/blobs/uploads/?digest={}",
            sha256(b"x")
        )))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = put_manifest(&berth, "absent", "v1", "{}", OCI_MANIFEST).await;
    assert_eq!(error_code(r).await, "NAME_UNKNOWN");
}

fn futures_stream(
    mut rx: tokio::sync::mpsc::Receiver<Result<Vec<u8>, std::io::Error>>,
) -> impl futures_util::Stream<Item = Result<Vec<u8>, std::io::Error>> {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

#[tokio::test]
async fn quotas_refuse_what_would_exceed_them() {
    let berth = Berth::start(&[
        "--max-repositories",
        "2",
        "--max-images-per-repository",
        "2",
        "--max-layer-size",
        "1KiB",
    ]);
    // Layers: a blob past the size limit is refused, monolithic or chunked.
    let big = vec![7u8; 1500];
    let r = client()
        .post(berth.url(&format!("/v2/q/blobs/uploads/?digest={}", sha256(&big))))
        .body(big.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(error_code(r).await, "DENIED");
    let location = start_upload(&berth, "q").await;
    let r = patch(&location, &[1u8; 1000], Some("0-999")).await;
    assert_eq!(r.status(), 202);
    let r = patch(&location, &[1u8; 100], Some("1000-1099")).await;
    assert_eq!(r.status(), 403);

    // Images per repository: a third is refused, the same one again is not.
    let (first, _) = push_image(&berth, "q", "v1", "one").await;
    push_image(&berth, "q", "v2", "two").await;
    assert_eq!(
        put_manifest(&berth, "q", "again", &first, OCI_MANIFEST)
            .await
            .status(),
        201
    );
    let config = push_blob(&berth, "q", b"{\"n\":3}").await;
    let third = image_manifest((&config, 7), &[], "");
    let r = put_manifest(&berth, "q", "v3", &third, OCI_MANIFEST).await;
    assert_eq!(r.status(), 403);
    assert_eq!(error_code(r).await, "DENIED");

    // Repositories: created on push up to the limit, then refused; ECR too.
    push_image(&berth, "q2", "v1", "other").await;
    let r = client()
        .post(berth.url("/v2/q3/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = ecr_call(&berth, "CreateRepository", r#"{"repositoryName":"q4"}"#).await;
    assert_eq!(r.status(), 400);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["__type"], "LimitExceededException");
}
