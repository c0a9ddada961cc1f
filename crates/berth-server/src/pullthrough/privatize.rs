//! Privatizing: copying public images into this registry under a namespace
//! named after their source (`quay.io/biocontainers/bcftools:1.16` →
//! `quay/biocontainers/bcftools:1.16`), as queued jobs any node runs —
//! through a pull-through rule whose upstream is the source's registry
//! (its prefix and credentials), by a plain copy otherwise. An image
//! already there with the same digest is skipped; its referrers
//! (signatures, SBOMs, attestations) come along.

use std::collections::HashMap;

use berth_core::{Digest, Reference, RepositoryName, Tag};
use berth_store::{NewJob, Privatization, StoreError, now_millis};
use oci_client::secrets::RegistryAuth;
use serde_json::json;

use super::{ACCEPTED, PullThrough, PullThroughError, upstream_of};
use crate::registry::{Registry, RegistryError};

/// The job kind that copies one image (`{"id"}`).
pub const PRIVATIZE_JOB: &str = "privatize.image";
/// How deep referrers of referrers are followed (a signature of an SBOM of an image: 2).
const REFERRER_DEPTH: usize = 3;
/// Manifests a referrer may be.
const REFERRER_TYPES: &[&str] = &[
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.artifact.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
];

/// Namespaces of well-known registries (others: the host, `:` as `-`).
const NAMESPACES: &[(&str, &str)] = &[
    ("docker.io", "dockerhub"),
    ("registry-1.docker.io", "dockerhub"),
    ("index.docker.io", "dockerhub"),
    ("quay.io", "quay"),
    ("ghcr.io", "ghcr"),
    ("gcr.io", "gcr"),
    ("mcr.microsoft.com", "mcr"),
    ("public.ecr.aws", "ecr-public"),
    ("registry.k8s.io", "k8s"),
    ("registry.gitlab.com", "gitlab"),
    ("cgr.dev", "chainguard"),
];

/// A source image reference, Docker's grammar.
#[derive(Debug, PartialEq, Eq)]
pub struct Source {
    /// The registry as named (`docker.io` for bare names).
    pub host: String,
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

impl Source {
    pub fn parse(text: &str) -> Result<Source, String> {
        let invalid = || format!("'{text}' is not an image reference");
        let (rest, digest) = match text.split_once('@') {
            Some((r, d)) => (r, Some(d.to_string())),
            None => (text, None),
        };
        let (host, path) = match rest.split_once('/') {
            Some((first, path)) if first.contains(['.', ':']) || first == "localhost" => {
                (first.to_string(), path.to_string())
            }
            _ => ("docker.io".to_string(), rest.to_string()),
        };
        let (repository, tag) = match path.rsplit_once(':') {
            Some((repo, tag)) if !tag.contains('/') => (repo.to_string(), Some(tag.to_string())),
            _ => (path, None),
        };
        let repository = if host == "docker.io" && !repository.contains('/') {
            format!("library/{repository}")
        } else {
            repository
        };
        if repository.is_empty() || repository.parse::<RepositoryName>().is_err() {
            return Err(invalid());
        }
        if let Some(d) = &digest
            && d.parse::<Digest>().is_err()
        {
            return Err(invalid());
        }
        let tag = if tag.is_none() && digest.is_none() {
            Some("latest".to_string())
        } else {
            tag
        };
        Ok(Source {
            host,
            repository,
            tag,
            digest,
        })
    }

    /// The host to ask (Docker Hub's registry is not `docker.io`).
    fn fetch_host(&self) -> &str {
        if self.host == "docker.io" {
            "registry-1.docker.io"
        } else {
            &self.host
        }
    }
}

/// The namespace of a source registry, `overrides` first.
pub fn namespace_of(host: &str, overrides: &HashMap<String, String>) -> String {
    if let Some(ns) = overrides.get(host) {
        return ns.clone();
    }
    if let Some((_, ns)) = NAMESPACES.iter().find(|(h, _)| *h == host) {
        return ns.to_string();
    }
    if host.ends_with(".gcr.io") {
        return "gcr".into();
    }
    if host.ends_with("-docker.pkg.dev") {
        return "gar".into();
    }
    host.to_ascii_lowercase().replace(':', "-")
}

impl PullThrough {
    /// Where a source lands: under the prefix of a pull-through rule whose
    /// upstream is its registry, else under its namespace.
    async fn destination_of(
        &self,
        source: &Source,
        overrides: &HashMap<String, String>,
    ) -> Result<(String, Option<berth_store::PullThroughRule>), StoreError> {
        let rules = self.cached_rules().await?;
        for rule in rules.iter() {
            let upstream = upstream_of(&rule.upstream_registry_url, &self.insecure);
            if upstream.host != source.fetch_host() && upstream.host != source.host {
                continue;
            }
            let rest = if rule.upstream_prefix == "ROOT" {
                Some(source.repository.as_str())
            } else {
                source
                    .repository
                    .strip_prefix(&format!("{}/", rule.upstream_prefix))
            };
            if let Some(rest) = rest {
                let destination = if rule.prefix == "ROOT" {
                    rest.to_string()
                } else {
                    format!("{}/{rest}", rule.prefix)
                };
                return Ok((destination, Some(rule.clone())));
            }
        }
        Ok((
            format!(
                "{}/{}",
                namespace_of(&source.host, overrides),
                source.repository
            ),
            None,
        ))
    }

