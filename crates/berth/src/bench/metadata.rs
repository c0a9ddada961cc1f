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
/// number of clients: the ceiling for small requests on this machine. The
/// server is nginx answering a fixed small body when it is installed (the
/// usual reference), otherwise a minimal server in the harness; the second
/// value names which.
pub async fn loopback_request_rate(
    clients: usize,
    duration: Duration,
) -> anyhow::Result<(f64, &'static str)> {
    if let Some(nginx) = Nginx::start().await? {
        let rate = request_rate(&nginx.url, clients, duration).await;
        return Ok((rate, "nginx"));
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let app = axum::Router::new().fallback(|| async { "{}" });
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let rate = request_rate(&format!("http://{address}"), clients, duration).await;
    server.abort();
    Ok((rate, "harness"))
}

async fn request_rate(url: &str, clients: usize, duration: Duration) -> f64 {
    let client = Client::new(url, None);
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
        total += t.await.unwrap_or(0);
    }
    total as f64 / start.elapsed().as_secs_f64()
}

/// nginx (Debian's `nginx-light` will do) serving `{}` on a loopback port, in
/// a temporary directory of its own; stopped when dropped.
struct Nginx {
    url: String,
    child: tokio::process::Child,
    _dir: tempfile::TempDir,
}

impl Nginx {
    /// `None` when nginx is not installed or does not start.
    async fn start() -> anyhow::Result<Option<Nginx>> {
        let Some(binary) = ["/usr/sbin/nginx", "/usr/bin/nginx"]
            .into_iter()
            .map(std::path::Path::new)
            .find(|p| p.exists())
        else {
            return Ok(None);
        };
        let dir = tempfile::tempdir()?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let d = dir.path().display();
        let config = format!(
            "daemon off;\nworker_processes auto;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
             events {{ worker_connections 1024; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
             fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
             server {{ listen 127.0.0.1:{port}; location / {{ default_type application/json; return 200 '{{}}'; }} }}\n}}\n"
        );
        let path = dir.path().join("nginx.conf");
        std::fs::write(&path, config)?;
        let child = tokio::process::Command::new(binary)
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&path)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()?;
        let mut nginx = Nginx {
            url: format!("http://127.0.0.1:{port}"),
            child,
            _dir: dir,
        };
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return Ok(Some(nginx));
            }
            // It gave up (a port taken meanwhile, a refused setting).
            if !matches!(nginx.child.try_wait(), Ok(None)) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Not there after all: the harness's own server stands in.
        Ok(None)
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM, so that the master stops its workers too (a SIGKILL'd
        // master leaves them holding the port); a SIGKILL after two seconds.
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
            for _ in 0..100 {
                if !matches!(self.child.try_wait(), Ok(None)) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}
