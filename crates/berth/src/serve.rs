//! `berth serve`: configuration, storage set-up, the HTTP listener, background
//! work and graceful shutdown.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, ensure};
use axum_server::tls_rustls::RustlsConfig;
use berth_server::gc::Collector;
use berth_server::iam::Iam;
use berth_server::jobs::{JobResult, Jobs, JobsConfig};
use berth_server::lifecycle::Lifecycle;
use berth_server::outbox::Outbox;
use berth_server::promotion::{EVALUATE_JOB, EXPIRE_JOB, PromoteOnScan, Promotion};
use berth_server::registry::Quotas;
use berth_server::scanning::{RESCAN_JOB, SCAN_JOB, ScanOnPush, Scanning, ScanningSettings};
use berth_server::{App, Identity, Registry, RegistryConfig};
use berth_store::{BlobStore, FsBlobStore, MetadataStore, PgStore, S3BlobStore, SqliteStore};
use clap::Args;

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address and port to listen on.
    #[arg(long, env = "BERTH_LISTEN", default_value = "127.0.0.1:5000")]
    listen: SocketAddr,

    #[command(flatten)]
    install: InstallArgs,

    /// An upload not written to for this long is abandoned and its data removed (e.g. `24h`, `90s`).
    #[arg(long, env = "BERTH_UPLOAD_TIMEOUT", default_value = "24h", value_parser = humantime::parse_duration)]
    upload_timeout: Duration,

    /// How often lifecycle policies are applied (e.g. `24h`, `2s`). ECR
    /// applies them within a day.
    #[arg(long, env = "BERTH_LIFECYCLE_INTERVAL", default_value = "24h", value_parser = humantime::parse_duration)]
    lifecycle_interval: Duration,

    /// How often `StartImageScan` may scan the same image (ECR: once a day).
    #[arg(long, env = "BERTH_SCAN_INTERVAL", default_value = "24h", value_parser = humantime::parse_duration)]
    scan_interval: Duration,

    /// How often approved images past their promotion lifetime are removed (e.g. `1m`, `1s`).
    #[arg(long, env = "BERTH_PROMOTION_INTERVAL", default_value = "1m", value_parser = humantime::parse_duration)]
    promotion_interval: Duration,

    /// How long the pull-through cache trusts a cached tag before asking its
    /// upstream again (ECR: 24 hours).
    #[arg(long, env = "BERTH_PULL_THROUGH_TTL", default_value = "24h", value_parser = humantime::parse_duration)]
    pull_through_ttl: Duration,

    /// An upstream registry (`host[:port]`) the pull-through cache reaches
    /// over plain HTTP instead of HTTPS; repeatable.
    #[arg(long, env = "BERTH_INSECURE_UPSTREAMS", value_delimiter = ',')]
    insecure_upstream: Vec<String>,

    /// The image builder this node runs builds with (default: `buildah` on
    /// the `PATH`; a node without one takes no build jobs).
    #[arg(long, env = "BERTH_BUILDER")]
    builder: Option<PathBuf>,

    /// A build still running after this long is stopped and fails.
    #[arg(long, env = "BERTH_BUILD_TIMEOUT", default_value = "30m", value_parser = humantime::parse_duration)]
    build_timeout: Duration,

    /// Lets builds' `RUN` steps reach the network (off: no network).
    #[arg(long, env = "BERTH_BUILD_NETWORK")]
    build_network: bool,

    /// The largest source bundle a build takes, and the most it may unpack to.
    #[arg(long, env = "BERTH_MAX_BUILD_SOURCE", default_value = "2GiB", value_parser = crate::bench::parse_size)]
    max_build_source: u64,

    /// A replication destination, `REGION/REGISTRY_ID=URL[,SECRET]`: the
    /// registry ECR's region and registry id stand for, and the Secrets
    /// Manager secret (name or ARN) with its `{"username", "accessToken"}`;
    /// repeatable.
    #[arg(
        long = "replication-destination",
        env = "BERTH_REPLICATION_DESTINATIONS",
        value_delimiter = ' '
    )]
    replication_destinations: Vec<String>,

    /// How long a webhook that failed waits before the next try (doubling
    /// up to 5 minutes; after 8 tries the event is a dead letter).
    #[arg(long, env = "BERTH_WEBHOOK_BACKOFF", default_value = "1s", value_parser = humantime::parse_duration)]
    webhook_backoff: Duration,

    /// How often garbage collection runs (e.g. `1h`, `2s`).
    #[arg(long, env = "BERTH_GC_INTERVAL", default_value = "1h", value_parser = humantime::parse_duration)]
    gc_interval: Duration,

    /// How long a blob stays after nothing references it any more (an
    /// upload's blob waits this long for its manifest).
    #[arg(long, env = "BERTH_GC_GRACE", default_value = "24h", value_parser = humantime::parse_duration)]
    gc_grace: Duration,

    /// Repositories the registry may hold (ECR's default quota).
    #[arg(long, env = "BERTH_MAX_REPOSITORIES", default_value_t = 100_000)]
    max_repositories: u64,

    /// Images (manifests) one repository may hold (ECR's default quota).
    #[arg(
        long,
        env = "BERTH_MAX_IMAGES_PER_REPOSITORY",
        default_value_t = 20_000
    )]
    max_images_per_repository: u64,

    /// The largest layer (blob), e.g. `52000MiB` (ECR's quota), `10GiB`.
    #[arg(long, env = "BERTH_MAX_LAYER_SIZE", default_value = "52000MiB", value_parser = crate::bench::parse_size)]
    max_layer_size: u64,

    /// Create a repository when something is pushed to one that does not
    /// exist. Off by default, as on ECR: create repositories with
    /// `aws ecr create-repository` first.
    #[arg(long, env = "BERTH_CREATE_ON_PUSH")]
    create_on_push: bool,

    /// PEM certificate chain: serve HTTPS (with `--tls-key`) on the same
    /// listener, HTTP/2 and HTTP/1.1. Reloaded on SIGHUP and when the files change.
    #[arg(long, env = "BERTH_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,

    /// PEM private key of `--tls-cert`.
    #[arg(long, env = "BERTH_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,

    /// Answer blob pulls with a redirect to a short-lived presigned URL of the
    /// object store (S3 storage only), as ECR does, instead of streaming them.
    #[arg(long, env = "BERTH_REDIRECT_BLOB_PULLS")]
    redirect_blob_pulls: bool,

    /// The URL clients reach berth at (`repositoryUri`, `proxyEndpoint`);
    /// default: the `Host` of each request, over http.
    #[arg(long, env = "BERTH_PUBLIC_URL")]
    public_url: Option<String>,

    /// Answer as ECR does under DOMAIN (`amazonaws.com` for tools that
    /// insist on ECR's names): `repositoryUri`, `proxyEndpoint` and the
    /// `/v2/` challenge name `<account>.dkr.ecr.<region>.DOMAIN`, with the
    /// port of the request's `Host` when it has one. Point those names and
    /// `api.ecr.<region>.DOMAIN` at berth (DNS or /etc/hosts); `berth tls
    /// --ecr-domain DOMAIN` certifies them.
    #[arg(long, env = "BERTH_ECR_DOMAIN", conflicts_with = "public_url")]
    ecr_domain: Option<String>,

    /// Background jobs (periodic work, scans, imports …) this node runs at once.
    #[arg(long, env = "BERTH_JOB_WORKERS", default_value_t = 2)]
    job_workers: usize,

    /// A job's claim lapses when its node has not renewed it for this long:
    /// another node then runs it again.
    #[arg(long, env = "BERTH_JOB_LEASE", default_value = "60s", value_parser = humantime::parse_duration)]
    job_lease: Duration,

    /// A failed job is retried after this, then twice as long each time.
    #[arg(long, env = "BERTH_JOB_BACKOFF", default_value = "10s", value_parser = humantime::parse_duration)]
    job_backoff: Duration,

    /// On SIGTERM, how long running jobs get to finish.
    #[arg(long, env = "BERTH_JOB_DRAIN", default_value = "60s", value_parser = humantime::parse_duration)]
    job_drain: Duration,

    /// Open connections at most; more are closed at once.
    #[arg(long, env = "BERTH_MAX_CONNECTIONS", default_value_t = 4096)]
    max_connections: usize,

    /// Requests handled at once at most; more wait their turn.
    #[arg(long, env = "BERTH_MAX_REQUESTS", default_value_t = 1024)]
    max_requests: usize,

    /// How long a client may take to send a request's headers (and a new
    /// connection its first request), and to send the next piece of a body.
    #[arg(long, env = "BERTH_CLIENT_TIMEOUT", default_value = "60s", value_parser = humantime::parse_duration)]
    client_timeout: Duration,

    /// Bytes per second a request body must average over each
    /// `--client-timeout` (a client sending a byte now and then cannot hold
    /// a connection for ever); `0` for no minimum.
    #[arg(long, env = "BERTH_MIN_BODY_RATE", default_value = "1KiB", value_parser = crate::bench::parse_size)]
    min_body_rate: u64,

    /// Open connections from one client address at most (`0`: no limit
    /// but `--max-connections`). Leave it off behind a load balancer or
    /// proxy, where every connection comes from its address.
    #[arg(long, env = "BERTH_MAX_CONNECTIONS_PER_ADDRESS", default_value_t = 0)]
    max_connections_per_address: usize,
}

