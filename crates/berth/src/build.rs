//! `berth build`: builds images from source bundles on a berth, server-side.
//! Each source — a directory, a `.zip`, a `.tar`/`.tar.gz`, or an `s3://`
//! prefix or object — becomes one bundle (a directory is packed
//! reproducibly, so an unchanged source has an unchanged digest), uploaded
//! as a blob of the target repository unless berth has it already, and
//! built by berth's own `StartBuild` operation (SigV4 with the usual AWS
//! credentials). Reads the seed's `{"manifest": [{"source_uri",
//! "target_image"}]}` file or one `SOURCE --tag REPO:TAG`; shows each
//! build's state; ends with a table; exits non-zero if any failed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use futures_util::TryStreamExt;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use serde_json::{Value, json};

use crate::aws_json::Signer;

#[derive(Args, Debug)]
pub struct BuildArgs {
    /// A `container_build_manifest.json`, or with `--tag` one source: a
    /// directory, a `.zip`, a `.tar`/`.tar.gz`, or an `s3://` prefix or object.
    source: String,
    /// Where the image goes (`REPOSITORY:TAG`), for one source.
    #[arg(long)]
    tag: Option<String>,
    /// A build argument, `NAME=VALUE` (repeatable).
    #[arg(long = "build-arg", value_name = "NAME=VALUE")]
    build_args: Vec<String>,
    /// The stage to build, in a multi-stage Dockerfile.
    #[arg(long)]
    target: Option<String>,
    /// The platform to build for (`linux/amd64`).
    #[arg(long)]
    platform: Option<String>,
    /// Build even when the source has not changed since the tag's image was built.
    #[arg(long)]
    force: bool,
    /// Print each build's log as it runs.
    #[arg(long)]
    follow: bool,
    /// The berth to build on.
    #[arg(long, env = "BERTH_ENDPOINT", default_value = "http://127.0.0.1:5000")]
    endpoint: String,
    /// The region berth signs in.
    #[arg(long, env = "AWS_REGION", default_value = "us-east-1")]
    region: String,
    /// Give up waiting after this long.
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
    timeout: Duration,
}

/// One build asked for.
struct Wanted {
    source: String,
    repository: String,
    tag: String,
}

fn split_target(target: &str) -> anyhow::Result<(String, String)> {
    // A tag follows the last `:` after the last `/` (a registry port is not a tag).
    let slash = target.rfind('/').map_or(0, |i| i + 1);
    match target[slash..].rfind(':') {
        Some(i) => Ok((
            target[..slash + i].to_string(),
            target[slash + i + 1..].to_string(),
        )),
        None => Ok((target.to_string(), "latest".to_string())),
    }
}

