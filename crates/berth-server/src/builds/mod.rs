//! Server-side image builds from source bundles. A caller uploads a bundle
//! (a zip, tar or tar.gz holding a `Dockerfile` and its context) as a blob
//! of the target repository, then starts a build naming it by digest. The
//! build is a queued job any node with a builder runs: the bundle is
//! unpacked safely, buildah builds it (`bud --isolation chroot`, no network
//! unless configured, within a deadline), pulling base images from this
//! registry as the caller (Docker Hub, Quay, GHCR… names mapped to their
//! privatize namespaces, so pull-through rules apply and builds work
//! air-gapped), and pushes the image to this registry as the caller.
//! Sources are content-addressed: a build whose source and options match
//! the last successful build of its target, whose tag still names that
//! image, is skipped.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use berth_core::{Digest, Reference, RepositoryName, Tag};
use berth_store::{Build, MetadataStore, NewEvent, NewJob, StoreError, now_millis};
use futures_util::StreamExt;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

use crate::identity::{Identity, Principal};
use crate::registry::{Registry, RegistryError};

/// The job kind that runs one build (`{"id"}`).
pub const BUILD_JOB: &str = "build.image";
/// The event a build's change of state emits.
pub const BUILD_EVENT: &str = "Berth Image Build State Change";
/// A build's log is kept up to this many bytes (its end).
const LOG_KEPT: usize = 1 << 20;
/// How often a running build's new log lines are written.
const LOG_FLUSH: Duration = Duration::from_secs(1);
/// Registries whose images a build pulls from this registry instead, under
/// the namespaces `berth privatize` copies them to.
const MIRRORED: &[(&str, &str)] = &[
    ("docker.io", "dockerhub"),
    ("quay.io", "quay"),
    ("ghcr.io", "ghcr"),
    ("gcr.io", "gcr"),
    ("public.ecr.aws", "ecr-public"),
    ("mcr.microsoft.com", "mcr"),
    ("registry.k8s.io", "k8s"),
];

/// How this node builds. Long-lived; read-only after start.
#[derive(Clone, Debug)]
pub struct BuildConfig {
    /// The builder (buildah); `None`: this node takes no build jobs.
    pub builder: Option<PathBuf>,
    /// A build still running after this is killed (and fails).
    pub timeout: Duration,
    /// Whether `RUN` steps may reach the network.
    pub network: bool,
    /// Where builds unpack their sources and the builder keeps its layers.
    pub work_dir: PathBuf,
    /// `host:port` at which the builder reaches this registry.
    pub registry_host: String,
    /// The largest source bundle accepted, and the most its contents may unpack to.
    pub max_bundle: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("{0}")]
    Invalid(String),
    #[error("The repository with name '{0}' does not exist in the registry")]
    RepositoryNotFound(String),
    #[error("The source bundle {digest} has not been uploaded to the repository '{repository}'")]
    SourceNotFound { digest: String, repository: String },
    #[error(
        "This berth node has no image builder: install buildah on it (Debian and Ubuntu: \
         apt-get install buildah), or send builds to a node that has one"
    )]
    NoBuilder,
    #[error("The build '{0}' does not exist")]
    BuildNotFound(String),
    #[error(transparent)]
    Internal(#[from] StoreError),
}

impl From<RegistryError> for BuildError {
    fn from(e: RegistryError) -> BuildError {
        match e {
            RegistryError::Internal(e) => BuildError::Internal(e),
            other => BuildError::Invalid(other.to_string()),
        }
    }
}

/// What a caller asks to build.
pub struct StartBuild {
    pub repository: RepositoryName,
    pub tag: Tag,
    pub source: Digest,
    pub build_args: BTreeMap<String, String>,
    pub target: Option<String>,
    pub platform: Option<String>,
    /// Build even when the last build of this source is still the tag's image.
    pub force: bool,
}

pub struct Builds {
    store: Arc<dyn MetadataStore>,
    registry: Arc<Registry>,
    identity: Arc<Identity>,
    config: BuildConfig,
}

/// A failure the build's caller must fix (not retried).
struct Failed(String);

impl Builds {
    pub fn new(
        store: Arc<dyn MetadataStore>,
        registry: Arc<Registry>,
        identity: Arc<Identity>,
        config: BuildConfig,
    ) -> Builds {
        Builds {
            store,
            registry,
            identity,
            config,
        }
    }