/// What identifies an install and where its state lives: shared by `serve`
/// and `admin`.
#[derive(clap::Args, Clone, Debug)]
pub struct InstallArgs {
    /// Directory holding the metadata database and the blobs.
    #[arg(long, env = "BERTH_DATA_DIR", default_value = "./berth-data")]
    pub data_dir: PathBuf,

    /// Metadata database: `sqlite://PATH` or `postgres://USER:PASSWORD@HOST/DB`
    /// (optionally `?schema=NAME`). Default: SQLite in the data directory.
    #[arg(long, env = "BERTH_DATABASE_URL")]
    pub database: Option<String>,

    /// Blob storage: a local directory (default: `<data-dir>/blobs`) or
    /// `s3://BUCKET[/PREFIX]`; S3 endpoint, region and credentials come from
    /// the AWS environment (`AWS_ENDPOINT_URL_S3`, `AWS_REGION`, …).
    #[arg(long, env = "BERTH_STORAGE_URL")]
    pub storage: Option<String>,

    /// Where archived images' blobs move (`UpdateImageStorageClass` to
    /// `ARCHIVE`, lifecycle `transition` rules) and come back from on
    /// restore: another directory or `s3://BUCKET[/PREFIX]` (a bucket
    /// lifecycle rule there may move objects to a colder storage class that
    /// reads at once, such as Glacier Instant Retrieval). Unset: archived
    /// blobs stay where they are.
    #[arg(long, env = "BERTH_ARCHIVE_STORAGE_URL")]
    pub archive_storage: Option<String>,

