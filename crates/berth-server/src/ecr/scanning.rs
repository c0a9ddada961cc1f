//! The scanning operations: `PutRegistryScanningConfiguration`,
//! `GetRegistryScanningConfiguration`, `BatchGetRepositoryScanningConfiguration`,
//! `StartImageScan`, `DescribeImageScanFindings`, and the scan members of
//! `DescribeImages`. The scanning service decides; this translates.

use berth_core::RepositoryName;
use serde_json::{Value, json};

use super::images::{image_id, lookup, not_found_message, wanted};
use super::repositories::name_of;
use super::{Call, EcrError, page, token};
use crate::scanning::{RegistryScanning, Scan, ScanRule, ScanningError};

/// Findings per page when `maxResults` is not given.
const DEFAULT_FINDINGS: usize = 100;

impl From<ScanningError> for EcrError {
    fn from(e: ScanningError) -> EcrError {
        match e {
            ScanningError::LimitExceeded => EcrError::new("LimitExceededException", e.to_string()),
            ScanningError::UnsupportedImageType(m) => {
                EcrError::new("UnsupportedImageTypeException", m)
            }
            ScanningError::Invalid(m) => EcrError::new("ValidationException", m),
            ScanningError::Internal(inner) => EcrError::internal(inner),
            ScanningError::Registry(crate::RegistryError::Internal(inner)) => {
                EcrError::internal(inner)
            }
            ScanningError::Registry(e @ crate::RegistryError::NameUnknown { .. }) => {
                EcrError::new("RepositoryNotFoundException", e.to_string())
            }
            ScanningError::Registry(crate::RegistryError::ManifestUnknown) => {
                EcrError::new("ImageNotFoundException", "Requested image not found")
            }
            ScanningError::Registry(other) => EcrError::invalid_parameter(other.to_string()),
        }
    }
}

fn seconds(millis: i64) -> Value {
    json!(millis as f64 / 1000.0)
}

