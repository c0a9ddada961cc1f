//! Image scanning as a service: the registry's scanning configuration,
//! scans (on push through the outbox, on request, continuously when the
//! advisory database changes) run as durable jobs by berth's own scanner
//! (`berth-scan`), their findings, and the advisory database itself.
//!
//! A scan reads each layer once per scanner version: a layer's package
//! inventory is kept by digest, so a base layer shared by a thousand images
//! is read once. Matching against advisories is cheap and happens at every
//! scan, so a new advisory snapshot needs no layer read again.

pub mod advisories;
mod config;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use berth_core::{Digest, RepositoryName};
use berth_scan::{Advisory, LayerInventory, Matcher, SCANNER_VERSION, Severity};
use berth_store::{ImageScanRecord, MetadataStore, NewEvent, StoreError, now_millis};
use serde::{Deserialize, Serialize};
use serde_json::json;

pub use config::{Frequency, RegistryScanning, ScanRule};

use crate::registry::{Registry, RegistryError};

/// The job kind that scans one image (`{"repository", "digest"}`).
pub const SCAN_JOB: &str = "scan.image";
/// The job kind that queues a scan of every image in continuously scanned repositories.
pub const RESCAN_JOB: &str = "scan.continuous";
/// When the advisory database last changed (milliseconds), a setting.
const VULNDB_UPDATED: &str = "vulndb-updated-at";
pub const IMAGE_SCAN_EVENT: &str = "ECR Image Scan";

/// How long after a push its scan may still be on its way to the queue.
const PENDING_WINDOW: Duration = Duration::from_secs(120);

const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";

#[derive(Debug, thiserror::Error)]
pub enum ScanningError {
    #[error("{0}")]
    Registry(#[from] RegistryError),
    /// `StartImageScan` again within the per-image interval.
    #[error("The scan quota per image has been exceeded. Wait and try again.")]
    LimitExceeded,
    #[error("{0}")]
    UnsupportedImageType(String),
    #[error("{0}")]
    Invalid(String),
    #[error("internal error: {0}")]
    Internal(#[from] StoreError),
}

/// Knobs; long-lived with the service.
#[derive(Clone, Debug)]
pub struct ScanningSettings {
    /// How often one image may be scanned on request (ECR: once per 24 hours).
    pub manual_interval: Duration,
}

impl Default for ScanningSettings {
    fn default() -> Self {
        ScanningSettings {
            manual_interval: Duration::from_secs(24 * 3600),
        }
    }
}

/// One finding as kept with the scan.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StoredFinding {
    pub name: String,
    pub advisory_id: String,
    pub description: String,
    pub uri: String,
    pub severity: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cvss3_score: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cvss3_vector: Option<String>,
    pub package_name: String,
    pub package_version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arch: Option<String>,
    pub file_path: String,
    pub package_manager: String,
    pub ecosystem: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fixed_in: Option<String>,
    pub updated_at: String,
}

/// What a finished scan found.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ScanResult {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os: Option<String>,
    pub packages: usize,
    pub findings: Vec<StoredFinding>,
}

impl ScanResult {
    /// Findings per severity, zeros left out (as ECR counts them).
    pub fn severity_counts(&self) -> Vec<(&'static str, usize)> {
        Severity::ALL
            .iter()
            .map(|s| {
                let n = self
                    .findings
                    .iter()
                    .filter(|f| f.severity == s.as_str())
                    .count();
                (s.as_str(), n)
            })
            .filter(|(_, n)| *n > 0)
            .collect()
    }
}

/// An image's latest scan, read back.
#[derive(Clone, Debug)]
pub struct Scan {
    pub record: ImageScanRecord,
    pub result: Option<ScanResult>,
}

impl Scan {
    fn of(record: ImageScanRecord) -> Scan {
        let result = record
            .result
            .as_deref()
            .and_then(|r| serde_json::from_str(r).ok());
        Scan { record, result }
    }
}

/// Long-lived, one per node. Holds no state of its own between calls
/// beyond its handles: scans in flight are jobs in the queue, so a node
/// that stops leaves them for another.
pub struct Scanning {
    store: Arc<dyn MetadataStore>,
    registry: Arc<Registry>,
    settings: ScanningSettings,
}