    /// The 12-digit account id of this registry (in ARNs and `registryId`).
    #[arg(long, env = "BERTH_ACCOUNT_ID", default_value = "000000000000")]
    pub account_id: String,

    /// The region berth reports and expects in signatures.
    #[arg(long, env = "BERTH_REGION", default_value = "us-east-1")]
    pub region: String,
}

/// An install's metadata store and identity service, opened.
pub struct Install {
    pub data_dir: PathBuf,
    pub metadata: Arc<dyn MetadataStore>,
    /// How the metadata store is described to the operator.
    pub database: String,
    /// Reads fall back to the archive store when there is one.
    pub blobs: Arc<dyn BlobStore>,
    /// How the blob store is described to the operator.
    pub storage: String,
    /// The hot and archive stores together, when an archive store is named.
    pub archive_tier: Option<Arc<berth_store::tiers::TieredBlobStore>>,
    pub identity: Arc<Identity>,
}

impl InstallArgs {
    /// Opens (creating if needed) the data directory, the metadata store and
    /// the secret key.
    pub async fn open(&self) -> anyhow::Result<Install> {
        std::fs::create_dir_all(&self.data_dir)
            .with_context(|| format!("creating data directory {}", self.data_dir.display()))?;
        let data_dir = self.data_dir.canonicalize()?;
        ensure!(
            self.account_id.len() == 12 && self.account_id.bytes().all(|b| b.is_ascii_digit()),
            "the account id must be 12 digits, not '{}'",
            self.account_id
        );
        let (metadata, database) = open_metadata(self.database.as_deref(), &data_dir).await?;
        let (mut blobs, mut storage) = open_blobs(self.storage.as_deref(), &data_dir)?;
        let mut archive_tier = None;
        if let Some(url) = &self.archive_storage {
            let (cold, described) = open_blobs(Some(url), &data_dir)?;
            let tier = Arc::new(berth_store::tiers::TieredBlobStore::new(blobs, cold));
            storage = format!("{storage} (archive: {described})");
            blobs = tier.clone();
            archive_tier = Some(tier);
        }
        let identity = Arc::new(Identity::new(
            metadata.clone(),
            secret_key(&data_dir)?,
            self.account_id.clone(),
            self.region.clone(),
        ));
        ensure!(
            identity.secret_key_opens_the_database().await?,
            "{} does not open the secrets in the metadata database ({database}): every node \
             sharing a database needs the same secret key; copy {SECRET_KEY} from the node that \
             created the database into {}",
            data_dir.join(SECRET_KEY).display(),
            data_dir.display()
        );
        Ok(Install {
            data_dir,
            metadata,
            database,
            blobs,
            storage,
            archive_tier,
            identity,
        })
    }
}

/// Where the account root's generated access key is written.
const ROOT_CREDENTIALS: &str = "root-credentials";
/// The install's secret key: seals stored secrets, signs registry tokens.
const SECRET_KEY: &str = "secret.key";

/// Publishes `bytes` at `path` (mode 0600) unless a file is already there:
/// written aside, fsync'd, then linked into place, so nodes sharing the data
/// directory never read half a file. False if another writer got there first.
fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<bool> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let aside = path.with_extension(format!("tmp-{}", std::process::id()));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&aside)
        .with_context(|| format!("creating {}", aside.display()))?;
    file.write_all(bytes)?;
    file.sync_all()?;
    let linked = std::fs::hard_link(&aside, path);
    std::fs::remove_file(&aside)?;
    match linked {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e).with_context(|| format!("creating {}", path.display())),
    }
}

/// The install's secret key, created on first start.
fn secret_key(data_dir: &Path) -> anyhow::Result<[u8; 32]> {
    let path = data_dir.join(SECRET_KEY);
    let key = berth_server::identity::new_master_key();
    if !path.exists() && write_private(&path, &key)? {
        return Ok(key);
    }
    std::fs::read(&path)
        .with_context(|| format!("reading {}", path.display()))?
        .try_into()
        .map_err(|_| anyhow::anyhow!("{} is not a 32-byte key", path.display()))
}

/// The setting that records the root key bootstrapped into the database.
const ROOT_BOOTSTRAPPED: &str = "root-key-bootstrapped";