pub async fn run(args: BuildArgs) -> anyhow::Result<()> {
    let mut wanted = Vec::new();
    if let Some(tag) = &args.tag {
        let (repository, tag) = split_target(tag)?;
        wanted.push(Wanted {
            source: args.source.clone(),
            repository,
            tag,
        });
    } else {
        let text = std::fs::read_to_string(&args.source).with_context(|| {
            format!(
                "reading {} (give --tag REPO:TAG to build one source)",
                args.source
            )
        })?;
        let json: Value =
            serde_json::from_str(&text).with_context(|| format!("{} is not JSON", args.source))?;
        let list = json["manifest"]
            .as_array()
            .with_context(|| format!("{} has no \"manifest\" list", args.source))?;
        let base = Path::new(&args.source).parent().unwrap_or(Path::new("."));
        for item in list {
            let (Some(source), Some(target)) =
                (item["source_uri"].as_str(), item["target_image"].as_str())
            else {
                bail!("each manifest entry needs \"source_uri\" and \"target_image\": {item}");
            };
            let (repository, tag) = split_target(target)?;
            // Relative paths are the manifest file's neighbours.
            let source = if source.contains("://") || Path::new(source).is_absolute() {
                source.to_string()
            } else {
                base.join(source).display().to_string()
            };
            wanted.push(Wanted {
                source,
                repository,
                tag,
            });
        }
    }
    if wanted.is_empty() {
        bail!("nothing to build");
    }
    let mut build_args = BTreeMap::new();
    for entry in &args.build_args {
        let (name, value) = entry
            .split_once('=')
            .with_context(|| format!("--build-arg {entry}: expected NAME=VALUE"))?;
        build_args.insert(name.to_string(), value.to_string());
    }
    let signer = Signer::from_env(&args.endpoint, &args.region)?;
    let registry_auth = registry_auth(&signer).await?;
    let work = tempfile::tempdir()?;
    let bars = MultiProgress::new();
    let style =
        ProgressStyle::with_template("{spinner} {prefix:.bold} {msg}").expect("a valid template");
    let mut started: Vec<(Wanted, Result<Value, String>, ProgressBar)> = Vec::new();
    for (n, item) in wanted.into_iter().enumerate() {
        let bar = bars.add(ProgressBar::new_spinner().with_style(style.clone()));
        bar.set_prefix(format!("{}:{}", item.repository, item.tag));
        bar.enable_steady_tick(Duration::from_millis(120));
        bar.set_message("packing");
        let started_build = async {
            let bundle = bundle_of(&item.source, &work.path().join(n.to_string())).await?;
            bar.set_message("uploading");
            let digest = upload(&signer, &registry_auth, &item.repository, &bundle).await?;
            let answer = signer
                .berth(
                    "StartBuild",
                    &json!({
                        "repositoryName": item.repository, "imageTag": item.tag,
                        "sourceDigest": digest, "buildArgs": build_args,
                        "target": args.target, "platform": args.platform, "force": args.force,
                    }),
                )
                .await?;
            anyhow::Ok(answer["build"].clone())
        }
        .await;
        match &started_build {
            Ok(b) => bar.set_message(b["status"].as_str().unwrap_or_default().to_lowercase()),
            Err(e) => bar.finish_with_message(format!("failed: {e:#}")),
        }
        started.push((item, started_build.map_err(|e| format!("{e:#}")), bar));
    }
    let deadline = Instant::now() + args.timeout;
    let mut offsets: BTreeMap<String, u64> = BTreeMap::new();
    loop {
        let mut running = false;
        for (_, build, bar) in started.iter_mut() {
            let Ok(current) = build else { continue };
            let status = current["status"].as_str().unwrap_or_default().to_string();
            if !matches!(status.as_str(), "QUEUED" | "RUNNING") {
                continue;
            }
            let id = current["buildId"].as_str().unwrap_or_default().to_string();
            let offset = offsets.get(&id).copied().unwrap_or(0);
            let log = signer
                .berth(
                    "GetBuildLog",
                    &json!({"buildId": id, "startOffset": offset}),
                )
                .await?;
            if args.follow {
                for line in log["log"].as_str().unwrap_or_default().lines() {
                    bars.println(format!("{id:.8} | {line}")).ok();
                }
            }
            offsets.insert(id, log["nextOffset"].as_u64().unwrap_or(offset));
            *current = log["build"].clone();
            let status = current["status"].as_str().unwrap_or_default();
            match status {
                "QUEUED" | "RUNNING" => {
                    running = true;
                    bar.set_message(status.to_lowercase());
                }
                _ => bar.finish_with_message(status.to_lowercase()),
            }
        }
        if !running || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    bars.clear().ok();
    println!("{:<50} {:<40} {:<20}  result", "source", "target", "digest");
    let mut failed = 0;
    for (item, build, _) in &started {
        let (digest, result) = match build {
            Err(e) => (String::new(), format!("failed: {e}")),
            Ok(b) => {
                let digest: String = b["imageDigest"]
                    .as_str()
                    .unwrap_or_default()
                    .chars()
                    .take(19)
                    .collect();
                let result = match b["status"].as_str().unwrap_or_default() {
                    "SUCCEEDED" => "built".to_string(),
                    "SKIPPED" => "skipped".to_string(),
                    "FAILED" => format!(
                        "failed: {}",
                        b["reason"]
                            .as_str()
                            .unwrap_or_default()
                            .replace('\n', " | ")
                    ),
                    other => format!("timed out ({})", other.to_lowercase()),
                };
                (digest, result)
            }
        };
        if !(result == "built" || result == "skipped") {
            failed += 1;
        }
        println!(
            "{:<50} {:<40} {:<20}  {result}",
            item.source,
            format!("{}:{}", item.repository, item.tag),
            digest
        );
    }
    if failed > 0 {
        bail!("{failed} of {} builds did not succeed", started.len());
    }
    Ok(())
}

/// `Basic …` for the registry door, from `GetAuthorizationToken`.
async fn registry_auth(signer: &Signer) -> anyhow::Result<String> {
    let (status, text) = signer
        .call(
            "AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken",
            "{}",
        )
        .await?;
    let answer = crate::aws_json::answer("GetAuthorizationToken", status, &text)?;
    let token = answer["authorizationData"][0]["authorizationToken"]
        .as_str()
        .context("GetAuthorizationToken gave no token")?;
    Ok(format!("Basic {token}"))
}

/// The bundle file for `source`, made in `work` when it must be.
async fn bundle_of(source: &str, work: &Path) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(work)?;
    if let Some(rest) = source.strip_prefix("s3://") {
        return from_s3(rest, work).await;
    }
    let path = PathBuf::from(source);
    let meta = std::fs::metadata(&path).with_context(|| format!("reading {source}"))?;
    if meta.is_dir() {
        return pack(&path, work).await;
    }
    Ok(path)
}

