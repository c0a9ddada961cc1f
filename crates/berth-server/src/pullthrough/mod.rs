//! The pull-through cache: repositories under a rule's prefix mirror an
//! upstream registry. A read that misses (either door: `docker pull`,
//! `BatchGetImage`, `GetDownloadUrlForLayer`) asks the upstream through
//! oci-client (anonymous, Basic, or the Bearer token flow Docker Hub, GHCR,
//! Quay and the rest use), stores what it gets — every blob's digest
//! verified as it is written, as a push is — and the read is served from
//! the cache. The first pull creates the repository. Who may make berth
//! import is decided as on ECR: `ecr:BatchImportUpstreamImage` on the
//! repository (and `ecr:CreateRepository` for its first pull), for the
//! caller of the request that missed.

pub mod privatize;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use berth_core::{Digest, Reference, RepositoryName};
use berth_store::{MetadataStore, PullThroughRule, StoreError, now_millis};
use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use oci_client::errors::OciDistributionError;
use oci_client::secrets::RegistryAuth;

use crate::access::{Access, RequestFacts};
use crate::identity::Principal;
use crate::registry::{
    CreatedFor, KeyedLocks, MissFuture, ReadMiss, Registry, RegistryError, StreamMissFuture,
    StreamedBlob,
};
use crate::secrets::{Secrets, SecretsError};

/// The event a first pull emits.
pub const PULL_THROUGH_ACTION: &str = "ECR Pull Through Cache Action";
/// Rules per registry, as on ECR.
const MAX_RULES: usize = 50;

/// Manifests berth asks upstreams for.
pub(crate) const ACCEPTED: &[&str] = &[
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
];

/// The upstream each known `upstreamRegistry` names (ECR's table).
const KNOWN: &[(&str, &str)] = &[
    ("ecr-public", "public.ecr.aws"),
    ("k8s", "registry.k8s.io"),
    ("quay", "quay.io"),
    ("docker-hub", "registry-1.docker.io"),
    ("github-container-registry", "ghcr.io"),
    ("gitlab-container-registry", "registry.gitlab.com"),
    ("chainguard", "cgr.dev"),
];

/// Upstreams ECR requires credentials for.
const NEEDS_CREDENTIALS: &[&str] = &[
    "docker-hub",
    "github-container-registry",
    "gitlab-container-registry",
    "azure-container-registry",
    "chainguard",
];

#[derive(Debug, thiserror::Error)]
pub enum PullThroughError {
    #[error("{0}")]
    Invalid(String),
    #[error("A pull through cache rule with these settings already exists for the registry.")]
    AlreadyExists,
    #[error(
        "The pull through cache rule was not found. Specify a valid pull through cache rule and try again."
    )]
    NotFound,
    #[error("The maximum number of pull through cache rules ({MAX_RULES}) has been reached.")]
    LimitExceeded,
    #[error("The specified upstream registry isn't supported.")]
    Unsupported,
    #[error("The ARN of the secret specified in the pull through cache rule was not found.")]
    SecretNotFound,
    #[error("internal error: {0}")]
    Internal(#[from] StoreError),
}

/// A rule as given to `CreatePullThroughCacheRule`.
pub struct NewRule {
    pub prefix: String,
    pub upstream_registry_url: String,
    pub upstream_registry: Option<String>,
    pub upstream_prefix: Option<String>,
    pub credential_arn: Option<String>,
    pub custom_role_arn: Option<String>,
}

tokio::task_local! {
    /// Who made the request that may miss, for deciding whether it may import.
    static CALLER: (Principal, RequestFacts);
    /// Set when the request was answered from the cache without the
    /// upstream's word on it (the upstream could not be asked).
    static STALE: std::sync::atomic::AtomicBool;
}

tokio::task_local! {
    /// Set while berth itself fills what it already chose to cache (the
    /// rest of a cached image's blobs, a scan reading a cached layer).
    static BERTH: ();
}

/// Runs `work` as berth's own: misses in repositories that exist are
/// filled without a caller's permission (their import was allowed when
/// the image was first pulled).
pub async fn as_berth<F: std::future::Future>(work: F) -> F::Output {
    BERTH.scope((), work).await
}

/// Runs `work` (a request's handling) with its caller known to the cache;
/// also says whether the answer was served stale.
pub async fn as_caller<F: std::future::Future>(
    principal: Principal,
    facts: RequestFacts,
    work: F,
) -> (F::Output, bool) {
    STALE
        .scope(std::sync::atomic::AtomicBool::new(false), async {
            let output = CALLER.scope((principal, facts), work).await;
            let stale = STALE.with(|s| s.load(std::sync::atomic::Ordering::Relaxed));
            (output, stale)
        })
        .await
}

/// Who made the request being handled, when a door said (see [`as_caller`]).
pub(crate) fn caller() -> Option<(Principal, RequestFacts)> {
    CALLER.try_with(|c| c.clone()).ok()
}

/// The `Warning` a response served stale carries (RFC 9111's code 110).
pub const STALE_WARNING: &str =
    "110 berth \"Response is stale: the upstream registry could not be asked\"";

fn note_stale() {
    crate::metrics::METRICS.pull_through_stale();
    let _ = STALE.try_with(|s| s.store(true, std::sync::atomic::Ordering::Relaxed));
}

/// An upstream reached over plain HTTP (`http://…` in the rule's URL) or HTTPS.
pub(crate) struct Upstream {
    pub(crate) host: String,
    pub(crate) plain: bool,
}

pub(crate) fn upstream_of(url: &str, insecure: &[String]) -> Upstream {
    let (plain, rest) = match url.split_once("://") {
        Some(("http", rest)) => (true, rest),
        Some((_, rest)) => (false, rest),
        None => (false, url),
    };
    let host = rest.trim_end_matches('/').to_string();
    Upstream {
        plain: plain || insecure.contains(&host),
        host,
    }
}