/// The account root's access key: from `BERTH_ROOT_ACCESS_KEY_ID` and
/// `BERTH_ROOT_SECRET_ACCESS_KEY`, else the one generated on first start
/// (kept in `<data-dir>/root-credentials`, mode 0600).
///
/// The key is put into the database once, on the install's first start;
/// afterwards the database is the truth: a key deactivated or deleted there
/// stays so across restarts, and a new root key is made deliberately, with
/// `berth admin rotate-root-key` (or IAM `CreateAccessKey` as the root).
/// Returns a line saying where the key comes from.
async fn root_key(
    identity: &Identity,
    metadata: &dyn MetadataStore,
    data_dir: &Path,
) -> anyhow::Result<String> {
    let root = identity.root_arn();
    let bootstrapped = metadata.get_setting(ROOT_BOOTSTRAPPED).await?.is_some();
    let from_env = (
        std::env::var("BERTH_ROOT_ACCESS_KEY_ID").ok(),
        std::env::var("BERTH_ROOT_SECRET_ACCESS_KEY").ok(),
    );
    let path = data_dir.join(ROOT_CREDENTIALS);
    let (id, secret, source) = if let (Some(id), Some(secret)) = from_env {
        (id, secret, "from BERTH_ROOT_ACCESS_KEY_ID".to_string())
    } else if let Some((id, secret)) = read_credentials(&path)? {
        (id, secret, format!("in {}", path.display()))
    } else if bootstrapped {
        return Ok(
            "root access key: kept in the database (make a new one with `berth admin rotate-root-key`)"
                .to_string(),
        );
    } else {
        let (id, secret) = Identity::generate_access_key("AKIA");
        // Another node sharing the data directory may have written it first: use theirs.
        if !write_private(&path, credentials_file(&id, &secret).as_bytes())? {
            return Box::pin(root_key(identity, metadata, data_dir)).await;
        }
        (
            id,
            secret,
            format!("generated; its secret is in {} (mode 0600)", path.display()),
        )
    };
    if !bootstrapped {
        if !identity.access_key_exists(&id).await? {
            identity.put_access_key(&id, &secret, &root).await?;
        }
        metadata.put_setting(ROOT_BOOTSTRAPPED, Some(&id)).await?;
    } else if !identity.access_key_exists(&id).await? {
        return Ok(format!(
            "root access key {id} ({source}) was deleted; it is not restored (make a new one with `berth admin rotate-root-key`)"
        ));
    }
    Ok(format!("root access key: {id} ({source})"))
}

fn credentials_file(id: &str, secret: &str) -> String {
    format!("[default]\naws_access_key_id = {id}\naws_secret_access_key = {secret}\n")
}

/// The access key in a `root-credentials` file, if there is one.
fn read_credentials(path: &Path) -> anyhow::Result<Option<(String, String)>> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(None);
    };
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.split_once('=').filter(|(k, _)| k.trim() == name))
            .map(|(_, v)| v.trim().to_string())
    };
    match (field("aws_access_key_id"), field("aws_secret_access_key")) {
        (Some(id), Some(secret)) => Ok(Some((id, secret))),
        _ => anyhow::bail!("{} does not hold an access key", path.display()),
    }
}

/// A new root access key, deliberately: stored active and written to
/// `<data-dir>/root-credentials` (replacing the file). Other root keys stay
/// as they are. Returns the key id and secret.
pub async fn rotate_root_key(install: &Install) -> anyhow::Result<(String, String)> {
    let (id, secret) = install
        .identity
        .create_access_key(&install.identity.root_arn())
        .await?;
    install
        .metadata
        .put_setting(ROOT_BOOTSTRAPPED, Some(&id))
        .await?;
    let path = install.data_dir.join(ROOT_CREDENTIALS);
    let aside = path.with_extension("rotated");
    let _ = std::fs::remove_file(&aside);
    write_private(&aside, credentials_file(&id, &secret).as_bytes())?;
    std::fs::rename(&aside, &path).with_context(|| format!("replacing {}", path.display()))?;
    Ok((id, secret))
}

/// The metadata store `url` names (default: SQLite in the data directory),
/// and how to describe it.
async fn open_metadata(
    url: Option<&str>,
    data_dir: &Path,
) -> anyhow::Result<(Arc<dyn MetadataStore>, String)> {
    Ok(match url {
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => (
            Arc::new(
                PgStore::connect(url)
                    .await
                    .context("connecting to PostgreSQL")?,
            ),
            "PostgreSQL".into(),
        ),
        other => {
            let path = match other {
                Some(url) => PathBuf::from(url.strip_prefix("sqlite://").with_context(|| {
                    format!("unsupported database URL '{url}': use sqlite://PATH or postgres://…")
                })?),
                None => data_dir.join("metadata.db"),
            };
            let store = SqliteStore::open(&path)
                .await
                .with_context(|| format!("opening the metadata database {}", path.display()))?;
            (Arc::new(store), format!("SQLite {}", path.display()))
        }
    })
}

