//! Repositories for runs against a berth that does not create them on push:
//! with an access key for berth's ECR door, the harness creates each one it
//! pushes to (`CreateRepository`, SigV4-signed) and removes them afterwards.

use std::collections::BTreeSet;
use std::sync::Mutex;

use super::client::{Failure, Outcome};
use crate::aws_json::Signer;

pub struct Repositories {
    signer: Signer,
    /// Repositories this run made (removed at the end) or found existing.
    known: Mutex<BTreeSet<String>>,
    made: Mutex<Vec<String>>,
}

impl Repositories {
    pub fn new(base: &str, key_id: &str, secret: &str, region: &str) -> Repositories {
        Repositories {
            signer: Signer {
                http: reqwest::Client::new(),
                base: base.trim_end_matches('/').to_string(),
                region: region.to_string(),
                key_id: key_id.to_string(),
                secret: secret.to_string(),
                token: None,
            },
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
        let target = format!("AmazonEC2ContainerRegistry_V20150921.{operation}");
        Ok(self.signer.call(&target, body).await?)
    }
}
