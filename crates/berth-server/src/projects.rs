//! Projects: a repository namespace (`acp/…`) with members and robots,
//! built on IAM so the same rules hold for `aws ecr`, docker and the
//! console, and every decision reads as an ordinary policy document. A
//! project `p` is three groups at path `/berth/projects/p/`:
//! `p-pull` (pull from `repository/p/*`), `p-push` (also push and create
//! repositories there) and `p-admins` (everything on `repository/p/*`, and
//! managing the project's groups and robots — nothing else). A robot is an
//! IAM user `p-NAME` at path `/berth/robots/p/`, in `p-pull` or `p-push`,
//! with one access key.

use std::sync::Arc;

use berth_store::{IamEntity, IamKind};
use serde_json::json;

use crate::iam::{Iam, IamError, NewGroup, NewUser};

/// What a member or robot may do in a project.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Right {
    Pull,
    Push,
    Admin,
}

impl Right {
    pub fn parse(text: &str) -> Option<Right> {
        match text {
            "pull" => Some(Right::Pull),
            "push" => Some(Right::Push),
            "admin" => Some(Right::Admin),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Right::Pull => "pull",
            Right::Push => "push",
            Right::Admin => "admin",
        }
    }

    fn suffix(self) -> &'static str {
        match self {
            Right::Pull => "pull",
            Right::Push => "push",
            Right::Admin => "admins",
        }
    }
}

const PULL: &[&str] = &[
    "ecr:BatchGetImage",
    "ecr:GetDownloadUrlForLayer",
    "ecr:BatchCheckLayerAvailability",
    "ecr:DescribeImages",
    "ecr:DescribeRepositories",
    "ecr:ListImages",
    "ecr:DescribeImageScanFindings",
];
const PUSH: &[&str] = &[
    "ecr:InitiateLayerUpload",
    "ecr:UploadLayerPart",
    "ecr:CompleteLayerUpload",
    "ecr:PutImage",
    "ecr:CreateRepository",
];

