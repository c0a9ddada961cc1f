//! `berth bench`: measures any OCI registry and reports each result as a
//! ratio to a physical limit measured in the same run on the same machine,
//! and to the previous run against the same target.
//!
//! Scenarios: `blob` (one large blob pushed three ways and pulled back),
//! `push` (concurrent clients pushing images of a realistic shape), `pull`
//! (concurrent clients pulling one new image at once), `metadata` (small
//! requests as fast as the target answers) and `scale` (listing and lookup
//! cost as tags and repositories grow). Every pulled byte is verified.
//! `housekeeping` measures berth's own lifecycle evaluation and garbage
//! collection at scale, in-process; `scan` measures berth's image scanner
//! against gunzip, in-process.

mod client;
mod ecr;
mod housekeeping;
mod images;
mod limits;
mod metadata;
mod payload;
mod scale;
mod scan;
mod stats;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};

use client::Client;
use images::Image;
use payload::Payload;
use scale::ScalePoint;
use stats::{Latency, Recorded};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    Blob,
    Push,
    Pull,
    /// `--burst-clients` clients at once: `HEAD` by tag, `GET` by digest, then the layers.
    Burst,
    Metadata,
    Scale,
    /// berth only, in-process: lifecycle evaluation and a GC pass at scale.
    Housekeeping,
    /// berth only, in-process: scanning a large layer, against gunzip.
    Scan,
}

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Registry to measure, e.g. `http://127.0.0.1:5000`. Without it, berth
    /// starts its own (embedded backends) in a temporary directory.
    #[arg(long)]
    target: Option<String>,

    /// Basic-auth user name for the target.
    #[arg(long, requires = "password")]
    username: Option<String>,

    /// Basic-auth password for the target.
    #[arg(long, requires = "username")]
    password: Option<String>,

    /// The target's region, for its ECR API: with an access key as
    /// `--username`/`--password`, the harness creates the repositories it
    /// pushes to (and removes them afterwards).
    #[arg(long, env = "AWS_REGION", default_value = "us-east-1")]
    region: String,

    /// Scenarios to run, comma-separated. Default: a short mix of blob, push,
    /// pull and metadata (about a minute on 2 cores).
    #[arg(long, value_delimiter = ',')]
    scenario: Vec<Scenario>,

    /// Concurrent clients in push, pull and metadata.
    #[arg(long, default_value_t = 4)]
    clients: usize,

    /// Images each push client pushes.
    #[arg(long, default_value_t = 2)]
    images: usize,

    /// Layers of each image as COUNTxSIZE groups.
    #[arg(long, default_value = "6x256KiB,3x2MiB,1x24MiB", value_parser = images::parse_shape)]
    layers: images::Shape,

    /// Times the pull clients pull the image together.
    #[arg(long, default_value_t = 3)]
    rounds: usize,

    /// How long the metadata scenario runs (e.g. `10s`).
    #[arg(long, default_value = "8s", value_parser = humantime::parse_duration)]
    duration: Duration,

    /// Clients in the metadata scenario.
    #[arg(long, default_value_t = 16)]
    metadata_clients: usize,

    /// Clients in the burst scenario.
    #[arg(long, default_value_t = 16)]
    burst_clients: usize,

    /// Tags in one repository that the scale scenario grows to.
    #[arg(long, default_value_t = 100_000)]
    scale_tags: u64,

    /// Repositories the scale scenario grows to.
    #[arg(long, default_value_t = 1_000)]
    scale_repos: u64,

    /// Images in the repository the housekeeping scenario evaluates.
    #[arg(long, default_value_t = 100_000)]
    housekeeping_images: u64,

    /// Blobs the housekeeping scenario's garbage collection goes over (1% garbage).
    #[arg(long, default_value_t = 1_000_000)]
    housekeeping_blobs: u64,

    /// Uncompressed size of the base layer the scan scenario scans.
    #[arg(long, default_value = "1GiB", value_parser = parse_size)]
    scan_layer_size: u64,

    /// Size of the blob of the blob scenario (e.g. `1GiB`, `256MiB`).
    #[arg(long, default_value = "1GiB", value_parser = parse_size)]
    blob_size: u64,

    /// Size of each `PATCH` of chunked pushes.
    #[arg(long, default_value = "16MiB", value_parser = parse_size)]
    chunk_size: u64,

    /// Report errors instead of failing the run on the first scenario that had any.
    #[arg(long)]
    allow_errors: bool,

    /// Directory for the started berth's data and for the disk probe
    /// (default: a new temporary directory under the current one).
    #[arg(long)]
    work_dir: Option<PathBuf>,

    /// Where results are kept to compare the next run with.
    #[arg(long, default_value = "berth-bench-history.json")]
    history: PathBuf,

    /// Print the results as JSON only (no progress bars).
    #[arg(long)]
    json: bool,
}