/// Strips a prefix's trailing `/`; `ROOT` stays.
fn normal_prefix(prefix: &str) -> String {
    prefix.trim_end_matches('/').to_string()
}

/// Long-lived, one per node. `clients` keeps one oci-client per upstream
/// (its bearer tokens cached until they expire); `locks` makes concurrent
/// misses of one manifest or blob on this node reach upstream once.
pub struct PullThrough {
    store: Arc<dyn MetadataStore>,
    access: Arc<Access>,
    /// Where upstream credentials (`credentialArn`) are kept, sealed.
    secrets: Arc<Secrets>,
    registry: Mutex<Weak<Registry>>,
    clients: Mutex<HashMap<String, Arc<oci_client::Client>>>,
    locks: KeyedLocks,
    /// Upstream hosts (`host[:port]`) reached over plain HTTP (`--insecure-upstream`).
    insecure: Vec<String>,
    /// How long a cached tag is trusted before the upstream is asked again.
    ttl: std::time::Duration,
    /// The rules, read from the store at most every [`RULES_CACHE`] (every
    /// tag read asks which rule covers its repository); dropped on change here.
    rules: Mutex<Option<(Arc<Vec<PullThroughRule>>, std::time::Instant)>>,
    /// Upstream hosts that answered 429, and until when this node leaves them be.
    backoff: Mutex<HashMap<String, std::time::Instant>>,
    /// When this node last checked a cached tag upstream (`repo:tag` → ms).
    /// Per node: with N nodes a tag is checked at most N times per `ttl`.
    checked: Mutex<HashMap<String, i64>>,
}

/// How long the rules are read from memory (other nodes' changes show within it).
const RULES_CACHE: std::time::Duration = std::time::Duration::from_secs(5);
/// Tags remembered as checked at most; the memory starts over past it.
const CHECKED_ENTRIES: usize = 100_000;
/// How long an upstream that answered 429 is left alone (each miss meanwhile
/// fails at once with `UpstreamTooManyRequests`).
const BACKOFF: std::time::Duration = std::time::Duration::from_secs(2);
/// Pieces of a streamed blob in flight between the upstream, the store and the reader.
const PIECES: usize = 16;
/// Upstream pieces already arrived that are joined into one at most.
const PIECES_JOINED: usize = 64;
/// How long a streamed blob's reader may take to accept a piece before it
/// is left behind (the fetch into storage goes on).
const READER_STALL: std::time::Duration = std::time::Duration::from_secs(30);
/// A fetch whose node has not renewed its claim for this long is taken over.
const FLIGHT_STALE: std::time::Duration = std::time::Duration::from_secs(30);
/// How long a miss waits for another node's fetch of the same thing.
const FLIGHT_WAIT: std::time::Duration = std::time::Duration::from_secs(600);

/// When an image's blobs are stored, relative to its manifest.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Blobs {
    /// Before it: the image is whole when it appears (a copy).
    First,
    /// After it, as they are asked for (the cache).
    Follow,
}

/// The blobs an image manifest names (its config and layers).
fn image_blobs(json: &serde_json::Value) -> Vec<Digest> {
    std::iter::once(&json["config"])
        .chain(json["layers"].as_array().into_iter().flatten())
        .filter_map(|d| d["digest"].as_str())
        .filter_map(|d| d.parse::<Digest>().ok())
        .collect()
}

/// What a node waiting on another's fetch looks for.
#[derive(Clone, Copy)]
enum Awaited<'a> {
    Manifest(&'a RepositoryName, &'a Reference),
    Blob(&'a RepositoryName, &'a Digest),
}

/// This node's claim on one upstream fetch, renewed until it ends.
struct Flight {
    store: Arc<dyn MetadataStore>,
    key: String,
    node: String,
    beat: tokio::task::JoinHandle<()>,
}

impl Flight {
    async fn end(self) {
        self.beat.abort();
        if let Err(e) = self.store.end_flight(&self.key, &self.node).await {
            // Taken over by another node after FLIGHT_STALE.
            tracing::warn!(key = %self.key, error = %e, "could not end a pull-through fetch claim");
        }
    }
}

impl PullThrough {
    pub fn new(
        store: Arc<dyn MetadataStore>,
        access: Arc<Access>,
        secrets: Arc<Secrets>,
        insecure: Vec<String>,
        ttl: std::time::Duration,
    ) -> Arc<PullThrough> {
        Arc::new(PullThrough {
            store,
            access,
            secrets,
            registry: Mutex::new(Weak::new()),
            clients: Mutex::new(HashMap::new()),
            locks: KeyedLocks::default(),
            insecure,
            ttl,
            rules: Mutex::new(None),
            backoff: Mutex::new(HashMap::new()),
            checked: Mutex::new(HashMap::new()),
        })
    }

    /// Plugs the cache into the registry's read misses.
    pub fn attach(self: &Arc<Self>, registry: &Arc<Registry>) {
        *self.registry.lock().expect("registry lock") = Arc::downgrade(registry);
        registry.on_read_miss(self.clone());
    }

    fn registry(&self) -> Option<Arc<Registry>> {
        self.registry.lock().expect("registry lock").upgrade()
    }

    pub async fn rules(&self) -> Result<Vec<PullThroughRule>, PullThroughError> {
        Ok(self.store.pull_through_rules().await?)
    }