/// A valid project name: one namespace segment.
pub fn valid_name(name: &str) -> bool {
    (2..=40).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

pub struct Projects {
    iam: Arc<Iam>,
    account: String,
    region: String,
}

/// One project as the console shows it.
pub struct Project {
    pub name: String,
    /// Users by right (robots excluded).
    pub members: Vec<(IamEntity, Right)>,
    pub robots: Vec<(IamEntity, Right)>,
}

impl Projects {
    pub fn new(iam: Arc<Iam>, account: String, region: String) -> Projects {
        Projects {
            iam,
            account,
            region,
        }
    }

    pub fn group_path(project: &str) -> String {
        format!("/berth/projects/{project}/")
    }

    pub fn robot_path(project: &str) -> String {
        format!("/berth/robots/{project}/")
    }

    pub fn group_name(project: &str, right: Right) -> String {
        format!("{project}-{}", right.suffix())
    }

    pub fn group_arn(&self, project: &str, right: Right) -> String {
        format!(
            "arn:aws:iam::{}:group{}{}",
            self.account,
            Self::group_path(project),
            Self::group_name(project, right)
        )
    }

    pub fn robot_arn(&self, project: &str, robot: &str) -> String {
        format!(
            "arn:aws:iam::{}:user{}{project}-{robot}",
            self.account,
            Self::robot_path(project)
        )
    }

    fn policy(&self, project: &str, right: Right) -> String {
        let repositories = format!(
            "arn:aws:ecr:{}:{}:repository/{project}/*",
            self.region, self.account
        );
        let mut actions: Vec<&str> = PULL.to_vec();
        if right != Right::Pull {
            actions.extend(PUSH);
        }
        let mut statements = vec![
            json!({"Sid": "Repositories", "Effect": "Allow", "Action": actions, "Resource": repositories}),
            json!({"Sid": "Login", "Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"}),
        ];
        if right == Right::Admin {
            statements[0]["Action"] = json!("ecr:*");
            statements.push(json!({
                "Sid": "ManageProject", "Effect": "Allow",
                "Action": ["iam:GetGroup", "iam:AddUserToGroup", "iam:RemoveUserFromGroup"],
                "Resource": format!("arn:aws:iam::{}:group{}*", self.account, Self::group_path(project)),
            }));
            statements.push(json!({
                "Sid": "ManageRobots", "Effect": "Allow",
                "Action": ["iam:CreateUser", "iam:DeleteUser", "iam:CreateAccessKey", "iam:DeleteAccessKey",
                           "iam:ListAccessKeys", "iam:AddUserToGroup", "iam:RemoveUserFromGroup"],
                "Resource": format!("arn:aws:iam::{}:user{}*", self.account, Self::robot_path(project)),
            }));
        }
        json!({"Version": "2012-10-17", "Statement": statements}).to_string()
    }

    /// Makes the project's three groups with their policies.
    pub async fn create(&self, project: &str) -> Result<(), IamError> {
        for right in [Right::Pull, Right::Push, Right::Admin] {
            let name = Self::group_name(project, right);
            self.iam
                .create_group(NewGroup {
                    name: name.clone(),
                    path: Self::group_path(project),
                })
                .await?;
            self.iam
                .put_inline_policy(
                    IamKind::Group,
                    &name,
                    "berth-project",
                    &self.policy(project, right),
                )
                .await?;
        }
        Ok(())
    }

    /// The projects there are (by their admins group), by name.
    pub async fn names(&self) -> Result<Vec<String>, IamError> {
        let groups = self
            .iam
            .list_entities(IamKind::Group, "/berth/projects/", None, 10_000)
            .await?;
        let mut names: Vec<String> = groups
            .iter()
            .filter_map(|g| {
                let project = g.name.strip_suffix("-admins")?;
                (g.path == Self::group_path(project)).then(|| project.to_string())
            })
            .collect();
        names.sort();
        Ok(names)
    }

    pub async fn get(&self, project: &str) -> Result<Option<Project>, IamError> {
        if self
            .iam
            .entity(IamKind::Group, &Self::group_name(project, Right::Admin))
            .await?
            .is_none()
        {
            return Ok(None);
        }
        let mut members = Vec::new();
        let mut robots = Vec::new();
        for right in [Right::Admin, Right::Push, Right::Pull] {
            for user in self
                .iam
                .group_members(&Self::group_name(project, right))
                .await?
            {
                if user.path == Self::robot_path(project) {
                    robots.push((user, right));
                } else if !members
                    .iter()
                    .any(|(m, _): &(IamEntity, Right)| m.name == user.name)
                {
                    members.push((user, right));
                }
            }
        }
        Ok(Some(Project {
            name: project.to_string(),
            members,
            robots,
        }))
    }

    /// Gives `user` `right` in the project (and only that one).
    pub async fn set_member(
        &self,
        project: &str,
        user: &str,
        right: Option<Right>,
    ) -> Result<(), IamError> {
        for r in [Right::Pull, Right::Push, Right::Admin] {
            let group = Self::group_name(project, r);
            if Some(r) == right {
                self.iam.add_user_to_group(&group, user).await?;
            } else {
                match self.iam.remove_user_from_group(&group, user).await {
                    Ok(()) | Err(IamError::NoSuchEntity { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    }

    /// Makes robot `name` with `right` and its access key: (key id, secret).
    pub async fn create_robot(
        &self,
        project: &str,
        name: &str,
        right: Right,
    ) -> Result<(String, String), IamError> {
        let user = format!("{project}-{name}");
        self.iam
            .create_user(NewUser {
                name: user.clone(),
                path: Self::robot_path(project),
                tags: vec![("berth:robot".into(), project.to_string())],
            })
            .await?;
        self.iam
            .add_user_to_group(&Self::group_name(project, right), &user)
            .await?;
        let key = self
            .iam
            .create_access_key(&self.robot_arn(project, name))
            .await?;
        Ok((key.key.id, key.secret))
    }

    /// A new key for the robot; the old ones go.
    pub async fn rotate_robot(
        &self,
        project: &str,
        name: &str,
    ) -> Result<(String, String), IamError> {
        let arn = self.robot_arn(project, name);
        let old = self.iam.access_keys(&arn).await?;
        for key in &old {
            self.iam.delete_access_key(&arn, &key.id).await?;
        }
        let key = self.iam.create_access_key(&arn).await?;
        Ok((key.key.id, key.secret))
    }

    /// Removes the robot, its keys and its memberships.
    pub async fn revoke_robot(&self, project: &str, name: &str) -> Result<(), IamError> {
        let arn = self.robot_arn(project, name);
        let user = format!("{project}-{name}");
        for key in self.iam.access_keys(&arn).await? {
            self.iam.delete_access_key(&arn, &key.id).await?;
        }
        self.set_member(project, &user, None).await?;
        self.iam.delete_entity(IamKind::User, &user).await
    }
}
