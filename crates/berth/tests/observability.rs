//! One wrapper for every door: a request id on every response that also
//! appears in the log, and per-door, per-operation request counts and
//! latency histograms on `/metrics`.

mod common;

use common::*;

#[tokio::test]
async fn every_response_carries_a_logged_request_id_and_is_counted() {
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("berth.log");
    let berth = Berth::start_logging(&tmp.path().join("data"), &["--create-on-push"], Some(&log));

    let mut ids = Vec::new();
    // /v2/: X-Request-Id, on answers and refusals alike.
    push_image(&berth, "obs/app", "v1", "obs").await;
    for r in [
        client()
            .get(berth.url("/v2/obs/app/manifests/v1"))
            .header("accept", OCI_MANIFEST)
            .send()
            .await
            .unwrap(),
        anonymous()
            .get(berth.url("/v2/obs/app/tags/list"))
            .send()
            .await
            .unwrap(),
        client()
            .get(berth.url("/v2/obs/app/manifests/nope"))
            .send()
            .await
            .unwrap(),
    ] {
        ids.push(r.headers()["x-request-id"].to_str().unwrap().to_string());
    }
    // ECR: x-amzn-RequestId.
    let r = ecr_call(&berth, "DescribeRepositories", "{}").await;
    assert_eq!(r.status(), 200);
    ids.push(
        r.headers()["x-amzn-requestid"]
            .to_str()
            .unwrap()
            .to_string(),
    );
    let r = ecr_call(&berth, "DescribeImages", r#"{"repositoryName":"missing"}"#).await;
    assert_eq!(r.status(), 400);
    ids.push(
        r.headers()["x-amzn-requestid"]
            .to_str()
            .unwrap()
            .to_string(),
    );
    // IAM/STS (Query): x-amzn-RequestId, also in the XML body.
    let r = query_call(&berth, "sts", "Action=GetCallerIdentity&Version=2011-06-15").await;
    assert_eq!(r.status(), 200);
    let id = r.headers()["x-amzn-requestid"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(r.text().await.unwrap().contains(&id));
    ids.push(id);
    let r = anonymous()
        .post(berth.url("/"))
        .header(
            "content-type",
            "application/x-www-form-urlencoded; charset=utf-8",
        )
        .body("Action=GetCallerIdentity&Version=2011-06-15")
        .send()
        .await
        .unwrap();
    let id = r.headers()["x-amzn-requestid"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(r.text().await.unwrap().contains(&id));
    ids.push(id);
    // Health and metrics too.
    let r = anonymous().get(berth.url("/healthz")).send().await.unwrap();
    ids.push(r.headers()["x-request-id"].to_str().unwrap().to_string());

    let metrics = metrics_text(&berth).await;
    for line in [
        r#"berth_requests_total{door="oci",operation="manifest GET",code="200"} 1"#,
        r#"berth_requests_total{door="oci",operation="manifest PUT",code="201"} 1"#,
        r#"berth_requests_total{door="oci",operation="tags GET",code="401"} 1"#,
        r#"berth_requests_total{door="ecr",operation="DescribeRepositories",code="200"} 1"#,
        r#"berth_requests_total{door="ecr",operation="DescribeImages",code="400"} 1"#,
        r#"berth_requests_total{door="iam-sts",operation="sts:GetCallerIdentity",code="200"} 1"#,
        // Unsigned: refused before its body (and so its action) is read.
        r#"berth_requests_total{door="iam-sts",operation="other",code="403"} 1"#,
        r#"berth_request_duration_seconds_count{door="ecr",operation="DescribeRepositories"} 1"#,
        r#"berth_request_duration_seconds_bucket{door="oci",operation="manifest GET",le="+Inf"} 2"#,
    ] {
        assert!(metrics.contains(line), "missing {line} in\n{metrics}");
    }

    drop(berth);
    let log = std::fs::read_to_string(&log).unwrap();
    for id in &ids {
        assert!(
            log.contains(id.as_str()),
            "request {id} is not in the log:\n{log}"
        );
    }
    assert!(
        log.contains("principal=arn:aws:iam::000000000000:root"),
        "{log}"
    );
    assert!(log.contains("repository=obs/app"), "{log}");
}
