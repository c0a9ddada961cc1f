//! Calls to an AWS JSON 1.1 door (berth's ECR API and its own operations),
//! SigV4-signed with an access key: what the commands that talk to a
//! running berth (`bench` against a target, `privatize`) share.

use berth_core::sigv4;
use sha2::{Digest as _, Sha256};

pub struct Signer {
    pub http: reqwest::Client,
    /// `scheme://host[:port]`.
    pub base: String,
    pub region: String,
    pub key_id: String,
    pub secret: String,
    /// A temporary credential's session token.
    pub token: Option<String>,
}

impl Signer {
    /// A signer for `endpoint` with the usual `AWS_ACCESS_KEY_ID`,
    /// `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN`.
    pub fn from_env(endpoint: &str, region: &str) -> anyhow::Result<Signer> {
        use anyhow::Context as _;
        Ok(Signer {
            http: reqwest::Client::new(),
            base: endpoint.trim_end_matches('/').to_string(),
            region: region.to_string(),
            key_id: std::env::var("AWS_ACCESS_KEY_ID").context("AWS_ACCESS_KEY_ID is not set")?,
            secret: std::env::var("AWS_SECRET_ACCESS_KEY")
                .context("AWS_SECRET_ACCESS_KEY is not set")?,
            token: std::env::var("AWS_SESSION_TOKEN").ok(),
        })
    }

    /// Calls one of berth's own operations (`BerthRegistry_20261130`); its
    /// answer, or why it failed.
    pub async fn berth(
        &self,
        operation: &str,
        body: &serde_json::Value,
    ) -> anyhow::Result<serde_json::Value> {
        let (status, text) = self
            .call(
                &format!("BerthRegistry_20261130.{operation}"),
                &body.to_string(),
            )
            .await?;
        answer(operation, status, &text)
    }

    /// POSTs `body` to `target` (`Prefix.Operation`), signed for service `ecr`;
    /// the answer's status and text.
    pub async fn call(&self, target: &str, body: &str) -> reqwest::Result<(u16, String)> {
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
        let payload = hex::encode(Sha256::digest(body.as_bytes()));
        let mut headers = vec![
            ("host".to_string(), host),
            ("x-amz-date".to_string(), amz_date.clone()),
            ("x-amz-target".to_string(), target.to_string()),
        ];
        if let Some(token) = &self.token {
            headers.push(("x-amz-security-token".to_string(), token.clone()));
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
            &self.key_id,
            &self.secret,
            &self.region,
            "ecr",
        );
        let mut builder = self
            .http
            .post(format!("{}/", self.base))
            .header("x-amz-date", amz_date)
            .header("x-amz-target", target)
            .header("content-type", "application/x-amz-json-1.1")
            .header("authorization", authorization);
        if let Some(token) = &self.token {
            builder = builder.header("x-amz-security-token", token);
        }
        let response = builder.body(body.to_string()).send().await?;
        let status = response.status().as_u16();
        Ok((status, response.text().await.unwrap_or_default()))
    }
}

/// An answer's JSON, or its error (`__type` and message) when it failed.
pub fn answer(operation: &str, status: u16, text: &str) -> anyhow::Result<serde_json::Value> {
    let answer: serde_json::Value = serde_json::from_str(text).unwrap_or_default();
    if !(200..300).contains(&status) {
        anyhow::bail!(
            "{operation}: {} {}",
            answer["__type"].as_str().unwrap_or("error"),
            answer["message"].as_str().unwrap_or_default()
        );
    }
    Ok(answer)
}