impl Scanning {
    pub fn new(
        store: Arc<dyn MetadataStore>,
        registry: Arc<Registry>,
        settings: ScanningSettings,
    ) -> Scanning {
        Scanning {
            store,
            registry,
            settings,
        }
    }

    /// The registry's scanning configuration (`BASIC` without rules until set).
    pub async fn registry_configuration(&self) -> Result<RegistryScanning, ScanningError> {
        Ok(config::load(self.store.as_ref()).await?)
    }

    /// Replaces the registry's scanning configuration after checking it as ECR does.
    pub async fn put_registry_configuration(
        &self,
        configuration: RegistryScanning,
    ) -> Result<RegistryScanning, ScanningError> {
        configuration.check().map_err(ScanningError::Invalid)?;
        config::save(self.store.as_ref(), &configuration).await?;
        Ok(configuration)
    }

    /// How a repository is scanned, and the registry filters that say so.
    pub async fn repository_frequency(
        &self,
        name: &RepositoryName,
    ) -> Result<(Frequency, Vec<String>), ScanningError> {
        let repository = self.registry.repository(name).await?;
        let configuration = self.registry_configuration().await?;
        Ok(configuration.frequency(name.as_str(), repository.scan_on_push))
    }

    /// Queues a scan of an image (on request when `manual`: at most once per
    /// image per interval). Returns the scan as recorded now (`IN_PROGRESS`).
    pub async fn start(
        &self,
        name: &RepositoryName,
        digest: &Digest,
        manual: bool,
    ) -> Result<ImageScanRecord, ScanningError> {
        let now = now_millis();
        if manual
            && let Some(last) = self
                .store
                .image_scan(name.as_str(), &digest.to_string())
                .await?
            && last.manual
            && now - last.started_at < self.settings.manual_interval.as_millis() as i64
        {
            return Err(ScanningError::LimitExceeded);
        }
        let manifest = self
            .registry
            .get_manifest(name, &berth_core::Reference::Digest(digest.clone()))
            .await?;
        if let Err(reason) = image_layers(&manifest.media_type, &manifest.content) {
            return Err(ScanningError::UnsupportedImageType(reason));
        }
        let record = ImageScanRecord {
            repository: name.to_string(),
            digest: digest.to_string(),
            status: "IN_PROGRESS".into(),
            description: "The scan is in progress.".into(),
            started_at: now,
            completed_at: None,
            source_updated_at: None,
            result: None,
            manual,
        };
        self.store.put_image_scan(&record, &[]).await?;
        self.enqueue(name.as_str(), &digest.to_string()).await?;
        Ok(record)
    }

    async fn enqueue(&self, repository: &str, digest: &str) -> Result<(), StoreError> {
        crate::jobs::enqueue_for_image(self.store.as_ref(), SCAN_JOB, repository, digest, 3).await
    }