/// The blob store `url` names (default: `<data-dir>/blobs`), and how to describe it.
fn open_blobs(url: Option<&str>, data_dir: &Path) -> anyhow::Result<(Arc<dyn BlobStore>, String)> {
    Ok(match url {
        Some(url) if url.starts_with("s3://") => (
            Arc::new(S3BlobStore::open(url).context("opening the S3 blob store")?),
            url.to_string(),
        ),
        other => {
            let dir = other.map_or_else(|| data_dir.join("blobs"), PathBuf::from);
            let store = FsBlobStore::open(&dir).context("opening the blob store")?;
            (Arc::new(store), dir.display().to_string())
        }
    })
}

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let Install {
        data_dir,
        metadata,
        database,
        blobs,
        storage,
        archive_tier,
        identity,
    } = args.install.open().await?;
    let (account_id, region) = (&args.install.account_id, &args.install.region);
    let config = RegistryConfig {
        registry_id: account_id.clone(),
        upload_timeout: args.upload_timeout,
        create_on_push: args.create_on_push,
        redirect_blob_pulls: args.redirect_blob_pulls,
        quotas: Quotas {
            repositories: args.max_repositories,
            images_per_repository: args.max_images_per_repository,
            layer_size: args.max_layer_size,
        },
    };
    let registry = Arc::new(Registry::new(metadata.clone(), blobs.clone(), config));
    if let Some(tier) = archive_tier {
        registry.on_archive_tier(tier);
    }
    let access = Arc::new(berth_server::Access::new(
        metadata.clone(),
        account_id.clone(),
        region.clone(),
    ));

    let root_key_line = root_key(&identity, &*metadata, &data_dir).await?;
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(
            RustlsConfig::from_pem_file(cert, key)
                .await
                .with_context(|| {
                    format!(
                        "loading TLS certificate {} and key {}",
                        cert.display(),
                        key.display()
                    )
                })?,
        ),
        _ => None,
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let listener = std::net::TcpListener::bind(args.listen)
        .with_context(|| format!("listening on {}", args.listen))?;
    listener.set_nonblocking(true)?;
    let address = listener.local_addr()?;
    println!("berth is serving the OCI registry API on {scheme}://{address}/v2/");
    println!(
        "data: {} (metadata: {database}; blobs: {storage})",
        data_dir.display()
    );
    println!("{root_key_line}");
    println!(
        "ECR API: aws ecr describe-repositories --endpoint-url {scheme}://{address} --region {}",
        region
    );
    let insecure = if tls.is_some() {
        ""
    } else {
        "--dest-tls-verify=false "
    };
    println!("push: skopeo copy {insecure}oci:DIR:TAG docker://{address}/REPOSITORY:TAG");
    if let Some(domain) = &args.ecr_domain {
        let [registry, api] = crate::tls::ecr_names(account_id, region, domain.trim_matches('.'));
        println!("answering as ECR: registry {registry}, API {api} (point both at this listener)");
    }

    let lifecycle = Arc::new(Lifecycle::new(metadata.clone(), registry.clone()));
    let upload_interval =
        (args.upload_timeout / 4).clamp(Duration::from_secs(1), Duration::from_secs(600));
    let jobs = Arc::new(Jobs::new(
        metadata.clone(),
        registry.node_id(),
        JobsConfig {
            workers: args.job_workers,
            lease: args.job_lease,
            backoff: args.job_backoff,
            drain: args.job_drain,
            ..JobsConfig::default()
        },
    ));
    jobs.every("upload-cleanup", upload_interval, {
        let registry = registry.clone();
        move |_| clean_uploads(registry.clone())
    });
    jobs.every("lifecycle", args.lifecycle_interval, {
        let lifecycle = lifecycle.clone();
        move |_| enforce_lifecycle(lifecycle.clone())
    });
    jobs.every("credential-purge", CREDENTIAL_PURGE_INTERVAL, {
        let metadata = metadata.clone();
        move |_| purge_expired_credentials(metadata.clone())
    });
    jobs.every("gc", args.gc_interval, {
        let collector = Arc::new(Collector::new(metadata.clone(), blobs.clone()));
        let grace = args.gc_grace;
        move |_| collect_garbage(collector.clone(), grace)
    });
    jobs.every("queue-purge", QUEUE_PURGE_INTERVAL, {
        let metadata = metadata.clone();
        move |_| purge_finished_jobs(metadata.clone())
    });
    let scanning = Arc::new(Scanning::new(
        metadata.clone(),
        registry.clone(),
        ScanningSettings {
            manual_interval: args.scan_interval,
        },
    ));
    jobs.handle(SCAN_JOB, {
        let scanning = scanning.clone();
        move |job| {
            let scanning = scanning.clone();
            async move {
                let (repository, digest) = berth_server::jobs::image_of(&job)?;
                scanning.run(&repository, &digest).await
            }
        }
    });
    jobs.handle(RESCAN_JOB, {
        let scanning = scanning.clone();
        move |_| {
            let scanning = scanning.clone();
            async move { scanning.rescan_continuous().await.map(drop) }
        }
    });
    let promotion = Arc::new(Promotion::new(
        metadata.clone(),
        registry.clone(),
        scanning.clone(),
    ));
    jobs.handle(EVALUATE_JOB, {
        let promotion = promotion.clone();
        move |job| {
            let promotion = promotion.clone();
            async move {
                let (repository, digest) = berth_server::jobs::image_of(&job)?;
                promotion.evaluate(&repository, &digest).await
            }
        }
    });
    jobs.every(EXPIRE_JOB, args.promotion_interval, {
        let promotion = promotion.clone();
        move |_| {
            let promotion = promotion.clone();
            async move { promotion.expire().await.map(drop) }
        }
    });
    let secrets = Arc::new(berth_server::secrets::Secrets::new(
        metadata.clone(),
        identity.clone(),
        account_id.clone(),
        region.clone(),
    ));
    let pull_through = berth_server::pullthrough::PullThrough::new(
        metadata.clone(),
        access.clone(),
        secrets.clone(),
        args.insecure_upstream.clone(),
        args.pull_through_ttl,
    );
    pull_through.attach(&registry);
    jobs.handle(berth_server::pullthrough::privatize::PRIVATIZE_JOB, {
        let pull_through = pull_through.clone();
        move |job| {
            let pull_through = pull_through.clone();
            async move {
                let payload: serde_json::Value =
                    serde_json::from_str(&job.payload).map_err(|e| e.to_string())?;
                let namespaces: std::collections::HashMap<String, String> =
                    serde_json::from_value(payload["namespaces"].clone()).unwrap_or_default();
                pull_through
                    .run_privatize(payload["id"].as_str().unwrap_or_default(), &namespaces)
                    .await
            }
        }
    });
    if std::env::var_os("BERTH_TEST_JOBS").is_some() {
        test_jobs(&jobs);
    }
    let destinations = args
        .replication_destinations
        .iter()
        .map(|d| berth_server::replication::Destination::parse(d))
        .collect::<Result<Vec<_>, _>>()
        .map_err(anyhow::Error::msg)?;
    let replication = berth_server::replication::Replication::new(
        metadata.clone(),
        registry.clone(),
        secrets.clone(),
        destinations,
        account_id.clone(),
        region.clone(),
    );
    jobs.handle(berth_server::replication::REPLICATE_JOB, {
        let replication = replication.clone();
        move |job| {
            let replication = replication.clone();
            async move { replication.run(&job).await }
        }
    });
    jobs.handle(berth_server::replication::REPLICATE_DELETE_JOB, {
        let replication = replication.clone();
        move |job| {
            let replication = replication.clone();
            async move { replication.run_delete(&job).await }
        }
    });
    let signing = berth_server::signing::Signing::new(
        metadata.clone(),
        registry.clone(),
        identity.clone(),
        account_id.clone(),
    );
    jobs.handle(berth_server::registry::ARCHIVE_JOB, {
        let registry = registry.clone();
        move |job| {
            let registry = registry.clone();
            async move { registry.finish_archive(&job).await }
        }
    });
    jobs.handle(berth_server::registry::RESTORE_JOB, {
        let registry = registry.clone();
        move |job| {
            let registry = registry.clone();
            async move { registry.finish_restore(&job).await }
        }
    });
    jobs.handle(berth_server::signing::SIGN_JOB, {
        let signing = signing.clone();
        move |job| {
            let signing = signing.clone();
            async move { signing.run(&job).await }
        }
    });
    jobs.handle(berth_server::replication::backfill::BACKFILL_JOB, {
        let replication = replication.clone();
        move |job| {
            let replication = replication.clone();
            async move { replication.prepare_backfill(&job).await }
        }
    });
    let webhooks = berth_server::webhooks::Webhooks::new(
        metadata.clone(),
        identity.clone(),
        account_id.clone(),
        region.clone(),
        args.webhook_backoff,
    );
    let (stop_jobs, stop) = tokio::sync::watch::channel(false);
    tokio::spawn(webhooks.clone().run(stop.clone()));
    let workers = tokio::spawn(jobs.clone().run(stop.clone()));
    let outbox = Outbox::new(
        metadata.clone(),
        vec![
            Arc::new(ScanOnPush(scanning.clone())),
            Arc::new(PromoteOnScan(promotion.clone())),
            Arc::new(berth_server::replication::ReplicateOnPush(
                replication.clone(),
            )),
            Arc::new(berth_server::signing::SignOnPush(signing.clone())),
        ],
        Duration::from_millis(500),
    );
    tokio::spawn(outbox.run(stop));
    let iam = Arc::new(Iam::new(access.clone(), identity.clone()));
    let iam_for_projects = iam.clone();
    let passwords = Arc::new(berth_server::console::passwords::Passwords::new(
        metadata.clone(),
        iam.clone(),
    ));
    let builds = Arc::new(berth_server::builds::Builds::new(
        metadata.clone(),
        registry.clone(),
        identity.clone(),
        berth_server::builds::BuildConfig {
            builder: berth_server::builds::find_builder(args.builder.clone()),
            timeout: args.build_timeout,
            network: args.build_network,
            work_dir: data_dir.join("builds"),
            registry_host: own_host(address),
            max_bundle: args.max_build_source,
        },
    ));
    if builds.can_build() {
        jobs.handle(berth_server::builds::BUILD_JOB, {
            let builds = builds.clone();
            move |job| {
                let builds = builds.clone();
                async move {
                    let payload: serde_json::Value =
                        serde_json::from_str(&job.payload).map_err(|e| e.to_string())?;
                    builds.run(payload["id"].as_str().unwrap_or_default()).await
                }
            }
        });
    } else {
        println!("builds: no builder (buildah) here; this node takes no build jobs");
    }
    let templates = berth_server::templates::Templates::new(
        metadata.clone(),
        registry.clone(),
        access.clone(),
        lifecycle.clone(),
    );
    templates.attach();
    let app = Arc::new(App {
        registry: registry.clone(),
        identity,
        access,
        iam,
        lifecycle,
        scanning,
        promotion,
        pull_through,
        secrets,
        builds,
        templates,
        replication,
        signing,
        account_settings: Arc::new(berth_server::settings::AccountSettings::new(
            metadata.clone(),
        )),
        webhooks,
        projects: Arc::new(berth_server::projects::Projects::new(
            iam_for_projects,
            account_id.clone(),
            region.clone(),
        )),
        passwords,
        console_throttle: Default::default(),
        jobs,
        public_url: args.public_url.clone(),
        ecr_host: args.ecr_domain.as_deref().map(|domain| {
            crate::tls::ecr_names(account_id, region, domain.trim_matches('.'))[0].clone()
        }),
        scheme,
    });
    let router = berth_server::app(
        app,
        berth_server::Limits {
            requests: args.max_requests,
            body_idle: args.client_timeout,
            min_body_rate: args.min_body_rate,
        },
    );
    // Both listeners: connections bounded, slow headers and silent new
    // connections dropped after `--client-timeout`, graceful shutdown.
    let handle = axum_server::Handle::new();
    let stopper = handle.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        // Workers stop claiming and finish their jobs within --job-drain.
        let _ = stop_jobs.send(true);
        // Requests in flight get two minutes to finish.
        stopper.graceful_shutdown(Some(Duration::from_secs(120)));
    });
    let connections = ConnectionLimit::new(args.max_connections, args.max_connections_per_address);
    let service = router.into_make_service_with_connect_info::<std::net::SocketAddr>();
    match tls {
        None => {
            let mut server = axum_server::from_tcp(listener)?
                .acceptor(connections)
                .handle(handle)
                .first_request_timeout(args.client_timeout);
            bound_header_reads(server.http_builder(), args.client_timeout);
            server.serve(service).await?
        }
        Some(config) => {
            tokio::spawn(reload_certificate(
                config.clone(),
                args.tls_cert.clone().expect("with TLS"),
                args.tls_key.clone().expect("with TLS"),
            ));
            let acceptor = axum_server::tls_rustls::RustlsAcceptor::new(config)
                .handshake_timeout(args.client_timeout)
                .acceptor(connections);
            let mut server = axum_server::from_tcp(listener)?
                .acceptor(acceptor)
                .handle(handle)
                .first_request_timeout(args.client_timeout);
            bound_header_reads(server.http_builder(), args.client_timeout);
            server.serve(service).await?
        }
    }
    if let Err(e) = workers.await {
        tracing::warn!(error = %e, "the job workers ended abnormally");
    }
    tracing::info!("stopped");
    Ok(())
}