    pub async fn create_rule(&self, new: NewRule) -> Result<PullThroughRule, PullThroughError> {
        let prefix = normal_prefix(&new.prefix);
        let upstream_prefix = new
            .upstream_prefix
            .as_deref()
            .map_or_else(|| "ROOT".to_string(), normal_prefix);
        if prefix != "ROOT" && prefix.len() < 2 {
            return Err(PullThroughError::Invalid(
                "The ecrRepositoryPrefix must be between 2 and 30 characters".into(),
            ));
        }
        let url = new.upstream_registry_url.trim().to_string();
        if url.is_empty() || url.contains(char::is_whitespace) {
            return Err(PullThroughError::Unsupported);
        }
        if let Some(kind) = &new.upstream_registry {
            let host = upstream_of(&url, &self.insecure).host;
            let known = KNOWN.iter().find(|(k, _)| k == kind).map(|(_, h)| *h);
            let matches = match (kind.as_str(), known) {
                (_, Some(expected)) => host == expected,
                ("ecr", _) => host.contains(".dkr.ecr."),
                ("azure-container-registry", _) => host.ends_with(".azurecr.io"),
                _ => true,
            };
            if !matches {
                return Err(PullThroughError::Invalid(format!(
                    "The upstream registry URL '{url}' does not match the upstream registry '{kind}'"
                )));
            }
            if NEEDS_CREDENTIALS.contains(&kind.as_str()) && new.credential_arn.is_none() {
                return Err(PullThroughError::Invalid(format!(
                    "A credentialArn is required for the upstream registry '{kind}'"
                )));
            }
        }
        if let Some(arn) = &new.credential_arn {
            self.credentials(arn).await?;
        }
        if self.store.pull_through_rules().await?.len() >= MAX_RULES {
            return Err(PullThroughError::LimitExceeded);
        }
        let now = now_millis();
        let rule = PullThroughRule {
            prefix,
            upstream_registry_url: url.clone(),
            upstream_registry: new.upstream_registry.or_else(|| {
                let host = upstream_of(&url, &self.insecure).host;
                KNOWN
                    .iter()
                    .find(|(_, h)| *h == host)
                    .map(|(k, _)| k.to_string())
            }),
            upstream_prefix,
            credential_arn: new.credential_arn,
            custom_role_arn: new.custom_role_arn,
            created_at: now,
            updated_at: now,
        };
        if !self.store.create_pull_through_rule(&rule).await? {
            return Err(PullThroughError::AlreadyExists);
        }
        self.forget_rules();
        Ok(rule)
    }

    pub async fn rule(&self, prefix: &str) -> Result<PullThroughRule, PullThroughError> {
        let prefix = normal_prefix(prefix);
        self.store
            .pull_through_rules()
            .await?
            .into_iter()
            .find(|r| r.prefix == prefix)
            .ok_or(PullThroughError::NotFound)
    }

    pub async fn update_rule(
        &self,
        prefix: &str,
        credential_arn: Option<String>,
        custom_role_arn: Option<String>,
    ) -> Result<PullThroughRule, PullThroughError> {
        let mut rule = self.rule(prefix).await?;
        if let Some(arn) = &credential_arn {
            self.credentials(arn).await?;
        }
        rule.credential_arn = credential_arn;
        rule.custom_role_arn = custom_role_arn;
        rule.updated_at = now_millis();
        if !self.store.update_pull_through_rule(&rule).await? {
            return Err(PullThroughError::NotFound);
        }
        self.forget_rules();
        Ok(rule)
    }

    pub async fn delete_rule(&self, prefix: &str) -> Result<PullThroughRule, PullThroughError> {
        let rule = self
            .store
            .delete_pull_through_rule(&normal_prefix(prefix))
            .await?
            .ok_or(PullThroughError::NotFound)?;
        self.forget_rules();
        Ok(rule)
    }

    /// Whether the rule's upstream answers: `Err` says why not.
    pub async fn validate(&self, rule: &PullThroughRule) -> Result<(), String> {
        let upstream = upstream_of(&rule.upstream_registry_url, &self.insecure);
        let scheme = if upstream.plain { "http" } else { "https" };
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .map_err(|e| e.to_string())?;
        let response = client
            .get(format!("{scheme}://{}/v2/", upstream.host))
            .send()
            .await
            .map_err(|e| format!("The upstream registry could not be reached: {e}"))?;
        match response.status().as_u16() {
            200 => Ok(()),
            // A token challenge: the registry is there; anonymous pulls get tokens.
            401 if response.headers().contains_key("www-authenticate") => Ok(()),
            status => Err(format!(
                "The upstream registry answered {status} to GET /v2/"
            )),
        }
    }

    /// The rule a repository falls under (the longest prefix; `ROOT` for
    /// what no other prefix takes) and the upstream repository it mirrors.
    /// The rules, from memory when read less than [`RULES_CACHE`] ago.
    async fn cached_rules(&self) -> Result<Arc<Vec<PullThroughRule>>, StoreError> {
        if let Some((rules, at)) = &*self.rules.lock().expect("rules lock")
            && at.elapsed() < RULES_CACHE
        {
            return Ok(rules.clone());
        }
        let rules = Arc::new(self.store.pull_through_rules().await?);
        *self.rules.lock().expect("rules lock") = Some((rules.clone(), std::time::Instant::now()));
        Ok(rules)
    }

    fn forget_rules(&self) {
        *self.rules.lock().expect("rules lock") = None;
    }

    async fn route(
        &self,
        repository: &RepositoryName,
    ) -> Result<Option<(PullThroughRule, String)>, StoreError> {
        let rules = self.cached_rules().await?;
        let name = repository.as_str();
        let best = rules
            .iter()
            .filter(|r| r.prefix != "ROOT")
            .filter(|r| {
                name.strip_prefix(r.prefix.as_str())
                    .is_some_and(|rest| rest.starts_with('/') && rest.len() > 1)
            })
            .max_by_key(|r| r.prefix.len())
            .or_else(|| rules.iter().find(|r| r.prefix == "ROOT"));
        Ok(best.map(|rule| {
            let rest = if rule.prefix == "ROOT" {
                name
            } else {
                &name[rule.prefix.len() + 1..]
            };
            let upstream = if rule.upstream_prefix == "ROOT" {
                rest.to_string()
            } else {
                format!("{}/{rest}", rule.upstream_prefix)
            };
            (rule.clone(), upstream)
        }))
    }

