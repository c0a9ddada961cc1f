//! The physical limits a benchmark result is held to, measured in the same
//! run on the same machine: SHA-256 on one core, a durable disk write, and a
//! plain loopback HTTP copy of the same bytes.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use futures_util::StreamExt;
use sha2::{Digest as _, Sha256};

use super::payload::Payload;

/// Bytes per second.
pub type Rate = f64;

pub fn rate(bytes: u64, elapsed: Duration) -> Rate {
    bytes as f64 / elapsed.as_secs_f64().max(1e-9)
}

/// SHA-256 of `data` on this thread, and how fast it ran.
pub fn sha256(data: &Payload) -> (String, Rate) {
    let start = Instant::now();
    let mut hasher = Sha256::new();
    for frame in data.frames() {
        hasher.update(&frame);
    }
    let digest = format!("sha256:{}", hex::encode(hasher.finalize()));
    (digest, rate(data.len(), start.elapsed()))
}

/// Writes `len` bytes to a new file in `dir` and fsyncs it: what an
/// acknowledged push must at least cost on this disk.
pub fn durable_write(dir: &Path, len: u64) -> anyhow::Result<Rate> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join(format!(".berth-bench-disk-{}", std::process::id()));
    let frame = vec![0x5au8; 1 << 20];
    let start = Instant::now();
    let mut file = std::fs::File::create(&path).context("creating the disk probe file")?;
    let mut left = len;
    while left > 0 {
        let n = left.min(frame.len() as u64) as usize;
        file.write_all(&frame[..n])?;
        left -= n as u64;
    }
    file.sync_all()?;
    let elapsed = start.elapsed();
    drop(file);
    std::fs::remove_file(&path)?;
    Ok(rate(len, elapsed))
}

/// Serves `data` from memory over loopback HTTP (1 MiB frames) and downloads
/// it once plain and once hashed as a pull verifies it. Returns both rates.
pub async fn loopback_copy(data: &Payload) -> anyhow::Result<(Rate, Rate)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let served = data.clone();
    let app = axum::Router::new().fallback(move || {
        let frames = served.frames().map(Ok::<Bytes, std::io::Error>);
        async move { axum::body::Body::from_stream(futures_util::stream::iter(frames)) }
    });
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let url = format!("http://{address}/blob");
    let client = reqwest::Client::new();

    let plain = download(&client, &url, false).await?;
    let hashed = download(&client, &url, true).await?;
    server.abort();
    Ok((plain, hashed))
}

/// Downloads `url`, optionally hashing as it goes; returns the rate.
pub async fn download(client: &reqwest::Client, url: &str, hash: bool) -> anyhow::Result<Rate> {
    let start = Instant::now();
    let (len, _) = fetch(client, url, hash).await?;
    Ok(rate(len, start.elapsed()))
}

/// Downloads `url` and returns its length and, if asked, its SHA-256.
pub async fn fetch(
    client: &reqwest::Client,
    url: &str,
    hash: bool,
) -> anyhow::Result<(u64, Option<String>)> {
    let response = client.get(url).send().await?.error_for_status()?;
    let mut stream = response.bytes_stream();
    let mut hasher = hash.then(Sha256::new);
    let mut len = 0u64;
    while let Some(frame) = stream.next().await {
        let frame = frame?;
        len += frame.len() as u64;
        if let Some(h) = hasher.as_mut() {
            h.update(&frame);
        }
    }
    Ok((
        len,
        hasher.map(|h| format!("sha256:{}", hex::encode(h.finalize()))),
    ))
}
