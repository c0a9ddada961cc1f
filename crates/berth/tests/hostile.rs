//! Hostile and odd input: bounded work, spec answers, no loops, no panics.

mod common;

use std::time::{Duration, Instant};

use common::*;

fn index_of(child: &str, size: usize, media_type: &str, times: usize) -> String {
    let entry = format!(r#"{{"mediaType":"{media_type}","digest":"{child}","size":{size}}}"#);
    let entries = vec![entry; times].join(",");
    format!(r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{entries}]}}"#)
}

#[tokio::test]
async fn describe_images_sizes_each_manifest_once() {
    let berth = Berth::start(&[]);
    let (image, digest) = push_image(&berth, "nest", "img", "nest").await;
    // An index listing one image 5,000 times, listed 5,000 times by another.
    let inner = index_of(&digest, image.len(), OCI_MANIFEST, 5_000);
    let r = put_manifest(&berth, "nest", "inner", &inner, OCI_INDEX).await;
    assert_eq!(r.status(), 201);
    let outer = index_of(&sha256(inner.as_bytes()), inner.len(), OCI_INDEX, 5_000);
    let r = put_manifest(&berth, "nest", "outer", &outer, OCI_INDEX).await;
    assert_eq!(r.status(), 201);
    let started = Instant::now();
    let r = ecr_call(&berth, "DescribeImages", r#"{"repositoryName":"nest"}"#).await;
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.unwrap();
    let details = body["imageDetails"].as_array().unwrap();
    assert_eq!(details.len(), 3);
    let sizes: Vec<u64> = details
        .iter()
        .map(|d| d["imageSizeInBytes"].as_u64().unwrap())
        .collect();
    assert!(sizes.iter().all(|s| *s == sizes[0]), "{sizes:?}");
    // Quadratic work (25 million lookups) would take minutes.
    assert!(started.elapsed() < Duration::from_secs(20));
}

#[tokio::test]
async fn catalog_pages_are_capped_and_always_advance() {
    let berth = Berth::start(&[]);
    for n in 0..3 {
        push_blob(&berth, &format!("cat/r{n}"), b"x").await;
    }
    let get = |query: &'static str| {
        let url = berth.url(&format!("/v2/_catalog{query}"));
        async move { client().get(url).send().await.unwrap() }
    };
    // n=0: an empty page and no next page.
    let r = get("?n=0").await;
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("link").is_none());
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["repositories"], serde_json::json!([]));
    // A huge n is capped, and the Link says the n used.
    let r = get("?n=4000000000").await;
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["repositories"].as_array().unwrap().len(), 3);
    // Pages of one walk to the end.
    let mut last = String::new();
    let mut seen = Vec::new();
    for _ in 0..10 {
        let url = berth.url(&format!("/v2/_catalog?n=1&last={last}"));
        let r = client().get(url).send().await.unwrap();
        let link = r
            .headers()
            .get("link")
            .map(|l| l.to_str().unwrap().to_string());
        let body: serde_json::Value = r.json().await.unwrap();
        seen.extend(
            body["repositories"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().to_string()),
        );
        let Some(link) = link else { break };
        assert!(link.contains("n=1&"), "{link}");
        let next = link
            .split("last=")
            .nth(1)
            .unwrap()
            .split('>')
            .next()
            .unwrap();
        assert_ne!(next, last, "the Link does not advance");
        last = next.to_string();
    }
    assert_eq!(seen, ["cat/r0", "cat/r1", "cat/r2"]);
}

#[tokio::test]
async fn spec_answers_for_odd_references_ranges_and_annotations() {
    let berth = Berth::start(&[]);
    let (_, _) = push_image(&berth, "odd", "v1", "odd").await;
    // A reference that is neither tag nor digest names no manifest.
    for reference in ["-bad", "sha256:12", "a..b%2F"] {
        for method in [reqwest::Method::GET, reqwest::Method::HEAD] {
            let r = client()
                .request(
                    method.clone(),
                    berth.url(&format!("/v2/odd/manifests/{reference}")),
                )
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 404, "{method} {reference}");
            if method == reqwest::Method::GET {
                assert_eq!(error_code(r).await, "MANIFEST_UNKNOWN");
            }
        }
    }
    // A last position past the end means "to the end" (RFC 9110).
    let blob = b"0123456789".to_vec();
    let digest = push_blob(&berth, "odd", &blob).await;
    let r = client()
        .get(berth.url(&format!("/v2/odd/blobs/{digest}")))
        .header("range", "bytes=0-18446744073709551615")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(r.headers()["content-range"], "bytes 0-9/10");
    assert_eq!(r.bytes().await.unwrap().as_ref(), blob.as_slice());
    let r = client()
        .patch(berth.url("/v2/odd/blobs/uploads/x"))
        .header("content-range", "0-18446744073709551615")
        .body("x")
        .send()
        .await
        .unwrap();
    assert!(r.status().is_client_error(), "{}", r.status());

    // Annotations are a map of strings.
    let config = br#"{"architecture":"amd64","os":"linux"}"#;
    let c = push_blob(&berth, "odd", config).await;
    let bad = image_manifest(
        (&c, config.len()),
        &[(&digest, blob.len())],
        r#","annotations":{"a":[1,2]}"#,
    );
    let r = put_manifest(&berth, "odd", "bad", &bad, OCI_MANIFEST).await;
    assert_eq!(r.status(), 400);
    assert_eq!(error_code(r).await, "MANIFEST_INVALID");
}