    /// The upstream credentials a `credentialArn` names: a secret holding
    /// `{"username": …, "accessToken": …}`, as ECR reads it.
    async fn credentials(&self, arn: &str) -> Result<RegistryAuth, PullThroughError> {
        let (_, value) = match self.secrets.value(arn).await {
            Ok(found) => found,
            Err(SecretsError::NotFound) => return Err(PullThroughError::SecretNotFound),
            Err(SecretsError::Internal(e)) => return Err(e.into()),
            Err(_) => return Err(PullThroughError::SecretNotFound),
        };
        let json: serde_json::Value = serde_json::from_str(&value.0).unwrap_or_default();
        match (json["username"].as_str(), json["accessToken"].as_str()) {
            (Some(user), Some(token)) => {
                Ok(RegistryAuth::Basic(user.to_string(), token.to_string()))
            }
            _ => Err(PullThroughError::Invalid(
                "The secret must hold a JSON object with username and accessToken".into(),
            )),
        }
    }

    /// How to authenticate to a rule's upstream.
    async fn auth_for(&self, rule: &PullThroughRule) -> Result<RegistryAuth, RegistryError> {
        match &rule.credential_arn {
            None => Ok(RegistryAuth::Anonymous),
            Some(arn) => match self.credentials(arn).await {
                Ok(auth) => Ok(auth),
                Err(PullThroughError::Internal(e)) => Err(e.into()),
                Err(e) => Err(RegistryError::Upstream {
                    code: "UpstreamAccessDenied",
                    message: format!("the rule's upstream credentials cannot be used: {e}"),
                }),
            },
        }
    }

    /// Whether a rule covers `repository` (its first pull may create it).
    pub async fn covers(&self, repository: &RepositoryName) -> Result<bool, StoreError> {
        Ok(self.route(repository).await?.is_some())
    }

    /// The client for an upstream and the credentials used there (oci-client
    /// keeps one set of credentials and its tokens per registry: a rule with
    /// other credentials, or rotated ones, gets a client of its own).
    fn client(&self, upstream: &Upstream, auth: &RegistryAuth) -> Arc<oci_client::Client> {
        use sha2::Digest as _;
        let who = match auth {
            RegistryAuth::Anonymous => String::new(),
            RegistryAuth::Basic(user, secret) => {
                hex::encode(sha2::Sha256::digest(format!("basic\0{user}\0{secret}")))
            }
            RegistryAuth::Bearer(token) => {
                hex::encode(sha2::Sha256::digest(format!("bearer\0{token}")))
            }
        };
        let key = format!("{}|{}|{who}", upstream.plain, upstream.host);
        self.clients
            .lock()
            .expect("clients lock")
            .entry(key)
            .or_insert_with(|| {
                let protocol = if upstream.plain {
                    oci_client::client::ClientProtocol::Http
                } else {
                    oci_client::client::ClientProtocol::Https
                };
                Arc::new(oci_client::Client::new(oci_client::client::ClientConfig {
                    protocol,
                    connect_timeout: Some(std::time::Duration::from_secs(10)),
                    read_timeout: Some(std::time::Duration::from_secs(60)),
                    ..Default::default()
                }))
            })
            .clone()
    }

    /// Whether the request's caller may make berth import into `repository`
    /// (and create it); `false` without a caller (background work).
    async fn may_import(
        &self,
        repository: &RepositoryName,
        exists: bool,
    ) -> Result<bool, RegistryError> {
        if BERTH.try_with(|_| ()).is_ok() {
            return Ok(exists);
        }
        let Ok((principal, facts)) = CALLER.try_with(|c| c.clone()) else {
            return Ok(false);
        };
        let arn = self.access.repository_arn(repository.as_str());
        let mut actions = vec!["ecr:BatchImportUpstreamImage"];
        if !exists {
            actions.push("ecr:CreateRepository");
        }
        for action in actions {
            match self
                .access
                .check(Some(&principal), action, &arn, Some(repository), &facts)
                .await
            {
                Ok(()) => {}
                Err(crate::access::AccessError::Denied(message)) => {
                    tracing::info!(repository = %repository, action, "pull-through import refused");
                    let _ = message;
                    return Ok(false);
                }
                Err(crate::access::AccessError::Internal(e)) => return Err(e.into()),
            }
        }
        Ok(true)
    }

    async fn fetch_manifest(
        &self,
        repository: &RepositoryName,
        reference: &Reference,
    ) -> Result<bool, RegistryError> {
        let Some(registry) = self.registry() else {
            return Ok(false);
        };
        let Some((rule, upstream_repository)) = self.route(repository).await? else {
            return Ok(false);
        };
        let exists = self.store.repository_exists(repository).await?;
        if !self.may_import(repository, exists).await? {
            return Ok(false);
        }
        let _single = self.locks.lock(&format!("{repository}:{reference}")).await;
        // Someone else's miss may have brought it meanwhile.
        if self
            .store
            .get_manifest(repository, reference)
            .await?
            .is_some()
        {
            return Ok(true);
        }
        // One node fetches; the others wait for what it brings.
        let key = format!("m:{repository}:{reference}");
        let arrived = Awaited::Manifest(repository, reference);
        let Some(flight) = self.fly(&key, registry.node_id(), arrived).await? else {
            return Ok(true);
        };
        let host = upstream_of(&rule.upstream_registry_url, &self.insecure).host;
        let work = self.fetch_manifest_now(
            &registry,
            &rule,
            &upstream_repository,
            repository,
            reference,
        );
        self.guarded(flight, &host, work).await
    }

