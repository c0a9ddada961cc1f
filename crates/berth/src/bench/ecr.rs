//! Repositories for runs against a berth that does not create them on push:
//! with an access key for berth's ECR door, the harness creates each one it
//! pushes to (`CreateRepository`, SigV4-signed) and removes them afterwards.

use std::collections::BTreeSet;
use std::sync::Mutex;

use berth_core::sigv4;
use sha2::{Digest as _, Sha256};

use super::client::{Failure, Outcome};

pub struct Repositories {
    http: reqwest::Client,
    base: String,
    key_id: String,
    secret: String,
    region: String,
    /// Repositories this run made (removed at the end) or found existing.
    known: Mutex<BTreeSet<String>>,
    made: Mutex<Vec<String>>,
}

impl Repositories {
    pub fn new(base: &str, key_id: &str, secret: &str, region: &str) -> Repositories {
        Repositories {
            http: reqwest::Client::new(),
            base: base.trim_end_matches('/').to_string(),
            key_id: key_id.to_string(),
            secret: secret.to_string(),
            region: region.to_string(),
            known: Mutex::default(),
            made: Mutex::default(),
        }
    }

    /// Creates `repo` unless this run already has it.
    pub async fn ensure(&self, repo: &str) -> Outcome<()> {
        if self.known.lock().expect("lock").contains(repo) {
            return Ok(());
        }
        let body = serde_json::json!({"repositoryName": repo}).to_string();
        let (status, text) = self.call("CreateRepository", &body).await?;
        if status == 200 {
            self.made.lock().expect("lock").push(repo.to_string());
        } else if !text.contains("RepositoryAlreadyExistsException") {
            return Err(Failure {
                kind: format!("HTTP {status} on CreateRepository"),
                detail: text.chars().take(300).collect(),
            });
        }
        self.known.lock().expect("lock").insert(repo.to_string());
        Ok(())
    }

    /// Deletes the repositories this run created, with their images.
    pub async fn remove_made(&self) -> Outcome<usize> {
        let made = std::mem::take(&mut *self.made.lock().expect("lock"));
        for repo in &made {
            let body = serde_json::json!({"repositoryName": repo, "force": true}).to_string();
            self.call("DeleteRepository", &body).await?;
        }
        Ok(made.len())
    }

    async fn call(&self, operation: &str, body: &str) -> Outcome<(u16, String)> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let amz_date = sigv4::format_amz_date(now);
        let host = self
            .base
            .split("://")
            .nth(1)
            .unwrap_or(&self.base)
            .to_string();
        let target = format!("AmazonEC2ContainerRegistry_V20150921.{operation}");
        let payload = hex::encode(Sha256::digest(body.as_bytes()));
        let headers = vec![
            ("host".to_string(), host),
            ("x-amz-date".to_string(), amz_date.clone()),
            ("x-amz-target".to_string(), target.clone()),
        ];
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
            &self.key_id,
            &self.secret,
            &self.region,
            "ecr",
        );
        let response = self
            .http
            .post(format!("{}/", self.base))
            .header("x-amz-date", amz_date)
            .header("x-amz-target", target)
            .header("content-type", "application/x-amz-json-1.1")
            .header("authorization", authorization)
            .body(body.to_string())
            .send()
            .await?;
        let status = response.status().as_u16();
        Ok((status, response.text().await.unwrap_or_default()))
    }
}
