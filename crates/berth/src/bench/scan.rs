//! `berth bench --scenario scan`: berth's scanner, in-process on the
//! embedded backends. A base layer of `--scan-layer-size` (a filesystem of
//! text and binary files with dpkg, Python and npm package records, gzip'd)
//! is scanned within an image; the limit is gunzip of the same layer on one
//! core, measured in the same run. Then a second image sharing that base
//! layer is scanned: it costs only its own small layer.

use std::io::{Read, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use berth_core::{Digest, Reference, RepositoryName};
use berth_server::scanning::{Scanning, ScanningSettings};
use berth_server::{Registry, RegistryConfig};
use berth_store::{BlobStore, FsBlobStore, MetadataStore, SqliteStore};
use serde::Serialize;
use sha2::Digest as _;

#[derive(Serialize)]
pub struct ScanReport {
    pub layer_uncompressed_bytes: u64,
    pub layer_compressed_bytes: u64,
    /// The limit: gunzip of the layer on one core, compressed MB/s.
    pub gunzip_mb_per_s: f64,
    pub scan_seconds: f64,
    pub scan_mb_per_s: f64,
    pub scan_ratio_to_gunzip: f64,
    /// Peak resident memory while scanning, over what the process held before.
    pub scan_peak_rss_growth_mib: f64,
    pub packages_found: usize,
    /// The second image: the shared base layer's inventory is reused.
    pub second_image_seconds: f64,
    pub second_image_ratio: f64,
}

fn rss_mib(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with(field))?;
            let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kib / 1024.0)
        })
        .unwrap_or(0.0)
}

/// Resets the kernel's peak-RSS mark (`VmHWM`) to the current RSS.
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

struct Writer<W: Write> {
    tar: tar::Builder<W>,
}

impl<W: Write> Writer<W> {
    fn file(&mut self, path: &str, data: &[u8], mode: u32) -> std::io::Result<()> {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(mode);
        header.set_mtime(0);
        header.set_cksum();
        self.tar.append_data(&mut header, path, data)
    }
}

/// Writes a gzip'd layer of about `size` bytes of files; returns (uncompressed, digest, compressed size).
fn write_layer(path: &Path, size: u64, app: bool) -> anyhow::Result<(u64, Digest, u64)> {
    let file = std::fs::File::create(path)?;
    let gz =
        flate2::write::GzEncoder::new(std::io::BufWriter::new(file), flate2::Compression::fast());
    let mut w = Writer {
        tar: tar::Builder::new(gz),
    };
    let mut written = 0u64;
    if !app {
        w.file("etc/os-release", b"ID=debian\nVERSION_ID=\"12\"\n", 0o644)?;
        let mut status = String::new();
        for i in 0..500 {
            status.push_str(&format!(
                "Package: pkg{i}\nStatus: install ok installed\nVersion: 1.{i}-1\nDescription: a package\n a long description line\n\n"
            ));
        }
        w.file("var/lib/dpkg/status", status.as_bytes(), 0o644)?;
    }
    let prefix = if app { "app" } else { "usr" };
    for i in 0..200 {
        w.file(
            &format!("{prefix}/lib/python3/site-packages/mod{i}-1.{i}.dist-info/METADATA"),
            format!("Metadata-Version: 2.1\nName: mod{i}\nVersion: 1.{i}\n").as_bytes(),
            0o644,
        )?;
        w.file(
            &format!("{prefix}/node_modules/npm{i}/package.json"),
            format!("{{\"name\": \"npm{i}\", \"version\": \"1.0.{i}\"}}").as_bytes(),
            0o644,
        )?;
    }
    // Half compressible text, half incompressible bytes, in files of 1–8 MiB.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut n = 0;
    while written < size {
        let len = ((1 + n % 8) << 20).min((size - written) as usize).max(1);
        let mut data = vec![0u8; len];
        if n % 2 == 0 {
            for chunk in data.chunks_mut(8) {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                chunk.copy_from_slice(&state.to_le_bytes()[..chunk.len()]);
            }
        } else {
            let line = b"the quick brown fox jumps over the lazy dog 0123456789\n";
            for (i, b) in data.iter_mut().enumerate() {
                *b = line[i % line.len()];
            }
        }
        w.file(&format!("{prefix}/share/data/file{n}"), &data, 0o644)?;
        written += len as u64;
        n += 1;
    }
    let gz = w.tar.into_inner()?;
    gz.finish()?.flush()?;
    let mut hasher = sha2::Sha256::new();
    let mut file = std::fs::File::open(path)?;
    let mut buf = vec![0u8; 1 << 20];
    let mut compressed = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        compressed += n as u64;
        hasher.update(&buf[..n]);
    }
    let digest: Digest = format!("sha256:{}", hex::encode(hasher.finalize())).parse()?;
    Ok((written, digest, compressed))
}