    /// Whether this node runs builds.
    pub fn can_build(&self) -> bool {
        self.config.builder.is_some()
    }

    /// Starts a build (or records it skipped).
    pub async fn start(&self, caller: &Principal, input: StartBuild) -> Result<Build, BuildError> {
        let StartBuild {
            repository,
            tag,
            source,
            build_args,
            target,
            platform,
            force,
        } = input;
        if !self.can_build() {
            return Err(BuildError::NoBuilder);
        }
        if !self.store.repository_exists(&repository).await? {
            return Err(BuildError::RepositoryNotFound(repository.to_string()));
        }
        let Some(size) = self.registry.stored_blob_size(&repository, &source).await? else {
            return Err(BuildError::SourceNotFound {
                digest: source.to_string(),
                repository: repository.to_string(),
            });
        };
        if size > self.config.max_bundle {
            return Err(BuildError::Invalid(format!(
                "The source bundle is {size} bytes; builds take at most {} bytes",
                self.config.max_bundle
            )));
        }
        for name in build_args.keys() {
            if name.is_empty() || name.contains('=') {
                return Err(BuildError::Invalid(format!(
                    "invalid build argument name '{name}'"
                )));
            }
        }
        let options =
            json!({"buildArgs": build_args, "target": target, "platform": platform}).to_string();
        let key = Digest::of(
            berth_core::Algorithm::Sha256,
            format!("{source}\n{options}").as_bytes(),
        )
        .to_string();
        let now = now_millis();
        let mut build = Build {
            id: uuid::Uuid::new_v4().to_string(),
            repository: repository.to_string(),
            tag: tag.to_string(),
            source_digest: source.to_string(),
            source_size: size as i64,
            build_key: key,
            options,
            status: "QUEUED".into(),
            reason: None,
            image_digest: None,
            requested_by: caller.arn.clone(),
            access_key_id: caller.access_key_id.clone(),
            credential_expires_at: caller.expires_at,
            created_at: now,
            updated_at: now,
        };
        if !force && let Some(image) = self.unchanged(&build).await? {
            build.status = "SKIPPED".into();
            build.image_digest = Some(image);
            build.reason = Some("the source and options are those of the tag's image".into());
            self.store.insert_build(&build, &[event(&build)]).await?;
            return Ok(build);
        }
        let payload = json!({"id": build.id}).to_string();
        let job = NewJob {
            kind: BUILD_JOB,
            payload: &payload,
            singleton: None,
            max_attempts: 3,
            run_after: now,
        };
        self.store.queue_build(&build, &job).await?;
        Ok(build)
    }

    /// The tag's image, when the last successful build with this build's
    /// key made it and the tag still names it.
    async fn unchanged(&self, build: &Build) -> Result<Option<String>, BuildError> {
        let Some(last) = self
            .store
            .last_built(&build.repository, &build.tag, &build.build_key)
            .await?
        else {
            return Ok(None);
        };
        let (Ok(repository), Ok(tag)) = (
            build.repository.parse::<RepositoryName>(),
            build.tag.parse::<Tag>(),
        ) else {
            return Ok(None);
        };
        let now = self
            .store
            .get_manifest(&repository, &Reference::Tag(tag))
            .await?
            .map(|m| m.digest.to_string());
        Ok(now.filter(|d| Some(d) == last.image_digest.as_ref()))
    }

    pub async fn build(&self, id: &str) -> Result<Build, BuildError> {
        self.store
            .build(id)
            .await?
            .ok_or_else(|| BuildError::BuildNotFound(id.to_string()))
    }

    /// Builds of a repository (or all), newest first: a page and the next page's start.
    pub async fn list(
        &self,
        repository: Option<&str>,
        after: Option<&str>,
        limit: u32,
    ) -> Result<(Vec<Build>, Option<String>), BuildError> {
        let before = match after {
            Some(id) => match self.store.build(id).await? {
                Some(b) => Some((b.created_at, b.id)),
                None => return Err(BuildError::Invalid("invalid nextToken".into())),
            },
            None => None,
        };
        let mut page = self
            .store
            .builds(
                repository,
                before.as_ref().map(|(at, id)| (*at, id.as_str())),
                limit + 1,
            )
            .await?;
        let next = (page.len() > limit as usize).then(|| {
            page.truncate(limit as usize);
            page.last().map(|b| b.id.clone()).unwrap_or_default()
        });
        Ok((page, next))
    }

