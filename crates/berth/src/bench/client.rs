//! The harness's OCI client: the requests real clients send, each returning
//! what it moved or an error of a countable kind.

use std::fmt;

use bytes::Bytes;
use futures_util::StreamExt;
use reqwest::Method;
use sha2::{Digest as _, Sha256};

use super::payload::Payload;

/// A failed request, by kind (counted) and detail (shown once).
#[derive(Debug)]
pub struct Failure {
    pub kind: String,
    pub detail: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.detail)
    }
}

impl std::error::Error for Failure {}

impl From<reqwest::Error> for Failure {
    fn from(e: reqwest::Error) -> Failure {
        Failure {
            kind: if e.is_timeout() {
                "timeout"
            } else {
                "connection"
            }
            .into(),
            detail: e.to_string(),
        }
    }
}

pub type Outcome<T> = Result<T, Failure>;

/// What pulling clients accept; some registries hide OCI manifests from a
/// request without it.
const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, \
    application/vnd.oci.image.index.v1+json, \
    application/vnd.docker.distribution.manifest.v2+json, \
    application/vnd.docker.distribution.manifest.list.v2+json";

#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    credentials: Option<(String, String)>,
    /// Creates repositories before the first push to each, where the target
    /// does not create them on push.
    repositories: Option<std::sync::Arc<super::ecr::Repositories>>,
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

fn body(frames: Vec<Bytes>) -> reqwest::Body {
    reqwest::Body::wrap_stream(futures_util::stream::iter(
        frames.into_iter().map(Ok::<_, std::io::Error>),
    ))
}

impl Client {
    pub fn new(base: &str, credentials: Option<(String, String)>) -> Client {
        Client {
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(256)
                .build()
                .expect("HTTP client"),
            base: base.trim_end_matches('/').to_string(),
            credentials,
            repositories: None,
        }
    }

    /// Creates each repository through `repositories` before pushing to it.
    pub fn creating_repositories(
        mut self,
        repositories: std::sync::Arc<super::ecr::Repositories>,
    ) -> Client {
        self.repositories = Some(repositories);
        self
    }

    async fn ensure_repository(&self, repo: &str) -> Outcome<()> {
        match &self.repositories {
            Some(r) => r.ensure(repo).await,
            None => Ok(()),
        }
    }

    fn request(&self, method: Method, path_or_url: &str) -> reqwest::RequestBuilder {
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

    async fn expect(
        &self,
        response: reqwest::Response,
        status: u16,
        what: &str,
    ) -> Outcome<reqwest::Response> {
        if response.status().as_u16() == status {
            return Ok(response);
        }
        let got = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        if got == 404 && text.contains("NAME_UNKNOWN") && self.repositories.is_none() {
            return Err(Failure {
                kind: format!("HTTP 404 on {what}"),
                detail: "the target does not create repositories on push: give --username and \
                         --password an access key of the target's ECR API (the harness then \
                         creates its repositories and removes them afterwards), or start it \
                         with --create-on-push"
                    .into(),
            });
        }
        Err(Failure {
            kind: format!("HTTP {got} on {what}"),
            detail: format!(
                "expected {status}: {}",
                text.chars().take(300).collect::<String>()
            ),
        })
    }

    fn location(response: &reqwest::Response) -> Outcome<String> {
        response
            .headers()
            .get("location")
            .and_then(|l| l.to_str().ok())
            .map(String::from)
            .ok_or_else(|| Failure {
                kind: "no Location header".into(),
                detail: "upload answer without Location".into(),
            })
    }

    fn with_digest(location: &str, digest: &str) -> String {
        let sep = if location.contains('?') { '&' } else { '?' };
        format!("{location}{sep}digest={digest}")
    }

    pub async fn ping(&self) -> Outcome<()> {
        let r = self.request(Method::GET, "/v2/").send().await?;
        self.expect(r, 200, "GET /v2/").await.map(drop)
    }

    /// `POST ?digest=` with the whole blob (or `POST` + `PUT` where the
    /// registry does not take a blob in the `POST`).
    pub async fn push_monolithic(&self, repo: &str, data: &Payload, digest: &str) -> Outcome<()> {
        self.ensure_repository(repo).await?;
        let r = self
            .request(
                Method::POST,
                &format!("/v2/{repo}/blobs/uploads/?digest={digest}"),
            )
            .header("content-type", "application/octet-stream")
            .header("content-length", data.len())
            .body(body(data.frames().collect()))
            .send()
            .await?;
        if r.status().as_u16() != 202 {
            return self.expect(r, 201, "monolithic blob push").await.map(drop);
        }
        // The spec lets a registry answer 202 and open an upload instead;
        // real clients then PUT the blob there.
        self.finish_upload_with(&Self::location(&r)?, data, digest)
            .await
    }

    async fn start_upload(&self, repo: &str) -> Outcome<String> {
        self.ensure_repository(repo).await?;
        let r = self
            .request(Method::POST, &format!("/v2/{repo}/blobs/uploads/"))
            .send()
            .await?;
        Self::location(&self.expect(r, 202, "upload start").await?)
    }

    async fn finish_upload(&self, location: &str, digest: &str) -> Outcome<()> {
        let r = self
            .request(Method::PUT, &Self::with_digest(location, digest))
            .send()
            .await?;
        self.expect(r, 201, "upload finish").await.map(drop)
    }

    /// `POST`, then the whole blob in the closing `PUT`: oras's way, which
    /// every registry takes.
    pub async fn push_post_put(&self, repo: &str, data: &Payload, digest: &str) -> Outcome<()> {
        let upload = self.start_upload(repo).await?;
        self.finish_upload_with(&upload, data, digest).await
    }

    /// The closing `PUT` of an upload, carrying the whole blob.
    async fn finish_upload_with(
        &self,
        location: &str,
        data: &Payload,
        digest: &str,
    ) -> Outcome<()> {
        let r = self
            .request(Method::PUT, &Self::with_digest(location, digest))
            .header("content-type", "application/octet-stream")
            .header("content-length", data.len())
            .body(body(data.frames().collect()))
            .send()
            .await?;
        self.expect(r, 201, "blob PUT").await.map(drop)
    }

    /// `POST`, one `PATCH` streaming the whole blob (no length), `PUT`: docker's way.
    pub async fn push_streamed(&self, repo: &str, data: &Payload, digest: &str) -> Outcome<()> {
        let upload = self.start_upload(repo).await?;
        let r = self
            .request(Method::PATCH, &upload)
            .header("content-type", "application/octet-stream")
            .body(body(data.frames().collect()))
            .send()
            .await?;
        let upload = Self::location(&self.expect(r, 202, "streamed PATCH").await?)?;
        self.finish_upload(&upload, digest).await
    }

    /// `POST`, `PATCH`es of `chunk` bytes with `Content-Range`, `PUT`.
    pub async fn push_chunked(
        &self,
        repo: &str,
        data: &Payload,
        digest: &str,
        chunk: u64,
    ) -> Outcome<()> {
        let mut upload = self.start_upload(repo).await?;
        let mut start = 0;
        while start < data.len() {
            let end = (start + chunk).min(data.len());
            let r = self
                .request(Method::PATCH, &upload)
                .header("content-type", "application/octet-stream")
                .header("content-range", format!("{start}-{}", end - 1))
                .header("content-length", end - start)
                .body(body(data.range(start, end)))
                .send()
                .await?;
            upload = Self::location(&self.expect(r, 202, "chunk PATCH").await?)?;
            start = end;
        }
        self.finish_upload(&upload, digest).await
    }

    pub async fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        manifest: &[u8],
    ) -> Outcome<reqwest::Response> {
        let r = self
            .request(Method::PUT, &format!("/v2/{repo}/manifests/{reference}"))
            .header("content-type", media_type)
            .body(manifest.to_vec())
            .send()
            .await?;
        self.expect(r, 201, "manifest PUT").await
    }

