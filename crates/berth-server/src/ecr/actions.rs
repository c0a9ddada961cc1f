//! Which IAM action each ECR operation needs, and on which resource,
//! following the Service Authorization Reference for ECR (README's "Access
//! control" shows the same table). Next to the door's router; `/v2/`'s map
//! is `oci::route::Route::actions`.

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
    "RegisterPullTimeUpdateExclusion",
    "DeregisterPullTimeUpdateExclusion",
    "ListPullTimeUpdateExclusions",
    "StartReplicationBackfill",
    "StopReplicationBackfill",
    "ListReplicationBackfills",
    "DescribeReplicationBackfillResults",
    "PutSigningConfiguration",
    "GetSigningConfiguration",
    "DeleteSigningConfiguration",
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_map_to_ecr_actions() {
        assert_eq!(ecr_action("ListImageReferrers"), "ecr:BatchGetImage");
        assert_eq!(ecr_action("PutImage"), "ecr:PutImage");
        assert!(is_registry_level("GetAuthorizationToken"));
        assert!(!is_registry_level("PutImage"));
    }
}
