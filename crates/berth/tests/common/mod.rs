//! Starts the real `berth` binary for end-to-end tests.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use sha2::{Digest as _, Sha256};

/// The account root's access key every test server starts with.
pub const ROOT_KEY_ID: &str = "AKIAIOSFODNN7EXAMPLE";
pub const ROOT_SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

pub struct Berth {
    child: Child,
    pub base: String,
    pub data_dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
}

impl Berth {
    /// Starts berth on a free port with a fresh data directory, creating
    /// repositories on push.
    pub fn start(extra: &[&str]) -> Berth {
        let mut args = vec!["--create-on-push"];
        args.extend_from_slice(extra);
        Berth::start_fresh(&args)
    }

    /// Starts berth with a fresh data directory and exactly `args`.
    pub fn start_fresh(args: &[&str]) -> Berth {
        let tmp = tempfile::tempdir().unwrap();
        let data_dir = tmp.path().join("data");
        let mut berth = Berth::start_in(&data_dir, args);
        berth._tmp = Some(tmp);
        berth
    }

    /// Starts berth over an existing data directory. With
    /// `BERTH_TEST_DATABASE_URL` set (a PostgreSQL URL), its metadata goes to
    /// a schema of that database named after the data directory.
    pub fn start_in(data_dir: &Path, args: &[&str]) -> Berth {
        Berth::start_logging(data_dir, args, None)
    }

    /// As `start_in`, with every request logged (debug) into `log`.
    pub fn start_logging(data_dir: &Path, args: &[&str], log: Option<&Path>) -> Berth {
        let mut command = Command::new(env!("CARGO_BIN_EXE_berth"));
        command.arg("serve");
        if let Ok(url) = std::env::var("BERTH_TEST_DATABASE_URL") {
            command.arg("--database").arg(database_for(&url, data_dir));
        }
        if let Ok(url) = std::env::var("BERTH_TEST_STORAGE_URL") {
            // A prefix of its own in the test bucket (S3).
            command.arg("--storage").arg(format!(
                "{}/{}",
                url.trim_end_matches('/'),
                tag_of(data_dir)
            ));
        }
        let mut child = command
            .args(["--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .args(args)
            .env(
                "BERTH_LOG",
                if log.is_some() {
                    "warn,berth_server=debug"
                } else {
                    "warn"
                },
            )
            .stderr(match log {
                Some(path) => Stdio::from(std::fs::File::create(path).unwrap()),
                None => Stdio::inherit(),
            })
            // The queue's test job kinds (`test.sleep`, `test.fail`).
            .env("BERTH_TEST_JOBS", "1")
            .env("BERTH_CHECK_MODEL_ERRORS", "1")
            .env("BERTH_ROOT_ACCESS_KEY_ID", ROOT_KEY_ID)
            .env("BERTH_ROOT_SECRET_ACCESS_KEY", ROOT_SECRET)
            .stdout(Stdio::piped())
            .spawn()
            .expect("berth starts");
        let mut first = String::new();
        BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut first)
            .unwrap();
        let address = first
            .split("http://")
            .nth(1)
            .and_then(|rest| rest.split('/').next())
            .unwrap_or_else(|| panic!("unexpected first line: {first}"))
            .to_string();
        Berth {
            child,
            base: format!("http://{address}"),
            data_dir: data_dir.to_path_buf(),
            _tmp: None,
        }
    }

    /// Runs `berth <command> …` on this install (same database and storage);
    /// returns its standard output.
    pub fn cli(&self, command: &[&str]) -> String {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_berth"));
        cmd.args(command).arg("--data-dir").arg(&self.data_dir);
        if let Ok(url) = std::env::var("BERTH_TEST_DATABASE_URL") {
            cmd.arg("--database")
                .arg(database_for(&url, &self.data_dir));
        }
        let out = cmd
            .env("BERTH_LOG", "warn")
            .env("BERTH_ROOT_ACCESS_KEY_ID", ROOT_KEY_ID)
            .env("BERTH_ROOT_SECRET_ACCESS_KEY", ROOT_SECRET)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The server's resident memory, in KiB.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends SIGTERM and waits for the process to exit.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        self.child.wait().unwrap()
    }

    /// Kills the process at once, as a crash would.
    pub fn kill(mut self) -> Option<tempfile::TempDir> {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        self._tmp.take()
    }
}

impl Drop for Berth {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A name unique to `data_dir`, stable across restarts of one test.
fn tag_of(data_dir: &Path) -> String {
    format!("t{}", &sha256(data_dir.to_string_lossy().as_bytes())[7..23])
}

/// `url` with a schema of `data_dir`'s own.
fn database_for(url: &str, data_dir: &Path) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}schema={}", tag_of(data_dir))
}

/// Whether blobs are on the local filesystem (not in a test bucket).
pub fn local_blobs() -> bool {
    std::env::var_os("BERTH_TEST_STORAGE_URL").is_none()
}

