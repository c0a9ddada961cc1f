//! The ECR scenario of `tests/clients/test_sdks.py`, with the AWS SDK for Rust
//! (`aws-sdk-ecr`) unchanged but for the endpoint.
//!
//! Environment: `BERTH_ENDPOINT` (or `AWS_ENDPOINT_URL`), `AWS_REGION` (or
//! `AWS_DEFAULT_REGION`), `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`.
//! Prints one JSON summary on stdout; exits 1 if any check failed, 2 if the
//! scenario could not go on.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{SystemTime, UNIX_EPOCH};

use aws_config::BehaviorVersion;
use aws_sdk_ecr::Client;
use aws_sdk_ecr::config::{Credentials, Region};
use aws_sdk_ecr::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_ecr::operation::batch_delete_image::BatchDeleteImageError;
use aws_sdk_ecr::operation::create_repository::CreateRepositoryError;
use aws_sdk_ecr::operation::delete_repository::DeleteRepositoryError;
use aws_sdk_ecr::operation::describe_images::DescribeImagesError;
use aws_sdk_ecr::operation::describe_repositories::DescribeRepositoriesError;
use aws_sdk_ecr::operation::put_image::PutImageError;
use aws_sdk_ecr::primitives::{Blob, DateTime};
use aws_sdk_ecr::types::{
    ImageIdentifier, ImageTagMutability, LayerAvailability, ListImagesFilter, TagStatus,
};
use base64::Engine as _;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const REPO: &str = "sdk/app";
const EXTRA_REPOS: [&str; 4] = ["sdk/extra-1", "sdk/extra-2", "sdk/extra-3", "sdk/extra-4"];
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

/// The checks made so far and those that failed.
#[derive(Default)]
struct Checks {
    count: usize,
    failures: Vec<String>,
}

impl Checks {
    fn check(&mut self, ok: bool, what: impl FnOnce() -> String) {
        self.count += 1;
        if !ok {
            let what = what();
            eprintln!("MISMATCH: {what}");
            self.failures.push(what);
        }
    }

    fn eq<T: PartialEq + std::fmt::Debug>(&mut self, what: &str, got: T, want: T) {
        let ok = got == want;
        self.check(ok, || format!("{what}: got {got:?}, want {want:?}"));
    }
}

/// Stops the scenario: an SDK call failed where it should not have.
fn fatal(what: &str, err: impl std::fmt::Debug) -> ! {
    eprintln!("FATAL: {what}: {err:#?}");
    println!(
        "{}",
        json!({"sdk": "aws-sdk-rust", "fatal": format!("{what}: {err:?}")})
    );
    std::process::exit(2);
}

fn sha256(data: &[u8]) -> String {
    let digest = Sha256::digest(data);
    let mut out = String::from("sha256:");
    for byte in digest.iter() {
        out.push_str(&format!("{byte:02x}"));
    }
    out
}

fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// A timestamp the SDK parsed into its `DateTime`, within `slack` seconds of `expected`.
fn near(time: Option<&DateTime>, expected: f64, slack: f64) -> bool {
    time.is_some_and(|t| (t.as_secs_f64() - expected).abs() < slack)
}

/// The HTTP status of a failed call, as the SDK received it.
fn status<E, R: HasStatus>(err: &SdkError<E, R>) -> Option<u16> {
    err.raw_response().map(HasStatus::status_code)
}

trait HasStatus {
    fn status_code(&self) -> u16;
}

impl HasStatus for aws_sdk_ecr::config::http::HttpResponse {
    fn status_code(&self) -> u16 {
        self.status().as_u16()
    }
}

/// A minimal HTTP/1.1 client for the `/v2/` side (plain HTTP on loopback), so
/// that the token from `GetAuthorizationToken` is used the way docker uses it.
struct Http {
    host: String,
}

struct HttpReply {
    status: u16,
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
}

impl Http {
    fn new(endpoint: &str) -> Self {
        let rest = endpoint.strip_prefix("http://").unwrap_or_else(|| {
            fatal(
                "the /v2/ side of this scenario speaks plain HTTP only",
                endpoint,
            )
        });
        Http {
            host: rest.trim_end_matches('/').to_string(),
        }
    }

