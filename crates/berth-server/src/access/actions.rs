//! Which IAM action each request needs, and on which resource, following the
//! Service Authorization Reference for ECR. README's "Access control" section
//! shows the same table.

use axum::http::Method;

use crate::oci::route::Route;

/// ECR operations without resource-level permissions: evaluated against `"*"`.
const REGISTRY_LEVEL: &[&str] = &[
    "GetAuthorizationToken",
    "DescribeRegistry",
    "GetRegistryPolicy",
    "PutRegistryPolicy",
    "DeleteRegistryPolicy",
    "PutReplicationConfiguration",
    "GetRegistryScanningConfiguration",
    "PutRegistryScanningConfiguration",
    "CreatePullThroughCacheRule",
    "DeletePullThroughCacheRule",
    "DescribePullThroughCacheRules",
    "UpdatePullThroughCacheRule",
    "ValidatePullThroughCacheRule",
    "CreateRepositoryCreationTemplate",
    "DeleteRepositoryCreationTemplate",
    "DescribeRepositoryCreationTemplates",
    "UpdateRepositoryCreationTemplate",
    "GetAccountSetting",
    "PutAccountSetting",
];

/// The IAM action of an ECR operation.
pub fn ecr_action(operation: &str) -> String {
    match operation {
        // Authorized by the pull permission, as on ECR.
        "ListImageReferrers" => "ecr:BatchGetImage".to_string(),
        other => format!("ecr:{other}"),
    }
}

/// Whether an ECR operation is evaluated against `"*"` rather than a repository.
pub fn is_registry_level(operation: &str) -> bool {
    REGISTRY_LEVEL.contains(&operation)
}

/// The actions a `/v2/` request needs on its repository, in order. `None`
/// for requests that are not about one repository (`/v2/`, `_catalog`).
pub fn oci_actions(route: &Route, method: &Method) -> Option<&'static [&'static str]> {
    let actions: &'static [&'static str] = match (route, method) {
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

/// Whether the request only reads (anonymous callers may be let in by a
/// repository policy; others are asked to log in first).
pub fn is_pull(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pushes_and_pulls_map_to_ecr_actions() {
        let name: berth_core::RepositoryName = "app".parse().unwrap();
        let tag: berth_core::Reference = "latest".parse().unwrap();
        let manifest = Route::Manifest(name.clone(), tag);
        assert_eq!(
            oci_actions(&manifest, &Method::GET),
            Some(&["ecr:BatchGetImage"][..])
        );
        assert_eq!(
            oci_actions(&manifest, &Method::PUT),
            Some(&["ecr:PutImage"][..])
        );
        assert_eq!(
            oci_actions(&Route::Uploads(name.clone()), &Method::POST),
            Some(&["ecr:InitiateLayerUpload"][..])
        );
        assert_eq!(oci_actions(&Route::Catalog, &Method::GET), None);
        assert_eq!(ecr_action("ListImageReferrers"), "ecr:BatchGetImage");
        assert!(is_registry_level("GetAuthorizationToken"));
        assert!(!is_registry_level("PutImage"));
    }
}