    /// Queues the copy of one image; the record says where it goes.
    pub async fn start_privatize(
        &self,
        source_text: &str,
        overrides: &HashMap<String, String>,
    ) -> Result<Privatization, PullThroughError> {
        let source = Source::parse(source_text).map_err(PullThroughError::Invalid)?;
        let (destination, _) = self.destination_of(&source, overrides).await?;
        if destination.parse::<RepositoryName>().is_err() {
            return Err(PullThroughError::Invalid(format!(
                "'{destination}' is not a repository name"
            )));
        }
        let now = now_millis();
        let record = Privatization {
            id: uuid::Uuid::new_v4().to_string(),
            source: source_text.to_string(),
            destination,
            tag: source.tag.clone(),
            status: "QUEUED".into(),
            digest: None,
            size: None,
            reason: None,
            created_at: now,
            updated_at: now,
        };
        self.store.put_privatization(&record).await?;
        let payload = json!({"id": record.id, "namespaces": overrides}).to_string();
        self.store
            .enqueue_job(
                &NewJob {
                    kind: PRIVATIZE_JOB,
                    payload: &payload,
                    singleton: None,
                    max_attempts: 3,
                    run_after: now,
                },
                now,
            )
            .await?;
        Ok(record)
    }

    pub async fn privatization(&self, id: &str) -> Result<Option<Privatization>, PullThroughError> {
        Ok(self.store.privatization(id).await?)
    }

    /// Runs one copy (the job): skipped when the destination already holds
    /// the source's digest; failures recorded with their reason.
    pub async fn run_privatize(
        &self,
        id: &str,
        overrides: &HashMap<String, String>,
    ) -> Result<(), String> {
        let Some(mut record) = self
            .store
            .privatization(id)
            .await
            .map_err(|e| e.to_string())?
        else {
            return Ok(());
        };
        record.status = "RUNNING".into();
        record.updated_at = now_millis();
        self.store
            .put_privatization(&record)
            .await
            .map_err(|e| e.to_string())?;
        match self.copy(&record, overrides).await {
            Ok((status, digest, size)) => {
                record.status = status.into();
                record.digest = Some(digest);
                record.size = Some(size);
            }
            Err(RegistryError::Internal(e)) => return Err(e.to_string()),
            Err(e) => {
                record.status = "FAILED".into();
                record.reason = Some(e.to_string());
            }
        }
        record.updated_at = now_millis();
        self.store
            .put_privatization(&record)
            .await
            .map_err(|e| e.to_string())
    }

    async fn copy(
        &self,
        record: &Privatization,
        overrides: &HashMap<String, String>,
    ) -> Result<(&'static str, String, i64), RegistryError> {
        let not_found = |what: &str| RegistryError::Upstream {
            code: "UpstreamUnavailable",
            message: format!("{what} was not found upstream"),
        };
        let source = Source::parse(&record.source).map_err(|m| RegistryError::Upstream {
            code: "UpstreamUnavailable",
            message: m,
        })?;
        let (_, rule) = self.destination_of(&source, overrides).await?;
        let destination: RepositoryName = record
            .destination
            .parse()
            .map_err(|_| not_found("a valid destination"))?;
        let registry = self.registry().ok_or_else(|| not_found("the registry"))?;
        let (upstream, auth) = match &rule {
            Some(rule) => (
                upstream_of(&rule.upstream_registry_url, &self.insecure),
                self.auth_for(rule).await?,
            ),
            None => (
                upstream_of(source.fetch_host(), &self.insecure),
                RegistryAuth::Anonymous,
            ),
        };
        let client = self.client(&upstream, &auth);
        let image = match (&source.digest, &source.tag) {
            (Some(d), _) => oci_client::Reference::with_digest(
                upstream.host.clone(),
                source.repository.clone(),
                d.clone(),
            ),
            (None, Some(t)) => oci_client::Reference::with_tag(
                upstream.host.clone(),
                source.repository.clone(),
                t.clone(),
            ),
            (None, None) => return Err(not_found("an image")),
        };
        let (content, _) = match client.pull_manifest_raw(&image, &auth, ACCEPTED).await {
            Ok(found) => found,
            Err(e) => {
                return Err(match super::upstream_error(e) {
                    Ok(_) => not_found(&record.source),
                    Err(e) => e,
                });
            }
        };
        let digest = Digest::of(berth_core::Algorithm::Sha256, &content);
        let size = manifest_size(&content);
        // Already there under the same tag (or digest): nothing to copy.
        let reference = match &source.tag {
            Some(t) => Reference::Tag(t.parse::<Tag>().map_err(|_| not_found("a valid tag"))?),
            None => Reference::Digest(digest.clone()),
        };
        let present = self
            .store
            .get_manifest(&destination, &reference)
            .await?
            .is_some_and(|m| m.digest == digest);
        if !present {
            registry
                .ensure_repository_for(&destination, crate::registry::CreatedFor::PullThrough)
                .await?;
            self.store_manifest(
                &registry,
                &client,
                &image,
                &auth,
                &destination,
                &reference,
                content.clone(),
                super::Blobs::First,
                None,
            )
            .await?;
        }
        // Signatures, SBOMs and attestations come along (new ones too
        // when the image itself was there already).
        let mut subjects = vec![digest.clone()];
        let json: serde_json::Value = serde_json::from_slice(&content).unwrap_or_default();
        subjects.extend(
            json["manifests"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|c| c["digest"].as_str()?.parse::<Digest>().ok()),
        );
        let mut copied_referrers = false;
        for subject in subjects {
            copied_referrers |= self
                .copy_referrers(&registry, &client, &image, &auth, &destination, &subject, 0)
                .await?;
        }
        let status = if present && !copied_referrers {
            "SKIPPED"
        } else {
            "COPIED"
        };
        Ok((status, digest.to_string(), size))
    }