    /// Fetches a manifest (and what it needs) from the upstream now.
    async fn fetch_manifest_now(
        &self,
        registry: &Registry,
        rule: &PullThroughRule,
        upstream_repository: &str,
        repository: &RepositoryName,
        reference: &Reference,
    ) -> Result<bool, RegistryError> {
        let upstream = upstream_of(&rule.upstream_registry_url, &self.insecure);
        let auth = self.auth_for(rule).await?;
        let client = self.client(&upstream, &auth);
        let upstream_repository = upstream_repository.to_string();
        let image = match reference {
            Reference::Tag(tag) => oci_client::Reference::with_tag(
                upstream.host.clone(),
                upstream_repository.clone(),
                tag.to_string(),
            ),
            Reference::Digest(digest) => oci_client::Reference::with_digest(
                upstream.host.clone(),
                upstream_repository.clone(),
                digest.to_string(),
            ),
        };
        let (content, _) = match client.pull_manifest_raw(&image, &auth, ACCEPTED).await {
            Ok(found) => found,
            Err(e) => return upstream_failure(e, rule),
        };
        registry
            .ensure_repository_for(repository, CreatedFor::PullThrough)
            .await?;
        let mut detail = serde_json::json!({
            "sync-status": "SUCCESS",
            "ecr-repository-prefix": rule.prefix,
            "repository-name": repository.as_str(),
            "upstream-registry-url": rule.upstream_registry_url,
        });
        match reference {
            Reference::Tag(tag) => detail["image-tag"] = serde_json::json!(tag.as_str()),
            Reference::Digest(digest) => {
                detail["image-digest"] = serde_json::json!(digest.to_string())
            }
        }
        // Recorded with the manifest, in its transaction.
        let event = berth_store::NewEvent {
            at: now_millis(),
            detail_type: PULL_THROUGH_ACTION.into(),
            detail: detail.to_string(),
        };
        self.store_manifest(
            registry,
            &client,
            &image,
            &auth,
            repository,
            reference,
            content,
            Blobs::Follow,
            Some(event),
        )
        .await?;
        tracing::info!(repository = %repository, reference = %reference, upstream = %rule.upstream_registry_url, "pulled through from upstream");
        if let Reference::Tag(tag) = reference {
            self.note_checked(repository, tag);
        }
        Ok(true)
    }