/// HTTP/1 requests whose headers take longer than `timeout` are dropped
/// (slowloris gets nowhere).
fn bound_header_reads(
    builder: &mut hyper_util::server::conn::auto::Builder<hyper_util::rt::TokioExecutor>,
    timeout: Duration,
) {
    builder
        .http1()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(timeout);
}

/// Accepts connections while fewer than its limit are open (in all, and
/// from the connecting address when `per_address` is set), and closes the
/// others at once: what a flood of idle connections can hold is bounded,
/// and with a per-address limit one client cannot hold every place.
#[derive(Clone)]
struct ConnectionLimit {
    open: Arc<tokio::sync::Semaphore>,
    /// At most this many from one address; 0 for no such limit.
    per_address: usize,
    /// Connections open per address (entries leave at zero).
    by_address: OpenByAddress,
}

/// Connections open per client address.
type OpenByAddress = Arc<std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>>;

impl ConnectionLimit {
    fn new(limit: usize, per_address: usize) -> ConnectionLimit {
        ConnectionLimit {
            open: Arc::new(tokio::sync::Semaphore::new(limit.max(1))),
            per_address,
            by_address: Arc::default(),
        }
    }

    /// Takes a place for a connection from `address`, if it has one left.
    fn admit(&self, address: Option<std::net::IpAddr>) -> Option<AddressSlot> {
        let (Some(address), true) = (address, self.per_address > 0) else {
            return Some(AddressSlot(None));
        };
        let mut open = self.by_address.lock().expect("connection count lock");
        let count = open.entry(address).or_insert(0);
        if *count >= self.per_address {
            return None;
        }
        *count += 1;
        Some(AddressSlot(Some((self.by_address.clone(), address))))
    }
}