/// The default mix when no scenario is named: about a minute on 2 cores.
const DEFAULT_MIX: [Scenario; 4] = [
    Scenario::Blob,
    Scenario::Push,
    Scenario::Pull,
    Scenario::Metadata,
];
/// The blob of the default mix, smaller than `--blob-size`'s default.
const DEFAULT_MIX_BLOB: u64 = 512 << 20;

async fn run_scan(args: &BenchArgs) -> anyhow::Result<()> {
    if args.target.is_some() || args.scenario.len() > 1 {
        bail!("the scan scenario runs alone, on berth's own embedded backends (no --target)");
    }
    let work = tempfile::Builder::new()
        .prefix(".berth-bench-")
        .tempdir_in(args.work_dir.as_deref().unwrap_or(Path::new(".")))
        .context("creating a work directory")?;
    let r = scan::run(work.path(), args.scan_layer_size, args.json).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
        return Ok(());
    }
    println!(
        "scan of a {:.0} MiB layer ({:.0} MiB gzip'd): {:.2} s, {:.0} MB/s compressed = {:.2} of gunzip ({:.0} MB/s, one core); {} packages; peak RSS +{:.0} MiB",
        r.layer_uncompressed_bytes as f64 / 1048576.0,
        r.layer_compressed_bytes as f64 / 1048576.0,
        r.scan_seconds,
        r.scan_mb_per_s,
        r.scan_ratio_to_gunzip,
        r.gunzip_mb_per_s,
        r.packages_found,
        r.scan_peak_rss_growth_mib
    );
    println!(
        "second image sharing the base layer: {:.3} s = {:.3} of the first",
        r.second_image_seconds, r.second_image_ratio
    );
    Ok(())
}

async fn run_housekeeping(args: &BenchArgs) -> anyhow::Result<()> {
    if args.target.is_some() || args.scenario.len() > 1 {
        bail!(
            "the housekeeping scenario runs alone, on berth's own embedded backends (no --target)"
        );
    }
    let work = tempfile::Builder::new()
        .prefix(".berth-bench-")
        .tempdir_in(args.work_dir.as_deref().unwrap_or(Path::new(".")))
        .context("creating a work directory")?;
    let report = housekeeping::run(
        work.path(),
        args.housekeeping_images,
        args.housekeeping_blobs,
        args.json,
    )
    .await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!(
        "scenario                          count    seconds   per second   result           peak RSS MiB"
    );
    println!(
        "lifecycle evaluation        {:>10} {:>10.2} {:>12.0}   {:>6} expire    {:.0} (from {:.0})",
        report.images,
        report.lifecycle_seconds,
        report.images as f64 / report.lifecycle_seconds,
        report.lifecycle_expired,
        report.peak_rss_mib_after_lifecycle,
        report.peak_rss_mib_before
    );
    println!(
        "garbage collection pass     {:>10} {:>10.2} {:>12.0}   {:>6} reclaimed {:.0}",
        report.blobs,
        report.gc_seconds,
        report.blobs as f64 / report.gc_seconds,
        report.gc_reclaimed,
        report.peak_rss_mib_after_gc
    );
    Ok(())
}

pub(crate) fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let number: u64 = number.parse().map_err(|_| format!("invalid size '{s}'"))?;
    let scale: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" | "K" => 1 << 10,
        "MiB" | "M" => 1 << 20,
        "GiB" | "G" => 1 << 30,
        other => return Err(format!("unknown size unit '{other}' (use KiB, MiB, GiB)")),
    };
    number
        .checked_mul(scale)
        .filter(|&n| n > 0)
        .ok_or_else(|| format!("invalid size '{s}'"))
}