pub fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// The root's `Authorization` header value (HTTP Basic with the access key).
pub fn client_authorization() -> String {
    use base64::Engine as _;
    let basic =
        base64::engine::general_purpose::STANDARD.encode(format!("{ROOT_KEY_ID}:{ROOT_SECRET}"));
    format!("Basic {basic}")
}

/// A client that authenticates as the account root.
pub fn client() -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        client_authorization().parse().unwrap(),
    );
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .unwrap()
}

/// A client with no credentials.
pub fn anonymous() -> reqwest::Client {
    reqwest::Client::new()
}

/// Pushes a blob in one request and returns its digest.
pub async fn push_blob(berth: &Berth, repo: &str, bytes: &[u8]) -> String {
    let digest = sha256(bytes);
    let r = client()
        .post(berth.url(&format!("/v2/{repo}/blobs/uploads/?digest={digest}")))
        .body(bytes.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    digest
}

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// An image manifest over a config and layers already pushed.
pub fn image_manifest(config: (&str, usize), layers: &[(&str, usize)], extra: &str) -> String {
    let layers: Vec<String> = layers
        .iter()
        .map(|(d, s)| {
            format!(
                r#"{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{d}","size":{s}}}"#
            )
        })
        .collect();
    format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":{}}},"layers":[{}]{extra}}}"#,
        config.0,
        config.1,
        layers.join(",")
    )
}

/// Pushes a small image (config + one layer) and returns (manifest, digest).
pub async fn push_image(berth: &Berth, repo: &str, tag: &str, seed: &str) -> (String, String) {
    let config = format!(r#"{{"architecture":"amd64","os":"linux","seed":"{seed}"}}"#);
    let layer = format!("layer of {seed}");
    let c = push_blob(berth, repo, config.as_bytes()).await;
    let l = push_blob(berth, repo, layer.as_bytes()).await;
    let manifest = image_manifest((&c, config.len()), &[(&l, layer.len())], "");
    let r = put_manifest(berth, repo, tag, &manifest, OCI_MANIFEST).await;
    assert_eq!(r.status(), 201);
    let digest = sha256(manifest.as_bytes());
    (manifest, digest)
}

pub async fn put_manifest(
    berth: &Berth,
    repo: &str,
    reference: &str,
    body: &str,
    media_type: &str,
) -> reqwest::Response {
    client()
        .put(berth.url(&format!("/v2/{repo}/manifests/{reference}")))
        .header("content-type", media_type)
        .body(body.to_string())
        .send()
        .await
        .unwrap()
}

/// `GET /metrics`, as text.
pub async fn metrics_text(berth: &Berth) -> String {
    anonymous()
        .get(berth.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// The `code` of the first error in an OCI error body.
pub async fn error_code(response: reqwest::Response) -> String {
    let body: serde_json::Value = response.json().await.expect("JSON error body");
    body["errors"][0]["code"].as_str().unwrap().to_string()
}

/// Calls an IAM or STS action (Query protocol) as the account root,
/// SigV4-signed for us-east-1.
pub async fn query_call(berth: &Berth, service: &str, body: &str) -> reqwest::Response {
    signed_post(
        berth,
        service,
        None,
        "application/x-www-form-urlencoded; charset=utf-8",
        body,
    )
    .await
}

/// Calls an ECR operation as the account root, SigV4-signed for us-east-1
/// (the default region).
pub async fn ecr_call(berth: &Berth, operation: &str, body: &str) -> reqwest::Response {
    let target = format!("AmazonEC2ContainerRegistry_V20150921.{operation}");
    signed_post(
        berth,
        "ecr",
        Some(&target),
        "application/x-amz-json-1.1",
        body,
    )
    .await
}

async fn signed_post(
    berth: &Berth,
    service: &str,
    target: Option<&str>,
    content_type: &str,
    body: &str,
) -> reqwest::Response {
    use berth_core::sigv4;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let amz_date = sigv4::format_amz_date(now);
    let host = berth.base.trim_start_matches("http://").to_string();
    let payload = hex::encode(Sha256::digest(body.as_bytes()));
    let mut headers = vec![
        ("host".to_string(), host),
        ("x-amz-date".to_string(), amz_date.clone()),
    ];
    if let Some(target) = target {
        headers.push(("x-amz-target".to_string(), target.to_string()));
    }
    let request = sigv4::Request {
        method: "POST",
        path: "/",
        query: "",
        headers: &headers,
        payload_sha256: &payload,
    };
    let authorization = sigv4::authorization_header(
        &request,
        &amz_date,
        ROOT_KEY_ID,
        ROOT_SECRET,
        "us-east-1",
        service,
    );
    let mut builder = reqwest::Client::new()
        .post(berth.url("/"))
        .header("x-amz-date", amz_date)
        .header("content-type", content_type);
    if let Some(target) = target {
        builder = builder.header("x-amz-target", target);
    }
    builder
        .header("authorization", authorization)
        .body(body.to_string())
        .send()
        .await
        .unwrap()
}
