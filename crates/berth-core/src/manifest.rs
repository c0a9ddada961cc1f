//! Manifest validation. Manifests are stored byte-exact; this module parses
//! them only to check them and to find what they reference.

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::digest::Digest;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const DOCKER_SCHEMA1: [&str; 2] = [
    "application/vnd.docker.distribution.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
];

/// The largest manifest accepted, as on ECR.
pub const MAX_MANIFEST_BYTES: usize = 4 * 1024 * 1024;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ManifestError {
    #[error("manifest is larger than {MAX_MANIFEST_BYTES} bytes")]
    TooLarge,
    #[error("manifest is not valid JSON: {0}")]
    Json(String),
    #[error(
        "Docker image manifest schema 1 is not supported: push with schema 2 or OCI (docker, podman and skopeo all do)"
    )]
    Schema1,
    #[error("manifest schemaVersion must be 2")]
    SchemaVersion,
    #[error("manifest has no media type: set mediaType or the Content-Type header")]
    NoMediaType,
    #[error("manifest mediaType '{body}' does not match Content-Type '{header}'")]
    MediaTypeMismatch { body: String, header: String },
    #[error("unsupported manifest media type '{0}'")]
    UnsupportedMediaType(String),
    #[error("manifest field '{field}' is invalid: {reason}")]
    Field { field: &'static str, reason: String },
}

/// A content descriptor, as far as the registry needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Descriptor {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ManifestKind {
    Image,
    Index,
}