/// Slowloris and unauthenticated floods get nowhere: bodies of callers
/// nobody signed for are never read, headers that never end are dropped at
/// the client timeout, connections past the limit are closed at once, and
/// meanwhile other clients are served promptly with memory bounded.
#[tokio::test]
async fn floods_of_slow_and_unauthenticated_requests_stay_bounded() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let berth = Berth::start(&["--max-connections", "400", "--client-timeout", "3s"]);
    let address = berth.base.trim_start_matches("http://").to_string();
    let before = berth.rss_kib();

    // 300 connections that send half a header and then nothing.
    let mut slow = Vec::new();
    for _ in 0..300 {
        let mut s = tokio::net::TcpStream::connect(&address).await.unwrap();
        s.write_all(b"GET /v2/ HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .await
            .unwrap();
        slow.push(s);
    }
    // 60 unsigned ECR and IAM calls announcing 32 MiB bodies, each sending 1 MiB.
    let chunk = vec![b'a'; 1 << 20];
    let mut floods = Vec::new();
    for n in 0..60 {
        let mut s = tokio::net::TcpStream::connect(&address).await.unwrap();
        let head = if n % 2 == 0 {
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-amz-json-1.1\r\n\
             X-Amz-Target: AmazonEC2ContainerRegistry_V20150921.ListImages\r\n\
             Content-Length: 33554432\r\n\r\n"
        } else {
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n\
             Content-Length: 1048000\r\n\r\n"
        };
        s.write_all(head.as_bytes()).await.unwrap();
        let _ = s.write_all(&chunk[..1_000_000]).await;
        floods.push(s);
    }
    // Each unsigned call is answered without its body being read.
    for mut s in floods {
        let mut answer = vec![0u8; 512];
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut answer))
            .await
            .expect("an answer before the body")
            .unwrap_or(0);
        let text = String::from_utf8_lossy(&answer[..n]).to_string();
        assert!(
            text.starts_with("HTTP/1.1 4") || n == 0,
            "unexpected answer: {text}"
        );
    }
    // Connections past the limit are closed at once.
    let mut extra = Vec::new();
    for _ in 0..150 {
        extra.push(tokio::net::TcpStream::connect(&address).await.unwrap());
    }
    let mut closed = 0;
    for mut s in extra {
        let _ = s.write_all(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n").await;
        let mut buf = [0u8; 64];
        match tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => closed += 1,
            _ => {}
        }
    }
    assert!(closed > 0, "no connection past the limit was closed");

    // Other clients: served promptly meanwhile, with memory bounded.
    let started = Instant::now();
    let r = client().get(berth.url("/v2/")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(started.elapsed() < Duration::from_secs(2));
    let grown = berth.rss_kib().saturating_sub(before);
    assert!(grown < 150 * 1024, "memory grew by {grown} KiB");

    // The slow headers are dropped after the client timeout.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let mut dropped = 0;
    for mut s in slow {
        let mut buf = [0u8; 256];
        match tokio::time::timeout(Duration::from_secs(1), s.read(&mut buf)).await {
            Ok(Ok(_)) | Ok(Err(_)) => dropped += 1,
            Err(_) => {}
        }
    }
    assert!(
        dropped >= 290,
        "only {dropped} of 300 slow connections were dropped"
    );
}

/// One large manifest does not stall the registry: an index naming 10,000
/// unknown manifests is refused quickly, without holding up a small push to
/// another repository meanwhile.
#[tokio::test]
async fn a_large_manifest_and_a_huge_index_do_not_stall_other_writers() {
    let berth = Berth::start(&[]);
    let config = br#"{"architecture":"amd64","os":"linux"}"#;
    let c = push_blob(&berth, "large", config).await;
    let l = push_blob(&berth, "large", b"layer").await;
    let padding = "a".repeat((4 << 20) - 1000);
    let large = image_manifest(
        (&c, config.len()),
        &[(&l, 5)],
        &format!(r#","annotations":{{"x":"{padding}"}}"#),
    );
    let r = put_manifest(&berth, "large", "large", &large, OCI_MANIFEST).await;
    assert_eq!(r.status(), 201);

    let children: Vec<String> = (0..10_000)
        .map(|i| {
            format!(
                r#"{{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":100}}"#,
                sha256(format!("child {i}").as_bytes())
            )
        })
        .collect();
    let index = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{}]}}"#,
        children.join(",")
    );
    let started = Instant::now();
    let huge = put_manifest(&berth, "large", "index", &index, OCI_INDEX);
    let small = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let started = Instant::now();
        push_blob(&berth, "elsewhere", b"a small layer").await;
        started.elapsed()
    };
    let (r, small_took) = tokio::join!(huge, small);
    assert_eq!(r.status(), 400);
    assert_eq!(error_code(r).await, "MANIFEST_BLOB_UNKNOWN");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert!(small_took < Duration::from_secs(2), "{small_took:?}");
}
