//! `ListImages`, `DescribeImages`, `BatchGetImage`, `BatchDeleteImage`,
//! `PutImage`: the ECR view of the registry's manifests and tags.

use berth_core::{Digest, Reference, RepositoryName, Tag};
use berth_store::{ImageRecord, ImageStatusFilter, TagStatus};
use bytes::Bytes;
use serde_json::{Value, json};

use super::repositories::name_of;
use super::{Call, EcrError, page, token};
use crate::RegistryError;
use crate::registry::ImageSizes;

fn tag_status(input: &Value) -> TagStatus {
    match input["filter"]["tagStatus"].as_str() {
        Some("TAGGED") => TagStatus::Tagged,
        Some("UNTAGGED") => TagStatus::Untagged,
        _ => TagStatus::Any,
    }
}

/// `filter.imageStatus`: only active images when none is given, as on ECR.
fn image_status(input: &Value) -> ImageStatusFilter {
    input["filter"]["imageStatus"]
        .as_str()
        .and_then(ImageStatusFilter::parse)
        .unwrap_or_default()
}

pub(super) fn image_id(digest: &Digest, tag: Option<&str>) -> Value {
    let mut id = json!({"imageDigest": digest.to_string()});
    if let Some(tag) = tag {
        id["imageTag"] = json!(tag);
    }
    id
}

pub async fn list(call: &Call<'_>, input: &Value) -> Result<Value, EcrError> {
    let name = name_of(input)?;
    let (limit, after) = page(call, input)?;
    let after = after
        .as_deref()
        .map(|a| a.split_once('\t').unwrap_or((a, "")));
    let (ids, more) = call
        .app
        .registry
        .image_ids(&name, after, limit, tag_status(input), image_status(input))
        .await
        .map_err(|e| call.registry_error(e, name.as_str()))?;
    let mut output = json!({
        "imageIds": ids.iter().map(|(d, t)| image_id(d, t.as_deref())).collect::<Vec<_>>()
    });
    if more && let Some((digest, tag)) = ids.last() {
        output["nextToken"] = token(call, &format!("{digest}\t{}", tag.as_deref().unwrap_or("")));
    }
    Ok(output)
}

async fn detail(
    call: &Call<'_>,
    name: &RepositoryName,
    image: &ImageRecord,
    sizes: &mut ImageSizes,
) -> Result<Value, EcrError> {
    let size = call
        .app
        .registry
        .image_size(name, image, sizes)
        .await
        .map_err(|e| call.registry_error(e, name.as_str()))?;
    let mut detail = json!({
        "registryId": call.account(),
        "repositoryName": name.as_str(),
        "imageDigest": image.digest.to_string(),
        "imageSizeInBytes": size,
        "imagePushedAt": image.pushed_at as f64 / 1000.0,
        "imageManifestMediaType": image.media_type,
    });
    if !image.tags.is_empty() {
        detail["imageTags"] = json!(image.tags);
    }
    if let Some(artifact) = &image.artifact_type {
        detail["artifactMediaType"] = json!(artifact);
    }
    if let Some(pulled) = image.last_pulled_at {
        detail["lastRecordedPullTime"] = json!(pulled as f64 / 1000.0);
    }
    detail["imageStatus"] = json!(image.image_status);
    if let Some(at) = image.last_archived_at {
        detail["lastArchivedAt"] = json!(at as f64 / 1000.0);
    }
    if let Some(at) = image.last_activated_at {
        detail["lastActivatedAt"] = json!(at as f64 / 1000.0);
    }
    Ok(detail)
}

/// What an `imageId` names, or the batch failure code and reason for it.
pub(super) struct Wanted {
    digest: Option<Digest>,
    tag: Option<Tag>,
}

pub(super) fn wanted(id: &Value) -> Result<Wanted, (&'static str, String)> {
    let digest = match id["imageDigest"].as_str() {
        Some(d) => Some(d.parse::<Digest>().map_err(|_| {
            (
                "InvalidImageDigest",
                format!("Invalid request parameters: image digest '{d}' is not a valid digest"),
            )
        })?),
        None => None,
    };
    let tag = match id["imageTag"].as_str() {
        Some(t) => Some(t.parse::<Tag>().map_err(|_| {
            (
                "InvalidImageTag",
                format!("Invalid request parameters: image tag '{t}' is not a valid tag"),
            )
        })?),
        None => None,
    };
    if digest.is_none() && tag.is_none() {
        return Err((
            "MissingDigestAndTag",
            "Invalid request parameters: both tag and digest cannot be null".into(),
        ));
    }
    Ok(Wanted { digest, tag })
}