/// A connection's place among its address's, given back when it closes.
struct AddressSlot(Option<(OpenByAddress, std::net::IpAddr)>);

impl Drop for AddressSlot {
    fn drop(&mut self) {
        if let Some((counts, address)) = self.0.take() {
            let mut open = counts.lock().expect("connection count lock");
            if let Some(count) = open.get_mut(&address) {
                *count -= 1;
                if *count == 0 {
                    open.remove(&address);
                }
            }
        }
    }
}

impl<S> axum_server::accept::Accept<tokio::net::TcpStream, S> for ConnectionLimit {
    type Stream = Counted;
    type Service = S;
    type Future = std::future::Ready<std::io::Result<(Counted, S)>>;

    fn accept(&self, stream: tokio::net::TcpStream, service: S) -> Self::Future {
        let slot = self.admit(stream.peer_addr().ok().map(|a| a.ip().to_canonical()));
        std::future::ready(match (self.open.clone().try_acquire_owned(), slot) {
            (Ok(permit), Some(slot)) => {
                let _ = stream.set_nodelay(true);
                Ok((
                    Counted {
                        stream,
                        _permit: permit,
                        _slot: slot,
                    },
                    service,
                ))
            }
            _ => {
                berth_server::metrics::METRICS.connections_refused.add(1);
                Err(std::io::Error::other("too many open connections"))
            }
        })
    }
}

/// A connection holding its place under [`ConnectionLimit`] until closed.
struct Counted {
    stream: tokio::net::TcpStream,
    _permit: tokio::sync::OwnedSemaphorePermit,
    _slot: AddressSlot,
}