    /// GETs a manifest and checks it against `digest` when given; returns its bytes.
    pub async fn get_manifest(
        &self,
        repo: &str,
        reference: &str,
        digest: Option<&str>,
    ) -> Outcome<Bytes> {
        let r = self
            .request(Method::GET, &format!("/v2/{repo}/manifests/{reference}"))
            .header("accept", MANIFEST_ACCEPT)
            .send()
            .await?;
        let bytes = self.expect(r, 200, "manifest GET").await?.bytes().await?;
        if let Some(expected) = digest {
            let got = sha256_hex(&bytes);
            if got != expected {
                return Err(Failure {
                    kind: "digest mismatch".into(),
                    detail: format!("manifest {reference}: got {got}, expected {expected}"),
                });
            }
        }
        Ok(bytes)
    }

    /// `HEAD`s a manifest by tag, as a runtime resolves one: its digest.
    pub async fn resolve(&self, repo: &str, tag: &str) -> Outcome<String> {
        let r = self
            .request(Method::HEAD, &format!("/v2/{repo}/manifests/{tag}"))
            .header("accept", MANIFEST_ACCEPT)
            .send()
            .await?;
        let r = self.expect(r, 200, "manifest HEAD").await?;
        r.headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .map(String::from)
            .ok_or_else(|| Failure {
                kind: "no Docker-Content-Digest".into(),
                detail: format!("manifest HEAD {repo}:{tag}"),
            })
    }

    pub async fn head(&self, path: &str, what: &str) -> Outcome<()> {
        let r = self
            .request(Method::HEAD, path)
            .header("accept", MANIFEST_ACCEPT)
            .send()
            .await?;
        self.expect(r, 200, what).await.map(drop)
    }

    pub async fn get_json(&self, path: &str, what: &str) -> Outcome<serde_json::Value> {
        let r = self.request(Method::GET, path).send().await?;
        let r = self.expect(r, 200, what).await?;
        r.json().await.map_err(|e| Failure {
            kind: format!("bad JSON on {what}"),
            detail: e.to_string(),
        })
    }

    /// GETs a blob, hashing it; fails unless it has `len` bytes and `digest`.
    pub async fn pull_blob(&self, repo: &str, digest: &str, len: u64) -> Outcome<u64> {
        let r = self
            .request(Method::GET, &format!("/v2/{repo}/blobs/{digest}"))
            .send()
            .await?;
        let mut stream = self.expect(r, 200, "blob GET").await?.bytes_stream();
        let mut hasher = Sha256::new();
        let mut received = 0u64;
        while let Some(frame) = stream.next().await {
            let frame = frame?;
            received += frame.len() as u64;
            hasher.update(&frame);
        }
        let got = format!("sha256:{}", hex::encode(hasher.finalize()));
        if received != len || got != digest {
            return Err(Failure {
                kind: "digest mismatch".into(),
                detail: format!("blob {digest}: got {received} bytes with digest {got}"),
            });
        }
        Ok(received)
    }
}
