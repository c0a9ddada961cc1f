//! Scenarios `push` and `pull`: concurrent clients pushing images of a
//! realistic shape, and pulling one new image all at once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::ProgressBar;

use super::client::{Client, Failure, sha256_hex};
use super::payload::Payload;
use super::stats::{Recorded, Recorder, finish, together};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// The layers of an image: groups of `count` layers of `size` bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shape(pub Vec<(u32, u64)>);

/// `COUNTxSIZE` groups, e.g. `6x256KiB,3x2MiB,1x24MiB`.
pub fn parse_shape(s: &str) -> Result<Shape, String> {
    s.split(',')
        .map(|group| {
            let (count, size) = group
                .trim()
                .split_once('x')
                .ok_or_else(|| format!("layer group '{group}' is not COUNTxSIZE"))?;
            let count: u32 = count
                .parse()
                .map_err(|_| format!("bad count in '{group}'"))?;
            Ok((count, super::parse_size(size)?))
        })
        .collect::<Result<_, _>>()
        .map(Shape)
}

pub struct Layer {
    pub data: Payload,
    pub digest: String,
}

/// An image whose blobs and manifest are generated and hashed up front.
pub struct Image {
    pub layers: Vec<Layer>,
    pub config: Vec<u8>,
    pub config_digest: String,
    pub manifest: Vec<u8>,
    pub digest: String,
}

impl Image {
    pub fn generate(shape: &[(u32, u64)], seed: u64) -> Image {
        let mut layers = Vec::new();
        for (g, &(count, size)) in shape.iter().enumerate() {
            for i in 0..count {
                let data = Payload::generate(
                    size,
                    seed.wrapping_mul(1_000_003) ^ ((g as u64) << 32 | i as u64),
                );
                let digest = super::limits::sha256(&data).0;
                layers.push(Layer { data, digest });
            }
        }
        let config = format!(
            r#"{{"architecture":"amd64","os":"linux","config":{{}},"berth-bench-seed":{seed}}}"#
        )
        .into_bytes();
        let config_digest = sha256_hex(&config);
        let layer_json: Vec<String> = layers
            .iter()
            .map(|l| {
                format!(
                    r#"{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{}","size":{}}}"#,
                    l.digest,
                    l.data.len()
                )
            })
            .collect();
        let manifest = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config_digest}","size":{}}},"layers":[{}]}}"#,
            config.len(),
            layer_json.join(",")
        )
        .into_bytes();
        let digest = sha256_hex(&manifest);
        Image {
            layers,
            config,
            config_digest,
            manifest,
            digest,
        }
    }
}

/// Pushes every blob of `image` (larger than `chunk`: chunked; else in one
/// `POST` + `PUT`) and its manifest under `tag`, recording each request.
pub async fn push_image(
    client: &Client,
    repo: &str,
    tag: &str,
    image: &Image,
    chunk: u64,
    recorder: &Recorder,
    progress: &ProgressBar,
) {
    let config = Payload::from_bytes(image.config.clone());
    let blobs = image
        .layers
        .iter()
        .map(|l| (&l.data, &l.digest))
        .chain(std::iter::once((&config, &image.config_digest)));
    for (data, digest) in blobs {
        let start = Instant::now();
        let outcome = if data.len() > chunk {
            client.push_chunked(repo, data, digest, chunk).await
        } else {
            client.push_post_put(repo, data, digest).await
        };
        match outcome {
            Ok(()) => recorder.ok(start, data.len()),
            Err(f) => recorder.failed(f),
        }
        progress.inc(1);
    }
    let start = Instant::now();
    match client
        .put_manifest(repo, tag, OCI_MANIFEST, &image.manifest)
        .await
    {
        Ok(_) => recorder.ok(start, image.manifest.len() as u64),
        Err(f) => recorder.failed(f),
    }
    progress.inc(1);
}