fn configuration_json(c: &RegistryScanning) -> Value {
    json!({
        "scanType": c.scan_type,
        "rules": c.rules.iter().map(|r| json!({
            "scanFrequency": r.scan_frequency,
            "repositoryFilters": r.filters.iter()
                .map(|f| json!({"filter": f, "filterType": "WILDCARD"}))
                .collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

pub async fn put_registry_configuration(call: &Call<'_>, input: &Value) -> Result<Value, EcrError> {
    let configuration = RegistryScanning {
        scan_type: input["scanType"].as_str().unwrap_or("BASIC").to_string(),
        rules: input["rules"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| ScanRule {
                scan_frequency: r["scanFrequency"].as_str().unwrap_or_default().to_string(),
                filters: r["repositoryFilters"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|f| f["filter"].as_str().map(String::from))
                    .collect(),
            })
            .collect(),
    };
    let stored = call
        .app
        .scanning
        .put_registry_configuration(configuration)
        .await?;
    Ok(json!({"registryScanningConfiguration": configuration_json(&stored)}))
}

pub async fn get_registry_configuration(call: &Call<'_>) -> Result<Value, EcrError> {
    let configuration = call.app.scanning.registry_configuration().await?;
    Ok(json!({
        "registryId": call.account(),
        "scanningConfiguration": configuration_json(&configuration),
    }))
}

pub async fn batch_get_repository_configuration(
    call: &Call<'_>,
    input: &Value,
) -> Result<Value, EcrError> {
    let (mut configurations, mut failures) = (Vec::new(), Vec::new());
    for name in input["repositoryNames"].as_array().into_iter().flatten() {
        let text = name.as_str().unwrap_or_default();
        let Ok(repository) = text.parse::<RepositoryName>() else {
            failures.push(
                json!({"repositoryName": text, "failureCode": "REPOSITORY_NOT_FOUND",
                                 "failureReason": "REPOSITORY_NOT_FOUND"}),
            );
            continue;
        };
        match call.app.scanning.repository_frequency(&repository).await {
            Ok((frequency, filters)) => configurations.push(json!({
                "repositoryArn": call.app.access.repository_arn(repository.as_str()),
                "repositoryName": repository.as_str(),
                "scanOnPush": frequency != crate::scanning::Frequency::Manual,
                "scanFrequency": frequency.as_str(),
                "appliedScanFilters": filters.iter()
                    .map(|f| json!({"filter": f, "filterType": "WILDCARD"}))
                    .collect::<Vec<_>>(),
            })),
            Err(ScanningError::Registry(crate::RegistryError::NameUnknown { .. })) => {
                failures.push(
                    json!({"repositoryName": text, "failureCode": "REPOSITORY_NOT_FOUND",
                                     "failureReason": "REPOSITORY_NOT_FOUND"}),
                );
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(json!({"scanningConfigurations": configurations, "failures": failures}))
}

/// The image an `imageId` names, or `ImageNotFoundException`.
pub(super) async fn image_of(
    call: &Call<'_>,
    name: &RepositoryName,
    id: &Value,
) -> Result<berth_store::ImageRecord, EcrError> {
    call.app
        .registry
        .repository(name)
        .await
        .map_err(|e| call.registry_error(e, name.as_str()))?;
    let wanted = wanted(id).map_err(|(_, reason)| EcrError::invalid_parameter(reason))?;
    lookup(call, name, &wanted)
        .await?
        .map_err(|_| EcrError::new("ImageNotFoundException", not_found_message(call, name, id)))
}

pub async fn start_scan(call: &Call<'_>, input: &Value) -> Result<Value, EcrError> {
    let name = name_of(input)?;
    let image = image_of(call, &name, &input["imageId"]).await?;
    if image.image_status != "ACTIVE" {
        return Err(EcrError::new(
            "ImageArchivedException",
            format!(
                "The image {} in the repository '{}' is archived and cannot be scanned",
                image.digest,
                name.as_str()
            ),
        ));
    }
    let record = call.app.scanning.start(&name, &image.digest, true).await?;
    Ok(json!({
        "registryId": call.account(),
        "repositoryName": name.as_str(),
        "imageId": image_id(&image.digest, input["imageId"]["imageTag"].as_str()),
        "imageScanStatus": {"status": record.status, "description": record.description},
    }))
}

/// `imageScanCompletedAt`, `vulnerabilitySourceUpdatedAt` and the severity
/// counts of a finished scan.
fn summary(scan: &Scan) -> Option<Value> {
    let completed = scan.record.completed_at?;
    let counts: serde_json::Map<String, Value> = scan
        .result
        .as_ref()
        .map(|r| {
            r.severity_counts()
                .into_iter()
                .map(|(k, n)| (k.to_string(), json!(n)))
                .collect()
        })
        .unwrap_or_default();
    let mut out = json!({
        "imageScanCompletedAt": seconds(completed),
        "findingSeverityCounts": counts,
    });
    if let Some(updated) = scan.record.source_updated_at {
        out["vulnerabilitySourceUpdatedAt"] = seconds(updated);
    }
    Some(out)
}

/// Adds `imageScanStatus` and `imageScanFindingsSummary` to `DescribeImages` details.
pub async fn decorate(
    call: &Call<'_>,
    name: &RepositoryName,
    details: &mut [Value],
) -> Result<(), EcrError> {
    let digests: Vec<String> = details
        .iter()
        .filter_map(|d| d["imageDigest"].as_str().map(String::from))
        .collect();
    let scans = call.app.scanning.scans(name, &digests).await?;
    for detail in details {
        let Some(scan) = detail["imageDigest"].as_str().and_then(|d| scans.get(d)) else {
            continue;
        };
        detail["imageScanStatus"] =
            json!({"status": scan.record.status, "description": scan.record.description});
        if let Some(summary) = summary(scan) {
            detail["imageScanFindingsSummary"] = summary;
        }
    }
    Ok(())
}

fn basic_finding(f: &crate::scanning::StoredFinding) -> Value {
    let mut attributes = vec![
        json!({"key": "package_name", "value": f.package_name}),
        json!({"key": "package_version", "value": f.package_version}),
    ];
    if let Some(score) = f.cvss3_score {
        attributes.push(json!({"key": "CVSS3_SCORE", "value": score.to_string()}));
    }
    if let Some(vector) = &f.cvss3_vector {
        attributes.push(json!({"key": "CVSS3_VECTOR", "value": vector}));
    }
    if let Some(fixed) = &f.fixed_in {
        attributes.push(json!({"key": "fixed_in_version", "value": fixed}));
    }
    let mut finding = json!({
        "name": f.name, "uri": f.uri, "severity": f.severity, "attributes": attributes,
    });
    if !f.description.is_empty() {
        finding["description"] = json!(f.description);
    }
    finding
}

/// dpkg/rpm versions carry `epoch:` and `-release`; ECR lists them apart.
fn split_version(version: &str, os: bool) -> (Option<i64>, String, Option<String>) {
    if !os {
        return (None, version.to_string(), None);
    }
    let (epoch, rest) = match version.split_once(':') {
        Some((e, rest)) if e.chars().all(|c| c.is_ascii_digit()) => (e.parse().ok(), rest),
        _ => (None, version),
    };
    match rest.rsplit_once('-') {
        Some((v, release)) => (epoch, v.to_string(), Some(release.to_string())),
        None => (epoch, rest.to_string(), None),
    }
}

fn enhanced_finding(
    call: &Call<'_>,
    name: &RepositoryName,
    scan: &Scan,
    f: &crate::scanning::StoredFinding,
) -> Value {
    let completed = seconds(scan.record.completed_at.unwrap_or(scan.record.started_at));
    let os = f.package_manager == "OS";
    let (epoch, version, release) = split_version(&f.package_version, os);
    let mut package = json!({
        "name": f.package_name, "version": version, "filePath": f.file_path,
        "packageManager": f.package_manager,
    });
    if let Some(epoch) = epoch {
        package["epoch"] = json!(epoch);
    }
    if let Some(release) = release {
        package["release"] = json!(release);
    }
    if let Some(arch) = &f.arch {
        package["arch"] = json!(arch);
    }
    if let Some(fixed) = &f.fixed_in {
        package["fixedInVersion"] = json!(fixed);
    }
    let mut details = json!({
        "source": f.ecosystem, "sourceUrl": f.uri, "referenceUrls": [f.uri],
        "vulnerabilityId": f.name, "vendorSeverity": f.severity,
        "vulnerablePackages": [package],
    });
    let mut finding = json!({
        "awsAccountId": call.account(),
        "description": f.description,
        "findingArn": format!("arn:aws:inspector2:{}:{}:finding/{}-{}", call.app.access.region, call.account(), scan.record.digest.trim_start_matches("sha256:").get(..16).unwrap_or_default(), f.advisory_id),
        "firstObservedAt": completed, "lastObservedAt": completed, "updatedAt": completed,
        "packageVulnerabilityDetails": details.clone(),
        "remediation": {"recommendation": {"text": match &f.fixed_in {
            Some(v) => format!("Upgrade {} to version {v} or later.", f.package_name),
            None => "None provided".to_string(),
        }}},
        "resources": [{"id": format!("arn:aws:ecr:{}:{}:repository/{}/{}", call.app.access.region, call.account(), name, scan.record.digest),
                       "type": "AWS_ECR_CONTAINER_IMAGE",
                       "details": {"awsEcrContainerImage": {"imageHash": scan.record.digest, "registry": call.account(), "repositoryName": name.as_str()}}}],
        "severity": f.severity,
        "status": "ACTIVE",
        "title": format!("{} - {}", f.name, f.package_name),
        "type": "PACKAGE_VULNERABILITY",
        "fixAvailable": if f.fixed_in.is_some() { "YES" } else { "NO" },
        "exploitAvailable": "NO",
    });
    if let (Some(score), Some(vector)) = (f.cvss3_score, &f.cvss3_vector) {
        let cvss = json!({"baseScore": score, "scoringVector": vector, "source": f.ecosystem, "version": "3.1"});
        details["cvss"] = json!([cvss]);
        finding["packageVulnerabilityDetails"] = details;
        finding["score"] = json!(score);
        finding["scoreDetails"] = json!({"cvss": {"score": score, "scoreSource": f.ecosystem, "scoringVector": vector, "version": "3.1", "adjustments": []}});
    }
    finding
}

pub async fn describe_findings(call: &Call<'_>, input: &Value) -> Result<Value, EcrError> {
    let name = name_of(input)?;
    let image = image_of(call, &name, &input["imageId"]).await?;
    let scan = match call.app.scanning.scan(&name, &image.digest).await? {
        Some(scan) => Some(scan),
        None => call.app.scanning.pending(&name, &image).await?,
    };
    let scan = scan.ok_or_else(|| {
            EcrError::new(
                "ScanNotFoundException",
                format!(
                    "Image scan does not exist for image with '{{imageDigest:'{}', imageTag:'{}'}}' in repository with name '{name}' in registry with id '{}'",
                    image.digest,
                    input["imageId"]["imageTag"].as_str().unwrap_or("null"),
                    call.account()
                ),
            )
        })?;
    let (limit, after) = page(call, input)?;
    let limit = if input["maxResults"].is_null() {
        DEFAULT_FINDINGS
    } else {
        limit as usize
    };
    let start: usize = match after {
        Some(position) => position.parse().map_err(|_| {
            EcrError::invalid_parameter("Invalid parameter at 'nextToken': the token is not valid")
        })?,
        None => 0,
    };
    let mut output = json!({
        "registryId": call.account(),
        "repositoryName": name.as_str(),
        "imageId": image_id(&image.digest, input["imageId"]["imageTag"].as_str()),
        "imageScanStatus": {"status": scan.record.status, "description": scan.record.description},
    });
    if let Some(mut findings) = summary(&scan) {
        let all = scan
            .result
            .as_ref()
            .map(|r| r.findings.as_slice())
            .unwrap_or_default();
        let end = (start + limit).min(all.len());
        let page = all.get(start..end).unwrap_or_default();
        let enhanced = call.app.scanning.registry_configuration().await?.scan_type == "ENHANCED";
        if enhanced {
            findings["enhancedFindings"] = page
                .iter()
                .map(|f| enhanced_finding(call, &name, &scan, f))
                .collect();
        } else {
            findings["findings"] = page.iter().map(basic_finding).collect();
        }
        output["imageScanFindings"] = findings;
        if end < all.len() {
            output["nextToken"] = token(call, &end.to_string());
        }
    }
    Ok(output)
}