    async fn request(
        &self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> HttpReply {
        let (host, path) = if let Some(url) = target.strip_prefix("http://") {
            let (host, path) = url.split_once('/').unwrap_or((url, ""));
            (host.to_string(), format!("/{path}"))
        } else {
            (self.host.clone(), target.to_string())
        };
        let mut stream = tokio::net::TcpStream::connect(&host)
            .await
            .unwrap_or_else(|e| fatal(&format!("connecting to {host}"), e));
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: {}\r\n",
            body.len()
        );
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        stream
            .write_all(head.as_bytes())
            .await
            .unwrap_or_else(|e| fatal("sending a /v2/ request", e));
        stream
            .write_all(body)
            .await
            .unwrap_or_else(|e| fatal("sending a /v2/ request", e));
        let mut raw = Vec::new();
        stream
            .read_to_end(&mut raw)
            .await
            .unwrap_or_else(|e| fatal("reading a /v2/ response", e));
        let split = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap_or_else(|| {
                fatal(
                    "a /v2/ response without headers",
                    String::from_utf8_lossy(&raw),
                )
            });
        let head = String::from_utf8_lossy(&raw[..split]).to_string();
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| fatal("a /v2/ response without a status", &head));
        let headers: BTreeMap<String, String> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let mut body = raw[split + 4..].to_vec();
        if headers
            .get("transfer-encoding")
            .is_some_and(|t| t.eq_ignore_ascii_case("chunked"))
        {
            body = unchunk(&body);
        }
        HttpReply {
            status,
            headers,
            body,
        }
    }
}

fn unchunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(end) = data.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size_text = String::from_utf8_lossy(&data[..end]).to_string();
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .unwrap_or(0);
        if size == 0 || data.len() < end + 2 + size {
            return out;
        }
        out.extend_from_slice(&data[end + 2..end + 2 + size]);
        data = &data[(end + 4 + size).min(data.len())..];
    }
}

fn env(names: &[&str]) -> String {
    names
        .iter()
        .find_map(|n| std::env::var(n).ok().filter(|v| !v.is_empty()))
        .unwrap_or_else(|| fatal("missing environment variable", names))
}

fn image_id(tag: Option<&str>, digest: Option<&str>) -> ImageIdentifier {
    let mut id = ImageIdentifier::builder();
    if let Some(tag) = tag {
        id = id.image_tag(tag);
    }
    if let Some(digest) = digest {
        id = id.image_digest(digest);
    }
    id.build()
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let summary = runtime.block_on(scenario());
    println!("{}", serde_json::to_string_pretty(&summary).unwrap());
    let failed = summary["failures"]
        .as_array()
        .is_some_and(|f| !f.is_empty());
    std::process::exit(if failed { 1 } else { 0 });
}