    /// A build's log from byte `offset` on.
    pub async fn log(&self, id: &str, offset: usize) -> Result<(Build, String), BuildError> {
        let build = self.build(id).await?;
        let log = self.store.build_log(id).await?.unwrap_or_default();
        let mut from = offset.min(log.len());
        while !log.is_char_boundary(from) {
            from += 1;
        }
        Ok((build, log[from..].to_string()))
    }

    /// Runs build `id` (the job): `Err` only for what a retry may mend.
    pub async fn run(&self, id: &str) -> Result<(), String> {
        let Some(mut build) = self.store.build(id).await.map_err(|e| e.to_string())? else {
            return Ok(());
        };
        if !matches!(build.status.as_str(), "QUEUED" | "RUNNING") {
            return Ok(());
        }
        build.status = "RUNNING".into();
        build.updated_at = now_millis();
        self.store
            .update_build(&build, &[event(&build)])
            .await
            .map_err(|e| e.to_string())?;
        let dir = self.config.work_dir.join(&build.id);
        let outcome = self.build_in(&build, &dir).await;
        let _ = tokio::fs::remove_dir_all(&dir).await;
        match outcome {
            Ok(digest) => {
                build.status = "SUCCEEDED".into();
                build.image_digest = Some(digest);
            }
            Err(Ok(Failed(reason))) => {
                build.status = "FAILED".into();
                build.reason = Some(reason);
            }
            Err(Err(transient)) => return Err(transient),
        }
        build.updated_at = now_millis();
        self.store
            .update_build(&build, &[event(&build)])
            .await
            .map_err(|e| e.to_string())
    }