/// One measured figure and the limit it is held to.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Measurement {
    pub scenario: String,
    pub requests: u64,
    pub bytes: u64,
    pub seconds: f64,
    pub mb_per_s: f64,
    pub requests_per_s: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency: Option<Latency>,
    pub errors: BTreeMap<String, u64>,
    /// The limit the headline figure is held to, and its value (MB/s or requests/s).
    pub limit: String,
    pub limit_value: f64,
    /// Headline figure over the limit.
    pub ratio: f64,
    /// MB/s over this CPU's single-core SHA-256 speed (every pushed byte is hashed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub of_sha256: Option<f64>,
    /// Headline figure over the same scenario's in the previous run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vs_previous: Option<f64>,
}

impl Measurement {
    fn new(
        scenario: &str,
        recorded: &Recorded,
        elapsed: Duration,
        limit: (&str, f64),
    ) -> Measurement {
        let seconds = elapsed.as_secs_f64().max(1e-9);
        let mut m = Measurement {
            scenario: scenario.into(),
            requests: recorded.requests,
            bytes: recorded.bytes,
            seconds,
            mb_per_s: recorded.bytes as f64 / seconds / 1e6,
            requests_per_s: recorded.requests as f64 / seconds,
            latency: recorded.latency.clone(),
            errors: recorded.errors.clone(),
            limit: limit.0.into(),
            limit_value: limit.1,
            ratio: 0.0,
            of_sha256: None,
            vs_previous: None,
        };
        m.ratio = m.headline() / limit.1;
        m
    }

    /// MB/s for scenarios that move bytes, requests/s for the others.
    fn headline(&self) -> f64 {
        if self.scenario.starts_with("metadata") {
            self.requests_per_s
        } else {
            self.mb_per_s
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, Default)]
pub struct Limits {
    /// MB/s of SHA-256 on one core.
    pub sha256_mb_s: f64,
    /// MB/s of a write to new space in the work directory, fsync'd.
    pub durable_write_mb_s: f64,
    /// MB/s of a plain loopback HTTP download from a minimal server.
    pub loopback_copy_mb_s: f64,
    /// The same, hashed as a verifying pull does.
    pub loopback_copy_hashed_mb_s: f64,
    /// Requests/s a minimal HTTP server answers to the metadata clients.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub loopback_requests_per_s: Option<f64>,
    /// Which minimal server answered: `nginx` when installed, else `harness`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimal_server: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Report {
    pub target: String,
    pub unix_time: u64,
    pub limits: Limits,
    pub results: Vec<Measurement>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scale: Vec<ScalePoint>,
    /// Peak resident memory of the berth started for the run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_peak_rss_mib: Option<f64>,
}

/// A registry under test: one given by URL, or a berth started for the run.
struct Target {
    base: String,
    label: String,
    /// Basic credentials: the user's, or the root key of the berth started here.
    credentials: Option<(String, String)>,
    child: Option<Child>,
    /// The started berth's install, removed after the run (after `child` stops).
    _data: Option<tempfile::TempDir>,
    _work: Option<tempfile::TempDir>,
    work_dir: PathBuf,
}

impl Target {
    fn open(args: &BenchArgs) -> anyhow::Result<Target> {
        let (work_dir, work) = match &args.work_dir {
            Some(dir) => (dir.clone(), None),
            None => {
                let tmp = tempfile::Builder::new()
                    .prefix(".berth-bench-")
                    .tempdir_in(".")
                    .context("creating a work directory")?;
                (tmp.path().to_path_buf(), Some(tmp))
            }
        };
        if let Some(url) = &args.target {
            return Ok(Target {
                base: url.trim_end_matches('/').to_string(),
                label: url.clone(),
                credentials: args.username.clone().zip(args.password.clone()),
                child: None,
                _data: None,
                _work: work,
                work_dir,
            });
        }
        let (key_id, secret) = berth_server::Identity::generate_access_key("AKIA");
        // A fresh install each run (its root key is set on the first start only),
        // removed with the run even under a given --work-dir.
        let data = tempfile::Builder::new()
            .prefix(".berth-bench-data-")
            .tempdir_in(&work_dir)
            .context("creating the started berth's data directory")?;
        let mut child = Command::new(std::env::current_exe()?)
            .args([
                "serve",
                "--create-on-push",
                "--listen",
                "127.0.0.1:0",
                "--data-dir",
            ])
            .arg(data.path())
            .env("BERTH_LOG", "warn")
            .env("BERTH_ROOT_ACCESS_KEY_ID", &key_id)
            .env("BERTH_ROOT_SECRET_ACCESS_KEY", &secret)
            .stdout(Stdio::piped())
            .spawn()
            .context("starting berth")?;
        let mut first = String::new();
        BufReader::new(child.stdout.as_mut().expect("piped")).read_line(&mut first)?;
        let address = first
            .split("http://")
            .nth(1)
            .and_then(|rest| rest.split('/').next())
            .with_context(|| format!("berth did not say where it listens: {first:?}"))?;
        Ok(Target {
            base: format!("http://{address}"),
            label: "berth (embedded: SQLite + filesystem)".into(),
            credentials: Some((key_id, secret)),
            child: Some(child),
            _data: Some(data),
            _work: work,
            work_dir,
        })
    }

