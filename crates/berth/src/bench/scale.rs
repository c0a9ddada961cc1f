//! Scenario `scale`: how the cost of listing and lookups grows with the
//! number of tags in a repository and of repositories in the registry.
//! A registry that lists a page in constant time shows flat rows.

use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::client::{Client, Outcome};
use super::images::{Image, OCI_MANIFEST};
use super::stats::latency;

/// Lookups timed at each size.
const SAMPLES: usize = 100;
/// Tags given in one `PUT …/manifests/<digest>?tag=…` when the target supports
/// it. The answer carries one `OCI-Tag` header per tag, and HTTP clients cap a
/// response at about a hundred headers.
const TAGS_PER_PUT: usize = 50;

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct ScalePoint {
    /// `tags` (in one repository) or `repositories`.
    pub what: String,
    pub count: u64,
    pub first_page_p50_ms: f64,
    pub middle_page_p50_ms: f64,
    /// Manifest GET by tag (for tags); absent for repositories.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lookup_p50_ms: Option<f64>,
}

/// The sizes measured on the way to `max`: 100, 1,000, 10,000, … and `max`.
fn checkpoints(max: u64) -> Vec<u64> {
    let mut points: Vec<u64> = std::iter::successors(Some(100u64), |p| p.checked_mul(10))
        .take_while(|&p| p < max)
        .collect();
    points.push(max);
    points
}

fn tag(i: u64) -> String {
    format!("t{i:07}")
}

async fn timed<T>(samples: usize, mut op: impl AsyncFnMut(usize) -> Outcome<T>) -> Outcome<f64> {
    let mut durations = Vec::with_capacity(samples);
    for i in 0..samples {
        let start = Instant::now();
        op(i).await?;
        durations.push(start.elapsed());
    }
    Ok(latency(&mut durations).map_or(0.0, |l| l.p50_ms))
}

/// Adds tags `from..to` to the image, many per request where the target
/// takes `?tag=` parameters.
async fn add_tags(
    client: &Client,
    repo: &str,
    image: &Image,
    from: u64,
    to: u64,
    batch: bool,
) -> Outcome<bool> {
    let mut i = from;
    while i < to {
        if batch {
            let end = (i + TAGS_PER_PUT as u64).min(to);
            let query: Vec<String> = (i..end).map(|t| format!("tag={}", tag(t))).collect();
            let r = client
                .put_manifest(
                    repo,
                    &format!("{}?{}", image.digest, query.join("&")),
                    OCI_MANIFEST,
                    &image.manifest,
                )
                .await?;
            if !r.headers().contains_key("oci-tag") {
                return Ok(false); // no tag parameters here: go one by one from `i`
            }
            i = end;
        } else {
            client
                .put_manifest(repo, &tag(i), OCI_MANIFEST, &image.manifest)
                .await?;
            i += 1;
        }
    }
    Ok(true)
}

pub async fn tags(
    client: &Client,
    repo: &str,
    image: &Image,
    max: u64,
    say: &dyn Fn(&str),
) -> anyhow::Result<Vec<ScalePoint>> {
    let progress = indicatif::ProgressBar::hidden();
    let recorder = super::stats::Recorder::default();
    super::images::push_image(client, repo, &tag(0), image, u64::MAX, &recorder, &progress).await;
    if let Some(f) = recorder.finish().first_failure {
        anyhow::bail!("preparing the scale scenario: {f}");
    }
    let mut batch = true;
    let mut have = 1;
    let mut points = Vec::new();
    for count in checkpoints(max) {
        say(&format!("scale: {count} tags"));
        if batch && !add_tags(client, repo, image, have, count, true).await? {
            batch = false;
        }
        if !batch {
            add_tags(client, repo, image, have, count, false).await?;
        }
        have = count;
        let middle = tag(count / 2);
        let first_page = timed(SAMPLES, async |_| {
            client
                .get_json(&format!("/v2/{repo}/tags/list?n=100"), "tags/list")
                .await
        })
        .await?;
        let middle_page = timed(SAMPLES, async |_| {
            client
                .get_json(
                    &format!("/v2/{repo}/tags/list?n=100&last={middle}"),
                    "tags/list",
                )
                .await
        })
        .await?;
        let lookup = timed(SAMPLES, async |i| {
            let t = tag((i as u64 * 7919) % count);
            client.get_manifest(repo, &t, Some(&image.digest)).await
        })
        .await?;
        points.push(ScalePoint {
            what: "tags".into(),
            count,
            first_page_p50_ms: first_page,
            middle_page_p50_ms: middle_page,
            lookup_p50_ms: Some(lookup),
        });
    }
    Ok(points)
}

pub async fn repositories(
    client: &Client,
    prefix: &str,
    max: u64,
    say: &dyn Fn(&str),
) -> anyhow::Result<Vec<ScalePoint>> {
    let payload = super::payload::Payload::from_bytes(b"berth bench scale".to_vec());
    let digest = super::client::sha256_hex(b"berth bench scale");
    let name = |i: u64| format!("{prefix}/r{i:07}");
    let mut have = 0;
    let mut points = Vec::new();
    for count in checkpoints(max) {
        say(&format!("scale: {count} repositories"));
        // Eight pushers at a time: creating repositories is write-bound.
        let mut next = have;
        while next < count {
            let end = (next + 8).min(count);
            let pushes = (next..end).map(|i| {
                let (client, payload, digest, repo) =
                    (client.clone(), payload.clone(), digest.clone(), name(i));
                async move { client.push_post_put(&repo, &payload, &digest).await }
            });
            for outcome in futures_util::future::join_all(pushes).await {
                outcome?;
            }
            next = end;
        }
        have = count;
        let middle = name(count / 2);
        let first_page = timed(SAMPLES, async |_| {
            client.get_json("/v2/_catalog?n=100", "_catalog").await
        })
        .await?;
        let middle_page = timed(SAMPLES, async |_| {
            client
                .get_json(&format!("/v2/_catalog?n=100&last={middle}"), "_catalog")
                .await
        })
        .await?;
        points.push(ScalePoint {
            what: "repositories".into(),
            count,
            first_page_p50_ms: first_page,
            middle_page_p50_ms: middle_page,
            lookup_p50_ms: None,
        });
    }
    Ok(points)
}

#[cfg(test)]
mod tests {
    use super::checkpoints;

    #[test]
    fn checkpoints_grow_tenfold_to_the_maximum() {
        assert_eq!(checkpoints(100_000), vec![100, 1_000, 10_000, 100_000]);
        assert_eq!(checkpoints(2_500), vec![100, 1_000, 2_500]);
        assert_eq!(checkpoints(50), vec![50]);
    }
}