/// Finds the image an id names, telling a tag that names another digest apart.
pub(super) async fn lookup(
    call: &Call<'_>,
    name: &RepositoryName,
    wanted: &Wanted,
) -> Result<Result<ImageRecord, (&'static str, String)>, EcrError> {
    let registry = &call.app.registry;
    let found = match registry
        .find_image(name, wanted.digest.as_ref(), wanted.tag.as_ref())
        .await
    {
        Ok(found) => found,
        // The pull-through cache's upstream failed for this image.
        Err(RegistryError::Upstream { code, message }) => return Ok(Err((code, message))),
        // A pull-through repository its first pull did not create.
        Err(RegistryError::NameUnknown { .. }) => None,
        Err(e) => return Err(call.registry_error(e, name.as_str())),
    };
    if let Some(image) = found {
        return Ok(Ok(image));
    }
    if let (Some(digest), Some(tag)) = (&wanted.digest, &wanted.tag)
        && registry
            .find_image(name, Some(digest), None)
            .await
            .map_err(|e| call.registry_error(e, name.as_str()))?
            .is_some()
    {
        return Ok(Err((
            "ImageTagDoesNotMatchDigest",
            format!(
                "Invalid request parameters: image tag '{tag}' does not name digest '{digest}'"
            ),
        )));
    }
    Ok(Err(("ImageNotFound", "Requested image not found".into())))
}

fn failure(id: &Value, code: &str, reason: String) -> Value {
    json!({"imageId": id, "failureCode": code, "failureReason": reason})
}

pub(super) fn not_found_message(call: &Call<'_>, name: &RepositoryName, id: &Value) -> String {
    let show = |k: &str| {
        id[k]
            .as_str()
            .map_or("null".to_string(), |v| format!("'{v}'"))
    };
    format!(
        "The image with imageId {{imageDigest:{}, imageTag:{}}} does not exist within the repository with name '{name}' in the registry with id '{}'",
        show("imageDigest"),
        show("imageTag"),
        call.account()
    )
}

pub async fn describe(call: &Call<'_>, input: &Value) -> Result<Value, EcrError> {
    let name = name_of(input)?;
    if let Some(ids) = input["imageIds"].as_array() {
        if input.get("maxResults").is_some() || input.get("nextToken").is_some() {
            return Err(EcrError::invalid_parameter(
                "Invalid parameter at 'maxResults, nextToken': cannot be used with imageIds",
            ));
        }
        call.app
            .registry
            .repository(&name)
            .await
            .map_err(|e| call.registry_error(e, name.as_str()))?;
        let mut details: Vec<Value> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut sizes = ImageSizes::default();
        for id in ids {
            let wanted = wanted(id).map_err(|(_, reason)| EcrError::invalid_parameter(reason))?;
            let image = lookup(call, &name, &wanted).await?.map_err(|_| {
                EcrError::new("ImageNotFoundException", not_found_message(call, &name, id))
            })?;
            if !seen.contains(&image.digest) {
                details.push(detail(call, &name, &image, &mut sizes).await?);
                seen.insert(image.digest);
            }
        }
        super::scanning::decorate(call, &name, &mut details).await?;
        return Ok(json!({"imageDetails": details}));
    }
    let (limit, after) = page(call, input)?;
    let (images, more) = call
        .app
        .registry
        .images(
            &name,
            after.as_deref(),
            limit,
            tag_status(input),
            image_status(input),
        )
        .await
        .map_err(|e| call.registry_error(e, name.as_str()))?;
    let mut details = Vec::with_capacity(images.len());
    let mut sizes = ImageSizes::default();
    for image in &images {
        details.push(detail(call, &name, image, &mut sizes).await?);
    }
    super::scanning::decorate(call, &name, &mut details).await?;
    let mut output = json!({"imageDetails": details});
    if more && let Some(last) = images.last() {
        output["nextToken"] = token(call, &last.digest.to_string());
    }
    Ok(output)
}