    /// Builds and pushes in `dir`: the image's digest.
    async fn build_in(&self, build: &Build, dir: &Path) -> Result<String, Result<Failed, String>> {
        let transient = |e: &dyn std::fmt::Display| Err(e.to_string());
        let failed = |m: String| Ok(Failed(m));
        let Some(builder) = self.config.builder.clone() else {
            return Err(transient(&"this node has no builder"));
        };
        let _ = tokio::fs::remove_dir_all(dir).await;
        tokio::fs::create_dir_all(dir.join("context"))
            .await
            .map_err(|e| transient(&e))?;
        // The bundle, from the blob store to a file.
        let source: Digest = build
            .source_digest
            .parse()
            .map_err(|_| failed("the source digest is invalid".into()))?;
        let mut bytes = match self.registry.read_blob(&source, None).await {
            Ok(s) => s,
            Err(RegistryError::BlobUnknown) => {
                return Err(failed(format!(
                    "the source bundle {source} is gone (garbage collected before the build ran); upload it again"
                )));
            }
            Err(e) => return Err(transient(&e)),
        };
        let bundle = dir.join("bundle");
        let mut file = tokio::fs::File::create(&bundle)
            .await
            .map_err(|e| transient(&e))?;
        while let Some(piece) = bytes.next().await {
            file.write_all(&piece.map_err(|e| transient(&e))?)
                .await
                .map_err(|e| transient(&e))?;
        }
        file.flush().await.map_err(|e| transient(&e))?;
        drop(file);
        // Unpacked safely: nothing lands outside the context directory.
        let limits = berth_build::Limits {
            max_bytes: self.config.max_bundle,
            ..Default::default()
        };
        let context_dir = dir.join("context");
        let extracted = tokio::task::spawn_blocking({
            let (bundle, context_dir) = (bundle.clone(), context_dir.clone());
            move || berth_build::extract(&bundle, &context_dir, &limits)
        })
        .await
        .map_err(|e| transient(&e))?
        .map_err(|e| failed(e.to_string()))?;
        let _ = tokio::fs::remove_file(&bundle).await;
        self.note(
            build,
            &format!(
                "berth: unpacked {} files ({} bytes) from {source}\n",
                extracted.files, extracted.bytes
            ),
        )
        .await;

        // As the caller: a registry password for its key, for pulls and the push.
        let (password, _) = self.identity.issue_registry_token_for_key(
            &build.access_key_id,
            build.credential_expires_at,
            now_millis() / 1000,
        );
        let host = &self.config.registry_host;
        let auth =
            json!({"auths": {host.as_str(): {"auth": base64_of(&format!("AWS:{password}"))}}});
        write_private(&dir.join("auth.json"), auth.to_string().as_bytes())
            .await
            .map_err(|e| transient(&e))?;
        tokio::fs::write(dir.join("registries.conf"), registries_conf(host))
            .await
            .map_err(|e| transient(&e))?;

        let options: serde_json::Value = serde_json::from_str(&build.options).unwrap_or_default();
        let mut build_args: BTreeMap<String, String> = options["buildArgs"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
            .collect();
        // `FROM ${BERTH_REGISTRY}/base:1` names an image in this registry.
        build_args
            .entry("BERTH_REGISTRY".into())
            .or_insert_with(|| host.clone());
        // Base images first, with the network, as the caller; then the
        // build itself, without (unless configured).
        let dockerfile_text = tokio::fs::read_to_string(&extracted.dockerfile)
            .await
            .map_err(|e| failed(format!("the Dockerfile cannot be read: {e}")))?;
        for base in berth_build::base_images(&dockerfile_text, &build_args) {
            let mut pull = vec!["pull".to_string(), "--tls-verify=false".into()];
            if let Some(platform) = options["platform"].as_str() {
                pull.push("--platform".into());
                pull.push(platform.into());
            }
            pull.push(base.clone());
            let pulled = self
                .builder(&builder, build, dir, &pull, true)
                .await
                .map_err(|e| transient(&e))?;
            if let Some(failure) = pulled {
                return Err(failed(format!(
                    "pulling the base image {base} failed: {failure}"
                )));
            }
        }
        let image = format!("localhost/berth-build-{}", build.id);
        let mut bud = vec![
            "bud".to_string(),
            "--isolation".into(),
            "chroot".into(),
            "--layers=false".into(),
            "--tls-verify=false".into(),
            "--pull=never".into(),
            "-f".into(),
            extracted.dockerfile.display().to_string(),
            "--label".into(),
            format!("berth.build.source-digest={source}"),
            "--annotation".into(),
            format!("berth.build.source-digest={source}"),
            "-t".into(),
            image.clone(),
        ];
        for (name, value) in &build_args {
            bud.push("--build-arg".into());
            bud.push(format!("{name}={value}"));
        }
        if let Some(target) = options["target"].as_str() {
            bud.push("--target".into());
            bud.push(target.into());
        }
        if let Some(platform) = options["platform"].as_str() {
            bud.push("--platform".into());
            bud.push(platform.into());
        }
        bud.push(extracted.context.display().to_string());
        let status = self
            .builder(&builder, build, dir, &bud, self.config.network)
            .await
            .map_err(|e| transient(&e))?;
        if let Some(failure) = status {
            return Err(failed(failure));
        }
        let digest_file = dir.join("digest");
        let push = vec![
            "push".to_string(),
            "--tls-verify=false".into(),
            "--digestfile".into(),
            digest_file.display().to_string(),
            image.clone(),
            format!("docker://{host}/{}:{}", build.repository, build.tag),
        ];
        let pushed = self
            .builder(&builder, build, dir, &push, true)
            .await
            .map_err(|e| transient(&e))?;
        let _ = self
            .builder(
                &builder,
                build,
                dir,
                &["rmi".into(), "--force".into(), image],
                true,
            )
            .await;
        if let Some(failure) = pushed {
            return Err(failed(format!("pushing the image failed: {failure}")));
        }
        let digest = tokio::fs::read_to_string(&digest_file)
            .await
            .map_err(|e| transient(&e))?;
        Ok(digest.trim().to_string())
    }

    /// Runs the builder with `args` (its log lines kept as it goes), within
    /// the deadline, at a lower priority than serving, and in a network
    /// namespace of its own (nothing but a loopback that is down) unless
    /// `network`: `None` when it succeeded, else why it failed (its step and
    /// the end of its log).
    async fn builder(
        &self,
        builder: &Path,
        build: &Build,
        dir: &Path,
        args: &[String],
        network: bool,
    ) -> std::io::Result<Option<String>> {
        let storage = self.config.work_dir.join("storage");
        let mut command = tokio::process::Command::new("timeout");
        command
            .arg("--kill-after=10")
            .arg(format!("{}", self.config.timeout.as_secs().max(1)))
            .arg("nice")
            .arg("-n")
            .arg("10");
        if !network {
            command.arg("unshare").arg("--net");
        }
        command
            .arg(builder)
            .arg("--root")
            .arg(storage.join("root"))
            .arg("--runroot")
            .arg(storage.join("run"))
            .arg("--storage-driver")
            .arg("vfs")
            .args(args)
            .env("REGISTRY_AUTH_FILE", dir.join("auth.json"))
            .env("CONTAINERS_REGISTRIES_CONF", dir.join("registries.conf"))
            .env("BUILDAH_ISOLATION", "chroot")
            .env("TMPDIR", dir)
            .current_dir(dir)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        let mut child = command.spawn().map_err(|e| {
            std::io::Error::new(e.kind(), format!("could not start the builder: {e}"))
        })?;
        let (tx, mut rx) = tokio::sync::mpsc::channel::<String>(256);
        for out in [
            child
                .stdout
                .take()
                .map(|o| Box::new(o) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
            child
                .stderr
                .take()
                .map(|o| Box::new(o) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
        ]
        .into_iter()
        .flatten()
        {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut lines = tokio::io::BufReader::new(out).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    if tx.send(line).await.is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        let mut step = None::<String>;
        let mut tail: std::collections::VecDeque<String> = std::collections::VecDeque::new();
        let mut pending = String::new();
        let mut flushed = tokio::time::Instant::now();
        while let Some(line) = rx.recv().await {
            if line.starts_with("STEP ") {
                step = Some(line.clone());
            }
            if tail.len() == 8 {
                tail.pop_front();
            }
            tail.push_back(line.clone());
            pending.push_str(&line);
            pending.push('\n');
            if flushed.elapsed() >= LOG_FLUSH {
                self.note(build, &std::mem::take(&mut pending)).await;
                flushed = tokio::time::Instant::now();
            }
        }
        if !pending.is_empty() {
            self.note(build, &pending).await;
        }
        let status = child.wait().await?;
        if status.success() {
            return Ok(None);
        }
        let tail = tail.into_iter().collect::<Vec<_>>().join("\n");
        Ok(Some(match (status.code(), step) {
            (Some(124 | 137), _) => format!(
                "the build took longer than {} s and was stopped",
                self.config.timeout.as_secs()
            ),
            (_, Some(step)) => format!("{step} failed:\n{tail}"),
            (_, None) => format!("the builder failed:\n{tail}"),
        }))
    }

    /// Adds to a build's log.
    async fn note(&self, build: &Build, text: &str) {
        if let Err(e) = self.store.append_build_log(&build.id, text, LOG_KEPT).await {
            tracing::warn!(build = %build.id, error = %e, "could not keep a build's log");
        }
    }
}

/// The event a build's state emits.
fn event(build: &Build) -> NewEvent {
    NewEvent {
        at: now_millis(),
        detail_type: BUILD_EVENT.into(),
        detail: json!({
            "build-id": build.id,
            "repository-name": build.repository,
            "image-tag": build.tag,
            "source-digest": build.source_digest,
            "build-status": build.status,
            "image-digest": build.image_digest,
            "reason": build.reason,
        })
        .to_string(),
    }
}

fn base64_of(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// What the builder reads for image names: short names are Docker Hub's
/// (as with docker), and public registries' names are mapped to their
/// namespaces here; this registry itself is reached over plain HTTP or TLS
/// without verification (it is the builder's own host).
fn registries_conf(host: &str) -> String {
    let mut conf = format!(
        "unqualified-search-registries = [\"docker.io\"]\nshort-name-mode = \"permissive\"\n\n[[registry]]\nlocation = \"{host}\"\ninsecure = true\n"
    );
    for (public, namespace) in MIRRORED {
        conf.push_str(&format!(
            "\n[[registry]]\nprefix = \"{public}\"\nlocation = \"{host}/{namespace}\"\ninsecure = true\n"
        ));
    }
    conf
}

/// Writes a file only its owner may read.
async fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    std::io::Write::write_all(&mut file, bytes)
}

/// Finds the builder: `buildah` on the `PATH`, unless given.
pub fn find_builder(given: Option<PathBuf>) -> Option<PathBuf> {
    if let Some(path) = given {
        return path.is_file().then_some(path);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("buildah"))
            .find(|p| p.is_file())
    })
}