/// Pulls `image` by `tag` as a client would: manifest, then every blob, each verified.
pub async fn pull_image(
    client: &Client,
    repo: &str,
    tag: &str,
    image: &Image,
    recorder: &Recorder,
    progress: &ProgressBar,
) {
    // As a runtime pulls: the tag resolved by `HEAD`, the manifest by digest.
    let start = Instant::now();
    let digest = match client.resolve(repo, tag).await {
        Ok(digest) if digest == image.digest => {
            recorder.ok(start, 0);
            digest
        }
        Ok(other) => {
            recorder.failed(Failure {
                kind: "wrong digest".into(),
                detail: format!("{repo}:{tag} resolved to {other}"),
            });
            return;
        }
        Err(f) => {
            recorder.failed(f);
            return;
        }
    };
    let start = Instant::now();
    match client
        .get_manifest(repo, &digest, Some(&image.digest))
        .await
    {
        Ok(bytes) => recorder.ok(start, bytes.len() as u64),
        Err(f) => {
            recorder.failed(f);
            return;
        }
    }
    let blobs = image
        .layers
        .iter()
        .map(|l| (l.digest.as_str(), l.data.len()))
        .chain(std::iter::once((
            image.config_digest.as_str(),
            image.config.len() as u64,
        )));
    for (digest, len) in blobs {
        let start = Instant::now();
        match client.pull_blob(repo, digest, len).await {
            Ok(n) => recorder.ok(start, n),
            Err(f) => recorder.failed(f),
        }
        progress.inc(1);
    }
}

/// `clients` clients each push `images` images at once.
pub async fn push(
    client: &Client,
    repo: &str,
    clients: usize,
    images: &[Arc<Vec<Image>>],
    chunk: u64,
    progress: ProgressBar,
) -> (Recorded, Duration) {
    let recorder = Arc::new(Recorder::default());
    let start = Instant::now();
    together(clients, |c| {
        let (client, recorder, progress) = (client.clone(), recorder.clone(), progress.clone());
        let (mine, repo) = (images[c].clone(), format!("{repo}-{c}"));
        async move {
            for (i, image) in mine.iter().enumerate() {
                let tag = format!("v{i}");
                push_image(&client, &repo, &tag, image, chunk, &recorder, &progress).await;
            }
        }
    })
    .await;
    finish(recorder, start, &progress)
}

/// `rounds` times, `clients` clients pull the same image at the same moment.
pub async fn pull(
    client: &Client,
    repo: &str,
    clients: usize,
    rounds: usize,
    image: Arc<Image>,
    progress: ProgressBar,
) -> (Recorded, Duration) {
    let recorder = Arc::new(Recorder::default());
    let start = Instant::now();
    for _ in 0..rounds {
        let barrier = Arc::new(tokio::sync::Barrier::new(clients));
        together(clients, |_| {
            let (client, recorder, progress) = (client.clone(), recorder.clone(), progress.clone());
            let (barrier, image, repo) = (barrier.clone(), image.clone(), repo.to_string());
            async move {
                barrier.wait().await;
                pull_image(&client, &repo, "herd", &image, &recorder, &progress).await;
            }
        })
        .await;
    }
    finish(recorder, start, &progress)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        assert_eq!(
            parse_shape("6x256KiB,1x2MiB"),
            Ok(Shape(vec![(6, 256 << 10), (1, 2 << 20)]))
        );
        assert!(parse_shape("6").is_err());
        assert!(parse_shape("ax1MiB").is_err());
    }

    #[test]
    fn generated_images_reference_their_blobs() {
        let image = Image::generate(&[(2, 1000)], 1);
        let manifest: serde_json::Value = serde_json::from_slice(&image.manifest).unwrap();
        assert_eq!(
            manifest["layers"][1]["digest"],
            image.layers[1].digest.as_str()
        );
        assert_eq!(manifest["config"]["digest"], image.config_digest.as_str());
        assert_ne!(image.layers[0].digest, image.layers[1].digest);
        assert_eq!(image.digest, sha256_hex(&image.manifest));
    }
}