pub async fn batch_get(call: &Call<'_>, input: &Value) -> Result<Value, EcrError> {
    let name = name_of(input)?;
    // A pull-through cache's repository is made by its first pull.
    let covered = call
        .app
        .pull_through
        .covers(&name)
        .await
        .map_err(EcrError::internal)?;
    if !covered {
        call.app
            .registry
            .repository(&name)
            .await
            .map_err(|e| call.registry_error(e, name.as_str()))?;
    }
    let accepted: Option<Vec<&str>> = input["acceptedMediaTypes"]
        .as_array()
        .map(|types| types.iter().filter_map(Value::as_str).collect());
    let (mut images, mut failures) = (Vec::new(), Vec::new());
    for id in input["imageIds"].as_array().into_iter().flatten() {
        let image = match wanted(id) {
            Ok(w) => lookup(call, &name, &w).await?,
            Err(f) => Err(f),
        };
        match image {
            Err((code, reason)) => failures.push(failure(id, code, reason)),
            Ok(image) if image.image_status != "ACTIVE" => failures.push(failure(
                id,
                "ImageNotFound",
                format!(
                    "Requested image {} is {}: restore it with UpdateImageStorageClass to pull it",
                    image.digest,
                    image.image_status.to_lowercase()
                ),
            )),
            Ok(image) if accepted.as_ref().is_some_and(|a| !a.contains(&image.media_type.as_str())) => {
                failures.push(failure(
                    id,
                    "UnsupportedImageType",
                    format!(
                        "The image is stored as {}; berth does not convert between manifest formats",
                        image.media_type
                    ),
                ))
            }
            Ok(image) => {
                call.app.registry.note_pull(
                    Some(&call.principal),
                    &name,
                    &image.digest,
                    image.last_pulled_at,
                );
                let tag = id["imageTag"].as_str().or(image.tags.first().map(String::as_str));
                images.push(json!({
                    "registryId": call.account(),
                    "repositoryName": name.as_str(),
                    "imageId": image_id(&image.digest, tag),
                    "imageManifest": String::from_utf8_lossy(&image.content),
                    "imageManifestMediaType": image.media_type,
                }));
            }
        }
    }
    Ok(json!({"images": images, "failures": failures}))
}

pub async fn batch_delete(call: &Call<'_>, input: &Value) -> Result<Value, EcrError> {
    let name = name_of(input)?;
    let registry = &call.app.registry;
    registry
        .repository(&name)
        .await
        .map_err(|e| call.registry_error(e, name.as_str()))?;
    let (mut deleted, mut failures) = (Vec::new(), Vec::new());
    for id in input["imageIds"].as_array().into_iter().flatten() {
        let wanted = match wanted(id) {
            Ok(w) => w,
            Err((code, reason)) => {
                failures.push(failure(id, code, reason));
                continue;
            }
        };
        if let (None, Some(tag)) = (&wanted.digest, &wanted.tag) {
            // By tag: that tag only (and the image with it, if it was the last).
            match registry.untag_image(&name, tag).await {
                Ok(Some(digest)) => deleted.push(image_id(&digest, Some(tag.as_str()))),
                Ok(None) => failures.push(failure(
                    id,
                    "ImageNotFound",
                    "Requested image not found".into(),
                )),
                Err(e) => return Err(call.registry_error(e, name.as_str())),
            }
            continue;
        }
        let image = match lookup(call, &name, &wanted).await? {
            Ok(image) => image,
            Err((code, reason)) => {
                failures.push(failure(id, code, reason));
                continue;
            }
        };
        match registry
            .delete_manifest(&name, &Reference::Digest(image.digest.clone()))
            .await
        {
            Ok(()) if image.tags.is_empty() => deleted.push(image_id(&image.digest, None)),
            Ok(()) => deleted.extend(image.tags.iter().map(|t| image_id(&image.digest, Some(t)))),
            Err(RegistryError::ManifestReferenced(parent)) => failures.push(failure(
                id,
                "ImageReferencedByManifestList",
                format!("Requested image referenced by manifest list: [{parent}]"),
            )),
            Err(RegistryError::ManifestUnknown) => failures.push(failure(
                id,
                "ImageNotFound",
                "Requested image not found".into(),
            )),
            Err(e) => return Err(call.registry_error(e, name.as_str())),
        }
    }
    Ok(json!({"imageIds": deleted, "failures": failures}))
}

