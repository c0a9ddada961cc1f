//! The durable job queue: a job whose node dies mid-run is finished by
//! another node; a failing job is retried with back-off and ends failed;
//! SIGTERM lets running jobs finish.

mod common;

use std::time::{Duration, Instant};

use common::*;

async fn readyz(berth: &Berth) -> serde_json::Value {
    anonymous()
        .get(berth.url("/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn job(berth: &Berth, id: i64) -> serde_json::Value {
    berth
        .cli(&["jobs", "--json", "--limit", "200"])
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|j| j["id"] == id)
        .unwrap_or_else(|| panic!("job {id} is not listed"))
}

fn enqueue(berth: &Berth, kind: &str, payload: &str, attempts: &str) -> i64 {
    let out = berth.cli(&[
        "jobs",
        "--enqueue",
        kind,
        "--payload",
        payload,
        "--max-attempts",
        attempts,
    ]);
    out.trim().rsplit(' ').next().unwrap().parse().unwrap()
}

async fn until(what: &str, limit: Duration, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_job_whose_node_dies_is_finished_by_another() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let args = ["--job-lease", "2s", "--job-workers", "1"];
    let a = Berth::start_in(&data, &args);
    let b = Berth::start_in(&data, &args);
    let id = enqueue(&a, "test.sleep", r#"{"seconds":3}"#, "3");

    // It runs on one node; that node dies mid-job.
    let mut runner = None;
    until("the job to start", Duration::from_secs(15), async || {
        for (name, node) in [("a", &a), ("b", &b)] {
            if readyz(node).await["jobs"]
                .as_array()
                .unwrap()
                .contains(&"test.sleep".into())
            {
                runner = Some(name);
                return true;
            }
        }
        false
    })
    .await;
    let survivor = if runner == Some("a") {
        a.kill();
        b
    } else {
        b.kill();
        a
    };
    let node = readyz(&survivor).await["node"]
        .as_str()
        .unwrap()
        .to_string();
    until(
        "the survivor to finish the job",
        Duration::from_secs(30),
        async || job(&survivor, id)["state"] == "done",
    )
    .await;
    let finished = job(&survivor, id);
    assert_eq!(finished["attempts"], 2, "{finished}");
    assert!(
        finished["worker"].as_str().unwrap().starts_with(&node),
        "{finished}"
    );
}

#[tokio::test]
async fn a_failing_job_is_retried_with_back_off_then_fails() {
    let berth = Berth::start(&["--job-backoff", "300ms"]);
    let started = Instant::now();
    let id = enqueue(&berth, "test.fail", "{}", "3");
    until(
        "the job to fail for good",
        Duration::from_secs(20),
        async || job(&berth, id)["state"] == "failed",
    )
    .await;
    let failed = job(&berth, id);
    assert_eq!(failed["attempts"], 3, "{failed}");
    assert_eq!(failed["last_error"], "failing on purpose");
    // Back-off: 300 ms, then 600 ms between the three attempts.
    assert!(started.elapsed() >= Duration::from_millis(900));
    let metrics = metrics_text(&berth).await;
    assert!(
        metrics.contains(r#"berth_jobs_settled_total{kind="test.fail",outcome="retried"} 2"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"berth_jobs{kind="test.fail",state="failed"} 1"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn sigterm_lets_running_jobs_finish() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let berth = Berth::start_in(&data, &["--job-drain", "20s"]);
    let id = enqueue(&berth, "test.sleep", r#"{"seconds":2}"#, "1");
    until("the job to start", Duration::from_secs(15), async || {
        readyz(&berth).await["jobs"]
            .as_array()
            .unwrap()
            .contains(&"test.sleep".into())
    })
    .await;
    let started = Instant::now();
    let check = Berth::start_in(&data, &["--job-workers", "1"]);
    // (A second node only to read the queue after the first stops.)
    assert!(berth.terminate().success());
    assert!(started.elapsed() < Duration::from_secs(20));
    assert_eq!(job(&check, id)["state"], "done");
}