/// Gunzip of the layer into nothing, 1 MiB at a time, the best of two runs.
fn gunzip_seconds(path: &Path) -> anyhow::Result<f64> {
    let mut best = f64::MAX;
    let mut buf = vec![0u8; 1 << 20];
    for _ in 0..2 {
        let started = Instant::now();
        let file = std::io::BufReader::with_capacity(1 << 20, std::fs::File::open(path)?);
        let mut decoder = flate2::bufread::MultiGzDecoder::new(file);
        while decoder.read(&mut buf)? > 0 {}
        best = best.min(started.elapsed().as_secs_f64());
    }
    Ok(best)
}

async fn put_file(
    registry: &Registry,
    repository: &RepositoryName,
    digest: &Digest,
    path: &Path,
) -> anyhow::Result<()> {
    let file = tokio::fs::File::open(path).await?;
    let mut stream = tokio_util::io::ReaderStream::with_capacity(file, 1 << 20);
    registry.put_blob(repository, digest, &mut stream).await?;
    Ok(())
}

async fn put_image(
    registry: &Registry,
    repository: &RepositoryName,
    layers: &[(Digest, u64)],
) -> anyhow::Result<Digest> {
    let config = br#"{"os":"linux","architecture":"amd64"}"#;
    let config_digest = Digest::of(berth_core::Algorithm::Sha256, config);
    let mut body =
        futures_util::stream::iter([Ok::<_, std::io::Error>(bytes::Bytes::from_static(config))]);
    registry
        .put_blob(repository, &config_digest, &mut body)
        .await?;
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest.to_string(), "size": config.len()},
        "layers": layers.iter().map(|(d, s)| serde_json::json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d.to_string(), "size": s,
        })).collect::<Vec<_>>(),
    })
    .to_string();
    let digest = Digest::of(berth_core::Algorithm::Sha256, manifest.as_bytes());
    registry
        .put_manifest(
            repository,
            &Reference::Digest(digest.clone()),
            Vec::new(),
            Some("application/vnd.oci.image.manifest.v1+json"),
            bytes::Bytes::from(manifest),
        )
        .await?;
    Ok(digest)
}

pub async fn run(work_dir: &Path, layer_size: u64, json: bool) -> anyhow::Result<ScanReport> {
    let data = work_dir.join("scan");
    std::fs::create_dir_all(&data)?;
    if !json {
        eprintln!("scan: writing a {} MiB layer", layer_size >> 20);
    }
    let base_path = data.join("base.tar.gz");
    let (uncompressed, base, base_size) = write_layer(&base_path, layer_size, false)?;
    let (app_paths, mut apps) = (
        [data.join("app1.tar.gz"), data.join("app2.tar.gz")],
        Vec::new(),
    );
    for (i, path) in app_paths.iter().enumerate() {
        let (_, digest, size) = write_layer(path, (4 + i as u64) << 20, true)?;
        apps.push((digest, size));
    }
    let gunzip = gunzip_seconds(&base_path)?;

    let store: Arc<dyn MetadataStore> =
        Arc::new(SqliteStore::open(&data.join("metadata.db")).await?);
    let blobs: Arc<dyn BlobStore> = Arc::new(FsBlobStore::open(data.join("blobs"))?);
    let registry = Arc::new(Registry::new(
        store.clone(),
        blobs,
        RegistryConfig {
            create_on_push: true,
            ..RegistryConfig::default()
        },
    ));
    let repository: RepositoryName = "bench/scan".parse()?;
    put_file(&registry, &repository, &base, &base_path).await?;
    for (path, (digest, _)) in app_paths.iter().zip(&apps) {
        put_file(&registry, &repository, digest, path).await?;
    }
    let first = put_image(
        &registry,
        &repository,
        &[(base.clone(), base_size), apps[0].clone()],
    )
    .await?;
    let second = put_image(
        &registry,
        &repository,
        &[(base, base_size), apps[1].clone()],
    )
    .await?;
    let scanning = Scanning::new(store, registry, ScanningSettings::default());

    if !json {
        eprintln!("scan: scanning the first image");
    }
    let before = rss_mib("VmRSS:");
    reset_peak();
    let started = Instant::now();
    scanning
        .run(repository.as_str(), &first.to_string())
        .await
        .map_err(anyhow::Error::msg)
        .context("scanning")?;
    let scan_seconds = started.elapsed().as_secs_f64();
    let peak = rss_mib("VmHWM:");
    let packages = scanning
        .scan(&repository, &first)
        .await?
        .and_then(|s| s.result)
        .map_or(0, |r| r.packages);
    let started = Instant::now();
    scanning
        .run(repository.as_str(), &second.to_string())
        .await
        .map_err(anyhow::Error::msg)?;
    let second_seconds = started.elapsed().as_secs_f64();
    let mb = |bytes: u64, seconds: f64| bytes as f64 / 1e6 / seconds;
    Ok(ScanReport {
        layer_uncompressed_bytes: uncompressed,
        layer_compressed_bytes: base_size,
        gunzip_mb_per_s: mb(base_size, gunzip),
        scan_seconds,
        scan_mb_per_s: mb(base_size, scan_seconds),
        scan_ratio_to_gunzip: gunzip / scan_seconds,
        scan_peak_rss_growth_mib: (peak - before).max(0.0),
        packages_found: packages,
        second_image_seconds: second_seconds,
        second_image_ratio: second_seconds / scan_seconds,
    })
}
