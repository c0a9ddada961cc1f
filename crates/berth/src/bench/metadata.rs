//! Scenario `metadata`: the small requests that dominate a busy registry —
//! manifest `HEAD`/`GET` by tag, blob `HEAD`, `tags/list` pages — as fast as
//! the target answers, held to a minimal HTTP server's request rate on the
//! same loopback with the same clients.

use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::ProgressBar;

use super::client::Client;
use super::images::{Image, OCI_MANIFEST};
use super::stats::{Recorded, Recorder, finish, together};

/// Tags pushed for the `tags/list` pages.
const TAGS: usize = 300;

/// Pushes the image the scenario reads, with `TAGS` tags.
pub async fn prepare(client: &Client, repo: &str, image: &Image) -> anyhow::Result<()> {
    let progress = ProgressBar::hidden();
    let recorder = Recorder::default();
    super::images::push_image(client, repo, "t000", image, u64::MAX, &recorder, &progress).await;
    let recorded = recorder.finish();
    if let Some(f) = recorded.first_failure {
        anyhow::bail!("preparing the metadata scenario: {f}");
    }
    for i in 1..TAGS {
        client
            .put_manifest(repo, &format!("t{i:03}"), OCI_MANIFEST, &image.manifest)
            .await?;
    }
    Ok(())
}

/// `clients` clients cycle through the four requests for `duration`.
pub async fn run(
    client: &Client,
    repo: &str,
    image: Arc<Image>,
    clients: usize,
    duration: Duration,
    progress: ProgressBar,
) -> (Recorded, Duration) {
    let recorder = Arc::new(Recorder::default());
    let start = Instant::now();
    let deadline = start + duration;
    together(clients, |c| {
        let (client, recorder, progress) = (client.clone(), recorder.clone(), progress.clone());
        let (image, repo) = (image.clone(), repo.to_string());
        async move {
            let blob = format!("/v2/{repo}/blobs/{}", image.config_digest);
            let mut n = c;
            while Instant::now() < deadline {
                let tag = format!("t{:03}", n % TAGS);
                let manifest = format!("/v2/{repo}/manifests/{tag}");
                let begun = Instant::now();
                let outcome = match n % 4 {
                    0 => client.head(&manifest, "manifest HEAD").await.map(|_| 0),
                    1 => client
                        .get_manifest(&repo, &tag, Some(&image.digest))
                        .await
                        .map(|b| b.len() as u64),
                    2 => client.head(&blob, "blob HEAD").await.map(|_| 0),
                    _ => client
                        .get_json(
                            &format!("/v2/{repo}/tags/list?n=100&last={tag}"),
                            "tags/list",
                        )
                        .await
                        .map(|_| 0),
                };
                match outcome {
                    Ok(bytes) => recorder.ok(begun, bytes),
                    Err(f) => recorder.failed(f),
                }
                progress.inc(1);
                n += 1;
            }
        }
    })
    .await;
    finish(recorder, start, &progress)
}

/// Requests per second a minimal HTTP server on loopback answers to the same
/// number of clients: the ceiling for small requests on this machine.
pub async fn loopback_request_rate(clients: usize, duration: Duration) -> anyhow::Result<f64> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let app = axum::Router::new().fallback(|| async { "{}" });
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let client = Client::new(&format!("http://{address}"), None);
    let start = Instant::now();
    let deadline = start + duration;
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move {
                let mut done = 0u64;
                while Instant::now() < deadline {
                    if client.head("/v2/", "minimal HEAD").await.is_ok() {
                        done += 1;
                    }
                }
                done
            })
        })
        .collect();
    let mut total = 0;
    for t in tasks {
        total += t.await?;
    }
    let rate = total as f64 / start.elapsed().as_secs_f64();
    server.abort();
    Ok(rate)
}