    /// Copies the upstream's referrers of `subject` (and theirs, to a
    /// depth of [`REFERRER_DEPTH`]) not here yet; `true` when any was.
    #[allow(clippy::too_many_arguments)]
    fn copy_referrers<'a>(
        &'a self,
        registry: &'a Registry,
        client: &'a oci_client::Client,
        image: &'a oci_client::Reference,
        auth: &'a RegistryAuth,
        destination: &'a RepositoryName,
        subject: &'a Digest,
        depth: usize,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<bool, RegistryError>> + Send + 'a>>
    {
        Box::pin(async move {
            if depth >= REFERRER_DEPTH {
                return Ok(false);
            }
            let of = oci_client::Reference::with_digest(
                image.registry().to_string(),
                image.repository().to_string(),
                subject.to_string(),
            );
            // An upstream without referrers (or the fallback tag) has none to give.
            let Ok(index) = client.pull_referrers(&of, None).await else {
                return Ok(false);
            };
            let mut copied = false;
            for referrer in index.manifests {
                let Ok(digest) = referrer.digest.parse::<Digest>() else {
                    continue;
                };
                let reference = Reference::Digest(digest.clone());
                if self
                    .store
                    .get_manifest(destination, &reference)
                    .await?
                    .is_none()
                {
                    let at = oci_client::Reference::with_digest(
                        image.registry().to_string(),
                        image.repository().to_string(),
                        digest.to_string(),
                    );
                    let (content, _) = match client
                        .pull_manifest_raw(&at, auth, REFERRER_TYPES)
                        .await
                    {
                        Ok(found) => found,
                        Err(e) => {
                            tracing::warn!(referrer = %digest, error = %e, "a referrer could not be fetched; left behind");
                            continue;
                        }
                    };
                    self.store_manifest(
                        registry,
                        client,
                        &at,
                        auth,
                        destination,
                        &reference,
                        content,
                        super::Blobs::First,
                        None,
                    )
                    .await?;
                    copied = true;
                }
                copied |= self
                    .copy_referrers(
                        registry,
                        client,
                        image,
                        auth,
                        destination,
                        &digest,
                        depth + 1,
                    )
                    .await?;
            }
            Ok(copied)
        })
    }
}

/// Bytes an image's manifest names (its config and layers; an index, its children's manifests).
fn manifest_size(content: &[u8]) -> i64 {
    let json: serde_json::Value = serde_json::from_slice(content).unwrap_or_default();
    std::iter::once(&json["config"])
        .chain(json["layers"].as_array().into_iter().flatten())
        .chain(json["manifests"].as_array().into_iter().flatten())
        .filter_map(|d| d["size"].as_i64())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_and_namespaces() {
        let s = Source::parse("ubuntu:20.04").unwrap();
        assert_eq!(
            (s.host.as_str(), s.repository.as_str(), s.tag.as_deref()),
            ("docker.io", "library/ubuntu", Some("20.04"))
        );
        let s = Source::parse("quay.io/biocontainers/bcftools:1.16--hfe4b78e_1").unwrap();
        assert_eq!(
            (s.host.as_str(), s.repository.as_str()),
            ("quay.io", "biocontainers/bcftools")
        );
        let s = Source::parse("localhost:5000/app").unwrap();
        assert_eq!(
            (s.host.as_str(), s.tag.as_deref()),
            ("localhost:5000", Some("latest"))
        );
        let d = format!("sha256:{}", "a".repeat(64));
        let s = Source::parse(&format!("ghcr.io/x/y@{d}")).unwrap();
        assert_eq!((s.tag, s.digest.as_deref()), (None, Some(d.as_str())));
        assert!(Source::parse("Bad Name").is_err());
        let none = HashMap::new();
        assert_eq!(namespace_of("docker.io", &none), "dockerhub");
        assert_eq!(namespace_of("us.gcr.io", &none), "gcr");
        assert_eq!(namespace_of("us-central1-docker.pkg.dev", &none), "gar");
        assert_eq!(namespace_of("public.ecr.aws", &none), "ecr-public");
        assert_eq!(namespace_of("127.0.0.1:5000", &none), "127.0.0.1-5000");
    }
}
