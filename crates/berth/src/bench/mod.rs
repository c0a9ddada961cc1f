//! `berth bench`: measures a registry (berth or any other) and reports each
//! result as a ratio to a physical limit measured in the same run, and to the
//! previous run.
//!
//! Scenario `blob`: one large blob pushed three ways (monolithic `POST
//! ?digest=`; one streamed `PATCH` as docker does; `Content-Range` chunks as
//! oci-client does) and pulled back with its digest verified.

mod limits;
mod payload;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail, ensure};
use clap::Args;
use serde::{Deserialize, Serialize};

use limits::{Rate, rate};
use payload::Payload;

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

    /// Size of the blob pushed and pulled (e.g. `1GiB`, `256MiB`).
    #[arg(long, default_value = "1GiB", value_parser = parse_size)]
    blob_size: u64,

    /// Size of each `PATCH` of the chunked push.
    #[arg(long, default_value = "16MiB", value_parser = parse_size)]
    chunk_size: u64,

    /// Directory for the started berth's data and for the disk probe
    /// (default: a new temporary directory under the current one).
    #[arg(long)]
    work_dir: Option<PathBuf>,

    /// Where results are kept to compare the next run with.
    #[arg(long, default_value = "berth-bench-history.json")]
    history: PathBuf,

    /// Print the results as JSON only.
    #[arg(long)]
    json: bool,
}

fn parse_size(s: &str) -> Result<u64, String> {
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
    pub bytes: u64,
    pub seconds: f64,
    /// Bytes per second.
    pub rate: Rate,
    pub limit: String,
    pub limit_rate: Rate,
    /// `rate / limit_rate`.
    pub ratio: f64,
    /// `rate` over this CPU's single-core SHA-256 speed (pushes hash every byte).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub of_sha256: Option<f64>,
    /// `rate` over the same scenario's rate in the previous run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vs_previous: Option<f64>,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Limits {
    pub sha256: Rate,
    pub durable_write: Rate,
    pub loopback_copy: Rate,
    pub loopback_copy_hashed: Rate,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Report {
    pub target: String,
    pub unix_time: u64,
    pub limits: Limits,
    pub results: Vec<Measurement>,
    /// Peak resident memory of the berth started for the run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_peak_rss_mib: Option<f64>,
}

/// A registry under test: one given by URL, or a berth started for the run.
struct Target {
    base: String,
    label: String,
    child: Option<Child>,
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
                child: None,
                _work: work,
                work_dir,
            });
        }
        let mut child = Command::new(std::env::current_exe()?)
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(work_dir.join("data"))
            .env("BERTH_LOG", "warn")
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
            child: Some(child),
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

struct Client {
    http: reqwest::Client,
    base: String,
    credentials: Option<(String, String)>,
}

impl Client {
    fn request(&self, method: reqwest::Method, path_or_url: &str) -> reqwest::RequestBuilder {
        let url = if path_or_url.starts_with("http") {
            path_or_url.to_string()
        } else {
            format!("{}{path_or_url}", self.base)
        };
        let builder = self.http.request(method, url);
        match &self.credentials {
            Some((user, password)) => builder.basic_auth(user, Some(password)),
            None => builder,
        }
    }
}

fn body(frames: Vec<bytes::Bytes>) -> reqwest::Body {
    reqwest::Body::wrap_stream(futures_util::stream::iter(
        frames.into_iter().map(Ok::<_, std::io::Error>),
    ))
}

async fn expect(
    response: reqwest::Response,
    status: u16,
    what: &str,
) -> anyhow::Result<reqwest::Response> {
    if response.status().as_u16() != status {
        let got = response.status();
        let text = response.text().await.unwrap_or_default();
        bail!("{what}: expected {status}, got {got}: {text}");
    }
    Ok(response)
}

fn location(response: &reqwest::Response) -> anyhow::Result<String> {
    Ok(response
        .headers()
        .get("location")
        .context("upload answer has no Location")?
        .to_str()?
        .to_string())
}

fn with_digest(location: &str, digest: &str) -> String {
    let sep = if location.contains('?') { '&' } else { '?' };
    format!("{location}{sep}digest={digest}")
}