impl tokio::io::AsyncRead for Counted {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for Counted {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// `host:port` at which this node reaches its own listener.
fn own_host(address: SocketAddr) -> String {
    match address.ip() {
        std::net::IpAddr::V4(ip) if ip.is_unspecified() => format!("127.0.0.1:{}", address.port()),
        std::net::IpAddr::V6(ip) if ip.is_unspecified() => format!("[::1]:{}", address.port()),
        _ => address.to_string(),
    }
}

/// How often the certificate files are looked at for a change.
const CERTIFICATE_POLL: Duration = Duration::from_secs(2);

/// Replaces the certificate on SIGHUP and when its files change (a renewal
/// by certbot, cert-manager or `berth tls`), without dropping a connection.
/// A pair that does not load (half written, key not matching) leaves the old
/// one serving; the next change is tried again.
async fn reload_certificate(config: RustlsConfig, cert: PathBuf, key: PathBuf) {
    let Ok(mut hangups) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
    else {
        return;
    };
    // Modification time and length of both files: what a rewrite changes.
    let stamp = |paths: [&PathBuf; 2]| {
        paths.map(|p| {
            std::fs::metadata(p)
                .ok()
                .map(|m| (m.modified().ok(), m.len()))
        })
    };
    let mut seen = stamp([&cert, &key]);
    let mut poll = tokio::time::interval(CERTIFICATE_POLL);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let why = tokio::select! {
            signal = hangups.recv() => match signal {
                Some(()) => "SIGHUP",
                None => return,
            },
            _ = poll.tick() => {
                let now = stamp([&cert, &key]);
                if now == seen {
                    continue;
                }
                seen = now;
                "a change of its files"
            }
        };
        match config.reload_from_pem_file(&cert, &key).await {
            Ok(()) => tracing::info!(after = why, "reloaded the TLS certificate"),
            Err(e) => {
                tracing::warn!(after = why, error = %e, "TLS certificate not reloaded; the old one stays")
            }
        }
    }
}

/// Removes abandoned uploads, a few times per upload timeout.
async fn clean_uploads(registry: Arc<Registry>) -> JobResult {
    let n = registry
        .clean_stale_uploads()
        .await
        .map_err(|e| format!("upload clean-up: {e}"))?;
    if n > 0 {
        berth_server::metrics::METRICS
            .uploads_abandoned
            .add(n as u64);
        tracing::info!(removed = n, "removed abandoned uploads");
    }
    Ok(())
}

/// How often expired temporary credentials are removed from the database.
const CREDENTIAL_PURGE_INTERVAL: Duration = Duration::from_secs(600);

async fn purge_expired_credentials(metadata: Arc<dyn MetadataStore>) -> JobResult {
    let n = metadata
        .delete_expired_access_keys(berth_store::now_millis())
        .await
        .map_err(|e| format!("purging expired credentials: {e}"))?;
    if n > 0 {
        tracing::info!(removed = n, "purged expired temporary credentials");
    }
    Ok(())
}

/// How often finished jobs and read events older than [`QUEUE_KEEP`] are forgotten.
const QUEUE_PURGE_INTERVAL: Duration = Duration::from_secs(3600);
/// How long finished jobs stay visible in `berth jobs`, and read events in `berth events`.
const QUEUE_KEEP: Duration = Duration::from_secs(7 * 24 * 3600);

/// Forgets finished jobs, and events every consumer has read, older than
/// [`QUEUE_KEEP`] (`berth events` and `berth jobs` show that long): the
/// outbox does not grow for ever.
async fn purge_finished_jobs(metadata: Arc<dyn MetadataStore>) -> JobResult {
    let cutoff = berth_store::now_millis() - QUEUE_KEEP.as_millis() as i64;
    metadata
        .purge_jobs(cutoff)
        .await
        .map_err(|e| format!("purging finished jobs: {e}"))?;
    let purged = metadata
        .purge_events(cutoff)
        .await
        .map_err(|e| format!("purging read events: {e}"))?;
    if purged > 0 {
        tracing::info!(purged, "forgot events every consumer had read");
    }
    Ok(())
}

/// Job kinds for the queue's own tests (with `BERTH_TEST_JOBS` set):
/// `test.sleep` waits `{"seconds": n}`, `test.fail` always fails.
fn test_jobs(jobs: &Jobs) {
    jobs.handle("test.sleep", |job| async move {
        let seconds = serde_json::from_str::<serde_json::Value>(&job.payload)
            .ok()
            .and_then(|p| p["seconds"].as_f64())
            .unwrap_or(1.0);
        tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
        Ok(())
    });
    jobs.handle("test.fail", |_| async {
        Err("failing on purpose".to_string())
    });
}

async fn collect_garbage(collector: Arc<Collector>, grace: Duration) -> JobResult {
    let report = collector
        .collect(grace, false, |_, _| {})
        .await
        .map_err(|e| format!("garbage collection: {e}"))?;
    if report.blobs > 0 {
        tracing::info!(
            blobs = report.blobs,
            bytes = report.bytes,
            "garbage collection reclaimed blobs"
        );
    }
    Ok(())
}

async fn enforce_lifecycle(lifecycle: Arc<Lifecycle>) -> JobResult {
    let expired = lifecycle
        .enforce_all(berth_store::now_millis(), false)
        .await
        .map_err(|e| format!("lifecycle enforcement: {e}"))?;
    if !expired.is_empty() {
        tracing::info!(expired = expired.len(), "lifecycle policies applied");
    }
    Ok(())
}

/// Resolves on SIGINT or SIGTERM; requests in flight then finish.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing the SIGTERM handler");
    tokio::select! {
        _ = interrupt => {},
        _ = terminate.recv() => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
}