/// Packs a directory, reproducibly (same contents, same digest).
async fn pack(dir: &Path, work: &Path) -> anyhow::Result<PathBuf> {
    let out = work.join("bundle.tar.gz");
    let (dir, target) = (dir.to_path_buf(), out.clone());
    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        let mut file = std::io::BufWriter::new(std::fs::File::create(&target)?);
        berth_build::pack_dir(&dir, &mut file)?;
        std::io::Write::flush(&mut file)?;
        Ok(())
    })
    .await??;
    Ok(out)
}

/// An `s3://bucket/key` object as it is, or an `s3://bucket/prefix/`
/// (every object under it) packed as a directory.
async fn from_s3(rest: &str, work: &Path) -> anyhow::Result<PathBuf> {
    use object_store::{ObjectStore, ObjectStoreExt};
    let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
    let mut builder = object_store::aws::AmazonS3Builder::from_env().with_bucket_name(bucket);
    let endpoint = std::env::var("AWS_ENDPOINT_URL_S3")
        .or_else(|_| std::env::var("AWS_ENDPOINT_URL"))
        .unwrap_or_default();
    if endpoint.starts_with("http://") {
        builder = builder.with_allow_http(true);
    }
    // The sources' bucket may want other credentials than berth.
    if let (Ok(key), Ok(secret)) = (
        std::env::var("BERTH_S3_ACCESS_KEY_ID"),
        std::env::var("BERTH_S3_SECRET_ACCESS_KEY"),
    ) {
        builder = builder
            .with_access_key_id(key)
            .with_secret_access_key(secret);
    }
    let store = builder.build()?;
    let key = key.trim_start_matches('/');
    if !key.is_empty() && !key.ends_with('/') {
        let path = object_store::path::Path::from(key);
        if let Ok(object) = store.get(&path).await {
            let name = key.rsplit('/').next().unwrap_or("bundle");
            let out = work.join(name);
            let mut file = tokio::fs::File::create(&out).await?;
            let mut stream = object.into_stream();
            while let Some(piece) = stream.try_next().await? {
                tokio::io::AsyncWriteExt::write_all(&mut file, &piece).await?;
            }
            return Ok(out);
        }
    }
    let prefix = object_store::path::Path::from(key.trim_end_matches('/'));
    let dir = work.join("source");
    let mut listed = store.list(Some(&prefix));
    let mut count = 0;
    while let Some(meta) = listed.try_next().await? {
        let relative = meta
            .location
            .prefix_match(&prefix)
            .map(|parts| parts.map(|p| p.as_ref().to_string()).collect::<Vec<_>>())
            .unwrap_or_default();
        if relative.is_empty() || relative.iter().any(|p| p == ".." || p.is_empty()) {
            continue;
        }
        let out = relative.iter().fold(dir.clone(), |d, p| d.join(p));
        std::fs::create_dir_all(out.parent().unwrap_or(&dir))?;
        let bytes = store.get(&meta.location).await?.bytes().await?;
        tokio::fs::write(&out, bytes).await?;
        count += 1;
    }
    if count == 0 {
        bail!("s3://{rest}: no such object, and no objects under that prefix");
    }
    pack(&dir, work).await
}

/// Uploads the bundle as a blob of `repository` unless berth has it
/// there already; its digest.
async fn upload(
    signer: &Signer,
    auth: &str,
    repository: &str,
    bundle: &Path,
) -> anyhow::Result<String> {
    let digest = {
        let bundle = bundle.to_path_buf();
        tokio::task::spawn_blocking(move || berth_build::digest_file(&bundle)).await??
    };
    let base = &signer.base;
    let http = &signer.http;
    let head = http
        .head(format!("{base}/v2/{repository}/blobs/{digest}"))
        .header("authorization", auth)
        .send()
        .await?;
    if head.status().is_success() {
        return Ok(digest);
    }
    let started = http
        .post(format!("{base}/v2/{repository}/blobs/uploads/"))
        .header("authorization", auth)
        .send()
        .await?;
    if !started.status().is_success() {
        bail!(
            "uploading the source to {repository}: {} {}",
            started.status(),
            started.text().await.unwrap_or_default()
        );
    }
    let location = started
        .headers()
        .get("location")
        .and_then(|l| l.to_str().ok())
        .context("the upload has no Location")?
        .to_string();
    let location = if location.starts_with("http") {
        location
    } else {
        format!("{base}{location}")
    };
    let separator = if location.contains('?') { '&' } else { '?' };
    let file = tokio::fs::File::open(bundle).await?;
    let size = file.metadata().await?.len();
    let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::new(file));
    let put = http
        .put(format!("{location}{separator}digest={digest}"))
        .header("authorization", auth)
        .header("content-type", "application/octet-stream")
        .header("content-length", size)
        .body(body)
        .send()
        .await?;
    if !put.status().is_success() {
        bail!(
            "uploading the source to {repository}: {} {}",
            put.status(),
            put.text().await.unwrap_or_default()
        );
    }
    Ok(digest)
}
