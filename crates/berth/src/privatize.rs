//! `berth privatize`: copies public images into a berth under namespaces
//! named after their registries, through its API (berth's own
//! `PrivatizeImage` operation, SigV4-signed with the usual AWS credentials),
//! so the copies run server-side as queued jobs. Reads the seed's
//! `{"manifest": [...]}` file and/or `--image` references; shows each
//! image's progress; ends with a table; exits non-zero if any failed.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use serde_json::{Value, json};

use crate::aws_json::Signer;

#[derive(Args, Debug)]
pub struct PrivatizeArgs {
    /// A `{"manifest": ["ubuntu:20.04", "quay.io/…", …]}` file.
    file: Option<std::path::PathBuf>,
    /// An image to copy (repeatable), besides the file's.
    #[arg(long = "image")]
    images: Vec<String>,
    /// The berth to copy into.
    #[arg(long, env = "BERTH_ENDPOINT", default_value = "http://127.0.0.1:5000")]
    endpoint: String,
    /// The region berth signs in.
    #[arg(long, env = "AWS_REGION", default_value = "us-east-1")]
    region: String,
    /// A registry's namespace, `HOST=NAMESPACE` (repeatable); defaults:
    /// docker.io=dockerhub, quay.io=quay, ghcr.io=ghcr, *.gcr.io=gcr,
    /// *-docker.pkg.dev=gar, mcr.microsoft.com=mcr, public.ecr.aws=ecr-public.
    #[arg(long = "namespace", value_name = "HOST=NAMESPACE")]
    namespaces: Vec<String>,
    /// Give up waiting after this long.
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
    timeout: Duration,
}

fn human(bytes: i64) -> String {
    let b = bytes as f64;
    match bytes {
        n if n >= 1 << 30 => format!("{:.1} GiB", b / (1u64 << 30) as f64),
        n if n >= 1 << 20 => format!("{:.1} MiB", b / (1u64 << 20) as f64),
        n if n >= 1 << 10 => format!("{:.1} KiB", b / 1024.0),
        n => format!("{n} B"),
    }
}

pub async fn run(args: PrivatizeArgs) -> anyhow::Result<()> {
    let mut images = Vec::new();
    if let Some(file) = &args.file {
        let text =
            std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        let json: Value = serde_json::from_str(&text)
            .with_context(|| format!("{} is not JSON", file.display()))?;
        let list = json["manifest"]
            .as_array()
            .with_context(|| format!("{} has no \"manifest\" list", file.display()))?;
        images.extend(list.iter().filter_map(|v| v.as_str().map(str::to_string)));
    }
    images.extend(args.images.iter().cloned());
    if images.is_empty() {
        bail!("nothing to privatize: give a manifest file or --image");
    }
    let mut namespaces = HashMap::new();
    for entry in &args.namespaces {
        let (host, ns) = entry
            .split_once('=')
            .with_context(|| format!("--namespace {entry}: expected HOST=NAMESPACE"))?;
        namespaces.insert(host.to_string(), ns.to_string());
    }
    let signer = Signer::from_env(&args.endpoint, &args.region)?;
    let bars = MultiProgress::new();
    let style =
        ProgressStyle::with_template("{spinner} {prefix:.bold} {msg}").expect("a valid template");
    let mut started: Vec<(String, Result<String, String>, ProgressBar)> = Vec::new();
    for image in &images {
        let bar = bars.add(ProgressBar::new_spinner().with_style(style.clone()));
        bar.set_prefix(image.clone());
        bar.enable_steady_tick(Duration::from_millis(120));
        let id = match signer
            .berth(
                "PrivatizeImage",
                &json!({"sourceImage": image, "namespaces": namespaces}),
            )
            .await
        {
            Ok(answer) => {
                bar.set_message("queued");
                Ok(answer["privatization"]["id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string())
            }
            Err(e) => {
                bar.finish_with_message(format!("failed: {e}"));
                Err(e.to_string())
            }
        };
        started.push((image.clone(), id, bar));
    }
    let deadline = Instant::now() + args.timeout;
    let mut results: HashMap<String, Value> = HashMap::new();
    loop {
        let pending: Vec<&str> = started
            .iter()
            .filter_map(|(_, id, _)| id.as_deref().ok())
            .filter(|id| {
                results
                    .get(*id)
                    .is_none_or(|r| matches!(r["status"].as_str(), Some("QUEUED" | "RUNNING")))
            })
            .collect();
        if pending.is_empty() || Instant::now() > deadline {
            break;
        }
        let answer = signer
            .berth("DescribePrivatizations", &json!({"ids": pending}))
            .await?;
        for p in answer["privatizations"].as_array().into_iter().flatten() {
            let id = p["id"].as_str().unwrap_or_default().to_string();
            if let Some((_, _, bar)) = started
                .iter()
                .find(|(_, i, _)| i.as_deref() == Ok(id.as_str()))
            {
                let status = p["status"].as_str().unwrap_or_default();
                match status {
                    "QUEUED" | "RUNNING" => bar.set_message(status.to_lowercase()),
                    _ => bar.finish_with_message(status.to_lowercase()),
                }
            }
            results.insert(id, p.clone());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    bars.clear().ok();
    println!(
        "{:<60} {:<50} {:<20} {:>10}  result",
        "source", "destination", "digest", "size"
    );
    let mut failed = 0;
    for (image, id, _) in &started {
        let (destination, digest, size, result) = match id {
            Err(e) => (
                String::new(),
                String::new(),
                String::new(),
                format!("failed: {e}"),
            ),
            Ok(id) => {
                let r = results.get(id).cloned().unwrap_or_default();
                let destination = format!(
                    "{}{}",
                    r["destinationRepository"].as_str().unwrap_or_default(),
                    r["imageTag"]
                        .as_str()
                        .map(|t| format!(":{t}"))
                        .unwrap_or_default()
                );
                let digest: String = r["imageDigest"]
                    .as_str()
                    .unwrap_or_default()
                    .chars()
                    .take(19)
                    .collect();
                let size = r["size"].as_i64().map(human).unwrap_or_default();
                let status = r["status"].as_str().unwrap_or("TIMED OUT").to_lowercase();
                let result = match r["reason"].as_str() {
                    Some(reason) if status == "failed" => format!("failed: {reason}"),
                    _ => status,
                };
                (destination, digest, size, result)
            }
        };
        if result.starts_with("failed")
            || result == "timed out"
            || result == "queued"
            || result == "running"
        {
            failed += 1;
        }
        println!("{image:<60} {destination:<50} {digest:<20} {size:>10}  {result}");
    }
    if failed > 0 {
        bail!("{failed} of {} images were not privatized", started.len());
    }
    Ok(())
}