/// What a valid manifest tells the registry.
#[derive(Clone, Debug, PartialEq)]
pub struct Manifest {
    pub media_type: String,
    pub kind: ManifestKind,
    /// The type reported by the referrers API: `artifactType`, else an image's config media type.
    pub artifact_type: Option<String>,
    pub config: Option<Descriptor>,
    /// Blobs that must exist in the repository: config and distributable layers.
    pub blobs: Vec<Descriptor>,
    /// Manifests that must exist in the repository: an index's entries.
    pub children: Vec<Descriptor>,
    pub subject: Option<Descriptor>,
    pub annotations: Option<Map<String, Value>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawDescriptor {
    media_type: Option<String>,
    digest: Option<String>,
    size: Option<i64>,
    #[serde(default)]
    urls: Vec<String>,
    /// Checked only: a map of strings, as the image spec requires.
    #[serde(default, rename = "annotations")]
    _annotations: Option<std::collections::BTreeMap<String, String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawManifest {
    schema_version: Option<i64>,
    media_type: Option<String>,
    artifact_type: Option<String>,
    config: Option<RawDescriptor>,
    layers: Option<Vec<RawDescriptor>>,
    manifests: Option<Vec<RawDescriptor>>,
    subject: Option<RawDescriptor>,
    annotations: Option<Map<String, Value>>,
}

fn descriptor(raw: RawDescriptor, field: &'static str) -> Result<Descriptor, ManifestError> {
    let bad = |reason: &str| ManifestError::Field {
        field,
        reason: reason.to_string(),
    };
    let media_type = raw.media_type.ok_or_else(|| bad("mediaType is missing"))?;
    let digest = raw
        .digest
        .ok_or_else(|| bad("digest is missing"))?
        .parse::<Digest>()
        .map_err(|e| bad(&e.to_string()))?;
    let size = raw.size.ok_or_else(|| bad("size is missing"))?;
    let size = u64::try_from(size).map_err(|_| bad("size is negative"))?;
    Ok(Descriptor {
        media_type,
        digest,
        size,
    })
}

/// Validates `bytes` as a manifest sent with `content_type` (the request's
/// `Content-Type`, if any) and returns what it references.
pub fn parse(bytes: &[u8], content_type: Option<&str>) -> Result<Manifest, ManifestError> {
    if bytes.len() > MAX_MANIFEST_BYTES {
        return Err(ManifestError::TooLarge);
    }
    let content_type = content_type
        .map(|c| c.split(';').next().unwrap_or("").trim())
        .filter(|c| !c.is_empty());
    if content_type.is_some_and(|c| DOCKER_SCHEMA1.contains(&c)) {
        return Err(ManifestError::Schema1);
    }
    let raw: RawManifest =
        serde_json::from_slice(bytes).map_err(|e| ManifestError::Json(e.to_string()))?;
    match raw.schema_version {
        Some(2) => {}
        Some(1) => return Err(ManifestError::Schema1),
        _ => return Err(ManifestError::SchemaVersion),
    }
    let media_type = match (&raw.media_type, content_type) {
        (Some(body), Some(header)) if body != header => {
            return Err(ManifestError::MediaTypeMismatch {
                body: body.clone(),
                header: header.to_string(),
            });
        }
        (Some(body), _) => body.clone(),
        (None, Some(header)) => header.to_string(),
        (None, None) => return Err(ManifestError::NoMediaType),
    };
    let kind = match media_type.as_str() {
        OCI_MANIFEST | DOCKER_MANIFEST => ManifestKind::Image,
        OCI_INDEX | DOCKER_MANIFEST_LIST => ManifestKind::Index,
        t if DOCKER_SCHEMA1.contains(&t) => return Err(ManifestError::Schema1),
        other => return Err(ManifestError::UnsupportedMediaType(other.to_string())),
    };
    // A media type is at most 255 characters (RFC 6838).
    if raw.artifact_type.as_ref().is_some_and(|t| t.len() > 255) {
        return Err(ManifestError::Field {
            field: "artifactType",
            reason: "a media type is at most 255 characters".into(),
        });
    }
    if let Some(annotations) = &raw.annotations
        && annotations.values().any(|v| !v.is_string())
    {
        return Err(ManifestError::Field {
            field: "annotations",
            reason: "annotations must be a map of strings".into(),
        });
    }
    let subject = raw.subject.map(|s| descriptor(s, "subject")).transpose()?;
    let mut manifest = Manifest {
        media_type,
        kind,
        artifact_type: raw.artifact_type.clone(),
        config: None,
        blobs: Vec::new(),
        children: Vec::new(),
        subject,
        annotations: raw.annotations,
    };
    match kind {
        ManifestKind::Image => {
            if raw.manifests.is_some() {
                return Err(ManifestError::Field {
                    field: "manifests",
                    reason: "an image manifest has no manifests list".into(),
                });
            }
            let config = raw.config.ok_or(ManifestError::Field {
                field: "config",
                reason: "is missing".into(),
            })?;
            let config = descriptor(config, "config")?;
            let layers = raw.layers.ok_or(ManifestError::Field {
                field: "layers",
                reason: "is missing".into(),
            })?;
            manifest.blobs.push(config.clone());
            for layer in layers {
                // Non-distributable layers live elsewhere (their `urls`); do not require them here.
                let external = !layer.urls.is_empty();
                let layer = descriptor(layer, "layers")?;
                if !external {
                    manifest.blobs.push(layer);
                }
            }
            if manifest.artifact_type.is_none() {
                manifest.artifact_type = Some(config.media_type.clone());
            }
            manifest.config = Some(config);
        }
        ManifestKind::Index => {
            if raw.layers.is_some() || raw.config.is_some() {
                return Err(ManifestError::Field {
                    field: "manifests",
                    reason: "an index has no config or layers".into(),
                });
            }
            let entries = raw.manifests.ok_or(ManifestError::Field {
                field: "manifests",
                reason: "is missing".into(),
            })?;
            for entry in entries {
                manifest.children.push(descriptor(entry, "manifests")?);
            }
        }
    }
    Ok(manifest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::Algorithm;

    fn d(s: &str) -> String {
        Digest::of(Algorithm::Sha256, s.as_bytes()).to_string()
    }

    fn image(extra: &str) -> String {
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}",
            "config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":2}},
            "layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{}","size":3}}]{extra}}}"#,
            d("config"),
            d("layer")
        )
    }

    #[test]
    fn image_manifest_lists_its_blobs() {
        let m = parse(image("").as_bytes(), Some(OCI_MANIFEST)).unwrap();
        assert_eq!(m.kind, ManifestKind::Image);
        assert_eq!(m.blobs.len(), 2);
        assert_eq!(m.blobs[1].digest.to_string(), d("layer"));
        assert_eq!(
            m.artifact_type.as_deref(),
            Some("application/vnd.oci.image.config.v1+json")
        );
        assert!(m.subject.is_none());
    }

    #[test]
    fn artifact_type_and_subject_are_read() {
        let extra = format!(
            r#","artifactType":"application/x-sbom","subject":{{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":10}},"annotations":{{"k":"v"}}"#,
            d("subject")
        );
        let m = parse(image(&extra).as_bytes(), None).unwrap();
        assert_eq!(m.artifact_type.as_deref(), Some("application/x-sbom"));
        assert_eq!(m.subject.unwrap().digest.to_string(), d("subject"));
        assert_eq!(m.annotations.unwrap()["k"], "v");
    }

    /// Annotations are a map of strings (image spec), on the manifest and on
    /// its descriptors: anything else would break strict readers of the
    /// referrers index built from them.
    #[test]
    fn annotations_must_be_maps_of_strings() {
        let subject = format!(
            r#","subject":{{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":10}}"#,
            d("subject")
        );
        for bad in [
            r#","annotations":{"a":[1,2]}"#,
            r#","annotations":{"a":1}"#,
            r#","annotations":["a"]"#,
        ] {
            let text = image(&format!("{subject}{bad}"));
            assert!(parse(text.as_bytes(), None).is_err(), "{bad}");
        }
        let layer = image("").replace(
            r#""size":3}"#,
            r#""size":3,"annotations":{"org.opencontainers.image.title":{"x":1}}}"#,
        );
        assert_ne!(layer, image(""));
        assert!(parse(layer.as_bytes(), None).is_err());
    }

    #[test]
    fn index_lists_its_children() {
        let body = format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":5,"platform":{{"os":"linux","architecture":"amd64"}}}}]}}"#,
            d("child")
        );
        let m = parse(body.as_bytes(), Some(OCI_INDEX)).unwrap();
        assert_eq!(m.kind, ManifestKind::Index);
        assert_eq!(m.media_type, OCI_INDEX);
        assert_eq!(m.children.len(), 1);
        assert!(m.blobs.is_empty());
    }

    #[test]
    fn foreign_layers_are_not_required() {
        let body = format!(
            r#"{{"schemaVersion":2,"mediaType":"{DOCKER_MANIFEST}","config":{{"mediaType":"a","digest":"{}","size":1}},
            "layers":[{{"mediaType":"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip","digest":"{}","size":1,"urls":["https://example.com/l"]}}]}}"#,
            d("c"),
            d("l")
        );
        let m = parse(body.as_bytes(), Some(DOCKER_MANIFEST)).unwrap();
        assert_eq!(m.blobs.len(), 1);
    }

    #[test]
    fn refuses_invalid_manifests() {
        assert!(matches!(
            parse(b"not json", Some(OCI_MANIFEST)),
            Err(ManifestError::Json(_))
        ));
        assert_eq!(
            parse(br#"{"schemaVersion":1}"#, None),
            Err(ManifestError::Schema1)
        );
        assert_eq!(
            parse(b"{}", Some(DOCKER_SCHEMA1[1])),
            Err(ManifestError::Schema1)
        );
        assert_eq!(
            parse(br#"{"schemaVersion":2,"layers":[]}"#, None),
            Err(ManifestError::NoMediaType)
        );
        assert!(matches!(
            parse(image("").as_bytes(), Some(OCI_INDEX)),
            Err(ManifestError::MediaTypeMismatch { .. })
        ));
        assert!(matches!(
            parse(
                br#"{"schemaVersion":2,"mediaType":"text/plain"}"#,
                Some("text/plain")
            ),
            Err(ManifestError::UnsupportedMediaType(_))
        ));
        let bad_digest = image("").replace(&d("layer"), "sha256:1234");
        assert!(matches!(
            parse(bad_digest.as_bytes(), None),
            Err(ManifestError::Field {
                field: "layers",
                ..
            })
        ));
        let no_config =
            format!(r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","layers":[]}}"#);
        assert!(matches!(
            parse(no_config.as_bytes(), None),
            Err(ManifestError::Field {
                field: "config",
                ..
            })
        ));
        let big = vec![b' '; MAX_MANIFEST_BYTES + 1];
        assert_eq!(parse(&big, None), Err(ManifestError::TooLarge));
    }

    #[test]
    fn content_type_parameters_are_ignored() {
        let ct = format!("{OCI_MANIFEST}; charset=utf-8");
        assert!(parse(image("").as_bytes(), Some(&ct)).is_ok());
    }
}
