//! The AWS managed policies for ECR, under their real ARNs and with AWS's
//! documents (as published in the AWS Managed Policy Reference).

pub struct ManagedPolicy {
    pub name: &'static str,
    pub id: &'static str,
    pub description: &'static str,
    /// AWS's current default version.
    pub version: &'static str,
    pub document: &'static str,
}

impl ManagedPolicy {
    pub fn arn(&self) -> String {
        format!("{AWS_POLICY_PREFIX}{}", self.name)
    }
}

pub const AWS_POLICY_PREFIX: &str = "arn:aws:iam::aws:policy/";

pub const MANAGED_POLICIES: &[ManagedPolicy] = &[
    ManagedPolicy {
        name: "AdministratorAccess",
        id: "ANPAIWMBCKSKIEE64ZLYK",
        description: "Provides full access to AWS services and resources.",
        version: "v1",
        document: r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#,
    },
    ManagedPolicy {
        name: "AmazonEC2ContainerRegistryFullAccess",
        id: "ANPAIESRL7KD7IIVF6V4W",
        description: "Provides administrative access to Amazon ECR resources",
        version: "v7",
        document: r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["ecr:*","cloudtrail:LookupEvents"],"Resource":"*"},{"Effect":"Allow","Action":["iam:CreateServiceLinkedRole"],"Resource":"*","Condition":{"StringEquals":{"iam:AWSServiceName":["replication.ecr.amazonaws.com"]}}}]}"#,
    },
    ManagedPolicy {
        name: "AmazonEC2ContainerRegistryPowerUser",
        id: "ANPAJDNE5PIHROIBGGDDW",
        description: "Provides full access to Amazon EC2 Container Registry repositories, but does not allow repository deletion or policy changes.",
        version: "v3",
        document: r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["ecr:GetAuthorizationToken","ecr:BatchCheckLayerAvailability","ecr:GetDownloadUrlForLayer","ecr:GetRepositoryPolicy","ecr:DescribeRepositories","ecr:ListImages","ecr:DescribeImages","ecr:BatchGetImage","ecr:GetLifecyclePolicy","ecr:GetLifecyclePolicyPreview","ecr:ListTagsForResource","ecr:DescribeImageScanFindings","ecr:InitiateLayerUpload","ecr:UploadLayerPart","ecr:CompleteLayerUpload","ecr:PutImage"],"Resource":"*"}]}"#,
    },
    ManagedPolicy {
        name: "AmazonEC2ContainerRegistryReadOnly",
        id: "ANPAIFYZPA37OOHVIH7KQ",
        description: "Provides read-only access to Amazon EC2 Container Registry repositories.",
        version: "v3",
        document: r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["ecr:GetAuthorizationToken","ecr:BatchCheckLayerAvailability","ecr:GetDownloadUrlForLayer","ecr:GetRepositoryPolicy","ecr:DescribeRepositories","ecr:ListImages","ecr:DescribeImages","ecr:BatchGetImage","ecr:GetLifecyclePolicy","ecr:GetLifecyclePolicyPreview","ecr:ListTagsForResource","ecr:DescribeImageScanFindings"],"Resource":"*"}]}"#,
    },
    ManagedPolicy {
        name: "AmazonEC2ContainerRegistryPullOnly",
        id: "ANPAZKAPJZG4LMTA2VQKS",
        description: "Provides permissions to pull images from Amazon EC2 Container Registry repositories.",
        version: "v1",
        document: r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["ecr:GetAuthorizationToken","ecr:BatchGetImage","ecr:GetDownloadUrlForLayer","ecr:BatchImportUpstreamImage"],"Resource":"*"}]}"#,
    },
];

/// The AWS managed policy with `arn`, if berth has it.
pub fn managed_policy(arn: &str) -> Option<&'static ManagedPolicy> {
    let name = arn.strip_prefix(AWS_POLICY_PREFIX)?;
    MANAGED_POLICIES.iter().find(|p| p.name == name)
}

#[cfg(test)]
mod tests {
    use berth_core::policy::{Policy, PolicyKind};

    use super::*;

    #[test]
    fn every_managed_policy_parses() {
        for policy in MANAGED_POLICIES {
            Policy::parse(policy.document, PolicyKind::Identity).unwrap();
            assert_eq!(managed_policy(&policy.arn()).unwrap().name, policy.name);
        }
        assert!(managed_policy("arn:aws:iam::aws:policy/PowerUserAccess").is_none());
    }
}