    fn peak_rss_mib(&self) -> Option<f64> {
        let pid = self.child.as_ref()?.id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
        let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib / 1024.0)
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Runs one scenario and times it.
struct Session<'a> {
    args: &'a BenchArgs,
    client: Client,
    run_id: String,
    limits: Limits,
    results: Vec<Measurement>,
    scale: Vec<ScalePoint>,
}

impl Session<'_> {
    fn say(&self, line: &str) {
        if !self.args.json {
            eprintln!("{line}");
        }
    }

    fn progress(&self, total: u64, what: &str) -> ProgressBar {
        if self.args.json {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::new(total);
        bar.set_style(
            ProgressStyle::with_template("{msg:>20} [{bar:40}] {pos}/{len} requests {elapsed}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        bar.set_message(what.to_string());
        bar
    }

    /// The push limit: the lowest of SHA-256, durable write and loopback copy.
    fn push_limit(&self) -> (&'static str, f64) {
        [
            ("sha256", self.limits.sha256_mb_s),
            ("durable write", self.limits.durable_write_mb_s),
            ("loopback copy", self.limits.loopback_copy_mb_s),
        ]
        .into_iter()
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .expect("three limits")
    }

    fn record(
        &mut self,
        scenario: &str,
        recorded: Recorded,
        elapsed: Duration,
        limit: (&str, f64),
    ) -> anyhow::Result<()> {
        let mut m = Measurement::new(scenario, &recorded, elapsed, limit);
        if scenario.starts_with("push") {
            m.of_sha256 = Some(m.mb_per_s / self.limits.sha256_mb_s);
        }
        let failed = !m.errors.is_empty();
        self.results.push(m);
        if failed && !self.args.allow_errors {
            bail!(
                "{scenario} had errors ({:?}); first: {}. Use --allow-errors to report them instead.",
                recorded.errors,
                recorded.first_failure.unwrap_or_default()
            );
        }
        Ok(())
    }

    /// Measures the limits with `sample`; the disk probe writes `write_len`
    /// bytes, as much as the largest push, because this disk kind is bimodal:
    /// a short write lands in a fast tier a long one outgrows.
    async fn measure_limits(
        &mut self,
        work_dir: &Path,
        sample: &Payload,
        write_len: u64,
    ) -> anyhow::Result<()> {
        self.say("measuring limits: SHA-256, durable disk write, loopback copy");
        let (_, sha256) = limits::sha256(sample);
        let durable = limits::durable_write(work_dir, write_len)?;
        let (plain, hashed) = limits::loopback_copy(sample).await?;
        self.limits = Limits {
            sha256_mb_s: sha256 / 1e6,
            durable_write_mb_s: durable / 1e6,
            loopback_copy_mb_s: plain / 1e6,
            loopback_copy_hashed_mb_s: hashed / 1e6,
            loopback_requests_per_s: None,
            minimal_server: None,
        };
        Ok(())
    }

    async fn blob(&mut self, size: u64) -> anyhow::Result<()> {
        self.say(&format!("blob: generating {} MiB", size >> 20));
        let base = Payload::generate(size, 0x9e37_79b9_7f4a_7c15);
        let variants: Vec<(Payload, String)> = (1..=3)
            .map(|n| {
                let v = base.variant(n);
                let digest = limits::sha256(&v).0;
                (v, digest)
            })
            .collect();
        let repo = format!("bench/{}/blob", self.run_id);
        let chunk = self.args.chunk_size;
        let ways = ["push monolithic", "push streamed PATCH", "push chunked"];
        for (i, (name, (data, digest))) in ways.iter().zip(&variants).enumerate() {
            self.say(&format!("{name}: {} MiB", size >> 20));
            let recorder = stats::Recorder::default();
            let start = Instant::now();
            let outcome = match i {
                0 => self.client.push_monolithic(&repo, data, digest).await,
                1 => self.client.push_streamed(&repo, data, digest).await,
                _ => self.client.push_chunked(&repo, data, digest, chunk).await,
            };
            match outcome {
                Ok(()) => recorder.ok(start, data.len()),
                Err(f) => recorder.failed(f),
            }
            let limit = self.push_limit();
            self.record(name, recorder.finish(), start.elapsed(), limit)?;
        }
        self.say("pull (digest verified)");
        let recorder = stats::Recorder::default();
        let start = Instant::now();
        let (data, digest) = &variants[0];
        match self.client.pull_blob(&repo, digest, data.len()).await {
            Ok(n) => recorder.ok(start, n),
            Err(f) => recorder.failed(f),
        }
        let limit = (
            "loopback copy, hashed",
            self.limits.loopback_copy_hashed_mb_s,
        );
        self.record("pull verified", recorder.finish(), start.elapsed(), limit)
    }

    fn images(&self, clients: usize, per_client: usize, seed: u64) -> Vec<Arc<Vec<Image>>> {
        (0..clients)
            .map(|c| {
                Arc::new(
                    (0..per_client)
                        .map(|i| {
                            Image::generate(&self.args.layers.0, seed + (c * per_client + i) as u64)
                        })
                        .collect(),
                )
            })
            .collect()
    }

    async fn push(&mut self) -> anyhow::Result<()> {
        let (clients, per_client) = (self.args.clients, self.args.images);
        self.say(&format!("push: generating {} images", clients * per_client));
        let images = self.images(clients, per_client, 1_000);
        let requests: u64 = images
            .iter()
            .flat_map(|imgs| imgs.iter())
            .map(|i| i.layers.len() as u64 + 2)
            .sum();
        let progress = self.progress(requests, "push");
        let repo = format!("bench/{}/push", self.run_id);
        let (recorded, elapsed) = images::push(
            &self.client,
            &repo,
            clients,
            &images,
            self.args.chunk_size,
            progress,
        )
        .await;
        let limit = self.push_limit();
        self.record(&format!("push {clients} clients"), recorded, elapsed, limit)
    }

    /// `clients` clients pull one new image together, `--rounds` times.
    async fn pull(&mut self, clients: usize, name: &str) -> anyhow::Result<()> {
        let image = Arc::new(Image::generate(&self.args.layers.0, 7));
        let repo = format!("bench/{}/pull", self.run_id);
        let setup = stats::Recorder::default();
        images::push_image(
            &self.client,
            &repo,
            "herd",
            &image,
            self.args.chunk_size,
            &setup,
            &ProgressBar::hidden(),
        )
        .await;
        if let Some(f) = setup.finish().first_failure {
            bail!("preparing the pull scenario: {f}");
        }
        let progress = self.progress(
            (clients * self.args.rounds * (image.layers.len() + 1)) as u64,
            name,
        );
        let (recorded, elapsed) = images::pull(
            &self.client,
            &repo,
            clients,
            self.args.rounds,
            image,
            progress,
        )
        .await;
        let limit = (
            "loopback copy, hashed",
            self.limits.loopback_copy_hashed_mb_s,
        );
        self.record(
            &format!("{name} {clients} clients (herd)"),
            recorded,
            elapsed,
            limit,
        )
    }

    async fn metadata(&mut self) -> anyhow::Result<()> {
        let clients = self.args.metadata_clients;
        self.say("metadata: measuring a minimal server's request rate");
        let (ceiling, server) =
            metadata::loopback_request_rate(clients, Duration::from_secs(2)).await?;
        self.say(&format!("metadata: the minimal server is {server}"));
        self.limits.loopback_requests_per_s = Some(ceiling);
        self.limits.minimal_server = Some(server.to_string());
        let image = Arc::new(Image::generate(&[(1, 1024)], 11));
        let repo = format!("bench/{}/metadata", self.run_id);
        metadata::prepare(&self.client, &repo, &image).await?;
        let progress = self.progress(0, "metadata");
        let (recorded, elapsed) = metadata::run(
            &self.client,
            &repo,
            image,
            clients,
            self.args.duration,
            progress,
        )
        .await;
        self.record(
            &format!("metadata {clients} clients"),
            recorded,
            elapsed,
            ("minimal server", ceiling),
        )
    }

    async fn scale(&mut self) -> anyhow::Result<()> {
        let image = Image::generate(&[(1, 1024)], 13);
        let repo = format!("bench/{}/scale", self.run_id);
        let say = |line: &str| self.say(line);
        let mut points =
            scale::tags(&self.client, &repo, &image, self.args.scale_tags, &say).await?;
        let prefix = format!("bench/{}/repos", self.run_id);
        points
            .extend(scale::repositories(&self.client, &prefix, self.args.scale_repos, &say).await?);
        self.scale = points;
        Ok(())
    }
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    if args.scenario.contains(&Scenario::Housekeeping) {
        return run_housekeeping(&args).await;
    }
    if args.scenario.contains(&Scenario::Scan) {
        return run_scan(&args).await;
    }
    let target = Target::open(&args)?;
    let mut client = Client::new(&target.base, target.credentials.clone());
    // A given target may not create repositories on push: with an access
    // key (not a registry token), create them through its ECR API.
    let repositories = match (&args.target, &target.credentials) {
        (Some(_), Some((user, secret))) if user != "AWS" => {
            let r = std::sync::Arc::new(ecr::Repositories::new(
                &target.base,
                user,
                secret,
                &args.region,
            ));
            client = client.creating_repositories(r.clone());
            Some(r)
        }
        _ => None,
    };
    client.ping().await.map_err(|f| {
        anyhow::anyhow!("the target does not answer GET /v2/ (are the credentials right?): {f}")
    })?;
    let scenarios = if args.scenario.is_empty() {
        DEFAULT_MIX.to_vec()
    } else {
        args.scenario.clone()
    };
    let blob_size =
        if args.scenario.is_empty() && !std::env::args().any(|a| a.starts_with("--blob-size")) {
            DEFAULT_MIX_BLOB
        } else {
            args.blob_size
        };
    let run_id = SystemTime::now()
        .duration_since(UNIX_EPOCH)?
        .as_millis()
        .to_string();
    let mut session = Session {
        args: &args,
        client,
        run_id,
        limits: Limits::default(),
        results: Vec::new(),
        scale: Vec::new(),
    };
    let sample = Payload::generate(blob_size.min(256 << 20), 3);
    session
        .measure_limits(&target.work_dir, &sample, blob_size.min(1 << 30))
        .await?;
    drop(sample);

    let mut failure = None;
    for scenario in scenarios {
        let outcome = match scenario {
            Scenario::Blob => session.blob(blob_size).await,
            Scenario::Push => session.push().await,
            Scenario::Pull => session.pull(session.args.clients, "pull").await,
            Scenario::Burst => session.pull(session.args.burst_clients, "burst").await,
            Scenario::Metadata => session.metadata().await,
            Scenario::Scale => session.scale().await,
            Scenario::Housekeeping | Scenario::Scan => unreachable!("run alone, in-process"),
        };
        if let Err(e) = outcome {
            failure = Some(e);
            break;
        }
    }

    if let Some(repositories) = &repositories {
        match repositories.remove_made().await {
            Ok(0) => {}
            Ok(n) => session.say(&format!("removed the {n} repositories this run created")),
            Err(e) => eprintln!("could not remove the repositories this run created: {e}"),
        }
    }
    let mut report = Report {
        target: target.label.clone(),
        unix_time: SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs(),
        limits: session.limits,
        results: session.results,
        scale: session.scale,
        server_peak_rss_mib: target.peak_rss_mib(),
    };
    compare_with_history(&mut report, &args.history)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report);
    }
    match failure {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Fills `vs_previous` from the last run against the same target, then
/// appends this run to the history file.
fn compare_with_history(report: &mut Report, path: &Path) -> anyhow::Result<()> {
    let mut history: Vec<Report> = match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_default(),
        Err(_) => Vec::new(),
    };
    if let Some(previous) = history.iter().rev().find(|r| r.target == report.target) {
        for m in &mut report.results {
            if let Some(p) = previous.results.iter().find(|p| p.scenario == m.scenario)
                && p.headline() > 0.0
            {
                m.vs_previous = Some(m.headline() / p.headline());
            }
        }
    }
    history.push(report.clone());
    std::fs::write(path, serde_json::to_vec_pretty(&history)?)
        .with_context(|| format!("writing {}", path.display()))
}

fn print_report(report: &Report) {
    let l = &report.limits;
    println!("target: {}", report.target);
    print!(
        "limits: sha256 {:.0} MB/s (one core) | durable write {:.0} MB/s | loopback copy {:.0} MB/s ({:.0} MB/s hashed)",
        l.sha256_mb_s, l.durable_write_mb_s, l.loopback_copy_mb_s, l.loopback_copy_hashed_mb_s
    );
    match l.loopback_requests_per_s {
        Some(r) => println!(
            " | minimal server ({}) {r:.0} req/s",
            l.minimal_server.as_deref().unwrap_or("harness")
        ),
        None => println!(),
    }
    println!(
        "{:<28} {:>7} {:>8} {:>8} {:>8} {:>8} {:>8} {:>6} {:>6} {:>6} {:>7}  limit",
        "scenario",
        "MB/s",
        "req/s",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "max ms",
        "ratio",
        "sha256",
        "prev",
        "errors"
    );
    let or_dash = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.2}"));
    for m in &report.results {
        let lat = m.latency.clone().unwrap_or(Latency {
            p50_ms: 0.0,
            p95_ms: 0.0,
            p99_ms: 0.0,
            max_ms: 0.0,
        });
        let errors: u64 = m.errors.values().sum();
        println!(
            "{:<28} {:>7.0} {:>8.0} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>6.2} {:>6} {:>6} {:>7}  {} ({:.0})",
            m.scenario,
            m.mb_per_s,
            m.requests_per_s,
            lat.p50_ms,
            lat.p95_ms,
            lat.p99_ms,
            lat.max_ms,
            m.ratio,
            or_dash(m.of_sha256),
            or_dash(m.vs_previous),
            errors,
            m.limit,
            m.limit_value
        );
        for (kind, n) in &m.errors {
            println!("    error: {n} × {kind}");
        }
    }
    if !report.scale.is_empty() {
        println!(
            "{:<14} {:>9} {:>16} {:>17} {:>14}",
            "scale", "count", "first page p50", "middle page p50", "lookup p50"
        );
        for p in &report.scale {
            println!(
                "{:<14} {:>9} {:>13.2} ms {:>14.2} ms {:>14}",
                p.what,
                p.count,
                p.first_page_p50_ms,
                p.middle_page_p50_ms,
                p.lookup_p50_ms.map_or("-".into(), |v| format!("{v:.2} ms"))
            );
        }
    }
    if let Some(rss) = report.server_peak_rss_mib {
        println!("server peak RSS: {rss:.0} MiB");
    }
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("16MiB"), Ok(16 << 20));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(parse_size("0").is_err());
        assert!(parse_size("1TB").is_err());
        assert!(parse_size("x").is_err());
    }
}