    /// Refuses at once while `host` is backed off (it answered 429 lately).
    fn check_backoff(&self, host: &str) -> Result<(), RegistryError> {
        let mut backoff = self.backoff.lock().expect("backoff lock");
        match backoff.get(host) {
            Some(until) if std::time::Instant::now() < *until => Err(RegistryError::Upstream {
                code: "UpstreamTooManyRequests",
                message: format!(
                    "the upstream {host} asked to slow down; berth waits before asking again"
                ),
            }),
            Some(_) => {
                backoff.remove(host);
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// Leaves `host` alone for [`BACKOFF`] when it answered 429.
    fn note_429<T>(&self, host: &str, fetched: &Result<T, RegistryError>) {
        if let Err(RegistryError::Upstream {
            code: "UpstreamTooManyRequests",
            ..
        }) = fetched
        {
            self.backoff
                .lock()
                .expect("backoff lock")
                .insert(host.to_string(), std::time::Instant::now() + BACKOFF);
        }
    }

    /// Runs a claimed fetch unless `host` is backed off, notes a 429 it
    /// meets (the host is then left alone for [`BACKOFF`]), and ends the claim.
    async fn guarded<T>(
        &self,
        flight: Flight,
        host: &str,
        work: impl std::future::Future<Output = Result<T, RegistryError>>,
    ) -> Result<T, RegistryError> {
        let result = match self.check_backoff(host) {
            Ok(()) => {
                let fetched = work.await;
                self.note_429(host, &fetched);
                fetched
            }
            // Backed off: not asked, and the back-off is not prolonged.
            Err(e) => Err(e),
        };
        flight.end().await;
        result
    }

    /// Whether what a fetch brings is here (fetches end after storing it).
    async fn arrived(&self, arrived: Awaited<'_>) -> Result<bool, RegistryError> {
        Ok(match arrived {
            Awaited::Manifest(repository, reference) => self
                .store
                .get_manifest(repository, reference)
                .await?
                .is_some(),
            Awaited::Blob(repository, digest) => {
                self.store.blob_size(repository, digest).await?.is_some()
            }
        })
    }

    /// This node's claim on the fetch of `key`, renewed until it ends;
    /// `None` while another node (or request) holds it.
    async fn claim(&self, key: &str, node: &str) -> Result<Option<Flight>, RegistryError> {
        let now = now_millis();
        let stale_before = now - FLIGHT_STALE.as_millis() as i64;
        if !self
            .store
            .claim_flight(key, node, now, stale_before)
            .await?
        {
            return Ok(None);
        }
        let (store, key_owned, node_owned) =
            (self.store.clone(), key.to_string(), node.to_string());
        let beat = tokio::spawn(async move {
            loop {
                tokio::time::sleep(FLIGHT_STALE / 6).await;
                let _ = store
                    .renew_flight(&key_owned, &node_owned, now_millis())
                    .await;
            }
        });
        Ok(Some(Flight {
            store: self.store.clone(),
            key: key.to_string(),
            node: node.to_string(),
            beat,
        }))
    }

    /// Waits until this node holds the fetch of `key` (single-flight
    /// through the metadata store, renewed while it runs) — or until
    /// `arrived` says another node brought it (`None`).
    async fn fly(
        &self,
        key: &str,
        node: &str,
        arrived: Awaited<'_>,
    ) -> Result<Option<Flight>, RegistryError> {
        let deadline = std::time::Instant::now() + FLIGHT_WAIT;
        loop {
            if let Some(flight) = self.claim(key, node).await? {
                // The claim may follow the end of another's fetch.
                if self.arrived(arrived).await? {
                    flight.end().await;
                    return Ok(None);
                }
                return Ok(Some(flight));
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            if self.arrived(arrived).await? {
                return Ok(None);
            }
            if std::time::Instant::now() > deadline {
                return Err(RegistryError::Upstream {
                    code: "UpstreamUnavailable",
                    message: "another node is still fetching it from the upstream".into(),
                });
            }
        }
    }

    /// Stores a manifest from upstream, an index's children first. A copy
    /// (`Blobs::First`) brings an image's blobs before its manifest, so it
    /// is whole when it becomes visible; the cache (`Blobs::Follow`) stores
    /// the manifest at once and the blobs as they are asked for (and a
    /// job fetches the rest, see [`PullThrough::fill`]).
    #[allow(clippy::too_many_arguments)]
    fn store_manifest<'a>(
        &'a self,
        registry: &'a Registry,
        client: &'a oci_client::Client,
        image: &'a oci_client::Reference,
        auth: &'a RegistryAuth,
        repository: &'a RepositoryName,
        reference: &'a Reference,
        content: Bytes,
        blobs: Blobs,
        also: Option<berth_store::NewEvent>,
    ) -> MissFuture<'a> {
        Box::pin(async move {
            if let Reference::Digest(digest) = reference
                && Digest::of(digest.algorithm(), &content) != *digest
            {
                return Err(RegistryError::Upstream {
                    code: "UpstreamUnavailable",
                    message: format!("the upstream sent a manifest that does not hash to {digest}"),
                });
            }
            let json: serde_json::Value = serde_json::from_slice(&content).unwrap_or_default();
            let media_type = json["mediaType"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| {
                    if json["manifests"].is_array() {
                        "application/vnd.oci.image.index.v1+json".into()
                    } else {
                        "application/vnd.oci.image.manifest.v1+json".into()
                    }
                });
            for child in json["manifests"].as_array().into_iter().flatten() {
                let Some(digest) = child["digest"]
                    .as_str()
                    .and_then(|d| d.parse::<Digest>().ok())
                else {
                    continue;
                };
                let child_ref = Reference::Digest(digest.clone());
                if self
                    .store
                    .get_manifest(repository, &child_ref)
                    .await?
                    .is_some()
                {
                    continue;
                }
                let child_image = oci_client::Reference::with_digest(
                    image.registry().to_string(),
                    image.repository().to_string(),
                    digest.to_string(),
                );
                let (bytes, _) = match client.pull_manifest_raw(&child_image, auth, ACCEPTED).await
                {
                    Ok(found) => found,
                    Err(e) => return upstream_error(e),
                };
                self.store_manifest(
                    registry,
                    client,
                    &child_image,
                    auth,
                    repository,
                    &child_ref,
                    bytes,
                    blobs,
                    None,
                )
                .await?;
            }
            if blobs == Blobs::First {
                for digest in &image_blobs(&json) {
                    self.fetch_blob_into(registry, client, image, auth, repository, digest)
                        .await?;
                }
            }
            registry
                .put_fetched_manifest(
                    repository,
                    reference,
                    Some(&media_type),
                    content,
                    blobs == Blobs::Follow,
                    also.into_iter().collect(),
                )
                .await?;
            Ok(true)
        })
    }

    /// Streams one blob from upstream into storage (verified as a push is).
    async fn fetch_blob_into(
        &self,
        registry: &Registry,
        client: &oci_client::Client,
        image: &oci_client::Reference,
        auth: &RegistryAuth,
        repository: &RepositoryName,
        digest: &Digest,
    ) -> Result<(), RegistryError> {
        let _single = self.locks.lock(&format!("{repository}@{digest}")).await;
        if self.store.blob_size(repository, digest).await?.is_some() {
            return Ok(());
        }
        let key = format!("b:{repository}@{digest}");
        let arrived = Awaited::Blob(repository, digest);
        let Some(flight) = self.fly(&key, registry.node_id(), arrived).await? else {
            return Ok(());
        };
        let work = self.fetch_blob_now(registry, client, image, auth, repository, digest);
        self.guarded(flight, image.registry(), work).await
    }

    /// Asks the upstream for one blob: its size (when said) and bytes.
    async fn open_blob(
        &self,
        client: &oci_client::Client,
        image: &oci_client::Reference,
        auth: &RegistryAuth,
        digest: &Digest,
    ) -> Result<oci_client::client::SizedStream, RegistryError> {
        let blob_image = oci_client::Reference::with_digest(
            image.registry().to_string(),
            image.repository().to_string(),
            digest.to_string(),
        );
        // A token for this repository (Bearer upstreams), or the Basic credentials.
        if let Err(e) = client
            .auth(&blob_image, auth, oci_client::RegistryOperation::Pull)
            .await
        {
            return upstream_error(e).and(Err(RegistryError::BlobUnknown));
        }
        // Asked from byte 0 on: the answer (206, or 200 from an upstream
        // that ignores ranges) is then not hashed by oci-client as well as
        // by the store, which verifies every blob it keeps.
        match client
            .pull_blob_stream_partial(&blob_image, digest.to_string().as_str(), 0, None)
            .await
        {
            Ok(
                oci_client::client::BlobResponse::Full(s)
                | oci_client::client::BlobResponse::Partial(s),
            ) => Ok(s),
            // Not upstream: unknown here too.
            Err(e) => upstream_error(e).and(Err(RegistryError::BlobUnknown)),
        }
    }

    /// Streams one blob from the upstream into storage now.
    async fn fetch_blob_now(
        &self,
        registry: &Registry,
        client: &oci_client::Client,
        image: &oci_client::Reference,
        auth: &RegistryAuth,
        repository: &RepositoryName,
        digest: &Digest,
    ) -> Result<(), RegistryError> {
        let sized = self.open_blob(client, image, auth, digest).await?;
        let mut stream = sized.stream.map_err(std::io::Error::other);
        store_blob(registry, repository, digest, &mut stream).await
    }

    /// A missing blob streamed to the reader while it is stored: the
    /// fetch runs in its own task (it goes on if the reader leaves), the
    /// reader gets each piece once the next has arrived and the last only
    /// once the whole blob is verified and stored — a blob that is not
    /// what was asked for ends the reader's body in an error.
    async fn stream_blob(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
    ) -> Result<Option<StreamedBlob>, RegistryError> {
        let Some(registry) = self.registry() else {
            return Ok(None);
        };
        let Some((rule, upstream_repository)) = self.route(repository).await? else {
            return Ok(None);
        };
        if !self.store.repository_exists(repository).await?
            || !self.may_import(repository, true).await?
        {
            return Ok(None);
        }
        let flight = {
            let _single = self.locks.lock(&format!("{repository}@{digest}")).await;
            if self.store.blob_size(repository, digest).await?.is_some() {
                return Ok(None);
            }
            // Someone is fetching it already: the read waits for it instead.
            let key = format!("b:{repository}@{digest}");
            match self.claim(&key, registry.node_id()).await? {
                Some(flight) if self.arrived(Awaited::Blob(repository, digest)).await? => {
                    flight.end().await;
                    return Ok(None);
                }
                Some(flight) => flight,
                None => return Ok(None),
            }
        };
        let upstream = upstream_of(&rule.upstream_registry_url, &self.insecure);
        let opened = match self.check_backoff(&upstream.host) {
            Ok(()) => {
                let auth = self.auth_for(&rule).await?;
                let client = self.client(&upstream, &auth);
                let image = oci_client::Reference::with_digest(
                    upstream.host.clone(),
                    upstream_repository,
                    digest.to_string(),
                );
                let opened = self.open_blob(&client, &image, &auth, digest).await;
                self.note_429(&upstream.host, &opened);
                opened
            }
            Err(e) => Err(e),
        };
        let sized = match opened {
            Ok(sized) => sized,
            Err(e) => {
                flight.end().await;
                return Err(e);
            }
        };
        let size = sized.content_length;
        let (reader, pieces) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(PIECES);
        let (repository, digest) = (repository.clone(), digest.clone());
        tokio::spawn(async move {
            let (to_store, stored_pieces) = tokio::sync::mpsc::channel(PIECES);
            let store = tokio::spawn(async move {
                let mut stream = receiver_stream(stored_pieces);
                store_blob(&registry, &repository, &digest, &mut stream).await
            });
            let mut reader = Some(reader);
            let mut held: Option<Bytes> = None;
            // What has arrived is passed on as one piece: fewer, larger
            // hand-offs between the tasks, without waiting for more.
            let mut upstream = sized.stream.ready_chunks(PIECES_JOINED);
            while let Some(arrived) = upstream.next().await {
                let piece = match join_pieces(arrived) {
                    Ok(piece) => piece,
                    Err(e) => {
                        let _ = to_store.send(Err(e)).await;
                        break;
                    }
                };
                if let (Some(previous), Some(to_reader)) = (held.replace(piece.clone()), &reader) {
                    // A reader that stops reading is left behind, not waited for.
                    let sent = tokio::time::timeout(READER_STALL, to_reader.send(Ok(previous)));
                    if !matches!(sent.await, Ok(Ok(()))) {
                        reader = None;
                    }
                }
                if to_store.send(Ok(piece)).await.is_err() {
                    break;
                }
            }
            drop(to_store);
            let stored = store.await.unwrap_or_else(|e| {
                Err(RegistryError::Internal(StoreError::Io(
                    std::io::Error::other(e),
                )))
            });
            flight.end().await;
            let Some(reader) = reader else { return };
            let last = match stored {
                Ok(()) => held.map(Ok),
                Err(e) => {
                    tracing::warn!(error = %e, "a blob streamed from the pull-through upstream was not stored");
                    Some(Err(std::io::Error::other(e.to_string())))
                }
            };
            if let Some(last) = last {
                let _ = reader.send(last).await;
            }
        });
        Ok(Some((size, Box::pin(receiver_stream(pieces)))))
    }

    async fn fetch_blob(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
    ) -> Result<bool, RegistryError> {
        let Some(registry) = self.registry() else {
            return Ok(false);
        };
        let Some((rule, upstream_repository)) = self.route(repository).await? else {
            return Ok(false);
        };
        if !self.store.repository_exists(repository).await?
            || !self.may_import(repository, true).await?
        {
            return Ok(false);
        }
        let upstream = upstream_of(&rule.upstream_registry_url, &self.insecure);
        let auth = self.auth_for(&rule).await?;
        let client = self.client(&upstream, &auth);
        let image = oci_client::Reference::with_digest(
            upstream.host.clone(),
            upstream_repository,
            digest.to_string(),
        );
        match self
            .fetch_blob_into(&registry, &client, &image, &auth, repository, digest)
            .await
        {
            Ok(()) => Ok(true),
            Err(RegistryError::BlobUnknown) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// Pieces that arrived together, as one (the first error instead, if any).
fn join_pieces(arrived: Vec<std::io::Result<Bytes>>) -> std::io::Result<Bytes> {
    if arrived.len() == 1 {
        return arrived.into_iter().next().expect("one piece");
    }
    let mut joined = bytes::BytesMut::new();
    for piece in arrived {
        joined.extend_from_slice(&piece?);
    }
    Ok(joined.freeze())
}

/// A channel's receiving end as a stream.
fn receiver_stream<T: Send + 'static>(
    mut receiver: tokio::sync::mpsc::Receiver<T>,
) -> impl futures_util::Stream<Item = T> + Send + Unpin + 'static {
    futures_util::stream::poll_fn(move |cx| receiver.poll_recv(cx))
}

/// Stores a blob read from an upstream (verified as a push is); what is
/// not the blob is the upstream's failure.
async fn store_blob(
    registry: &Registry,
    repository: &RepositoryName,
    digest: &Digest,
    stream: &mut berth_store::ByteStream<'_>,
) -> Result<(), RegistryError> {
    match registry.put_blob(repository, digest, stream).await {
        Ok(()) => Ok(()),
        Err(
            RegistryError::DigestInvalid(m)
            | RegistryError::SizeInvalid(m)
            | RegistryError::UploadInvalid(m),
        ) => Err(RegistryError::Upstream {
            code: "UpstreamUnavailable",
            message: format!("the upstream sent a blob that is not {digest}: {m}"),
        }),
        Err(RegistryError::Internal(StoreError::Io(e))) => Err(RegistryError::Upstream {
            code: "UpstreamUnavailable",
            message: format!("reading {digest} from the upstream failed: {e}"),
        }),
        Err(e) => Err(e),
    }
}

/// What an upstream failure means for the read that missed.
fn upstream_failure(
    e: OciDistributionError,
    rule: &PullThroughRule,
) -> Result<bool, RegistryError> {
    tracing::warn!(upstream = %rule.upstream_registry_url, error = %e, "the pull-through upstream failed");
    upstream_error(e)
}

pub(crate) fn upstream_error(e: OciDistributionError) -> Result<bool, RegistryError> {
    use OciDistributionError as E;
    let code = match &e {
        E::ImageManifestNotFoundError(_) => return Ok(false),
        E::ServerError { code: 404, .. } => return Ok(false),
        E::RegistryError { envelope, .. }
            if envelope.errors.iter().any(|x| {
                let code = format!("{:?}", x.code).to_ascii_uppercase();
                code.contains("UNKNOWN")
            }) =>
        {
            return Ok(false);
        }
        E::UnauthorizedError { .. } | E::AuthenticationFailure(_) => "UpstreamAccessDenied",
        E::ServerError {
            code: 401 | 403, ..
        } => "UpstreamAccessDenied",
        E::ServerError { code: 429, .. } => "UpstreamTooManyRequests",
        E::RegistryError { envelope, .. }
            if envelope.errors.iter().any(|x| {
                format!("{:?}", x.code)
                    .to_ascii_uppercase()
                    .contains("DENIED")
            }) =>
        {
            "UpstreamAccessDenied"
        }
        E::RegistryError { envelope, .. }
            if envelope.errors.iter().any(|x| {
                format!("{:?}", x.code)
                    .to_ascii_uppercase()
                    .contains("TOOMANY")
            }) =>
        {
            "UpstreamTooManyRequests"
        }
        _ => "UpstreamUnavailable",
    };
    Err(RegistryError::Upstream {
        code,
        message: format!("The upstream registry could not provide it: {e}"),
    })
}

impl PullThrough {
    fn note_checked(&self, repository: &RepositoryName, tag: &berth_core::Tag) {
        let mut checked = self.checked.lock().expect("checked lock");
        if checked.len() >= CHECKED_ENTRIES {
            checked.clear();
        }
        checked.insert(format!("{repository}:{tag}"), now_millis());
    }

    /// Re-checks a cached tag against the upstream once per `ttl`: when the
    /// upstream's tag names another image, that image is imported and the
    /// tag moved. An upstream that fails leaves the cached image served.
    async fn recheck(
        &self,
        repository: &RepositoryName,
        tag: &berth_core::Tag,
        digest: &Digest,
    ) -> Result<bool, RegistryError> {
        // Repositories no rule covers cost one look at the cached rules.
        let Some((rule, upstream_repository)) = self.route(repository).await? else {
            return Ok(false);
        };
        let key = format!("{repository}:{tag}");
        let now = now_millis();
        {
            let mut checked = self.checked.lock().expect("checked lock");
            match checked.get(&key) {
                Some(at) if now - at < self.ttl.as_millis() as i64 => return Ok(false),
                // First sight on this node: trust the cache for a ttl from now.
                None => {
                    if checked.len() >= CHECKED_ENTRIES {
                        checked.clear();
                    }
                    checked.insert(key, now);
                    return Ok(false);
                }
                Some(_) => {
                    checked.insert(key, now);
                }
            }
        }
        let Some(registry) = self.registry() else {
            return Ok(false);
        };
        let upstream = upstream_of(&rule.upstream_registry_url, &self.insecure);
        let auth = self.auth_for(&rule).await?;
        let client = self.client(&upstream, &auth);
        let image = oci_client::Reference::with_tag(
            upstream.host.clone(),
            upstream_repository,
            tag.to_string(),
        );
        let upstream_digest = match client.fetch_manifest_digest(&image, &auth).await {
            Ok(d) => d,
            Err(e) => {
                note_stale();
                tracing::warn!(repository = %repository, tag = %tag, error = %e,
                    "the upstream could not be asked about a cached tag; serving the cached image");
                return Ok(false);
            }
        };
        if upstream_digest == digest.to_string() {
            return Ok(false);
        }
        let (content, _) = match client.pull_manifest_raw(&image, &auth, ACCEPTED).await {
            Ok(found) => found,
            Err(e) => {
                note_stale();
                tracing::warn!(repository = %repository, tag = %tag, error = %e,
                    "the upstream moved a cached tag but its image could not be fetched; serving the cached one");
                return Ok(false);
            }
        };
        let reference = Reference::Tag(tag.clone());
        let _single = self.locks.lock(&format!("{repository}:{reference}")).await;
        self.store_manifest(
            &registry,
            &client,
            &image,
            &auth,
            repository,
            &reference,
            content,
            Blobs::Follow,
            None,
        )
        .await?;
        tracing::info!(repository = %repository, tag = %tag, from = %digest, to = %upstream_digest,
            "a cached tag moved upstream; moved here too");
        Ok(true)
    }
}

impl ReadMiss for PullThrough {
    fn tag_found<'a>(
        &'a self,
        repository: &'a RepositoryName,
        tag: &'a berth_core::Tag,
        digest: &'a Digest,
    ) -> MissFuture<'a> {
        Box::pin(self.recheck(repository, tag, digest))
    }

    fn manifest<'a>(
        &'a self,
        repository: &'a RepositoryName,
        reference: &'a Reference,
    ) -> MissFuture<'a> {
        Box::pin(self.fetch_manifest(repository, reference))
    }

    fn blob<'a>(&'a self, repository: &'a RepositoryName, digest: &'a Digest) -> MissFuture<'a> {
        Box::pin(self.fetch_blob(repository, digest))
    }

    fn blob_stream<'a>(
        &'a self,
        repository: &'a RepositoryName,
        digest: &'a Digest,
    ) -> StreamMissFuture<'a> {
        Box::pin(self.stream_blob(repository, digest))
    }
}