pub async fn put(call: &Call<'_>, input: &Value) -> Result<Value, EcrError> {
    let name = name_of(input)?;
    let registry = &call.app.registry;
    let manifest = input["imageManifest"].as_str().unwrap_or_default();
    let bytes = Bytes::copy_from_slice(manifest.as_bytes());
    let tag = match input["imageTag"].as_str() {
        Some(t) => Some(t.parse::<Tag>().map_err(|_| {
            EcrError::invalid_parameter(format!(
                "Invalid parameter at 'imageTag': '{t}' is not a valid tag"
            ))
        })?),
        None => None,
    };
    let digest = match input["imageDigest"].as_str() {
        Some(d) => {
            let given: Digest = d.parse().map_err(|_| {
                EcrError::invalid_parameter(format!(
                    "Invalid parameter at 'imageDigest': '{d}' is not a valid digest"
                ))
            })?;
            if Digest::of(given.algorithm(), &bytes) != given {
                return Err(EcrError::new(
                    "ImageDigestDoesNotMatchException",
                    format!("Provided digest {given} does not match the digest of the manifest"),
                ));
            }
            given
        }
        None => Digest::of(berth_core::Algorithm::Sha256, &bytes),
    };
    let existing = registry
        .find_image(&name, Some(&digest), None)
        .await
        .map_err(|e| call.registry_error(e, name.as_str()))?;
    if let Some(existing) = existing
        && tag
            .as_ref()
            .is_none_or(|t| existing.tags.iter().any(|x| x == t.as_str()))
    {
        let tag_text = tag
            .as_ref()
            .map_or(String::new(), |t| format!(" and tag '{t}'"));
        return Err(EcrError::new(
            "ImageAlreadyExistsException",
            format!(
                "Image with digest '{digest}'{tag_text} already exists in the repository with name '{name}' in registry with id '{}'",
                call.account()
            ),
        ));
    }
    let media_type = input["imageManifestMediaType"].as_str();
    let reference = match &tag {
        Some(t) => Reference::Tag(t.clone()),
        None => Reference::Digest(digest.clone()),
    };
    let stored = registry
        .put_manifest(&name, &reference, Vec::new(), media_type, bytes.clone())
        .await
        .map_err(|e| put_error(call, &name, e))?;
    let stored_media_type = registry
        .find_image(&name, Some(&stored.digest), None)
        .await
        .map_err(|e| call.registry_error(e, name.as_str()))?
        .map(|i| i.media_type)
        .unwrap_or_default();
    Ok(json!({"image": {
        "registryId": call.account(),
        "repositoryName": name.as_str(),
        "imageId": image_id(&stored.digest, tag.as_ref().map(Tag::as_str)),
        "imageManifest": manifest,
        "imageManifestMediaType": stored_media_type,
    }}))
}

