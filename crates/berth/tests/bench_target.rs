//! `berth bench --target` against a berth that does not create repositories
//! on push: with an access key it creates its repositories and removes them.

mod common;

use common::*;

fn bench(berth: &Berth, work: &std::path::Path, credentials: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["bench", "--target", &berth.base])
        .args(credentials)
        .args([
            "--scenario",
            "push,pull",
            "--layers",
            "2x64KiB",
            "--clients",
            "1",
            "--images",
            "1",
            "--rounds",
            "1",
            "--blob-size",
            "1MiB",
            "--region",
            "us-east-1",
            "--history",
        ])
        .arg(work.join("history.json"))
        .arg("--work-dir")
        .arg(work)
        .output()
        .unwrap()
}

#[tokio::test]
async fn bench_creates_and_removes_its_repositories_where_pushes_do_not() {
    let berth = Berth::start_fresh(&[]);
    let work = tempfile::tempdir().unwrap();
    // With a registry token (no access key) it says what to do.
    let r = ecr_call(&berth, "GetAuthorizationToken", "{}").await;
    let body: serde_json::Value = r.json().await.unwrap();
    let token = body["authorizationData"][0]["authorizationToken"]
        .as_str()
        .unwrap();
    use base64::Engine as _;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(token)
        .unwrap();
    let password = String::from_utf8(decoded).unwrap()["AWS:".len()..].to_string();
    let out = bench(
        &berth,
        work.path(),
        &["--username", "AWS", "--password", &password],
    );
    assert!(!out.status.success());
    let text =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("--create-on-push"), "{text}");

    let out = bench(
        &berth,
        work.path(),
        &["--username", ROOT_KEY_ID, "--password", ROOT_SECRET],
    );
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let r = ecr_call(&berth, "DescribeRepositories", "{}").await;
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["repositories"], serde_json::json!([]), "{body}");
}
