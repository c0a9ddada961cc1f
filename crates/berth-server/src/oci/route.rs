//! `/v2/…` paths. Repository names contain `/`, so the endpoint is found from
//! the end of the path, never by a generic router.

use axum::http::Method;
use berth_core::{Digest, Reference, RepositoryName};
use percent_encoding::percent_decode_str;

use super::error::OciError;

#[derive(Debug, PartialEq, Eq)]
pub enum Route {
    Base,
    Catalog,
    Tags(RepositoryName),
    Manifest(RepositoryName, Reference),
    Blob(RepositoryName, Digest),
    /// `…/blobs/uploads/`: start an upload.
    Uploads(RepositoryName),
    /// `…/blobs/uploads/<id>`.
    Upload(RepositoryName, String),
    Referrers(RepositoryName, Digest),
}

impl Route {
    /// The endpoint's name, for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Route::Base => "base",
            Route::Catalog => "catalog",
            Route::Tags(_) => "tags",
            Route::Manifest(..) => "manifest",
            Route::Blob(..) => "blob",
            Route::Uploads(_) => "upload start",
            Route::Upload(..) => "upload",
            Route::Referrers(..) => "referrers",
        }
    }

    /// The IAM actions a request to this endpoint with `method` needs on its
    /// repository, in order (README, "Access control"). `None` for requests
    /// that are not about one repository (`/v2/`, `_catalog`).
    pub fn actions(&self, method: &Method) -> Option<&'static [&'static str]> {
        let actions: &'static [&'static str] = match (self, method) {
            (Route::Base | Route::Catalog, _) => return None,
            (Route::Tags(_), _) => &["ecr:ListImages"],
            (Route::Manifest(..), &Method::GET | &Method::HEAD) => &["ecr:BatchGetImage"],
            (Route::Manifest(..), &Method::PUT) => &["ecr:PutImage"],
            (Route::Manifest(..), _) => &["ecr:BatchDeleteImage"],
            (Route::Blob(..), &Method::HEAD) => &["ecr:BatchCheckLayerAvailability"],
            (Route::Blob(..), &Method::GET) => &["ecr:GetDownloadUrlForLayer"],
            (Route::Blob(..), _) => &["ecr:BatchDeleteImage"],
            (Route::Uploads(_), _) => &["ecr:InitiateLayerUpload"],
            (Route::Upload(..), &Method::PUT) => &["ecr:CompleteLayerUpload"],
            (Route::Upload(..), _) => &["ecr:UploadLayerPart"],
            (Route::Referrers(..), _) => &["ecr:BatchGetImage"],
        };
        Some(actions)
    }

    /// The repository the request is about, if any.
    pub fn repository(&self) -> Option<&RepositoryName> {
        match self {
            Route::Base | Route::Catalog => None,
            Route::Tags(name)
            | Route::Manifest(name, _)
            | Route::Blob(name, _)
            | Route::Uploads(name)
            | Route::Upload(name, _)
            | Route::Referrers(name, _) => Some(name),
        }
    }
}

/// Maps a request to its endpoint; `Ok(None)` when it is no `/v2/`
/// endpoint. A manifest reference that is neither a tag nor a digest is
/// `404 MANIFEST_UNKNOWN` to a read (nothing can be stored under it, as the
/// distribution spec answers), and invalid to a write.
pub fn parse_request(method: &axum::http::Method, path: &str) -> Result<Option<Route>, OciError> {
    use axum::http::Method;
    match parse(path) {
        Err(e)
            if matches!(*method, Method::GET | Method::HEAD)
                && matches!(e.code, "TAG_INVALID" | "DIGEST_INVALID")
                && path.rsplit('/').nth(1) == Some("manifests") =>
        {
            Err(OciError::new(
                axum::http::StatusCode::NOT_FOUND,
                "MANIFEST_UNKNOWN",
                "manifest unknown to registry",
            ))
        }
        other => other,
    }
}