fn put_error(call: &Call<'_>, name: &RepositoryName, e: RegistryError) -> EcrError {
    let list = |digests: &[Digest]| {
        digests
            .iter()
            .map(Digest::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let account = call.account();
    match e {
        RegistryError::ManifestBlobUnknown(missing) => EcrError::new(
            "LayersNotFoundException",
            format!(
                "Layers with digests '[{}]' required for pushing image into repository with name '{name}' in the registry with id '{account}' do not exist",
                list(&missing)
            ),
        ),
        RegistryError::ManifestChildUnknown(missing) => EcrError::new(
            "ReferencedImagesNotFoundException",
            format!(
                "Referenced images '[{}]' do not exist in the repository with name '{name}'",
                list(&missing)
            ),
        ),
        e @ RegistryError::TagImmutable { .. } => {
            EcrError::new("ImageTagAlreadyExistsException", e.to_string())
        }
        RegistryError::ManifestInvalid(reason) => EcrError::invalid_parameter(format!(
            "Invalid parameter at 'imageManifest' failed to satisfy constraint: '{reason}'"
        )),
        other => call.registry_error(other, name.as_str()),
    }
}

/// `ListImageReferrers`: the OCI referrers of an image (signatures, SBOMs,
/// attestations), filtered by artifact type, in digest order, paged.
pub async fn list_referrers(call: &Call<'_>, input: &Value) -> Result<Value, EcrError> {
    let name = super::repositories::name_of(input)?;
    call.app
        .registry
        .repository(&name)
        .await
        .map_err(|e| call.registry_error(e, name.as_str()))?;
    let subject = input["subjectId"]["imageDigest"]
        .as_str()
        .and_then(|d| d.parse::<Digest>().ok())
        .ok_or_else(|| {
            EcrError::invalid_parameter(
                "Invalid parameter at 'subjectId': an image digest is required",
            )
        })?;
    let types: Vec<&str> = input["filter"]["artifactTypes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let status = input["filter"]["artifactStatus"]
        .as_str()
        .unwrap_or("ACTIVE");
    let mut referrers = call
        .app
        .registry
        .referrers(&name, &subject, None)
        .await
        .map_err(|e| call.registry_error(e, name.as_str()))?;
    referrers.retain(|r| {
        types.is_empty()
            || r.artifact_type
                .as_deref()
                .is_some_and(|t| types.contains(&t))
    });
    // Every artifact here is active (archiving is not built yet).
    if status == "ARCHIVED" || status == "ACTIVATING" {
        referrers.clear();
    }
    referrers.sort_by_key(|r| r.digest.to_string());
    let (limit, after) = super::page(call, input)?;
    let limit = limit.min(50);
    let rest: Vec<_> = referrers
        .iter()
        .filter(|r| {
            after
                .as_deref()
                .is_none_or(|a| r.digest.to_string().as_str() > a)
        })
        .collect();
    let shown: Vec<Value> = rest
        .iter()
        .take(limit as usize)
        .map(|r| {
            let mut out = json!({
                "digest": r.digest.to_string(),
                "mediaType": r.media_type,
                "size": r.size,
                "artifactStatus": "ACTIVE",
            });
            if let Some(t) = &r.artifact_type {
                out["artifactType"] = json!(t);
            }
            if let Some(a) = r
                .annotations
                .as_deref()
                .and_then(|a| serde_json::from_str::<Value>(a).ok())
            {
                out["annotations"] = a;
            }
            out
        })
        .collect();
    let mut out = json!({"referrers": shown});
    if rest.len() > limit as usize
        && let Some(last) = rest.get(limit as usize - 1)
    {
        out["nextToken"] = super::token(call, &last.digest.to_string());
    }
    Ok(out)
}

/// `UpdateImageStorageClass`: to the archive (not pullable, still listed
/// with `imageStatus` `ARCHIVED`), or back (`ACTIVATING`, then `ACTIVE`).
pub async fn update_storage_class(call: &Call<'_>, input: &Value) -> Result<Value, EcrError> {
    let name = name_of(input)?;
    let image = super::scanning::image_of(call, &name, &input["imageId"]).await?;
    let registry = &call.app.registry;
    let target = input["targetStorageClass"].as_str().unwrap_or_default();
    let refused = |why: &str| {
        EcrError::new(
            "ImageStorageClassUpdateNotSupportedException",
            format!("The image {} cannot move to {target}: {why}", image.digest),
        )
    };
    let status = match (target, image.image_status.as_str()) {
        ("ARCHIVE", "ARCHIVED") | ("STANDARD", "ACTIVE") => image.image_status.clone(),
        ("ARCHIVE", "ACTIVATING") => return Err(refused("it is being restored")),
        ("ARCHIVE", _) => {
            if !registry
                .archive_image(&name, &image.digest)
                .await
                .map_err(|e| call.registry_error(e, name.as_str()))?
            {
                return Err(refused("it changed meanwhile"));
            }
            "ARCHIVED".to_string()
        }
        (_, _) => {
            registry
                .restore_image(&name, &image.digest)
                .await
                .map_err(|e| call.registry_error(e, name.as_str()))?;
            "ACTIVATING".to_string()
        }
    };
    Ok(json!({
        "registryId": call.account(),
        "repositoryName": name.as_str(),
        "imageId": image_id(&image.digest, input["imageId"]["imageTag"].as_str()),
        "imageStatus": status,
    }))
}