    /// Reacts to a pushed image (the outbox consumer): queues its scan when
    /// the repository is scanned on push or continuously.
    pub async fn on_push(&self, repository: &str, digest: &str) -> Result<(), ScanningError> {
        let (Ok(name), Ok(digest)) = (
            repository.parse::<RepositoryName>(),
            digest.parse::<Digest>(),
        ) else {
            return Ok(());
        };
        let frequency = match self.repository_frequency(&name).await {
            Ok((frequency, _)) => frequency,
            // Gone since: nothing to scan.
            Err(ScanningError::Registry(_)) => return Ok(()),
            Err(e) => return Err(e),
        };
        if frequency == Frequency::Manual {
            return Ok(());
        }
        match self.start(&name, &digest, false).await {
            Ok(_)
            | Err(ScanningError::UnsupportedImageType(_))
            | Err(ScanningError::Registry(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// An image's latest scan, if it has one.
    pub async fn scan(
        &self,
        name: &RepositoryName,
        digest: &Digest,
    ) -> Result<Option<Scan>, ScanningError> {
        Ok(self
            .store
            .image_scan(name.as_str(), &digest.to_string())
            .await?
            .map(Scan::of))
    }

    /// A scan on push not yet queued: the push's event is still on its way
    /// through the outbox (within [`PENDING_WINDOW`] of the push), so the
    /// scan is reported in progress rather than missing, as ECR reports a
    /// scan right after the push.
    pub async fn pending(
        &self,
        name: &RepositoryName,
        image: &berth_store::ImageRecord,
    ) -> Result<Option<Scan>, ScanningError> {
        let now = now_millis();
        if now - image.pushed_at > PENDING_WINDOW.as_millis() as i64
            || image_layers(&image.media_type, &image.content).is_err()
            || self.repository_frequency(name).await?.0 == Frequency::Manual
        {
            return Ok(None);
        }
        Ok(Some(Scan {
            record: ImageScanRecord {
                repository: name.to_string(),
                digest: image.digest.to_string(),
                status: "IN_PROGRESS".into(),
                description: "The scan is queued.".into(),
                started_at: image.pushed_at,
                completed_at: None,
                source_updated_at: None,
                result: None,
                manual: false,
            },
            result: None,
        }))
    }

    /// The latest scans of some images of a repository, by digest.
    pub async fn scans(
        &self,
        name: &RepositoryName,
        digests: &[String],
    ) -> Result<HashMap<String, Scan>, ScanningError> {
        Ok(self
            .store
            .image_scans(name.as_str(), digests)
            .await?
            .into_iter()
            .map(|r| (r.digest.clone(), Scan::of(r)))
            .collect())
    }

    /// Runs one scan job: reads the image's layers (each once per scanner
    /// version), matches its packages, records the result with its event.
    pub async fn run(&self, repository: &str, digest: &str) -> Result<(), String> {
        let name: RepositoryName = repository
            .parse()
            .map_err(|_| "bad repository name".to_string())?;
        let digest: Digest = digest.parse().map_err(|_| "bad digest".to_string())?;
        let started = match self.store.image_scan(repository, &digest.to_string()).await {
            Ok(Some(r)) => r,
            Ok(None) => ImageScanRecord {
                repository: repository.to_string(),
                digest: digest.to_string(),
                status: "IN_PROGRESS".into(),
                description: String::new(),
                started_at: now_millis(),
                completed_at: None,
                source_updated_at: None,
                result: None,
                manual: false,
            },
            Err(e) => return Err(e.to_string()),
        };
        let outcome = self.analyse(&name, &digest).await;
        let source_updated_at = self.vulndb_updated_at().await.map_err(|e| e.to_string())?;
        let mut record = ImageScanRecord {
            completed_at: Some(now_millis()),
            source_updated_at,
            ..started
        };
        match outcome {
            Ok(result) => {
                record.status = "COMPLETE".into();
                record.description = "The scan was completed successfully.".into();
                record.result = Some(serde_json::to_string(&result).map_err(|e| e.to_string())?);
            }
            Err(Analysis::Gone) => return Ok(()),
            Err(Analysis::Unsupported(reason)) => {
                record.status = "UNSUPPORTED_IMAGE".into();
                record.description = reason;
            }
            Err(Analysis::Failed(reason)) => {
                record.status = "FAILED".into();
                record.description = reason;
            }
            Err(Analysis::Retry(reason)) => return Err(reason),
        }
        let tags = self
            .registry
            .find_image(&name, Some(&digest), None)
            .await
            .ok()
            .flatten()
            .map(|i| i.tags)
            .unwrap_or_default();
        let event = self.scan_event(&record, &tags);
        self.store
            .put_image_scan(&record, &[event])
            .await
            .map_err(|e| e.to_string())
    }

    fn scan_event(&self, record: &ImageScanRecord, tags: &[String]) -> NewEvent {
        let counts: serde_json::Map<String, serde_json::Value> = record
            .result
            .as_deref()
            .and_then(|r| serde_json::from_str::<ScanResult>(r).ok())
            .map(|r| {
                r.severity_counts()
                    .into_iter()
                    .map(|(k, n)| (k.to_string(), json!(n)))
                    .collect()
            })
            .unwrap_or_default();
        NewEvent {
            at: now_millis(),
            detail_type: IMAGE_SCAN_EVENT.into(),
            detail: json!({
                "scan-status": record.status,
                "repository-name": record.repository,
                "finding-severity-counts": counts,
                "image-digest": record.digest,
                "image-tags": tags,
            })
            .to_string(),
        }
    }

    async fn analyse(
        &self,
        name: &RepositoryName,
        digest: &Digest,
    ) -> Result<ScanResult, Analysis> {
        let manifest = match self
            .registry
            .get_manifest(name, &berth_core::Reference::Digest(digest.clone()))
            .await
        {
            Ok(m) => m,
            Err(RegistryError::ManifestUnknown | RegistryError::NameUnknown { .. }) => {
                return Err(Analysis::Gone);
            }
            Err(e) => return Err(Analysis::Retry(e.to_string())),
        };
        let layers =
            image_layers(&manifest.media_type, &manifest.content).map_err(Analysis::Unsupported)?;
        let mut inventories = Vec::with_capacity(layers.len());
        for layer in &layers {
            // A cached image's layer may still be upstream: brought in now.
            match crate::pullthrough::as_berth(self.registry.blob_size(name, layer)).await {
                Ok(_) | Err(RegistryError::BlobUnknown) => {}
                Err(e) => return Err(Analysis::Retry(e.to_string())),
            }
            inventories.push(self.layer_inventory(layer).await?);
        }
        let image = berth_scan::stack(&inventories);
        let mut advisories: Vec<Advisory> = Vec::new();
        let mut by_ecosystem: HashMap<String, Vec<String>> = HashMap::new();
        for (ecosystem, name) in berth_scan::lookups(&image) {
            by_ecosystem.entry(ecosystem).or_default().push(name);
        }
        for (ecosystem, names) in by_ecosystem {
            let records = self
                .store
                .advisories_for(&ecosystem, &names)
                .await
                .map_err(|e| Analysis::Retry(e.to_string()))?;
            advisories.extend(records.iter().filter_map(|r| serde_json::from_str(r).ok()));
        }
        let findings = Matcher::new(advisories).findings(&image);
        Ok(ScanResult {
            os: image.os.as_ref().map(|os| {
                if os.pretty_name.is_empty() {
                    format!("{} {}", os.id, os.version_id)
                } else {
                    os.pretty_name.clone()
                }
            }),
            packages: image.packages.len(),
            findings: findings
                .into_iter()
                .map(|f| StoredFinding {
                    name: f.name,
                    advisory_id: f.advisory_id,
                    description: f.description,
                    uri: f.uri,
                    severity: f.severity.as_str().to_string(),
                    cvss3_score: f.cvss3_score,
                    cvss3_vector: f.cvss3_vector,
                    package_name: f.package.name.clone(),
                    package_version: f.package.version.clone(),
                    arch: f.package.arch.clone(),
                    file_path: f.package.path.clone(),
                    package_manager: f.package.source.package_manager().to_string(),
                    ecosystem: f.ecosystem,
                    fixed_in: f.fixed_in,
                    updated_at: f.updated_at,
                })
                .collect(),
        })
    }

    /// A layer's inventory: cached, or read from its blob now (and kept).
    async fn layer_inventory(&self, digest: &Digest) -> Result<LayerInventory, Analysis> {
        let key = digest.to_string();
        if let Some(text) = self
            .store
            .layer_inventory(&key, SCANNER_VERSION)
            .await
            .map_err(|e| Analysis::Retry(e.to_string()))?
            && let Ok(inventory) = serde_json::from_str(&text)
        {
            return Ok(inventory);
        }
        let stream = match self.registry.read_blob(digest, None).await {
            Ok(s) => s,
            Err(RegistryError::BlobUnknown) => {
                return Err(Analysis::Failed(format!("the layer {digest} is missing")));
            }
            Err(e) => return Err(Analysis::Retry(e.to_string())),
        };
        let reader = tokio_util::io::StreamReader::new(stream);
        let inventory = tokio::task::spawn_blocking(move || {
            berth_scan::scan_layer(tokio_util::io::SyncIoBridge::new(reader))
        })
        .await
        .map_err(|e| Analysis::Retry(e.to_string()))?
        .map_err(|e| Analysis::Failed(format!("layer {digest}: {e}")))?;
        let text = serde_json::to_string(&inventory).map_err(|e| Analysis::Retry(e.to_string()))?;
        self.store
            .put_layer_inventory(&key, SCANNER_VERSION, &text, now_millis())
            .await
            .map_err(|e| Analysis::Retry(e.to_string()))?;
        Ok(inventory)
    }

    /// When the advisory database last changed.
    pub async fn vulndb_updated_at(&self) -> Result<Option<i64>, StoreError> {
        Ok(self
            .store
            .get_setting(VULNDB_UPDATED)
            .await?
            .and_then(|v| v.parse().ok()))
    }

    /// Queues a scan of every image in repositories scanned continuously
    /// (after the advisory database changed).
    pub async fn rescan_continuous(&self) -> Result<usize, String> {
        let configuration = self
            .registry_configuration()
            .await
            .map_err(|e| e.to_string())?;
        if !configuration
            .rules
            .iter()
            .any(|r| r.scan_frequency == "CONTINUOUS_SCAN")
        {
            return Ok(0);
        }
        let mut queued = 0;
        let mut after: Option<String> = None;
        loop {
            let (repositories, more) = self
                .registry
                .repositories(after.as_deref(), 100)
                .await
                .map_err(|e| e.to_string())?;
            for repository in &repositories {
                let (frequency, _) =
                    configuration.frequency(repository.name.as_str(), repository.scan_on_push);
                if frequency != Frequency::Continuous {
                    continue;
                }
                let mut image_after: Option<String> = None;
                loop {
                    let (images, more_images) = self
                        .registry
                        .images(
                            &repository.name,
                            image_after.as_deref(),
                            500,
                            berth_store::TagStatus::Any,
                            berth_store::ImageStatusFilter::Active,
                        )
                        .await
                        .map_err(|e| e.to_string())?;
                    for image in &images {
                        if image_layers(&image.media_type, &image.content).is_ok() {
                            self.enqueue(repository.name.as_str(), &image.digest.to_string())
                                .await
                                .map_err(|e| e.to_string())?;
                            queued += 1;
                        }
                    }
                    match (more_images, images.last()) {
                        (true, Some(last)) => image_after = Some(last.digest.to_string()),
                        _ => break,
                    }
                }
            }
            match (more, repositories.last()) {
                (true, Some(last)) => after = Some(last.name.to_string()),
                _ => break,
            }
        }
        Ok(queued)
    }
}

/// Why a scan ended without findings.
enum Analysis {
    /// The image was deleted meanwhile.
    Gone,
    Unsupported(String),
    Failed(String),
    /// Worth another attempt (storage trouble).
    Retry(String),
}

/// The layers of an image manifest, or why it is not a scannable image.
pub fn image_layers(media_type: &str, content: &[u8]) -> Result<Vec<Digest>, String> {
    let unsupported = || {
        format!(
            "The operation is not supported for this image type ({media_type}): only container images are scanned."
        )
    };
    let json: serde_json::Value = serde_json::from_slice(content).map_err(|_| unsupported())?;
    let config_type = json["config"]["mediaType"].as_str().unwrap_or_default();
    if json["layers"].is_null() || (config_type != OCI_CONFIG && config_type != DOCKER_CONFIG) {
        return Err(unsupported());
    }
    json["layers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|l| {
            l["digest"]
                .as_str()
                .and_then(|d| d.parse().ok())
                .ok_or_else(unsupported)
        })
        .collect()
}

/// The outbox consumer that queues scans of pushed images.
pub struct ScanOnPush(pub Arc<Scanning>);

#[async_trait::async_trait]
impl crate::outbox::Consumer for ScanOnPush {
    fn name(&self) -> &'static str {
        "scan-on-push"
    }

    async fn on_event(&self, event: &berth_store::Event) -> Result<(), String> {
        let Some((repository, digest, _)) = crate::events::pushed(event) else {
            return Ok(());
        };
        self.0
            .on_push(&repository, &digest)
            .await
            .map_err(|e| e.to_string())
    }
}