/// Maps a path to its endpoint; `Ok(None)` when it is no `/v2/` endpoint.
pub fn parse(path: &str) -> Result<Option<Route>, OciError> {
    let Some(rest) = path.strip_prefix("/v2") else {
        return Ok(None);
    };
    if rest.is_empty() || rest == "/" {
        return Ok(Some(Route::Base));
    }
    let Some(rest) = rest.strip_prefix('/') else {
        return Ok(None);
    };
    if rest == "_catalog" {
        return Ok(Some(Route::Catalog));
    }
    let segments: Vec<&str> = rest.split('/').collect();
    let n = segments.len();
    let name = |upto: usize| -> Result<RepositoryName, OciError> {
        segments[..upto]
            .join("/")
            .parse()
            .map_err(|_| OciError::name_invalid())
    };
    // Bytes that are not UTF-8 are kept as replacement characters: they
    // make an upload id or a reference that names nothing, answered as such.
    let last = || -> Result<String, OciError> {
        Ok(percent_decode_str(segments[n - 1])
            .decode_utf8_lossy()
            .into_owned())
    };
    let digest = |s: String| -> Result<Digest, OciError> {
        s.parse()
            .map_err(|e: berth_core::digest::DigestError| OciError::digest_invalid(e.to_string()))
    };

    let route = if n >= 3 && segments[n - 3] == "blobs" && segments[n - 2] == "uploads" {
        let id = last()?;
        if id.is_empty() {
            Route::Uploads(name(n - 3)?)
        } else {
            Route::Upload(name(n - 3)?, id)
        }
    } else if n >= 3 && segments[n - 2] == "blobs" && segments[n - 1] == "uploads" {
        Route::Uploads(name(n - 2)?)
    } else if n >= 3 && segments[n - 2] == "tags" && segments[n - 1] == "list" {
        Route::Tags(name(n - 2)?)
    } else if n >= 3 && segments[n - 2] == "manifests" {
        let reference = last()?.parse::<Reference>().map_err(|e| match e {
            berth_core::name::InvalidReference::Digest(d) => {
                OciError::digest_invalid(d.to_string())
            }
            berth_core::name::InvalidReference::Tag(_) => OciError::new(
                axum::http::StatusCode::BAD_REQUEST,
                "TAG_INVALID",
                "invalid tag",
            ),
        })?;
        Route::Manifest(name(n - 2)?, reference)
    } else if n >= 3 && segments[n - 2] == "blobs" {
        Route::Blob(name(n - 2)?, digest(last()?)?)
    } else if n >= 3 && segments[n - 2] == "referrers" {
        Route::Referrers(name(n - 2)?, digest(last()?)?)
    } else {
        return Ok(None);
    };
    Ok(Some(route))
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn name(s: &str) -> RepositoryName {
        s.parse().unwrap()
    }

    #[test]
    fn finds_endpoints_from_the_end() {
        assert_eq!(parse("/v2/").unwrap(), Some(Route::Base));
        assert_eq!(parse("/v2").unwrap(), Some(Route::Base));
        assert_eq!(parse("/v2/_catalog").unwrap(), Some(Route::Catalog));
        assert_eq!(
            parse("/v2/a/b/tags/list").unwrap(),
            Some(Route::Tags(name("a/b")))
        );
        assert_eq!(
            parse("/v2/team/blobs/manifests/v1").unwrap(),
            Some(Route::Manifest(name("team/blobs"), "v1".parse().unwrap()))
        );
        assert_eq!(
            parse(&format!("/v2/x/blobs/{}", D.replace(':', "%3A"))).unwrap(),
            Some(Route::Blob(name("x"), D.parse().unwrap()))
        );
        assert_eq!(
            parse("/v2/x/y/blobs/uploads/").unwrap(),
            Some(Route::Uploads(name("x/y")))
        );
        assert_eq!(
            parse("/v2/x/blobs/uploads").unwrap(),
            Some(Route::Uploads(name("x")))
        );
        assert_eq!(
            parse("/v2/x/blobs/uploads/abc").unwrap(),
            Some(Route::Upload(name("x"), "abc".into()))
        );
        assert_eq!(
            parse(&format!("/v2/x/referrers/{D}")).unwrap(),
            Some(Route::Referrers(name("x"), D.parse().unwrap()))
        );
    }

    #[test]
    fn refuses_bad_names_and_digests() {
        assert_eq!(
            parse("/v2/UPPER/tags/list").unwrap_err().code,
            "NAME_INVALID"
        );
        assert_eq!(
            parse("/v2/x/blobs/sha256:12").unwrap_err().code,
            "DIGEST_INVALID"
        );
        assert_eq!(
            parse("/v2/x/manifests/-bad").unwrap_err().code,
            "TAG_INVALID"
        );
        // Reading a manifest by a reference nothing can have is "not found".
        let get = axum::http::Method::GET;
        for bad in ["/v2/x/manifests/-bad", "/v2/x/manifests/sha256:12"] {
            let e = parse_request(&get, bad).unwrap_err();
            assert_eq!((e.status.as_u16(), e.code), (404, "MANIFEST_UNKNOWN"));
            let e = parse_request(&axum::http::Method::PUT, bad).unwrap_err();
            assert_eq!(e.status.as_u16(), 400);
        }
        assert_eq!(
            parse_request(&get, "/v2/x/blobs/sha256:12")
                .unwrap_err()
                .code,
            "DIGEST_INVALID"
        );
        assert_eq!(parse("/v3/x").unwrap(), None);
        let manifest = parse("/v2/app/manifests/latest").unwrap().unwrap();
        assert_eq!(
            manifest.actions(&Method::GET),
            Some(&["ecr:BatchGetImage"][..])
        );
        assert_eq!(manifest.actions(&Method::PUT), Some(&["ecr:PutImage"][..]));
        assert_eq!(
            Route::Uploads(name("app")).actions(&Method::POST),
            Some(&["ecr:InitiateLayerUpload"][..])
        );
        assert_eq!(Route::Catalog.actions(&Method::GET), None);
        assert_eq!(parse("/v2/x").unwrap(), None);
        assert_eq!(parse("/v2x").unwrap(), None);
    }
}