async fn push_monolithic(
    client: &Client,
    repo: &str,
    data: &Payload,
    digest: &str,
) -> anyhow::Result<()> {
    let r = client
        .request(
            reqwest::Method::POST,
            &format!("/v2/{repo}/blobs/uploads/?digest={digest}"),
        )
        .header("content-type", "application/octet-stream")
        .header("content-length", data.len())
        .body(body(data.frames().collect()))
        .send()
        .await?;
    expect(r, 201, "monolithic push").await?;
    Ok(())
}

async fn start_upload(client: &Client, repo: &str) -> anyhow::Result<String> {
    let r = client
        .request(reqwest::Method::POST, &format!("/v2/{repo}/blobs/uploads/"))
        .send()
        .await?;
    location(&expect(r, 202, "upload start").await?)
}

async fn push_streamed(
    client: &Client,
    repo: &str,
    data: &Payload,
    digest: &str,
) -> anyhow::Result<()> {
    let upload = start_upload(client, repo).await?;
    let r = client
        .request(reqwest::Method::PATCH, &upload)
        .header("content-type", "application/octet-stream")
        .body(body(data.frames().collect()))
        .send()
        .await?;
    let upload = location(&expect(r, 202, "streamed PATCH").await?)?;
    let r = client
        .request(reqwest::Method::PUT, &with_digest(&upload, digest))
        .send()
        .await?;
    expect(r, 201, "upload finish").await?;
    Ok(())
}

async fn push_chunked(
    client: &Client,
    repo: &str,
    data: &Payload,
    digest: &str,
    chunk: u64,
) -> anyhow::Result<()> {
    let mut upload = start_upload(client, repo).await?;
    let mut start = 0;
    while start < data.len() {
        let end = (start + chunk).min(data.len());
        let r = client
            .request(reqwest::Method::PATCH, &upload)
            .header("content-type", "application/octet-stream")
            .header("content-range", format!("{start}-{}", end - 1))
            .header("content-length", end - start)
            .body(body(data.range(start, end)))
            .send()
            .await?;
        upload = location(&expect(r, 202, "chunk PATCH").await?)?;
        start = end;
    }
    let r = client
        .request(reqwest::Method::PUT, &with_digest(&upload, digest))
        .send()
        .await?;
    expect(r, 201, "upload finish").await?;
    Ok(())
}

/// Pulls a blob and checks it byte-count and digest; returns the rate.
async fn pull_verified(
    client: &Client,
    repo: &str,
    digest: &str,
    len: u64,
) -> anyhow::Result<Rate> {
    let start = Instant::now();
    let r = client
        .request(reqwest::Method::GET, &format!("/v2/{repo}/blobs/{digest}"))
        .send()
        .await?;
    let r = expect(r, 200, "blob pull").await?;
    let mut stream = r.bytes_stream();
    let mut hasher = <sha2::Sha256 as sha2::Digest>::new();
    let mut received = 0u64;
    while let Some(frame) = futures_util::StreamExt::next(&mut stream).await {
        let frame = frame?;
        received += frame.len() as u64;
        sha2::Digest::update(&mut hasher, &frame);
    }
    let elapsed = start.elapsed();
    let got = format!("sha256:{}", hex::encode(sha2::Digest::finalize(hasher)));
    ensure!(received == len, "pulled {received} bytes, expected {len}");
    ensure!(
        got == digest,
        "pulled blob has digest {got}, expected {digest}"
    );
    Ok(rate(len, elapsed))
}