async fn scenario() -> Value {
    let endpoint = env(&["BERTH_ENDPOINT", "AWS_ENDPOINT_URL"])
        .trim_end_matches('/')
        .to_string();
    let region = env(&["AWS_REGION", "AWS_DEFAULT_REGION"]);
    let credentials = Credentials::new(
        env(&["AWS_ACCESS_KEY_ID"]),
        env(&["AWS_SECRET_ACCESS_KEY"]),
        std::env::var("AWS_SESSION_TOKEN")
            .ok()
            .filter(|t| !t.is_empty()),
        None,
        "berth-sdk-scenario",
    );
    let config = aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(&endpoint)
        .region(Region::new(region))
        .credentials_provider(credentials)
        .load()
        .await;
    let ecr = Client::new(&config);
    let http = Http::new(&endpoint);
    let mut c = Checks::default();
    let started = now_secs();
    let mut errors = BTreeMap::new();
    let mut error_statuses = BTreeSet::new();

    // 1. CreateRepository, and again: RepositoryAlreadyExistsException.
    let created = ecr
        .create_repository()
        .repository_name(REPO)
        .image_tag_mutability(ImageTagMutability::Mutable)
        .send()
        .await
        .unwrap_or_else(|e| fatal("CreateRepository", e));
    let repo = created
        .repository()
        .unwrap_or_else(|| fatal("CreateRepository", "no repository"));
    let account = repo.registry_id().unwrap_or_default().to_string();
    c.check(account.len() == 12, || format!("registryId {account:?}"));
    c.eq("repositoryName", repo.repository_name(), Some(REPO));
    c.eq(
        "repositoryArn",
        repo.repository_arn().map(str::to_string),
        Some(format!(
            "arn:aws:ecr:{}:{account}:repository/{REPO}",
            config.region().unwrap()
        )),
    );
    let host = endpoint
        .split_once("://")
        .map(|(_, h)| h)
        .unwrap_or(&endpoint);
    c.eq(
        "repositoryUri",
        repo.repository_uri().map(str::to_string),
        Some(format!("{host}/{REPO}")),
    );
    c.eq(
        "imageTagMutability",
        repo.image_tag_mutability(),
        Some(&ImageTagMutability::Mutable),
    );
    c.check(near(repo.created_at(), started, 300.0), || {
        format!("createdAt {:?}", repo.created_at())
    });
    let repository_uri = repo.repository_uri().unwrap_or_default().to_string();
    for extra in EXTRA_REPOS {
        ecr.create_repository()
            .repository_name(extra)
            .send()
            .await
            .unwrap_or_else(|e| fatal("CreateRepository", e));
    }
    match ecr.create_repository().repository_name(REPO).send().await {
        Ok(_) => c.check(false, || "CreateRepository twice succeeded".into()),
        Err(err) => {
            error_statuses.insert(status(&err));
            match err.into_service_error() {
                CreateRepositoryError::RepositoryAlreadyExistsException(e) => {
                    errors.insert(
                        "CreateRepository",
                        "RepositoryAlreadyExistsException".to_string(),
                    );
                    c.check(
                        e.message().is_some_and(|m| m.contains("already exists")),
                        || format!("message {e:?}"),
                    );
                }
                other => c.check(false, || format!("CreateRepository twice: {other:?}")),
            }
        }
    }

    // An error outside CreateRepository's model (berth answers ValidationException,
    // as AWS's request validation does): the SDK's generic error, with its code.
    match ecr
        .create_repository()
        .repository_name("Sdk/Upper")
        .send()
        .await
    {
        Ok(_) => c.check(false, || {
            "CreateRepository of an invalid name succeeded".into()
        }),
        Err(err) => {
            error_statuses.insert(status(&err));
            let err = err.into_service_error();
            // Not in CreateRepositoryError's variants: the generic (unhandled) error, whose code() tells.
            let code = err.code().unwrap_or("(no code)").to_string();
            c.check(
                err.message().is_some_and(|m| m.contains("Sdk/Upper")),
                || format!("message {:?}", err.message()),
            );
            errors.insert("CreateRepository(invalid name)", code);
        }
    }

    // 2. GetAuthorizationToken: "AWS:<password>", for this endpoint, 12 hours.
    let token = ecr
        .get_authorization_token()
        .send()
        .await
        .unwrap_or_else(|e| fatal("GetAuthorizationToken", e));
    let data = token.authorization_data();
    c.eq("authorizationData entries", data.len(), 1);
    let data = data
        .first()
        .unwrap_or_else(|| fatal("GetAuthorizationToken", "no authorizationData"));
    let auth_token = data.authorization_token().unwrap_or_default().to_string();
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(&auth_token)
        .map(|d| String::from_utf8_lossy(&d).to_string())
        .unwrap_or_default();
    let (user, password) = decoded.split_once(':').unwrap_or(("", ""));
    c.eq("token user", user, "AWS");
    c.check(!password.is_empty(), || "empty token password".into());
    c.eq(
        "proxyEndpoint",
        data.proxy_endpoint(),
        Some(endpoint.as_str()),
    );
    c.check(
        near(data.expires_at(), started + 12.0 * 3600.0, 300.0),
        || format!("expiresAt {:?}", data.expires_at()),
    );
    let basic = format!("Basic {auth_token}");
    let v2 = http
        .request("GET", "/v2/", &[("Authorization", &basic)], b"")
        .await;
    c.eq("GET /v2/ with the token", v2.status, 200);

    // 3. Push an image with the API's layer operations and PutImage (Docker v2 manifest).
    let config_blob = br#"{"architecture":"amd64","os":"linux","config":{},"rootfs":{"type":"layers","diff_ids":[]},"seed":"rust-api"}"#.to_vec();
    let layer_blob = b"a layer pushed with UploadLayerPart by aws-sdk-rust\n".repeat(64);
    let mut layer_sizes = BTreeMap::new();
    for blob in [&config_blob, &layer_blob] {
        let digest = sha256(blob);
        let upload = ecr
            .initiate_layer_upload()
            .repository_name(REPO)
            .send()
            .await
            .unwrap_or_else(|e| fatal("InitiateLayerUpload", e));
        let upload_id = upload
            .upload_id()
            .unwrap_or_else(|| fatal("InitiateLayerUpload", "no uploadId"))
            .to_string();
        c.check(
            upload.part_size().is_some_and(|s| s >= 5 * 1024 * 1024),
            || format!("partSize {:?}", upload.part_size()),
        );
        let part = ecr
            .upload_layer_part()
            .repository_name(REPO)
            .upload_id(&upload_id)
            .part_first_byte(0)
            .part_last_byte(blob.len() as i64 - 1)
            .layer_part_blob(Blob::new(blob.clone()))
            .send()
            .await
            .unwrap_or_else(|e| fatal("UploadLayerPart", e));
        c.eq(
            "UploadLayerPart lastByteReceived",
            part.last_byte_received(),
            Some(blob.len() as i64 - 1),
        );
        c.eq(
            "UploadLayerPart uploadId",
            part.upload_id(),
            Some(upload_id.as_str()),
        );
        let done = ecr
            .complete_layer_upload()
            .repository_name(REPO)
            .upload_id(&upload_id)
            .layer_digests(&digest)
            .send()
            .await
            .unwrap_or_else(|e| fatal("CompleteLayerUpload", e));
        c.eq(
            "CompleteLayerUpload layerDigest",
            done.layer_digest(),
            Some(digest.as_str()),
        );
        layer_sizes.insert(digest, blob.len() as i64);
    }
    let checked = ecr
        .batch_check_layer_availability()
        .repository_name(REPO)
        .set_layer_digests(Some(layer_sizes.keys().cloned().collect()))
        .send()
        .await
        .unwrap_or_else(|e| fatal("BatchCheckLayerAvailability", e));
    c.eq(
        "BatchCheckLayerAvailability layers",
        checked.layers().len(),
        2,
    );
    for layer in checked.layers() {
        c.eq(
            "layerAvailability",
            layer.layer_availability(),
            Some(&LayerAvailability::Available),
        );
        c.eq(
            "layerSize",
            layer.layer_size(),
            layer
                .layer_digest()
                .and_then(|d| layer_sizes.get(d).copied()),
        );
    }
    c.eq(
        "BatchCheckLayerAvailability failures",
        checked.failures().len(),
        0,
    );
    let v1_manifest = serde_json::to_string(&json!({
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": {"mediaType": DOCKER_CONFIG, "digest": sha256(&config_blob), "size": config_blob.len()},
        "layers": [{"mediaType": DOCKER_LAYER, "digest": sha256(&layer_blob), "size": layer_blob.len()}],
    }))
    .unwrap();
    let v1_digest = sha256(v1_manifest.as_bytes());
    let put = ecr
        .put_image()
        .repository_name(REPO)
        .image_manifest(&v1_manifest)
        .image_tag("v1")
        .send()
        .await
        .unwrap_or_else(|e| fatal("PutImage", e));
    let image = put.image().unwrap_or_else(|| fatal("PutImage", "no image"));
    c.eq(
        "PutImage digest",
        image.image_id().and_then(|i| i.image_digest()),
        Some(v1_digest.as_str()),
    );
    c.eq(
        "PutImage tag",
        image.image_id().and_then(|i| i.image_tag()),
        Some("v1"),
    );
    c.eq(
        "PutImage media type",
        image.image_manifest_media_type(),
        Some(DOCKER_MANIFEST),
    );
    ecr.put_image()
        .repository_name(REPO)
        .image_manifest(&v1_manifest)
        .image_tag("latest")
        .send()
        .await
        .unwrap_or_else(|e| fatal("PutImage latest", e));
    match ecr
        .put_image()
        .repository_name(REPO)
        .image_manifest(&v1_manifest)
        .image_tag("v1")
        .send()
        .await
    {
        Ok(_) => c.check(false, || {
            "PutImage of the same image and tag succeeded".into()
        }),
        Err(err) => {
            error_statuses.insert(status(&err));
            match err.into_service_error() {
                PutImageError::ImageAlreadyExistsException(_) => {
                    errors.insert("PutImage", "ImageAlreadyExistsException".to_string());
                }
                other => c.check(false, || format!("PutImage again: {other:?}")),
            }
        }
    }

    // 4. Push a second image over /v2/ with the token (OCI manifest).
    let v2_config = br#"{"architecture":"arm64","os":"linux","seed":"rust-v2"}"#.to_vec();
    let v2_layer = b"a layer pushed over /v2/ with the ECR token\n".to_vec();
    for blob in [&v2_config, &v2_layer] {
        let reply = http
            .request(
                "POST",
                &format!("/v2/{REPO}/blobs/uploads/?digest={}", sha256(blob)),
                &[
                    ("Authorization", &basic),
                    ("Content-Type", "application/octet-stream"),
                ],
                blob,
            )
            .await;
        c.eq("monolithic blob upload over /v2/", reply.status, 201);
    }
    let v2_manifest = serde_json::to_string(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": sha256(&v2_config), "size": v2_config.len()},
        "layers": [{"mediaType": OCI_LAYER, "digest": sha256(&v2_layer), "size": v2_layer.len()}],
    }))
    .unwrap();
    let v2_digest = sha256(v2_manifest.as_bytes());
    let reply = http
        .request(
            "PUT",
            &format!("/v2/{REPO}/manifests/v2"),
            &[("Authorization", &basic), ("Content-Type", OCI_MANIFEST)],
            v2_manifest.as_bytes(),
        )
        .await;
    c.eq("manifest PUT over /v2/", reply.status, 201);
    c.eq(
        "Docker-Content-Digest",
        reply.headers.get("docker-content-digest"),
        Some(&v2_digest),
    );
    // The image put through the API pulls over /v2/ with the same bytes.
    let pulled = http
        .request(
            "GET",
            &format!("/v2/{REPO}/manifests/v1"),
            &[
                ("Authorization", &basic),
                ("Accept", &format!("{DOCKER_MANIFEST}, {OCI_MANIFEST}")),
            ],
            b"",
        )
        .await;
    c.eq("manifest GET over /v2/", pulled.status, 200);
    c.eq(
        "pulled manifest",
        String::from_utf8_lossy(&pulled.body).to_string(),
        v1_manifest.clone(),
    );

    // 5. More images, so that the lists take several pages: five tagged, one untagged.
    let mut expected: BTreeSet<(String, Option<String>)> = BTreeSet::from([
        (v1_digest.clone(), Some("v1".to_string())),
        (v1_digest.clone(), Some("latest".to_string())),
        (v2_digest.clone(), Some("v2".to_string())),
    ]);
    let mut untagged_digest = String::new();
    for i in 1..=6 {
        let manifest = serde_json::to_string(&json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": sha256(&config_blob), "size": config_blob.len()},
            "layers": [{"mediaType": OCI_LAYER, "digest": sha256(&layer_blob), "size": layer_blob.len()}],
            "annotations": {"seed": format!("rust-{i}")},
        }))
        .unwrap();
        let tag = (i <= 5).then(|| format!("t{i}"));
        let put = ecr
            .put_image()
            .repository_name(REPO)
            .image_manifest(&manifest)
            .image_manifest_media_type(OCI_MANIFEST)
            .set_image_tag(tag.clone())
            .send()
            .await
            .unwrap_or_else(|e| fatal("PutImage", e));
        let digest = put
            .image()
            .and_then(|i| i.image_id())
            .and_then(|i| i.image_digest())
            .unwrap_or_default();
        c.eq(
            "PutImage digest",
            digest.to_string(),
            sha256(manifest.as_bytes()),
        );
        if tag.is_none() {
            untagged_digest = digest.to_string();
        }
        expected.insert((digest.to_string(), tag));
    }

    // 6. ListImages, two at a time, with the paginator.
    let mut pages = ecr
        .list_images()
        .repository_name(REPO)
        .max_results(2)
        .into_paginator()
        .send();
    let mut listed = Vec::new();
    let mut list_pages = 0;
    while let Some(page) = pages.next().await {
        let page = page.unwrap_or_else(|e| fatal("ListImages", e));
        list_pages += 1;
        c.check(page.image_ids().len() <= 2, || {
            format!("ListImages page of {}", page.image_ids().len())
        });
        for id in page.image_ids() {
            listed.push((
                id.image_digest().unwrap_or_default().to_string(),
                id.image_tag().map(str::to_string),
            ));
        }
    }
    c.eq("ListImages entries", listed.len(), expected.len());
    c.eq(
        "ListImages ids",
        listed.iter().cloned().collect::<BTreeSet<_>>(),
        expected.clone(),
    );
    let untagged = ecr
        .list_images()
        .repository_name(REPO)
        .filter(
            ListImagesFilter::builder()
                .tag_status(TagStatus::Untagged)
                .build(),
        )
        .send()
        .await
        .unwrap_or_else(|e| fatal("ListImages UNTAGGED", e));
    c.eq(
        "ListImages UNTAGGED",
        untagged
            .image_ids()
            .iter()
            .map(|i| i.image_digest().unwrap_or_default())
            .collect::<Vec<_>>(),
        vec![untagged_digest.as_str()],
    );
    c.check(untagged.next_token().is_none(), || {
        "a nextToken after the only page".into()
    });
    // An empty repository: an empty list, one page.
    let mut empty_pages = ecr
        .list_images()
        .repository_name(EXTRA_REPOS[0])
        .max_results(2)
        .into_paginator()
        .send();
    let mut empty_count = 0;
    let mut empty_ids = 0;
    while let Some(page) = empty_pages.next().await {
        let page = page.unwrap_or_else(|e| fatal("ListImages (empty)", e));
        empty_count += 1;
        empty_ids += page.image_ids().len();
    }
    c.eq("ListImages of an empty repository: pages", empty_count, 1);
    c.eq("ListImages of an empty repository: ids", empty_ids, 0);

    // 7. DescribeImages, three at a time: timestamps as DateTime, tags, sizes.
    let mut pages = ecr
        .describe_images()
        .repository_name(REPO)
        .max_results(3)
        .into_paginator()
        .send();
    let mut details = Vec::new();
    let mut describe_pages = 0;
    while let Some(page) = pages.next().await {
        let page = page.unwrap_or_else(|e| fatal("DescribeImages", e));
        describe_pages += 1;
        c.check(page.image_details().len() <= 3, || {
            format!("DescribeImages page of {}", page.image_details().len())
        });
        details.extend(page.image_details().iter().cloned());
    }
    let digests: BTreeSet<String> = expected.iter().map(|(d, _)| d.clone()).collect();
    c.eq(
        "DescribeImages digests",
        details
            .iter()
            .map(|d| d.image_digest().unwrap_or_default().to_string())
            .collect::<BTreeSet<_>>(),
        digests.clone(),
    );
    c.eq("DescribeImages details", details.len(), digests.len());
    for detail in &details {
        let digest = detail.image_digest().unwrap_or_default();
        c.check(near(detail.image_pushed_at(), started, 300.0), || {
            format!("imagePushedAt of {digest}: {:?}", detail.image_pushed_at())
        });
        c.eq("registryId", detail.registry_id(), Some(account.as_str()));
        c.eq("repositoryName", detail.repository_name(), Some(REPO));
        c.check(detail.image_size_in_bytes().is_some_and(|s| s > 0), || {
            format!(
                "imageSizeInBytes of {digest}: {:?}",
                detail.image_size_in_bytes()
            )
        });
        let mut tags: Vec<&str> = detail.image_tags().iter().map(String::as_str).collect();
        tags.sort();
        let mut want: Vec<&str> = expected
            .iter()
            .filter(|(d, _)| d == digest)
            .filter_map(|(_, t)| t.as_deref())
            .collect();
        want.sort();
        c.eq(&format!("imageTags of {digest}"), tags, want);
        let media_type = if digest == v1_digest {
            DOCKER_MANIFEST
        } else {
            OCI_MANIFEST
        };
        c.eq(
            &format!("imageManifestMediaType of {digest}"),
            detail.image_manifest_media_type(),
            Some(media_type),
        );
    }
    let v2_detail = ecr
        .describe_images()
        .repository_name(REPO)
        .image_ids(image_id(Some("v2"), None))
        .send()
        .await
        .unwrap_or_else(|e| fatal("DescribeImages v2", e));
    c.eq("DescribeImages v2", v2_detail.image_details().len(), 1);
    if let Some(d) = v2_detail.image_details().first() {
        c.eq("v2 digest", d.image_digest(), Some(v2_digest.as_str()));
        c.eq(
            "v2 artifactMediaType",
            d.artifact_media_type(),
            Some(OCI_CONFIG),
        );
        c.eq(
            "v2 imageSizeInBytes",
            d.image_size_in_bytes(),
            Some(v2_layer.len() as i64),
        );
    }
    // The /v2/ pull of v1 above is recorded in the background: lastRecordedPullTime, a DateTime.
    let mut pulled_at = None;
    for _ in 0..50 {
        let out = ecr
            .describe_images()
            .repository_name(REPO)
            .image_ids(image_id(Some("v1"), None))
            .send()
            .await
            .unwrap_or_else(|e| fatal("DescribeImages v1", e));
        pulled_at = out
            .image_details()
            .first()
            .and_then(|d| d.last_recorded_pull_time())
            .cloned();
        if pulled_at.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    c.check(near(pulled_at.as_ref(), started, 300.0), || {
        format!("lastRecordedPullTime {pulled_at:?}")
    });
    match ecr
        .describe_images()
        .repository_name(REPO)
        .image_ids(image_id(Some("nope"), None))
        .send()
        .await
    {
        Ok(_) => c.check(false, || "DescribeImages of a missing tag succeeded".into()),
        Err(err) => {
            error_statuses.insert(status(&err));
            match err.into_service_error() {
                DescribeImagesError::ImageNotFoundException(_) => {
                    errors.insert("DescribeImages", "ImageNotFoundException".to_string());
                }
                other => c.check(false, || format!("DescribeImages nope: {other:?}")),
            }
        }
    }

    // 8. DescribeRepositories, two at a time.
    let mut pages = ecr
        .describe_repositories()
        .max_results(2)
        .into_paginator()
        .send();
    let mut names = Vec::new();
    let mut repository_pages = 0;
    while let Some(page) = pages.next().await {
        let page = page.unwrap_or_else(|e| fatal("DescribeRepositories", e));
        repository_pages += 1;
        c.check(page.repositories().len() <= 2, || {
            format!("DescribeRepositories page of {}", page.repositories().len())
        });
        for r in page.repositories() {
            names.push(r.repository_name().unwrap_or_default().to_string());
            c.check(near(r.created_at(), started, 300.0), || {
                format!("createdAt {:?}", r.created_at())
            });
        }
    }
    let mut want_names: Vec<String> = EXTRA_REPOS.iter().map(|s| s.to_string()).collect();
    want_names.push(REPO.to_string());
    want_names.sort();
    names.sort();
    c.eq("DescribeRepositories names", names, want_names);

    // 9. BatchGetImage: the manifests as pushed, a failure for the missing tag.
    let got = ecr
        .batch_get_image()
        .repository_name(REPO)
        .image_ids(image_id(Some("v1"), None))
        .image_ids(image_id(Some("v2"), None))
        .image_ids(image_id(Some("missing"), None))
        .accepted_media_types(DOCKER_MANIFEST)
        .accepted_media_types(OCI_MANIFEST)
        .send()
        .await
        .unwrap_or_else(|e| fatal("BatchGetImage", e));
    let manifests: BTreeMap<&str, (&str, &str)> = got
        .images()
        .iter()
        .map(|i| {
            (
                i.image_id().and_then(|i| i.image_tag()).unwrap_or_default(),
                (
                    i.image_manifest().unwrap_or_default(),
                    i.image_manifest_media_type().unwrap_or_default(),
                ),
            )
        })
        .collect();
    c.eq(
        "BatchGetImage v1",
        manifests.get("v1").copied(),
        Some((v1_manifest.as_str(), DOCKER_MANIFEST)),
    );
    c.eq(
        "BatchGetImage v2",
        manifests.get("v2").copied(),
        Some((v2_manifest.as_str(), OCI_MANIFEST)),
    );
    c.eq("BatchGetImage images", got.images().len(), 2);
    c.eq(
        "BatchGetImage failures",
        got.failures()
            .iter()
            .map(|f| {
                (
                    f.image_id()
                        .and_then(|i| i.image_tag())
                        .unwrap_or_default()
                        .to_string(),
                    f.failure_code()
                        .map(|c| c.as_str().to_string())
                        .unwrap_or_default(),
                )
            })
            .collect::<Vec<_>>(),
        vec![("missing".to_string(), "ImageNotFound".to_string())],
    );
    let all_found = ecr
        .batch_get_image()
        .repository_name(REPO)
        .image_ids(image_id(None, Some(&v2_digest)))
        .send()
        .await
        .unwrap_or_else(|e| fatal("BatchGetImage", e));
    c.eq(
        "BatchGetImage all found: images",
        all_found.images().len(),
        1,
    );
    c.eq(
        "BatchGetImage all found: failures",
        all_found.failures().len(),
        0,
    );

    // GetDownloadUrlForLayer: the layer, by URL, without credentials.
    let url = ecr
        .get_download_url_for_layer()
        .repository_name(REPO)
        .layer_digest(sha256(&layer_blob))
        .send()
        .await
        .unwrap_or_else(|e| fatal("GetDownloadUrlForLayer", e));
    c.eq(
        "GetDownloadUrlForLayer layerDigest",
        url.layer_digest().map(str::to_string),
        Some(sha256(&layer_blob)),
    );
    let download = url.download_url().unwrap_or_default();
    if download.starts_with("http://") {
        let reply = http.request("GET", download, &[], b"").await;
        c.eq("download status", reply.status, 200);
        c.check(reply.body == layer_blob, || {
            format!("downloaded {} bytes, not the layer", reply.body.len())
        });
    } else {
        c.check(false, || format!("downloadUrl {download:?}"));
    }

    // BatchDeleteImage of one tag.
    let deleted = ecr
        .batch_delete_image()
        .repository_name(REPO)
        .image_ids(image_id(Some("latest"), None))
        .send()
        .await
        .unwrap_or_else(|e| fatal("BatchDeleteImage", e));
    c.eq(
        "BatchDeleteImage imageIds",
        deleted
            .image_ids()
            .iter()
            .map(|i| (i.image_digest(), i.image_tag()))
            .collect::<Vec<_>>(),
        vec![(Some(v1_digest.as_str()), Some("latest"))],
    );
    c.eq("BatchDeleteImage failures", deleted.failures().len(), 0);
    if let Err(err) = ecr
        .batch_delete_image()
        .repository_name("sdk/missing")
        .image_ids(image_id(Some("x"), None))
        .send()
        .await
    {
        error_statuses.insert(status(&err));
        match err.into_service_error() {
            BatchDeleteImageError::RepositoryNotFoundException(_) => {
                errors.insert(
                    "BatchDeleteImage",
                    "RepositoryNotFoundException".to_string(),
                );
            }
            other => c.check(false, || {
                format!("BatchDeleteImage on a missing repository: {other:?}")
            }),
        }
    } else {
        c.check(false, || {
            "BatchDeleteImage on a missing repository succeeded".into()
        });
    }

    // 10. Errors: a missing repository; deleting a repository that holds images.
    match ecr
        .describe_repositories()
        .repository_names("sdk/missing")
        .send()
        .await
    {
        Ok(_) => c.check(false, || {
            "DescribeRepositories of a missing repository succeeded".into()
        }),
        Err(err) => {
            error_statuses.insert(status(&err));
            c.eq("DescribeRepositories error status", status(&err), Some(400));
            let request_id = err
                .raw_response()
                .and_then(|r| r.headers().get("x-amzn-requestid"))
                .map(str::to_string);
            c.check(request_id.is_some(), || "no x-amzn-RequestId".into());
            match err.into_service_error() {
                DescribeRepositoriesError::RepositoryNotFoundException(e) => {
                    errors.insert(
                        "DescribeRepositories",
                        "RepositoryNotFoundException".to_string(),
                    );
                    c.eq("error code", e.code(), Some("RepositoryNotFoundException"));
                    c.eq(
                        "error message",
                        e.message().map(str::to_string),
                        Some(format!(
                            "The repository with name 'sdk/missing' does not exist in the registry with id '{account}'"
                        )),
                    );
                }
                other => c.check(false, || format!("DescribeRepositories missing: {other:?}")),
            }
        }
    }
    match ecr.delete_repository().repository_name(REPO).send().await {
        Ok(_) => c.check(false, || {
            "DeleteRepository of a repository with images succeeded".into()
        }),
        Err(err) => {
            error_statuses.insert(status(&err));
            match err.into_service_error() {
                DeleteRepositoryError::RepositoryNotEmptyException(_) => {
                    errors.insert(
                        "DeleteRepository",
                        "RepositoryNotEmptyException".to_string(),
                    );
                }
                other => c.check(false, || {
                    format!("DeleteRepository without force: {other:?}")
                }),
            }
        }
    }

    // 11. DeleteRepository with force; then nothing is left.
    let gone = ecr
        .delete_repository()
        .repository_name(REPO)
        .force(true)
        .send()
        .await
        .unwrap_or_else(|e| fatal("DeleteRepository force", e));
    c.eq(
        "DeleteRepository name",
        gone.repository().and_then(|r| r.repository_name()),
        Some(REPO),
    );
    for extra in EXTRA_REPOS {
        ecr.delete_repository()
            .repository_name(extra)
            .send()
            .await
            .unwrap_or_else(|e| fatal("DeleteRepository", e));
    }
    match ecr
        .describe_repositories()
        .repository_names(REPO)
        .send()
        .await
    {
        Err(err)
            if err
                .as_service_error()
                .is_some_and(|e| e.is_repository_not_found_exception()) =>
        {
            c.count += 1
        }
        other => c.check(false, || {
            format!("DescribeRepositories after delete: {other:?}")
        }),
    }
    let left = ecr
        .describe_repositories()
        .send()
        .await
        .unwrap_or_else(|e| fatal("DescribeRepositories", e));
    c.eq("repositories left", left.repositories().len(), 0);
    c.check(left.next_token().is_none(), || {
        "a nextToken on an empty list".into()
    });

    json!({
        "sdk": "aws-sdk-rust",
        "repositoryUri": repository_uri,
        "proxyEndpoint": data.proxy_endpoint(),
        "tokenUser": user,
        "account": account,
        "pushed": {"api": v1_digest, "v2": v2_digest},
        "images": digests.len(),
        "imageIds": listed.len(),
        "pages": {"ListImages": list_pages, "DescribeImages": describe_pages, "DescribeRepositories": repository_pages},
        "errors": errors,
        "errorStatuses": error_statuses.into_iter().flatten().collect::<Vec<_>>(),
        "checks": c.count,
        "failures": c.failures,
    })
}