fn measurement(scenario: &str, bytes: u64, elapsed: Duration, limit: (&str, Rate)) -> Measurement {
    let r = rate(bytes, elapsed);
    Measurement {
        scenario: scenario.into(),
        bytes,
        seconds: elapsed.as_secs_f64(),
        rate: r,
        limit: limit.0.into(),
        limit_rate: limit.1,
        ratio: r / limit.1,
        of_sha256: None,
        vs_previous: None,
    }
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let target = Target::open(&args)?;
    let client = Client {
        http: reqwest::Client::new(),
        base: target.base.clone(),
        credentials: args.username.clone().zip(args.password.clone()),
    };
    let say = |line: &str| {
        if !args.json {
            eprintln!("{line}");
        }
    };
    let r = client.request(reqwest::Method::GET, "/v2/").send().await?;
    expect(r, 200, "GET /v2/ (are the credentials right?)").await?;

    say(&format!(
        "generating {} MiB of test data",
        args.blob_size >> 20
    ));
    let base = Payload::generate(args.blob_size, 0x9e37_79b9_7f4a_7c15);
    let variants: Vec<Payload> = (1..=3).map(|n| base.variant(n)).collect();
    let (_, sha256_rate) = limits::sha256(&base);
    let digests: Vec<String> = variants.iter().map(|v| limits::sha256(v).0).collect();

    say("measuring limits: durable disk write, loopback copy");
    let durable = limits::durable_write(&target.work_dir, args.blob_size.min(512 << 20))?;
    let (loopback, loopback_hashed) = limits::loopback_copy(&base).await?;
    let limits = Limits {
        sha256: sha256_rate,
        durable_write: durable,
        loopback_copy: loopback,
        loopback_copy_hashed: loopback_hashed,
    };
    let push_limit = [
        ("sha256", sha256_rate),
        ("durable write", durable),
        ("loopback copy", loopback),
    ]
    .into_iter()
    .min_by(|a, b| a.1.total_cmp(&b.1))
    .expect("three limits");

    let run_id = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis();
    let repo = format!("bench/blob-{run_id}");
    let len = args.blob_size;
    let mut results = Vec::new();
    let pushes: [(&str, usize); 3] = [
        ("push monolithic", 0),
        ("push streamed PATCH", 1),
        ("push chunked", 2),
    ];
    for (name, i) in pushes {
        say(&format!("{name}: {} MiB", len >> 20));
        let start = Instant::now();
        match i {
            0 => push_monolithic(&client, &repo, &variants[i], &digests[i]).await?,
            1 => push_streamed(&client, &repo, &variants[i], &digests[i]).await?,
            _ => push_chunked(&client, &repo, &variants[i], &digests[i], args.chunk_size).await?,
        }
        // Held to the lowest of the three limits, which binds; SHA-256 beside it.
        let mut m = measurement(name, len, start.elapsed(), push_limit);
        m.of_sha256 = Some(m.rate / sha256_rate);
        results.push(m);
    }
    say("pull (digest verified)");
    let pull_rate = pull_verified(&client, &repo, &digests[0], len).await?;
    let mut pull = measurement(
        "pull verified",
        len,
        Duration::from_secs_f64(len as f64 / pull_rate),
        ("loopback copy, hashed", loopback_hashed),
    );
    pull.rate = pull_rate;
    results.push(pull);

    let mut report = Report {
        target: target.label.clone(),
        unix_time: SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs(),
        limits,
        results,
        server_peak_rss_mib: target.peak_rss_mib(),
    };
    compare_with_history(&mut report, &args.history)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_table(&report);
    }
    Ok(())
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
            if let Some(p) = previous.results.iter().find(|p| p.scenario == m.scenario) {
                m.vs_previous = Some(m.rate / p.rate);
            }
        }
    }
    history.push(report.clone());
    std::fs::write(path, serde_json::to_vec_pretty(&history)?)
        .with_context(|| format!("writing {}", path.display()))
}

fn print_table(report: &Report) {
    let mbs = |r: Rate| r / 1e6;
    println!("target: {}", report.target);
    println!(
        "limits: sha256 {:.0} MB/s (one core) | durable write {:.0} MB/s | loopback copy {:.0} MB/s ({:.0} MB/s hashed)",
        mbs(report.limits.sha256),
        mbs(report.limits.durable_write),
        mbs(report.limits.loopback_copy),
        mbs(report.limits.loopback_copy_hashed),
    );
    println!(
        "{:<22} {:>7} {:>8} {:>9} {:>9} {:>8}  limit",
        "scenario", "MB/s", "seconds", "of limit", "of sha256", "vs prev"
    );
    let or_dash = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.2}"));
    for m in &report.results {
        println!(
            "{:<22} {:>7.0} {:>8.2} {:>9.2} {:>9} {:>8}  {} ({:.0} MB/s)",
            m.scenario,
            mbs(m.rate),
            m.seconds,
            m.ratio,
            or_dash(m.of_sha256),
            or_dash(m.vs_previous),
            m.limit,
            mbs(m.limit_rate)
        );
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
